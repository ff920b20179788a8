//! The wheels: the lockfile read for the target, the index's file listings (kept in the store for
//! hash-pinned packages), and one wheel chosen per locked package.

use std::path::Path;

use rbuild_lock::{ChosenWheel, Lock, LockedFile, SdistBuild};
use rbuild_oci::{Digest, Store};
use rbuild_python::target::Target;
use serde::{Deserialize, Serialize};

use crate::BuildError;
use crate::Builder;
use crate::MissingWheel;
use crate::error::other;
use crate::layers::cache_key;
use crate::plan::record::RecordedWheels;
use crate::request::BuildRequest;
use std::collections::BTreeMap;

/// The wheels chosen for one target ([`Builder::plan_wheels_with`]).
pub(crate) struct WheelPlan {
    /// `None`: no lockfile.
    pub(crate) lock: Option<Lock>,
    /// The sha256 of the lockfile's bytes.
    pub(crate) lock_digest: Option<Digest>,
    pub(crate) chosen: Vec<ChosenWheel>,
    /// Packages with no fitting wheel whose hash-pinned sdist is built instead.
    pub(crate) sdists: Vec<SdistBuild>,
    pub(crate) missing: Vec<MissingWheel>,
    /// The key the choice is recorded under ([`LABEL_WHEELS`]); `None` when it could change
    /// without the lock changing (a package without hashes, find-links).
    pub(crate) plan_key: Option<String>,
    /// The choice was taken from the previous image's record.
    pub(crate) from_record: bool,
}

/// A lockfile read for a target ([`Builder::read_lock_for`]).
#[derive(Clone)]
pub(crate) struct LockRead {
    pub(crate) lock: Lock,
    /// The sha256 of the lockfile's bytes.
    pub(crate) digest: Digest,
    /// Per package: its files as the store keeps them (`None`: ask the index), and the store key.
    stored: Vec<(Option<rbuild_lock::LockedPackage>, Option<String>)>,
    tags: rbuild_python::tags::Tags,
    /// The key the choice is recorded under ([`crate::plan::record::LABEL_WHEELS`]); `None` when
    /// it could change without the lock changing (a package without hashes, find-links).
    pub(crate) plan_key: Option<String>,
}

impl WheelPlan {
    pub(crate) fn none() -> Self {
        WheelPlan {
            lock: None,
            lock_digest: None,
            chosen: Vec::new(),
            sdists: Vec::new(),
            missing: Vec::new(),
            plan_key: None,
            from_record: false,
        }
    }
}

/// A file of an index listing, as kept in the store (`index-files` keys).
#[derive(Serialize, Deserialize)]
pub(crate) struct CachedFile {
    pub(crate) filename: String,
    pub(crate) wheel: bool,
    pub(crate) url: Option<String>,
    pub(crate) sha256: Option<Digest>,
    pub(crate) size: Option<u64>,
}

/// The store key of the index's answer for a package pinned by hashes (none for a package
/// without hashes, or when `--find-links` directories take part).
pub(crate) fn listing_key(
    indexes: &[String],
    find_links: bool,
    pkg: &rbuild_lock::LockedPackage,
) -> Option<String> {
    (!pkg.hashes.is_empty() && !find_links).then(|| {
        let mut hashes: Vec<String> = pkg.hashes.iter().map(|h| h.to_string()).collect();
        hashes.sort();
        cache_key(
            "index-files",
            2,
            &(
                indexes,
                pkg.source.index_url(),
                &pkg.name,
                &pkg.version,
                hashes,
            ),
        )
    })
}

/// The package with its files when the lock lists them or the store keeps the index's answer
/// under `key` ([`listing_key`]); `None` when the index must be asked.
pub(crate) fn stored_listing(
    store: &Store,
    key: Option<&str>,
    pkg: &rbuild_lock::LockedPackage,
) -> Result<Option<rbuild_lock::LockedPackage>, BuildError> {
    if pkg.files_listed {
        return Ok(Some(pkg.clone()));
    }
    let Some(key) = key else {
        return Ok(None);
    };
    let Some(bytes) = store.get_key("index-files", key)? else {
        return Ok(None);
    };
    let Ok(files) = serde_json::from_slice::<Vec<CachedFile>>(&bytes) else {
        return Ok(None);
    };
    let files = files
        .into_iter()
        .map(|c| LockedFile {
            kind: if c.wheel {
                rbuild_lock::FileKind::Wheel
            } else {
                rbuild_lock::FileKind::Sdist
            },
            filename: c.filename,
            url: c.url,
            path: None,
            sha256: c.sha256,
            size: c.size,
        })
        .collect();
    Ok(Some(pkg.with_index_files(files)))
}

