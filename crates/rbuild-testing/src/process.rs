//! Child processes that die with the test process.
//!
//! Every long-running child (the registry) is spawned from one process-wide "spawner" thread with
//! `PR_SET_PDEATHSIG = SIGKILL`. The kernel delivers that signal when the *thread* that forked the
//! child exits, so forking from a thread that lives as long as the process means: the child is
//! killed when the test process ends, however it ends (panic, `SIGKILL`, a `static` that is never
//! dropped). Normal shutdown still kills and reaps the child in `Drop`.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

type Request = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<Request>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("rbuild-testing-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(spawn_with_pdeathsig(&mut cmd));
                }
            })
            .expect("spawning the rbuild-testing spawner thread");
        Mutex::new(tx)
    })
}

fn spawn_with_pdeathsig(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: the closure only calls async-signal-safe functions (prctl, getppid, kill) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may already have died between fork and prctl.
            if libc::getppid() == 1 {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Spawns `cmd` so that it is killed when this process exits (see the module docs).
pub(crate) fn spawn_guarded(cmd: Command) -> io::Result<Child> {
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a short command to completion, capturing its output; maps "not found" to
/// [`Error::ToolMissing`] and a non-zero exit to [`Error::CommandFailed`].
///
/// `shown` is the command line used in error messages; it must not contain secrets.
pub(crate) fn run(mut cmd: Command, package: &str, shown: &str) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null());
    let out = cmd.output().map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::ToolMissing {
                program: program.clone(),
                package: package.to_string(),
                source,
            }
        } else {
            Error::io(format!("running `{shown}`"), source)
        }
    })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: shown.to_string(),
            status: out.status,
            stderr: tail(&String::from_utf8_lossy(&out.stderr), 30),
        });
    }
    Ok(out)
}
