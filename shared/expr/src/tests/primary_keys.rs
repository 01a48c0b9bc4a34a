//! Primary-key extraction: the filters a delete or get can answer by key lookup.

use std::collections::HashMap;

use fv_common::PrimaryKey;
use fv_common::schema::Schema;
use fv_proto::schema::DataType;

use super::fixtures::*;
use crate::compile;

fn pks(expr: &str, schema: &Schema) -> Option<Vec<PrimaryKey>> {
    compile(expr, schema, &no_params()).unwrap_or_else(|e| panic!("{expr}: {e}")).as_primary_keys(schema)
}

#[test]
fn as_primary_keys() {
    let s = schema();
    let ints = |v: &[i64]| Some(v.iter().map(|x| PrimaryKey::Int(*x)).collect::<Vec<_>>());
    assert_eq!(pks("id in [1, 2, 3]", &s), ints(&[1, 2, 3]));
    assert_eq!(pks("id == 5", &s), ints(&[5]));
    assert_eq!(pks("5 == id", &s), ints(&[5]));
    assert_eq!(pks("id == 1 or id in [2, 1] or (id == 3)", &s), ints(&[1, 2, 3]));
    assert_eq!(pks("id in []", &s), ints(&[]));
    assert_eq!(pks("id == -0x10", &s), ints(&[-16]));
    assert_eq!(pks("id != 5", &s), None);
    assert_eq!(pks("id not in [1]", &s), None);
    assert_eq!(pks("id > 5", &s), None);
    assert_eq!(pks("id == 1 and i8 > 0", &s), None);
    assert_eq!(pks("id == 1 or i8 > 0", &s), None);
    assert_eq!(pks("i64 in [1, 2]", &s), None);
    assert_eq!(pks("id == 1.0", &s), None);
    assert_eq!(pks("id in [1, 2.5]", &s), None);
    assert_eq!(pks("not id == 1", &s), None);
    assert_eq!(pks("", &s), None);
    assert_eq!(pks("id + 0 == 1", &s), None);

    let vs = schema_with(true, DataType::VarChar);
    let strs = |v: &[&str]| Some(v.iter().map(|x| PrimaryKey::Str(x.to_string())).collect::<Vec<_>>());
    assert_eq!(pks("id in ['a', \"b\"]", &vs), strs(&["a", "b"]));
    assert_eq!(pks("id == 'x' or id == 'y'", &vs), strs(&["x", "y"]));
    assert_eq!(pks("id like 'x'", &vs), None);

    // Templates bind like literals.
    let params = HashMap::from([("ids".to_string(), long_array(&[7, 8]))]);
    let p = compile("id in {ids}", &s, &params).expect("compiles");
    assert_eq!(p.as_primary_keys(&s), ints(&[7, 8]));
}
