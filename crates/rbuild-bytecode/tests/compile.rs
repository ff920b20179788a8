//! End-to-end tests against the build machine's CPython 3.11 (the X.Y of the Debian fixture base).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rbuild_bytecode::{
    BytecodeError, CompileOutput, Compiler, PycCache, Source, Standby, TestOptions, pyc_image_path,
};
use rbuild_runner::{HostPython, PyVersion, Python};

const PY: &str = "/usr/bin/python3.11";
const STDLIB: &str = "/usr/lib/python3.11";

fn host() -> Arc<dyn Python> {
    assert!(
        Path::new(PY).exists(),
        "the build machine has python3.11 (DESIGN.md)"
    );
    Arc::new(HostPython::new(
        PY,
        PyVersion {
            major: 3,
            minor: 11,
        },
    ))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "__pycache__") {
                walk(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "py") {
            out.push(p);
        }
    }
}

/// Every other `.py` file of the standard library (a few hundred real modules).
fn stdlib_sources(step: usize) -> Vec<Source> {
    let mut files = Vec::new();
    walk(Path::new(STDLIB), &mut files);
    files
        .into_iter()
        .step_by(step)
        .map(|p| Source {
            image_path: p.to_str().unwrap().to_owned(),
            host_path: p,
        })
        .collect()
}

fn bytes_by_path(out: &CompileOutput) -> BTreeMap<String, Vec<u8>> {
    out.pycs
        .iter()
        .map(|p| (p.pyc_image_path.clone(), std::fs::read(&p.file).unwrap()))
        .collect()
}

fn compile(
    workers: usize,
    test: TestOptions,
    sources: &[Source],
) -> (CompileOutput, BTreeMap<String, Vec<u8>>) {
    let scratch = tempfile::tempdir().unwrap();
    let out = Compiler::new(host(), workers)
        .with_test_options(test)
        .compile(scratch.path(), sources)
        .unwrap();
    let bytes = bytes_by_path(&out);
    (out, bytes)
}

/// Python run in a worker before its first file: imports and compiles unrelated modules and
/// keeps them alive, so interned strings and caches have different reference counts.
const HISTORY: &str = r#"
import builtins, json, email.parser, asyncio, decimal, typing, os
keep = []
for name in ("argparse.py", "typing.py", "dataclasses.py", "enum.py", "inspect.py"):
    path = os.path.join("/usr/lib/python3.11", name)
    keep.append(compile(open(path, "rb").read(), path, "exec"))
builtins._rbuild_keep = keep
"#;

