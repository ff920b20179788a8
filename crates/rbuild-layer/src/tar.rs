//! Byte-exact tar headers: ustar, with PAX extended headers where ustar cannot say it.
//!
//! Every header is built from the entry's path, type, mode, size and the layer's mtime only;
//! owner and group are 0 with empty names, no atime/ctime, no device numbers (written as zero),
//! so the same entry always gives the same 512 bytes.
//!
//! - Names of up to 100 ASCII bytes go in `name`; longer ASCII names are split at a `/` into
//!   `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes) as POSIX ustar allows.
//! - Names that cannot be split, names with non-ASCII bytes, link targets longer than 100 bytes
//!   or non-ASCII, and sizes of 8 GiB or more are written in a PAX extended header (`x`) placed
//!   just before the entry, with records sorted by key (`linkpath`, `path`, `size`). Its own
//!   name is `<dir>/PaxHeaders.0/<base>` like Go's `archive/tar`; the ustar fields then hold an
//!   ASCII-only, truncated fallback.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Largest value of an 11-digit octal field: 8 GiB - 1 for sizes, year 2242 for mtimes.
pub const MAX_OCTAL_11: u64 = 0o77777777777;

/// Tar entry types this crate writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryType {
    Regular,
    Directory,
    Symlink,
    PaxHeader,
}

impl EntryType {
    fn flag(self) -> u8 {
        match self {
            EntryType::Regular => b'0',
            EntryType::Symlink => b'2',
            EntryType::Directory => b'5',
            EntryType::PaxHeader => b'x',
        }
    }
}

/// Writes `value` as zero-padded octal, NUL-terminated, filling `field`.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    debug_assert!(
        s.len() == digits,
        "{value} does not fit {digits} octal digits"
    );
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

/// Copies `s` into `field`, truncated, NUL-padded.
fn string(field: &mut [u8], s: &[u8]) {
    let n = s.len().min(field.len());
    field[..n].copy_from_slice(&s[..n]);
}

fn ascii_fallback(s: &str, max: usize) -> Vec<u8> {
    s.bytes()
        .filter(|b| b.is_ascii() && *b != 0)
        .take(max)
        .collect()
}

/// Splits an ASCII name longer than 100 bytes into ustar prefix and name (Go's
/// `splitUSTARPath`).
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    let bytes = name.as_bytes();
    let mut length = bytes.len();
    if length <= 100 || !name.is_ascii() {
        return None;
    }
    if length > 156 {
        length = 156;
    } else if bytes[length - 1] == b'/' {
        length -= 1;
    }
    let i = name[..length].rfind('/')?;
    let nlen = bytes.len() - i - 1;
    if i == 0 || nlen > 100 || nlen == 0 || i > 155 {
        return None;
    }
    Some((&name[..i], &name[i + 1..]))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
fn pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

