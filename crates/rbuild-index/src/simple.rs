//! The simple repository API: PEP 691 JSON and PEP 503 HTML project pages.
//!
//! Both formats give the same [`IndexFile`] list. Links are resolved against the page URL (or the
//! page's `<base href>`), the `sha256` comes from the JSON `hashes` or the HTML link's `#sha256=`
//! fragment, and the fragment is dropped from the download URL. Entries whose file name is empty or
//! contains a path separator, or whose sha256 is malformed, are skipped.
//!
//! ```
//! use rbuild_index::simple::parse_html;
//! let page = url::Url::parse("https://example.com/simple/demo/").unwrap();
//! let files = parse_html(
//!     r#"<a href="../../files/demo-1.0-py3-none-any.whl#sha256=2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
//!           data-requires-python="&gt;=3.8">demo-1.0-py3-none-any.whl</a>"#,
//!     &page,
//! ).unwrap();
//! assert_eq!(files[0].url, "https://example.com/files/demo-1.0-py3-none-any.whl");
//! assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8"));
//! assert!(files[0].sha256.is_some());
//! ```

use rbuild_oci::Digest;
use serde::Deserialize;
use url::Url;

/// One file a project page (or a find-links directory) lists.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IndexFile {
    /// The file name (`six-1.17.0-py2.py3-none-any.whl`), never containing a path separator.
    pub filename: String,
    /// Where to download it: an absolute `https:`/`http:` URL without credentials or fragment, or a
    /// `file:` URL for a find-links file.
    pub url: String,
    /// The sha256 the index lists, if any. For find-links files: known once the file has been hashed.
    pub sha256: Option<Digest>,
    /// The size the index lists (PEP 700), if any.
    pub size: Option<u64>,
    /// The `requires-python` specifier, if any.
    pub requires_python: Option<String>,
    /// Whether the file is yanked (PEP 592).
    pub yanked: bool,
    /// The reason given for yanking, if any.
    pub yanked_reason: Option<String>,
    /// Where the listing came from: the index URL (credentials redacted) or the find-links directory.
    pub source: String,
}

impl IndexFile {
    /// True for a wheel (`.whl`), false for an sdist or anything else.
    pub fn is_wheel(&self) -> bool {
        self.filename.ends_with(".whl")
    }
}

