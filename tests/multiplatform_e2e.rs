//! End to end: multi-platform builds (`--platform linux/amd64,linux/arm64`) on the REAL two-platform
//! base fixture (Debian bookworm for amd64 and for arm64, the arm64 one built with mmdebstrap under
//! qemu-user), checked with independent tools: skopeo for the index, the registry's access log for
//! uploads, curl + GNU tar + the ELF header for the wheels' machine code, runc + qemu-user (binfmt)
//! for running the arm64 image.
//!
//! The fixture is built by `tests/fixtures/base/build-base.sh` with `RBUILD_TEST_ARM64=1` (cached;
//! the first build takes several minutes under qemu, `.ci/run` builds it before the tests). It needs
//! `qemu-user-static binfmt-support arch-test` and binfmt_misc; running the arm64 image also needs
//! the `qemu-aarch64` binfmt entry to have the F (fix-binary) flag, so the interpreter works inside
//! the container's root.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root, sh};
use rbuild_testing::Registry;
use serde_json::Value;

const BASE_REPO: &str = "library/python:3.11-slim";
/// ELF `e_machine` values.
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;

/// The two-platform fixture layout (`oci:DIR:3.11-slim` is an index over amd64 and arm64/v8).
///
/// The script is run with `RBUILD_TEST_ARM64=1` in ITS environment (not this process's), once per
/// process; it returns at once when the fixture is cached.
fn two_platform_layout() -> &'static Path {
    static LAYOUT: OnceLock<PathBuf> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let script = repo_root().join("tests/fixtures/base/build-base.sh");
        let t = Instant::now();
        let out = Command::new("bash")
            .arg(&script)
            .env("RBUILD_TEST_ARM64", "1")
            .output()
            .expect("run build-base.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "RBUILD_TEST_ARM64=1 {} failed (it needs root, qemu-user-static binfmt-support arch-test, \
             and network access to the Debian mirror):\n{}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dir = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("FIXTURE_DIR="))
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("no FIXTURE_DIR= line in:\n{stdout}"));
        eprintln!("two-platform fixture {} ready in {:.1} s", dir.display(), t.elapsed().as_secs_f64());
        dir
    })
}

struct Env {
    registry: Registry,
    cache: tempfile::TempDir,
}

impl Env {
    /// A fresh registry holding the two-platform base as `library/python:3.11-slim` (an index).
    fn new() -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let layout = two_platform_layout();
        let registry = Registry::plain().expect("start the registry");
        let mut args: Vec<String> = vec![
            "copy".into(),
            "--quiet".into(),
            "--all".into(),
            "--preserve-digests".into(),
        ];
        args.extend(registry.skopeo_flags("dest"));
        args.push(format!("oci:{}:3.11-slim", layout.display()));
        args.push(format!("docker://{}/{BASE_REPO}", registry.host()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sh("skopeo", &args);
        Env {
            registry,
            cache: tempfile::tempdir().unwrap(),
        }
    }
    fn base(&self) -> String {
        format!("{}/{BASE_REPO}", self.registry.host())
    }
    fn to(&self, repo_tag: &str) -> String {
        format!("{}/{repo_tag}", self.registry.host())
    }
    fn rbuild(&self, dir: &Path, args: &[&str]) -> rbuild_e2e::Run {
        let base = self.base();
        let mut all = args.to_vec();
        all.extend_from_slice(&["--base", base.as_str()]);
        rbuild(dir, self.cache.path(), &[], &all)
    }
    /// `skopeo inspect --raw` of a reference in the registry (the manifest or index as stored).
    fn raw(&self, reference: &str) -> Value {
        let out = sh(
            "skopeo",
            &[
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ],
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
    /// Whether the registry resolves the reference at all.
    fn exists(&self, reference: &str) -> bool {
        Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .unwrap()
            .status
            .success()
    }
    /// Downloads a blob of `repo` from the registry with curl and unpacks it (a gzip layer) with GNU
    /// tar into a new directory.
    fn unpack_layer(&self, repo: &str, digest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let blob = dir.path().join("layer.tar.gz");
        sh(
            "curl",
            &[
                "-sSf",
                "-o",
                &blob.display().to_string(),
                &format!("http://{}/v2/{repo}/blobs/{digest}", self.registry.host()),
            ],
        );
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        sh(
            "tar",
            &[
                "-xzf",
                &blob.display().to_string(),
                "-C",
                &root.display().to_string(),
            ],
        );
        dir
    }
}

fn example(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy_tree(&repo_root().join("examples").join(name), &dir);
    (tmp, dir)
}

/// A project whose lock pins psutil 5.9.5: PyPI has manylinux wheels for x86_64 and i686 (and a
/// macOS arm64 one) but none for Linux aarch64. Pinned by the x86_64 wheel's sha256 only, so no
/// sdist may be built instead (with the sdist's hash, the arm64 build would try it and need a C
/// compiler: `tests/sdist_e2e.rs` covers that).
fn psutil_project() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("psutil-app");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("requirements.txt"),
        "psutil==5.9.5 \\\n    \
         --hash=sha256:89518112647f1276b03ca97b65cc7f64ca587b1eb0278383017c2a0dcc26cbe4\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.py"),
        "import psutil\nprint(psutil.cpu_count())\n",
    )
    .unwrap();
    (tmp, dir)
}

