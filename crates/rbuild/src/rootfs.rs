//! What rbuild reads from the base image's files: the layers are opened here, decompressed once each,
//! and read in one pass by [`rbuild_python::rootfs`] with two visitors: target detection
//! ([`rbuild_python::target::TargetFiles`]) and the [`BaseFacts`] (`/etc/passwd`, `/etc/group`,
//! directory modes, the RECORD of every installed distribution).
//!
//! The result is cached in the store by base manifest digest, so warm builds never open a base layer.

use std::io::{self, Read};

use rbuild_oci::{Descriptor, LayerCompression, Store};
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
    fn one_pass_reads_the_target_and_the_facts() {
        let dpkg = b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n\n";
        let l1 = layer(&[
            ("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            ("usr/local/bin/python3.12", b"not an ELF"),
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
