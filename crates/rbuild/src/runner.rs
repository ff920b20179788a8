//! The base image's own interpreter, shared by everything in a build that runs Python: the
//! bytecode compiler ([`crate::layers::bytecode`]) and the sdist builder
//! ([`crate::layers::deps`]).
//!
//! One [`BasePython`] per build (made in [`crate::Builder::build`] when the base is an image).
//! It is the base image of the build machine's own platform, unpacked from the store by
//! [`rbuild_runner`] (cached by platform manifest digest under the store's `unpacked/`) and confined by it,
//! and it is prepared lazily: a build that compiles nothing and builds no sdist unpacks nothing.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use rbuild_oci::{Digest, Platform, Store};
use rbuild_registry::{Client, Reference};
use rbuild_runner::{PyVersion, Python, TargetPython, UnpackedBase};

use crate::rootfs::open_layer_checked;

/// The base image's interpreter for this machine's platform, prepared on first use: the
/// platform's image resolved, its layers fetched into the store and unpacked (cached by its
/// manifest digest under the store's `unpacked/`).
pub(crate) struct BasePython {
    client: Client,
    store: Store,
    reference: Reference,
    interpreter: String,
    version: PyVersion,
    handle: tokio::runtime::Handle,
    ready: OnceLock<Result<TargetPython, String>>,
    /// This machine's platform's image of the base, when the build resolved it already: a warm
    /// build then asks the registry nothing more.
    host_image: Option<HostImage>,
}

/// A resolved image of the base: its manifest digest, its layers and its config's diff_ids (each
/// layer is checked against its diff_id as it is unpacked).
pub(crate) type HostImage = (Digest, Vec<rbuild_oci::Descriptor>, Vec<Digest>);

impl BasePython {
    /// The interpreter at `interpreter` (its path in the image) of the base `reference`, for
    /// the build machine's platform, Python `version`; nothing is fetched until it is first run.
    pub(crate) fn new(
        client: Client,
        store: Store,
        reference: Reference,
        interpreter: String,
        version: PyVersion,
        host_image: Option<HostImage>,
    ) -> BasePython {
        BasePython {
            client,
            store,
            reference,
            interpreter,
            version,
            handle: tokio::runtime::Handle::current(),
            ready: OnceLock::new(),
            host_image,
        }
    }

    /// What identifies this interpreter across builds without preparing it: the image it comes
    /// from (this platform's manifest digest; a tag may move) and the interpreter path. `None`
    /// when the build did not resolve that image (then the interpreter is asked).
    pub(crate) fn info_key(&self) -> Option<String> {
        self.host_image
            .as_ref()
            .map(|(d, _, _)| format!("{d}|{}", self.interpreter.replace('|', "")))
    }

    /// The standard library's directory in the image (relative: `usr/local/lib/python3.12`),
    /// from the interpreter prepared for this machine's platform (prepared now if it was not).
    pub(crate) fn stdlib_dir(&self) -> Result<String, String> {
        Ok(self.ready()?.stdlib_dir().to_string())
    }

    /// Where the directory `dir` (relative, in the image) of the base image `digest` is on this
    /// machine, when that image is the one this interpreter was unpacked from (prepared now if
    /// it was not): its files are those of the image, whiteouts applied.
    pub(crate) fn unpacked_dir(&self, digest: Digest, dir: &str) -> Option<std::path::PathBuf> {
        let (own, _, _) = self.host_image.as_ref()?;
        if *own != digest {
            return None;
        }
        Some(self.ready().ok()?.root().join(dir))
    }

    /// The interpreter, prepared on first use; the same error every time when it cannot be.
    fn ready(&self) -> Result<&TargetPython, String> {
        self.ready
            .get_or_init(|| self.prepare())
            .as_ref()
            .map_err(Clone::clone)
    }

    fn prepare(&self) -> Result<TargetPython, String> {
        let host = Platform::host();
        let unusable = |e: &dyn std::fmt::Display| {
            format!(
                "bytecode is compiled (and source distributions are built) by the base \
                 image's Python for this machine's platform ({host}), and {} has none usable: \
                 {e}; pass --no-compile-bytecode to build without bytecode",
                self.reference
            )
        };
        let (digest, layers, diff_ids) = match &self.host_image {
            Some(known) => known.clone(),
            None => self
                .handle
                .block_on(async {
                    let r = self.client.resolve_image(&self.reference, &host).await?;
                    let (_, config) = self.client.fetch_config(&r, &self.store).await?;
                    Ok::<_, rbuild_registry::Error>((
                        r.manifest.digest,
                        r.image.layers.clone(),
                        config.rootfs.diff_ids,
                    ))
                })
                .map_err(|e| unusable(&e))?,
        };
        let key = digest.to_string();
        let unpacked = self.store.root().join("unpacked");
        if !UnpackedBase::is_complete(&unpacked, &key) {
            self.handle
                .block_on(
                    self.client
                        .fetch_blobs(&self.reference, &layers, &self.store),
                )
                .map_err(|e| format!("fetching the base image's layers for its Python: {e}"))?;
        }
        let base = UnpackedBase::open_or_unpack(
            &unpacked,
            &key,
            layers
                .iter()
                .enumerate()
                .map(|(i, d)| open_layer_checked(&self.store, i, d, &diff_ids)),
        )
        .map_err(|e| format!("unpacking the base image's Python: {e}"))?;
        let python = TargetPython::locate(base.root(), &self.interpreter)
            .map_err(|e| e.to_string())?
            .with_label(format!(
                "python{} of the base image {} ({host})",
                self.version, self.reference
            ));
        if python.version() != self.version {
            return Err(format!(
                "the base image {} has Python {} for {host} but {} for the platform being built; \
                 pass --no-compile-bytecode",
                self.reference,
                python.version(),
                self.version
            ));
        }
        Ok(python)
    }
}

/// The interpreter at `interpreter` (its path in the image) of the base whose image for this
/// machine's platform (`digest`, its manifest digest) is already unpacked in the store, as
/// [`BasePython`] would run it; `None` when that base is not unpacked or has no such interpreter.
/// Reads no layer and asks no registry.
pub(crate) fn unpacked_python(
    store: &Store,
    digest: &str,
    interpreter: &str,
) -> Option<TargetPython> {
    let unpacked = store.root().join("unpacked");
    if !UnpackedBase::is_complete(&unpacked, digest) {
        return None;
    }
    let base = UnpackedBase::open_or_unpack(
        &unpacked,
        digest,
        std::iter::empty::<io::Result<io::Empty>>(),
    )
    .ok()?;
    TargetPython::locate(base.root(), interpreter).ok()
}

impl Python for BasePython {
    fn version(&self) -> PyVersion {
        self.version
    }

    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> io::Result<Command> {
        self.ready()
            .map_err(io::Error::other)?
            .command(args, scratch, env)
    }

    fn describe(&self) -> String {
        format!(
            "python{} of the base image {} ({})",
            self.version,
            self.reference,
            Platform::host()
        )
    }
}
