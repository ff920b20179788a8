//! Authentication: `WWW-Authenticate` challenges, Basic and Bearer, tokens cached per scope set.
//!
//! A registry says how to authenticate in the `WWW-Authenticate` header of a 401:
//! - `Basic realm="..."`: every request carries `Authorization: Basic base64(user:password)`;
//! - `Bearer realm="https://auth/token",service="registry",scope="repository:x:pull"`: rbuild asks
//!   the realm for a token with all the scopes an operation needs in one request (a copy on one
//!   registry asks for `repository:SRC:pull` and `repository:DST:pull,push` together, so the
//!   destination can mount blobs from the source, as Docker Hub requires), with Basic credentials when
//!   it has some (GET), or as an OAuth2 `refresh_token` grant when the credential is an identity token
//!   (POST). Tokens are cached per (host, scope set) until they expire.
//!
//! A request that gets a 401 is sent once more after re-authenticating (a token may have expired, or
//! the registry may need more scope: `error="insufficient_scope"` with the scope it wants).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::error::{Error, Result};

/// A secret string (password or token): shown as `***` by `Debug` and `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A registry credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An identity (refresh) token, as `docker login` stores for some registries.
    IdentityToken {
        /// The user name, if known.
        username: Option<String>,
        /// The token.
        token: Secret,
    },
}

impl Credential {
    /// A user/password credential.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credential::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{}", password.expose()))
            )),
            Credential::IdentityToken { .. } => None,
        }
    }
}

/// Finds credentials for a registry (as named in references: `docker.io`, `ghcr.io`,
/// `localhost:5000`). Consulted once per registry host and repository per client, when the
/// registry first asks for authentication.
pub trait CredentialProvider: Send + Sync {
    /// The credential for `registry`, or `None` for anonymous access.
    fn get(&self, registry: &str) -> Result<Option<Credential>>;

    /// The credential for `repository` (`team/app`) on `registry`. Providers whose entries can be
    /// scoped to a repository or namespace (containers' `auth.json`) pick the most specific one;
    /// the default is the registry's.
    fn get_for_repository(&self, registry: &str, repository: &str) -> Result<Option<Credential>> {
        let _ = repository;
        self.get(registry)
    }

    /// The credential for `registry` (the most specific one for `repository` when given) and where
    /// it came from: a file, a credential helper, a flag — never the secret. The client names the
    /// source when the registry rejects the credential. The default names none.
    fn get_sourced(
        &self,
        registry: &str,
        repository: Option<&str>,
    ) -> Result<Option<(Credential, Option<String>)>> {
        let c = match repository {
            Some(r) => self.get_for_repository(registry, r)?,
            None => self.get(registry)?,
        };
        Ok(c.map(|c| (c, None)))
    }
}

/// No credentials: anonymous access only.
#[derive(Clone, Copy, Debug, Default)]
pub struct Anonymous;

