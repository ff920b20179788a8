//! Against a scripted local server and local files: names refused before any request, credentials
//! (sent to their host, never shown), retries, cut-off bodies, find-links and offline mode.

mod common;

use std::time::Duration;

use common::*;
use rbuild_index::{Error, IndexClient, IndexOptions, NetrcSource, RetryPolicy, WheelRequest};
use rbuild_oci::{Digest, Store};

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
    }
}

fn local_client(server: &Server, opts: IndexOptions) -> IndexClient {
    IndexClient::new(IndexOptions {
        index_url: Some(server.url("/simple/")),
        netrc: NetrcSource::Disabled,
        retry: fast_retry(),
        ..opts
    })
    .unwrap()
}

fn json_page(files: &[(&str, &str, Option<&Digest>)]) -> String {
    let files: Vec<String> = files
        .iter()
        .map(|(name, url, d)| {
            let hashes = d
                .map(|d| format!(r#"{{"sha256":"{}"}}"#, d.hex()))
                .unwrap_or("{}".into());
            format!(r#"{{"filename":"{name}","url":"{url}","hashes":{hashes}}}"#)
        })
        .collect();
    format!(
        r#"{{"meta":{{"api-version":"1.1"}},"name":"demo","files":[{}]}}"#,
        files.join(",")
    )
}

const JSON: &str = "application/vnd.pypi.simple.v1+json";
const DEMO: &str = "demo-1.0-py3-none-any.whl";

#[tokio::test]
async fn invalid_names_are_refused_before_any_request() {
    let server = Server::start();
    let c = local_client(&server, IndexOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    for bad in ["../x", "a/b", "..", "a\\b", "", "x?y=1", "%2e%2e"] {
        let err = c.list_files(bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidName(_)), "{bad:?}: {err}");
        assert!(err.to_string().contains("before any request"), "{err}");
        let err = c.find_wheel_url(bad, DEMO).await.unwrap_err();
        assert!(matches!(err, Error::InvalidName(_)), "{bad:?}: {err}");
        let err = c
            .download_all(
                vec![WheelRequest {
                    name: bad.into(),
                    filename: DEMO.into(),
                    sha256: Some(Digest::of(b"x")),
                    ..Default::default()
                }],
                &store,
                &Recorder::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidName(_)), "{bad:?}: {err}");
    }
    // A file name with a path, or one that belongs to another package.
    for (name, file) in [
        ("demo", "../demo-1.0-py3-none-any.whl"),
        ("demo", "sub/demo-1.0-py3-none-any.whl"),
        ("demo", "other-1.0-py3-none-any.whl"),
        // A source distribution is accepted (for sdist builds), but only of this name and
        // version, and never with a path.
        ("demo", "demo-2.0.tar.gz"),
        ("demo", "other-1.0.tar.gz"),
        ("demo", "../demo-1.0.tar.gz"),
        ("demo", "sub/demo-1.0.tar.gz"),
        ("demo", "demo-2.0-py3-none-any.whl"),
    ] {
        let err = c
            .download_all(
                vec![WheelRequest {
                    name: name.into(),
                    version: "1.0.0".into(),
                    filename: file.into(),
                    ..Default::default()
                }],
                &store,
                &Recorder::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidFilename { .. }),
            "{file}: {err}"
        );
    }
    let err = c
        .find_wheel_url("demo", "../../etc/passwd")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFilename { .. }), "{err}");
    assert!(
        server.seen().is_empty(),
        "no request was made: {:?}",
        server.seen()
    );
}

