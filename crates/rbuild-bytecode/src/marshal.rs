//! A version-aware reader and canonical re-writer of CPython's marshal format, which makes `.pyc`
//! bytes depend only on the code they contain, not on the compiling process's history.
//!
//! CPython's `marshal` writes an object with `FLAG_REF` (bit 7 of its type byte) when the object's
//! reference count is above one (3.12+: also for every interned string), so that later
//! occurrences of the *same object* can be written as `TYPE_REF <index>`. Two things in that
//! depend on what the process did before:
//! - the reference count of an object that occurs once (an interned name shared with an earlier
//!   module, the small-int and one-character caches, the empty tuple), so the flag — and every
//!   later reference index — changes (bpo-34093 / gh-78274, gh-98819);
//! - which equal constants the compiler's constant cache merges into one object: CPython 3.11
//!   shares the two `{"foo", 2, 3}` of gh-129724 in a fresh process but writes them twice after
//!   another live module interned `"foo"` (the scipy case of astral-sh/uv#10619). Clearing
//!   unused flags, as Fedora's `marshalparser --fix` and `add-determinism` do, does not fix this.
//!
//! [`normalize_marshal`] therefore reads the whole stream into a tree (references resolved),
//! gives every immutable constant (strings, bytes, numbers, tuples, frozensets, slices) a
//! canonical id by *value* (type code + payload + children's ids; interned and plain strings stay
//! distinct because their type codes differ; code objects keep their identity), and writes the
//! tree again: the first occurrence of a value in the reader's order in full, with `FLAG_REF`
//! exactly when it occurs again, each later occurrence as a `TYPE_REF`, indices dense in the
//! order the reader assigns them (pre-order, at the type byte). The output is a function of the
//! value the stream loads to; it loads to equal objects, at most more shared (constants are
//! immutable, and the compiler already shares equal constants when it can), and is never longer
//! than the input.

use std::collections::HashMap;
use std::fmt;

use rbuild_runner::PyVersion;

/// Bit 7 of a type byte: "add this object to the reference table".
const FLAG_REF: u8 = 0x80;
/// CPython's `MAX_MARSHAL_STACK_DEPTH` (non-Windows): deeper streams are refused by the reader.
const MAX_DEPTH: usize = 2000;

/// Layout of a code object in the marshal stream of one CPython `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeLayout {
    /// CPython 3.8–3.10: argcount, posonlyargcount, kwonlyargcount, nlocals, stacksize, flags;
    /// code, consts, names, varnames, freevars, cellvars, filename, name; firstlineno;
    /// lnotab/linetable.
    Py38,
    /// CPython 3.11–3.14: argcount, posonlyargcount, kwonlyargcount, stacksize, flags; code,
    /// consts, names, localsplusnames, localspluskinds, filename, name, qualname; firstlineno;
    /// linetable, exceptiontable.
    Py311,
}

impl CodeLayout {
    /// The layout of `version`, or `None` when this crate does not know it (before 3.8, after
    /// 3.14): bytecode for such interpreters is refused rather than guessed.
    pub fn for_version(version: PyVersion) -> Option<CodeLayout> {
        match (version.major, version.minor) {
            (3, 8..=10) => Some(CodeLayout::Py38),
            (3, 11..=14) => Some(CodeLayout::Py311),
            _ => None,
        }
    }

    /// (leading 32-bit fields, objects before `firstlineno`, objects after it)
    fn shape(self) -> (usize, usize, usize) {
        match self {
            CodeLayout::Py38 => (6, 8, 1),
            CodeLayout::Py311 => (5, 8, 2),
        }
    }
}

/// Why a marshal stream could not be walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarshalError {
    /// Byte offset in the stream where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for MarshalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.problem, self.offset)
    }
}

impl std::error::Error for MarshalError {}

/// One piece of an object's encoding after its type byte.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// Bytes copied as they are (sizes, payloads, the integer fields of a code object).
    Raw(usize, usize),
    /// A nested object (by node id; a `TYPE_REF` becomes its target's id).
    Child(u32),
}

#[derive(Debug)]
struct Node {
    /// Type code without `FLAG_REF`.
    ty: u8,
    parts: Vec<Part>,
    /// Equal for nodes of equal value (for the types that may be shared); unique otherwise.
    canon: u32,
}

