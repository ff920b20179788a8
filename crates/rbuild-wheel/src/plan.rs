//! The plan phase across wheels: scan each (in parallel), settle conflicts, compute parent
//! directories and the whiteouts that replace base distributions.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::paths::{self, ancestors, image_path_of_absolute, is_within, parent, resolve_in_root};
use crate::scan::{self, Resolved, ScannedWheel, Source};
use crate::{
    BaseInfo, EntrySink, Error, InstallOptions, InstallReport, InstallTarget,
    InstalledDistribution, ReplacedDistribution, Warning, WheelInput,
};
use rbuild_python::normalize_name;

/// One planned layer entry.
#[derive(Debug)]
pub(crate) enum Entry {
    Dir {
        path: String,
        mode: u32,
        /// (`uid`, `gid`).
        owner: (u32, u32),
    },
    File {
        path: String,
        mode: u32,
        /// (`uid`, `gid`).
        owner: (u32, u32),
        size: u64,
        sha256: [u8; 32],
        wheel: usize,
        source: Source,
    },
    Whiteout {
        path: String,
    },
}

/// A checked install, ready to be written: every wheel was opened and verified and every output
/// entry is decided. Holds the wheels open.
pub struct Plan {
    pub(crate) wheels: Vec<ScannedWheel>,
    pub(crate) entries: Vec<Entry>,
    pub(crate) shebang_line: std::sync::Arc<[u8]>,
    pub(crate) report: InstallReport,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("entries", &self.entries.len())
            .field("report", &self.report)
            .finish()
    }
}

impl Plan {
    /// What [`Plan::write`] will do (files, bytes, warnings, replaced distributions).
    pub fn report(&self) -> &InstallReport {
        &self.report
    }

    /// Emits the planned entries into `sink`, in order; see the crate docs.
    pub fn write(self, sink: &mut dyn EntrySink) -> Result<InstallReport, Error> {
        crate::write::write(self, sink)
    }
}

fn resolve_target(target: &InstallTarget, opts: &InstallOptions) -> Result<Resolved, Error> {
    let dir = |what: &str, p: &str| {
        image_path_of_absolute(p).ok_or_else(|| Error::InvalidTarget {
            reason: format!("{what} {p:?} is not an absolute path"),
        })
    };
    if !target.interpreter.starts_with('/') || target.interpreter.contains(['\n', '\r', '\0']) {
        return Err(Error::InvalidTarget {
            reason: format!(
                "interpreter {:?} is not an absolute path",
                target.interpreter
            ),
        });
    }
    if opts.installer.contains(['\n', '\r']) {
        return Err(Error::InvalidTarget {
            reason: "the installer name contains a line break".into(),
        });
    }
    Ok(Resolved {
        interpreter: target.interpreter.clone(),
        purelib: dir("purelib", &target.purelib)?,
        platlib: dir("platlib", &target.platlib)?,
        scripts: dir("scripts", &target.scripts)?,
        headers: dir("headers", &target.headers)?,
        data: dir("data", &target.data)?,
        python_version: target.python_version,
        installer: opts.installer.clone(),
        shebang_line: format!("#!{}\n", target.interpreter).into_bytes().into(),
    })
}

fn clean_image_path(p: &str) -> String {
    p.trim_matches('/').to_string()
}

/// Runs `task(i, state)` for `i` in `0..n` on up to `threads` threads (each with its own
/// `state`). Returns all results in order, or the error of the lowest failing index: tasks are
/// claimed in increasing order and only tasks after a known failure are skipped, so the error
/// reported does not depend on scheduling.
fn parallel<T: Send, S>(
    n: usize,
    threads: usize,
    state: impl Fn() -> S + Sync,
    task: impl Fn(usize, &mut S) -> Result<T, Error> + Sync,
) -> Result<Vec<T>, Error> {
    let threads = threads.min(n).max(1);
    let next = AtomicUsize::new(0);
    let first_error = AtomicUsize::new(usize::MAX);
    let results: Mutex<Vec<Option<Result<T, Error>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut st = state();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n || i > first_error.load(Ordering::SeqCst) {
                        break;
                    }
                    let r = task(i, &mut st);
                    if r.is_err() {
                        first_error.fetch_min(i, Ordering::SeqCst);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                }
            });
        }
    });
    let mut out = Vec::with_capacity(n);
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match r {
            Some(r) => out.push(r?),
            None => unreachable!("a task before the first error was skipped"),
        }
    }
    Ok(out)
}

/// Hash work is cut into pieces of about this many uncompressed bytes, so that one large wheel
/// keeps every thread busy.
const HASH_CHUNK: u64 = 16 << 20;

