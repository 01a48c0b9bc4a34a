//! The collection schema model.
//!
//! The schema is stored and echoed as Milvus' `schema.CollectionSchema` proto (clients
//! compare what they created with what they describe), and parsed into [`Schema`] for
//! everything else: typed lookups of the primary key, the vector field, the dynamic field
//! and the parameters hidden in `type_params` strings.

use fv_proto::common::KeyValuePair;
use fv_proto::schema::{CollectionSchema, DataType, FieldSchema, ValueField};

use crate::error::{FvError, FvResult};
use crate::ids::{DYNAMIC_FIELD_NAME, FieldId, START_OF_USER_FIELD_ID};

pub const MIN_DIM: usize = 2;
pub const MAX_DIM: usize = 32_768;
pub const MAX_VARCHAR_LENGTH: usize = 65_535;
pub const MAX_FIELDS: usize = 64;
pub const MAX_NAME_LENGTH: usize = 255;

/// One field of a parsed schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub id: FieldId,
    pub name: String,
    pub data_type: DataType,
    pub is_primary: bool,
    pub auto_id: bool,
    pub nullable: bool,
    /// The hidden JSON field (`$meta`) holding keys outside the schema.
    pub is_dynamic: bool,
    pub is_partition_key: bool,
    /// Vector dimension (0 for other types).
    pub dim: usize,
    /// VarChar maximum length in bytes (0 for other types).
    pub max_length: usize,
    pub default_value: Option<ValueField>,
}

impl Field {
    pub fn is_vector(&self) -> bool {
        is_vector_type(self.data_type)
    }
}

pub fn is_vector_type(t: DataType) -> bool {
    matches!(
        t,
        DataType::FloatVector
            | DataType::BinaryVector
            | DataType::Float16Vector
            | DataType::BFloat16Vector
            | DataType::SparseFloatVector
            | DataType::Int8Vector
    )
}

/// A parsed, validated schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub name: String,
    pub fields: Vec<Field>,
    pub enable_dynamic_field: bool,
    pub version: i32,
    pk_idx: usize,
    vector_idx: usize,
    dynamic_idx: Option<usize>,
}

fn param<'a>(params: &'a [KeyValuePair], key: &str) -> Option<&'a str> {
    params.iter().find(|kv| kv.key == key).map(|kv| kv.value.as_str())
}

fn parse_usize_param(field: &str, params: &[KeyValuePair], key: &str) -> FvResult<Option<usize>> {
    match param(params, key) {
        None => Ok(None),
        Some(v) => {
            v.trim().trim_matches('"').parse::<i64>().ok().filter(|n| *n >= 0).map(|n| Some(n as usize)).ok_or_else(
                || {
                    FvError::invalid_parameter(format!(
                        "type param {key}={v:?} of field {field} is not a non-negative integer"
                    ))
                },
            )
        }
    }
}

impl Schema {
    /// Parses a stored schema (field ids already assigned).
    pub fn from_proto(p: &CollectionSchema) -> FvResult<Schema> {
        let mut fields = Vec::with_capacity(p.fields.len());
        for f in &p.fields {
            let data_type = DataType::try_from(f.data_type).map_err(|_| {
                FvError::invalid_parameter(format!("field {} has unknown data type {}", f.name, f.data_type))
            })?;
            let dim = if is_vector_type(data_type) {
                parse_usize_param(&f.name, &f.type_params, "dim")?.unwrap_or(0)
            } else {
                0
            };
            let max_length = if data_type == DataType::VarChar {
                parse_usize_param(&f.name, &f.type_params, "max_length")?.unwrap_or(0)
            } else {
                0
            };
            fields.push(Field {
                id: f.field_id,
                name: f.name.clone(),
                data_type,
                is_primary: f.is_primary_key,
                auto_id: f.auto_id || (f.is_primary_key && p.auto_id),
                nullable: f.nullable,
                is_dynamic: f.is_dynamic,
                is_partition_key: f.is_partition_key,
                dim,
                max_length,
                default_value: f.default_value.clone(),
            });
        }
        let pk_idx = fields
            .iter()
            .position(|f| f.is_primary)
            .ok_or_else(|| FvError::invalid_parameter("schema does not contain primary key field"))?;
        let vector_idx = fields
            .iter()
            .position(|f| f.is_vector())
            .ok_or_else(|| FvError::invalid_parameter("schema does not contain vector field"))?;
        let dynamic_idx = fields.iter().position(|f| f.is_dynamic);
        Ok(Schema {
            name: p.name.clone(),
            fields,
            enable_dynamic_field: p.enable_dynamic_field,
            version: p.version,
            pk_idx,
            vector_idx,
            dynamic_idx,
        })
    }

