//! Property tests: no reader panics, whatever the input (arbitrary text, and structured fragments that
//! get past the TOML parser into the graph walks). A fixed number of cases keeps CI deterministic in time.

mod common;

use std::path::Path;

use proptest::prelude::*;
use rbuild_lock::{LockFormat, ResolveOptions, read_lock_str};

/// 256 cases per property in CI; `RBUILD_PROPTEST_CASES=N` runs more locally.
fn cases() -> u32 {
    std::env::var("RBUILD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn options() -> impl Strategy<Value = ResolveOptions> {
    (
        prop::collection::vec(
            prop_oneof![
                Just("cli".to_string()),
                Just("standard".to_string()),
                "[a-z]{1,3}"
            ],
            0..2,
        ),
        prop::collection::vec(
            prop_oneof![
                Just("dev".to_string()),
                Just("main".to_string()),
                "[a-z]{1,3}"
            ],
            0..2,
        ),
        any::<bool>(),
    )
        .prop_map(|(extras, groups, require_hashes)| ResolveOptions {
            extras,
            groups,
            require_hashes,
        })
}

/// Runs every reader on the text; only panics fail the test.
fn all_formats(dir: &Path, text: &str, opts: &ResolveOptions) {
    for (format, name) in [
        (LockFormat::UvLock, "uv.lock"),
        (LockFormat::Pylock, "pylock.toml"),
        (LockFormat::PoetryLock, "poetry.lock"),
        (LockFormat::Requirements, "requirements.txt"),
    ] {
        if let Ok(lock) = read_lock_str(format, &dir.join(name), text, &common::env311(), opts) {
            for p in &lock.packages {
                assert!(rbuild_python::validate_name(&p.name).is_ok(), "{}", p.name);
                let _ = rbuild_lock::choose_wheel(p, &common::tags311());
            }
        }
    }
}

// --- requirements files ---

fn req_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("idna".to_string()),
        Just("Requests[socks]".to_string()),
        Just("../evil".to_string()),
        Just("==".to_string()),
        Just("===".to_string()),
        Just(">=".to_string()),
        Just("3.20".to_string()),
        Just("1.0.*".to_string()),
        Just(" ; ".to_string()),
        Just("sys_platform == 'win32'".to_string()),
        Just("platform_release >= '5'".to_string()),
        Just("python_full_version < \"3.11\" and extra == 'x'".to_string()),
        Just(
            " --hash=sha256:0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5"
                .to_string()
        ),
        Just(" --hash sha512:00".to_string()),
        Just(" \\\n    ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just(" # comment".to_string()),
        Just("#".to_string()),
        Just("-r ".to_string()),
        Just("-c ".to_string()),
        Just("-e .".to_string()),
        Just("-i https://x/simple".to_string()),
        Just("--require-hashes".to_string()),
        Just(" @ git+https://h/r.git".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("-é".to_string()),
        "[ -~]{0,8}",
        any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), opts in options()) {
        let tmp = tempfile::tempdir().unwrap();
        all_formats(tmp.path(), &text, &opts);
    }

    #[test]
    fn requirements_fragments_never_panic(
        tokens in prop::collection::vec(req_token(), 0..40),
        opts in options(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        // Some include targets exist, including one that includes the top file (a cycle).
        common::write(tmp.path(), "x", "idna==3.20\n-r requirements.txt\n");
        let text: String = tokens.concat();
        let _ = read_lock_str(
            LockFormat::Requirements,
            &tmp.path().join("requirements.txt"),
            &text,
            &common::env311(),
            &opts,
        );
    }
}

// --- TOML formats: generated documents that parse, with hostile values ---

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string()), Just("A_b".to_string())],
        1 => Just("app".to_string()),
        1 => Just("../evil".to_string()),
        1 => "[a-c]{1,2}",
    ]
}

/// Dependency names: hostile ones are rarer here, since one bad name refuses the whole lock.
fn dep_name() -> impl Strategy<Value = String> {
    prop_oneof![
        200 => prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("c".to_string()), Just("A_b".to_string())],
        1 => Just("../evil".to_string()),
        1 => "[a-c]{1,2}",
    ]
}

fn version() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop_oneof![Just("1.0".to_string()), Just("2".to_string())],
        1 => Just("x".to_string()),
        1 => "[0-9]{1,20}(\\.[0-9]{1,3}){0,2}",
    ]
}

