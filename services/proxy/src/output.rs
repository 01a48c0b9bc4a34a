//! Output fields: which columns a search or query returns, as Milvus resolves them.
//!
//! `*` means every field (vectors included) plus the dynamic field; a name in the schema
//! is that field; `$meta` is the whole dynamic field; any other name is a key of the
//! dynamic field when the collection has one (returned inside the `$meta` column,
//! filtered to the requested keys), and an error otherwise.

use fv_common::schema::Schema;
use fv_common::{DYNAMIC_FIELD_NAME, FieldId, FvError, FvResult};
use fv_proto::schema::FieldData;
use fv_proto::schema::field_data::Field;
use fv_proto::schema::scalar_field::Data;

pub const COUNT_STAR: &str = "count(*)";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct OutputPlan {
    /// Fields to fetch, in schema order.
    pub field_ids: Vec<FieldId>,
    /// Names reported back in the response's `output_fields`.
    pub names: Vec<String>,
    /// Dynamic keys to keep in `$meta`; None keeps every key.
    pub dynamic_keys: Option<Vec<String>>,
    /// `count(*)` was requested.
    pub count: bool,
}

pub fn resolve(schema: &Schema, requested: &[String], with_pk: bool) -> FvResult<OutputPlan> {
    let mut plan = OutputPlan::default();
    let mut ids = std::collections::BTreeSet::new();
    let mut all_dynamic = false;
    let mut keys: Vec<String> = Vec::new();
    for raw in requested {
        let name = raw.trim();
        if name.is_empty() {
            continue;
        }
        if name == COUNT_STAR {
            plan.count = true;
            continue;
        }
        if name == "*" {
            for f in &schema.fields {
                ids.insert(f.id);
            }
            all_dynamic = true;
            continue;
        }
        if name == DYNAMIC_FIELD_NAME {
            match schema.dynamic() {
                Some(d) => {
                    ids.insert(d.id);
                    all_dynamic = true;
                }
                None => return Err(FvError::field_not_found(name)),
            }
            continue;
        }
        match schema.field(name) {
            Some(f) => {
                ids.insert(f.id);
            }
            None => match schema.dynamic() {
                Some(d) => {
                    ids.insert(d.id);
                    if !keys.iter().any(|k| k == name) {
                        keys.push(name.to_string());
                    }
                }
                None => return Err(FvError::invalid_parameter(format!("field {name} not exist"))),
            },
        }
    }
    if plan.count && !ids.is_empty() {
        return Err(FvError::invalid_parameter("count entities with pagination or other output fields is not allowed"));
    }
    if with_pk && !plan.count {
        ids.insert(schema.pk().id);
    }
    plan.field_ids = schema.fields.iter().map(|f| f.id).filter(|id| ids.contains(id)).collect();
    plan.names =
        schema.fields.iter().filter(|f| ids.contains(&f.id) && !f.is_dynamic).map(|f| f.name.clone()).collect();
    if all_dynamic && schema.dynamic().is_some() {
        plan.names.push(DYNAMIC_FIELD_NAME.to_string());
    } else {
        plan.names.extend(keys.iter().cloned());
    }
    plan.dynamic_keys = if all_dynamic { None } else { Some(keys) };
    Ok(plan)
}

/// Keeps only the requested keys in the dynamic column.
pub fn filter_dynamic(fields: &mut [FieldData], plan: &OutputPlan) {
    let Some(keys) = &plan.dynamic_keys else { return };
    for fd in fields.iter_mut().filter(|f| f.is_dynamic) {
        if let Some(Field::Scalars(s)) = fd.field.as_mut()
            && let Some(Data::JsonData(arr)) = s.data.as_mut()
        {
            for doc in arr.data.iter_mut() {
                let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(doc) else {
                    continue;
                };
                let kept: serde_json::Map<String, serde_json::Value> =
                    map.into_iter().filter(|(k, _)| keys.iter().any(|w| w == k)).collect();
                *doc = serde_json::to_vec(&serde_json::Value::Object(kept)).unwrap_or_else(|_| b"{}".to_vec());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_proto::common::KeyValuePair;
    use fv_proto::schema::{CollectionSchema, DataType, FieldSchema};

    fn schema(dynamic: bool) -> Schema {
        let mut fields = vec![
            FieldSchema {
                field_id: 100,
                name: "id".into(),
                is_primary_key: true,
                data_type: DataType::Int64 as i32,
                ..Default::default()
            },
            FieldSchema {
                field_id: 101,
                name: "v".into(),
                data_type: DataType::FloatVector as i32,
                type_params: vec![KeyValuePair { key: "dim".into(), value: "2".into() }],
                ..Default::default()
            },
            FieldSchema { field_id: 102, name: "t".into(), data_type: DataType::Int32 as i32, ..Default::default() },
        ];
        if dynamic {
            fields.push(FieldSchema {
                field_id: 103,
                name: "$meta".into(),
                data_type: DataType::Json as i32,
                is_dynamic: true,
                ..Default::default()
            });
        }
        Schema::from_proto(&CollectionSchema {
            name: "c".into(),
            fields,
            enable_dynamic_field: dynamic,
            ..Default::default()
        })
        .expect("schema")
    }

    #[test]
    fn star_and_dynamic_keys() {
        let s = schema(true);
        let p = resolve(&s, &["*".into()], true).expect("ok");
        assert_eq!(p.field_ids, vec![100, 101, 102, 103]);
        assert_eq!(p.names, vec!["id", "v", "t", "$meta"]);
        assert_eq!(p.dynamic_keys, None);
        let p = resolve(&s, &["t".into(), "color".into()], false).expect("ok");
        assert_eq!(p.field_ids, vec![102, 103]);
        assert_eq!(p.names, vec!["t", "color"]);
        assert_eq!(p.dynamic_keys, Some(vec!["color".to_string()]));
        let p = resolve(&s, &[], true).expect("ok");
        assert_eq!(p.field_ids, vec![100]);
    }

    #[test]
    fn errors_and_count() {
        let s = schema(false);
        assert!(resolve(&s, &["nope".into()], true).unwrap_err().message.contains("nope"));
        let p = resolve(&s, &["count(*)".into()], true).expect("ok");
        assert!(p.count && p.field_ids.is_empty());
        assert!(resolve(&s, &["count(*)".into(), "t".into()], true).is_err());
    }
}