/// A package whose sdist would have to be built, as a package without a wheel: for callers that
/// take only wheels, and for a base without an interpreter (`has_python: false`).
pub(crate) fn sdist_as_missing(s: &SdistBuild, has_python: bool) -> MissingWheel {
    let why = if has_python {
        "this call installs wheels only (a build builds it with the base image's Python)"
    } else {
        "rbuild builds source distributions with the base image's own Python, and this base has none"
    };
    MissingWheel {
        name: s.name.clone(),
        version: s.version.clone(),
        reason: format!(
            "{} {} has no wheel for the target, only the source distribution {}; {why}: use a base \
             image with Python, or build the wheel for the target yourself (e.g. `pip wheel --no-deps \
             {}=={} -w wheels/` in a matching image) and pass --find-links wheels/",
            s.name, s.version, s.filename, s.name, s.version
        ),
    }
}

pub(crate) fn sha256_file(path: &Path) -> Result<Digest, BuildError> {
    let f = std::fs::File::open(path)
        .map_err(|e| other(format!("cannot read {}: {e}", path.display())))?;
    Ok(Digest::of_reader(f)
        .map_err(|e| other(format!("cannot read {}: {e}", path.display())))?
        .0)
}

/// [`rbuild_lock::Error::HashMismatch`] when `pkg` is pinned by hashes (a requirements file) and
/// the index serves files for its version but none with one of those hashes: the lock and the
/// index disagree, which "no wheel fits the target" would misreport.
///
/// A `--find-links` directory (`file://` files) is the user's own trust anchor: its wheel may
/// stand in for a hash-pinned package, so when one takes part there is no mismatch; only files
/// served by an index can contradict the lock.
pub(crate) fn hash_mismatch(
    pkg: &rbuild_lock::LockedPackage,
    served: &[LockedFile],
) -> Option<rbuild_lock::Error> {
    let from_find_links = served
        .iter()
        .any(|f| f.url.as_deref().is_some_and(|u| u.starts_with("file://")));
    if pkg.files_listed
        || pkg.hashes.is_empty()
        || served.is_empty()
        || from_find_links
        || served
            .iter()
            .any(|f| pkg.allows(&f.filename, f.sha256.as_ref()))
    {
        return None;
    }
    let mut served: Vec<String> = served
        .iter()
        .map(|f| match &f.sha256 {
            Some(d) => format!("{} ({d})", f.filename),
            None => format!("{} (no sha256 given)", f.filename),
        })
        .collect();
    served.sort();
    let more = served.len().saturating_sub(12);
    served.truncate(12);
    let mut served = served.join(", ");
    if more > 0 {
        served.push_str(&format!(", and {more} more"));
    }
    let hashes = pkg
        .hashes
        .iter()
        .map(|h| format!("--hash={h}"))
        .collect::<Vec<_>>()
        .join(" ");
    Some(rbuild_lock::Error::HashMismatch {
        location: pkg
            .location
            .clone()
            .unwrap_or_else(|| rbuild_lock::Location::file("the requirements file")),
        pin: format!("{}=={}", pkg.name, pkg.version),
        hashes,
        served,
    })
}

