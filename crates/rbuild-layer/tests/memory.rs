//! Memory stays flat: a 2 GB (sparse) file streams through the layer writer without the
//! process's peak RSS growing. Alone in its test binary so that VmHWM is this test's.

use std::fs::File;
use std::time::Instant;

use rbuild_layer::{LayerOptions, load_context, write_context_layer};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_gigabyte_file_streams_with_flat_memory() {
    const SIZE: u64 = 2 * 1024 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    File::create(dir.path().join("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    std::fs::write(dir.path().join("main.py"), "print(1)\n").unwrap();

    let start = Instant::now();
    let ctx = load_context(dir.path()).unwrap();
    let (_, info) =
        write_context_layer(&ctx, "app", &LayerOptions::default(), std::io::sink()).unwrap();
    let peak_mib = vm_hwm_kib() / 1024;
    eprintln!(
        "2 GiB layer in {:.1?}, peak RSS {peak_mib} MiB, blob {} bytes",
        start.elapsed(),
        info.size
    );
    assert!(info.uncompressed_size > SIZE);
    assert!(info.size < SIZE / 100, "zeros compress");
    assert!(peak_mib < 100, "peak RSS {peak_mib} MiB");
}
