//! Fixture A' of the rebase tests: the base fixture with newer and different Debian packages and
//! the same Python, built by `tests/fixtures/rebase/build-updated.sh` and cached like the others.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::registry::Registry;

/// The build script, at its place in the workspace.
pub const UPDATED_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/rebase/build-updated.sh"
);

/// The tag of the image in the fixture's OCI layout.
pub const UPDATED_TAG: &str = "updated";

/// Fixture A': Debian bookworm + bookworm-updates + bookworm-security, python3 (3.11),
/// ca-certificates and `netbase`, plus the base fixture's own pip layer; `linux/amd64`.
#[derive(Debug, Clone)]
pub struct UpdatedBaseFixture {
    layout: PathBuf,
}

impl UpdatedBaseFixture {
    /// Builds it unless cached (the first time about a minute after the base fixture; needs
    /// root and the Debian mirror); runs the script at most once per process.
    pub fn ensure() -> Result<UpdatedBaseFixture> {
        static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        BUILT
            .get_or_init(|| build().map_err(|e| e.to_string()))
            .clone()
            .map(|layout| UpdatedBaseFixture { layout })
            .map_err(Error::Fixture)
    }

    /// The OCI image layout directory.
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }

    /// The skopeo reference of the image: `oci:DIR:updated`.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{UPDATED_TAG}", self.layout.display())
    }

    /// Pushes the image to `registry` as `repo_tag` with `skopeo copy --preserve-digests`.
    pub fn push_to(&self, registry: &Registry, repo_tag: &str) -> Result<()> {
        crate::fixture::skopeo_push(&self.oci_ref(), registry, repo_tag, false)
    }
}

fn build() -> Result<PathBuf> {
    crate::kinds::layout_from_script(Path::new(UPDATED_SCRIPT), &[])
}