/// Types whose equal values may be written once and referenced: immutable constants. Code
/// objects keep their own identity; mutable containers never appear in code but keep theirs too.
fn shareable(ty: u8) -> bool {
    matches!(
        ty,
        b'i' | b'I'
            | b'g'
            | b'y'
            | b'f'
            | b'x'
            | b'l'
            | b's'
            | b't'
            | b'u'
            | b'a'
            | b'A'
            | b'z'
            | b'Z'
            | b')'
            | b'('
            | b'>'
            | b':'
    )
}

fn singleton(ty: u8) -> bool {
    matches!(ty, b'0' | b'N' | b'F' | b'T' | b'S' | b'.')
}

struct Parser<'a> {
    data: &'a [u8],
    pos: usize,
    layout: CodeLayout,
    nodes: Vec<Node>,
    /// Still being read (a reference to it would be a cycle).
    open: Vec<bool>,
    /// The reader's reference table: index -> node id.
    refs: Vec<u32>,
    values: HashMap<Vec<u8>, u32>,
    next_canon: u32,
}

impl<'a> Parser<'a> {
    fn new(data: &'a [u8], layout: CodeLayout) -> Self {
        Parser {
            data,
            pos: 0,
            layout,
            nodes: Vec::new(),
            open: Vec::new(),
            refs: Vec::new(),
            values: HashMap::new(),
            next_canon: 0,
        }
    }

    fn err(&self, offset: usize, problem: impl Into<String>) -> MarshalError {
        MarshalError {
            offset,
            problem: problem.into(),
        }
    }

