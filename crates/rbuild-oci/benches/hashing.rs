//! Micro-benchmarks for hashing: one-shot and streaming sha256 (the layer digest and diff_id
//! paths), the hashing adapters with small writes (as a tar writer makes them), and digest
//! parsing and formatting (every descriptor). Short by design: `cargo bench -p rbuild-oci` runs in
//! well under a minute.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbuild_oci::{Digest, HashingReader, HashingWriter, canonical_json};

fn data(n: usize) -> Vec<u8> {
    let mut x: u32 = 1;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hashing");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));

    let big = data(16 << 20);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("Digest::of 16 MiB", |b| {
        b.iter(|| Digest::of(black_box(&big)))
    });
    g.bench_function("Digest::of_reader 16 MiB", |b| {
        b.iter(|| Digest::of_reader(black_box(&big[..])).unwrap())
    });
    g.bench_function("HashingWriter 16 MiB in 512 B writes", |b| {
        b.iter(|| {
            let mut w = HashingWriter::new(std::io::sink());
            for chunk in big.chunks(512) {
                w.write_all(black_box(chunk)).unwrap();
            }
            w.finish()
        })
    });
    g.bench_function("HashingReader 16 MiB", |b| {
        b.iter(|| {
            let mut r = HashingReader::new(black_box(&big[..]));
            std::io::copy(&mut r, &mut std::io::sink()).unwrap();
            r.finish()
        })
    });

    let small = data(2048);
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("Digest::of 2 KiB (a manifest)", |b| {
        b.iter(|| Digest::of(black_box(&small)))
    });

    g.throughput(Throughput::Elements(1));
    let d = Digest::of(b"x");
    let text = d.to_string();
    g.bench_function("Digest::parse", |b| {
        b.iter(|| Digest::parse(black_box(&text)).unwrap())
    });
    g.bench_function("Digest to_string", |b| b.iter(|| black_box(&d).to_string()));
    let value = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": text, "size": 1234},
        "layers": (0..8).map(|i| serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": Digest::of(&[i]).to_string(),
            "size": 1000 + i as u64,
            "annotations": {"dev.rbuild.layer.key": Digest::of(&[i, 1]).hex()},
        })).collect::<Vec<_>>(),
    });
    g.bench_function("canonical_json + digest of a manifest", |b| {
        b.iter(|| Digest::of(&canonical_json(black_box(&value)).unwrap()))
    });
    g.finish();
}

criterion_group!(hashing, benches);
criterion_main!(hashing);
