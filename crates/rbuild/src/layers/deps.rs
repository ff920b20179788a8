//! The dependency layer: every locked wheel installed without Python.

use std::path::PathBuf;
use std::time::Instant;

use rbuild_index::WheelRequest;
use rbuild_layer::{LayerOptions, LayerWriter};
use rbuild_lock::ChosenWheel;
use rbuild_oci::Digest;
use rbuild_python::target::Target;
use serde::Serialize;

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::LayerKind;
use crate::layers::LAYER_FORMAT_VERSION;
use crate::layers::{LayerBuilder, LayerRecord, cache_key};
use crate::progress::Warn;
use crate::progress::elapsed;
use crate::request::BuildRequest;
use crate::rootfs::BaseFacts;

/// The version of the dependency layer's key (its inputs: [`LAYER_FORMAT_VERSION`],
/// [`rbuild_wheel::FORMAT_VERSION`], the lock, the wheels, the target, the base, the options).
pub const DEPS_KEY_VERSION: u32 = 1;

pub(crate) fn wheel_request(w: &ChosenWheel) -> WheelRequest {
    // A file from a --find-links directory is copied from its path, not downloaded.
    let local = w
        .url
        .as_deref()
        .and_then(|u| u.strip_prefix("file://"))
        .map(PathBuf::from);
    WheelRequest {
        name: w.name.clone(),
        version: w.version.clone(),
        filename: w.filename.clone(),
        url: if local.is_some() { None } else { w.url.clone() },
        path: local.or_else(|| w.path.clone()),
        index: w.index.clone(),
        sha256: w.sha256,
        size: w.size,
    }
}

impl Builder {
    pub(crate) fn deps_key(
        req: &BuildRequest,
        lock_digest: &Digest,
        wheels: &[ChosenWheel],
        target: &Target,
        base_digest: Option<Digest>,
    ) -> String {
        #[derive(Serialize)]
        struct Inputs<'a> {
            layer_format: u32,
            wheel_format: u32,
            lock: String,
            wheels: Vec<(&'a str, &'a str, Option<String>)>,
            target: &'a Target,
            base: Option<String>,
            epoch: u64,
            compression: &'static str,
            strict: bool,
        }
        let inputs = Inputs {
            layer_format: LAYER_FORMAT_VERSION,
            wheel_format: rbuild_wheel::FORMAT_VERSION,
            lock: lock_digest.to_string(),
            wheels: wheels
                .iter()
                .map(|w| {
                    (
                        w.name.as_str(),
                        w.filename.as_str(),
                        w.sha256.map(|d| d.to_string()),
                    )
                })
                .collect(),
            target,
            base: base_digest.map(|d| d.to_string()),
            epoch: req.epoch,
            compression: req.compression.as_str(),
            strict: req.strict,
        };
        cache_key("deps", DEPS_KEY_VERSION, &inputs)
    }

    /// Downloads the wheels (verified, into the store) and says how many were fetched.
    async fn download_wheels(
        &self,
        wheels: &[ChosenWheel],
        platform: &str,
    ) -> Result<Vec<rbuild_index::DownloadedWheel>, BuildError> {
        let t0 = Instant::now();
        let requests: Vec<WheelRequest> = wheels.iter().map(wheel_request).collect();
        let downloaded = self
            .index
            .download_all(requests, &self.store, &Warn(self.progress.clone()))
            .await?;
        let fetched = downloaded.iter().filter(|d| d.fetched).count();
        let bytes: u64 = downloaded
            .iter()
            .filter(|d| d.fetched)
            .map(|d| d.size)
            .sum();
        self.progress.step(
            platform,
            "download",
            &format!(
                "{} ({} downloaded, {}; {} from the store)",
                crate::progress::count(downloaded.len(), "wheel", "wheels"),
                fetched,
                crate::progress::human_size(bytes),
                downloaded.len() - fetched
            ),
            elapsed(t0),
        );
        Ok(downloaded)
    }

    /// Downloads the wheels and installs them into a new layer in the store.
    pub(crate) async fn build_deps_layer(
        &self,
        layer: &DepsLayer,
    ) -> Result<LayerRecord, BuildError> {
        let downloaded = self.download_wheels(&layer.wheels, &layer.platform).await?;
        let t1 = Instant::now();
        let inputs: Vec<rbuild_wheel::WheelInput> = downloaded
            .iter()
            .map(|d| rbuild_wheel::WheelInput {
                path: d.path.clone(),
                filename: d.filename.clone(),
                expected_name: d.name.clone(),
                expected_version: d.version.clone(),
            })
            .collect();
        let (install_target, base_info) = install_target(&layer.target, &layer.facts);
        let opts = rbuild_wheel::InstallOptions {
            strict: layer.strict,
            ..Default::default()
        };
        let layer_opts = layer.options;
        let writer = self.store.writer()?;
        let _busy = crate::progress::busy(
            &*self.progress,
            crate::progress::Activity::Install,
            &layer.platform,
            "deps",
        );
        let (blob, info, report) = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let mut w = LayerWriter::new(writer, &layer_opts)?;
            w.auto_parents(false);
            let report =
                rbuild_wheel::install_wheels(&inputs, &install_target, &base_info, &opts, &mut w)?;
            let (blob, info) = w.finish()?;
            Ok((blob, info, report))
        })
        .await
        .map_err(other)??;
        for w in &report.warnings {
            self.progress.warning(&w.to_string());
        }
        let requires: Vec<StoredRequires> = report
            .distributions
            .iter()
            .map(|d| StoredRequires {
                name: d.core_metadata.name.clone(),
                version: d.core_metadata.version.clone(),
                requires_dist: d.core_metadata.requires_dist.clone(),
                provides_extra: d.core_metadata.provides_extra.clone(),
            })
            .collect();
        self.store.put_key(
            "deps-requires",
            &layer.key,
            &serde_json::to_vec(&requires).map_err(other)?,
        )?;
        let rec = self.finish_layer(Some(&layer.key), blob, &info)?;
        self.progress.step(
            &layer.platform,
            "deps",
            &format!(
                "installed {}, {}, {} → {} ({} {})",
                crate::progress::count(report.distributions.len(), "distribution", "distributions"),
                crate::progress::count(report.files as usize, "file", "files"),
                crate::progress::human_size(info.uncompressed_size),
                &rec.digest.to_string()[..19],
                crate::progress::human_size(rec.size),
                layer.options.compression.as_str()
            ),
            elapsed(t1),
        );
        Ok(rec)
    }
}

