//! The real registry: Debian's `docker-registry` (CNCF distribution 2.8) on a free loopback port.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use regex::Regex;

use crate::error::{Error, Result};
use crate::process::{run, spawn_guarded, tail};
use crate::tls::{PROBE_USER_AGENT, ServerPki, generate_server_pki, probe_v2};
use crate::token::{TokenServer, token_dir};

/// How a [`Registry`] is set up.
#[derive(Clone, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, anonymous pull and push.
    Plain,
    /// Plain HTTP with Basic auth against an htpasswd file (bcrypt, made by `htpasswd -Bbn`).
    Htpasswd {
        /// The one known user.
        user: String,
        /// Their password.
        password: String,
    },
    /// HTTPS (HTTP/2 and HTTP/1.1) with a certificate for `127.0.0.1` and `localhost` signed by a
    /// CA generated for this registry ([`Registry::ca_pem_path`]); anonymous access.
    Tls,
    /// [`Mode::Tls`] plus [`Mode::Htpasswd`].
    TlsHtpasswd {
        /// The one known user.
        user: String,
        /// Their password.
        password: String,
    },
    /// Plain HTTP with Docker-style token auth: the registry challenges with
    /// `Bearer realm="http://127.0.0.1:PORT/token",service="rbuild-test-registry",scope=...` and
    /// trusts JWTs from the in-process [`TokenServer`] ([`Registry::token_server`]). The known user
    /// gets pull and push; anonymous callers get pull only.
    Token {
        /// The one known user.
        user: String,
        /// Their password.
        password: String,
    },
}

impl Mode {
    /// [`Mode::Htpasswd`] from string slices.
    pub fn htpasswd(user: &str, password: &str) -> Mode {
        Mode::Htpasswd {
            user: user.into(),
            password: password.into(),
        }
    }

    /// [`Mode::TlsHtpasswd`] from string slices.
    pub fn tls_htpasswd(user: &str, password: &str) -> Mode {
        Mode::TlsHtpasswd {
            user: user.into(),
            password: password.into(),
        }
    }

    /// [`Mode::Token`] from string slices.
    pub fn token(user: &str, password: &str) -> Mode {
        Mode::Token {
            user: user.into(),
            password: password.into(),
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self, Mode::Tls | Mode::TlsHtpasswd { .. })
    }

    fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Mode::Htpasswd { user, password }
            | Mode::TlsHtpasswd { user, password }
            | Mode::Token { user, password } => Some((user, password)),
            Mode::Plain | Mode::Tls => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Mode::Plain => "Plain",
            Mode::Htpasswd { .. } => "Htpasswd",
            Mode::Tls => "Tls",
            Mode::TlsHtpasswd { .. } => "TlsHtpasswd",
            Mode::Token { .. } => "Token",
        }
    }
}

/// Never shows the password.
impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.credentials() {
            Some((user, _)) => write!(
                f,
                "{} {{ user: {user:?}, password: <redacted> }}",
                self.name()
            ),
            None => f.write_str(self.name()),
        }
    }
}

/// One line of the registry's access log (Apache combined format, one per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogEntry {
    /// `GET`, `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    /// The request target, path and query (`/v2/library/python/blobs/uploads/?mount=...`).
    pub uri: String,
    /// The response status.
    pub status: u16,
    /// The client's `User-Agent`.
    pub user_agent: String,
    /// The protocol: `HTTP/1.1`, or `HTTP/2.0` over TLS where the client offered it.
    pub proto: String,
}

/// A running `docker-registry serve` on `127.0.0.1:PORT` with its own config, storage and log.
///
/// Stopped (killed and reaped, by pid) when dropped; its directory is removed then. `Send + Sync`:
/// share it between threads or tasks by reference or in an `Arc`. Starting blocks for about 0.1 s
/// (more in the TLS and token modes, which generate keys with `openssl`), which is fine inside a
/// tokio test too.
#[derive(Debug)]
pub struct Registry {
    mode: Mode,
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
    log_path: PathBuf,
    pki: Option<ServerPki>,
    token: Option<TokenServer>,
}

