//! Where credentials come from: explicit ones, then podman's `auth.json`, then Docker's
//! `config.json` (with credential helpers).
//!
//! [`DefaultCredentials`] looks a registry up in this order, the first file that has an entry wins:
//!
//! 1. containers' (podman, skopeo, buildah) `auth.json`: `$REGISTRY_AUTH_FILE` when it is set
//!    (and then only it), else `$XDG_RUNTIME_DIR/containers/auth.json`, then
//!    `~/.config/containers/auth.json`. Its keys may name a namespace or a repository
//!    (`quay.io/team`, `quay.io/team/app`); for a repository the most specific key wins, then the
//!    registry's (containers-auth.json(5));
//! 2. Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`):
//!    `credHelpers[registry]`, then `credsStore`, then `auths`.
//!
//! **When both podman's and Docker's files have an entry for a registry, podman's `auth.json`
//! wins**, as it does in skopeo, podman and buildah (containers/image), the daemonless tools whose
//! setting rbuild shares; Docker's file is the fallback. In every file an entry has `auth`
//! (base64 of `user:password`), or `username` + `password`, or `identitytoken` (an OAuth2 refresh
//! token). Docker Hub's entry is keyed `https://index.docker.io/v1/` (also accepted: `docker.io`,
//! `index.docker.io`, `registry-1.docker.io`); other keys may carry a scheme or a trailing `/`.
//!
//! Credential helpers are programs named `docker-credential-NAME` on `PATH`, run as
//! `docker-credential-NAME get` with the server name on stdin, answering
//! `{"Username": ..., "Secret": ...}` (`Username` `<token>` means `Secret` is an identity token).
//! A missing or failing helper is an error that names it; its output is never shown. A helper
//! gets [`DefaultCredentials::helper_timeout`] to answer (the HTTP idle bound, `--timeout` /
//! `RBUILD_HTTP_TIMEOUT`, 30 s by default): one that hangs (waiting for a keychain to unlock, a
//! prompt no one sees) is killed, with its children, and the error names it and the registry.
//!
//! [`StaticCredentials`] holds explicit credentials (`--creds`, environment) and is consulted before
//! the files ([`ChainCredentials`]).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::auth::{Credential, CredentialProvider, Secret};
use crate::error::{Error, Result};
use crate::reference::{DOCKER_HUB, DOCKER_HUB_API, DOCKER_HUB_LEGACY};

/// Docker Hub's key in Docker's config.
pub const DOCKER_HUB_CONFIG_KEY: &str = "https://index.docker.io/v1/";

/// Explicit credentials per registry.
#[derive(Clone, Debug, Default)]
pub struct StaticCredentials {
    by_registry: BTreeMap<String, (Credential, Option<String>)>,
}

impl StaticCredentials {
    /// No credentials.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the credential for `registry` (as in references: `docker.io`, `host:port`).
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.by_registry
            .insert(normalize_key(registry), (credential, None));
    }

    /// Sets the credential for `registry`, saying where it came from (`--creds`, an environment
    /// variable): named in the error when the registry rejects it.
    pub fn insert_from(&mut self, registry: &str, credential: Credential, source: &str) {
        self.by_registry.insert(
            normalize_key(registry),
            (credential, Some(source.to_string())),
        );
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.by_registry.is_empty()
    }
}

impl CredentialProvider for StaticCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credential>> {
        Ok(self
            .by_registry
            .get(&normalize_key(registry))
            .map(|(c, _)| c.clone()))
    }

    fn get_sourced(
        &self,
        registry: &str,
        _repository: Option<&str>,
    ) -> Result<Option<(Credential, Option<String>)>> {
        Ok(self.by_registry.get(&normalize_key(registry)).cloned())
    }
}

/// Parses `USER:PASSWORD` (the password may contain `:`).
pub fn parse_user_pass(s: &str) -> Option<Credential> {
    let (u, p) = s.split_once(':')?;
    if u.is_empty() {
        return None;
    }
    Some(Credential::basic(u, p))
}

/// The first provider that has a credential wins.
pub struct ChainCredentials(pub Vec<Box<dyn CredentialProvider>>);

