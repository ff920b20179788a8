//! Shared helpers for the CLI's integration tests: running the built `rbuild`, skopeo as the
//! oracle, and a two-platform index assembled on the test registry.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use rbuild_oci::{Descriptor, Digest, MediaType, RawManifest, Store};
use rbuild_registry::{Access, Client, ClientOptions, Reference};
use rbuild_testing::{BaseFixture, Registry};

/// Runs the built `rbuild` with its cache in `cache`.
pub fn rbuild(args: &[&str], cache: &Path) -> Output {
    rbuild_env(args, cache, &[])
}

/// Runs the built `rbuild` with extra environment variables.
pub fn rbuild_env(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbuild"));
    // An empty HOME: no credentials from the machine's ~/.docker or ~/.config/containers.
    let home = cache.join("home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.args(args)
        .env("HOME", &home)
        .env_remove("XDG_RUNTIME_DIR")
        .env("RBUILD_CACHE_DIR", cache)
        .env_remove("RBUILD_LOG")
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("RBUILD_REGISTRY_USERNAME")
        .env_remove("RBUILD_REGISTRY_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running rbuild")
}

/// Asserts success and returns stdout.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "rbuild failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `skopeo inspect --raw` of `docker://REF` (plain HTTP registry).
pub fn skopeo_raw(reference: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{reference}"),
        ])
        .output()
        .expect("running skopeo");
    out.status.success().then_some(out.stdout)
}

/// `skopeo copy --all docker://REF oci:DIR:t` (every digest verified by skopeo); panics on failure.
pub fn skopeo_copy_verifies(reference: &str, dir: &Path) {
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:t", dir.display()),
        ])
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo copy of {reference} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The base fixture on `registry` as `library/python:3.11-slim`.
pub fn push_fixture(registry: &Registry) -> BaseFixture {
    let fixture = BaseFixture::ensure().expect("base fixture");
    fixture
        .push_to(registry, "library/python:3.11-slim")
        .expect("pushing the fixture");
    fixture
}

/// A two-platform index on `host` as `library/python:multi`, returned with its exact bytes and every
/// blob it references (sorted by digest). With `RBUILD_TEST_ARM64=1` it is the fixture's own index; otherwise it
/// is assembled here: the amd64 fixture plus a small synthetic linux/arm64/v8 image, under an OCI
/// index built with rbuild's client.
pub fn two_platform_index(
    registry: &Registry,
    fixture: &BaseFixture,
) -> (Vec<u8>, Vec<Descriptor>) {
    let host = registry.host();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = Client::new(ClientOptions::default()).unwrap();
        let src: Reference = format!("{host}/library/python:3.11-slim").parse().unwrap();
        let multi: Reference = format!("{host}/library/python:multi").parse().unwrap();
        let top = client.get_manifest(&src).await.unwrap();
        let repo = client.repository(&multi, Access::Push).unwrap();
        if fixture.has_arm64() {
            repo.push_manifest(&top, Some("multi")).await.unwrap();
        } else {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path().join("store")).unwrap();
            // A tiny real layer: a gzip'd tar with one file.
            let root = dir.path().join("root");
            std::fs::create_dir_all(root.join("etc")).unwrap();
            std::fs::write(root.join("etc/arm64-marker"), b"arm64\n").unwrap();
            let tar = Command::new("tar")
                .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "-cf", "-", "-C"])
                .arg(&root)
                .arg("etc")
                .output()
                .unwrap();
            assert!(tar.status.success());
            let diff_id = Digest::of(&tar.stdout);
            let gz = {
                let mut child = Command::new("gzip")
                    .args(["-n", "-c"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
                child.wait_with_output().unwrap().stdout
            };
            let layer = store.put_bytes(&gz).unwrap();
            let config = format!(
                r#"{{"architecture":"arm64","os":"linux","variant":"v8","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
            );
            let config_digest = store.put_bytes(config.as_bytes()).unwrap();
            let layer_desc = Descriptor::new(MediaType::OCI_LAYER_GZIP, layer, gz.len() as u64);
            let config_desc =
                Descriptor::new(MediaType::OCI_CONFIG, config_digest, config.len() as u64);
            for d in [&layer_desc, &config_desc] {
                repo.upload_blob(d, &store, None).await.unwrap();
            }
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MediaType::OCI_MANIFEST,
                "config": config_desc,
                "layers": [layer_desc],
            });
            let arm = RawManifest::new(
                serde_json::to_vec(&manifest).unwrap(),
                Some(MediaType::OCI_MANIFEST),
            );
            repo.push_manifest(&arm, None).await.unwrap();
            let index = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": MediaType::OCI_INDEX,
                "manifests": [
                    {"mediaType": top.media_type, "digest": top.digest, "size": top.bytes.len(),
                     "platform": {"architecture": "amd64", "os": "linux"}},
                    {"mediaType": MediaType::OCI_MANIFEST, "digest": arm.digest, "size": arm.bytes.len(),
                     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
                ],
            });
            let index =
                RawManifest::new(serde_json::to_vec(&index).unwrap(), Some(MediaType::OCI_INDEX));
            repo.push_manifest(&index, Some("multi")).await.unwrap();
        }
        // Every blob of every platform.
        let index = client.get_manifest(&multi).await.unwrap();
        let rbuild_oci::ManifestKind::Index(idx) = index.parse().unwrap() else {
            panic!("not an index")
        };
        let mut all = Vec::new();
        for entry in &idx.manifests {
            let m = client
                .get_manifest(&multi.by_digest(entry.digest))
                .await
                .unwrap();
            if let rbuild_oci::ManifestKind::Image(img) = m.parse().unwrap() {
                all.push(img.config.clone());
                all.extend(img.layers.iter().cloned());
            }
        }
        all.sort_by_key(|d| d.digest);
        all.dedup_by_key(|d| d.digest);
        (index.bytes, all)
    })
}

/// The lines of stderr that start with `error:`.
pub fn error_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("error:"))
        .map(str::to_string)
        .collect()
}