    pub fn pk(&self) -> &Field {
        &self.fields[self.pk_idx]
    }
    pub fn vector(&self) -> &Field {
        &self.fields[self.vector_idx]
    }
    pub fn dynamic(&self) -> Option<&Field> {
        self.dynamic_idx.map(|i| &self.fields[i])
    }
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
    pub fn field_by_id(&self, id: FieldId) -> Option<&Field> {
        self.fields.iter().find(|f| f.id == id)
    }
    /// Fields the user declared (everything but the hidden dynamic field).
    pub fn user_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.iter().filter(|f| !f.is_dynamic)
    }
    pub fn pk_is_int(&self) -> bool {
        self.pk().data_type == DataType::Int64
    }

    /// Rough bytes per row, for size-based segment sealing.
    pub fn estimate_row_bytes(&self) -> u64 {
        let mut total = 8u64; // timestamp
        for f in &self.fields {
            total += match f.data_type {
                DataType::Bool | DataType::Int8 => 1,
                DataType::Int16 => 2,
                DataType::Int32 | DataType::Float => 4,
                DataType::Int64 | DataType::Double => 8,
                DataType::FloatVector => 4 * f.dim as u64,
                DataType::VarChar | DataType::String => (f.max_length as u64).clamp(16, 256),
                DataType::Json => 128,
                _ => 64,
            };
        }
        total
    }
}

/// Checks a collection, field, partition or index name the way Milvus does.
pub fn validate_name(kind: &str, name: &str) -> FvResult<()> {
    let bad = |why: &str| Err(FvError::invalid_parameter(format!("Invalid {kind} name: {name}. {why}")));
    if name.is_empty() {
        return Err(FvError::invalid_parameter(format!("{kind} name should not be empty")));
    }
    if name.len() > MAX_NAME_LENGTH {
        return bad(&format!("the length of a {kind} name must be less than {MAX_NAME_LENGTH} characters"));
    }
    let first = name.chars().next().unwrap_or('_');
    if !(first == '_' || first.is_ascii_alphabetic()) {
        return bad(&format!("the first character of a {kind} name must be an underscore or letter"));
    }
    if !name.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) {
        return bad(&format!("{kind} name can only contain numbers, letters and underscores"));
    }
    Ok(())
}

fn default_value_matches(t: DataType, v: &ValueField) -> bool {
    use fv_proto::schema::value_field::Data;
    matches!(
        (&v.data, t),
        (None, _)
            | (Some(Data::BoolData(_)), DataType::Bool)
            | (Some(Data::IntData(_)), DataType::Int8 | DataType::Int16 | DataType::Int32)
            | (Some(Data::LongData(_)), DataType::Int64)
            | (Some(Data::FloatData(_)), DataType::Float)
            | (Some(Data::DoubleData(_)), DataType::Double)
            | (Some(Data::StringData(_)), DataType::VarChar)
    )
}

