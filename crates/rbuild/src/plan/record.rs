//! What an image records about its plan (labels), so a fresh runner with an empty store can
//! recompute its cache keys and reuse its wheel choice.

use rbuild_lock::{ChosenWheel, Lock};
use rbuild_oci::{Digest, ImageConfig};
use rbuild_python::target::Target;
use serde::{Deserialize, Serialize};

/// Config label holding what a fresh runner needs to recompute the cache keys.
pub const LABEL_TARGET: &str = "dev.rbuild.target";

/// Config label with the wheels chosen for this image's lockfile and target (`{"key", "wheels"}`),
/// so a runner with an empty store and the same lock finds the dependency layer without asking the
/// package index (see [`crate::Builder::build`]).
pub const LABEL_WHEELS: &str = "dev.rbuild.wheels";

/// What is recorded in the image (label [`LABEL_TARGET`]) so a fresh runner can recompute cache keys.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct Recorded {
    pub(crate) base_digest: Option<Digest>,
    pub(crate) overrides: String,
    pub(crate) target: Target,
}

/// The wheel choice recorded in the image (label [`LABEL_WHEELS`]): valid for another build whose
/// [`Builder::plan_key`] is `key`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct RecordedWheels {
    pub(crate) key: String,
    pub(crate) wheels: Vec<ChosenWheel>,
}

impl RecordedWheels {
    /// The record in a previous image's config, if it has one that parses.
    pub(crate) fn from_config(config: &ImageConfig) -> Option<RecordedWheels> {
        let label = config.config.as_ref()?.labels.as_ref()?.get(LABEL_WHEELS)?;
        serde_json::from_str(label).ok()
    }

    /// The recorded wheels in the lock's package order (the order a fresh choice has), when they
    /// are exactly the lock's packages, each at its locked version and with a sha256 the lock
    /// allows; `None` otherwise.
    pub(crate) fn choice_for(&self, lock: &Lock) -> Option<Vec<ChosenWheel>> {
        if self.wheels.len() != lock.packages.len() {
            return None;
        }
        lock.packages
            .iter()
            .map(|p| {
                let name = rbuild_python::normalize_name(&p.name);
                self.wheels
                    .iter()
                    .find(|w| {
                        rbuild_python::normalize_name(&w.name) == name
                            && w.version == p.version
                            && w.path.is_none()
                            && w.sha256.is_some_and(|d| p.hashes.contains(&d))
                    })
                    .cloned()
            })
            .collect()
    }
}
