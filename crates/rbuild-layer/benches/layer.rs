//! Micro-benchmarks: tar writing, gzip and zstd compression, hashing and the ignore matcher.
//! Short by design: `cargo bench -p rbuild-layer` runs in well under a minute.

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbuild_layer::{Compression, GzipEncoder, IgnoreFile, LayerOptions, LayerWriter};

/// Text-like data that compresses about as well as source code.
fn sample(n: usize) -> Vec<u8> {
    let words: &[&[u8]] = &[
        b"def ", b"return ", b"self", b".value", b"(x)", b"\n    ", b"import ", b"os", b" = ",
        b"None",
    ];
    let mut x: u32 = 7;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()]);
    }
    out.truncate(n);
    out
}

fn quick(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("layer");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    g
}

fn benches(c: &mut Criterion) {
    let data = sample(1 << 20);
    let mut g = quick(c);

    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("gzip 1 MiB", |b| {
        b.iter(|| {
            let mut e = GzipEncoder::new(std::io::sink()).unwrap();
            e.write_all(black_box(&data)).unwrap();
            e.finish().unwrap()
        })
    });
    let big = sample(8 << 20);
    g.throughput(Throughput::Bytes(big.len() as u64));
    for threads in [1, 2] {
        g.bench_function(format!("gzip 8 MiB, {threads} thread(s)"), |b| {
            b.iter(|| {
                let mut e = GzipEncoder::with_threads(std::io::sink(), threads).unwrap();
                e.write_all(black_box(&big)).unwrap();
                e.finish().unwrap()
            })
        });
    }
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("sha256 1 MiB", |b| {
        b.iter(|| {
            let mut h = rbuild_oci::Hasher::new();
            h.update(black_box(&data));
            h.finish()
        })
    });
    for compression in [Compression::None, Compression::Zstd] {
        g.bench_function(format!("layer 1 MiB file, {compression}"), |b| {
            b.iter(|| {
                let opts = LayerOptions::default().with_compression(compression);
                let mut w = LayerWriter::new(std::io::sink(), &opts).unwrap();
                w.append_bytes("app/data.bin", 0o644, black_box(&data))
                    .unwrap();
                w.finish().unwrap()
            })
        });
    }

    g.throughput(Throughput::Elements(1000));
    g.bench_function("tar 1000 small files (no compression)", |b| {
        b.iter(|| {
            let opts = LayerOptions::default().with_compression(Compression::None);
            let mut w = LayerWriter::new(std::io::sink(), &opts).unwrap();
            for i in 0..1000 {
                w.append_bytes(
                    &format!("app/pkg{}/module_{i}.py", i % 20),
                    0o644,
                    &data[..600],
                )
                .unwrap();
            }
            w.finish().unwrap()
        })
    });

    let ig = IgnoreFile::parse(
        ".dockerignore",
        "*\n!app\n!pyproject.toml\n**/__pycache__\n**/*.py[cod]\n.venv\nnode_modules\n!**/package.json\n",
    )
    .unwrap();
    let paths: Vec<String> = (0..1000)
        .map(|i| match i % 4 {
            0 => format!("app/pkg{}/module_{i}.py", i % 20),
            1 => format!("app/pkg{}/__pycache__/module_{i}.cpython-311.pyc", i % 20),
            2 => format!("tests/test_{i}.py"),
            _ => format!("node_modules/dep{i}/package.json"),
        })
        .collect();
    g.bench_function("match 1000 paths", |b| {
        b.iter(|| paths.iter().filter(|p| ig.matches(black_box(p))).count())
    });
    g.finish();
}

criterion_group!(layer, benches);
criterion_main!(layer);
