//! `{name}` template placeholders: binding, type checking against the schema, errors.

use std::collections::HashMap;

use fv_proto::schema::{
    JsonArray, StringArray, TemplateArrayValue, TemplateValue, template_array_value, template_value,
};
use serde_json::json;

use super::fixtures::*;
use super::reference::jget;
use crate::{ExprErrorKind, compile};

fn scalar(v: template_value::Val) -> TemplateValue {
    TemplateValue { val: Some(v) }
}

#[test]
fn templates() {
    let s = schema();
    let rows = random_rows(3, 200);
    let seg = segment(&rows, &s);
    let params = HashMap::from([
        ("lo".to_string(), scalar(template_value::Val::Int64Val(-5))),
        ("hi".to_string(), scalar(template_value::Val::FloatVal(5.5))),
        ("word".to_string(), scalar(template_value::Val::StringVal("ab".into()))),
        ("flag".to_string(), scalar(template_value::Val::BoolVal(true))),
        ("ids".to_string(), long_array(&[1, 2, 3])),
        (
            "words".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::StringData(StringArray {
                        data: vec!["a".into(), "b".into()],
                    })),
                })),
            },
        ),
        (
            "mixed".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::JsonData(JsonArray {
                        data: vec![b"1".to_vec(), b"\"ab\"".to_vec(), b"[1,2]".to_vec()],
                    })),
                })),
            },
        ),
        (
            "obj".to_string(),
            TemplateValue {
                val: Some(template_value::Val::ArrayVal(TemplateArrayValue {
                    data: Some(template_array_value::Data::JsonData(JsonArray { data: vec![b"{}".to_vec()] })),
                })),
            },
        ),
    ]);
    let run =
        |e: &str| bools(&compile(e, &s, &params).unwrap_or_else(|x| panic!("{e}: {x}")).evaluate(&seg).expect("runs"));
    let want = |f: &dyn Fn(&Row) -> bool| rows.iter().map(f).collect::<Vec<_>>();
    assert_eq!(run("{lo} < i8 < {hi}"), want(&|r| -5 < r.i8 && (r.i8 as f64) < 5.5));
    assert_eq!(run("s == {word} or s in {words}"), want(&|r| ["ab", "a", "b"].contains(&r.s.as_str())));
    assert_eq!(run("b == {flag}"), want(&|r| r.b));
    assert_eq!(run("{flag}"), vec![true; 200]);
    assert_eq!(run("i16 in {ids}"), want(&|r| [1, 2, 3].contains(&r.i16)));
    assert_eq!(
        run("j['a'] in {mixed}"),
        want(&|r| {
            let a = jget(&r.j, &["a"]);
            a == Some(&json!(1)) || a == Some(&json!("ab")) || a == Some(&json!([1, 2]))
        })
    );
    let e = compile("i8 > {missing}", &s, &params).expect_err("missing");
    assert_eq!(e.kind, ExprErrorKind::Template);
    assert_eq!(e.to_string(), "the value of expression template variable name {missing} is not found at position 5");
    assert_eq!(
        compile("i8 > {word}", &s, &params).expect_err("type").to_string(),
        "cannot compare field i8 (Int8) with template value {word} of type string at position 3"
    );
    assert_eq!(
        compile("s in {ids}", &s, &params).expect_err("type").to_string(),
        "'in' list element 1 (integer) does not match field s (VarChar) at position 5"
    );
    assert_eq!(
        compile("j['a'] in {obj}", &s, &params).expect_err("object").to_string(),
        "template variable {obj}: JSON objects are not supported at position 10"
    );
    assert_eq!(
        compile("i8 in {lo}", &s, &params).expect_err("scalar").to_string(),
        "'in' requires an array of literals, got template value {lo} of type integer at position 6"
    );
}
