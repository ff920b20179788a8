//! What earlier runs learned about a registry host that costs round trips to learn again: that a
//! loopback or `--insecure-registry` host answers in plain HTTP (so no HTTPS probe first), and
//! that it does not take single-request uploads (so sessions are opened at once).
//!
//! Kept as one small record per host in the content store (`registry-hosts` records, keyed by
//! the host's digest). Only what the client would find out by itself is kept, and only for hosts
//! that may use plain HTTP anyway; a remembered answer that stops holding (the host speaks TLS
//! now) is forgotten when a request fails, and the next run probes again.

use rbuild_oci::{Digest, Store};

const NAMESPACE: &str = "registry-hosts";

/// What is known of one host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Memo {
    /// The host answered in plain HTTP (it does not speak TLS).
    pub(crate) plain_http: bool,
    /// The host answered a single-request upload with `202` (it wants an upload session).
    pub(crate) sessions: bool,
}

fn key(host: &str) -> String {
    Digest::of(host.as_bytes()).hex().to_string()
}

/// The memo of `host` (empty when none or unreadable).
pub(crate) fn recall(store: &Store, host: &str) -> Memo {
    let Ok(Some(bytes)) = store.get_key(NAMESPACE, &key(host)) else {
        return Memo::default();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines = text.lines();
    // The first line names the host: a record for another host (a digest collision, a copied
    // file) is ignored.
    if lines.next() != Some(host) {
        return Memo::default();
    }
    let mut m = Memo::default();
    for l in lines {
        match l {
            "plain-http" => m.plain_http = true,
            "sessions" => m.sessions = true,
            _ => {}
        }
    }
    m
}

/// Records `memo` for `host` (best effort: a store that cannot be written only costs the probe
/// next time).
pub(crate) fn remember(store: &Store, host: &str, memo: Memo) {
    if memo == Memo::default() {
        let _ = store.remove_key(NAMESPACE, &key(host));
        return;
    }
    let mut text = format!("{host}\n");
    if memo.plain_http {
        text.push_str("plain-http\n");
    }
    if memo.sessions {
        text.push_str("sessions\n");
    }
    let _ = store.put_key(NAMESPACE, &key(host), text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_round_trips_and_is_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        assert_eq!(recall(&store, "127.0.0.1:5000"), Memo::default());
        let m = Memo {
            plain_http: true,
            sessions: true,
        };
        remember(&store, "127.0.0.1:5000", m);
        assert_eq!(recall(&store, "127.0.0.1:5000"), m);
        assert_eq!(recall(&store, "127.0.0.1:5001"), Memo::default());
        remember(&store, "127.0.0.1:5000", Memo::default());
        assert_eq!(recall(&store, "127.0.0.1:5000"), Memo::default());
    }

    #[test]
    fn a_record_naming_another_host_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        store
            .put_key(NAMESPACE, &key("a:1"), b"b:2\nplain-http\n")
            .unwrap();
        assert_eq!(recall(&store, "a:1"), Memo::default());
    }
}
