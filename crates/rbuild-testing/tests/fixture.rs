//! The base fixture builds (or comes from the cache), verifies, and pushes to real registries;
//! skopeo (an independent client) checks what arrived.

use std::process::Command;

use rbuild_testing::{BaseFixture, Mode, Platform, Registry};

fn skopeo(args: &[String]) -> String {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo {:?} failed: {}",
        args.iter()
            .filter(|a| !a.contains("creds"))
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn inspect(registry: &Registry, repo_tag: &str, raw: bool) -> serde_json::Value {
    let mut args = vec!["inspect".to_string()];
    if raw {
        args.push("--raw".into());
    }
    args.extend(
        registry
            .skopeo_flags("src")
            .into_iter()
            .map(|f| f.replace("--src-", "--")),
    );
    args.push(format!("docker://{}/{repo_tag}", registry.host()));
    serde_json::from_str(&skopeo(&args)).expect("skopeo prints JSON")
}

/// Unpacks the image tagged `tag` with umoci and runs `python3 -c CODE` in it with chroot.
fn run_in(fixture: &BaseFixture, tag: &str, code: &str) -> String {
    let bundle = tempfile::tempdir().unwrap();
    let dir = bundle.path().join("b");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:{tag}", fixture.layout_dir().display()))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("chroot")
        .arg(dir.join("rootfs"))
        .args(["/usr/bin/python3", "-c", code])
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn fixture_pushes_as_linux_amd64_with_two_layers() {
    let fixture = BaseFixture::ensure().expect("base fixture");
    let registry = Registry::start(Mode::Plain).expect("registry");
    fixture
        .push_to(&registry, "library/python:3.11-slim")
        .expect("push");
    let amd64 = if fixture.has_arm64() {
        let raw = inspect(&registry, "library/python:3.11-slim", true);
        assert_eq!(raw["mediaType"], "application/vnd.oci.image.index.v1+json");
        let platforms: Vec<String> = raw["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{}/{}",
                    m["platform"]["os"].as_str().unwrap(),
                    m["platform"]["architecture"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
        // The arm64 image is real: its python runs (under qemu) and says aarch64.
        let out = run_in(
            &fixture,
            "arm64",
            "import platform, pip; print(platform.machine(), pip.__version__)",
        );
        assert_eq!(out, "aarch64 24.0");
        fixture
            .push_platform_to(&registry, "library/python:amd64", Platform::Amd64)
            .expect("push amd64");
        inspect(&registry, "library/python:amd64", false)
    } else {
        inspect(&registry, "library/python:3.11-slim", false)
    };
    assert_eq!(amd64["Os"], "linux");
    assert_eq!(amd64["Architecture"], "amd64");
    assert_eq!(amd64["Layers"].as_array().unwrap().len(), 2);
    assert!(amd64["Env"].as_array().unwrap().iter().any(|e| {
        e.as_str()
            .unwrap()
            .starts_with("PATH=/usr/local/sbin:/usr/local/bin:")
    }));
    // The registry holds exactly the layout's manifest bytes (copied with --preserve-digests).
    let desc = fixture.platform_descriptor(Platform::Amd64).unwrap();
    let digest = desc["digest"].as_str().unwrap();
    assert_eq!(amd64["Digest"], digest);
}

#[test]
fn fixture_layers_hold_python_and_pip_but_no_externally_managed() {
    let fixture = BaseFixture::ensure().expect("base fixture");
    let desc = fixture.platform_descriptor(Platform::Amd64).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&fixture.blob(desc["digest"].as_str().unwrap()).unwrap()).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    let list = |i: usize| -> Vec<String> {
        let digest = layers[i]["digest"].as_str().unwrap();
        let path = fixture
            .layout_dir()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"));
        let out = Command::new("tar").arg("-tzf").arg(path).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let base = list(0);
    let has = |files: &[String], f: &str| files.iter().any(|l| l == f);
    assert!(has(&base, "./usr/bin/python3.11"));
    assert!(has(&base, "./etc/ssl/certs/ca-certificates.crt"));
    assert!(
        has(&base, "./dev/"),
        "an empty /dev like Docker Hub's images"
    );
    assert!(!base.iter().any(|l| l.ends_with("EXTERNALLY-MANAGED")));
    assert!(
        !has(&base, "./usr/share/man/man1/python3.11.1.gz"),
        "slim: no man pages"
    );
    let pip = list(1);
    assert!(has(&pip, "./usr/local/bin/pip"));
    assert!(has(
        &pip,
        "./usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info/RECORD"
    ));
    assert!(has(
        &pip,
        "./usr/local/lib/python3.11/dist-packages/pip/__init__.py"
    ));
    let config: serde_json::Value = serde_json::from_slice(
        &fixture
            .blob(manifest["config"]["digest"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(config["config"]["Cmd"], serde_json::json!(["python3"]));
    assert_eq!(
        config["config"]["Healthcheck"],
        serde_json::json!({"Test": ["NONE"]})
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
    // It runs: pip imports from /usr/local and Debian's EXTERNALLY-MANAGED marker is gone.
    let out = run_in(
        &fixture,
        "amd64",
        "import pip, sysconfig, os; print(pip.__version__, pip.__file__, \
         os.path.exists(sysconfig.get_path('stdlib') + '/EXTERNALLY-MANAGED'))",
    );
    assert_eq!(
        out,
        "24.0 /usr/local/lib/python3.11/dist-packages/pip/__init__.py False"
    );
}

#[test]
fn fixture_pushes_to_registries_that_need_auth_and_tls() {
    let fixture = BaseFixture::ensure().expect("base fixture");
    for mode in [
        Mode::tls_htpasswd("pusher", "pw-1"),
        Mode::token("pusher", "pw-2"),
    ] {
        let registry = Registry::start(mode.clone()).unwrap();
        fixture
            .push_platform_to(&registry, "library/python:3.11-slim", Platform::Amd64)
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let image = inspect(&registry, "library/python:3.11-slim", false);
        assert_eq!(image["Architecture"], "amd64", "{mode:?}");
        assert_eq!(
            registry.blob_uploads(),
            3,
            "{mode:?}: two layers and the config"
        );
        if let Some(ts) = registry.token_server() {
            assert!(ts.requests().iter().any(|r| {
                r.user.as_deref() == Some("pusher")
                    && r.granted
                        .iter()
                        .any(|g| g.ends_with("push") || g.contains("push,") || g.contains(",push"))
            }));
        }
    }
}

/// Without RBUILD_TEST_ARM64 the index is assembled from the amd64 image (no qemu needed); with it
/// the real arm64 image is in it.
#[test]
fn push_index_to_gives_a_two_platform_index() {
    let fixture = BaseFixture::ensure().expect("base fixture");
    let registry = Registry::plain().unwrap();
    let digest = fixture
        .push_index_to(&registry, "library/python:multi")
        .unwrap();
    let raw_args = vec![
        "inspect".to_string(),
        "--raw".into(),
        "--tls-verify=false".into(),
        format!("docker://{}/library/python:multi", registry.host()),
    ];
    let raw = skopeo(&raw_args);
    assert_eq!(
        format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(raw.as_bytes()))
        ),
        digest
    );
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let archs: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let config_args = vec![
        "inspect".to_string(),
        "--config".into(),
        "--tls-verify=false".into(),
        format!(
            "docker://{}/library/python@{}",
            registry.host(),
            index["manifests"][1]["digest"].as_str().unwrap()
        ),
    ];
    let arm: serde_json::Value = serde_json::from_str(&skopeo(&config_args)).unwrap();
    assert_eq!(arm["architecture"], "arm64");
    assert_eq!(arm["variant"], "v8");
}
