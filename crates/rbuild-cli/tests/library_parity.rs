//! `rbuild build` and the library's `rbuild::Build` read the same settings the same way: the
//! same project, with `SOURCE_DATE_EPOCH` set and a `[tool.rbuild]` table, gives the same image;
//! and wrong settings fail in the CLI before the package index is asked.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rbuild_e2e::rbuild;

const EPOCH: &str = "1700000000";

const TARGET: &[&str] = &[
    "--base",
    "scratch",
    "--python-version",
    "3.11",
    "--libc",
    "glibc-2.36",
    "--platform",
    "linux/amd64",
];

fn project(dir: &Path) {
    std::fs::write(dir.join("main.py"), "print('hello')\n").unwrap();
    std::fs::write(
        dir.join("pyproject.toml"),
        "[project]\nname = \"parity\"\n\n[tool.rbuild]\nentrypoint = [\"/usr/local/bin/python3\", \"-m\", \"main\"]\nports = [8000, \"53/udp\"]\nuser = \"2000:2000\"\napp-dir = \"/srv/app\"\n\n[tool.rbuild.env]\nGREETING = \"hi\"\n\n[tool.rbuild.labels]\nteam = \"core\"\n",
    )
    .unwrap();
}

#[test]
fn the_library_and_the_cli_build_the_same_image() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    // The only test in this binary that reads the process environment through the library.
    // SAFETY: set before any thread of this test starts; no other test reads it.
    unsafe { std::env::set_var("SOURCE_DATE_EPOCH", EPOCH) };
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let cache = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();

    let layout = format!("oci:{}:cli", out.path().join("cli").display());
    let mut args = vec!["build", "--json"];
    args.extend_from_slice(TARGET);
    args.extend(["--output", layout.as_str()]);
    let cli = rbuild(
        dir.path(),
        cache.path(),
        &[("SOURCE_DATE_EPOCH", EPOCH)],
        &args,
    )
    .ok()
    .json();
    let cli_digest = cli["digest"].as_str().unwrap().to_string();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lib = rt.block_on(async {
        rbuild::Build::new("scratch")
            .context(dir.path())
            .platforms(["linux/amd64".parse::<rbuild::Platform>().unwrap()])
            .python_version("3.11")
            .libc("glibc-2.36")
            .store(rbuild::Store::open(cache.path()).unwrap())
            .build()
            .await
            .unwrap()
    });
    assert_eq!(
        lib.digest().to_string(),
        cli_digest,
        "same project, same image"
    );

    // The settings did reach the image (so the equality above is not two images ignoring them).
    let config: serde_json::Value =
        serde_json::from_slice(&lib.image().images[0].config_bytes).unwrap();
    let c = &config["config"];
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["User"], "2000:2000");
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["Labels"]["team"], "core");
    assert!(c["ExposedPorts"].get("8000/tcp").is_some());
    assert!(c["ExposedPorts"].get("53/udp").is_some());
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hi")
    );

    // Isolated: neither the project file nor SOURCE_DATE_EPOCH, so another image.
    let isolated = rt.block_on(async {
        rbuild::Build::new("scratch")
            .isolated()
            .context(dir.path())
            .platforms(["linux/amd64".parse::<rbuild::Platform>().unwrap()])
            .python_version("3.11")
            .libc("glibc-2.36")
            .store(rbuild::Store::open(cache.path()).unwrap())
            .build()
            .await
            .unwrap()
    });
    assert_ne!(isolated.digest().to_string(), cli_digest);
    let config: serde_json::Value =
        serde_json::from_slice(&isolated.image().images[0].config_bytes).unwrap();
    assert_eq!(config["created"], "1980-01-01T00:00:00Z");
    assert_eq!(config["config"]["WorkingDir"], "/app");
}

/// A listener that counts connections and answers each with `404 Not Found`.
fn index() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/simple", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { break };
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, hits)
}

#[test]
fn bad_user_port_and_recipe_fail_before_the_index_is_asked() {
    rbuild_e2e::set_bin(env!("CARGO_BIN_EXE_rbuild"));
    let (url, hits) = index();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), "print('hi')\n").unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "build",
            "--no-push",
            "--entrypoint",
            r#"["python3","-m","main"]"#,
        ];
        args.extend_from_slice(TARGET);
        args.extend(["--index-url", url.as_str()]);
        args.extend_from_slice(extra);
        rbuild(dir.path(), cache.path(), &[], &args)
    };
    for (extra, message) in [
        (
            ["--user", "app"],
            "--user \"app\": expected numeric UID[:GID]",
        ),
        (
            ["--port", "80/http"],
            "--port \"80/http\": expected a number",
        ),
        (
            ["--recipe", "fastapy"],
            "no recipe named \"fastapy\"; available: django, fastapi, flask",
        ),
    ] {
        let r = run(&extra);
        // Usage errors: exit 2, before any work.
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains(message), "{extra:?}: {}", r.stderr);
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "{extra:?}: the index was asked"
        );
    }
    // The control: valid settings do reach the index (which has no six).
    let r = run(&[]);
    assert_ne!(r.code, 0);
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "the control never asked the index: {}",
        r.stderr
    );
}
