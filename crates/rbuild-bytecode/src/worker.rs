//! One long-running compile worker: the target interpreter running the embedded script, spoken
//! to over length-prefixed frames on stdin/stdout, bounded by a deadline.
//!
//! All I/O uses non-blocking pipes and `poll(2)`, so a worker that stops reading, floods stderr,
//! never answers, or leaves a grandchild holding its pipes open cannot block us past the
//! deadline; the worker runs in its own process group, which is killed as a whole.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rbuild_runner::Python;

/// The embedded worker script.
pub(crate) const SCRIPT: &str = include_str!("worker.py");
/// How much of the worker's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;
/// The largest frame a worker may send (a .pyc of a huge generated module is tens of MB).
const MAX_FRAME: usize = 1 << 30;

/// What the worker says when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub cache_tag: String,
    pub magic: [u8; 4],
    pub version: String,
    pub sys_version: String,
}

/// One answer to a compile request.
pub(crate) enum Reply {
    /// The complete .pyc as the interpreter wrote it.
    Pyc(Vec<u8>),
    /// The source does not compile.
    Skipped(String),
}

/// How a worker failed (the caller adds the interpreter's description).
#[derive(Debug)]
pub(crate) enum Failure {
    Spawn(std::io::Error),
    TimedOut {
        limit: Duration,
        stderr: String,
    },
    Died {
        status: Option<ExitStatus>,
        stderr: String,
    },
    Garbage {
        detail: String,
        stderr: String,
    },
    Internal {
        message: String,
        stderr: String,
    },
}

pub(crate) struct Worker {
    child: Child,
    reaped: bool,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
    rbuf: Vec<u8>,
    tail: Vec<u8>,
    deadline: Instant,
    limit: Duration,
    /// A scratch directory the worker owns (a standby's), removed after the worker is killed.
    scratch: Option<tempfile::TempDir>,
}