/// `e_machine` of an ELF file (little-endian ELF only), `None` if it is not one.
fn elf_machine(path: &Path) -> Option<u16> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    (head[..4] == *b"\x7fELF" && head[5] == 1).then(|| u16::from_le_bytes([head[18], head[19]]))
}

/// Every `*.so` under `dir`.
fn shared_objects(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.file_name().to_string_lossy().ends_with(".so") {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn layer_of<'a>(platform: &'a Value, kind: &str) -> &'a Value {
    platform["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} layer in {platform}"))
}

fn arch_of(platform: &Value) -> &str {
    platform["platform"]
        .as_str()
        .unwrap()
        .split('/')
        .nth(1)
        .unwrap()
}

/// The `digest=` of every blob upload PUT and the `mount=` of every successful mount to `repo`.
fn uploads_and_mounts(
    log: &[rbuild_testing::AccessLogEntry],
    repo: &str,
) -> (Vec<String>, Vec<String>) {
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    let param = |uri: &str, key: &str| -> Option<String> {
        let query = uri.split_once('?')?.1;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix(key))
            .map(|v| v.replace("%3A", ":").replace("%3a", ":"))
    };
    let mut uploads = Vec::new();
    let mut mounts = Vec::new();
    for e in log.iter().filter(|e| e.uri.starts_with(&prefix)) {
        match e.method.as_str() {
            "PUT" => uploads.extend(param(&e.uri, "digest=")),
            "POST" if e.status == 201 => mounts.extend(param(&e.uri, "mount=")),
            _ => {}
        }
    }
    (uploads, mounts)
}

