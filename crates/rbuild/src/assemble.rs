//! Image assembly: base config + rbuild's changes + the new layers → canonical config and manifest.
//!
//! Pure functions: the same inputs always give the same bytes.

use std::collections::BTreeMap;

use rbuild_oci::{
    ANNOTATION_BASE_DIGEST, ANNOTATION_BASE_NAME, ANNOTATION_CREATED, Descriptor, Digest, History,
    ImageConfig, Manifest, MediaType, canonical_json,
};
use serde_json::Value;

/// Which manifest and config media types to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImageFormat {
    /// OCI image manifest and config (the default).
    #[default]
    Oci,
    /// Docker schema 2, for registries or tools that need it.
    Docker,
}

/// What rbuild sets on top of the base config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageSpec {
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// Environment entries set in order (replacing the base's value of the same key).
    pub env: Vec<(String, String)>,
    /// `User` (`uid[:gid]`).
    pub user: Option<String>,
    /// `Entrypoint`; setting it clears the base's `Cmd` unless `cmd` is given too (Dockerfile semantics).
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// Exposed ports (`8000` or `8000/tcp`, `53/udp`).
    pub ports: Vec<String>,
    /// Labels added to the base's.
    pub labels: BTreeMap<String, String>,
    /// Manifest annotations.
    pub annotations: BTreeMap<String, String>,
    /// Docker `Healthcheck` value, kept in the config.
    pub healthcheck: Option<Value>,
    /// RFC 3339 creation time (from `SOURCE_DATE_EPOCH`).
    pub created: String,
}

/// A layer rbuild made, ready to reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLayer {
    /// Its descriptor (media type, digest, size, annotations).
    pub descriptor: Descriptor,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The history entry's `created_by`.
    pub created_by: String,
}

/// The base an image is built on.
#[derive(Clone, Debug)]
pub struct BaseImage {
    /// The reference it was pulled by (`None` for `scratch`).
    pub name: Option<String>,
    /// The platform manifest's digest (`None` for `scratch`).
    pub manifest_digest: Option<Digest>,
    /// Layer descriptors, base first.
    pub layers: Vec<Descriptor>,
    /// The base config.
    pub config: ImageConfig,
}

impl BaseImage {
    /// The empty base (`--base scratch`) for `os/arch[/variant]`.
    pub fn scratch(os: &str, arch: &str, variant: Option<&str>) -> Self {
        BaseImage {
            name: None,
            manifest_digest: None,
            layers: Vec::new(),
            config: ImageConfig {
                architecture: arch.to_string(),
                os: os.to_string(),
                variant: variant.map(str::to_string),
                ..ImageConfig::default()
            },
        }
    }
}

/// An assembled image: canonical config and manifest bytes.
#[derive(Clone, Debug)]
pub struct Assembled {
    /// The config.
    pub config: ImageConfig,
    /// Config bytes.
    pub config_bytes: Vec<u8>,
    /// The manifest.
    pub manifest: Manifest,
    /// Manifest bytes.
    pub manifest_bytes: Vec<u8>,
    /// Manifest digest.
    pub manifest_digest: Digest,
}

/// Errors from assembly.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// The config's diff_ids do not match its layers.
    #[error(
        "the base image's config lists {diff_ids} diff_ids but its manifest has {layers} layers; the base image is inconsistent"
    )]
    LayerCount {
        /// diff_ids in the config.
        diff_ids: usize,
        /// layers in the manifest.
        layers: usize,
    },
    /// A layer type Docker's format cannot express.
    #[error(
        "layer {0} is zstd-compressed, which Docker's image format cannot express; use --format oci or --compression gzip"
    )]
    ZstdInDocker(Digest),
    /// An invalid port.
    #[error("invalid port {0:?}: expected a number from 1 to 65535, optionally with /tcp or /udp")]
    Port(String),
}

pub(crate) fn convert_layer_type(
    mt: &MediaType,
    format: ImageFormat,
    digest: Digest,
) -> Result<MediaType, AssembleError> {
    let s = mt.as_str();
    Ok(MediaType::from(match format {
        ImageFormat::Oci => match s {
            MediaType::DOCKER_LAYER_GZIP => MediaType::OCI_LAYER_GZIP,
            _ => s,
        },
        ImageFormat::Docker => match s {
            MediaType::OCI_LAYER_GZIP => MediaType::DOCKER_LAYER_GZIP,
            MediaType::OCI_LAYER_ZSTD => return Err(AssembleError::ZstdInDocker(digest)),
            _ => s,
        },
    }))
}