#[test]
fn stdlib_bytes_do_not_depend_on_workers_order_or_history() {
    let sources = stdlib_sources(2);
    assert!(sources.len() > 300, "{} sources", sources.len());

    let (a_out, a) = compile(1, TestOptions::default(), &sources);
    assert!(a_out.skipped.is_empty(), "{:?}", a_out.skipped);
    assert_eq!(a.len(), sources.len());
    let (_, b) = compile(
        4,
        TestOptions {
            reverse: true,
            ..TestOptions::default()
        },
        &sources,
    );
    let (_, c) = compile(
        2,
        TestOptions {
            prelude: Some(HISTORY.into()),
            ..TestOptions::default()
        },
        &sources,
    );
    for (name, other) in [
        ("4 workers, reverse order", &b),
        ("after unrelated work", &c),
    ] {
        assert_eq!(a.len(), other.len());
        let differing: Vec<_> = a
            .iter()
            .filter(|(k, v)| other.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        assert!(
            differing.is_empty(),
            "{name}: {} pycs differ, e.g. {:?}",
            differing.len(),
            &differing[..differing.len().min(5)]
        );
    }

    // The normalised files load to the same code objects as the interpreter's own output.
    let (_, raw) = compile(
        1,
        TestOptions {
            raw: true,
            ..TestOptions::default()
        },
        &sources,
    );
    let files = tempfile::tempdir().unwrap();
    let list = tempfile::NamedTempFile::new().unwrap();
    let mut pairs = String::new();
    for (i, (path, bytes)) in a.iter().enumerate() {
        let (x, y) = (
            files.path().join(format!("{i}.norm")),
            files.path().join(format!("{i}.raw")),
        );
        std::fs::write(&x, bytes).unwrap();
        std::fs::write(&y, &raw[path]).unwrap();
        pairs.push_str(&format!("{}\t{}\n", x.display(), y.display()));
    }
    std::fs::write(list.path(), pairs).unwrap();
    let check = Command::new(PY)
        .args([
            "-S",
            "-c",
            "import marshal, sys\n\
             n = 0\n\
             for line in open(sys.argv[1]):\n\
             \x20   a, b = line.rstrip('\\n').split('\\t')\n\
             \x20   x, y = open(a, 'rb').read(), open(b, 'rb').read()\n\
             \x20   assert x[:16] == y[:16], a\n\
             \x20   assert marshal.loads(x[16:]) == marshal.loads(y[16:]), a\n\
             \x20   n += 1\n\
             print(n)",
        ])
        .arg(list.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        a.len().to_string()
    );
    // Never larger than what the interpreter wrote.
    let raw_total: usize = raw.values().map(Vec::len).sum();
    let norm_total: usize = a.values().map(Vec::len).sum();
    assert!(norm_total <= raw_total, "{norm_total} > {raw_total}");
    eprintln!(
        "{} files: {norm_total} bytes of pyc normalised, {raw_total} as written by the interpreter",
        a.len()
    );
}

/// gh-129724 / astral-sh/uv#10619: with another module alive that uses the name "foo", CPython
/// writes the two equal frozensets of this module as two objects instead of one shared one.
#[test]
fn the_order_dependence_of_gh_129724_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b.py");
    std::fs::write(
        &b,
        "a = {\"foo\", 2, 3}\n\ndef f():\n    b = {\"foo\", 2, 3}\n",
    )
    .unwrap();
    let sources = vec![Source {
        image_path: "/app/b.py".into(),
        host_path: b,
    }];
    let history = "import builtins\nbuiltins._keep = compile(b'import foo\\n', 'a.py', 'exec')\n";
    let run = |raw: bool, prelude: Option<&str>| {
        compile(
            1,
            TestOptions {
                raw,
                prelude: prelude.map(str::to_owned),
                ..TestOptions::default()
            },
            &sources,
        )
        .1
    };
    let key = "/app/__pycache__/b.cpython-311.pyc";
    let (raw_fresh, raw_after) = (run(true, None), run(true, Some(history)));
    assert_ne!(
        raw_fresh[key], raw_after[key],
        "CPython's own output depends on history here (otherwise this test proves nothing)"
    );
    let (fresh, after) = (run(false, None), run(false, Some(history)));
    assert_eq!(fresh[key], after[key]);
    assert!(fresh[key].len() <= raw_fresh[key].len().min(raw_after[key].len()));
}

fn write(path: &Path, text: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn the_import_system_uses_the_pyc_without_recompiling() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let pkg = root.join("pkg");
    write(&pkg.join("__init__.py"), b"VERSION = 'init'\n");
    write(
        &pkg.join("mod.py"),
        b"KINDS = frozenset({'a', 'b', 'c'})\n\ndef f(x):\n    return f'{x}:' + ','.join(sorted(k for k in KINDS if k != x))\n\nclass C:\n    def m(self):\n        return f('b')\n",
    );
    let sources: Vec<Source> = ["__init__.py", "mod.py"]
        .iter()
        .map(|n| Source {
            image_path: pkg.join(n).to_str().unwrap().to_owned(),
            host_path: pkg.join(n),
        })
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let out = Compiler::new(host(), 1)
        .compile(scratch.path(), &sources)
        .unwrap();
    assert_eq!(out.pycs.len(), 2);
    assert_eq!(out.interpreter.cache_tag, "cpython-311");
    for p in &out.pycs {
        assert_eq!(
            Some(p.pyc_image_path.clone()),
            pyc_image_path(&p.source_image_path, "cpython-311")
        );
        let data = std::fs::read(&p.file).unwrap();
        assert_eq!(&data[4..8], &[1, 0, 0, 0], "unchecked-hash flags");
        write(Path::new(&p.pyc_image_path), &data);
    }
    // Change the sources: an unchecked-hash pyc is used without looking at them.
    write(
        &pkg.join("mod.py"),
        b"raise SystemExit('the source was compiled')\n",
    );
    let script = format!(
        "import sys; sys.path.insert(0, {root:?}); import pkg.mod as m; \
         print(m.C().m(), m.f.__code__.co_filename == {img:?}, m.__spec__.cached)",
        root = root.to_str().unwrap(),
        img = pkg.join("mod.py").to_str().unwrap(),
    );
    let run = Command::new(PY)
        .args(["-B", "-S", "-c", &script])
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        stdout.trim(),
        format!(
            "b:a,c True {}",
            pkg.join("__pycache__/mod.cpython-311.pyc").display()
        )
    );
}

