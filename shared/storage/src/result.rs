//! Merging partial search and query results (segments into a shard result on a query
//! node, shards into the final result on the proxy).
//!
//! Search results are Milvus `SearchResultData`: ids, scores and output columns laid
//! out query-major, `topks[q]` hits for query `q`. Query results are columns with the
//! primary key always present, ordered by primary key.

use fv_common::PrimaryKey;
use fv_common::pk::PkColumn;
use fv_common::schema::Schema;
use fv_proto::schema::{FieldData, SearchResultData};

use crate::column::Column;
use crate::error::{Result, StorageError};

/// Concatenates same-field columns and picks rows `(source, row)` in order.
pub fn gather(columns: &[Column], picks: &[(usize, usize)]) -> Result<Column> {
    let Some(first) = columns.first() else {
        return Err(StorageError::Invalid("nothing to gather from".into()));
    };
    let mut offsets = Vec::with_capacity(columns.len());
    let mut all = first.clone();
    offsets.push(0);
    for c in &columns[1..] {
        offsets.push(all.len());
        all.append(c)?;
    }
    let idx: Vec<usize> = picks.iter().map(|(s, r)| offsets[*s] + r).collect();
    Ok(all.take(&idx))
}

/// Decodes the output columns of a result against the schema (by field id or name).
fn columns_of(fields: &[FieldData], schema: &Schema, rows: usize) -> Result<Vec<Column>> {
    fields
        .iter()
        .map(|fd| {
            let f = schema
                .fields
                .iter()
                .find(|f| (fd.field_id != 0 && f.id == fd.field_id) || f.name == fd.field_name)
                .ok_or_else(|| {
                    StorageError::Invalid(format!("result column {} is not in the schema", fd.field_name))
                })?;
            Column::from_field_data(fd, f, rows)
        })
        .collect()
}

fn encode_columns(columns: &[Column], schema: &Schema) -> Vec<FieldData> {
    columns.iter().filter_map(|c| schema.field_by_id(c.field_id).map(|f| c.to_field_data(f))).collect()
}