fn marker() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => prop_oneof![
            Just("sys_platform == 'linux'".to_string()),
            Just("python_full_version < '3.11'".to_string()),
            Just("extra == 'cli'".to_string()),
            Just("'dev' in dependency_groups".to_string()),
            Just("'cli' in extras".to_string()),
            Just("extra == 'extra-3-app-cli'".to_string()),
        ],
        1 => Just("platform_release > '1'".to_string()),
        1 => Just("(((".to_string()),
        1 => "[ -~]{0,10}",
    ]
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn file_entry(uv: bool) -> impl Strategy<Value = String> {
    (
        prop_oneof![
            8 => prop_oneof![
                Just("a-1.0-py3-none-any.whl".to_string()),
                Just("b-2-cp311-cp311-manylinux_2_17_x86_64.whl".to_string()),
                Just("c-1.0.tar.gz".to_string()),
            ],
            1 => Just("../x.whl".to_string()),
            1 => "[ -~]{0,12}",
        ],
        prop_oneof![
            8 => Just("0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5".to_string()),
            1 => Just("zz".to_string()),
        ],
        prop::bool::weighted(0.1),
        any::<u64>(),
    )
        .prop_map(move |(file, hash, by_path, size)| {
            let loc = if by_path {
                format!("path = {}", toml_str(&file))
            } else {
                format!("url = {}", toml_str(&format!("https://h/p/{file}")))
            };
            if uv {
                format!("{{ {loc}, hash = {}, size = {} }}", toml_str(&format!("sha256:{hash}")), size / 2)
            } else {
                format!("{{ {loc}, size = {}, hashes = {{ sha256 = {} }} }}", size / 2, toml_str(&hash))
            }
        })
}

fn uv_source() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => Just("{ registry = \"https://pypi.org/simple\" }".to_string()),
        1 => Just("{ registry = \"wheels\" }".to_string()),
        1 => Just("{ editable = \".\" }".to_string()),
        1 => Just("{ virtual = \".\" }".to_string()),
        1 => Just("{ git = \"https://g/r\" }".to_string()),
        1 => Just("{ path = \"x\" }".to_string()),
        1 => Just("{ }".to_string()),
    ]
}

