//! The image settings (entrypoint, env, user, ports, labels) from the request, the recipe, the
//! target and the context.

use std::path::Path;

/// `(remote URL, HEAD commit)` when `dir` is a git checkout (read from `.git` without running git).
pub(crate) fn git_info(dir: &Path) -> Option<(Option<String>, String)> {
    let git = dir.join(".git");
    if !git.is_dir() {
        return None;
    }
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let revision = match head.strip_prefix("ref: ") {
        Some(r) => match std::fs::read_to_string(git.join(r)) {
            Ok(s) => s.trim().to_string(),
            Err(_) => {
                let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
                packed
                    .lines()
                    .find(|l| l.ends_with(&format!(" {r}")))?
                    .split(' ')
                    .next()?
                    .to_string()
            }
        },
        None => head.to_string(),
    };
    if revision.len() != 40 || !revision.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let config = std::fs::read_to_string(git.join("config")).unwrap_or_default();
    let mut in_origin = false;
    let mut url = None;
    for line in config.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            in_origin = l == "[remote \"origin\"]";
        } else if in_origin
            && let Some(u) = l.strip_prefix("url = ").or_else(|| l.strip_prefix("url="))
        {
            // Never record credentials embedded in a remote URL.
            let u = match u.split_once("://") {
                Some((scheme, rest)) => match rest.split_once('@') {
                    Some((_, host))
                        if !rest.split('/').next().unwrap_or("").is_empty()
                            && rest.find('@') < rest.find('/') =>
                    {
                        format!("{scheme}://{host}")
                    }
                    _ => u.to_string(),
                },
                None => u.to_string(),
            };
            url = Some(u);
        }
    }
    Some((url, revision))
}