    fn raw(&mut self, n: usize) -> Result<Part, MarshalError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                self.err(
                    self.pos,
                    format!("truncated stream: {n} more bytes expected"),
                )
            })?;
        let part = Part::Raw(self.pos, end);
        self.pos = end;
        Ok(part)
    }

    fn byte(&mut self) -> Result<u8, MarshalError> {
        match self.data.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.err(self.pos, "truncated stream: 1 more byte expected")),
        }
    }

    fn i32_at(&self, at: usize) -> Result<i32, MarshalError> {
        match self.data.get(at..at + 4) {
            Some(b) => Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            None => Err(self.err(at, "truncated stream: 4 more bytes expected")),
        }
    }

    /// A 32-bit size field (kept as raw bytes); each element takes at least `min_elem` bytes.
    fn size(&mut self, parts: &mut Vec<Part>, min_elem: usize) -> Result<usize, MarshalError> {
        let at = self.pos;
        let n = self.i32_at(at)?;
        parts.push(self.raw(4)?);
        if n < 0 {
            return Err(self.err(at, format!("negative size {n}")));
        }
        let n = n as usize;
        if n.saturating_mul(min_elem) > self.data.len() - self.pos {
            return Err(self.err(at, format!("size {n} exceeds the rest of the stream")));
        }
        Ok(n)
    }

    fn child(&mut self, parts: &mut Vec<Part>, depth: usize) -> Result<u32, MarshalError> {
        let id = self.object(depth + 1)?;
        parts.push(Part::Child(id));
        Ok(id)
    }

    /// Reads one object; returns its node id.
    fn object(&mut self, depth: usize) -> Result<u32, MarshalError> {
        if depth > MAX_DEPTH {
            return Err(self.err(self.pos, "objects nested too deeply"));
        }
        let at = self.pos;
        let code = self.byte()?;
        let flag = code & FLAG_REF != 0;
        let ty = code & !FLAG_REF;
        if ty == b'r' {
            let idx = self.i32_at(self.pos)?;
            self.pos += 4;
            let target = usize::try_from(idx)
                .ok()
                .and_then(|i| self.refs.get(i))
                .copied()
                .ok_or_else(|| {
                    self.err(at, format!("reference {idx} to an object not yet defined"))
                })?;
            if self.open[target as usize] {
                return Err(self.err(at, "reference to an enclosing object (a cycle)"));
            }
            return Ok(target);
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            ty,
            parts: Vec::new(),
            canon: 0,
        });
        self.open.push(true);
        // The reader reserves the reference slot when it reads the type byte (pre-order);
        // singletons never get one.
        if flag && !singleton(ty) {
            self.refs.push(id);
        }
        let mut parts = Vec::new();
        match ty {
            _ if singleton(ty) => {}
            b'i' => parts.push(self.raw(4)?),
            b'I' | b'g' => parts.push(self.raw(8)?),
            b'y' => parts.push(self.raw(16)?),
            b'f' | b'z' | b'Z' => {
                let start = self.pos;
                let n = self.byte()? as usize;
                self.raw(n)?;
                parts.push(Part::Raw(start, self.pos));
            }
            b'x' => {
                for _ in 0..2 {
                    let start = self.pos;
                    let n = self.byte()? as usize;
                    self.raw(n)?;
                    parts.push(Part::Raw(start, self.pos));
                }
            }
            b'l' => {
                let at = self.pos;
                let n = self.i32_at(at)?;
                if n == i32::MIN {
                    return Err(self.err(at, "long with an invalid digit count"));
                }
                let start = self.pos;
                self.pos += 4;
                self.raw(n.unsigned_abs() as usize * 2)?;
                parts.push(Part::Raw(start, self.pos));
            }
            b's' | b't' | b'u' | b'a' | b'A' => {
                let start = self.pos;
                let n = self.size(&mut Vec::new(), 1)?;
                self.raw(n)?;
                parts.push(Part::Raw(start, self.pos));
            }
            b')' => {
                let start = self.pos;
                let n = self.byte()? as usize;
                parts.push(Part::Raw(start, self.pos));
                for _ in 0..n {
                    self.child(&mut parts, depth)?;
                }
            }
            b'(' | b'[' | b'<' | b'>' => {
                let n = self.size(&mut parts, 1)?;
                for _ in 0..n {
                    self.child(&mut parts, depth)?;
                }
            }
            b'{' => loop {
                let key = self.child(&mut parts, depth)?;
                if self.nodes[key as usize].ty == b'0' {
                    break;
                }
                self.child(&mut parts, depth)?;
            },
            b':' => {
                // TYPE_SLICE (marshal version 5, CPython 3.14): start, stop, step.
                for _ in 0..3 {
                    self.child(&mut parts, depth)?;
                }
            }
            b'c' => {
                let (ints, before, after) = self.layout.shape();
                parts.push(self.raw(4 * ints)?);
                for _ in 0..before {
                    self.child(&mut parts, depth)?;
                }
                parts.push(self.raw(4)?); // firstlineno
                for _ in 0..after {
                    self.child(&mut parts, depth)?;
                }
            }
            other => {
                return Err(self.err(at, format!("unknown type byte 0x{other:02x}")));
            }
        }
        let canon = if shareable(ty) {
            let mut key = vec![ty];
            for p in &parts {
                match *p {
                    Part::Raw(s, e) => {
                        key.push(0);
                        key.extend_from_slice(&((e - s) as u32).to_le_bytes());
                        key.extend_from_slice(&self.data[s..e]);
                    }
                    Part::Child(c) => {
                        key.push(1);
                        key.extend_from_slice(&self.nodes[c as usize].canon.to_le_bytes());
                    }
                }
            }
            let next = self.next_canon;
            let canon = *self.values.entry(key).or_insert(next);
            if canon == next {
                self.next_canon += 1;
            }
            canon
        } else {
            self.next_canon += 1;
            self.next_canon - 1
        };
        let node = &mut self.nodes[id as usize];
        node.parts = parts;
        node.canon = canon;
        self.open[id as usize] = false;
        Ok(id)
    }
}

struct Emitter<'p, 'a> {
    p: &'p Parser<'a>,
    /// Per canonical value: how many later occurrences refer back to the first.
    uses: Vec<u32>,
    /// Per canonical value: written already (and its reference index, if it has one).
    written: Vec<Option<u32>>,
    next_index: u32,
    out: Vec<u8>,
}

impl Emitter<'_, '_> {
    fn count(&mut self, id: u32, seen: &mut [bool]) {
        let node = &self.p.nodes[id as usize];
        if singleton(node.ty) {
            return;
        }
        let c = node.canon as usize;
        if seen[c] {
            self.uses[c] += 1;
            return;
        }
        seen[c] = true;
        for part in &node.parts {
            if let Part::Child(child) = *part {
                self.count(child, seen);
            }
        }
    }

