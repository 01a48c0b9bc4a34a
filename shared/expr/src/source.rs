//! Where the evaluator reads columns from: a [`SegmentData`], or a bare set of
//! [`Columns`] (e.g. those of an insert message).

use fv_common::FieldId;
use fv_storage::{Column, SegmentData};

/// Columns of a run of rows, by field id. `Sync` so that deeply nested plans can be
/// evaluated on a helper thread.
pub trait ColumnSource: Sync {
    /// The number of rows; every column present has this many.
    fn num_rows(&self) -> usize;
    /// The column of `field_id`; None reads as all-null.
    fn column(&self, field_id: FieldId) -> Option<&Column>;
}

impl ColumnSource for SegmentData {
    fn num_rows(&self) -> usize {
        SegmentData::num_rows(self)
    }
    fn column(&self, field_id: FieldId) -> Option<&Column> {
        SegmentData::column(self, field_id)
    }
}

/// A set of columns without timestamps (e.g. the columns of an insert message).
#[derive(Debug, Clone, Copy)]
pub struct Columns<'a> {
    pub num_rows: usize,
    pub columns: &'a [Column],
}

impl ColumnSource for Columns<'_> {
    fn num_rows(&self) -> usize {
        self.num_rows
    }
    fn column(&self, field_id: FieldId) -> Option<&Column> {
        self.columns.iter().find(|c| c.field_id == field_id)
    }
}

#[cfg(test)]
mod tests {
    use fv_storage::ColumnData;

    use super::*;

    #[test]
    fn columns_are_found_by_field_id() {
        let cols = [Column::new(7, ColumnData::Int64(vec![1, 2])), Column::new(9, ColumnData::Bool(vec![true, false]))];
        let src = Columns { num_rows: 2, columns: &cols };
        assert_eq!(src.num_rows(), 2);
        assert_eq!(src.column(9).map(|c| c.field_id), Some(9));
        assert!(src.column(8).is_none());
    }
}
