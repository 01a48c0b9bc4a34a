//! Binlog files: the persisted form of a segment (see docs/storage-formats.md).
//!
//! Three kinds share one envelope: a fixed header (magic `FVBL`, format version, kind,
//! ids, data type, row count, timestamp range), a kind-specific payload, and a CRC32 of
//! everything before it. Readers check magic, version, length and checksum before they
//! trust a byte, so a damaged file is reported as [`StorageError::Corrupt`], never
//! served.
//!
//! - insert log: one column of a segment (a user field, or the row timestamps as field 1);
//! - delta log: deleted primary keys with their delete timestamps;
//! - stats log: row count, primary-key min/max and the primary-key bloom filter.

use bytes::{Buf, BufMut};
use fv_common::pk::PkColumn;
use fv_common::schema::Field;
use fv_common::{CollectionId, FieldId, PartitionId, PrimaryKey, SegmentId, Timestamp};
use fv_proto::schema::DataType;

use crate::bloom::BloomFilter;
use crate::column::{Column, ColumnData};
use crate::error::{Result, StorageError};

pub const MAGIC: &[u8; 4] = b"FVBL";
pub const FORMAT_VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 1 + 1 + 8 * 4 + 4 + 8 * 3 + 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LogKind {
    Insert = 1,
    Delta = 2,
    Stats = 3,
}

impl LogKind {
    fn name(self) -> &'static str {
        match self {
            LogKind::Insert => "insert log",
            LogKind::Delta => "delta log",
            LogKind::Stats => "stats log",
        }
    }
}

/// Identity and summary written in every file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    pub kind: LogKind,
    pub collection: CollectionId,
    pub partition: PartitionId,
    pub segment: SegmentId,
    pub field_id: FieldId,
    pub data_type: i32,
    pub row_count: u64,
    pub ts_from: Timestamp,
    pub ts_to: Timestamp,
}

/// Deleted primary keys and when they were deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaData {
    pub pks: PkColumn,
    pub timestamps: Vec<Timestamp>,
}

/// Per-segment primary-key statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkStats {
    pub row_count: u64,
    pub min: Option<PrimaryKey>,
    pub max: Option<PrimaryKey>,
    pub bloom: BloomFilter,
}

impl PkStats {
    pub fn build(pks: impl Iterator<Item = PrimaryKey> + Clone, fp_rate: f64) -> PkStats {
        let n = pks.clone().count();
        let mut bloom = BloomFilter::with_capacity(n, fp_rate);
        let mut min: Option<PrimaryKey> = None;
        let mut max: Option<PrimaryKey> = None;
        for k in pks {
            bloom.insert(&k);
            if min.as_ref().is_none_or(|m| &k < m) {
                min = Some(k.clone());
            }
            if max.as_ref().is_none_or(|m| &k > m) {
                max = Some(k);
            }
        }
        PkStats { row_count: n as u64, min, max, bloom }
    }

    /// False when the key certainly is not in the segment.
    pub fn may_contain(&self, key: &PrimaryKey) -> bool {
        let in_range = match (&self.min, &self.max) {
            (Some(lo), Some(hi)) => key >= lo && key <= hi,
            _ => false,
        };
        in_range && self.bloom.may_contain(key)
    }
}

// ---- byte plumbing ------------------------------------------------------------------
//
// Encoding appends to a `Vec<u8>` through `BufMut`; decoding reads a `&[u8]` through `Buf`
// after checking what is left, so a short or garbled file is `Corrupt`, never a panic.

/// A byte string with its u64 length.
fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    w.put_u64_le(b.len() as u64);
    w.put_slice(b);
}

