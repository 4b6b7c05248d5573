//! File reading and small parsers shared by the probes.
//!
//! Files are opened, read into a reused buffer and closed (the `File` is
//! dropped) before parsing: no descriptor outlives a call.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Files larger than this are not real proc/sys files: reading stops with an
/// error instead of growing the buffer without bound.
const MAX_FILE: u64 = 1 << 20;

/// Reads `path` into `buf` (cleared first).
pub(crate) fn read(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    let file = File::open(path)?;
    let mut limited = file.take(MAX_FILE + 1);
    limited.read_to_string(buf)?;
    if buf.len() as u64 > MAX_FILE {
        buf.clear();
        return Err(io::Error::new(io::ErrorKind::InvalidData, "file too large"));
    }
    Ok(())
}

/// Reads a file that may legitimately be absent: `Ok(true)` when read,
/// `Ok(false)` when it does not exist, `Err` on any other failure.
pub(crate) fn read_optional(path: &Path, buf: &mut String) -> Result<bool, ()> {
    match read(path, buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(_) => Err(()),
    }
}

/// Reads a file that must be present; a failure counts in `errors`.
pub(crate) fn read_required(path: &Path, buf: &mut String, errors: &mut u64) -> bool {
    match read(path, buf) {
        Ok(()) => true,
        Err(_) => {
            *errors += 1;
            false
        }
    }
}

/// Parses a file holding a single unsigned integer.
pub(crate) fn single_u64(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a "key value" per line file (`cpu.stat`,
/// `memory.stat`). The key must match a whole word.
pub(crate) fn keyed_u64(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut it = line.split_ascii_whitespace();
        if it.next()? != key {
            return None;
        }
        it.next()?.parse().ok()
    })
}

/// A `proc/meminfo` value in bytes (`MemTotal:  16330304 kB`).
// Ours, not procfs's `Meminfo`: that one requires some twenty keys we do not
// read (`SwapCached`, `Active`, `Dirty`, `Mapped`, …), so it rejects our
// fixtures and fails on any kernel that lacks one, and it is a hundred times
// slower than our two lookups (figures: benches/README.md).
pub(crate) fn meminfo_bytes(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != key {
            return None;
        }
        let mut it = rest.split_ascii_whitespace();
        let value: u64 = it.next()?.parse().ok()?;
        match it.next() {
            None => Some(value),
            Some("kB") => value.checked_mul(1024),
            Some(_) => None,
        }
    })
}

/// Number of CPUs in a range list such as `0-3,8,10-11` (the format of
/// `sys/devices/system/cpu/online`). `None` for an empty or garbled list.
pub(crate) fn cpu_list_count(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut count: u32 = 0;
    for part in text.split(',') {
        let n = match part.split_once('-') {
            Some((a, b)) => {
                let a: u32 = a.trim().parse().ok()?;
                let b: u32 = b.trim().parse().ok()?;
                b.checked_sub(a)?.checked_add(1)?
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                1
            }
        };
        count = count.checked_add(n)?;
    }
    Some(count)
}

/// Undoes the octal escapes (`\040` for a space, …) the kernel applies to
/// paths in `proc/self/mountinfo`.
pub(crate) fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(cpu_list_count("0-3\n"), Some(4));
        assert_eq!(cpu_list_count("0"), Some(1));
        assert_eq!(cpu_list_count("0,2-3,7,10-11"), Some(6));
        assert_eq!(cpu_list_count(""), None);
        assert_eq!(cpu_list_count("3-1"), None);
        assert_eq!(cpu_list_count("zz"), None);
        assert_eq!(cpu_list_count("0-"), None);
    }

    #[test]
    fn keyed_values_match_whole_keys() {
        let text = "inactive_anon 5\ninactive_file 7\ntotal_inactive_file 9\n";
        assert_eq!(keyed_u64(text, "inactive_file"), Some(7));
        assert_eq!(keyed_u64(text, "total_inactive_file"), Some(9));
        assert_eq!(keyed_u64(text, "inactive"), None);
        assert_eq!(keyed_u64("usage_usec x\n", "usage_usec"), None);
    }

    #[test]
    fn meminfo_values() {
        let text = "MemTotal:       16384000 kB\nMemAvailable:   100 kB\nHugePages_Total: 3\n";
        assert_eq!(meminfo_bytes(text, "MemTotal"), Some(16_384_000 * 1024));
        assert_eq!(meminfo_bytes(text, "MemAvailable"), Some(102_400));
        assert_eq!(meminfo_bytes(text, "HugePages_Total"), Some(3));
        assert_eq!(meminfo_bytes(text, "MemFree"), None);
        assert_eq!(meminfo_bytes("MemTotal: 1 MB\n", "MemTotal"), None);
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(r"/a\040b"), "/a b");
        assert_eq!(unescape_octal(r"/a\\b"), r"/a\\b");
        assert_eq!(unescape_octal(r"/end\04"), r"/end\04");
        assert_eq!(unescape_octal(r"/x\134y"), r"/x\y");
    }
}