impl CredentialProvider for ChainCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credential>> {
        for p in &self.0 {
            if let Some(c) = p.get(registry)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn get_for_repository(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        for p in &self.0 {
            if let Some(c) = p.get_for_repository(registry, repository)? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }

    fn get_sourced(
        &self,
        registry: &str,
        repository: Option<&str>,
    ) -> Result<Option<(Credential, Option<String>)>> {
        for p in &self.0 {
            if let Some(found) = p.get_sourced(registry, repository)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

/// How long a credential helper may take to answer unless told otherwise.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// podman's and Docker's files (see the module docs).
#[derive(Clone, Debug)]
pub struct DefaultCredentials {
    /// `auth.json` files, in order.
    pub auth_files: Vec<PathBuf>,
    /// Docker's `config.json`.
    pub docker_config: Option<PathBuf>,
    /// How long a credential helper may take to answer before it is killed.
    pub helper_timeout: Duration,
}

impl DefaultCredentials {
    /// The files from the environment (`REGISTRY_AUTH_FILE`, `XDG_RUNTIME_DIR`, `DOCKER_CONFIG`,
    /// `HOME`).
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME");
        let auth_files = match var("REGISTRY_AUTH_FILE") {
            Some(f) => vec![f],
            None => {
                let mut v = Vec::new();
                if let Some(x) = var("XDG_RUNTIME_DIR") {
                    v.push(x.join("containers/auth.json"));
                }
                if let Some(h) = &home {
                    v.push(h.join(".config/containers/auth.json"));
                }
                v
            }
        };
        let docker_config = var("DOCKER_CONFIG")
            .map(|d| d.join("config.json"))
            .or_else(|| home.map(|h| h.join(".docker/config.json")));
        DefaultCredentials {
            auth_files,
            docker_config,
            helper_timeout: rbuild_http::Timeouts::from_env().idle,
        }
    }

    /// The same files, with credential helpers given `timeout` to answer (the CLI passes the
    /// `--timeout` idle bound).
    pub fn with_helper_timeout(mut self, timeout: Duration) -> Self {
        self.helper_timeout = timeout;
        self
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(serde::Deserialize, Default)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// `https://host:port/v1/` → `host:port`; Docker Hub's names → `docker.io`.
fn normalize_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let k = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match k.as_str() {
        DOCKER_HUB_LEGACY | DOCKER_HUB_API | DOCKER_HUB => DOCKER_HUB.to_string(),
        _ => k,
    }
}

fn read_config(path: &Path) -> Result<Option<ConfigFile>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Credentials {
                registry: "*".into(),
                reason: format!("cannot read {}: {e}", path.display()),
            });
        }
    };
    // The parse error may quote the file; say only where it is.
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Credentials {
            registry: "*".into(),
            reason: format!(
                "{} is not valid JSON (line {}, column {})",
                path.display(),
                e.line(),
                e.column()
            ),
        })
}

fn entry_credential(registry: &str, path: &Path, e: &AuthEntry) -> Result<Option<Credential>> {
    if let Some(token) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Credential::IdentityToken {
            username: e.username.clone(),
            token: Secret::new(token),
        }));
    }
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || Error::Credentials {
            registry: registry.to_string(),
            reason: format!(
                "the \"auth\" entry in {} is not base64 of user:password",
                path.display()
            ),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let s = String::from_utf8(decoded).map_err(|_| bad())?;
        return parse_user_pass(&s).map(Some).ok_or_else(bad);
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential::basic(u.clone(), p.clone()))),
        _ => Ok(None),
    }
}

fn find_entry<'a, T>(map: &'a BTreeMap<String, T>, registry: &str) -> Option<&'a T> {
    let want = normalize_key(registry);
    map.iter()
        .find(|(k, _)| normalize_key(k) == want)
        .map(|(_, v)| v)
}

/// An `auth.json` key as containers/image reads it: a key with a scheme (`https://host/v1/`, as
/// Docker writes) names the whole registry; otherwise `host[/namespace[/repo]]`, the host
/// lowercased and Docker Hub's names made `docker.io`.
fn normalize_scoped_key(key: &str) -> String {
    let k = key.trim();
    if k.starts_with("https://") || k.starts_with("http://") {
        return normalize_key(k);
    }
    let k = k.trim_end_matches('/');
    match k.split_once('/') {
        Some((host, path)) => format!("{}/{path}", normalize_key(host)),
        None => normalize_key(k),
    }
}