/// A count, then each byte string with its length.
fn put_strings<'a>(w: &mut Vec<u8>, items: impl ExactSizeIterator<Item = &'a [u8]>) {
    w.put_u64_le(items.len() as u64);
    for it in items {
        put_bytes(w, it);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    /// Length of the whole body, for offsets in errors.
    len: usize,
    kind: &'static str,
    path: &'a str,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt { kind: self.kind, path: self.path.to_string(), reason: reason.into() }
    }
    fn pos(&self) -> usize {
        self.len - self.buf.remaining()
    }
    fn need(&self, n: usize) -> Result<()> {
        if self.buf.remaining() < n {
            return Err(self.corrupt(format!("truncated: need {n} bytes at offset {} of {}", self.pos(), self.len)));
        }
        Ok(())
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        self.need(n)?;
        let (s, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        self.need(1)?;
        Ok(self.buf.get_u8())
    }
    fn u16(&mut self) -> Result<u16> {
        self.need(2)?;
        Ok(self.buf.get_u16_le())
    }
    fn u32(&mut self) -> Result<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32_le())
    }
    fn u64(&mut self) -> Result<u64> {
        self.need(8)?;
        Ok(self.buf.get_u64_le())
    }
    fn i64(&mut self) -> Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64_le())
    }
    /// A u64 count of elements of `elem` bytes each, checked against what is left.
    fn len(&mut self, elem: usize) -> Result<usize> {
        let n = self.u64()? as usize;
        if n.checked_mul(elem.max(1)).is_none_or(|b| b > self.buf.remaining()) {
            return Err(self.corrupt(format!("length {n} exceeds the file")));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len(1)?;
        self.take(n)
    }
    fn strings(&mut self) -> Result<Vec<String>> {
        let n = self.len(8)?;
        (0..n)
            .map(|_| {
                let b = self.bytes()?;
                String::from_utf8(b.to_vec()).map_err(|_| self.corrupt("invalid UTF-8 string"))
            })
            .collect()
    }
    /// `n` fixed-width values of `size` bytes each, read with `get`.
    fn fixed<T>(&mut self, n: usize, size: usize, get: impl Fn(&mut &'a [u8]) -> T) -> Result<Vec<T>> {
        let mut raw = self.take(n.checked_mul(size).ok_or_else(|| self.corrupt("length overflow"))?)?;
        Ok((0..n).map(|_| get(&mut raw)).collect())
    }
}

fn seal(mut w: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&w);
    w.put_u32_le(crc);
    w
}

fn write_header(h: &LogHeader, payload_len: usize) -> Vec<u8> {
    let mut w = Vec::with_capacity(HEADER_LEN + payload_len + 4);
    w.put_slice(MAGIC);
    w.put_u16_le(FORMAT_VERSION);
    w.put_u8(h.kind as u8);
    w.put_u8(0);
    w.put_i64_le(h.collection);
    w.put_i64_le(h.partition);
    w.put_i64_le(h.segment);
    w.put_i64_le(h.field_id);
    w.put_u32_le(h.data_type as u32);
    w.put_u64_le(h.row_count);
    w.put_u64_le(h.ts_from);
    w.put_u64_le(h.ts_to);
    w.put_u64_le(payload_len as u64);
    w
}

fn assemble(h: &LogHeader, payload: Vec<u8>) -> Vec<u8> {
    let mut w = write_header(h, payload.len());
    w.put_slice(&payload);
    seal(w)
}

