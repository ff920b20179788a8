//! `.dockerignore` / `.containerignore` with Docker's (BuildKit's) semantics, exactly.
//!
//! This is a port of [moby/patternmatcher](https://github.com/moby/patternmatcher)
//! (`patternmatcher.go`: `New`, `Pattern.compile`, `MatchesOrParentMatches`,
//! `MatchesUsingParentResults`), of its ignore-file reader (`ignorefile.ReadAll`) and of the
//! decisions BuildKit's context sender makes while walking (tonistiigi/fsutil `filter.go`).
//! It is **not** gitignore: the rules differ, and the common Python allowlist
//! (`*` then `!app`) only works with Docker's.
//!
//! # Reading the file
//!
//! - If `.containerignore` exists in the context it is used, otherwise `.dockerignore` (the
//!   precedence buildah and podman use). No file: nothing is excluded.
//! - The file is split into lines at `\n`; a `\r` before it is dropped; a UTF-8 byte-order mark
//!   at the very start is ignored.
//! - A line is a comment only when `#` is its **first** character; ` # x` is the pattern `# x`
//!   (after trimming), and `\#x` matches a file named `#x`.
//! - Leading and trailing white space is trimmed; empty lines are skipped.
//! - A leading `!` makes the line an *exception* (a re-include); the rest is trimmed again.
//!   A lone `!` is an error. `\!x` matches a file named `!x`.
//! - The pattern is path-cleaned like Go's `filepath.Clean`: `//` → `/`, `./a` → `a`,
//!   `a/../b` → `b`, a trailing `/` is removed; then one leading `/` is dropped. So `/build`,
//!   `./build`, `build/` and `build` are the same pattern, and `build/` also excludes a *file*
//!   named `build`. `../x` stays `../x` and matches nothing.
//!
//! # Matching
//!
//! Paths are relative to the context root, `/`-separated, and matched case-sensitively.
//!
//! | pattern | matches | does not match |
//! |---|---|---|
//! | `*.pyc` | `a.pyc` | `pkg/a.pyc` (`*` never crosses `/`) |
//! | `*/*.pyc` | `pkg/a.pyc` | `a.pyc`, `pkg/sub/a.pyc` |
//! | `**/*.pyc` | `a.pyc`, `pkg/sub/a.pyc` (`**/` is zero or more directories) | |
//! | `**/__pycache__` | `__pycache__`, `a/b/__pycache__` and everything below | |
//! | `data/**` | `data/x`, `data/x/y` | `data` itself |
//! | `**` | everything | |
//! | `file?.txt` | `file1.txt`, `fileé.txt` (`?` is one character, not one byte) | `file/.txt` |
//! | `[a-c]*.py`, `[^a]*.py` | `b.py`; `[^...]` negates | `!` is *not* negation: `[!a]` is `!` or `a` |
//! | `a\*b` | `a*b` (`\` escapes) | `axb` |
//! | `docs` | `docs`, `docs/a/b` (a pattern matching a directory applies below it) | `x/docs` |
//! | `*.md` then `!README.md` | `CHANGES.md` | `README.md` (the last applying line decides) |
//!
//! Also: `.`, `+`, `(`, `)`, `|`, `{`, `}`, `$` are literal; `[` without its `]` is an error
//! naming the line. Patterns are anchored at the root: `foo` matches only `./foo`, unlike
//! gitignore.
//!
//! A pattern *applies* to a path when it matches the path or one of its ancestors. Lines are
//! tried in order and the last one that applies decides: an ordinary line excludes, an exception
//! re-includes. Exactly as in BuildKit, what "applies" means is computed along the walk: a line
//! that applied to a directory applies to everything below it, and a line is only tried when it
//! could change the outcome (an exception only when the path is excluded so far, an ordinary line
//! only when it is not). So `a/x` then `!a` still excludes `a/x`, as `docker build` does.
//!
//! # Walking
//!
//! - An excluded directory is not entered when no exception could re-include anything inside
//!   it. When every exception is a plain path (no `*`, `?`, `[`, `]`, `^`, `\` after removing
//!   a trailing `/*` or `/**`), an excluded directory is entered only if an exception lies below
//!   it; as soon as one exception has a wildcard, every excluded directory is entered (so
//!   `node_modules` then `!**/package.json` re-includes `node_modules/x/package.json`).
//! - A re-included path brings its ancestor directories into the context even though they are
//!   excluded. A directory that is excluded and holds nothing re-included is left out.
//! - A directory that is not excluded is sent even if everything inside it is (`data/*` leaves
//!   an empty `data/`).
//! - `.dockerignore`, `.containerignore` and any `Dockerfile` are ordinary files: they are sent
//!   unless a pattern excludes them.
//!
//! ```
//! use rbuild_layer::IgnoreFile;
//! let ig = IgnoreFile::parse(".dockerignore", "*\n!app\n!pyproject.toml\n**/__pycache__\n")?;
//! assert!(ig.matches("README.md"));
//! assert!(!ig.matches("app/main.py"));
//! assert!(ig.matches("app/__pycache__/main.cpython-311.pyc"));
//! assert!(!ig.matches("pyproject.toml"));
//! assert!(!ig.must_enter_excluded_dir("tests"), "no exception lies under tests/");
//! # Ok::<(), rbuild_layer::Error>(())
//! ```
//!
//! # Differences from BuildKit
//!
//! - A pattern whose regular expression Go would reject (e.g. `[z-a]`, `\q`) is reported when
//!   the file is read; BuildKit reports it only once a path reaches that pattern.
//! - Ignore files must be UTF-8 (BuildKit reads bytes), and lines longer than 64 KiB are an error
//!   as they are in BuildKit.
//! - `\p{Name}` classes (which only reach the regexp through an escape) accept the names the
//!   `regex` crate knows, a superset of Go's.

