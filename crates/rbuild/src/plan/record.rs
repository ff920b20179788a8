//! What an image records about its plan (labels), so a fresh runner with an empty store can
//! recompute its cache keys and reuse its wheel choice.

use rbuild_lock::{ChosenWheel, Lock};
use std::collections::BTreeMap;

use rbuild_oci::{Digest, ImageConfig, canonical_json};

use crate::BuildError;
use crate::error::other;
use rbuild_python::target::Target;
use serde::{Deserialize, Serialize};

/// Config label holding what a fresh runner needs to recompute the cache keys.
pub const LABEL_TARGET: &str = "dev.rbuild.target";

/// Config label listing the wheels taken from `--find-links` directories for packages the lock
/// pins without a fitting file (`[[name, version, file, sha256], ...]`).
pub const LABEL_FIND_LINKS: &str = "dev.rbuild.find-links";

/// Config label with the wheels chosen for this image's lockfile and target (`{"key", "wheels"}`),
/// so a runner with an empty store and the same lock finds the dependency layer without asking the
/// package index (see [`crate::Builder::build`]).
pub const LABEL_WHEELS: &str = "dev.rbuild.wheels";

/// What is recorded in the image (label [`LABEL_TARGET`]) so a fresh runner can recompute cache keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Recorded {
    pub(crate) base_digest: Option<Digest>,
    pub(crate) overrides: Overrides,
    pub(crate) target: Target,
}

/// The request's replacements of target detection and marker values, as recorded (plain JSON:
/// part of the `dev.rbuild.target` label and of the base-facts key).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Overrides {
    pub(crate) python_version: Option<String>,
    pub(crate) python_full_version: Option<String>,
    pub(crate) libc: Option<String>,
    pub(crate) site_packages: Option<String>,
    pub(crate) interpreter: Option<String>,
    pub(crate) markers: BTreeMap<String, String>,
}

impl Overrides {
    /// The request's overrides.
    pub(crate) fn of(req: &crate::request::BuildRequest) -> Overrides {
        let t = &req.target_overrides;
        Overrides {
            python_version: t.python_version.map(|v| v.to_string()),
            python_full_version: t.python_full_version.clone(),
            libc: t.libc.as_ref().map(|l| l.to_string()),
            site_packages: t.site_packages.clone(),
            interpreter: t.interpreter.clone(),
            markers: req.marker_overrides.clone(),
        }
    }
}

/// The wheel choice recorded in the image (label [`LABEL_WHEELS`]): valid for another build whose
/// [`Builder::plan_key`] is `key`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct RecordedWheels {
    pub(crate) key: String,
    pub(crate) wheels: Vec<ChosenWheel>,
}

impl RecordedWheels {
    /// The record in a previous image's config, if it has one that parses.
    pub(crate) fn from_config(config: &ImageConfig) -> Option<RecordedWheels> {
        let label = config.config.as_ref()?.labels.as_ref()?.get(LABEL_WHEELS)?;
        serde_json::from_str(label).ok()
    }

    /// The recorded wheels in the lock's package order (the order a fresh choice has), when they
    /// are exactly the lock's packages, each at its locked version and with a sha256 the lock
    /// allows; `None` otherwise.
    pub(crate) fn choice_for(&self, lock: &Lock) -> Option<Vec<ChosenWheel>> {
        if self.wheels.len() != lock.packages.len() {
            return None;
        }
        lock.packages
            .iter()
            .map(|p| {
                let name = rbuild_python::normalize_name(&p.name);
                self.wheels
                    .iter()
                    .find(|w| {
                        rbuild_python::normalize_name(&w.name) == name
                            && w.version == p.version
                            && w.path.is_none()
                            && w.sha256.is_some_and(|d| p.hashes.contains(&d))
                    })
                    .cloned()
            })
            .collect()
    }
}

/// Records the plan in the image's labels: the target ([`LABEL_TARGET`]) and, when the choice is
/// fixed by the lock, the wheels ([`LABEL_WHEELS`]: names, versions, files and hashes only; a URL
/// may carry an index's signed query or point at a private host, and is looked up again when a
/// file is needed).
pub(crate) fn record_plan(
    labels: &mut BTreeMap<String, String>,
    recorded: &Recorded,
    plan_key: Option<&str>,
    wheels: &[ChosenWheel],
) -> Result<(), BuildError> {
    labels.insert(LABEL_TARGET.into(), label_json(recorded)?);
    if let Some(key) = plan_key {
        let rec = RecordedWheels {
            key: key.to_string(),
            wheels: wheels
                .iter()
                .map(|w| ChosenWheel {
                    url: None,
                    path: None,
                    index: None,
                    ..w.clone()
                })
                .collect(),
        };
        labels.insert(LABEL_WHEELS.into(), label_json(&rec)?);
    }
    let local: Vec<(&str, &str, &str, Option<String>)> = wheels
        .iter()
        .filter(|w| w.origin == rbuild_lock::WheelOrigin::FindLinks)
        .map(|w| {
            (
                w.name.as_str(),
                w.version.as_str(),
                w.filename.as_str(),
                w.sha256.map(|d| d.to_string()),
            )
        })
        .collect();
    if !local.is_empty() {
        labels.insert(LABEL_FIND_LINKS.into(), label_json(&local)?);
    }
    Ok(())
}

/// Canonical JSON text of a label value.
fn label_json<T: Serialize>(value: &T) -> Result<String, BuildError> {
    String::from_utf8(canonical_json(value).map_err(other)?).map_err(other)
}
