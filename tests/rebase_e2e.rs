//! `rbuild rebase` end to end (issue 20, item 5): the FastAPI example built on the base fixture
//! (A) and rebased onto A' (tests/fixtures/rebase/build-updated.sh: same Python, newer and other
//! Debian packages) keeps its dependency, user and app layers byte for byte, records the new base
//! (annotations, labels, history, `dev.rbuild.target`), gets an SBOM listing A''s OS packages and a
//! provenance naming A', and runs with runc and answers HTTP. Rebasing onto a base with another
//! Python X.Y (the trixie kind: 3.13), onto a musl base (a synthetic minimal rootfs with a musl
//! loader and apk record) or onto a base with an older glibc than a wheel needs (A with its dpkg
//! record of libc6 set to 2.12) is refused, naming the reason, and pushes nothing.
//!
//! Registry documents are read with curl (the referrers tag schema), not with rbuild.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbuild_e2e::{Bundle, copy_tree, free_port, rbuild, repo_root, sh};
use rbuild_testing::{BaseFixture, Kind, KindFixture, Registry, UpdatedBaseFixture};
use serde_json::Value;

const BASE_REPO: &str = "library/python:3.11-slim";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

struct Env {
    registry: Registry,
    tmp: tempfile::TempDir,
    port: u16,
    /// `host/demo/app:v1`, the FastAPI example built on A.
    app: String,
}

impl Env {
    /// A registry with A, and the FastAPI example built on it (SBOM and provenance attached).
    fn new() -> Env {
        rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
        let registry = Registry::plain().expect("start the registry");
        BaseFixture::ensure()
            .expect("base fixture")
            .push_to(&registry, BASE_REPO)
            .expect("push A");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fastapi-app");
        copy_tree(&repo_root().join("examples/fastapi-app"), &dir);
        let port = free_port();
        let app = format!("{}/demo/app:v1", registry.host());
        let base = format!("{}/{BASE_REPO}", registry.host());
        let port_env = format!("PORT={port}");
        let env = Env {
            registry,
            tmp,
            port,
            app,
        };
        env.rbuild(
            &dir,
            &[
                "build", "--base", &base, "--to", &env.app, "--env", &port_env,
            ],
        )
        .ok();
        env
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn rbuild(&self, dir: &Path, args: &[&str]) -> rbuild_e2e::Run {
        rbuild(dir, &self.cache(), &[], args)
    }

    fn rebase(&self, base: &str, to: &str) -> rbuild_e2e::Run {
        self.rbuild(
            self.tmp.path(),
            &["--json", "rebase", &self.app, "--base", base, "--to", to],
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.registry.url())
    }

    fn get(&self, path: &str, accept: &str) -> Vec<u8> {
        sh(
            "curl",
            &["-fsS", "-H", &format!("Accept: {accept}"), &self.url(path)],
        )
        .stdout
    }

    fn json(&self, path: &str, accept: &str) -> Value {
        serde_json::from_slice(&self.get(path, accept)).unwrap()
    }

    /// The manifest and config of `repo:tag` (a single-platform image).
    fn image(&self, repo: &str, tag: &str) -> (String, Value, Value) {
        let bytes = self.get(&format!("{repo}/manifests/{tag}"), OCI_MANIFEST);
        let digest = format!("sha256:{}", sha256_hex(&bytes));
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        let config = self.json(
            &format!("{repo}/blobs/{}", m["config"]["digest"].as_str().unwrap()),
            "*/*",
        );
        (digest, m, config)
    }

    /// The blob of the attachment of `digest` in `repo` with this artifact type.
    fn attachment(&self, repo: &str, digest: &str, artifact_type: &str) -> Vec<u8> {
        let tag = digest.replace("sha256:", "sha256-");
        let index = self.json(&format!("{repo}/manifests/{tag}"), OCI_INDEX);
        let d = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["artifactType"] == artifact_type)
            .unwrap_or_else(|| panic!("no {artifact_type} referrer of {digest}: {index:#}"));
        let m = self.json(
            &format!("{repo}/manifests/{}", d["digest"].as_str().unwrap()),
            OCI_MANIFEST,
        );
        assert_eq!(m["subject"]["digest"], digest, "{m:#}");
        self.get(
            &format!(
                "{repo}/blobs/{}",
                m["layers"][0]["digest"].as_str().unwrap()
            ),
            "*/*",
        )
    }

