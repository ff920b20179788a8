//! Proxies from the environment, and "no request at all" once the wheels are stored.
//!
//! One test in its own binary, because it changes `HTTPS_PROXY` for the whole process (reqwest reads
//! it when a client is built). Runtimes are dropped before the environment changes.

mod common;

use common::*;
use rbuild_index::{Error, IndexClient, IndexOptions, NetrcSource, RetryPolicy};
use rbuild_oci::Store;

fn set_proxy(value: &str) {
    // SAFETY: no other thread of this process reads the environment at this point (no runtime is
    // alive and this binary has a single test).
    unsafe {
        std::env::set_var("HTTPS_PROXY", value);
        std::env::set_var("https_proxy", value);
        std::env::remove_var("NO_PROXY");
        std::env::remove_var("no_proxy");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client() -> IndexClient {
    IndexClient::new(IndexOptions {
        netrc: NetrcSource::Disabled,
        retry: RetryPolicy {
            max_attempts: 2,
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn stored_wheels_need_no_request_and_env_proxies_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let lock = vec![locked(SIX), locked(IDNA), by_name(TYPING_EXTENSIONS)];

    // 1. Through a counting CONNECT proxy: the first run opens tunnels.
    let proxy = CountingProxy::start();
    set_proxy(&format!("http://{}", proxy.addr));
    {
        let rt = runtime();
        let got = rt
            .block_on(client().download_all(lock.clone(), &store, &Recorder::default()))
            .unwrap();
        assert!(got.iter().all(|w| w.fetched));
        let used = proxy.count();
        assert!(used >= 1, "HTTPS_PROXY was used");

        // 2. Second run, new client, same proxy: no tunnel at all.
        let rec = Recorder::default();
        let again = rt
            .block_on(client().download_all(lock.clone(), &store, &rec))
            .unwrap();
        assert!(again.iter().all(|w| !w.fetched));
        assert_eq!(proxy.count(), used, "no request was made on the second run");
        assert_eq!(rec.count("cached"), 3);
    }

    // 3. The index unreachable (proxy on a closed port): a lock with URL + hash still succeeds.
    set_proxy("http://127.0.0.1:9");
    let rt = runtime();
    let got = rt
        .block_on(client().download_all(lock[..2].to_vec(), &store, &Recorder::default()))
        .unwrap();
    assert!(got.iter().all(|w| !w.fetched));
    // ... and so does a poetry-style entry (hash, no URL) whose blob is stored.
    rt.block_on(client().download_all(lock[2..].to_vec(), &store, &Recorder::default()))
        .unwrap();

    // 4. Something not yet stored really is unreachable, and the error says what to do.
    let err = rt
        .block_on(client().download_all(vec![locked(MARKUPSAFE)], &store, &Recorder::default()))
        .unwrap_err();
    assert!(matches!(err, Error::Network { attempts: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(MARKUPSAFE.5) && msg.contains("HTTPS_PROXY") && msg.contains("--offline"),
        "{msg}"
    );
    assert_eq!(tmp_files(dir.path()), 0);
}
