//! `RECORD` files: parsing the CSV a wheel ships, writing the one we install.
//!
//! The format is CSV as Python's `csv` module reads and writes it (`,` delimiter, `"` quoting,
//! `""` for a quote inside a quoted field, `\n` line ends). Hashes are `algorithm=value` with the
//! digest in URL-safe base64 without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::Digest as _;

/// A hash algorithm allowed in a wheel's RECORD (the spec forbids md5 and sha1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlgo {
    Sha256,
    Sha384,
    Sha512,
}

/// A parsed RECORD row.
#[derive(Debug, Clone)]
pub(crate) struct RecordRow {
    pub path: String,
    /// Algorithm and raw digest bytes.
    pub hash: Option<(HashAlgo, Vec<u8>)>,
    pub size: Option<u64>,
}

/// Splits CSV text into rows of fields (Python `csv.reader` on `str.splitlines()` lines,
/// non-strict). Empty lines are skipped.
pub(crate) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut chars = line.chars().peekable();
        let mut at_start = true;
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if in_quotes {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        in_quotes = false;
                    }
                } else {
                    field.push(c);
                }
            } else if c == ',' {
                fields.push(std::mem::take(&mut field));
                at_start = true;
                continue;
            } else if c == '"' && at_start {
                in_quotes = true;
            } else {
                field.push(c);
            }
            at_start = false;
        }
        fields.push(field);
        rows.push(fields);
    }
    rows
}

/// Parses a RECORD into rows; `Err` carries a human-readable reason.
pub(crate) fn parse_record(text: &str) -> Result<Vec<RecordRow>, String> {
    let mut out = Vec::new();
    for (i, fields) in parse_csv(text).into_iter().enumerate() {
        let [path, hash, size]: [String; 3] = fields.try_into().map_err(|f: Vec<String>| {
            format!("row {}: expected 3 fields, found {}", i + 1, f.len())
        })?;
        if path.is_empty() {
            return Err(format!("row {}: empty path", i + 1));
        }
        // installer converts Windows separators in RECORD paths.
        let path = path.replace('\\', "/");
        let hash = if hash.is_empty() {
            None
        } else {
            let (name, value) = hash.split_once('=').ok_or_else(|| {
                format!(
                    "row {} ({path}): hash {hash:?} is not algorithm=value",
                    i + 1
                )
            })?;
            let algo = match name {
                "sha256" => HashAlgo::Sha256,
                "sha384" => HashAlgo::Sha384,
                "sha512" => HashAlgo::Sha512,
                other => {
                    return Err(format!(
                        "row {} ({path}): hash algorithm {other:?} is not allowed (sha256 or stronger required)",
                        i + 1
                    ));
                }
            };
            let digest = URL_SAFE_NO_PAD
                .decode(value.trim_end_matches('='))
                .map_err(|_| {
                    format!("row {} ({path}): hash value is not URL-safe base64", i + 1)
                })?;
            let want = match algo {
                HashAlgo::Sha256 => 32,
                HashAlgo::Sha384 => 48,
                HashAlgo::Sha512 => 64,
            };
            if digest.len() != want {
                return Err(format!(
                    "row {} ({path}): {name} digest has the wrong length",
                    i + 1
                ));
            }
            Some((algo, digest))
        };
        let size =
            if size.is_empty() {
                None
            } else {
                Some(size.parse::<u64>().map_err(|_| {
                    format!("row {} ({path}): size {size:?} is not a number", i + 1)
                })?)
            };
        out.push(RecordRow { path, hash, size });
    }
    Ok(out)
}

/// Parses the paths of an installed distribution's RECORD (for replacing it).
///
/// Hash and size columns are not checked; rows that are not valid CSV with three fields are
/// rejected.
///
/// ```
/// let paths = rbuild_wheel::parse_record_paths(b"pip/__init__.py,sha256=abc,10\n../../../bin/pip,,\n").unwrap();
/// assert_eq!(paths, ["pip/__init__.py", "../../../bin/pip"]);
/// ```
pub fn parse_record_paths(record: &[u8]) -> Result<Vec<String>, crate::Error> {
    let text = std::str::from_utf8(record).map_err(|_| crate::Error::BaseRecord {
        reason: "RECORD is not UTF-8".into(),
    })?;
    let mut out = Vec::new();
    for (i, fields) in parse_csv(text).into_iter().enumerate() {
        if fields.len() != 3 || fields[0].is_empty() {
            return Err(crate::Error::BaseRecord {
                reason: format!("row {}: expected path,hash,size", i + 1),
            });
        }
        out.push(fields[0].replace('\\', "/"));
    }
    Ok(out)
}

/// `sha256=<urlsafe base64 without padding>`.
pub(crate) fn hash_field(sha256: &[u8; 32]) -> String {
    format!("sha256={}", URL_SAFE_NO_PAD.encode(sha256))
}

fn push_csv_field(out: &mut Vec<u8>, field: &str) {
    if field.contains([',', '"', '\n', '\r']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

/// Writes one RECORD row as Python's `csv.writer` does (minimal quoting, `\n`).
pub(crate) fn write_row(out: &mut Vec<u8>, path: &str, hash: &str, size: &str) {
    push_csv_field(out, path);
    out.push(b',');
    push_csv_field(out, hash);
    out.push(b',');
    push_csv_field(out, size);
    out.push(b'\n');
}

/// A hasher for any RECORD algorithm.
pub(crate) enum AnyHasher {
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl AnyHasher {
    pub(crate) fn new(algo: HashAlgo) -> Option<AnyHasher> {
        match algo {
            HashAlgo::Sha256 => None,
            HashAlgo::Sha384 => Some(AnyHasher::Sha384(sha2::Sha384::new())),
            HashAlgo::Sha512 => Some(AnyHasher::Sha512(sha2::Sha512::new())),
        }
    }
    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            AnyHasher::Sha384(h) => h.update(data),
            AnyHasher::Sha512(h) => h.update(data),
        }
    }
    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            AnyHasher::Sha384(h) => h.finalize().to_vec(),
            AnyHasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_round_trip() {
        let mut out = Vec::new();
        write_row(&mut out, "a,b\"c.py", "sha256=x", "1");
        write_row(&mut out, "plain.py", "", "");
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "\"a,b\"\"c.py\",sha256=x,1\nplain.py,,\n");
        let rows = parse_csv(&text);
        assert_eq!(rows[0], ["a,b\"c.py", "sha256=x", "1"]);
        assert_eq!(rows[1], ["plain.py", "", ""]);
    }

    #[test]
    fn record_rows() {
        let rec = "six.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,0\nsix-1.dist-info/RECORD,,\n";
        let rows = parse_record(rec).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].size, Some(0));
        assert_eq!(rows[0].hash.as_ref().unwrap().0, HashAlgo::Sha256);
        assert!(rows[1].hash.is_none());
        assert!(
            parse_record("x.py,md5=abc,1\n")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(
            parse_record("x.py,sha256=abc\n")
                .unwrap_err()
                .contains("3 fields")
        );
        assert!(parse_record("x.py,sha256=!!,1\n").is_err());
        assert!(
            parse_record("x.py,sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU,ten\n").is_err()
        );
    }

    #[test]
    fn hash_encoding() {
        let empty: [u8; 32] = sha2::Sha256::digest(b"").into();
        assert_eq!(
            hash_field(&empty),
            "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }
}
