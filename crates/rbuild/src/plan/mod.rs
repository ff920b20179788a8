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
use rbuild_lock::ChosenWheel;
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
    /// The lockfile read (`None`: no dependencies).
    pub lockfile: Option<PathBuf>,
    /// Chosen wheels, sorted by name.
    pub packages: Vec<ChosenWheel>,
    /// Notes from the lock reader.
    pub notes: Vec<String>,
    /// Packages without a fitting wheel (only from [`crate::Builder::plan_platforms`]; a build fails
    /// instead).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingWheel>,
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
        let (target, _) = self.base_facts(req, &base, platform).await?;
        let (lock, packages, missing) = self.plan_wheels_partial(req, &target).await?;
        Ok(PlatformPlan {
            platform: platform.to_string(),
            target,
            lockfile: lock.as_ref().map(|l| l.path.clone()),
            notes: lock.map(|l| l.notes).unwrap_or_default(),
            packages,
            missing,
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