    /// Whether `repo:tag` exists.
    fn exists(&self, repo: &str, tag: &str) -> bool {
        std::process::Command::new("curl")
            .args([
                "-fsS",
                "-o",
                "/dev/null",
                "-H",
                &format!("Accept: {OCI_MANIFEST}"),
                &self.url(&format!("{repo}/manifests/{tag}")),
            ])
            .status()
            .unwrap()
            .success()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn digests(m: &Value) -> Vec<String> {
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

fn label<'a>(config: &'a Value, key: &str) -> &'a str {
    config["config"]["Labels"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no label {key}"))
}

#[test]
fn fastapi_rebased_onto_newer_debian_packages_keeps_its_layers_and_serves() {
    let env = Env::new();
    let updated = UpdatedBaseFixture::ensure().expect("fixture A'");
    updated
        .push_to(&env.registry, "library/python:3.11-slim-updated")
        .expect("push A'");
    let new_base = format!("{}/library/python:3.11-slim-updated", env.registry.host());
    let (old_digest, old_m, old_c) = env.image("demo/app", "v1");
    let (a_digest, a_m, a_c) = env.image("library/python", "3.11-slim");
    let (u_digest, u_m, u_c) = env.image("library/python", "3.11-slim-updated");
    assert_ne!(a_digest, u_digest);

    let to = format!("{}/demo/app:v2", env.registry.host());
    let out = env.rebase(&new_base, &to).ok().json();
    let (new_digest, new_m, new_c) = env.image("demo/app", "v2");
    assert_eq!(out["digest"], new_digest, "{out:#}");
    assert_eq!(out["platforms"][0]["old_manifest"], old_digest);

    // The base layers are A''s, the rest (dependency, app layers) unchanged, in order.
    let (old_l, new_l, a_l, u_l) = (
        digests(&old_m),
        digests(&new_m),
        digests(&a_m),
        digests(&u_m),
    );
    assert_eq!(old_l[..a_l.len()], a_l[..], "built on A");
    assert_eq!(new_l[..u_l.len()], u_l[..], "rebased onto A'");
    let kept = &old_l[a_l.len()..];
    assert!(kept.len() >= 2, "deps and app layers: {kept:?}");
    assert_eq!(
        &new_l[u_l.len()..],
        kept,
        "deps and app layer digests unchanged"
    );
    let ids = |c: &Value| -> Vec<String> {
        c["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&new_c)[ids(&u_c).len()..],
        ids(&old_c)[ids(&a_c).len()..],
        "diff_ids of the kept layers"
    );
    assert_eq!(ids(&new_c)[..ids(&u_c).len()], ids(&u_c)[..]);

    // History: A''s, then the image's own entries.
    let hist = |c: &Value| c["history"].as_array().unwrap().clone();
    let (nh, oh, uh, ah) = (hist(&new_c), hist(&old_c), hist(&u_c), hist(&a_c));
    assert_eq!(nh[..uh.len()], uh[..]);
    assert_eq!(nh[uh.len()..], oh[ah.len()..]);

    // Base annotations and labels, and the recorded target, name A'.
    let ann = &new_m["annotations"];
    assert_eq!(ann["org.opencontainers.image.base.digest"], u_digest);
    assert_eq!(ann["org.opencontainers.image.base.name"], new_base);
    assert_eq!(
        label(&new_c, "org.opencontainers.image.base.digest"),
        u_digest
    );
    let target: Value = serde_json::from_str(label(&new_c, "dev.rbuild.target")).unwrap();
    assert_eq!(target["base_digest"], u_digest);
    assert_eq!(target["target"]["python_version"], "3.11");
    // The settings the build made are kept.
    let envs = new_c["config"]["Env"].as_array().unwrap();
    assert!(
        envs.iter().any(|e| e == &format!("PORT={}", env.port)),
        "{envs:?}"
    );
    assert_eq!(new_c["config"]["Entrypoint"], old_c["config"]["Entrypoint"]);

    // The SBOM lists A''s OS packages (netbase is only in A') and the same Python wheels.
    let sbom: Value =
        serde_json::from_slice(&env.attachment("demo/app", &new_digest, "application/spdx+json"))
            .unwrap();
    let old_sbom: Value =
        serde_json::from_slice(&env.attachment("demo/app", &old_digest, "application/spdx+json"))
            .unwrap();
    let pkgs = |doc: &Value| doc["packages"].as_array().unwrap().clone();
    let find = |doc: &Value, name: &str| pkgs(doc).into_iter().find(|p| p["name"] == name);
    assert!(find(&sbom, "netbase").is_some(), "A''s netbase is listed");
    assert!(find(&old_sbom, "netbase").is_none());
    let dpkg_status = updated_dpkg_version(&updated, "libc6");
    assert_eq!(
        find(&sbom, "libc6").unwrap()["versionInfo"],
        dpkg_status,
        "libc6 as A' has it"
    );
    for name in ["fastapi", "pydantic-core", "uvicorn"] {
        let (a, b) = (find(&old_sbom, name).unwrap(), find(&sbom, name).unwrap());
        assert_eq!(a["checksums"], b["checksums"], "{name}");
        assert_eq!(a["versionInfo"], b["versionInfo"], "{name}");
    }
    let base_pkg = find(&sbom, &new_base).expect("the base image package");
    assert_eq!(base_pkg["versionInfo"], u_digest);
    // Provenance names the new subject and base.
    let prov: Value = serde_json::from_slice(&env.attachment(
        "demo/app",
        &new_digest,
        "application/vnd.in-toto+json",
    ))
    .unwrap();
    assert_eq!(
        prov["subject"][0]["digest"]["sha256"],
        new_digest.trim_start_matches("sha256:")
    );
    let deps = prov["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let base_dep = deps.iter().find(|d| d["name"] == "base-image").unwrap();
    assert_eq!(
        base_dep["digest"]["sha256"],
        u_digest.trim_start_matches("sha256:")
    );

    // It runs: A''s files are there, and the app answers.
    let bundle = Bundle::pull(&to);
    assert!(bundle.rootfs().join("etc/services").is_file(), "netbase");
    let c = bundle.start();
    let answer = rbuild_e2e::http_get(env.port, "/health", Duration::from_secs(40));
    let Some((status, body)) = answer else {
        panic!("no answer on port {}:\n{}", env.port, c.log());
    };
    assert_eq!(status, 200, "{body}");
    drop(c);

    // Same inputs, same rebased image; with --sign-key it is signed (an SEC1 key from openssl),
    // and the signature verifies for it.
    let key = env.tmp.path().join("sign.pem");
    let public = env.tmp.path().join("sign.pub");
    sh(
        "openssl",
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &key.display().to_string(),
        ],
    );
    sh(
        "openssl",
        &[
            "ec",
            "-in",
            &key.display().to_string(),
            "-pubout",
            "-out",
            &public.display().to_string(),
        ],
    );
    let v3 = format!("{}/demo/app:v3", env.registry.host());
    let again = env
        .rbuild(
            env.tmp.path(),
            &[
                "--json",
                "rebase",
                &env.app,
                "--base",
                &new_base,
                "--to",
                &v3,
                "--sign-key",
                &key.display().to_string(),
            ],
        )
        .ok()
        .json();
    assert_eq!(again["digest"], new_digest);
    assert!(
        env.exists(
            "demo/app",
            &format!("{}.sig", new_digest.replace("sha256:", "sha256-"))
        ),
        "the signature tag"
    );
    let verified = env
        .rbuild(
            env.tmp.path(),
            &[
                "--json",
                "verify",
                &v3,
                "--key",
                &public.display().to_string(),
            ],
        )
        .ok()
        .json();
    assert_eq!(verified["verified"], true, "{verified:#}");
    assert!(
        !env.exists(
            "demo/app",
            &format!("{}.sig", old_digest.replace("sha256:", "sha256-"))
        ),
        "the build was not signed"
    );

    // An index is rebased per platform: an OCI index over the built image (put with curl),
    // rebased, is an index over the rebased platform manifest, which has its own SBOM.
    let size = env.get("demo/app/manifests/v1", OCI_MANIFEST).len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": old_digest,
            "size": size,
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    });
    let body = env.tmp.path().join("index.json");
    std::fs::write(&body, serde_json::to_vec(&index).unwrap()).unwrap();
    sh(
        "curl",
        &[
            "-fsS",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {OCI_INDEX}"),
            "--data-binary",
            &format!("@{}", body.display()),
            &env.url("demo/app/manifests/multi"),
        ],
    );
    let multi = format!("{}/demo/app:multi", env.registry.host());
    let multi2 = format!("{}/demo/app:multi-rebased", env.registry.host());
    let out = env
        .rbuild(
            env.tmp.path(),
            &[
                "--json", "rebase", &multi, "--base", &new_base, "--to", &multi2,
            ],
        )
        .ok()
        .json();
    let rebased_index = env.json("demo/app/manifests/multi-rebased", OCI_INDEX);
    assert_eq!(rebased_index["mediaType"], OCI_INDEX, "{rebased_index:#}");
    let entry = &rebased_index["manifests"][0];
    assert_eq!(entry["platform"]["architecture"], "amd64");
    assert_eq!(
        entry["digest"], new_digest,
        "the same platform manifest as the single rebase"
    );
    assert_eq!(out["platforms"][0]["new_manifest"], new_digest);
    assert_ne!(out["digest"], new_digest, "the top is the new index");
}

/// The version of `package` in A''s dpkg status (read from its layer with tar, not rbuild).
fn updated_dpkg_version(updated: &UpdatedBaseFixture, package: &str) -> String {
    let status = layer_file(updated.layout_dir(), "updated", 0, "./var/lib/dpkg/status");
    let text = String::from_utf8(status).unwrap();
    text.split("\n\n")
        .find(|s| s.starts_with(&format!("Package: {package}\n")))
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Version: ")))
        .unwrap_or_else(|| panic!("no {package} in A''s dpkg status"))
        .to_string()
}

/// A file of layer `n` of the image tagged `tag` in an OCI layout.
fn layer_file(layout: &Path, tag: &str, n: usize, path: &str) -> Vec<u8> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let m: Value =
        serde_json::from_slice(&std::fs::read(blob(d["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    let layer = blob(m["layers"][n]["digest"].as_str().unwrap());
    sh("tar", &["-xzOf", &layer.display().to_string(), path]).stdout
}

/// Pushes an OCI layout made by `make(rootfs dir)` (one layer) as `repo_tag`, with `PATH` set.
fn push_synthetic(env: &Env, name: &str, layers: &[PathBuf], repo_tag: &str) {
    let layout = env.tmp.path().join(format!("{name}-oci"));
    let image = format!("{}:{name}", layout.display());
    sh(
        "umoci",
        &["init", "--layout", &layout.display().to_string()],
    );
    sh("umoci", &["new", "--image", &image]);
    for l in layers {
        sh(
            "umoci",
            &[
                "raw",
                "add-layer",
                "--image",
                &image,
                &l.display().to_string(),
            ],
        );
    }
    sh(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--os",
            "linux",
            "--architecture",
            "amd64",
            "--config.env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--config.cmd",
            "python3",
        ],
    );
    sh(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{}/{repo_tag}", env.registry.host()),
        ],
    );
}

/// A tar of the files under `root`.
fn tar_of(root: &Path, out: &Path) -> PathBuf {
    sh(
        "tar",
        &[
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
            &root.display().to_string(),
            "-cf",
            &out.display().to_string(),
            ".",
        ],
    );
    out.to_path_buf()
}

/// The reasons printed for one platform.
fn reasons(run: &rbuild_e2e::Run) -> Vec<String> {
    let text = format!("{}{}", run.stdout, run.stderr);
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("linux/amd64: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn rebase_refuses_another_python_musl_and_an_older_glibc_naming_the_reason() {
    let env = Env::new();
    let to = |t: &str| format!("{}/demo/app:{t}", env.registry.host());

    // Another Python X.Y: Debian trixie's 3.13.
    KindFixture::ensure(Kind::Trixie)
        .expect("trixie fixture")
        .push_to(&env.registry, "bases/trixie:latest")
        .expect("push trixie");
    let run = env.rebase(
        &format!("{}/bases/trixie:latest", env.registry.host()),
        &to("py"),
    );
    assert_ne!(run.code, 0, "{run:?}");
    let r = reasons(&run);
    assert!(
        r.iter()
            .any(|x| x.contains("Python 3.13") && x.contains("Python 3.11")),
        "{run:?}"
    );
    assert!(!env.exists("demo/app", "py"), "nothing pushed");

    // musl: a minimal rootfs with a musl loader, an apk record of musl and a python3.11.
    let root = env.tmp.path().join("musl-root");
    for (path, content) in [
        ("lib/ld-musl-x86_64.so.1", ""),
        (
            "lib/apk/db/installed",
            "P:musl\nV:1.2.4-r2\nA:x86_64\n\nP:python3\nV:3.11.9-r0\nA:x86_64\n\n",
        ),
        // The ELF magic (the interpreter must be an ELF file), then nothing a CPU could run.
        ("usr/bin/python3.11", "\x7fELF: a stand-in\n"),
        ("usr/lib/python3.11/os.py", "# stand-in\n"),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:root\n"),
    ] {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    std::os::unix::fs::symlink("python3.11", root.join("usr/bin/python3")).unwrap();
    let layer = tar_of(&root, &env.tmp.path().join("musl.tar"));
    push_synthetic(&env, "musl", &[layer], "bases/musl:latest");
    let run = env.rebase(
        &format!("{}/bases/musl:latest", env.registry.host()),
        &to("musl"),
    );
    assert_ne!(run.code, 0, "{run:?}");
    let r = reasons(&run);
    assert!(
        r.iter()
            .any(|x| x.contains("C library is musl-1.2") && x.contains("glibc-2.36")),
        "{run:?}"
    );
    assert!(!env.exists("demo/app", "musl"), "nothing pushed");

    // An older glibc than pydantic-core's manylinux_2_17 wheel needs: A, with a layer that
    // records libc6 2.12 in dpkg's status (everything else as A).
    let a = BaseFixture::ensure().unwrap();
    let status = String::from_utf8(layer_file(
        a.layout_dir(),
        "amd64",
        0,
        "./var/lib/dpkg/status",
    ))
    .unwrap();
    let patched: Vec<String> = status
        .split("\n\n")
        .map(|s| {
            if s.starts_with("Package: libc6\n") {
                s.lines()
                    .map(|l| {
                        if l.starts_with("Version: ") {
                            "Version: 2.12-1".to_string()
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                s.to_string()
            }
        })
        .collect();
    let root = env.tmp.path().join("oldglibc-root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    std::fs::write(root.join("var/lib/dpkg/status"), patched.join("\n\n")).unwrap();
    let old_layout = env.tmp.path().join("oldglibc-oci");
    sh(
        "cp",
        &[
            "-a",
            &a.layout_dir().display().to_string(),
            &old_layout.display().to_string(),
        ],
    );
    sh("chmod", &["-R", "u+w", &old_layout.display().to_string()]);
    let tar = tar_of(&root, &env.tmp.path().join("oldglibc.tar"));
    let image = format!("{}:amd64", old_layout.display());
    sh(
        "umoci",
        &[
            "raw",
            "add-layer",
            "--image",
            &image,
            &tar.display().to_string(),
        ],
    );
    sh(
        "skopeo",
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{image}"),
            &format!("docker://{}/bases/oldglibc:latest", env.registry.host()),
        ],
    );
    let run = env.rebase(
        &format!("{}/bases/oldglibc:latest", env.registry.host()),
        &to("glibc"),
    );
    assert_ne!(run.code, 0, "{run:?}");
    let r = reasons(&run);
    assert_eq!(r.len(), 1, "only the C library differs: {r:#?}");
    assert!(
        r[0].contains("glibc-2.12 is older than 2.17") && r[0].contains("pydantic"),
        "{r:?}"
    );
    assert!(!env.exists("demo/app", "glibc"), "nothing pushed");
}
