//! Detection on the real base fixture (`rbuild-testing`'s Debian bookworm + python3 + pip image).
//!
//! Skipped with a note when the fixture cannot be built on this machine (it needs root, mmdebstrap
//! and network the first time; later runs use the cache).

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

use rbuild_python::target::{Libc, MajorMinor, Platform, TargetOverrides, detect_target};
use rbuild_testing::{BaseFixture, Platform as FixturePlatform};
use serde_json::Value;

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

#[test]
fn detects_the_base_fixture() {
    let fixture = match BaseFixture::ensure() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("SKIPPED: the base fixture is unavailable here: {e}");
            return;
        }
    };
    let desc = fixture.platform_descriptor(FixturePlatform::Amd64).unwrap();
    let manifest: Value =
        serde_json::from_slice(&fixture.blob(desc["digest"].as_str().unwrap()).unwrap()).unwrap();
    let config: Value = serde_json::from_slice(
        &fixture
            .blob(manifest["config"]["digest"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let env: Vec<String> = config["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let layout = fixture.layout_dir().to_path_buf();
    let layers = manifest["layers"].as_array().unwrap().clone();
    // Stream each gzip layer straight from the layout: nothing is unpacked.
    let streams = layers.into_iter().map(move |l| -> io::Result<_> {
        assert!(l["mediaType"].as_str().unwrap().ends_with("tar+gzip"));
        let f = File::open(blob_path(&layout, l["digest"].as_str().unwrap()))?;
        Ok(flate2::read::GzDecoder::new(BufReader::new(f)))
    });
    let platform = Platform::new(
        config["os"].as_str().unwrap(),
        config["architecture"].as_str().unwrap(),
        None,
    );
    let t = detect_target(streams, &platform, &env, &TargetOverrides::default()).unwrap();

    assert_eq!(t.python_version, MajorMinor::new(3, 11));
    assert_eq!(t.python_full_version.as_deref(), Some("3.11.2"));
    assert_eq!(t.interpreter, "/usr/bin/python3.11");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.11/dist-packages");
    assert_eq!(t.scheme.platlib, "/usr/local/lib/python3.11/dist-packages");
    assert_eq!(t.scheme.scripts, "/usr/local/bin");
    assert_eq!(t.scheme.data, "/usr/local");
    assert_eq!(t.libc, Libc::glibc(2, 36));
    assert_eq!(t.arch, "x86_64");
    let pip = t
        .installed
        .iter()
        .find(|d| d.name == "pip")
        .unwrap_or_else(|| panic!("pip not listed: {:?}", t.installed));
    assert_eq!(pip.version, "24.0");
    assert_eq!(
        pip.dist_info_path,
        "/usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info"
    );
    assert!(pip.has_record);
    eprintln!("{}", serde_json::to_string_pretty(&t).unwrap());
}
