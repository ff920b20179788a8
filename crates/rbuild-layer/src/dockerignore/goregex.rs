//! Translation of the Go regular expressions moby/patternmatcher builds into `regex` syntax.
//!
//! moby/patternmatcher turns a pattern into a Go (RE2) regexp string and compiles it with
//! `regexp.Compile`. Parts of the pattern reach that regexp unchanged (`[...]` classes, `\x`
//! escapes, `^`), so a faithful port must read the string exactly as Go's `regexp/syntax` parser
//! (Perl flags) does and re-emit it for the `regex` crate, whose syntax differs in places: nested
//! classes and `&&`/`--`/`~~` inside brackets, Unicode-aware `\d`, `\s`, `\w` and `\b`, `\x{..}`.
//! Every literal is emitted as `\x{HEX}`, every Perl class as its explicit ASCII ranges, so what
//! matches is what Go would match. Constructs Go rejects are rejected with Go's reason.

use std::fmt::Write as _;

/// Translates a Go regexp produced by `compile` into `regex` syntax.
pub(super) fn translate(go: &str) -> Result<String, String> {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() * 2);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("trailing backslash at end of expression".into());
                };
                match n {
                    'A' => out.push_str(r"\A"),
                    'z' => out.push_str(r"\z"),
                    'b' => out.push_str(r"(?-u:\b)"),
                    'B' => out.push_str(r"(?-u:\B)"),
                    'C' => return Err(r"invalid escape sequence: `\C`".into()),
                    'Q' => {
                        // \Q...\E: everything up to \E (or the end) is literal.
                        let mut j = i + 2;
                        while j < chars.len()
                            && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E'))
                        {
                            literal(&mut out, chars[j]);
                            j += 1;
                        }
                        i = if j < chars.len() { j + 2 } else { j };
                        continue;
                    }
                    'p' | 'P' => {
                        let (class, next) = unicode_class(&chars, i)?;
                        out.push_str(&class);
                        i = next;
                        continue;
                    }
                    'd' | 'D' | 's' | 'S' | 'w' | 'W' => {
                        let (ranges, negated) = perl_class(n);
                        out.push_str(if negated { "[^" } else { "[" });
                        out.push_str(ranges);
                        out.push(']');
                    }
                    _ => {
                        let (r, next) = escape(&chars, i)?;
                        literal(&mut out, r);
                        i = next;
                        continue;
                    }
                }
                i += 2;
            }
            '[' => {
                let (class, next) = class(&chars, i)?;
                out.push_str(&class);
                i = next;
            }
            // Structure: anchors, groups, alternation and repetition are the same in both
            // dialects for what patternmatcher generates (`^`, `$`, `(.*/)?`, `.*`, `[^/]*`).
            '^' | '$' | '.' | '*' | '+' | '?' | '(' | ')' | '|' => {
                out.push(c);
                i += 1;
            }
            _ => {
                literal(&mut out, c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '/' || c == '_' {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

/// Perl class escapes as Go defines them (ASCII only).
fn perl_class(c: char) -> (&'static str, bool) {
    match c {
        'd' => ("0-9", false),
        'D' => ("0-9", true),
        's' => (r"\x{9}\x{A}\x{C}\x{D}\x{20}", false),
        'S' => (r"\x{9}\x{A}\x{C}\x{D}\x{20}", true),
        'w' => ("0-9A-Za-z_", false),
        _ => ("0-9A-Za-z_", true),
    }
}

/// `\pX`, `\p{Name}`, `\p{^Name}`, `\PX`... starting at `chars[i] == '\\'`.
fn unicode_class(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let mut negated = chars[i + 1] == 'P';
    let Some(&c) = chars.get(i + 2) else {
        return Err(r"invalid character class range: `\p`".into());
    };
    let (mut name, next) = if c == '{' {
        let end = chars[i + 3..]
            .iter()
            .position(|&c| c == '}')
            .ok_or_else(|| "invalid character class range: unclosed \\p{".to_string())?;
        (
            chars[i + 3..i + 3 + end].iter().collect::<String>(),
            i + 3 + end + 1,
        )
    } else {
        (c.to_string(), i + 3)
    };
    if let Some(rest) = name.strip_prefix('^') {
        negated = !negated;
        name = rest.to_string();
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid character class range: `\\p{{{name}}}`"));
    }
    Ok((
        format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }),
        next,
    ))
}

fn unhex(c: char) -> Option<u32> {
    c.to_digit(16)
}

/// A single-character escape starting at `chars[i] == '\\'` (Go's `parseEscape`): punctuation,
/// octal, hex and C escapes. Returns the character and the index after the escape.
fn escape(chars: &[char], i: usize) -> Result<(char, usize), String> {
    let invalid = |end: usize| {
        let text: String = chars[i..end.min(chars.len())].iter().collect();
        Err(format!("invalid escape sequence: `{text}`"))
    };
    let Some(&c) = chars.get(i + 1) else {
        return Err("trailing backslash at end of expression".into());
    };
    let mut t = i + 2;
    let is_oct = |c: Option<&char>| matches!(c, Some('0'..='7'));
    match c {
        c if c.is_ascii() && !c.is_ascii_alphanumeric() => return Ok((c, t)),
        '1'..='7' if !is_oct(chars.get(t)) => return invalid(t),
        '0'..='7' => {
            let mut r = c as u32 - '0' as u32;
            for _ in 1..3 {
                if !is_oct(chars.get(t)) {
                    break;
                }
                r = r * 8 + (chars[t] as u32 - '0' as u32);
                t += 1;
            }
            return Ok((char::from_u32(r).unwrap_or('\0'), t));
        }
        'x' => {
            let Some(&c1) = chars.get(t) else {
                return invalid(t);
            };
            t += 1;
            if c1 == '{' {
                let mut r: u32 = 0;
                let mut n = 0;
                loop {
                    let Some(&d) = chars.get(t) else {
                        return invalid(t);
                    };
                    t += 1;
                    if d == '}' {
                        break;
                    }
                    let Some(v) = unhex(d) else { return invalid(t) };
                    r = r * 16 + v;
                    if r > 0x10FFFF {
                        return invalid(t);
                    }
                    n += 1;
                }
                if n == 0 {
                    return invalid(t);
                }
                return match char::from_u32(r) {
                    Some(ch) => Ok((ch, t)),
                    None => Err(format!(
                        "escape \\x{{{r:X}}} is a surrogate, which no path can contain"
                    )),
                };
            }
            let Some(&c2) = chars.get(t) else {
                return invalid(t);
            };
            t += 1;
            return match (unhex(c1), unhex(c2)) {
                (Some(x), Some(y)) => Ok((char::from_u32(x * 16 + y).unwrap_or('\0'), t)),
                _ => invalid(t),
            };
        }
        'a' => return Ok(('\x07', t)),
        'f' => return Ok(('\x0C', t)),
        'n' => return Ok(('\n', t)),
        'r' => return Ok(('\r', t)),
        't' => return Ok(('\t', t)),
        'v' => return Ok(('\x0B', t)),
        _ => {}
    }
    invalid(t)
}

const POSIX: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// A bracket expression starting at `chars[i] == '['` (Go's `parseClass`, Perl flags).
fn class(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let missing = || Err::<(String, usize), String>("missing closing ]".to_string());
    let mut t = i + 1;
    let mut out = String::from("[");
    if chars.get(t) == Some(&'^') {
        out.push('^');
        t += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(t) else {
            return missing();
        };
        if c == ']' && !first {
            t += 1;
            break;
        }
        first = false;
        // POSIX [:name:] / [:^name:]
        if c == '[' && chars.get(t + 1) == Some(&':') {
            let rest = &chars[t + 2..];
            if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                let name: String = rest[..end].iter().collect();
                let bare = name.strip_prefix('^').unwrap_or(&name);
                if !POSIX.contains(&bare) {
                    return Err(format!("invalid character class range: `[:{name}:]`"));
                }
                let _ = write!(out, "[:{name}:]");
                t += 2 + end + 2;
                continue;
            }
        }
        if c == '\\' {
            match chars.get(t + 1) {
                Some('p' | 'P') => {
                    let (cls, next) = unicode_class(chars, t)?;
                    out.push_str(&cls);
                    t = next;
                    continue;
                }
                Some(&p @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    let (ranges, negated) = perl_class(p);
                    if negated {
                        let _ = write!(out, "[^{ranges}]");
                    } else {
                        out.push_str(ranges);
                    }
                    t += 2;
                    continue;
                }
                _ => {}
            }
        }
        let (lo, next) = class_char(chars, t)?;
        t = next;
        let mut hi = lo;
        if chars.get(t) == Some(&'-') && chars.get(t + 1).is_some_and(|&c| c != ']') {
            let (h, next) = class_char(chars, t + 1)?;
            if h < lo {
                return Err(format!("invalid character class range: `{lo}-{h}`"));
            }
            hi = h;
            t = next;
        }
        literal(&mut out, lo);
        if hi != lo {
            out.push('-');
            literal(&mut out, hi);
        }
    }
    out.push(']');
    Ok((out, t))
}