/// Normalizes a port spec to `N/tcp` or `N/udp`.
pub fn normalize_port(p: &str) -> Result<String, AssembleError> {
    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let ok = num.parse::<u16>().is_ok_and(|n| n > 0) && matches!(proto, "tcp" | "udp" | "sctp");
    if !ok {
        return Err(AssembleError::Port(p.to_string()));
    }
    Ok(format!("{}/{proto}", num.parse::<u16>().expect("checked")))
}

/// Builds the new config and manifest.
pub fn assemble(
    base: &BaseImage,
    layers: &[NewLayer],
    spec: &ImageSpec,
    format: ImageFormat,
) -> Result<Assembled, AssembleError> {
    if base.config.rootfs.diff_ids.len() != base.layers.len() {
        return Err(AssembleError::LayerCount {
            diff_ids: base.config.rootfs.diff_ids.len(),
            layers: base.layers.len(),
        });
    }
    let mut config = base.config.clone();
    config.created = Some(spec.created.clone());
    let annotations = apply_spec(&mut config, base, spec)?;

    for l in layers {
        config.rootfs.diff_ids.push(l.diff_id);
        config.history.push(History {
            created: Some(spec.created.clone()),
            created_by: Some(l.created_by.clone()),
            comment: Some("rbuild".into()),
            ..History::default()
        });
    }
    let config_bytes = canonical_json(&config).expect("config serializes");
    let (manifest_type, config_type) = match format {
        ImageFormat::Oci => (MediaType::OCI_MANIFEST, MediaType::OCI_CONFIG),
        ImageFormat::Docker => (MediaType::DOCKER_MANIFEST, MediaType::DOCKER_CONFIG),
    };
    let mut manifest_layers = Vec::with_capacity(base.layers.len() + layers.len());
    for d in base
        .layers
        .iter()
        .chain(layers.iter().map(|l| &l.descriptor))
    {
        let mut d = d.clone();
        d.media_type = convert_layer_type(&d.media_type, format, d.digest)?;
        manifest_layers.push(d);
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MediaType::from(manifest_type)),
        artifact_type: None,
        config: Descriptor::new(
            config_type,
            Digest::of(&config_bytes),
            config_bytes.len() as u64,
        ),
        layers: manifest_layers,
        subject: None,
        annotations: (format == ImageFormat::Oci).then_some(annotations),
    };
    let manifest_bytes = canonical_json(&manifest).expect("manifest serializes");
    Ok(Assembled {
        manifest_digest: Digest::of(&manifest_bytes),
        config,
        config_bytes,
        manifest,
        manifest_bytes,
    })
}

