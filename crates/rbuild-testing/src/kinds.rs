//! The "kinds" of Python base image users bring (issue 17), each built from Debian packages by
//! `tests/fixtures/kinds/build-kind.sh KIND` and cached like the base fixture.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::process::run;
use crate::registry::Registry;

/// The build script, at its place in the workspace.
pub const KIND_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/kinds/build-kind.sh"
);

/// A kind of base image (all `linux/amd64`, one layer; see the script's header for details).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Red Hat UBI / OpenShift S2I-like: a venv at `/opt/app-root` owned `1001:0` and
    /// group-writable, `User "1001"` (primary group 0), `WorkingDir /opt/app-root/src`,
    /// `HOME=/opt/app-root/src`, `VIRTUAL_ENV`, the venv's `bin` first on `PATH`.
    S2i,
    /// Debian python3 with no `/bin/sh`, bash, dash or coreutils (like distroless or a chiselled
    /// rock); `Cmd ["/usr/bin/python3"]`, runs as root.
    Shellless,
    /// Debian python3 without `/usr/lib/python3/dist-packages`.
    Trimmed,
    /// Docker Hub's layout: CPython 3.11 under `/usr/local` with `site-packages` (Debian's
    /// interpreter relocated, not built from source).
    Local,
    /// Debian trixie: Python 3.13, glibc 2.41.
    Trixie,
}

impl Kind {
    /// The script's argument and the tag in the layout.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::S2i => "s2i",
            Kind::Shellless => "shellless",
            Kind::Trimmed => "trimmed",
            Kind::Local => "local",
            Kind::Trixie => "trixie",
        }
    }
}

/// One built kind: an OCI image layout with the image tagged [`Kind::as_str`].
#[derive(Debug, Clone)]
pub struct KindFixture {
    kind: Kind,
    layout: PathBuf,
}

impl KindFixture {
    /// Builds the kind unless it is cached (the first kind of a suite runs mmdebstrap, about 45 s
    /// for bookworm and 2–3 min for trixie; then a few seconds each; needs root and network), and
    /// returns it. Runs the script at most once per kind and process.
    pub fn ensure(kind: Kind) -> Result<KindFixture> {
        static BUILT: OnceLock<Mutex<BTreeMap<Kind, Result<PathBuf, String>>>> = OnceLock::new();
        let mut built = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let entry = built
            .entry(kind)
            .or_insert_with(|| build(kind).map_err(|e| e.to_string()));
        entry
            .clone()
            .map(|layout| KindFixture { kind, layout })
            .map_err(Error::Fixture)
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The OCI image layout directory.
    pub fn layout_dir(&self) -> &Path {
        &self.layout
    }

    /// The skopeo reference of the image: `oci:DIR:KIND`.
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.kind.as_str())
    }

    /// Pushes the image to `registry` as `repo_tag` with `skopeo copy --preserve-digests`.
    pub fn push_to(&self, registry: &Registry, repo_tag: &str) -> Result<()> {
        crate::fixture::skopeo_push(&self.oci_ref(), registry, repo_tag, false)
    }
}

fn build(kind: Kind) -> Result<PathBuf> {
    layout_from_script(Path::new(KIND_SCRIPT), &[kind.as_str()])
}

/// Runs a fixture script (`bash SCRIPT ARGS…`) and returns the OCI layout it names on its last
/// `FIXTURE_DIR=` line, checked to hold an `index.json`.
pub(crate) fn layout_from_script(script: &Path, args: &[&str]) -> Result<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(script).args(args);
    let shown = std::iter::once(format!("bash {}", script.display()))
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let out = run(cmd, "bash", &shown)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let layout = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("FIXTURE_DIR="))
        .map(PathBuf::from)
        .ok_or_else(|| {
            Error::Fixture(format!(
                "{shown} printed no FIXTURE_DIR= line; its stdout was:\n{stdout}"
            ))
        })?;
    if !layout.join("index.json").is_file() {
        return Err(Error::Fixture(format!(
            "{} has no index.json; delete it and run {shown} again",
            layout.display()
        )));
    }
    Ok(layout)
}
