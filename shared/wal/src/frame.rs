//! The frame codec: one checksummed, length-prefixed record of a log file.
//!
//! ```text
//! magic (4) | body length u32 | crc32 u32 | fixed fields (F bytes) | body (length bytes)
//! ```
//!
//! All little-endian. The crc (crc32fast, IEEE) covers the fixed fields and the body, and,
//! when the format says so, the length field before them. The length counts the body
//! only, not the fixed fields. The two stores differ in exactly these choices:
//!
//! - the log broker: magic `FVLB`, 12 fixed bytes (first position u64, record count u32),
//!   crc over fixed fields and body;
//! - the meta store: magic `FVMF`, no fixed fields, crc over length and body, and bodies
//!   above 1 GiB are garbage.

use bytes::{Buf, BufMut};

use crate::{FrameError, WalError};

/// Bytes every frame starts with: magic, length and crc.
pub const FRAME_PREFIX_LEN: usize = 12;

/// How a store lays out its frames (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFormat {
    magic: [u8; 4],
    fixed_len: usize,
    crc_covers_len: bool,
    max_body: u32,
}

/// Where a frame started by [`FrameFormat::begin`] begins in its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a begun frame must be finished"]
pub struct FrameStart(usize);

/// The parsed header of a frame (its checksum not yet verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Length of the body (fixed fields not included).
    pub body_len: u32,
    /// The stored checksum.
    pub crc: u32,
    /// Length of the whole frame: prefix, fixed fields and body.
    pub frame_len: u64,
}

/// A verified frame, borrowed from the bytes it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The format's fixed fields.
    pub fixed: &'a [u8],
    /// The body.
    pub body: &'a [u8],
}

impl Frame<'_> {
    /// Length of the whole frame in bytes.
    pub fn frame_len(&self) -> usize {
        FRAME_PREFIX_LEN + self.fixed.len() + self.body.len()
    }
}

impl FrameFormat {
    /// Frames with `magic`, no fixed fields, a crc over fixed fields and body only, and no
    /// length limit beyond the 32-bit field.
    pub const fn new(magic: [u8; 4]) -> Self {
        Self { magic, fixed_len: 0, crc_covers_len: false, max_body: u32::MAX }
    }

    /// `len` bytes of fixed fields follow the crc in every frame.
    pub const fn with_fixed_fields(mut self, len: usize) -> Self {
        self.fixed_len = len;
        self
    }

    /// The crc also covers the length field.
    pub const fn with_crc_over_length(mut self) -> Self {
        self.crc_covers_len = true;
        self
    }

    /// A frame claiming a longer body is treated as garbage when read. This is a sanity
    /// bound for readers; [`FrameFormat::finish`] only enforces the 32-bit field.
    pub const fn with_max_body(mut self, max: u32) -> Self {
        self.max_body = max;
        self
    }

    /// The magic every frame starts with.
    pub const fn magic(&self) -> [u8; 4] {
        self.magic
    }

    /// Prefix plus fixed fields: the bytes before the body.
    pub const fn header_len(&self) -> usize {
        FRAME_PREFIX_LEN + self.fixed_len
    }

    /// Starts a frame at the end of `buf`. The caller appends exactly the fixed fields and
    /// then the body, and calls [`FrameFormat::finish`]; building in place saves copying
    /// large bodies.
    pub fn begin(&self, buf: &mut Vec<u8>) -> FrameStart {
        let start = buf.len();
        buf.put_slice(&self.magic);
        // Length and crc, patched by `finish`.
        buf.put_u64_le(0);
        FrameStart(start)
    }

