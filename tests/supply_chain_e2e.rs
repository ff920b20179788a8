//! SBOM, provenance and signature, end to end (issue 20): what `rbuild build` attaches is found on
//! distribution 2.8 through the referrers tag schema with plain HTTP (curl, not rbuild), is
//! referenced from an OCI layout's `index.json`, validates with independent tools from PyPI
//! (spdx-tools, cyclonedx-python-lib), lists every locked distribution with its version and
//! sha256 and every OS package of the base with its version, is byte-identical across two
//! builds in two directories at two times, and a signature made with a cosign-format key verifies
//! with Python `cryptography` (and fails for another digest).

use std::path::{Path, PathBuf};
use std::process::Command;

use rbuild_e2e::{Bundle, copy_tree, rbuild, repo_root, sh};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = rbuild_testing::SLIM_BASE_REPO;

fn setup() -> Registry {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    Registry::plain_with_slim_base().expect("a registry with the base fixture")
}

/// A venv with the independent checkers from PyPI (spdx-tools, cyclonedx-python-lib with its JSON
/// validator, PyNaCl) and the system's `cryptography`, made once under the test cache directory.
fn venv() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("supply-chain-venv");
    let script = format!(
        "test -x {d}/bin/pyspdxtools && {d}/bin/python -c 'import nacl, cyclonedx, cryptography' || \
         (rm -rf {d} && python3 -m venv --system-site-packages {d} && \
          {d}/bin/pip install -q spdx-tools 'cyclonedx-python-lib[json-validation]' pynacl)",
        d = dir.display()
    );
    let lock = format!("{}.lock", dir.display());
    sh("flock", &[&lock, "sh", "-c", &script]);
    dir
}

