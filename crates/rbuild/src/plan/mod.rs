//! Planning: what goes into the image, decided before anything is downloaded but metadata.
//!
//! - [`base`]: the base image per platform, and the target and base facts read from its layers;
//! - [`wheels`]: the lockfile read for the target and one wheel chosen per package;
//! - [`record`]: what an image records about its own plan, so a fresh runner reuses it.

pub mod base;
pub mod record;
pub mod wheels;

use std::path::PathBuf;

use futures::StreamExt;
use rbuild_lock::{ChosenWheel, SdistBuild};
use rbuild_oci::Platform;
use rbuild_python::target::Target;
use serde::Serialize;

use crate::BuildError;
use crate::Builder;
use crate::MissingWheel;
use crate::pipeline::collect_platforms;
use crate::pipeline::platform_concurrency;
use crate::plan::base::Tops;
use crate::request::BuildRequest;

/// The wheels chosen for one platform.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformPlan {
    /// The platform.
    pub platform: String,
    /// The detected target.
    pub target: Target,
    /// The base image's manifest digest for this platform (`None` for `scratch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_digest: Option<String>,
    /// The lockfile read (`None`: no dependencies).
    pub lockfile: Option<PathBuf>,
    /// Chosen wheels, sorted by name.
    pub packages: Vec<ChosenWheel>,
    /// Packages without a fitting wheel whose hash-pinned source distribution is built into a
    /// wheel by the base image's own Python.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sdists: Vec<SdistBuild>,
    /// Notes from the lock reader.
    pub notes: Vec<String>,
    /// Packages without a fitting wheel (only from [`crate::Builder::plan_platforms`]; a build fails
    /// instead).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingWheel>,
    /// What the base declares that the image settings respect (its non-root `User`, `HOME`,
    /// `WorkingDir`, `/etc/passwd`), so the plan's decisions are the build's
    /// ([`crate::spec::image_settings_on`]).
    #[serde(skip)]
    pub base_defaults: crate::spec::BaseDefaults,
}

/// The sdists to build, and the packages without a wheel: on a `scratch` base (no interpreter to
/// build with) every sdist joins the packages without a wheel.
pub(crate) fn sdists_for_base(
    req: &BuildRequest,
    sdists: Vec<SdistBuild>,
    mut missing: Vec<MissingWheel>,
) -> (Vec<SdistBuild>, Vec<MissingWheel>) {
    if matches!(req.base, crate::request::BaseRef::Image(_)) {
        return (sdists, missing);
    }
    missing.extend(
        sdists
            .iter()
            .map(|s| crate::plan::wheels::sdist_as_missing(s, false)),
    );
    (Vec::new(), missing)
}

impl Builder {
    /// Plans one platform (target + wheels) without building anything. Fails like a build would
    /// when a locked package has no wheel for the platform.
    pub async fn plan(
        &self,
        req: &BuildRequest,
        platform: &Platform,
    ) -> Result<PlatformPlan, BuildError> {
        let plan = self.plan_partial(req, platform, &Tops::default()).await?;
        if !plan.missing.is_empty() {
            return Err(BuildError::NoWheels {
                platform: plan.target.platform.to_string(),
                missing: plan.missing,
            });
        }
        Ok(plan)
    }

    pub(crate) async fn plan_partial(
        &self,
        req: &BuildRequest,
        platform: &Platform,
        tops: &Tops,
    ) -> Result<PlatformPlan, BuildError> {
        let base = self.resolve_base(req, platform, tops).await?;
        let (target, facts) = self.base_facts(req, &base, platform).await?;
        let base_defaults =
            crate::spec::BaseDefaults::of(&base.image.config, facts.passwd.as_deref());
        let plan = self.plan_wheels_with(req, &target, None).await?;
        let (sdists, missing) = sdists_for_base(req, plan.sdists, plan.missing);
        let lock = plan.lock;
        Ok(PlatformPlan {
            platform: platform.to_string(),
            base_digest: base.image.manifest_digest.map(|d| d.to_string()),
            target,
            lockfile: lock.as_ref().map(|l| l.path.clone()),
            notes: lock.map(|l| l.notes).unwrap_or_default(),
            packages: plan.chosen,
            sdists,
            missing,
            base_defaults,
        })
    }

    /// Plans every requested platform, concurrently, in the order requested.
    ///
    /// A platform where some locked packages have no fitting wheel is still planned: those packages
    /// are in [`PlatformPlan::missing`], so the plans can be shown side by side. Any other error
    /// (the base has no such platform, the index cannot be reached) fails, naming the platform.
    pub async fn plan_platforms(
        &self,
        req: &BuildRequest,
    ) -> Result<Vec<PlatformPlan>, BuildError> {
        let tops = Tops::default();
        let results: Vec<Result<PlatformPlan, BuildError>> =
            futures::stream::iter(req.platforms.iter())
                .map(|p| self.plan_partial(req, p, &tops))
                .buffered(platform_concurrency())
                .collect()
                .await;
        let names: Vec<String> = req.platforms.iter().map(|p| p.to_string()).collect();
        collect_platforms(&names, results)
    }
}
