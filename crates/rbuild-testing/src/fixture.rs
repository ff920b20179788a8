//! The base-image fixture: `python:3.11-slim` rebuilt from Debian packages by
//! `tests/fixtures/base/build-base.sh`, cached on disk, pushed with skopeo.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::process::run;
use crate::registry::Registry;

/// The build script, at its place in the workspace.
pub const BUILD_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/base/build-base.sh"
);

/// A platform of the fixture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// `linux/amd64`.
    Amd64,
    /// `linux/arm64/v8` (only with `RBUILD_TEST_ARM64=1`).
    Arm64,
}

impl Platform {
    /// `linux/amd64` or `linux/arm64/v8`, as `--platform` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Amd64 => "linux/amd64",
            Platform::Arm64 => "linux/arm64/v8",
        }
    }

    /// The tag of this platform's image in the fixture's OCI layout.
    fn tag(self) -> &'static str {
        match self {
            Platform::Amd64 => "amd64",
            Platform::Arm64 => "arm64",
        }
    }
}

/// The base fixture: an OCI image layout holding Debian bookworm + python3 3.11 +
/// ca-certificates (layer 1) and pip 24.0 in `/usr/local/lib/python3.11/dist-packages` with
/// `/usr/local/bin/pip` (layer 2); config `linux/amd64`, `Env` PATH and `LANG=C.UTF-8`,
/// `Cmd ["python3"]`, and the Docker-only field `Healthcheck: {"Test": ["NONE"]}`.
///
/// With `RBUILD_TEST_ARM64=1` it also has a `linux/arm64/v8` image (built under qemu) and the
/// top-level tag is an OCI index over both platforms.
///
/// The first [`BaseFixture::ensure`] on a machine builds it (about 45 s, needs root and network);
/// later calls, in any process, reuse the cached layout (a few milliseconds).
#[derive(Debug, Clone)]
pub struct BaseFixture {
    layout: PathBuf,
    arm64: bool,
}

/// The tag of the top-level image (or index) inside the layout.
pub const FIXTURE_TAG: &str = "3.11-slim";

impl BaseFixture {
    /// Builds the fixture unless it is cached, verifies it, and returns it. Runs the script at most
    /// once per process; concurrent processes are serialized by the script's `flock`.
    pub fn ensure() -> Result<BaseFixture> {
        static FIXTURE: OnceLock<Result<BaseFixture, String>> = OnceLock::new();
        FIXTURE
            .get_or_init(|| build().map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Fixture)
    }

