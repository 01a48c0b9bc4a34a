//! The index file format: a fixed little-endian header, a type-specific body and a CRC32
//! over everything before it. Readers check the length, magic, checksum and version first,
//! then every count and offset against the bytes actually present, so a corrupt or
//! truncated file is an error, never a panic, a huge allocation or a wrong index.
//!
//! ```text
//! offset  size  field
//!      0     8  magic "FVINDEX\0"
//!      8     4  format version (1)
//!     12     4  index type: 1 FLAT, 2 IVF_FLAT, 3 IVF_SQ8, 4 IVF_PQ, 5 HNSW
//!     16     4  metric: 1 L2, 2 IP, 3 COSINE
//!     20     4  dim
//!     24     8  rows
//!     32     4  nlist (IVF, else 0)
//!     36     4  m (IVF_PQ, else 0)
//!     40     4  nbits (IVF_PQ, else 0)
//!     44     4  default nprobe (IVF, else 0)
//!     48     8  body length B
//!     56     B  body (see each index type)
//!   56+B     4  CRC32 (IEEE, crc32fast) of bytes [0, 56+B)
//! ```
//!
//! New index types take new type codes under the same version, so every file an older
//! build wrote stays readable (an older build refuses a newer type's file as corrupt and
//! the index is rebuilt).

use bytes::{Buf, BufMut};

use crate::error::{IndexError, Result};
use crate::memory::scan_vec;
use crate::metric::Metric;
use crate::params::IndexType;

/// File magic.
pub const MAGIC: &[u8; 8] = b"FVINDEX\0";
/// Format version written (and the only one read) by this build.
pub const FORMAT_VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 56;

/// What the header records about an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Concrete index type (never AUTOINDEX).
    pub index_type: IndexType,
    /// Metric.
    pub metric: Metric,
    /// Vector dimension.
    pub dim: usize,
    /// Rows indexed.
    pub rows: usize,
    /// Inverted lists (IVF types; 0 for FLAT).
    pub nlist: usize,
    /// PQ sub-quantisers (IVF_PQ; else 0).
    pub m: usize,
    /// Bits per PQ code (IVF_PQ; else 0).
    pub nbits: usize,
    /// nprobe used when a search does not set one (IVF types; else 0).
    pub default_nprobe: usize,
}

fn type_code(t: IndexType) -> u32 {
    match t {
        IndexType::Flat => 1,
        IndexType::IvfFlat => 2,
        IndexType::IvfSq8 => 3,
        IndexType::IvfPq => 4,
        IndexType::Hnsw => 5,
        IndexType::AutoIndex => 0,
    }
}

fn metric_code(m: Metric) -> u32 {
    match m {
        Metric::L2 => 1,
        Metric::Ip => 2,
        Metric::Cosine => 3,
    }
}

/// Appends little-endian values to a buffer (through `bytes::BufMut`).
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// Starts a file with the header of `meta`; the body length is patched by `finish`.
    pub(crate) fn new(meta: &Meta, body_hint: usize) -> Writer {
        let mut buf = Vec::with_capacity(HEADER_LEN + body_hint + 4);
        buf.put_slice(MAGIC);
        buf.put_u32_le(FORMAT_VERSION);
        buf.put_u32_le(type_code(meta.index_type));
        buf.put_u32_le(metric_code(meta.metric));
        buf.put_u32_le(meta.dim as u32);
        buf.put_u64_le(meta.rows as u64);
        buf.put_u32_le(meta.nlist as u32);
        buf.put_u32_le(meta.m as u32);
        buf.put_u32_le(meta.nbits as u32);
        buf.put_u32_le(meta.default_nprobe as u32);
        buf.put_u64_le(0);
        Writer { buf }
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.put_u32_le(v);
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.put_u64_le(v);
    }

    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.put_f32_le(*x);
        }
    }

    pub(crate) fn u32s(&mut self, v: &[u32]) {
        self.buf.reserve(v.len() * 4);
        for x in v {
            self.buf.put_u32_le(*x);
        }
    }

    pub(crate) fn u64s(&mut self, v: impl IntoIterator<Item = u64>) {
        for x in v {
            self.u64(x);
        }
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.put_slice(v);
    }

    /// Patches the body length and appends the CRC.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        let body = (self.buf.len() - HEADER_LEN) as u64;
        (&mut self.buf[48..56]).put_u64_le(body);
        let crc = crc32fast::hash(&self.buf);
        self.buf.put_u32_le(crc);
        self.buf
    }
}

