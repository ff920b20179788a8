//! The interpreter must be something the image can start: its path has to resolve, inside the
//! image, to a regular file that starts with the ELF magic.
//!
//! Links are followed as the kernel would inside the image's root (`chroot` semantics): an
//! absolute target starts again at the root, a relative one at the link's directory, `..` stops at
//! the root, and after [`MAX_HOPS`] links the path counts as a loop. Every symbolic and hard link of
//! the image is kept for this ([`LinkVisitor`]), and so is every file whose name starts with
//! `python`; the head of each `bin/python*` file is kept by target detection itself. So:
//!
//! - a chain that ends at a `python*` name that is not in the image is a dangling link;
//! - a chain that does not end within [`MAX_HOPS`] links is a loop;
//! - a `bin/python*` file without the ELF magic (a shell script, a text file) is not an executable
//!   the image can start as its interpreter;
//! - a directory is not an interpreter.
//!
//! A chain that ends at a file rbuild does not keep (a name that does not start with `python`)
//! cannot be checked, and is accepted as before.

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::TargetError;
use super::scan::{FileFacts, Node, Tree, clean_path};
use crate::rootfs::{Entry, EntryKind, Interest, Visitor};

/// How many links a path may go through before it counts as a loop (Linux's `ELOOP` limit).
pub(crate) const MAX_HOPS: usize = 40;

/// The ELF magic.
const ELF_MAGIC: &[u8] = b"\x7fELF";

/// What [`LinkVisitor`] keeps of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkNode {
    /// A symbolic link and its target, as written.
    Symlink(String),
    /// A hard link and the (cleaned) path it links to, from the root.
    Hardlink(String),
    /// A regular file whose name starts with `python`.
    PythonFile,
}

/// Keeps every symbolic and hard link, and every file whose name starts with `python`.
#[derive(Debug, Default)]
pub(crate) struct LinkVisitor;

impl Visitor for LinkVisitor {
    type Node = LinkNode;

    fn interest(&mut self, e: &Entry<'_>) -> Interest<LinkNode> {
        match e.kind {
            EntryKind::Symlink => {
                Interest::Keep(LinkNode::Symlink(e.link.unwrap_or_default().to_string()))
            }
            EntryKind::Hardlink => Interest::Keep(LinkNode::Hardlink(
                e.link.and_then(clean_path).unwrap_or_default(),
            )),
            EntryKind::File if e.name().starts_with("python") => {
                Interest::Keep(LinkNode::PythonFile)
            }
            _ => Interest::Skip,
        }
    }

    fn read(&mut self, _: &Entry<'_>, _: &mut dyn Read) -> io::Result<Option<LinkNode>> {
        // Never asks for content.
        Ok(None)
    }
}

/// Where a path leads inside the image.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resolved {
    /// The physical path (relative, `""` for the root), and whether a link was followed.
    At(String, bool),
    /// More than [`MAX_HOPS`] links.
    Loop,
}

fn components(path: &str) -> impl DoubleEndedIterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// Resolves `path` (absolute or relative to the root) through `links`, with `chroot` semantics.
fn resolve(links: &BTreeMap<String, LinkNode>, path: &str) -> Resolved {
    let mut todo: Vec<String> = components(path).rev().map(String::from).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        if c == ".." {
            done.pop();
            continue;
        }
        done.push(c);
        let (target, from_root) = match links.get(&done.join("/")) {
            Some(LinkNode::Symlink(t)) => (t.clone(), t.starts_with('/')),
            Some(LinkNode::Hardlink(t)) => (t.clone(), true),
            _ => continue,
        };
        hops += 1;
        if hops > MAX_HOPS {
            return Resolved::Loop;
        }
        done.pop();
        if from_root {
            done.clear();
        }
        todo.extend(components(&target).rev().map(String::from));
    }
    Resolved::At(done.join("/"), hops > 0)
}

