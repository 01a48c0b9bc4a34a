//! Rows of one segment: one [`Column`] per schema field plus each row's timestamp.

use fv_common::schema::Schema;
use fv_common::{FieldId, Timestamp};
use fv_proto::schema::FieldData;

use crate::column::Column;
use crate::error::{Result, StorageError};

#[derive(Debug, Clone, PartialEq)]
pub struct SegmentData {
    /// Hybrid timestamp of each row (the insert message's).
    pub timestamps: Vec<Timestamp>,
    /// One column per schema field, in schema order (the dynamic field included).
    pub columns: Vec<Column>,
}

impl SegmentData {
    pub fn empty(schema: &Schema) -> Result<SegmentData> {
        Ok(SegmentData {
            timestamps: Vec::new(),
            columns: schema.fields.iter().map(Column::empty).collect::<Result<_>>()?,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.timestamps.len()
    }

    pub fn column(&self, field_id: FieldId) -> Option<&Column> {
        self.columns.iter().find(|c| c.field_id == field_id)
    }

    /// Builds rows from the normalised columns of an insert message (matched by
    /// field id, or by name when the id is unset).
    pub fn from_field_data(
        fields: &[FieldData],
        schema: &Schema,
        num_rows: usize,
        ts: Timestamp,
    ) -> Result<SegmentData> {
        let mut columns = Vec::with_capacity(schema.fields.len());
        for f in &schema.fields {
            let fd = fields
                .iter()
                .find(|fd| (fd.field_id != 0 && fd.field_id == f.id) || (fd.field_id == 0 && fd.field_name == f.name))
                .ok_or_else(|| StorageError::Invalid(format!("insert data lacks field {}", f.name)))?;
            columns.push(Column::from_field_data(fd, f, num_rows)?);
        }
        Ok(SegmentData { timestamps: vec![ts; num_rows], columns })
    }

    pub fn append(&mut self, other: &SegmentData) -> Result<()> {
        if self.columns.len() != other.columns.len() {
            return Err(StorageError::Invalid(format!(
                "cannot append rows with {} columns to a segment with {}",
                other.columns.len(),
                self.columns.len()
            )));
        }
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.append(b)?;
        }
        self.timestamps.extend_from_slice(&other.timestamps);
        Ok(())
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> SegmentData {
        SegmentData {
            timestamps: rows.iter().map(|&r| self.timestamps[r]).collect(),
            columns: self.columns.iter().map(|c| c.take(rows)).collect(),
        }
    }
}
