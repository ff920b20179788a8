//! Helpers shared by the registry library tests.

use std::time::Duration;

use rbuild_oci::{Descriptor, MediaType, Store};
use rbuild_registry::{Reference, RetryPolicy};

/// The default retry budget with short delays.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

/// 3 MB of pseudo-random bytes (from `seed`) in `store`.
pub fn blob(store: &Store, seed: u64) -> Descriptor {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..3_000_000).map(|_| rng.u8(..)).collect();
    let digest = store.put_bytes(&bytes).unwrap();
    Descriptor::new(MediaType::OCI_LAYER_GZIP, digest, bytes.len() as u64)
}

/// `HOST/REPO:t`.
pub fn reference(host: &str, repo: &str) -> Reference {
    format!("{host}/{repo}:t").parse().unwrap()
}