/// Merges per-source search results into the best hits per query, dropping repeated
/// primary keys (the best-scored copy wins), skipping the first `offset` and keeping
/// at most `topk` after them. `higher_is_better` follows the metric. Ties are broken by
/// primary key so the result does not depend on arrival order.
pub fn merge_search(
    results: &[SearchResultData],
    schema: &Schema,
    nq: usize,
    offset: usize,
    topk: usize,
    higher_is_better: bool,
) -> Result<SearchResultData> {
    struct Source {
        ids: PkColumn,
        scores: Vec<f32>,
        starts: Vec<usize>,
        topks: Vec<usize>,
        columns: Vec<Column>,
    }
    let mut sources = Vec::new();
    for r in results {
        if r.num_queries != nq as i64 && !(r.topks.is_empty() && r.scores.is_empty()) {
            return Err(StorageError::Invalid(format!("partial result for {} queries, expected {nq}", r.num_queries)));
        }
        let ids = r.ids.as_ref().map(PkColumn::from_ids).unwrap_or(PkColumn::Int(Vec::new()));
        let topks: Vec<usize> =
            if r.topks.is_empty() { vec![0; nq] } else { r.topks.iter().map(|t| *t as usize).collect() };
        let total: usize = topks.iter().sum();
        if ids.len() != total || r.scores.len() != total || topks.len() != nq {
            return Err(StorageError::Invalid("inconsistent partial search result".into()));
        }
        let mut starts = Vec::with_capacity(nq);
        let mut acc = 0;
        for t in &topks {
            starts.push(acc);
            acc += t;
        }
        let columns = columns_of(&r.fields_data, schema, total)?;
        sources.push(Source { ids, scores: r.scores.clone(), starts, topks, columns });
    }
    let mut out_ids: Vec<PrimaryKey> = Vec::new();
    let mut out_scores = Vec::new();
    let mut out_topks = Vec::with_capacity(nq);
    let mut picks: Vec<(usize, usize)> = Vec::new();
    for q in 0..nq {
        let mut cands: Vec<(f32, PrimaryKey, usize, usize)> = Vec::new();
        for (si, s) in sources.iter().enumerate() {
            for i in 0..s.topks[q] {
                let row = s.starts[q] + i;
                cands.push((s.scores[row], s.ids.get(row), si, row));
            }
        }
        cands.sort_by(|a, b| {
            let by_score = if higher_is_better { b.0.total_cmp(&a.0) } else { a.0.total_cmp(&b.0) };
            by_score.then_with(|| a.1.cmp(&b.1))
        });
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        let mut skipped = 0;
        for (score, pk, si, row) in cands {
            if n == topk {
                break;
            }
            if !seen.insert(pk.clone()) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            out_ids.push(pk);
            out_scores.push(score);
            picks.push((si, row));
            n += 1;
        }
        out_topks.push(n as i64);
    }
    let mut fields_data = Vec::new();
    // The output columns come from any part that has them: a part without hits (a
    // delegator holding none of the searched segments itself) carries no columns, and
    // must not decide the layout for the parts that have hits.
    if let Some(layout) = sources.iter().find(|s| !s.columns.is_empty()) {
        for col in &layout.columns {
            let per_source: Vec<Column> = sources
                .iter()
                .map(|s| {
                    s.columns.iter().find(|c| c.field_id == col.field_id).cloned().unwrap_or_else(|| col.take(&[]))
                })
                .collect();
            fields_data.push(gather(&per_source, &picks)?);
        }
    }
    Ok(SearchResultData {
        num_queries: nq as i64,
        top_k: topk as i64,
        fields_data: encode_columns(&fields_data, schema),
        scores: out_scores,
        ids: PkColumn::from_keys(&out_ids)
            .map(|c| c.to_ids())
            .or_else(|| Some(if schema.pk_is_int() { PkColumn::Int(vec![]) } else { PkColumn::Str(vec![]) }.to_ids())),
        topks: out_topks,
        ..Default::default()
    })
}

/// A query result: columns (primary key included) ordered by primary key.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    pub columns: Vec<Column>,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.columns.first().map(|c| c.len()).unwrap_or(0)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn decode(fields: &[FieldData], schema: &Schema) -> Result<Rows> {
        let rows = fields.first().map(field_rows).unwrap_or(0);
        Ok(Rows { columns: columns_of(fields, schema, rows)? })
    }
    pub fn encode(&self, schema: &Schema) -> Vec<FieldData> {
        encode_columns(&self.columns, schema)
    }
}

/// Number of rows a FieldData holds.
pub fn field_rows(fd: &FieldData) -> usize {
    use fv_proto::schema::field_data::Field;
    use fv_proto::schema::scalar_field::Data;
    use fv_proto::schema::vector_field::Data as V;
    match &fd.field {
        Some(Field::Scalars(s)) => match &s.data {
            Some(Data::BoolData(a)) => a.data.len(),
            Some(Data::IntData(a)) => a.data.len(),
            Some(Data::LongData(a)) => a.data.len(),
            Some(Data::FloatData(a)) => a.data.len(),
            Some(Data::DoubleData(a)) => a.data.len(),
            Some(Data::StringData(a)) => a.data.len(),
            Some(Data::BytesData(a)) => a.data.len(),
            Some(Data::ArrayData(a)) => a.data.len(),
            Some(Data::JsonData(a)) => a.data.len(),
            None => 0,
        },
        Some(Field::Vectors(v)) => match &v.data {
            Some(V::FloatVector(a)) if v.dim > 0 => a.data.len() / v.dim as usize,
            _ => 0,
        },
        None => 0,
    }
}

