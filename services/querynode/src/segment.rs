//! A segment in a query node's memory.
//!
//! Rows carry their insert timestamp; a delete at timestamp D removes rows of that
//! key with an earlier timestamp by recording D in the row's `deleted_at`. A read at
//! MVCC timestamp T sees rows with `ts <= T` and `deleted_at > T`, so every read is a
//! consistent snapshot even while the segment grows.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use fv_common::bitset::{self, FixedBitSet};
use fv_common::schema::Schema;
use fv_common::{CollectionId, FieldId, FvError, FvResult, PartitionId, PrimaryKey, SegmentId, Timestamp};
use fv_index::flat::{self, SearchParams};
use fv_index::{Metric, SearchContext, VectorIndex, matrix_view};
use fv_proto::schema::SearchResultData;
use fv_storage::binlog::PkStats;
use fv_storage::result::Rows;
use fv_storage::{ColumnData, SegmentData};
use parking_lot::RwLock;

pub const LIVE: Timestamp = Timestamp::MAX;

/// The error of a read whose stop flag was set (it was given up or timed out).
fn stopped(segment: SegmentId) -> FvError {
    FvError::timeout(format!("read of segment {segment} stopped: its request was cancelled or timed out"))
}

/// What a search over segments needs.
pub struct SearchJob {
    pub field_id: FieldId,
    pub metric: Metric,
    pub nq: usize,
    pub dim: usize,
    pub vectors: Vec<f32>,
    pub topk: usize,
    pub plan: Option<fv_expr::Plan>,
    pub output_fields: Vec<FieldId>,
    pub mvcc_ts: Timestamp,
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
    /// Lists probed by IVF indexes (None: the index's default).
    pub nprobe: Option<usize>,
    /// HNSW beam width (None: the index's default; below topk is an error).
    pub ef: Option<usize>,
    /// Set when the request is given up or times out: the search stops where it is.
    pub stop: Arc<AtomicBool>,
}

/// The index build a sealed segment is searched with. FLAT builds (and AUTOINDEX on a
/// small segment) have no file: `index` is None and searches scan the raw vectors.
#[derive(Debug)]
pub struct SegmentIndex {
    pub build_id: i64,
    pub index: Option<VectorIndex>,
}

/// What a query over segments needs.
pub struct QueryJob {
    pub plan: Option<fv_expr::Plan>,
    pub output_fields: Vec<FieldId>,
    pub mvcc_ts: Timestamp,
    /// Rows wanted (smallest primary keys first); None for all.
    pub limit: Option<usize>,
    pub count_only: bool,
    /// Set when the request is given up or times out: the query stops between segments.
    pub stop: Arc<AtomicBool>,
}

struct Inner {
    data: SegmentData,
    deleted_at: Vec<Timestamp>,
    deleted: usize,
    max_ts: Timestamp,
    /// First row of each key; further rows of a repeated key in `pk_more`.
    pk_first: HashMap<PrimaryKey, u32>,
    pk_more: HashMap<PrimaryKey, Vec<u32>>,
    /// Vector norms for cosine scoring (sealed segments).
    norms: Option<Vec<f32>>,
}

/// Which segment of which collection, partition and vchannel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlace {
    pub id: SegmentId,
    pub collection: CollectionId,
    pub partition: PartitionId,
    pub vchannel: String,
}

pub struct Segment {
    pub id: SegmentId,
    pub collection: CollectionId,
    pub partition: PartitionId,
    pub vchannel: String,
    pub sealed: bool,
    pub schema: Arc<Schema>,
    /// Bloom filter of a sealed segment, to skip deletes of keys it cannot hold.
    pub stats: Option<PkStats>,
    inner: RwLock<Inner>,
    /// Swapped in whole when a build finishes (or is dropped); a search holds the Arc
    /// it started with, so a swap never interrupts a search.
    index: RwLock<Option<Arc<SegmentIndex>>>,
}