/// The installer's view of the target: where each part of a wheel goes, and what the base has.
fn install_target(
    target: &Target,
    facts: &BaseFacts,
) -> (rbuild_wheel::InstallTarget, rbuild_wheel::BaseInfo) {
    let install_target = rbuild_wheel::InstallTarget {
        interpreter: target.interpreter.clone(),
        purelib: target.scheme.purelib.clone(),
        platlib: target.scheme.platlib.clone(),
        scripts: target.scheme.scripts.clone(),
        headers: target.scheme.headers.clone(),
        data: target.scheme.data.clone(),
        python_version: (
            target.python_version.major as u8,
            target.python_version.minor as u8,
        ),
    };
    let installed = target
        .installed
        .iter()
        .map(|d| {
            let rel = d.dist_info_path.trim_start_matches('/').to_string();
            let site_dir = d
                .dist_info_path
                .rsplit_once('/')
                .map(|(p, _)| p.to_string())
                .unwrap_or_default();
            rbuild_wheel::BaseDist {
                name: d.name.clone(),
                version: d.version.clone(),
                dist_info: d.dist_info_path.clone(),
                record: facts
                    .records
                    .get(&rel)
                    .and_then(|r| rbuild_wheel::parse_record_paths(r.as_bytes()).ok()),
                site_dir,
            }
        })
        .collect();
    let base_info = rbuild_wheel::BaseInfo {
        dir_modes: facts.dir_modes.clone(),
        installed,
    };
    (install_target, base_info)
}

/// The dependency layer of one platform: the chosen wheels installed for the target.
pub(crate) struct DepsLayer {
    /// The cache key ([`Builder::deps_key`]).
    pub(crate) key: String,
    pub(crate) wheels: Vec<ChosenWheel>,
    pub(crate) target: Target,
    pub(crate) facts: BaseFacts,
    pub(crate) platform: String,
    pub(crate) strict: bool,
    pub(crate) options: LayerOptions,
}

impl LayerBuilder for DepsLayer {
    fn kind(&self) -> LayerKind {
        LayerKind::Deps
    }
    fn key(&self) -> Option<&str> {
        Some(&self.key)
    }
    async fn build(&self, builder: &Builder) -> Result<Option<LayerRecord>, BuildError> {
        builder.build_deps_layer(self).await.map(Some)
    }
}

/// What an installed distribution requires, kept in the store beside its dependency layer
/// (`deps-requires` keys) so a cached layer is checked like a built one.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredRequires {
    name: String,
    version: String,
    requires_dist: Vec<String>,
    provides_extra: Vec<String>,
}

impl Builder {
    /// Fails when a distribution of the dependency layer `key` requires something that neither
    /// the lock, the base image nor the project provides (for the target's markers), unless the
    /// request allows an incomplete lock (then a warning lists them). A layer found only in the
    /// previous image was checked when it was built: its key covers the lock and the target.
    pub(crate) fn check_lock_closure(
        &self,
        req: &BuildRequest,
        key: &str,
        lock: &rbuild_lock::Lock,
        target: &Target,
        project: Option<&str>,
    ) -> Result<(), BuildError> {
        use rbuild_python::closure::{
            Available, DistRequirements, IncompleteLock, MissingKind, Origin, check_closure,
        };
        let Some(bytes) = self.store.get_key("deps-requires", key)? else {
            return Ok(());
        };
        let Ok(stored) = serde_json::from_slice::<Vec<StoredRequires>>(&bytes) else {
            return Ok(());
        };
        let dists: Vec<DistRequirements> = stored
            .into_iter()
            .map(|s| DistRequirements {
                name: s.name,
                version: s.version,
                requires_dist: s.requires_dist,
                provides_extra: s.provides_extra,
            })
            .collect();
        let mut available = Available::new();
        available.insert_base(&target.installed);
        for p in &lock.packages {
            available.insert(&p.name, Some(&p.version), Origin::Lock);
        }
        if let Some(name) = project {
            available.insert(name, None, Origin::Project);
            available.request_extras(name, &req.resolve.extras);
        }
        let mut env = target.marker_env();
        for (k, v) in &req.marker_overrides {
            env = env.with_override(k, v).map_err(other)?;
        }
        let (fatal, notes): (Vec<_>, Vec<_>) = check_closure(&dists, &available, &env)
            .into_iter()
            .partition(|m| {
                matches!(
                    m.kind,
                    MissingKind::Missing | MissingKind::VersionConflict { .. }
                )
            });
        for m in notes {
            self.progress.warning(&format!("lock check: {m}"));
        }
        if fatal.is_empty() {
            return Ok(());
        }
        let error = IncompleteLock {
            missing: fatal,
            python: target.python_full_version.clone(),
        };
        if req.allow_incomplete_lock {
            self.progress.warning(&format!(
                "{error}\n(building anyway: --allow-incomplete-lock)"
            ));
            return Ok(());
        }
        Err(error.into())
    }
}