/// Writes the spec's settings, labels and base annotations into `config`; returns the manifest
/// annotations.
fn apply_spec(
    config: &mut ImageConfig,
    base: &BaseImage,
    spec: &ImageSpec,
) -> Result<BTreeMap<String, String>, AssembleError> {
    let c = config.config_mut();
    if let Some(dir) = &spec.working_dir {
        c.working_dir = Some(dir.clone());
    }
    for (k, v) in &spec.env {
        c.set_env(k, v);
    }
    if let Some(user) = &spec.user {
        c.user = Some(user.clone());
    }
    if let Some(ep) = &spec.entrypoint {
        c.entrypoint = Some(ep.clone());
        c.cmd = None;
    }
    if let Some(cmd) = &spec.cmd {
        c.cmd = Some(cmd.clone());
    }
    for p in &spec.ports {
        c.exposed_ports
            .get_or_insert_with(BTreeMap::new)
            .insert(normalize_port(p)?, Value::Object(Default::default()));
    }
    if let Some(hc) = &spec.healthcheck {
        c.extra.insert("Healthcheck".into(), hc.clone());
    }
    let mut labels = c.labels.take().unwrap_or_default();
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CREATED.to_string(), spec.created.clone());
    if let Some(name) = &base.name {
        annotations.insert(ANNOTATION_BASE_NAME.to_string(), name.clone());
    }
    if let Some(d) = &base.manifest_digest {
        annotations.insert(ANNOTATION_BASE_DIGEST.to_string(), d.to_string());
    }
    labels.extend(annotations.clone());
    labels.extend(spec.labels.clone());
    annotations.extend(spec.annotations.clone());
    c.labels = Some(labels);
    Ok(annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BaseImage {
        let cfg = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"],"Cmd":["python3"],
            "Healthcheck":{"Test":["CMD","true"]},"Labels":{"maintainer":"x"}},
            "rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]},
            "history":[{"created_by":"base"}]}"#;
        BaseImage {
            name: Some("127.0.0.1:5000/library/python:3.11-slim".into()),
            manifest_digest: Some(Digest::of(b"base manifest")),
            layers: vec![Descriptor::new(
                MediaType::DOCKER_LAYER_GZIP,
                Digest::of(b"l0"),
                2,
            )],
            config: ImageConfig::from_slice(cfg.as_bytes()).unwrap(),
        }
    }

    fn layer(name: &str) -> NewLayer {
        NewLayer {
            descriptor: Descriptor::new(MediaType::OCI_LAYER_GZIP, Digest::of(name.as_bytes()), 10),
            diff_id: Digest::of(format!("{name} tar").as_bytes()),
            created_by: format!("rbuild: {name}"),
        }
    }

    #[test]
    fn keeps_the_base_and_applies_the_spec() {
        let spec = ImageSpec {
            working_dir: Some("/app".into()),
            env: vec![
                ("PYTHONUNBUFFERED".into(), "1".into()),
                ("PATH".into(), "/usr/local/bin:/usr/bin".into()),
            ],
            user: Some("1001:1001".into()),
            entrypoint: Some(vec!["python3".into(), "-m".into(), "app".into()]),
            ports: vec!["8000".into()],
            created: "1980-01-01T00:00:00Z".into(),
            ..ImageSpec::default()
        };
        let a = assemble(
            &base(),
            &[layer("deps"), layer("app")],
            &spec,
            ImageFormat::Oci,
        )
        .unwrap();
        let c = a.config.config.as_ref().unwrap();
        assert_eq!(c.cmd, None, "an entrypoint clears the base's Cmd");
        assert_eq!(
            c.env.as_ref().unwrap(),
            &vec![
                "PATH=/usr/local/bin:/usr/bin".to_string(),
                "PYTHONUNBUFFERED=1".into()
            ]
        );
        assert!(
            c.extra.contains_key("Healthcheck"),
            "unknown base fields are kept"
        );
        assert_eq!(c.labels.as_ref().unwrap()["maintainer"], "x");
        assert_eq!(
            c.labels.as_ref().unwrap()[ANNOTATION_BASE_DIGEST],
            Digest::of(b"base manifest").to_string()
        );
        assert!(c.exposed_ports.as_ref().unwrap().contains_key("8000/tcp"));
        assert_eq!(a.config.rootfs.diff_ids.len(), 3);
        assert_eq!(a.config.history.len(), 3);
        assert_eq!(
            a.manifest.layers[0].media_type,
            MediaType::OCI_LAYER_GZIP,
            "docker layer type converted"
        );
        assert_eq!(
            a.manifest.annotations.as_ref().unwrap()[ANNOTATION_BASE_NAME],
            "127.0.0.1:5000/library/python:3.11-slim"
        );
        assert_eq!(a.manifest.config.digest, Digest::of(&a.config_bytes));
        let again = assemble(
            &base(),
            &[layer("deps"), layer("app")],
            &spec,
            ImageFormat::Oci,
        )
        .unwrap();
        assert_eq!(
            again.manifest_bytes, a.manifest_bytes,
            "same inputs, same bytes"
        );
        let changed = assemble(
            &base(),
            &[layer("deps"), layer("app2")],
            &spec,
            ImageFormat::Oci,
        )
        .unwrap();
        assert_ne!(changed.manifest_digest, a.manifest_digest);
    }

    #[test]
    fn docker_format_and_errors() {
        let spec = ImageSpec {
            created: "1980-01-01T00:00:00Z".into(),
            ..ImageSpec::default()
        };
        let a = assemble(&base(), &[layer("app")], &spec, ImageFormat::Docker).unwrap();
        assert_eq!(
            a.manifest.media_type.as_ref().unwrap(),
            &MediaType::DOCKER_MANIFEST
        );
        assert_eq!(
            a.manifest.layers[1].media_type,
            MediaType::DOCKER_LAYER_GZIP
        );
        let mut z = layer("z");
        z.descriptor.media_type = MediaType::from(MediaType::OCI_LAYER_ZSTD);
        assert!(matches!(
            assemble(&base(), &[z], &spec, ImageFormat::Docker),
            Err(AssembleError::ZstdInDocker(_))
        ));
        assert!(normalize_port("http").is_err());
        assert!(normalize_port("0").is_err());
        assert_eq!(normalize_port("53/udp").unwrap(), "53/udp");
    }
}