/// Checks envelope and checksum; returns the header and a reader over the payload.
fn open<'a>(bytes: &'a [u8], path: &'a str, expect: LogKind) -> Result<(LogHeader, Reader<'a>)> {
    let corrupt = |reason: String| StorageError::Corrupt { kind: expect.name(), path: path.to_string(), reason };
    if bytes.len() < HEADER_LEN + 4 {
        return Err(corrupt(format!("file of {} bytes is shorter than the header", bytes.len())));
    }
    let (body, mut crc) = bytes.split_at(bytes.len() - 4);
    let stored = crc.get_u32_le();
    if &body[..4] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    if crc32fast::hash(body) != stored {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut r = Reader { buf: &body[4..], len: body.len(), kind: expect.name(), path };
    let version = r.u16()?;
    if version != FORMAT_VERSION {
        return Err(corrupt(format!("unsupported format version {version}")));
    }
    let kind = r.u8()?;
    if kind != expect as u8 {
        return Err(corrupt(format!("file kind {kind} is not a {}", expect.name())));
    }
    let _flags = r.u8()?;
    let h = LogHeader {
        kind: expect,
        collection: r.i64()?,
        partition: r.i64()?,
        segment: r.i64()?,
        field_id: r.i64()?,
        data_type: r.u32()? as i32,
        row_count: r.u64()?,
        ts_from: r.u64()?,
        ts_to: r.u64()?,
    };
    let payload_len = r.u64()? as usize;
    if payload_len != r.buf.remaining() {
        return Err(corrupt(format!("payload length {payload_len} does not match the file")));
    }
    Ok((h, r))
}

// ---- insert logs ----------------------------------------------------------------------

/// Encodes one column of a segment. `header.row_count` is taken from the column.
pub fn encode_insert_log(mut header: LogHeader, column: &Column) -> Vec<u8> {
    header.kind = LogKind::Insert;
    header.row_count = column.len() as u64;
    header.data_type = column.data.data_type() as i32;
    header.field_id = column.field_id;
    let mut p = Vec::new();
    match &column.valid {
        None => p.put_u8(0),
        Some(v) => {
            p.put_u8(1);
            let mut bits = vec![0u8; v.len().div_ceil(8)];
            for (i, ok) in v.iter().enumerate() {
                if *ok {
                    bits[i / 8] |= 1 << (i % 8);
                }
            }
            p.put_slice(&bits);
        }
    }
    match &column.data {
        ColumnData::Bool(v) => v.iter().for_each(|b| p.put_u8(u8::from(*b))),
        ColumnData::Int8(v) => v.iter().for_each(|x| p.put_i8(*x)),
        ColumnData::Int16(v) => v.iter().for_each(|x| p.put_i16_le(*x)),
        ColumnData::Int32(v) => v.iter().for_each(|x| p.put_i32_le(*x)),
        ColumnData::Int64(v) => v.iter().for_each(|x| p.put_i64_le(*x)),
        ColumnData::Float(v) => v.iter().for_each(|x| p.put_f32_le(*x)),
        ColumnData::Double(v) => v.iter().for_each(|x| p.put_f64_le(*x)),
        ColumnData::VarChar(v) => put_strings(&mut p, v.iter().map(|s| s.as_bytes())),
        ColumnData::Json(v) => {
            let docs: Vec<Vec<u8>> =
                v.iter().map(|j| serde_json::to_vec(j).unwrap_or_else(|_| b"null".to_vec())).collect();
            put_strings(&mut p, docs.iter().map(|d| d.as_slice()))
        }
        ColumnData::FloatVector { dim, data } => {
            p.put_u32_le(*dim as u32);
            data.iter().for_each(|x| p.put_f32_le(*x));
        }
    }
    assemble(&header, p)
}

/// Decodes an insert log written for `field` (its type and dimension must match).
pub fn decode_insert_log(bytes: &[u8], path: &str, field: &Field) -> Result<(LogHeader, Column)> {
    let (h, mut r) = open(bytes, path, LogKind::Insert)?;
    if h.field_id != field.id || h.data_type != field.data_type as i32 {
        return Err(r.corrupt(format!(
            "file holds field {} of type {} but field {} of type {} was expected",
            h.field_id, h.data_type, field.id, field.data_type as i32
        )));
    }
    let n = h.row_count as usize;
    let valid = match r.u8()? {
        0 => None,
        1 => {
            let bits = r.take(n.div_ceil(8))?;
            Some((0..n).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect())
        }
        other => return Err(r.corrupt(format!("bad validity tag {other}"))),
    };
    let data = decode_column_data(&mut r, field.data_type, n)?;
    if data.len() != n {
        return Err(r.corrupt(format!("{} values for {n} rows", data.len())));
    }
    if field.data_type == DataType::FloatVector
        && let ColumnData::FloatVector { dim, .. } = &data
        && *dim != field.dim
    {
        return Err(r.corrupt(format!("dimension {dim} but the schema says {}", field.dim)));
    }
    Ok((h, Column { field_id: field.id, data, valid }))
}

fn decode_column_data(r: &mut Reader<'_>, t: DataType, n: usize) -> Result<ColumnData> {
    Ok(match t {
        DataType::Bool => ColumnData::Bool(r.take(n)?.iter().map(|b| *b != 0).collect()),
        DataType::Int8 => ColumnData::Int8(r.take(n)?.iter().map(|b| *b as i8).collect()),
        DataType::Int16 => ColumnData::Int16(r.fixed(n, 2, |b| b.get_i16_le())?),
        DataType::Int32 => ColumnData::Int32(r.fixed(n, 4, |b| b.get_i32_le())?),
        DataType::Int64 => ColumnData::Int64(r.fixed(n, 8, |b| b.get_i64_le())?),
        DataType::Float => ColumnData::Float(r.fixed(n, 4, |b| b.get_f32_le())?),
        DataType::Double => ColumnData::Double(r.fixed(n, 8, |b| b.get_f64_le())?),
        DataType::VarChar | DataType::String => ColumnData::VarChar(r.strings()?),
        DataType::Json => {
            let n = r.len(8)?;
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let b = r.bytes()?;
                out.push(serde_json::from_slice(b).map_err(|e| r.corrupt(format!("invalid JSON: {e}")))?);
            }
            ColumnData::Json(out)
        }
        DataType::FloatVector => {
            let dim = r.u32()? as usize;
            if dim == 0 {
                return Err(r.corrupt("vector dimension 0"));
            }
            let values = n.checked_mul(dim).ok_or_else(|| r.corrupt("length overflow"))?;
            ColumnData::FloatVector { dim, data: r.fixed(values, 4, |b| b.get_f32_le())? }
        }
        other => return Err(r.corrupt(format!("unsupported data type {}", other.as_str_name()))),
    })
}

