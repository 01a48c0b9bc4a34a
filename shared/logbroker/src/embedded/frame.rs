//! Batch frames: one per `produce` call, in the segment files.
//!
//! ```text
//! magic "FVLB" (4) | body_len u32 | crc32 u32 | first_seq u64 | count u32 | body (body_len)
//! body = count records: subject_len u32, subject, header_count u32,
//!        header_count * (key_len u32, key, value_len u32, value), payload_len u32, payload
//! ```
//!
//! The frame is an [`fv_wal::FrameFormat`] with 12 bytes of fixed fields (`first_seq`,
//! `count`); the crc covers them and the body, not the length.

use bytes::{Buf, BufMut};
use fv_wal::FrameFormat;

use crate::{Headers, OutgoingMessage, Position};

/// The broker's frame layout.
pub(super) const FORMAT: FrameFormat = FrameFormat::new(*b"FVLB").with_fixed_fields(12);
/// magic 4 + body_len 4 + crc 4 + first_seq 8 + count 4.
pub(super) const FRAME_HEADER_LEN: usize = FORMAT.header_len();

const PAST_END: &str = "record runs past the end of its frame";

/// Encoded size of one record inside a frame body.
pub(super) fn record_len(m: &OutgoingMessage) -> u64 {
    let headers: u64 = m.headers.iter().map(|(k, v)| 8 + k.len() as u64 + v.len() as u64).sum();
    4 + m.subject.len() as u64 + 4 + headers + 4 + m.payload.len() as u64
}

/// A length-prefixed byte string. Lengths were validated by `produce`.
fn put_lp(buf: &mut Vec<u8>, data: &[u8]) {
    buf.put_u32_le(data.len() as u32);
    buf.put_slice(data);
}

/// Appends one batch frame to `buf`. Lengths were validated by `produce` (`body_len`,
/// the sum of [`record_len`], fits in a u32).
pub(super) fn encode_frame(buf: &mut Vec<u8>, first_seq: Position, msgs: &[OutgoingMessage], body_len: usize) {
    let start = buf.len();
    buf.reserve(FRAME_HEADER_LEN + body_len);
    let frame = FORMAT.begin(buf);
    buf.put_u64_le(first_seq);
    buf.put_u32_le(msgs.len() as u32);
    for m in msgs {
        put_lp(buf, m.subject.as_bytes());
        buf.put_u32_le(m.headers.len() as u32);
        for (k, v) in &m.headers {
            put_lp(buf, k.as_bytes());
            put_lp(buf, v.as_bytes());
        }
        put_lp(buf, &m.payload);
    }
    debug_assert_eq!(buf.len() - start, FRAME_HEADER_LEN + body_len);
    FORMAT.finish(buf, frame).expect("produce checked that the batch fits in one frame");
}

/// The broker's fixed fields of a frame (exactly 12 bytes, as [`FORMAT`] guarantees):
/// its first position and its record count.
pub(super) fn parse_fixed(mut fixed: &[u8]) -> (Position, u32) {
    (fixed.get_u64_le(), fixed.get_u32_le())
}

/// The header of a frame: the generic prefix and the broker's fixed fields.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameHeader {
    wal: fv_wal::FrameHeader,
    pub(super) first_seq: Position,
    pub(super) count: u32,
}

impl FrameHeader {
    /// Parses the first [`FRAME_HEADER_LEN`] bytes of `h`.
    pub(super) fn parse(h: &[u8]) -> Result<Self, String> {
        let wal = FORMAT.parse_header(h).map_err(|e| e.to_string())?;
        let (first_seq, count) = parse_fixed(&h[fv_wal::FRAME_PREFIX_LEN..FRAME_HEADER_LEN]);
        Ok(Self { wal, first_seq, count })
    }

    pub(super) fn frame_len(&self) -> u64 {
        self.wal.frame_len
    }

    /// Checks the crc of a complete frame (header included).
    pub(super) fn check_crc(&self, frame: &[u8]) -> Result<(), String> {
        FORMAT.verify(&self.wal, frame).map_err(|e| e.to_string())
    }
}

/// A record inside a frame body, borrowed.
pub(super) struct RawRecord<'a> {
    pub(super) subject: &'a str,
    pub(super) header_count: u32,
    pub(super) headers_raw: &'a [u8],
    pub(super) payload: &'a [u8],
}

fn get_u32(c: &mut &[u8]) -> Result<u32, String> {
    if c.remaining() < 4 {
        return Err(PAST_END.into());
    }
    Ok(c.get_u32_le())
}

/// A length-prefixed byte string.
fn get_lp<'a>(c: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let n = get_u32(c)? as usize;
    if c.remaining() < n {
        return Err(PAST_END.into());
    }
    let (data, rest) = c.split_at(n);
    *c = rest;
    Ok(data)
}

