//! HTTP/1.1 pipelining: requests written one after the other on one connection without waiting
//! for the answers, which come back in the same order (RFC 9112 §9.3.2).
//!
//! A server handles the requests of one connection in order, so a request that depends on an
//! earlier one (a manifest that names a blob uploaded just before it, an index that lists that
//! manifest) can be sent right behind it: a chain of N dependent requests costs one round trip
//! instead of N. A [`Pipeline`] may be given more requests while earlier answers are still on
//! their way ([`Pipeline::send`] queues at once and returns the answer's future).
//!
//! It knows nothing of what the requests mean: the caller sends only requests it may repeat
//! (an answer that never came is not a failure of the request), and treats every request whose
//! answer is missing as not done. The connection is given up at the first answer that closes it
//! (`Connection: close`), the first malformed answer, an answer that does not come within the
//! idle limit, or a write that fails: every request still waiting then gets an error.
//!
//! Requests are written with `Content-Length` (from the body given); answers may be framed by
//! `Content-Length`, chunked or (the last one) by the end of the connection. `1xx` interim
//! answers are skipped. Bodies of answers are kept up to [`MAX_BODY`] bytes (error documents,
//! small manifests); the rest of a longer body is read and dropped.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

/// The most of an answer's body a [`Response`] keeps.
pub const MAX_BODY: usize = 1024 * 1024;

/// The longest response head (status line and headers) read.
const MAX_HEAD: usize = 64 * 1024;

/// Where a pipeline connects.
#[derive(Clone)]
pub struct Endpoint {
    /// The `Host` header: `host` or `host:port`, as in the URL.
    pub authority: String,
    /// The host to connect to (a name or an IP address, without brackets).
    pub host: String,
    /// The port.
    pub port: u16,
    /// TLS: the client configuration (its ALPN is replaced by `http/1.1` only) and the name
    /// the certificate must have; `None` for plain HTTP.
    pub tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

/// One request of a pipeline.
pub struct Request {
    /// The method (`PUT`, `GET`, ...).
    pub method: &'static str,
    /// The request target in origin form: path and query (`/v2/x/manifests/latest`).
    pub target: String,
    /// Headers besides `Host` and `Content-Length`, which the pipeline writes.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
}

/// The body of a [`Request`].
pub enum Body {
    /// No body (`Content-Length: 0` for methods that carry one).
    Empty,
    /// Bytes in memory.
    Bytes(Bytes),
    /// A whole file of this length (read as it is written; a file of another length fails the
    /// connection).
    File {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, in order (names as sent).
    pub headers: Vec<(String, String)>,
    /// The body, up to [`MAX_BODY`] bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Reply = oneshot::Sender<io::Result<Response>>;

/// One HTTP/1.1 connection that requests are pipelined on. Dropping it closes the connection
/// once the requests given so far are written and answered (or the connection fails).
pub struct Pipeline {
    queue: mpsc::UnboundedSender<(Request, Reply)>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Pipeline {
    /// Connects to `endpoint` (TCP, and TLS when it has a configuration), each step within
    /// `connect`; answers must keep coming within `idle` of the last request written or answer
    /// read. Must run inside a tokio runtime.
    pub async fn connect(
        endpoint: &Endpoint,
        connect: Duration,
        idle: Duration,
    ) -> io::Result<Self> {
        let tcp = within(
            connect,
            "connecting",
            tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await?;
        tcp.set_nodelay(true)?;
        let stream: Box<dyn Stream> = match &endpoint.tls {
            None => Box::new(tcp),
            Some((config, name)) => {
                let mut config = (**config).clone();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let tls = within(
                    connect,
                    "the TLS handshake",
                    connector.connect(name.clone(), tcp),
                )
                .await?;
                Box::new(tls)
            }
        };
        let (read, write) = tokio::io::split(stream);
        let (queue, requests) = mpsc::unbounded_channel();
        let (sent_tx, sent_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_requests(
            write,
            endpoint.authority.clone(),
            requests,
            sent_tx,
            idle,
        ));
        tokio::spawn(read_responses(BufReader::new(read), sent_rx, idle));
        Ok(Pipeline { queue })
    }

    /// Queues `request` behind those sent before (it is written as soon as they are) and
    /// returns its answer: an error when the connection failed or closed before the answer.
    pub fn send(&self, request: Request) -> impl Future<Output = io::Result<Response>> + use<> {
        let (reply, answer) = oneshot::channel();
        let queued = self.queue.send((request, reply)).is_ok();
        async move {
            if !queued {
                return Err(gone());
            }
            answer.await.unwrap_or_else(|_| Err(gone()))
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the connection ended before the answer",
    )
}

async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no progress within {:.1}s", limit.as_secs_f64()),
        ))
    })
}

/// Writes each queued request in order; hands its reply to the reader first, so answers are
/// matched to requests in the order they were written.
async fn write_requests(
    mut w: tokio::io::WriteHalf<Box<dyn Stream>>,
    authority: String,
    mut requests: mpsc::UnboundedReceiver<(Request, Reply)>,
    sent: mpsc::UnboundedSender<(bool, Reply)>,
    idle: Duration,
) {
    while let Some((req, reply)) = requests.recv().await {
        let len = match &req.body {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::File { len, .. } => *len,
        };
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {authority}\r\n",
            req.method, req.target
        );
        for (k, v) in &req.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if len > 0 || !matches!(req.method, "GET" | "HEAD" | "DELETE") {
            head.push_str(&format!("Content-Length: {len}\r\n"));
        }
        head.push_str("\r\n");
        let head_only = req.method == "HEAD";
        if sent.send((head_only, reply)).is_err() {
            return;
        }
        let written = async {
            within(idle, "sending a request", w.write_all(head.as_bytes())).await?;
            match &req.body {
                Body::Empty => {}
                Body::Bytes(b) => within(idle, "sending a request", w.write_all(b)).await?,
                Body::File { path, len } => {
                    let file = tokio::fs::File::open(path).await?;
                    let mut body = file.take(*len);
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut copied = 0u64;
                    loop {
                        let n = body.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        within(idle, "sending a request body", w.write_all(&buf[..n])).await?;
                        copied += n as u64;
                    }
                    if copied != *len {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} is shorter than {len} bytes", path.display()),
                        ));
                    }
                }
            }
            within(idle, "sending a request", w.flush()).await
        }
        .await;
        if written.is_err() {
            // The reader fails every request still waiting once the connection is shut.
            let _ = w.shutdown().await;
            return;
        }
    }
    // Every request is written: the reader reads the last answers, then the connection closes.
    let _ = w.flush().await;
}

