//! The dependency layers: every locked wheel installed without Python, plus the wheels built
//! from hash-pinned sdists (packages with no fitting wheel) by the base image's own Python,
//! split into at most `--deps-layers` layers by [`partition`] (heavy wheels alone, the rest in
//! groups by name hash). Each layer is installed on its own with the whole base in view: a base
//! distribution is replaced (whited out) in the layer of the wheel that replaces it, parent
//! directories get the same modes in every layer, and bytecode is compiled per file, so the
//! merged filesystem is the one a single layer gives.
//!
//! A built wheel is kept in the store under an `sdist-wheel` key: the sdist's sha256, the target
//! Python version, the interpreter ([`rbuild_runner::Python::describe`]),
//! [`rbuild_pep517::BUILDER_VERSION`] and the target's tags. A warm build builds no sdist.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use rbuild_index::WheelRequest;
use rbuild_layer::{LayerOptions, LayerWriter};
use rbuild_lock::{ChosenWheel, SdistBuild};
use rbuild_oci::Digest;
use rbuild_python::target::Target;
use serde::Serialize;

use crate::BuildError;
use crate::Builder;
use crate::error::other;
use crate::image::LayerKind;
use crate::layers::LAYER_FORMAT_VERSION;
use crate::layers::bytecode::{Bytecode, SpoolSink, append_pycs, summary};
use crate::layers::{LayerBuilder, LayerRecord, cache_key};
use crate::pipeline::ProjectMeta;
use crate::progress::Warn;
use crate::progress::elapsed;
use crate::request::BuildRequest;
use crate::rootfs::BaseFacts;
use crate::runner::BasePython;