impl Inner {
    fn index_rows(&mut self, schema: &Schema, from: usize) {
        let Some(pk) = self.data.column(schema.pk().id) else { return };
        let keys: Vec<(PrimaryKey, u32)> = (from..pk.len()).filter_map(|r| pk.pk(r).map(|k| (k, r as u32))).collect();
        for (k, r) in keys {
            match self.pk_first.entry(k) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(r);
                }
                std::collections::hash_map::Entry::Occupied(e) => {
                    self.pk_more.entry(e.key().clone()).or_default().push(r);
                }
            }
        }
    }

    fn rows_of(&self, key: &PrimaryKey) -> impl Iterator<Item = u32> + '_ {
        self.pk_first.get(key).copied().into_iter().chain(self.pk_more.get(key).into_iter().flatten().copied())
    }

    fn delete(&mut self, key: &PrimaryKey, ts: Timestamp) -> bool {
        let rows: Vec<u32> = self.rows_of(key).collect();
        let mut hit = false;
        for r in rows {
            let r = r as usize;
            if self.data.timestamps[r] < ts && self.deleted_at[r] > ts {
                if self.deleted_at[r] == LIVE {
                    self.deleted += 1;
                }
                self.deleted_at[r] = ts;
                hit = true;
            }
        }
        hit
    }

    /// The rows a read at `mvcc` may return (set bit = allowed): visible at `mvcc`, not
    /// deleted at or before it, and matching `plan`; None means every row. One bitset
    /// from the expression to the index: visibility is built a word at a time and ANDed
    /// with the expression's bitset a word at a time.
    fn mask(&self, mvcc: Timestamp, plan: Option<&fv_expr::Plan>) -> FvResult<Option<FixedBitSet>> {
        let mut mask = if mvcc >= self.max_ts && self.deleted == 0 {
            None
        } else {
            Some(bitset::from_pairs(&self.data.timestamps, &self.deleted_at, |ts, deleted| {
                *ts <= mvcc && *deleted > mvcc
            }))
        };
        if let Some(p) = plan.filter(|p| !p.is_always_true()) {
            let matched = p
                .evaluate(&self.data)
                .map_err(|e| FvError::invalid_parameter(format!("cannot evaluate filter: {e}")))?;
            mask = Some(match mask {
                None => matched,
                Some(mut m) => {
                    m.intersect_with(&matched);
                    m
                }
            });
        }
        Ok(mask)
    }
}

impl Segment {
    pub fn new(
        place: SegmentPlace,
        schema: Arc<Schema>,
        data: SegmentData,
        sealed: bool,
        stats: Option<PkStats>,
    ) -> Segment {
        let SegmentPlace { id, collection, partition, vchannel } = place;
        let n = data.num_rows();
        let max_ts = data.timestamps.iter().copied().max().unwrap_or(0);
        let norms = if sealed {
            match data.column(schema.vector().id).map(|c| &c.data) {
                Some(ColumnData::FloatVector { dim, data }) => Some(flat::row_norms(data, *dim)),
                _ => None,
            }
        } else {
            None
        };
        let mut inner = Inner {
            data,
            deleted_at: vec![LIVE; n],
            deleted: 0,
            max_ts,
            pk_first: HashMap::with_capacity(n),
            pk_more: HashMap::new(),
            norms,
        };
        inner.index_rows(&schema, 0);
        Segment {
            id,
            collection,
            partition,
            vchannel,
            sealed,
            schema,
            stats,
            inner: RwLock::new(inner),
            index: RwLock::new(None),
        }
    }

    pub fn num_rows(&self) -> usize {
        self.inner.read().data.num_rows()
    }

    /// Rows currently visible at `mvcc` (for statistics and tests).
    pub fn live_rows(&self, mvcc: Timestamp) -> usize {
        let i = self.inner.read();
        (0..i.data.num_rows()).filter(|&r| i.data.timestamps[r] <= mvcc && i.deleted_at[r] > mvcc).count()
    }

