//! Installs wheels into a tar stream and reports throughput.
//!
//! ```text
//! cargo run --release -p rbuild-wheel --example install_tar -- [-o OUT.tar] [--threads N] WHEEL...
//! ```
//!
//! The name and version of each wheel are taken from its file name; the target is Debian's
//! Python 3.11 scheme. Output defaults to `/dev/null`.

use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use rbuild_wheel::{BaseInfo, EntrySink, InstallOptions, InstallTarget, WheelFilename, WheelInput};

struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h
    }
}

impl<W: Write> EntrySink for TarSink<W> {
    fn dir(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, mode, 0);
        self.builder
            .append_data(&mut h, format!("{path}/"), io::empty())
    }
    fn file(&mut self, path: &str, mode: u32, size: u64, content: &mut dyn Read) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, size);
        self.builder.append_data(&mut h, path, content)
    }
    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target)
    }
    fn whiteout(&mut self, path: &str) -> io::Result<()> {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if parent.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{parent}/.wh.{name}")
        };
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 0);
        self.builder.append_data(&mut h, wh, io::empty())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = PathBuf::from("/dev/null");
    let mut threads = 0usize;
    let mut wheels = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-o" => out = args.next().ok_or("-o needs a path")?.into(),
            "--threads" => threads = args.next().ok_or("--threads needs a number")?.parse()?,
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
    let target = InstallTarget {
        interpreter: "/usr/bin/python3.11".into(),
        purelib: "/usr/local/lib/python3.11/dist-packages".into(),
        platlib: "/usr/local/lib/python3.11/dist-packages".into(),
        scripts: "/usr/local/bin".into(),
        headers: "/usr/local/include/python3.11".into(),
        data: "/usr/local".into(),
        python_version: (3, 11),
    };
    let opts = InstallOptions {
        threads,
        ..InstallOptions::default()
    };
    let t0 = Instant::now();
    let plan = rbuild_wheel::plan(&wheels, &target, &BaseInfo::default(), &opts)?;
    let t1 = Instant::now();
    let file = std::fs::File::create(&out)?;
    let mut sink = TarSink {
        builder: tar::Builder::new(BufWriter::with_capacity(1 << 20, file)),
    };
    let report = plan.write(&mut sink)?;
    sink.builder.into_inner()?.flush()?;
    let t2 = Instant::now();
    let mb = report.bytes as f64 / 1e6;
    let (plan_s, write_s) = ((t1 - t0).as_secs_f64(), (t2 - t1).as_secs_f64());
    eprintln!(
        "{} files, {:.1} MB installed, {} dirs; plan (verify every member) {:.2}s = {:.0} MB/s; write {:.2}s = {:.0} MB/s; total {:.0} MB/s",
        report.files,
        mb,
        report.directories,
        plan_s,
        mb / plan_s,
        write_s,
        mb / write_s,
        mb / (plan_s + write_s)
    );
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
