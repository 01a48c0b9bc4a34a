//! Typed columns and their conversion from and to Milvus `FieldData`.
//!
//! A [`Column`] holds one field's values for a run of rows. Nullable fields keep a
//! full-length value vector (a placeholder at null rows) plus a validity vector, which
//! is also how Milvus returns nullable columns to clients. JSON values are parsed once
//! when a column is built so that filters on JSON paths do not re-parse per row.

use fv_common::schema::Field;
use fv_common::{FieldId, PrimaryKey};
use fv_proto::schema::field_data::Field as FdField;
use fv_proto::schema::scalar_field::Data as ScalarData;
use fv_proto::schema::vector_field::Data as VectorData;
use fv_proto::schema::{
    BoolArray, DataType, DoubleArray, FieldData, FloatArray, IntArray, JsonArray, LongArray, ScalarField, StringArray,
    VectorField, value_field,
};

use crate::error::{Result, StorageError};

#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    Bool(Vec<bool>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Float(Vec<f32>),
    Double(Vec<f64>),
    VarChar(Vec<String>),
    Json(Vec<serde_json::Value>),
    /// Row-major `len * dim` floats.
    FloatVector {
        dim: usize,
        data: Vec<f32>,
    },
}

impl ColumnData {
    pub fn empty_of(data_type: DataType, dim: usize) -> Result<ColumnData> {
        Ok(match data_type {
            DataType::Bool => ColumnData::Bool(Vec::new()),
            DataType::Int8 => ColumnData::Int8(Vec::new()),
            DataType::Int16 => ColumnData::Int16(Vec::new()),
            DataType::Int32 => ColumnData::Int32(Vec::new()),
            DataType::Int64 => ColumnData::Int64(Vec::new()),
            DataType::Float => ColumnData::Float(Vec::new()),
            DataType::Double => ColumnData::Double(Vec::new()),
            DataType::VarChar | DataType::String => ColumnData::VarChar(Vec::new()),
            DataType::Json => ColumnData::Json(Vec::new()),
            DataType::FloatVector => ColumnData::FloatVector { dim, data: Vec::new() },
            other => return Err(StorageError::Invalid(format!("data type {} is not supported", other.as_str_name()))),
        })
    }

