//! The deterministic layer writer.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use rbuild_oci::{Digest, Hasher, HashingWriter};

use crate::compress::{Compression, Encoder};
use crate::error::{Error, Result};
use crate::tar::{self, EntryType, MAX_OCTAL_11};

/// The mtime written when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the earliest
/// time a zip file (and so a wheel) can hold, used by many reproducible-build tools.
pub const DEFAULT_SOURCE_DATE_EPOCH: u64 = 315_532_800;

/// Mode of directories the writer creates by itself (missing parents).
pub const DEFAULT_DIR_MODE: u32 = 0o755;

const COPY_BUF: usize = 128 * 1024;

/// The normalized mode for a context entry: directories and files with any executable bit get
/// `0o755`, other files `0o644`.
pub fn normalize_mode(is_dir: bool, executable: bool) -> u32 {
    if is_dir || executable { 0o755 } else { 0o644 }
}

/// Reads `SOURCE_DATE_EPOCH` from the environment: `Ok(None)` when unset or empty, an error when
/// set to something that is not a whole number of seconds a tar header can hold (0 to
/// 8589934591, i.e. up to the year 2242).
pub fn source_date_epoch_from_env() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(Error::SourceDateEpoch {
            value: v.to_string_lossy().into_owned(),
            reason: "it is not ASCII digits",
        }),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => parse_source_date_epoch(&v).map(Some),
    }
}

/// Parses a `SOURCE_DATE_EPOCH` value (see [`source_date_epoch_from_env`]).
pub fn parse_source_date_epoch(value: &str) -> Result<u64> {
    let err = |reason| Error::SourceDateEpoch {
        value: value.to_string(),
        reason,
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "it must be ASCII digits only, without sign, spaces or fraction",
        ));
    }
    let n: u64 = value.parse().map_err(|_| err("it is too large"))?;
    if n > MAX_OCTAL_11 {
        return Err(err(
            "it is after 2242-03-16, the last time a tar header can hold",
        ));
    }
    Ok(n)
}

/// How layers are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// How the tar stream is compressed.
    pub compression: Compression,
    /// The mtime of every entry, in seconds since the Unix epoch (`SOURCE_DATE_EPOCH`).
    pub mtime: u64,
}

impl Default for LayerOptions {
    /// gzip, mtime [`DEFAULT_SOURCE_DATE_EPOCH`].
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            mtime: DEFAULT_SOURCE_DATE_EPOCH,
        }
    }
}

impl LayerOptions {
    /// gzip, with the mtime from `SOURCE_DATE_EPOCH` or [`DEFAULT_SOURCE_DATE_EPOCH`] when it
    /// is unset or empty. An invalid value is an error (the reproducible-builds specification
    /// asks tools to fail rather than guess).
    pub fn from_env() -> Result<Self> {
        Ok(LayerOptions {
            mtime: source_date_epoch_from_env()?.unwrap_or(DEFAULT_SOURCE_DATE_EPOCH),
            ..LayerOptions::default()
        })
    }

    /// The same options with another compression.
    pub fn with_compression(self, compression: Compression) -> Self {
        LayerOptions {
            compression,
            ..self
        }
    }
}

/// What a finished layer is: the identifiers a manifest and an image config need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// sha256 of the blob as written (the manifest's layer digest).
    pub digest: Digest,
    /// Size of the blob as written, in bytes.
    pub size: u64,
    /// Size of the uncompressed tar, in bytes.
    pub uncompressed_size: u64,
    /// How the blob is compressed.
    pub compression: Compression,
}

impl LayerInfo {
    /// The OCI media type of the blob.
    pub fn media_type(&self) -> &'static str {
        self.compression.oci_media_type()
    }
}

/// Checks that `path` is a clean relative path: not empty, no leading `/`, no empty, `.` or
/// `..` component, no NUL. Returns it without a trailing `/` (accepted only when `dir`).
pub(crate) fn check_path(path: &str, dir: bool) -> Result<&str> {
    let bad = |reason| {
        Err(Error::InvalidPath {
            path: path.to_string(),
            reason,
        })
    };
    let p = if dir {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    if p.is_empty() {
        return bad("it is empty");
    }
    if p.starts_with('/') {
        return bad("it must be relative (no leading /)");
    }
    if p.contains('\0') {
        return bad("it contains a NUL byte");
    }
    for c in p.split('/') {
        match c {
            "" => return bad("it has an empty component (// or a trailing /)"),
            "." => return bad("it has a . component"),
            ".." => return bad("it has a .. component"),
            _ => {}
        }
    }
    Ok(p)
}

/// Where the tar bytes go: hashed for the diff_id, then compressed into a hashing writer.
struct Sink<W: Write> {
    diff: Hasher,
    enc: Encoder<HashingWriter<W>>,
}

impl<W: Write> Sink<W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.diff.update(bytes);
        self.enc.write_all(bytes).map_err(Error::Write)
    }
}