    /// Fills in the length and crc of the frame begun at `start`, which now runs to the
    /// end of `buf`. A body too long for the length field fails with
    /// [`WalError::FrameTooLarge`] and the partial frame is removed from `buf`.
    ///
    /// Panics if fewer bytes than the fixed fields were appended since `begin` (a bug in
    /// the caller, not bad input).
    pub fn finish(&self, buf: &mut Vec<u8>, start: FrameStart) -> Result<(), WalError> {
        let at = start.0;
        let body = buf.len().checked_sub(at + self.header_len()).unwrap_or_else(|| {
            panic!("frame at {at} is missing fixed fields: the caller must write {} bytes", self.fixed_len)
        });
        let Ok(len) = u32::try_from(body) else {
            buf.truncate(at);
            return Err(WalError::FrameTooLarge { len: body });
        };
        (&mut buf[at + 4..at + 8]).put_u32_le(len);
        let crc = self.crc(&buf[at..]);
        (&mut buf[at + 8..at + 12]).put_u32_le(crc);
        Ok(())
    }

    /// Appends a complete frame to `buf`. Panics if `fixed` is not the format's size.
    pub fn encode(&self, buf: &mut Vec<u8>, fixed: &[u8], body: &[u8]) -> Result<(), WalError> {
        assert_eq!(fixed.len(), self.fixed_len, "fixed fields of the wrong size");
        let start = self.begin(buf);
        buf.reserve(fixed.len() + body.len());
        buf.put_slice(fixed);
        buf.put_slice(body);
        self.finish(buf, start)
    }

    /// Parses the header at the start of `bytes` (at least [`FrameFormat::header_len`]
    /// bytes are needed). The checksum is checked by [`FrameFormat::verify`].
    pub fn parse_header(&self, bytes: &[u8]) -> Result<FrameHeader, FrameError> {
        if bytes.len() < self.header_len() {
            return Err(FrameError::IncompleteHeader { available: bytes.len() as u64, needed: self.header_len() });
        }
        let mut h = bytes;
        if h[..4] != self.magic {
            return Err(FrameError::BadMagic);
        }
        h.advance(4);
        let body_len = h.get_u32_le();
        let crc = h.get_u32_le();
        if body_len > self.max_body {
            return Err(FrameError::TooLong { len: body_len, max: self.max_body });
        }
        Ok(FrameHeader { body_len, crc, frame_len: self.header_len() as u64 + u64::from(body_len) })
    }

    /// Checks the crc of `frame`, the complete frame (`header.frame_len` bytes) whose
    /// header is `header`.
    pub fn verify(&self, header: &FrameHeader, frame: &[u8]) -> Result<(), FrameError> {
        if (frame.len() as u64) < header.frame_len {
            return Err(FrameError::Incomplete { frame_len: header.frame_len, available: frame.len() as u64 });
        }
        let computed = self.crc(&frame[..header.frame_len as usize]);
        if computed != header.crc {
            return Err(FrameError::Checksum { stored: header.crc, computed });
        }
        Ok(())
    }