#[tokio::test]
async fn credentials_in_urls_never_appear_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = IndexClient::new(IndexOptions {
        index_url: Some("https://user:s3cret@127.0.0.1:9/simple/".into()),
        extra_index_urls: vec!["https://tok3n-s3cret@127.0.0.1:9/extra/".into()],
        netrc: NetrcSource::Disabled,
        retry: RetryPolicy::none(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        c.indexes(),
        ["https://127.0.0.1:9/simple/", "https://127.0.0.1:9/extra/"],
        "credentials are stripped from the URLs (and kept per host)"
    );
    assert!(!format!("{c:?}").contains("s3cret"));
    let err = c.list_files("six").await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Network { .. }), "{msg}");
    assert!(msg.contains("https://127.0.0.1:9/simple/six/"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(!format!("{err:?}").contains("s3cret"));

    // A lock URL and a lock index with credentials.
    let rec = Recorder::default();
    let err = c
        .download_all(
            vec![
                WheelRequest {
                    name: "six".into(),
                    filename: SIX.2.into(),
                    url: Some(
                        "https://user:s3cret@127.0.0.1:9/files/six-1.17.0-py2.py3-none-any.whl"
                            .into(),
                    ),
                    sha256: None,
                    ..Default::default()
                },
                WheelRequest {
                    name: "idna".into(),
                    filename: IDNA.2.into(),
                    index: Some("https://user:s3cret@127.0.0.1:9/lock-index/".into()),
                    sha256: Some(digest(IDNA.3)),
                    ..Default::default()
                },
            ],
            &store,
            &rec,
        )
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?} {:?}", rec.events());
    assert!(
        matches!(err, Error::Several(ref v) if v.len() == 2),
        "{msg}"
    );
    assert!(
        msg.contains("https://127.0.0.1:9/files/six-1.17.0-py2.py3-none-any.whl"),
        "{msg}"
    );
    assert!(
        msg.contains("no index could be asked about package `idna`"),
        "{msg}"
    );
    assert!(
        msg.contains("https://127.0.0.1:9/lock-index/idna/"),
        "the lock's index is searched: {msg}"
    );
    assert!(!msg.contains("s3cret"), "{msg}");

    // Unparseable and insecure URLs with credentials.
    for bad in [
        "user:s3cret@nowhere",
        "http://user:s3cret@example.com/simple/",
    ] {
        let err = IndexClient::new(IndexOptions {
            index_url: Some(bad.into()),
            netrc: NetrcSource::Disabled,
            ..Default::default()
        })
        .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }
}

#[tokio::test]
async fn credentials_are_sent_to_their_host_from_the_url_or_netrc() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let wheel_dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(build_wheel(wheel_dir.path(), "demo", "1.0")).unwrap();
    let d = Digest::of(&bytes);
    // A relative link, resolved against the page URL.
    server.route(
        "/simple/demo/",
        vec![Resp::ok(
            JSON,
            json_page(&[(DEMO, "../../files/demo-1.0-py3-none-any.whl", Some(&d))]),
        )],
    );
    server.route(
        "/files/demo-1.0-py3-none-any.whl",
        vec![Resp::ok("application/octet-stream", bytes.clone())],
    );

    let c = IndexClient::new(IndexOptions {
        index_url: Some(format!("http://alice:s3cret@{}/simple", server.addr)),
        netrc: NetrcSource::Disabled,
        ..Default::default()
    })
    .unwrap();
    let got = c
        .download_all(
            vec![WheelRequest {
                name: "Demo".into(),
                version: "1.0".into(),
                filename: DEMO.into(),
                sha256: Some(d),
                ..Default::default()
            }],
            &store,
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        got[0].source.as_deref(),
        Some(server.url("/files/demo-1.0-py3-none-any.whl").as_str())
    );
    let seen = server.seen();
    assert_eq!(
        seen.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(),
        ["/simple/demo/", "/files/demo-1.0-py3-none-any.whl"]
    );
    for r in &seen {
        // base64("alice:s3cret")
        assert_eq!(
            r.header("authorization"),
            Some("Basic YWxpY2U6czNjcmV0"),
            "{r:?}"
        );
    }
    assert!(
        seen[0]
            .header("accept")
            .unwrap()
            .starts_with("application/vnd.pypi.simple.v1+json")
    );

    // netrc: a `machine` entry for the host.
    let netrc = wheel_dir.path().join("netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login bob password hunter2\n").unwrap();
    let c = IndexClient::new(IndexOptions {
        index_url: Some(server.url("/simple/")),
        netrc: NetrcSource::File(netrc),
        ..Default::default()
    })
    .unwrap();
    c.list_files("demo").await.unwrap();
    let last = server.seen().pop().unwrap();
    assert_eq!(last.header("authorization"), Some("Basic Ym9iOmh1bnRlcjI="));

    // No credentials configured: none sent.
    let c = local_client(&server, IndexOptions::default());
    c.list_files("demo").await.unwrap();
    assert_eq!(server.seen().pop().unwrap().header("authorization"), None);
}

