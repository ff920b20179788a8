//! Bounded execution: a deadline for the whole process group, caps on what it prints.
//!
//! The child must lead its own process group (the [`crate::TargetPython`] command calls
//! `setsid()`; for other commands [`BoundedChild::spawn`] sets `process_group(0)` itself). The
//! group is killed with SIGKILL at the deadline, when the child prints more than allowed, when the
//! leader exits (so no descendant outlives it), and when a [`BoundedChild`] is dropped. The
//! leader is reaped only after its group was killed, so the group id cannot have been reused.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bounds of one run.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock time before the group is killed.
    pub timeout: Duration,
    /// Most bytes read from stdout ([`run_bounded`] only); more kills the group.
    pub max_stdout: u64,
    /// Most bytes read from stderr; more kills the group.
    pub max_stderr: u64,
    /// What ran, for messages (default: the program and its first arguments).
    pub label: Option<String>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(600),
            max_stdout: 1 << 30,
            max_stderr: 16 << 20,
            label: None,
        }
    }
}

impl Limits {
    /// Default caps with `timeout`.
    pub fn with_timeout(timeout: Duration) -> Limits {
        Limits {
            timeout,
            ..Limits::default()
        }
    }
}

/// Why a bounded run failed. Each message names what ran.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The deadline passed.
    #[error("{what} timed out after {} s and was killed", secs_text(*.after))]
    TimedOut {
        /// What ran.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// Killed by a signal (not ours).
    #[error("{what} was killed by signal {signal}{}", tail_text(.stderr_tail))]
    Signaled {
        /// What ran.
        what: String,
        /// The signal number.
        signal: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Exited with a non-zero code.
    #[error("{what} exited with code {code}{}", tail_text(.stderr_tail))]
    Failed {
        /// What ran.
        what: String,
        /// The exit code.
        code: i32,
        /// The last lines of its stderr.
        stderr_tail: String,
    },
    /// Printed more than allowed.
    #[error("{what} printed more than {limit} bytes on {stream} and was killed")]
    TooMuchOutput {
        /// What ran.
        what: String,
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The cap.
        limit: u64,
    },
    /// Could not be started.
    #[error("{what} could not start ({}): {source}", .path.display())]
    Spawn {
        /// What ran.
        what: String,
        /// The program.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Talking to it failed.
    #[error("{what}: {context}: {source}")]
    Io {
        /// What ran.
        what: String,
        /// What failed.
        context: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

fn secs_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}", ms / 1000)
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

fn tail_text(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; its stderr ends with:\n{tail}")
    }
}

/// The last `n` lines of `bytes`, lossily decoded.
fn last_lines(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn describe(cmd: &Command) -> String {
    let mut parts: Vec<OsString> = vec![cmd.get_program().to_os_string()];
    parts.extend(cmd.get_args().take(6).map(|a| a.to_os_string()));
    let text: Vec<String> = parts
        .iter()
        .map(|p| {
            let s = p.to_string_lossy();
            if s.chars().count() > 80 {
                format!("{}…", s.chars().take(80).collect::<String>())
            } else {
                s.into_owned()
            }
        })
        .collect();
    format!("`{}`", text.join(" "))
}

/// The process group and its leader, shared by the watchdog, the readers and the owner.
struct Group {
    pid: i32,
    /// Set once the leader is reaped: from then on the group id may be reused and is not signalled.
    reaped: Mutex<bool>,
    timed_out: AtomicBool,
    overflow: Mutex<Option<(&'static str, u64)>>,
}

impl Group {
    fn kill(&self) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            // SAFETY: a plain system call; the leader is not reaped, so the group id is ours.
            unsafe {
                libc::kill(-self.pid, libc::SIGKILL);
                // A leader that is not a group leader (a command without its own group).
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }
}

/// Waits until the leader `pid` exits (without reaping it) or `timeout` passes; true if it exited.
fn wait_exit(pid: i32, pidfd: Option<&OwnedFd>, timeout: Option<Duration>) -> bool {
    let start = Instant::now();
    loop {
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        if left == Some(Duration::ZERO) {
            return exited(pid);
        }
        match pidfd {
            Some(fd) => {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ms = left.map_or(-1, |l| l.as_millis().clamp(1, i32::MAX as u128) as i32);
                // SAFETY: one valid pollfd.
                let r = unsafe { libc::poll(&mut p, 1, ms) };
                if r > 0 {
                    return true;
                }
            }
            None => {
                if exited(pid) {
                    return true;
                }
                let step = Duration::from_millis(5);
                std::thread::sleep(left.map_or(step, |l| l.min(step)));
            }
        }
    }
}

/// Whether the leader has exited (not reaped: `WNOWAIT`).
fn exited(pid: i32) -> bool {
    // SAFETY: siginfo is plain data written by the kernel.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid arguments.
    let r = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if r != 0 {
        // ECHILD: the leader was already reaped (by `BoundedChild::reap`, which may win the race
        // with the watchdog): it has exited, so nothing is left to wait for.
        return io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD);
    }
    // SAFETY: reading the pid of a filled siginfo.
    unsafe { info.si_pid() == pid }
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: plain system call.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A running child whose process group is bounded in time; for consumers that stream its
/// stdin/stdout. Stderr is captured (up to [`Limits::max_stderr`]) for messages.
pub struct BoundedChild {
    /// The child's stdin (piped).
    pub stdin: Option<ChildStdin>,
    /// The child's stdout (piped).
    pub stdout: Option<ChildStdout>,
    child: Option<Child>,
    group: Arc<Group>,
    watchdog: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<io::Result<Vec<u8>>>>,
    what: String,
    timeout: Duration,
}

impl BoundedChild {
    /// Spawns `cmd` with piped stdin, stdout and stderr in its own process group, and a watchdog
    /// that kills the group at the deadline or as soon as the leader exits.
    pub fn spawn(mut cmd: Command, limits: &Limits) -> Result<BoundedChild, RunError> {
        let what = limits.label.clone().unwrap_or_else(|| describe(&cmd));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            what: what.clone(),
            path: cmd.get_program().into(),
            source,
        })?;
        let pid = child.id() as i32;
        let group = Arc::new(Group {
            pid,
            reaped: Mutex::new(false),
            timed_out: AtomicBool::new(false),
            overflow: Mutex::new(None),
        });
        let stderr = child.stderr.take().map(|mut err| {
            let g = Arc::clone(&group);
            let cap = limits.max_stderr;
            std::thread::spawn(move || read_capped(&mut err, cap, "stderr", &g))
        });
        let g = Arc::clone(&group);
        let timeout = limits.timeout;
        let watchdog = std::thread::spawn(move || {
            let pidfd = pidfd_open(g.pid);
            if !wait_exit(g.pid, pidfd.as_ref(), Some(timeout)) {
                g.timed_out.store(true, Ordering::SeqCst);
                g.kill();
                wait_exit(g.pid, pidfd.as_ref(), None);
            }
            // The leader is gone: so are its descendants.
            g.kill();
        });
        Ok(BoundedChild {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child: Some(child),
            group,
            watchdog: Some(watchdog),
            stderr,
            what,
            timeout,
        })
    }

    /// Kills the whole process group now.
    pub fn kill(&self) {
        self.group.kill();
    }

    /// The child's process id (also its process group id).
    pub fn id(&self) -> u32 {
        self.group.pid as u32
    }

    /// Closes stdin, waits for the child (and its group) to end, and reports how it ended;
    /// `Ok` holds its stderr. Stdout, if not taken, is dropped first.
    pub fn wait(mut self) -> Result<Vec<u8>, RunError> {
        drop(self.stdin.take());
        drop(self.stdout.take());
        self.finish()
    }

    fn finish(&mut self) -> Result<Vec<u8>, RunError> {
        if let Some(w) = self.watchdog.take() {
            let _ = w.join();
        }
        let status = self.reap();
        let stderr = match self.stderr.take().map(|h| h.join()) {
            Some(Ok(Ok(bytes))) => bytes,
            Some(Ok(Err(e))) => {
                return Err(RunError::Io {
                    what: self.what.clone(),
                    context: "cannot read its stderr",
                    source: e,
                });
            }
            _ => Vec::new(),
        };
        let status = status.map_err(|e| RunError::Io {
            what: self.what.clone(),
            context: "cannot wait for it",
            source: e,
        })?;
        self.judge(status, stderr)
    }

    fn reap(&mut self) -> io::Result<ExitStatus> {
        let mut child = self
            .child
            .take()
            .ok_or_else(|| io::Error::other("already reaped"))?;
        let mut reaped = self.group.reaped.lock().unwrap_or_else(|e| e.into_inner());
        // The leader has exited (the watchdog saw it), so this does not block long.
        let status = child.wait();
        *reaped = true;
        status
    }

    fn judge(&self, status: ExitStatus, stderr: Vec<u8>) -> Result<Vec<u8>, RunError> {
        let what = self.what.clone();
        if self.group.timed_out.load(Ordering::SeqCst) {
            return Err(RunError::TimedOut {
                what,
                after: self.timeout,
            });
        }
        if let Some((stream, limit)) = *self
            .group
            .overflow
            .lock()
            .unwrap_or_else(|e| e.into_inner())
        {
            return Err(RunError::TooMuchOutput {
                what,
                stream,
                limit,
            });
        }
        if let Some(signal) = status.signal() {
            return Err(RunError::Signaled {
                what,
                signal,
                stderr_tail: last_lines(&stderr, 20),
            });
        }
        match status.code() {
            Some(0) => Ok(stderr),
            code => Err(RunError::Failed {
                what,
                code: code.unwrap_or(-1),
                stderr_tail: last_lines(&stderr, 20),
            }),
        }
    }
}

impl Drop for BoundedChild {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.group.kill();
            let _ = self.reap();
            if let Some(w) = self.watchdog.take() {
                let _ = w.join();
            }
        }
    }
}

