//! Test harness: a tiny scripted HTTP server, a counting CONNECT proxy, known PyPI wheels.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rbuild_index::{Progress, WheelRequest};
use rbuild_oci::Digest;

/// Real wheels on PyPI, pinned: (name, version, filename, sha256, size, url).
pub const SIX: (&str, &str, &str, &str, u64, &str) = (
    "six",
    "1.17.0",
    "six-1.17.0-py2.py3-none-any.whl",
    "4721f391ed90541fddacab5acf947aa0d3dc7d27b2e1e8eda2be8970586c3274",
    11050,
    "https://files.pythonhosted.org/packages/b7/ce/149a00dd41f10bc29e5921b496af8b574d8413afcd5e30dfa0ed46c2cc5e/six-1.17.0-py2.py3-none-any.whl",
);
pub const IDNA: (&str, &str, &str, &str, u64, &str) = (
    "idna",
    "3.10",
    "idna-3.10-py3-none-any.whl",
    "946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3",
    70442,
    "https://files.pythonhosted.org/packages/76/c6/c88e154df9c4e1a2a66ccf0005a88dfb2650c1dffb6f5ce603dfbd452ce3/idna-3.10-py3-none-any.whl",
);
pub const TYPING_EXTENSIONS: (&str, &str, &str, &str, u64, &str) = (
    "typing-extensions",
    "4.12.2",
    "typing_extensions-4.12.2-py3-none-any.whl",
    "04e5ca0351e0f3f85c6853954072df659d0d13fac324d0072316b67d7794700d",
    37438,
    "https://files.pythonhosted.org/packages/26/9f/ad63fc0248c5379346306f8668cda6e2e2e9c95e01216d2b8ffd9ff037d0/typing_extensions-4.12.2-py3-none-any.whl",
);
pub const MARKUPSAFE: (&str, &str, &str, &str, u64, &str) = (
    "MarkupSafe",
    "3.0.2",
    "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "a123e330ef0853c6e822384873bef7507557d8e4a082961e1defa947aa59ba84",
    23120,
    "https://files.pythonhosted.org/packages/f1/a4/aefb044a2cd8d7334c8a47d3fb2c9f328ac48cb349468cc31c20b539305f/MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
);

pub fn digest(hex: &str) -> Digest {
    Digest::parse(&format!("sha256:{hex}")).unwrap()
}

/// A request as a lock with URL + hash + size gives it.
pub fn locked(w: (&str, &str, &str, &str, u64, &str)) -> WheelRequest {
    WheelRequest {
        name: w.0.into(),
        version: w.1.into(),
        filename: w.2.into(),
        url: Some(w.5.into()),
        sha256: Some(digest(w.3)),
        size: Some(w.4),
        ..Default::default()
    }
}

/// A request as a poetry.lock gives it: hash, no URL.
pub fn by_name(w: (&str, &str, &str, &str, u64, &str)) -> WheelRequest {
    WheelRequest {
        url: None,
        size: None,
        ..locked(w)
    }
}

/// Files left in the store's temp directory.
pub fn tmp_files(store_root: &Path) -> usize {
    std::fs::read_dir(store_root.join("tmp")).unwrap().count()
}

/// Records every progress event.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<String>>,
}

impl Recorder {
    pub fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
    pub fn count(&self, prefix: &str) -> usize {
        self.events()
            .iter()
            .filter(|e| e.starts_with(prefix))
            .count()
    }
}

impl Progress for Recorder {
    fn started(&self, filename: &str, size: Option<u64>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("started {filename} {size:?}"));
    }
    fn finished(&self, filename: &str, sha256: &Digest, size: u64) {
        self.events
            .lock()
            .unwrap()
            .push(format!("finished {filename} {sha256} {size}"));
    }
    fn cached(&self, filename: &str, sha256: &Digest) {
        self.events
            .lock()
            .unwrap()
            .push(format!("cached {filename} {sha256}"));
    }
    fn retrying(&self, url: &str, attempt: u32, reason: &str) {
        self.events
            .lock()
            .unwrap()
            .push(format!("retrying {url} {attempt} {reason}"));
    }
    fn warning(&self, message: &str) {
        self.events
            .lock()
            .unwrap()
            .push(format!("warning {message}"));
    }
}

/// One scripted response.
#[derive(Clone)]
pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Announce the full length but send only this many bytes, then close.
    pub truncate_at: Option<usize>,
    /// Answer a `Range: bytes=N-` request with the whole body (200) instead of the rest (206).
    pub ignore_range: bool,
}

