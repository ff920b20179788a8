//! The `[build-system]` table of `pyproject.toml` (PEP 517/518).

use std::path::{Component, Path, PathBuf};

use crate::BuildError;

/// The backend used when `pyproject.toml` or its `[build-system]` is absent (as pip does).
pub const LEGACY_BACKEND: &str = "setuptools.build_meta:__legacy__";
/// The build requirement used with [`LEGACY_BACKEND`].
pub const LEGACY_REQUIRES: &str = "setuptools>=40.8.0";

/// How a source tree is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSystem {
    /// `requires`: PEP 508 requirement strings.
    pub requires: Vec<String>,
    /// `build-backend` (`module:object`).
    pub backend: String,
    /// `backend-path`, resolved to directories inside the source tree.
    pub backend_path: Vec<PathBuf>,
}

/// Reads the build system of the source tree at `dir`. Absent `pyproject.toml`, or one without
/// `[build-system]`, gives `setuptools>=40.8.0` with the legacy backend; a `[build-system]`
/// without `build-backend` gives the legacy backend with its own `requires`.
pub fn read_build_system(dir: &Path) -> Result<BuildSystem, BuildError> {
    let path = dir.join("pyproject.toml");
    let legacy = || BuildSystem {
        requires: vec![LEGACY_REQUIRES.to_string()],
        backend: LEGACY_BACKEND.to_string(),
        backend_path: Vec::new(),
    };
    if !path.is_file() {
        return Ok(legacy());
    }
    let doc = read_toml(&path)?;
    let bad = |reason: String| BuildError::Pyproject {
        path: path.clone(),
        reason,
    };
    let Some(bs) = doc.get("build-system") else {
        return Ok(legacy());
    };
    let bs = bs
        .as_table()
        .ok_or_else(|| bad("[build-system] is not a table".into()))?;
    let requires = match bs.get("requires") {
        None => {
            return Err(bad(
                "[build-system] has no `requires` (PEP 518 makes it mandatory)".into(),
            ));
        }
        Some(v) => v
            .as_array()
            .ok_or_else(|| bad("build-system.requires is not a list".into()))?
            .iter()
            .map(|r| {
                r.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad("build-system.requires holds a non-string".into()))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let backend = match bs.get("build-backend") {
        None => LEGACY_BACKEND.to_string(),
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad("build-system.build-backend is not a string".into()))?
            .to_string(),
    };
    if backend.is_empty()
        || !backend
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'))
    {
        return Err(bad(format!(
            "build-backend {backend:?} is not `module:object`"
        )));
    }
    let mut backend_path = Vec::new();
    if let Some(v) = bs.get("backend-path") {
        let arr = v
            .as_array()
            .ok_or_else(|| bad("build-system.backend-path is not a list".into()))?;
        for p in arr {
            let p = p
                .as_str()
                .ok_or_else(|| bad("build-system.backend-path holds a non-string".into()))?;
            let rel = Path::new(p);
            let inside = !rel.is_absolute()
                && rel
                    .components()
                    .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
            if !inside {
                return Err(bad(format!(
                    "backend-path entry {p:?} is outside the source tree (PEP 517 requires it inside)"
                )));
            }
            backend_path.push(dir.join(rel));
        }
    }
    Ok(BuildSystem {
        requires,
        backend,
        backend_path,
    })
}

pub(crate) fn read_toml(path: &Path) -> Result<toml::Table, BuildError> {
    let text = std::fs::read_to_string(path).map_err(|e| BuildError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    text.parse::<toml::Table>()
        .map_err(|e| BuildError::Pyproject {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bs(text: Option<&str>) -> Result<BuildSystem, BuildError> {
        let d = tempfile::tempdir().unwrap();
        if let Some(t) = text {
            std::fs::write(d.path().join("pyproject.toml"), t).unwrap();
        }
        read_build_system(d.path()).map(|mut b| {
            b.backend_path = b
                .backend_path
                .iter()
                .map(|p| p.strip_prefix(d.path()).unwrap().to_path_buf())
                .collect();
            b
        })
    }

    #[test]
    fn defaults_and_explicit() {
        let legacy = bs(None).unwrap();
        assert_eq!(legacy.requires, ["setuptools>=40.8.0"]);
        assert_eq!(legacy.backend, "setuptools.build_meta:__legacy__");
        assert_eq!(bs(Some("[project]\nname='x'\n")).unwrap(), legacy);
        let b = bs(Some(
            "[build-system]\nrequires=['flit_core>=3.2,<4']\nbuild-backend='flit_core.buildapi'\nbackend-path=['_b']\n",
        ))
        .unwrap();
        assert_eq!(b.requires, ["flit_core>=3.2,<4"]);
        assert_eq!(b.backend, "flit_core.buildapi");
        assert_eq!(b.backend_path, [PathBuf::from("_b")]);
        let no_backend = bs(Some("[build-system]\nrequires=['setuptools']\n")).unwrap();
        assert_eq!(no_backend.backend, LEGACY_BACKEND);
    }

    #[test]
    fn refuses_backend_path_outside_and_bad_backends() {
        for t in [
            "[build-system]\nrequires=[]\nbuild-backend='x'\nbackend-path=['../up']\n",
            "[build-system]\nrequires=[]\nbuild-backend='x'\nbackend-path=['/abs']\n",
            "[build-system]\nrequires=[]\nbuild-backend='x; import os'\n",
            "[build-system]\nbuild-backend='x'\n",
        ] {
            assert!(bs(Some(t)).is_err(), "{t}");
        }
    }
}