fn get_lp_str<'a>(c: &mut &'a [u8]) -> Result<&'a str, String> {
    std::str::from_utf8(get_lp(c)?).map_err(|_| "string is not UTF-8".to_string())
}

/// Walks the `count` records of a frame body, validating its structure.
pub(super) fn parse_records<'a>(
    body: &'a [u8],
    count: u32,
    mut f: impl FnMut(u32, RawRecord<'a>) -> Result<(), String>,
) -> Result<(), String> {
    let mut c = body;
    for i in 0..count {
        let subject = get_lp_str(&mut c)?;
        let header_count = get_u32(&mut c)?;
        let headers_start = c;
        for _ in 0..header_count {
            get_lp_str(&mut c)?;
            get_lp_str(&mut c)?;
        }
        let headers_raw = &headers_start[..headers_start.len() - c.len()];
        let payload = get_lp(&mut c)?;
        f(i, RawRecord { subject, header_count, headers_raw, payload })?;
    }
    if !c.is_empty() {
        return Err(format!("{} trailing bytes after the last record of the frame", c.len()));
    }
    Ok(())
}

pub(super) fn decode_headers(raw: &[u8], n: u32) -> Result<Headers, String> {
    let mut c = raw;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let k = get_lp_str(&mut c)?.to_owned();
        let v = get_lp_str(&mut c)?.to_owned();
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn msgs() -> Vec<OutgoingMessage> {
        vec![
            OutgoingMessage {
                subject: "s1".into(),
                payload: Bytes::from_static(b"abc"),
                headers: vec![("k".into(), "v".into())],
            },
            OutgoingMessage::new("s2", Bytes::new()),
        ]
    }

    fn encode(first_seq: Position, msgs: &[OutgoingMessage]) -> Vec<u8> {
        let body_len: u64 = msgs.iter().map(record_len).sum();
        let mut buf = Vec::new();
        encode_frame(&mut buf, first_seq, msgs, body_len as usize);
        buf
    }

    #[test]
    fn frame_round_trip_and_crc() {
        let mut buf = encode(42, &msgs());
        let h = FrameHeader::parse(&buf).expect("header");
        assert_eq!((h.first_seq, h.count, h.frame_len()), (42, 2, buf.len() as u64));
        h.check_crc(&buf).expect("crc");
        let mut seen = Vec::new();
        parse_records(&buf[FRAME_HEADER_LEN..], h.count, |i, r| {
            seen.push((i, r.subject.to_owned(), decode_headers(r.headers_raw, r.header_count)?, r.payload.len()));
            Ok(())
        })
        .expect("parse");
        assert_eq!(seen, vec![(0, "s1".into(), vec![("k".into(), "v".into())], 3), (1, "s2".into(), vec![], 0)]);
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(h.check_crc(&buf).is_err());
    }

    /// The bytes of a frame as the broker wrote them before the frame codec moved to
    /// fv-wal (commit 83c7e5a): the on-disk format must not change.
    #[test]
    fn frame_bytes_are_stable() {
        let expected: &[u8] = &[
            b'F', b'V', b'L', b'B', // magic
            41, 0, 0, 0, // body_len
            152, 123, 117, 100, // crc32 of first_seq, count and body
            42, 0, 0, 0, 0, 0, 0, 0, // first_seq
            2, 0, 0, 0, // count
            2, 0, 0, 0, b's', b'1', 1, 0, 0, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v', 3, 0, 0, 0, b'a', b'b', b'c', 2, 0,
            0, 0, b's', b'2', 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(encode(42, &msgs()), expected);
        let h = FrameHeader::parse(expected).expect("header");
        assert_eq!((h.first_seq, h.count, h.frame_len()), (42, 2, expected.len() as u64));
        h.check_crc(expected).expect("crc");
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        let buf = encode(1, &msgs());
        let body = &buf[FRAME_HEADER_LEN..];
        for cut in 0..body.len() {
            assert!(parse_records(&body[..cut], 2, |_, _| Ok(())).is_err(), "cut at {cut}");
        }
        assert!(parse_records(body, 3, |_, _| Ok(())).is_err(), "a missing record");
        assert!(parse_records(body, 1, |_, _| Ok(())).unwrap_err().contains("trailing bytes"));
        let mut bad_utf8 = body.to_vec();
        bad_utf8[4] = 0xFF;
        assert!(parse_records(&bad_utf8, 2, |_, _| Ok(())).unwrap_err().contains("UTF-8"));
        let mut huge = body.to_vec();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_records(&huge, 2, |_, _| Ok(())).is_err());
        assert!(decode_headers(&[1, 0, 0, 0], 1).is_err());
        assert!(FrameHeader::parse(&buf[..FRAME_HEADER_LEN - 1]).is_err());
    }
}