fn class_char(chars: &[char], t: usize) -> Result<(char, usize), String> {
    match chars.get(t) {
        None => Err("missing closing ]".into()),
        Some('\\') => escape(chars, t),
        Some(&c) => Ok((c, t + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(go: &str, s: &str) -> bool {
        regex::Regex::new(&translate(go).unwrap())
            .unwrap()
            .is_match(s)
    }

    #[test]
    fn structure_and_literals() {
        assert!(m(r"^(.*/)?dir2/[^/]*$", "a/b/dir2/x"));
        assert!(!m(r"^(.*/)?dir2/[^/]*$", "a/b/dir2/x/y"));
        assert!(m(r"^a\.\|\)\$\(\}\+\{bc$", "a.|)$(}+{bc"));
        assert!(m(r"^a&&b~~c--d$", "a&&b~~c--d"));
    }

    #[test]
    fn classes_follow_go() {
        // `[*]` in a pattern becomes `[[^/]*]`: a class of `[`, `^`, `/`, repeated, then `]`.
        assert!(m(r"^[[^/]*]$", "[^/]"));
        assert!(m(r"^[[^/]*]$", "]"));
        assert!(!m(r"^[[^/]*]$", "a]"));
        assert!(m(r"^[]a]$", "]"));
        assert!(m(r"^[a-]$", "-"));
        assert!(m(r"^[&&]$", "&"));
        assert!(m(r"^[[:alpha:]]$", "q"));
        assert!(!m(r"^[[:^alpha:]]$", "q"));
        assert!(m(r"^[\d]$", "7"));
        assert!(!m(r"^\d$", "٣"), "Go's \\d is ASCII only");
        assert!(m(r"^[^\D]$", "5"));
        assert!(translate(r"^[z-a]$").is_err());
        assert!(translate(r"^[a").is_err());
        assert!(translate(r"^[[:nope:]]$").is_err());
    }

    #[test]
    fn escapes_follow_go() {
        assert!(m(r"^\x41$", "A"));
        assert!(m(r"^\x{263a}$", "☺"));
        assert!(m(r"^\101$", "A"));
        assert!(m(r"^\0$", "\0"));
        assert!(m(r"^\t$", "\t"));
        assert!(m(r"^\Q.*\E$", ".*"));
        assert!(translate(r"^\q$").is_err());
        assert!(
            translate(r"^\1$").is_err(),
            "backreferences are not supported"
        );
        assert!(translate(r"^\C$").is_err());
        assert!(translate(r"^\x4$").is_err());
    }
}