/// Validates a schema a client sent with CreateCollection and prepares it for storage:
/// assigns field ids from 100 in declaration order, folds the collection-level autoID
/// into the primary key, and appends the hidden `$meta` JSON field when the dynamic field
/// is enabled.
pub fn prepare_new_schema(mut p: CollectionSchema, collection_name: &str) -> FvResult<CollectionSchema> {
    validate_name("collection", collection_name)?;
    if p.name.is_empty() {
        p.name = collection_name.to_string();
    } else if p.name != collection_name {
        return Err(FvError::invalid_parameter(format!(
            "collection name [{collection_name}] not matches schema name [{}]",
            p.name
        )));
    }
    if p.fields.is_empty() {
        return Err(FvError::invalid_parameter("schema does not contain any field"));
    }
    if p.fields.len() > MAX_FIELDS {
        return Err(FvError::invalid_parameter(format!("maximum field's number should be limited to {MAX_FIELDS}")));
    }
    let mut names = std::collections::HashSet::new();
    let mut pk_count = 0;
    let mut vector_count = 0;
    for f in &p.fields {
        validate_name("field", &f.name)?;
        if !names.insert(f.name.clone()) {
            return Err(FvError::invalid_parameter(format!("duplicated field name {}", f.name)));
        }
        if f.is_dynamic {
            return Err(FvError::invalid_parameter(format!("field {} cannot be declared dynamic", f.name)));
        }
        let t = DataType::try_from(f.data_type)
            .map_err(|_| FvError::invalid_parameter(format!("field data type {} is not supported", f.data_type)))?;
        match t {
            DataType::Bool
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float
            | DataType::Double
            | DataType::VarChar
            | DataType::Json
            | DataType::FloatVector => {}
            other => {
                return Err(FvError::invalid_parameter(format!(
                    "field {}: data type {} is not supported by Ferrovec yet",
                    f.name,
                    other.as_str_name()
                )));
            }
        }
        if f.is_primary_key {
            pk_count += 1;
            if !matches!(t, DataType::Int64 | DataType::VarChar) {
                return Err(FvError::invalid_parameter(format!(
                    "the data type of primary key should be Int64 or VarChar, field {} is {}",
                    f.name,
                    t.as_str_name()
                )));
            }
            if f.nullable {
                return Err(FvError::invalid_parameter(format!("primary field {} cannot be nullable", f.name)));
            }
        } else if f.auto_id {
            return Err(FvError::invalid_parameter(format!("only the primary field can be auto id, field {}", f.name)));
        }
        if is_vector_type(t) {
            vector_count += 1;
            if f.nullable {
                return Err(FvError::invalid_parameter(format!("vector field {} cannot be nullable", f.name)));
            }
            let dim = parse_usize_param(&f.name, &f.type_params, "dim")?.ok_or_else(|| {
                FvError::invalid_parameter(format!("dimension is not defined in field type params of {}", f.name))
            })?;
            if !(MIN_DIM..=MAX_DIM).contains(&dim) {
                return Err(FvError::invalid_parameter(format!(
                    "invalid dimension: {dim} of field {}. should be in range {MIN_DIM} ~ {MAX_DIM}",
                    f.name
                )));
            }
        }
        if t == DataType::VarChar {
            let max = parse_usize_param(&f.name, &f.type_params, "max_length")?.ok_or_else(|| {
                FvError::invalid_parameter(format!(
                    "type param(max_length) should be specified for the field({})",
                    f.name
                ))
            })?;
            if max == 0 || max > MAX_VARCHAR_LENGTH {
                return Err(FvError::invalid_parameter(format!(
                    "the maximum length specified for the field({}) should be in (0, {MAX_VARCHAR_LENGTH}], but got {max} instead",
                    f.name
                )));
            }
        }
        if let Some(dv) = &f.default_value
            && dv.data.is_some()
            && (f.is_primary_key || !default_value_matches(t, dv))
        {
            return Err(FvError::invalid_parameter(format!(
                "type (default value) of field {} does not match its data type {}",
                f.name,
                t.as_str_name()
            )));
        }
    }
    if pk_count != 1 {
        return Err(FvError::invalid_parameter(if pk_count == 0 {
            "schema does not contain primary key field".to_string()
        } else {
            "there are more than one primary key".to_string()
        }));
    }
    if vector_count == 0 {
        return Err(FvError::invalid_parameter("schema does not contain vector field"));
    }
    if vector_count > 1 {
        return Err(FvError::invalid_parameter("Ferrovec supports one vector field per collection for now"));
    }
    let collection_auto_id = p.auto_id;
    for (i, f) in p.fields.iter_mut().enumerate() {
        f.field_id = START_OF_USER_FIELD_ID + i as i64;
        if f.is_primary_key && collection_auto_id {
            f.auto_id = true;
        }
    }
    p.auto_id = false;
    if p.enable_dynamic_field {
        let id = START_OF_USER_FIELD_ID + p.fields.len() as i64;
        p.fields.push(FieldSchema {
            field_id: id,
            name: DYNAMIC_FIELD_NAME.to_string(),
            description: "dynamic schema".to_string(),
            data_type: DataType::Json as i32,
            is_dynamic: true,
            ..Default::default()
        });
    }
    Schema::from_proto(&p)?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(k: &str, v: &str) -> KeyValuePair {
        KeyValuePair { key: k.into(), value: v.into() }
    }

    fn field(name: &str, t: DataType) -> FieldSchema {
        FieldSchema { name: name.into(), data_type: t as i32, ..Default::default() }
    }

    fn sample() -> CollectionSchema {
        let mut pk = field("id", DataType::Int64);
        pk.is_primary_key = true;
        let mut v = field("vec", DataType::FloatVector);
        v.type_params = vec![kv("dim", "8")];
        let mut s = field("title", DataType::VarChar);
        s.type_params = vec![kv("max_length", "64")];
        CollectionSchema { name: "c".into(), fields: vec![pk, v, s], enable_dynamic_field: true, ..Default::default() }
    }

    #[test]
    fn prepare_assigns_ids_and_dynamic_field() {
        let p = prepare_new_schema(sample(), "c").expect("valid");
        let ids: Vec<_> = p.fields.iter().map(|f| f.field_id).collect();
        assert_eq!(ids, vec![100, 101, 102, 103]);
        let s = Schema::from_proto(&p).expect("parses");
        assert_eq!(s.pk().name, "id");
        assert_eq!(s.vector().dim, 8);
        assert_eq!(s.field("title").map(|f| f.max_length), Some(64));
        assert_eq!(s.dynamic().map(|f| f.name.as_str()), Some("$meta"));
    }

    #[test]
    fn rejects_bad_schemas() {
        let mut bad_dim = sample();
        bad_dim.fields[1].type_params = vec![kv("dim", "40000")];
        let e = prepare_new_schema(bad_dim, "c").unwrap_err();
        assert!(e.message.contains("invalid dimension: 40000"), "{e}");

        let mut no_pk = sample();
        no_pk.fields[0].is_primary_key = false;
        assert!(prepare_new_schema(no_pk, "c").unwrap_err().message.contains("primary key"));

        let mut dup = sample();
        dup.fields[2].name = "id".into();
        assert!(prepare_new_schema(dup, "c").unwrap_err().message.contains("duplicated field name"));

        let mut no_len = sample();
        no_len.fields[2].type_params.clear();
        assert!(prepare_new_schema(no_len, "c").unwrap_err().message.contains("max_length"));

        assert!(validate_name("collection", "1abc").is_err());
        assert!(validate_name("collection", "a-b").is_err());
        assert!(validate_name("collection", "_ok_1").is_ok());
    }
}
