//! The one error type of this crate. Every URL in a message is redacted (see [`crate::redact`]).

use std::path::PathBuf;

use rbuild_oci::{Digest, StoreError};

/// Everything that can go wrong finding or downloading a wheel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A package name that is not a valid name (e.g. `../x`, `a/b`). No request was made.
    #[error("{0}; it was refused before any request was made")]
    InvalidName(#[from] rbuild_python::NameError),
    /// A file name that is not a valid wheel name for the package. No request was made.
    #[error(
        "`{filename}` is not a valid wheel file name for package `{name}`: {reason}; it was refused before any request was made"
    )]
    InvalidFilename {
        /// The package.
        name: String,
        /// The file name as given.
        filename: String,
        /// What is wrong.
        reason: String,
    },
    /// An index, file or proxy URL that cannot be used.
    #[error("invalid URL {url}: {reason}")]
    InvalidUrl {
        /// The URL (redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// A plain-http URL for a host that is neither loopback nor trusted.
    #[error(
        "refusing plain http for {url}: use https, or pass --trusted-host {host} if this host is meant to be reached without TLS"
    )]
    InsecureUrl {
        /// The URL (redacted).
        url: String,
        /// Its host.
        host: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(String),
    /// The netrc file could not be read.
    #[error(
        "cannot read the netrc file {path}: {reason} (set NETRC to another file, or fix its permissions)"
    )]
    Netrc {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A request failed at the network level (after retries).
    #[error(
        "cannot reach {url} ({attempts} attempt(s)): {reason}; check the network and HTTPS_PROXY/NO_PROXY, or pass --offline if every wheel is already in the store"
    )]
    Network {
        /// The URL (redacted).
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        reason: String,
    },
    /// The server answered with an error status (after retries for 5xx and 429).
    #[error("{url} answered HTTP {status}{hint}")]
    Status {
        /// The URL (redacted).
        url: String,
        /// The status code.
        status: u16,
        /// What to do about it (starts with `; ` when present).
        hint: String,
    },
    /// A project page that could not be parsed.
    #[error("cannot read the index page {url}: {reason}")]
    InvalidPage {
        /// The page URL (redacted).
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No index (nor find-links directory) knows the project.
    #[error("package `{name}` was not found on {}; check its name, or pass --index-url/--extra-index-url/--find-links", .searched.join(", "))]
    ProjectNotFound {
        /// The (normalized) package name.
        name: String,
        /// Where rbuild looked (redacted).
        searched: Vec<String>,
    },
    /// The project exists but does not list the file.
    #[error("`{filename}` is not listed for package `{name}` on {}{}", .searched.join(", "), list_available(.available))]
    FileNotFound {
        /// The package.
        name: String,
        /// The wanted file.
        filename: String,
        /// Where rbuild looked (redacted).
        searched: Vec<String>,
        /// Some of the files that are listed (closest versions first), for the message.
        available: Vec<String>,
    },
    /// Downloaded bytes did not have the expected sha256. Nothing was stored.
    #[error(
        "hash mismatch for {filename} downloaded from {url}: expected {expected}, got {actual} ({size} bytes); nothing was stored. The file changed on the index or the lock is wrong: check the source, then regenerate the lock"
    )]
    HashMismatch {
        /// The wheel.
        filename: String,
        /// Where it came from (redacted URL or local path).
        url: String,
        /// The sha256 the lock (or index) pinned.
        expected: Digest,
        /// The sha256 of what arrived.
        actual: Digest,
        /// Bytes received.
        size: u64,
    },
    /// The index lists another sha256 for the file than the lock pins. Nothing was downloaded.
    #[error(
        "the lock pins {expected} for {filename}, but the index lists {listed} for it ({url}); nothing was downloaded. The lock and the index disagree: check the index, then regenerate the lock"
    )]
    ListedHashMismatch {
        /// The wheel.
        filename: String,
        /// The URL listed (redacted).
        url: String,
        /// The lock's sha256.
        expected: Digest,
        /// The index's sha256.
        listed: Digest,
    },
    /// Downloaded bytes had another size than expected. Nothing was stored.
    #[error(
        "size mismatch for {filename} downloaded from {url}: expected {expected} bytes, got {actual}; nothing was stored"
    )]
    SizeMismatch {
        /// The wheel.
        filename: String,
        /// Where it came from (redacted).
        url: String,
        /// The size the lock recorded.
        expected: u64,
        /// The size received (or announced by the server).
        actual: u64,
    },
    /// `--require-hashes` and some wheels have no sha256.
    #[error(
        "--require-hashes: no sha256 for {}; add `--hash=sha256:…` to each requirement (e.g. regenerate it with `uv pip compile --generate-hashes`), or drop --require-hashes to take the hashes from the index", .wheels.join(", ")
    )]
    MissingHashes {
        /// `name==version (filename)` of each wheel without a hash.
        wheels: Vec<String>,
    },
    /// `--offline` and some wheels are not in the store.
    #[error(
        "offline: {} wheel(s) are not in the store:\n  {}\nrun once without --offline, or add --find-links DIR with these wheels", .missing.len(), .missing.join("\n  ")
    )]
    Offline {
        /// `name==version (filename)` of each missing wheel.
        missing: Vec<String>,
    },
    /// A find-links directory could not be read.
    #[error("find-links directory {path}: {reason}")]
    FindLinks {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A local wheel file could not be read.
    #[error("local wheel {path}: {reason}")]
    LocalFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The content store failed (not a verification failure: those are the mismatch variants).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// No index could be asked about a package (each failed); each error is listed.
    #[error("no index could be asked about package `{name}`:\n{}", .errors.iter().map(|e| format!("    {e}")).collect::<Vec<_>>().join("\n"))]
    IndexesFailed {
        /// The package.
        name: String,
        /// One error per index.
        errors: Vec<Error>,
    },
    /// Several wheels failed; each error is listed.
    #[error("{} wheels failed:\n{}", .0.len(), .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<Error>),
}

fn list_available(files: &[String]) -> String {
    if files.is_empty() {
        "; it lists no files".to_string()
    } else {
        format!("; it lists e.g. {}", files.join(", "))
    }
}

impl Error {
    /// Merges several errors: none → `None`, one → itself, more → [`Error::Several`].
    pub fn merge(mut errors: Vec<Error>) -> Option<Error> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(Error::Several(errors)),
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;