    /// Build id of the index searches use; 0 when they scan the raw vectors.
    pub fn index_build_id(&self) -> i64 {
        self.index.read().as_ref().map(|i| i.build_id).unwrap_or(0)
    }

    /// Makes searches use `index` (None: back to scanning the raw vectors). The index
    /// must cover exactly this sealed segment's rows.
    pub fn set_index(&self, index: Option<SegmentIndex>) -> FvResult<()> {
        if let Some(SegmentIndex { build_id, index: Some(vi) }) = &index {
            let rows = self.num_rows();
            if !self.sealed || vi.rows() != rows {
                return Err(FvError::internal(format!(
                    "index build {build_id} covers {} rows, segment {} holds {rows}",
                    vi.rows(),
                    self.id
                )));
            }
        }
        *self.index.write() = index.map(Arc::new);
        Ok(())
    }

    /// Appends rows (growing segments).
    pub fn append(&self, rows: &SegmentData) -> FvResult<()> {
        let mut i = self.inner.write();
        let from = i.data.num_rows();
        i.data.append(rows)?;
        i.deleted_at.extend(std::iter::repeat_n(LIVE, rows.num_rows()));
        i.max_ts = i.max_ts.max(rows.timestamps.iter().copied().max().unwrap_or(0));
        i.index_rows(&self.schema, from);
        Ok(())
    }

    /// Whether the segment may hold `key` (bloom filter for sealed segments).
    pub fn may_contain(&self, key: &PrimaryKey) -> bool {
        match &self.stats {
            Some(s) => s.may_contain(key),
            None => self.inner.read().pk_first.contains_key(key),
        }
    }

    /// Applies deletes; returns how many rows were newly deleted.
    pub fn delete(&self, keys: &[PrimaryKey], timestamps: &[Timestamp]) -> usize {
        let candidates: Vec<(&PrimaryKey, Timestamp)> = keys
            .iter()
            .zip(timestamps)
            .filter(|(k, _)| self.stats.as_ref().is_none_or(|s| s.may_contain(k)))
            .map(|(k, t)| (k, *t))
            .collect();
        if candidates.is_empty() {
            return 0;
        }
        let mut i = self.inner.write();
        candidates.into_iter().filter(|(k, t)| i.delete(k, *t)).count()
    }

