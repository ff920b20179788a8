//! Versions, specifiers and markers compared with the real `packaging` 26.3 on thousands of inputs.
//!
//! Skipped with a note when the packaging 26.3 venv cannot be made (no PyPI); the unit tests still
//! cover the spec's own examples.

mod common;

use std::cmp::Ordering;
use std::io::Write;
use std::process::{Command, Stdio};

use rbuild_python::markers::{MarkerEnv, MarkerTree};
use rbuild_python::target::MajorMinor;
use rbuild_python::version::{Version, VersionSpecifier};
use serde_json::{Value, json};

fn versions() -> Vec<String> {
    let mut out = Vec::new();
    for epoch in ["", "1!"] {
        for release in ["0", "1", "1.0", "1.0.0", "1.2", "2", "1.10", "01.2"] {
            for pre in ["", "a1", "b2", "rc1", "c1", "-alpha.4", "pre", ".BETA"] {
                for post in ["", ".post1", "-2", "post", ".rev3", "-r"] {
                    for dev in ["", ".dev0", "dev2", "-dev"] {
                        for local in ["", "+abc", "+1.2", "+a.1-B", "+1.abc"] {
                            out.push(format!("{epoch}{release}{pre}{post}{dev}{local}"));
                        }
                    }
                }
            }
        }
    }
    // Malformed ones must be rejected by both.
    out.extend(
        [
            "1.",
            "v1.0",
            " 1.0 ",
            "1.0+",
            "1..0",
            "1.0a",
            "1.0-",
            "a1",
            "1.0.x",
            "1!",
            "1.0+a_",
            "1.0_post1",
            "1.0post-1",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    out
}

const SPECS: &[&str] = &[
    "==1.0",
    "==1.*",
    "==1.0.*",
    "!=1.0.*",
    "!=1.0",
    ">=1.0",
    "<=1.0",
    "<1.0",
    ">1.0",
    "~=1.0",
    "~=1.0.0",
    "===1.0",
    ">1.0.post1",
    "<1.0rc1",
    "==1!1.*",
    "==1.0+abc",
    "!=1.0+abc",
    ">=1.0a1",
    "~=1.2.post1",
    "<2",
    ">1",
    "==1.2",
    "<1.2.dev0",
    ">=1!0",
    "~=1!1.2",
    "==0.*",
    ">0",
    "<1!1.0",
];

fn markers() -> Vec<(String, Vec<String>, Vec<String>)> {
    let atoms = [
        r#"python_version >= "3.8""#,
        r#"python_version < "3.11""#,
        r#"python_version == "3.11.*""#,
        r#"python_version ~= "3.9""#,
        r#"python_version > "3.11""#,
        r#"python_version <= "3.11""#,
        r#"python_version != "3.11""#,
        r#"python_version in "3.10 3.11""#,
        r#"python_version not in "3.10 3.12""#,
        r#""3.9" < python_version"#,
        r#"python_full_version >= "3.11.2""#,
        r#"python_full_version < "3.11.2""#,
        r#"python_full_version == "3.11.2""#,
        r#"python_full_version === "3.11.2""#,
        r#"implementation_version > "3.11""#,
        r#"sys_platform == "linux""#,
        r#"sys_platform != "win32""#,
        r#"sys_platform < "linux""#,
        r#"sys_platform >= "linux""#,
        r#"sys_platform <= "darwin""#,
        r#"sys_platform in "linux2""#,
        r#""lin" in sys_platform"#,
        r#"platform_system == "Linux""#,
        r#"platform_machine == "x86_64""#,
        r#"platform_machine in "x86_64 aarch64""#,
        r#"platform_machine not in "aarch64""#,
        r#"os_name == "posix""#,
        r#"os.name == "nt""#,
        r#"implementation_name == "cpython""#,
        r#"platform_python_implementation == "CPython""#,
        r#"platform_python_implementation != "PyPy""#,
        r#"platform_release >= "5.10""#,
        r#"platform_release < "6""#,
        r#"platform_release == "6.1.0-18-amd64""#,
        r##"platform_version in "#1 SMP PREEMPT_DYNAMIC""##,
        r#"extra == "socks""#,
        r#"extra == "Foo.Bar""#,
        r#"extra != "socks""#,
        r#""socks" == extra"#,
        r#""socks" in extras"#,
        r#""Foo_Bar" in extras"#,
        r#""dev" in dependency_groups"#,
        r#""dev" not in dependency_groups"#,
        r#"python_version > "3.9a1""#,
        r#"python_version == "not.a.version""#,
        r#"platform_machine ~= "x86""#,
    ];
    let extras_sets: Vec<Vec<String>> = vec![
        vec![],
        vec!["socks".into()],
        vec!["foo-bar".into(), "other".into()],
    ];
    let groups_sets: Vec<Vec<String>> = vec![vec![], vec!["dev".into()]];
    let mut out = Vec::new();
    for a in &atoms {
        for e in &extras_sets {
            for g in &groups_sets {
                out.push((a.to_string(), e.clone(), g.clone()));
            }
        }
    }
    // Compound markers, without atoms that raise (packaging evaluates every atom; rbuild stops early).
    let safe: Vec<&str> = atoms[..atoms.len() - 1].to_vec();
    for (i, a) in safe.iter().enumerate() {
        let b = safe[(i * 7 + 3) % safe.len()];
        let c = safe[(i * 11 + 5) % safe.len()];
        for text in [
            format!("{a} and {b}"),
            format!("{a} or {b} and {c}"),
            format!("({a} or {b}) and {c}"),
            format!("{a} and ({b} or {c})"),
        ] {
            out.push((text, vec!["socks".into()], vec![]));
        }
    }
    out
}

#[test]
fn agrees_with_packaging() {
    let Some(py) = common::packaging_26_3() else {
        eprintln!("SKIPPED: the packaging 26.3 oracle is unavailable");
        return;
    };
    let versions = versions();
    let specs: Vec<(String, String)> = SPECS
        .iter()
        .flat_map(|s| {
            versions
                .iter()
                .filter(|v| Version::parse(v).is_ok())
                .step_by(7)
                .map(move |v| (s.to_string(), v.clone()))
        })
        .collect();
    let markers = markers();
    let env = json!({
        "python_version": "3.11", "python_full_version": "3.11.2", "implementation_version": "3.11.2",
        "os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
        "platform_machine": "x86_64", "platform_python_implementation": "CPython",
        "implementation_name": "cpython", "platform_release": "6.1.0-18-amd64",
        "platform_version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1",
    });
    let input = json!({
        "versions": versions,
        "specs": specs.iter().map(|(s, v)| json!([s, v])).collect::<Vec<_>>(),
        "markers": markers.iter().map(|(m, e, g)| json!([m, e, g])).collect::<Vec<_>>(),
        "env": env,
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/pep440_markers.py"
    );
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let want: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Parsing and normalization.
    let ours: Vec<Option<Version>> = versions.iter().map(|v| Version::parse(v).ok()).collect();
    for (i, v) in versions.iter().enumerate() {
        let theirs = want["versions"][i].as_str();
        assert_eq!(
            ours[i].as_ref().map(|v| v.to_string()).as_deref(),
            theirs,
            "version {v:?}"
        );
    }
    // Ordering: packaging's sorted order, consecutive pairs compared by us.
    let order: Vec<usize> = serde_json::from_value(want["order"].clone()).unwrap();
    let equal_next: Vec<bool> = serde_json::from_value(want["equal_next"].clone()).unwrap();
    for (k, pair) in order.windows(2).enumerate() {
        let (a, b) = (
            ours[pair[0]].as_ref().unwrap(),
            ours[pair[1]].as_ref().unwrap(),
        );
        let expected = if equal_next[k] {
            Ordering::Equal
        } else {
            Ordering::Less
        };
        assert_eq!(
            a.cmp(b),
            expected,
            "{} vs {}",
            versions[pair[0]],
            versions[pair[1]]
        );
    }
    // Specifiers.
    for (i, (s, v)) in specs.iter().enumerate() {
        let ours = VersionSpecifier::parse(s)
            .ok()
            .map(|spec| spec.contains(&Version::parse(v).unwrap()));
        assert_eq!(ours, want["specs"][i].as_bool(), "{v} in {s}");
    }
    // Markers.
    let menv = MarkerEnv::cpython_linux(MajorMinor::new(3, 11), Some("3.11.2"), "x86_64")
        .with_override("platform_release", "6.1.0-18-amd64")
        .unwrap()
        .with_override("platform_version", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1")
        .unwrap();
    for (i, (m, extras, groups)) in markers.iter().enumerate() {
        let ours = match MarkerTree::parse(m).and_then(|t| t.evaluate(&menv, extras, groups)) {
            Ok(b) => json!(b),
            Err(_) => json!("error"),
        };
        assert_eq!(
            ours, want["markers"][i],
            "marker {m} with extras {extras:?} groups {groups:?}"
        );
    }
    eprintln!(
        "agreed with packaging 26.3 on {} versions, {} specifier checks, {} markers",
        versions.len(),
        specs.len(),
        markers.len()
    );
}