    pub fn len(&self) -> usize {
        match self {
            ColumnData::Bool(v) => v.len(),
            ColumnData::Int8(v) => v.len(),
            ColumnData::Int16(v) => v.len(),
            ColumnData::Int32(v) => v.len(),
            ColumnData::Int64(v) => v.len(),
            ColumnData::Float(v) => v.len(),
            ColumnData::Double(v) => v.len(),
            ColumnData::VarChar(v) => v.len(),
            ColumnData::Json(v) => v.len(),
            ColumnData::FloatVector { dim, data } => data.len().checked_div(*dim).unwrap_or(0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn data_type(&self) -> DataType {
        match self {
            ColumnData::Bool(_) => DataType::Bool,
            ColumnData::Int8(_) => DataType::Int8,
            ColumnData::Int16(_) => DataType::Int16,
            ColumnData::Int32(_) => DataType::Int32,
            ColumnData::Int64(_) => DataType::Int64,
            ColumnData::Float(_) => DataType::Float,
            ColumnData::Double(_) => DataType::Double,
            ColumnData::VarChar(_) => DataType::VarChar,
            ColumnData::Json(_) => DataType::Json,
            ColumnData::FloatVector { .. } => DataType::FloatVector,
        }
    }

    fn same_kind(&self, other: &ColumnData) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }

    /// Appends `other`'s values; fails when the types or dimensions differ.
    pub fn append(&mut self, other: &ColumnData) -> Result<()> {
        match (self, other) {
            (ColumnData::Bool(a), ColumnData::Bool(b)) => a.extend_from_slice(b),
            (ColumnData::Int8(a), ColumnData::Int8(b)) => a.extend_from_slice(b),
            (ColumnData::Int16(a), ColumnData::Int16(b)) => a.extend_from_slice(b),
            (ColumnData::Int32(a), ColumnData::Int32(b)) => a.extend_from_slice(b),
            (ColumnData::Int64(a), ColumnData::Int64(b)) => a.extend_from_slice(b),
            (ColumnData::Float(a), ColumnData::Float(b)) => a.extend_from_slice(b),
            (ColumnData::Double(a), ColumnData::Double(b)) => a.extend_from_slice(b),
            (ColumnData::VarChar(a), ColumnData::VarChar(b)) => a.extend_from_slice(b),
            (ColumnData::Json(a), ColumnData::Json(b)) => a.extend_from_slice(b),
            (ColumnData::FloatVector { dim: da, data: a }, ColumnData::FloatVector { dim: db, data: b }) => {
                if *da != *db {
                    return Err(StorageError::Invalid(format!("vector dimension mismatch: {da} vs {db}")));
                }
                a.extend_from_slice(b)
            }
            (a, b) => {
                return Err(StorageError::Invalid(format!(
                    "column type mismatch: {} vs {}",
                    a.data_type().as_str_name(),
                    b.data_type().as_str_name()
                )));
            }
        }
        Ok(())
    }

    /// The values at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> ColumnData {
        fn pick<T: Clone>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r].clone()).collect()
        }
        match self {
            ColumnData::Bool(v) => ColumnData::Bool(pick(v, rows)),
            ColumnData::Int8(v) => ColumnData::Int8(pick(v, rows)),
            ColumnData::Int16(v) => ColumnData::Int16(pick(v, rows)),
            ColumnData::Int32(v) => ColumnData::Int32(pick(v, rows)),
            ColumnData::Int64(v) => ColumnData::Int64(pick(v, rows)),
            ColumnData::Float(v) => ColumnData::Float(pick(v, rows)),
            ColumnData::Double(v) => ColumnData::Double(pick(v, rows)),
            ColumnData::VarChar(v) => ColumnData::VarChar(pick(v, rows)),
            ColumnData::Json(v) => ColumnData::Json(pick(v, rows)),
            ColumnData::FloatVector { dim, data } => {
                let mut out = Vec::with_capacity(rows.len() * dim);
                for &r in rows {
                    out.extend_from_slice(&data[r * dim..(r + 1) * dim]);
                }
                ColumnData::FloatVector { dim: *dim, data: out }
            }
        }
    }

    /// Row `i` of a float vector column.
    pub fn vector(&self, i: usize) -> Option<&[f32]> {
        match self {
            ColumnData::FloatVector { dim, data } => data.get(i * dim..(i + 1) * dim),
            _ => None,
        }
    }
}

/// One field's values for a run of rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub field_id: FieldId,
    pub data: ColumnData,
    /// Per-row validity of a nullable field; None means every row is valid.
    pub valid: Option<Vec<bool>>,
}

impl Column {
    pub fn new(field_id: FieldId, data: ColumnData) -> Self {
        Self { field_id, data, valid: None }
    }

    pub fn empty(field: &Field) -> Result<Column> {
        Ok(Column {
            field_id: field.id,
            data: ColumnData::empty_of(field.data_type, field.dim)?,
            valid: if field.nullable { Some(Vec::new()) } else { None },
        })
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_valid(&self, row: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v.get(row).copied().unwrap_or(false))
    }

    pub fn append(&mut self, other: &Column) -> Result<()> {
        if !self.data.same_kind(&other.data) {
            return Err(StorageError::Invalid(format!(
                "cannot append column of field {} to field {}",
                other.field_id, self.field_id
            )));
        }
        let before = self.len();
        match (&mut self.valid, &other.valid) {
            (None, None) => {}
            (Some(a), Some(b)) => a.extend_from_slice(b),
            (Some(a), None) => a.extend(std::iter::repeat_n(true, other.len())),
            (None, Some(b)) => {
                let mut v = vec![true; before];
                v.extend_from_slice(b);
                self.valid = Some(v);
            }
        }
        self.data.append(&other.data)
    }

    pub fn take(&self, rows: &[usize]) -> Column {
        Column {
            field_id: self.field_id,
            data: self.data.take(rows),
            valid: self.valid.as_ref().map(|v| rows.iter().map(|&r| v[r]).collect()),
        }
    }