/// Checks that `interpreter` (absolute, as the image's `PATH` spells it) resolves inside the image
/// to a regular file that starts with the ELF magic (`require_elf`: a path given with
/// `--interpreter` may be a wrapper script, so only its links are checked). The error names the
/// path and what it leads to.
pub(crate) fn check_interpreter(
    links: &BTreeMap<String, LinkNode>,
    tree: &Tree,
    platform: &str,
    interpreter: &str,
    require_elf: bool,
) -> Result<(), TargetError> {
    let bad = |reason: String| TargetError::BadInterpreter {
        platform: platform.to_string(),
        path: interpreter.to_string(),
        reason,
    };
    let (real, followed) = match resolve(links, interpreter) {
        Resolved::Loop => {
            return Err(bad(format!(
                "its symbolic links loop (more than {MAX_HOPS} links without reaching a file)"
            )));
        }
        Resolved::At(real, followed) => (real, followed),
    };
    let shown = format!("/{real}");
    let leads = if followed {
        format!("it leads to {shown}, which ")
    } else {
        "it ".to_string()
    };
    match tree.nodes.get(&real) {
        _ if real.is_empty() => Err(bad(format!("{leads}is the root directory"))),
        Some(Node::Dir) => Err(bad(format!("{leads}is a directory"))),
        Some(Node::File(FileFacts::Head(head))) if require_elf && !head.starts_with(ELF_MAGIC) => {
            Err(bad(format!(
                "{leads}is not an ELF executable ({} bytes{}); a Python interpreter the image can \
                 start is a binary",
                head.len(),
                if head.starts_with(b"#!") {
                    ", a script"
                } else {
                    ""
                }
            )))
        }
        Some(_) => Ok(()),
        None if links.get(&real) == Some(&LinkNode::PythonFile) => Ok(()),
        None if followed
            && real
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("python")) =>
        {
            Err(bad(format!(
                "it is a dangling symbolic link: {shown} does not exist in the image"
            )))
        }
        // A file rbuild does not keep: it cannot be checked.
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(entries: &[(&str, LinkNode)]) -> BTreeMap<String, LinkNode> {
        entries
            .iter()
            .map(|(p, n)| (p.to_string(), n.clone()))
            .collect()
    }

    fn sym(t: &str) -> LinkNode {
        LinkNode::Symlink(t.to_string())
    }

    fn tree(entries: &[(&str, Node)]) -> Tree {
        Tree {
            nodes: entries
                .iter()
                .map(|(p, n)| (p.to_string(), n.clone()))
                .collect(),
        }
    }

    fn head(bytes: &[u8]) -> Node {
        Node::File(FileFacts::Head(bytes.to_vec()))
    }

    #[test]
    fn resolves_like_a_chroot() {
        let l = links(&[
            ("bin", sym("usr/bin")),
            ("usr/bin/python3", sym("python3.11")),
            (
                "usr/bin/python3.11",
                sym("../../opt/py/../py/bin/python3.11"),
            ),
            ("opt/py/bin/python3.11", sym("/../../usr/local/bin/real")),
            (
                "usr/local/bin/real",
                LinkNode::Hardlink("usr/lib/py".into()),
            ),
        ]);
        assert_eq!(
            resolve(&l, "/bin/python3"),
            Resolved::At("usr/lib/py".into(), true)
        );
        assert_eq!(
            resolve(&l, "/usr/bin/env"),
            Resolved::At("usr/bin/env".into(), false)
        );
        // `..` stops at the root.
        assert_eq!(
            resolve(&l, "/../../bin/python3"),
            Resolved::At("usr/lib/py".into(), true)
        );
    }

    #[test]
    fn an_elf_through_links_is_accepted() {
        let l = links(&[
            ("usr/bin/python3", sym("python3.11")),
            ("usr/bin/python3.11", LinkNode::PythonFile),
        ]);
        let t = tree(&[("usr/bin/python3.11", head(b"\x7fELF\x02\x01"))]);
        check_interpreter(&l, &t, "linux/amd64", "/usr/bin/python3", true).unwrap();
    }

    #[test]
    fn loops_dangling_links_scripts_and_directories_are_refused() {
        let msg = |l: &[(&str, LinkNode)], t: &[(&str, Node)], path: &str| {
            check_interpreter(&links(l), &tree(t), "linux/amd64", path, true)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            msg(
                &[
                    ("usr/bin/python3", sym("python3.11")),
                    ("usr/bin/python3.11", sym("/usr/bin/python3")),
                ],
                &[],
                "/usr/bin/python3"
            ),
            "the interpreter /usr/bin/python3 of the base image for linux/amd64 cannot run: its \
             symbolic links loop (more than 40 links without reaching a file); fix the base \
             image, or pass --interpreter with the path of its real Python"
        );
        let self_loop = msg(
            &[("usr/bin/python3", sym("python3"))],
            &[],
            "/usr/bin/python3",
        );
        assert!(self_loop.contains("links loop"), "{self_loop}");
        assert_eq!(
            msg(
                &[("usr/local/bin/python3", sym("python3.12"))],
                &[],
                "/usr/local/bin/python3"
            ),
            "the interpreter /usr/local/bin/python3 of the base image for linux/amd64 cannot \
             run: it is a dangling symbolic link: /usr/local/bin/python3.12 does not exist in \
             the image; fix the base image, or pass --interpreter with the path of its real \
             Python"
        );
        let script = msg(
            &[("usr/local/bin/python3", LinkNode::PythonFile)],
            &[("usr/local/bin/python3", head(b"#!/bin/sh\nexit"))],
            "/usr/local/bin/python3",
        );
        assert!(
            script.contains(
                "cannot run: it is not an ELF executable (14 bytes, a script); a Python \
                 interpreter the image can start is a binary"
            ),
            "{script}"
        );
        let dir = msg(
            &[("usr/bin/python3", sym("/usr/lib/python3"))],
            &[("usr/lib/python3", Node::Dir)],
            "/usr/bin/python3",
        );
        assert!(
            dir.contains("it leads to /usr/lib/python3, which is a directory"),
            "{dir}"
        );
    }

    #[test]
    fn what_cannot_be_checked_is_accepted() {
        // A link to a file rbuild does not keep, and a script given with --interpreter.
        let l = links(&[("usr/bin/python3", sym("/opt/conda/bin/py"))]);
        check_interpreter(&l, &tree(&[]), "linux/amd64", "/usr/bin/python3", true).unwrap();
        let l = links(&[("usr/local/bin/python3", LinkNode::PythonFile)]);
        let t = tree(&[("usr/local/bin/python3", head(b"#!/bin/sh\n"))]);
        check_interpreter(&l, &t, "linux/amd64", "/usr/local/bin/python3", false).unwrap();
    }
}