    /// The OCI image layout directory (with `index.json`, `oci-layout`, `blobs/sha256/`).
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }

    /// Whether the fixture has the arm64 image and the index (`RBUILD_TEST_ARM64=1`).
    pub fn has_arm64(&self) -> bool {
        self.arm64
    }

    /// The platforms it has.
    pub fn platforms(&self) -> Vec<Platform> {
        if self.arm64 {
            vec![Platform::Amd64, Platform::Arm64]
        } else {
            vec![Platform::Amd64]
        }
    }

    /// The skopeo/containers-image reference of the top-level image or index: `oci:DIR:3.11-slim`.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{FIXTURE_TAG}", self.layout.display())
    }

    /// The skopeo reference of one platform's image: `oci:DIR:amd64`.
    pub fn platform_oci_ref(&self, platform: Platform) -> Option<String> {
        self.platforms()
            .contains(&platform)
            .then(|| format!("oci:{}:{}", self.layout.display(), platform.tag()))
    }

    /// The descriptor (`mediaType`, `digest`, `size`) that the layout's `index.json` has for the
    /// top-level tag.
    pub fn descriptor(&self) -> Result<serde_json::Value> {
        descriptor(&self.layout, FIXTURE_TAG)
    }

    /// The descriptor of one platform's manifest.
    pub fn platform_descriptor(&self, platform: Platform) -> Result<serde_json::Value> {
        descriptor(&self.layout, platform.tag())
    }

    /// The bytes of a blob of the layout (`sha256:...`); meant for manifests and configs.
    pub fn blob(&self, digest: &str) -> Result<Vec<u8>> {
        let path = blob_path(&self.layout, digest)?;
        std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    }

    /// Pushes the top-level image (the index over both platforms with `RBUILD_TEST_ARM64=1`) to
    /// `registry` as `repo_tag` (`library/python:3.11-slim`) with
    /// `skopeo copy [--all] --preserve-digests`, so the registry holds exactly the layout's bytes.
    pub fn push_to(&self, registry: &Registry, repo_tag: &str) -> Result<()> {
        skopeo_push(&self.oci_ref(), registry, repo_tag, self.arm64)
    }

    /// Pushes an OCI index over `linux/amd64` and `linux/arm64/v8` to `registry` as `repo_tag` and
    /// returns the index digest.
    ///
    /// With `RBUILD_TEST_ARM64=1` this is the real two-platform fixture ([`BaseFixture::push_to`]).
    /// Without it, the index is assembled here in seconds: its arm64 entry is the amd64 image
    /// relabeled (a config saying `arm64`/`v8`, the same layers), which is enough to test copying
    /// and selecting platforms but does not run on arm64.
    pub fn push_index_to(&self, registry: &Registry, repo_tag: &str) -> Result<String> {
        if self.arm64 {
            self.push_to(registry, repo_tag)?;
            return Ok(self.descriptor()?["digest"]
                .as_str()
                .unwrap_or_default()
                .to_string());
        }
        let (tmp, reference) = synthetic_index_layout(self)?;
        skopeo_push(&reference, registry, repo_tag, true)?;
        let index = read_json(&tmp.path().join("index.json"))?;
        Ok(index["manifests"][0]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Pushes one platform's image alone (a plain manifest, no index).
    pub fn push_platform_to(
        &self,
        registry: &Registry,
        repo_tag: &str,
        platform: Platform,
    ) -> Result<()> {
        let src = self.platform_oci_ref(platform).ok_or_else(|| {
            Error::Fixture(format!(
                "the fixture has no {} image; set RBUILD_TEST_ARM64=1 to build it",
                platform.as_str()
            ))
        })?;
        skopeo_push(&src, registry, repo_tag, false)
    }
}

/// The arm64 entry of [`BaseFixture::push_index_to`]'s synthetic index: the amd64 image relabeled.
fn synthetic_index_layout(fixture: &BaseFixture) -> Result<(tempfile::TempDir, String)> {
    let tmp = tempfile::Builder::new()
        .prefix("rbuild-fixture-index-")
        .tempdir()
        .map_err(|e| Error::io("creating a temporary OCI layout", e))?;
    let blobs = tmp.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .map_err(|e| Error::io(format!("creating {}", blobs.display()), e))?;
    let src_blobs = fixture.layout.join("blobs/sha256");
    let entries = std::fs::read_dir(&src_blobs)
        .map_err(|e| Error::io(format!("listing {}", src_blobs.display()), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", src_blobs.display()), e))?;
        let to = blobs.join(entry.file_name());
        if std::fs::hard_link(entry.path(), &to).is_err() {
            std::fs::copy(entry.path(), &to)
                .map_err(|e| Error::io(format!("copying {}", entry.path().display()), e))?;
        }
    }
    let write_blob = |bytes: &[u8]| -> Result<(String, usize)> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let path = blob_path(tmp.path(), &digest)?;
        std::fs::write(&path, bytes)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok((digest, bytes.len()))
    };
    let amd64 = fixture.platform_descriptor(Platform::Amd64)?;
    let amd64_digest = amd64["digest"].as_str().unwrap_or_default();
    let mut manifest: serde_json::Value = serde_json::from_slice(&fixture.blob(amd64_digest)?)
        .map_err(|e| Error::Fixture(format!("manifest {amd64_digest}: {e}")))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut config: serde_json::Value = serde_json::from_slice(&fixture.blob(&config_digest)?)
        .map_err(|e| Error::Fixture(format!("config {config_digest}: {e}")))?;
    config["architecture"] = "arm64".into();
    config["variant"] = "v8".into();
    let (cd, cs) = write_blob(&serde_json::to_vec(&config).expect("JSON"))?;
    manifest["config"]["digest"] = cd.into();
    manifest["config"]["size"] = cs.into();
    let (md, ms) = write_blob(&serde_json::to_vec(&manifest).expect("JSON"))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64_digest,
             "size": amd64["size"], "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
             "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    });
    let (id, is) = write_blob(&serde_json::to_vec(&index).expect("JSON"))?;
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": id,
                       "size": is, "annotations": {"org.opencontainers.image.ref.name": "index"}}],
    });
    for (name, value) in [
        ("index.json", top),
        (
            "oci-layout",
            serde_json::json!({"imageLayoutVersion": "1.0.0"}),
        ),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, serde_json::to_vec(&value).expect("JSON"))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    let reference = format!("oci:{}:index", tmp.path().display());
    Ok((tmp, reference))
}

