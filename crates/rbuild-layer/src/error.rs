//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading ignore files, walking a build context or writing a
/// layer. Each message says what is wrong, where, and (when there is one) what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation on a named file or directory failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What rbuild was doing, e.g. "cannot read directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing the layer stream to its destination failed.
    #[error("cannot write the layer: {0}")]
    Write(#[source] io::Error),

    /// A path given to the layer writer is not a clean relative path.
    #[error("invalid path {path:?} in layer: {reason}")]
    InvalidPath {
        /// The offending path.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A directory was appended after it had already been written (explicitly or as an automatic
    /// parent of an earlier entry).
    #[error(
        "directory {0:?} was already written to the layer; append a directory before its contents \
         (it is otherwise created automatically with mode 0755) and only once"
    )]
    DuplicateDirectory(String),

    /// A file yielded a different number of bytes than its announced size: it changed while it
    /// was being read.
    #[error(
        "{path} changed while it was being read: expected {expected} bytes, {}; \
         rebuild once nothing is writing to it",
        match .actual { Some(n) => format!("got {n}"), None => "got more".to_string() }
    )]
    SizeMismatch {
        /// The path inside the layer.
        path: String,
        /// The size announced in the tar header.
        expected: u64,
        /// How many bytes the reader produced; `None` when it had more than `expected`.
        actual: Option<u64>,
    },

    /// `SOURCE_DATE_EPOCH` is set to something that is not a usable Unix timestamp.
    #[error(
        "SOURCE_DATE_EPOCH={value:?} is not valid: {reason}; set it to a whole number of seconds \
         since 1970-01-01 (e.g. `git log -1 --format=%ct`) or unset it"
    )]
    SourceDateEpoch {
        /// The value found in the environment.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A compression name is not one of `gzip`, `zstd`, `none`.
    #[error("unknown compression {0:?}: expected gzip, zstd or none")]
    UnknownCompression(String),

    /// A pattern of an ignore file is malformed.
    #[error("{file}:{line}: invalid pattern {pattern:?}: {reason}")]
    IgnorePattern {
        /// The ignore file (or source name) the pattern comes from.
        file: String,
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An ignore file is not valid UTF-8.
    #[error("{file}:{line}: the line is not valid UTF-8; rbuild reads ignore files as UTF-8")]
    IgnoreEncoding {
        /// The ignore file.
        file: String,
        /// 1-based line number.
        line: usize,
    },

    /// The build context is not a directory.
    #[error("build context {} is not a directory; pass the directory holding your app", .0.display())]
    ContextNotADirectory(PathBuf),

    /// A file name in the build context is not valid UTF-8 and is not excluded.
    #[error(
        "{}: file name is not valid UTF-8; rename it or exclude it in .dockerignore",
        .0.display()
    )]
    NonUtf8Path(PathBuf),
}

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
