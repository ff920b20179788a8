//! `rbuild login REGISTRY` and `rbuild logout REGISTRY`: credentials in the same `auth.json`
//! podman, skopeo and buildah read (`$REGISTRY_AUTH_FILE`, else
//! `$XDG_RUNTIME_DIR/containers/auth.json`, else `~/.config/containers/auth.json`), in the
//! `{"auths": {"HOST": {"auth": "base64(user:password)"}}}` form Docker's `config.json` uses too.
//!
//! The password is read from stdin (`--password-stdin`) or typed at a prompt with echo off; it is
//! never printed, logged, or put in an error message. `login` checks the credentials with the
//! registry before writing them.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use rbuild_registry::{Access, Credential, Reference, StaticCredentials};

use crate::cli::GlobalArgs;
use crate::{output, registry};

/// Arguments of `rbuild login`.
#[derive(Debug, Args, Clone)]
pub struct LoginArgs {
    /// The registry (`ghcr.io`, `localhost:5000`; `docker.io` for Docker Hub).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// The user name (asked for when not given and stdin is a terminal).
    #[arg(short, long, value_name = "USER")]
    pub username: Option<String>,
    /// Read the password (or token) from stdin, e.g. `echo "$TOKEN" | rbuild login ghcr.io -u me
    /// --password-stdin`.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// How to reach registries.
    #[command(flatten)]
    pub network: crate::cli::NetworkArgs,
}

/// Arguments of `rbuild logout`.
#[derive(Debug, Args, Clone)]
pub struct LogoutArgs {
    /// The registry to forget the credentials of.
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
}

/// The registry as `auth.json` keys it: no scheme, no path, Docker Hub as `docker.io`.
pub fn registry_key(s: &str) -> String {
    let s = s
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

/// The `auth.json` rbuild writes: the first of the files podman reads.
pub fn auth_file() -> anyhow::Result<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(f) = var("REGISTRY_AUTH_FILE") {
        return Ok(PathBuf::from(f));
    }
    if let Some(d) = var("XDG_RUNTIME_DIR") {
        return Ok(PathBuf::from(d).join("containers/auth.json"));
    }
    match var("HOME") {
        Some(h) => Ok(PathBuf::from(h).join(".config/containers/auth.json")),
        None => bail!("no place for credentials: set REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR or HOME"),
    }
}

fn read_auth(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
        Ok(b) => serde_json::from_slice(&b).with_context(|| {
            format!(
                "{} is not JSON; fix or remove it (podman and skopeo read it too)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `doc` to `path` readable by its owner only, through a temporary file and a rename.
fn write_auth(path: &std::path::Path, doc: &serde_json::Value) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.rbuild-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    serde_json::to_writer_pretty(&mut f, doc)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads one line from the terminal with echo off (`stty -echo`), or from stdin.
fn read_secret(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `rbuild login`.
pub async fn run_login(global: &GlobalArgs, args: LoginArgs) -> anyhow::Result<()> {
    let host = registry_key(&args.registry);
    let username = match args.username.clone() {
        Some(u) => u,
        None if std::io::stdin().is_terminal() && !args.password_stdin => {
            eprint!("Username: ");
            let _ = std::io::stderr().flush();
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_string()
        }
        None => {
            return Err(crate::exit::usage(
                "rbuild login needs a user name",
                &["pass -u USER (and the password on stdin with --password-stdin)"],
            ));
        }
    };
    if !args.password_stdin && !std::io::stdin().is_terminal() {
        return Err(crate::exit::usage(
            "no terminal to ask for the password",
            &[
                "pipe it in with --password-stdin: echo \"$TOKEN\" | rbuild login HOST -u USER --password-stdin",
            ],
        ));
    }
    let password = read_secret("Password: ")?;
    if username.is_empty() || password.is_empty() {
        return Err(crate::exit::usage(
            "the user name and the password must not be empty",
            &[],
        ));
    }
    let credential = Credential::basic(username.clone(), password.clone());

    // Check them: a pull of a repository nobody has, with these credentials only.
    let mut only = StaticCredentials::new();
    only.insert(&host, credential);
    let mut opts = registry::client_options(global);
    opts.credentials = std::sync::Arc::new(only);
    let client = rbuild_registry::Client::new(opts)?;
    let probe = Reference::parse(&format!("{host}/rbuild-login-check/probe:latest"))
        .with_context(|| format!("{} is not a registry host", args.registry))?;
    client
        .repository(&probe, Access::Pull)?
        .head_manifest("latest")
        .await
        .with_context(|| format!("logging in to {host} as {username}"))?;

    let path = auth_file()?;
    let mut doc = read_auth(&path)?;
    let b64 = base64_encode(format!("{username}:{password}").as_bytes());
    if !doc.is_object() {
        doc = serde_json::json!({});
    }
    let auths = doc
        .as_object_mut()
        .expect("an object")
        .entry("auths")
        .or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths[&host] = serde_json::json!({ "auth": b64 });
    write_auth(&path, &doc)?;
    if global.json {
        output::json_doc(serde_json::json!({"registry": host, "auth_file": path}))
    } else {
        if global.quiet == 0 {
            crate::bars::println(&format!(
                "logged in to {host} as {username} (credentials in {})",
                path.display()
            ));
        }
        Ok(())
    }
}

/// Runs `rbuild logout`.
pub async fn run_logout(global: &GlobalArgs, args: LogoutArgs) -> anyhow::Result<()> {
    let host = registry_key(&args.registry);
    let path = auth_file()?;
    let mut doc = read_auth(&path)?;
    let removed = doc
        .get_mut("auths")
        .and_then(|a| a.as_object_mut())
        .and_then(|a| a.remove(&host))
        .is_some();
    if !removed {
        bail!(
            "not logged in to {host}: {} has no entry for it",
            path.display()
        );
    }
    write_auth(&path, &doc)?;
    if global.json {
        output::json_doc(serde_json::json!({"registry": host, "auth_file": path}))
    } else {
        if global.quiet == 0 {
            crate::bars::println(&format!(
                "removed the credentials for {host} from {}",
                path.display()
            ));
        }
        Ok(())
    }
}

/// Standard base64 with padding (what `auth.json` holds).
fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_base64() {
        assert_eq!(registry_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_key("localhost:5000"), "localhost:5000");
        assert_eq!(registry_key("ghcr.io/me/app"), "ghcr.io");
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
    }
}
