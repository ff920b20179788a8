//! Wrong settings fail before anything is downloaded: the package index is never asked.
//!
//! The project has a lockfile with one package and `index_url` points at a local listener that
//! records every connection; a valid build of the same project does ask it (the control), so a
//! validation that ran too late would make these tests fail.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rbuild::{Build, BuildError, BuildRequest, Builder, ClientOptions, IndexClient, IndexOptions};
use rbuild::{Error, Platform, RequestError, Store};

/// A listener that counts connections and answers each with `404 Not Found`.
struct Index {
    url: String,
    hits: Arc<AtomicUsize>,
}

fn index() -> Index {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    Index { url, hits }
}

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), "print('hi')\n").unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
    dir
}

fn build(dir: &std::path::Path, index: &Index, cache: &std::path::Path) -> Build {
    Build::new("scratch")
        .isolated()
        .context(dir)
        .platforms([Platform::linux_amd64()])
        .python_version("3.11")
        .libc("glibc-2.36")
        .entrypoint(["python3", "-m", "main"])
        .index_url(&index.url)
        .store(Store::open(cache).unwrap())
}

/// Whether an error is the one expected.
type Check = fn(&RequestError) -> bool;

#[tokio::test]
async fn bad_user_port_and_recipe_fail_before_the_index_is_asked() {
    let index = index();
    let dir = project();
    let cache = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Build, Check)> = vec![
        (
            "user",
            build(dir.path(), &index, cache.path()).user("app"),
            |e| matches!(e, RequestError::User(u) if u == "app"),
        ),
        (
            "port",
            build(dir.path(), &index, cache.path()).port("80/http"),
            |e| matches!(e, RequestError::Port(p) if p == "80/http"),
        ),
        (
            "recipe",
            build(dir.path(), &index, cache.path()).recipe("fastapy"),
            |e| matches!(e, RequestError::Recipe(_)) && e.to_string().contains("fastapi, flask"),
        ),
    ];
    for (name, b, expected) in cases {
        match b.build().await {
            Err(Error::Request(e)) => assert!(expected(&e), "{name}: wrong error {e}"),
            Err(e) => panic!("{name}: not a request error: {e}"),
            Ok(_) => panic!("{name}: built"),
        }
        assert_eq!(
            index.hits.load(Ordering::SeqCst),
            0,
            "{name}: the index was asked"
        );
    }

    // A known recipe that does not fit the project (no ASGI app in main.py) is found out from
    // the context alone, before any wheel is looked up.
    let err = build(dir.path(), &index, cache.path())
        .recipe("fastapi")
        .build()
        .await
        .err()
        .expect("fastapi does not fit a script");
    assert!(
        matches!(
            &err,
            Error::Build(b) if matches!(
                b.as_ref(),
                BuildError::Recipe(rbuild::RecipeError::DoesNotFit { recipe, .. }) if recipe == "fastapi"
            )
        ),
        "not a recipe fit error: {err}"
    );
    assert_eq!(
        index.hits.load(Ordering::SeqCst),
        0,
        "recipe fit: the index was asked"
    );

    // The control: the same build with valid settings does ask the index (and fails there).
    let err = build(dir.path(), &index, cache.path())
        .build()
        .await
        .err()
        .expect("the index has no six");
    assert!(!matches!(err, Error::Request(_)), "{err}");
    assert!(
        index.hits.load(Ordering::SeqCst) > 0,
        "the control never asked the index"
    );
}

#[tokio::test]
async fn the_pipeline_validates_a_request_built_by_hand() {
    let index = index();
    let dir = project();
    let cache = tempfile::tempdir().unwrap();
    let mut req = BuildRequest::new(dir.path(), rbuild::BaseRef::Scratch);
    req.platforms = vec![Platform::linux_amd64()];
    req.user = Some("root".into());
    let builder = Builder::new(
        rbuild::Client::new(ClientOptions::default()).unwrap(),
        IndexClient::new(IndexOptions {
            index_url: Some(index.url.clone()),
            ..Default::default()
        })
        .unwrap(),
        Store::open(cache.path()).unwrap(),
    );
    let err = builder.build(&req).await.expect_err("refused");
    assert!(
        matches!(err, BuildError::Request(RequestError::User(_))),
        "{err}"
    );
    assert_eq!(index.hits.load(Ordering::SeqCst), 0);
}
