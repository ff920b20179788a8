//! Against the real PyPI (reachable on this machine): listings in both formats, parallel verified
//! downloads, hash mismatches, hashes taken from the index.

mod common;

use common::*;
use rbuild_index::simple::parse_html;
use rbuild_index::{Error, IndexClient, IndexOptions, NetrcSource, PageFormat, WheelRequest};
use rbuild_oci::{Digest, Store};
use std::collections::BTreeMap;

fn client(opts: IndexOptions) -> IndexClient {
    IndexClient::new(IndexOptions {
        netrc: NetrcSource::Disabled,
        ..opts
    })
    .unwrap()
}

#[tokio::test]
async fn pep691_json_listing_finds_a_known_file_with_its_hash() {
    let c = client(IndexOptions::default());
    let files = c.list_files("Six").await.unwrap();
    assert!(files.len() > 20, "six has many releases: {}", files.len());
    let f = c.find_wheel_url("SIX", SIX.2).await.unwrap();
    assert_eq!(f.filename, SIX.2);
    assert_eq!(f.url, SIX.5);
    assert_eq!(f.sha256, Some(digest(SIX.3)));
    assert_eq!(f.size, Some(SIX.4), "PEP 700 size from the JSON API");
    assert_eq!(f.source, "https://pypi.org/simple/six/");
    assert!(!f.yanked);
    assert!(f.is_wheel());
    // The sdist of the same release is listed too (for "sdist only" messages).
    assert!(
        files
            .iter()
            .any(|f| f.filename == "six-1.17.0.tar.gz" && !f.is_wheel())
    );

    let err = c
        .find_wheel_url("six", "six-0.0.1-py3-none-any.whl")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::FileNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("six-0.0.1-py3-none-any.whl") && msg.contains("https://pypi.org/simple/"),
        "{msg}"
    );
    assert!(
        msg.contains("six-0.9.0.tar.gz") || msg.contains("six-"),
        "lists what exists: {msg}"
    );

    let err = c
        .list_files("this-project-does-not-exist-rbuild-test-4242")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ProjectNotFound { .. }), "{err}");
}

#[tokio::test]
async fn html_fallback_live_with_accept_text_html() {
    let c = client(IndexOptions {
        format: PageFormat::Html,
        ..Default::default()
    });
    let f = c.find_wheel_url("idna", IDNA.2).await.unwrap();
    assert_eq!(f.url, IDNA.5);
    assert_eq!(f.sha256, Some(digest(IDNA.3)));
    assert_eq!(f.requires_python.as_deref(), Some(">=3.6"));
    assert_eq!(f.size, None, "HTML pages carry no size");
    // Same file list as the JSON API. PyPI caches the two pages apart, so for a while after a
    // release one of them may not list it yet: every file both list must agree (address and
    // hash), and a file only one lists must belong to a release newer than every one both list.
    let json = client(IndexOptions::default());
    let files = |list: Vec<rbuild_index::IndexFile>| -> BTreeMap<String, _> {
        list.into_iter()
            .map(|f| (f.filename, (f.url, f.sha256)))
            .collect()
    };
    let html = files(c.list_files("idna").await.unwrap());
    let json = files(json.list_files("idna").await.unwrap());
    let common: Vec<&String> = html.keys().filter(|f| json.contains_key(*f)).collect();
    for f in &common {
        assert_eq!(html[*f], json[*f], "{f}");
    }
    // idna-3.21.tar.gz, idna-3.21-py3-none-any.whl: (3, 21).
    let release = |file: &str| -> Vec<u64> {
        let v = file.strip_prefix("idna-").unwrap_or(file);
        let v = v.strip_suffix(".tar.gz").unwrap_or(v);
        let v = v.split('-').next().unwrap_or(v);
        v.split('.').map(|n| n.parse().unwrap_or(0)).collect()
    };
    let newest_common = common.iter().map(|f| release(f)).max().unwrap();
    let saved = include_str!("fixtures/idna-simple.html")
        .matches("<a ")
        .count();
    assert!(
        common.len() >= saved,
        "{} files in both listings, {saved} in the page saved earlier",
        common.len()
    );
    for only in html
        .keys()
        .chain(json.keys())
        .filter(|f| !common.contains(f))
    {
        assert!(
            release(only) > newest_common,
            "{only} is in one listing only, and not in a release newer than {newest_common:?}"
        );
    }
}

#[test]
fn html_fixture_saved_from_pypi_parses() {
    let html = include_str!("fixtures/idna-simple.html");
    let page = url::Url::parse("https://pypi.org/simple/idna/").unwrap();
    let files = parse_html(html, &page).unwrap();
    assert_eq!(
        files.len(),
        html.matches("<a ").count(),
        "every anchor is a file"
    );
    let f = files.iter().find(|f| f.filename == IDNA.2).unwrap();
    assert_eq!(f.url, IDNA.5);
    assert_eq!(f.sha256, Some(digest(IDNA.3)));
    assert_eq!(
        f.requires_python.as_deref(),
        Some(">=3.6"),
        "entities decoded"
    );
    assert!(
        files
            .iter()
            .all(|f| f.sha256.is_some() && f.url.starts_with("https://files.pythonhosted.org/"))
    );
}

