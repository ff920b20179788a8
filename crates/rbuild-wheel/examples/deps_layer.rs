//! Builds a dependency layer from wheels on disk, the way `rbuild build` does, and reports it.
//!
//! ```text
//! cargo run --release -p rbuild-wheel --example deps_layer -- --store DIR [--compression gzip|zstd|none] WHEEL...
//! ```
//!
//! Every wheel is installed (every member's RECORD hash verified) into one deterministic tar
//! stream, compressed, hashed (diff_id and digest in the same pass) and committed to the content
//! store under `DIR`: the same path as the dependency layer of `rbuild build` once the wheels are in
//! the store, with Debian's Python 3.11 scheme (the base fixture's) as the target. The name and
//! version of each wheel come from its file name. Prints one JSON object on stdout; `bench/run.sh`
//! times this against `uv pip install --target` followed by `tar | gzip`.

use std::path::PathBuf;
use std::time::Instant;

use rbuild_layer::{Compression, LayerOptions, LayerWriter};
use rbuild_oci::Store;
use rbuild_wheel::{BaseInfo, InstallOptions, InstallTarget, WheelFilename, WheelInput};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut store = None;
    let mut compression = Compression::Gzip;
    let mut wheels = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--store" => store = Some(PathBuf::from(args.next().ok_or("--store needs a path")?)),
            "--compression" => {
                compression = args
                    .next()
                    .ok_or("--compression needs gzip, zstd or none")?
                    .parse()?
            }
            _ => {
                let path = PathBuf::from(&a);
                let filename = path
                    .file_name()
                    .and_then(|f| f.to_str())
                    .ok_or("bad path")?
                    .to_string();
                let w = WheelFilename::parse(&filename)?;
                wheels.push(WheelInput {
                    path,
                    filename,
                    expected_name: w.name_as_written().to_string(),
                    expected_version: w.version_as_written().to_string(),
                });
            }
        }
    }
    let store = Store::open(store.ok_or("--store DIR is required")?)?;
    let target = InstallTarget {
        interpreter: "/usr/bin/python3.11".into(),
        purelib: "/usr/local/lib/python3.11/dist-packages".into(),
        platlib: "/usr/local/lib/python3.11/dist-packages".into(),
        scripts: "/usr/local/bin".into(),
        headers: "/usr/local/include/python3.11".into(),
        data: "/usr/local".into(),
        python_version: (3, 11),
    };
    let t0 = Instant::now();
    let opts = LayerOptions {
        compression,
        mtime: 0,
    };
    let mut w = LayerWriter::new(store.writer()?, &opts)?;
    w.auto_parents(false);
    let report = rbuild_wheel::install_wheels(
        &wheels,
        &target,
        &BaseInfo::default(),
        &InstallOptions::default(),
        &mut w,
    )?;
    let (blob, info) = w.finish()?;
    let (digest, size) = blob.commit()?;
    let seconds = t0.elapsed().as_secs_f64();
    println!(
        "{{\"digest\":\"{digest}\",\"diff_id\":\"{}\",\"compressed_bytes\":{size},\"uncompressed_bytes\":{},\"files\":{},\"distributions\":{},\"seconds\":{seconds:.4}}}",
        info.diff_id,
        info.uncompressed_size,
        report.files,
        report.distributions.len()
    );
    Ok(())
}
