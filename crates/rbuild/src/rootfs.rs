//! What rbuild reads from the base image's files besides the Python target: `/etc/passwd`,
//! `/etc/group`, directory modes, and the RECORD of every installed distribution (to replace one).
//!
//! One streaming pass over the layers (whiteouts and layer order honoured); only small files are kept.
//! The result is cached in the store by base manifest digest, so warm builds never open a base layer.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};

use rbuild_oci::{Descriptor, LayerCompression, Store};
use serde::{Deserialize, Serialize};

/// Facts from the base image's files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseFacts {
    /// `/etc/passwd`, when present.
    pub passwd: Option<String>,
    /// `/etc/group`, when present.
    pub group: Option<String>,
    /// Modes of directories (relative paths without leading `/`).
    pub dir_modes: BTreeMap<String, u32>,
    /// RECORD files of installed distributions: dist-info path (relative) → RECORD text.
    pub records: BTreeMap<String, String>,
}

const SMALL: u64 = 4 * 1024 * 1024;

fn wanted_file(path: &str) -> bool {
    path == "etc/passwd"
        || path == "etc/group"
        || (path.ends_with(".dist-info/RECORD") && path.matches('/').count() <= 8)
}

/// Opens a layer blob from the store, decompressed.
pub fn open_layer(store: &Store, desc: &Descriptor) -> io::Result<Box<dyn Read + Send>> {
    let f = io::BufReader::with_capacity(
        256 * 1024,
        store.open_blob(&desc.digest).map_err(io::Error::other)?,
    );
    Ok(match desc.media_type.layer_compression() {
        Some(LayerCompression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Some(LayerCompression::Zstd) => Box::new(zstd::stream::read::Decoder::with_buffer(f)?),
        Some(LayerCompression::None) => Box::new(f),
        None => {
            return Err(io::Error::other(format!(
                "{} is not a layer media type ({})",
                desc.digest, desc.media_type
            )));
        }
    })
}

fn clean(path: &str) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn remove_below<V>(
    map: &mut BTreeMap<String, V>,
    prefix: &str,
    keep: &BTreeSet<String>,
    include_self: bool,
) {
    let doomed: Vec<String> = map
        .keys()
        .filter(|k| {
            (include_self && k.as_str() == prefix)
                || k.starts_with(&format!("{prefix}/"))
                || prefix.is_empty()
        })
        .filter(|k| !keep.contains(*k))
        .cloned()
        .collect();
    for k in doomed {
        map.remove(&k);
    }
}

impl BaseFacts {
    /// Reads the facts from uncompressed layer tars, base first.
    pub fn read<R: Read>(layers: impl IntoIterator<Item = io::Result<R>>) -> io::Result<BaseFacts> {
        let mut files: BTreeMap<String, String> = BTreeMap::new();
        let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
        for layer in layers {
            let mut archive = tar::Archive::new(layer?);
            let mut added: BTreeSet<String> = BTreeSet::new();
            let mut opaque: Vec<String> = Vec::new();
            for entry in archive.entries()? {
                let mut entry = entry?;
                let raw = String::from_utf8_lossy(&entry.path_bytes()).to_string();
                let Some(path) = clean(&raw) else { continue };
                let (parent, name) = match path.rsplit_once('/') {
                    Some((p, n)) => (p.to_string(), n.to_string()),
                    None => (String::new(), path.clone()),
                };
                if name == ".wh..wh..opq" {
                    opaque.push(parent);
                    continue;
                }
                if let Some(target) = name.strip_prefix(".wh.") {
                    let victim = if parent.is_empty() {
                        target.to_string()
                    } else {
                        format!("{parent}/{target}")
                    };
                    let none = BTreeSet::new();
                    remove_below(&mut files, &victim, &none, true);
                    remove_below(&mut dirs, &victim, &none, true);
                    continue;
                }
                let kind = entry.header().entry_type();
                if kind.is_dir() {
                    let mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
                    dirs.insert(path.clone(), mode);
                    added.insert(path);
                } else if kind.is_file() && wanted_file(&path) && entry.size() <= SMALL {
                    let mut text = String::new();
                    entry.read_to_string(&mut text).ok();
                    files.insert(path.clone(), text);
                    added.insert(path);
                } else {
                    // Any other entry replaces a file we kept at that path.
                    files.remove(&path);
                }
            }
            for dir in opaque {
                remove_below(&mut files, &dir, &added, false);
                remove_below(&mut dirs, &dir, &added, false);
            }
        }
        let passwd = files.remove("etc/passwd");
        let group = files.remove("etc/group");
        let records = files
            .into_iter()
            .filter_map(|(k, v)| k.strip_suffix("/RECORD").map(|d| (d.to_string(), v)))
            .collect();
        Ok(BaseFacts {
            passwd,
            group,
            dir_modes: dirs,
            records,
        })
    }
}

/// Reading a sequence of layer streams once for two consumers.
pub(crate) mod tee {
    use std::cell::RefCell;
    use std::io::{self, Read};
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

    /// Bytes per message.
    const CHUNK: usize = 256 * 1024;
    /// Messages in flight per consumer (so at most 2 × 8 × 256 KiB buffered).
    const DEPTH: usize = 8;

    enum Msg {
        /// A layer starts (or could not be opened).
        Start(Result<(), String>),
        Data(Arc<[u8]>),
        /// The layer ended (or failed while reading).
        End(Result<(), String>),
    }

    /// Runs `a` and `b` on their own threads, each over the same layers (as an iterator of
    /// `io::Result<reader>`, like `layers`), while this thread reads (decompresses) each layer once
    /// and hands both the same bytes. A consumer may stop early (return, or skip the rest of a layer);
    /// the other still gets everything.
    pub fn read_twice<L, R, A, B, TA, TB>(layers: L, a: A, b: B) -> (TA, TB)
    where
        L: IntoIterator<Item = io::Result<R>>,
        R: Read,
        A: FnOnce(Layers) -> TA + Send,
        B: FnOnce(Layers) -> TB + Send,
        TA: Send,
        TB: Send,
    {
        let (tx_a, rx_a) = sync_channel(DEPTH);
        let (tx_b, rx_b) = sync_channel(DEPTH);
        std::thread::scope(|scope| {
            let ha = scope.spawn(move || a(Layers::new(rx_a)));
            let hb = scope.spawn(move || b(Layers::new(rx_b)));
            produce(layers, [Some(tx_a), Some(tx_b)]);
            let ra = ha.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            let rb = hb.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (ra, rb)
        })
    }

    fn produce<L, R>(layers: L, mut txs: [Option<SyncSender<Msg>>; 2])
    where
        L: IntoIterator<Item = io::Result<R>>,
        R: Read,
    {
        // A consumer that has gone (dropped its receiver) is no longer fed.
        let send = |txs: &mut [Option<SyncSender<Msg>>; 2], msg: &dyn Fn() -> Msg| {
            for tx in txs.iter_mut() {
                if tx.as_ref().is_some_and(|t| t.send(msg()).is_err()) {
                    *tx = None;
                }
            }
            txs.iter().any(Option::is_some)
        };
        for layer in layers {
            let mut reader = match layer {
                Ok(r) => r,
                Err(e) => {
                    let e = e.to_string();
                    if !send(&mut txs, &|| Msg::Start(Err(e.clone()))) {
                        return;
                    }
                    continue;
                }
            };
            if !send(&mut txs, &|| Msg::Start(Ok(()))) {
                return;
            }
            let end = loop {
                let mut buf = vec![0u8; CHUNK];
                let mut n = 0;
                let read = loop {
                    match reader.read(&mut buf[n..]) {
                        Ok(0) => break Ok(()),
                        Ok(k) => {
                            n += k;
                            if n == CHUNK {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e.to_string()),
                    }
                };
                if n > 0 {
                    buf.truncate(n);
                    let data: Arc<[u8]> = buf.into();
                    if !send(&mut txs, &|| Msg::Data(data.clone())) {
                        return;
                    }
                }
                match read {
                    Ok(()) if n == CHUNK => {}
                    r => break r,
                }
            };
            if !send(&mut txs, &|| Msg::End(end.clone())) {
                return;
            }
        }
    }

    struct State {
        rx: Receiver<Msg>,
        /// Inside a layer whose `End` has not been received.
        in_layer: bool,
        /// How many layers have started (a reader of an earlier layer reads nothing more).
        layer: u64,
    }

    /// One consumer's view of the layers: an iterator of readers, one per layer, in order.
    pub struct Layers {
        state: Rc<RefCell<State>>,
    }

    impl Layers {
        fn new(rx: Receiver<Msg>) -> Layers {
            Layers {
                state: Rc::new(RefCell::new(State {
                    rx,
                    in_layer: false,
                    layer: 0,
                })),
            }
        }
    }

    impl Iterator for Layers {
        type Item = io::Result<LayerReader>;

        fn next(&mut self) -> Option<Self::Item> {
            let mut st = self.state.borrow_mut();
            // Skip what the previous layer's reader left unread.
            while st.in_layer {
                match st.rx.recv() {
                    Ok(Msg::End(_)) | Err(_) => st.in_layer = false,
                    Ok(_) => {}
                }
            }
            match st.rx.recv().ok()? {
                Msg::Start(Ok(())) => {
                    st.in_layer = true;
                    st.layer += 1;
                    Some(Ok(LayerReader {
                        layer: st.layer,
                        state: self.state.clone(),
                        chunk: None,
                        pos: 0,
                    }))
                }
                Msg::Start(Err(e)) => Some(Err(io::Error::other(e))),
                // Not sent outside a layer.
                Msg::Data(_) | Msg::End(_) => None,
            }
        }
    }

    /// The bytes of one layer.
    pub struct LayerReader {
        layer: u64,
        state: Rc<RefCell<State>>,
        chunk: Option<Arc<[u8]>>,
        pos: usize,
    }

    impl Read for LayerReader {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            loop {
                if let Some(c) = &self.chunk {
                    if self.pos < c.len() {
                        let n = out.len().min(c.len() - self.pos);
                        out[..n].copy_from_slice(&c[self.pos..self.pos + n]);
                        self.pos += n;
                        return Ok(n);
                    }
                    self.chunk = None;
                }
                let mut st = self.state.borrow_mut();
                if !st.in_layer || st.layer != self.layer {
                    return Ok(0);
                }
                match st.rx.recv() {
                    Ok(Msg::Data(d)) => {
                        self.chunk = Some(d);
                        self.pos = 0;
                    }
                    Ok(Msg::End(r)) => {
                        st.in_layer = false;
                        return r.map(|()| 0).map_err(io::Error::other);
                    }
                    Ok(Msg::Start(_)) | Err(_) => {
                        st.in_layer = false;
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the layer stream ended early",
                        ));
                    }
                }
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn layers(contents: &[&[u8]]) -> Vec<io::Result<io::Cursor<Vec<u8>>>> {
            contents
                .iter()
                .map(|c| Ok(io::Cursor::new(c.to_vec())))
                .collect()
        }

        fn read_all(l: Layers) -> Vec<io::Result<Vec<u8>>> {
            l.map(|r| {
                let mut v = Vec::new();
                r?.read_to_end(&mut v)?;
                Ok(v)
            })
            .collect()
        }

        #[test]
        fn both_consumers_get_every_byte_of_every_layer() {
            let big: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
            let input: Vec<&[u8]> = vec![b"first", &big, b"", b"last"];
            let (a, b) = read_twice(layers(&input), read_all, read_all);
            for got in [a, b] {
                let got: Vec<Vec<u8>> = got.into_iter().map(Result::unwrap).collect();
                assert_eq!(got, input.iter().map(|c| c.to_vec()).collect::<Vec<_>>());
            }
        }

        #[test]
        fn a_consumer_that_stops_early_does_not_block_the_other() {
            let big: Vec<u8> = vec![7; 40 * CHUNK];
            let input: Vec<&[u8]> = vec![&big, &big, b"end"];
            let (first_bytes, all) = read_twice(
                layers(&input),
                |mut l| {
                    let mut head = [0u8; 3];
                    l.next().unwrap().unwrap().read_exact(&mut head).unwrap();
                    head
                },
                read_all,
            );
            assert_eq!(first_bytes, [7, 7, 7]);
            assert_eq!(all.len(), 3);
            assert_eq!(all[2].as_ref().unwrap(), b"end");
        }

        #[test]
        fn skipping_the_rest_of_a_layer_lands_on_the_next_one() {
            let big: Vec<u8> = vec![1; 5 * CHUNK];
            let input: Vec<&[u8]> = vec![&big, b"second"];
            let (a, _) = read_twice(
                layers(&input),
                |mut l| {
                    let mut one = [0u8; 1];
                    l.next().unwrap().unwrap().read_exact(&mut one).unwrap();
                    let mut v = Vec::new();
                    l.next().unwrap().unwrap().read_to_end(&mut v).unwrap();
                    (one, v, l.next().is_none())
                },
                |_| (),
            );
            assert_eq!(a, ([1], b"second".to_vec(), true));

            // A reader kept past its layer reads nothing of the next one.
            let (stale, _) = read_twice(
                layers(&[b"one", b"two"]),
                |mut l| {
                    let mut first = l.next().unwrap().unwrap();
                    let _second = l.next().unwrap().unwrap();
                    let mut v = Vec::new();
                    first.read_to_end(&mut v).unwrap();
                    v
                },
                |_| (),
            );
            assert!(stale.is_empty());
        }

        #[test]
        fn open_and_read_errors_reach_both_consumers() {
            struct Failing;
            impl Read for Failing {
                fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                    Err(io::Error::other("corrupt gzip"))
                }
            }
            let input: Vec<io::Result<Box<dyn Read>>> = vec![
                Err(io::Error::other("blob missing")),
                Ok(Box::new(Failing)),
                Ok(Box::new(io::Cursor::new(b"ok".to_vec()))),
            ];
            let (a, b) = read_twice(input, read_all, read_all);
            for got in [a, b] {
                assert_eq!(got.len(), 3);
                assert!(
                    got[0]
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("blob missing")
                );
                assert!(
                    got[1]
                        .as_ref()
                        .unwrap_err()
                        .to_string()
                        .contains("corrupt gzip")
                );
                assert_eq!(got[2].as_ref().unwrap(), b"ok");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_ustar();
            match content {
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(0o2775);
                    h.set_size(0);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(0o644);
                    h.set_size(c.len() as u64);
                    b.append_data(&mut h, path, c.as_bytes()).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn whiteouts_and_layer_order_are_honoured() {
        let l1 = layer(&[
            ("etc", None),
            ("etc/passwd", Some("root:x:0:0::/root:/bin/sh\n")),
            ("etc/group", Some("root:x:0:\n")),
            ("usr/local/lib/python3.11/dist-packages", None),
            (
                "usr/local/lib/python3.11/dist-packages/pip-23.0.dist-info/RECORD",
                Some("pip/__init__.py,,\n"),
            ),
            ("opt/x", None),
            ("opt/x/y", None),
        ]);
        let l2 = layer(&[
            (
                "etc/passwd",
                Some("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
            ),
            (
                "usr/local/lib/python3.11/dist-packages/.wh.pip-23.0.dist-info",
                Some(""),
            ),
            (
                "usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info/RECORD",
                Some("pip/__init__.py,,\n"),
            ),
            ("opt/x/.wh..wh..opq", Some("")),
            ("opt/x/z", None),
        ]);
        let f = BaseFacts::read([Ok::<_, io::Error>(&l1[..]), Ok(&l2[..])]).unwrap();
        assert!(f.passwd.unwrap().contains("nobody"));
        assert_eq!(f.group.as_deref(), Some("root:x:0:\n"));
        assert_eq!(
            f.records.keys().cloned().collect::<Vec<_>>(),
            vec!["usr/local/lib/python3.11/dist-packages/pip-24.0.dist-info".to_string()]
        );
        assert_eq!(
            f.dir_modes.get("usr/local/lib/python3.11/dist-packages"),
            Some(&0o2775)
        );
        assert!(f.dir_modes.contains_key("opt/x/z"));
        assert!(
            !f.dir_modes.contains_key("opt/x/y"),
            "opaque whiteout hides the lower layer's entries"
        );
    }
}