/// The most specific `auth.json` entry for `repository` on `registry`: `host/ns/repo`, then
/// `host/ns`, ..., then `host` (containers-auth.json(5)).
fn find_scoped_entry<'a, T>(
    map: &'a BTreeMap<String, T>,
    registry: &str,
    repository: &str,
) -> Option<&'a T> {
    let keys: BTreeMap<String, &T> = map
        .iter()
        .map(|(k, v)| (normalize_scoped_key(k), v))
        .collect();
    let mut want = format!(
        "{}/{}",
        normalize_key(registry),
        repository.trim_matches('/')
    );
    loop {
        if let Some(v) = keys.get(&want) {
            return Some(v);
        }
        match want.rsplit_once('/') {
            Some((shorter, _)) => want = shorter.to_string(),
            None => return None,
        }
    }
}

/// Runs `docker-credential-NAME get` for `server`, given [`HELPER_TIMEOUT`] to answer.
pub fn run_helper(name: &str, registry: &str, server: &str) -> Result<Option<Credential>> {
    run_helper_within(name, registry, server, HELPER_TIMEOUT)
}

/// Kills a helper and every process of its group (a shell script's `sleep` too).
fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) with a negative pid signals the process group the child leads (it was
        // spawned with process_group(0)); no memory is involved.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `docker-credential-NAME get` for `server`; a helper that has not answered (exited and
/// closed its output) within `timeout` is killed with its process group, and the error names it,
/// the registry and what to do.
pub fn run_helper_within(
    name: &str,
    registry: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credential>> {
    run_program(
        &format!("docker-credential-{name}"),
        registry,
        server,
        timeout,
    )
}

/// [`run_helper_within`] for a program name or path.
fn run_program(
    program: &str,
    registry: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credential>> {
    let err = |reason: String| Error::Credentials {
        registry: registry.to_string(),
        reason,
    };
    let start = Instant::now();
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| {
            err(if e.kind() == std::io::ErrorKind::NotFound {
                format!("credential helper {program} is not on PATH (named in the Docker config)")
            } else {
                format!("cannot run credential helper {program}: {e}")
            })
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // The server name fits in a pipe's buffer: this does not block on a helper that reads
        // nothing.
        let _ = stdin.write_all(server.as_bytes());
    }
    // The answer is read on a thread, so a helper that never closes its output cannot hold us.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let read = stdout.take(1 << 20).read_to_end(&mut buf);
            let _ = tx.send(read.map(|_| buf));
        });
    }
    let timed_out = |child: &mut Child| {
        kill_group(child);
        err(format!(
            "credential helper {program} did not answer within {:.0?} and was stopped; check \
             that it works on its own (`echo {server} | {program} get`: it may be waiting for a \
             keychain to unlock or for a prompt no one sees), or remove it from the Docker config \
             (credHelpers/credsStore) to use other credentials; --timeout SECS or \
             RBUILD_HTTP_TIMEOUT sets this bound",
            timeout
        ))
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(err(format!("credential helper {program} failed: {e}")));
            }
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(timed_out(&mut child));
        }
        std::thread::sleep((timeout - elapsed).min(Duration::from_millis(20)));
    };
    let left = timeout.saturating_sub(start.elapsed());
    let stdout = match rx.recv_timeout(left.max(Duration::from_millis(100))) {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => return Err(err(format!("credential helper {program} failed: {e}"))),
        // Exited, but something it started still holds its output open.
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Err(timed_out(&mut child)),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => Vec::new(),
    };
    if !status.success() {
        let stdout = String::from_utf8_lossy(&stdout);
        // "credentials not found in native keychain" means: no entry, anonymous.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(err(format!(
            "credential helper {program} failed ({status})"
        )));
    }
    #[derive(serde::Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let ans: HelperAnswer = serde_json::from_slice(&stdout).map_err(|_| {
        err(format!(
            "credential helper {program} did not answer with {{\"Username\": ..., \"Secret\": ...}}"
        ))
    })?;
    if ans.secret.is_empty() {
        return Ok(None);
    }
    if ans.username == "<token>" {
        return Ok(Some(Credential::IdentityToken {
            username: None,
            token: Secret::new(ans.secret),
        }));
    }
    Ok(Some(Credential::Basic {
        username: ans.username,
        password: Secret::new(ans.secret),
    }))
}

fn helper_server(registry: &str) -> String {
    if normalize_key(registry) == DOCKER_HUB {
        DOCKER_HUB_CONFIG_KEY.to_string()
    } else {
        registry.to_string()
    }
}

