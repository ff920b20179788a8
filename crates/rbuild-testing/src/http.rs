//! Just enough HTTP/1.1 for the token server and the fault proxy: request and response heads,
//! body framing (Content-Length, chunked, until close) and percent-decoding.

use std::io::{self, BufRead, Read, Write};

/// Heads larger than this are refused (a registry's heads are a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

/// A parsed request or response head.
#[derive(Debug, Clone, Default)]
pub(crate) struct Head {
    /// Request: method, target, version. Response: version, status, reason.
    pub start: [String; 3],
    /// Headers in order, names as received.
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn status(&self) -> u16 {
        self.start[1].parse().unwrap_or(0)
    }

    /// Serializes the head (start line, headers, blank line).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} {}\r\n", self.start[0], self.start[1], self.start[2]);
        for (n, v) in &self.headers {
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// How the body of this request is delimited (a request without length has no body).
    pub fn request_framing(&self) -> Framing {
        match self.framing() {
            Framing::UntilClose => Framing::None,
            f => f,
        }
    }

    /// How the body that follows this head is delimited (for a response to anything but HEAD
    /// with a status other than 1xx, 204 and 304).
    pub fn framing(&self) -> Framing {
        if self
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            Framing::Chunked
        } else if let Some(len) = self.header("content-length") {
            Framing::Length(len.trim().parse().unwrap_or(0))
        } else {
            Framing::UntilClose
        }
    }
}

/// Reads one head. `Ok(None)` on a clean EOF before any byte.
pub(crate) fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line)?;
        if n == 0 {
            if lines.is_empty() {
                return Ok(None);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "EOF inside an HTTP head",
            ));
        }
        total += n;
        if total > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "HTTP head too large",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate a stray CRLF between messages
            }
            break;
        }
        lines.push(line);
    }
    let mut parts = lines[0].splitn(3, ' ');
    let start = [
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    ];
    let headers = lines[1..]
        .iter()
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            Some((n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    Ok(Some(Head { start, headers }))
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD responses, 204, 304, 1xx; requests without length).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Reads a body's decoded bytes according to its framing.
pub(crate) struct BodyReader<'a, R: BufRead> {
    inner: &'a mut R,
    framing: Framing,
    /// Bytes left in the current chunk or in the Length body.
    left: u64,
    done: bool,
}

impl<'a, R: BufRead> BodyReader<'a, R> {
    pub fn new(inner: &'a mut R, framing: Framing) -> Self {
        let (left, done) = match framing {
            Framing::None => (0, true),
            Framing::Length(n) => (n, n == 0),
            Framing::Chunked | Framing::UntilClose => (0, false),
        };
        BodyReader {
            inner,
            framing,
            left,
            done,
        }
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut line = String::new();
        self.inner.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad chunk size {line:?}"),
            )
        })?;
        if size == 0 {
            // Trailers until the blank line.
            loop {
                let mut t = String::new();
                if self.inner.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    break;
                }
            }
            self.done = true;
        }
        self.left = size;
        Ok(())
    }
}

impl<R: BufRead> Read for BodyReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::None => Ok(0),
            Framing::UntilClose => {
                let n = self.inner.read(buf)?;
                if n == 0 {
                    self.done = true;
                }
                Ok(n)
            }
            Framing::Length(_) => {
                let want = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body ended early",
                    ));
                }
                self.left -= n as u64;
                self.done = self.left == 0;
                Ok(n)
            }
            Framing::Chunked => {
                if self.left == 0 {
                    self.next_chunk()?;
                    if self.done {
                        return Ok(0);
                    }
                }
                let want = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "chunk ended early",
                    ));
                }
                self.left -= n as u64;
                if self.left == 0 {
                    let mut crlf = String::new();
                    self.inner.read_line(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// Writes a body with the given outgoing framing (`Chunked` re-encodes every write as a chunk).
pub(crate) struct BodyWriter<W: Write> {
    pub inner: W,
    chunked: bool,
}

impl<W: Write> BodyWriter<W> {
    pub fn new(inner: W, chunked: bool) -> Self {
        BodyWriter { inner, chunked }
    }

    /// Writes the terminating chunk if chunked, and flushes.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.chunked {
            self.inner.write_all(b"0\r\n\r\n")?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Write for BodyWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.chunked {
            write!(self.inner, "{:x}\r\n", buf.len())?;
            self.inner.write_all(buf)?;
            self.inner.write_all(b"\r\n")?;
        } else {
            self.inner.write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Decodes `%XX` escapes and, for forms, `+` as space.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=2&b=3` (query strings and form bodies) into decoded pairs, in order.
pub(crate) fn parse_query(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

/// Writes a complete small response with `Connection: close`.
pub(crate) fn respond(
    w: &mut impl Write,
    status: u16,
    reason: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = Head {
        start: ["HTTP/1.1".into(), status.to_string(), reason.into()],
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect(),
    };
    head.set("Content-Length", body.len().to_string());
    head.set("Connection", "close");
    w.write_all(&head.to_bytes())?;
    w.write_all(body)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn chunked_body_is_decoded() {
        let raw = b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let mut r = BufReader::new(&raw[..]);
        let mut body = String::new();
        BodyReader::new(&mut r, Framing::Chunked)
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "Wikipedia ");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT");
    }

    #[test]
    fn length_body_stops_at_length() {
        let raw = b"hello world";
        let mut r = BufReader::new(&raw[..]);
        let mut body = String::new();
        BodyReader::new(&mut r, Framing::Length(5))
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "hello");
    }

    #[test]
    fn short_length_body_is_an_error() {
        let raw = b"hel";
        let mut r = BufReader::new(&raw[..]);
        let mut body = Vec::new();
        let err = BodyReader::new(&mut r, Framing::Length(5))
            .read_to_end(&mut body)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn chunked_writer_round_trips() {
        let mut out = BodyWriter::new(Vec::new(), true);
        out.write_all(b"abc").unwrap();
        out.write_all(b"").unwrap();
        out.write_all(b"defgh").unwrap();
        out.finish().unwrap();
        let raw = out.inner;
        let mut r = BufReader::new(&raw[..]);
        let mut body = String::new();
        BodyReader::new(&mut r, Framing::Chunked)
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "abcdefgh");
    }

    #[test]
    fn head_parses_and_serializes() {
        let raw = b"GET /v2/?a=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let mut r = BufReader::new(&raw[..]);
        let head = read_head(&mut r).unwrap().unwrap();
        assert_eq!(head.start[0], "GET");
        assert_eq!(head.start[1], "/v2/?a=1");
        assert_eq!(head.header("content-length"), Some("3"));
        assert_eq!(head.framing(), Framing::Length(3));
        assert!(
            String::from_utf8(head.to_bytes())
                .unwrap()
                .starts_with("GET /v2/?a=1 HTTP/1.1\r\n")
        );
    }

    #[test]
    fn query_is_decoded() {
        let q = parse_query("scope=repository%3Afoo%2Fbar%3Apull%2Cpush&scope=a+b&x");
        assert_eq!(
            q,
            vec![
                ("scope".into(), "repository:foo/bar:pull,push".into()),
                ("scope".into(), "a b".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
