//! A TCP relay that makes a registry far away: every byte is passed on a fixed time after it
//! arrived, in each direction, so a request and its answer cost one round trip (twice the
//! delay) while connections stay open and requests may be pipelined, as with a real far-away
//! registry (the [`crate::FaultProxy`] instead takes one request per connection).
//!
//! It records the HTTP/1.1 requests it sees going to the registry (each with when its first byte
//! arrived, also for requests written back to back on one connection) and the connections, so
//! a test can count round trips: requests that leave together arrive together.
//!
//! ```no_run
//! use rbuild_testing::{LatencyRelay, Registry};
//! use std::time::Duration;
//!
//! let registry = Registry::plain()?;
//! let relay = LatencyRelay::in_front_of(&registry, Duration::from_millis(100))?;
//! let image = format!("{}/library/python:3.11-slim", relay.host());
//! # let _ = image;
//! // ... push through `relay.host()`, then: relay.requests(), relay.waves() ...
//! # Ok::<(), rbuild_testing::Error>(())
//! ```

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::registry::Registry;

/// One request the relay passed to the registry.
#[derive(Debug, Clone)]
pub struct RelayedRequest {
    /// The method.
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// Which connection (numbered from 0 in the order they were accepted).
    pub connection: usize,
    /// When its first byte reached the relay.
    pub at: Instant,
}

/// A delaying TCP relay in front of a plain-HTTP registry; stops when dropped.
pub struct LatencyRelay {
    host: String,
    delay: Duration,
    seen: Arc<Mutex<Vec<RelayedRequest>>>,
    stop: Arc<AtomicBool>,
}

impl LatencyRelay {
    /// Relays `127.0.0.1:PORT` to `registry`, each byte `one_way` later in each direction.
    pub fn in_front_of(registry: &Registry, one_way: Duration) -> Result<LatencyRelay> {
        let upstream = registry.host();
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("binding the latency relay to 127.0.0.1:0", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| Error::io("reading the latency relay's port", e))?
            .port();
        let host = format!("127.0.0.1:{port}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(AtomicUsize::new(0));
        {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(&upstream) else {
                        continue;
                    };
                    let n = connections.fetch_add(1, Ordering::SeqCst);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                        (Ok(c), Ok(s)) => (c, s),
                        _ => continue,
                    };
                    let mut parser = RequestParser::new(n, seen.clone());
                    pipe(client, server, one_way, move |at, bytes| {
                        parser.feed(at, bytes)
                    });
                    pipe(s2, c2, one_way, |_, _| {});
                }
            });
        }
        Ok(LatencyRelay {
            host,
            delay: one_way,
            seen,
            stop,
        })
    }

    /// `127.0.0.1:PORT`: use it instead of the registry's host.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Every request relayed so far, in the order they arrived.
    pub fn requests(&self) -> Vec<RelayedRequest> {
        let mut all = self.seen.lock().expect("relay lock").clone();
        all.sort_by_key(|r| r.at);
        all
    }

    /// Forgets the requests seen so far.
    pub fn reset(&self) {
        self.seen.lock().expect("relay lock").clear();
    }

    /// How many round trips the requests seen took: groups of requests that arrived together
    /// (less than one delay apart).
    pub fn waves(&self) -> usize {
        let at: Vec<Instant> = self.requests().iter().map(|r| r.at).collect();
        at.windows(2)
            .filter(|w| w[1].duration_since(w[0]) > self.delay)
            .count()
            + usize::from(!at.is_empty())
    }
}

impl Drop for LatencyRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the stop.
        let _ = TcpStream::connect(&self.host);
    }
}

/// Copies `from` to `to`, each chunk `delay` after it was read, in order; `seen` is told of each
/// chunk as it arrives. Two threads: the reader and the writer.
fn pipe(
    mut from: TcpStream,
    mut to: TcpStream,
    delay: Duration,
    mut seen: impl FnMut(Instant, &[u8]) + Send + 'static,
) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let now = Instant::now();
            if n > 0 {
                seen(now, &buf[..n]);
            }
            if tx.send((now + delay, buf[..n].to_vec())).is_err() || n == 0 {
                return;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if bytes.is_empty() {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            if to.write_all(&bytes).is_err() {
                return;
            }
        }
    });
}

/// Finds the requests in a client's byte stream (request heads, `Content-Length` bodies skipped).
struct RequestParser {
    connection: usize,
    seen: Arc<Mutex<Vec<RelayedRequest>>>,
    head: Vec<u8>,
    head_at: Option<Instant>,
    body_left: u64,
}

impl RequestParser {
    fn new(connection: usize, seen: Arc<Mutex<Vec<RelayedRequest>>>) -> Self {
        RequestParser {
            connection,
            seen,
            head: Vec::new(),
            head_at: None,
            body_left: 0,
        }
    }

    fn feed(&mut self, at: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = (self.body_left as usize).min(bytes.len());
                self.body_left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.head_at.get_or_insert(at);
            self.head.push(bytes[0]);
            bytes = &bytes[1..];
            if !self.head.ends_with(b"\r\n\r\n") {
                continue;
            }
            let head = String::from_utf8_lossy(&self.head).to_string();
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or("").split(' ');
            let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
            self.body_left = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            self.seen.lock().expect("relay lock").push(RelayedRequest {
                method: method.to_string(),
                target: target.to_string(),
                connection: self.connection,
                at: self.head_at.take().unwrap_or(at),
            });
            self.head.clear();
        }
    }
}