impl Builder {
    /// Reads the lock for `target` and chooses each package's wheel.
    ///
    /// Fails with [`BuildError::NoWheels`] (naming every such package and the platform) when a
    /// locked package has no wheel that fits the target.
    pub async fn plan_wheels(
        &self,
        req: &BuildRequest,
        target: &Target,
    ) -> Result<(Option<Lock>, Vec<ChosenWheel>), BuildError> {
        let (lock, chosen, missing) = self.plan_wheels_partial(req, target).await?;
        if !missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: target.platform.to_string(),
                missing,
            });
        }
        Ok((lock, chosen))
    }

    /// Like [`Builder::plan_wheels`], but packages without a fitting wheel are returned (third
    /// element) instead of failing, so a plan can show them next to the other platforms' wheels.
    pub async fn plan_wheels_partial(
        &self,
        req: &BuildRequest,
        target: &Target,
    ) -> Result<(Option<Lock>, Vec<ChosenWheel>, Vec<MissingWheel>), BuildError> {
        let plan = self.plan_wheels_with(req, target, None).await?;
        let mut missing = plan.missing;
        missing.extend(plan.sdists.iter().map(|s| sdist_as_missing(s, true)));
        Ok((plan.lock, plan.chosen, missing))
    }

    /// The key a wheel choice is recorded under ([`LABEL_WHEELS`]): everything the choice depends
    /// on when every package is pinned by hashes (the lockfile's bytes and name, the target, the
    /// extras, groups and marker overrides, the indexes).
    pub(crate) fn plan_key(
        &self,
        req: &BuildRequest,
        target: &Target,
        lock: &Lock,
        lock_digest: &Digest,
    ) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            lock: String,
            lock_name: String,
            target: &'a Target,
            extras: &'a [String],
            groups: &'a [String],
            require_hashes: bool,
            markers: &'a BTreeMap<String, String>,
            indexes: Vec<String>,
        }
        let k = Key {
            lock: lock_digest.to_string(),
            lock_name: lock
                .path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            target,
            extras: &req.resolve.extras,
            groups: &req.resolve.groups,
            require_hashes: req.resolve.require_hashes,
            markers: &req.marker_overrides,
            indexes: self.index.indexes(),
        };
        cache_key("wheel-plan", 2, &k)
    }

    /// [`Builder::plan_wheels_partial`] with the lock's digest, the plan key when the choice is
    /// fixed by the lock, and whether the choice was taken from `recorded`.
    pub(crate) async fn plan_wheels_with(
        &self,
        req: &BuildRequest,
        target: &Target,
        recorded: Option<&RecordedWheels>,
    ) -> Result<WheelPlan, BuildError> {
        match self.read_lock_for(req, target).await? {
            None => Ok(WheelPlan::none()),
            Some(read) => self.choose_wheels(&read, recorded).await,
        }
    }

    /// Reads the lockfile for `target` (`None`: the context has none), with what the store
    /// already knows of its packages' files. Asks no index.
    pub(crate) async fn read_lock_for(
        &self,
        req: &BuildRequest,
        target: &Target,
    ) -> Result<Option<LockRead>, BuildError> {
        let lock_path = match &req.lock {
            Some(p) => p.clone(),
            None => match rbuild_lock::detect_lockfile(&req.context) {
                Ok(p) => p,
                Err(rbuild_lock::Error::NoLockfile { .. }) => return Ok(None),
                Err(e) => return Err(e.into()),
            },
        };
        let mut env = target.marker_env();
        for (k, v) in &req.marker_overrides {
            env = env.with_override(k, v).map_err(other)?;
        }
        // Reading the lock and the stored index answers is blocking work: off the async threads,
        // so the platforms of a multi-platform build do it side by side.
        let store = self.store.clone();
        let indexes = self.index.indexes();
        let find_links = !self.index.options().find_links.is_empty();
        let resolve = req.resolve.clone();
        let tags = target.tags();
        let (lock, stored, digest, fixed) =
            tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
                let lock = rbuild_lock::read_lock(&lock_path, &env, &resolve)?;
                let stored = lock
                    .packages
                    .iter()
                    .map(|p| {
                        let key = listing_key(&indexes, find_links, p);
                        Ok((stored_listing(&store, key.as_deref(), p)?, key))
                    })
                    .collect::<Result<Vec<_>, BuildError>>()?;
                // The choice is fixed by the lock when every package is pinned by hashes and no
                // local directory of wheels takes part.
                let fixed = !find_links
                    && lock.find_links.is_empty()
                    && lock.packages.iter().all(|p| !p.hashes.is_empty());
                let digest = sha256_file(&lock.path)?;
                Ok((lock, stored, digest, fixed))
            })
            .await
            .map_err(other)??;
        let plan_key = fixed.then(|| self.plan_key(req, target, &lock, &digest));
        Ok(Some(LockRead {
            lock,
            digest,
            stored,
            tags,
            plan_key,
        }))
    }

    /// Chooses each locked package's wheel, asking the index for the listings the lock and the
    /// store lack. With a record (from the image this build replaces) under the same key, a lock
    /// whose listings the store lacks takes the recorded choice instead of asking the index.
    pub(crate) async fn choose_wheels(
        &self,
        read: &LockRead,
        recorded: Option<&RecordedWheels>,
    ) -> Result<WheelPlan, BuildError> {
        let plan = |chosen, sdists, missing, from_record| WheelPlan {
            lock: Some(read.lock.clone()),
            lock_digest: Some(read.digest),
            chosen,
            sdists,
            missing,
            plan_key: read.plan_key.clone(),
            from_record,
        };
        if let (Some(key), Some(rec)) = (&read.plan_key, recorded)
            && rec.key == *key
            && read.stored.iter().any(|(s, _)| s.is_none())
            && let Some(chosen) = rec.choice_for(&read.lock)
        {
            // The image this build replaces chose these wheels for the same lock and target: no
            // need to ask the index for the listings the store does not have.
            return Ok(plan(chosen, Vec::new(), Vec::new(), true));
        }
        let mut chosen = Vec::new();
        let mut sdists = Vec::new();
        let mut missing = Vec::new();
        // Ask the index about every other package at once (16 at a time), not one after the other.
        use futures::StreamExt as _;
        let listed: Vec<Result<rbuild_lock::LockedPackage, BuildError>> =
            futures::stream::iter(read.lock.packages.iter().cloned().zip(read.stored.clone()))
                .map(|(pkg, (stored, key))| async move {
                    match stored {
                        Some(p) => Ok(p),
                        None => self.index_files(pkg, key).await,
                    }
                })
                .buffered(16)
                .collect()
                .await;
        let find_links = !self.index.options().find_links.is_empty();
        for pkg in listed {
            let mut pkg = pkg?;
            if find_links {
                pkg = pkg.with_find_links_files(self.find_links_files(&pkg.name)?);
            }
            match rbuild_lock::choose_wheel(&pkg, &read.tags) {
                Ok(c) => {
                    if c.origin == rbuild_lock::WheelOrigin::FindLinks {
                        self.progress.warning(&format!(
                            "{} {}: no locked file fits the target; using {} from --find-links \
                             (your directory is trusted for it; sha256 {})",
                            c.name,
                            c.version,
                            c.filename,
                            c.sha256.map(|d| d.to_string()).unwrap_or_default()
                        ));
                    }
                    chosen.push(c)
                }
                // No wheel fits, but the lock pins an sdist: it is built with the base's Python.
                Err(e) => match rbuild_lock::choose_sdist(&pkg) {
                    Some(s) => sdists.push(s),
                    None => missing.push(MissingWheel {
                        name: pkg.name.clone(),
                        version: pkg.version.clone(),
                        reason: e.to_string(),
                    }),
                },
            }
        }
        Ok(plan(chosen, sdists, missing, false))
    }

    /// The wheels of `name` in the `--find-links` directories, hashed, as lock files.
    fn find_links_files(&self, name: &str) -> Result<Vec<LockedFile>, BuildError> {
        self.index
            .find_links_files(name)?
            .into_iter()
            .filter_map(|f| {
                let path = url::Url::parse(&f.url).ok()?.to_file_path().ok()?;
                Some((f, path))
            })
            .map(|(f, path)| {
                Ok(LockedFile {
                    kind: rbuild_lock::FileKind::Wheel,
                    sha256: Some(sha256_file(&path)?),
                    url: Some(f.url),
                    path: Some(path),
                    size: f.size,
                    filename: f.filename,
                })
            })
            .collect()
    }

    /// The package with its files from the index. The index's answer for a
    /// package pinned by hashes is kept in the store (only the files those hashes allow, which
    /// cannot change), so building the same pins again asks the index nothing.
    ///
    /// The caller has looked in the lock and the store first ([`stored_listing`]) under
    /// `cache_key` ([`listing_key`]), where the answer is kept.
    pub(crate) async fn index_files(
        &self,
        pkg: rbuild_lock::LockedPackage,
        cache_key: Option<String>,
    ) -> Result<rbuild_lock::LockedPackage, BuildError> {
        let files = self
            .index
            .list_files_in(&pkg.name, pkg.source.index_url())
            .await?;
        let files = files
            .into_iter()
            .filter(|f| {
                rbuild_python::wheel_name::WheelFilename::parse(&f.filename)
                    .map(|w| {
                        w.version.to_string() == pkg.version
                            || rbuild_python::normalize_name(&w.version.to_string())
                                == rbuild_python::normalize_name(&pkg.version)
                    })
                    .unwrap_or(false)
                    || (!f.is_wheel() && f.filename.contains(&format!("-{}.", pkg.version)))
            })
            .map(|f| LockedFile {
                kind: if f.is_wheel() {
                    rbuild_lock::FileKind::Wheel
                } else {
                    rbuild_lock::FileKind::Sdist
                },
                // A --find-links file is listed before it is hashed: hash it here so the
                // lock's hashes can be checked against it.
                sha256: f.sha256.or_else(|| {
                    let path = f.url.strip_prefix("file://")?;
                    let file = std::fs::File::open(path).ok()?;
                    Digest::of_reader(file).ok().map(|(d, _)| d)
                }),
                filename: f.filename,
                url: Some(f.url),
                path: None,
                size: f.size,
            })
            .collect::<Vec<LockedFile>>();
        if let Some(e) = hash_mismatch(&pkg, &files) {
            return Err(e.into());
        }
        let out = pkg.with_index_files(files);
        if let Some(k) = &cache_key
            && !out.files.is_empty()
        {
            let cached: Vec<CachedFile> = out
                .files
                .iter()
                .map(|f| CachedFile {
                    filename: f.filename.clone(),
                    wheel: f.kind == rbuild_lock::FileKind::Wheel,
                    url: f.url.clone(),
                    sha256: f.sha256,
                    size: f.size,
                })
                .collect();
            self.store.put_key(
                "index-files",
                k,
                &serde_json::to_vec(&cached).map_err(other)?,
            )?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, content: &[u8]) -> LockedFile {
        LockedFile {
            filename: name.into(),
            kind: rbuild_lock::FileKind::Wheel,
            url: None,
            path: None,
            sha256: Some(Digest::of(content)),
            size: None,
        }
    }

    #[test]
    fn a_hash_matching_no_served_file_names_the_line_and_what_is_served() {
        let dir = tempfile::tempdir().unwrap();
        let req = dir.path().join("requirements.txt");
        let wanted = Digest::of(b"what the lock expects");
        std::fs::write(&req, format!("# pinned\nidna==3.10 --hash={wanted}\n")).unwrap();
        let env = rbuild_python::markers::MarkerEnv::cpython_linux(
            rbuild_python::target::MajorMinor::new(3, 11),
            None,
            "x86_64",
        );
        let lock = rbuild_lock::read_lock(&req, &env, &Default::default()).unwrap();
        let pkg = &lock.packages[0];
        let served = [
            file("idna-3.10-py3-none-any.whl", b"wheel"),
            file("idna-3.10.tar.gz", b"sdist"),
        ];
        let e = hash_mismatch(pkg, &served).expect("a mismatch").to_string();
        assert_eq!(
            e,
            format!(
                "{}:2: idna==3.10 is pinned by --hash={wanted}, but none of the files the index \
                 serves for it has that hash: it serves idna-3.10-py3-none-any.whl ({}), \
                 idna-3.10.tar.gz ({}); the hashes are stale or the files changed: regenerate \
                 the file with hashes (`uv pip compile --generate-hashes` or `pip-compile \
                 --generate-hashes`), or check --index-url",
                req.display(),
                Digest::of(b"wheel"),
                Digest::of(b"sdist")
            )
        );
        // One served file with a pinned hash: no mismatch; nothing served: another message.
        let ok = [file("idna-3.10-py3-none-any.whl", b"what the lock expects")];
        assert!(hash_mismatch(pkg, &ok).is_none());
        assert!(hash_mismatch(pkg, &[]).is_none());
        // A --find-links file (the user's own directory) is never a mismatch.
        let mut local = file("idna-3.10-py3-none-any.whl", b"built here");
        local.url = Some("file:///wheels/idna-3.10-py3-none-any.whl".into());
        assert!(hash_mismatch(pkg, &[local]).is_none());
    }
}