/// Encodes the row timestamps of a segment (system field 1).
pub fn encode_timestamp_log(header: LogHeader, timestamps: &[Timestamp]) -> Vec<u8> {
    let col =
        Column::new(fv_common::TIMESTAMP_FIELD_ID, ColumnData::Int64(timestamps.iter().map(|t| *t as i64).collect()));
    encode_insert_log(header, &col)
}

pub fn decode_timestamp_log(bytes: &[u8], path: &str) -> Result<Vec<Timestamp>> {
    let field = Field {
        id: fv_common::TIMESTAMP_FIELD_ID,
        name: "Timestamp".into(),
        data_type: DataType::Int64,
        is_primary: false,
        auto_id: false,
        nullable: false,
        is_dynamic: false,
        is_partition_key: false,
        dim: 0,
        max_length: 0,
        default_value: None,
    };
    let (_, col) = decode_insert_log(bytes, path, &field)?;
    match col.data {
        ColumnData::Int64(v) => Ok(v.into_iter().map(|t| t as u64).collect()),
        _ => Err(StorageError::Corrupt {
            kind: "insert log",
            path: path.into(),
            reason: "timestamps are not int64".into(),
        }),
    }
}

// ---- delta logs -----------------------------------------------------------------------

fn write_pks(p: &mut Vec<u8>, pks: &PkColumn) {
    match pks {
        PkColumn::Int(v) => {
            p.put_u8(1);
            p.put_u64_le(v.len() as u64);
            v.iter().for_each(|x| p.put_i64_le(*x));
        }
        PkColumn::Str(v) => {
            p.put_u8(2);
            put_strings(p, v.iter().map(|s| s.as_bytes()));
        }
    }
}

fn read_pks(r: &mut Reader<'_>) -> Result<PkColumn> {
    match r.u8()? {
        1 => {
            let n = r.len(8)?;
            Ok(PkColumn::Int(r.fixed(n, 8, |b| b.get_i64_le())?))
        }
        2 => Ok(PkColumn::Str(r.strings()?)),
        other => Err(r.corrupt(format!("bad primary key tag {other}"))),
    }
}

