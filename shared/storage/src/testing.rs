//! Fixtures for tests (feature `testing`): the smallest collection a role deals with,
//! an int64 primary key and one float vector, and rows of it.

use fv_common::schema::Schema;
use fv_common::{FieldId, Timestamp};
use fv_proto::common::KeyValuePair;
use fv_proto::schema::{CollectionSchema, DataType, FieldSchema};

use crate::{Column, ColumnData, SegmentData};

/// Field id of the primary key `id`.
pub const PK_FIELD: FieldId = 100;
/// Field id of the float vector `v`.
pub const VECTOR_FIELD: FieldId = 101;

/// `name`: `id` (int64 primary key, field 100) and `v` (float vector of `dim`, field 101).
pub fn schema_proto(name: &str, dim: usize) -> CollectionSchema {
    let pk = FieldSchema {
        field_id: PK_FIELD,
        name: "id".into(),
        is_primary_key: true,
        data_type: DataType::Int64 as i32,
        ..Default::default()
    };
    let v = FieldSchema {
        field_id: VECTOR_FIELD,
        name: "v".into(),
        data_type: DataType::FloatVector as i32,
        type_params: vec![KeyValuePair { key: "dim".into(), value: dim.to_string() }],
        ..Default::default()
    };
    CollectionSchema { name: name.into(), fields: vec![pk, v], ..Default::default() }
}

/// [`schema_proto`], parsed.
pub fn schema(dim: usize) -> Schema {
    Schema::from_proto(&schema_proto("c", dim)).expect("the fixture schema is valid")
}

/// Rows `ids` of [`schema`], all written at `ts`; element `j` of row `id`'s vector is
/// `value(id, j)`.
pub fn rows(ids: &[i64], ts: Timestamp, dim: usize, value: impl Fn(i64, usize) -> f32) -> SegmentData {
    let value = &value;
    SegmentData {
        timestamps: vec![ts; ids.len()],
        columns: vec![
            Column::new(PK_FIELD, ColumnData::Int64(ids.to_vec())),
            Column::new(
                VECTOR_FIELD,
                ColumnData::FloatVector {
                    dim,
                    data: ids.iter().flat_map(|&id| (0..dim).map(move |j| value(id, j))).collect(),
                },
            ),
        ],
    }
}