/// Writes a layer: a deterministic tar stream, compressed, hashed in the same pass.
///
/// Entries are written in the order they are appended (the writer does not sort). Each entry is
/// owned by 0:0 with empty user and group names, has the mtime of [`LayerOptions::mtime`] and
/// exactly the mode it is given (permission bits `0o7777`; other bits are dropped). Paths are
/// relative and `/`-separated: no leading `/` or `./`, no empty, `.` or `..` component, no NUL
/// (an [`Error::InvalidPath`] otherwise); directories are written as `path/`.
///
/// Missing parent directories are written automatically (mode [`DEFAULT_DIR_MODE`]) before an
/// entry that needs them, unless [`LayerWriter::auto_parents`] turns that off. To give a parent
/// another mode, append it yourself before its contents: a directory is written once, and
/// appending one that was already written is an error ([`Error::DuplicateDirectory`]).
///
/// ```
/// use rbuild_layer::{LayerOptions, LayerWriter};
/// let mut w = LayerWriter::new(Vec::new(), &LayerOptions::default())?;
/// w.append_file("app/main.py", 0o644, 5, &mut &b"print"[..])?; // writes app/ first
/// w.append_symlink("app/current", "main.py")?;
/// let (blob, info) = w.finish()?;
/// assert_eq!(info.size, blob.len() as u64);
/// # Ok::<(), rbuild_layer::Error>(())
/// ```
pub struct LayerWriter<W: Write> {
    sink: Sink<W>,
    opts: LayerOptions,
    auto_parents: bool,
    dirs: HashSet<String>,
    buf: Vec<u8>,
    /// The uid and gid of the entry being written (`(0, 0)` except inside the `*_owned` calls).
    owner: (u32, u32),
}

impl<W: Write> LayerWriter<W> {
    /// Starts a layer written to `out`.
    pub fn new(out: W, opts: &LayerOptions) -> Result<Self> {
        if opts.mtime > MAX_OCTAL_11 {
            return Err(Error::SourceDateEpoch {
                value: opts.mtime.to_string(),
                reason: "it is after 2242-03-16, the last time a tar header can hold",
            });
        }
        let enc = Encoder::new(HashingWriter::new(out), opts.compression).map_err(Error::Write)?;
        Ok(LayerWriter {
            sink: Sink {
                diff: Hasher::new(),
                enc,
            },
            opts: *opts,
            auto_parents: true,
            dirs: HashSet::new(),
            owner: (0, 0),
            buf: Vec::new(),
        })
    }

    /// Turns the automatic creation of missing parent directories on (the default) or off.
    /// With it off, the caller is responsible for a well-formed tree.
    pub fn auto_parents(&mut self, on: bool) -> &mut Self {
        self.auto_parents = on;
        self
    }

    /// The options this writer uses.
    pub fn options(&self) -> &LayerOptions {
        &self.opts
    }

    /// Whether the directory `path` was already written (explicitly or as a parent).
    pub fn has_dir(&self, path: &str) -> bool {
        self.dirs.contains(path.strip_suffix('/').unwrap_or(path))
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        if !self.auto_parents {
            return Ok(());
        }
        for (i, b) in path.bytes().enumerate() {
            if b == b'/' && !self.dirs.contains(&path[..i]) {
                let parent = path[..i].to_string();
                self.header(
                    &format!("{parent}/"),
                    EntryType::Directory,
                    DEFAULT_DIR_MODE,
                    0,
                    None,
                )?;
                self.dirs.insert(parent);
            }
        }
        Ok(())
    }

    fn header(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        size: u64,
        link: Option<&str>,
    ) -> Result<()> {
        let h = tar::entry_headers(name, kind, mode, size, self.opts.mtime, link, self.owner);
        self.sink.put(&h)
    }

    /// Appends a directory (written as `path/`).
    pub fn append_dir(&mut self, path: &str, mode: u32) -> Result<()> {
        let p = check_path(path, true)?;
        if self.dirs.contains(p) {
            return Err(Error::DuplicateDirectory(p.to_string()));
        }
        self.parents(p)?;
        self.header(&format!("{p}/"), EntryType::Directory, mode, 0, None)?;
        self.dirs.insert(p.to_string());
        Ok(())
    }

