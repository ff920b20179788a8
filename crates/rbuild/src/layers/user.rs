//! The user layer: `/etc/passwd` and `/etc/group` with the app user, when the base lacks its uid.

use rbuild_layer::{LayerOptions, LayerWriter};

use crate::BuildError;
use crate::Builder;
use crate::image::LayerKind;
use crate::layers::{LAYER_FORMAT_VERSION, LayerBuilder, LayerRecord, cache_key};
use crate::rootfs::BaseFacts;
use rbuild_oci::Digest;

/// What to add for the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFiles {
    /// New `/etc/passwd` content, when it changes.
    pub passwd: Option<Vec<u8>>,
    /// New `/etc/group` content, when it changes.
    pub group: Option<Vec<u8>>,
}

fn has_id(file: &[u8], id: u32) -> bool {
    String::from_utf8_lossy(file).lines().any(|l| {
        l.split(':')
            .nth(2)
            .is_some_and(|f| f.trim() == id.to_string())
    })
}

fn has_name(file: &[u8], name: &str) -> bool {
    String::from_utf8_lossy(file)
        .lines()
        .any(|l| l.split(':').next() == Some(name))
}

fn append_line(file: &[u8], line: &str) -> Vec<u8> {
    let mut out = file.to_vec();
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(line.as_bytes());
    out.push(b'\n');
    out
}

/// Computes the changes for user `uid:gid` named `name` with home `home`, given the base's files
/// (`None` when the base has no such file, e.g. `scratch`: then nothing is added).
pub fn user_files(
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
    uid: u32,
    gid: u32,
    name: &str,
    home: &str,
) -> UserFiles {
    let pick_name = |file: &[u8]| {
        if has_name(file, name) {
            format!("{name}{uid}")
        } else {
            name.to_string()
        }
    };
    let passwd_new = passwd.filter(|p| !has_id(p, uid)).map(|p| {
        let n = pick_name(p);
        append_line(p, &format!("{n}:x:{uid}:{gid}::{home}:/bin/sh"))
    });
    let group_new = group.filter(|g| !has_id(g, gid)).map(|g| {
        let n = pick_name(g);
        append_line(g, &format!("{n}:x:{gid}:"))
    });
    UserFiles {
        passwd: passwd_new,
        group: group_new,
    }
}

/// Parses `--user UID[:GID]` (numeric only, so no passwd lookup is needed to run it).
pub fn parse_user(s: &str) -> Option<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    Some((u.parse().ok()?, g.parse().ok()?))
}

/// The user layer: `/etc/passwd` and `/etc/group` of the base with the app user added.
pub(crate) struct UserLayer {
    /// The cache key ([`UserLayer::key_for`]).
    pub(crate) key: String,
    pub(crate) facts: BaseFacts,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) home: String,
    /// The home directory is created (owned by `uid:gid`, mode 0700) unless the base has it.
    pub(crate) create_home: bool,
    pub(crate) options: LayerOptions,
}

impl UserLayer {
    /// The cache key: everything that changes the layer's bytes.
    pub(crate) fn key_for(
        base_digest: Option<Digest>,
        uid: u32,
        gid: u32,
        home: &str,
        create_home: bool,
        options: &LayerOptions,
    ) -> String {
        #[derive(serde::Serialize)]
        struct Inputs<'a> {
            layer_format: u32,
            base: Option<String>,
            uid: u32,
            gid: u32,
            home: &'a str,
            create_home: bool,
            epoch: u64,
            compression: &'static str,
        }
        cache_key(
            "user",
            // 2: the home directory, owned by the user.
            2,
            &Inputs {
                layer_format: LAYER_FORMAT_VERSION,
                base: base_digest.map(|d| d.to_string()),
                uid,
                gid,
                home,
                create_home,
                epoch: options.mtime,
                compression: options.compression.as_str(),
            },
        )
    }
}

impl LayerBuilder for UserLayer {
    fn kind(&self) -> LayerKind {
        LayerKind::User
    }
    fn key(&self) -> Option<&str> {
        Some(&self.key)
    }
    async fn build(&self, builder: &Builder) -> Result<Option<LayerRecord>, BuildError> {
        let facts = &self.facts;
        let files = user_files(
            facts.passwd.as_deref().map(str::as_bytes),
            facts.group.as_deref().map(str::as_bytes),
            self.uid,
            self.gid,
            "app",
            &self.home,
        );
        let home = self.home.trim_matches('/');
        let make_home = self.create_home && !home.is_empty() && !facts.dir_modes.contains_key(home);
        if files.passwd.is_none() && files.group.is_none() && !make_home {
            return Ok(None);
        }
        let mut w = LayerWriter::new(builder.store.writer()?, &self.options)?;
        w.auto_parents(false);
        if make_home {
            // Its parents as the base has them (or root's 0755), the home owned by the user.
            let mut parent = String::new();
            for part in home
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .expect("not empty")
                .1
            {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                let mode = facts.dir_modes.get(&parent).copied().unwrap_or(0o755);
                match facts.dir_owners.get(&parent) {
                    Some((u, g)) => w.append_dir_owned(&parent, mode, *u, *g)?,
                    None => w.append_dir(&parent, mode)?,
                }
            }
            w.append_dir_owned(home, 0o700, self.uid, self.gid)?;
        }
        w.append_dir("etc", facts.dir_modes.get("etc").copied().unwrap_or(0o755))?;
        if let Some(g) = &files.group {
            w.append_bytes("etc/group", 0o644, g)?;
        }
        if let Some(p) = &files.passwd {
            w.append_bytes("etc/passwd", 0o644, p)?;
        }
        let (blob, info) = w.finish()?;
        Ok(Some(builder.finish_layer(Some(&self.key), blob, &info)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &[u8] = b"root:x:0:\nnogroup:x:65534:\n";

    #[test]
    fn adds_missing_user_and_group_only() {
        let f = user_files(Some(PASSWD), Some(GROUP), 1001, 1001, "app", "/app");
        assert!(
            String::from_utf8(f.passwd.unwrap())
                .unwrap()
                .ends_with("nologin\napp:x:1001:1001::/app:/bin/sh\n")
        );
        assert!(
            String::from_utf8(f.group.unwrap())
                .unwrap()
                .ends_with("app:x:1001:\n")
        );
        let f = user_files(Some(PASSWD), Some(GROUP), 65534, 65534, "app", "/app");
        assert_eq!(
            f,
            UserFiles {
                passwd: None,
                group: None
            }
        );
        assert_eq!(
            user_files(None, None, 1001, 1001, "app", "/app"),
            UserFiles {
                passwd: None,
                group: None
            }
        );
        assert_eq!(parse_user("1001"), Some((1001, 1001)));
        assert_eq!(parse_user("1001:0"), Some((1001, 0)));
        assert_eq!(parse_user("app"), None);
    }
}
