//! `--find-links DIR`: local directories of wheels (e.g. wheels the user built), searched before any
//! index and usable offline.
//!
//! Only the directory itself is read (not subdirectories), and only regular files (or links to them)
//! whose names are valid wheel file names. A file is hashed the first time it is needed; the hash is
//! remembered for the life of the client as long as the file's size and modification time stay the
//! same.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rbuild_oci::Digest;
use rbuild_python::wheel_name::WheelFilename;
use url::Url;

use crate::error::{Error, Result};
use crate::simple::{IndexFile, safe_filename};

type HashCache = HashMap<PathBuf, (u64, Option<SystemTime>, Digest)>;

pub(crate) struct FindLinks {
    dirs: Vec<PathBuf>,
    hashes: Arc<Mutex<HashCache>>,
}

fn io_reason(e: &std::io::Error) -> String {
    e.to_string()
}

impl FindLinks {
    /// The directories, a relative one resolved against the current working directory (where the
    /// user typed `--find-links DIR`). A relative path made no `file:` URL, so the listing's
    /// entries could not be opened or hashed, and with a hash-pinned lock every one was dropped.
    pub(crate) fn new(dirs: Vec<PathBuf>) -> Self {
        let cwd = std::env::current_dir().ok();
        let dirs = dirs
            .into_iter()
            .map(|d| match &cwd {
                Some(cwd) if d.is_relative() => cwd.join(d),
                _ => d,
            })
            .collect();
        FindLinks {
            dirs,
            hashes: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The directories, as shown in "searched" lists.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.dirs
            .iter()
            .map(|d| format!("--find-links {}", d.display()))
            .collect()
    }

    fn entry(path: &Path, dir: &Path, filename: &str, sha256: Option<Digest>) -> IndexFile {
        IndexFile {
            filename: filename.to_string(),
            url: Url::from_file_path(path)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| path.display().to_string()),
            sha256,
            size: std::fs::metadata(path).ok().map(|m| m.len()),
            requires_python: None,
            yanked: false,
            yanked_reason: None,
            source: format!("--find-links {}", dir.display()),
        }
    }

    /// The wheels of project `norm` (normalized name) in every directory, sorted by directory order
    /// then file name. Hashes are not computed here.
    pub(crate) fn files(&self, norm: &str) -> Result<Vec<IndexFile>> {
        let mut out = Vec::new();
        for dir in &self.dirs {
            let err = |reason: String| Error::FindLinks {
                path: dir.clone(),
                reason,
            };
            let mut names: Vec<String> = Vec::new();
            for entry in std::fs::read_dir(dir).map_err(|e| err(io_reason(&e)))? {
                let entry = entry.map_err(|e| err(io_reason(&e)))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if !safe_filename(&name) || !entry.path().is_file() {
                    continue;
                }
                match WheelFilename::parse(&name) {
                    Ok(w) if w.name == norm => names.push(name),
                    _ => {}
                }
            }
            names.sort();
            for name in names {
                out.push(Self::entry(&dir.join(&name), dir, &name, None));
            }
        }
        Ok(out)
    }

    /// The first directory holding exactly `filename`, with the file hashed.
    pub(crate) async fn find(&self, filename: &str) -> Result<Option<IndexFile>> {
        if !safe_filename(filename) {
            return Ok(None);
        }
        for dir in &self.dirs {
            let path = dir.join(filename);
            if path.is_file() {
                let (digest, _) = self.hash(&path).await?;
                return Ok(Some(Self::entry(&path, dir, filename, Some(digest))));
            }
        }
        Ok(None)
    }

    /// The path of the first directory's `filename`, if any (no hashing).
    pub(crate) fn path_of(&self, filename: &str) -> Option<PathBuf> {
        if !safe_filename(filename) {
            return None;
        }
        self.dirs
            .iter()
            .map(|d| d.join(filename))
            .find(|p| p.is_file())
    }

    /// Hashes a file (streaming, on the blocking pool), remembering the result.
    pub(crate) async fn hash(&self, path: &Path) -> Result<(Digest, u64)> {
        let path = path.to_path_buf();
        let cache = self.hashes.clone();
        tokio::task::spawn_blocking(move || {
            let err = |e: std::io::Error| Error::LocalFile {
                path: path.clone(),
                reason: e.to_string(),
            };
            let meta = std::fs::metadata(&path).map_err(err)?;
            let mtime = meta.modified().ok();
            if let Some((len, m, d)) = cache.lock().expect("hash cache").get(&path)
                && *len == meta.len()
                && *m == mtime
            {
                return Ok((*d, *len));
            }
            let file = std::fs::File::open(&path).map_err(err)?;
            let (digest, size) = Digest::of_reader(file).map_err(err)?;
            cache
                .lock()
                .expect("hash cache")
                .insert(path.clone(), (size, mtime, digest));
            Ok((digest, size))
        })
        .await
        .expect("hashing task panicked")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_directories_resolve_against_the_working_directory() {
        // Cargo runs unit tests in the crate's directory; make a directory there and name it relatively.
        let cwd = std::env::current_dir().unwrap();
        let dir = tempfile::tempdir_in(&cwd).unwrap();
        let rel = dir.path().strip_prefix(&cwd).unwrap().to_path_buf();
        assert!(rel.is_relative());
        std::fs::write(dir.path().join("tiny-1.0-py3-none-any.whl"), b"wheel").unwrap();
        let fl = FindLinks::new(vec![rel.clone()]);
        let files = fl.files("tiny").unwrap();
        assert_eq!(files.len(), 1);
        let url = Url::parse(&files[0].url).unwrap();
        assert_eq!(url.scheme(), "file");
        assert_eq!(
            url.to_file_path().unwrap(),
            cwd.join(&rel).join("tiny-1.0-py3-none-any.whl")
        );
        assert_eq!(
            fl.path_of("tiny-1.0-py3-none-any.whl").unwrap(),
            cwd.join(&rel).join("tiny-1.0-py3-none-any.whl")
        );
        assert!(fl.describe()[0].contains(&cwd.display().to_string()));
    }
}
