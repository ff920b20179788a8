//! CycloneDX 1.6 JSON.
//!
//! `metadata.component` is the image (type `container`, its manifest digest as version and
//! SHA-256 hash); components: the base image (`container`), its OS packages and every Python
//! distribution (`library`, purl, the wheel's SHA-256 and `rbuild:*` properties for the wheel file
//! and its origin). `dependencies`: the image on the base and the distributions, the base on its
//! OS packages. The serial number is a UUID (version 5 layout) derived from the content.

use serde_json::{Value, json};

use crate::purl::{deb_purl, oci_purl, pypi_purl};
use crate::{DistSource, Inventory, OsInventory, PackageManager, sha256_hex};

/// The media type of a CycloneDX JSON document.
pub const CYCLONEDX_MEDIA_TYPE: &str = "application/vnd.cyclonedx+json";

fn prop(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

/// The CycloneDX 1.6 JSON document for `inv` (canonical JSON).
pub fn cyclonedx_json(inv: &Inventory) -> Vec<u8> {
    let mut components: Vec<Value> = Vec::new();
    let mut image_deps: Vec<String> = Vec::new();
    let mut deps: Vec<Value> = Vec::new();
    let mut meta_props = vec![prop("rbuild:platform", inv.platform.clone())];

    if let Some(base) = &inv.base {
        let base_ref = "base-image".to_string();
        let mut base_deps: Vec<String> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        if let OsInventory::Packages {
            manager,
            distro_id,
            distro_version,
            packages,
        } = &inv.os
        {
            let pm = match manager {
                PackageManager::Dpkg => "dpkg",
                PackageManager::Apk => "apk",
            };
            for p in packages {
                let purl = deb_purl(*manager, distro_id.as_deref(), distro_version.as_deref(), p);
                if !seen.insert(purl.clone()) {
                    continue;
                }
                let mut props = vec![prop("rbuild:package-manager", pm)];
                if let Some(s) = &p.source {
                    props.push(prop("rbuild:source-package", s.clone()));
                }
                components.push(json!({
                    "type": "library",
                    "bom-ref": purl,
                    "name": p.name,
                    "version": p.version,
                    "purl": purl,
                    "properties": props,
                }));
                base_deps.push(purl);
            }
        }
        if let OsInventory::Unreadable { reason } = &inv.os {
            meta_props.push(prop("rbuild:os-packages", reason.clone()));
        }
        components.push(json!({
            "type": "container",
            "bom-ref": base_ref,
            "name": base.name,
            "version": base.digest.to_string(),
            "hashes": [{"alg": "SHA-256", "content": base.digest.hex()}],
            "purl": oci_purl(&base.name, &base.digest),
        }));
        deps.push(json!({"ref": base_ref, "dependsOn": base_deps}));
        image_deps.push(base_ref);
    }

    for d in &inv.python {
        let purl = pypi_purl(&d.name, &d.version);
        let mut props = vec![prop("rbuild:source", d.source.kind())];
        match &d.source {
            DistSource::Index { url } => props.push(prop("rbuild:index-url", url.clone())),
            DistSource::LocalFile { path } => props.push(prop("rbuild:local-file", path.clone())),
            DistSource::Sdist { sdist } => {
                if let Some(f) = &sdist.filename {
                    props.push(prop("rbuild:sdist", f.clone()));
                }
                props.push(prop("rbuild:sdist-sha256", sdist.sha256.hex()));
            }
            DistSource::FindLinks | DistSource::Project => {}
        }
        let mut c = json!({
            "type": if d.source == DistSource::Project { "application" } else { "library" },
            "bom-ref": purl,
            "name": d.name,
            "version": d.version,
            "purl": purl,
        });
        if let Some(w) = &d.wheel {
            props.push(prop("rbuild:wheel", w.filename.clone()));
            c["hashes"] = json!([{"alg": "SHA-256", "content": w.sha256.hex()}]);
        }
        c["properties"] = json!(props);
        if image_deps.contains(&purl) {
            continue;
        }
        image_deps.push(purl);
        components.push(c);
    }
    deps.insert(0, json!({"ref": "image", "dependsOn": image_deps}));

    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": "",
        "version": 1,
        "metadata": {
            "timestamp": inv.created,
            "tools": {"components": [{"type": "application", "name": "rbuild", "version": inv.tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": inv.image_name,
                "version": inv.image_digest.to_string(),
                "hashes": [{"alg": "SHA-256", "content": inv.image_digest.hex()}],
            },
            "properties": meta_props,
        },
        "components": components,
        "dependencies": deps,
    });
    let h = sha256_hex(&rbuild_oci::canonical_json(&doc).expect("serializable"));
    doc["serialNumber"] = json!(format!(
        "urn:uuid:{}-{}-5{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        // variant 10xx
        ["8", "9", "a", "b"][usize::from_str_radix(&h[16..17], 16).unwrap_or(0) % 4],
        &h[17..20],
        &h[20..32]
    ));
    rbuild_oci::canonical_json(&doc).expect("serializable")
}