    /// Appends a directory owned by `uid:gid` (numeric; names stay empty). Used for directories
    /// that exist in a base image with another owner, so that a layer repeating them keeps the
    /// base's owner, group and mode. Parents it implies are written as by [`LayerWriter::append_dir`]
    /// (owned by root).
    pub fn append_dir_owned(&mut self, path: &str, mode: u32, uid: u32, gid: u32) -> Result<()> {
        let p = check_path(path, true)?;
        self.parents(p)?;
        self.owner = (uid, gid);
        let r = self.append_dir(path, mode);
        self.owner = (0, 0);
        r
    }

    /// Appends a regular file owned by `uid:gid` (see [`LayerWriter::append_file`] for `size`
    /// and `data`).
    pub fn append_file_owned(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
        uid: u32,
        gid: u32,
    ) -> Result<()> {
        let p = check_path(path, false)?;
        self.parents(p)?;
        self.owner = (uid, gid);
        let r = self.append_file(path, mode, size, data);
        self.owner = (0, 0);
        r
    }

    /// Appends a regular file of `size` bytes read from `data`. An error if `data` yields fewer
    /// or more bytes than `size` (the file changed while it was read): the layer is then unusable
    /// and must be discarded.
    pub fn append_file(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        let p = check_path(path, false)?;
        self.parents(p)?;
        self.header(p, EntryType::Regular, mode, size, None)?;
        if self.buf.is_empty() {
            self.buf = vec![0; COPY_BUF];
        }
        let mut left = size;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match data.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(Error::SizeMismatch {
                        path: p.to_string(),
                        expected: size,
                        actual: Some(size - left),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("cannot read", p, e)),
            };
            let chunk = std::mem::take(&mut self.buf);
            let r = self.sink.put(&chunk[..n]);
            self.buf = chunk;
            r?;
            left -= n as u64;
        }
        // One more read must report the end: a longer file changed while it was read.
        let mut probe = [0u8; 1];
        loop {
            match data.read(&mut probe) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(Error::SizeMismatch {
                        path: p.to_string(),
                        expected: size,
                        actual: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("cannot read", p, e)),
            }
        }
        let pad = tar::padding(size);
        self.sink.put(&[0u8; tar::BLOCK][..pad])
    }

    /// Appends a file whose whole content is `bytes`.
    pub fn append_bytes(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        self.append_file(path, mode, bytes.len() as u64, &mut &bytes[..])
    }

    /// Appends a symbolic link to `target`, stored as given (never resolved). Its mode is
    /// `0o777`, as symlinks have on Linux.
    pub fn append_symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let p = check_path(path, false)?;
        if target.is_empty() || target.contains('\0') {
            return Err(Error::InvalidPath {
                path: target.to_string(),
                reason: "a symlink target must be non-empty and without NUL bytes",
            });
        }
        self.parents(p)?;
        self.header(p, EntryType::Symlink, 0o777, 0, Some(target))
    }

    /// Appends an OCI whiteout for `path`: an empty file `dir/.wh.name`, which deletes `path`
    /// from the layers below.
    pub fn append_whiteout(&mut self, path: &str) -> Result<()> {
        let p = check_path(path, false)?;
        let wh = match p.rfind('/') {
            Some(i) => format!("{}/.wh.{}", &p[..i], &p[i + 1..]),
            None => format!(".wh.{p}"),
        };
        self.append_bytes(&wh, 0o644, b"")
    }

    /// Appends an opaque whiteout for directory `dir` (`dir/.wh..wh..opq`): the directory's
    /// contents in lower layers are hidden.
    pub fn append_opaque_whiteout(&mut self, dir: &str) -> Result<()> {
        let d = check_path(dir, true)?;
        self.append_bytes(&format!("{d}/.wh..wh..opq"), 0o644, b"")
    }

    /// Ends the archive (two zero blocks), finishes the compressed stream and returns the output
    /// writer with the layer's identifiers.
    pub fn finish(mut self) -> Result<(W, LayerInfo)> {
        self.sink.put(&[0u8; 2 * tar::BLOCK])?;
        let uncompressed_size = self.sink.diff.len();
        let diff_id = self.sink.diff.finish();
        let hw = self.sink.enc.finish().map_err(Error::Write)?;
        let (mut out, digest, size) = hw.finish();
        out.flush().map_err(Error::Write)?;
        Ok((
            out,
            LayerInfo {
                diff_id,
                digest,
                size,
                uncompressed_size,
                compression: self.opts.compression,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (path, type flag, mode, mtime, link target, data)
    type Entry = (String, u8, u32, u64, Option<String>, Vec<u8>);

    fn entries(blob: &[u8], c: Compression) -> Vec<Entry> {
        let raw: Box<dyn std::io::Read> = match c {
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(blob)),
            Compression::Zstd => Box::new(zstd::Decoder::new(blob).unwrap()),
            Compression::None => Box::new(blob),
        };
        let mut ar = ::tar::Archive::new(raw);
        ar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let h = e.header().clone();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type().as_byte(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    e.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                    data,
                )
            })
            .collect()
    }

    #[test]
    fn owned_entries_carry_their_uid_and_gid_and_others_stay_root() {
        let opts = LayerOptions {
            compression: Compression::None,
            ..LayerOptions::default()
        };
        let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
        w.append_dir_owned("opt/app-root", 0o2775, 1001, 0).unwrap();
        w.append_file_owned("opt/app-root/f", 0o664, 1, &mut &b"x"[..], 1001, 0)
            .unwrap();
        w.append_dir_owned("opt/big", 0o755, 3_000_000, 3_000_001)
            .unwrap();
        w.append_bytes("opt/root-file", 0o644, b"y").unwrap();
        let (blob, _) = w.finish().unwrap();
        let mut ar = ::tar::Archive::new(&blob[..]);
        let owners: Vec<(String, u64, u64)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let (uid, gid) = pax_ids(&mut e);
                (e.path().unwrap().to_string_lossy().into_owned(), uid, gid)
            })
            .collect();
        assert_eq!(
            owners,
            [
                ("opt/".to_string(), 0, 0),
                ("opt/app-root/".to_string(), 1001, 0),
                ("opt/app-root/f".to_string(), 1001, 0),
                ("opt/big/".to_string(), 3_000_000, 3_000_001),
                ("opt/root-file".to_string(), 0, 0),
            ]
        );
    }

    /// uid and gid, PAX records first (as a runtime reads them).
    fn pax_ids<R: std::io::Read>(e: &mut ::tar::Entry<'_, R>) -> (u64, u64) {
        let h = e.header();
        let (mut uid, mut gid) = (h.uid().unwrap(), h.gid().unwrap());
        if let Some(x) = e.pax_extensions().unwrap() {
            for r in x.flatten() {
                match r.key().unwrap() {
                    "uid" => uid = r.value().unwrap().parse().unwrap(),
                    "gid" => gid = r.value().unwrap().parse().unwrap(),
                    _ => {}
                }
            }
        }
        (uid, gid)
    }

    #[test]
    fn writes_a_readable_archive_with_parents_and_fixed_metadata() {
        for c in [Compression::Gzip, Compression::Zstd, Compression::None] {
            let opts = LayerOptions {
                compression: c,
                mtime: 1_700_000_000,
            };
            let mut w = LayerWriter::new(Vec::new(), &opts).unwrap();
            w.append_dir("app", 0o750).unwrap();
            w.append_file("app/pkg/run.sh", 0o755, 3, &mut &b"hi\n"[..])
                .unwrap();
            w.append_symlink("app/link", "../../etc/passwd").unwrap();
            w.append_whiteout("app/old.txt").unwrap();
            w.append_opaque_whiteout("app/pkg").unwrap();
            let (blob, info) = w.finish().unwrap();
            assert_eq!(info.size, blob.len() as u64);
            assert_eq!(info.digest, Digest::of(&blob));
            assert_eq!(info.compression, c);
            let es = entries(&blob, c);
            let names: Vec<_> = es.iter().map(|e| e.0.as_str()).collect();
            assert_eq!(
                names,
                [
                    "app/",
                    "app/pkg/",
                    "app/pkg/run.sh",
                    "app/link",
                    "app/.wh.old.txt",
                    "app/pkg/.wh..wh..opq"
                ]
            );
            assert_eq!(es[0].2, 0o750, "explicit dir mode kept");
            assert_eq!(es[1].2, 0o755, "automatic parent");
            assert_eq!(es[2].2, 0o755);
            assert_eq!(es[2].5, b"hi\n");
            assert_eq!(es[3].1, b'2');
            assert_eq!(es[3].4.as_deref(), Some("../../etc/passwd"));
            assert!(es.iter().all(|e| e.3 == 1_700_000_000));
            if c == Compression::None {
                assert_eq!(info.diff_id, info.digest);
                assert_eq!(info.uncompressed_size, info.size);
            } else {
                assert_ne!(info.diff_id, info.digest);
            }
        }
    }

    #[test]
    fn diff_id_is_the_sha256_of_the_tar() {
        let mut w = LayerWriter::new(Vec::new(), &LayerOptions::default()).unwrap();
        w.append_bytes("a", 0o644, b"x").unwrap();
        let (blob, info) = w.finish().unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .unwrap();
        assert_eq!(info.diff_id, Digest::of(&tar));
        assert_eq!(info.uncompressed_size, tar.len() as u64);
        assert_eq!(tar.len(), 512 * 2 + 1024);
    }

    #[test]
    fn long_and_unicode_names_and_targets_use_pax() {
        let deep = format!("{}/{}", "d".repeat(120), "f".repeat(110));
        let split = format!("{}/{}", "p".repeat(80), "n".repeat(80));
        let long_target = "t/".repeat(80);
        let mut w = LayerWriter::new(
            Vec::new(),
            &LayerOptions::default().with_compression(Compression::None),
        )
        .unwrap();
        w.auto_parents(false);
        w.append_bytes(&deep, 0o644, b"1").unwrap();
        w.append_bytes(&split, 0o644, b"2").unwrap();
        w.append_bytes("héllo-wörld.txt", 0o644, b"3").unwrap();
        w.append_symlink("l", &long_target).unwrap();
        let (blob, _) = w.finish().unwrap();
        let es = entries(&blob, Compression::None);
        let names: Vec<_> = es.iter().map(|e| e.0.clone()).collect();
        assert_eq!(
            names,
            [
                deep.clone(),
                split.clone(),
                "héllo-wörld.txt".into(),
                "l".into()
            ]
        );
        assert_eq!(es[3].4.as_deref(), Some(long_target.as_str()));
        // The split name needs no PAX header: 2 blocks (header + data) only.
        let pax_count = blob
            .chunks(512)
            .filter(|b| b[156] == b'x' && b[257..262] == *b"ustar")
            .count();
        assert_eq!(pax_count, 3, "deep name, unicode name and long target");
    }

    #[test]
    fn rejects_unclean_paths() {
        let mut w = LayerWriter::new(Vec::new(), &LayerOptions::default()).unwrap();
        for bad in [
            "", "/abs", "./a", "a/../b", "a//b", "a/", "..", "a/.", "nul\0",
        ] {
            let e = w.append_bytes(bad, 0o644, b"").unwrap_err();
            assert!(matches!(e, Error::InvalidPath { .. }), "{bad:?}: {e}");
        }
        w.append_dir("dir/", 0o755).unwrap();
        assert!(w.has_dir("dir"));
        assert!(matches!(
            w.append_dir("dir", 0o700),
            Err(Error::DuplicateDirectory(_))
        ));
    }

    #[test]
    fn size_mismatch_is_an_error_naming_the_file() {
        let mut w = LayerWriter::new(std::io::sink(), &LayerOptions::default()).unwrap();
        let e = w
            .append_file("short", 0o644, 10, &mut &b"abc"[..])
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("short changed while it was being read"),
            "{e}"
        );
        assert!(e.to_string().contains("got 3"), "{e}");
        let mut w = LayerWriter::new(std::io::sink(), &LayerOptions::default()).unwrap();
        let e = w
            .append_file("long", 0o644, 2, &mut &b"abc"[..])
            .unwrap_err();
        assert!(matches!(e, Error::SizeMismatch { actual: None, .. }), "{e}");
    }

    #[test]
    fn source_date_epoch_parsing() {
        assert_eq!(parse_source_date_epoch("0").unwrap(), 0);
        assert_eq!(
            parse_source_date_epoch("1700000000").unwrap(),
            1_700_000_000
        );
        for bad in [
            "",
            "-1",
            "1.5",
            " 1",
            "1e9",
            "abc",
            "99999999999999999999",
            "8589934592",
        ] {
            let e = parse_source_date_epoch(bad).unwrap_err();
            assert!(e.to_string().contains("SOURCE_DATE_EPOCH"), "{e}");
        }
        assert!(
            LayerWriter::new(
                Vec::new(),
                &LayerOptions {
                    mtime: u64::MAX,
                    ..Default::default()
                }
            )
            .is_err()
        );
    }

    #[test]
    fn normalized_modes() {
        assert_eq!(normalize_mode(true, false), 0o755);
        assert_eq!(normalize_mode(false, true), 0o755);
        assert_eq!(normalize_mode(false, false), 0o644);
    }

    #[test]
    fn same_entries_same_bytes() {
        let build = || {
            let mut w = LayerWriter::new(Vec::new(), &LayerOptions::default()).unwrap();
            w.append_bytes("a/b/c.txt", 0o644, &vec![7u8; 100_000])
                .unwrap();
            w.append_symlink("a/l", "b").unwrap();
            w.finish().unwrap()
        };
        let (a, ia) = build();
        let (b, ib) = build();
        assert_eq!(a, b);
        assert_eq!(ia, ib);
    }
}