#[test]
fn sources_that_do_not_compile_are_skipped_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let files: [(&str, &[u8]); 4] = [
        ("good.py", b"x = 1\n"),
        ("py2.py", b"print 'hello'\n"),
        (
            "template.py",
            b"{% if name %}import {{ name }}{% endif %}\n",
        ),
        ("nul.py", b"x = 1\0\n"),
    ];
    let sources: Vec<Source> = files
        .iter()
        .map(|(n, text)| {
            let p = dir.path().join(n);
            std::fs::write(&p, text).unwrap();
            Source {
                image_path: format!("/app/{n}"),
                host_path: p,
            }
        })
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let out = Compiler::new(host(), 2)
        .compile(scratch.path(), &sources)
        .unwrap();
    assert_eq!(out.pycs.len(), 1);
    assert_eq!(
        out.pycs[0].pyc_image_path,
        "/app/__pycache__/good.cpython-311.pyc"
    );
    let skipped: Vec<_> = out.skipped.iter().map(|s| s.image_path.as_str()).collect();
    assert_eq!(skipped, ["/app/nul.py", "/app/py2.py", "/app/template.py"]);
    assert!(
        out.skipped[1].reason.starts_with("SyntaxError: "),
        "{:?}",
        out.skipped[1]
    );
    assert!(
        out.skipped[1].reason.contains("py2.py, line 1"),
        "{:?}",
        out.skipped[1]
    );
    assert_eq!(out.compiled, 4);
    assert_eq!(out.reused, 0);
}

#[test]
fn the_cache_makes_warm_compiles_free_and_survives_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    let mut sources = Vec::new();
    for i in 0..6 {
        let p = dir.path().join(format!("m{i}.py"));
        std::fs::write(&p, format!("def f():\n    return {i}\n")).unwrap();
        sources.push(Source {
            image_path: format!("/app/m{i}.py"),
            host_path: p,
        });
    }
    let bad = dir.path().join("bad.py");
    std::fs::write(&bad, "def (:\n").unwrap();
    sources.push(Source {
        image_path: "/app/bad.py".into(),
        host_path: bad,
    });
    let run = |compiler: &Compiler| {
        let scratch = tempfile::tempdir().unwrap();
        let out = compiler.compile(scratch.path(), &sources).unwrap();
        let bytes = bytes_by_path(&out);
        (out, bytes)
    };
    let compiler = Compiler::new(host(), 2).with_cache(PycCache::new(cache_dir.path()));
    let (cold, cold_bytes) = run(&compiler);
    assert_eq!((cold.compiled, cold.reused), (7, 0));
    assert_eq!(cold.skipped.len(), 1);

    // Warm, with the interpreter info remembered: no process at all.
    let warm_compiler = Compiler::new(host(), 2)
        .with_cache(PycCache::new(cache_dir.path()))
        .with_interpreter_info(cold.interpreter.clone());
    let t = Instant::now();
    let (warm, warm_bytes) = run(&warm_compiler);
    let warm_time = t.elapsed();
    assert_eq!((warm.compiled, warm.reused), (0, 7));
    assert_eq!(warm.skipped, cold.skipped);
    assert_eq!(warm_bytes, cold_bytes);
    assert!(warm.pycs.iter().all(|p| p.reused));
    eprintln!("warm compile of 7 cached files: {warm_time:?}");

    // Corrupt two entries: truncated, wrong magic. Both are recompiled, the rest reused.
    let truncated = &warm.pycs[0].file;
    let data = std::fs::read(truncated).unwrap();
    std::fs::write(truncated, &data[..data.len() - 3]).unwrap();
    let wrong_magic = &warm.pycs[1].file;
    let mut data = std::fs::read(wrong_magic).unwrap();
    data[0] ^= 0xff;
    std::fs::write(wrong_magic, &data).unwrap();
    let (fixed, fixed_bytes) = run(&warm_compiler);
    assert_eq!((fixed.compiled, fixed.reused), (2, 5));
    assert_eq!(fixed_bytes, cold_bytes);

    // A changed source compiles again; the others are reused.
    std::fs::write(&sources[3].host_path, "def f():\n    return 'changed'\n").unwrap();
    let (changed, changed_bytes) = run(&warm_compiler);
    assert_eq!((changed.compiled, changed.reused), (1, 6));
    let key = "/app/__pycache__/m3.cpython-311.pyc";
    assert_ne!(changed_bytes[key], cold_bytes[key]);
}