/// The version of the dependency layers' keys (their inputs: [`LAYER_FORMAT_VERSION`],
/// [`rbuild_wheel::FORMAT_VERSION`], the layer's wheels, the target, the base, the options).
/// 2: one key per dependency layer ([`partition`]), without the lockfile.
pub const DEPS_KEY_VERSION: u32 = 2;

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
    /// The cache key of one dependency layer: exactly its wheels (name, file, sha256) and sdists,
    /// the target, the base image (its directories and installed distributions shape the
    /// layer), the options and the format versions. Not the lockfile: a change to the lock that
    /// leaves a layer's wheels alone leaves its key alone.
    pub(crate) fn deps_key(
        req: &BuildRequest,
        wheels: &[ChosenWheel],
        sdists: &[SdistBuild],
        target: &Target,
        base_digest: Option<Digest>,
    ) -> String {
        #[derive(Serialize)]
        struct Inputs<'a> {
            layer_format: u32,
            wheel_format: u32,
            wheels: Vec<(&'a str, &'a str, Option<String>)>,
            target: &'a Target,
            base: Option<String>,
            epoch: u64,
            compression: &'static str,
            strict: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            bytecode: Option<u32>,
            /// Sdists built into wheels (name, file, sha256) and the builder; absent without
            /// sdists.
            #[serde(skip_serializing_if = "Vec::is_empty")]
            sdists: Vec<(&'a str, &'a str, String)>,
            #[serde(skip_serializing_if = "Option::is_none")]
            sdist_builder: Option<u32>,
        }
        let mut wheels: Vec<(&str, &str, Option<String>)> = wheels
            .iter()
            .map(|w| {
                (
                    w.name.as_str(),
                    w.filename.as_str(),
                    w.sha256.map(|d| d.to_string()),
                )
            })
            .collect();
        // The installer orders wheels by name itself: the lock's order does not matter.
        wheels.sort();
        let mut sdists: Vec<(&str, &str, String)> = sdists
            .iter()
            .map(|s| (s.name.as_str(), s.filename.as_str(), s.sha256.to_string()))
            .collect();
        sdists.sort();
        let inputs = Inputs {
            layer_format: LAYER_FORMAT_VERSION,
            wheel_format: rbuild_wheel::FORMAT_VERSION,
            wheels,
            target,
            base: base_digest.map(|d| d.to_string()),
            epoch: req.epoch,
            compression: req.compression.as_str(),
            strict: req.strict,
            bytecode: req
                .ships_bytecode()
                .then_some(rbuild_bytecode::FORMAT_VERSION),
            sdist_builder: (!sdists.is_empty()).then_some(rbuild_pep517::BUILDER_VERSION),
            sdists,
        };
        cache_key("deps", DEPS_KEY_VERSION, &inputs)
    }

    /// The dependency layers of one platform: its wheels and sdists split by [`partition`] under
    /// the request's budget, each with its cache key.
    pub(crate) fn deps_layers_plan(
        req: &BuildRequest,
        wheels: &[ChosenWheel],
        sdists: &[SdistBuild],
        target: &Target,
        base_digest: Option<Digest>,
    ) -> Vec<(String, DepsGroup)> {
        partition(wheels, sdists, req.deps_layers)
            .into_iter()
            .map(|g| {
                (
                    Self::deps_key(req, &g.wheels, &g.sdists, target, base_digest),
                    g,
                )
            })
            .collect()
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
        let mut inputs: Vec<rbuild_wheel::WheelInput> = downloaded
            .iter()
            .map(|d| rbuild_wheel::WheelInput {
                path: d.path.clone(),
                filename: d.filename.clone(),
                expected_name: d.name.clone(),
                expected_version: d.version.clone(),
            })
            .collect();
        let built = self.sdist_wheels(layer).await?;
        inputs.extend(built.iter().map(|(input, _)| input.clone()));
        let records: Vec<BuiltSdist> = built.into_iter().map(|(_, r)| r).collect();
        let t1 = Instant::now();
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
        let bytecode = layer.bytecode.clone();
        let site_dirs = vec![
            layer.target.scheme.purelib.clone(),
            layer.target.scheme.platlib.clone(),
        ];
        let (blob, info, report, compiled) =
            tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
                let mut w = LayerWriter::new(writer, &layer_opts)?;
                w.auto_parents(false);
                let install = |sink: &mut dyn rbuild_wheel::EntrySink| {
                    rbuild_wheel::install_wheels(&inputs, &install_target, &base_info, &opts, sink)
                };
                let (report, compiled) = match &bytecode {
                    None => (install(&mut w)?, None),
                    Some(bc) => {
                        let scratch = bc.scratch()?;
                        let mut spool =
                            SpoolSink::new(&mut w, site_dirs, scratch.path().join("spool"))
                                .map_err(other)?;
                        let report = install(&mut spool)?;
                        let (sources, dirs) = spool.finish();
                        let t = Instant::now();
                        let out = bc.compile(&scratch.path().join("compile"), &sources)?;
                        let owner_of = |p: &str, m: u32| rbuild_wheel::inherited(&base_info, p, m);
                        let bytes = append_pycs(&mut w, &out, &dirs, &owner_of, None)?;
                        (report, Some((summary(&out, bytes), elapsed(t))))
                    }
                };
                let (blob, info) = w.finish()?;
                Ok((blob, info, report, compiled))
            })
            .await
            .map_err(other)??;
        if let Some((line, seconds)) = compiled {
            self.progress
                .step(&layer.platform, "bytecode", &line, seconds);
        }
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
        if !records.is_empty() {
            self.store.put_key(
                "deps-sdists",
                &layer.key,
                &rbuild_oci::canonical_json(&records).map_err(other)?,
            )?;
        }
        let rec = self.finish_layer(Some(&layer.key), blob, &info)?;
        self.progress.step(
            &layer.platform,
            "deps",
            &format!(
                "{}installed {}, {}, {} → {} ({} {})",
                match &layer.part {
                    DepsPart::All => String::new(),
                    part => format!("{part}: "),
                },
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
pub(crate) fn install_target(
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
        dir_owners: facts.dir_owners.clone(),
        installed,
    };
    (install_target, base_info)
}

/// One dependency layer of one platform: its share of the chosen wheels installed for the
/// target.
pub(crate) struct DepsLayer {
    /// The cache key ([`Builder::deps_key`]).
    pub(crate) key: String,
    /// Which part of the dependencies it holds.
    pub(crate) part: DepsPart,
    pub(crate) wheels: Vec<ChosenWheel>,
    /// Sdists to build into wheels (with `python`) and install with the wheels.
    pub(crate) sdists: Vec<SdistBuild>,
    /// The base image's interpreter (`None` for a `scratch` base, which has no sdists).
    pub(crate) python: Option<Arc<BasePython>>,
    pub(crate) target: Target,
    pub(crate) facts: BaseFacts,
    pub(crate) platform: String,
    pub(crate) strict: bool,
    pub(crate) options: LayerOptions,
    /// Compiles the installed `.py` files into the same layer, when the build ships bytecode.
    pub(crate) bytecode: Option<Arc<Bytecode>>,
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
    /// Fails when a distribution of the dependency layers `keys` requires something that neither
    /// the lock, the base image nor the project provides (for the target's markers), unless the
    /// request allows an incomplete lock (then a warning lists them). The distributions of a
    /// layer found only in the previous image are not known here: they were checked against the
    /// lock of the build that made that image.
    pub(crate) fn check_lock_closure(
        &self,
        req: &BuildRequest,
        keys: &[&str],
        lock: &rbuild_lock::Lock,
        target: &Target,
        (root, locals): (Option<&ProjectMeta>, &[&ProjectMeta]),
    ) -> Result<(), BuildError> {
        let projects: Vec<&ProjectMeta> = root.into_iter().chain(locals.iter().copied()).collect();
        use rbuild_python::closure::{
            Available, DistRequirements, IncompleteLock, MissingKind, Origin, check_closure,
        };
        let mut stored = Vec::new();
        let mut found = false;
        for key in keys {
            if let Some(bytes) = self.store.get_key("deps-requires", key)?
                && let Ok(layer) = serde_json::from_slice::<Vec<StoredRequires>>(&bytes)
            {
                stored.extend(layer);
                found = true;
            }
        }
        // Every layer from the previous image: checked by the build that made it.
        if !found {
            return Ok(());
        }
        // The project's own requirements count too: the image runs the project.
        let dists: Vec<DistRequirements> = stored
            .into_iter()
            .map(|s| DistRequirements {
                name: s.name,
                version: s.version,
                requires_dist: s.requires_dist,
                provides_extra: s.provides_extra,
            })
            .chain(projects.iter().map(|p| p.requires.clone()))
            .collect();
        let mut available = Available::new();
        available.insert_base(&target.installed);
        for p in &lock.packages {
            available.insert(&p.name, Some(&p.version), Origin::Lock);
        }
        for p in projects {
            available.insert(&p.requires.name, None, Origin::Project);
        }
        // Extras asked for are the project's own.
        if let Some(p) = root {
            available.request_extras(&p.requires.name, &req.resolve.extras);
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

/// Config label listing the source distributions built into wheels for the image (canonical JSON
/// list of [`BuiltSdist`]: name, version, sdist sha256, wheel, wheel sha256, build requirements).
pub const LABEL_SDISTS: &str = "dev.rbuild.sdists";

/// The version of the `sdist-wheel` store keys.
const SDIST_WHEEL_KEY_VERSION: u32 = 1;

/// A source distribution built into a wheel (label [`LABEL_SDISTS`], store `deps-sdists` keys).
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub(crate) struct BuiltSdist {
    name: String,
    version: String,
    sdist_sha256: String,
    /// The wheel's file name (`None` when only the plan is known: a layer from a previous image
    /// without the label).
    #[serde(skip_serializing_if = "Option::is_none")]
    wheel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wheel_sha256: Option<String>,
    /// `name==version sha256:…` of every build requirement used.
    build_requirements: Vec<String>,
}

/// The store value of an `sdist-wheel` key: the built wheel and what built it.
#[derive(Serialize, serde::Deserialize)]
struct StoredSdistWheel {
    filename: String,
    sha256: String,
    build_requirements: Vec<String>,
}

fn sdist_request(s: &SdistBuild) -> WheelRequest {
    WheelRequest {
        name: s.name.clone(),
        version: s.version.clone(),
        filename: s.filename.clone(),
        url: s.url.clone(),
        path: s.path.clone(),
        index: s.index.clone(),
        sha256: Some(s.sha256),
        size: s.size,
    }
}

impl Builder {
    /// The `sdist-wheel` store key of a wheel built from `sdist` for `target` by `python`.
    fn sdist_wheel_key(sdist: &SdistBuild, target: &Target, python: &BasePython) -> String {
        use rbuild_runner::Python as _;
        cache_key(
            "sdist-wheel",
            SDIST_WHEEL_KEY_VERSION,
            &(
                sdist.sha256.to_string(),
                target.python_full_version.as_deref().unwrap_or_default(),
                target.python_version.to_string(),
                python.describe(),
                rbuild_pep517::BUILDER_VERSION,
                target.tags().to_strings(),
            ),
        )
    }

    /// The wheels of the layer's sdists: from the store when built before for the same target and
    /// builder, else downloaded (verified by sha256), built with the base's Python and stored.
    async fn sdist_wheels(
        &self,
        layer: &DepsLayer,
    ) -> Result<Vec<(rbuild_wheel::WheelInput, BuiltSdist)>, BuildError> {
        if layer.sdists.is_empty() {
            return Ok(Vec::new());
        }
        let python = layer.python.clone().ok_or_else(|| {
            other("source distributions need the base image's Python, and this base has none")
        })?;
        let mut out = Vec::new();
        let mut to_build = Vec::new();
        for s in &layer.sdists {
            let key = Self::sdist_wheel_key(s, &layer.target, &python);
            let stored = self
                .store
                .get_key("sdist-wheel", &key)?
                .and_then(|b| serde_json::from_slice::<StoredSdistWheel>(&b).ok())
                .and_then(|w| {
                    let d = Digest::parse(&w.sha256).ok()?;
                    self.store.contains(&d).then_some((w, d))
                });
            match stored {
                Some((w, d)) => out.push((s.clone(), w, d)),
                None => to_build.push((s.clone(), key)),
            }
        }
        if !out.is_empty() {
            self.progress.step(
                &layer.platform,
                "sdist",
                &format!(
                    "{} wheels built from sdists taken from the store ({}); no sdist built",
                    out.len(),
                    out.iter()
                        .map(|(s, _, _)| format!("{} {}", s.name, s.version))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                0.0,
            );
        }
        if !to_build.is_empty() {
            let requests = to_build.iter().map(|(s, _)| sdist_request(s)).collect();
            let downloaded = self
                .index
                .download_all(requests, &self.store, &Warn(self.progress.clone()))
                .await?;
            for ((s, key), d) in to_build.into_iter().zip(downloaded) {
                let t = Instant::now();
                let (w, digest, output) = self
                    .build_sdist(&s, &d.path, &layer.target, &python)
                    .await?;
                self.progress.info(&format!(
                    "build output of {} {}:\n{}",
                    s.name,
                    s.version,
                    output.trim_end()
                ));
                self.store
                    .put_key("sdist-wheel", &key, &serde_json::to_vec(&w).map_err(other)?)?;
                self.progress.step(
                    &layer.platform,
                    "sdist",
                    &format!(
                        "built {} from {} ({} build requirements)",
                        w.filename,
                        s.filename,
                        w.build_requirements.len()
                    ),
                    elapsed(t),
                );
                out.push((s, w, digest));
            }
        }
        Ok(out
            .into_iter()
            .map(|(s, w, d)| {
                let input = rbuild_wheel::WheelInput {
                    path: self.store.blob_path(&d),
                    filename: w.filename.clone(),
                    expected_name: s.name.clone(),
                    expected_version: s.version.clone(),
                };
                let rec = BuiltSdist {
                    name: s.name.clone(),
                    version: s.version.clone(),
                    sdist_sha256: s.sha256.to_string(),
                    wheel: Some(w.filename),
                    wheel_sha256: Some(w.sha256),
                    build_requirements: w.build_requirements,
                };
                (input, rec)
            })
            .collect())
    }

    /// Builds one sdist (in a blocking thread, in a scratch directory under the store's `tmp/`)
    /// and puts the wheel into the store.
    async fn build_sdist(
        &self,
        s: &SdistBuild,
        sdist_path: &std::path::Path,
        target: &Target,
        python: &Arc<BasePython>,
    ) -> Result<(StoredSdistWheel, Digest, String), BuildError> {
        let (store, index, python) = (self.store.clone(), self.index.clone(), python.clone());
        let sdist_path = sdist_path.to_path_buf();
        // The blob has no file name; the frontend reads name and version from it.
        let filename = s.filename.clone();
        let build_target = rbuild_pep517::BuildTarget {
            markers: target.marker_env(),
            tags: target.tags(),
        };
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let tmp = store.root().join("tmp");
            std::fs::create_dir_all(&tmp).map_err(other)?;
            let scratch = tempfile::Builder::new()
                .prefix("sdist-")
                .tempdir_in(&tmp)
                .map_err(other)?;
            let named = scratch.path().join(&filename);
            std::fs::copy(&sdist_path, &named).map_err(other)?;
            let work = scratch.path().join("build");
            std::fs::create_dir_all(&work).map_err(other)?;
            let env = rbuild_pep517::IndexBuildEnv::new(&index, &store, handle);
            let built = rbuild_pep517::build_wheel(
                python.as_ref(),
                &named,
                &work,
                &env,
                &build_target,
                &rbuild_pep517::BuildOptions::default(),
            )?;
            let f = std::fs::File::open(&built.path).map_err(other)?;
            let (digest, _) = Digest::of_reader(f).map_err(other)?;
            let f = std::fs::File::open(&built.path).map_err(other)?;
            store.put_verified(f, &digest, None)?;
            let stored = StoredSdistWheel {
                filename: built.filename,
                sha256: digest.to_string(),
                build_requirements: built
                    .build_requirements
                    .iter()
                    .map(|r| format!("{}=={} sha256:{}", r.name, r.version, r.sha256))
                    .collect(),
            };
            Ok((stored, digest, built.output))
        })
        .await
        .map_err(other)?
    }

    /// The [`LABEL_SDISTS`] value for the dependency layers `(key, sdists)` of one platform: the
    /// records of every layer with sdists, as stored when it was built (store `deps-sdists`),
    /// sorted by name; else the previous image's label; else the plan alone.
    pub(crate) fn sdist_label(
        &self,
        layers: &[(&str, &[SdistBuild])],
        prev_label: Option<&String>,
    ) -> Result<Option<String>, BuildError> {
        let with_sdists: Vec<&(&str, &[SdistBuild])> =
            layers.iter().filter(|(_, s)| !s.is_empty()).collect();
        if with_sdists.is_empty() {
            return Ok(None);
        }
        let mut stored: Vec<BuiltSdist> = Vec::new();
        let mut all_stored = true;
        for (key, _) in &with_sdists {
            match self
                .store
                .get_key("deps-sdists", key)?
                .and_then(|b| serde_json::from_slice::<Vec<BuiltSdist>>(&b).ok())
            {
                Some(records) => stored.extend(records),
                None => all_stored = false,
            }
        }
        if !all_stored {
            if let Some(l) = prev_label {
                return Ok(Some(l.clone()));
            }
            stored = with_sdists
                .iter()
                .flat_map(|(_, sdists)| sdists.iter())
                .map(|s| BuiltSdist {
                    name: s.name.clone(),
                    version: s.version.clone(),
                    sdist_sha256: s.sha256.to_string(),
                    wheel: None,
                    wheel_sha256: None,
                    build_requirements: Vec::new(),
                })
                .collect();
        }
        stored.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        let json = rbuild_oci::canonical_json(&stored).map_err(other)?;
        Ok(Some(String::from_utf8(json).map_err(other)?))
    }
}

/// The default budget of dependency layers per image ([`partition`]): far below containerd's
/// limit of 127 layers per image, leaving room for the base image's layers.
pub const DEFAULT_DEPS_LAYERS: usize = 8;

/// The most dependency layers a build may ask for (`--deps-layers`).
pub const MAX_DEPS_LAYERS: usize = 64;

/// A wheel at least this large (bytes, as the lock or the index records its size) is *heavy*:
/// it gets a dependency layer of its own while the budget allows ([`partition`]).
pub const HEAVY_WHEEL_BYTES: u64 = 1 << 20;

/// Which part of the dependencies a dependency layer holds ([`partition`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DepsPart {
    /// Every dependency (a budget of one layer).
    All,
    /// One heavy distribution alone (its normalized name).
    Heavy {
        /// The normalized name.
        name: String,
    },
    /// The distributions whose name hashes to group `index` of `of`.
    Group {
        /// The group (0-based).
        index: usize,
        /// How many groups there are.
        of: usize,
    },
}

impl std::fmt::Display for DepsPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DepsPart::All => f.write_str("all dependencies"),
            DepsPart::Heavy { name } => write!(f, "{name}"),
            DepsPart::Group { index, of } => write!(f, "group {}/{of}", index + 1),
        }
    }
}