mod goregex;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The ignore file names rbuild looks for, in order of precedence.
pub const IGNORE_FILE_NAMES: [&str; 2] = [".containerignore", ".dockerignore"];

/// bufio.Scanner's maximum token size: longer lines make BuildKit fail.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex(regex::Regex),
}

/// One compiled pattern of an ignore file.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exception: bool,
    line: usize,
    kind: Kind,
    go_regex: Option<String>,
}

impl Pattern {
    /// The cleaned pattern, without the leading `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True for an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exception(&self) -> bool {
        self.exception
    }

    /// The 1-based line of the ignore file the pattern comes from.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The Go regular expression moby/patternmatcher compiles for this pattern, when it is not
    /// an exact, prefix or suffix match (kept for tests against moby's own expectations).
    pub fn go_regex(&self) -> Option<&str> {
        self.go_regex.as_deref()
    }

    /// Whether the pattern matches `path` itself (not its ancestors).
    pub fn matches_path(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix => path.starts_with(&self.text[..self.text.len() - 2]),
            Kind::Suffix => {
                let suffix = &self.text[2..];
                path.ends_with(suffix) || (suffix.starts_with('/') && path == &suffix[1..])
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }

    /// The pattern with one trailing `/**`, then one trailing `/*`, removed (fsutil's
    /// `patternWithoutTrailingGlob`).
    fn without_trailing_glob(&self) -> &str {
        let p = self.text.strip_suffix("/**").unwrap_or(&self.text);
        p.strip_suffix("/*").unwrap_or(p)
    }
}

/// Which patterns applied to a directory, passed down to its children (moby's `MatchInfo`).
/// The default value means "no information": ancestors are then matched one by one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A parsed ignore file.
#[derive(Debug, Clone)]
pub struct IgnoreFile {
    source: String,
    patterns: Vec<Pattern>,
    exceptions: bool,
    only_prefix_exceptions: bool,
}

impl IgnoreFile {
    /// Parses the text of an ignore file. `source_name` names it in error messages
    /// (`.dockerignore:3: invalid pattern "[a": ...`).
    pub fn parse(source_name: &str, text: &str) -> Result<Self> {
        let lines = read_all(source_name, text)?;
        Self::from_lines(source_name, lines)
    }

    /// Builds a matcher from patterns as `ignorefile.ReadAll` returns them (already cleaned, `!`
    /// for exceptions), one per element; line numbers are the 1-based positions.
    pub fn from_patterns<'a>(
        source_name: &str,
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self> {
        Self::from_lines(
            source_name,
            patterns
                .into_iter()
                .enumerate()
                .map(|(i, p)| (i + 1, p.to_string()))
                .collect(),
        )
    }

