//! Running the target image's own Python on the build machine.
//!
//! Bytecode (PEP 552), PEP 517 wheel builds and dynamic project metadata need the interpreter
//! of the image being built: the bytecode format and the build backends belong to one CPython
//! X.Y. This crate unpacks what that interpreter needs from the base layers and starts it
//! natively, as an ordinary user, without a daemon or emulation.
//!
//! Every consumer (the bytecode compiler, the PEP 517 frontend) talks to an interpreter through
//! the [`Python`] trait: it asks for a [`std::process::Command`] that is already confined (cleared
//! environment, writes only under the scratch directory, no network) and then wires stdin/stdout
//! itself. [`HostPython`] implements the trait for an interpreter installed on the build machine
//! (tests, and `--python-runner host`-style escape hatches); the base-image runner implements it
//! for the unpacked base.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod bounded;
mod locate;
mod sandbox;
pub mod unpack;

pub use bounded::{BoundedChild, Limits, Output, RunError, own_process_group, run_bounded};
pub use locate::{Loader, TargetPython};
pub use sandbox::landlock_abi;
pub use unpack::UnpackedBase;

/// What can go wrong preparing the base image's interpreter.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A base layer could not be read.
    #[error(transparent)]
    Layer(#[from] rbuild_python::rootfs::LayerError),
    /// A layer entry would write outside the unpacked root.
    #[error("refusing to unpack {path} from the base image: {reason}")]
    UnsafeEntry {
        /// The entry's path in the image.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The cache key cannot name a directory.
    #[error(
        "the unpack cache key {key:?} is not usable as a directory name (use letters, digits, `.`, `_`, `-`, `:`)"
    )]
    BadKey {
        /// The key as given.
        key: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The interpreter path does not lead to an interpreter in the base.
    #[error("the base image has no usable interpreter at {path}: {reason}")]
    NoInterpreter {
        /// The interpreter path in the image.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The interpreter is for another platform than the build machine.
    #[error(
        "the base image's interpreter {interpreter} is built for {found}, and this machine runs {host}: it cannot run here; build on a {found} machine, or pass {hint} to skip what needs it"
    )]
    NotRunnable {
        /// The interpreter path in the image.
        interpreter: String,
        /// The interpreter's platform (`aarch64 (ELF machine 183)`).
        found: String,
        /// The build machine's.
        host: String,
        /// The flag that turns the step off (`--no-compile-bytecode`).
        hint: String,
    },
    /// The interpreter's standard library was not found.
    #[error(
        "cannot find the standard library of {interpreter} in the base image (looked for {searched}); is it a CPython installation?"
    )]
    NoStdlib {
        /// The interpreter path in the image.
        interpreter: String,
        /// Where it looked.
        searched: String,
    },
    /// The kernel cannot confine the interpreter.
    #[error(
        "cannot sandbox the base image's interpreter: {reason}; run on a kernel with Landlock (Linux 5.13+, enabled in the `lsm=` boot parameter) or allow running it unconfined"
    )]
    NoSandbox {
        /// Why.
        reason: String,
    },
}

/// A Python `major.minor` version, as the runner found it in the base.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PyVersion {
    /// `3` in 3.11.
    pub major: u8,
    /// `11` in 3.11.
    pub minor: u8,
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// An interpreter that consumers can start.
///
/// Implementations return a command that, once spawned, runs the interpreter with `args`
/// (after the interpreter's own path: pass `-s`, `-c`, a script path, …; note that `-I` and `-E`
/// make the interpreter ignore the environment, `PYTHONHASHSEED` included) with:
/// - an environment holding only what the implementation needs plus `env` (no host `PYTHON*`
///   variables; `PYTHONHASHSEED=0` so set and dict orders are stable),
/// - its working directory set to `scratch`, the only directory it may write to,
/// - no network where the platform allows enforcing it.
///
/// The caller sets stdio, spawns, and bounds the child's lifetime (see [`time_limit`](Python::time_limit)).
pub trait Python: Send + Sync {
    /// The interpreter's `major.minor`.
    fn version(&self) -> PyVersion;

    /// A confined command running the interpreter with `args`; `scratch` must exist.
    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<Command>;

    /// How long one invocation may run before it is killed.
    fn time_limit(&self) -> Duration {
        Duration::from_secs(600)
    }

    /// A short description for messages (`python3.11 from the base image sha256:…`).
    fn describe(&self) -> String;
}

/// An interpreter installed on the build machine (tests; never used for images unless asked).
///
/// It is not sandboxed: only the environment is cleared and the working directory set.
#[derive(Debug, Clone)]
pub struct HostPython {
    /// The interpreter, e.g. `/usr/bin/python3.11`.
    pub path: PathBuf,
    /// Its version (not probed: the caller states it).
    pub version: PyVersion,
}

impl HostPython {
    /// An interpreter at `path` of `version`.
    pub fn new(path: impl Into<PathBuf>, version: PyVersion) -> Self {
        HostPython {
            path: path.into(),
            version,
        }
    }
}

impl Python for HostPython {
    fn version(&self) -> PyVersion {
        self.version
    }

    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<Command> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .current_dir(scratch)
            .env_clear()
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", scratch)
            .env("TMPDIR", scratch);
        // Its own process group, so a bounded run can kill what it starts.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Ok(cmd)
    }

    fn describe(&self) -> String {
        format!("host interpreter {}", self.path.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_python_runs_with_a_cleared_environment() {
        let py = PathBuf::from("/usr/bin/python3");
        if !py.exists() {
            panic!("the build machine has python3 (see DESIGN.md)");
        }
        let dir = tempfile::tempdir().unwrap();
        let host = HostPython::new(
            py,
            PyVersion {
                major: 3,
                minor: 11,
            },
        );
        let out = host
            .command(
                &["-c".into(), "import os,sys; print(sorted(k for k in os.environ if k.startswith('PYTHON')), os.getcwd())".into()],
                dir.path(),
                &[],
            )
            .unwrap()
            .env_remove("NOTHING")
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(
            text.contains("['PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED']"),
            "{text}"
        );
        assert!(
            text.trim_end().ends_with(&dir.path().display().to_string()),
            "{text}"
        );
    }
}
