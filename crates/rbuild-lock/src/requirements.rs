//! pip requirements files, as `uv pip compile`, `pip-compile` and `uv export` write them.
//!
//! Lines are read the way pip reads them (`pip._internal.req.req_file`): lines ending in `\` are
//! joined with the next (a comment line ends the continuation), then a `#` at the start of a line or
//! after whitespace starts a comment, then the line is split at the first word starting with `-` into
//! the requirement and its options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rbuild_oci::Digest;
use rbuild_python::markers::{MarkerEnv, MarkerTree};
use rbuild_python::requirement::Requirement;
use rbuild_python::version::Operator;

use crate::error::{Error, Location, Result};
use crate::model::{Lock, LockFormat, LockedPackage, PackageSource, ResolveOptions};
use crate::util::{check_name, is_url, parse_sha256, read_text, same_version};

/// Requirements files nest at most this deep (a chain, not a cycle, of `-r` includes).
const MAX_INCLUDE_DEPTH: usize = 32;

/// One logical line: its first physical line number and its text without comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    pub line: usize,
    pub text: String,
}

/// Splits on `\n`, `\r\n` and `\r`, as `str.splitlines` does for those.
fn physical_lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(i) => {
                out.push(&rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                out.push(rest);
                break;
            }
        }
    }
    out
}

/// pip's `COMMENT_RE.match`: the line starts with `#`, or with whitespace then `#`.
fn starts_with_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// pip's `COMMENT_RE.sub("", line)`: drops from the first `#` that starts the line or follows whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || (bytes[i - 1] as char).is_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// Joins continuation lines and strips comments and blank lines, keeping the first line number of
/// every logical line.
pub(crate) fn logical_lines(text: &str) -> Vec<LogicalLine> {
    let mut joined: Vec<(usize, String)> = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in physical_lines(text).into_iter().enumerate() {
        let n = i + 1;
        let is_comment = starts_with_comment(raw);
        if !raw.ends_with('\\') || is_comment {
            let piece = if is_comment {
                format!(" {raw}")
            } else {
                raw.to_string()
            };
            match current.take() {
                Some((first, mut acc)) => {
                    acc.push_str(&piece);
                    joined.push((first, acc));
                }
                None => joined.push((n, piece)),
            }
        } else {
            let piece = raw.trim_matches('\\');
            match &mut current {
                Some((_, acc)) => acc.push_str(piece),
                None => current = Some((n, piece.to_string())),
            }
        }
    }
    if let Some(c) = current {
        joined.push(c);
    }
    joined
        .into_iter()
        .filter_map(|(line, text)| {
            let t = strip_comment(&text).trim();
            (!t.is_empty()).then(|| LogicalLine {
                line,
                text: t.to_string(),
            })
        })
        .collect()
}

/// pip's `break_args_options`: words up to the first one starting with `-` are the requirement, the
/// rest are options.
fn break_args_options(line: &str) -> (String, String) {
    let tokens: Vec<&str> = line.split(' ').collect();
    let split = tokens
        .iter()
        .position(|t| t.starts_with('-'))
        .unwrap_or(tokens.len());
    (tokens[..split].join(" "), tokens[split..].join(" "))
}