    /// The primary key at `row` (for Int64 and VarChar columns).
    pub fn pk(&self, row: usize) -> Option<PrimaryKey> {
        match &self.data {
            ColumnData::Int64(v) => v.get(row).map(|x| PrimaryKey::Int(*x)),
            ColumnData::VarChar(v) => v.get(row).map(|x| PrimaryKey::Str(x.clone())),
            _ => None,
        }
    }

    /// Builds a column from a `FieldData` in normalised form: full length (`num_rows`
    /// values), nullable columns with one validity flag per row. This is the form of
    /// columns inside insert messages on the log and in query results.
    pub fn from_field_data(fd: &FieldData, field: &Field, num_rows: usize) -> Result<Column> {
        let col = decode_values(fd, field)?;
        let valid = if field.nullable {
            if fd.valid_data.is_empty() {
                None
            } else if fd.valid_data.len() == num_rows {
                Some(fd.valid_data.clone())
            } else {
                return Err(StorageError::Invalid(format!(
                    "field {}: {} validity flags for {num_rows} rows",
                    field.name,
                    fd.valid_data.len()
                )));
            }
        } else {
            None
        };
        if col.len() != num_rows {
            return Err(StorageError::Invalid(format!(
                "the num_rows ({num_rows}) of field ({}) is not equal to passed num_rows ({})",
                field.name,
                col.len()
            )));
        }
        Ok(Column { field_id: field.id, data: col, valid })
    }

    /// Builds a column from a client's `FieldData`: checks type, length, dimension and
    /// VarChar/JSON validity; expands the compacted nullable form (values only for valid
    /// rows) and fills default values. `fd == None` means the client omitted the field
    /// (allowed when it is nullable or has a default).
    pub fn from_client_field_data(fd: Option<&FieldData>, field: &Field, num_rows: usize) -> Result<Column> {
        let default = default_column_value(field);
        let Some(fd) = fd else {
            if let Some(dv) = default {
                return Ok(Column {
                    field_id: field.id,
                    data: repeat_value(&dv, num_rows, field)?,
                    valid: field.nullable.then(|| vec![true; num_rows]),
                });
            }
            if field.nullable {
                let data = repeat_value(&placeholder(field)?, num_rows, field)?;
                return Ok(Column { field_id: field.id, data, valid: Some(vec![false; num_rows]) });
            }
            return Err(StorageError::Invalid(format!(
                "Insert missed an field `{}` to collection without set nullable==true or set default_value",
                field.name
            )));
        };
        if let Some(t) = DataType::try_from(fd.r#type).ok().filter(|t| *t != DataType::None) {
            let compatible = t == field.data_type || (field.data_type == DataType::VarChar && t == DataType::String);
            if !compatible {
                return Err(StorageError::Invalid(format!(
                    "field {} expects {} but the data is {}",
                    field.name,
                    field.data_type.as_str_name(),
                    t.as_str_name()
                )));
            }
        }
        let values = decode_values(fd, field)?;
        let has_flags = !fd.valid_data.is_empty();
        if has_flags && fd.valid_data.len() != num_rows {
            return Err(StorageError::Invalid(format!(
                "the length of valid_data of field({}) is wrong: {} for {num_rows} rows",
                field.name,
                fd.valid_data.len()
            )));
        }
        if has_flags && !(field.nullable || default.is_some()) && fd.valid_data.iter().any(|v| !v) {
            return Err(StorageError::Invalid(format!("field {} is not nullable but got null values", field.name)));
        }
        let column = if has_flags && values.len() != num_rows {
            // Compacted: one value per valid row.
            let valid_count = fd.valid_data.iter().filter(|v| **v).count();
            if values.len() != valid_count {
                return Err(StorageError::Invalid(format!(
                    "field {}: {} values for {valid_count} non-null rows",
                    field.name,
                    values.len()
                )));
            }
            expand(field, values, &fd.valid_data, default.as_ref())?
        } else {
            if values.len() != num_rows {
                return Err(StorageError::Invalid(format!(
                    "the num_rows ({num_rows}) of field ({}) is not equal to passed num_rows ({})",
                    field.name,
                    values.len()
                )));
            }
            let mut data = values;
            let mut valid = if field.nullable {
                Some(if has_flags { fd.valid_data.clone() } else { vec![true; num_rows] })
            } else {
                None
            };
            if let (Some(dv), true) = (&default, has_flags) {
                // Null rows of a defaulted field take the default value.
                let rows: Vec<usize> = (0..num_rows).filter(|&r| !fd.valid_data[r]).collect();
                if !rows.is_empty() {
                    data = fill_rows(data, &rows, dv, field)?;
                    if let Some(v) = valid.as_mut() {
                        for r in rows {
                            v[r] = true;
                        }
                    }
                }
            }
            Column { field_id: field.id, data, valid }
        };
        validate_values(field, &column)?;
        Ok(column)
    }