pub fn encode_delta_log(mut header: LogHeader, delta: &DeltaData) -> Vec<u8> {
    header.kind = LogKind::Delta;
    header.row_count = delta.timestamps.len() as u64;
    header.ts_from = delta.timestamps.iter().copied().min().unwrap_or(0);
    header.ts_to = delta.timestamps.iter().copied().max().unwrap_or(0);
    let mut p = Vec::new();
    write_pks(&mut p, &delta.pks);
    p.put_u64_le(delta.timestamps.len() as u64);
    delta.timestamps.iter().for_each(|t| p.put_u64_le(*t));
    assemble(&header, p)
}

pub fn decode_delta_log(bytes: &[u8], path: &str) -> Result<(LogHeader, DeltaData)> {
    let (h, mut r) = open(bytes, path, LogKind::Delta)?;
    let pks = read_pks(&mut r)?;
    let n = r.len(8)?;
    let timestamps = r.fixed(n, 8, |b| b.get_u64_le())?;
    if pks.len() != n || n as u64 != h.row_count {
        return Err(r.corrupt(format!("{} keys, {n} timestamps, header says {}", pks.len(), h.row_count)));
    }
    Ok((h, DeltaData { pks, timestamps }))
}

// ---- stats logs -----------------------------------------------------------------------

fn write_pk(p: &mut Vec<u8>, k: &Option<PrimaryKey>) {
    match k {
        None => p.put_u8(0),
        Some(PrimaryKey::Int(v)) => {
            p.put_u8(1);
            p.put_i64_le(*v);
        }
        Some(PrimaryKey::Str(s)) => {
            p.put_u8(2);
            put_bytes(p, s.as_bytes());
        }
    }
}

fn read_pk(r: &mut Reader<'_>) -> Result<Option<PrimaryKey>> {
    Ok(match r.u8()? {
        0 => None,
        1 => Some(PrimaryKey::Int(r.i64()?)),
        2 => {
            let b = r.bytes()?;
            Some(PrimaryKey::Str(String::from_utf8(b.to_vec()).map_err(|_| r.corrupt("invalid UTF-8 key"))?))
        }
        other => return Err(r.corrupt(format!("bad primary key tag {other}"))),
    })
}

pub fn encode_stats_log(mut header: LogHeader, stats: &PkStats) -> Vec<u8> {
    header.kind = LogKind::Stats;
    header.row_count = stats.row_count;
    let mut p = Vec::new();
    p.put_u64_le(stats.row_count);
    write_pk(&mut p, &stats.min);
    write_pk(&mut p, &stats.max);
    p.put_u64_le(stats.bloom.num_bits());
    p.put_u32_le(stats.bloom.num_hashes());
    p.put_u64_le(stats.bloom.words().len() as u64);
    stats.bloom.words().iter().for_each(|w| p.put_u64_le(*w));
    assemble(&header, p)
}