    /// Reads the ignore file of a build context: `.containerignore` if present, else
    /// `.dockerignore`. `Ok(None)` when neither exists.
    pub fn load(context_dir: &Path) -> Result<Option<(PathBuf, IgnoreFile)>> {
        for name in IGNORE_FILE_NAMES {
            let path = context_dir.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("cannot read ignore file", path, e)),
            };
            let text = match std::str::from_utf8(&bytes) {
                Ok(t) => t,
                Err(e) => {
                    let line = 1 + bytes[..e.valid_up_to()]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count();
                    return Err(Error::IgnoreEncoding {
                        file: path.display().to_string(),
                        line,
                    });
                }
            };
            let file = IgnoreFile::parse(&path.display().to_string(), text)?;
            return Ok(Some((path, file)));
        }
        Ok(None)
    }

    /// moby's `New`: trim, clean, `!`, syntax check, compile.
    fn from_lines(source: &str, lines: Vec<(usize, String)>) -> Result<Self> {
        let mut patterns = Vec::with_capacity(lines.len());
        let mut exceptions = false;
        for (line, raw) in lines {
            let err = |reason: String| Error::IgnorePattern {
                file: source.to_string(),
                line,
                pattern: raw.clone(),
                reason,
            };
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let exception = p.starts_with('!');
            if exception {
                if p.len() == 1 {
                    return Err(err(
                        "illegal exclusion pattern: \"!\" needs a pattern after it".into(),
                    ));
                }
                p.remove(0);
                exceptions = true;
            }
            validate_glob(&p).map_err(|r| err(r.to_string()))?;
            let (kind, go_regex) = compile(&p).map_err(err)?;
            patterns.push(Pattern {
                text: p,
                exception,
                line,
                kind,
                go_regex,
            });
        }
        let only_prefix_exceptions = !patterns.iter().any(|p| {
            p.exception
                && p.without_trailing_glob()
                    .contains(['*', '[', ']', '?', '^', '\\'])
        });
        Ok(IgnoreFile {
            source: source.to_string(),
            patterns,
            exceptions,
            only_prefix_exceptions,
        })
    }

    /// The name given to [`IgnoreFile::parse`] (the file's path for [`IgnoreFile::load`]).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when at least one pattern is an exception (`!`).
    pub fn has_exceptions(&self) -> bool {
        self.exceptions
    }

    /// Whether `path` (relative, `/`-separated) is excluded from the context, as BuildKit
    /// decides it during its walk (see the module docs).
    pub fn matches(&self, path: &str) -> bool {
        let mut info = MatchInfo::default();
        let parent = go_dir(path);
        if parent != "." {
            for (i, _) in parent
                .match_indices('/')
                .chain(std::iter::once((parent.len(), "")))
            {
                info = self.matches_with_parent(&parent[..i], &info).1;
            }
        }
        self.matches_with_parent(path, &info).0
    }

    /// moby's `MatchesUsingParentResults`: whether `path` is excluded, given what applied to its
    /// parent directory, and what applied to `path` (to pass to its children when it is a
    /// directory). With a default [`MatchInfo`], every ancestor of `path` is matched.
    pub fn matches_with_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let pm = &parent.parent_matched;
        debug_assert!(pm.is_empty() || pm.len() == self.patterns.len());
        let use_parent = pm.len() == self.patterns.len() && !pm.is_empty();
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        let mut anc: Option<Vec<String>> = None;
        for (i, p) in self.patterns.iter().enumerate() {
            let mut m = use_parent && pm[i];
            if !m {
                if p.exception != matched {
                    continue;
                }
                m = p.matches_path(path);
                if !m && !use_parent {
                    m = anc
                        .get_or_insert_with(|| ancestors(path))
                        .iter()
                        .any(|a| p.matches_path(a));
                }
            }
            info[i] = m;
            if m {
                matched = !p.exception;
            }
        }
        (
            matched,
            MatchInfo {
                parent_matched: info,
            },
        )
    }

    /// moby's `MatchesOrParentMatches`: each pattern is tried on the path and all of its
    /// ancestors. Differs from [`IgnoreFile::matches`] only in corner cases (see module docs);
    /// BuildKit's walk uses the latter.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        let mut matched = false;
        let anc = ancestors(path);
        for p in &self.patterns {
            if p.exception != matched {
                continue;
            }
            if p.matches_path(path) || anc.iter().any(|a| p.matches_path(a)) {
                matched = !p.exception;
            }
        }
        matched
    }

    /// For an excluded directory `dir`: whether the walk must still enter it because an
    /// exception could re-include something inside (fsutil's `onlyPrefixExcludeExceptions`
    /// logic). False means the whole directory can be skipped.
    pub fn must_enter_excluded_dir(&self, dir: &str) -> bool {
        if !self.only_prefix_exceptions {
            return true;
        }
        if !self.exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .filter(|p| p.exception)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }
}

