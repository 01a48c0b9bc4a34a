//! Binding `{name}` template placeholders: the values a client sends alongside the
//! expression (`expr_template_values`), turned into constants.

use fv_proto::schema::{TemplateArrayValue, TemplateValue, template_array_value, template_value};

use crate::ir::Lit;

/// The constant of a JSON element of a template array (no nulls, no objects).
fn json_lit(v: serde_json::Value) -> Result<Lit, String> {
    Ok(match v {
        serde_json::Value::Bool(b) => Lit::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Lit::Int(i),
            None => Lit::Float(n.as_f64().ok_or("unsupported JSON number")?),
        },
        serde_json::Value::String(s) => Lit::Str(s),
        serde_json::Value::Array(items) => Lit::Array(items.into_iter().map(json_lit).collect::<Result<_, _>>()?),
        serde_json::Value::Null => return Err("JSON null is not supported".into()),
        serde_json::Value::Object(_) => return Err("JSON objects are not supported".into()),
    })
}

/// The array constant of a template array value.
fn template_array_lit(a: &TemplateArrayValue) -> Result<Lit, String> {
    use template_array_value::Data;
    Ok(Lit::Array(match &a.data {
        None => Vec::new(),
        Some(Data::BoolData(x)) => x.data.iter().map(|b| Lit::Bool(*b)).collect(),
        Some(Data::LongData(x)) => x.data.iter().map(|v| Lit::Int(*v)).collect(),
        Some(Data::DoubleData(x)) => x
            .data
            .iter()
            .map(|v| if v.is_finite() { Ok(Lit::Float(*v)) } else { Err(format!("{v} is not a finite number")) })
            .collect::<Result<_, _>>()?,
        Some(Data::StringData(x)) => x.data.iter().map(|s| Lit::Str(s.clone())).collect(),
        Some(Data::ArrayData(x)) => x.data.iter().map(template_array_lit).collect::<Result<_, _>>()?,
        Some(Data::JsonData(x)) => x
            .data
            .iter()
            .map(|b| {
                serde_json::from_slice::<serde_json::Value>(b)
                    .map_err(|e| format!("invalid JSON element: {e}"))
                    .and_then(json_lit)
            })
            .collect::<Result<_, _>>()?,
    }))
}

/// The constant of a template value; the error says why it cannot be one.
pub(crate) fn template_lit(v: &TemplateValue) -> Result<Lit, String> {
    use template_value::Val;
    match &v.val {
        None => Err("the value is empty".into()),
        Some(Val::BoolVal(b)) => Ok(Lit::Bool(*b)),
        Some(Val::Int64Val(i)) => Ok(Lit::Int(*i)),
        Some(Val::FloatVal(f)) if f.is_finite() => Ok(Lit::Float(*f)),
        Some(Val::FloatVal(f)) => Err(format!("{f} is not a finite number")),
        Some(Val::StringVal(s)) => Ok(Lit::Str(s.clone())),
        Some(Val::ArrayVal(a)) => template_array_lit(a),
    }
}

#[cfg(test)]
mod tests {
    use fv_proto::schema::{JsonArray, LongArray};

    use super::*;

    fn scalar(v: template_value::Val) -> TemplateValue {
        TemplateValue { val: Some(v) }
    }

    fn array(data: template_array_value::Data) -> TemplateValue {
        scalar(template_value::Val::ArrayVal(TemplateArrayValue { data: Some(data) }))
    }

    #[test]
    fn scalars_and_arrays() {
        use template_value::Val;
        assert_eq!(template_lit(&scalar(Val::Int64Val(3))), Ok(Lit::Int(3)));
        assert_eq!(template_lit(&scalar(Val::FloatVal(0.5))), Ok(Lit::Float(0.5)));
        assert_eq!(template_lit(&scalar(Val::StringVal("x".into()))), Ok(Lit::Str("x".into())));
        assert!(template_lit(&scalar(Val::FloatVal(f64::NAN))).is_err());
        assert!(template_lit(&TemplateValue { val: None }).is_err());
        let longs = array(template_array_value::Data::LongData(LongArray { data: vec![1, 2] }));
        assert_eq!(template_lit(&longs), Ok(Lit::Array(vec![Lit::Int(1), Lit::Int(2)])));
        let json = array(template_array_value::Data::JsonData(JsonArray {
            data: vec![b"1".to_vec(), b"[\"a\", 2.5]".to_vec()],
        }));
        assert_eq!(
            template_lit(&json),
            Ok(Lit::Array(vec![Lit::Int(1), Lit::Array(vec![Lit::Str("a".into()), Lit::Float(2.5)])]))
        );
        let null = array(template_array_value::Data::JsonData(JsonArray { data: vec![b"null".to_vec()] }));
        assert_eq!(template_lit(&null), Err("JSON null is not supported".into()));
    }
}