/// Reads little-endian values (through `bytes::Buf`) with bounds checks; every failure is
/// [`IndexError::Corrupt`].
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// Length of the whole body, for offsets in errors.
    len: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.buf.remaining() {
            return Err(IndexError::corrupt(format!(
                "{what} needs {n} bytes at body offset {}, only {} left",
                self.len - self.buf.remaining(),
                self.buf.remaining()
            )));
        }
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(s)
    }

    fn len_of(count: usize, size: usize, what: &str) -> Result<usize> {
        count.checked_mul(size).ok_or_else(|| IndexError::corrupt(format!("{what}: size overflows")))
    }

    // Arrays are read into `scan_vec`s: large ones (vectors, codes, graph links) are what
    // one-query searches hop around in, and those want huge pages (see `crate::memory`).

    pub(crate) fn f32s(&mut self, count: usize, what: &str) -> Result<Vec<f32>> {
        let mut b = self.take(Self::len_of(count, 4, what)?, what)?;
        let mut v = scan_vec(count);
        v.extend((0..count).map(|_| b.get_f32_le()));
        Ok(v)
    }

    pub(crate) fn u32s(&mut self, count: usize, what: &str) -> Result<Vec<u32>> {
        let mut b = self.take(Self::len_of(count, 4, what)?, what)?;
        let mut v = scan_vec(count);
        v.extend((0..count).map(|_| b.get_u32_le()));
        Ok(v)
    }

    pub(crate) fn u64s(&mut self, count: usize, what: &str) -> Result<Vec<u64>> {
        let mut b = self.take(Self::len_of(count, 8, what)?, what)?;
        Ok((0..count).map(|_| b.get_u64_le()).collect())
    }

    pub(crate) fn bytes(&mut self, count: usize, what: &str) -> Result<Vec<u8>> {
        let b = self.take(count, what)?;
        let mut v = scan_vec(count);
        v.extend_from_slice(b);
        Ok(v)
    }

    /// Errors unless every body byte was read.
    pub(crate) fn end(&self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(IndexError::corrupt(format!("{} unexpected bytes after the body", self.buf.len())))
        }
    }
}

