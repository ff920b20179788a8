//! Real PyPI files for tests, pinned by sha256 and cached across runs.
//!
//! Files are cached in `$RBUILD_TEST_WHEELS` (default `~/.cache/rbuild-test-wheels`) and verified
//! by sha256 on every run. [`fetch`] returns `Err` (the test should print why and pass) only when
//! PyPI cannot be reached and the cache does not hold the file; a file with another hash fails.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// A file of a PyPI release, pinned by sha256.
pub struct Pin {
    /// The project name.
    pub name: &'static str,
    /// The release.
    pub version: &'static str,
    /// The file name.
    pub file: &'static str,
    /// Its sha256 (hex).
    pub sha256: &'static str,
}

/// Resolves a pinned file through PyPI's JSON API and downloads it. Exit 3: network trouble.
const FETCH_PY: &str = r#"
import json, sys, urllib.request, urllib.parse, urllib.error
name, version, filename, dest = sys.argv[1:5]
def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()
try:
    base = f"https://pypi.org/pypi/{name}/json"
    files = json.loads(get(base)).get("releases", {}).get(version) or []
    if not any(f["filename"] == filename for f in files):
        base = f"https://pypi.org/pypi/{name}/{version}/json"
        files = json.loads(get(base))["urls"]
    [f] = [f for f in files if f["filename"] == filename]
    data = get(urllib.parse.urljoin(base, f["url"]))
except (urllib.error.URLError, OSError) as e:
    print(f"PyPI unreachable: {e}", file=sys.stderr)
    sys.exit(3)
open(dest, "wb").write(data)
"#;

/// Where pinned files are cached.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("RBUILD_TEST_WHEELS") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/rbuild-test-wheels")
}

/// The sha256 of a file, hex.
pub fn sha256_hex(path: &Path) -> String {
    let mut f = fs::File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The pinned wheel from the cache, downloading it if needed. `Err` = skip the test.
pub fn fetch(pin: &Pin) -> Result<PathBuf, String> {
    let dir = cache_dir();
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(pin.file);
    if path.exists() && sha256_hex(&path) == pin.sha256 {
        return Ok(path);
    }
    let tmp = dir.join(format!(".{}.part", pin.file));
    let out = Command::new("python3")
        .args(["-c", FETCH_PY, pin.name, pin.version, pin.file])
        .arg(&tmp)
        .output()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if out.status.code() == Some(3) {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    assert!(
        out.status.success(),
        "downloading {} failed: {}",
        pin.file,
        String::from_utf8_lossy(&out.stderr)
    );
    let got = sha256_hex(&tmp);
    assert_eq!(
        got, pin.sha256,
        "{} from PyPI does not have the pinned sha256",
        pin.file
    );
    fs::rename(&tmp, &path).unwrap();
    Ok(path)
}
