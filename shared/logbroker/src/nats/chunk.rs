//! Headers and chunking of payloads larger than the server's `max_payload`.
//!
//! A record (or reply) whose headers and payload fit in one NATS message travels as is,
//! with the caller's headers as NATS headers. A larger one is split into *chunks*, NATS
//! messages of the same subject that each carry the header
//!
//! ```text
//! Ferrovec-Chunk: <id, 16 hex digits> <index> <count> <total payload bytes>
//! ```
//!
//! The first chunk (index 0) also carries the caller's headers; the payload is the
//! concatenation of the chunks' payloads in index order. A reader drops a chunk that does
//! not continue the record it is assembling (same id and subject, next index), which is
//! how a subscription that starts in the middle of a record skips it.
//!
//! Header names starting with `Nats-` (the server's) or `Ferrovec-` (ours) are reserved:
//! callers may not send them and readers do not see them.

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, HeaderValue};
use bytes::{Bytes, BytesMut};

use crate::{BrokerError, Headers, Result};

/// The chunk header.
pub(crate) const CHUNK_HEADER: &str = "Ferrovec-Chunk";
/// Bytes of one message kept free for the headers the broker adds (chunk header, atomic
/// batch headers, expected last sequence): about 250 bytes at most, rounded up.
pub(crate) const RESERVED_HEADER_BYTES: usize = 512;
/// `NATS/1.0\r\n` before the headers and `\r\n` after them.
const HEADER_FRAME_BYTES: usize = 12;

fn is_reserved(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with("nats-") || lower.starts_with("ferrovec-")
}

/// Wire size of `headers` as NATS headers (0 when there are none).
pub(crate) fn headers_wire_len(headers: &Headers) -> usize {
    if headers.is_empty() {
        return 0;
    }
    HEADER_FRAME_BYTES + headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>()
}

/// Converts the caller's headers into NATS headers, refusing what would not come back
/// unchanged: reserved or malformed names, values with line breaks or surrounding
/// whitespace (NATS trims it).
pub(crate) fn to_nats_headers(headers: &Headers) -> Result<HeaderMap> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if name.is_empty() || is_reserved(name) {
            return Err(BrokerError::InvalidArgument {
                reason: format!("header name {name:?} is empty or reserved (Nats-*, Ferrovec-*)"),
            });
        }
        let header_name: HeaderName = name.parse().map_err(|_| BrokerError::InvalidArgument {
            reason: format!("header name {name:?} must be printable ASCII without ':'"),
        })?;
        if value.trim() != value {
            return Err(BrokerError::InvalidArgument {
                reason: format!("header {name:?} has a value with surrounding whitespace, which NATS trims"),
            });
        }
        let header_value: HeaderValue = value.parse().map_err(|_| BrokerError::InvalidArgument {
            reason: format!("header {name:?} has a value with a line break"),
        })?;
        map.append(header_name, header_value);
    }
    Ok(map)
}

/// The caller-visible headers of a received message (reserved names dropped). Values of a
/// repeated name keep their order; the order of different names is not preserved.
pub(crate) fn from_nats_headers(map: Option<&HeaderMap>) -> Headers {
    let Some(map) = map else { return Vec::new() };
    let mut out = Vec::new();
    for (name, values) in map.iter() {
        let name: &str = name.as_ref();
        if is_reserved(name) {
            continue;
        }
        for value in values {
            out.push((name.to_owned(), value.as_str().to_owned()));
        }
    }
    out
}

/// The `Ferrovec-Chunk` header of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkInfo {
    pub id: u64,
    pub index: u32,
    pub count: u32,
    pub total: u64,
}

impl ChunkInfo {
    pub(crate) fn encode(&self) -> String {
        format!("{:016x} {} {} {}", self.id, self.index, self.count, self.total)
    }

    pub(crate) fn parse(value: &str) -> Option<ChunkInfo> {
        let mut parts = value.split(' ');
        let id = u64::from_str_radix(parts.next()?, 16).ok()?;
        let index = parts.next()?.parse().ok()?;
        let count = parts.next()?.parse().ok()?;
        let total = parts.next()?.parse().ok()?;
        if parts.next().is_some() || count == 0 || index >= count {
            return None;
        }
        Some(ChunkInfo { id, index, count, total })
    }

    /// The chunk header of a received message: `Ok(None)` when it has none, `Err` with
    /// the raw value when it is malformed.
    pub(crate) fn of(headers: Option<&HeaderMap>) -> std::result::Result<Option<ChunkInfo>, String> {
        match headers.and_then(|h| h.get(CHUNK_HEADER)) {
            None => Ok(None),
            Some(v) => ChunkInfo::parse(v.as_str()).map(Some).ok_or_else(|| v.as_str().to_owned()),
        }
    }
}