    /// The column as a `FieldData` (full length, validity flags for nullable fields).
    pub fn to_field_data(&self, field: &Field) -> FieldData {
        let field_data = match &self.data {
            ColumnData::FloatVector { dim, data } => FdField::Vectors(VectorField {
                dim: *dim as i64,
                data: Some(VectorData::FloatVector(FloatArray { data: data.clone() })),
            }),
            other => FdField::Scalars(ScalarField { data: Some(encode_scalars(other)) }),
        };
        FieldData {
            r#type: field.data_type as i32,
            field_name: field.name.clone(),
            field: Some(field_data),
            field_id: field.id,
            is_dynamic: field.is_dynamic,
            valid_data: if field.nullable {
                self.valid.clone().unwrap_or_else(|| vec![true; self.len()])
            } else {
                Vec::new()
            },
        }
    }
}

fn encode_scalars(c: &ColumnData) -> ScalarData {
    match c {
        ColumnData::Bool(v) => ScalarData::BoolData(BoolArray { data: v.clone() }),
        ColumnData::Int8(v) => ScalarData::IntData(IntArray { data: v.iter().map(|x| *x as i32).collect() }),
        ColumnData::Int16(v) => ScalarData::IntData(IntArray { data: v.iter().map(|x| *x as i32).collect() }),
        ColumnData::Int32(v) => ScalarData::IntData(IntArray { data: v.clone() }),
        ColumnData::Int64(v) => ScalarData::LongData(LongArray { data: v.clone() }),
        ColumnData::Float(v) => ScalarData::FloatData(FloatArray { data: v.clone() }),
        ColumnData::Double(v) => ScalarData::DoubleData(DoubleArray { data: v.clone() }),
        ColumnData::VarChar(v) => ScalarData::StringData(StringArray { data: v.clone() }),
        ColumnData::Json(v) => ScalarData::JsonData(JsonArray {
            data: v.iter().map(|j| serde_json::to_vec(j).unwrap_or_else(|_| b"null".to_vec())).collect(),
        }),
        ColumnData::FloatVector { .. } => ScalarData::BoolData(BoolArray::default()),
    }
}

/// Placeholder stored at null rows.
fn placeholder(field: &Field) -> Result<ColumnData> {
    let mut c = ColumnData::empty_of(field.data_type, field.dim)?;
    match &mut c {
        ColumnData::Bool(v) => v.push(false),
        ColumnData::Int8(v) => v.push(0),
        ColumnData::Int16(v) => v.push(0),
        ColumnData::Int32(v) => v.push(0),
        ColumnData::Int64(v) => v.push(0),
        ColumnData::Float(v) => v.push(0.0),
        ColumnData::Double(v) => v.push(0.0),
        ColumnData::VarChar(v) => v.push(String::new()),
        ColumnData::Json(v) => v.push(serde_json::Value::Null),
        ColumnData::FloatVector { dim, data } => data.extend(std::iter::repeat_n(0.0, *dim)),
    };
    let () = ();
    Ok(c)
}