impl CredentialProvider for Anonymous {
    fn get(&self, _registry: &str) -> Result<Option<Credential>> {
        Ok(None)
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// `Basic realm=...`.
    Basic,
    /// `Bearer realm=...,service=...,scope=...`.
    Bearer {
        /// Where tokens come from.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The scope the registry asked for, if any.
        scope: Option<String>,
        /// The `error` parameter (`invalid_token`, `insufficient_scope`).
        error: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` header value.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = match value.find(char::is_whitespace) {
        Some(i) => (&value[..i], value[i..].trim_start()),
        None => (value, ""),
    };
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
            error: params.get("error").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                val.push(*c);
                chars.next();
            }
            val = val.trim().to_string();
        }
        out.entry(key).or_insert(val);
    }
    out
}

/// The repository scopes one operation needs, e.g. `repository:a:pull repository:b:pull,push`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Pull access to `repo`.
    pub fn pull(repo: &str) -> Self {
        Scopes(BTreeSet::from([format!("repository:{repo}:pull")]))
    }
    /// Pull and push access to `repo`.
    pub fn push(repo: &str) -> Self {
        Scopes(BTreeSet::from([format!("repository:{repo}:pull,push")]))
    }
    /// Adds pull access to `repo` (for mounting from it).
    pub fn and_pull(mut self, repo: &str) -> Self {
        self.0.insert(format!("repository:{repo}:pull"));
        self
    }
    /// Adds a raw scope string (from a challenge).
    pub fn and_raw(mut self, scope: &str) -> Self {
        for s in scope.split(' ').filter(|s| !s.is_empty()) {
            self.0.insert(s.to_string());
        }
        self
    }
    /// The scope strings, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    fn key(&self) -> String {
        self.0.iter().cloned().collect::<Vec<_>>().join(" ")
    }
    /// The repository whose credential the request uses: the one pushed to, else the first one
    /// named (`None` when no scope names a repository).
    fn credential_repository(&self) -> Option<&str> {
        let repos = || {
            self.0.iter().filter_map(|s| {
                let rest = s.strip_prefix("repository:")?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some((name, actions))
            })
        };
        repos()
            .find(|(_, actions)| actions.split(',').any(|a| a == "push" || a == "*"))
            .or_else(|| repos().next())
            .map(|(name, _)| name)
    }
}

struct CachedToken {
    header: String,
    expires: Instant,
}

/// Per-host authentication state: the challenge learned from the registry, the credential, and the
/// token cache.
pub(crate) struct AuthState {
    registry: String,
    /// Held while a token is fetched, so concurrent requests ask the token server once.
    pub(crate) fetch_lock: tokio::sync::Mutex<()>,
    challenge: Mutex<Option<Challenge>>,
    /// Per repository (`None`: no repository in the scopes), as the provider answered.
    credential: Mutex<HashMap<Option<String>, Option<Credential>>>,
    /// Where the last credential used came from, when the provider said.
    source: Mutex<Option<String>>,
    tokens: Mutex<HashMap<String, CachedToken>>,
}

/// What the client must do to get a token: the request to send to the realm.
pub(crate) struct TokenRequest {
    pub realm: String,
    pub method_post: bool,
    /// Query parameters (GET) or form fields (POST).
    pub params: Vec<(String, String)>,
    pub basic: Option<String>,
    pub key: String,
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl AuthState {
    pub(crate) fn new(registry: &str) -> Self {
        AuthState {
            registry: registry.to_string(),
            fetch_lock: tokio::sync::Mutex::new(()),
            challenge: Mutex::new(None),
            credential: Mutex::new(HashMap::new()),
            source: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    fn credential(
        &self,
        provider: &dyn CredentialProvider,
        repository: Option<&str>,
    ) -> Result<Option<Credential>> {
        let mut cache = self.credential.lock().expect("credential lock");
        let key = repository.map(str::to_string);
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let found = provider.get_sourced(&self.registry, repository)?;
        let c = found.map(|(c, source)| {
            *self.source.lock().expect("source lock") = source;
            c
        });
        cache.insert(key, c.clone());
        Ok(c)
    }

    /// Where the credential sent to this registry came from (a file, a credential helper, a
    /// flag), when known: named in the error when the registry rejects it.
    pub(crate) fn source(&self) -> Option<String> {
        self.source.lock().expect("source lock").clone()
    }

    /// Records a 401's challenge; drops the cached token for `scopes`. Returns the extra scope the
    /// registry asked for, if any.
    pub(crate) fn learn(&self, challenge: Challenge, scopes: &Scopes) -> Option<String> {
        self.tokens
            .lock()
            .expect("token lock")
            .remove(&scopes.key());
        let extra = match &challenge {
            Challenge::Bearer { scope, .. } => scope.clone(),
            Challenge::Basic => None,
        };
        *self.challenge.lock().expect("challenge lock") = Some(challenge);
        extra
    }

    /// The `Authorization` value for `scopes` if it is known without a network round trip, or the
    /// token request to make.
    pub(crate) fn authorization(
        &self,
        scopes: &Scopes,
        provider: &dyn CredentialProvider,
    ) -> Result<AuthStep> {
        let challenge = self.challenge.lock().expect("challenge lock").clone();
        match challenge {
            None => Ok(AuthStep::Header(None)),
            Some(Challenge::Basic) => match self.credential(provider, scopes.credential_repository())? {
                Some(c @ Credential::Basic { .. }) => Ok(AuthStep::Header(c.basic_header())),
                Some(Credential::IdentityToken { .. }) => Err(Error::Auth {
                    host: self.registry.clone(),
                    reason: "the registry wants Basic authentication, but the stored credential is an identity token".into(),
                    origin: self.source(),
                }),
                None => Err(Error::Auth {
                    host: self.registry.clone(),
                    reason: "the registry requires a user name and password, and none was found".into(),
                    origin: None,
                }),
            },
            Some(Challenge::Bearer { realm, service, .. }) => {
                let key = scopes.key();
                if let Some(t) = self.tokens.lock().expect("token lock").get(&key)
                    && t.expires > Instant::now() {
                        return Ok(AuthStep::Header(Some(t.header.clone())));
                    }
                let mut params = Vec::new();
                let cred = self.credential(provider, scopes.credential_repository())?;
                let (post, basic) = match &cred {
                    Some(Credential::IdentityToken { token, .. }) => {
                        params.push(("grant_type".into(), "refresh_token".into()));
                        params.push(("refresh_token".into(), token.expose().to_string()));
                        params.push(("client_id".into(), "rbuild".into()));
                        (true, None)
                    }
                    Some(c @ Credential::Basic { username, .. }) => {
                        params.push(("account".into(), username.clone()));
                        (false, c.basic_header())
                    }
                    None => (false, None),
                };
                if let Some(s) = service {
                    params.push(("service".into(), s));
                }
                if post {
                    params.push(("scope".into(), key.clone()));
                } else {
                    for s in scopes.iter() {
                        params.push(("scope".into(), s.to_string()));
                    }
                }
                Ok(AuthStep::Fetch(TokenRequest {
                    realm,
                    method_post: post,
                    params,
                    basic,
                    key,
                }))
            }
        }
    }

    /// Stores a token response; returns the `Authorization` value.
    pub(crate) fn store_token(&self, key: &str, body: &[u8], received: Instant) -> Result<String> {
        let resp: TokenResponse = serde_json::from_slice(body).map_err(|e| Error::Auth {
            host: self.registry.clone(),
            reason: format!("the token server's answer is not a token response: {e}"),
            origin: None,
        })?;
        let token = resp
            .token
            .or(resp.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Auth {
                host: self.registry.clone(),
                reason: "the token server's answer has no token".into(),
                origin: None,
            })?;
        // Default lifetime is 60 s (distribution's token spec); keep a margin.
        let lifetime = Duration::from_secs(resp.expires_in.unwrap_or(60).max(1));
        let expires = received + lifetime.mul_f64(0.9);
        let header = format!("Bearer {token}");
        self.tokens.lock().expect("token lock").insert(
            key.to_string(),
            CachedToken {
                header: header.clone(),
                expires,
            },
        );
        Ok(header)
    }
}

/// The next step to authenticate a request.
pub(crate) enum AuthStep {
    /// Send this header (or none).
    Header(Option<String>),
    /// Fetch a token first.
    Fetch(TokenRequest),
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_credential_is_the_pushed_repositorys() {
        assert_eq!(
            Scopes::push("team-b/app")
                .and_pull("team-a/base")
                .credential_repository(),
            Some("team-b/app")
        );
        assert_eq!(
            Scopes::pull("team-a/base").credential_repository(),
            Some("team-a/base")
        );
        assert_eq!(
            Scopes(BTreeSet::from(["registry:catalog:*".to_string()])).credential_repository(),
            None
        );
    }
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/python:pull,push",error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/python:pull,push".into()),
                error: Some("insufficient_scope".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"bearer realm=https://x/t, service=s"#),
            Some(Challenge::Bearer {
                realm: "https://x/t".into(),
                service: Some("s".into()),
                scope: None,
                error: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn secrets_never_display() {
        let c = Credential::basic("u", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn tokens_are_cached_per_scope_set() {
        let st = AuthState::new("r");
        let scopes = Scopes::push("b").and_pull("a");
        assert_eq!(
            scopes.iter().collect::<Vec<_>>(),
            ["repository:a:pull", "repository:b:pull,push"]
        );
        st.learn(
            Challenge::Bearer {
                realm: "http://127.0.0.1/t".into(),
                service: Some("s".into()),
                scope: None,
                error: None,
            },
            &scopes,
        );
        let AuthStep::Fetch(req) = st.authorization(&scopes, &Anonymous).unwrap() else {
            panic!("expected a token fetch")
        };
        assert_eq!(
            req.params.iter().filter(|(k, _)| k == "scope").count(),
            2,
            "one token request carries both scopes"
        );
        st.store_token(
            &req.key,
            br#"{"token":"abc","expires_in":300}"#,
            Instant::now(),
        )
        .unwrap();
        assert!(matches!(
            st.authorization(&scopes, &Anonymous).unwrap(),
            AuthStep::Header(Some(h)) if h == "Bearer abc"
        ));
        assert!(matches!(
            st.authorization(&Scopes::pull("a"), &Anonymous).unwrap(),
            AuthStep::Fetch(_)
        ));
    }
}
