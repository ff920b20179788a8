//! `rbuild login`/`logout` against the htpasswd and token registries of rbuild-testing (then a push
//! with no other credentials, the secret in no output at `-vv`), and registry errors with a way
//! out: which registry (base or target) and which operation, a hint for each, and no retries for
//! what cannot change (a plain-HTTP registry answering a TLS client fails in well under a second).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use rbuild_testing::{Mode, Registry};

const USER: &str = "rbuilder";
const PASS: &str = "s3cret-Pa55word";

const TARGET: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
    "--entrypoint",
    r#"["python3","main.py"]"#,
];

fn project(root: &Path) -> PathBuf {
    let dir = root.join("app");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
    dir
}

/// Runs rbuild as [`rbuild_env`] does (empty HOME under `cache`), with `stdin` piped in.
fn rbuild_stdin(args: &[&str], cache: &Path, stdin: &str) -> Output {
    let home = cache.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rbuild"))
        .args(args)
        .env("HOME", &home)
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("DOCKER_CONFIG")
        .env_remove("RBUILD_REGISTRY_USERNAME")
        .env_remove("RBUILD_REGISTRY_PASSWORD")
        .env("RBUILD_CACHE_DIR", cache)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(outputs: &[&Output]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    for o in outputs {
        let t = text(o);
        assert!(!t.contains(PASS), "the password leaked:\n{t}");
        assert!(!t.contains(&b64), "base64(user:password) leaked:\n{t}");
    }
}

fn build_to(dir: &Path, to: &str, cache: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&str> = extra.to_vec();
    args.extend(["build", dir.to_str().unwrap()]);
    args.extend_from_slice(TARGET);
    args.extend(["--to", to]);
    rbuild(&args, cache)
}

fn login_then_push(registry: &Registry) -> Vec<Output> {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path());
    let host = registry.host();
    let to = format!("{host}/team/app:v1");
    let mut outs = Vec::new();

    // Without credentials the push fails, names the target registry and says where rbuild looked.
    let out = build_to(&dir, &to, &cache, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains(&format!("target registry {host}")), "{err}");
    assert!(
        err.contains("hint: rbuild looked for credentials")
            && err.contains(&format!("rbuild login {host}")),
        "{err}"
    );

    // A wrong password: refused, nothing written.
    let out = rbuild_stdin(
        &["login", &host, "-u", USER, "--password-stdin"],
        &cache,
        "wrong-password\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let auth = cache.join("home/.config/containers/auth.json");
    assert!(!auth.exists(), "a failed login writes nothing");

    let out = rbuild_stdin(
        &["-vv", "login", &host, "-u", USER, "--password-stdin"],
        &cache,
        &format!("{PASS}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    outs.push(out);
    // podman's auth.json, owner-only, in the form podman, skopeo and docker read.
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    let want = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    assert_eq!(doc["auths"][&host]["auth"], want.as_str());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&auth).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // A push with no other credentials.
    let out = build_to(&dir, &to, &cache, &["-vv"]);
    assert!(out.status.success(), "{}", text(&out));
    outs.push(out);
    // skopeo reads the same file.
    let sk = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--authfile"])
        .arg(&auth)
        .arg(format!("docker://{to}"))
        .output()
        .unwrap();
    assert!(
        sk.status.success(),
        "{}",
        String::from_utf8_lossy(&sk.stderr)
    );

    // logout: the entry is gone, and so is the access.
    let out = rbuild(&["logout", &host], &cache);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&auth).unwrap()).unwrap();
    assert!(doc["auths"].get(&host).is_none(), "{doc}");
    let out = build_to(&dir, &format!("{host}/team/app:v2"), &cache, &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = rbuild(&["logout", &host], &cache);
    assert_eq!(out.status.code(), Some(1), "not logged in any more");
    outs
}

#[test]
fn login_to_an_htpasswd_registry_then_push() {
    let registry = Registry::start(Mode::htpasswd(USER, PASS)).unwrap();
    let outs = login_then_push(&registry);
    assert_no_secret(&outs.iter().collect::<Vec<_>>());
}

#[test]
fn login_to_a_token_registry_then_push() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    let outs = login_then_push(&registry);
    let refs: Vec<&Output> = outs.iter().collect();
    assert_no_secret(&refs);
    let tokens = registry.token_server().unwrap().issued_tokens();
    assert!(!tokens.is_empty());
    for o in refs {
        for t in &tokens {
            assert!(!text(o).contains(t.as_str()), "a token leaked");
        }
    }
}

