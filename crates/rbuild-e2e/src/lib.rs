//! Helpers for rbuild's end-to-end tests: run the `rbuild` binary, pull an image and run it with runc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Tells the helpers where the `rbuild` binary is (tests of the rbuild-cli package pass
/// `env!("CARGO_BIN_EXE_rbuild")`).
pub fn set_bin(path: &str) {
    let _ = BIN.set(PathBuf::from(path));
}

/// The `rbuild` binary: the one given to [`set_bin`], else built with `cargo build -p rbuild-cli`.
pub fn rbuild_bin() -> PathBuf {
    BIN.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "rbuild-cli"])
            .current_dir(&root)
            .status()
            .expect("cargo build");
        assert!(status.success(), "building rbuild failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/rbuild")
    })
    .clone()
}

/// The result of running rbuild.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
    /// Peak RSS in kB (from wait4).
    pub max_rss_kb: i64,
}

impl Run {
    /// Panics with the output unless the run succeeded.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "rbuild failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    /// stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs rbuild with `args` in `dir`, with `env` added and `RBUILD_CACHE_DIR` set to `cache`.
pub fn rbuild(dir: &Path, cache: &Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(rbuild_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("RBUILD_CACHE_DIR", cache)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn rbuild");
    wait_with_rusage(child)
}

fn wait_with_rusage(mut child: Child) -> Run {
    use std::io::Read;
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).ok();
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).ok();
        s
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child's pid with valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    Run {
        code,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
        max_rss_kb: usage.ru_maxrss,
    }
}

/// Runs a command, panicking with its output on failure.
pub fn sh(cmd: &str, args: &[&str]) -> Output {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// An image pulled with skopeo and unpacked with umoci into a runc bundle.
pub struct Bundle {
    /// Holds the files.
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// `skopeo copy docker://REF oci:...` then `umoci unpack`.
    pub fn pull(reference: &str) -> Bundle {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = format!("oci:{}:img", dir.path().join("oci").display());
        sh(
            "skopeo",
            &[
                "copy",
                "-q",
                "--src-tls-verify=false",
                &format!("docker://{reference}"),
                &layout,
            ],
        );
        sh(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:img", dir.path().join("oci").display()),
                &dir.path().join("bundle").display().to_string(),
            ],
        );
        Bundle { dir }
    }

    /// The unpacked root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("bundle/rootfs")
    }

    /// The runtime config umoci made from the image config.
    pub fn config(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("bundle/config.json")).unwrap())
            .unwrap()
    }

    fn write_config(&self, args: Option<&[&str]>) {
        let mut c = self.config();
        c["process"]["terminal"] = false.into();
        // Share the host network so a server in the image answers on 127.0.0.1.
        let ns: Vec<serde_json::Value> = c["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["type"] != "network")
            .cloned()
            .collect();
        c["linux"]["namespaces"] = ns.into();
        if let Some(a) = args {
            c["process"]["args"] = serde_json::json!(a);
        }
        std::fs::write(
            self.dir.path().join("bundle/config.json"),
            serde_json::to_vec_pretty(&c).unwrap(),
        )
        .unwrap();
    }

    /// Runs the image's own process (User, Env, WorkingDir, Entrypoint as a runtime applies them) in
    /// the background.
    pub fn start(&self) -> Container {
        self.write_config(None);
        let id = container_id();
        let log = self.dir.path().join(format!("{id}.log"));
        let child = Command::new("runc")
            .args([
                "run",
                "-b",
                &self.dir.path().join("bundle").display().to_string(),
                &id,
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(self.dir.path().join(format!("{id}.err"))).unwrap())
            .spawn()
            .expect("runc run");
        Container { id, child, log }
    }

    /// The import trace of `import MODULES` in the image's `python3`, as its user: the exit
    /// status on the first line, then what `python -v` prints (`# code object from '….pyc'` for
    /// a module loaded from bytecode, `# code object from '….py'` for one compiled at import).
    pub fn import_trace(&self, modules: &str) -> String {
        let script = format!(
            "import subprocess, sys\n\
             r = subprocess.run([sys.executable, '-v', '-c', 'import {modules}'], \
             capture_output=True, text=True)\n\
             print(r.returncode)\n\
             print(r.stderr)\n"
        );
        self.exec(&["python3", "-c", &script])
    }

    /// Runs `args` in the image (as the image's user, env and working dir) and returns stdout.
    pub fn exec(&self, args: &[&str]) -> String {
        self.write_config(Some(args));
        let id = container_id();
        let out = Command::new("runc")
            .args([
                "run",
                "-b",
                &self.dir.path().join("bundle").display().to_string(),
                &id,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("runc run");
        let _ = Command::new("runc").args(["delete", "-f", &id]).output();
        assert!(
            out.status.success(),
            "runc run {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

fn container_id() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "rbuild-e2e-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A running container; killed and deleted on drop.
pub struct Container {
    id: String,
    child: Child,
    log: PathBuf,
}

impl Container {
    /// Its stdout so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET http://127.0.0.1:PORT/PATH`, retried until it answers or `timeout` passes:
    /// (status, body). Panics with the container's log when nothing answers.
    pub fn get(&self, port: u16, path: &str, timeout: Duration) -> (u16, String) {
        http_get(port, path, timeout).unwrap_or_else(|| {
            panic!(
                "no answer on port {port} for GET {path}; container log:\n{}",
                self.log()
            )
        })
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .args(["kill", &self.id, "KILL"])
            .output();
        let _ = self.child.wait();
        let _ = Command::new("runc")
            .args(["delete", "-f", &self.id])
            .output();
    }
}

/// `GET http://127.0.0.1:PORT/PATH` with retries until `timeout`: (status, body).
pub fn http_get(port: u16, path: &str, timeout: Duration) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let _ = write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            );
            let mut resp = String::new();
            if s.read_to_string(&mut resp).is_ok() && !resp.is_empty() {
                let status = resp
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                let body = resp
                    .split_once("\r\n\r\n")
                    .map(|(_, b)| b.to_string())
                    .unwrap_or_default();
                return Some((status, body));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copies a directory tree (files, dirs; symlinks as links).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
