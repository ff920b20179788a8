//! What rbuild reads from the base image's files: the layers are opened here, decompressed once each,
//! and read in one pass by [`rbuild_python::rootfs`] with two visitors: target detection
//! ([`rbuild_python::target::TargetFiles`]) and the [`BaseFacts`] (`/etc/passwd`, `/etc/group`,
//! directory modes, the RECORD of every installed distribution).
//!
//! The result is cached in the store by base manifest digest, so warm builds never open a base layer.
//!
//! Every layer opened with [`open_layer_checked`] is checked against the config's `diff_id` as it
//! streams: the uncompressed tar is hashed during the one decompression, and the stream fails at its
//! end ([`DiffIdMismatch`]) when the hash differs, so a base whose config lies about a layer is
//! refused instead of giving an image other tools reject.

use std::io::{self, Read};

use rbuild_oci::{Descriptor, Digest, Hasher, LayerCompression, Store};
use rbuild_python::rootfs::{BaseFactsVisitor, Merged, read_layers};
use rbuild_python::target::{
    Platform, Target, TargetError, TargetFiles, TargetOverrides, detect_target_in,
};

pub use rbuild_python::rootfs::BaseFacts;

/// Opens a layer blob from the store, decompressed.
pub fn open_layer(store: &Store, desc: &Descriptor) -> io::Result<Box<dyn Read + Send>> {
    let f = io::BufReader::with_capacity(
        256 * 1024,
        store
            .open_verified(&desc.digest)
            .map_err(io::Error::other)?,
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

/// A base layer whose uncompressed content does not hash to the `diff_id` its image config lists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "layer {index} ({digest}) of the base image decompresses to {actual}, but the image config \
     lists diff_id {expected} for it (rootfs.diff_ids[{index}]); the base image is inconsistent \
     (other tools refuse it too): rebuild or re-push it, or use another base"
)]
pub struct DiffIdMismatch {
    /// 0-based index of the layer, base first.
    pub index: usize,
    /// The layer blob's digest (compressed).
    pub digest: Digest,
    /// The diff_id the config lists.
    pub expected: Digest,
    /// The sha256 of the uncompressed bytes read.
    pub actual: Digest,
}

/// Hashes what it reads and, at the end of the stream, fails with [`DiffIdMismatch`] when the hash
/// is not the expected diff_id.
struct DiffIdCheck<R> {
    inner: R,
    hasher: Option<Hasher>,
    index: usize,
    digest: Digest,
    expected: Digest,
}

impl<R: Read> Read for DiffIdCheck<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(h) = &mut self.hasher {
                h.update(&buf[..n]);
            }
        } else if !buf.is_empty()
            && let Some(h) = self.hasher.take()
        {
            let actual = h.finish();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    DiffIdMismatch {
                        index: self.index,
                        digest: self.digest,
                        expected: self.expected,
                        actual,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// Opens layer `index` of an image from the store, decompressed, checked against `diff_ids[index]`
/// (the config's `rootfs.diff_ids`) as it streams: reading it to its end fails with
/// [`DiffIdMismatch`] when the uncompressed bytes hash to something else. A config that lists no
/// diff_id for the layer is refused.
pub fn open_layer_checked(
    store: &Store,
    index: usize,
    desc: &Descriptor,
    diff_ids: &[Digest],
) -> io::Result<Box<dyn Read + Send>> {
    let Some(expected) = diff_ids.get(index) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "the base image's config lists {} diff_ids (rootfs.diff_ids) but layer {index} \
                 ({}) needs one; the base image is inconsistent: rebuild or re-push it",
                diff_ids.len(),
                desc.digest
            ),
        ));
    };
    Ok(Box::new(DiffIdCheck {
        inner: open_layer(store, desc)?,
        hasher: Some(Hasher::new()),
        index,
        digest: desc.digest,
        expected: *expected,
    }))
}

/// Reads the layers (each opened once, base first) in one pass with both visitors and decides the
/// [`Target`] (`config_env` is the image config's `Env`) and the [`BaseFacts`].
pub fn read_base<R: Read>(
    layers: impl IntoIterator<Item = io::Result<R>>,
    platform: &Platform,
    config_env: &[String],
    overrides: &TargetOverrides,
) -> Result<(Target, BaseFacts), TargetError> {
    let mut files = TargetFiles::new();
    let mut facts = Merged::new(BaseFactsVisitor);
    read_layers(layers, &mut [&mut files, &mut facts])?;
    let target = detect_target_in(files, platform, config_env, overrides)?;
    Ok((target, BaseFacts::from_merged(facts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o755);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, *content).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn layers_are_checked_against_their_diff_ids_in_the_one_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let dpkg = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n";
        let tar = layer(&[
            ("usr/local/bin/python3.12", b"\x7fELF"),
            ("var/lib/dpkg/status", dpkg),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let digest = store.put_bytes(&gz).unwrap();
        let desc = Descriptor::new(
            rbuild_oci::MediaType::OCI_LAYER_GZIP,
            digest,
            gz.len() as u64,
        );
        let read = |diff_ids: &[Digest]| {
            read_base(
                [open_layer_checked(&store, 0, &desc, diff_ids)],
                &Platform::new("linux", "amd64", None),
                &[],
                &TargetOverrides::default(),
            )
        };
        let right = Digest::of(&tar);
        read(&[right]).unwrap();

        let wrong = Digest::of(b"something else");
        let err = read(&[wrong]).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot read layer 0 of the base image: layer 0 ({digest}) of the base image \
                 decompresses to {right}, but the image config lists diff_id {wrong} for it \
                 (rootfs.diff_ids[0]); the base image is inconsistent (other tools refuse it \
                 too): rebuild or re-push it, or use another base"
            )
        );

        let err = read(&[]).unwrap_err().to_string();
        assert!(err.contains("lists 0 diff_ids"), "{err}");
    }

    #[test]
    fn one_pass_reads_the_target_and_the_facts() {
        let dpkg = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n";
        let l1 = layer(&[
            ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("usr/local/bin/python3.12", b"\x7fELF, not a real one"),
            ("var/lib/dpkg/status", dpkg),
        ]);
        let l2 = layer(&[(
            "usr/local/lib/python3.12/site-packages/pip-24.0.dist-info/RECORD",
            b"pip/__init__.py,,\n",
        )]);
        let (target, facts) = read_base(
            [Ok::<_, io::Error>(&l1[..]), Ok(&l2[..])],
            &Platform::new("linux", "amd64", None),
            &[],
            &TargetOverrides::default(),
        )
        .unwrap();
        assert_eq!(target.interpreter, "/usr/local/bin/python3.12");
        assert_eq!(target.libc.to_string(), "glibc-2.36");
        assert_eq!(target.installed.len(), 1);
        assert!(target.installed[0].has_record);
        assert_eq!(facts.passwd.as_deref(), Some("root:x:0:0::/root:/bin/sh\n"));
        assert_eq!(
            facts.records.keys().collect::<Vec<_>>(),
            ["usr/local/lib/python3.12/site-packages/pip-24.0.dist-info"]
        );

        let err = read_base(
            [Ok(&l1[..]), Err(io::Error::other("blob missing"))],
            &Platform::new("linux", "amd64", None),
            &[],
            &TargetOverrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read layer 1 of the base image: blob missing"
        );
    }
}