    /// Decodes the frame at the start of `bytes` (which may go on after it): header,
    /// bounds and checksum.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Frame<'a>, FrameError> {
        let header = self.parse_header(bytes)?;
        self.verify(&header, bytes)?;
        Ok(self.parts(&bytes[..header.frame_len as usize]))
    }

    /// Splits a complete, verified frame into fixed fields and body.
    pub(crate) fn parts<'a>(&self, frame: &'a [u8]) -> Frame<'a> {
        let (head, body) = frame.split_at(self.header_len());
        Frame { fixed: &head[FRAME_PREFIX_LEN..], body }
    }

    /// The crc of a complete frame (its stored crc field is not read).
    fn crc(&self, frame: &[u8]) -> u32 {
        let mut hasher = crc32fast::Hasher::new();
        if self.crc_covers_len {
            hasher.update(&frame[4..8]);
        }
        hasher.update(&frame[FRAME_PREFIX_LEN..]);
        hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_FIXED: FrameFormat = FrameFormat::new(*b"TSTA").with_fixed_fields(12);
    const COVERS_LEN: FrameFormat = FrameFormat::new(*b"TSTB").with_crc_over_length().with_max_body(1 << 10);

    fn fixed(first: u64, count: u32) -> Vec<u8> {
        let mut f = Vec::new();
        f.put_u64_le(first);
        f.put_u32_le(count);
        f
    }

    #[test]
    fn layout_is_magic_length_crc_fixed_body() {
        let mut buf = vec![0xEE]; // frames start anywhere in a buffer
        WITH_FIXED.encode(&mut buf, &fixed(7, 2), b"body").expect("encode");
        let frame = &buf[1..];
        assert_eq!(&frame[..4], b"TSTA");
        assert_eq!(&frame[4..8], &4u32.to_le_bytes(), "the length counts the body only");
        let crc = crc32fast::hash(&frame[12..]);
        assert_eq!(&frame[8..12], &crc.to_le_bytes(), "crc over fixed fields and body");
        assert_eq!(&frame[12..24], &fixed(7, 2)[..]);
        assert_eq!(&frame[24..], b"body");

        let mut buf = Vec::new();
        COVERS_LEN.encode(&mut buf, &[], b"xyz").expect("encode");
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&3u32.to_le_bytes());
        hasher.update(b"xyz");
        assert_eq!(&buf[8..12], &hasher.finalize().to_le_bytes(), "crc over length and body");
        assert_eq!(buf.len(), 15);
    }

    #[test]
    fn begin_finish_builds_in_place() {
        let mut a = Vec::new();
        let start = WITH_FIXED.begin(&mut a);
        a.put_u64_le(1);
        a.put_u32_le(3);
        a.put_slice(b"in place");
        WITH_FIXED.finish(&mut a, start).expect("finish");
        let mut b = Vec::new();
        WITH_FIXED.encode(&mut b, &fixed(1, 3), b"in place").expect("encode");
        assert_eq!(a, b);
    }

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut buf = Vec::new();
        WITH_FIXED.encode(&mut buf, &fixed(9, 1), b"first").expect("encode");
        WITH_FIXED.encode(&mut buf, &fixed(10, 1), b"").expect("encode");
        let first = WITH_FIXED.decode(&buf).expect("first frame");
        assert_eq!((first.fixed, first.body), (&fixed(9, 1)[..], &b"first"[..]));
        let second = WITH_FIXED.decode(&buf[first.frame_len()..]).expect("second frame");
        assert_eq!((second.body, second.frame_len()), (&b""[..], 24));
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let mut buf = Vec::new();
        COVERS_LEN.encode(&mut buf, &[], b"payload").expect("encode");
        for cut in 0..buf.len() {
            assert!(COVERS_LEN.decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(COVERS_LEN.decode(&buf[..5]), Err(FrameError::IncompleteHeader { available: 5, .. })));
        assert!(matches!(COVERS_LEN.decode(&buf[..14]), Err(FrameError::Incomplete { frame_len: 19, available: 14 })));
        let mut bad = buf.clone();
        bad[0] = b'X';
        assert_eq!(COVERS_LEN.decode(&bad), Err(FrameError::BadMagic));
        for i in 4..buf.len() {
            if (8..12).contains(&i) {
                continue;
            }
            let mut bad = buf.clone();
            bad[i] ^= 0x01;
            assert!(COVERS_LEN.decode(&bad).is_err(), "flipped byte {i} must be detected");
        }
        let mut huge = buf.clone();
        huge[4..8].copy_from_slice(&(2u32 << 10).to_le_bytes());
        assert_eq!(COVERS_LEN.decode(&huge), Err(FrameError::TooLong { len: 2 << 10, max: 1 << 10 }));
        // Without the length under the crc, a changed length is still caught by the bounds
        // or by the crc over a different span.
        let mut buf = Vec::new();
        WITH_FIXED.encode(&mut buf, &fixed(1, 1), b"abcdef").expect("encode");
        buf[4] = 5;
        assert!(matches!(WITH_FIXED.decode(&buf), Err(FrameError::Checksum { .. })));
    }
}