#[test]
fn fastapi_builds_one_index_with_native_wheels_per_platform_and_one_shared_app_layer() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let to = env.to("demo/fastapi:multi");
    let before = env.registry.access_log().len();
    let doc = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--to",
                &to,
                // The blob count below is of the images' own blobs (attachments:
                // tests/supply_chain_e2e.rs).
                "--sbom",
                "none",
                "--no-provenance",
            ],
        )
        .ok()
        .json();

    // One index with two platform manifests, as skopeo reads it from the registry.
    let index = env.raw(&to);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    assert_eq!(
        doc["digest"].as_str().unwrap(),
        format!(
            "sha256:{}",
            sha256_hex(
                &sh(
                    "skopeo",
                    &[
                        "inspect",
                        "--raw",
                        "--tls-verify=false",
                        &format!("docker://{to}")
                    ]
                )
                .stdout
            )
        )
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{index}");
    let arches: Vec<(&str, Option<&str>)> = entries
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap(),
                m["platform"]["variant"].as_str(),
            )
        })
        .collect();
    assert_eq!(arches, [("amd64", None), ("arm64", Some("v8"))]);
    let platforms = doc["platforms"].as_array().unwrap();
    assert_eq!(
        platforms
            .iter()
            .map(|p| p["platform"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["linux/amd64", "linux/arm64/v8"]
    );
    for (entry, p) in entries.iter().zip(platforms) {
        assert_eq!(
            entry["digest"], p["digest"],
            "the index points at the manifests rbuild reported"
        );
    }

    // The app layer is built once: the same digest in both manifests (as stored in the registry).
    let manifests: Vec<Value> = entries
        .iter()
        .map(|e| {
            env.raw(&format!(
                "{}@{}",
                env.to("demo/fastapi"),
                e["digest"].as_str().unwrap()
            ))
        })
        .collect();
    let app: Vec<&Value> = manifests
        .iter()
        .map(|m| &m["layers"].as_array().unwrap().last().unwrap()["digest"])
        .collect();
    assert_eq!(app[0], app[1], "one app layer for both platforms");
    assert_eq!(*app[0], layer_of(&platforms[0], "app")["digest"]);
    let deps: Vec<&str> = platforms
        .iter()
        .map(|p| layer_of(p, "deps")["digest"].as_str().unwrap())
        .collect();
    assert_ne!(
        deps[0], deps[1],
        "each platform has its own dependency layer"
    );
    assert_ne!(
        manifests[0]["layers"][0]["digest"], manifests[1]["layers"][0]["digest"],
        "each platform has its own base"
    );

    // The wheels' machine code is the platform's: every .so in the dependency layer, as served by
    // the registry, is an x86-64 ELF on amd64 and an AArch64 ELF on arm64.
    for p in platforms {
        let want = match arch_of(p) {
            "amd64" => EM_X86_64,
            "arm64" => EM_AARCH64,
            other => panic!("unexpected architecture {other}"),
        };
        let layer = env.unpack_layer(
            "demo/fastapi",
            layer_of(p, "deps")["digest"].as_str().unwrap(),
        );
        let sos = shared_objects(&layer.path().join("root"));
        assert!(
            sos.iter()
                .any(|s| s.to_string_lossy().contains("pydantic_core")),
            "pydantic-core's extension is in the {} layer: {sos:?}",
            p["platform"]
        );
        for so in &sos {
            assert_eq!(
                elf_machine(so),
                Some(want),
                "{} in the {} image",
                so.display(),
                p["platform"]
            );
        }
    }

    // Every blob went to the registry once: shared blobs (the app layer, the user layer, the base
    // layer both bases have) are neither uploaded twice nor uploaded and mounted.
    let log = env.registry.access_log();
    let (uploads, mounts) = uploads_and_mounts(&log[before..], "demo/fastapi");
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for d in uploads.iter().chain(&mounts) {
        *count.entry(d.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "blobs sent more than once: {twice:?}\nuploads {uploads:?}\nmounts {mounts:?}"
    );
    assert_eq!(
        uploads
            .iter()
            .filter(|d| d.as_str() == app[0].as_str().unwrap())
            .count(),
        1,
        "the app layer is uploaded once"
    );
    let mut needed: Vec<String> = manifests
        .iter()
        .flat_map(|m| {
            m["layers"]
                .as_array()
                .unwrap()
                .iter()
                .chain([&m["config"]])
                .map(|d| d["digest"].as_str().unwrap().to_string())
        })
        .collect();
    needed.sort();
    needed.dedup();
    let mut sent: Vec<String> = count.keys().map(|d| d.to_string()).collect();
    sent.sort();
    assert_eq!(sent, needed, "every blob of both images sent exactly once");
    assert_eq!(
        doc["blobs"]["uploaded"].as_u64().unwrap() as usize,
        uploads.len()
    );

    // Warm: the same inputs give the same index; both dependency layers come from the store.
    let again = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--no-push",
                "--platform",
                "linux/amd64,linux/arm64",
            ],
        )
        .ok()
        .json();
    assert_eq!(again["digest"], doc["digest"]);
    for p in again["platforms"].as_array().unwrap() {
        assert_eq!(
            layer_of(p, "deps")["status"],
            "cached-local",
            "{}",
            p["platform"]
        );
    }
}