/// The entry of the file at `path` for `registry`: its credential helper, then (`use_stores`) the
/// default store, then `auths` — the most specific key for `repository` when one is given (an
/// `auth.json` may scope entries to a namespace or repository), else the registry's.
/// Returns the credential with where it came from: the file, or the helper and the file that
/// names it.
fn from_file(
    path: &Path,
    registry: &str,
    repository: Option<&str>,
    use_stores: bool,
    timeout: Duration,
) -> Result<Option<(Credential, String)>> {
    let Some(cfg) = read_config(path)? else {
        return Ok(None);
    };
    let helper_source = |helper: &str, key: &str| {
        format!(
            "the credential helper docker-credential-{helper} ({key} in {})",
            path.display()
        )
    };
    if let Some(helper) = find_entry(&cfg.cred_helpers, registry) {
        return Ok(
            run_helper_within(helper, registry, &helper_server(registry), timeout)?
                .map(|c| (c, helper_source(helper, "credHelpers"))),
        );
    }
    if use_stores
        && let Some(store) = cfg.creds_store.as_deref().filter(|s| !s.is_empty())
        && let Some(c) = run_helper_within(store, registry, &helper_server(registry), timeout)?
    {
        return Ok(Some((c, helper_source(store, "credsStore"))));
    }
    let entry = match repository {
        Some(r) => find_scoped_entry(&cfg.auths, registry, r),
        None => find_entry(&cfg.auths, registry),
    };
    match entry {
        Some(e) => {
            Ok(entry_credential(registry, path, e)?.map(|c| (c, path.display().to_string())))
        }
        None => Ok(None),
    }
}

impl DefaultCredentials {
    /// `auth.json` files first (scoped to `repository` when given), then Docker's config (whose
    /// keys name whole registries, as Docker reads them).
    fn lookup(
        &self,
        registry: &str,
        repository: Option<&str>,
    ) -> Result<Option<(Credential, String)>> {
        for f in &self.auth_files {
            if let Some(c) = from_file(f, registry, repository, false, self.helper_timeout)? {
                tracing::debug!("credentials for {registry} from {}", c.1);
                return Ok(Some(c));
            }
        }
        if let Some(f) = &self.docker_config
            && let Some(c) = from_file(f, registry, None, true, self.helper_timeout)?
        {
            tracing::debug!("credentials for {registry} from {}", c.1);
            return Ok(Some(c));
        }
        tracing::debug!("no credentials for {registry}");
        Ok(None)
    }
}

