//! SPDX 2.3 JSON.
//!
//! Packages: the image (`SPDXRef-Image`, purpose `CONTAINER`), the base image
//! (`SPDXRef-BaseImage`), each OS package of the base, each Python distribution (its wheel as
//! `packageFileName` with its `SHA256` checksum, its origin in `sourceInfo`) and each sdist a wheel
//! was built from. Relationships: the document `DESCRIBES` the image; the image is
//! `DESCENDANT_OF` the base and `CONTAINS` every Python distribution; the base `CONTAINS` its OS
//! packages; a wheel built from an sdist is `GENERATED_FROM` it.
//!
//! IDs are made from names and versions; the document namespace from the document's own content
//! (`https://spdx.org/spdxdocs/rbuild-NAME-SHA256`), so nothing random or clock-bound is written.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::purl::{deb_purl, oci_purl, pypi_purl};
use crate::{DistSource, Inventory, OsInventory, sha256_hex};

/// The media type of an SPDX JSON document.
pub const SPDX_MEDIA_TYPE: &str = "application/spdx+json";

/// Allocates unique SPDX IDs (`SPDXRef-` + `[A-Za-z0-9.-]`).
#[derive(Default)]
pub(crate) struct Ids(BTreeSet<String>);

impl Ids {
    pub(crate) fn make(&mut self, prefix: &str, parts: &[&str]) -> String {
        let raw: String = parts
            .iter()
            .map(|p| {
                p.chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("-");
        let base = format!("SPDXRef-{prefix}-{raw}");
        let mut id = base.clone();
        let mut n = 2;
        while !self.0.insert(id.clone()) {
            id = format!("{base}-{n}");
            n += 1;
        }
        id
    }
}

fn purl_ref(purl: String) -> Value {
    json!([{
        "referenceCategory": "PACKAGE-MANAGER",
        "referenceType": "purl",
        "referenceLocator": purl,
    }])
}

/// The SPDX 2.3 JSON document for `inv` (canonical JSON).
pub fn spdx_json(inv: &Inventory) -> Vec<u8> {
    let mut ids = Ids::default();
    let mut packages: Vec<Value> = Vec::new();
    let mut rels: Vec<Value> = Vec::new();
    let rel = |a: &str, kind: &str, b: &str| json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b});

    let image_id = "SPDXRef-Image".to_string();
    ids.0.insert(image_id.clone());
    packages.push(json!({
        "SPDXID": image_id,
        "name": inv.image_name,
        "versionInfo": inv.image_digest.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": false,
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": inv.image_digest.hex()}],
        "comment": format!("the image manifest for {}, built by rbuild", inv.platform),
    }));
    rels.push(rel("SPDXRef-DOCUMENT", "DESCRIBES", &image_id));

    let mut comment = None;
    if let Some(base) = &inv.base {
        let base_id = "SPDXRef-BaseImage".to_string();
        ids.0.insert(base_id.clone());
        packages.push(json!({
            "SPDXID": base_id,
            "name": base.name,
            "versionInfo": base.digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.digest.hex()}],
            "externalRefs": purl_ref(oci_purl(&base.name, &base.digest)),
        }));
        rels.push(rel(&image_id, "DESCENDANT_OF", &base_id));
        match &inv.os {
            OsInventory::Packages {
                manager,
                distro_id,
                distro_version,
                packages: os,
            } => {
                for p in os {
                    let id = ids.make(
                        "OS",
                        &[&p.name, p.arch.as_deref().unwrap_or("noarch"), &p.version],
                    );
                    let mut pkg = json!({
                        "SPDXID": id,
                        "name": p.name,
                        "versionInfo": p.version,
                        "downloadLocation": "NOASSERTION",
                        "filesAnalyzed": false,
                        "primaryPackagePurpose": "LIBRARY",
                        "externalRefs": purl_ref(deb_purl(*manager, distro_id.as_deref(), distro_version.as_deref(), p)),
                    });
                    if let Some(src) = &p.source {
                        pkg["sourceInfo"] = json!(format!("built from the source package {src}"));
                    }
                    packages.push(pkg);
                    rels.push(rel(&base_id, "CONTAINS", &id));
                }
            }
            OsInventory::Unreadable { reason } => comment = Some(reason.clone()),
            OsInventory::None => {}
        }
    }

    for d in &inv.python {
        let id = ids.make("Python", &[&d.name, &d.version]);
        let mut pkg = json!({
            "SPDXID": id,
            "name": d.name,
            "versionInfo": d.version,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": if d.source == DistSource::Project { "APPLICATION" } else { "LIBRARY" },
            "sourceInfo": d.source.describe(),
            "externalRefs": purl_ref(pypi_purl(&d.name, &d.version)),
        });
        if let Some(w) = &d.wheel {
            pkg["packageFileName"] = json!(w.filename);
            pkg["checksums"] = json!([{"algorithm": "SHA256", "checksumValue": w.sha256.hex()}]);
        }
        packages.push(pkg);
        rels.push(rel(&image_id, "CONTAINS", &id));
        if let DistSource::Sdist { sdist } = &d.source {
            let sid = ids.make("Sdist", &[&d.name, &d.version]);
            let mut s = json!({
                "SPDXID": sid,
                "name": d.name,
                "versionInfo": d.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": false,
                "primaryPackagePurpose": "SOURCE",
                "checksums": [{"algorithm": "SHA256", "checksumValue": sdist.sha256.hex()}],
                "externalRefs": purl_ref(pypi_purl(&d.name, &d.version)),
            });
            if let Some(f) = &sdist.filename {
                s["packageFileName"] = json!(f);
            }
            packages.push(s);
            rels.push(rel(&id, "GENERATED_FROM", &sid));
        }
    }

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", inv.image_name, inv.image_digest),
        "documentNamespace": "",
        "creationInfo": {
            "created": inv.created,
            "creators": [format!("Tool: rbuild-{}", inv.tool_version)],
        },
        "packages": packages,
        "relationships": rels,
    });
    if let Some(c) = comment {
        doc["comment"] = json!(c);
    }
    // The namespace is derived from everything else in the document.
    let content = rbuild_oci::canonical_json(&doc).expect("serializable");
    let slug: String = inv
        .image_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    doc["documentNamespace"] = json!(format!(
        "https://spdx.org/spdxdocs/rbuild-{slug}-{}",
        sha256_hex(&content)
    ));
    rbuild_oci::canonical_json(&doc).expect("serializable")
}