impl Resp {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status: 200,
            content_type: content_type.into(),
            body: body.into(),
            truncate_at: None,
            ignore_range: false,
        }
    }
    pub fn status(status: u16) -> Resp {
        Resp {
            status,
            content_type: "text/plain".into(),
            body: b"no".to_vec(),
            truncate_at: None,
            ignore_range: false,
        }
    }
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain-http server on 127.0.0.1 answering from a script: each path has a queue of responses (the
/// last one repeats); unknown paths get 404. Every request is recorded.
pub struct Server {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    routes: Arc<Mutex<HashMap<String, Vec<Resp>>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let routes: Arc<Mutex<HashMap<String, Vec<Resp>>>> = Arc::new(Mutex::new(HashMap::new()));
        let (s2, r2) = (seen.clone(), routes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (s3, r3) = (s2.clone(), r2.clone());
                std::thread::spawn(move || serve(stream, s3, r3));
            }
        });
        Server { addr, seen, routes }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn route(&self, path: &str, responses: Vec<Resp>) {
        self.routes
            .lock()
            .unwrap()
            .insert(path.to_string(), responses);
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(
    mut stream: TcpStream,
    seen: Arc<Mutex<Vec<SeenRequest>>>,
    routes: Arc<Mutex<HashMap<String, Vec<Resp>>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let path = request_line.split(' ').nth(1).unwrap_or("/").to_string();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    seen.lock().unwrap().push(SeenRequest {
        path: path.clone(),
        headers,
    });
    let resp = {
        let mut routes = routes.lock().unwrap();
        match routes.get_mut(&path) {
            Some(queue) if queue.len() > 1 => queue.remove(0),
            Some(queue) if !queue.is_empty() => queue[0].clone(),
            _ => Resp::status(404),
        }
    };
    // `Range: bytes=N-` on a 200 answer: 206 with the rest, as file servers and CDNs do.
    let range = seen
        .lock()
        .unwrap()
        .last()
        .and_then(|r| r.header("range").map(str::to_string))
        .and_then(|v| {
            v.strip_prefix("bytes=")?
                .strip_suffix('-')?
                .parse::<usize>()
                .ok()
        })
        .filter(|n| resp.status == 200 && !resp.ignore_range && *n < resp.body.len());
    let (status, full, extra) = match range {
        Some(n) => (
            206,
            &resp.body[n..],
            format!(
                "Content-Range: bytes {n}-{}/{}\r\n",
                resp.body.len() - 1,
                resp.body.len()
            ),
        ),
        None => (resp.status, &resp.body[..], String::new()),
    };
    let head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        status,
        resp.content_type,
        full.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let body = match resp.truncate_at {
        Some(n) => &full[..n.min(full.len())],
        None => full,
    };
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

/// An HTTP CONNECT proxy on 127.0.0.1 that counts the tunnels it opens.
pub struct CountingProxy {
    pub addr: SocketAddr,
    pub tunnels: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub fn start() -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(AtomicUsize::new(0));
        let t2 = tunnels.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let t3 = t2.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        match client.read(&mut b) {
                            Ok(1) => buf.push(b[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("").to_string();
                    if !head.starts_with("CONNECT ") {
                        let _ = client.write_all(b"HTTP/1.1 405 X\r\nContent-Length: 0\r\n\r\n");
                        return;
                    }
                    let Ok(upstream) = TcpStream::connect(&target) else {
                        let _ = client.write_all(b"HTTP/1.1 502 X\r\nContent-Length: 0\r\n\r\n");
                        return;
                    };
                    t3.fetch_add(1, Ordering::SeqCst);
                    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
                    let (mut c2, mut u2) =
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                    let (mut c1, mut u1) = (client, upstream);
                    let a = std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c1, &mut u1);
                        let _ = u1.shutdown(std::net::Shutdown::Write);
                    });
                    let _ = std::io::copy(&mut u2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                    let _ = a.join();
                });
            }
        });
        CountingProxy { addr, tunnels }
    }

    pub fn count(&self) -> usize {
        self.tunnels.load(Ordering::SeqCst)
    }
}

/// Writes a tiny but real wheel (a zip with a module, METADATA, WHEEL and RECORD) to `dir/filename`.
pub fn build_wheel(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    use std::io::Write as _;
    let filename = format!("{name}-{version}-py3-none-any.whl");
    let path = dir.join(&filename);
    let file = std::fs::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let di = format!("{name}-{version}.dist-info");
    for (p, body) in [
        (format!("{name}/__init__.py"), "VALUE = 42\n".to_string()),
        (
            format!("{di}/METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
        ),
        (
            format!("{di}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
                .to_string(),
        ),
        (format!("{di}/RECORD"), String::new()),
    ] {
        zip.start_file(p, opts).unwrap();
        zip.write_all(body.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path
}
