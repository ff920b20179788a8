//! Helpers of the network-robustness tests (time bounds, credential origins, several
//! destinations): a small image made in the store, a client with short bounds, and a progress
//! collector.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbuild_oci::{Artifact, Descriptor, Image, MediaType, RawManifest, Store, Top};
use rbuild_registry::{
    Client, ClientOptions, Progress, ProgressEvent, RetryPolicy, StaticCredentials, Timeouts,
};

/// `size` pseudo-random bytes (from `seed`) in `store`, as a layer.
pub fn layer(store: &Store, seed: u64, size: usize) -> Descriptor {
    let mut rng = fastrand::Rng::with_seed(seed);
    let bytes: Vec<u8> = (0..size).map(|_| rng.u8(..)).collect();
    let digest = store.put_bytes(&bytes).unwrap();
    Descriptor::new(MediaType::OCI_LAYER_GZIP, digest, bytes.len() as u64)
}

/// A one-layer image whose layer is in `store` (the config too).
pub fn image(store: &Store, seed: u64, layer_size: usize) -> Artifact {
    let l = layer(store, seed, layer_size);
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        l.digest
    );
    let config_digest = store.put_bytes(config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"{}","digest":"{}","size":{}}}]}}"#,
        MediaType::OCI_MANIFEST,
        config_digest,
        config.len(),
        MediaType::OCI_LAYER_GZIP,
        l.digest,
        l.size
    );
    let raw = RawManifest::new(manifest.into_bytes(), Some(MediaType::OCI_MANIFEST));
    Artifact::new(Top::Image(Image::new(raw, config.into_bytes()).unwrap()))
}

/// Short time bounds: `idle` seconds of no progress.
pub fn short(idle_secs: f64) -> Timeouts {
    Timeouts::with_idle(Duration::from_secs_f64(idle_secs))
}

/// `attempts` attempts with short pauses.
pub fn retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts: attempts,
        initial_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        ..Default::default()
    }
}

/// Every progress event.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<ProgressEvent>>);

impl Progress for Events {
    fn event(&self, event: ProgressEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    /// The `Retrying` and `Waiting` events, described.
    pub fn waits_and_retries(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ProgressEvent::Retrying { .. } | ProgressEvent::Waiting { .. }
                )
            })
            .map(ProgressEvent::describe)
            .collect()
    }
}

/// A client with these bounds and retries, reporting to the returned collector; `creds` for hosts.
pub fn client(
    timeouts: Timeouts,
    retry: RetryPolicy,
    creds: &[(&str, &str, &str)],
) -> (Client, Arc<Events>) {
    let mut c = StaticCredentials::new();
    for (host, user, password) in creds {
        c.insert(host, rbuild_registry::Credential::basic(*user, *password));
    }
    let events = Arc::new(Events::default());
    let client = Client::new(ClientOptions {
        timeouts,
        retry,
        credentials: Arc::new(c),
        ..Default::default()
    })
    .unwrap()
    .with_progress(events.clone());
    (client, events)
}