    fn emit(&mut self, id: u32) {
        let node = &self.p.nodes[id as usize];
        if singleton(node.ty) {
            self.out.push(node.ty);
            return;
        }
        let c = node.canon as usize;
        if let Some(index) = self.written[c] {
            self.out.push(b'r');
            self.out.extend_from_slice(&index.to_le_bytes());
            return;
        }
        if self.uses[c] > 0 {
            self.out.push(node.ty | FLAG_REF);
            self.written[c] = Some(self.next_index);
            self.next_index += 1;
        } else {
            self.out.push(node.ty);
            // Never referenced again: no index needed.
            self.written[c] = Some(u32::MAX);
        }
        for part in &node.parts {
            match *part {
                Part::Raw(s, e) => self.out.extend_from_slice(&self.p.data[s..e]),
                Part::Child(child) => self.emit(child),
            }
        }
    }
}

fn parse(data: &[u8], layout: CodeLayout) -> Result<(Parser<'_>, u32), MarshalError> {
    let mut p = Parser::new(data, layout);
    let root = p.object(0)?;
    if p.pos != data.len() {
        return Err(p.err(
            p.pos,
            format!("{} trailing bytes after the object", data.len() - p.pos),
        ));
    }
    Ok((p, root))
}

/// Rewrites a marshal stream (one object, as `marshal.dumps` writes it) into a canonical form
/// that depends only on the *value* it loads to: every immutable constant value (string,
/// bytes, number, tuple, frozenset, slice) is written in full once, with `FLAG_REF` exactly
/// when it occurs again, and every later occurrence is a `TYPE_REF`; code objects keep their
/// identity. Reference indices are dense, in the reader's order. The output is never longer
/// than the input (only repeated values that the writer had not shared get shorter).
///
/// Errors when the stream is not exactly one well-formed, acyclic object of `layout`'s format.
pub fn normalize_marshal(data: &[u8], layout: CodeLayout) -> Result<Vec<u8>, MarshalError> {
    let (p, root) = parse(data, layout)?;
    let n = p.next_canon as usize;
    let mut e = Emitter {
        p: &p,
        uses: vec![0; n],
        written: vec![None; n],
        next_index: 0,
        out: Vec::with_capacity(data.len()),
    };
    let mut seen = vec![false; n];
    e.count(root, &mut seen);
    e.emit(root);
    Ok(e.out)
}

/// Reads a marshal stream without changing it: `Ok` when it is exactly one well-formed, acyclic
/// object of `layout`'s format.
pub fn check_marshal(data: &[u8], layout: CodeLayout) -> Result<(), MarshalError> {
    parse(data, layout).map(|_| ())
}

