//! Credential redaction for every URL that appears in an error, a warning or a result.
//!
//! A password in a URL's userinfo becomes `***` (`https://user:***@host/simple/`); a userinfo without
//! a password is taken to be a token (`https://TOKEN@host/`) and becomes `***` as a whole.
//!
//! ```
//! use rbuild_index::redact::redact;
//! assert_eq!(
//!     redact("https://user:s3cret@example.com/simple/"),
//!     "https://user:***@example.com/simple/"
//! );
//! assert_eq!(redact("https://tok3n@example.com/x"), "https://***@example.com/x");
//! assert_eq!(
//!     redact("error for url (https://u:p@h/x) and https://u2:p2@h2/"),
//!     "error for url (https://u:***@h/x) and https://u2:***@h2/"
//! );
//! ```

use url::Url;

/// Redacts the credentials of a parsed URL.
pub fn redact_url(url: &Url) -> String {
    if url.cannot_be_a_base() {
        // `user:pw@host` parses as scheme `user` with an opaque path: treat it as raw text.
        return redact_raw(url.as_str());
    }
    if url.username().is_empty() && url.password().is_none() {
        return url.to_string();
    }
    let mut u = url.clone();
    if url.password().is_some() {
        let _ = u.set_password(Some("***"));
    } else {
        let _ = u.set_username("***");
    }
    u.to_string()
}

/// Redacts the userinfo of every `//userinfo@host` in arbitrary text (a URL or a message that
/// contains URLs). Text without credentials is returned unchanged.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("//") {
        let (head, tail) = rest.split_at(pos + 2);
        out.push_str(head);
        // The authority ends at the first of these; a userinfo is what precedes its last `@`.
        let end = tail
            .find(|c: char| {
                matches!(
                    c,
                    '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '(' | ')' | '`'
                ) || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str("***"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Redacts a string that did not even parse as a URL: as [`redact`], and when it has no `://`,
/// everything up to its last `@` is hidden.
pub(crate) fn redact_raw(raw: &str) -> String {
    if raw.contains("://") {
        return redact(raw);
    }
    match raw.rfind('@') {
        Some(at) => format!("***{}", &raw[at..]),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_secrets() {
        let u = Url::parse("https://user:s3cret@example.com:8443/simple/?a=b").unwrap();
        assert_eq!(
            redact_url(&u),
            "https://user:***@example.com:8443/simple/?a=b"
        );
        let u = Url::parse("https://tok3n@example.com/").unwrap();
        assert_eq!(redact_url(&u), "https://***@example.com/");
        let u = Url::parse("https://example.com/simple/").unwrap();
        assert_eq!(redact_url(&u), "https://example.com/simple/");
        let u = Url::parse("user:pw@host/x").unwrap();
        assert_eq!(redact_url(&u), "***@host/x");
    }

    #[test]
    fn text_loses_its_secrets() {
        for (input, want) in [
            ("no url here", "no url here"),
            ("https://a.b/c", "https://a.b/c"),
            ("https://u:p@a.b", "https://u:***@a.b"),
            ("x https://u:p:q@a.b/c?d@e y", "x https://u:***@a.b/c?d@e y"),
            ("http://t@a.b:9/", "http://***@a.b:9/"),
            ("://", "://"),
            ("a://@", "a://***@"),
            ("://https://a:b@h/", "://https://a:***@h/"),
            ("x //u:p@h", "x //u:***@h"),
        ] {
            assert_eq!(redact(input), want, "{input}");
        }
        assert_eq!(redact_raw("user:pw@host/x"), "***@host/x");
        assert_eq!(redact_raw("https://u:pw@h/"), "https://u:***@h/");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        #[test]
        fn secrets_never_survive(user in "[a-z]{1,8}", secret in "[A-Za-z0-9]{12,20}", pre in ".{0,20}", post in "[/?#][^@]{0,20}") {
            let text = format!("{pre}https://{user}:{secret}@host.example{post}");
            let red = redact(&text);
            proptest::prop_assert!(!red.contains(&secret), "{}", red);
        }
    }
}
