//! Target detection on synthetic layers shaped like real base images.

use std::io;

use rbuild_python::target::{
    InstalledDist, Libc, LibcFamily, MajorMinor, Platform, Target, TargetError, TargetOverrides,
    detect_target, target_without_base,
};

enum E<'a> {
    Dir(&'a str),
    File(&'a str, Vec<u8>),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
}
use E::*;

fn text(path: &str, s: &str) -> E<'static> {
    File(
        Box::leak(path.to_string().into_boxed_str()),
        s.as_bytes().to_vec(),
    )
}

fn layer(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        match e {
            Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, p, io::empty()).unwrap();
            }
            File(p, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, data.as_slice()).unwrap();
            }
            Link(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
            Hard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, t).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// The first bytes of an ELF64 little-endian executable whose program interpreter is `interp`.
fn elf(interp: &str) -> Vec<u8> {
    let mut v = vec![0u8; 120];
    v[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    v[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    v[0x12..0x14].copy_from_slice(&62u16.to_le_bytes()); // x86-64
    v[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    v[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    v[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    v[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    v[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
    v[72..80].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    let len = interp.len() as u64 + 1;
    v[96..104].copy_from_slice(&len.to_le_bytes()); // p_filesz
    v.extend_from_slice(interp.as_bytes());
    v.push(0);
    v.extend(vec![0xAB; 8000]); // the rest of a binary
    v
}

fn amd64() -> Platform {
    Platform::new("linux", "amd64", None)
}

fn detect(layers: Vec<Vec<u8>>, env: &[&str], o: &TargetOverrides) -> Result<Target, TargetError> {
    let env: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    detect_target(
        layers
            .into_iter()
            .map(|l| Ok::<_, io::Error>(io::Cursor::new(l))),
        &amd64(),
        &env,
        o,
    )
}

const DPKG_BOOKWORM: &str = "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\n\n\
Package: libc6\nStatus: install ok installed\nPriority: optional\nVersion: 2.36-9+deb12u7\nDepends: libgcc-s1\nDescription: GNU C Library\n shared libraries\n\n";

fn debian_base() -> Vec<u8> {
    layer(&[
        Link("bin", "usr/bin"),
        Link("lib", "usr/lib"),
        Link("lib64", "usr/lib64"),
        Dir("usr/"),
        Dir("usr/bin/"),
        Dir("usr/lib/x86_64-linux-gnu/"),
        File(
            "usr/lib/x86_64-linux-gnu/libc.so.6",
            [
                vec![0u8; 70_000],
                b"GNU C Library (Debian GLIBC 2.36-9+deb12u7) stable release version 2.36.\n"
                    .to_vec(),
            ]
            .concat(),
        ),
        Link(
            "usr/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        ),
        text("var/lib/dpkg/status", DPKG_BOOKWORM),
    ])
}

fn dist_info(site: &str, dir: &str, name: &str, version: &str, record: bool) -> Vec<E<'static>> {
    let mut v = vec![text(
        &format!("{site}/{dir}/METADATA"),
        &format!(
            "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: x\n\nName: not-this\n"
        ),
    )];
    if record {
        v.push(text(&format!("{site}/{dir}/RECORD"), "a,,\n"));
    }
    v
}

fn dockerhub_python() -> Vec<u8> {
    let site = "usr/local/lib/python3.12/site-packages";
    let mut e = vec![
        File(
            "usr/local/bin/python3.12",
            elf("/lib64/ld-linux-x86-64.so.2"),
        ),
        Link("usr/local/bin/python3", "python3.12"),
        Link("usr/local/bin/python", "python3"),
        Link("usr/local/bin/pip", "pip3"),
        text(
            "usr/local/include/python3.12/patchlevel.h",
            "#define PY_MAJOR_VERSION 3\n#define PY_VERSION      \"3.12.4\"\n",
        ),
        Dir("usr/local/lib/python3.12/"),
        Dir("usr/local/lib/python3.12/site-packages/"),
        text("usr/local/lib/python3.12/os.py", "# os\n"),
    ];
    e.extend(dist_info(site, "pip-24.0.dist-info", "pip", "24.0", true));
    e.extend(dist_info(
        site,
        "setuptools-69.5.1.dist-info",
        "setuptools",
        "69.5.1",
        true,
    ));
    layer(&e)
}

const HUB_ENV: &[&str] = &[
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "PYTHON_VERSION=3.12.9",
];

#[test]
fn docker_hub_layout() {
    let t = detect(
        vec![debian_base(), dockerhub_python()],
        HUB_ENV,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.python_version, MajorMinor::new(3, 12));
    // patchlevel.h is read before the config's PYTHON_VERSION.
    assert_eq!(t.python_full_version.as_deref(), Some("3.12.4"));
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.12/site-packages");
    assert_eq!(t.scheme.platlib, "/usr/local/lib/python3.12/site-packages");
    assert_eq!(t.scheme.scripts, "/usr/local/bin");
    assert_eq!(t.scheme.data, "/usr/local");
    assert_eq!(t.scheme.headers, "/usr/local/include/python3.12");
    assert_eq!(t.libc, Libc::glibc(2, 36));
    assert_eq!(t.arch, "x86_64");
    let names: Vec<(&str, &str, bool)> = t
        .installed
        .iter()
        .map(|d| (d.name.as_str(), d.version.as_str(), d.has_record))
        .collect();
    assert_eq!(
        names,
        [("pip", "24.0", true), ("setuptools", "69.5.1", true)]
    );
    assert_eq!(
        t.installed[0].dist_info_path,
        "/usr/local/lib/python3.12/site-packages/pip-24.0.dist-info"
    );

    // Serialized as recorded in images: strings for versions, lowercase family.
    let j = serde_json::to_value(&t).unwrap();
    assert_eq!(j["python_version"], "3.12");
    assert_eq!(j["libc"]["family"], "glibc");
    assert_eq!(j["libc"]["version"], "2.36");
    assert_eq!(j["platform"]["architecture"], "amd64");
    let back: Target = serde_json::from_value(j).unwrap();
    assert_eq!(back, t);
    assert_eq!(
        t.tags().to_strings()[1],
        "cp312-cp312-manylinux_2_36_x86_64"
    );
}

#[test]
fn docker_hub_full_version_from_env_without_headers() {
    let base = debian_base();
    let py = layer(&[
        File(
            "usr/local/bin/python3.12",
            elf("/lib64/ld-linux-x86-64.so.2"),
        ),
        Link("usr/local/bin/python3", "python3.12"),
    ]);
    let t = detect(
        vec![base.clone(), py.clone()],
        HUB_ENV,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.python_full_version.as_deref(), Some("3.12.9"));
    // Without PATH in the config, Docker's default PATH is searched; without PYTHON_VERSION the patch
    // version is unknown.
    let t = detect(vec![base, py], &[], &TargetOverrides::default()).unwrap();
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");
    assert_eq!(t.python_full_version, None);
}

fn debian_python() -> Vec<u8> {
    let mut status = DPKG_BOOKWORM.to_string();
    status.push_str(
        "Package: python3.11-minimal\nStatus: install ok installed\nVersion: 3.11.2-6+deb12u5\n\n",
    );
    status.push_str("Package: python3\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n");
    let mut e = vec![
        File("usr/bin/python3.11", elf("/lib64/ld-linux-x86-64.so.2")),
        Link("usr/bin/python3", "python3.11"),
        Dir("usr/lib/python3/"),
        Dir("usr/lib/python3/dist-packages/"),
        text("usr/lib/python3.11/os.py", "#\n"),
        text("var/lib/dpkg/status", &status),
    ];
    e.extend(dist_info(
        "usr/lib/python3/dist-packages",
        "six-1.16.0.dist-info",
        "six",
        "1.16.0",
        true,
    ));
    // Debian's own packages often lack RECORD.
    e.push(text(
        "usr/lib/python3/dist-packages/chardet-5.1.0.dist-info/INSTALLER",
        "debian\n",
    ));
    e.extend(dist_info(
        "usr/local/lib/python3.11/dist-packages",
        "pip-25.0.1.dist-info",
        "pip",
        "25.0.1",
        true,
    ));
    // A dist-info elsewhere is not on this interpreter's path.
    e.extend(dist_info(
        "opt/other/lib/python3.11/site-packages",
        "nope-1.dist-info",
        "nope",
        "1",
        true,
    ));
    layer(&e)
}

#[test]
fn debian_layout() {
    let env = &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    let t = detect(
        vec![debian_base(), debian_python()],
        env,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.python_version, MajorMinor::new(3, 11));
    assert_eq!(t.python_full_version.as_deref(), Some("3.11.2"));
    assert_eq!(t.interpreter, "/usr/bin/python3.11");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.11/dist-packages");
    assert_eq!(t.scheme.platlib, "/usr/local/lib/python3.11/dist-packages");
    assert_eq!(t.scheme.scripts, "/usr/local/bin");
    assert_eq!(t.scheme.data, "/usr/local");
    assert_eq!(t.scheme.headers, "/usr/local/include/python3.11");
    assert_eq!(t.libc, Libc::glibc(2, 36));
    assert_eq!(
        t.installed,
        vec![
            InstalledDist {
                name: "chardet".into(),
                version: "5.1.0".into(),
                dist_info_path: "/usr/lib/python3/dist-packages/chardet-5.1.0.dist-info".into(),
                has_record: false,
            },
            InstalledDist {
                name: "pip".into(),
                version: "25.0.1".into(),
                dist_info_path: "/usr/local/lib/python3.11/dist-packages/pip-25.0.1.dist-info"
                    .into(),
                has_record: true,
            },
            InstalledDist {
                name: "six".into(),
                version: "1.16.0".into(),
                dist_info_path: "/usr/lib/python3/dist-packages/six-1.16.0.dist-info".into(),
                has_record: true,
            },
        ]
    );
}

fn alpine(with_apk: bool, python_prefix: &str) -> Vec<Vec<u8>> {
    let mut base = vec![
        File("lib/ld-musl-x86_64.so.1", vec![0x7f; 100]),
        Link("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
        Dir("usr/bin/"),
    ];
    if with_apk {
        base.push(text(
            "lib/apk/db/installed",
            "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nP:busybox\nV:1.36.1-r15\n\nP:python3\nV:3.11.9-r0\n\n",
        ));
    }
    let py = layer(&[
        File(
            Box::leak(format!("{python_prefix}/bin/python3.11").into_boxed_str()),
            elf("/lib/ld-musl-x86_64.so.1"),
        ),
        Link(
            Box::leak(format!("{python_prefix}/bin/python3").into_boxed_str()),
            "python3.11",
        ),
    ]);
    vec![layer(&base), py]
}

#[test]
fn alpine_layout() {
    let t = detect(alpine(true, "usr"), &[], &TargetOverrides::default()).unwrap();
    assert_eq!(t.libc, Libc::musl(1, 2));
    assert_eq!(t.interpreter, "/usr/bin/python3.11");
    assert_eq!(t.python_full_version.as_deref(), Some("3.11.9"));
    assert_eq!(t.scheme.purelib, "/usr/lib/python3.11/site-packages");
    assert_eq!(t.scheme.scripts, "/usr/bin");
    assert_eq!(t.scheme.data, "/usr");
    assert_eq!(t.tags().to_strings()[1], "cp311-cp311-musllinux_1_2_x86_64");

    // Docker Hub's python:3.11-alpine: its own /usr/local Python; apk's python3 is not it.
    let t = detect(alpine(true, "usr/local"), &[], &TargetOverrides::default()).unwrap();
    assert_eq!(t.interpreter, "/usr/local/bin/python3.11");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.11/site-packages");
    assert_eq!(t.python_full_version, None);
    assert_eq!(t.libc.family, LibcFamily::Musl);
}

#[test]
fn musl_without_apk_database_needs_libc_flag() {
    let err = detect(alpine(false, "usr/local"), &[], &TargetOverrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TargetError::NoLibc { .. }), "{err:?}");
    assert!(
        msg.contains("--libc") && msg.contains("/lib/ld-musl-x86_64.so.1"),
        "{msg}"
    );
    let mut o = TargetOverrides::default();
    o.set_libc("musl-1.1").unwrap();
    let t = detect(alpine(false, "usr/local"), &[], &o).unwrap();
    assert_eq!(t.libc, Libc::musl(1, 1));
}

#[test]
fn whiteout_removes_a_python_and_a_dist() {
    let top = layer(&[
        text("usr/local/bin/.wh.python3.12", ""),
        text("usr/local/bin/.wh.python3", ""),
        text("usr/local/bin/.wh.python", ""),
        text("usr/lib/python3/dist-packages/.wh.six-1.16.0.dist-info", ""),
    ]);
    let env = &["PATH=/usr/local/bin:/usr/bin:/bin"];
    let both = vec![debian_base(), debian_python(), dockerhub_python()];
    let t = detect(both.clone(), env, &TargetOverrides::default()).unwrap();
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");

    let mut layers = both;
    layers.push(top);
    let t = detect(layers, env, &TargetOverrides::default()).unwrap();
    assert_eq!(t.interpreter, "/usr/bin/python3.11");
    assert!(
        t.installed.iter().all(|d| d.name != "six"),
        "{:?}",
        t.installed
    );
    assert!(t.installed.iter().any(|d| d.name == "chardet"));
}

#[test]
fn opaque_directory_hides_lower_contents() {
    let site = "usr/local/lib/python3.12/site-packages";
    let mut e = vec![text(&format!("{site}/.wh..wh..opq"), "")];
    e.extend(dist_info(
        site,
        "requests-2.32.3.dist-info",
        "requests",
        "2.32.3",
        false,
    ));
    let top = layer(&e);
    let t = detect(
        vec![debian_base(), dockerhub_python(), top],
        HUB_ENV,
        &TargetOverrides::default(),
    )
    .unwrap();
    let names: Vec<&str> = t.installed.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["requests"]);
    assert!(!t.installed[0].has_record);
    // The opaque directory only hides what is below it: the interpreter is still there.
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");
}

#[test]
fn a_file_replacing_a_directory_hides_its_contents() {
    let top = layer(&[text(
        "usr/local/lib/python3.12/site-packages",
        "not a dir any more",
    )]);
    let t = detect(
        vec![debian_base(), dockerhub_python(), top],
        HUB_ENV,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert!(t.installed.is_empty(), "{:?}", t.installed);
}

#[test]
fn ubi_s2i_venv() {
    let base = layer(&[
        Dir("usr/lib64/python3.11/"),
        text("usr/lib64/python3.11/os.py", "#\n"),
        File("usr/bin/python3.11", elf("/lib64/ld-linux-x86-64.so.2")),
        Link("usr/bin/python3", "python3.11"),
        File(
            "usr/lib64/libc.so.6",
            [
                b"junk".to_vec(),
                b"GNU C Library (GNU libc) stable release version 2.34.".to_vec(),
            ]
            .concat(),
        ),
        Link(
            "usr/lib64/ld-linux-x86-64.so.2",
            "ld-linux-x86-64.so.2.real",
        ),
    ]);
    let mut e = vec![
        text(
            "opt/app-root/pyvenv.cfg",
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n",
        ),
        Link("opt/app-root/bin/python3.11", "/usr/bin/python3.11"),
        Link("opt/app-root/bin/python3", "python3.11"),
        Link("opt/app-root/bin/python", "python3.11"),
        Link("opt/app-root/lib64", "lib"),
    ];
    e.extend(dist_info(
        "opt/app-root/lib/python3.11/site-packages",
        "pip-23.3.2.dist-info",
        "pip",
        "23.3.2",
        true,
    ));
    let app = layer(&e);
    let env = &[
        "PATH=/opt/app-root/src/.local/bin/:/opt/app-root/src/bin:/opt/app-root/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHON_VERSION=3.11",
    ];
    let t = detect(
        vec![base.clone(), app.clone()],
        env,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.interpreter, "/opt/app-root/bin/python3.11");
    assert_eq!(t.python_full_version.as_deref(), Some("3.11.7"));
    assert_eq!(
        t.scheme.purelib,
        "/opt/app-root/lib/python3.11/site-packages"
    );
    assert_eq!(t.scheme.scripts, "/opt/app-root/bin");
    assert_eq!(t.scheme.headers, "/opt/app-root/include/site/python3.11");
    assert_eq!(t.libc, Libc::glibc(2, 34));
    assert_eq!(t.installed.len(), 1);

    // Without the venv on PATH, the system Python of an RPM distribution.
    let t = detect(vec![base], &["PATH=/usr/bin"], &TargetOverrides::default()).unwrap();
    assert_eq!(t.interpreter, "/usr/bin/python3.11");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.11/site-packages");
    assert_eq!(
        t.scheme.platlib,
        "/usr/local/lib64/python3.11/site-packages"
    );
}

#[test]
fn overrides_win() {
    let mut o = TargetOverrides::default();
    o.set_python_version("3.12.1").unwrap();
    o.set_site_packages("/app/site").unwrap();
    o.set_libc("glibc-2.28").unwrap();
    let t = detect(vec![debian_base(), dockerhub_python()], HUB_ENV, &o).unwrap();
    assert_eq!(t.python_full_version.as_deref(), Some("3.12.1"));
    assert_eq!(t.scheme.purelib, "/app/site");
    assert_eq!(t.scheme.scripts, "/usr/local/bin");
    assert_eq!(t.libc, Libc::glibc(2, 28));

    let mut o = TargetOverrides::default();
    o.set_interpreter("/usr/local/bin/python3.12").unwrap();
    let t = detect(
        vec![debian_base(), dockerhub_python(), debian_python()],
        &[],
        &o,
    )
    .unwrap();
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");

    // Asking for a Python the image does not have.
    let mut o = TargetOverrides::default();
    o.set_python_version("3.13").unwrap();
    let err = detect(vec![debian_base(), dockerhub_python()], HUB_ENV, &o).unwrap_err();
    assert!(matches!(err, TargetError::PythonMismatch { .. }), "{err}");
    assert!(err.to_string().contains("--interpreter"), "{err}");

    // With both Pythons present, --python-version picks the matching one even if it is later on PATH.
    let mut o = TargetOverrides::default();
    o.set_python_version("3.11").unwrap();
    let t = detect(
        vec![debian_base(), dockerhub_python(), debian_python()],
        HUB_ENV,
        &o,
    )
    .unwrap();
    assert_eq!(t.interpreter, "/usr/bin/python3.11");

    for bad in ["3", "3.x", "2.7", "3.11.2.1", "3.12+local"] {
        assert!(
            TargetOverrides::default().set_python_version(bad).is_err(),
            "{bad}"
        );
    }
    assert!(
        TargetOverrides::default()
            .set_site_packages("relative/dir")
            .is_err()
    );
    assert!(
        TargetOverrides::default()
            .set_interpreter("/usr/../etc/x")
            .is_err()
    );
    assert!(TargetOverrides::default().set_libc("glibc").is_err());
}

#[test]
fn no_python_lists_what_was_found() {
    let err = detect(vec![debian_base()], &[], &TargetOverrides::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TargetError::NoPython { .. }), "{msg}");
    assert!(
        msg.contains("--python-version") && msg.contains("--interpreter"),
        "{msg}"
    );
    assert!(msg.contains("/usr/local/bin"), "{msg}");

    // A python outside PATH is reported.
    let odd = layer(&[File(
        "opt/py/bin/python3.10",
        elf("/lib64/ld-linux-x86-64.so.2"),
    )]);
    let msg = detect(
        vec![debian_base(), odd],
        &["PATH=/usr/bin"],
        &TargetOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("/opt/py/bin/python3.10"), "{msg}");
}

#[test]
fn scratch_uses_docker_hub_layout() {
    let mut o = TargetOverrides::default();
    o.set_python_version("3.12").unwrap();
    assert!(target_without_base(&amd64(), &o).is_err());
    o.set_libc("glibc-2.36").unwrap();
    let t = target_without_base(&amd64(), &o).unwrap();
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.12/site-packages");
    assert_eq!(t.scheme.headers, "/usr/local/include/python3.12");
    assert!(t.installed.is_empty());

    o.set_interpreter("/opt/py/bin/python3.12").unwrap();
    let t = target_without_base(&amd64(), &o).unwrap();
    assert_eq!(t.scheme.purelib, "/opt/py/lib/python3.12/site-packages");
    assert_eq!(t.scheme.scripts, "/opt/py/bin");
}

#[test]
fn layer_errors_and_platforms() {
    let layers: Vec<io::Result<io::Cursor<Vec<u8>>>> = vec![
        Ok(io::Cursor::new(debian_base())),
        Err(io::Error::other("blob missing")),
    ];
    let err = detect_target(layers, &amd64(), &[], &TargetOverrides::default()).unwrap_err();
    assert!(matches!(err, TargetError::Layer { index: 1, .. }), "{err}");

    let mut garbage = debian_base();
    garbage.truncate(700);
    assert!(matches!(
        detect(vec![garbage], &[], &TargetOverrides::default()),
        Err(TargetError::Layer { index: 0, .. })
    ));

    let p = Platform::new("windows", "amd64", None);
    let none: Vec<io::Result<io::Empty>> = vec![];
    assert!(detect_target(none, &p, &[], &TargetOverrides::default()).is_err());
    let p = Platform::new("linux", "mips64le", None);
    let none: Vec<io::Result<io::Empty>> = vec![];
    assert!(matches!(
        detect_target(none, &p, &[], &TargetOverrides::default()),
        Err(TargetError::UnsupportedPlatform { .. })
    ));
}

#[test]
fn arm64_marker_env() {
    let p = Platform::new("linux", "arm64", Some("v8"));
    let layers = vec![debian_base(), debian_python()];
    let t = detect_target(
        layers
            .into_iter()
            .map(|l| Ok::<_, io::Error>(io::Cursor::new(l))),
        &p,
        &[],
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.arch, "aarch64");
    let env = t.marker_env();
    let m = rbuild_python::markers::MarkerTree::parse(
        r#"platform_machine == "aarch64" and python_full_version == "3.11.2""#,
    )
    .unwrap();
    assert!(m.evaluate(&env, &[], &[]).unwrap());
}

#[test]
fn hard_linked_interpreter() {
    let py = layer(&[
        File("usr/local/bin/python3.12", elf("/lib/ld-musl-x86_64.so.1")),
        Hard("usr/local/bin/python3", "usr/local/bin/python3.12"),
        text("lib/apk/db/installed", "P:musl\nV:1.2.5-r0\n"),
    ]);
    let t = detect(vec![py], &[], &TargetOverrides::default()).unwrap();
    // The hard link's target names the version.
    assert_eq!(t.interpreter, "/usr/local/bin/python3.12");
    assert_eq!(t.libc, Libc::musl(1, 2));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Layers are untrusted input: corrupted tar streams give an error or a result, never a panic.
    #[test]
    fn corrupted_layers_never_panic(
        flips in proptest::collection::vec((0usize..40_000, proptest::num::u8::ANY), 1..40),
        cut in proptest::option::of(0usize..40_000),
    ) {
        let mut l = debian_python();
        for (pos, byte) in flips {
            let i = pos % l.len();
            l[i] = byte;
        }
        if let Some(c) = cut {
            l.truncate(c % l.len());
        }
        let _ = detect(vec![debian_base(), l], HUB_ENV, &TargetOverrides::default());
    }
}

/// Debian's python with `/usr/lib/python3/dist-packages` and the dpkg database removed (as
/// trimmed or chiselled images are): its `sysconfig.py` still defines `posix_local`, the scheme the
/// interpreter uses, so packages go to `/usr/local/lib/python3.11/dist-packages`, on its sys.path.
#[test]
fn trimmed_debian_python_is_still_debian() {
    let debian_sysconfig = "_INSTALL_SCHEMES = {\n    'posix_prefix': {},\n    'posix_local': {\n        'purelib': '{base}/local/lib/python{py_version_short}/dist-packages',\n    },\n}\n";
    let env = &["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
    let trimmed = |sysconfig: &str, dist_packages: bool| {
        let mut e = vec![
            File("usr/bin/python3.11", elf("/lib64/ld-linux-x86-64.so.2")),
            Link("usr/bin/python3", "python3.11"),
            text("usr/lib/python3.11/os.py", "#\n"),
            text("usr/lib/python3.11/sysconfig.py", sysconfig),
        ];
        if dist_packages {
            e.push(Dir("usr/lib/python3/dist-packages/"));
        }
        layer(&e)
    };
    let t = detect(
        vec![debian_base(), trimmed(debian_sysconfig, false)],
        env,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.scheme.purelib, "/usr/local/lib/python3.11/dist-packages");
    assert_eq!(t.scheme.scripts, "/usr/local/bin");

    // An upstream sysconfig.py in /usr (no Debian scheme, no Debian directory): site-packages.
    let upstream = "_INSTALL_SCHEMES = {\n    'posix_prefix': {},\n}\n";
    let t = detect(
        vec![debian_base(), trimmed(upstream, false)],
        env,
        &TargetOverrides::default(),
    )
    .unwrap();
    assert_eq!(t.scheme.purelib, "/usr/lib/python3.11/site-packages");

    // Conflicting evidence: an upstream sysconfig.py next to Debian's dist-packages fails, with it.
    let err = detect(
        vec![debian_base(), trimmed(upstream, true)],
        env,
        &TargetOverrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("/usr/lib/python3.11/sysconfig.py has no Debian posix_local scheme")
            && err.contains("/usr/lib/python3/dist-packages")
            && err.contains("--site-packages"),
        "{err}"
    );
}