/// The host interpreter, counting how many processes are started.
struct Counting {
    inner: HostPython,
    starts: std::sync::atomic::AtomicUsize,
}

impl Python for Counting {
    fn version(&self) -> PyVersion {
        self.inner.version()
    }
    fn command(
        &self,
        args: &[OsString],
        scratch: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<Command> {
        self.starts
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.command(args, scratch, env)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn a_standby_worker_compiles_the_same_bytes_and_a_foreign_one_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut sources = Vec::new();
    for i in 0..3 {
        let p = dir.path().join(format!("m{i}.py"));
        std::fs::write(
            &p,
            format!("X = {{'a{i}', 'b'}}\ndef f():\n    return {i}\n"),
        )
        .unwrap();
        sources.push(Source {
            image_path: format!("/app/m{i}.py"),
            host_path: p,
        });
    }
    let (cold, cold_bytes) = compile(1, TestOptions::default(), &sources);
    let counting = Arc::new(Counting {
        inner: HostPython::new(
            PY,
            PyVersion {
                major: 3,
                minor: 11,
            },
        ),
        starts: Default::default(),
    });
    let starts = || counting.starts.load(std::sync::atomic::Ordering::SeqCst);
    let tmp = tempfile::tempdir().unwrap();

    // Started ahead, then used: no other process, the same bytes, and its scratch dir is gone.
    let standby = Standby::start(counting.as_ref(), tmp.path()).unwrap();
    assert_eq!(starts(), 1);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    let scratch = tempfile::tempdir().unwrap();
    let out = Compiler::new(counting.clone(), 1)
        .with_interpreter_info(cold.interpreter.clone())
        .with_standby(standby)
        .compile(scratch.path(), &sources)
        .unwrap();
    assert_eq!(starts(), 1, "the standby compiled");
    assert_eq!(bytes_by_path(&out), cold_bytes);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    // A standby of another interpreter (here: the compiler expects another build) is killed and
    // a worker is started, which then reports the mismatch.
    let standby = Standby::start(counting.as_ref(), tmp.path()).unwrap();
    let mut other = cold.interpreter.clone();
    other.sys_version.push_str(" (another build)");
    let err = Compiler::new(counting.clone(), 1)
        .with_interpreter_info(other)
        .with_standby(standby)
        .compile(scratch.path(), &sources)
        .unwrap_err();
    assert!(
        matches!(err, BytecodeError::InterpreterMismatch { .. }),
        "{err}"
    );
    assert_eq!(starts(), 3, "the foreign standby was not used");

    // Unused (nothing to compile): killed with the compiler, its directory removed.
    let standby = Standby::start(counting.as_ref(), tmp.path()).unwrap();
    drop(
        Compiler::new(counting.clone(), 1)
            .with_interpreter_info(cold.interpreter.clone())
            .with_standby(standby),
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn bad_sources_are_refused_before_anything_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let compiler = Compiler::new(host(), 1);
    let s = |image: &str| Source {
        image_path: image.into(),
        host_path: "/nonexistent".into(),
    };
    assert!(matches!(
        compiler.compile(scratch.path(), &[s("/a/x.py"), s("/a/x.py")]),
        Err(BytecodeError::DuplicateSource { .. })
    ));
    assert!(matches!(
        compiler.compile(scratch.path(), &[s("a/x.py")]),
        Err(BytecodeError::InvalidSource { .. })
    ));
    let err = compiler
        .compile(scratch.path(), &[s("/a/x.py")])
        .unwrap_err();
    assert!(matches!(err, BytecodeError::ReadSource { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent"), "{err}");
}

/// An "interpreter" that runs a shell command instead of Python.
struct Fake {
    script: &'static str,
    limit: Duration,
}

impl Python for Fake {
    fn version(&self) -> PyVersion {
        PyVersion {
            major: 3,
            minor: 11,
        }
    }
    fn command(
        &self,
        _args: &[OsString],
        scratch: &Path,
        _env: &[(String, String)],
    ) -> std::io::Result<Command> {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", self.script]).current_dir(scratch).env_clear();
        Ok(c)
    }
    fn time_limit(&self) -> Duration {
        self.limit
    }
    fn describe(&self) -> String {
        "fake interpreter".into()
    }
}

fn one_source(dir: &Path) -> Vec<Source> {
    let p = dir.join("a.py");
    std::fs::write(&p, "x = 1\n").unwrap();
    vec![Source {
        image_path: "/app/a.py".into(),
        host_path: p,
    }]
}

#[test]
fn an_interpreter_printing_garbage_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake {
        script: "echo 'Segmentation fault? no: hello world'; echo oops >&2; sleep 5",
        limit: Duration::from_secs(30),
    });
    let t = Instant::now();
    let err = Compiler::new(fake, 1)
        .compile(dir.path(), &one_source(dir.path()))
        .unwrap_err();
    assert!(matches!(err, BytecodeError::Garbage { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("fake interpreter"), "{msg}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "the worker was killed"
    );
}

#[test]
fn a_hanging_interpreter_is_killed_at_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    // A grandchild keeps the pipes open: only the process-group kill and poll() end this.
    let fake = Arc::new(Fake {
        script: "sleep 60 & echo started >&2; exec sleep 60",
        limit: Duration::from_secs(1),
    });
    let t = Instant::now();
    let err = Compiler::new(fake, 1)
        .compile(dir.path(), &one_source(dir.path()))
        .unwrap_err();
    assert!(matches!(err, BytecodeError::TimedOut { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("started"), "stderr tail in {msg}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_worker_that_dies_mid_compile_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Compiler::new(host(), 1)
        .with_test_options(TestOptions {
            prelude: Some("import sys, os; sys.stderr.write('dying now\\n'); os._exit(7)".into()),
            ..TestOptions::default()
        })
        .compile(dir.path(), &one_source(dir.path()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BytecodeError::Died { .. }), "{msg}");
    assert!(msg.contains("exited with status 7"), "{msg}");
    assert!(msg.contains("while compiling /app/a.py"), "{msg}");
    assert!(msg.contains("dying now"), "{msg}");
    assert!(msg.contains(PY), "{msg}");
}

#[test]
fn a_slow_worker_is_killed_naming_the_file() {
    struct Slow(HostPython);
    impl Python for Slow {
        fn version(&self) -> PyVersion {
            self.0.version()
        }
        fn command(
            &self,
            args: &[OsString],
            scratch: &Path,
            env: &[(String, String)],
        ) -> std::io::Result<Command> {
            self.0.command(args, scratch, env)
        }
        fn time_limit(&self) -> Duration {
            // Long enough to start on a loaded machine, short enough for a test.
            Duration::from_secs(5)
        }
        fn describe(&self) -> String {
            self.0.describe()
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let slow = Arc::new(Slow(HostPython::new(
        PY,
        PyVersion {
            major: 3,
            minor: 11,
        },
    )));
    let t = Instant::now();
    let err = Compiler::new(slow, 1)
        .with_test_options(TestOptions {
            prelude: Some("import time; time.sleep(60)".into()),
            ..TestOptions::default()
        })
        .compile(dir.path(), &one_source(dir.path()))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BytecodeError::TimedOut { .. }), "{msg}");
    assert!(msg.contains("while compiling /app/a.py"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

/// `cargo test -p rbuild-bytecode --release -- --ignored --nocapture throughput`
#[test]
#[ignore = "measurement, not a check"]
fn throughput() {
    let mut sources = Vec::new();
    for prefix in ["/opt/a", "/opt/b"] {
        for s in stdlib_sources(1) {
            sources.push(Source {
                image_path: format!("{prefix}{}", s.image_path),
                host_path: s.host_path,
            });
        }
    }
    sources.truncate(1000);
    let bytes: u64 = sources
        .iter()
        .map(|s| std::fs::metadata(&s.host_path).unwrap().len())
        .sum();
    for workers in [1, 2] {
        let t = Instant::now();
        let (out, _) = compile(workers, TestOptions::default(), &sources);
        let secs = t.elapsed().as_secs_f64();
        eprintln!(
            "{workers} worker(s): {} files ({} MB source) in {secs:.2} s = {:.0} files/s ({} skipped)",
            sources.len(),
            bytes / 1_000_000,
            sources.len() as f64 / secs,
            out.skipped.len()
        );
    }
}