/// Merges query results ordered by primary key: repeated keys are dropped, then
/// `offset` rows skipped and at most `limit` kept (`None`: all).
pub fn merge_query(parts: &[Rows], pk_field: i64, offset: usize, limit: Option<usize>) -> Result<Rows> {
    let mut keys: Vec<(PrimaryKey, usize, usize)> = Vec::new();
    for (si, p) in parts.iter().enumerate() {
        // No columns at all is an empty part (a delegator that holds none of the
        // queried segments itself); columns without the key are a malformed one.
        if p.columns.is_empty() {
            continue;
        }
        let pk = p
            .columns
            .iter()
            .find(|c| c.field_id == pk_field)
            .ok_or_else(|| StorageError::Invalid("query result without primary key column".into()))?;
        for r in 0..pk.len() {
            if let Some(k) = pk.pk(r) {
                keys.push((k, si, r));
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    keys.dedup_by(|a, b| a.0 == b.0);
    let picks: Vec<(usize, usize)> =
        keys.into_iter().skip(offset).take(limit.unwrap_or(usize::MAX)).map(|(_, s, r)| (s, r)).collect();
    let Some(first) = parts.iter().find(|p| !p.columns.is_empty()) else { return Ok(Rows { columns: vec![] }) };
    let mut columns = Vec::new();
    for col in &first.columns {
        let per: Vec<Column> = parts
            .iter()
            .map(|p| p.columns.iter().find(|c| c.field_id == col.field_id).cloned().unwrap_or_else(|| col.take(&[])))
            .collect();
        columns.push(gather(&per, &picks)?);
    }
    Ok(Rows { columns })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::ColumnData;
    use fv_proto::common::KeyValuePair;
    use fv_proto::schema::{CollectionSchema, DataType, FieldSchema};

    fn schema() -> Schema {
        let pk = FieldSchema {
            field_id: 100,
            name: "id".into(),
            is_primary_key: true,
            data_type: DataType::Int64 as i32,
            ..Default::default()
        };
        let v = FieldSchema {
            field_id: 101,
            name: "v".into(),
            data_type: DataType::FloatVector as i32,
            type_params: vec![KeyValuePair { key: "dim".into(), value: "2".into() }],
            ..Default::default()
        };
        let t =
            FieldSchema { field_id: 102, name: "t".into(), data_type: DataType::Int32 as i32, ..Default::default() };
        Schema::from_proto(&CollectionSchema { name: "c".into(), fields: vec![pk, v, t], ..Default::default() })
            .expect("schema")
    }

    fn part(ids: Vec<i64>, scores: Vec<f32>, topks: Vec<i64>, tags: Vec<i32>) -> SearchResultData {
        let s = schema();
        let tag = Column::new(102, ColumnData::Int32(tags));
        SearchResultData {
            num_queries: topks.len() as i64,
            top_k: 3,
            ids: Some(PkColumn::Int(ids).to_ids()),
            scores,
            topks,
            fields_data: vec![tag.to_field_data(s.field_by_id(102).expect("field"))],
            ..Default::default()
        }
    }

    #[test]
    fn merges_best_hits_and_dedups() {
        let s = schema();
        // Two queries; IP (higher is better).
        let a = part(vec![1, 2, 3], vec![0.9, 0.5, 0.7], vec![2, 1], vec![10, 20, 30]);
        let b = part(vec![4, 1, 5], vec![0.8, 0.6, 0.95], vec![2, 1], vec![40, 11, 50]);
        let m = merge_search(&[a, b], &s, 2, 0, 2, true).expect("merge");
        assert_eq!(m.topks, vec![2, 2]);
        assert_eq!(PkColumn::from_ids(m.ids.as_ref().expect("ids")), PkColumn::Int(vec![1, 4, 5, 3]));
        assert_eq!(m.scores, vec![0.9, 0.8, 0.95, 0.7]);
        let tags = Column::from_field_data(&m.fields_data[0], s.field_by_id(102).expect("field"), 4).expect("col");
        assert_eq!(tags.data, ColumnData::Int32(vec![10, 40, 50, 30]));
        // Duplicate key 1 appears once with its best score.
        let c = part(vec![1], vec![0.99], vec![1, 0], vec![12]);
        let m = merge_search(
            &[part(vec![1, 2, 3], vec![0.9, 0.5, 0.7], vec![2, 1], vec![10, 20, 30]), c],
            &s,
            2,
            0,
            3,
            true,
        )
        .expect("merge");
        assert_eq!(PkColumn::from_ids(m.ids.as_ref().expect("ids")), PkColumn::Int(vec![1, 2, 3]));
        assert_eq!(m.scores[0], 0.99);
    }

    #[test]
    fn output_fields_survive_a_part_without_hits_or_columns() {
        let s = schema();
        // What a delegator that holds none of the segments contributes itself.
        let empty = SearchResultData { num_queries: 1, topks: vec![0], ..Default::default() };
        let remote = part(vec![7, 8], vec![1.0, 2.0], vec![2], vec![70, 80]);
        for parts in [[empty.clone(), remote.clone()], [remote, empty]] {
            let m = merge_search(&parts, &s, 1, 0, 2, false).expect("merge");
            assert_eq!(PkColumn::from_ids(m.ids.as_ref().expect("ids")), PkColumn::Int(vec![7, 8]));
            assert_eq!(m.fields_data.len(), 1, "the output column is kept");
            let tags = Column::from_field_data(&m.fields_data[0], s.field_by_id(102).expect("field"), 2).expect("col");
            assert_eq!(tags.data, ColumnData::Int32(vec![70, 80]));
        }
    }

    #[test]
    fn l2_prefers_smaller_scores() {
        let s = schema();
        let a = part(vec![1, 2], vec![3.0, 1.0], vec![2], vec![0, 0]);
        let m = merge_search(std::slice::from_ref(&a), &s, 1, 0, 1, false).expect("merge");
        assert_eq!(PkColumn::from_ids(m.ids.as_ref().expect("ids")), PkColumn::Int(vec![2]));
        let m = merge_search(&[a], &s, 1, 1, 1, false).expect("merge with offset");
        assert_eq!(PkColumn::from_ids(m.ids.as_ref().expect("ids")), PkColumn::Int(vec![1]));
    }

    #[test]
    fn query_merge_orders_dedups_and_pages() {
        let a = Rows {
            columns: vec![
                Column::new(100, ColumnData::Int64(vec![5, 1, 9])),
                Column::new(102, ColumnData::Int32(vec![50, 10, 90])),
            ],
        };
        let b = Rows {
            columns: vec![
                Column::new(100, ColumnData::Int64(vec![3, 5])),
                Column::new(102, ColumnData::Int32(vec![30, 51])),
            ],
        };
        let m = merge_query(&[a.clone(), b.clone()], 100, 0, None).expect("merge");
        assert_eq!(m.columns[0].data, ColumnData::Int64(vec![1, 3, 5, 9]));
        assert_eq!(m.columns[1].data, ColumnData::Int32(vec![10, 30, 50, 90]));
        let m = merge_query(&[a.clone(), b], 100, 1, Some(2)).expect("merge");
        assert_eq!(m.columns[0].data, ColumnData::Int64(vec![3, 5]));
        // A part without columns adds nothing; one without its key column is refused.
        let m = merge_query(&[Rows { columns: vec![] }, a.clone()], 100, 0, None).expect("merge with empty part");
        assert_eq!(m.columns[0].data, ColumnData::Int64(vec![1, 5, 9]));
        assert_eq!(m.columns[1].data, ColumnData::Int32(vec![10, 50, 90]));
        let keyless = Rows { columns: vec![Column::new(102, ColumnData::Int32(vec![1]))] };
        assert!(merge_query(&[a, keyless], 100, 0, None).is_err());
    }
}
