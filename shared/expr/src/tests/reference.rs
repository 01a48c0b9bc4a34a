//! The naive reference: three-valued logic written out per row, one closure per case,
//! to check the vectorised evaluator against.

use serde_json::{Value, json};

use super::fixtures::*;
use crate::compile;

type Tv = Option<bool>;

fn and3(a: Tv, b: Tv) -> Tv {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or3(a: Tv, b: Tv) -> Tv {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

fn not3(a: Tv) -> Tv {
    a.map(|x| !x)
}

/// A JSON value at `path`; None when missing.
pub(super) fn jget<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(m) => m.get(*p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

pub(super) fn jnum(v: Option<&Value>) -> Option<f64> {
    v?.as_f64()
}

fn jint(v: Option<&Value>) -> Option<i64> {
    v?.as_i64()
}

fn jstr(v: Option<&Value>) -> Option<&str> {
    v?.as_str()
}

fn jbool(v: Option<&Value>) -> Option<bool> {
    v?.as_bool()
}

fn jnull(v: Option<&Value>) -> bool {
    v.is_none_or(Value::is_null)
}

fn jarr(v: Option<&Value>) -> Option<&Vec<Value>> {
    v?.as_array()
}

/// Element of a JSON array equal to a number or a string.
fn has_num(a: &[Value], x: f64) -> bool {
    a.iter().any(|e| e.as_f64() == Some(x))
}

fn has_str(a: &[Value], x: &str) -> bool {
    a.iter().any(|e| e.as_str() == Some(x))
}

/// LIKE by brute-force recursion over chars.
fn like_ref(p: &[char], s: &[char]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some('%') => (0..=s.len()).any(|k| like_ref(&p[1..], &s[k..])),
        Some('_') => !s.is_empty() && like_ref(&p[1..], &s[1..]),
        Some('\\') if p.len() > 1 => s.first() == Some(&p[1]) && like_ref(&p[2..], &s[1..]),
        Some(c) => s.first() == Some(c) && like_ref(&p[1..], &s[1..]),
    }
}

fn like(s: &str, p: &str) -> bool {
    like_ref(&p.chars().collect::<Vec<_>>(), &s.chars().collect::<Vec<_>>())
}

type RefFn = fn(&Row) -> Tv;

fn cases() -> Vec<(&'static str, RefFn)> {
    vec![
        // comparisons of each typed column with constants
        ("b", |r| Some(r.b)),
        ("not b", |r| Some(!r.b)),
        ("b == true", |r| Some(r.b)),
        ("b != True", |r| Some(!r.b)),
        ("i8 > 3", |r| Some(r.i8 > 3)),
        ("i8 <= -3", |r| Some(r.i8 <= -3)),
        ("i16 == 7", |r| Some(r.i16 == 7)),
        ("i16 != 7", |r| Some(r.i16 != 7)),
        ("i32 >= 0x10", |r| Some(r.i32 >= 16)),
        ("i64 < -0b11", |r| Some(r.i64 < -3)),
        ("i64 > 2.5", |r| Some(r.i64 as f64 > 2.5)),
        ("i8 == 1000", |_| Some(false)),
        ("i8 != 1000", |_| Some(true)),
        ("f > 0.5", |r| Some(r.f > 0.5)),
        ("f == 0.1", |r| Some(r.f == 0.1f32)),
        ("f <= 2", |r| Some(r.f <= 2.0)),
        ("d >= 1.25", |r| Some(r.d >= 1.25)),
        ("d == -2", |r| Some(r.d == -2.0)),
        ("s == 'ab'", |r| Some(r.s == "ab")),
        ("s > \"abba\"", |r| Some(r.s.as_str() > "abba")),
        ("s <= ''", |r| Some(r.s.is_empty())),
        ("5 < i8", |r| Some(5 < r.i8)),
        ("'b' > s", |r| Some("b" > r.s.as_str())),
        // nullable columns
        ("n > 5", |r| r.n.map(|x| x > 5)),
        ("n == 3", |r| r.n.map(|x| x == 3)),
        ("n != 3", |r| r.n.map(|x| x != 3)),
        ("ns == 'a'", |r| r.ns.as_ref().map(|x| x == "a")),
        ("n is null", |r| Some(r.n.is_none())),
        ("n IS NOT NULL", |r| Some(r.n.is_some())),
        ("ns is null or ns == ''", |r| or3(Some(r.ns.is_none()), r.ns.as_ref().map(|x| x.is_empty()))),
        ("not (n > 5)", |r| r.n.map(|x| x <= 5)),
        ("n > 5 or b", |r| or3(r.n.map(|x| x > 5), Some(r.b))),
        ("n > 5 and i8 > 100", |_| Some(false)),
        ("not (n > 5 and b)", |r| not3(and3(r.n.map(|x| x > 5), Some(r.b)))),
        ("i64 is null", |_| Some(false)),
        // ranges
        ("-5 < i8 <= 5", |r| Some(-5 < r.i8 && r.i8 <= 5)),
        ("10 > d >= -2.5", |r| Some(10.0 > r.d && r.d >= -2.5)),
        ("1 < n < 30", |r| r.n.map(|x| 1 < x && x < 30)),
        ("'a' <= s < 'b'", |r| Some("a" <= r.s.as_str() && r.s.as_str() < "b")),
        ("0 <= i16 * 2 <= 50", |r| Some((0..=50).contains(&(r.i16 as i64 * 2)))),
        ("i8 < i16 < i32", |r| Some((r.i8 as i64) < r.i16 as i64 && (r.i16 as i64) < r.i32 as i64)),
        ("0 < j['a'] < 10", |r| jnum(jget(&r.j, &["a"])).map(|x| 0.0 < x && x < 10.0)),
        // in
        ("i16 in [1, 2, 3, -5]", |r| Some([1, 2, 3, -5].contains(&r.i16))),
        ("i32 not in [0, 1]", |r| Some(![0, 1].contains(&r.i32))),
        ("i64 in [1.0, 2.5]", |r| Some(r.i64 == 1)),
        ("i8 in []", |_| Some(false)),
        ("i8 not in []", |_| Some(true)),
        ("f in [0.5, 1.5, 0.1]", |r| Some(r.f == 0.5 || r.f == 1.5 || r.f == 0.1f32)),
        ("d in [-1, 2.25]", |r| Some(r.d == -1.0 || r.d == 2.25)),
        ("s in ['a', 'ab', '']", |r| Some(["a", "ab", ""].contains(&r.s.as_str()))),
        ("b in [true]", |r| Some(r.b)),
        ("n not in [1, 2, 3]", |r| r.n.map(|x| ![1, 2, 3].contains(&x))),
        ("ns in ['a', 'b']", |r| r.ns.as_ref().map(|x| x == "a" || x == "b")),
        (
            "i16 in [-99, -98, -97, -96, -95, -94, -93, -92, -91, -90, -89, -88, -87, -86, -85, -84, -83, -82, 0, 99]",
            |r| Some((-99..=-82).contains(&r.i16) || r.i16 == 0 || r.i16 == 99),
        ),
        ("i32 * 2 in [4, 6, 8]", |r| Some([4, 6, 8].contains(&(r.i32 * 2)))),
        // like
        ("s like 'ab%'", |r| Some(r.s.starts_with("ab"))),
        ("s like '%b'", |r| Some(r.s.ends_with('b'))),
        ("s like '%b%'", |r| Some(r.s.contains('b'))),
        ("s like 'ab'", |r| Some(r.s == "ab")),
        ("s LIKE 'a_'", |r| Some(like(&r.s, "a_"))),
        ("s like '%a_a%'", |r| Some(like(&r.s, "%a_a%"))),
        ("s like '%\\%'", |r| Some(r.s.ends_with('%'))),
        ("s like 'x\\_%'", |r| Some(r.s.starts_with("x_"))),
        ("s like '_'", |r| Some(r.s.chars().count() == 1)),
        ("not s like 'a%'", |r| Some(!r.s.starts_with('a'))),
        ("ns like 'a%'", |r| r.ns.as_ref().map(|x| x.starts_with('a'))),
        ("j['a'] like 'a%'", |r| jstr(jget(&r.j, &["a"])).map(|x| x.starts_with('a'))),
        // arithmetic
        ("i32 * 2 + i16 > 10", |r| Some(r.i32 as i64 * 2 + r.i16 as i64 > 10)),
        ("(i64 - i8) % 7 == 0", |r| Some((r.i64 - r.i8 as i64) % 7 == 0)),
        ("i32 / i8 > 1", |r| if r.i8 == 0 { None } else { Some(r.i32 / r.i8 as i32 > 1) }),
        ("i32 % i8 == 0", |r| if r.i8 == 0 { None } else { Some(r.i32 % r.i8 as i32 == 0) }),
        ("not (i32 % i8 == 0)", |r| if r.i8 == 0 { None } else { Some(r.i32 % r.i8 as i32 != 0) }),
        ("d / i8 < 1.5", |r| if r.i8 == 0 { None } else { Some(r.d / (r.i8 as f64) < 1.5) }),
        ("f * 2 >= d", |r| Some(r.f as f64 * 2.0 >= r.d)),
        ("-i8 > 3", |r| Some(-(r.i8 as i64) > 3)),
        ("-(i8 + 1) * -1 < 0", |r| Some((r.i8 as i64 + 1) < 0)),
        ("i16 / 0 == 1 or i8 > 0", |r| or3(None, Some(r.i8 > 0))),
        ("n + 1 > 5", |r| r.n.map(|x| x + 1 > 5)),
        ("n * i8 < 0", |r| r.n.map(|x| x * (r.i8 as i64) < 0)),
        ("i8 / 2 == -1", |r| Some(r.i8 / 2 == -1)),
        ("1 + 2 * 3 == i8", |r| Some(r.i8 == 7)),
        ("j['a'] * 2 > 10", |r| jnum(jget(&r.j, &["a"])).map(|x| x * 2.0 > 10.0)),
        ("j['a'] % 3 == 1", |r| jint(jget(&r.j, &["a"])).map(|x| x % 3 == 1)),
        ("j['a'] + i8 > 0", |r| jnum(jget(&r.j, &["a"])).map(|x| x + r.i8 as f64 > 0.0)),
        ("-j['a'] > 2", |r| jnum(jget(&r.j, &["a"])).map(|x| -x > 2.0)),
        // column vs column
        ("i8 < i16", |r| Some((r.i8 as i16) < r.i16)),
        ("f < d", |r| Some((r.f as f64) < r.d)),
        ("i32 == i64", |r| Some(r.i32 as i64 == r.i64)),
        ("s != ns", |r| r.ns.as_ref().map(|x| *x != r.s)),
        ("s >= ns", |r| r.ns.as_ref().map(|x| r.s >= *x)),
        ("i64 > n", |r| r.n.map(|x| r.i64 > x)),
        // JSON field
        ("j['a'] > 5", |r| jnum(jget(&r.j, &["a"])).map(|x| x > 5.0)),
        ("j['a'] == 3", |r| jnum(jget(&r.j, &["a"])).map(|x| x == 3.0)),
        ("j['a'] != 3", |r| jnum(jget(&r.j, &["a"])).map(|x| x != 3.0)),
        ("j['a'] == 'ab'", |r| jstr(jget(&r.j, &["a"])).map(|x| x == "ab")),
        ("j['a'] >= 'b'", |r| jstr(jget(&r.j, &["a"])).map(|x| x >= "b")),
        ("j['a'] == true", |r| jbool(jget(&r.j, &["a"]))),
        ("j['a'] == [1, 2]", |r| jget(&r.j, &["a"]).filter(|v| v.is_array()).map(|v| v == &json!([1, 2]))),
        ("j['a'] in [1, 2, 'ab']", |r| match jget(&r.j, &["a"]) {
            Some(Value::Number(x)) => Some(x.as_f64() == Some(1.0) || x.as_f64() == Some(2.0)),
            Some(Value::String(s)) => Some(s == "ab"),
            _ => None,
        }),
        ("j['a'] not in [1, 2]", |r| jnum(jget(&r.j, &["a"])).map(|x| x != 1.0 && x != 2.0)),
        ("j['a'] in []", |r| (!jnull(jget(&r.j, &["a"]))).then_some(false)),
        ("j['b']['c'] >= 2", |r| jint(jget(&r.j, &["b", "c"])).map(|x| x >= 2)),
        ("j['b']['d'][0] == 1", |r| jint(jget(&r.j, &["b", "d", "0"])).map(|x| x == 1)),
        ("j['b']['d'][1] == 'x'", |r| jstr(jget(&r.j, &["b", "d", "1"])).map(|x| x == "x")),
        ("j['flag']", |r| jbool(jget(&r.j, &["flag"]))),
        ("not j['flag']", |r| jbool(jget(&r.j, &["flag"])).map(|x| !x)),
        ("j['a'] is null", |r| Some(jnull(jget(&r.j, &["a"])))),
        ("j['a'] is not null", |r| Some(!jnull(jget(&r.j, &["a"])))),
        ("j is null", |r| Some(r.j.is_null())),
        ("exists j['a']", |r| Some(jget(&r.j, &["a"]).is_some())),
        ("exists j['b']['c'] and not exists j['flag']", |r| {
            Some(jget(&r.j, &["b", "c"]).is_some() && jget(&r.j, &["flag"]).is_none())
        }),
        ("i8 == j['a']", |r| jnum(jget(&r.j, &["a"])).map(|x| r.i8 as f64 == x)),
        ("json_contains(j['arr'], 1)", |r| jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 1.0))),
        ("JSON_CONTAINS(j['arr'], 'x')", |r| jarr(jget(&r.j, &["arr"])).map(|a| has_str(a, "x"))),
        ("json_contains_all(j['arr'], [1, 'x'])", |r| {
            jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 1.0) && has_str(a, "x"))
        }),
        ("json_contains_any(j['arr'], [3, 'y'])", |r| {
            jarr(jget(&r.j, &["arr"])).map(|a| has_num(a, 3.0) || has_str(a, "y"))
        }),
        ("array_contains_any(j['arr'], [])", |r| jarr(jget(&r.j, &["arr"])).map(|_| false)),
        ("array_contains_all(j['arr'], [])", |r| jarr(jget(&r.j, &["arr"])).map(|_| true)),
        ("not json_contains(j['arr'], 2)", |r| jarr(jget(&r.j, &["arr"])).map(|a| !has_num(a, 2.0))),
        ("array_length(j['arr']) >= 2", |r| jarr(jget(&r.j, &["arr"])).map(|a| a.len() >= 2)),
        // dynamic fields
        ("color == 'red'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x == "red")),
        ("$meta['color'] != 'red'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x != "red")),
        ("color like 'r%' or color like 'R%'", |r| jstr(jget(&r.meta, &["color"])).map(|x| x.starts_with(['r', 'R']))),
        ("size > 2", |r| jnum(jget(&r.meta, &["size"])).map(|x| x > 2.0)),
        ("size == 'big'", |r| jstr(jget(&r.meta, &["size"])).map(|x| x == "big")),
        ("size is null", |r| Some(jnull(jget(&r.meta, &["size"])))),
        ("color is not null and size in [1, 2]", |r| {
            and3(
                Some(!jnull(jget(&r.meta, &["color"]))),
                match jget(&r.meta, &["size"]) {
                    Some(Value::Number(x)) => Some(x.as_f64() == Some(1.0) || x.as_f64() == Some(2.0)),
                    Some(Value::String(_)) => None,
                    _ => None,
                },
            )
        }),
        ("json_contains(tags, 'a')", |r| jarr(jget(&r.meta, &["tags"])).map(|a| has_str(a, "a"))),
        ("tags[0] == 'b'", |r| jstr(jget(&r.meta, &["tags", "0"])).map(|x| x == "b")),
        ("undefined_key == 1", |_| None),
        ("undefined_key is null", |_| Some(true)),
        // logic
        ("i8 > 0 and i16 > 0 or i32 > 0", |r| Some(r.i8 > 0 && r.i16 > 0 || r.i32 > 0)),
        ("i8 > 0 and (i16 > 0 or i32 > 0)", |r| Some(r.i8 > 0 && (r.i16 > 0 || r.i32 > 0))),
        ("not i8 > 0 and b", |r| Some(r.i8 <= 0 && r.b)),
        ("not not b", |r| Some(r.b)),
        ("!(i8 > 0) || b && i16 < 0", |r| Some(r.i8 <= 0 || (r.b && r.i16 < 0))),
        ("true", |_| Some(true)),
        ("false or b", |r| Some(r.b)),
        ("1 == 1 and i8 > 0", |r| Some(r.i8 > 0)),
        ("'a' in ['a'] and b", |r| Some(r.b)),
        ("id in [0, 3, 6, 300]", |r| Some([0, 3, 6, 300].contains(&r.id))),
        ("id == 9 or id == 12", |r| Some(r.id == 9 || r.id == 12)),
    ]
}