/// Checks length, magic, checksum and version; returns the header and a reader of the body.
pub(crate) fn open(bytes: &[u8]) -> Result<(Meta, Reader<'_>)> {
    if bytes.len() < HEADER_LEN + 4 {
        return Err(IndexError::corrupt(format!(
            "truncated: {} bytes, an index file has at least {}",
            bytes.len(),
            HEADER_LEN + 4
        )));
    }
    if &bytes[..8] != MAGIC {
        return Err(IndexError::corrupt("bad magic: not a Ferrovec index file"));
    }
    let (content, mut tail) = bytes.split_at(bytes.len() - 4);
    let stored = tail.get_u32_le();
    let computed = crc32fast::hash(content);
    if stored != computed {
        return Err(IndexError::corrupt(format!(
            "checksum mismatch (stored {stored:08x}, computed {computed:08x}): the file is damaged or truncated"
        )));
    }
    // The length check above guarantees the whole header is present.
    let mut h = &content[8..HEADER_LEN];
    let version = h.get_u32_le();
    if version != FORMAT_VERSION {
        return Err(IndexError::Unsupported(format!(
            "index format version {version}; this build reads version {FORMAT_VERSION}"
        )));
    }
    let index_type = match h.get_u32_le() {
        1 => IndexType::Flat,
        2 => IndexType::IvfFlat,
        3 => IndexType::IvfSq8,
        4 => IndexType::IvfPq,
        5 => IndexType::Hnsw,
        c => return Err(IndexError::corrupt(format!("unknown index type code {c}"))),
    };
    let metric = match h.get_u32_le() {
        1 => Metric::L2,
        2 => Metric::Ip,
        3 => Metric::Cosine,
        c => return Err(IndexError::corrupt(format!("unknown metric code {c}"))),
    };
    let to_usize =
        |v: u64, what: &str| usize::try_from(v).map_err(|_| IndexError::corrupt(format!("{what} {v} too large")));
    let dim = h.get_u32_le() as usize;
    let rows = to_usize(h.get_u64_le(), "rows")?;
    let meta = Meta {
        index_type,
        metric,
        dim,
        rows,
        nlist: h.get_u32_le() as usize,
        m: h.get_u32_le() as usize,
        nbits: h.get_u32_le() as usize,
        default_nprobe: h.get_u32_le() as usize,
    };
    let body_len = h.get_u64_le();
    if body_len != (content.len() - HEADER_LEN) as u64 {
        return Err(IndexError::corrupt(format!(
            "body length {body_len} does not match the file ({} bytes)",
            content.len() - HEADER_LEN
        )));
    }
    if meta.dim == 0 || meta.rows > u32::MAX as usize {
        return Err(IndexError::corrupt(format!("dim {} / rows {} out of range", meta.dim, meta.rows)));
    }
    let body = &content[HEADER_LEN..];
    Ok((meta, Reader { buf: body, len: body.len() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as the writer produced it before it moved to `bytes::BufMut` (commit
    /// 83c7e5a): the format must not change.
    const GOLDEN: &str = concat!(
        "4656494e4445580001000000040000000200000004000000020000000000000001000000020000000800000001000000",
        "2f000000000000000700000000000000000100000000c03f000000c001000000ffffffff030000000000000004000000",
        "000000000908078f587e01",
    );

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn meta() -> Meta {
        Meta {
            index_type: IndexType::IvfPq,
            metric: Metric::Ip,
            dim: 4,
            rows: 2,
            nlist: 1,
            m: 2,
            nbits: 8,
            default_nprobe: 1,
        }
    }

    fn write() -> Vec<u8> {
        let mut w = Writer::new(&meta(), 64);
        w.u32(7);
        w.u64(1 << 40);
        w.f32s(&[1.5, -2.0]);
        w.u32s(&[1, u32::MAX]);
        w.u64s([3, 4]);
        w.bytes(&[9, 8, 7]);
        w.finish()
    }

    #[test]
    fn bytes_are_stable_and_read_back() {
        assert_eq!(hex(&write()), GOLDEN);
        let bytes = unhex(GOLDEN);
        let (m, mut r) = open(&bytes).expect("open the original bytes");
        assert_eq!(m, meta());
        assert_eq!(r.u32s(1, "a").expect("u32"), vec![7]);
        assert_eq!(r.u64s(1, "b").expect("u64"), vec![1 << 40]);
        assert_eq!(r.f32s(2, "c").expect("f32s"), vec![1.5, -2.0]);
        assert_eq!(r.u32s(2, "d").expect("u32s"), vec![1, u32::MAX]);
        assert_eq!(r.u64s(2, "e").expect("u64s"), vec![3, 4]);
        assert!(r.end().is_err(), "three bytes are left");
        assert_eq!(r.bytes(3, "f").expect("bytes"), vec![9, 8, 7]);
        r.end().expect("all read");
        assert!(r.u32s(1, "g").is_err(), "reading past the body is an error");
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let bytes = unhex(GOLDEN);
        for cut in 0..bytes.len() {
            assert!(open(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x01;
            assert!(open(&bad).is_err(), "flipped byte {i}");
        }
        let (_, mut r) = open(&bytes).expect("open");
        assert!(r.f32s(usize::MAX, "huge").is_err(), "an overflowing count");
        assert!(r.bytes(1000, "long").is_err());
    }
}