/// A small `shlex.split`: whitespace-separated words, with `'…'`, `"…"` and `\` escapes.
fn shell_words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err("unclosed `'` quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err("unclosed `\"` quote".into()),
                        },
                        Some(x) => cur.push(x),
                        None => return Err("unclosed `\"` quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The options pip accepts in a requirements file, with whether they take a value.
const OPTIONS: &[(&str, Option<&str>, bool)] = &[
    ("--index-url", Some("-i"), true),
    ("--extra-index-url", None, true),
    ("--no-index", None, false),
    ("--constraint", Some("-c"), true),
    ("--requirement", Some("-r"), true),
    ("--editable", Some("-e"), true),
    ("--find-links", Some("-f"), true),
    ("--no-binary", None, true),
    ("--only-binary", None, true),
    ("--prefer-binary", None, false),
    ("--require-hashes", None, false),
    ("--pre", None, false),
    ("--trusted-host", None, true),
    ("--use-feature", None, true),
    ("--hash", None, true),
    ("--config-settings", None, true),
    ("--global-option", None, true),
];

/// Parses option words into (long name, value) pairs.
fn parse_options(words: &[String]) -> std::result::Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        i += 1;
        let (long, takes, inline): (&'static str, bool, Option<String>) = if let Some(body) =
            w.strip_prefix("--")
        {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let Some(&(long, _, takes)) = OPTIONS.iter().find(|(l, _, _)| &l[2..] == name) else {
                return Err(format!("unknown option `--{name}`"));
            };
            (long, takes, inline)
        } else if w.starts_with('-') && w.len() >= 2 {
            let Some(short) = w.get(..2) else {
                return Err(format!("unknown option `{w}`"));
            };
            let Some(&(long, _, takes)) = OPTIONS.iter().find(|(_, s, _)| *s == Some(short)) else {
                return Err(format!("unknown option `{w}`"));
            };
            let rest = &w[short.len()..];
            let inline = if rest.is_empty() {
                None
            } else {
                Some(rest.strip_prefix('=').unwrap_or(rest).to_string())
            };
            (long, takes, inline)
        } else {
            return Err(format!("unexpected `{w}` among the options"));
        };
        if takes {
            let value = match inline {
                Some(v) => v,
                None => {
                    let Some(v) = words.get(i) else {
                        return Err(format!("`{long}` needs a value"));
                    };
                    i += 1;
                    v.clone()
                }
            };
            out.push((long, value));
        } else {
            if inline.is_some() {
                return Err(format!("`{long}` takes no value"));
            }
            out.push((long, String::new()));
        }
    }
    Ok(out)
}

/// One requirement line, as read (before marker evaluation).
#[derive(Debug, Clone)]
struct ReqLine {
    location: Location,
    text: String,
    req: Requirement,
    hashes: Vec<Digest>,
    /// Whether the line had `--hash` options (even if none is sha256).
    had_hash: bool,
    constraint: bool,
}

#[derive(Default)]
struct State {
    lines: Vec<ReqLine>,
    index_url: Option<String>,
    extra_index_urls: Vec<String>,
    find_links: Vec<String>,
    no_index: bool,
    require_hashes_in_file: bool,
    notes: Vec<String>,
    /// Lines rbuild refuses (VCS, paths, direct URLs), with their marker: refused only when the
    /// marker holds for the target (pip skips a line whose marker does not hold).
    refused: Vec<Refused>,
}

/// A refused requirement line, kept until its marker is evaluated.
struct Refused {
    location: Location,
    name: String,
    marker: Option<MarkerTree>,
    error: Error,
}

/// The marker after `;` of a line that is not a PEP 508 requirement (a bare URL or path): pip takes
/// the text after `; ` (or ` ;`) as the marker.
fn trailing_marker(args: &str) -> Option<MarkerTree> {
    let i = args.find("; ").or_else(|| args.find(" ;"))?;
    MarkerTree::parse(args[i..].trim_start_matches([' ', ';'])).ok()
}

/// The project itself, as `uv export` writes it (`-e .`, `-e file:.`, `-e ./`).
fn is_self_editable(value: &str) -> bool {
    let v = value.trim();
    let v = v.strip_prefix("file:").unwrap_or(v);
    let v = v.strip_prefix("//").unwrap_or(v);
    matches!(v, "." | "./" | ".\\")
}

/// Tells what kind of non-registry requirement a line is, for the error message.
fn direct_reference_kind(url: &str) -> &'static str {
    let l = url.to_ascii_lowercase();
    if l.starts_with("git+")
        || l.starts_with("hg+")
        || l.starts_with("svn+")
        || l.starts_with("bzr+")
    {
        "a version-control (VCS) requirement"
    } else if l.starts_with("file:") || !is_url(&l) {
        "a local path requirement"
    } else {
        "a direct URL requirement"
    }
}

fn unsupported_direct(location: &Location, text: &str, kind: &str) -> Error {
    Error::Unsupported {
        location: location.clone(),
        what: format!("`{text}` is {kind}, which"),
        hint:
            "rbuild installs wheels from an index only: publish the package to an index, or build \
               its wheel and pass --find-links DIR with a pinned `name==version` line"
                .into(),
    }
}