/// Evaluates every case, its negation and pairs of cases over `count` random rows and
/// compares each row with the reference.
pub(super) fn check_against_reference(seed: u64, count: usize) {
    let schema = schema();
    let rows = random_rows(seed, count);
    let seg = segment(&rows, &schema);
    let cases = cases();
    let run = |expr: &str, want: &dyn Fn(&Row) -> Tv| {
        let plan = compile(expr, &schema, &no_params()).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got = plan.evaluate(&seg).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert_eq!(got.len(), rows.len());
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(got[i], want(r) == Some(true), "seed {seed}, `{expr}`, row {i}: {r:?}");
        }
        // Counting the whole bitset also checks that no bit past the last row is set.
        let matches = rows.iter().filter(|r| want(r) == Some(true)).count();
        assert_eq!(got.count_ones(..), matches, "seed {seed}, `{expr}`");
        assert_eq!(plan.count(&seg).expect("count"), matches);
        assert_eq!(plan.matching_rows(&seg).expect("rows"), got.ones().collect::<Vec<_>>());
    };
    for (expr, f) in &cases {
        run(expr, f);
        // The negation matches exactly the rows where the expression is false.
        run(&format!("not ({expr})"), &|r| not3(f(r)));
    }
    // Pairs, to exercise Kleene and/or over every kind of operand.
    for w in cases.windows(2) {
        let ((e1, f1), (e2, f2)) = (&w[0], &w[1]);
        run(&format!("({e1}) and ({e2})"), &|r| and3(f1(r), f2(r)));
        run(&format!("({e1}) or not ({e2})"), &|r| or3(f1(r), not3(f2(r))));
    }
}