#[cfg(test)]
#[allow(clippy::byte_char_slices)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn small_tuple(items: &[&[u8]], flag: bool) -> Vec<u8> {
        let mut v = vec![b')' | if flag { FLAG_REF } else { 0 }, items.len() as u8];
        for i in items {
            v.extend_from_slice(i);
        }
        v
    }

    #[test]
    fn unreferenced_flags_are_cleared_and_refs_renumbered() {
        // flagged tuple #0 (z'a' flagged #1, z'b' flagged #2, r 2): only 'b' is referenced
        // -> tuple and 'a' unflagged, 'b' becomes #0, r 0
        let a = [b'z' | FLAG_REF, 1, b'a'];
        let b = [b'z' | FLAG_REF, 1, b'b'];
        let r = [b'r', 2, 0, 0, 0];
        let data = small_tuple(&[&a, &b, &r], true);
        let out = normalize_marshal(&data, CodeLayout::Py311).unwrap();
        let expect = small_tuple(
            &[
                &[b'z', 1, b'a'],
                &[b'z' | FLAG_REF, 1, b'b'],
                &[b'r', 0, 0, 0, 0],
            ],
            false,
        );
        assert_eq!(out, expect);
        assert_eq!(out.len(), data.len());
    }

    #[test]
    fn flag_history_does_not_matter() {
        // Same object graph, written by processes with different refcounts.
        let one = small_tuple(&[&[b'i', 1, 0, 0, 0], &[b'N']], false);
        let two = small_tuple(&[&[b'i' | FLAG_REF, 1, 0, 0, 0], &[b'N']], true);
        assert_eq!(
            normalize_marshal(&one, CodeLayout::Py38).unwrap(),
            normalize_marshal(&two, CodeLayout::Py38).unwrap()
        );
    }

    #[test]
    fn containers_take_their_index_before_their_children() {
        // [flagged tuple #0 ( flagged int #1 ), r 0, r 1]
        let inner = small_tuple(&[&[b'i' | FLAG_REF, 7, 0, 0, 0]], true);
        let data = small_tuple(&[&inner, &[b'r', 0, 0, 0, 0], &[b'r', 1, 0, 0, 0]], false);
        let out = normalize_marshal(&data, CodeLayout::Py311).unwrap();
        assert_eq!(out, data, "already canonical: both refs used, order kept");
    }

    #[test]
    fn equal_constants_the_writer_did_not_share_are_merged() {
        // (frozenset{'foo'}, frozenset{'foo'}) written as two objects, then as one shared one:
        // the same value, so the same bytes (gh-129724, astral-sh/uv#10619).
        let fs = [b'>', 1, 0, 0, 0, b'Z', 3, b'f', b'o', b'o'];
        let unshared = small_tuple(&[&fs, &fs], false);
        let mut shared_fs = fs.to_vec();
        shared_fs[0] |= FLAG_REF;
        let shared = small_tuple(&[&shared_fs, &[b'r', 0, 0, 0, 0]], false);
        let a = normalize_marshal(&unshared, CodeLayout::Py311).unwrap();
        let b = normalize_marshal(&shared, CodeLayout::Py311).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, shared);
        assert!(a.len() < unshared.len());
    }

    #[test]
    fn interned_and_plain_strings_stay_distinct() {
        let data = small_tuple(&[&[b'Z', 1, b'a'], &[b'z', 1, b'a']], false);
        assert_eq!(normalize_marshal(&data, CodeLayout::Py311).unwrap(), data);
    }

    #[test]
    fn flags_on_singletons_are_dropped() {
        let data = small_tuple(&[&[b'N' | FLAG_REF], &[b'T']], false);
        let out = normalize_marshal(&data, CodeLayout::Py311).unwrap();
        assert_eq!(out, small_tuple(&[&[b'N'], &[b'T']], false));
    }

    #[test]
    fn cycles_are_refused() {
        // A flagged list containing a reference to itself.
        let data = [b'[' | FLAG_REF, 1, 0, 0, 0, b'r', 0, 0, 0, 0];
        assert!(normalize_marshal(&data, CodeLayout::Py311).is_err());
    }

    #[test]
    fn malformed_streams_are_errors() {
        assert!(normalize_marshal(&[b'r', 0, 0, 0, 0], CodeLayout::Py311).is_err());
        assert!(normalize_marshal(&[b'z', 5, b'a'], CodeLayout::Py311).is_err());
        assert!(normalize_marshal(&[b'N', b'N'], CodeLayout::Py311).is_err());
        assert!(normalize_marshal(&[b'?'], CodeLayout::Py311).is_err());
        assert!(normalize_marshal(&[b'(', 0xff, 0xff, 0xff, 0x7f], CodeLayout::Py311).is_err());
        let deep: Vec<u8> = std::iter::repeat_n([b')', 1], 3000).flatten().collect();
        assert!(normalize_marshal(&deep, CodeLayout::Py311).is_err());
    }

    #[test]
    fn layouts_by_version() {
        let v = |minor| PyVersion { major: 3, minor };
        assert_eq!(CodeLayout::for_version(v(7)), None);
        assert_eq!(CodeLayout::for_version(v(8)), Some(CodeLayout::Py38));
        assert_eq!(CodeLayout::for_version(v(10)), Some(CodeLayout::Py38));
        assert_eq!(CodeLayout::for_version(v(11)), Some(CodeLayout::Py311));
        assert_eq!(CodeLayout::for_version(v(14)), Some(CodeLayout::Py311));
        assert_eq!(CodeLayout::for_version(v(15)), None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(out) = normalize_marshal(&data, CodeLayout::Py311) {
                prop_assert!(out.len() <= data.len());
                let again = normalize_marshal(&out, CodeLayout::Py311).unwrap();
                prop_assert_eq!(again, out);
            }
            let _ = normalize_marshal(&data, CodeLayout::Py38);
        }
    }
}
