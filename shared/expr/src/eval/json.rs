//! The JSON side of evaluation: following a path into a row's value, and the
//! `json_contains*` tests on arrays.

use serde_json::Value;

use crate::ast::PathElem;
use crate::compare::{Dyn, dyn_eq};
use crate::ir::{ContainsMode, Lit};

/// Follows a JSON path the way a JSON pointer does: a string key on an array selects
/// the element with that decimal index, an integer index on an object the key with
/// that text.
pub(crate) fn resolve<'a>(mut v: &'a Value, path: &[PathElem]) -> Option<&'a Value> {
    for p in path {
        v = match (v, p) {
            (Value::Object(m), PathElem::Key(k)) => m.get(k)?,
            (Value::Object(m), PathElem::Index(i)) => m.get(&i.to_string())?,
            (Value::Array(a), PathElem::Index(i)) => a.get(usize::try_from(*i).ok()?)?,
            (Value::Array(a), PathElem::Key(k)) => {
                if k.is_empty() || (k.len() > 1 && k.starts_with('0')) || !k.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                a.get(k.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

pub(crate) fn contains_row(arr: &[Value], mode: ContainsMode, items: &[Lit]) -> bool {
    let has = |l: &Lit| {
        let k = Dyn::of_lit(l);
        arr.iter().any(|e| dyn_eq(Dyn::of_json(e), k) == Some(true))
    };
    match mode {
        ContainsMode::One | ContainsMode::Any => items.iter().any(has),
        ContainsMode::All => items.iter().all(has),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_paths() {
        let v: Value = json!({"a": {"b": [10, {"c": true}]}, "0": "zero", "arr": ["x", "y"]});
        let k = |s: &str| PathElem::Key(s.into());
        assert_eq!(resolve(&v, &[k("a"), k("b"), PathElem::Index(0)]), Some(&json!(10)));
        assert_eq!(resolve(&v, &[k("a"), k("b"), PathElem::Index(1), k("c")]), Some(&Value::Bool(true)));
        assert_eq!(resolve(&v, &[PathElem::Index(0)]), Some(&json!("zero")));
        assert_eq!(resolve(&v, &[k("arr"), k("1")]), Some(&json!("y")));
        assert_eq!(resolve(&v, &[k("arr"), k("01")]), None);
        assert_eq!(resolve(&v, &[k("arr"), PathElem::Index(5)]), None);
        assert_eq!(resolve(&v, &[k("arr"), PathElem::Index(-1)]), None);
        assert_eq!(resolve(&v, &[k("missing")]), None);
        assert_eq!(resolve(&v, &[k("0"), k("x")]), None);
    }

    #[test]
    fn contains_modes() {
        let arr = [json!(1), json!("a"), json!(2.5)];
        let items = [Lit::Int(1), Lit::Str("b".into())];
        assert!(contains_row(&arr, ContainsMode::One, &items[..1]));
        assert!(contains_row(&arr, ContainsMode::Any, &items));
        assert!(!contains_row(&arr, ContainsMode::All, &items));
        assert!(contains_row(&arr, ContainsMode::All, &[Lit::Float(1.0), Lit::Float(2.5)]));
        assert!(!contains_row(&[], ContainsMode::Any, &items));
        assert!(contains_row(&[], ContainsMode::All, &[]));
    }
}