fn python(venv: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(venv.join("bin/python"))
        .args(args)
        .output()
        .expect("run the venv's python");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn script(name: &str) -> String {
    repo_root()
        .join("tests/supply_chain")
        .join(name)
        .display()
        .to_string()
}

/// `GET /v2/...` with curl; the body.
fn curl(url: &str, accept: &str) -> Vec<u8> {
    let out = sh("curl", &["-fsS", "-H", &format!("Accept: {accept}"), url]);
    out.stdout
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn example(tmp: &Path, name: &str, from: &str) -> PathBuf {
    let dir = tmp.join(name);
    copy_tree(&repo_root().join(from), &dir);
    dir
}

/// The referrers of `digest` in `repo`, through the tag schema, by artifact type.
fn referrers(registry: &Registry, repo: &str, digest: &str) -> Vec<Value> {
    let tag = digest.replace("sha256:", "sha256-");
    let index: Value = serde_json::from_slice(&curl(
        &format!("{}/v2/{repo}/manifests/{tag}", registry.url()),
        OCI_INDEX,
    ))
    .unwrap();
    index["manifests"].as_array().unwrap().clone()
}

/// An attachment manifest and its one blob.
fn attachment_blob(registry: &Registry, repo: &str, manifest_digest: &str) -> (Value, Vec<u8>) {
    let m: Value = serde_json::from_slice(&curl(
        &format!("{}/v2/{repo}/manifests/{manifest_digest}", registry.url()),
        OCI_MANIFEST,
    ))
    .unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = curl(
        &format!("{}/v2/{repo}/blobs/{layer}", registry.url()),
        "*/*",
    );
    (m, blob)
}

#[test]
fn sbom_provenance_and_signature_are_attached_and_check_out() {
    let registry = setup();
    let venv = venv();
    let tmp = tempfile::tempdir().unwrap();
    let dir = example(tmp.path(), "fastapi-app", "examples/fastapi-app");
    let cache = tmp.path().join("cache");
    let (ok, log) = python(
        &venv,
        &[
            &script("make_cosign_key.py"),
            "test-password",
            &tmp.path().join("cosign").display().to_string(),
        ],
    );
    assert!(ok, "{log}");
    let key = tmp.path().join("cosign.key");
    let public = tmp.path().join("cosign.pub");
    let base = format!("{}/{BASE_REPO}", registry.host());
    let to = format!("{}/demo/sc:v1", registry.host());
    let layout = tmp.path().join("layout");
    let run = rbuild(
        &dir,
        &cache,
        &[("COSIGN_PASSWORD", "test-password")],
        &[
            "build",
            "--json",
            "--base",
            &base,
            "--to",
            &to,
            "--output",
            &format!("oci:{}:v1", layout.display()),
            "--sign-key",
            &key.display().to_string(),
        ],
    )
    .ok();
    let doc = run.json();
    let digest = doc["digest"].as_str().unwrap().to_string();

    // The referrers tag lists an SPDX SBOM and an in-toto statement about the image.
    let refs = referrers(&registry, "demo/sc", &digest);
    let types: Vec<&str> = refs
        .iter()
        .map(|d| d["artifactType"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"application/spdx+json"), "{refs:?}");
    assert!(types.contains(&"application/vnd.in-toto+json"), "{refs:?}");
    let sbom_ref = refs
        .iter()
        .find(|d| d["artifactType"] == "application/spdx+json")
        .unwrap();
    let (sbom_manifest, sbom) =
        attachment_blob(&registry, "demo/sc", sbom_ref["digest"].as_str().unwrap());
    assert_eq!(sbom_manifest["subject"]["digest"], digest.as_str());

    // Independent checks: spdx-tools validates it; every uv.lock pin and every installed Debian
    // package of the image is listed with its version (and sha256).
    let bundle = Bundle::pull(&to);
    let sbom_file = tmp.path().join("sbom.spdx.json");
    std::fs::write(&sbom_file, &sbom).unwrap();
    let (ok, log) = python(
        &venv,
        &[
            &script("check_sbom.py"),
            "spdx",
            &sbom_file.display().to_string(),
            &dir.join("uv.lock").display().to_string(),
            &bundle
                .rootfs()
                .join("var/lib/dpkg/status")
                .display()
                .to_string(),
        ],
    );
    assert!(ok, "{log}");

    // `rbuild sbom` reads back the same bytes.
    let back = rbuild(&dir, &cache, &[], &["sbom", &to]).ok();
    assert_eq!(back.stdout.as_bytes(), &sbom[..]);

    // Provenance: SLSA v1, subject the image, inputs by digest, no host path.
    let prov_ref = refs
        .iter()
        .find(|d| d["artifactType"] == "application/vnd.in-toto+json")
        .unwrap();
    let (_, prov) = attachment_blob(&registry, "demo/sc", prov_ref["digest"].as_str().unwrap());
    let statement: Value = serde_json::from_slice(&prov).unwrap();
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let lock_sha = sh("sha256sum", &[&dir.join("uv.lock").display().to_string()]).stdout;
    let lock_sha = String::from_utf8(lock_sha).unwrap();
    assert!(
        deps.iter().any(|d| d["name"] == "lockfile:uv.lock"
            && lock_sha.starts_with(d["digest"]["sha256"].as_str().unwrap())),
        "{deps:?}"
    );
    assert!(deps.iter().any(|d| d["name"] == "base-image"));
    let text = String::from_utf8(prov.clone()).unwrap();
    assert!(
        !text.contains(&tmp.path().display().to_string()),
        "no host path in the provenance: {text}"
    );
    let listed = rbuild(&dir, &cache, &[], &["attestations", &to]).ok();
    assert_eq!(listed.stdout.trim(), text.trim());

    // The signature: cosign's tag, verified with Python `cryptography`, refused for another digest.
    let sig_tag = digest.replace("sha256:", "sha256-") + ".sig";
    let sig: Value = serde_json::from_slice(&curl(
        &format!("{}/v2/demo/sc/manifests/{sig_tag}", registry.url()),
        OCI_MANIFEST,
    ))
    .unwrap();
    let layer = &sig["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let signature = layer["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap();
    let payload = curl(
        &format!(
            "{}/v2/demo/sc/blobs/{}",
            registry.url(),
            layer["digest"].as_str().unwrap()
        ),
        "*/*",
    );
    let payload_file = tmp.path().join("payload.json");
    std::fs::write(&payload_file, &payload).unwrap();
    let verify = |payload: &Path, expected: &str| {
        python(
            &venv,
            &[
                &script("verify_cosign.py"),
                &public.display().to_string(),
                &payload.display().to_string(),
                signature,
                expected,
            ],
        )
    };
    let (ok, log) = verify(&payload_file, &digest);
    assert!(ok, "{log}");
    let other = format!("sha256:{}", "0".repeat(64));
    let (ok, log) = verify(&payload_file, &other);
    assert!(!ok && log.contains("not sha256:000"), "{log}");
    let changed = tmp.path().join("changed.json");
    std::fs::write(
        &changed,
        String::from_utf8(payload.clone())
            .unwrap()
            .replace(&digest, &other),
    )
    .unwrap();
    let (ok, log) = verify(&changed, &other);
    assert!(!ok && log.contains("does not verify"), "{log}");
    // rbuild's own check agrees, and refuses another key.
    rbuild(
        &dir,
        &cache,
        &[],
        &["verify", &to, "--key", &public.display().to_string()],
    )
    .ok();
    let (ok, log) = python(
        &venv,
        &[
            &script("make_cosign_key.py"),
            "x",
            &tmp.path().join("other").display().to_string(),
        ],
    );
    assert!(ok, "{log}");
    let wrong = rbuild(
        &dir,
        &cache,
        &[],
        &[
            "verify",
            &to,
            "--key",
            &tmp.path().join("other.pub").display().to_string(),
        ],
    );
    assert_ne!(wrong.code, 0, "{}", wrong.stdout);

    // The OCI layout lists the attachments in index.json.
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let listed: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["digest"].as_str().unwrap())
        .collect();
    for r in &refs {
        assert!(listed.contains(&r["digest"].as_str().unwrap()), "{index}");
    }
    assert!(listed.contains(&digest.as_str()));
}

/// The SBOM and provenance digests of the image in an OCI layout (by artifact type).
fn layout_attachments(layout: &Path) -> (String, Vec<(String, String)>) {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let mut image = String::new();
    let mut out = Vec::new();
    for d in index["manifests"].as_array().unwrap() {
        let digest = d["digest"].as_str().unwrap().to_string();
        let blob = layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let m: Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
        match m["artifactType"].as_str() {
            Some(t) => out.push((t.to_string(), digest)),
            None => image = digest,
        }
    }
    out.sort();
    (image, out)
}

#[test]
fn two_builds_in_two_directories_attach_identical_documents() {
    let registry = setup();
    let venv = venv();
    let base = format!("{}/{BASE_REPO}", registry.host());
    let mut results = Vec::new();
    for round in 0..2 {
        let tmp = tempfile::tempdir().unwrap();
        let dir = example(
            tmp.path(),
            &format!("checkout-{round}"),
            "examples/fastapi-app",
        );
        let layout = tmp.path().join("layout");
        // The second build names its context by a relative path, as `rbuild build app` does:
        // the lockfile the provenance records is read from where the plan found it.
        let (cwd, context) = if round == 0 {
            (dir.clone(), ".".to_string())
        } else {
            (tmp.path().to_path_buf(), format!("checkout-{round}"))
        };
        rbuild(
            &cwd,
            &tmp.path().join("cache"),
            &[],
            &[
                "build",
                &context,
                "--base",
                &base,
                "--sbom",
                "cyclonedx",
                "--output",
                &format!("oci:{}", layout.display()),
            ],
        )
        .ok();
        let (image, attachments) = layout_attachments(&layout);
        assert_eq!(attachments.len(), 2, "{attachments:?}");
        if round == 0 {
            // The CycloneDX document validates and lists every pin.
            let cdx = &attachments
                .iter()
                .find(|(t, _)| t == "application/vnd.cyclonedx+json")
                .unwrap()
                .1;
            let m: Value = serde_json::from_slice(
                &std::fs::read(
                    layout
                        .join("blobs/sha256")
                        .join(cdx.trim_start_matches("sha256:")),
                )
                .unwrap(),
            )
            .unwrap();
            let blob = layout.join("blobs/sha256").join(
                m["layers"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("sha256:"),
            );
            let (ok, log) = python(
                &venv,
                &[
                    &script("check_sbom.py"),
                    "cyclonedx",
                    &blob.display().to_string(),
                    &dir.join("uv.lock").display().to_string(),
                ],
            );
            assert!(ok, "{log}");
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        results.push((image, attachments));
    }
    assert_eq!(
        results[0], results[1],
        "same image, same SBOM and provenance"
    );
}

#[test]
fn the_heavy_example_lists_every_pinned_wheel() {
    let registry = setup();
    let venv = venv();
    let tmp = tempfile::tempdir().unwrap();
    let dir = example(tmp.path(), "heavy", "tests/fixtures/heavy");
    let base = format!("{}/{BASE_REPO}", registry.host());
    let layout = tmp.path().join("layout");
    rbuild(
        &dir,
        &tmp.path().join("cache"),
        &[],
        &[
            "build",
            "--base",
            &base,
            "--no-compile-bytecode",
            "--no-provenance",
            "--output",
            &format!("oci:{}", layout.display()),
        ],
    )
    .ok();
    let (_, attachments) = layout_attachments(&layout);
    assert_eq!(attachments.len(), 1, "{attachments:?}");
    let m: Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(attachments[0].1.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let blob = layout.join("blobs/sha256").join(
        m["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let (ok, log) = python(
        &venv,
        &[
            &script("check_sbom.py"),
            "spdx",
            &blob.display().to_string(),
            &dir.join("requirements.txt").display().to_string(),
        ],
    );
    assert!(ok, "{log}");
}