/// Checks every wheel: metadata first, then every member's hash (spread over threads, each
/// reading through its own file handle), then the outputs. Results in input order.
fn scan_all(
    wheels: &[&WheelInput],
    target: &Resolved,
    threads: usize,
) -> Result<Vec<ScannedWheel>, Error> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let prepared = parallel(
        wheels.len(),
        threads,
        || (),
        |i, _| scan::prepare(wheels[i]),
    )?;

    let mut tasks: Vec<(usize, std::ops::Range<usize>)> = Vec::new();
    for (wi, p) in prepared.iter().enumerate() {
        let (mut start, mut acc) = (0, 0u64);
        for i in 0..p.planned.len() {
            acc += p.planned_size(i);
            if acc >= HASH_CHUNK {
                tasks.push((wi, start..i + 1));
                (start, acc) = (i + 1, 0);
            }
        }
        if start < p.planned.len() || p.planned.is_empty() {
            tasks.push((wi, start..p.planned.len()));
        }
    }
    struct State {
        /// The wheel this thread has open (tasks of one wheel are consecutive, so one handle
        /// per thread is enough: open files stay at one per wheel plus one per thread).
        archive: Option<(usize, zip::ZipArchive<std::fs::File>)>,
        buf: Vec<u8>,
    }
    let hashed = parallel(
        tasks.len(),
        threads,
        || State {
            archive: None,
            buf: vec![0u8; scan::BUF],
        },
        |t, st| {
            let (wi, range) = &tasks[t];
            let p = &prepared[*wi];
            if st.archive.as_ref().is_none_or(|(open, _)| open != wi) {
                st.archive = None;
                st.archive = Some((*wi, p.reopen()?));
            }
            let (_, archive) = st.archive.as_mut().expect("just opened");
            scan::hash_range(p, archive, range.clone(), target, &mut st.buf)
        },
    )?;

    let mut per_wheel: Vec<Vec<scan::Hashed>> = (0..prepared.len()).map(|_| Vec::new()).collect();
    for ((wi, _), h) in tasks.iter().zip(hashed) {
        per_wheel[*wi].extend(h);
    }
    prepared
        .into_iter()
        .zip(per_wheel)
        .map(|(p, h)| scan::finish(p, h, target))
        .collect()
}

