//! Topic and subject names, and the names of the files that hold a topic.

use std::path::{Path, PathBuf};

use crate::{BrokerError, Position, Result};

pub(super) const SEGMENT_SUFFIX: &str = ".log";
/// Longest encoded topic directory name (file systems allow 255 bytes).
const MAX_TOPIC_DIR_LEN: usize = 240;

/// Encodes a topic name into a directory name: `[A-Za-z0-9_-]` kept, other bytes `%XX`.
pub(super) fn encode_topic(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Inverse of [`encode_topic`]; `None` for names it cannot have produced.
pub(super) fn decode_topic(dir_name: &str) -> Option<String> {
    let bytes = dir_name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = dir_name.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(hex, 16).ok()?;
            if v.is_ascii_alphanumeric() || v == b'-' || v == b'_' || hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return None; // not canonical
            }
            out.push(v);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    if out.is_empty() {
        return None;
    }
    String::from_utf8(out).ok()
}

pub(super) fn validate_topic(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(BrokerError::InvalidArgument { reason: "empty topic name".into() });
    }
    if encode_topic(name).len() > MAX_TOPIC_DIR_LEN {
        return Err(BrokerError::InvalidArgument { reason: format!("topic name too long: {name:?}") });
    }
    Ok(())
}

pub(super) fn validate_subject(subject: &str) -> Result<()> {
    if subject.is_empty() {
        return Err(BrokerError::InvalidArgument { reason: "empty subject".into() });
    }
    Ok(())
}

/// The segment file whose first position is `base`.
pub(super) fn segment_path(topic_dir: &Path, base: Position) -> PathBuf {
    topic_dir.join(format!("{base:020}{SEGMENT_SUFFIX}"))
}

/// The first position of a segment file named `name`; `None` for other files.
pub(super) fn parse_segment_name(name: &str) -> Option<Position> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_encode_reversibly_and_canonically() {
        let names = ["fv-dml-3", "a/b", "..", "with space.and.dots", "ünïcödé%41", "UPPER_lower-09"];
        for n in names {
            assert_eq!(decode_topic(&encode_topic(n)).as_deref(), Some(n));
        }
        assert_eq!(encode_topic("a/b"), "a%2Fb");
        assert_eq!(decode_topic("a%2f"), None, "non-canonical encodings are not topics");
        assert_eq!(decode_topic("a%41"), None, "kept bytes are never escaped");
        assert_eq!(decode_topic("a.b"), None);
        assert_eq!(decode_topic(""), None);
        assert_eq!(decode_topic("%"), None);
        assert!(validate_topic("").is_err());
        assert!(validate_topic(&"/".repeat(100)).is_err(), "300 encoded bytes");
    }

    #[test]
    fn segment_names() {
        let path = segment_path(Path::new("/d"), 42);
        assert_eq!(path, Path::new("/d/00000000000000000042.log"));
        let name = path.file_name().and_then(|n| n.to_str()).expect("name");
        assert_eq!(parse_segment_name(name), Some(42));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("first_retained"), None);
    }
}