/// Reads `r` to its end, keeping at most `cap` bytes; past the cap, records the overflow and
/// kills the group.
fn read_capped(r: &mut dyn Read, cap: u64, stream: &'static str, g: &Group) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() as u64 + n as u64 > cap {
            let take = (cap - out.len() as u64) as usize;
            out.extend_from_slice(&buf[..take]);
            g.overflow
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert((stream, cap));
            g.kill();
            // Drain until every writer is gone so nothing blocks; keep nothing more.
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// What a bounded run printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Stdout.
    pub stdout: Vec<u8>,
    /// Stderr.
    pub stderr: Vec<u8>,
}

/// Runs `cmd` to its end within `limits`: feeds `stdin` (then closes it) from a thread, reads
/// stdout and stderr in threads up to their caps, and kills the whole process group at the
/// deadline, on overflow, and once the leader exits. Success means exit code 0.
pub fn run_bounded(
    cmd: Command,
    stdin: Option<&[u8]>,
    limits: &Limits,
) -> Result<Output, RunError> {
    let mut child = BoundedChild::spawn(cmd, limits)?;
    let feeder = child.stdin.take().map(|mut w| {
        let data = stdin.unwrap_or_default().to_vec();
        std::thread::spawn(move || {
            // A child that stops reading (or dies) gives EPIPE: not our error to report.
            let _ = w.write_all(&data);
        })
    });
    let reader = child.stdout.take().map(|mut out| {
        let g = Arc::clone(&child.group);
        let cap = limits.max_stdout;
        std::thread::spawn(move || read_capped(&mut out, cap, "stdout", &g))
    });
    let stdout = match reader.map(|h| h.join()) {
        Some(Ok(r)) => r.map_err(|e| RunError::Io {
            what: child.what.clone(),
            context: "cannot read its stdout",
            source: e,
        }),
        _ => Ok(Vec::new()),
    };
    if let Some(f) = feeder {
        // Once stdout closed the group is done or dead; the feeder ends with EPIPE at worst.
        let _ = f.join();
    }
    let stderr = child.finish()?;
    Ok(Output {
        stdout: stdout?,
        stderr,
    })
}

/// Sets the command to start a new process group (for commands that do not call `setsid`
/// themselves, such as a [`crate::HostPython`] command).
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    cmd.process_group(0)
}