fn read_file(
    path: &Path,
    constraint: bool,
    stack: &mut Vec<PathBuf>,
    st: &mut State,
) -> Result<()> {
    let text = read_text(path)?;
    read_lines(path, &text, constraint, stack, st)
}

fn read_lines(
    path: &Path,
    text: &str,
    constraint: bool,
    stack: &mut Vec<PathBuf>,
    st: &mut State,
) -> Result<()> {
    for ll in logical_lines(text) {
        let loc = Location::line(path, ll.line);
        let (args, opts) = break_args_options(&ll.text);
        let words = shell_words(&opts).map_err(|m| Error::Invalid {
            location: loc.clone(),
            message: format!("cannot split the options `{opts}`: {m}"),
        })?;
        let options = parse_options(&words).map_err(|m| Error::Invalid {
            location: loc.clone(),
            message: format!("{m}; rbuild reads the options pip allows in requirements files"),
        })?;
        let args = args.trim();
        if args.is_empty() {
            for (name, value) in options {
                file_option(path, &loc, name, value, constraint, stack, st)?;
            }
            continue;
        }
        read_requirement(&loc, args, &options, constraint, st)?;
    }
    Ok(())
}

fn file_option(
    path: &Path,
    loc: &Location,
    name: &'static str,
    value: String,
    constraint: bool,
    stack: &mut Vec<PathBuf>,
    st: &mut State,
) -> Result<()> {
    match name {
        "--index-url" => st.index_url = Some(value),
        "--extra-index-url" => {
            if !st.extra_index_urls.contains(&value) {
                st.extra_index_urls.push(value)
            }
        }
        "--no-index" => st.no_index = true,
        "--find-links" => st.find_links.push(value),
        "--require-hashes" => st.require_hashes_in_file = true,
        "--requirement" | "--constraint" => {
            if is_url(&value) {
                return Err(Error::Unsupported {
                    location: loc.clone(),
                    what: format!("including the remote file `{value}`"),
                    hint: "rbuild reads no requirements from the network: download it next to the \
                           lockfile and include it by path"
                        .into(),
                });
            }
            let base = path.parent().unwrap_or(Path::new(""));
            let included = base.join(&value);
            if stack.len() >= MAX_INCLUDE_DEPTH {
                return Err(Error::Invalid {
                    location: loc.clone(),
                    message: format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
                });
            }
            let canon = included.canonicalize().map_err(|e| Error::Invalid {
                location: loc.clone(),
                message: format!("cannot read the included file {}: {e}", included.display()),
            })?;
            if let Some(i) = stack.iter().position(|p| *p == canon) {
                let chain = stack[i..]
                    .iter()
                    .chain(std::iter::once(&canon))
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" -> ");
                return Err(Error::IncludeCycle {
                    location: loc.clone(),
                    include: included,
                    chain,
                });
            }
            stack.push(canon);
            let r = read_file(&included, constraint || name == "--constraint", stack, st);
            stack.pop();
            r?;
        }
        "--editable" => {
            if is_self_editable(&value) {
                st.notes.push(format!(
                    "{loc}: `-e {value}` (the project itself) skipped: its source goes in the app layer"
                ));
            } else {
                return Err(Error::Unsupported {
                    location: loc.clone(),
                    what: format!("the editable requirement `-e {value}`"),
                    hint: "only the project itself (`-e .`) may be editable; build the other project's \
                           wheel and pass --find-links DIR with a pinned line"
                        .into(),
                });
            }
        }
        "--hash" | "--config-settings" | "--global-option" => {
            return Err(Error::Invalid {
                location: loc.clone(),
                message: format!("`{name}` must follow a requirement on the same line"),
            });
        }
        // Resolution and trust options do not change exact pins.
        _ => st.notes.push(format!(
            "{loc}: `{name}` ignored (it does not change exact pins)"
        )),
    }
    Ok(())
}

