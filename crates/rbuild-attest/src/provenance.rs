//! SLSA v1 provenance in an in-toto v1 statement.
//!
//! ```json
//! {"_type": "https://in-toto.io/Statement/v1",
//!  "subject": [{"name": "app", "digest": {"sha256": "…"}}],
//!  "predicateType": "https://slsa.dev/provenance/v1",
//!  "predicate": {
//!    "buildDefinition": {"buildType": "…", "externalParameters": {…settings…},
//!                        "internalParameters": {}, "resolvedDependencies": [{"name", "uri", "digest"}]},
//!    "runDetails": {"builder": {"id": "…", "version": {"rbuild": "0.1.0"}}}}}
//! ```
//!
//! No `startedOn`/`finishedOn` and no invocation ID: the statement is a function of the image and
//! its inputs, so two builds of the same inputs attach the same bytes. Callers pass settings
//! without secrets or host paths (the context and lockfile are named by digest and relative name).

use std::collections::BTreeMap;

use rbuild_oci::{Digest, canonical_json};
use serde_json::{Value, json};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA v1 provenance predicate type.
pub const PROVENANCE_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The media type of an in-toto statement (also the artifact type of its attachment).
pub const STATEMENT_MEDIA_TYPE: &str = "application/vnd.in-toto+json";

/// One resolved input of a build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedInput {
    /// What it is (`base-image`, `lockfile:uv.lock`, `context`).
    pub name: String,
    /// Where it is (`pkg:oci/…`), when it has a location worth naming (never a host path).
    pub uri: Option<String>,
    /// Its sha256.
    pub digest: Digest,
}

/// What a provenance statement says.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    /// The builder's ID (a URI).
    pub builder_id: String,
    /// The builder's version.
    pub builder_version: String,
    /// The build type (a URI naming how the external parameters are read).
    pub build_type: String,
    /// What was built: name and manifest digest.
    pub subjects: Vec<(String, Digest)>,
    /// The settings that shaped the image (no secrets, no host paths).
    pub external_parameters: BTreeMap<String, Value>,
    /// The resolved inputs.
    pub resolved: Vec<ResolvedInput>,
}

impl Provenance {
    /// The statement as JSON.
    pub fn statement(&self) -> Value {
        let subjects: Vec<Value> = self
            .subjects
            .iter()
            .map(|(name, d)| json!({"name": name, "digest": {"sha256": d.hex()}}))
            .collect();
        let deps: Vec<Value> = self
            .resolved
            .iter()
            .map(|r| {
                let mut v = json!({"name": r.name, "digest": {"sha256": r.digest.hex()}});
                if let Some(u) = &r.uri {
                    v["uri"] = json!(u);
                }
                v
            })
            .collect();
        json!({
            "_type": STATEMENT_TYPE,
            "subject": subjects,
            "predicateType": PROVENANCE_PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": self.build_type,
                    "externalParameters": self.external_parameters,
                    "internalParameters": {},
                    "resolvedDependencies": deps,
                },
                "runDetails": {
                    "builder": {
                        "id": self.builder_id,
                        "version": {"rbuild": self.builder_version},
                    },
                },
            },
        })
    }

    /// The statement's canonical JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical_json(&self.statement()).expect("serializable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_has_subject_inputs_and_builder() {
        let p = Provenance {
            builder_id: "https://example.invalid/rbuild".into(),
            builder_version: "0.1.0".into(),
            build_type: "https://example.invalid/rbuild/build/v1".into(),
            subjects: vec![("app".into(), Digest::of(b"m"))],
            external_parameters: BTreeMap::from([("platform".into(), json!("linux/amd64"))]),
            resolved: vec![ResolvedInput {
                name: "lockfile:uv.lock".into(),
                uri: None,
                digest: Digest::of(b"lock"),
            }],
        };
        let v: Value = serde_json::from_slice(&p.to_bytes()).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(v["subject"][0]["digest"]["sha256"], Digest::of(b"m").hex());
        assert_eq!(v["predicateType"], PROVENANCE_PREDICATE_TYPE);
        let deps = &v["predicate"]["buildDefinition"]["resolvedDependencies"];
        assert_eq!(deps[0]["digest"]["sha256"], Digest::of(b"lock").hex());
        assert!(deps[0].get("uri").is_none());
        assert_eq!(
            v["predicate"]["runDetails"]["builder"]["version"]["rbuild"],
            "0.1.0"
        );
        assert_eq!(p.to_bytes(), p.clone().to_bytes());
    }
}
