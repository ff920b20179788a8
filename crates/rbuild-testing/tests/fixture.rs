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
