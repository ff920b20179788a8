//! Supply-chain attachments of a built image: an SBOM, SLSA provenance and a cosign signature.
//!
//! [`Builder::attach`] turns what the build knows into attachments of [`BuiltImage`]:
//!
//! - per platform, an SBOM ([`rbuild_sbom`], SPDX 2.3 or CycloneDX 1.6) listing every Python
//!   distribution of the plan (wheel file and sha256, origin: index, local file, find-links,
//!   built from an sdist, the project itself), the base image (name, digest) and the base's OS
//!   packages read from its package database through the whiteout-aware rootfs reader
//!   (cached in the store by base digest);
//! - per platform, an in-toto statement with SLSA v1 provenance ([`rbuild_attest::provenance`]):
//!   builder, base digest, lockfile digest, context (the app layer's diff_id) and the settings,
//!   without environment values, labels (either may hold secrets) or host paths;
//! - a cosign signature of the top manifest under `sha256-<hex>.sig`, when a key is given.
//!
//! The SBOM and provenance are OCI 1.1 artifacts whose `subject` is the platform manifest; sinks
//! push them by digest and maintain the referrers tag schema, and OCI layouts list them in
//! `index.json`. Everything is a function of the image and its inputs: the same image always has
//! byte-identical attachments.

use std::collections::BTreeMap;
use std::io;

use rbuild_attest::{
    ArtifactManifest, PROVENANCE_PREDICATE_TYPE, Provenance, ResolvedInput, STATEMENT_MEDIA_TYPE,
    SignatureManifest, SigningKey,
};
use rbuild_oci::{ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, Digest, Image};
use rbuild_python::rootfs::{Entry, EntryKind, Interest, Merged, Visitor, read_layers};
use rbuild_sbom::os::{OsFiles, Want, wanted};
use rbuild_sbom::{
    BaseImage, DistSource, FileRef, Format, Inventory, OsInventory, PythonDist, SdistRef,
};
use serde_json::{Value, json};

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::{BlobLocation, BuiltImage, LayerKind, PlatformImage};
use crate::layers::cache_key;
use crate::pipeline::BuildOutput;
use crate::request::{BaseRef, BuildRequest};

/// The annotation naming an in-toto attachment's predicate type.
pub const ANNOTATION_PREDICATE_TYPE: &str = "in-toto.io/predicate-type";

/// What to attach to a built image.
#[derive(Clone, Debug, Default)]
pub struct SupplyChain {
    /// The SBOM format (`None`: no SBOM).
    pub sbom: Option<Format>,
    /// Whether to attach SLSA provenance.
    pub provenance: bool,
    /// Sign the top manifest with this key for this `registry/repository`.
    pub sign: Option<(SigningKey, String)>,
}

impl SupplyChain {
    /// The blobs [`SupplyChain`] adds to each build's push beyond the image's own: the SBOM
    /// document, the provenance statement, the empty config they share, and a signature's layer
    /// and config ([`crate::Builder::set_attachment_blobs`] opens upload sessions for them).
    pub fn new_blobs(&self) -> usize {
        let documents = usize::from(self.sbom.is_some()) + usize::from(self.provenance);
        let empty_config = usize::from(documents > 0);
        let signature = if self.sign.is_some() { 2 } else { 0 };
        documents + empty_config + signature
    }
}

/// What an attachment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentKind {
    /// An SBOM.
    Sbom,
    /// An in-toto provenance statement.
    Provenance,
    /// A cosign signature manifest.
    Signature,
}

/// A manifest attached to a built image.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// What it is.
    pub kind: AttachmentKind,
    /// The attachment's manifest and config.
    pub image: Image,
    /// The tag it is pushed under besides its digest (a signature's `sha256-<hex>.sig`).
    pub tag: Option<String>,
    /// The manifest it is about.
    pub subject: Digest,
}

/// The store key kind of a base's OS package files.
const OS_FILES_KEY: &str = "os-package-files";

/// The rootfs visitor that keeps the package database files of a base.
struct OsVisitor;

/// What [`OsVisitor`] keeps.
enum OsNode {
    Text(String),
    Noted,
}

impl Visitor for OsVisitor {
    type Node = OsNode;

    fn interest(&mut self, entry: &Entry<'_>) -> Interest<OsNode> {
        if entry.kind != EntryKind::File {
            return Interest::Skip;
        }
        match wanted(entry.path) {
            Want::Read if entry.size <= 64 * 1024 * 1024 => Interest::Read,
            Want::Note => Interest::Keep(OsNode::Noted),
            _ => Interest::Skip,
        }
    }