fn uv_dep() -> impl Strategy<Value = String> {
    (
        dep_name(),
        prop::option::weighted(0.1, version()),
        prop::option::weighted(0.3, marker()),
        prop::collection::vec(
            prop_oneof![Just("cli".to_string()), Just("x".to_string())],
            0..2,
        ),
    )
        .prop_map(|(n, v, m, extra)| {
            let mut s = format!("{{ name = {}", toml_str(&n));
            if let Some(v) = v {
                s += &format!(", version = {}", toml_str(&v));
            }
            if let Some(m) = m {
                s += &format!(", marker = {}", toml_str(&m));
            }
            if !extra.is_empty() {
                s += &format!(
                    ", extra = [{}]",
                    extra
                        .iter()
                        .map(|e| toml_str(e))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            s + " }"
        })
}

/// A project root depending on some of the generated names.
fn uv_root() -> impl Strategy<Value = String> {
    (prop::collection::vec(uv_dep(), 0..4), prop::collection::vec(uv_dep(), 0..2), prop::collection::vec(uv_dep(), 0..2)).prop_map(
        |(deps, opt, dev)| {
            format!(
                "[[package]]\nname = \"app\"\nversion = \"0.1\"\nsource = {{ virtual = \".\" }}\n\
                 dependencies = [{}]\noptional-dependencies = {{ cli = [{}] }}\ndev-dependencies = {{ dev = [{}] }}\n",
                deps.join(", "),
                opt.join(", "),
                dev.join(", ")
            )
        },
    )
}

/// A coherent-ish uv.lock: the root plus one entry for each of a, b, c, a-b (rarely renamed or
/// doubled), so the walk usually finds what the edges name.
fn uv_doc() -> impl Strategy<Value = String> {
    (
        uv_root(),
        prop::collection::vec(uv_package(), 4..=4),
        prop::collection::vec(prop::option::weighted(0.05, name()), 4..=4),
        prop::collection::vec(uv_package(), 0..2),
    )
        .prop_map(|(root, pk, renames, extra)| {
            let fixed = ["a", "b", "c", "a-b"];
            let mut out = format!("version = 1\nrequires-python = \">=3.9\"\n\n{root}\n");
            for (i, p) in pk.iter().enumerate() {
                let n = renames[i].clone().unwrap_or_else(|| fixed[i].to_string());
                // Replace the generated `[[package]]` and `name` lines.
                let body = p.splitn(3, '\n').nth(2).unwrap_or("");
                out += &format!("[[package]]\nname = {}\n{body}\n", toml_str(&n));
            }
            for p in extra {
                out += &p;
                out += "\n";
            }
            out
        })
}

fn uv_package() -> impl Strategy<Value = String> {
    (
        name(),
        prop::option::weighted(0.95, version()),
        uv_source(),
        prop::collection::vec(uv_dep(), 0..4),
        prop::collection::vec(uv_dep(), 0..2),
        prop::collection::vec(uv_dep(), 0..2),
        prop::collection::vec(file_entry(true), 0..3),
        prop::collection::vec(marker(), 0..2),
    )
        .prop_map(|(n, v, src, deps, opt, dev, wheels, rm)| {
            let mut s = format!("[[package]]\nname = {}\n", toml_str(&n));
            if let Some(v) = v {
                s += &format!("version = {}\n", toml_str(&v));
            }
            s += &format!("source = {src}\n");
            if !rm.is_empty() {
                s += &format!(
                    "resolution-markers = [{}]\n",
                    rm.iter()
                        .map(|m| toml_str(m))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            s += &format!("dependencies = [{}]\n", deps.join(", "));
            s += &format!("wheels = [{}]\n", wheels.join(", "));
            s += &format!("optional-dependencies = {{ cli = [{}] }}\n", opt.join(", "));
            s += &format!("dev-dependencies = {{ dev = [{}] }}\n", dev.join(", "));
            s
        })
}

fn pylock_package() -> impl Strategy<Value = String> {
    (
        name(),
        prop::option::of(version()),
        prop::option::of(marker()),
        prop::collection::vec(file_entry(false), 0..3),
        prop_oneof![
            8 => Just(""),
            1 => Just("directory = { path = \".\" }\n"),
            1 => Just("vcs = { type = \"git\" }\n"),
            1 => Just("requires-python = \">=3.12\"\n"),
        ],
    )
        .prop_map(|(n, v, m, wheels, extra)| {
            let mut s = format!("[[packages]]\nname = {}\n{extra}", toml_str(&n));
            if let Some(v) = v {
                s += &format!("version = {}\n", toml_str(&v));
            }
            if let Some(m) = m {
                s += &format!("marker = {}\n", toml_str(&m));
            }
            if !wheels.is_empty() {
                s += &format!("wheels = [{}]\n", wheels.join(", "));
            }
            s
        })
}

fn poetry_dep() -> impl Strategy<Value = String> {
    (
        name(),
        prop::option::of(marker()),
        any::<bool>(),
        prop_oneof![
            Just("*"),
            Just("^1.0"),
            Just(">=1,<2 || 3"),
            Just("~0"),
            Just("^18446744073709551615")
        ],
    )
        .prop_map(|(n, m, optional, c)| match m {
            Some(m) => format!(
                "{} = {{ version = {}, markers = {}, optional = {optional} }}",
                toml_str(&n),
                toml_str(c),
                toml_str(&m)
            ),
            None => format!("{} = {}", toml_str(&n), toml_str(c)),
        })
}

fn poetry_package(groups: bool) -> impl Strategy<Value = String> {
    (
        name(),
        version(),
        prop::option::of(marker()),
        prop::collection::vec(poetry_dep(), 0..3),
        prop_oneof![
            Just(""),
            Just("[package.source]\ntype = \"legacy\"\nurl = \"https://x/simple\"\n"),
            Just("[package.source]\ntype = \"git\"\nurl = \"u\"\n")
        ],
        prop::collection::vec(
            (
                prop_oneof![Just("a-1.0-py3-none-any.whl".to_string()), "[ -~]{0,10}"],
                prop_oneof![
                    Just(
                        "sha256:0a30ef8f5322a4173720ae6712dc9a5e58f5a19868f3f167b4b5778db066c2b5"
                            .to_string()
                    ),
                    "[ -~]{0,10}"
                ],
            ),
            0..3,
        ),
    )
        .prop_map(move |(n, v, m, deps, source, files)| {
            let mut s = format!(
                "[[package]]\nname = {}\nversion = {}\n",
                toml_str(&n),
                toml_str(&v)
            );
            if groups {
                s += "groups = [\"main\", \"dev\"]\n";
                if let Some(m) = m {
                    s += &format!("markers = {{ main = {} }}\n", toml_str(&m));
                }
            }
            s += &format!(
                "files = [{}]\n",
                files
                    .iter()
                    .map(|(f, h)| format!("{{ file = {}, hash = {} }}", toml_str(f), toml_str(h)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            s += "extras = { cli = [\"a (>=1)\", \"b\"] }\n";
            s += &format!("[package.dependencies]\n{}\n", deps.join("\n"));
            s + source
        })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(cases()) })]

    #[test]
    fn uv_lock_documents_never_panic(
        doc in uv_doc(),
        members in prop::collection::vec(name(), 0..2),
        drop_root in prop::bool::weighted(0.1),
        opts in options(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let mut text = doc;
        if drop_root {
            text = text.replacen("source = { virtual = \".\" }", "source = { registry = \"https://x\" }", 1);
        }
        if !members.is_empty() {
            text = format!(
                "[manifest]\nmembers = [{}]\n{text}",
                members.iter().map(|m| toml_str(m)).collect::<Vec<_>>().join(", ")
            );
        }
        let _ = read_lock_str(LockFormat::UvLock, &tmp.path().join("uv.lock"), &text, &common::env311(), &opts);
    }

    #[test]
    fn pylock_documents_never_panic(
        packages in prop::collection::vec(pylock_package(), 0..6),
        header in prop_oneof![Just("lock-version = \"1.0\"\n"), Just("lock-version = \"1.0\"\nextras = [\"cli\"]\ndependency-groups = [\"dev\"]\ndefault-groups = [\"main\"]\nenvironments = [\"sys_platform == 'linux'\"]\n")],
        opts in options(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let text = format!("{header}created-by = \"x\"\n\n{}", packages.join("\n"));
        let _ = read_lock_str(LockFormat::Pylock, &tmp.path().join("pylock.toml"), &text, &common::env311(), &opts);
    }

    #[test]
    fn poetry_documents_never_panic(
        groups in any::<bool>(),
        packages in prop::collection::vec(poetry_package(true), 0..5),
        old_packages in prop::collection::vec(poetry_package(false), 0..5),
        roots in prop::collection::vec(poetry_dep(), 0..4),
        opts in options(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let (pk, version) = if groups { (packages, "2.1") } else { (old_packages, "2.0") };
        let text = format!(
            "{}\n[extras]\ncli = [\"a\"]\n\n[metadata]\nlock-version = \"{version}\"\npython-versions = \"^3.8\"\ncontent-hash = \"x\"\n",
            pk.join("\n")
        );
        common::write(
            tmp.path(),
            "pyproject.toml",
            &format!(
                "[tool.poetry.dependencies]\npython = \"^3.11\"\n{}\n[tool.poetry.extras]\ncli = [\"a\"]\n[tool.poetry.group.dev.dependencies]\nc = \"*\"\n",
                roots.join("\n")
            ),
        );
        let _ = read_lock_str(LockFormat::PoetryLock, &tmp.path().join("poetry.lock"), &text, &common::env311(), &opts);
    }
}

/// The generators above must reach past the TOML parser: check that a good share of generated
/// documents are read successfully (so the graph walks are exercised, not only the parse errors).
#[test]
fn generated_documents_reach_the_walks() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let tmp = tempfile::tempdir().unwrap();
    let (mut uv_ok, mut poetry_ok, mut pylock_ok) = (0, 0, 0);
    for _ in 0..200 {
        let text = uv_doc().new_tree(&mut runner).unwrap().current();
        match read_lock_str(
            LockFormat::UvLock,
            &tmp.path().join("uv.lock"),
            &text,
            &common::env311(),
            &ResolveOptions::default(),
        ) {
            Ok(l) if !l.packages.is_empty() => uv_ok += 1,
            Ok(_) => {}
            Err(e) => {
                if std::env::var("DEBUG_GEN").is_ok() {
                    eprintln!("{e}")
                }
            }
        }
        let pk = prop::collection::vec(poetry_package(true), 1..4)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let text = format!("{}\n[metadata]\nlock-version = \"2.1\"\n", pk.join("\n"));
        if read_lock_str(
            LockFormat::PoetryLock,
            &tmp.path().join("poetry.lock"),
            &text,
            &common::env311(),
            &ResolveOptions::default(),
        )
        .is_ok_and(|l| !l.packages.is_empty())
        {
            poetry_ok += 1;
        }
        let pk = prop::collection::vec(pylock_package(), 1..4)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let text = format!(
            "lock-version = \"1.0\"\ncreated-by = \"x\"\n{}",
            pk.join("\n")
        );
        if read_lock_str(
            LockFormat::Pylock,
            &tmp.path().join("pylock.toml"),
            &text,
            &common::env311(),
            &ResolveOptions::default(),
        )
        .is_ok_and(|l| !l.packages.is_empty())
        {
            pylock_ok += 1;
        }
    }
    eprintln!("successful reads out of 200: uv {uv_ok}, poetry {poetry_ok}, pylock {pylock_ok}");
    assert!(
        uv_ok >= 10 && poetry_ok >= 10 && pylock_ok >= 10,
        "uv {uv_ok}, poetry {poetry_ok}, pylock {pylock_ok}"
    );
}