/// Plans an install: opens and verifies every wheel and decides every entry; nothing is written.
/// See the crate docs for the rules.
pub fn plan(
    wheels: &[WheelInput],
    target: &InstallTarget,
    base: &BaseInfo,
    opts: &InstallOptions,
) -> Result<Plan, Error> {
    let resolved = resolve_target(target, opts)?;

    // Stable order: normalized expected name, then file name.
    let mut order: Vec<&WheelInput> = wheels.iter().collect();
    order.sort_by(|a, b| {
        (normalize_name(&a.expected_name), &a.filename)
            .cmp(&(normalize_name(&b.expected_name), &b.filename))
    });
    for pair in order.windows(2) {
        if normalize_name(&pair[0].expected_name) == normalize_name(&pair[1].expected_name) {
            return Err(Error::DuplicateDistribution {
                name: normalize_name(&pair[0].expected_name),
                first: pair[0].filename.clone(),
                second: pair[1].filename.clone(),
            });
        }
    }
    let scanned = scan_all(&order, &resolved, opts.threads)?;

    let mut report = InstallReport::default();
    for w in &scanned {
        report.warnings.extend(w.warnings.iter().cloned());
    }

    // Files: later wheels (by normalized name) win conflicts.
    struct Slot {
        wheel: usize,
        file: usize,
    }
    let mut files: BTreeMap<String, Slot> = BTreeMap::new();
    for (wi, w) in scanned.iter().enumerate() {
        for (fi, f) in w.files.iter().enumerate() {
            if let Some(prev) = files.get(&f.path) {
                let pf = &scanned[prev.wheel].files[prev.file];
                let same = pf.sha256 == f.sha256 && pf.size == f.size && pf.mode == f.mode;
                if !same {
                    let (first, second) =
                        (scanned[prev.wheel].filename.clone(), w.filename.clone());
                    if opts.strict {
                        return Err(Error::Conflict {
                            path: f.path.clone(),
                            first,
                            second,
                        });
                    }
                    report.warnings.push(Warning::Conflict {
                        path: f.path.clone(),
                        winner: second,
                        loser: first,
                    });
                }
            }
            files.insert(
                f.path.clone(),
                Slot {
                    wheel: wi,
                    file: fi,
                },
            );
        }
    }

    // Directories we write into.
    let mut dirs: BTreeSet<String> = BTreeSet::new();
    for path in files.keys() {
        for a in ancestors(path) {
            if !dirs.insert(a.to_string()) {
                // Outer ancestors were added with this one before.
                continue;
            }
        }
    }
    for (path, slot) in &files {
        if dirs.contains(path) {
            let below = files
                .range(format!("{path}/")..)
                .next()
                .map(|(_, s)| scanned[s.wheel].filename.clone())
                .unwrap_or_default();
            return Err(Error::PathConflict {
                path: path.clone(),
                reason: format!(
                    "{} installs it as a file but {below} installs files below it",
                    scanned[slot.wheel].filename
                ),
            });
        }
        if base.dir_modes.contains_key(path) {
            return Err(Error::PathConflict {
                path: path.clone(),
                reason: format!(
                    "{} installs it as a file but it is a directory in the base image",
                    scanned[slot.wheel].filename
                ),
            });
        }
    }

    // Replacement of base distributions.
    let installing: HashSet<&str> = scanned.iter().map(|w| w.norm_name.as_str()).collect();
    let (replaced, kept): (Vec<_>, Vec<_>) = base
        .installed
        .iter()
        .partition(|d| installing.contains(normalize_name(&d.name).as_str()));
    let mut kept_files: HashSet<String> = HashSet::new();
    let mut kept_dirs: HashSet<String> = HashSet::new();
    for d in &kept {
        let site = clean_image_path(&d.site_dir);
        let di = clean_image_path(&d.dist_info);
        for a in ancestors(&di) {
            kept_dirs.insert(a.to_string());
        }
        kept_dirs.insert(di);
        for p in d.record.iter().flatten() {
            if let Some(r) = resolve_in_root(&site, p) {
                for a in ancestors(&r) {
                    kept_dirs.insert(a.to_string());
                }
                kept_files.insert(r);
            }
        }
    }
    let exists_dir = |d: &str| d.is_empty() || base.dir_modes.contains_key(d);
    let written = |p: &str| files.contains_key(p) || dirs.contains(p);
    let mut whiteouts: BTreeSet<String> = BTreeSet::new();
    for d in &replaced {
        let site = clean_image_path(&d.site_dir);
        let di = clean_image_path(&d.dist_info);
        report.replaced.push(ReplacedDistribution {
            name: d.name.clone(),
            version: d.version.clone(),
            dist_info: di.clone(),
            had_record: d.record.is_some(),
        });
        if !di.is_empty() && !written(&di) && exists_dir(parent(&di)) && !kept_dirs.contains(&di) {
            whiteouts.insert(di.clone());
        }
        let Some(record) = &d.record else {
            report.warnings.push(Warning::NoRecord {
                name: d.name.clone(),
                version: d.version.clone(),
                dist_info: di,
            });
            continue;
        };
        let mut removed: Vec<String> = Vec::new();
        for p in record {
            let Some(r) = resolve_in_root(&site, p) else {
                report.warnings.push(Warning::BaseRecordOutsideRoot {
                    name: d.name.clone(),
                    path: p.clone(),
                });
                continue;
            };
            if r.is_empty() || kept_files.contains(&r) || kept_dirs.contains(&r) {
                continue;
            }
            // Bytecode Python compiled for this module, whether or not the module is rewritten:
            // a stale .pyc must not outlive its source.
            if let Some(stem) = r.strip_suffix(".py") {
                let dir = parent(&r);
                let pycache = paths::join(dir, "__pycache__");
                if base.dir_modes.contains_key(&pycache) && !written(&pycache) {
                    let stem = &stem[dir.len() + usize::from(!dir.is_empty())..];
                    let (maj, min) = resolved.python_version;
                    for opt in ["", ".opt-1", ".opt-2"] {
                        let pyc = format!("{pycache}/{stem}.cpython-{maj}{min}{opt}.pyc");
                        if !written(&pyc) && !kept_files.contains(&pyc) {
                            whiteouts.insert(pyc);
                        }
                    }
                }
            }
            if written(&r) || !exists_dir(parent(&r)) {
                continue;
            }
            whiteouts.insert(r.clone());
            removed.push(r);
        }
        // Directories below the site directory that only this distribution used.
        for r in &removed {
            if !is_within(r, &site) || *r == site {
                continue;
            }
            for a in ancestors(r) {
                if !is_within(a, &site) || a == site {
                    continue;
                }
                if base.dir_modes.contains_key(a) && !written(a) && !kept_dirs.contains(a) {
                    whiteouts.insert(a.to_string());
                }
            }
        }
    }
    // A whited-out directory hides everything below it; emitting more would recreate it.
    let mut pruned: Vec<String> = Vec::new();
    for w in whiteouts {
        if pruned.last().is_some_and(|last| is_within(&w, last)) {
            continue;
        }
        pruned.push(w);
    }

    // Parent directories of whiteouts exist in the base; they are layer entries too.
    for w in &pruned {
        for a in ancestors(w) {
            dirs.insert(a.to_string());
        }
    }

    // Entries sorted by the bytes of the tar path.
    let mut keyed: BTreeMap<String, Entry> = BTreeMap::new();
    for d in &dirs {
        let (mode, owner) = match base.dir_modes.get(d) {
            // A directory of the base keeps its mode, owner and group.
            Some(mode) => (*mode, base.dir_owners.get(d).copied().unwrap_or((0, 0))),
            None => inherited(base, d, 0o755),
        };
        keyed.insert(
            d.clone(),
            Entry::Dir {
                path: d.clone(),
                mode,
                owner,
            },
        );
    }
    let mut per_wheel = vec![(0u64, 0u64); scanned.len()];
    for (path, slot) in &files {
        let f = &scanned[slot.wheel].files[slot.file];
        per_wheel[slot.wheel].0 += 1;
        per_wheel[slot.wheel].1 += f.size;
        let (mode, owner) = inherited(base, path, f.mode);
        keyed.insert(
            path.clone(),
            Entry::File {
                path: path.clone(),
                mode,
                owner,
                size: f.size,
                sha256: f.sha256,
                wheel: slot.wheel,
                source: f.source.clone(),
            },
        );
    }
    for w in &pruned {
        let p = parent(w);
        let name = &w[p.len() + usize::from(!p.is_empty())..];
        keyed.insert(
            paths::join(p, &format!(".wh.{name}")),
            Entry::Whiteout { path: w.clone() },
        );
    }

    report.files = files.len() as u64;
    report.bytes = per_wheel.iter().map(|(_, b)| b).sum();
    report.directories = dirs.len() as u64;
    report.whiteouts = pruned.len() as u64;
    for (w, (n, b)) in scanned.iter().zip(&per_wheel) {
        report.distributions.push(InstalledDistribution {
            name: w.name.clone(),
            version: w.version.clone(),
            wheel: w.filename.clone(),
            dist_info: w.dist_info_path.clone(),
            files: *n,
            bytes: *b,
            core_metadata: w.core.clone(),
        });
    }

    Ok(Plan {
        wheels: scanned,
        entries: keyed.into_values().collect(),
        shebang_line: resolved.shebang_line,
        report,
    })
}