    fn read(&mut self, _: &Entry<'_>, content: &mut dyn io::Read) -> io::Result<Option<OsNode>> {
        let mut text = String::new();
        content.read_to_string(&mut text).ok();
        Ok(Some(OsNode::Text(text)))
    }
}

fn sanitize_url(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = host.rsplit('@').next().unwrap_or(host);
            if path.is_empty() {
                format!("{scheme}://{host}")
            } else {
                format!("{scheme}://{host}/{path}")
            }
        }
        None => no_query.to_string(),
    }
}

/// A config label value, parsed.
fn label<'a>(p: &'a PlatformImage, key: &str) -> Option<&'a String> {
    p.config.config.as_ref()?.labels.as_ref()?.get(key)
}

/// `created` as SPDX wants it (`YYYY-MM-DDThh:mm:ssZ`).
fn created_of(p: &PlatformImage) -> String {
    let c = p.config.created.clone().unwrap_or_default();
    if c.len() >= 19 && c.is_char_boundary(19) && c.as_bytes()[10] == b'T' {
        format!("{}Z", &c[..19])
    } else {
        "1970-01-01T00:00:00Z".to_string()
    }
}

impl Builder {
    /// Adds the attachments `opts` asks for to `out.image` (see the module docs).
    pub async fn attach(
        &self,
        req: &BuildRequest,
        out: &mut BuildOutput,
        opts: &SupplyChain,
    ) -> Result<(), BuildError> {
        let meta = crate::pipeline::ProjectMeta::read(&req.context);
        let image_name = meta
            .as_ref()
            .map(|m| rbuild_python::normalize_name(&m.requires.name))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "app".to_string());
        let project = meta.as_ref().filter(|m| m.packaged).map(|m| {
            (
                rbuild_python::normalize_name(&m.requires.name),
                m.requires.version.clone(),
            )
        });
        let mut attachments = Vec::new();
        for p in &out.image.images {
            let plan = out
                .plans
                .iter()
                .find(|pl| pl.platform == p.platform.to_string());
            let subject = p.manifest.digest;
            let mut subject_desc = rbuild_oci::Descriptor::new(
                p.manifest.media_type.clone(),
                subject,
                p.manifest.bytes.len() as u64,
            );
            subject_desc.platform = None;
            let base = self.base_of(p);
            if let Some(format) = opts.sbom {
                let os = match &base {
                    Some(_) => self.os_inventory(p).await?,
                    None => OsInventory::None,
                };
                let inv = Inventory {
                    image_name: image_name.clone(),
                    image_digest: subject,
                    platform: p.platform.to_string(),
                    created: created_of(p),
                    tool_version: env!("CARGO_PKG_VERSION").to_string(),
                    base: base.clone(),
                    os,
                    python: python_dists(req, p, plan, project.as_ref()),
                };
                let doc = format.write(&inv);
                let a = ArtifactManifest::new(
                    format.media_type(),
                    format.media_type(),
                    doc,
                    subject_desc.clone(),
                    BTreeMap::new(),
                )
                .map_err(other)?;
                attachments.push(self.keep(AttachmentKind::Sbom, a, subject)?);
            }
            if opts.provenance {
                let prov = provenance(req, p, plan, &image_name, base.as_ref())?;
                let a = ArtifactManifest::new(
                    STATEMENT_MEDIA_TYPE,
                    STATEMENT_MEDIA_TYPE,
                    prov.to_bytes(),
                    subject_desc,
                    BTreeMap::from([(
                        ANNOTATION_PREDICATE_TYPE.to_string(),
                        PROVENANCE_PREDICATE_TYPE.to_string(),
                    )]),
                )
                .map_err(other)?;
                attachments.push(self.keep(AttachmentKind::Provenance, a, subject)?);
            }
        }
        if let Some((key, reference)) = &opts.sign {
            let top = out.image.digest();
            let s = SignatureManifest::sign(key, reference, &top);
            self.store.put_bytes(&s.payload)?;
            self.store.put_bytes(&s.config)?;
            self.store.put_bytes(&s.image.manifest().bytes)?;
            attachments.push(Attachment {
                kind: AttachmentKind::Signature,
                image: s.image,
                tag: Some(s.tag),
                subject: top,
            });
        }
        out.image.attachments = attachments;
        Ok(())
    }

    /// Keeps an artifact's blobs in the store (sinks read them there).
    pub(crate) fn keep(
        &self,
        kind: AttachmentKind,
        a: ArtifactManifest,
        subject: Digest,
    ) -> Result<Attachment, BuildError> {
        self.store.put_bytes(&a.blob)?;
        self.store.put_bytes(&a.config)?;
        self.store.put_bytes(&a.image.manifest().bytes)?;
        Ok(Attachment {
            kind,
            image: a.image,
            tag: None,
            subject,
        })
    }

    /// The base image of a platform image, from its manifest's base annotations.
    fn base_of(&self, p: &PlatformImage) -> Option<BaseImage> {
        let m = p.manifest.parse().ok()?;
        let (name, digest) = match m {
            rbuild_oci::ManifestKind::Image(m) => {
                let a = m.annotations?;
                (
                    a.get(ANNOTATION_BASE_NAME)?.clone(),
                    a.get(ANNOTATION_BASE_DIGEST)?.parse().ok()?,
                )
            }
            rbuild_oci::ManifestKind::Index(_) => return None,
        };
        Some(BaseImage { name, digest })
    }

    /// The base's OS packages: read once per base (its base layers, whiteouts applied), then
    /// kept in the store by base digest.
    pub(crate) async fn os_inventory(&self, p: &PlatformImage) -> Result<OsInventory, BuildError> {
        let base_layers: Vec<_> = p
            .layers
            .iter()
            .filter(|l| l.kind == LayerKind::Base)
            .collect();
        let ids: Vec<String> = base_layers
            .iter()
            .map(|l| l.descriptor.digest.to_string())
            .collect();
        let key = cache_key(OS_FILES_KEY, 1, &ids);
        if let Some(b) = self.store.get_key(OS_FILES_KEY, &key)?
            && let Ok(files) = serde_json::from_slice::<OsFiles>(&b)
        {
            return Ok(files.inventory());
        }
        for l in &base_layers {
            if let BlobLocation::Remote(r) = &l.location
                && !self.store.contains(&l.descriptor.digest)
            {
                self.client
                    .fetch_blobs(r, std::slice::from_ref(&l.descriptor), &self.store)
                    .await?;
            }
        }
        let store = self.store.clone();
        let descs: Vec<_> = base_layers.iter().map(|l| l.descriptor.clone()).collect();
        let files = tokio::task::spawn_blocking(move || {
            let mut view = Merged::new(OsVisitor);
            read_layers(
                descs.iter().map(|d| crate::rootfs::open_layer(&store, d)),
                &mut [&mut view],
            )
            .map_err(|e| {
                other(format!(
                    "reading the base's package database for the SBOM: {e}"
                ))
            })?;
            let mut files = OsFiles::default();
            for (path, node) in view.into_parts().1 {
                match node {
                    OsNode::Text(t) => {
                        files.files.insert(path, t);
                    }
                    OsNode::Noted => files.rpm_db = Some(path),
                }
            }
            Ok::<_, BuildError>(files)
        })
        .await
        .map_err(other)??;
        self.store.put_key(
            OS_FILES_KEY,
            &key,
            &serde_json::to_vec(&files).map_err(other)?,
        )?;
        Ok(files.inventory())
    }
}