    /// Top-k per query over rows visible at the job's MVCC timestamp.
    pub fn search(&self, job: &SearchJob) -> FvResult<SearchResultData> {
        let i = self.inner.read();
        let mask = i.mask(job.mvcc_ts, job.plan.as_ref())?;
        let col = i
            .data
            .column(job.field_id)
            .ok_or_else(|| FvError::internal(format!("segment {} lacks the vector field", self.id)))?;
        let ColumnData::FloatVector { dim, data } = &col.data else {
            return Err(FvError::internal("vector field is not a float vector column"));
        };
        if *dim != job.dim {
            return Err(FvError::invalid_parameter(format!(
                "vector dimension {} does not match the field's {dim}",
                job.dim
            )));
        }
        let built = self.index.read().clone();
        let index = built.as_ref().and_then(|b| b.index.as_ref()).filter(|vi| vi.metric() == job.metric);
        let ctx = SearchContext::new().with_filter(mask.as_ref()).with_stop(&job.stop);
        let invalid = |e: fv_index::IndexError| match e {
            fv_index::IndexError::Cancelled => stopped(self.id),
            e => FvError::invalid_parameter(format!("search on segment {}: {e}", self.id)),
        };
        let hits = if data.is_empty() {
            vec![Vec::new(); job.nq]
        } else if let Some(vi) = index {
            let params = fv_index::SearchParams {
                nprobe: job.nprobe,
                ef: job.ef,
                radius: job.radius,
                range_filter: job.range_filter,
            };
            let queries = matrix_view(&job.vectors, *dim).map_err(invalid)?;
            vi.search(queries, job.topk, &params, ctx).map_err(invalid)?
        } else {
            let params =
                SearchParams { metric: job.metric, k: job.topk, radius: job.radius, range_filter: job.range_filter };
            let (base, queries) = (matrix_view(data, *dim), matrix_view(&job.vectors, *dim));
            let (base, queries) = (base.map_err(invalid)?, queries.map_err(invalid)?);
            flat::search_filtered(base, queries, &params, ctx, i.norms.as_deref()).map_err(invalid)?
        };
        let rows: Vec<usize> = hits.iter().flatten().map(|h| h.row as usize).collect();
        let pk =
            i.data.column(self.schema.pk().id).ok_or_else(|| FvError::internal("segment lacks the primary key"))?;
        let ids = pk.take(&rows);
        let ids = match ids.data {
            ColumnData::Int64(v) => fv_common::pk::PkColumn::Int(v),
            ColumnData::VarChar(v) => fv_common::pk::PkColumn::Str(v),
            _ => return Err(FvError::internal("primary key column of unexpected type")),
        };
        let mut fields_data = Vec::with_capacity(job.output_fields.len());
        for fid in &job.output_fields {
            let (Some(field), Some(c)) = (self.schema.field_by_id(*fid), i.data.column(*fid)) else { continue };
            fields_data.push(c.take(&rows).to_field_data(field));
        }
        Ok(SearchResultData {
            num_queries: job.nq as i64,
            top_k: job.topk as i64,
            fields_data,
            scores: hits.iter().flatten().map(|h| h.score).collect(),
            ids: Some(ids.to_ids()),
            topks: hits.iter().map(|h| h.len() as i64).collect(),
            ..Default::default()
        })
    }

    /// Rows matching the job (smallest keys first when limited), or their count.
    pub fn retrieve(&self, job: &QueryJob) -> FvResult<(Rows, usize)> {
        if job.stop.load(Ordering::Acquire) {
            return Err(stopped(self.id));
        }
        let i = self.inner.read();
        let mask = i.mask(job.mvcc_ts, job.plan.as_ref())?;
        let n = i.data.num_rows();
        if job.count_only {
            return Ok((Rows { columns: vec![] }, mask.map_or(n, |m| m.count_ones(..))));
        }
        let matching: Vec<usize> = match &mask {
            None => (0..n).collect(),
            Some(m) => m.ones().collect(),
        };
        let pk =
            i.data.column(self.schema.pk().id).ok_or_else(|| FvError::internal("segment lacks the primary key"))?;
        let mut keyed: Vec<(PrimaryKey, usize)> = matching.iter().filter_map(|&r| pk.pk(r).map(|k| (k, r))).collect();
        keyed.sort();
        if let Some(l) = job.limit {
            keyed.truncate(l);
        }
        let rows: Vec<usize> = keyed.iter().map(|(_, r)| *r).collect();
        let mut columns = vec![pk.take(&rows)];
        for fid in &job.output_fields {
            if *fid == self.schema.pk().id {
                continue;
            }
            if let Some(c) = i.data.column(*fid) {
                columns.push(c.take(&rows));
            }
        }
        let count = rows.len();
        Ok((Rows { columns }, count))
    }
}

#[cfg(test)]
mod tests {
    use fv_storage::testing;

    use super::*;

    const DIM: usize = 2;

    fn schema() -> Arc<Schema> {
        Arc::new(testing::schema(DIM))
    }

    /// Rows whose vector is `(id, 0)`: the nearest to the origin is the smallest key.
    fn rows(ids: &[i64], ts: u64) -> SegmentData {
        testing::rows(ids, ts, DIM, |id, j| if j == 0 { id as f32 } else { 0.0 })
    }

    fn job(mvcc: u64) -> SearchJob {
        SearchJob {
            field_id: testing::VECTOR_FIELD,
            metric: Metric::L2,
            nq: 1,
            dim: DIM,
            vectors: vec![0.0, 0.0],
            topk: 10,
            plan: None,
            output_fields: vec![],
            mvcc_ts: mvcc,
            radius: None,
            range_filter: None,
            nprobe: None,
            ef: None,
            stop: Default::default(),
        }
    }