const READY_TIMEOUT: Duration = Duration::from_secs(15);

impl Registry {
    /// Starts a registry in `mode` and waits until `GET /v2/` answers (200, or 401 with auth).
    pub fn start(mode: Mode) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("rbuild-registry-")
            .tempdir()
            .map_err(|e| Error::io("creating a temporary directory for the registry", e))?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)
            .map_err(|e| Error::io(format!("creating {}", storage.display()), e))?;
        let pki = if mode.is_tls() {
            Some(generate_server_pki(dir.path())?)
        } else {
            None
        };
        let htpasswd = match &mode {
            Mode::Htpasswd { user, password } | Mode::TlsHtpasswd { user, password } => {
                let mut cmd = Command::new("htpasswd");
                cmd.args(["-Bbn", user, password]);
                let out = run(
                    cmd,
                    "apache2-utils",
                    &format!("htpasswd -Bbn {user} <password>"),
                )?;
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, &out.stdout)
                    .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
                Some(path)
            }
            _ => None,
        };
        let token = match &mode {
            Mode::Token { user, password } => {
                Some(TokenServer::start(&token_dir(dir.path()), user, password)?)
            }
            _ => None,
        };
        let log_path = dir.path().join("registry.log");
        let mut last_err = None;
        // A port found free can be taken by someone else before the registry binds it: retry.
        for _ in 0..5 {
            let port = free_port()?;
            let config = config_yaml(
                port,
                &storage,
                pki.as_ref(),
                htpasswd.as_deref(),
                token.as_ref(),
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config)
                .map_err(|e| Error::io(format!("writing {}", config_path.display()), e))?;
            let log = File::create(&log_path)
                .map_err(|e| Error::io(format!("creating {}", log_path.display()), e))?;
            let log2 = log
                .try_clone()
                .map_err(|e| Error::io(format!("opening {}", log_path.display()), e))?;
            let mut cmd = Command::new("docker-registry");
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log2);
            let child = spawn_guarded(cmd).map_err(|source| {
                if source.kind() == std::io::ErrorKind::NotFound {
                    Error::ToolMissing {
                        program: "docker-registry".into(),
                        package: "docker-registry".into(),
                        source,
                    }
                } else {
                    Error::io("starting docker-registry", source)
                }
            })?;
            let mut child = child;
            let ca = pki.as_ref().map(|p| p.ca_pem.as_path());
            match wait_ready(&mut child, port, ca, &log_path) {
                Ok(()) => {
                    return Ok(Registry {
                        mode,
                        port,
                        child,
                        dir,
                        log_path,
                        pki,
                        token,
                    });
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !read_log(&log_path).contains("address already in use") {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// Shorthand for [`Registry::start`]`(`[`Mode::Plain`]`)`.
    pub fn plain() -> Result<Registry> {
        Registry::start(Mode::Plain)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The mode it was started in.
    pub fn mode(&self) -> &Mode {
        &self.mode
    }

    /// `127.0.0.1:PORT`, the registry part of image references (`127.0.0.1:PORT/library/python:3.11-slim`).
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.mode.is_tls()
    }

    /// `(user, password)` in the auth modes.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.mode.credentials()
    }

    /// The generated CA certificate (PEM) in the TLS modes.
    pub fn ca_pem_path(&self) -> Option<&Path> {
        self.pki.as_ref().map(|p| p.ca_pem.as_path())
    }

    /// A directory that holds only the CA certificate, as `ca.crt`, in the TLS modes: usable as
    /// skopeo's `--src-cert-dir`/`--dest-cert-dir` or copied to `/etc/containers/certs.d/HOST/`.
    pub fn ca_cert_dir(&self) -> Option<&Path> {
        self.pki.as_ref().map(|p| p.ca_dir.as_path())
    }

    /// The token server in [`Mode::Token`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// Where the registry stores blobs and repositories (`docker/registry/v2/...` below it).
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// A scratch directory that lives as long as the registry (its config, keys and log are in
    /// it; tests may put their own files there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file that receives the registry's stdout and stderr.
    ///
    /// Each request produces an access-log line in Apache combined format, e.g.
    /// `127.0.0.1 - - [23/Nov/2026:22:10:34 +0000] "POST /v2/foo/blobs/uploads/ HTTP/1.1" 202 0 "" "ua"`,
    /// plus a logrus line (`msg="response completed" http.request.method=POST http.request.uri=...`).
    /// Count requests with [`Registry::access_log`] rather than grepping both.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The access-log entries so far, oldest first, without the harness's own readiness probes.
    ///
    /// The registry writes a line just after it sends the response, so this first waits until
    /// the log has stopped growing for 50 ms (at most 1 s).
    pub fn access_log(&self) -> Vec<AccessLogEntry> {
        let mut last = self.log();
        let start = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.log();
            if now.len() == last.len() || start.elapsed() > Duration::from_secs(1) {
                last = now;
                break;
            }
            last = now;
        }
        parse_access_log(&last)
            .into_iter()
            .filter(|e| e.user_agent != PROBE_USER_AGENT)
            .collect()
    }

    /// How many access-log entries have this method and a URI matching `uri_regex` (searched
    /// anywhere in path + query).
    ///
    /// # Panics
    /// If `uri_regex` is not a valid regex.
    pub fn count_requests(&self, method: &str, uri_regex: &str) -> usize {
        let re = Regex::new(uri_regex).expect("count_requests: invalid regex");
        self.access_log()
            .iter()
            .filter(|e| e.method == method && re.is_match(&e.uri))
            .count()
    }

    /// Blobs uploaded so far: `PUT /v2/NAME/blobs/uploads/UUID?digest=...` answered 201 (one per
    /// blob, whether it was sent in one PUT or in PATCH chunks first).
    pub fn blob_uploads(&self) -> usize {
        count_entries(
            &self.access_log(),
            "PUT",
            r"^/v2/.+/blobs/uploads/[^?]+",
            Some(201),
        )
    }

    /// Blobs mounted so far: `POST /v2/NAME/blobs/uploads/?mount=DIGEST&from=REPO` answered 201.
    /// (A mount the registry refuses answers 202 and opens an upload session instead.)
    pub fn blob_mounts(&self) -> usize {
        count_entries(
            &self.access_log(),
            "POST",
            r"^/v2/.+/blobs/uploads/\?.*\bmount=",
            Some(201),
        )
    }

    /// skopeo flags for using this registry as source (`prefix = "src"`) or destination
    /// (`"dest"`): `--{prefix}-tls-verify=false` for HTTP, `--{prefix}-cert-dir=...` for HTTPS,
    /// and `--{prefix}-creds=USER:PASSWORD` in the auth modes.
    ///
    /// The result contains the password: pass it to a command, never print it.
    pub fn skopeo_flags(&self, prefix: &str) -> Vec<String> {
        let mut flags = Vec::new();
        match self.ca_cert_dir() {
            Some(dir) => flags.push(format!("--{prefix}-cert-dir={}", dir.display())),
            None => flags.push(format!("--{prefix}-tls-verify=false")),
        }
        if let Some((u, p)) = self.credentials() {
            flags.push(format!("--{prefix}-creds={u}:{p}"));
        }
        flags
    }

    /// The pid of the `docker-registry` process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn count_entries(entries: &[AccessLogEntry], method: &str, re: &str, status: Option<u16>) -> usize {
    let re = Regex::new(re).expect("valid regex");
    entries
        .iter()
        .filter(|e| {
            e.method == method && re.is_match(&e.uri) && status.is_none_or(|s| s == e.status)
        })
        .count()
}