#[tokio::test]
async fn transient_failures_are_retried_and_cut_off_bodies_store_nothing() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let body = vec![7u8; 300_000];
    let d = Digest::of(&body);
    server.route(
        "/simple/demo/",
        vec![
            Resp::status(503),
            Resp::status(429),
            Resp::ok(JSON, json_page(&[(DEMO, "/files/demo.whl", Some(&d))])),
        ],
    );
    let mut cut = Resp::ok("application/octet-stream", body.clone());
    cut.truncate_at = Some(1000);
    server.route(
        "/files/demo.whl",
        vec![
            cut,
            Resp::status(502),
            Resp::ok("application/octet-stream", body.clone()),
        ],
    );
    let c = local_client(&server, IndexOptions::default());
    let rec = Recorder::default();
    let got = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                sha256: Some(d),
                ..Default::default()
            }],
            &store,
            &rec,
        )
        .await
        .unwrap();
    assert!(got[0].fetched);
    assert_eq!(std::fs::read(&got[0].path).unwrap(), body);
    assert_eq!(server.seen().len(), 6, "3 page attempts + 3 file attempts");
    // The cut-off transfer is resumed where it stopped (past the 502), not started over.
    let ranges: Vec<Option<String>> = server
        .seen()
        .iter()
        .filter(|r| r.path == "/files/demo.whl")
        .map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(
        ranges,
        [None, Some("bytes=1000-".into()), Some("bytes=1000-".into())]
    );
    assert_eq!(
        rec.count("retrying"),
        2,
        "page retries are not reported per wheel, file retries are: {:?}",
        rec.events()
    );
    assert_eq!(tmp_files(dir.path()), 0);

    // Always cut off: gives up after max_attempts with a network error; nothing stored.
    let dir2 = tempfile::tempdir().unwrap();
    let store2 = Store::open(dir2.path()).unwrap();
    let mut cut = Resp::ok("application/octet-stream", body.clone());
    cut.truncate_at = Some(1000);
    server.route("/files/cut.whl", vec![cut]);
    let err = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                url: Some(server.url("/files/cut.whl")),
                sha256: Some(d),
                ..Default::default()
            }],
            &store2,
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Network { attempts: 4, .. }), "{err}");
    assert!(!store2.contains(&d));
    assert_eq!(tmp_files(dir2.path()), 0);

    // A server that ignores Range sends the whole file again: the old bytes are dropped.
    let dir3 = tempfile::tempdir().unwrap();
    let store3 = Store::open(dir3.path()).unwrap();
    let mut cut = Resp::ok("application/octet-stream", body.clone());
    cut.truncate_at = Some(1000);
    let mut whole = Resp::ok("application/octet-stream", body.clone());
    whole.ignore_range = true;
    server.route("/files/norange.whl", vec![cut, whole]);
    let got = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                url: Some(server.url("/files/norange.whl")),
                sha256: Some(d),
                ..Default::default()
            }],
            &store3,
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got[0].path).unwrap(), body);
    assert_eq!(tmp_files(dir3.path()), 0);

    // A 404 for the file is not retried and says what to do.
    let err = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                url: Some(server.url("/files/gone.whl")),
                sha256: Some(d),
                ..Default::default()
            }],
            &store2,
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Status { status: 404, .. }), "{err}");
    assert!(err.to_string().contains("regenerate the lock"), "{err}");
    assert_eq!(
        server
            .seen()
            .iter()
            .filter(|r| r.path == "/files/gone.whl")
            .count(),
        1
    );
}