/// One NATS message of a split record.
#[derive(Debug, Clone)]
pub(crate) struct Piece {
    pub headers: HeaderMap,
    pub payload: Bytes,
}

/// Splits a payload with the caller's headers into pieces that each fit in `max_payload`
/// once the broker adds up to [`RESERVED_HEADER_BYTES`] of its own headers. A payload that
/// fits travels as one piece without a chunk header.
pub(crate) fn split(id: u64, payload: &Bytes, headers: &Headers, max_payload: usize) -> Result<Vec<Piece>> {
    let budget = max_payload.saturating_sub(RESERVED_HEADER_BYTES);
    let user_len = headers_wire_len(headers);
    let user = to_nats_headers(headers)?;
    if user_len + payload.len() <= budget {
        return Ok(vec![Piece { headers: user, payload: payload.clone() }]);
    }
    // The first chunk carries the caller's headers; require room for some payload too.
    let first_room = budget.saturating_sub(user_len);
    if first_room < budget / 2 || budget == 0 {
        return Err(BrokerError::InvalidArgument {
            reason: format!(
                "headers of {user_len} bytes leave too little room in a message of at most {max_payload} bytes"
            ),
        });
    }
    let rest = payload.len() - first_room.min(payload.len());
    let count = 1 + rest.div_ceil(budget);
    let count32 = u32::try_from(count).map_err(|_| BrokerError::InvalidArgument {
        reason: format!("payload of {} bytes needs too many chunks", payload.len()),
    })?;
    let mut pieces = Vec::with_capacity(count);
    let mut offset = 0;
    for index in 0..count32 {
        let room = if index == 0 { first_room } else { budget };
        let end = (offset + room).min(payload.len());
        let mut map = if index == 0 { user.clone() } else { HeaderMap::new() };
        let info = ChunkInfo { id, index, count: count32, total: payload.len() as u64 };
        map.insert(CHUNK_HEADER, info.encode().as_str());
        pieces.push(Piece { headers: map, payload: payload.slice(offset..end) });
        offset = end;
    }
    debug_assert_eq!(offset, payload.len());
    Ok(pieces)
}

/// A record being reassembled from its chunks.
#[derive(Debug)]
pub(crate) struct Partial {
    pub info: ChunkInfo,
    pub subject: String,
    pub headers: Headers,
    next: u32,
    buf: BytesMut,
}

/// What feeding a chunk to a [`Partial`] gave.
#[derive(Debug)]
pub(crate) enum Fed {
    /// The chunk continued the record; more are needed.
    More,
    /// The record is complete.
    Done(Bytes),
    /// The chunk does not continue this record (or the record is inconsistent).
    Mismatch,
}

impl Partial {
    /// Starts a record from its first chunk; `None` when `info` is not a first chunk or
    /// announces more than `limit` bytes.
    pub(crate) fn start(info: ChunkInfo, subject: &str, headers: Headers, limit: usize) -> Option<Partial> {
        if info.index != 0 || info.total > limit as u64 {
            return None;
        }
        Some(Partial {
            info,
            subject: subject.to_owned(),
            headers,
            next: 0,
            buf: BytesMut::with_capacity(info.total as usize),
        })
    }

