//! The field encoding of log frames and snapshots, on `bytes::{Buf, BufMut}`: fixed-width
//! little-endian integers, counts and byte strings with a u32 length, durations as u64
//! nanoseconds. Decoding checks what is left before every read, so damaged input is an
//! error naming the byte where it ran short, never a panic.

use std::time::Duration;

use bytes::{Buf, BufMut};

/// A count (of events, grants, leases) or a length; callers validated that it fits.
pub(super) fn put_len(buf: &mut Vec<u8>, len: usize) {
    buf.put_u32_le(u32::try_from(len).expect("counts are checked to fit in u32"));
}

pub(super) fn put_duration(buf: &mut Vec<u8>, d: Duration) {
    buf.put_u64_le(u64::try_from(d.as_nanos()).expect("lease TTLs are checked to fit in u64 nanoseconds"));
}

/// A byte string with its u32 length.
pub(super) fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_len(buf, b.len());
    buf.put_slice(b);
}

/// Reads what the `put_*` functions (and `BufMut::put_*_le`) wrote.
pub(super) struct Decoder<'a> {
    buf: &'a [u8],
    len: usize,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, len: buf.len() }
    }

    fn pos(&self) -> usize {
        self.len - self.buf.remaining()
    }

    fn need(&self, n: usize) -> Result<(), String> {
        if self.buf.remaining() < n {
            return Err(format!("truncated record at byte {}", self.pos()));
        }
        Ok(())
    }

    pub(super) fn u8(&mut self) -> Result<u8, String> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        self.need(4)?;
        Ok(self.buf.get_u32_le())
    }

    pub(super) fn u64(&mut self) -> Result<u64, String> {
        self.need(8)?;
        Ok(self.buf.get_u64_le())
    }

    pub(super) fn i64(&mut self) -> Result<i64, String> {
        self.need(8)?;
        Ok(self.buf.get_i64_le())
    }

    pub(super) fn duration(&mut self) -> Result<Duration, String> {
        self.u64().map(Duration::from_nanos)
    }

    pub(super) fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = self.u32()? as usize;
        self.need(len)?;
        let (head, rest) = self.buf.split_at(len);
        self.buf = rest;
        Ok(head)
    }

    /// A key: a UTF-8 byte string.
    pub(super) fn string(&mut self) -> Result<String, String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| "key is not UTF-8".to_owned())
    }

    /// Errors unless everything was read.
    pub(super) fn finish(&self) -> Result<(), String> {
        if self.buf.is_empty() { Ok(()) } else { Err(format!("{} trailing bytes", self.buf.len())) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let mut buf = Vec::new();
        buf.put_u8(7);
        buf.put_u32_le(0xDEAD_BEEF);
        buf.put_u64_le(u64::MAX - 1);
        buf.put_i64_le(-5);
        put_duration(&mut buf, Duration::from_millis(1500));
        put_bytes(&mut buf, b"key");
        put_len(&mut buf, 3);
        assert_eq!(&buf[..5], &[7, 0xEF, 0xBE, 0xAD, 0xDE], "little-endian");
        let mut dec = Decoder::new(&buf);
        assert_eq!(dec.u8(), Ok(7));
        assert_eq!(dec.u32(), Ok(0xDEAD_BEEF));
        assert_eq!(dec.u64(), Ok(u64::MAX - 1));
        assert_eq!(dec.i64(), Ok(-5));
        assert_eq!(dec.duration(), Ok(Duration::from_millis(1500)));
        assert_eq!(dec.string().as_deref(), Ok("key"));
        assert!(dec.finish().is_err(), "a count is left");
        assert_eq!(dec.u32(), Ok(3));
        assert_eq!(dec.finish(), Ok(()));
    }

    #[test]
    fn short_input_is_an_error_at_its_offset() {
        let mut buf = Vec::new();
        buf.put_i64_le(1);
        put_bytes(&mut buf, b"abcdef");
        for cut in 0..buf.len() {
            let mut dec = Decoder::new(&buf[..cut]);
            let result = dec.i64().and_then(|_| dec.bytes().map(|_| ()));
            assert!(result.unwrap_err().starts_with("truncated record at byte "), "cut at {cut}");
        }
        let mut dec = Decoder::new(&[0, 0, 0]);
        assert_eq!(dec.u32(), Err("truncated record at byte 0".to_owned()));
        let mut dec = Decoder::new(&[0xFF, 0xFF, 0xFF, 0xFF, 1]);
        assert_eq!(dec.bytes(), Err("truncated record at byte 4".to_owned()), "a huge length");
        let mut not_utf8 = Vec::new();
        put_bytes(&mut not_utf8, &[0xC3]);
        assert!(Decoder::new(&not_utf8).string().is_err());
    }
}
