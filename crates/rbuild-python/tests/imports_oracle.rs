//! `imports::scan_imports` against Python's own parser (`ast`) on real code: every module of the
//! host Python's standard library, without its test suite and idlelib (about 700 files; with the
//! test suite, 1779 files, they matched too when this was written). For each file, the set of
//! top-level names of absolute `import`/`from … import` statements must be the same. Without
//! `python3` the test prints why and passes.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use rbuild_python::imports::scan_imports;

/// Prints `path<TAB>name name …` for every `*.py` of the stdlib (but its tests and idlelib) that `ast` parses.
const ORACLE_PY: &str = r#"
import ast, os, sys, sysconfig
root = sysconfig.get_paths()["stdlib"]
files = []
for d, dirs, fs in os.walk(root):
    dirs[:] = sorted(x for x in dirs if x not in ("site-packages", "dist-packages", "test", "tests", "idlelib"))
    files += [os.path.join(d, f) for f in sorted(fs) if f.endswith(".py")]
for p in files:
    try:
        src = open(p, "rb").read().decode("utf-8")
        tree = ast.parse(src)
    except (SyntaxError, UnicodeDecodeError, ValueError):
        continue
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            names.add(n.module.split(".")[0])
    print(p + "\t" + " ".join(sorted(names)))
"#;

#[test]
fn same_imports_as_python_ast_on_the_stdlib() {
    let out = match Command::new("python3").args(["-c", ORACLE_PY]).output() {
        Ok(o) if o.status.success() => o,
        other => {
            eprintln!("skipping: python3 is not usable: {other:?}");
            return;
        }
    };
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    let mut differ: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for line in listing.lines() {
        let (path, names) = line.split_once('\t').unwrap();
        let want: BTreeSet<String> = names.split_whitespace().map(str::to_string).collect();
        let src = std::fs::read_to_string(path).unwrap();
        let got: BTreeSet<String> = scan_imports(&src).into_iter().map(|i| i.module).collect();
        checked += 1;
        if got != want {
            let missing: BTreeSet<String> = want.difference(&got).cloned().collect();
            let extra: BTreeSet<String> = got.difference(&want).cloned().collect();
            differ.insert(path.to_string(), (missing, extra));
        }
    }
    assert!(checked > 100, "only {checked} files checked");
    assert!(
        differ.is_empty(),
        "{} of {checked} files differ from ast (missing, extra): {differ:#?}",
        differ.len()
    );
}