/// Mode and owner of a new entry at `path` (not in the base): below a base directory owned by
/// someone other than root (a venv owned by `1001:0`, as s2i images have), the entry belongs to
/// that owner and group, and gets group write when that directory has it, so the image's user can
/// change what was installed where the base meant it to; else `mode` and `0:0`.
pub fn inherited(base: &BaseInfo, path: &str, mode: u32) -> (u32, (u32, u32)) {
    let nearest = paths::ancestors(path)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|a| base.dir_modes.contains_key(*a));
    match nearest.and_then(|a| Some((base.dir_owners.get(a)?, base.dir_modes[a]))) {
        Some((owner, dir_mode)) if *owner != (0, 0) => (mode | (dir_mode & 0o020), *owner),
        _ => (mode, (0, 0)),
    }
}

#[cfg(test)]
mod owner_tests {
    use super::*;

    #[test]
    fn new_entries_below_a_directory_of_another_owner_inherit_it() {
        let base = BaseInfo {
            dir_modes: [
                ("opt".to_string(), 0o755),
                ("opt/venv".to_string(), 0o2775),
                ("opt/venv/lib".to_string(), 0o775),
                ("usr".to_string(), 0o755),
                ("srv".to_string(), 0o755),
            ]
            .into_iter()
            .collect(),
            dir_owners: [
                ("opt/venv".to_string(), (1001, 0)),
                ("opt/venv/lib".to_string(), (1001, 0)),
                ("srv".to_string(), (1001, 0)),
            ]
            .into_iter()
            .collect(),
            installed: vec![],
        };
        // Below a group-writable directory of 1001:0: its owner, and group write.
        assert_eq!(
            inherited(&base, "opt/venv/lib/pkg", 0o755),
            (0o775, (1001, 0))
        );
        assert_eq!(
            inherited(&base, "opt/venv/lib/pkg/a/b.py", 0o644),
            (0o664, (1001, 0))
        );
        // Without group write there: owner only.
        assert_eq!(inherited(&base, "srv/x.py", 0o644), (0o644, (1001, 0)));
        // Below root's directories: unchanged.
        assert_eq!(inherited(&base, "usr/local/x.py", 0o644), (0o644, (0, 0)));
        assert_eq!(inherited(&base, "new/x.py", 0o644), (0o644, (0, 0)));
    }
}