impl CredentialProvider for DefaultCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credential>> {
        Ok(self.lookup(registry, None)?.map(|(c, _)| c))
    }

    fn get_for_repository(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        Ok(self.lookup(registry, Some(repository))?.map(|(c, _)| c))
    }

    fn get_sourced(
        &self,
        registry: &str,
        repository: Option<&str>,
    ) -> Result<Option<(Credential, Option<String>)>> {
        Ok(self
            .lookup(registry, repository)?
            .map(|(c, source)| (c, Some(source))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn keys_normalize() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_key("http://Host:5000/"), "host:5000");
        assert_eq!(normalize_key("quay.io"), "quay.io");
    }

    #[test]
    fn podman_wins_over_docker_and_entries_parse() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        let docker = dir.path().join("config.json");
        std::fs::write(
            &podman,
            format!(
                r#"{{"auths":{{"both.example":{{"auth":"{}"}}}}}}"#,
                b64("pod:pw1")
            ),
        )
        .unwrap();
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths":{{"https://both.example/":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"username":"hub","password":"pw3"}},"tok.example":{{"identitytoken":"rt"}}}}}}"#,
                b64("dock:pw2")
            ),
        )
        .unwrap();
        let p = DefaultCredentials {
            auth_files: vec![podman],
            docker_config: Some(docker),
            helper_timeout: HELPER_TIMEOUT,
        };
        assert_eq!(
            p.get("both.example").unwrap(),
            Some(Credential::basic("pod", "pw1"))
        );
        assert_eq!(
            p.get("docker.io").unwrap(),
            Some(Credential::basic("hub", "pw3"))
        );
        assert!(matches!(
            p.get("tok.example").unwrap(),
            Some(Credential::IdentityToken { .. })
        ));
        assert_eq!(p.get("none.example").unwrap(), None);
    }

    #[test]
    fn auth_json_entries_scoped_to_a_namespace_or_repository_win_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        let docker = dir.path().join("config.json");
        let entry = |u: &str| format!(r#"{{"auth":"{}"}}"#, b64(&format!("{u}:pw")));
        std::fs::write(
            &podman,
            format!(
                r#"{{"auths":{{"quay.example/team-a":{},"quay.example/team-b":{},"quay.example/team-b/app":{},"quay.example":{},"docker.io/library":{}}}}}"#,
                entry("a"),
                entry("b"),
                entry("b-app"),
                entry("host"),
                entry("hub-library"),
            ),
        )
        .unwrap();
        std::fs::write(
            &docker,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{}}}}}"#,
                entry("hub")
            ),
        )
        .unwrap();
        let p = DefaultCredentials {
            auth_files: vec![podman],
            docker_config: Some(docker),
            helper_timeout: HELPER_TIMEOUT,
        };
        let user = |registry: &str, repo: &str| match p.get_for_repository(registry, repo).unwrap()
        {
            Some(Credential::Basic { username, .. }) => username,
            other => panic!("{registry}/{repo}: {other:?}"),
        };
        assert_eq!(user("quay.example", "team-a/app"), "a");
        assert_eq!(user("quay.example", "team-b/tool"), "b");
        assert_eq!(user("quay.example", "team-b/app"), "b-app");
        assert_eq!(user("quay.example", "team-c/app"), "host");
        // "team-a" is a namespace, not a name prefix.
        assert_eq!(user("quay.example", "team-ab/app"), "host");
        assert_eq!(user("docker.io", "library/python"), "hub-library");
        // Not in auth.json for this repository: Docker's config, which names whole registries.
        assert_eq!(user("docker.io", "someone/app"), "hub");
        // Without a repository: the registry's own entry.
        assert_eq!(
            p.get("quay.example").unwrap(),
            Some(Credential::basic("host", "pw"))
        );
    }

    #[test]
    fn missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let docker = dir.path().join("config.json");
        std::fs::write(
            &docker,
            r#"{"credHelpers":{"h.example":"rbuild-test-nonexistent"}}"#,
        )
        .unwrap();
        let p = DefaultCredentials {
            auth_files: vec![],
            docker_config: Some(docker),
            helper_timeout: HELPER_TIMEOUT,
        };
        let e = p.get("h.example").unwrap_err().to_string();
        assert!(
            e.contains("docker-credential-rbuild-test-nonexistent"),
            "{e}"
        );
    }

    fn script(dir: &Path, name: &str, body: &str) -> String {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn a_hanging_helper_is_killed_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        // Sleeps in a child process that holds the output open: the whole group is killed.
        let hang = script(dir.path(), "docker-credential-hang", "sleep 1000");
        let t0 = Instant::now();
        let e = run_program(&hang, "h.example", "h.example", Duration::from_millis(500))
            .unwrap_err()
            .to_string();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(
            e.starts_with(&format!(
                "credentials for h.example: credential helper {hang} did not answer within 500ms \
                 and was stopped"
            )),
            "{e}"
        );
        assert!(e.contains("--timeout"), "{e}");

        // A helper that answers in time is read as before.
        let ok = script(
            dir.path(),
            "docker-credential-ok",
            r#"read server; echo "{\"Username\": \"u\", \"Secret\": \"$server\"}""#,
        );
        assert_eq!(
            run_program(&ok, "h.example", "h.example", Duration::from_secs(10)).unwrap(),
            Some(Credential::basic("u", "h.example"))
        );
        // One that exits but leaves a child holding its output fails within the bound too.
        let daemon = script(
            dir.path(),
            "docker-credential-daemon",
            "sleep 1000 &\necho '{}'",
        );
        let t0 = Instant::now();
        let e = run_program(
            &daemon,
            "h.example",
            "h.example",
            Duration::from_millis(500),
        )
        .unwrap_err()
        .to_string();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(e.contains("did not answer within"), "{e}");
    }

    #[test]
    fn user_pass() {
        assert_eq!(
            parse_user_pass("u:p:q"),
            Some(Credential::basic("u", "p:q"))
        );
        assert_eq!(parse_user_pass("nocolon"), None);
        assert_eq!(parse_user_pass(":p"), None);
    }
}