/// sha256 of bytes, hex (through the `sha256sum` tool, independent of rbuild).
fn sha256_hex(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_arm64_image_runs_under_qemu_user_and_answers_health() {
    // runc starts the image's interpreter inside the container's root, where no qemu binary exists:
    // that works only when the kernel opened the emulator at registration (binfmt flag F).
    let entry = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_else(|e| {
        panic!("binfmt_misc has no qemu-aarch64 entry ({e}); install qemu-user-static binfmt-support and run `update-binfmts --enable qemu-aarch64`")
    });
    assert!(
        entry.lines().any(|l| l == "enabled"),
        "qemu-aarch64 binfmt entry is disabled:\n{entry}"
    );
    let flags = entry
        .lines()
        .find_map(|l| l.strip_prefix("flags: "))
        .unwrap_or("");
    assert!(
        flags.contains('F'),
        "the qemu-aarch64 binfmt entry lacks the F (fix-binary) flag, so it cannot run inside a container:\n{entry}"
    );

    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let port = free_port();
    let to = env.to("demo/fastapi:all");
    // `all`: every platform of the base index.
    let doc = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--platform",
                "all",
                "--to",
                &to,
                "--env",
                &format!("PORT={port}"),
            ],
        )
        .ok()
        .json();
    assert_eq!(doc["platforms"].as_array().unwrap().len(), 2, "{doc}");

    let bundle_dir = tempfile::tempdir().unwrap();
    let layout = bundle_dir.path().join("oci");
    sh(
        "skopeo",
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            "--override-arch",
            "arm64",
            "--override-variant",
            "v8",
            &format!("docker://{to}"),
            &format!("oci:{}:img", layout.display()),
        ],
    );
    sh(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:img", layout.display()),
            &bundle_dir.path().join("bundle").display().to_string(),
        ],
    );
    let bundle = Bundle { dir: bundle_dir };
    assert_eq!(
        elf_machine(&bundle.rootfs().join("usr/bin/python3.11")),
        Some(EM_AARCH64),
        "the pulled image is the arm64 one"
    );
    let container = bundle.start();
    let (status, body) = container.get(port, "/health", Duration::from_secs(120));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"status\":\"ok\"") || body.contains("\"status\": \"ok\""),
        "{body}"
    );
    drop(container);
    // The kernel reports an arm64 machine inside (qemu-user), as an arm64 host would.
    assert_eq!(bundle.exec(&["/usr/bin/uname", "-m"]).trim(), "aarch64");
}