/// The field's default value as a one-row column.
fn default_column_value(field: &Field) -> Option<ColumnData> {
    use value_field::Data;
    let d = field.default_value.as_ref()?.data.as_ref()?;
    Some(match (d, field.data_type) {
        (Data::BoolData(b), DataType::Bool) => ColumnData::Bool(vec![*b]),
        (Data::IntData(i), DataType::Int8) => ColumnData::Int8(vec![*i as i8]),
        (Data::IntData(i), DataType::Int16) => ColumnData::Int16(vec![*i as i16]),
        (Data::IntData(i), DataType::Int32) => ColumnData::Int32(vec![*i]),
        (Data::LongData(i), DataType::Int64) => ColumnData::Int64(vec![*i]),
        (Data::FloatData(f), DataType::Float) => ColumnData::Float(vec![*f]),
        (Data::DoubleData(f), DataType::Double) => ColumnData::Double(vec![*f]),
        (Data::StringData(s), DataType::VarChar) => ColumnData::VarChar(vec![s.clone()]),
        _ => return None,
    })
}

fn repeat_value(one: &ColumnData, n: usize, _field: &Field) -> Result<ColumnData> {
    Ok(one.take(&vec![0; n]))
}

fn fill_rows(mut data: ColumnData, rows: &[usize], one: &ColumnData, field: &Field) -> Result<ColumnData> {
    // Rebuild by gathering from [data ++ one]: rows listed take index `len` (the default).
    let len = data.len();
    data.append(one)
        .map_err(|_| StorageError::Invalid(format!("default value of field {} has the wrong type", field.name)))?;
    let mut idx: Vec<usize> = (0..len).collect();
    for &r in rows {
        idx[r] = len;
    }
    Ok(data.take(&idx))
}

/// Expands compacted values (one per valid row) to full length.
fn expand(field: &Field, values: ColumnData, valid: &[bool], default: Option<&ColumnData>) -> Result<Column> {
    let fill = match default {
        Some(d) => d.clone(),
        None => placeholder(field)?,
    };
    let n = values.len();
    let mut all = values;
    all.append(&fill)?;
    let mut idx = Vec::with_capacity(valid.len());
    let mut next = 0;
    for &v in valid {
        if v {
            idx.push(next);
            next += 1;
        } else {
            idx.push(n);
        }
    }
    let data = all.take(&idx);
    let valid_out = if field.nullable {
        Some(if default.is_some() { vec![true; valid.len()] } else { valid.to_vec() })
    } else {
        None
    };
    Ok(Column { field_id: field.id, data, valid: valid_out })
}

fn decode_values(fd: &FieldData, field: &Field) -> Result<ColumnData> {
    let name = &field.name;
    let wrong = |got: &str| {
        StorageError::Invalid(format!("field {name} expects {} data but got {got}", field.data_type.as_str_name()))
    };
    match &fd.field {
        Some(FdField::Vectors(v)) => {
            if field.data_type != DataType::FloatVector {
                return Err(wrong("vectors"));
            }
            let Some(VectorData::FloatVector(arr)) = &v.data else {
                return Err(wrong("a non-float vector"));
            };
            let dim = field.dim;
            if v.dim != 0 && v.dim as usize != dim {
                return Err(StorageError::Invalid(format!(
                    "the dim ({}) of field data({name}) is not equal to schema dim ({dim})",
                    v.dim
                )));
            }
            if dim == 0 || arr.data.len() % dim != 0 {
                return Err(StorageError::Invalid(format!(
                    "the length ({}) of float data of field {name} is not a multiple of the dimension ({dim})",
                    arr.data.len()
                )));
            }
            Ok(ColumnData::FloatVector { dim, data: arr.data.clone() })
        }
        Some(FdField::Scalars(s)) => {
            let data = s.data.as_ref().ok_or_else(|| wrong("an empty scalar column"))?;
            Ok(match (field.data_type, data) {
                (DataType::Bool, ScalarData::BoolData(a)) => ColumnData::Bool(a.data.clone()),
                (DataType::Int8, ScalarData::IntData(a)) => ColumnData::Int8(
                    a.data
                        .iter()
                        .map(|&x| {
                            i8::try_from(x).map_err(|_| {
                                StorageError::Invalid(format!("value {x} of field {name} is out of range for Int8"))
                            })
                        })
                        .collect::<Result<_>>()?,
                ),
                (DataType::Int16, ScalarData::IntData(a)) => ColumnData::Int16(
                    a.data
                        .iter()
                        .map(|&x| {
                            i16::try_from(x).map_err(|_| {
                                StorageError::Invalid(format!("value {x} of field {name} is out of range for Int16"))
                            })
                        })
                        .collect::<Result<_>>()?,
                ),
                (DataType::Int32, ScalarData::IntData(a)) => ColumnData::Int32(a.data.clone()),
                (DataType::Int64, ScalarData::LongData(a)) => ColumnData::Int64(a.data.clone()),
                (DataType::Float, ScalarData::FloatData(a)) => ColumnData::Float(a.data.clone()),
                (DataType::Double, ScalarData::DoubleData(a)) => ColumnData::Double(a.data.clone()),
                (DataType::VarChar | DataType::String, ScalarData::StringData(a)) => {
                    ColumnData::VarChar(a.data.clone())
                }
                (DataType::Json, ScalarData::JsonData(a)) => ColumnData::Json(
                    a.data
                        .iter()
                        .map(|b| {
                            serde_json::from_slice::<serde_json::Value>(b)
                                .map_err(|e| StorageError::Invalid(format!("invalid JSON in field {name}: {e}")))
                        })
                        .collect::<Result<_>>()?,
                ),
                (_, other) => return Err(wrong(scalar_kind(other))),
            })
        }
        None => Err(wrong("no data")),
    }
}

