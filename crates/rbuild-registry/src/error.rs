//! The crate's error type.

use std::time::Duration;

use rbuild_oci::{Digest, ManifestError, NoSuchPlatform, StoreError};

use crate::reference::ReferenceError;
use crate::tls::TlsError;

/// Everything that can go wrong talking to a registry. Messages say what failed, where, and (through
/// [`Error::hint`]) what to do. No message ever contains a credential, a token or an `Authorization`
/// value; URLs are shown without their query string.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection failed, timed out, or was reset (retried).
    #[error("{what}: {host}: {reason}")]
    Transport {
        /// What was being done.
        what: String,
        /// The host.
        host: String,
        /// The error chain, without URLs.
        reason: String,
    },
    /// A request broke a time bound (no answer, a stalled or trickling body): retried once, so
    /// that a hung registry costs at most about twice the bound.
    #[error("{what}: {host}: {reason}")]
    Stalled {
        /// What was being done.
        what: String,
        /// The host.
        host: String,
        /// Which bound, and how long it waited.
        reason: String,
    },
    /// The server's certificate is not trusted.
    #[error("{host}: the server's TLS certificate is not trusted: {reason}")]
    Certificate {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// The registry answered with an unexpected status.
    #[error("{what}: {host} answered {status}{detail}")]
    Status {
        /// What was being done.
        what: String,
        /// The host.
        host: String,
        /// The HTTP status.
        status: u16,
        /// The registry's `errors[].code: message` list (with a leading `: `), or empty.
        detail: String,
        /// `Retry-After`, when the registry sent one.
        retry_after: Option<Duration>,
    },
    /// Content did not match its digest (retried; never stored).
    #[error(
        "{what}: the content received does not match its digest {expected} (got {actual}, {size} bytes); it was not stored"
    )]
    DigestMismatch {
        /// What was being fetched.
        what: String,
        /// The digest it should have had.
        expected: Digest,
        /// The digest it had.
        actual: Digest,
        /// Bytes received.
        size: u64,
    },
    /// Content had another size than its descriptor says (retried; never stored).
    #[error(
        "{what}: received {actual} bytes for {digest}, but its descriptor says {expected}; it was not stored"
    )]
    SizeMismatch {
        /// What was being fetched.
        what: String,
        /// Which blob.
        digest: Digest,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received (at least).
        actual: u64,
    },
    /// The registry broke the protocol (missing header, wrong digest in a response, ...).
    #[error("{what}: {host}: {reason}")]
    Protocol {
        /// What was being done.
        what: String,
        /// The host.
        host: String,
        /// What was wrong.
        reason: String,
    },
    /// Authentication failed.
    #[error("{host}: authentication failed: {reason}{}", origin_note(origin.as_deref()))]
    Auth {
        /// The registry host.
        host: String,
        /// Why (never the credential itself).
        reason: String,
        /// Where the credential sent came from (a file, a credential helper, a flag), when one
        /// was sent and its provider said.
        origin: Option<String>,
    },
    /// Credentials could not be looked up (config file, credential helper).
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// The registry.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A manifest does not parse.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The index has no image for the requested platform.
    #[error("{reference}: {details}")]
    Platform {
        /// The image.
        reference: String,
        /// The details.
        details: NoSuchPlatform,
    },
    /// A request that cannot be done as asked.
    #[error("{0}")]
    Invalid(String),
    /// A push to several references failed part way: `updated` were moved to the new image (their
    /// tags point at it), `not_updated` were not (they still point where they did before).
    #[error("{source}\n{}", partial_lines(updated, not_updated))]
    Partial {
        /// References that now point at the pushed image.
        updated: Vec<String>,
        /// References left as they were.
        not_updated: Vec<String>,
        /// The failure that stopped the push.
        #[source]
        source: Box<Error>,
    },
    /// A retryable error persisted.
    #[error("{last} (gave up after {attempts} attempts)")]
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        last: Box<Error>,
    },
}