/// Reads the answers in order and gives each to its request; at the first failure every request
/// still waiting gets an error.
async fn read_responses(
    mut r: BufReader<tokio::io::ReadHalf<Box<dyn Stream>>>,
    mut sent: mpsc::UnboundedReceiver<(bool, Reply)>,
    idle: Duration,
) {
    while let Some((head_only, reply)) = sent.recv().await {
        let answer = within(
            idle,
            "waiting for an answer",
            read_response(&mut r, head_only),
        )
        .await;
        let last = match &answer {
            Ok((_, keep)) => !keep,
            Err(_) => true,
        };
        let _ = reply.send(answer.map(|(resp, _)| resp));
        if last {
            sent.close();
            while let Some((_, reply)) = sent.recv().await {
                let _ = reply.send(Err(gone()));
            }
            return;
        }
    }
}

/// One answer (interim `1xx` ones skipped) and whether the connection stays open after it.
async fn read_response<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    head_only: bool,
) -> io::Result<(Response, bool)> {
    loop {
        let (status, headers) = read_head(r).await?;
        if (100..200).contains(&status) {
            continue;
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        };
        let mut keep =
            !header("connection").is_some_and(|c| c.split(',').any(|t| t.trim() == "close"));
        let mut body = Vec::new();
        if head_only || status == 204 || status == 304 {
        } else if header("transfer-encoding").is_some_and(|t| t.ends_with("chunked")) {
            read_chunked(r, &mut body).await?;
        } else if let Some(len) = header("content-length") {
            let len: u64 = len
                .parse()
                .map_err(|_| invalid(format!("invalid Content-Length {len:?}")))?;
            read_body(r, len, &mut body).await?;
        } else {
            // Delimited by the end of the connection: the last answer.
            read_body(r, u64::MAX, &mut body).await?;
            keep = false;
        }
        return Ok((
            Response {
                status,
                headers,
                body,
            },
            keep,
        ));
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    budget: &mut usize,
) -> io::Result<String> {
    let mut line = Vec::new();
    let n = (&mut *r)
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed before the answer",
        ));
    }
    if n > *budget || !line.ends_with(b"\n") {
        return Err(invalid("an answer's head is too long or cut off".into()));
    }
    *budget -= n;
    let line =
        String::from_utf8(line).map_err(|_| invalid("an answer's head is not text".into()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

async fn read_head<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(r, &mut budget).await?;
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(invalid(format!("not an HTTP/1.x answer: {status_line:?}")));
    }
    let status: u16 = code
        .parse()
        .map_err(|_| invalid(format!("invalid status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r, &mut budget).await?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("invalid header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
}

/// Reads `len` bytes (to the end of the connection for `u64::MAX`), keeping the first
/// [`MAX_BODY`].
async fn read_body<R: AsyncRead + Unpin>(
    r: &mut R,
    len: u64,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    let mut left = len;
    let mut buf = [0u8; 16 * 1024];
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = r.read(&mut buf[..want]).await?;
        if n == 0 {
            if len == u64::MAX {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside an answer's body",
            ));
        }
        let keep = n.min(MAX_BODY.saturating_sub(body.len()));
        body.extend_from_slice(&buf[..keep]);
        if len != u64::MAX {
            left -= n as u64;
        }
    }
    Ok(())
}

async fn read_chunked<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    body: &mut Vec<u8>,
) -> io::Result<()> {
    loop {
        let mut budget = MAX_HEAD;
        let line = read_line(r, &mut budget).await?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size, 16)
            .map_err(|_| invalid(format!("invalid chunk size {line:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(r, &mut budget).await?.is_empty() {}
            return Ok(());
        }
        read_body(r, size, body).await?;
        if !read_line(r, &mut budget).await?.is_empty() {
            return Err(invalid("a chunk is longer than its size".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-connection HTTP/1.1 server on a thread: reads requests in order (head and
    /// `Content-Length` body) and answers each with what `answer` returns for (index, method,
    /// target, body); `None` closes the connection without answering.
    fn server(
        answer: impl Fn(usize, &str, &str, &[u8]) -> Option<Vec<u8>> + Send + 'static,
    ) -> (Endpoint, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(s.try_clone().unwrap());
            let mut w = s;
            let mut seen = Vec::new();
            for i in 0.. {
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) == 0 {
                    break;
                }
                let mut parts = line.split_whitespace();
                let (method, target) = (
                    parts.next().unwrap().to_string(),
                    parts.next().unwrap().to_string(),
                );
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    std::io::BufRead::read_line(&mut r, &mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                seen.push(format!(
                    "{method} {target} {}",
                    String::from_utf8_lossy(&body)
                ));
                match answer(i, &method, &target, &body) {
                    Some(bytes) => w.write_all(&bytes).unwrap(),
                    None => break,
                }
            }
            seen
        });
        let endpoint = Endpoint {
            authority: format!("127.0.0.1:{port}"),
            host: "127.0.0.1".into(),
            port,
            tls: None,
        };
        (endpoint, handle)
    }

    fn put(target: &str, body: &str) -> Request {
        Request {
            method: "PUT",
            target: target.into(),
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Body::Bytes(Bytes::from(body.to_string())),
        }
    }

    /// The server thread's result, waited for off the runtime (whose tasks close the connection).
    async fn joined<T: Send + 'static>(server: std::thread::JoinHandle<T>) -> T {
        tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap()
    }

    const SECS: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn answers_come_back_in_order_with_every_framing() {
        let (endpoint, server) = server(|i, _, _, body| {
            let text = String::from_utf8_lossy(body).to_string();
            Some(match i {
                0 => format!("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nDocker-Content-Digest: d0\r\nContent-Length: {}\r\n\r\n{text}", text.len()).into_bytes(),
                1 => format!("HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{}\r\n{:x}\r\n{}\r\n0\r\nX-Trailer: 1\r\n\r\n", &text[..3], text.len() - 3, &text[3..]).into_bytes(),
                _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}".to_vec(),
            })
        });
        let p = Pipeline::connect(&endpoint, SECS, SECS).await.unwrap();
        let a = p.send(put("/a", "first"));
        let b = p.send(put("/b", "second"));
        let c = p.send(Request {
            method: "GET",
            target: "/c?x=1".into(),
            headers: vec![],
            body: Body::Empty,
        });
        let (a, b, c) = futures::join!(a, b, c);
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(
            (a.status, a.header("docker-content-digest")),
            (201, Some("d0"))
        );
        assert_eq!(a.body, b"first");
        assert_eq!((b.status, b.body.as_slice()), (202, b"second".as_slice()));
        assert_eq!((c.status, c.body.as_slice()), (404, b"{}".as_slice()));
        drop(p);
        let seen = joined(server).await;
        assert_eq!(seen, ["PUT /a first", "PUT /b second", "GET /c?x=1 "]);
    }

    #[tokio::test]
    async fn requests_sent_after_an_answer_go_on_the_same_connection() {
        let (endpoint, server) = server(|_, _, target, _| {
            Some(
                format!("HTTP/1.1 201 Created\r\nLocation: {target}\r\nContent-Length: 0\r\n\r\n")
                    .into_bytes(),
            )
        });
        let p = Pipeline::connect(&endpoint, SECS, SECS).await.unwrap();
        let first = p.send(put("/one", "1")).await.unwrap();
        assert_eq!(first.header("location"), Some("/one"));
        let second = p.send(put("/two", "2")).await.unwrap();
        assert_eq!(second.header("location"), Some("/two"));
        drop(p);
        assert_eq!(joined(server).await.len(), 2, "one connection for both");
    }

    #[tokio::test]
    async fn a_file_body_is_sent_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, vec![b'x'; 200_000]).unwrap();
        let (endpoint, server) = server(|_, _, _, body| {
            Some(
                format!(
                    "HTTP/1.1 201 Created\r\nContent-Length: {}\r\n\r\n{}",
                    body.len().to_string().len(),
                    body.len()
                )
                .into_bytes(),
            )
        });
        let p = Pipeline::connect(&endpoint, SECS, SECS).await.unwrap();
        let r = p
            .send(Request {
                method: "PUT",
                target: "/blob".into(),
                headers: vec![],
                body: Body::File { path, len: 200_000 },
            })
            .await
            .unwrap();
        assert_eq!(r.body, b"200000");
        drop(p);
        joined(server).await;
    }

    #[tokio::test]
    async fn a_closed_connection_fails_every_request_still_waiting() {
        // The first answer says `Connection: close` (as a proxy that takes one request per
        // connection does); the second request is never answered.
        let (endpoint, server) = server(|i, _, _, _| match i {
            0 => Some(
                b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
            ),
            _ => None,
        });
        let p = Pipeline::connect(&endpoint, SECS, SECS).await.unwrap();
        let a = p.send(put("/a", "1"));
        let b = p.send(put("/b", "2"));
        let (a, b) = futures::join!(a, b);
        assert_eq!(a.unwrap().status, 201);
        assert!(b.is_err());
        // Queued after the close: an error too, at once.
        assert!(p.send(put("/c", "3")).await.is_err());
        drop(p);
        joined(server).await;
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_fails_within_the_idle_limit() {
        let (endpoint, server) = server(|_, _, _, _| {
            std::thread::sleep(Duration::from_millis(1500));
            None
        });
        let p = Pipeline::connect(&endpoint, SECS, Duration::from_millis(300))
            .await
            .unwrap();
        let e = p.send(put("/a", "1")).await.unwrap_err();
        // Not the end of the connection 1.5 s later: the idle limit.
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        drop(p);
        joined(server).await;
    }

    #[tokio::test]
    async fn a_malformed_answer_fails_the_request() {
        let (endpoint, server) = server(|_, _, _, _| Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()));
        let p = Pipeline::connect(&endpoint, SECS, SECS).await.unwrap();
        let e = p.send(put("/a", "1")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        drop(p);
        joined(server).await;
    }
}