/// The ancestors Go's `MatchesOrParentMatches` tries: the prefixes of `filepath.Dir(path)` split
/// at `/`, shortest first; none when the parent is `.`.
fn ancestors(path: &str) -> Vec<String> {
    let parent = go_dir(path);
    if parent == "." {
        return Vec::new();
    }
    parent
        .match_indices('/')
        .map(|(i, _)| i)
        .chain(std::iter::once(parent.len()))
        .map(|i| parent[..i].to_string())
        .collect()
}

/// `ignorefile.ReadAll`: the patterns of an ignore file, with their line numbers.
fn read_all(source: &str, text: &str) -> Result<Vec<(usize, String)>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut lines: Vec<&str> = text.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    for (i, line) in lines.into_iter().enumerate() {
        let line_no = i + 1;
        if line.len() >= MAX_LINE {
            return Err(Error::IgnorePattern {
                file: source.to_string(),
                line: line_no,
                pattern: line.chars().take(40).collect::<String>() + "...",
                reason: "the line is longer than 64 KiB".into(),
            });
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        if invert {
            cleaned.insert(0, '!');
        }
        out.push((line_no, cleaned));
    }
    Ok(out)
}

/// Go's `path.Clean` (= `filepath.Clean` on Unix).
pub(crate) fn go_clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|&c| c != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `filepath.Dir`.
fn go_dir(path: &str) -> String {
    let i = path.rfind('/').map(|i| i + 1).unwrap_or(0);
    go_clean(&path[..i])
}

