//! The registry starts, answers and stops in every mode; htpasswd checks passwords; requests are
//! counted from the access log.

mod common;

use std::time::Duration;

use common::*;
use rbuild_testing::{Mode, Registry};

fn pid_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry (a zombie would still have one).
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn get_v2(registry: &Registry, auth: Option<(&str, &str)>) -> reqwest::Response {
    let client = client_for(registry);
    let mut rb = client.get(format!("{}/v2/", registry.url()));
    if let Some((u, p)) = auth {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.expect("GET /v2/")
}

#[tokio::test]
async fn every_mode_starts_answers_and_stops_by_pid() {
    let modes = [
        Mode::Plain,
        Mode::htpasswd("alice", "pw-one"),
        Mode::Tls,
        Mode::tls_htpasswd("alice", "pw-two"),
        Mode::token("alice", "pw-three"),
    ];
    for mode in modes {
        let registry = Registry::start(mode.clone()).expect("start");
        let (pid, port) = (registry.pid(), registry.port());
        assert!(pid_alive(pid));
        assert_eq!(registry.host(), format!("127.0.0.1:{port}"));
        let resp = get_v2(&registry, None).await;
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        match &mode {
            Mode::Plain | Mode::Tls => assert_eq!(resp.status(), 200, "{mode:?}"),
            Mode::Htpasswd { .. } | Mode::TlsHtpasswd { .. } => {
                assert_eq!(resp.status(), 401, "{mode:?}");
                assert!(challenge.unwrap().starts_with("Basic realm="));
            }
            Mode::Token { .. } => {
                assert_eq!(resp.status(), 401);
                let challenge = challenge.unwrap();
                let realm = registry.token_server().unwrap().realm();
                assert!(challenge.starts_with("Bearer "), "{challenge}");
                assert!(
                    challenge.contains(&format!("realm=\"{realm}\"")),
                    "{challenge}"
                );
                assert!(
                    challenge.contains("service=\"rbuild-test-registry\""),
                    "{challenge}"
                );
            }
        }
        assert_eq!(registry.url().starts_with("https://"), registry.is_tls());
        assert_eq!(registry.ca_pem_path().is_some(), registry.is_tls());
        let dir = registry.dir().to_path_buf();
        drop(registry);
        assert!(
            !pid_alive(pid),
            "{mode:?}: registry pid {pid} still exists after drop"
        );
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        assert!(!dir.exists(), "registry directory left behind");
    }
}

#[tokio::test]
async fn htpasswd_accepts_the_password_and_rejects_a_wrong_one() {
    for mode in [
        Mode::htpasswd("bob", "correct horse"),
        Mode::tls_htpasswd("bob", "correct horse"),
    ] {
        let registry = Registry::start(mode).unwrap();
        assert_eq!(
            get_v2(&registry, Some(("bob", "correct horse")))
                .await
                .status(),
            200
        );
        assert_eq!(
            get_v2(&registry, Some(("bob", "wrong"))).await.status(),
            401
        );
        assert_eq!(
            get_v2(&registry, Some(("eve", "correct horse")))
                .await
                .status(),
            401
        );
    }
}

#[tokio::test]
async fn tls_registry_is_not_trusted_without_its_ca() {
    let registry = Registry::start(Mode::Tls).unwrap();
    let untrusting = client(None, reqwest::redirect::Policy::none());
    let err = untrusting
        .get(format!("{}/v2/", registry.url()))
        .send()
        .await
        .expect_err("an unknown CA must fail");
    assert!(err.is_connect(), "{err:?}");
    // And it speaks HTTP/2 when offered (ALPN), as DESIGN.md says.
    let resp = get_v2(&registry, None).await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let ca_dir = registry.ca_cert_dir().unwrap();
    let names: Vec<_> = std::fs::read_dir(ca_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ca.crt"],
        "the cert dir must hold only the CA (skopeo reads *.key as client keys)"
    );
}

#[tokio::test]
async fn access_log_counts_uploads_and_mounts() {
    let registry = Registry::plain().unwrap();
    let client = client_for(&registry);
    let base = registry.url();
    let layer = blob(10_000, 1);
    let digest = push_blob(&client, &base, "one/app", None, &layer).await;
    push_blob(&client, &base, "one/app", None, CONFIG).await;
    assert_eq!(registry.blob_uploads(), 2);
    assert_eq!(registry.blob_mounts(), 0);
    // Mount into another repository: 201, no new upload.
    let resp = client
        .post(format!(
            "{base}/v2/two/app/blobs/uploads/?mount={digest}&from=one/app"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    // A mount from a repo that lacks the blob falls back to an upload session (202).
    let resp = client
        .post(format!(
            "{base}/v2/three/app/blobs/uploads/?mount={digest}&from=nowhere/x"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(registry.blob_mounts(), 1);
    assert_eq!(registry.blob_uploads(), 2);
    assert_eq!(
        registry.count_requests("POST", r"/blobs/uploads/\?mount="),
        2
    );
    let log = registry.access_log();
    assert!(
        log.iter()
            .any(|e| e.method == "PUT" && e.uri.contains(&digest) && e.status == 201)
    );
    // The storage directory is the registry's: the blob landed there.
    let hex = digest.trim_start_matches("sha256:");
    let data = registry.storage_dir().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    assert_eq!(std::fs::read(data).unwrap(), layer);
}

#[test]
fn registry_works_from_sync_code_and_across_threads() {
    let registry = std::sync::Arc::new(Registry::plain().unwrap());
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let r = registry.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(r.host()).unwrap();
                use std::io::{Read, Write};
                write!(
                    s,
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    r.host()
                )
                .unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                out.starts_with("HTTP/1.1 200")
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap());
    }
    assert_eq!(registry.count_requests("GET", "^/v2/$"), 3);
}

/// A test process that exits without dropping its registry (a `static`, `process::exit`, a
/// crash) still leaves no `docker-registry` behind: the child dies with it.
#[test]
fn no_orphan_registry_when_the_test_process_exits_abruptly() {
    if std::env::var_os("RBUILD_TESTING_ORPHAN_CHILD").is_some() {
        let registry = Registry::plain().unwrap();
        println!("REGISTRY_PID={}", registry.pid());
        std::mem::forget(registry);
        std::process::exit(0);
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "no_orphan_registry_when_the_test_process_exits_abruptly",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("RBUILD_TESTING_ORPHAN_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .split("REGISTRY_PID=")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("child printed no pid: {stdout}"))
        .trim()
        .parse()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    // The orphan is reparented (to init or a subreaper) and reaped there once killed; a zombie
    // counts as dead.
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
            .unwrap_or(false)
    };
    while alive(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !alive(pid),
        "docker-registry pid {pid} outlived its test process"
    );
}