fn scalar_kind(d: &ScalarData) -> &'static str {
    match d {
        ScalarData::BoolData(_) => "bool values",
        ScalarData::IntData(_) => "int32 values",
        ScalarData::LongData(_) => "int64 values",
        ScalarData::FloatData(_) => "float values",
        ScalarData::DoubleData(_) => "double values",
        ScalarData::StringData(_) => "string values",
        ScalarData::BytesData(_) => "bytes values",
        ScalarData::ArrayData(_) => "array values",
        ScalarData::JsonData(_) => "JSON values",
    }
}

fn validate_values(field: &Field, col: &Column) -> Result<()> {
    match &col.data {
        ColumnData::VarChar(v) if field.max_length > 0 => {
            if let Some((i, s)) = v.iter().enumerate().find(|(_, s)| s.len() > field.max_length) {
                return Err(StorageError::Invalid(format!(
                    "the length ({}) of {i}th VarChar {} exceeds max length ({})",
                    s.len(),
                    field.name,
                    field.max_length
                )));
            }
        }
        ColumnData::Json(v) if field.is_dynamic && v.iter().any(|j| !j.is_object()) => {
            return Err(StorageError::Invalid("dynamic field values must be JSON objects".to_string()));
        }
        ColumnData::FloatVector { data, .. } if data.iter().any(|x| !x.is_finite()) => {
            return Err(StorageError::Invalid(format!("float vector field {} contains NaN or infinity", field.name)));
        }
        // Milvus refuses non-finite Float and Double values too: they break comparisons
        // (NaN is unordered) and range filters.
        ColumnData::Float(v) if v.iter().any(|x| !x.is_finite()) => {
            return Err(StorageError::Invalid(format!("float field {} contains NaN or infinity", field.name)));
        }
        ColumnData::Double(v) if v.iter().any(|x| !x.is_finite()) => {
            return Err(StorageError::Invalid(format!("double field {} contains NaN or infinity", field.name)));
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_proto::schema::ValueField;

    fn field(id: i64, name: &str, t: DataType) -> Field {
        Field {
            id,
            name: name.into(),
            data_type: t,
            is_primary: false,
            auto_id: false,
            nullable: false,
            is_dynamic: false,
            is_partition_key: false,
            dim: 0,
            max_length: 0,
            default_value: None,
        }
    }

    fn longs(v: Vec<i64>) -> FieldData {
        FieldData {
            r#type: DataType::Int64 as i32,
            field: Some(FdField::Scalars(ScalarField { data: Some(ScalarData::LongData(LongArray { data: v })) })),
            ..Default::default()
        }
    }

    #[test]
    fn compacted_nullable_expands() {
        let mut f = field(101, "age", DataType::Int64);
        f.nullable = true;
        let mut fd = longs(vec![7, 9]);
        fd.valid_data = vec![true, false, true];
        let c = Column::from_client_field_data(Some(&fd), &f, 3).expect("valid");
        assert_eq!(c.data, ColumnData::Int64(vec![7, 0, 9]));
        assert_eq!(c.valid, Some(vec![true, false, true]));
        let back = c.to_field_data(&f);
        assert_eq!(back.valid_data, vec![true, false, true]);
        assert_eq!(Column::from_field_data(&back, &f, 3).expect("normalised"), c);
    }

    #[test]
    fn defaults_fill_missing_and_null() {
        let mut f = field(101, "age", DataType::Int64);
        f.default_value = Some(ValueField { data: Some(value_field::Data::LongData(5)) });
        let c = Column::from_client_field_data(None, &f, 2).expect("default");
        assert_eq!(c.data, ColumnData::Int64(vec![5, 5]));
        let mut fd = longs(vec![1, 0]);
        fd.valid_data = vec![true, false];
        let c = Column::from_client_field_data(Some(&fd), &f, 2).expect("default for null");
        assert_eq!(c.data, ColumnData::Int64(vec![1, 5]));
    }

    #[test]
    fn rejects_wrong_input() {
        let f = field(101, "age", DataType::Int64);
        assert!(Column::from_client_field_data(Some(&longs(vec![1])), &f, 2).is_err());
        assert!(Column::from_client_field_data(None, &f, 2).is_err());
        let mut v = field(102, "vec", DataType::FloatVector);
        v.dim = 4;
        let fd = FieldData {
            field: Some(FdField::Vectors(VectorField {
                dim: 3,
                data: Some(VectorData::FloatVector(FloatArray { data: vec![0.0; 6] })),
            })),
            ..Default::default()
        };
        let e = Column::from_client_field_data(Some(&fd), &v, 2).unwrap_err();
        assert!(e.to_string().contains("dim"), "{e}");
        let mut s = field(103, "title", DataType::VarChar);
        s.max_length = 3;
        let fd = FieldData {
            field: Some(FdField::Scalars(ScalarField {
                data: Some(ScalarData::StringData(StringArray { data: vec!["abcd".into()] })),
            })),
            ..Default::default()
        };
        assert!(
            Column::from_client_field_data(Some(&fd), &s, 1).unwrap_err().to_string().contains("exceeds max length")
        );
        let i8f = field(104, "tiny", DataType::Int8);
        let fd = FieldData {
            field: Some(FdField::Scalars(ScalarField {
                data: Some(ScalarData::IntData(IntArray { data: vec![300] })),
            })),
            ..Default::default()
        };
        assert!(Column::from_client_field_data(Some(&fd), &i8f, 1).is_err());
        let ff = field(105, "f", DataType::Float);
        let dd = field(106, "d", DataType::Double);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let fd = FieldData {
                field: Some(FdField::Scalars(ScalarField {
                    data: Some(ScalarData::FloatData(FloatArray { data: vec![1.0, bad as f32] })),
                })),
                ..Default::default()
            };
            let e = Column::from_client_field_data(Some(&fd), &ff, 2).unwrap_err();
            assert!(e.to_string().contains("NaN or infinity"), "{e}");
            let fd = FieldData {
                field: Some(FdField::Scalars(ScalarField {
                    data: Some(ScalarData::DoubleData(DoubleArray { data: vec![bad, 1.0] })),
                })),
                ..Default::default()
            };
            let e = Column::from_client_field_data(Some(&fd), &dd, 2).unwrap_err();
            assert!(e.to_string().contains("NaN or infinity"), "{e}");
        }
    }

    #[test]
    fn take_and_append() {
        let mut a = Column::new(1, ColumnData::FloatVector { dim: 2, data: vec![1.0, 2.0, 3.0, 4.0] });
        let b = Column::new(1, ColumnData::FloatVector { dim: 2, data: vec![5.0, 6.0] });
        a.append(&b).expect("same type");
        assert_eq!(a.len(), 3);
        assert_eq!(a.take(&[2, 0]).data, ColumnData::FloatVector { dim: 2, data: vec![5.0, 6.0, 1.0, 2.0] });
    }
}