/// The syntax check moby does with `filepath.Match(p, ".")`: Go's glob grammar, where a class
/// must be closed and non-empty, `-` and `]` must be escaped where a character is expected, and a
/// pattern cannot end with a lone `\`.
fn validate_glob(p: &str) -> Result<(), &'static str> {
    const UNCLOSED: &str = "unclosed character class: `[` without its `]`";
    const BAD_CLASS: &str =
        "malformed character class: `-` or `]` where a character is expected (escape it with `\\`)";
    let b = p.as_bytes();
    let mut i = 0;
    // Go's getEsc: one (possibly escaped) class character, which must be followed by more.
    let get_esc = |i: &mut usize| -> Result<(), &'static str> {
        match b.get(*i) {
            None => return Err(UNCLOSED),
            Some(b'-' | b']') => return Err(BAD_CLASS),
            Some(b'\\') => {
                *i += 1;
                if *i >= b.len() {
                    return Err(UNCLOSED);
                }
            }
            _ => {}
        }
        let ch_len = p[*i..].chars().next().map_or(1, char::len_utf8);
        *i += ch_len;
        if *i >= b.len() { Err(UNCLOSED) } else { Ok(()) }
    };
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if i + 1 >= b.len() {
                    return Err("trailing backslash: escape a literal `\\` as `\\\\`");
                }
                i += 2;
            }
            b'[' => {
                i += 1;
                if b.get(i) == Some(&b'^') {
                    i += 1;
                }
                let mut nrange = 0;
                loop {
                    if b.get(i) == Some(&b']') && nrange > 0 {
                        i += 1;
                        break;
                    }
                    get_esc(&mut i)?;
                    if b[i] == b'-' {
                        i += 1;
                        get_esc(&mut i)?;
                    }
                    nrange += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// moby's `Pattern.compile`: the match kind and, for regexp patterns, the Go regexp and its
/// translation for the `regex` crate.
fn compile(pattern: &str) -> Result<(Kind, Option<String>), String> {
    #[derive(PartialEq, Clone, Copy)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regexp,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut ty = T::Exact;
    let mut pos = 0;
    let mut i = 0;
    while pos < chars.len() {
        let ch = chars[pos];
        pos += 1;
        match ch {
            '*' if chars.get(pos) == Some(&'*') => {
                pos += 1;
                if chars.get(pos) == Some(&'/') {
                    pos += 1;
                }
                if pos == chars.len() {
                    if ty == T::Exact {
                        ty = T::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = T::Regexp;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = T::Regexp;
                }
                if i == 0 {
                    ty = T::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = T::Regexp;
            }
            '?' => {
                re.push_str("[^/]");
                ty = T::Regexp;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => {
                if let Some(&next) = chars.get(pos) {
                    re.push('\\');
                    re.push(next);
                    pos += 1;
                    ty = T::Regexp;
                } else {
                    re.push('\\');
                }
            }
            '[' | ']' => {
                re.push(ch);
                ty = T::Regexp;
            }
            _ => re.push(ch),
        }
        i += 1;
    }
    Ok(match ty {
        T::Exact => (Kind::Exact, None),
        T::Prefix => (Kind::Prefix, None),
        T::Suffix => (Kind::Suffix, None),
        T::Regexp => {
            re.push('$');
            let rust = goregex::translate(&re)?;
            let compiled =
                regex::Regex::new(&rust).map_err(|e| format!("invalid regular expression: {e}"))?;
            (Kind::Regex(compiled), Some(re))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        for (i, o) in [
            ("", "."),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/../b", "b"),
            ("../x", "../x"),
            ("/../x", "/x"),
            ("/", "/"),
            ("a/..", "."),
            ("!a/../b", "b"),
            ("..", ".."),
            ("a/./b/.", "a/b"),
        ] {
            assert_eq!(go_clean(i), o, "{i:?}");
        }
        assert_eq!(go_dir("a/b/c"), "a/b");
        assert_eq!(go_dir("a"), ".");
        assert_eq!(go_dir("dir/file/"), "dir/file");
    }

    #[test]
    fn ancestors_are_the_prefixes_of_the_parent() {
        assert_eq!(ancestors("a/b/c"), ["a", "a/b"]);
        assert!(ancestors("a").is_empty());
        assert_eq!(ancestors("dir/file/"), ["dir", "dir/file"]);
    }

    /// moby/patternmatcher ignorefile_test.go `TestReadAll`, plus `\r\n` and the BOM.
    #[test]
    fn read_all_matches_moby() {
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        let got: Vec<String> = read_all("x", content)
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(
            got,
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        let lines: Vec<usize> = read_all("x", content)
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(lines, [1, 2, 3, 5, 7, 8, 9]);
        let got = read_all("x", "\u{feff}# c\r\n  a/  \r\n \t#b\n").unwrap();
        assert_eq!(got, [(2, "a".to_string()), (3, "#b".to_string())]);
        assert!(read_all("x", "").unwrap().is_empty());
    }

    /// moby/patternmatcher_test.go `compileTests` (slash variant): match type and regexp.
    #[test]
    fn compile_matches_moby() {
        let regexp = |p: &str| compile(p).unwrap().1;
        let kind = |p: &str| match compile(p).unwrap().0 {
            Kind::Exact => "exact",
            Kind::Prefix => "prefix",
            Kind::Suffix => "suffix",
            Kind::Regex(_) => "regexp",
        };
        for (p, k, re) in [
            ("*", "regexp", r"^[^/]*$"),
            ("file*", "regexp", r"^file[^/]*$"),
            ("*file", "regexp", r"^[^/]*file$"),
            ("a*/b", "regexp", r"^a[^/]*/b$"),
            ("**", "suffix", ""),
            ("**/**", "regexp", r"^(.*/)?.*$"),
            ("dir/**", "prefix", ""),
            ("**/dir", "suffix", ""),
            ("**/dir2/*", "regexp", r"^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", "regexp", r"^(.*/)?dir2/.*$"),
            ("**file", "suffix", ""),
            ("**/file*txt", "regexp", r"^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", "regexp", r"^(.*/)?(.*/)?[^/]*\.txt$"),
            ("a[b-d]e", "regexp", r"^a[b-d]e$"),
            (".*", "regexp", r"^\.[^/]*$"),
            ("abc.def", "exact", ""),
            ("abc?def", "regexp", r"^abc[^/]def$"),
            ("**/foo/bar", "suffix", ""),
            ("a(b)c/def", "exact", ""),
            ("a.|)$(}+{bc", "exact", ""),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "exact",
                "",
            ),
        ] {
            let p = go_clean(p);
            assert_eq!(kind(&p), k, "{p}");
            if k == "regexp" {
                assert_eq!(regexp(&p).as_deref(), Some(re), "{p}");
            }
        }
    }

    /// Go's filepath.Match syntax errors, from moby's `matchTests` (those with ErrBadPattern).
    #[test]
    fn syntax_errors_match_go() {
        for bad in [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "[\\", "[a-",
        ] {
            assert!(validate_glob(bad).is_err(), "{bad:?} must be rejected");
        }
        for good in [
            "[\\]a]", "[\\-]", "[x\\-]", "[\\-x]", "a\\*b", "[a-ζ]*", "ab[^e-g]", "a]b", "[*]",
        ] {
            assert!(validate_glob(good).is_ok(), "{good:?} must be accepted");
        }
    }
}