    fn query(mvcc: u64, limit: Option<usize>, count_only: bool) -> QueryJob {
        QueryJob { plan: None, output_fields: vec![], mvcc_ts: mvcc, limit, count_only, stop: Default::default() }
    }

    fn ids(r: &SearchResultData) -> Vec<i64> {
        match fv_common::pk::PkColumn::from_ids(r.ids.as_ref().expect("ids")) {
            fv_common::pk::PkColumn::Int(v) => v,
            _ => vec![],
        }
    }

    fn growing(ids: &[i64], ts: u64) -> Segment {
        let place = SegmentPlace { id: 1, collection: 1, partition: 1, vchannel: "v".into() };
        Segment::new(place, schema(), rows(ids, ts), false, None)
    }

    #[test]
    fn mvcc_and_deletes() {
        let s = growing(&[3, 1, 2], 10);
        s.append(&rows(&[4], 20)).expect("append");
        assert_eq!(ids(&s.search(&job(15)).expect("search")), vec![1, 2, 3]);
        assert_eq!(ids(&s.search(&job(25)).expect("search")), vec![1, 2, 3, 4]);
        // Delete key 2 at ts 30: visible before, gone after.
        assert_eq!(s.delete(&[PrimaryKey::Int(2)], &[30]), 1);
        assert_eq!(ids(&s.search(&job(29)).expect("search")), vec![1, 2, 3, 4]);
        assert_eq!(ids(&s.search(&job(31)).expect("search")), vec![1, 3, 4]);
        // An upsert: delete and re-insert key 3 at the same ts keeps the new row only.
        s.delete(&[PrimaryKey::Int(3)], &[40]);
        s.append(&rows(&[3], 40)).expect("append");
        assert_eq!(s.live_rows(41), 3);
        let (r, n) = s.retrieve(&query(50, Some(2), false)).expect("retrieve");
        assert_eq!(n, 2);
        assert_eq!(r.columns[0].data, ColumnData::Int64(vec![1, 3]));
        let (_, count) = s.retrieve(&query(50, None, true)).expect("count");
        assert_eq!(count, 3);
    }

    #[test]
    fn the_filter_and_visibility_bitsets_combine() {
        // 130 rows (three bitset words), the even keys deleted at 20, more rows at 30.
        let keys: Vec<i64> = (0..130).collect();
        let s = growing(&keys, 10);
        let evens: Vec<PrimaryKey> = keys.iter().filter(|k| *k % 2 == 0).map(|k| PrimaryKey::Int(*k)).collect();
        s.delete(&evens, &vec![20; evens.len()]);
        s.append(&rows(&[1000, 1001], 30)).expect("append");
        let plan = fv_expr::compile_simple("id > 100", &schema()).expect("plan");
        let mut j = job(25);
        j.plan = Some(plan.clone());
        j.topk = 100;
        let expect: Vec<i64> = (101..130).filter(|k| k % 2 == 1).collect();
        assert_eq!(ids(&s.search(&j).expect("search")), expect);
        let mut q = query(35, None, true);
        q.plan = Some(plan);
        // Odd keys 101..129 and the two rows written at 30.
        assert_eq!(s.retrieve(&q).expect("count").1, expect.len() + 2);
    }

    #[test]
    fn a_stopped_read_returns_a_timeout() {
        let s = growing(&[1, 2, 3], 10);
        let j = job(15);
        j.stop.store(true, Ordering::Release);
        assert_eq!(s.search(&j).unwrap_err().code, fv_common::Code::Timeout);
        let q = query(15, None, false);
        q.stop.store(true, Ordering::Release);
        assert_eq!(s.retrieve(&q).unwrap_err().code, fv_common::Code::Timeout);
    }
}
