//! Acceptance tests for registry authentication and TLS (issue #3): Basic over TLS with the CA from
//! `--ca-file` and credentials from Docker's config, a credential helper, or podman's auth.json;
//! Bearer tokens with `--creds`; one multi-scope token for cross-repository mounts; clear errors;
//! and no secret in any output at `-vv`.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use base64::Engine as _;
use common::*;
use rbuild_testing::{Mode, Registry};

const USER: &str = "rbuilder";
const PASS: &str = "s3cret-Pa55word";

fn b64_user_pass() -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
}

/// Asserts that no output contains the password, base64(user:password) or an issued token.
fn assert_redacted(outputs: &[&Output], tokens: &[String]) {
    let b64 = b64_user_pass();
    for out in outputs {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!text.contains(PASS), "the password leaked:\n{text}");
        assert!(
            !text.contains(&b64),
            "base64(user:password) leaked:\n{text}"
        );
        for t in tokens {
            assert!(!text.contains(t.as_str()), "a token leaked:\n{text}");
            // A JWT's signature part alone is secret enough to check too.
            if let Some(sig) = t.rsplit('.').next().filter(|s| s.len() > 16) {
                assert!(!text.contains(sig), "a token signature leaked:\n{text}");
            }
        }
    }
}

fn skopeo_verify_on(registry: &Registry, reference: &str, dir: &Path) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "--all"]);
    cmd.args(registry.skopeo_flags("src"));
    cmd.arg(format!("docker://{reference}"));
    cmd.arg(format!("oci:{}:t", dir.display()));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "skopeo copy of {reference} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn write_helper(dir: &Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(format!("docker-credential-{name}"));
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