/// `skopeo copy [--all] --preserve-digests SRC docker://REGISTRY/REPO_TAG`: the registry holds
/// exactly the layout's bytes.
pub(crate) fn skopeo_push(src: &str, registry: &Registry, repo_tag: &str, all: bool) -> Result<()> {
    let dest = format!("docker://{}/{repo_tag}", registry.host());
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--quiet", "--preserve-digests"]);
    if all {
        cmd.arg("--all");
    }
    cmd.args(registry.skopeo_flags("dest"));
    cmd.args([src, dest.as_str()]);
    let shown = format!(
        "skopeo copy --preserve-digests{} {src} {dest}",
        if all { " --all" } else { "" }
    );
    run(cmd, "skopeo", &shown).map(|_| ())
}

fn build() -> Result<BaseFixture> {
    let script = Path::new(BUILD_SCRIPT);
    let mut cmd = Command::new("bash");
    cmd.arg(script);
    let out = run(cmd, "bash", &format!("bash {}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let layout = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("FIXTURE_DIR="))
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Fixture(format!(
                "{} printed no FIXTURE_DIR= line; its stdout was:\n{stdout}",
                script.display()
            ))
        })?;
    let arm64 = std::env::var("RBUILD_TEST_ARM64").is_ok_and(|v| v == "1");
    verify_layout(&layout, arm64)?;
    Ok(BaseFixture { layout, arm64 })
}

fn blob_path(layout: &Path, digest: &str) -> Result<PathBuf> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
        .ok_or_else(|| Error::Fixture(format!("not a sha256 digest: {digest:?}")))?;
    Ok(layout.join("blobs/sha256").join(hex))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::Fixture(format!("{} is not JSON: {e}", path.display())))
}

fn descriptor(layout: &Path, tag: &str) -> Result<serde_json::Value> {
    let index = read_json(&layout.join("index.json"))?;
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
        .ok_or_else(|| {
            Error::Fixture(format!(
                "{}/index.json has no tag {tag:?}",
                layout.display()
            ))
        })
}

/// Checks one blob: present, of the right size, with the right sha256 (streamed).
fn verify_blob(layout: &Path, desc: &serde_json::Value) -> Result<PathBuf> {
    let digest = desc["digest"].as_str().unwrap_or_default();
    let path = blob_path(layout, digest)?;
    let mut file = std::fs::File::open(&path)
        .map_err(|e| Error::io(format!("opening blob {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != digest || Some(size) != desc["size"].as_u64() {
        return Err(Error::Fixture(format!(
            "blob {} has digest {actual} and size {size}, but its descriptor says {digest} and {}; \
             delete the fixture cache directory and rebuild",
            path.display(),
            desc["size"]
        )));
    }
    Ok(path)
}

/// Verifies every blob reachable from the top-level tag (index, manifests, configs, layers).
fn verify_layout(layout: &Path, arm64: bool) -> Result<()> {
    let top = descriptor(layout, FIXTURE_TAG)?;
    let mut manifests = Vec::new();
    let top_path = verify_blob(layout, &top)?;
    let top_json = read_json(&top_path)?;
    if top_json["manifests"].is_array() {
        for d in top_json["manifests"].as_array().into_iter().flatten() {
            manifests.push(d.clone());
        }
    } else {
        manifests.push(top);
    }
    let expected = if arm64 { 2 } else { 1 };
    if manifests.len() != expected {
        return Err(Error::Fixture(format!(
            "{} has {} platform manifest(s) under {FIXTURE_TAG:?}, expected {expected}",
            layout.display(),
            manifests.len()
        )));
    }
    for m in manifests {
        let path = verify_blob(layout, &m)?;
        let manifest = read_json(&path)?;
        verify_blob(layout, &manifest["config"])?;
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            verify_blob(layout, layer)?;
        }
    }
    Ok(())
}

/// The repository the end-to-end tests push the base fixture to (`library/python:3.11-slim`).
pub const SLIM_BASE_REPO: &str = "library/python:3.11-slim";

impl Registry {
    /// A plain registry holding the base fixture as [`SLIM_BASE_REPO`] (what most end-to-end
    /// tests start from).
    pub fn plain_with_slim_base() -> Result<Registry> {
        let registry = Registry::plain()?;
        BaseFixture::ensure()?.push_to(&registry, SLIM_BASE_REPO)?;
        Ok(registry)
    }
}