fn set_nonblocking(fd: i32) -> std::io::Result<()> {
    // SAFETY: fcntl on a file descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Worker {
    /// Starts the script in `scratch` (which must exist) with `env` added.
    pub(crate) fn spawn(
        python: &dyn Python,
        scratch: &Path,
        env: &[(String, String)],
    ) -> Result<Worker, Failure> {
        let args: Vec<OsString> = ["-S", "-s", "-B", "-c", SCRIPT]
            .iter()
            .map(OsString::from)
            .collect();
        let mut env = env.to_vec();
        env.push(("PYTHONHASHSEED".into(), "0".into()));
        let mut cmd = python
            .command(&args, scratch, &env)
            .map_err(Failure::Spawn)?;
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = cmd.spawn().map_err(Failure::Spawn)?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = python.time_limit();
        let w = Worker {
            child,
            reaped: false,
            stdin,
            stdout,
            stderr,
            rbuf: Vec::new(),
            tail: Vec::new(),
            deadline: Instant::now() + limit,
            limit,
            scratch: None,
        };
        for fd in [
            w.stdin.as_ref().map(|s| s.as_raw_fd()),
            w.stdout.as_ref().map(|s| s.as_raw_fd()),
            w.stderr.as_ref().map(|s| s.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        {
            set_nonblocking(fd).map_err(Failure::Spawn)?;
        }
        Ok(w)
    }

    /// Keeps `dir` (the worker's scratch directory) until the worker is gone.
    pub(crate) fn keep_scratch(&mut self, dir: tempfile::TempDir) {
        self.scratch = Some(dir);
    }

    /// Reads the start-up frame.
    pub(crate) fn hello(&mut self) -> Result<Hello, Failure> {
        let frame = self.frame()?;
        let bad = |w: &mut Worker, what: &str| {
            Err(w.garbage(format!("a malformed start-up message ({what})")))
        };
        let Some(rest) = frame.strip_prefix(b"H") else {
            return bad(self, "not a hello frame");
        };
        let parts: Vec<&[u8]> = rest.splitn(5, |&b| b == 0).collect();
        if parts.len() != 5 || parts[0] != b"RBPYC1" {
            return bad(self, "wrong protocol tag");
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let magic_hex = text(parts[2]);
        let magic = match hex::decode(&magic_hex) {
            Ok(m) if m.len() == 4 => [m[0], m[1], m[2], m[3]],
            _ => return bad(self, "magic number"),
        };
        Ok(Hello {
            cache_tag: text(parts[1]),
            magic,
            version: text(parts[3]),
            sys_version: text(parts[4]),
        })
    }

    /// Sends one source and waits for the answer.
    pub(crate) fn compile(&mut self, image_path: &str, source: &[u8]) -> Result<Reply, Failure> {
        let body = 4 + image_path.len() + source.len();
        let mut req = Vec::with_capacity(4 + body);
        req.extend_from_slice(&(body as u32).to_be_bytes());
        req.extend_from_slice(&(image_path.len() as u32).to_be_bytes());
        req.extend_from_slice(image_path.as_bytes());
        req.extend_from_slice(source);
        if body > u32::MAX as usize {
            return Err(Failure::Internal {
                message: "source larger than 4 GiB".into(),
                stderr: String::new(),
            });
        }
        self.io(&req, 0)?;
        let frame = self.frame()?;
        match frame.first() {
            Some(b'O') => Ok(Reply::Pyc(frame[1..].to_vec())),
            Some(b'S') => Ok(Reply::Skipped(
                String::from_utf8_lossy(&frame[1..]).into_owned(),
            )),
            Some(b'E') => Err(Failure::Internal {
                message: String::from_utf8_lossy(&frame[1..]).into_owned(),
                stderr: self.stderr_text(),
            }),
            _ => Err(self.garbage("an answer of an unknown kind".into())),
        }
    }

    /// Closes stdin and waits for a clean exit.
    pub(crate) fn finish(mut self) -> Result<(), Failure> {
        self.stdin = None;
        let status = self.wait_exit(self.deadline)?;
        if status.success() {
            Ok(())
        } else {
            Err(Failure::Died {
                status: Some(status),
                stderr: self.stderr_text(),
            })
        }
    }

    fn frame(&mut self) -> Result<Vec<u8>, Failure> {
        self.io(&[], 4)?;
        let n =
            u32::from_be_bytes([self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]]) as usize;
        if n == 0 || n > MAX_FRAME {
            return Err(self.garbage(format!(
                "bytes that are not a frame (length field {n}, starting {:?})",
                String::from_utf8_lossy(&self.rbuf[..4])
            )));
        }
        self.io(&[], 4 + n)?;
        let frame = self.rbuf[4..4 + n].to_vec();
        self.rbuf.drain(..4 + n);
        Ok(frame)
    }

    /// Writes all of `out` and reads until `rbuf` holds at least `need` bytes, draining stderr.
    fn io(&mut self, mut out: &[u8], need: usize) -> Result<(), Failure> {
        loop {
            if out.is_empty() && self.rbuf.len() >= need {
                return Ok(());
            }
            let now = Instant::now();
            if now >= self.deadline {
                return Err(self.time_out());
            }
            let timeout = (self.deadline - now).as_millis().min(60_000) as i32 + 1;
            let mut fds = Vec::with_capacity(3);
            if !out.is_empty() {
                match &self.stdin {
                    Some(s) => fds.push(libc::pollfd {
                        fd: s.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    }),
                    None => return Err(self.died()),
                }
            }
            if let Some(s) = &self.stdout {
                fds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            } else if self.rbuf.len() < need {
                return Err(self.died());
            }
            if let Some(s) = &self.stderr {
                fds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs for the whole call.
            let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(Failure::Spawn(e));
            }
            if !out.is_empty()
                && let Some(stdin) = &mut self.stdin
            {
                match stdin.write(out) {
                    Ok(n) => out = &out[n..],
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Err(self.died()),
                }
            }
            self.read_stdout()?;
            self.read_stderr();
        }
    }

    fn read_stdout(&mut self) -> Result<(), Failure> {
        let Some(stdout) = &mut self.stdout else {
            return Ok(());
        };
        let mut buf = [0u8; 65536];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => {
                    self.stdout = None;
                    return Ok(());
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&buf[..n]);
                    if self.rbuf.len() > MAX_FRAME + 8 {
                        return Err(self.garbage("more output than any answer".into()));
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.stdout = None;
                    return Ok(());
                }
            }
        }
    }

    fn read_stderr(&mut self) {
        let Some(stderr) = &mut self.stderr else {
            return;
        };
        let mut buf = [0u8; 16384];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => {
                    self.stderr = None;
                    return;
                }
                Ok(n) => {
                    self.tail.extend_from_slice(&buf[..n]);
                    if self.tail.len() > 2 * STDERR_TAIL {
                        let cut = self.tail.len() - STDERR_TAIL;
                        self.tail.drain(..cut);
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// The last lines the worker wrote to stderr.
    fn stderr_text(&self) -> String {
        let start = self.tail.len().saturating_sub(STDERR_TAIL);
        let text = String::from_utf8_lossy(&self.tail[start..]);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(12);
        lines[from..].join("\n")
    }

    fn kill(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscalls. The child is not reaped yet, so its pid (and process group id,
        // which equals it) cannot have been reused.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        self.reaped = true;
    }

    fn time_out(&mut self) -> Failure {
        self.kill();
        self.read_stderr();
        Failure::TimedOut {
            limit: self.limit,
            stderr: self.stderr_text(),
        }
    }

    fn garbage(&mut self, detail: String) -> Failure {
        self.kill();
        self.read_stderr();
        Failure::Garbage {
            detail,
            stderr: self.stderr_text(),
        }
    }

    /// The worker stopped talking: collect its status (briefly) and stderr, then kill it.
    fn died(&mut self) -> Failure {
        let grace = Instant::now() + Duration::from_secs(2);
        let status = self.wait_exit(grace.min(self.deadline)).ok();
        self.kill();
        Failure::Died {
            status,
            stderr: self.stderr_text(),
        }
    }

    /// Waits for the child to exit until `until`, draining stderr; kills it at `until`.
    fn wait_exit(&mut self, until: Instant) -> Result<ExitStatus, Failure> {
        // Once stderr is closed (the child is exiting) there is nothing to poll: sleep, briefly at
        // first (a clean exit takes well under a millisecond from there), up to 5 ms.
        let mut nap = Duration::from_micros(50);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = true;
                    self.read_stderr();
                    return Ok(status);
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Spawn(e)),
            }
            let now = Instant::now();
            if now >= until {
                return Err(self.time_out());
            }
            let wait = (until - now).min(Duration::from_millis(5));
            match &self.stderr {
                Some(s) => {
                    let mut fds = [libc::pollfd {
                        fd: s.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // SAFETY: one valid pollfd for the duration of the call.
                    unsafe { libc::poll(fds.as_mut_ptr(), 1, wait.as_millis() as i32 + 1) };
                    self.read_stderr();
                }
                None => {
                    std::thread::sleep(wait.min(nap));
                    nap = (nap * 2).min(Duration::from_millis(5));
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        // Then (not before) its scratch directory goes.
        drop(self.scratch.take());
    }
}

/// `exit status 3` / `killed by signal 9` for messages.
pub(crate) fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (None, Some(sig)) => format!("was killed by signal {sig}"),
            _ => "exited".into(),
        },
        None => "stopped answering".into(),
    }
}