fn read_requirement(
    loc: &Location,
    args: &str,
    options: &[(&'static str, String)],
    constraint: bool,
    st: &mut State,
) -> Result<()> {
    // The name comes first: check it before anything else is done with the line.
    let name_end = args
        .find(|c: char| {
            matches!(c, '[' | '(' | '<' | '>' | '=' | '!' | '~' | ';' | '@') || c.is_whitespace()
        })
        .unwrap_or(args.len());
    let head = &args[..name_end];
    let mut refuse = |error: Error, name: &str, marker: Option<MarkerTree>| {
        st.refused.push(Refused {
            location: loc.clone(),
            name: name.to_string(),
            marker,
            error,
        });
        Ok(())
    };
    if is_url(head) || head.to_ascii_lowercase().starts_with("file:") {
        let url = args.split([' ', ';']).next().unwrap_or(args);
        return refuse(
            unsupported_direct(loc, args, direct_reference_kind(head)),
            url,
            trailing_marker(args),
        );
    }
    let lower = head.to_ascii_lowercase();
    let looks_like_path = [
        ".whl", ".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz", ".tar",
    ]
    .iter()
    .any(|e| lower.ends_with(e))
        && (head.contains('/') || head.contains('\\') || head.ends_with(".whl"));
    if looks_like_path {
        let path = args.split([' ', ';']).next().unwrap_or(args);
        return refuse(
            unsupported_direct(loc, args, "a local path requirement"),
            path,
            trailing_marker(args),
        );
    }
    check_name(loc, head)?;
    let req = Requirement::parse(args).map_err(|e| Error::Invalid {
        location: loc.clone(),
        message: e.to_string(),
    })?;
    if let Some(url) = &req.url {
        let error = unsupported_direct(loc, args, direct_reference_kind(url));
        return refuse(error, &req.name.clone(), req.marker.clone());
    }
    let mut hashes = Vec::new();
    let mut had_hash = false;
    let mut other_algos = Vec::new();
    for (name, value) in options {
        match *name {
            "--hash" => {
                had_hash = true;
                let Some((algo, hex)) = value.split_once(':') else {
                    return Err(Error::Invalid {
                        location: loc.clone(),
                        message: format!("`--hash={value}` is not of the form ALGORITHM:HEX"),
                    });
                };
                if algo.eq_ignore_ascii_case("sha256") {
                    let d = parse_sha256(hex).ok_or_else(|| Error::Invalid {
                        location: loc.clone(),
                        message: format!("`--hash={value}` is not a sha256 hash (64 hex digits)"),
                    })?;
                    if !hashes.contains(&d) {
                        hashes.push(d);
                    }
                } else {
                    other_algos.push(algo.to_string());
                }
            }
            "--config-settings" | "--global-option" => {}
            other => {
                return Err(Error::Invalid {
                    location: loc.clone(),
                    message: format!(
                        "`{other}` cannot follow a requirement; put it on its own line"
                    ),
                });
            }
        }
    }
    if had_hash && hashes.is_empty() {
        return Err(Error::MissingHash {
            location: loc.clone(),
            what: format!("`{}`", req.raw_name),
            why: format!(
                "only {} hashes; rbuild verifies files with sha256: regenerate with sha256 hashes",
                other_algos.join("/")
            ),
        });
    }
    st.lines.push(ReqLine {
        location: loc.clone(),
        text: args.to_string(),
        req,
        hashes,
        had_hash,
        constraint,
    });
    Ok(())
}

/// The single exact version a requirement pins (`==X` without a wildcard, or `===X`).
fn pinned_version(req: &Requirement) -> Option<String> {
    let specs: Vec<_> = req.specifiers.iter().collect();
    match specs.as_slice() {
        [s] if s.operator() == Operator::Equal && !s.is_wildcard() => Some(s.version().to_string()),
        [s] if s.operator() == Operator::Arbitrary => {
            Some(s.to_string().trim_start_matches("===").trim().to_string())
        }
        _ => None,
    }
}

/// Reads a requirements file (and its includes) for the target.
pub(crate) fn read(path: &Path, env: &MarkerEnv, options: &ResolveOptions) -> Result<Lock> {
    let text = read_text(path)?;
    read_str(path, &text, env, options)
}

/// Reads requirements from `text`; `path` names it in messages and anchors relative includes.
pub(crate) fn read_str(
    path: &Path,
    text: &str,
    env: &MarkerEnv,
    options: &ResolveOptions,
) -> Result<Lock> {
    let top = Location::file(path);
    if !options.extras.is_empty() || !options.groups.is_empty() {
        return Err(Error::SelectionNotSupported {
            location: top,
            message: "a requirements file records one fixed selection, so --extra/--group do not apply; \
                      export it with the extras and groups you want (e.g. `uv export --extra NAME \
                      --group NAME --format requirements-txt`), or use uv.lock/pylock.toml/poetry.lock"
                .into(),
        });
    }
    let mut st = State::default();
    let mut stack = vec![path.canonicalize().unwrap_or_else(|_| path.to_path_buf())];
    read_lines(path, text, false, &mut stack, &mut st)?;

    // A refused line (VCS, path, URL) whose marker does not hold is skipped, as pip skips it.
    for r in std::mem::take(&mut st.refused) {
        let holds = match &r.marker {
            None => true,
            Some(m) => m.evaluate(env, &[], &[]).map_err(|e| Error::Marker {
                location: r.location.clone(),
                package: r.name.clone(),
                message: e.to_string(),
            })?,
        };
        if holds {
            return Err(r.error);
        }
        st.notes.push(format!(
            "{}: `{}` skipped: its marker does not hold for the target",
            r.location, r.name
        ));
    }

    // Markers decide which lines apply to the target.
    let mut applying = Vec::new();
    for l in &st.lines {
        if let Some(m) = &l.req.marker {
            let ok = m.evaluate(env, &[], &[]).map_err(|e| Error::Marker {
                location: l.location.clone(),
                package: l.req.name.clone(),
                message: e.to_string(),
            })?;
            if !ok {
                continue;
            }
        }
        applying.push(l);
    }

    // Hashes follow pip: once one requirement has a hash, every one must.
    let hashed = applying.iter().find(|l| l.had_hash && !l.constraint);
    let hashes_required = options.require_hashes || st.require_hashes_in_file || hashed.is_some();
    let constraints: BTreeMap<&str, Vec<&ReqLine>> =
        applying
            .iter()
            .filter(|l| l.constraint)
            .fold(BTreeMap::new(), |mut m, l| {
                m.entry(l.req.name.as_str()).or_default().push(*l);
                m
            });

    let mut by_name: BTreeMap<String, (LockedPackage, &ReqLine)> = BTreeMap::new();
    for l in applying.iter().filter(|l| !l.constraint) {
        let name = l.req.name.clone();
        let pinned = pinned_version(&l.req);
        let cons = constraints
            .get(name.as_str())
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let (version, mut hashes) = match pinned {
            Some(v) => (v, l.hashes.clone()),
            None => {
                // `name` with a pin from a constraints file (`-c`), the classic pip-tools pattern.
                let cons_pin = cons
                    .iter()
                    .find_map(|c| pinned_version(&c.req).map(|v| (v, c)));
                match cons_pin {
                    Some((v, c))
                        if l.req.specifiers.is_empty()
                            || l.req.specifiers.contains(
                                &rbuild_python::version::Version::parse(&v).map_err(|_| {
                                    Error::InvalidVersion {
                                        location: c.location.clone(),
                                        package: name.clone(),
                                        version: v.clone(),
                                    }
                                })?,
                            ) =>
                    {
                        let mut h = l.hashes.clone();
                        h.extend(c.hashes.iter().copied());
                        (v, h)
                    }
                    _ => {
                        return Err(Error::Unpinned {
                            location: l.location.clone(),
                            requirement: l.text.clone(),
                        });
                    }
                }
            }
        };
        for c in cons {
            if let Some(cv) = pinned_version(&c.req)
                && !same_version(&cv, &version)
            {
                return Err(Error::Invalid {
                    location: l.location.clone(),
                    message: format!(
                        "`{}` pins {name} {version}, but the constraint at {} pins {cv}",
                        l.text, c.location
                    ),
                });
            }
        }
        hashes.sort();
        hashes.dedup();
        if hashes_required && hashes.is_empty() {
            let why = match hashed {
                Some(h) if !options.require_hashes && !st.require_hashes_in_file => format!(
                    "other requirements have hashes (e.g. {}), and pip's rule is that then every one \
                     must; add `--hash=sha256:…` for it (e.g. regenerate with `--generate-hashes`)",
                    h.location
                ),
                _ => "hashes are required (--require-hashes); regenerate the file with \
                      `--generate-hashes` (uv export writes them by default)"
                    .to_string(),
            };
            return Err(Error::MissingHash {
                location: l.location.clone(),
                what: format!("`{}`", l.text),
                why,
            });
        }
        let pkg = LockedPackage {
            name: name.clone(),
            version: version.clone(),
            source: PackageSource::Index { url: None },
            files: Vec::new(),
            hashes,
            files_listed: false,
            files_from_index: false,
            find_links_files: Vec::new(),
            location: Some(l.location.clone()),
        };
        if let Some((prev, prev_line)) = by_name.get_mut(&name) {
            if !same_version(&prev.version, &version) {
                return Err(Error::Ambiguous {
                    location: l.location.clone(),
                    package: name,
                    versions: format!("{} at {}, {version} here", prev.version, prev_line.location),
                });
            }
            // The same pin twice (e.g. with different extras): allow either line's hashes.
            for h in pkg.hashes {
                if !prev.hashes.contains(&h) {
                    prev.hashes.push(h);
                }
            }
            continue;
        }
        by_name.insert(name, (pkg, l));
    }

    let mut notes = st.notes;
    if !hashes_required && !by_name.is_empty() {
        notes.push(format!(
            "{}: no requirement has a hash; the index's hashes will be trusted (use --require-hashes \
             to refuse this, and `--generate-hashes` to add them)",
            path.display()
        ));
    }
    Ok(Lock {
        format: LockFormat::Requirements,
        path: path.to_path_buf(),
        packages: by_name.into_values().map(|(p, _)| p).collect(),
        index_url: st.index_url,
        extra_index_urls: st.extra_index_urls,
        find_links: st.find_links,
        no_index: st.no_index,
        hashes_required,
        notes,
        local_projects: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_strips_like_pip() {
        let text = "# header\n\
                    a==1 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n    # via x\n\
                    b==2 # trailing comment\n\
                    \n\
                    c @ https://h/c.whl#egg=c\n\
                    d==1 \\\n    # via y\n\
                    e==1\r\nf==2\\";
        let l = logical_lines(text);
        let got: Vec<(usize, &str)> = l.iter().map(|l| (l.line, l.text.as_str())).collect();
        assert_eq!(
            got,
            [
                (2, "a==1     --hash=sha256:aa     --hash=sha256:bb"),
                (6, "b==2"),
                (8, "c @ https://h/c.whl#egg=c"),
                (9, "d==1"),
                (11, "e==1"),
                (12, "f==2"),
            ]
        );
    }

    #[test]
    fn splits_args_and_options() {
        assert_eq!(
            break_args_options("a==1 ; python_version < '3' --hash=sha256:x"),
            (
                "a==1 ; python_version < '3'".to_string(),
                "--hash=sha256:x".to_string()
            )
        );
        assert_eq!(
            break_args_options("-r x.txt"),
            (String::new(), "-r x.txt".to_string())
        );
        let words = shell_words(r#"--hash "sha256:a b" -i'x'"#).unwrap();
        assert_eq!(words, ["--hash", "sha256:a b", "-ix"]);
        assert!(shell_words("'open").is_err());
    }

    #[test]
    fn options() {
        let w = |s: &str| shell_words(s).unwrap();
        assert_eq!(
            parse_options(&w(
                "-i https://x --extra-index-url=https://y -rreq.txt --no-index"
            ))
            .unwrap(),
            [
                ("--index-url", "https://x".to_string()),
                ("--extra-index-url", "https://y".to_string()),
                ("--requirement", "req.txt".to_string()),
                ("--no-index", String::new())
            ]
        );
        assert!(parse_options(&w("--bogus")).is_err());
        assert!(parse_options(&w("-i")).is_err());
        assert!(parse_options(&w("--no-index=1")).is_err());
        assert!(parse_options(&w("-Z")).is_err());
    }

    #[test]
    fn self_editable() {
        for s in [".", "./", "file:.", "file://."] {
            assert!(is_self_editable(s), "{s}");
        }
        for s in ["..", "./sub", "file:../x", "git+https://x"] {
            assert!(!is_self_editable(s), "{s}");
        }
    }
}