pub fn decode_stats_log(bytes: &[u8], path: &str) -> Result<(LogHeader, PkStats)> {
    let (h, mut r) = open(bytes, path, LogKind::Stats)?;
    let row_count = r.u64()?;
    let min = read_pk(&mut r)?;
    let max = read_pk(&mut r)?;
    let bits = r.u64()?;
    let hashes = r.u32()?;
    let n = r.len(8)?;
    let words = r.fixed(n, 8, |b| b.get_u64_le())?;
    let bloom = BloomFilter::from_parts(bits, hashes, words).ok_or_else(|| r.corrupt("inconsistent bloom filter"))?;
    Ok((h, PkStats { row_count, min, max, bloom }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> LogHeader {
        LogHeader {
            kind: LogKind::Insert,
            collection: 1,
            partition: 2,
            segment: 3,
            field_id: 0,
            data_type: 0,
            row_count: 0,
            ts_from: 10,
            ts_to: 20,
        }
    }

    fn field(id: i64, t: DataType, dim: usize, nullable: bool) -> Field {
        Field {
            id,
            name: format!("f{id}"),
            data_type: t,
            is_primary: false,
            auto_id: false,
            nullable,
            is_dynamic: false,
            is_partition_key: false,
            dim,
            max_length: 100,
            default_value: None,
        }
    }

    #[test]
    fn insert_logs_round_trip_every_type() {
        let cases = vec![
            (field(100, DataType::Bool, 0, false), ColumnData::Bool(vec![true, false, true])),
            (field(101, DataType::Int8, 0, true), ColumnData::Int8(vec![-1, 0, 127])),
            (field(102, DataType::Int16, 0, false), ColumnData::Int16(vec![-300, 0, 300])),
            (field(103, DataType::Int32, 0, false), ColumnData::Int32(vec![i32::MIN, 0, i32::MAX])),
            (field(104, DataType::Int64, 0, false), ColumnData::Int64(vec![i64::MIN, 5, i64::MAX])),
            (field(105, DataType::Float, 0, false), ColumnData::Float(vec![1.5, -0.0, f32::MAX])),
            (field(106, DataType::Double, 0, false), ColumnData::Double(vec![1e300, 2.0, -3.5])),
            (field(107, DataType::VarChar, 0, false), ColumnData::VarChar(vec!["".into(), "héllo".into(), "x".into()])),
            (
                field(108, DataType::Json, 0, false),
                ColumnData::Json(vec![
                    serde_json::json!({"a": 1}),
                    serde_json::json!([1, "b"]),
                    serde_json::Value::Null,
                ]),
            ),
            (
                field(109, DataType::FloatVector, 2, false),
                ColumnData::FloatVector { dim: 2, data: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0] },
            ),
        ];
        for (f, data) in cases {
            let valid = f.nullable.then(|| vec![true, false, true]);
            let col = Column { field_id: f.id, data, valid };
            let bytes = encode_insert_log(header(), &col);
            let (h, back) = decode_insert_log(&bytes, "p", &f).expect("round trip");
            assert_eq!(back, col, "{:?}", f.data_type);
            assert_eq!(h.row_count, 3);
            assert_eq!((h.collection, h.partition, h.segment), (1, 2, 3));
        }
    }

    #[test]
    fn corruption_is_detected() {
        let f = field(104, DataType::Int64, 0, false);
        let col = Column::new(104, ColumnData::Int64(vec![1, 2, 3]));
        let bytes = encode_insert_log(header(), &col);
        let mut flipped = bytes.clone();
        flipped[HEADER_LEN + 3] ^= 0x40;
        assert!(matches!(decode_insert_log(&flipped, "p", &f), Err(StorageError::Corrupt { .. })));
        assert!(matches!(decode_insert_log(&bytes[..bytes.len() - 5], "p", &f), Err(StorageError::Corrupt { .. })));
        assert!(matches!(decode_insert_log(&bytes[..10], "p", &f), Err(StorageError::Corrupt { .. })));
        let other = field(105, DataType::Int64, 0, false);
        assert!(decode_insert_log(&bytes, "p", &other).is_err());
        assert!(decode_delta_log(&bytes, "p").is_err());
    }

    #[test]
    fn delta_and_stats_round_trip() {
        let delta = DeltaData { pks: PkColumn::Str(vec!["a".into(), "b".into()]), timestamps: vec![7, 9] };
        let (h, back) = decode_delta_log(&encode_delta_log(header(), &delta), "d").expect("delta");
        assert_eq!(back, delta);
        assert_eq!((h.ts_from, h.ts_to, h.row_count), (7, 9, 2));

        let stats = PkStats::build((0..1000i64).map(PrimaryKey::Int), 0.001);
        let (_, back) = decode_stats_log(&encode_stats_log(header(), &stats), "s").expect("stats");
        assert_eq!(back, stats);
        assert_eq!(back.min, Some(PrimaryKey::Int(0)));
        assert_eq!(back.max, Some(PrimaryKey::Int(999)));
        assert!(back.may_contain(&PrimaryKey::Int(500)));
        assert!(!back.may_contain(&PrimaryKey::Int(5000)));

        let ts = vec![1u64, 2, 3];
        assert_eq!(decode_timestamp_log(&encode_timestamp_log(header(), &ts), "t").expect("ts"), ts);
    }

    /// Files as the binlog code wrote them before it moved to `bytes::{Buf, BufMut}`
    /// (commit 83c7e5a): the format must not change.
    mod golden {
        use super::*;

        const INT64: &str = concat!(
            "4656424c0100010001000000000000000200000000000000030000000000000068000000000000000500000003000000",
            "000000000a0000000000000014000000000000001900000000000000000100000000000000feffffffffffffff030000",
            "0000000000e4a073a2",
        );
        const VARCHAR_NULLABLE: &str = concat!(
            "4656424c010001000100000000000000020000000000000003000000000000006b000000000000001500000003000000",
            "000000000a00000000000000140000000000000026000000000000000105030000000000000001000000000000006100",
            "000000000000000300000000000000636363a7142907",
        );
        const FLOAT_VECTOR: &str = concat!(
            "4656424c010001000100000000000000020000000000000003000000000000006d000000000000006500000002000000",
            "000000000a000000000000001400000000000000150000000000000000020000000000803f000020c000004040000088",
            "40e013fef5",
        );
        const DELTA: &str = concat!(
            "4656424c0100020001000000000000000200000000000000030000000000000000000000000000000000000002000000",
            "000000000700000000000000090000000000000031000000000000000102000000000000000500000000000000060000",
            "000000000002000000000000000700000000000000090000000000000025ea96c1",
        );
        const STATS: &str = concat!(
            "4656424c0100030001000000000000000200000000000000030000000000000000000000000000000000000003000000",
            "000000000a00000000000000140000000000000036000000000000000300000000000000010000000000000000010200",
            "00000000000040000000000000000f000000010000000000000034590c06ffff49f2063c4123",
        );

        fn hex(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }

        fn unhex(s: &str) -> Vec<u8> {
            (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
        }

        #[test]
        fn insert_logs() {
            let cases = [
                (INT64, field(104, DataType::Int64, 0, false), ColumnData::Int64(vec![1, -2, 3]), None),
                (
                    VARCHAR_NULLABLE,
                    field(107, DataType::VarChar, 0, true),
                    ColumnData::VarChar(vec!["a".into(), "".into(), "ccc".into()]),
                    Some(vec![true, false, true]),
                ),
                (
                    FLOAT_VECTOR,
                    field(109, DataType::FloatVector, 2, false),
                    ColumnData::FloatVector { dim: 2, data: vec![1.0, -2.5, 3.0, 4.25] },
                    None,
                ),
            ];
            for (golden, f, data, valid) in cases {
                let col = Column { field_id: f.id, data, valid };
                assert_eq!(hex(&encode_insert_log(header(), &col)), golden, "{:?}", f.data_type);
                let (h, back) = decode_insert_log(&unhex(golden), "p", &f).expect("decode the original bytes");
                assert_eq!(back, col);
                assert_eq!((h.collection, h.partition, h.segment, h.ts_from, h.ts_to), (1, 2, 3, 10, 20));
            }
        }

        #[test]
        fn delta_and_stats_logs() {
            let delta = DeltaData { pks: PkColumn::Int(vec![5, 6]), timestamps: vec![7, 9] };
            assert_eq!(hex(&encode_delta_log(header(), &delta)), DELTA);
            assert_eq!(decode_delta_log(&unhex(DELTA), "d").expect("delta").1, delta);
            let stats = PkStats::build((0..3i64).map(PrimaryKey::Int), 0.01);
            assert_eq!(hex(&encode_stats_log(header(), &stats)), STATS);
            assert_eq!(decode_stats_log(&unhex(STATS), "s").expect("stats").1, stats);
        }

        #[test]
        fn every_truncation_and_flip_is_corrupt_not_a_panic() {
            let f = field(107, DataType::VarChar, 0, true);
            let bytes = unhex(VARCHAR_NULLABLE);
            for cut in 0..bytes.len() {
                assert!(matches!(decode_insert_log(&bytes[..cut], "p", &f), Err(StorageError::Corrupt { .. })));
            }
            for i in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[i] ^= 0x10;
                assert!(matches!(decode_insert_log(&bad, "p", &f), Err(StorageError::Corrupt { .. })), "byte {i}");
            }
        }
    }
}
