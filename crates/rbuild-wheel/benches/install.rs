//! Micro-benchmarks for the wheel installer on synthetic wheels: planning (every RECORD hash
//! verified), planning + writing into a sink that discards entries, and the whole dependency-layer
//! path (install → deterministic tar → gzip → sha256). Two shapes: a pure-Python wheel of many
//! small modules (like flask) and a binary wheel with a few large extension modules (like numpy).
//! Short by design: `cargo bench -p rbuild-wheel` runs in about a minute.

use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rbuild_layer::{LayerOptions, LayerWriter};
use rbuild_wheel::{BaseInfo, EntrySink, InstallOptions, InstallTarget, WheelInput};
use sha2::Digest as _;

/// Source-like text (compresses about as well as Python code).
fn text(n: usize, seed: u32) -> Vec<u8> {
    let words: &[&[u8]] = &[
        b"def ", b"return ", b"self", b".value", b"(x)", b"\n    ", b"import ", b"os", b" = ",
        b"None", b"class ", b": ", b"if ", b"else",
    ];
    let mut x = seed;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        out.extend_from_slice(words[(x >> 16) as usize % words.len()]);
    }
    out.truncate(n);
    out
}

/// Machine-code-like bytes (compress to about half).
fn binary(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if i % 2 == 0 {
                (x >> 16) as u8
            } else {
                (x >> 28) as u8
            }
        })
        .collect()
}

/// Writes `name-version-py3-none-any.whl` (or a cp311 manylinux tag when `platlib`) with the
/// given members plus METADATA, WHEEL, entry_points.txt and a correct RECORD.
fn wheel(
    dir: &Path,
    name: &str,
    version: &str,
    platlib: bool,
    members: &[(String, Vec<u8>)],
) -> WheelInput {
    let tag = if platlib {
        "cp311-cp311-manylinux_2_17_x86_64"
    } else {
        "py3-none-any"
    };
    let filename = format!("{name}-{version}-{tag}.whl");
    let path = dir.join(&filename);
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let di = format!("{name}-{version}.dist-info");
    let mut all: Vec<(String, Vec<u8>)> = members.to_vec();
    all.push((
        format!("{di}/METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n").into_bytes(),
    ));
    all.push((
        format!("{di}/WHEEL"),
        format!(
            "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: {}\nTag: {tag}\n",
            !platlib
        )
        .into_bytes(),
    ));
    all.push((
        format!("{di}/entry_points.txt"),
        format!("[console_scripts]\n{name} = {name}.cli:main\n").into_bytes(),
    ));
    let mut record = String::new();
    for (member, data) in &all {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o644);
        zip.start_file(member.as_str(), opts).unwrap();
        zip.write_all(data).unwrap();
        let hash =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(data));
        record.push_str(&format!("{member},sha256={hash},{}\n", data.len()));
    }
    record.push_str(&format!("{di}/RECORD,,\n"));
    zip.start_file(
        format!("{di}/RECORD"),
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(record.as_bytes()).unwrap();
    zip.finish().unwrap();
    WheelInput {
        path,
        filename,
        expected_name: name.into(),
        expected_version: version.into(),
    }
}

fn target() -> InstallTarget {
    InstallTarget {
        interpreter: "/usr/bin/python3.11".into(),
        purelib: "/usr/local/lib/python3.11/dist-packages".into(),
        platlib: "/usr/local/lib/python3.11/dist-packages".into(),
        scripts: "/usr/local/bin".into(),
        headers: "/usr/local/include/python3.11".into(),
        data: "/usr/local".into(),
        python_version: (3, 11),
    }
}

/// Reads every file's bytes and drops them.
struct NullSink;
impl EntrySink for NullSink {
    fn dir(&mut self, _: &str, _: u32) -> std::io::Result<()> {
        Ok(())
    }
    fn file(&mut self, _: &str, _: u32, _: u64, content: &mut dyn Read) -> std::io::Result<()> {
        std::io::copy(content, &mut std::io::sink()).map(|_| ())
    }
    fn symlink(&mut self, _: &str, _: &str) -> std::io::Result<()> {
        Ok(())
    }
    fn whiteout(&mut self, _: &str) -> std::io::Result<()> {
        Ok(())
    }
}

fn shapes(dir: &Path) -> Vec<(&'static str, Vec<WheelInput>, u64)> {
    // Pure: 300 modules of 4 KiB in 10 packages (about 1.2 MB), like flask + its dependencies.
    let mut pure = Vec::new();
    for p in 0..10 {
        let name = format!("pure{p}");
        let members: Vec<_> = (0..30)
            .map(|i| (format!("{name}/m{i}.py"), text(4096, p * 100 + i)))
            .collect();
        pure.push(wheel(dir, &name, "1.0", false, &members));
    }
    // Binary: two 6 MiB extension modules and 50 modules, like a scientific package.
    let mut members: Vec<_> = (0..2)
        .map(|i| {
            (
                format!("binpkg/_ext{i}.cpython-311-x86_64-linux-gnu.so"),
                binary(6 << 20, i),
            )
        })
        .collect();
    members.extend((0..50).map(|i| (format!("binpkg/m{i}.py"), text(4096, 1000 + i))));
    let bin = vec![wheel(dir, "binpkg", "2.0", true, &members)];
    let size = |ws: &[WheelInput]| -> u64 {
        ws.iter()
            .map(|w| {
                let mut z = zip::ZipArchive::new(std::fs::File::open(&w.path).unwrap()).unwrap();
                (0..z.len())
                    .map(|i| z.by_index(i).unwrap().size())
                    .sum::<u64>()
            })
            .sum()
    };
    let (ps, bs) = (size(&pure), size(&bin));
    vec![
        ("pure 10 wheels x 30 modules", pure, ps),
        ("binary 1 wheel 12 MiB", bin, bs),
    ]
}

fn benches(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().to_path_buf();
    let target = target();
    let base = BaseInfo::default();
    let opts = InstallOptions::default();
    let mut g = c.benchmark_group("install");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (label, wheels, bytes) in shapes(&dir) {
        g.throughput(Throughput::Bytes(bytes));
        g.bench_function(format!("plan (verify RECORD), {label}"), |b| {
            b.iter(|| rbuild_wheel::plan(black_box(&wheels), &target, &base, &opts).unwrap())
        });
        g.bench_function(format!("plan + write to a null sink, {label}"), |b| {
            b.iter(|| {
                rbuild_wheel::install_wheels(
                    black_box(&wheels),
                    &target,
                    &base,
                    &opts,
                    &mut NullSink,
                )
                .unwrap()
            })
        });
        g.bench_function(
            format!("deps layer (install, tar, gzip, sha256), {label}"),
            |b| {
                b.iter(|| {
                    let mut w =
                        LayerWriter::new(std::io::sink(), &LayerOptions::default()).unwrap();
                    w.auto_parents(false);
                    rbuild_wheel::install_wheels(black_box(&wheels), &target, &base, &opts, &mut w)
                        .unwrap();
                    w.finish().unwrap().1
                })
            },
        );
    }
    g.finish();
}

criterion_group!(install, benches);
criterion_main!(install);
