//! A small Docker-style token server (the `Token` registry mode).
//!
//! It speaks the two flows of the Docker registry token specification:
//!
//! * `GET /token?service=S&scope=repository:NAME:pull,push&scope=...` with optional Basic auth
//!   (`offline_token=true` also returns a refresh token to an authenticated user);
//! * `POST /token` with a form body (OAuth2): `grant_type=password` (`username`, `password`,
//!   `access_type=offline` for a refresh token) or `grant_type=refresh_token` (`refresh_token`).
//!
//! Tokens are RS256 JWTs whose header carries the signing certificate (`x5c`) and whose `access`
//! claim lists what was granted. The known user gets every action asked for; anonymous callers get
//! `pull` only (like Docker Hub on public repositories). Wrong credentials get 401, an unknown
//! refresh token 400 `invalid_grant`.
//!
//! Everything is recorded ([`TokenServer::requests`]) so tests can count token requests, check the
//! scopes asked for, and search outputs for any token that was issued ([`TokenServer::issued_tokens`]).
//!
//! Expiry: [`TokenServer::set_lifetime_secs`] sets the lifetime of new tokens. Distribution 2.8
//! allows 60 s of clock skew (observed: a token 2 s past `exp` is still accepted), so a token with a
//! positive lifetime N is accepted for N + 60 s, while a lifetime of zero or less issues tokens
//! with `exp` 120 s in the past that the registry rejects at once; the response then still says
//! `expires_in: 60` (the spec's default), as a server with a skewed clock would. A client's own
//! cache honours `expires_in`: with `set_lifetime_secs(2)` it should ask for a new token after 2 s
//! (count [`TokenServer::request_count`]).

use std::collections::BTreeMap;
use std::io::{BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::error::{Error, Result};
use crate::http::{BodyReader, parse_query, read_head, respond};
use crate::tls::{TokenSigner, generate_token_signer};

/// One request the token server answered.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The OAuth2 `grant_type` of a POST (`password`, `refresh_token`), `None` for GET.
    pub grant_type: Option<String>,
    /// The authenticated user, `None` for anonymous requests and failed logins.
    pub user: Option<String>,
    /// The scopes asked for, as sent (`repository:NAME:pull,push`), one entry per scope.
    pub scopes: Vec<String>,
    /// The scopes granted, in the same format (actions may be fewer than asked for).
    pub granted: Vec<String>,
    /// Whether a refresh token was asked for (`offline_token=true` / `access_type=offline`).
    pub offline: bool,
    /// The HTTP status of the answer.
    pub status: u16,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("method", &self.method)
            .field("grant_type", &self.grant_type)
            .field("user", &self.user)
            .field("scopes", &self.scopes)
            .field("granted", &self.granted)
            .field("offline", &self.offline)
            .field("status", &self.status)
            .finish()
    }
}

#[derive(Debug)]
struct State {
    service: String,
    issuer: String,
    user: String,
    password: String,
    signer: TokenSigner,
    lifetime: AtomicI64,
    requests: Mutex<Vec<TokenRequest>>,
    issued: Mutex<Vec<String>>,
    /// refresh token -> user
    refresh: Mutex<BTreeMap<String, String>>,
}

