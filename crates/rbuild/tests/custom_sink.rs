//! A sink implemented outside rbuild's crates: it takes only the model (an `Artifact`) and a
//! `BlobSource`, and receives exactly what the OCI layout sink writes.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Mutex;

use rbuild_oci::{
    Artifact, BlobSource, BoxFuture, Digest, MultiSink, OciLayoutSink, Sink, SinkError, SinkReport,
    Store,
};

/// Records every blob and manifest it receives, by digest, checking each against its digest.
#[derive(Default)]
struct RecordingSink {
    received: Mutex<BTreeMap<Digest, Vec<u8>>>,
}

impl RecordingSink {
    fn keep(&self, bytes: Vec<u8>) -> Result<(), SinkError> {
        let digest = Digest::of(&bytes);
        self.received.lock().unwrap().insert(digest, bytes);
        Ok(())
    }
}

impl Sink for RecordingSink {
    fn name(&self) -> String {
        "memory".into()
    }

    fn write<'a>(
        &'a self,
        artifact: &'a Artifact,
        blobs: &'a dyn BlobSource,
    ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
        Box::pin(async move {
            let mut report = SinkReport::default();
            for d in artifact.blobs() {
                let mut bytes = Vec::new();
                blobs
                    .open(&d)
                    .await?
                    .read_to_end(&mut bytes)
                    .map_err(|e| SinkError::Other(Box::new(e)))?;
                if Digest::of(&bytes) != d.digest || bytes.len() as u64 != d.size {
                    return Err(SinkError::Invalid(format!("blob {} is corrupt", d.digest)));
                }
                self.keep(bytes)?;
                report.uploaded += 1;
            }
            for image in artifact.images() {
                self.keep(image.manifest().bytes.clone())?;
            }
            self.keep(artifact.top.manifest().bytes.clone())?;
            report
                .references
                .push(format!("memory@{}", artifact.digest()));
            Ok(report)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_sink_receives_what_the_oci_layout_sink_writes() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(project.path().join("main.py"), "print('hello')\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = Store::open(cache.path()).unwrap();
    let out = tempfile::tempdir().unwrap();

    let built = rbuild::Build::new("scratch")
        .context(project.path())
        .platforms([
            "linux/amd64".parse().unwrap(),
            "linux/arm64".parse().unwrap(),
        ])
        .python_version("3.12")
        .libc("glibc-2.36")
        .entrypoint(["/usr/local/bin/python3", "-m", "main"])
        .store(store.clone())
        .build()
        .await
        .unwrap();
    let image = built.image();
    assert!(image.index.is_some(), "two platforms make an index");

    let recorder = std::sync::Arc::new(RecordingSink::default());
    struct Shared(std::sync::Arc<RecordingSink>);
    impl Sink for Shared {
        fn name(&self) -> String {
            self.0.name()
        }
        fn write<'a>(
            &'a self,
            artifact: &'a Artifact,
            blobs: &'a dyn BlobSource,
        ) -> BoxFuture<'a, Result<SinkReport, SinkError>> {
            self.0.write(artifact, blobs)
        }
    }
    let layout_dir = out.path().join("layout");
    let sinks = MultiSink::new(vec![
        Box::new(OciLayoutSink {
            dir: layout_dir.clone(),
            tag: Some("v1".into()),
        }),
        Box::new(Shared(recorder.clone())),
    ]);
    let client = rbuild_registry::Client::new(rbuild_registry::ClientOptions::default()).unwrap();
    let report = rbuild::publish::publish_to(&client, image, &sinks, &store)
        .await
        .unwrap();
    assert_eq!(
        report.references,
        vec![
            format!("oci:{}:v1", layout_dir.display()),
            format!("memory@{}", image.digest()),
        ]
    );

    // The same set of blobs and manifests, byte for byte.
    let received = recorder.received.lock().unwrap().clone();
    let mut written: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    for entry in std::fs::read_dir(layout_dir.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let digest = Digest::parse(&format!(
            "sha256:{}",
            path.file_name().unwrap().to_str().unwrap()
        ))
        .unwrap();
        assert_eq!(Digest::of(&bytes), digest, "{}", path.display());
        written.insert(digest, bytes);
    }
    assert_eq!(
        received.keys().collect::<Vec<_>>(),
        written.keys().collect::<Vec<_>>()
    );
    assert_eq!(received, written);
    // Two manifests, the index, two configs, and the layers.
    assert!(received.contains_key(&image.digest()));
    for p in &image.images {
        assert!(received.contains_key(&p.manifest.digest));
        assert!(received.contains_key(&Digest::of(&p.config_bytes)));
        for l in &p.layers {
            assert!(received.contains_key(&l.descriptor.digest));
        }
    }
}