#[test]
fn a_package_without_an_aarch64_wheel_fails_the_build_and_pushes_nothing_unless_skipped() {
    let env = Env::new();
    let (_t, dir) = psutil_project();
    let to = env.to("demo/psutil:v1");
    let before = env.registry.access_log().len();
    let r = env.rbuild(
        &dir,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--to",
            &to,
            "--entrypoint",
            r#"["python3","main.py"]"#,
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let error: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(error.len(), 1, "{}", r.stderr);
    for needle in [
        "psutil 5.9.5",
        "linux/arm64",
        "aarch64",
        "manylinux/x86_64",
        "--skip-unsupported-platforms",
    ] {
        assert!(
            error[0].contains(needle),
            "the error names {needle:?}: {}",
            error[0]
        );
    }
    assert!(!env.exists(&to), "no tag was pushed");
    let sent: Vec<_> = env.registry.access_log()[before..]
        .iter()
        .filter(|e| e.uri.starts_with("/v2/demo/") && e.method != "GET" && e.method != "HEAD")
        .cloned()
        .collect();
    assert!(
        sent.is_empty(),
        "nothing at all was sent to the repository: {sent:?}"
    );

    // Skipped: an index with the amd64 image only, and the output says which platform and why.
    let doc = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--to",
                &to,
                "--entrypoint",
                r#"["python3","main.py"]"#,
                "--skip-unsupported-platforms",
                // One dependency layer: the check below reads psutil's extension from it.
                "--deps-layers",
                "1",
            ],
        )
        .ok()
        .json();
    let skipped = doc["skipped_platforms"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{doc}");
    assert_eq!(skipped[0]["platform"], "linux/arm64");
    assert!(
        skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no wheel of psutil 5.9.5"),
        "{}",
        skipped[0]
    );
    let index = env.raw(&to);
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    assert_eq!(entries[0]["platform"]["architecture"], "amd64");
    assert_eq!(entries[0]["digest"], doc["platforms"][0]["digest"]);
    // The amd64 image has psutil's x86-64 extension.
    let layer = env.unpack_layer(
        "demo/psutil",
        layer_of(&doc["platforms"][0], "deps")["digest"]
            .as_str()
            .unwrap(),
    );
    let sos = shared_objects(&layer.path().join("root"));
    assert!(
        !sos.is_empty() && sos.iter().all(|s| elf_machine(s) == Some(EM_X86_64)),
        "{sos:?}"
    );

    // The human output says it too.
    let human = env
        .rbuild(
            &dir,
            &[
                "build",
                "--no-push",
                "--platform",
                "linux/amd64,linux/arm64",
                "--entrypoint",
                r#"["python3","main.py"]"#,
                "--skip-unsupported-platforms",
                // One dependency layer: the check below reads psutil's extension from it.
                "--deps-layers",
                "1",
            ],
        )
        .ok();
    assert!(
        human.stderr.lines().any(|l| l.contains("linux/arm64")
            && l.contains("skipped")
            && l.contains("no usable wheel")),
        "{}",
        human.stderr
    );
    assert!(human.stderr.contains("psutil 5.9.5"), "{}", human.stderr);
}

#[test]
fn local_sinks_oci_layout_holds_the_index_and_docker_archive_takes_one_platform() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("image.tar");
    let sink = format!("docker-archive:{}:fastapi:v1", archive.display());
    let r = env.rbuild(
        &dir,
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--output",
            &sink,
        ],
    );
    assert_eq!(r.code, 2, "a usage error: {}", r.stderr);
    assert!(
        r.stderr.contains("docker-archive holds one platform") && r.stderr.contains("--platform"),
        "{}",
        r.stderr
    );
    assert!(!archive.exists());
    // Refused before anything was built or fetched: the store has no blob.
    let blobs = env.cache.path().join("blobs/sha256");
    let stored = std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(stored, 0, "nothing was fetched or built");
    assert!(!r.stderr.contains("] deps"), "{}", r.stderr);

    // One platform, chosen with --platform: an arm64 archive that skopeo reads.
    env.rbuild(
        &dir,
        &["build", "--platform", "linux/arm64", "--output", &sink],
    )
    .ok();
    let v: Value = serde_json::from_slice(
        &sh(
            "skopeo",
            &["inspect", &format!("docker-archive:{}", archive.display())],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(v["Architecture"], "arm64", "{v}");

    // An OCI layout holds the whole index: skopeo reads both platforms from it.
    let layout = out.path().join("layout");
    let doc = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--output",
                &format!("oci:{}:v1", layout.display()),
            ],
        )
        .ok()
        .json();
    let raw_bytes = sh(
        "skopeo",
        &["inspect", "--raw", &format!("oci:{}:v1", layout.display())],
    )
    .stdout;
    assert_eq!(
        doc["digest"].as_str().unwrap(),
        format!("sha256:{}", sha256_hex(&raw_bytes)),
        "the layout's tag is the index rbuild reported"
    );
    let raw: Value = serde_json::from_slice(&raw_bytes).unwrap();
    assert_eq!(
        raw["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{raw}"
    );
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    for (arch, variant) in [("amd64", ""), ("arm64", "v8")] {
        let mut args = vec!["inspect", "--override-arch", arch];
        if !variant.is_empty() {
            args.extend(["--override-variant", variant]);
        }
        let r = format!("oci:{}:v1", layout.display());
        args.push(&r);
        let v: Value = serde_json::from_slice(&sh("skopeo", &args).stdout).unwrap();
        assert_eq!(v["Architecture"], arch, "{v}");
    }
    assert_eq!(raw["manifests"][1]["digest"], doc["platforms"][1]["digest"]);
}

