//! A uv.lock that no longer matches its pyproject.toml is refused, as `uv sync --locked` refuses it.

mod common;

use common::{data, env311, write};
use rbuild_lock::{Error, ResolveOptions, check_uv_lock_fresh, read_lock};

/// `rel`'s uv.lock beside its pyproject.toml edited by `edit`; the error of reading it, if any.
fn check(rel: &str, edit: impl Fn(String) -> String) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let lock = std::fs::read_to_string(data(&format!("{rel}/uv.lock"))).unwrap();
    let py = std::fs::read_to_string(data(&format!("{rel}/pyproject.toml"))).unwrap();
    let edited = edit(py.clone());
    let lock_path = write(tmp.path(), "uv.lock", &lock);
    let py_path = write(tmp.path(), "pyproject.toml", &edited);
    let direct = check_uv_lock_fresh(&lock_path, &py_path);
    let via_read = read_lock(&lock_path, &env311(), &ResolveOptions::default());
    match (direct, via_read) {
        (Ok(()), Ok(_)) => Ok(()),
        (Err(e), Err(e2)) => {
            assert!(matches!(e, Error::StaleLock { .. }), "{e}");
            assert_eq!(e.to_string(), e2.to_string());
            Err(e.to_string())
        }
        (a, b) => panic!(
            "check_uv_lock_fresh and read_lock disagree: {a:?} / {:?}",
            b.err()
        ),
    }
}

#[test]
fn fresh_locks_pass() {
    for rel in ["lockdemo", "forkdemo", "conflictdemo"] {
        check(rel, |p| p).unwrap();
        // Order, spelling of names and spacing do not matter.
        check(rel, |p| p.replace("\"fastapi\",", "\"FastAPI\",")).unwrap();
    }
    check("lockdemo", |p| {
        p.replace(
            "\"fastapi\",\n    \"uvicorn[standard]\",",
            "\"uvicorn[standard]\",\n    \"fastapi\",",
        )
    })
    .unwrap();
}

#[test]
fn an_added_dependency_is_stale() {
    let e = check("lockdemo", |p| {
        p.replace("\"fastapi\",", "\"fastapi\",\n    \"httpx>=0.27\",")
    })
    .unwrap_err();
    assert!(
        e.contains("The lockfile at `") && e.contains("needs to be updated"),
        "{e}"
    );
    assert!(
        e.contains("`httpx>=0.27` in [project] dependencies/optional-dependencies of pyproject.toml is not in the lock"),
        "{e}"
    );
    assert!(e.contains("run `uv lock`"), "{e}");
}

#[test]
fn a_changed_specifier_is_stale() {
    let e = check("forkdemo", |p| p.replace("idna>=3.8", "idna>=3.9")).unwrap_err();
    assert!(
        e.contains("`idna>=3.9 ; python_version >= \"3.11\"`"),
        "{e}"
    );
    assert!(e.contains("the lock has `idna"), "{e}");
    let e = check("conflictdemo", |p| p.replace("idna==3.6", "idna==3.7")).unwrap_err();
    assert!(
        e.contains("`idna==3.7` in [dependency-groups] legacy"),
        "{e}"
    );
}

#[test]
fn a_removed_extra_or_group_is_stale() {
    let e = check("lockdemo", |p| {
        p.replace("[project.optional-dependencies]\ncli = [\"rich\"]\n", "")
    })
    .unwrap_err();
    assert!(
        e.contains("`rich ; extra == \"cli\"` is in the lock but no longer in")
            || e.contains("`rich ; extra == 'cli'` is in the lock but no longer in"),
        "{e}"
    );
    let e = check("lockdemo", |p| p.replace("dev = [\"pytest\"]", "")).unwrap_err();
    assert!(
        e.contains("`pytest` is in the lock but no longer in [dependency-groups] dev"),
        "{e}"
    );
    // A changed marker is a change too.
    let e = check("lockdemo", |p| {
        p.replace("\"requests\",", "\"requests ; sys_platform == 'linux'\",")
    })
    .unwrap_err();
    assert!(e.contains("requests"), "{e}");
}

#[test]
fn a_lock_of_another_project_is_stale() {
    let e = check("lockdemo", |p| {
        p.replace("name = \"lockdemo\"", "name = \"other\"")
    })
    .unwrap_err();
    assert!(e.contains("no entry for the project `other`"), "{e}");
}