#[tokio::test]
async fn find_links_directory_with_a_wheel_built_here_is_found_and_used() {
    let server = Server::start(); // the index knows nothing (404 for everything)
    let links = tempfile::tempdir().unwrap();
    let path = build_wheel(links.path(), "demo", "1.0");
    std::fs::write(links.path().join("notes.txt"), "not a wheel").unwrap();
    let (d, size) = Digest::of_reader(std::fs::File::open(&path).unwrap()).unwrap();
    let c = local_client(
        &server,
        IndexOptions {
            find_links: vec![links.path().to_path_buf()],
            ..Default::default()
        },
    );
    let f = c.find_wheel_url("Demo", DEMO).await.unwrap();
    assert_eq!(f.sha256, Some(d), "hashed on first use");
    assert_eq!(f.url, url::Url::from_file_path(&path).unwrap().to_string());
    assert_eq!(f.size, Some(size));
    let listed = c.list_files("demo").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|f| f.filename.as_str())
            .collect::<Vec<_>>(),
        [DEMO]
    );
    assert!(listed[0].source.starts_with("--find-links "));

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let seen_before = server.seen().len();
    let rec = Recorder::default();
    let got = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                version: "1.0".into(),
                filename: DEMO.into(),
                sha256: Some(d),
                ..Default::default()
            }],
            &store,
            &rec,
        )
        .await
        .unwrap();
    assert!(got[0].fetched);
    assert_eq!((got[0].sha256, got[0].size), (d, size));
    assert_eq!(
        std::fs::read(&got[0].path).unwrap(),
        std::fs::read(&path).unwrap()
    );
    assert_eq!(server.seen().len(), seen_before, "the index was not asked");
    assert_eq!(rec.count("warning"), 0);

    // A pinned hash the local file does not have: not used; the index has nothing either, so the
    // error is the mismatch of the local file.
    let wrong = Digest::of(b"other build");
    let err = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                sha256: Some(wrong),
                ..Default::default()
            }],
            &store,
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::HashMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(!store.contains(&wrong));

    // Offline, find-links still works.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let offline = IndexClient::new(IndexOptions {
        offline: true,
        find_links: vec![links.path().to_path_buf()],
        netrc: NetrcSource::Disabled,
        ..Default::default()
    })
    .unwrap();
    let got = offline
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                sha256: Some(d),
                ..Default::default()
            }],
            &store,
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert!(store.contains(&got[0].sha256));
}

#[tokio::test]
async fn offline_lists_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // One wheel already stored.
    let present = b"pretend wheel";
    let pd = store.put_bytes(present).unwrap();
    let c = IndexClient::new(IndexOptions {
        offline: true,
        netrc: NetrcSource::Disabled,
        ..Default::default()
    })
    .unwrap();
    let requests = vec![
        WheelRequest {
            name: "demo".into(),
            version: "1.0".into(),
            filename: DEMO.into(),
            sha256: Some(pd),
            ..Default::default()
        },
        locked(SIX),
        WheelRequest {
            sha256: None,
            ..by_name(IDNA)
        },
    ];
    let err = c
        .download_all(requests.clone(), &store, &Recorder::default())
        .await
        .unwrap_err();
    let Error::Offline { missing } = &err else {
        panic!("wrong error: {err}");
    };
    assert_eq!(
        missing,
        &[
            "six==1.17.0 (six-1.17.0-py2.py3-none-any.whl)",
            "idna==3.10 (idna-3.10-py3-none-any.whl)"
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("run once without --offline") && msg.contains("--find-links DIR"),
        "{msg}"
    );
    // Lookups offline: only find-links (none here).
    assert!(matches!(
        c.list_files("six").await.unwrap_err(),
        Error::ProjectNotFound { .. }
    ));
    // Only the stored one: fine.
    let got = c
        .download_all(requests[..1].to_vec(), &store, &Recorder::default())
        .await
        .unwrap();
    assert!(!got[0].fetched && got[0].path == store.blob_path(&pd));
}

#[tokio::test]
async fn an_index_that_answers_html_to_a_json_request_is_read_as_pep503() {
    let server = Server::start();
    let d = Digest::of(b"wheel bytes");
    server.route(
        "/simple/demo/",
        vec![Resp::ok(
            "text/html; charset=utf-8",
            format!(
                r#"<html><body><a href="/f/{DEMO}#sha256={}" data-requires-python="&gt;=3.9">{DEMO}</a></body></html>"#,
                d.hex()
            ),
        )],
    );
    server.route(
        &format!("/f/{DEMO}"),
        vec![Resp::ok(
            "application/octet-stream",
            b"wheel bytes".to_vec(),
        )],
    );
    let c = local_client(&server, IndexOptions::default());
    let f = c.find_wheel_url("demo", DEMO).await.unwrap();
    assert_eq!(f.url, server.url(&format!("/f/{DEMO}")));
    assert_eq!(f.sha256, Some(d));
    assert_eq!(f.requires_python.as_deref(), Some(">=3.9"));
    // A second lookup uses the page fetched once.
    c.list_files("DEMO").await.unwrap();
    assert_eq!(server.seen().len(), 1);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let got = c
        .download_all(
            vec![WheelRequest {
                name: "demo".into(),
                filename: DEMO.into(),
                sha256: Some(d),
                ..Default::default()
            }],
            &store,
            &Recorder::default(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got[0].path).unwrap(), b"wheel bytes");
    assert_eq!(server.seen().len(), 2, "page once, file once");
}
