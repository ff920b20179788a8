//! HTTP plumbing shared by rbuild's two network clients, the registry client (`rbuild-registry`)
//! and the package-index client (`rbuild-index`), so both trust, retry and download alike:
//!
//! - [`tls`]: the rustls client configuration: the system trust store (`SSL_CERT_FILE` and
//!   `SSL_CERT_DIR` honoured, so an intercepting proxy whose CA is only in the system store
//!   works), extra CA files (`--ca-file`, `certs.d/HOST/*.crt`), a client certificate, and the
//!   insecure mode of `--insecure-registry`;
//! - [`retry`]: the [`RetryPolicy`] (exponential backoff with ±50 % jitter, `Retry-After`,
//!   bounded in attempts and time) and which failures are transient (connection errors, 408, 429,
//!   5xx; each client's error type says which of its errors are, through [`retry::Transient`]);
//! - [`timeout`]: the time bounds of every request ([`Timeouts`]: connect, idle with a low-speed
//!   limit, the response head, an overall deadline scaled by size) and the [`Meter`] that applies
//!   them to one request, failing it with [`Stalled`] (a transient error) instead of hanging;
//! - [`pipeline`]: HTTP/1.1 pipelining, for chains of requests that depend on each other (a
//!   blob, the manifest that names it, the index that lists that manifest) in one round trip;
//! - [`download`]: one resumable, verified download into the content store
//!   ([`rbuild_oci::Store`]): `Range: bytes=N-` after a transfer broke off, the hash checked over
//!   the whole file, nothing stored that does not match.
//!
//! It knows nothing of registries or indexes: authentication, redirects, URLs and error messages
//! stay with the clients.

pub mod download;
pub mod pipeline;
pub mod retry;
pub mod timeout;
pub mod tls;

pub use download::{DownloadError, Expected, Partial, Watch, content_range_start, receive};
pub use retry::{RetryPolicy, Transient, is_transient_status, parse_retry_after};
pub use timeout::{InvalidTimeout, Meter, Stalled, Timeouts, find_stalled};
pub use tls::{ClientCert, TlsError, TlsOptions, rustls_config};