#[tokio::test]
async fn parallel_downloads_are_verified_and_a_second_run_is_cached() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = client(IndexOptions {
        concurrency: 3,
        ..Default::default()
    });
    // Two with URL + hash (uv.lock), two by file name only (poetry.lock: looked up on the index).
    let requests = vec![
        locked(SIX),
        locked(MARKUPSAFE),
        by_name(IDNA),
        by_name(TYPING_EXTENSIONS),
    ];
    let rec = Recorder::default();
    let got = c
        .download_all(requests.clone(), &store, &rec)
        .await
        .unwrap();
    assert_eq!(got.len(), 4);
    for (w, want) in got.iter().zip([SIX, MARKUPSAFE, IDNA, TYPING_EXTENSIONS]) {
        assert_eq!(w.filename, want.2, "results in request order");
        assert_eq!(w.sha256, digest(want.3));
        assert_eq!(w.size, want.4);
        assert!(w.fetched);
        assert_eq!(w.source.as_deref(), Some(want.5));
        // The stored bytes really have that hash.
        let (d, n) = Digest::of_reader(std::fs::File::open(&w.path).unwrap()).unwrap();
        assert_eq!((d, n), (digest(want.3), want.4));
        assert_eq!(w.path, store.blob_path(&d));
    }
    assert_eq!(got[0].name, "six");
    assert_eq!(got[1].name, "markupsafe", "normalized");
    assert_eq!(rec.count("finished"), 4);
    assert_eq!(rec.count("warning"), 0, "{:?}", rec.events());
    assert_eq!(tmp_files(dir.path()), 0);

    // Second run, fresh client: everything from the store, no request at all (a client whose only
    // index is a closed port would fail on any lookup).
    let offline_ish = client(IndexOptions {
        index_url: Some("http://127.0.0.1:9/simple/".into()),
        retry: rbuild_index::RetryPolicy::none(),
        ..Default::default()
    });
    let rec = Recorder::default();
    let again = offline_ish
        .download_all(requests, &store, &rec)
        .await
        .unwrap();
    assert!(again.iter().all(|w| !w.fetched && w.source.is_none()));
    assert_eq!(rec.count("cached"), 4);
    assert_eq!(rec.count("started"), 0);
    assert_eq!(
        again.iter().map(|w| &w.path).collect::<Vec<_>>(),
        got.iter().map(|w| &w.path).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn hash_mismatch_names_expected_got_and_url_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let c = client(IndexOptions::default());
    let wrong = Digest::of(b"not six");
    let mut req = locked(SIX);
    req.sha256 = Some(wrong);
    let err = c
        .download_all(vec![req], &store, &Recorder::default())
        .await
        .unwrap_err();
    match &err {
        Error::HashMismatch {
            expected,
            actual,
            url,
            size,
            ..
        } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*actual, digest(SIX.3));
            assert_eq!(url, SIX.5);
            assert_eq!(*size, SIX.4);
        }
        other => panic!("wrong error: {other}"),
    }
    let msg = err.to_string();
    for part in [
        &wrong.to_string(),
        &format!("sha256:{}", SIX.3),
        SIX.5,
        SIX.2,
    ] {
        assert!(msg.contains(part), "{part} missing in: {msg}");
    }
    assert!(
        !store.contains(&wrong) && !store.contains(&digest(SIX.3)),
        "nothing stored"
    );
    assert_eq!(tmp_files(dir.path()), 0, "no temp file left");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );

    // Looked up by name: the index lists another hash than the lock pins: nothing is downloaded.
    let mut req = by_name(SIX);
    req.sha256 = Some(wrong);
    let err = c
        .download_all(vec![req], &store, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ListedHashMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&wrong.to_string()) && msg.contains(SIX.3) && msg.contains(SIX.5),
        "{msg}"
    );

    // A wrong size is caught from Content-Length, before any byte is stored.
    let mut req = locked(SIX);
    req.size = Some(SIX.4 + 1);
    let err = c
        .download_all(vec![req], &store, &Recorder::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(tmp_files(dir.path()), 0);
}

#[tokio::test]
async fn requirements_without_hashes_take_them_from_the_index_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let unhashed = WheelRequest {
        sha256: None,
        ..by_name(SIX)
    };
    // --require-hashes: refused before any request (the index is a closed port).
    let strict = client(IndexOptions {
        require_hashes: true,
        index_url: Some("http://127.0.0.1:9/simple/".into()),
        ..Default::default()
    });
    let err = strict
        .download_all(
            vec![locked(IDNA), unhashed.clone()],
            &store,
            &Recorder::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingHashes { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("six==1.17.0 (six-1.17.0-py2.py3-none-any.whl)"),
        "{err}"
    );
    assert!(!err.to_string().contains("idna"), "{err}");

    let c = client(IndexOptions::default());
    let rec = Recorder::default();
    let got = c
        .download_all(vec![unhashed.clone()], &store, &rec)
        .await
        .unwrap();
    assert_eq!(
        got[0].sha256,
        digest(SIX.3),
        "verified against the index's hash"
    );
    let warnings: Vec<String> = rec
        .events()
        .into_iter()
        .filter(|e| e.starts_with("warning"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no sha256 for six==1.17.0") && warnings[0].contains(SIX.3),
        "{warnings:?}"
    );

    // The (name, filename) record lets an offline run find it without a hash.
    assert_eq!(
        rbuild_index::stored_wheel(&store, "SIX", SIX.2).unwrap(),
        Some((digest(SIX.3), SIX.4))
    );
    let offline = client(IndexOptions {
        offline: true,
        ..Default::default()
    });
    let got = offline
        .download_all(vec![unhashed], &store, &Recorder::default())
        .await
        .unwrap();
    assert!(!got[0].fetched);
    assert_eq!(got[0].sha256, digest(SIX.3));
}
