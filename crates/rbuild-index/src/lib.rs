//! Package-index client (PEP 691/503, find-links) and verified parallel wheel downloads into the
//! content store.
//!
//! # What it does
//!
//! A lockfile says *which* wheels to install ([`WheelRequest`]: name, version, file name, and usually
//! a URL and a sha256). [`IndexClient::download_all`] puts each of them into the content store
//! ([`rbuild_oci::Store`]), keyed by its sha256 exactly like an image layer, and returns where each
//! one is ([`DownloadedWheel`]):
//!
//! 1. **Already stored?** A wheel whose sha256 is known and whose blob is in the store is used as it
//!    is: *no request at all*. So once a lock's wheels are in the store, a download of that lock works
//!    with the index unreachable (e.g. `HTTPS_PROXY` pointing at a closed port) when the lock carries
//!    URLs and hashes (uv.lock, pylock.toml, hashed requirements).
//! 2. **Where from?** A local `path`, else a `--find-links` directory holding that file name (with
//!    the pinned hash), else the lock's URL, else a lookup by file name on the indexes.
//! 3. **Verified while streaming.** Bytes go straight from the network into a temp file in the store
//!    while their sha256 is computed (never whole in memory); the blob is renamed into place only if
//!    the hash (and the size, when known) match. A mismatch is an [`Error::HashMismatch`] naming the
//!    expected and actual hash and the URL, and nothing enters the store.
//! 4. **Recorded.** Every stored wheel gets a `(name, filename) → sha256` record in the store, so a
//!    later `--offline` run can find a wheel its lock does not pin by hash ([`stored_wheel`]).
//!
//! # Where files are looked up
//!
//! In this order, first match wins: the `--find-links` directories; the index the lock names for the
//! package (Poetry sources, uv's `registry`, pylock's `index`); `--index-url` (default
//! [`PYPI_SIMPLE`]); each `--extra-index-url` in order. Indexes are asked for PEP 691 JSON
//! (`Accept: application/vnd.pypi.simple.v1+json`) and PEP 503 HTML is parsed when that is what
//! comes back ([`simple`]). Project pages are fetched once per client.
//!
//! # Safety
//!
//! - Package names are validated ([`rbuild_python::validate_name`]) and normalized before any URL is
//!   built: `../x` or `a/b` never reaches the network ([`Error::InvalidName`]). Wheel file names are
//!   parsed and must belong to their package.
//! - Credentials come from the index URL's userinfo (`https://user:token@host/simple/`) or netrc
//!   (`$NETRC`, else `~/.netrc`) and are sent only to the host they belong to. They never appear in an
//!   error, a warning or a result: URLs are shown redacted ([`redact`]), e.g.
//!   `https://user:***@host/simple/`.
//! - TLS trusts the system store (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured) plus extra CA files;
//!   plain http is refused except for loopback and `--trusted-host` hosts.
//! - Proxies: `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` (and lowercase forms) are read
//!   from the environment when the client makes its first request.
//! - Transient failures (connection errors, timeouts, cut-off bodies, HTTP 5xx and 429) are retried
//!   with exponential backoff and jitter, a bounded number of times ([`RetryPolicy`]).
//!
//! # Hashes
//!
//! A request without sha256 (a requirements file without `--hash`) takes the hash the index lists,
//! with a [`Progress::warning`]; with [`IndexOptions::require_hashes`] that is an
//! [`Error::MissingHashes`] before any request. If the lock pins a hash and the index lists another
//! one for the same file, nothing is downloaded ([`Error::ListedHashMismatch`]). The pip rule "once
//! one entry has a hash every entry must" belongs to the lockfile reader.
//!
//! # Example
//!
//! ```no_run
//! use rbuild_index::{IndexClient, IndexOptions, NoProgress, WheelRequest};
//! use rbuild_oci::{Digest, Store};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = IndexClient::new(IndexOptions::default())?;
//! let store = Store::open("/tmp/rbuild-store")?;
//! let wheels = client
//!     .download_all(
//!         vec![WheelRequest {
//!             name: "six".into(),
//!             version: "1.17.0".into(),
//!             filename: "six-1.17.0-py2.py3-none-any.whl".into(),
//!             sha256: Some(Digest::parse(
//!                 "sha256:4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
//!             )?),
//!             ..Default::default()
//!         }],
//!         &store,
//!         &NoProgress,
//!     )
//!     .await?;
//! assert!(wheels[0].path.is_file());
//! // What does the index list for a project?
//! let files = client.list_files("idna").await?;
//! assert!(files.iter().any(|f| f.filename == "idna-3.10-py3-none-any.whl"));
//! # Ok(()) }
//! ```

mod client;
mod download;
mod error;
mod find_links;
pub mod netrc;
mod progress;
pub mod redact;
pub mod simple;
mod tls;

pub use client::{IndexClient, IndexOptions, NetrcSource, PYPI_SIMPLE, PageFormat, RetryPolicy};
pub use download::{DownloadedWheel, WheelRequest, stored_wheel};
pub use error::{Error, Result};
pub use progress::{NoProgress, Progress};
pub use simple::IndexFile;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}

    /// The CLI runs these futures on a multi-threaded runtime (`tokio::spawn` needs `Send`).
    #[test]
    fn client_and_futures_are_send() {
        assert_send_sync::<IndexClient>();
        assert_send_sync::<Error>();
        let client = IndexClient::new(IndexOptions {
            offline: true,
            netrc: NetrcSource::Disabled,
            ..Default::default()
        })
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = rbuild_oci::Store::open(dir.path()).unwrap();
        let fut = client.download_all(Vec::new(), &store, &NoProgress);
        assert_send(&fut);
        let fut = client.list_files("six");
        assert_send(&fut);
        let fut = client.find_file("six", "six-1.17.0-py2.py3-none-any.whl", None);
        assert_send(&fut);
    }
}