/// Every Python distribution of one platform's image.
fn python_dists(
    req: &BuildRequest,
    p: &PlatformImage,
    plan: Option<&crate::PlatformPlan>,
    project: Option<&(String, String)>,
) -> Vec<PythonDist> {
    let mut out = Vec::new();
    let Some(plan) = plan else {
        return out;
    };
    for w in &plan.packages {
        let source = if w.origin == rbuild_lock::WheelOrigin::FindLinks {
            DistSource::FindLinks
        } else if let Some(path) = &w.path {
            let rel = path
                .strip_prefix(&req.context)
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| w.filename.clone());
            DistSource::LocalFile { path: rel }
        } else if let Some(url) = &w.url {
            DistSource::Index {
                url: sanitize_url(url),
            }
        } else {
            DistSource::Index {
                url: sanitize_url(w.index.as_deref().unwrap_or("https://pypi.org/simple")),
            }
        };
        out.push(PythonDist {
            name: w.name.clone(),
            version: w.version.clone(),
            wheel: w.sha256.map(|sha256| FileRef {
                filename: w.filename.clone(),
                sha256,
            }),
            source,
        });
    }
    // Wheels built from sdists: the file and hash recorded in the image's label.
    let built: Vec<Value> = label(p, crate::layers::deps::LABEL_SDISTS)
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    for s in &plan.sdists {
        let rec = built.iter().find(|b| {
            b["name"].as_str() == Some(s.name.as_str())
                && b["version"].as_str() == Some(s.version.as_str())
        });
        let wheel = rec.and_then(|b| {
            Some(FileRef {
                filename: b["wheel"].as_str()?.to_string(),
                sha256: b["wheel_sha256"].as_str()?.parse().ok()?,
            })
        });
        out.push(PythonDist {
            name: s.name.clone(),
            version: s.version.clone(),
            wheel,
            source: DistSource::Sdist {
                sdist: SdistRef {
                    filename: Some(s.filename.clone()),
                    sha256: s.sha256,
                },
            },
        });
    }
    if let Some((name, version)) = project
        && !out.iter().any(|d| &d.name == name)
    {
        out.push(PythonDist {
            name: name.clone(),
            version: version.clone(),
            wheel: None,
            source: DistSource::Project,
        });
    }
    out.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
    out
}