/// One dependency layer's share of a platform's wheels and sdists ([`partition`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DepsGroup {
    /// Which part it is.
    pub part: DepsPart,
    /// Its wheels, in the plan's order.
    pub wheels: Vec<ChosenWheel>,
    /// Its sdists (built into wheels), in the plan's order.
    pub sdists: Vec<SdistBuild>,
}

/// How many name-hash groups a budget of `budget` dependency layers has: one for a budget up to
/// 7, then one more for every 4 layers (8 → 2, 16 → 4).
pub fn group_count(budget: usize) -> usize {
    (budget / 4).max(1)
}

/// The group (of `groups`) a distribution falls in: the first 8 bytes of the sha256 of its
/// normalized name, big-endian, modulo `groups`. Depends on nothing but the name, so a
/// distribution stays in its group whatever else the lock holds.
pub fn name_group(name: &str, groups: usize) -> usize {
    let d = Digest::of(rbuild_python::normalize_name(name).as_bytes());
    let prefix = u64::from_str_radix(&d.hex()[..16], 16).expect("a sha256 hex digest");
    (prefix % groups.max(1) as u64) as usize
}

/// Splits one platform's wheels and sdists into at most `budget` dependency layers, by a rule
/// that depends only on each distribution's name and recorded wheel size:
///
/// - a budget of 1 (or less), or nothing to install: one layer with everything
///   ([`DepsPart::All`]);
/// - otherwise there are `G` = [`group_count`]`(budget)` groups and `budget - G` slots for heavy
///   wheels: the wheels of at least [`HEAVY_WHEEL_BYTES`] (size known from the lock or the
///   index), largest first (ties by name), each get a layer of their own until the slots run out;
/// - every other wheel, every wheel of unknown size and every sdist (its wheel's size is not
///   known before it is built) goes to group [`name_group`]`(name, G)`.
///
/// Layers come heavy first (largest first), then the groups in order; empty groups are left
/// out. Adding, removing or bumping one small distribution thus changes one group's layer and
/// leaves the heavy layers alone.
pub fn partition(wheels: &[ChosenWheel], sdists: &[SdistBuild], budget: usize) -> Vec<DepsGroup> {
    if budget <= 1 || (wheels.is_empty() && sdists.is_empty()) {
        return vec![DepsGroup {
            part: DepsPart::All,
            wheels: wheels.to_vec(),
            sdists: sdists.to_vec(),
        }];
    }
    let norm = |n: &str| rbuild_python::normalize_name(n);
    let groups = group_count(budget);
    let slots = budget - groups;
    let mut heavy: Vec<&ChosenWheel> = wheels
        .iter()
        .filter(|w| w.size.is_some_and(|s| s >= HEAVY_WHEEL_BYTES))
        .collect();
    heavy.sort_by(|a, b| {
        b.size
            .cmp(&a.size)
            .then_with(|| norm(&a.name).cmp(&norm(&b.name)))
    });
    heavy.truncate(slots);
    let solo: std::collections::BTreeSet<String> = heavy.iter().map(|w| norm(&w.name)).collect();
    let mut out: Vec<DepsGroup> = heavy
        .iter()
        .map(|w| DepsGroup {
            part: DepsPart::Heavy {
                name: norm(&w.name),
            },
            wheels: vec![(*w).clone()],
            sdists: Vec::new(),
        })
        .collect();
    let mut shared: Vec<DepsGroup> = (0..groups)
        .map(|index| DepsGroup {
            part: DepsPart::Group { index, of: groups },
            wheels: Vec::new(),
            sdists: Vec::new(),
        })
        .collect();
    for w in wheels {
        if !solo.contains(&norm(&w.name)) {
            shared[name_group(&w.name, groups)].wheels.push(w.clone());
        }
    }
    for s in sdists {
        shared[name_group(&s.name, groups)].sdists.push(s.clone());
    }
    out.extend(
        shared
            .into_iter()
            .filter(|g| !g.wheels.is_empty() || !g.sdists.is_empty()),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wheel(name: &str, size: Option<u64>) -> ChosenWheel {
        ChosenWheel {
            name: name.into(),
            version: "1.0".into(),
            filename: format!("{name}-1.0-py3-none-any.whl"),
            url: None,
            path: None,
            index: None,
            sha256: Some(Digest::of(name.as_bytes())),
            size,
            tag: "py3-none-any".into(),
            rank: 0,
            origin: Default::default(),
        }
    }

    const MB: u64 = 1 << 20;

    fn heavy_set() -> Vec<ChosenWheel> {
        vec![
            wheel("numpy", Some(16 * MB)),
            wheel("pandas", Some(12 * MB)),
            wheel("python-dateutil", Some(229_000)),
            wheel("pytz", Some(509_000)),
            wheel("scipy", Some(35 * MB)),
            wheel("six", Some(11_000)),
            wheel("tzdata", Some(347_000)),
        ]
    }

    fn names(g: &DepsGroup) -> Vec<&str> {
        g.wheels.iter().map(|w| w.name.as_str()).collect()
    }

    #[test]
    fn heavy_wheels_get_their_own_layers_largest_first_and_the_rest_share_groups() {
        let parts = partition(&heavy_set(), &[], 8);
        let heavy: Vec<&DepsPart> = parts.iter().map(|g| &g.part).take(3).collect();
        assert_eq!(
            heavy,
            ["scipy", "numpy", "pandas"]
                .map(|n| DepsPart::Heavy { name: n.into() })
                .iter()
                .collect::<Vec<_>>()
        );
        assert!(parts.len() <= 8);
        let grouped: Vec<&str> = parts[3..].iter().flat_map(names).collect();
        assert_eq!(grouped.len(), 4);
        for g in &parts[3..] {
            let DepsPart::Group { index, of } = g.part else {
                panic!("expected a group, got {:?}", g.part)
            };
            assert_eq!(of, 2);
            for w in &g.wheels {
                assert_eq!(name_group(&w.name, 2), index);
            }
        }
    }

    #[test]
    fn adding_a_small_pin_changes_one_group_only() {
        let before = partition(&heavy_set(), &[], 8);
        let mut wheels = heavy_set();
        wheels.push(wheel("idna", Some(70_000)));
        let after = partition(&wheels, &[], 8);
        let changed: Vec<&DepsGroup> = after.iter().filter(|g| !before.contains(g)).collect();
        assert_eq!(changed.len(), 1, "{after:?}");
        assert!(names(changed[0]).contains(&"idna"));
        assert!(matches!(changed[0].part, DepsPart::Group { .. }));
        // Every heavy layer is the same.
        for g in before
            .iter()
            .filter(|g| matches!(g.part, DepsPart::Heavy { .. }))
        {
            assert!(after.contains(g));
        }
    }

    #[test]
    fn the_budget_bounds_the_layers_and_one_means_everything_together() {
        let wheels: Vec<ChosenWheel> = (0..40)
            .map(|i| wheel(&format!("pkg{i}"), Some((i + 1) * MB)))
            .collect();
        for budget in [2, 3, 8, 16, 64] {
            let parts = partition(&wheels, &[], budget);
            assert!(parts.len() <= budget, "{budget}: {}", parts.len());
            let total: usize = parts.iter().map(|g| g.wheels.len()).sum();
            assert_eq!(total, 40);
        }
        let one = partition(&wheels, &[], 1);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].part, DepsPart::All);
        assert_eq!(one[0].wheels, wheels);
        // Nothing to install: still one (empty) layer, as before.
        assert_eq!(partition(&[], &[], 8).len(), 1);
    }

    #[test]
    fn unknown_sizes_and_sdists_go_to_groups_by_name() {
        let sdist = SdistBuild {
            name: "docopt".into(),
            version: "0.6.2".into(),
            filename: "docopt-0.6.2.tar.gz".into(),
            url: None,
            path: None,
            index: None,
            sha256: Digest::of(b"docopt"),
            size: Some(50 * MB),
        };
        let parts = partition(&[wheel("big", None)], std::slice::from_ref(&sdist), 8);
        assert!(
            parts
                .iter()
                .all(|g| matches!(g.part, DepsPart::Group { .. }))
        );
        let with_sdist = parts.iter().find(|g| !g.sdists.is_empty()).unwrap();
        assert_eq!(
            with_sdist.part,
            DepsPart::Group {
                index: name_group("docopt", 2),
                of: 2
            }
        );
    }

    #[test]
    fn the_name_group_is_stable_and_normalized() {
        // Fixed values: changing the rule moves layers and must bump the key version.
        assert_eq!(
            name_group("Python_Dateutil", 4),
            name_group("python-dateutil", 4)
        );
        let spread: std::collections::BTreeSet<usize> =
            (0..64).map(|i| name_group(&format!("p{i}"), 4)).collect();
        assert_eq!(spread.len(), 4);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(7), 1);
        assert_eq!(group_count(8), 2);
        assert_eq!(group_count(16), 4);
    }
}