    /// Adds the next chunk.
    pub(crate) fn feed(&mut self, info: ChunkInfo, subject: &str, payload: &[u8]) -> Fed {
        let continues = info.id == self.info.id
            && info.count == self.info.count
            && info.total == self.info.total
            && info.index == self.next
            && subject == self.subject;
        if !continues || (self.buf.len() + payload.len()) as u64 > self.info.total {
            return Fed::Mismatch;
        }
        self.buf.extend_from_slice(payload);
        self.next += 1;
        if self.next < self.info.count {
            return Fed::More;
        }
        if self.buf.len() as u64 != self.info.total {
            return Fed::Mismatch;
        }
        Fed::Done(std::mem::take(&mut self.buf).freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reassemble(pieces: &[Piece], subject: &str, limit: usize) -> Option<(Bytes, Headers)> {
        let mut partial: Option<Partial> = None;
        for p in pieces {
            let Some(info) = ChunkInfo::of(Some(&p.headers)).expect("well-formed") else {
                return Some((p.payload.clone(), from_nats_headers(Some(&p.headers))));
            };
            if info.index == 0 {
                partial = Partial::start(info, subject, from_nats_headers(Some(&p.headers)), limit);
            }
            let part = partial.as_mut()?;
            match part.feed(info, subject, &p.payload) {
                Fed::More => {}
                Fed::Done(b) => return Some((b, part.headers.clone())),
                Fed::Mismatch => return None,
            }
        }
        None
    }

    fn pattern(n: usize) -> Bytes {
        Bytes::from((0..n).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>())
    }

    #[test]
    fn small_payloads_are_one_piece_without_chunk_header() {
        let headers: Headers = vec![("trace".into(), "abc".into())];
        let pieces = split(1, &pattern(100), &headers, 4096).expect("split");
        assert_eq!(pieces.len(), 1);
        assert!(pieces[0].headers.get(CHUNK_HEADER).is_none());
        assert_eq!(from_nats_headers(Some(&pieces[0].headers)), headers);
    }

    #[test]
    fn large_payloads_split_and_reassemble() {
        let headers: Headers = vec![("k".into(), "v1".into()), ("k".into(), "v2".into())];
        for len in [3585, 3586, 4000, 10_000, 65_536] {
            let data = pattern(len);
            let pieces = split(0xabc, &data, &headers, 4096).expect("split");
            assert!(pieces.len() > 1 || len <= 4096 - RESERVED_HEADER_BYTES - headers_wire_len(&headers), "{len}");
            for p in &pieces {
                let wire: usize = p
                    .headers
                    .iter()
                    .map(|(k, vs)| {
                        vs.iter().map(|v| AsRef::<str>::as_ref(k).len() + v.as_str().len() + 4).sum::<usize>()
                    })
                    .sum::<usize>()
                    + 12;
                assert!(
                    wire + p.payload.len() <= 4096 - RESERVED_HEADER_BYTES + 100,
                    "piece of {} + {wire}",
                    p.payload.len()
                );
            }
            let (got, h) = reassemble(&pieces, "s", 1 << 20).expect("complete");
            assert_eq!(got, data, "{len}");
            assert_eq!(h, headers);
        }
    }

    #[test]
    fn partial_starts_and_gaps_are_refused() {
        let data = pattern(20_000);
        let pieces = split(7, &data, &Vec::new(), 4096).expect("split");
        assert!(pieces.len() >= 5);
        // Starting mid-record: no first chunk, nothing assembled.
        assert!(reassemble(&pieces[2..], "s", 1 << 20).is_none());
        // A gap.
        let mut gapped = pieces.clone();
        gapped.remove(2);
        assert!(reassemble(&gapped, "s", 1 << 20).is_none());
        // Over the limit.
        assert!(reassemble(&pieces, "s", 1000).is_none());
        // Another record's chunk in between.
        let other = split(8, &data, &Vec::new(), 4096).expect("split");
        let mut mixed = pieces.clone();
        mixed[1] = other[1].clone();
        assert!(reassemble(&mixed, "s", 1 << 20).is_none());
    }

    #[test]
    fn chunk_header_round_trip_and_malformed() {
        let info = ChunkInfo { id: u64::MAX, index: 3, count: 9, total: 123 };
        assert_eq!(ChunkInfo::parse(&info.encode()), Some(info));
        for bad in ["", "1 2 3", "zz 0 1 1", "1 1 1 5", "1 0 0 5", "1 0 1 5 6"] {
            assert_eq!(ChunkInfo::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn header_validation() {
        let ok: Headers = vec![("traceparent".into(), "00-abc-01".into()), ("e".into(), String::new())];
        assert_eq!(from_nats_headers(Some(&to_nats_headers(&ok).expect("ok"))).len(), 2);
        for (k, v) in [
            ("", "v"),
            ("Nats-Msg-Id", "x"),
            ("ferrovec-chunk", "x"),
            ("a:b", "v"),
            ("a b", "v"),
            ("k", " v"),
            ("k", "v\r\n"),
        ] {
            let h: Headers = vec![(k.into(), v.into())];
            assert!(matches!(to_nats_headers(&h), Err(BrokerError::InvalidArgument { .. })), "{k:?}: {v:?}");
        }
        let mut map = HeaderMap::new();
        map.insert("Nats-Batch-Id", "x");
        map.insert("Ferrovec-Chunk", "x");
        map.insert("user", "1");
        assert_eq!(from_nats_headers(Some(&map)), vec![("user".to_string(), "1".to_string())]);
    }

    #[test]
    fn headers_too_large_for_a_chunk_are_refused() {
        let headers: Headers = vec![("big".into(), "x".repeat(3000))];
        assert!(matches!(split(1, &pattern(10_000), &headers, 4096), Err(BrokerError::InvalidArgument { .. })));
    }
}