impl Error {
    /// True when the same operation may succeed if it is started again: connection problems,
    /// timeouts, resets, 408, 429, 5xx, and content that did not match its digest or size.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. }
            | Error::Stalled { .. }
            | Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. } => true,
            Error::Status { status, .. } => rbuild_http::is_transient_status(*status),
            _ => false,
        }
    }

    /// The delay the registry asked for (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when the registry refused a manifest because a blob it names is missing
    /// (`MANIFEST_BLOB_UNKNOWN` or `BLOB_UNKNOWN`).
    pub fn is_blob_unknown(&self) -> bool {
        match self {
            Error::Status { status, detail, .. } => {
                (400..500).contains(status) && detail.contains("BLOB_UNKNOWN")
            }
            Error::GaveUp { last, .. } => last.is_blob_unknown(),
            Error::Partial { source, .. } => source.is_blob_unknown(),
            _ => false,
        }
    }

    /// The HTTP status, when the registry answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::GaveUp { last, .. } => last.status(),
            Error::Partial { source, .. } => source.status(),
            _ => None,
        }
    }

    /// True for a 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// A line of advice for the user, when there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::GaveUp { last, .. } => last.hint(),
            Error::Partial { source, .. } => source.hint(),
            Error::Certificate { host, .. } => Some(format!(
                "pass the registry's CA certificate with --ca-file FILE (or put it in /etc/containers/certs.d/{host}/ca.crt); --insecure-registry {host} skips verification"
            )),
            Error::Protocol { host, reason, .. } if reason.starts_with(crate::client::NOT_TLS) => {
                Some(format!(
                    "if {host} is a plain-HTTP registry you trust, pass --insecure-registry {host}"
                ))
            }
            Error::Transport { host, reason, .. } if reason.contains("refused") => Some(format!(
                "nothing answers at {host}: check the host and port, and that the registry is running"
            )),
            Error::Auth {
                host,
                origin: Some(origin),
                ..
            } => Some(format!(
                "the credentials for {host} came from {origin}: correct them there, or replace them with `rbuild login {host}`"
            )),
            Error::Status { status: 401, host, .. } | Error::Auth { host, .. } => Some(format!(
                "rbuild looked for credentials for {host} in: --creds, RBUILD_REGISTRY_USERNAME/RBUILD_REGISTRY_PASSWORD, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, $DOCKER_CONFIG or ~/.docker/config.json (with credential helpers); log in with `rbuild login {host}`, or check the ones found there"
            )),
            Error::Status { status: 403, host, .. } => Some(format!(
                "the credentials for {host} were accepted but may not do this: check the repository name and your permissions (`rbuild login {host}` to use others)"
            )),
            Error::Status { status: 404, .. } => Some(
                "check the repository name, tag or digest; `rbuild inspect REF` shows what a reference points to".to_string(),
            ),
            Error::DigestMismatch { .. } | Error::SizeMismatch { .. } => Some(
                "the registry (or something between it and rbuild) served corrupt content; try again later".to_string(),
            ),
            _ => None,
        }
    }
}

impl rbuild_http::Transient for Error {
    fn is_transient(&self) -> bool {
        self.is_retryable()
    }

    fn retry_after(&self) -> Option<Duration> {
        Error::retry_after(self)
    }

    fn is_stall(&self) -> bool {
        matches!(self, Error::Stalled { .. })
    }

    /// A failure that persisted through more than one attempt becomes [`Error::GaveUp`].
    fn gave_up(self, attempts: u32) -> Self {
        if attempts > 1 {
            Error::GaveUp {
                attempts,
                last: Box::new(self),
            }
        } else {
            self
        }
    }
}

/// `updated: a, b` / `not updated: c` lines (`none` for an empty list).
fn partial_lines(updated: &[String], not_updated: &[String]) -> String {
    let list = |l: &[String]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.join(", ")
        }
    };
    format!(
        "updated: {}\nnot updated: {}",
        list(updated),
        list(not_updated)
    )
}

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// ` (the credentials came from SOURCE)` for [`Error::Auth`], or nothing.
fn origin_note(origin: Option<&str>) -> String {
    origin
        .map(|s| format!(" (the credentials came from {s})"))
        .unwrap_or_default()
}
