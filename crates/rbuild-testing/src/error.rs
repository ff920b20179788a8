//! The crate's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while starting the harness's services or building the fixture.
///
/// Messages say what failed, where, and what to do; they never contain a password or token.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required external program is not installed.
    #[error(
        "could not run `{program}`: {source}. Install it (`.ci/run` installs everything the tests need: apt-get install {package})"
    )]
    ToolMissing {
        /// The program that could not be started.
        program: String,
        /// The Debian package that provides it.
        package: String,
        /// Why spawning failed.
        #[source]
        source: std::io::Error,
    },
    /// An external command ran but failed.
    #[error("`{command}` failed ({status}); its stderr ends with:\n{stderr}")]
    CommandFailed {
        /// The command line (never contains credentials).
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The registry process exited or did not answer `GET /v2/` in time.
    #[error(
        "the registry at {url} did not become ready: {reason}. Its log {log} ends with:\n{tail}"
    )]
    RegistryNotReady {
        /// The URL that was probed.
        url: String,
        /// What happened (exited, timed out).
        reason: String,
        /// The registry's log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A filesystem or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing, naming the path or address.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The base fixture is missing or malformed.
    #[error("base fixture: {0}")]
    Fixture(String),
    /// A TLS setup step failed (loading the generated CA, keys).
    #[error("TLS setup: {0}")]
    Tls(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