#[test]
fn plan_shows_each_platforms_wheels_side_by_side() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let r = env
        .rbuild(&dir, &["plan", "--platform", "linux/amd64,linux/arm64"])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    let header = lines
        .iter()
        .find(|l| l.starts_with("PACKAGE"))
        .unwrap_or_else(|| panic!("no table:\n{}", r.stdout));
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols,
        ["PACKAGE", "VERSION", "linux/amd64", "linux/arm64"],
        "{}",
        r.stdout
    );
    let row = |name: &str| -> Vec<&str> {
        lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", r.stdout))
            .split_whitespace()
            .collect()
    };
    let core = row("pydantic-core");
    assert_eq!(core.len(), 4, "{core:?}");
    assert!(
        core[2].starts_with("cp311-cp311-manylinux") && core[2].ends_with("_x86_64"),
        "{core:?}"
    );
    assert!(
        core[3].starts_with("cp311-cp311-manylinux") && core[3].ends_with("_aarch64"),
        "{core:?}"
    );
    assert_eq!(row("fastapi")[2..], ["py3-none-any", "py3-none-any"]);

    // JSON: one target per platform; the platform wheel differs, pure wheels are the same file.
    let doc = env
        .rbuild(
            &dir,
            &["plan", "--json", "--platform", "linux/amd64,linux/arm64"],
        )
        .ok()
        .json();
    let targets = doc["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    let files = |t: &Value| -> BTreeMap<String, String> {
        t["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["filename"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (amd, arm) = (files(&targets[0]), files(&targets[1]));
    assert!(amd["pydantic-core"].contains("x86_64") && arm["pydantic-core"].contains("aarch64"));
    assert_eq!(amd["fastapi"], arm["fastapi"]);
    // The table's summary agrees with the JSON.
    let same = amd.iter().filter(|(n, f)| arm.get(*n) == Some(f)).count();
    assert_eq!(amd.len(), arm.len());
    let summary = format!(
        "{same} of {} packages use the same wheel file on every platform",
        amd.len()
    );
    assert!(r.stdout.contains(&summary), "{summary:?} in\n{}", r.stdout);

    // A package without an aarch64 wheel: shown in its column, then the command fails.
    let (_t2, ps) = psutil_project();
    let r = env.rbuild(&ps, &["plan", "--platform", "linux/amd64,linux/arm64"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let row: Vec<&str> = r
        .stdout
        .lines()
        .find(|l| l.starts_with("psutil"))
        .unwrap_or_else(|| panic!("{}", r.stdout))
        .split_whitespace()
        .collect();
    assert_eq!(
        row[..3],
        ["psutil", "5.9.5", "cp36-abi3-manylinux_2_17_x86_64"],
        "{}",
        r.stdout
    );
    assert_eq!(row[3..].join(" "), "NO WHEEL FITS");
    assert!(
        r.stderr.contains(
            "error: a locked package has no usable wheel for linux/arm64: no wheel of psutil 5.9.5"
        ),
        "{}",
        r.stderr
    );
}

/// Every `.pyc` under `dir`, relative path → bytes, with the bytes of its source when the source is
/// in the same tree (`x/__pycache__/m.cpython-311.pyc` ← `x/m.py`).
fn pycs_with_sources(dir: &Path) -> BTreeMap<String, (Vec<u8>, Option<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && name.ends_with(".cpython-311.pyc") {
                let stem = name.trim_end_matches(".cpython-311.pyc");
                let source = d.parent().unwrap().join(format!("{stem}.py"));
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.insert(
                    rel,
                    (std::fs::read(e.path()).unwrap(), std::fs::read(source).ok()),
                );
            }
        }
    }
    out
}

#[test]
fn both_platforms_carry_identical_bytecode_for_identical_sources() {
    let env = Env::new();
    let (_t, dir) = example("fastapi-app");
    let to = env.to("demo/bytecode:multi");
    let doc = env
        .rbuild(
            &dir,
            &[
                "build",
                "--json",
                "--platform",
                "linux/amd64,linux/arm64",
                "--to",
                &to,
                // One dependency layer per platform: every .pyc of each is compared below.
                "--deps-layers",
                "1",
            ],
        )
        .ok()
        .json();
    let platforms = doc["platforms"].as_array().unwrap();
    let trees: BTreeMap<&str, tempfile::TempDir> = platforms
        .iter()
        .map(|p| {
            let digest = layer_of(p, "deps")["digest"].as_str().unwrap();
            (arch_of(p), env.unpack_layer("demo/bytecode", digest))
        })
        .collect();
    let amd = pycs_with_sources(&trees["amd64"].path().join("root"));
    let arm = pycs_with_sources(&trees["arm64"].path().join("root"));
    let mut same_source = 0;
    for (path, (pyc, source)) in &amd {
        let Some((arm_pyc, arm_source)) = arm.get(path) else {
            continue;
        };
        if source.is_some() && source == arm_source {
            same_source += 1;
            assert_eq!(
                pyc, arm_pyc,
                "{path}: the same source compiled to other bytes"
            );
        }
    }
    assert!(
        same_source > 100,
        "only {same_source} .pyc with the same source on both platforms ({} amd64, {} arm64)",
        amd.len(),
        arm.len()
    );
}

#[test]
fn a_base_without_an_image_for_this_machine_cannot_compile_bytecode_and_says_how_to_build() {
    let env = Env::new();
    // Only the arm64 image of the fixture, under its own tag: nothing this machine can run.
    let layout = two_platform_layout();
    let arm_only = format!("{}/library/python-arm:3.11", env.registry.host());
    let mut args: Vec<String> = vec![
        "copy".into(),
        "--quiet".into(),
        "--override-arch".into(),
        "arm64".into(),
    ];
    args.extend(env.registry.skopeo_flags("dest"));
    args.push(format!("oci:{}:3.11-slim", layout.display()));
    args.push(format!("docker://{arm_only}"));
    sh(
        "skopeo",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let (_t, dir) = example("fastapi-app");
    let out_dir = tempfile::tempdir().unwrap();
    let out = format!("oci:{}:t", out_dir.path().join("layout").display());
    let run = |extra: &[&str]| {
        let mut a = vec![
            "build",
            "--base",
            arm_only.as_str(),
            "--platform",
            "linux/arm64",
            "--output",
            out.as_str(),
        ];
        a.extend_from_slice(extra);
        rbuild(&dir, env.cache.path(), &[], &a)
    };
    let failed = run(&[]);
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    let errors: Vec<&str> = failed
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", failed.stderr);
    assert!(
        errors[0].contains("--no-compile-bytecode") && errors[0].contains("python-arm"),
        "{}",
        failed.stderr
    );
    assert!(
        !out_dir.path().join("layout/index.json").exists(),
        "nothing written"
    );
    let built = run(&["--no-compile-bytecode"]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(out_dir.path().join("layout/index.json").exists());
}
