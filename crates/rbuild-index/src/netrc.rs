//! `~/.netrc` credentials, as pip and curl read them.
//!
//! The file is `$NETRC` when set, else `~/.netrc`. Entries are whitespace-separated tokens:
//! `machine HOST login USER password PASS`, `default login USER password PASS` (used for any host
//! without a `machine` entry), `account` (ignored) and `macdef NAME` (skipped up to the next empty
//! line). Hosts match the request URL's host without its port, case-insensitively.
//!
//! ```
//! use rbuild_index::netrc::Netrc;
//! let n = Netrc::parse("machine pypi.example.com login alice password s3cret\ndefault login anon");
//! assert_eq!(n.get("PyPI.example.com").unwrap().username, "alice");
//! assert_eq!(n.get("other.example.com").unwrap().username, "anon");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::Error;

/// A user name and an optional password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (may be a token with no password).
    pub username: String,
    /// The password.
    pub password: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A parsed netrc file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Netrc {
    machines: BTreeMap<String, Credentials>,
    default: Option<Credentials>,
}

impl Netrc {
    /// Parses netrc text. Unknown tokens are skipped; the first entry for a host wins (as in curl).
    pub fn parse(text: &str) -> Netrc {
        let mut netrc = Netrc::default();
        let mut tokens = Tokens { rest: text };
        // (host or None for `default`, login, password)
        let mut current: Option<(Option<String>, Option<String>, Option<String>)> = None;
        let finish =
            |netrc: &mut Netrc, cur: Option<(Option<String>, Option<String>, Option<String>)>| {
                if let Some((host, login, password)) = cur {
                    let creds = Credentials {
                        username: login.unwrap_or_default(),
                        password,
                    };
                    if creds.username.is_empty() && creds.password.is_none() {
                        return;
                    }
                    match host {
                        Some(h) => {
                            netrc
                                .machines
                                .entry(h.to_ascii_lowercase())
                                .or_insert(creds);
                        }
                        None => {
                            netrc.default.get_or_insert(creds);
                        }
                    }
                }
            };
        while let Some(tok) = tokens.next() {
            match tok.as_str() {
                "machine" => {
                    finish(&mut netrc, current.take());
                    if let Some(host) = tokens.next() {
                        current = Some((Some(host), None, None));
                    }
                }
                "default" => {
                    finish(&mut netrc, current.take());
                    current = Some((None, None, None));
                }
                "login" => {
                    let v = tokens.next();
                    if let Some(c) = current.as_mut() {
                        c.1 = v;
                    }
                }
                "password" => {
                    let v = tokens.next();
                    if let Some(c) = current.as_mut() {
                        c.2 = v;
                    }
                }
                "account" => {
                    tokens.next();
                }
                "macdef" => {
                    finish(&mut netrc, current.take());
                    tokens.skip_macdef();
                }
                _ => {}
            }
        }
        finish(&mut netrc, current.take());
        netrc
    }

    /// Reads `path`; a missing file gives `Ok(None)`.
    pub fn load(path: &Path) -> Result<Option<Netrc>, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Netrc::parse(&text))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Netrc {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// The file rbuild reads by default: `$NETRC`, else `$HOME/.netrc`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("NETRC").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".netrc"))
    }

    /// The credentials for `host` (without port): its `machine` entry, else the `default` entry.
    pub fn get(&self, host: &str) -> Option<&Credentials> {
        self.machines
            .get(&host.to_ascii_lowercase())
            .or(self.default.as_ref())
    }
}

struct Tokens<'a> {
    rest: &'a str,
}

impl Tokens<'_> {
    fn next(&mut self) -> Option<String> {
        let s = self.rest.trim_start();
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        if let Some(body) = s.strip_prefix('"') {
            // A quoted token; `\"` and `\\` escape.
            let mut out = String::new();
            let mut chars = body.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            out.push(n);
                        }
                    }
                    '"' => {
                        self.rest = &body[i + 1..];
                        return Some(out);
                    }
                    c => out.push(c),
                }
            }
            self.rest = "";
            return Some(out);
        }
        let end = s.find(char::is_whitespace).unwrap_or(s.len());
        self.rest = &s[end..];
        Some(s[..end].to_string())
    }

    /// Skips a macro definition: its name, then everything up to an empty line.
    fn skip_macdef(&mut self) {
        match self.rest.find("\n\n") {
            Some(i) => self.rest = &self.rest[i + 2..],
            None => self.rest = "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_entries_macros_and_defaults() {
        let n = Netrc::parse(
            "# comment-less format\nmachine a.example login alice password \"p w\"\n\
             macdef init\ncd /pub\nmachine evil login x password y\n\n\
             machine b.example\n  login bob\n  password hunter2 account acct\n\
             machine a.example login second password ignored\n\
             default login anon password anon",
        );
        let a = n.get("a.example").unwrap();
        assert_eq!(a.username, "alice");
        assert_eq!(a.password.as_deref(), Some("p w"));
        assert_eq!(
            n.get("B.EXAMPLE").unwrap().password.as_deref(),
            Some("hunter2")
        );
        assert_eq!(
            n.get("evil").unwrap().username,
            "anon",
            "macdef body skipped"
        );
        assert_eq!(n.get("c.example").unwrap().username, "anon");
        assert!(
            !format!("{a:?}").contains("p w"),
            "Debug hides the password"
        );
    }

    #[test]
    fn empty_and_missing() {
        assert!(Netrc::parse("").get("x").is_none());
        assert!(Netrc::parse("machine").get("x").is_none());
        let dir = tempfile::tempdir().unwrap();
        assert!(Netrc::load(&dir.path().join("none")).unwrap().is_none());
    }
}