/// The provenance statement of one platform's image.
fn provenance(
    req: &BuildRequest,
    p: &PlatformImage,
    plan: Option<&crate::PlatformPlan>,
    image_name: &str,
    base: Option<&BaseImage>,
) -> Result<Provenance, BuildError> {
    let repo = env!("CARGO_PKG_REPOSITORY");
    let mut resolved = Vec::new();
    if let Some(b) = base {
        resolved.push(ResolvedInput {
            name: "base-image".into(),
            uri: Some(rbuild_sbom::oci_purl(&b.name, &b.digest)),
            digest: b.digest,
        });
    }
    if let Some(lock) = plan.and_then(|pl| pl.lockfile.as_ref()) {
        // The path the lock was read from: absolute, or relative to the working directory
        // like the context itself (never to the context: `rbuild build app` reads
        // `app/requirements.txt`).
        let path = lock;
        let bytes = std::fs::read(path).map_err(|e| {
            other(format!(
                "reading the lockfile {} for the provenance: {e}",
                path.display()
            ))
        })?;
        let name = path
            .strip_prefix(&req.context)
            .map(|r| r.display().to_string())
            .unwrap_or_else(|_| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
        resolved.push(ResolvedInput {
            name: format!("lockfile:{name}"),
            uri: None,
            digest: Digest::of(&bytes),
        });
    }
    if let Some(app) = p.layers.iter().find(|l| l.kind == LayerKind::App) {
        resolved.push(ResolvedInput {
            name: "context".into(),
            uri: None,
            digest: app.diff_id,
        });
    }
    let cfg = p.config.config.as_ref();
    let base_param = match &req.base {
        BaseRef::Scratch => "scratch".to_string(),
        BaseRef::Image(r) => r.to_string(),
    };
    let external = BTreeMap::from([
        ("base".to_string(), json!(base_param)),
        ("platform".to_string(), json!(p.platform.to_string())),
        ("appDir".to_string(), json!(req.app_dir)),
        ("compression".to_string(), json!(req.compression.as_str())),
        (
            "format".to_string(),
            json!(match req.format {
                crate::ImageFormat::Oci => "oci",
                crate::ImageFormat::Docker => "docker",
            }),
        ),
        ("compileBytecode".to_string(), json!(req.compile_bytecode)),
        (
            "entrypoint".to_string(),
            json!(cfg.and_then(|c| c.entrypoint.clone())),
        ),
        ("cmd".to_string(), json!(cfg.and_then(|c| c.cmd.clone()))),
        ("user".to_string(), json!(cfg.and_then(|c| c.user.clone()))),
        (
            "workingDir".to_string(),
            json!(cfg.and_then(|c| c.working_dir.clone())),
        ),
    ]);
    Ok(Provenance {
        builder_id: repo.to_string(),
        builder_version: env!("CARGO_PKG_VERSION").to_string(),
        build_type: format!("{repo}/build/v1"),
        subjects: vec![(image_name.to_string(), p.manifest.digest)],
        external_parameters: external,
        resolved,
    })
}

impl BuiltImage {
    /// The attachments of one kind.
    pub fn attachments_of(&self, kind: AttachmentKind) -> impl Iterator<Item = &Attachment> {
        self.attachments.iter().filter(move |a| a.kind == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_blobs_are_the_documents_and_their_shared_empty_config() {
        let none = SupplyChain::default();
        assert_eq!(none.new_blobs(), 0);
        let sbom = SupplyChain {
            sbom: Some(Format::Spdx),
            ..Default::default()
        };
        assert_eq!(sbom.new_blobs(), 2);
        let both = SupplyChain {
            provenance: true,
            ..sbom
        };
        assert_eq!(both.new_blobs(), 3);
    }
    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            sanitize_url("https://user:tok@files.example/p/x.whl?sig=abc#sha256=1"),
            "https://files.example/p/x.whl"
        );
        assert_eq!(
            sanitize_url("https://pypi.org/simple"),
            "https://pypi.org/simple"
        );
    }
}
