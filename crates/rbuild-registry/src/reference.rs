//! Image references, parsed exactly as Docker parses them.
//!
//! This follows distribution/reference's `ParseNormalizedNamed` followed by `TagNameOnly`:
//!
//! | input | registry | repository | tag | digest |
//! |---|---|---|---|---|
//! | `python:3.12-slim` | `docker.io` | `library/python` | `3.12-slim` | |
//! | `python` | `docker.io` | `library/python` | `latest` | |
//! | `ghcr.io/a/b` | `ghcr.io` | `a/b` | `latest` | |
//! | `localhost/app:1` | `localhost` | `app` | `1` | |
//! | `127.0.0.1:5000/x/y@sha256:…` | `127.0.0.1:5000` | `x/y` | | `sha256:…` |
//! | `name:tag@sha256:…` | `docker.io` | `library/name` | `tag` (display only) | `sha256:…` (pulled) |
//!
//! The first path component is a registry host when it contains `.` or `:`, is `localhost`, or has
//! upper-case letters; otherwise the reference is on Docker Hub (`docker.io`, whose API host is
//! `registry-1.docker.io`) and a single-component name gets the `library/` prefix.
//! Repository paths are lower-case components separated by `/`, each made of `[a-z0-9]` runs joined by
//! `.`, `_`, `__` or runs of `-`; the whole name is at most 255 characters; tags match
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. One deviation: only `sha256` digests are accepted, as
//! everywhere in rbuild.
//!
//! ```
//! use rbuild_registry::Reference;
//! let r: Reference = "python:3.12-slim".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/python:3.12-slim");
//! assert_eq!(r.api_host(), "registry-1.docker.io");
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use rbuild_oci::Digest;
use regex::Regex;

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's registry API host.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The legacy Docker Hub name (also the key of Docker Hub credentials in Docker's config).
pub const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// Maximum length of a full name (registry + repository).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid image reference: it is empty")]
    Empty,
    /// Does not have the shape `[registry/]repository[:tag][@digest]`.
    #[error(
        "invalid image reference {0:?}: expected [registry[:port]/]repository[:tag][@sha256:digest], e.g. python:3.12-slim or localhost:5000/app:1"
    )]
    Format(String),
    /// The repository path has upper-case letters.
    #[error("invalid image reference {input:?}: repository name {repository:?} must be lowercase")]
    Uppercase {
        /// The input.
        input: String,
        /// The offending repository path.
        repository: String,
    },
    /// The name is longer than 255 characters.
    #[error("invalid image reference {0:?}: the repository name is longer than 255 characters")]
    TooLong(String),
    /// A 64-hex-character name, which Docker reserves for image ids.
    #[error(
        "invalid image reference {0:?}: a repository name cannot be 64 hexadecimal characters (that is an image id)"
    )]
    HexName(String),
    /// The digest is malformed or not sha256.
    #[error("invalid image reference {input:?}: {reason}")]
    Digest {
        /// The input.
        input: String,
        /// Why the digest is refused.
        reason: String,
    },
}

/// An image reference: registry, repository, and a tag and/or a digest.
///
/// When both are present the digest identifies the content and the tag is kept for display.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

const ALNUM: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[._]|__|[-]+)";
const DOMAIN_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const TAG: &str = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
const DIGEST: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";

fn domain_and_port() -> String {
    let domain_name = format!("{DOMAIN_COMPONENT}(?:\\.{DOMAIN_COMPONENT})*");
    let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
    format!("(?:{domain_name}|{ipv6})(?::[0-9]+)?")
}

fn remote_name() -> String {
    let path_component = format!("{ALNUM}(?:{SEPARATOR}{ALNUM})*");
    format!("{path_component}(?:/{path_component})*")
}

/// `^(name)(?::(tag))?(?:@(digest))?$` where name is `[domain/]remote`.
static REFERENCE_RE: LazyLock<Regex> = LazyLock::new(|| {
    let name = format!("(?:{}/)?{}", domain_and_port(), remote_name());
    Regex::new(&format!("^({name})(?::({TAG}))?(?:@({DIGEST}))?$")).expect("reference regex")
});

/// `^(?:(domain)/)?(remote)$`
static ANCHORED_NAME_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        "^(?:({})/)?({})$",
        domain_and_port(),
        remote_name()
    ))
    .expect("name regex")
});