/// This machine's address that is not loopback (rbuild only allows plain HTTP to loopback).
fn outside_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.200:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn a_plain_http_registry_fails_at_once_with_the_insecure_registry_hint() {
    let Some(ip) = outside_ip() else {
        eprintln!("no non-loopback address on this machine; skipped");
        return;
    };
    // A server that answers every connection in plain HTTP, as a registry without TLS does.
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let host = format!("{ip}:{port}");
    let cache = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = rbuild(
        &["inspect", &format!("{host}/library/python:3.11")],
        cache.path(),
    );
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains(&format!(
            "hint: if {host} is a plain-HTTP registry you trust, pass --insecure-registry {host}"
        )),
        "{err}"
    );
    assert!(!err.contains("gave up after"), "not retried: {err}");
    assert!(took < Duration::from_secs(1), "took {took:?}: {err}");
}

#[test]
fn base_errors_name_the_base_registry_with_a_hint() {
    let registry = Registry::plain().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path());
    let host = registry.host();
    // A missing base tag.
    let base = format!("{host}/library/python:nope");
    let out = rbuild(
        &["build", dir.to_str().unwrap(), "--base", &base, "--no-push"],
        &cache,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains(&format!("base registry {host}")) || err.contains(&base),
        "names the base: {err}"
    );
    assert!(err.contains("404"), "{err}");
    assert!(
        err.contains("hint: check the repository name, tag or digest")
            && err.contains("rbuild inspect"),
        "{err}"
    );
}

/// A wrong password from each place rbuild reads credentials from: the build fails at once (a
/// rejected credential is not retried), and the error and its hint name the file, helper or flag
/// the credential came from, never the password.
fn wrong_credentials_name_their_source(registry: &Registry) {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let dir = project(tmp.path());
    let host = registry.host();
    let to = format!("{host}/team/app:v1");
    let wrong = "not-the-Pa55word";
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{wrong}"));
    let doc = serde_json::json!({"auths": {&host: {"auth": auth}}}).to_string();

    // podman's auth.json named by REGISTRY_AUTH_FILE.
    let auth_file = tmp.path().join("podman-auth.json");
    std::fs::write(&auth_file, &doc).unwrap();
    // Docker's config.json under DOCKER_CONFIG.
    let docker_dir = tmp.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(docker_dir.join("config.json"), &doc).unwrap();
    let creds = format!("{USER}:{wrong}");

    let auth_path = auth_file.display().to_string();
    let docker_path = docker_dir.join("config.json").display().to_string();
    // (the source named, extra flags, environment)
    type Case<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, &'a str)>);
    let cases: Vec<Case> = vec![
        (
            auth_path.as_str(),
            vec![],
            vec![("REGISTRY_AUTH_FILE", auth_path.as_str())],
        ),
        (
            docker_path.as_str(),
            vec![],
            vec![("DOCKER_CONFIG", docker_dir.to_str().unwrap())],
        ),
        ("--creds", vec!["--creds", creds.as_str()], vec![]),
    ];
    for (source, flags, env) in cases {
        let mut args = vec!["build", dir.to_str().unwrap()];
        args.extend_from_slice(TARGET);
        args.extend(["--to", &to]);
        args.extend(flags);
        let t0 = Instant::now();
        let out = rbuild_env(&args, &cache, &env);
        let took = t0.elapsed();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        let errors = error_lines(&out);
        assert_eq!(errors.len(), 1, "one error line: {err}");
        assert!(
            errors[0].contains(&format!("target registry {host}"))
                && errors[0].contains("authentication failed")
                && errors[0].contains(&format!("the credentials came from {source}")),
            "the error names the registry and where the credentials came from ({source}): {err}"
        );
        assert!(
            err.contains(&format!(
                "hint: the credentials for {host} came from {source}: correct them there, or replace them with `rbuild login {host}`"
            )),
            "{err}"
        );
        assert!(!err.contains("gave up after"), "not retried: {err}");
        assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
        assert!(!text(&out).contains(wrong), "the password leaked: {err}");
        assert!(!text(&out).contains(&auth), "the auth entry leaked: {err}");
    }
}

#[test]
fn wrong_credentials_on_an_htpasswd_registry_name_their_source() {
    let registry = Registry::start(Mode::htpasswd(USER, PASS)).unwrap();
    wrong_credentials_name_their_source(&registry);
}

#[test]
fn wrong_credentials_on_a_token_registry_name_their_source() {
    let registry = Registry::start(Mode::token(USER, PASS)).unwrap();
    wrong_credentials_name_their_source(&registry);
}