#[allow(clippy::too_many_arguments)]
fn raw_header(
    name: &[u8],
    prefix: &[u8],
    mode: u32,
    size: u64,
    mtime: u64,
    kind: EntryType,
    link: &[u8],
    owner: (u32, u32),
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    string(&mut h[0..100], name);
    octal(&mut h[100..108], u64::from(mode & 0o7777));
    // Ids above the 7 octal digits a ustar field holds are carried by PAX `uid`/`gid` records.
    octal(&mut h[108..116], u64::from(owner.0).min(MAX_OCTAL_7)); // uid
    octal(&mut h[116..124], u64::from(owner.1).min(MAX_OCTAL_7)); // gid
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], mtime);
    h[156] = kind.flag();
    string(&mut h[157..257], link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // uname (265..297) and gname (297..329) stay empty.
    octal(&mut h[329..337], 0); // devmajor
    octal(&mut h[337..345], 0); // devminor
    string(&mut h[345..500], prefix);
    // Checksum: sum of all bytes with the checksum field read as spaces; six octal digits,
    // NUL, space.
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

/// The largest value of a 7-digit octal ustar field (`uid`, `gid`).
const MAX_OCTAL_7: u64 = 0o7777777;

/// The header blocks (PAX header + its data, if needed, then the ustar header) for one entry.
/// `name` is the full entry name (directories end with `/`); `owner` is the numeric uid and gid
/// (user and group names stay empty). The caller writes the entry's data and padding after these
/// bytes.
pub(crate) fn entry_headers(
    name: &str,
    kind: EntryType,
    mode: u32,
    size: u64,
    mtime: u64,
    link: Option<&str>,
    owner: (u32, u32),
) -> Vec<u8> {
    let mut records = Vec::new();
    if u64::from(owner.0) > MAX_OCTAL_7 {
        pax_record(&mut records, "uid", owner.0.to_string().as_bytes());
    }
    if u64::from(owner.1) > MAX_OCTAL_7 {
        pax_record(&mut records, "gid", owner.1.to_string().as_bytes());
    }
    let link = link.unwrap_or("");
    let link_field: Vec<u8> = if link.len() <= 100 && link.is_ascii() {
        link.as_bytes().to_vec()
    } else {
        pax_record(&mut records, "linkpath", link.as_bytes());
        ascii_fallback(link, 100)
    };
    let (name_field, prefix_field): (Vec<u8>, &str) = if name.len() <= 100 && name.is_ascii() {
        (name.as_bytes().to_vec(), "")
    } else if let Some((prefix, rest)) = split_ustar(name) {
        (rest.as_bytes().to_vec(), prefix)
    } else {
        pax_record(&mut records, "path", name.as_bytes());
        (ascii_fallback(name, 100), "")
    };
    let size_field = if size > MAX_OCTAL_11 {
        pax_record(&mut records, "size", size.to_string().as_bytes());
        0
    } else {
        size
    };

    let mut out = Vec::with_capacity(3 * BLOCK);
    if !records.is_empty() {
        let trimmed = name.trim_end_matches('/');
        let (dir, base) = match trimmed.rfind('/') {
            Some(i) => (&trimmed[..i + 1], &trimmed[i + 1..]),
            None => ("", trimmed),
        };
        let pax_name = format!("{dir}PaxHeaders.0/{base}");
        let h = raw_header(
            &ascii_fallback(&pax_name, 100),
            b"",
            0o644,
            records.len() as u64,
            mtime,
            EntryType::PaxHeader,
            b"",
            (0, 0),
        );
        out.extend_from_slice(&h);
        out.extend_from_slice(&records);
        out.resize(out.len() + padding(records.len() as u64), 0);
    }
    out.extend_from_slice(&raw_header(
        &name_field,
        prefix_field.as_bytes(),
        mode,
        size_field,
        mtime,
        kind,
        &link_field,
        owner,
    ));
    out
}

/// Zero bytes needed after `size` bytes of data to reach a block boundary.
pub(crate) fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        let mut v = Vec::new();
        pax_record(&mut v, "path", b"a");
        assert_eq!(v, b"9 path=a\n");
        let mut v = Vec::new();
        let long = vec![b'x'; 95];
        pax_record(&mut v, "path", &long);
        // 1+4+1+95+1 = 102, plus 3 digits = 105.
        assert!(v.starts_with(b"105 path="));
        assert_eq!(v.len(), 105);
        let mut v = Vec::new();
        pax_record(&mut v, "path", &[b'y'; 92]);
        // rest = 99: 99+2=101 has 3 digits, so 102.
        assert_eq!(v.len(), 102);
        assert!(v.starts_with(b"102 "));
    }

    #[test]
    fn ustar_split_follows_go() {
        let long = format!("{}/{}", "d".repeat(60), "f".repeat(60));
        assert_eq!(split_ustar(&long), Some((&long[..60], &long[61..])));
        assert_eq!(split_ustar("short"), None);
        assert_eq!(split_ustar(&"x".repeat(120)), None, "no slash");
        let last_too_long = format!("a/{}", "f".repeat(101));
        assert_eq!(split_ustar(&last_too_long), None);
    }

    #[test]
    fn sizes_beyond_ustar_use_a_pax_size_record() {
        let size = 9 * 1024 * 1024 * 1024u64;
        let h = entry_headers("big", EntryType::Regular, 0o644, size, 0, None, (0, 0));
        assert_eq!(
            h.len(),
            3 * BLOCK,
            "pax header, its records, the entry header"
        );
        assert_eq!(h[156], b'x');
        assert_eq!(&h[..19], b"PaxHeaders.0/big\0\0\0");
        let records = &h[BLOCK..2 * BLOCK];
        assert!(
            records.starts_with(b"19 size=9663676416\n\0"),
            "{:?}",
            &records[..24]
        );
        assert_eq!(&h[2 * BLOCK + 124..2 * BLOCK + 136], b"00000000000\0");
        assert_eq!(&h[2 * BLOCK..2 * BLOCK + 4], b"big\0");
    }

    #[test]
    fn checksum_and_fields_are_standard() {
        let h = entry_headers(
            "a.txt",
            EntryType::Regular,
            0o644,
            5,
            315532800,
            None,
            (0, 0),
        );
        assert_eq!(h.len(), BLOCK);
        assert_eq!(&h[100..108], b"0000644\0");
        assert_eq!(&h[124..136], b"00000000005\0");
        assert_eq!(&h[136..148], b"02263523000\0");
        let mut copy = h.clone();
        copy[148..156].fill(b' ');
        let sum: u64 = copy.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(&h[148..156], format!("{sum:06o}\0 ").as_bytes());
    }
}