/// Parses the Apache-combined access-log lines out of a registry log (all of them, probes
/// included).
pub fn parse_access_log(log: &str) -> Vec<AccessLogEntry> {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(
            r#"^\S+ \S+ \S+ \[[^\]]*\] "([A-Z]+) (\S+) (HTTP/[0-9.]+)" ([0-9]{3}) \S+ "[^"]*" "([^"]*)""#,
        )
            .expect("valid regex")
    });
    log.lines()
        .filter_map(|line| {
            let c = re.captures(line)?;
            Some(AccessLogEntry {
                method: c[1].to_string(),
                uri: c[2].to_string(),
                proto: c[3].to_string(),
                status: c[4].parse().ok()?,
                user_agent: c[5].to_string(),
            })
        })
        .collect()
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Polls until `GET /v2/` answers 200 or 401, the child exits, or [`READY_TIMEOUT`] passes.
fn wait_ready(child: &mut Child, port: u16, ca: Option<&Path>, log_path: &Path) -> Result<()> {
    let scheme = if ca.is_some() { "https" } else { "http" };
    let not_ready = |reason: String| Error::RegistryNotReady {
        url: format!("{scheme}://127.0.0.1:{port}/v2/"),
        reason,
        log: log_path.to_path_buf(),
        tail: tail(&read_log(log_path), 20),
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(not_ready(format!("docker-registry exited with {status}")));
        }
        if let Ok(200 | 401) = probe_v2(port, ca) {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(not_ready(format!(
                "no answer to GET /v2/ within {} s",
                READY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("reading a bound port", e))
}

fn yaml_str(p: &Path) -> String {
    serde_json::Value::String(p.display().to_string()).to_string()
}

fn config_yaml(
    port: u16,
    storage: &Path,
    pki: Option<&ServerPki>,
    htpasswd: Option<&Path>,
    token: Option<&TokenServer>,
) -> String {
    // JSON strings are valid YAML scalars, which keeps paths with odd characters safe.
    let mut y = format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: {}\n",
        yaml_str(storage),
        (0..16)
            .map(|_| format!("{:02x}", fastrand::u8(..)))
            .collect::<String>()
    );
    if let Some(pki) = pki {
        y.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            yaml_str(&pki.cert),
            yaml_str(&pki.key)
        ));
    }
    if let Some(h) = htpasswd {
        y.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: rbuild-test-registry\n    path: {}\n",
            yaml_str(h)
        ));
    }
    if let Some(t) = token {
        y.push_str(&format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            serde_json::Value::String(t.realm()),
            t.service(),
            t.issuer(),
            yaml_str(t.cert_path())
        ));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_lines_are_parsed_and_logrus_lines_ignored() {
        let log = r#"time="2026-11-23T22:10:34Z" level=info msg="response completed" http.request.method=POST http.request.uri=/v2/foo/blobs/uploads/
127.0.0.1 - - [23/Nov/2026:22:10:34 +0000] "POST /v2/foo/blobs/uploads/?mount=sha256:ab&from=bar HTTP/1.1" 201 0 "" "curl/7.88.1"
127.0.0.1 - - [23/Nov/2026:22:10:34 +0000] "PUT /v2/foo/blobs/uploads/9f2?_state=x&digest=sha256:ab HTTP/1.1" 201 0 "" "ua"
"#;
        let entries = parse_access_log(log);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].method, "POST");
        assert_eq!(entries[0].status, 201);
        assert_eq!(
            count_entries(
                &entries,
                "POST",
                r"^/v2/.+/blobs/uploads/\?.*\bmount=",
                Some(201)
            ),
            1
        );
        assert_eq!(
            count_entries(&entries, "PUT", r"^/v2/.+/blobs/uploads/[^?]+", Some(201)),
            1
        );
    }

    #[test]
    fn mode_debug_hides_the_password() {
        let shown = format!("{:?}", Mode::htpasswd("alice", "s3cret"));
        assert!(shown.contains("alice"));
        assert!(!shown.contains("s3cret"));
    }
}