/// A file name an index may give: not empty, no separators, not `.`/`..`, no control characters.
pub(crate) fn safe_filename(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= 255
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

fn parse_sha256(hex: &str) -> Option<Digest> {
    Digest::parse(&format!("sha256:{}", hex.to_ascii_lowercase())).ok()
}

/// Resolves `href` against `base` and splits off a `#sha256=` fragment. Returns `None` for a URL that
/// is not http(s) (an index page must not point at local files).
fn resolve(base: &Url, href: &str) -> Option<(Url, Option<Option<Digest>>)> {
    let mut url = base.join(href.trim()).ok()?;
    if !matches!(url.scheme(), "https" | "http") {
        return None;
    }
    // None: no `sha256=` in the fragment; Some(None): one that does not parse.
    let hash = url
        .fragment()
        .and_then(|frag| frag.split('&').find_map(|kv| kv.strip_prefix("sha256=")))
        .map(parse_sha256);
    url.set_fragment(None);
    // Credentials never travel inside a listed URL: the client adds them per host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some((url, hash))
}

fn last_segment(url: &Url) -> Option<String> {
    let seg = url.path_segments()?.next_back()?;
    let decoded = percent_decode(seg);
    Some(decoded)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex_val(bytes[i + 1]), hex_val(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[derive(Deserialize)]
struct JsonPage {
    #[serde(default)]
    meta: JsonMeta,
    files: Vec<JsonFile>,
}

#[derive(Deserialize, Default)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: std::collections::BTreeMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: JsonYanked,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(untagged)]
enum JsonYanked {
    Flag(bool),
    Reason(String),
    #[default]
    Absent,
}

/// Parses a PEP 691 JSON project page fetched from `page_url`.
pub fn parse_json(body: &[u8], page_url: &Url) -> Result<Vec<IndexFile>, String> {
    let page: JsonPage =
        serde_json::from_slice(body).map_err(|e| format!("invalid PEP 691 JSON: {e}"))?;
    if let Some(v) = &page.meta.api_version {
        let major = v.split('.').next().unwrap_or("");
        if major != "1" {
            return Err(format!(
                "unsupported simple API version {v} (rbuild reads version 1.x)"
            ));
        }
    }
    let source = crate::redact::redact_url(page_url);
    let mut out = Vec::with_capacity(page.files.len());
    for f in page.files {
        if !safe_filename(&f.filename) {
            continue;
        }
        let Some((url, frag_hash)) = resolve(page_url, &f.url) else {
            continue;
        };
        let sha256 = match f.hashes.get("sha256") {
            Some(h) => match parse_sha256(h) {
                Some(d) => Some(d),
                None => continue,
            },
            None => match frag_hash {
                Some(Some(d)) => Some(d),
                Some(None) => continue,
                None => None,
            },
        };
        let (yanked, yanked_reason) = match f.yanked {
            JsonYanked::Flag(b) => (b, None),
            JsonYanked::Reason(r) => (true, Some(r).filter(|r| !r.is_empty())),
            JsonYanked::Absent => (false, None),
        };
        out.push(IndexFile {
            filename: f.filename,
            url: url.to_string(),
            sha256,
            size: f.size,
            requires_python: f.requires_python.filter(|s| !s.is_empty()),
            yanked,
            yanked_reason,
            source: source.clone(),
        });
    }
    Ok(out)
}

/// Parses a PEP 503 HTML project page fetched from `page_url`.
///
/// Reads every `<a href>` (attributes in any order and case, quoted or not, HTML entities decoded),
/// `data-requires-python` and `data-yanked`; other attributes (`data-dist-info-metadata`, …) are
/// ignored. A `<base href>` changes the URL that links are resolved against.
pub fn parse_html(body: &str, page_url: &Url) -> Result<Vec<IndexFile>, String> {
    let source = crate::redact::redact_url(page_url);
    let mut base = page_url.clone();
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while let Some(off) = body[i..].find('<') {
        let start = i + off;
        if body[start..].starts_with("<!--") {
            i = body[start..]
                .find("-->")
                .map(|e| start + e + 3)
                .unwrap_or(body.len());
            continue;
        }
        let name_start = start + 1;
        let name_end = body[name_start..]
            .find(|c: char| !c.is_ascii_alphanumeric())
            .map(|e| name_start + e)
            .unwrap_or(body.len());
        let tag = body[name_start..name_end].to_ascii_lowercase();
        let (attrs, after) = parse_attrs(body, name_end);
        i = after;
        match tag.as_str() {
            "base" => {
                if let Some(href) = attr(&attrs, "href")
                    && let Ok(b) = page_url.join(href.trim())
                {
                    base = b;
                }
            }
            "a" => {
                // The text up to `</a` is the file name (PEP 503).
                let text_end = find_ci(bytes, i, b"</a").unwrap_or(body.len());
                let text = decode_entities(strip_tags(&body[i..text_end]).trim());
                i = text_end;
                let Some(href) = attr(&attrs, "href") else {
                    continue;
                };
                let Some((url, frag_hash)) = resolve(&base, href) else {
                    continue;
                };
                let filename = if text.is_empty() {
                    last_segment(&url).unwrap_or_default()
                } else {
                    text
                };
                if !safe_filename(&filename) {
                    continue;
                }
                let sha256 = match frag_hash {
                    Some(Some(d)) => Some(d),
                    // A corrupt listing is not trusted.
                    Some(None) => continue,
                    None => None,
                };
                let yanked_attr = attr(&attrs, "data-yanked");
                out.push(IndexFile {
                    filename,
                    url: url.to_string(),
                    sha256,
                    size: None,
                    requires_python: attr(&attrs, "data-requires-python")
                        .map(str::to_string)
                        .filter(|s| !s.is_empty()),
                    yanked: yanked_attr.is_some(),
                    yanked_reason: yanked_attr.map(str::to_string).filter(|s| !s.is_empty()),
                    source: source.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Parses attributes from `pos` (just after the tag name) to the closing `>`. Returns the attributes
/// (names lowercased, values entity-decoded) and the position after `>`.
fn parse_attrs(s: &str, mut pos: usize) -> (Vec<(String, String)>, usize) {
    let b = s.as_bytes();
    let mut attrs = Vec::new();
    loop {
        while pos < b.len() && (b[pos].is_ascii_whitespace() || b[pos] == b'/') {
            pos += 1;
        }
        if pos >= b.len() {
            return (attrs, pos);
        }
        if b[pos] == b'>' {
            return (attrs, pos + 1);
        }
        let ns = pos;
        while pos < b.len()
            && !b[pos].is_ascii_whitespace()
            && !matches!(b[pos], b'=' | b'>' | b'/')
        {
            pos += 1;
        }
        let name = s[ns..pos].to_ascii_lowercase();
        while pos < b.len() && b[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let mut value = String::new();
        if pos < b.len() && b[pos] == b'=' {
            pos += 1;
            while pos < b.len() && b[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if pos < b.len() && (b[pos] == b'"' || b[pos] == b'\'') {
                let q = b[pos];
                let vs = pos + 1;
                let ve = s[vs..]
                    .bytes()
                    .position(|c| c == q)
                    .map(|e| vs + e)
                    .unwrap_or(b.len());
                value = decode_entities(&s[vs..ve]);
                pos = (ve + 1).min(b.len());
            } else {
                let vs = pos;
                while pos < b.len() && !b[pos].is_ascii_whitespace() && b[pos] != b'>' {
                    pos += 1;
                }
                value = decode_entities(&s[vs..pos]);
            }
        }
        if !name.is_empty() {
            attrs.push((name, value));
        }
    }
}

/// Decodes the HTML character references a simple index uses: `&amp; &lt; &gt; &quot; &apos;
/// &#NN; &#xNN;`. Unknown references are kept as written.
pub(crate) fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let semi = tail.bytes().take(12).position(|b| b == b';');
        let decoded = semi.and_then(|semi| {
            let ent = &tail[1..semi];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let num = ent.strip_prefix('#')?;
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => num.parse::<u32>().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &tail[len..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

    fn page() -> Url {
        Url::parse("https://idx.example/simple/demo/").unwrap()
    }

    #[test]
    fn html_variants() {
        let html = format!(
            r#"<!DOCTYPE html><html><body><!-- <a href="commented.whl">x</a> -->
            <A HREF='demo-1.0-py3-none-any.whl#sha256={H}' data-yanked="broken &amp; bad">demo-1.0-py3-none-any.whl</A><br/>
            <a data-requires-python="&gt;=3.8,&lt;4" href=/files/demo-1.1.tar.gz#md5=abc>demo-1.1.tar.gz</a>
            <a href="https://other.example/x/demo-2.0-py3-none-any.whl#sha256=zz">demo-2.0-py3-none-any.whl</a>
            <a href="file:///etc/passwd">passwd</a>
            <a href="../../evil/..%2F..%2Fx.whl">../x.whl</a>
            <a href="https://u:p@cdn.example/demo-3.0-py3-none-any.whl" data-yanked>demo-3.0-py3-none-any.whl</a>
            <a href="https://cdn.example/demo-4.0-py3-none-any.whl"></a>
            <a name="anchor-without-href">nothing</a>
            </body></html>"#
        );
        let files = parse_html(&html, &page()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(
            names,
            [
                "demo-1.0-py3-none-any.whl",
                "demo-1.1.tar.gz",
                "demo-3.0-py3-none-any.whl",
                "demo-4.0-py3-none-any.whl"
            ]
        );
        assert_eq!(
            files[0].url,
            "https://idx.example/simple/demo/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.unwrap().hex(), H);
        assert!(files[0].yanked);
        assert_eq!(files[0].yanked_reason.as_deref(), Some("broken & bad"));
        assert_eq!(files[1].url, "https://idx.example/files/demo-1.1.tar.gz");
        assert_eq!(files[1].sha256, None, "md5 is not used");
        assert_eq!(files[1].requires_python.as_deref(), Some(">=3.8,<4"));
        assert!(!files[1].yanked);
        assert_eq!(
            files[2].url,
            "https://cdn.example/demo-3.0-py3-none-any.whl"
        );
        assert!(files[2].yanked && files[2].yanked_reason.is_none());
        assert_eq!(files[3].filename, "demo-4.0-py3-none-any.whl");
        assert_eq!(files[0].source, "https://idx.example/simple/demo/");
    }

    #[test]
    fn html_base_href() {
        let html = r#"<head><base href="https://mirror.example/pkgs/"></head>
            <a href="demo-1.0-py3-none-any.whl">demo-1.0-py3-none-any.whl</a>"#;
        let files = parse_html(html, &page()).unwrap();
        assert_eq!(
            files[0].url,
            "https://mirror.example/pkgs/demo-1.0-py3-none-any.whl"
        );
    }

    #[test]
    fn json_variants() {
        let body = format!(
            r#"{{"meta":{{"api-version":"1.1"}},"name":"demo","files":[
            {{"filename":"demo-1.0-py3-none-any.whl","url":"../../f/demo-1.0-py3-none-any.whl","hashes":{{"sha256":"{}"}},"requires-python":">=3.8","yanked":"oops","size":12}},
            {{"filename":"demo-1.1.tar.gz","url":"https://cdn.example/demo-1.1.tar.gz#sha256={H}","hashes":{{}},"yanked":false}},
            {{"filename":"a/b.whl","url":"x","hashes":{{}}}},
            {{"filename":"demo-1.2-py3-none-any.whl","url":"x","hashes":{{"sha256":"nothex"}}}},
            {{"filename":"demo-1.3-py3-none-any.whl","url":"file:///etc/passwd","hashes":{{}}}},
            {{"filename":"demo-1.4-py3-none-any.whl","url":"y","hashes":{{}},"yanked":true}}
            ]}}"#,
            H.to_uppercase()
        );
        let files = parse_json(body.as_bytes(), &page()).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.filename.as_str()).collect();
        assert_eq!(
            names,
            [
                "demo-1.0-py3-none-any.whl",
                "demo-1.1.tar.gz",
                "demo-1.4-py3-none-any.whl"
            ]
        );
        assert_eq!(
            files[0].url,
            "https://idx.example/f/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].sha256.unwrap().hex(), H);
        assert_eq!(files[0].size, Some(12));
        assert_eq!(files[0].yanked_reason.as_deref(), Some("oops"));
        assert_eq!(files[1].sha256.unwrap().hex(), H, "fragment hash");
        assert_eq!(files[1].url, "https://cdn.example/demo-1.1.tar.gz");
        assert!(files[2].yanked && files[2].yanked_reason.is_none());

        assert!(parse_json(br#"{"meta":{"api-version":"2.0"},"files":[]}"#, &page()).is_err());
        assert!(parse_json(b"<html>", &page()).is_err());
    }

    #[test]
    fn entities() {
        assert_eq!(
            decode_entities("a&amp;b&#60;&#x3E;&bogus;&"),
            "a&b<>&bogus;&"
        );
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn html_parser_never_panics(s in ".{0,300}") {
            let files = parse_html(&s, &page()).unwrap();
            for f in files {
                proptest::prop_assert!(safe_filename(&f.filename));
                proptest::prop_assert!(f.url.starts_with("http"));
            }
        }

        #[test]
        fn html_parser_never_panics_on_tag_soup(parts in proptest::collection::vec(
            proptest::prop_oneof!["<a", "<A href=", "\"", "'", ">", "</a>", "&amp;", "&#x", ";", "#sha256=", "x.whl", " ", "<!--", "-->", "<base href=", "é"], 0..40)) {
            let s: String = parts.concat();
            let _ = parse_html(&s, &page()).unwrap();
        }

        #[test]
        fn json_parser_never_panics(s in ".{0,300}") {
            let _ = parse_json(s.as_bytes(), &page());
        }
    }
}