/// The token server of a [`crate::Registry`] started in [`crate::Mode::Token`]. Stops on drop.
#[derive(Debug)]
pub struct TokenServer {
    state: Arc<State>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The `service` the registry and the token server agree on.
pub const TOKEN_SERVICE: &str = "rbuild-test-registry";
/// The `iss` claim of issued tokens.
pub const TOKEN_ISSUER: &str = "rbuild-test-token-server";

impl TokenServer {
    /// Starts a token server on a free loopback port; keys and certificate go under `dir`.
    pub(crate) fn start(dir: &Path, user: &str, password: &str) -> Result<TokenServer> {
        let signer = generate_token_signer(dir)?;
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|e| Error::io("binding the token server to 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("reading the token server's address", e))?;
        let state = Arc::new(State {
            service: TOKEN_SERVICE.into(),
            issuer: TOKEN_ISSUER.into(),
            user: user.into(),
            password: password.into(),
            signer,
            lifetime: AtomicI64::new(300),
            requests: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            refresh: Mutex::new(BTreeMap::new()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rbuild-testing-token".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let state = state.clone();
                        std::thread::spawn(move || {
                            let _ = serve(&state, conn);
                        });
                    }
                })
                .map_err(|e| Error::io("spawning the token server thread", e))?
        };
        Ok(TokenServer {
            state,
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The realm URL the registry sends in its `WWW-Authenticate` challenge:
    /// `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The token server's address (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The `service` value ([`TOKEN_SERVICE`]).
    pub fn service(&self) -> &str {
        &self.state.service
    }

    /// The `iss` claim ([`TOKEN_ISSUER`]).
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The certificate the registry trusts for token signatures (`rootcertbundle`).
    pub fn cert_path(&self) -> &Path {
        &self.state.signer.cert_pem
    }

    /// Sets the lifetime, in seconds, of tokens issued from now on (default 300). Zero or negative
    /// issues tokens that the registry already rejects as expired (see the module docs).
    pub fn set_lifetime_secs(&self, secs: i64) {
        self.state.lifetime.store(secs, Ordering::SeqCst);
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.requests).clone()
    }

    /// How many requests were answered (any status).
    pub fn request_count(&self) -> usize {
        lock(&self.state.requests).len()
    }

    /// Every access and refresh token issued so far (to check that none leaks into output).
    pub fn issued_tokens(&self) -> Vec<String> {
        lock(&self.state.issued).clone()
    }

    /// Forgets recorded requests (issued tokens stay valid and listed).
    pub fn reset_counters(&self) {
        lock(&self.state.requests).clear();
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// What a request asks for, after parsing either flow.
struct Ask {
    grant_type: Option<String>,
    basic: Option<(String, String)>,
    form_user: Option<(String, String)>,
    refresh_token: Option<String>,
    service: Option<String>,
    scopes: Vec<String>,
    offline: bool,
}

fn serve(state: &State, conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut out = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let mut body = String::new();
    BodyReader::new(&mut reader, head.request_framing())
        .take(1 << 20)
        .read_to_string(&mut body)?;
    let method = head.start[0].clone();
    let (path, query) = head.start[1]
        .split_once('?')
        .unwrap_or((head.start[1].as_str(), ""));
    if path != "/token" || !(method == "GET" || method == "POST") {
        return respond(&mut out, 404, "Not Found", &[], b"not found\n");
    }
    let params = if method == "GET" {
        parse_query(query)
    } else {
        parse_query(&body)
    };
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let basic = head
        .header("authorization")
        .and_then(|v| {
            v.strip_prefix("Basic ")
                .or_else(|| v.strip_prefix("basic "))
        })
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    let ask = Ask {
        grant_type: if method == "POST" {
            get("grant_type")
        } else {
            None
        },
        form_user: match (get("username"), get("password")) {
            (Some(u), Some(p)) => Some((u, p)),
            _ => None,
        },
        basic,
        refresh_token: get("refresh_token"),
        service: get("service"),
        scopes: params
            .iter()
            .filter(|(n, _)| n == "scope")
            .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect(),
        offline: get("offline_token").as_deref() == Some("true")
            || get("access_type").as_deref() == Some("offline"),
    };
    let (status, user, granted, body) = answer(state, &method, &ask);
    lock(&state.requests).push(TokenRequest {
        method,
        grant_type: ask.grant_type.clone(),
        user,
        scopes: ask.scopes.clone(),
        granted,
        offline: ask.offline,
        status,
    });
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        _ => "Unauthorized",
    };
    let mut headers = vec![("Content-Type", "application/json".to_string())];
    if status == 401 {
        headers.push((
            "WWW-Authenticate",
            "Basic realm=\"rbuild-test-token-server\"".into(),
        ));
    }
    respond(&mut out, status, reason, &headers, body.as_bytes())
}

fn error_body(error: &str, description: &str) -> String {
    serde_json::json!({ "error": error, "error_description": description, "details": description })
        .to_string()
}

/// Decides the answer: (status, authenticated user, granted scopes, JSON body).
fn answer(state: &State, method: &str, ask: &Ask) -> (u16, Option<String>, Vec<String>, String) {
    if let Some(service) = &ask.service
        && service != &state.service
    {
        let msg = format!(
            "unknown service {service:?}; this server issues tokens for {:?}",
            state.service
        );
        return (400, None, vec![], error_body("invalid_request", &msg));
    }
    let check = |(u, p): &(String, String)| *u == state.user && *p == state.password;
    // Who is asking.
    let user: Option<String> = match (method, ask.grant_type.as_deref()) {
        ("GET", _) => match &ask.basic {
            None => None,
            Some(c) if check(c) => Some(c.0.clone()),
            Some(_) => {
                return (
                    401,
                    None,
                    vec![],
                    error_body("unauthorized", "incorrect username or password"),
                );
            }
        },
        ("POST", Some("password")) => match &ask.form_user {
            Some(c) if check(c) => Some(c.0.clone()),
            _ => {
                return (
                    401,
                    None,
                    vec![],
                    error_body("unauthorized", "incorrect username or password"),
                );
            }
        },
        ("POST", Some("refresh_token")) => {
            let known = ask
                .refresh_token
                .as_ref()
                .and_then(|t| lock(&state.refresh).get(t).cloned());
            match known {
                Some(u) => Some(u),
                None => {
                    return (
                        400,
                        None,
                        vec![],
                        error_body("invalid_grant", "unknown refresh token"),
                    );
                }
            }
        }
        _ => {
            return (
                400,
                None,
                vec![],
                error_body(
                    "unsupported_grant_type",
                    "grant_type must be password or refresh_token",
                ),
            );
        }
    };
    let mut access = Vec::new();
    let mut granted = Vec::new();
    for scope in &ask.scopes {
        // type:name:actions, where name may contain ':' (a registry host with a port).
        let Some((rest, actions)) = scope.rsplit_once(':') else {
            continue;
        };
        let Some((kind, name)) = rest.split_once(':') else {
            continue;
        };
        let actions: Vec<&str> = actions
            .split(',')
            .filter(|a| !a.is_empty())
            .filter(|a| user.is_some() || (kind == "repository" && *a == "pull"))
            .collect();
        if actions.is_empty() {
            continue;
        }
        granted.push(format!("{kind}:{name}:{}", actions.join(",")));
        access.push(serde_json::json!({ "type": kind, "name": name, "actions": actions }));
    }
    let issued_at = now();
    let lifetime = state.lifetime.load(Ordering::SeqCst);
    let token = sign(
        state,
        user.as_deref().unwrap_or(""),
        issued_at,
        lifetime,
        access,
    );
    let mut issued = vec![token.clone()];
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": if lifetime > 0 { lifetime } else { 60 },
        "issued_at": rfc3339(issued_at),
        "scope": granted.join(" "),
    });
    let refresh = match (&user, ask.grant_type.as_deref()) {
        (Some(_), Some("refresh_token")) => ask.refresh_token.clone(),
        (Some(u), _) if ask.offline => {
            let t = format!("rbuild-refresh-{}", random_hex(24));
            lock(&state.refresh).insert(t.clone(), u.clone());
            issued.push(t.clone());
            Some(t)
        }
        _ => None,
    };
    if let Some(r) = refresh {
        body["refresh_token"] = serde_json::Value::String(r);
    }
    lock(&state.issued).extend(issued);
    (200, user, granted, body.to_string())
}

fn random_hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", fastrand::u8(..)))
        .collect()
}

/// An RS256 JWT with the claims distribution checks (iss, aud, nbf, exp, access).
fn sign(
    state: &State,
    sub: &str,
    issued_at: i64,
    lifetime: i64,
    access: Vec<serde_json::Value>,
) -> String {
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "RS256",
        "x5c": [STANDARD.encode(&state.signer.cert_der)],
    });
    let (nbf, exp) = if lifetime > 0 {
        (issued_at - 10, issued_at + lifetime)
    } else {
        // Expired beyond the registry's 60 s leeway.
        let exp = issued_at + lifetime - 120;
        (exp - 60, exp)
    };
    let claims = serde_json::json!({
        "iss": state.issuer,
        "sub": sub,
        "aud": state.service,
        "iat": issued_at,
        "nbf": nbf,
        "exp": exp,
        "jti": random_hex(16),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = ring::rand::SystemRandom::new();
    let mut sig = vec![0u8; state.signer.key.public().modulus_len()];
    state
        .signer
        .key
        .sign(
            &ring::signature::RSA_PKCS1_SHA256,
            &rng,
            signing_input.as_bytes(),
            &mut sig,
        )
        .expect("RSA signing with a freshly loaded key");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a Unix time (civil-from-days, proleptic Gregorian).
fn rfc3339(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Where the token server keeps its files inside a registry's directory.
pub(crate) fn token_dir(registry_dir: &Path) -> PathBuf {
    registry_dir.join("token")
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