#[test]
fn tls_basic_registry_with_docker_config_helper_and_auth_json() {
    let plain = Registry::start(Mode::Plain).unwrap();
    push_fixture(&plain);
    let tls = Registry::start(Mode::tls_htpasswd(USER, PASS)).unwrap();
    let ca = tls.ca_pem_path().unwrap().to_str().unwrap().to_string();
    let host = tls.host();
    let cache = tempfile::tempdir().unwrap();
    let files = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:3.11-slim", plain.host());
    let mut outputs = Vec::new();

    // Without the CA: a clear certificate error with a hint.
    let out = rbuild(&["copy", &src, &format!("{host}/a/python:1")], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("not trusted"), "{stderr}");
    assert!(
        stderr.contains("hint: pass the registry's CA certificate with --ca-file"),
        "{stderr}"
    );

    // 1. Docker config.json (DOCKER_CONFIG) with an `auth` entry; CA via --ca-file.
    let docker_dir = files.path().join("docker");
    std::fs::create_dir_all(&docker_dir).unwrap();
    std::fs::write(
        docker_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"https://{host}":{{"auth":"{}"}}}}}}"#,
            b64_user_pass()
        ),
    )
    .unwrap();
    let dst = format!("{host}/a/python:1");
    let out = rbuild_env(
        &["-vv", "copy", "--ca-file", &ca, &src, &dst],
        cache.path(),
        &[("DOCKER_CONFIG", docker_dir.to_str().unwrap())],
    );
    ok(&out);
    let oci = tempfile::tempdir().unwrap();
    skopeo_verify_on(&tls, &dst, &oci.path().join("a"));
    outputs.push(out);

    // 2. A docker-credential helper on PATH, named in credHelpers.
    let helper_cfg = files.path().join("helper");
    let bin = files.path().join("bin");
    std::fs::create_dir_all(&helper_cfg).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"rbtest"}}}}"#),
    )
    .unwrap();
    write_helper(
        &bin,
        "rbtest",
        &format!(
            r#"read server; [ "$1" = get ] && [ "$server" = "{host}" ] || exit 3
echo '{{"ServerURL":"{host}","Username":"{USER}","Secret":"{PASS}"}}'"#
        ),
    );
    let dst = format!("{host}/b/python:1");
    let out = rbuild_env(
        &["-vv", "copy", "--ca-file", &ca, &src, &dst],
        cache.path(),
        &[
            ("DOCKER_CONFIG", helper_cfg.to_str().unwrap()),
            ("PATH", &path_with(&bin)),
        ],
    );
    ok(&out);
    skopeo_verify_on(&tls, &dst, &oci.path().join("b"));
    outputs.push(out);

    // 3. podman's auth.json via REGISTRY_AUTH_FILE; a Docker config with a wrong password for the
    //    same registry is also present: podman's file wins.
    let auth_json = files.path().join("auth.json");
    std::fs::write(
        &auth_json,
        format!(
            r#"{{"auths":{{"{host}":{{"auth":"{}"}}}}}}"#,
            b64_user_pass()
        ),
    )
    .unwrap();
    let wrong_cfg = files.path().join("wrong");
    std::fs::create_dir_all(&wrong_cfg).unwrap();
    std::fs::write(
        wrong_cfg.join("config.json"),
        format!(r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"not-it"}}}}}}"#),
    )
    .unwrap();
    let dst = format!("{host}/c/python:1");
    let out = rbuild_env(
        &["-vv", "copy", "--ca-file", &ca, &src, &dst],
        cache.path(),
        &[
            ("REGISTRY_AUTH_FILE", auth_json.to_str().unwrap()),
            ("DOCKER_CONFIG", wrong_cfg.to_str().unwrap()),
        ],
    );
    ok(&out);
    skopeo_verify_on(&tls, &dst, &oci.path().join("c"));
    outputs.push(out);

    // 3b. auth.json entries scoped to a namespace or a repository (containers-auth.json(5)): the
    //     most specific one is used. The namespace `d` has a wrong password, `d/python` the right
    //     one.
    let scoped = files.path().join("scoped.json");
    std::fs::write(
        &scoped,
        format!(
            r#"{{"auths":{{"{host}/d":{{"username":"{USER}","password":"not-it"}},"{host}/d/python":{{"auth":"{}"}}}}}}"#,
            b64_user_pass()
        ),
    )
    .unwrap();
    let scoped_env = [("REGISTRY_AUTH_FILE", scoped.to_str().unwrap())];
    let dst = format!("{host}/d/python:1");
    let out = rbuild_env(
        &["-vv", "copy", "--ca-file", &ca, &src, &dst],
        cache.path(),
        &scoped_env,
    );
    ok(&out);
    skopeo_verify_on(&tls, &dst, &oci.path().join("d"));
    outputs.push(out);
    let out = rbuild_env(
        &[
            "-vv",
            "copy",
            "--ca-file",
            &ca,
            &src,
            &format!("{host}/d/other:1"),
        ],
        cache.path(),
        &scoped_env,
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert!(
        errors.len() == 1 && errors[0].contains("rejected the user name and password"),
        "the namespace's entry is used for d/other: {errors:?}"
    );
    outputs.push(out);

    // Docker's config alone, with the wrong password: one clear message.
    let out = rbuild_env(
        &["-vv", "inspect", "--ca-file", &ca, &dst],
        cache.path(),
        &[("DOCKER_CONFIG", wrong_cfg.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("rejected the user name and password"),
        "{}",
        errors[0]
    );
    outputs.push(out);

    // A helper that fails: one message naming it.
    write_helper(&bin, "rbfail", "echo 'keychain locked' >&2; exit 1");
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"rbfail"}}}}"#),
    )
    .unwrap();
    let out = rbuild_env(
        &["-vv", "inspect", "--ca-file", &ca, &dst],
        cache.path(),
        &[
            ("DOCKER_CONFIG", helper_cfg.to_str().unwrap()),
            ("PATH", &path_with(&bin)),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("docker-credential-rbfail"),
        "{}",
        errors[0]
    );
    outputs.push(out);

    // A helper that is not installed: named too.
    std::fs::write(
        helper_cfg.join("config.json"),
        format!(r#"{{"credHelpers":{{"{host}":"rbmissing"}}}}"#),
    )
    .unwrap();
    let out = rbuild_env(
        &["inspect", "--ca-file", &ca, &dst],
        cache.path(),
        &[("DOCKER_CONFIG", helper_cfg.to_str().unwrap())],
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert!(
        errors[0].contains("docker-credential-rbmissing is not on PATH"),
        "{}",
        errors[0]
    );

    let refs: Vec<&Output> = outputs.iter().collect();
    assert_redacted(&refs, &[]);
}

#[test]
fn token_registry_with_creds_and_one_multi_scope_token_for_mounts() {
    let plain = Registry::start(Mode::Plain).unwrap();
    push_fixture(&plain);
    let tok = Registry::start(Mode::token(USER, PASS)).unwrap();
    let ts = tok.token_server().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let creds = format!("{USER}:{PASS}");
    let src = format!("{}/library/python:3.11-slim", plain.host());
    let dst = format!("{}/library/python:1", tok.host());
    let mut outputs = Vec::new();

    let out = rbuild(
        &["-vv", "copy", "--creds", &creds, &src, &dst],
        cache.path(),
    );
    ok(&out);
    let oci = tempfile::tempdir().unwrap();
    skopeo_verify_on(&tok, &dst, &oci.path().join("a"));
    outputs.push(out);

    // Copy inside the token registry: every blob mounted with one token carrying both scopes.
    ts.reset_counters();
    let (uploads0, mounts0) = (tok.blob_uploads(), tok.blob_mounts());
    let other = format!("{}/other/python:1", tok.host());
    let out = rbuild(
        &["-vv", "copy", "--creds", &creds, &dst, &other],
        cache.path(),
    );
    ok(&out);
    outputs.push(out);
    assert_eq!(
        tok.blob_mounts() - mounts0,
        3,
        "config and both layers mounted"
    );
    assert_eq!(tok.blob_uploads(), uploads0, "nothing uploaded");
    let reqs = ts.requests();
    let multi: Vec<_> = reqs
        .iter()
        .filter(|r| {
            r.scopes
                .iter()
                .any(|s| s == "repository:library/python:pull")
                && r.scopes
                    .iter()
                    .any(|s| s == "repository:other/python:pull,push")
        })
        .collect();
    assert_eq!(multi.len(), 1, "one multi-scope token request: {reqs:?}");
    assert_eq!(multi[0].status, 200);
    assert_eq!(multi[0].user.as_deref(), Some(USER));
    assert!(
        reqs.len() <= 2,
        "a pull token for the source, one push token: {reqs:?}"
    );
    skopeo_verify_on(&tok, &other, &oci.path().join("b"));

    // Anonymous: the token server grants pull only; the push is refused after one refresh.
    let out = rbuild(
        &[
            "-vv",
            "copy",
            &src,
            &format!("{}/anon/python:1", tok.host()),
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("insufficient_scope"), "{}", errors[0]);
    outputs.push(out);

    // Tokens that are already expired: one clear message.
    ts.set_lifetime_secs(0);
    let out = rbuild(&["-vv", "inspect", "--creds", &creds, &other], cache.path());
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("rejected the token"), "{}", errors[0]);
    outputs.push(out);
    ts.set_lifetime_secs(300);

    // A wrong password: the token server refuses it.
    let out = rbuild(
        &[
            "-vv",
            "inspect",
            "--creds",
            &format!("{USER}:wrong"),
            &other,
        ],
        cache.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    let errors = error_lines(&out);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("refused the credentials"),
        "{}",
        errors[0]
    );
    outputs.push(out);

    // RBUILD_REGISTRY_USERNAME/PASSWORD work like --creds.
    let out = rbuild_env(
        &["-vv", "inspect", &other],
        cache.path(),
        &[
            ("RBUILD_REGISTRY_USERNAME", USER),
            ("RBUILD_REGISTRY_PASSWORD", PASS),
        ],
    );
    ok(&out);
    outputs.push(out);

    let refs: Vec<&Output> = outputs.iter().collect();
    let tokens = ts.issued_tokens();
    assert!(!tokens.is_empty());
    assert_redacted(&refs, &tokens);
}

#[test]
fn authorization_never_follows_a_redirect_to_another_host() {
    let reg = Registry::start(Mode::htpasswd(USER, PASS)).unwrap();
    push_fixture(&reg);
    let plain = Registry::start(Mode::Plain).unwrap();
    let proxy = rbuild_testing::FaultProxy::in_front_of(&reg).unwrap();
    proxy.inject(
        "GET",
        r"/blobs/sha256:",
        rbuild_testing::Fault::RedirectToCdn,
        rbuild_testing::Times::Always,
    );
    let cache = tempfile::tempdir().unwrap();
    let src = format!("{}/library/python:3.11-slim", proxy.host());
    let dst = format!("{}/mirror/python:1", plain.host());
    let out = rbuild(
        &[
            "-vv",
            "copy",
            "--src-creds",
            &format!("{USER}:{PASS}"),
            &src,
            &dst,
        ],
        cache.path(),
    );
    ok(&out);
    let cdn = proxy.cdn_requests();
    assert_eq!(cdn.len(), 3, "every blob came from the CDN listener");
    assert!(
        cdn.iter()
            .all(|r| r.header("authorization").is_none() && r.status == 200)
    );
    assert!(
        proxy
            .requests()
            .iter()
            .filter(|r| r.target.contains("/manifests/"))
            .any(|r| r.header("authorization").is_some()),
        "the registry itself got credentials"
    );
    let oci = tempfile::tempdir().unwrap();
    skopeo_copy_verifies(&dst, &oci.path().join("layout"));
    assert_redacted(&[&out], &[]);
}