static TAG_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!("^{TAG}$")).expect("tag regex"));

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Splits a name into (domain, remote) as Docker's `splitDockerDomain` does.
fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, rest)) = name.split_once('/') else {
        return (DOCKER_HUB.to_string(), format!("library/{name}"));
    };
    let (domain, remote) = if maybe_domain == "localhost" {
        (maybe_domain, rest.to_string())
    } else if maybe_domain == DOCKER_HUB_LEGACY {
        (DOCKER_HUB, rest.to_string())
    } else if maybe_domain.contains(['.', ':']) || maybe_domain.to_lowercase() != maybe_domain {
        (maybe_domain, rest.to_string())
    } else {
        (DOCKER_HUB, name.to_string())
    };
    let remote = if domain == DOCKER_HUB && !remote.contains('/') {
        format!("library/{remote}")
    } else {
        remote
    };
    (domain.to_string(), remote)
}

impl Reference {
    /// Parses a reference the way `docker pull` does (see the module docs).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        if is_hex64(input) {
            return Err(ReferenceError::HexName(input.to_string()));
        }
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (domain, remainder) = split_docker_domain(input);
        let remote = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => &remainder[..],
        };
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase {
                input: input.to_string(),
                repository: remote.to_string(),
            });
        }
        let full = format!("{domain}/{remainder}");
        let Some(caps) = REFERENCE_RE.captures(&full) else {
            if REFERENCE_RE.is_match(&full.to_lowercase()) {
                return Err(ReferenceError::Uppercase {
                    input: input.to_string(),
                    repository: remote.to_string(),
                });
            }
            return Err(ReferenceError::Format(input.to_string()));
        };
        let name = caps.get(1).map_or("", |m| m.as_str());
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong(input.to_string()));
        }
        let name_caps = ANCHORED_NAME_RE
            .captures(name)
            .ok_or_else(|| ReferenceError::Format(input.to_string()))?;
        let registry = name_caps.get(1).map_or("", |m| m.as_str()).to_string();
        let repository = name_caps.get(2).map_or("", |m| m.as_str()).to_string();
        let digest = match caps.get(3) {
            Some(d) => Some(
                Digest::parse(d.as_str()).map_err(|e| ReferenceError::Digest {
                    input: input.to_string(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
        let tag = caps.get(2).map(|t| t.as_str().to_string());
        // TagNameOnly: a name without tag and digest means `latest`.
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Builds a reference from parts, validating them.
    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Self, ReferenceError> {
        let name = format!("{registry}/{repository}");
        let caps = ANCHORED_NAME_RE
            .captures(&name)
            .filter(|c| c.get(1).map(|m| m.as_str()) == Some(registry))
            .ok_or_else(|| ReferenceError::Format(name.clone()))?;
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::TooLong(name));
        }
        let _ = caps;
        if let Some(t) = tag
            && !TAG_RE.is_match(t)
        {
            return Err(ReferenceError::Format(format!("{name}:{t}")));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// The registry as written in the reference (`docker.io`, `ghcr.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host the registry API is served from: `registry-1.docker.io` for Docker Hub, else
    /// [`Reference::registry`].
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The repository path (`library/python`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (a reference parsed without tag and digest has `latest`).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one, else the tag.
    pub fn identifier(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !TAG_RE.is_match(tag) {
            return Err(ReferenceError::Format(format!("{}:{tag}", self.name())));
        }
        Ok(Reference {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest`, without a tag.
    pub fn by_digest(&self, digest: Digest) -> Self {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form Docker shows (`python:3.12-slim` for `docker.io/library/python:3.12-slim`).
    pub fn familiar(&self) -> String {
        let mut name = if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        };
        if let Some(t) = &self.tag {
            name.push(':');
            name.push_str(t);
        }
        if let Some(d) = &self.digest {
            name.push('@');
            name.push_str(&d.to_string());
        }
        name
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FF: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    fn p(s: &str) -> Reference {
        Reference::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    /// distribution/reference normalize_test.go TestValidateReferenceName.
    #[test]
    fn valid_and_invalid_repo_names() {
        for name in [
            "docker/docker",
            "library/debian",
            "debian",
            "localhost/library/debian",
            "localhost/debian",
            "LOCALDOMAIN/library/debian",
            "LOCALDOMAIN/debian",
            "docker.io/docker/docker",
            "docker.io/library/debian",
            "docker.io/debian",
            "index.docker.io/docker/docker",
            "index.docker.io/library/debian",
            "index.docker.io/debian",
            "127.0.0.1:5000/docker/docker",
            "127.0.0.1:5000/library/debian",
            "127.0.0.1:5000/debian",
            "192.168.0.1",
            "192.168.0.1:80",
            "192.168.0.1:8/debian",
            "192.168.0.2:25000/debian",
            "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
            "[fc00::1]:5000/docker",
            "[fc00::1]:5000/docker/docker",
            "[fc00:1:2:3:4:5:6:7]:5000/library/debian",
            "docker.io/1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "Docker/docker",
            "DOCKER/docker",
            // TestValidateRemoteName
            "docker-rules/docker",
            "docker---rules/docker",
            "doc/docker",
            "d/docker",
            "jess/t",
            "dock__er/docker",
        ] {
            p(name);
        }
        for name in [
            "https://github.com/docker/docker",
            "docker/Docker",
            "-docker",
            "-docker/docker",
            "-docker.io/docker/docker",
            "docker///docker",
            "docker.io/docker/Docker",
            "docker.io/docker///docker",
            "[fc00::1]",
            "[fc00::1]:5000",
            "fc00::1:5000/debian",
            "[fe80::1%eth0]:5000/debian",
            "[2001:db8:3:4::192.0.2.33]:5000/debian",
            "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a",
            "docker-/docker",
            "-docker-/docker",
            "____/____",
            "_docker/_docker",
            "dock..er/docker",
            "dock_.er/docker",
            "dock-.er/docker",
            "docker/",
            &format!(
                "{}/docker",
                "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_".repeat(4)
            ),
            "",
            ":justtag",
            &format!("@{FF}"),
            "repo@sha256:ffffffffffffffffffffffffffffffffff",
            &format!("validname@invaliddigest:{}", &FF[7..]),
            "Uppercase:tag",
            "test:5000/Uppercase/lowercase:tag",
            &format!("{}a:tag", "a/".repeat(128)),
            "aa/asdf$$^/aa",
            "[2001:db8::1]",
            "[2001:db8::1]:5000",
            "[2001:db8::1]:tag",
            "[fe80::1%@invalidzone]:5000/repo",
        ] {
            assert!(
                Reference::parse(name).is_err(),
                "{name:?} should be invalid"
            );
        }
    }

    /// normalize_test.go TestParseRepositoryInfo and TestNormalizedSplitHostname, plus
    /// reference_test.go TestReferenceParse rows (after normalization).
    #[test]
    fn normalization_table() {
        // input, registry, repository, tag, digest
        type Row<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<&'a str>);
        let rows: &[Row] = &[
            // input, registry, repository, tag, digest
            ("fooo/bar", "docker.io", "fooo/bar", Some("latest"), None),
            (
                "index.docker.io/fooo/bar",
                "docker.io",
                "fooo/bar",
                Some("latest"),
                None,
            ),
            (
                "ubuntu",
                "docker.io",
                "library/ubuntu",
                Some("latest"),
                None,
            ),
            (
                "library/ubuntu",
                "docker.io",
                "library/ubuntu",
                Some("latest"),
                None,
            ),
            (
                "docker.io/foo",
                "docker.io",
                "library/foo",
                Some("latest"),
                None,
            ),
            (
                "docker.io/library/foo/bar",
                "docker.io",
                "library/foo/bar",
                Some("latest"),
                None,
            ),
            (
                "store/foo/bar",
                "docker.io",
                "store/foo/bar",
                Some("latest"),
                None,
            ),
            (
                "other/library",
                "docker.io",
                "other/library",
                Some("latest"),
                None,
            ),
            (
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000",
                "private/moonbase",
                Some("latest"),
                None,
            ),
            (
                "127.0.0.1:8000/privatebase",
                "127.0.0.1:8000",
                "privatebase",
                Some("latest"),
                None,
            ),
            (
                "example.com:8000/privatebasee",
                "example.com:8000",
                "privatebasee",
                Some("latest"),
                None,
            ),
            (
                "ubuntu-12.04-base",
                "docker.io",
                "library/ubuntu-12.04-base",
                Some("latest"),
                None,
            ),
            ("Foo/bar", "Foo", "bar", Some("latest"), None),
            ("test.com/foo", "test.com", "foo", Some("latest"), None),
            (
                "test_com/foo",
                "docker.io",
                "test_com/foo",
                Some("latest"),
                None,
            ),
            (
                "test-com:8080/foo",
                "test-com:8080",
                "foo",
                Some("latest"),
                None,
            ),
            (
                "xn--n3h.com:18080/foo",
                "xn--n3h.com:18080",
                "foo",
                Some("latest"),
                None,
            ),
            ("localhost/app:1", "localhost", "app", Some("1"), None),
            (
                "python:3.12-slim",
                "docker.io",
                "library/python",
                Some("3.12-slim"),
                None,
            ),
            (
                "test_com",
                "docker.io",
                "library/test_com",
                Some("latest"),
                None,
            ),
            (
                "test.com:tag",
                "docker.io",
                "library/test.com",
                Some("tag"),
                None,
            ),
            (
                "test.com:5000",
                "docker.io",
                "library/test.com",
                Some("5000"),
                None,
            ),
            ("test:5000/repo", "test:5000", "repo", Some("latest"), None),
            ("test:5000/repo:tag", "test:5000", "repo", Some("tag"), None),
            (
                &format!("test:5000/repo@{FF}")[..],
                "test:5000",
                "repo",
                None,
                Some(FF),
            ),
            (
                &format!("test:5000/repo:tag@{FF}")[..],
                "test:5000",
                "repo",
                Some("tag"),
                Some(FF),
            ),
            (
                "lowercase:Uppercase",
                "docker.io",
                "library/lowercase",
                Some("Uppercase"),
                None,
            ),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
                "sub-dom1.foo.com",
                "bar/baz/quux",
                Some("some-long-tag"),
                None,
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com",
                "b.gcr.io",
                "test.example.com/my-app",
                Some("test.example.com"),
                None,
            ),
            (
                "foo_bar.com:8080",
                "docker.io",
                "library/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "foo/foo_bar.com:8080",
                "docker.io",
                "foo/foo_bar.com",
                Some("8080"),
                None,
            ),
            (
                "192.168.1.1",
                "docker.io",
                "library/192.168.1.1",
                Some("latest"),
                None,
            ),
            (
                "192.168.1.1:5000",
                "docker.io",
                "library/192.168.1.1",
                Some("5000"),
                None,
            ),
            (
                "192.168.1.1/repo",
                "192.168.1.1",
                "repo",
                Some("latest"),
                None,
            ),
            (
                "192.168.1.1:5000/repo:5050",
                "192.168.1.1:5000",
                "repo",
                Some("5050"),
                None,
            ),
            (
                "[2001:db8::1]/repo",
                "[2001:db8::1]",
                "repo",
                Some("latest"),
                None,
            ),
            (
                "[2001:db8:1:2:3:4:5:6]/repo:tag",
                "[2001:db8:1:2:3:4:5:6]",
                "repo",
                Some("tag"),
                None,
            ),
            (
                &format!("[2001:db8::1]:5000/repo:tag@{FF}")[..],
                "[2001:db8::1]:5000",
                "repo",
                Some("tag"),
                Some(FF),
            ),
            (
                "[::1]:5000/repo",
                "[::1]:5000",
                "repo",
                Some("latest"),
                None,
            ),
        ];
        for (input, registry, repository, tag, digest) in rows {
            let r = p(input);
            assert_eq!(r.registry(), *registry, "{input}");
            assert_eq!(r.repository(), *repository, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(
                r.digest().map(|d| d.to_string()).as_deref(),
                *digest,
                "{input}"
            );
        }
    }

    #[test]
    fn display_familiar_identifier_and_api_host() {
        let r = p("python:3.12-slim");
        assert_eq!(r.to_string(), "docker.io/library/python:3.12-slim");
        assert_eq!(r.familiar(), "python:3.12-slim");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.identifier(), "3.12-slim");
        let d = format!("busybox:latest@{FF}");
        let r = p(&d);
        assert_eq!(r.to_string(), format!("docker.io/library/{d}"));
        assert_eq!(r.familiar(), d);
        assert_eq!(r.identifier(), FF, "the digest wins for pulling");
        let r = p("127.0.0.1:5000/a/b");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.familiar(), "127.0.0.1:5000/a/b:latest");
        // Parse() accepts 127 × "a/" + "a" (255 characters, domain "a"), but normalized it is
        // docker.io/a/…, over the limit; the tag does not count.
        let long = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::TooLong(_))
        ));
        let fits = format!("{}a:tag-puts-this-over-max", "a/".repeat(122));
        assert_eq!(p(&fits).name().len(), 255);
        // Round trip through Display.
        for s in [
            "docker.io/library/x:1",
            "localhost:5000/a/b@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn errors_are_specific() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("Uppercase:tag"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            Reference::parse(&format!("{}a:tag", "a/".repeat(128))),
            Err(ReferenceError::TooLong(_))
        ));
        assert!(matches!(
            Reference::parse("x@sha512:abcdefabcdefabcdefabcdefabcdefabcdef"),
            Err(ReferenceError::Digest { .. })
        ));
        let e = Reference::parse("a b").unwrap_err().to_string();
        assert!(e.contains("expected [registry"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "[a-zA-Z0-9:/@._\\-\\[\\]]{0,80}") {
            if let Ok(r) = Reference::parse(&s) {
                let again = Reference::parse(&r.to_string()).unwrap();
                proptest::prop_assert_eq!(again, r);
            }
        }
    }
}
