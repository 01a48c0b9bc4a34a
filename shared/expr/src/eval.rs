//! The vectorised evaluator.
//!
//! Predicates evaluate to a [`Tri`]: two bitmaps, the rows where the predicate is
//! definitely true and the rows where it is definitely false; the remaining rows are
//! unknown (SQL's three-valued logic). `and`/`or`/`not` are word-wise bitmap operations.
//! Comparisons of typed columns with constants, `in` sets, ranges and LIKE on VarChar run
//! as tight loops over the column slices, 64 rows per output word. Values of JSON paths
//! are looked up per row into [`Dyn`] values and compared dynamically.

use std::borrow::Cow;

use fv_common::FieldId;
use fv_storage::{Column, ColumnData};
use serde_json::Value;

use crate::ColumnSource;
use crate::ast::{ArithOp, CmpOp, PathElem};
use crate::error::ExprError;
use crate::like::LikePattern;
use crate::plan::{ColKind, ContainsMode, InSet, Lit, PExpr, Ty, VExpr};

// ---------------------------------------------------------------------------------------
// Bitmaps

/// A fixed-length bitmap; bits past `len` are always zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bitmap {
    words: Vec<u64>,
    len: usize,
}

impl Bitmap {
    pub(crate) fn zeros(len: usize) -> Bitmap {
        Bitmap { words: vec![0; len.div_ceil(64)], len }
    }

    pub(crate) fn ones(len: usize) -> Bitmap {
        let mut b = Bitmap { words: vec![u64::MAX; len.div_ceil(64)], len };
        b.mask_tail();
        b
    }

    fn mask_tail(&mut self) {
        let r = self.len % 64;
        if r != 0
            && let Some(w) = self.words.last_mut()
        {
            *w &= (1u64 << r) - 1;
        }
    }

    /// One bit per element of `data`. The inner loop over 64 elements has no branches,
    /// so the compiler can vectorise simple predicates.
    #[inline]
    pub(crate) fn from_slice<T>(data: &[T], f: impl Fn(&T) -> bool) -> Bitmap {
        let mut words = Vec::with_capacity(data.len().div_ceil(64));
        let mut chunks = data.chunks_exact(64);
        for ch in &mut chunks {
            let mut w = 0u64;
            for (j, x) in ch.iter().enumerate() {
                w |= u64::from(f(x)) << j;
            }
            words.push(w);
        }
        let rem = chunks.remainder();
        if !rem.is_empty() {
            let mut w = 0u64;
            for (j, x) in rem.iter().enumerate() {
                w |= u64::from(f(x)) << j;
            }
            words.push(w);
        }
        Bitmap { words, len: data.len() }
    }

    #[inline]
    fn from_pairs<A, B>(a: &[A], b: &[B], f: impl Fn(&A, &B) -> bool) -> Bitmap {
        let len = a.len().min(b.len());
        let mut words = Vec::with_capacity(len.div_ceil(64));
        for (ca, cb) in a[..len].chunks(64).zip(b[..len].chunks(64)) {
            let mut w = 0u64;
            for (j, (x, y)) in ca.iter().zip(cb).enumerate() {
                w |= u64::from(f(x, y)) << j;
            }
            words.push(w);
        }
        Bitmap { words, len }
    }

    fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> Bitmap {
        let mut words = vec![0u64; len.div_ceil(64)];
        for i in 0..len {
            words[i / 64] |= u64::from(f(i)) << (i % 64);
        }
        Bitmap { words, len }
    }

    pub(crate) fn from_bools(v: &[bool]) -> Bitmap {
        Bitmap::from_slice(v, |b| *b)
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        i < self.len && self.words[i / 64] >> (i % 64) & 1 == 1
    }

    fn zip(&self, o: &Bitmap, f: impl Fn(u64, u64) -> u64) -> Bitmap {
        let mut b = Bitmap { words: self.words.iter().zip(&o.words).map(|(x, y)| f(*x, *y)).collect(), len: self.len };
        b.mask_tail();
        b
    }

    pub(crate) fn and(&self, o: &Bitmap) -> Bitmap {
        self.zip(o, |x, y| x & y)
    }

    pub(crate) fn or(&self, o: &Bitmap) -> Bitmap {
        self.zip(o, |x, y| x | y)
    }

    /// `self & !o`
    pub(crate) fn and_not(&self, o: &Bitmap) -> Bitmap {
        self.zip(o, |x, y| x & !y)
    }

    pub(crate) fn not(&self) -> Bitmap {
        let mut b = Bitmap { words: self.words.iter().map(|w| !w).collect(), len: self.len };
        b.mask_tail();
        b
    }

    pub(crate) fn is_full(&self) -> bool {
        self.count_ones() == self.len
    }

    pub(crate) fn count_ones(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub(crate) fn to_bools(&self) -> Vec<bool> {
        (0..self.len).map(|i| self.get(i)).collect()
    }
}

/// `a & b` where `None` means all ones.
fn and_valid(a: Option<&Bitmap>, b: Option<&Bitmap>) -> Option<Bitmap> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => Some(x.and(y)),
    }
}

/// The result of a predicate: rows definitely true (`t`), definitely false (`f`); the
/// rest are unknown. `t` and `f` never overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tri {
    pub t: Bitmap,
    pub f: Bitmap,
}

impl Tri {
    pub(crate) fn constant(b: bool, n: usize) -> Tri {
        if b {
            Tri { t: Bitmap::ones(n), f: Bitmap::zeros(n) }
        } else {
            Tri { t: Bitmap::zeros(n), f: Bitmap::ones(n) }
        }
    }

    pub(crate) fn unknown(n: usize) -> Tri {
        Tri { t: Bitmap::zeros(n), f: Bitmap::zeros(n) }
    }

    fn of_opt(v: Option<bool>, n: usize) -> Tri {
        v.map_or_else(|| Tri::unknown(n), |b| Tri::constant(b, n))
    }

    /// A raw truth bitmap restricted to the valid rows (others unknown).
    fn from_raw(raw: Bitmap, valid: Option<&Bitmap>) -> Tri {
        match valid {
            None => Tri { f: raw.not(), t: raw },
            Some(v) => Tri { t: raw.and(v), f: v.and_not(&raw) },
        }
    }

    /// Known, never-unknown rows.
    fn from_known(t: Bitmap) -> Tri {
        Tri { f: t.not(), t }
    }

    fn from_opt(n: usize, mut f: impl FnMut(usize) -> Option<bool>) -> Tri {
        let mut t = vec![0u64; n.div_ceil(64)];
        let mut fw = vec![0u64; n.div_ceil(64)];
        for i in 0..n {
            match f(i) {
                Some(true) => t[i / 64] |= 1 << (i % 64),
                Some(false) => fw[i / 64] |= 1 << (i % 64),
                None => {}
            }
        }
        Tri { t: Bitmap { words: t, len: n }, f: Bitmap { words: fw, len: n } }
    }

    pub(crate) fn and(&self, o: &Tri) -> Tri {
        Tri { t: self.t.and(&o.t), f: self.f.or(&o.f) }
    }

    pub(crate) fn or(&self, o: &Tri) -> Tri {
        Tri { t: self.t.or(&o.t), f: self.f.and(&o.f) }
    }

    pub(crate) fn not(self) -> Tri {
        Tri { t: self.f, f: self.t }
    }
}

// ---------------------------------------------------------------------------------------
// Dynamic values

/// One row's value where its type is only known at run time (JSON paths and anything
/// computed from them), or a typed value taken out of a column for a generic comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Dyn<'a> {
    /// The JSON path does not exist in the row (or the column is absent).
    Missing,
    /// A null row of a nullable field, JSON null, or a null computed value.
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// A JSON array or object.
    Json(&'a Value),
    /// An array literal.
    Arr(&'a [Lit]),
}

impl<'a> Dyn<'a> {
    pub(crate) fn of_json(v: &'a Value) -> Dyn<'a> {
        match v {
            Value::Null => Dyn::Null,
            Value::Bool(b) => Dyn::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Dyn::Int(i),
                None => n.as_f64().map_or(Dyn::Null, Dyn::Float),
            },
            Value::String(s) => Dyn::Str(s),
            Value::Array(_) | Value::Object(_) => Dyn::Json(v),
        }
    }

    pub(crate) fn of_lit(l: &'a Lit) -> Dyn<'a> {
        match l {
            Lit::Bool(b) => Dyn::Bool(*b),
            Lit::Int(i) => Dyn::Int(*i),
            Lit::Float(f) => Dyn::Float(*f),
            Lit::Str(s) => Dyn::Str(s),
            Lit::Array(a) => Dyn::Arr(a),
        }
    }

    fn is_null(self) -> bool {
        matches!(self, Dyn::Missing | Dyn::Null)
    }
}

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

enum ArrRef<'a> {
    J(&'a [Value]),
    L(&'a [Lit]),
}

impl<'a> ArrRef<'a> {
    fn of(d: Dyn<'a>) -> Option<ArrRef<'a>> {
        match d {
            Dyn::Json(Value::Array(a)) => Some(ArrRef::J(a)),
            Dyn::Arr(a) => Some(ArrRef::L(a)),
            _ => None,
        }
    }
    fn len(&self) -> usize {
        match self {
            ArrRef::J(a) => a.len(),
            ArrRef::L(a) => a.len(),
        }
    }
    fn get(&self, i: usize) -> Dyn<'a> {
        match self {
            ArrRef::J(a) => a.get(i).map_or(Dyn::Missing, Dyn::of_json),
            ArrRef::L(a) => a.get(i).map_or(Dyn::Missing, Dyn::of_lit),
        }
    }
}

#[inline]
fn apply<T: PartialOrd>(x: T, op: CmpOp, y: T) -> bool {
    match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
    }
}

/// Equality of two dynamic values: `None` when either is null or the types are not
/// comparable (numbers compare with numbers, strings with strings, booleans with
/// booleans, arrays element-wise with arrays).
pub(crate) fn dyn_eq(a: Dyn<'_>, b: Dyn<'_>) -> Option<bool> {
    dyn_cmp(a, CmpOp::Eq, b)
}

/// A comparison of two dynamic values; `None` (unknown) when either is null or the
/// types cannot be compared with `op`.
pub(crate) fn dyn_cmp(a: Dyn<'_>, op: CmpOp, b: Dyn<'_>) -> Option<bool> {
    Some(match (a, b) {
        (Dyn::Missing | Dyn::Null, _) | (_, Dyn::Missing | Dyn::Null) => return None,
        (Dyn::Int(x), Dyn::Int(y)) => apply(x, op, y),
        (Dyn::Int(x), Dyn::Float(y)) => apply(x as f64, op, y),
        (Dyn::Float(x), Dyn::Int(y)) => apply(x, op, y as f64),
        (Dyn::Float(x), Dyn::Float(y)) => apply(x, op, y),
        (Dyn::Str(x), Dyn::Str(y)) => apply(x, op, y),
        (Dyn::Bool(x), Dyn::Bool(y)) if !op.is_ordering() => apply(x, op, y),
        (x, y) if !op.is_ordering() => {
            let eq = if let (Some(p), Some(q)) = (ArrRef::of(x), ArrRef::of(y)) {
                p.len() == q.len() && (0..p.len()).all(|i| dyn_eq(p.get(i), q.get(i)) == Some(true))
            } else if let (Dyn::Json(p @ Value::Object(_)), Dyn::Json(q @ Value::Object(_))) = (x, y) {
                p == q
            } else {
                return None;
            };
            eq == (op == CmpOp::Eq)
        }
        _ => return None,
    })
}

pub(crate) fn lit_cmp(a: &Lit, op: CmpOp, b: &Lit) -> Option<bool> {
    dyn_cmp(Dyn::of_lit(a), op, Dyn::of_lit(b))
}

pub(crate) fn lit_eq(a: &Lit, b: &Lit) -> bool {
    lit_cmp(a, CmpOp::Eq, b) == Some(true)
}

pub(crate) fn lit_f64(l: &Lit) -> Option<f64> {
    match l {
        Lit::Int(i) => Some(*i as f64),
        Lit::Float(f) => Some(*f),
        _ => None,
    }
}

/// `v in list` for a dynamic value: unknown for null, true on a match, false when some
/// element was comparable (or the list is empty), unknown when none was.
fn dyn_in(v: Dyn<'_>, list: &[Lit]) -> Option<bool> {
    if v.is_null() {
        return None;
    }
    let mut comparable = list.is_empty();
    for l in list {
        match dyn_eq(v, Dyn::of_lit(l)) {
            Some(true) => return Some(true),
            Some(false) => comparable = true,
            None => {}
        }
    }
    comparable.then_some(false)
}

fn int_arith(op: ArithOp, x: i64, y: i64) -> Option<i64> {
    Some(match op {
        ArithOp::Add => x.wrapping_add(y),
        ArithOp::Sub => x.wrapping_sub(y),
        ArithOp::Mul => x.wrapping_mul(y),
        ArithOp::Div if y != 0 => x.wrapping_div(y),
        ArithOp::Mod if y != 0 => x.wrapping_rem(y),
        _ => return None,
    })
}

fn float_arith(op: ArithOp, x: f64, y: f64) -> Option<f64> {
    Some(match op {
        ArithOp::Add => x + y,
        ArithOp::Sub => x - y,
        ArithOp::Mul => x * y,
        ArithOp::Div if y != 0.0 => x / y,
        _ => return None,
    })
}

fn dyn_arith<'a>(op: ArithOp, a: Dyn<'_>, b: Dyn<'_>) -> Dyn<'a> {
    match (a, b) {
        (Dyn::Int(x), Dyn::Int(y)) => int_arith(op, x, y).map_or(Dyn::Null, Dyn::Int),
        (Dyn::Int(_) | Dyn::Float(_), Dyn::Int(_) | Dyn::Float(_)) => {
            let f = |d| match d {
                Dyn::Int(i) => i as f64,
                Dyn::Float(f) => f,
                _ => 0.0,
            };
            float_arith(op, f(a), f(b)).map_or(Dyn::Null, Dyn::Float)
        }
        _ => Dyn::Null,
    }
}

// ---------------------------------------------------------------------------------------
// Values

/// The values of a [`VExpr`] over all rows.
enum Vals<'a> {
    /// Every row is null (the column is absent from the data).
    Null,
    Lit(&'a Lit),
    Col {
        data: &'a ColumnData,
        valid: Option<Bitmap>,
    },
    Int {
        data: Vec<i64>,
        valid: Option<Bitmap>,
    },
    Float {
        data: Vec<f64>,
        valid: Option<Bitmap>,
    },
    Dyn(Vec<Dyn<'a>>),
}

impl Vals<'_> {
    fn dyn_at(&self, i: usize) -> Dyn<'_> {
        let valid = |v: &Option<Bitmap>| v.as_ref().is_none_or(|b| b.get(i));
        match self {
            Vals::Null => Dyn::Missing,
            Vals::Lit(l) => Dyn::of_lit(l),
            Vals::Col { data, valid: v } => {
                if !valid(v) {
                    return Dyn::Null;
                }
                let d = match data {
                    ColumnData::Bool(s) => s.get(i).map(|x| Dyn::Bool(*x)),
                    ColumnData::Int8(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int16(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int32(s) => s.get(i).map(|x| Dyn::Int(i64::from(*x))),
                    ColumnData::Int64(s) => s.get(i).map(|x| Dyn::Int(*x)),
                    ColumnData::Float(s) => s.get(i).map(|x| Dyn::Float(f64::from(*x))),
                    ColumnData::Double(s) => s.get(i).map(|x| Dyn::Float(*x)),
                    ColumnData::VarChar(s) => s.get(i).map(|x| Dyn::Str(x)),
                    ColumnData::Json(s) => s.get(i).map(Dyn::of_json),
                    ColumnData::FloatVector { .. } => None,
                };
                d.unwrap_or(Dyn::Missing)
            }
            Vals::Int { data, valid: v } => match data.get(i) {
                Some(x) if valid(v) => Dyn::Int(*x),
                _ => Dyn::Null,
            },
            Vals::Float { data, valid: v } => match data.get(i) {
                Some(x) if valid(v) => Dyn::Float(*x),
                _ => Dyn::Null,
            },
            Vals::Dyn(d) => d.get(i).copied().unwrap_or(Dyn::Missing),
        }
    }
}

/// A numeric operand of a vectorised operation.
enum Num<'a> {
    I(Cow<'a, [i64]>),
    F(Cow<'a, [f64]>),
    ScalarI(i64),
    ScalarF(f64),
}

impl Num<'_> {
    fn is_int(&self) -> bool {
        matches!(self, Num::I(_) | Num::ScalarI(_))
    }
    fn to_f(&self) -> Num<'_> {
        match self {
            Num::I(v) => Num::F(Cow::Owned(v.iter().map(|x| *x as f64).collect())),
            Num::ScalarI(x) => Num::ScalarF(*x as f64),
            Num::F(v) => Num::F(Cow::Borrowed(v)),
            Num::ScalarF(x) => Num::ScalarF(*x),
        }
    }
}

/// The numeric view of typed values (None for strings, booleans, dynamic values).
fn num_of<'v>(v: &'v Vals<'_>) -> Option<(Num<'v>, Option<&'v Bitmap>)> {
    Some(match v {
        Vals::Lit(Lit::Int(i)) => (Num::ScalarI(*i), None),
        Vals::Lit(Lit::Float(f)) => (Num::ScalarF(*f), None),
        Vals::Col { data, valid } => {
            let n = match data {
                ColumnData::Int8(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int16(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int32(s) => Num::I(Cow::Owned(s.iter().map(|x| i64::from(*x)).collect())),
                ColumnData::Int64(s) => Num::I(Cow::Borrowed(s)),
                ColumnData::Float(s) => Num::F(Cow::Owned(s.iter().map(|x| f64::from(*x)).collect())),
                ColumnData::Double(s) => Num::F(Cow::Borrowed(s)),
                _ => return None,
            };
            (n, valid.as_ref())
        }
        Vals::Int { data, valid } => (Num::I(Cow::Borrowed(data)), valid.as_ref()),
        Vals::Float { data, valid } => (Num::F(Cow::Borrowed(data)), valid.as_ref()),
        _ => return None,
    })
}

#[inline]
fn zip_map<T: Copy>(a: NumRef<'_, T>, b: NumRef<'_, T>, n: usize, f: impl Fn(T, T) -> T) -> Vec<T> {
    match (a, b) {
        (NumRef::Scalar(x), NumRef::Scalar(y)) => vec![f(x, y); n],
        (NumRef::Slice(x), NumRef::Scalar(y)) => x.iter().map(|v| f(*v, y)).collect(),
        (NumRef::Scalar(x), NumRef::Slice(y)) => y.iter().map(|v| f(x, *v)).collect(),
        (NumRef::Slice(x), NumRef::Slice(y)) => x.iter().zip(y.iter()).map(|(p, q)| f(*p, *q)).collect(),
    }
}

enum NumRef<'a, T> {
    Scalar(T),
    Slice(&'a [T]),
}

fn ints<'a>(n: &'a Num<'_>) -> NumRef<'a, i64> {
    match n {
        Num::I(v) => NumRef::Slice(v),
        Num::ScalarI(x) => NumRef::Scalar(*x),
        _ => NumRef::Scalar(0),
    }
}

fn floats<'a>(n: &'a Num<'_>) -> NumRef<'a, f64> {
    match n {
        Num::F(v) => NumRef::Slice(v),
        Num::ScalarF(x) => NumRef::Scalar(*x),
        _ => NumRef::Scalar(0.0),
    }
}

/// The rows where a divisor is not zero.
fn nonzero(b: &Num<'_>, n: usize) -> Option<Bitmap> {
    match b {
        Num::I(v) => Some(Bitmap::from_slice(v, |x| *x != 0)),
        Num::F(v) => Some(Bitmap::from_slice(v, |x| *x != 0.0)),
        Num::ScalarI(0) => Some(Bitmap::zeros(n)),
        Num::ScalarF(x) if *x == 0.0 => Some(Bitmap::zeros(n)),
        _ => None,
    }
}

fn arith_vals<'a>(op: ArithOp, l: &Vals<'a>, r: &Vals<'a>, ty: Ty, n: usize) -> Vals<'a> {
    if let (Ty::Int | Ty::Float, Some((a, va)), Some((b, vb))) = (ty, num_of(l), num_of(r)) {
        let mut valid = and_valid(va, vb);
        if matches!(op, ArithOp::Div | ArithOp::Mod)
            && let Some(nz) = nonzero(&b, n)
        {
            valid = Some(valid.map_or_else(|| nz.clone(), |v| v.and(&nz)));
        }
        if a.is_int() && b.is_int() {
            let data = match op {
                ArithOp::Add => zip_map(ints(&a), ints(&b), n, i64::wrapping_add),
                ArithOp::Sub => zip_map(ints(&a), ints(&b), n, i64::wrapping_sub),
                ArithOp::Mul => zip_map(ints(&a), ints(&b), n, i64::wrapping_mul),
                ArithOp::Div => zip_map(ints(&a), ints(&b), n, |x, y| if y == 0 { 0 } else { x.wrapping_div(y) }),
                ArithOp::Mod => zip_map(ints(&a), ints(&b), n, |x, y| if y == 0 { 0 } else { x.wrapping_rem(y) }),
            };
            return Vals::Int { data, valid };
        }
        let (a, b) = (a.to_f(), b.to_f());
        let data = match op {
            ArithOp::Add => zip_map(floats(&a), floats(&b), n, |x, y| x + y),
            ArithOp::Sub => zip_map(floats(&a), floats(&b), n, |x, y| x - y),
            ArithOp::Mul => zip_map(floats(&a), floats(&b), n, |x, y| x * y),
            ArithOp::Div => zip_map(floats(&a), floats(&b), n, |x, y| if y == 0.0 { 0.0 } else { x / y }),
            ArithOp::Mod => zip_map(floats(&a), floats(&b), n, |x, y| if y == 0.0 { 0.0 } else { x % y }),
        };
        return Vals::Float { data, valid };
    }
    if matches!(l, Vals::Null) || matches!(r, Vals::Null) {
        return Vals::Null;
    }
    Vals::Dyn((0..n).map(|i| dyn_arith(op, l.dyn_at(i), r.dyn_at(i))).collect())
}

fn neg_vals<'a>(v: &Vals<'a>, n: usize) -> Vals<'a> {
    match num_of(v) {
        Some((Num::I(d), valid)) => {
            Vals::Int { data: d.iter().map(|x| x.wrapping_neg()).collect(), valid: valid.cloned() }
        }
        Some((Num::F(d), valid)) => Vals::Float { data: d.iter().map(|x| -x).collect(), valid: valid.cloned() },
        Some((Num::ScalarI(x), _)) => Vals::Int { data: vec![x.wrapping_neg(); n], valid: None },
        Some((Num::ScalarF(x), _)) => Vals::Float { data: vec![-x; n], valid: None },
        None if matches!(v, Vals::Null) => Vals::Null,
        None => Vals::Dyn(
            (0..n)
                .map(|i| match v.dyn_at(i) {
                    Dyn::Int(x) => Dyn::Int(x.wrapping_neg()),
                    Dyn::Float(x) => Dyn::Float(-x),
                    _ => Dyn::Null,
                })
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Comparisons

/// `data[i] op c` for every row, with the operator chosen outside the loop.
#[inline]
fn cmp_scalar<T, U: PartialOrd + Copy>(data: &[T], conv: impl Fn(&T) -> U, op: CmpOp, c: U) -> Bitmap {
    match op {
        CmpOp::Eq => Bitmap::from_slice(data, |x| conv(x) == c),
        CmpOp::Ne => Bitmap::from_slice(data, |x| conv(x) != c),
        CmpOp::Lt => Bitmap::from_slice(data, |x| conv(x) < c),
        CmpOp::Le => Bitmap::from_slice(data, |x| conv(x) <= c),
        CmpOp::Gt => Bitmap::from_slice(data, |x| conv(x) > c),
        CmpOp::Ge => Bitmap::from_slice(data, |x| conv(x) >= c),
    }
}

#[inline]
fn cmp_pairs<T: PartialOrd>(a: &[T], op: CmpOp, b: &[T]) -> Bitmap {
    match op {
        CmpOp::Eq => Bitmap::from_pairs(a, b, |x, y| x == y),
        CmpOp::Ne => Bitmap::from_pairs(a, b, |x, y| x != y),
        CmpOp::Lt => Bitmap::from_pairs(a, b, |x, y| x < y),
        CmpOp::Le => Bitmap::from_pairs(a, b, |x, y| x <= y),
        CmpOp::Gt => Bitmap::from_pairs(a, b, |x, y| x > y),
        CmpOp::Ge => Bitmap::from_pairs(a, b, |x, y| x >= y),
    }
}

fn cmp_str(data: &[String], op: CmpOp, c: &str) -> Bitmap {
    match op {
        CmpOp::Eq => Bitmap::from_slice(data, |x| x == c),
        CmpOp::Ne => Bitmap::from_slice(data, |x| x != c),
        CmpOp::Lt => Bitmap::from_slice(data, |x| x.as_str() < c),
        CmpOp::Le => Bitmap::from_slice(data, |x| x.as_str() <= c),
        CmpOp::Gt => Bitmap::from_slice(data, |x| x.as_str() > c),
        CmpOp::Ge => Bitmap::from_slice(data, |x| x.as_str() >= c),
    }
}

/// The typed fast path of `column op constant`; None when the combination has none.
fn cmp_col_lit(data: &ColumnData, op: CmpOp, c: &Lit) -> Option<Bitmap> {
    Some(match (data, c) {
        (ColumnData::Int8(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int16(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int32(s), Lit::Int(k)) => cmp_scalar(s, |x| i64::from(*x), op, *k),
        (ColumnData::Int64(s), Lit::Int(k)) => cmp_scalar(s, |x| *x, op, *k),
        (ColumnData::Int8(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int16(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int32(s), Lit::Float(k)) => cmp_scalar(s, |x| f64::from(*x), op, *k),
        (ColumnData::Int64(s), Lit::Float(k)) => cmp_scalar(s, |x| *x as f64, op, *k),
        (ColumnData::Float(s), _) => cmp_scalar(s, |x| f64::from(*x), op, lit_f64(c)?),
        (ColumnData::Double(s), _) => cmp_scalar(s, |x| *x, op, lit_f64(c)?),
        (ColumnData::VarChar(s), Lit::Str(k)) => cmp_str(s, op, k),
        (ColumnData::Bool(s), Lit::Bool(k)) if !op.is_ordering() => cmp_scalar(s, |x| *x, op, *k),
        _ => return None,
    })
}

fn compare_lit(v: &Vals<'_>, op: CmpOp, c: &Lit, n: usize) -> Tri {
    let fast = match v {
        Vals::Null => return Tri::unknown(n),
        Vals::Lit(x) => return Tri::of_opt(lit_cmp(x, op, c), n),
        Vals::Col { data, valid } => cmp_col_lit(data, op, c).map(|b| (b, valid.as_ref())),
        Vals::Int { data, valid } => match c {
            Lit::Int(k) => Some((cmp_scalar(data, |x| *x, op, *k), valid.as_ref())),
            Lit::Float(k) => Some((cmp_scalar(data, |x| *x as f64, op, *k), valid.as_ref())),
            _ => None,
        },
        Vals::Float { data, valid } => lit_f64(c).map(|k| (cmp_scalar(data, |x| *x, op, k), valid.as_ref())),
        Vals::Dyn(d) => {
            let k = Dyn::of_lit(c);
            return Tri::from_opt(n, |i| dyn_cmp(d[i], op, k));
        }
    };
    match fast {
        Some((raw, valid)) => Tri::from_raw(raw, valid),
        None => {
            let k = Dyn::of_lit(c);
            Tri::from_opt(n, |i| dyn_cmp(v.dyn_at(i), op, k))
        }
    }
}

fn compare(l: &Vals<'_>, op: CmpOp, r: &Vals<'_>, n: usize) -> Tri {
    match (l, r) {
        (Vals::Null, _) | (_, Vals::Null) => return Tri::unknown(n),
        (_, Vals::Lit(c)) => return compare_lit(l, op, c, n),
        (Vals::Lit(c), _) => return compare_lit(r, op.flip(), c, n),
        _ => {}
    }
    if let (Some((a, va)), Some((b, vb))) = (num_of(l), num_of(r)) {
        let valid = and_valid(va, vb);
        let raw = match (&a, &b) {
            (Num::I(x), Num::I(y)) => cmp_pairs(x, op, y),
            _ => match (a.to_f(), b.to_f()) {
                (Num::F(x), Num::F(y)) => cmp_pairs(&x, op, &y),
                _ => return Tri::from_opt(n, |i| dyn_cmp(l.dyn_at(i), op, r.dyn_at(i))),
            },
        };
        return Tri::from_raw(raw, valid.as_ref());
    }
    if let (
        Vals::Col { data: ColumnData::VarChar(a), valid: va },
        Vals::Col { data: ColumnData::VarChar(b), valid: vb },
    ) = (l, r)
    {
        let valid = and_valid(va.as_ref(), vb.as_ref());
        return Tri::from_raw(cmp_pairs(a, op, b), valid.as_ref());
    }
    Tri::from_opt(n, |i| dyn_cmp(l.dyn_at(i), op, r.dyn_at(i)))
}

#[inline]
fn has_float(set: &[f64], x: f64) -> bool {
    if set.len() <= 16 { set.contains(&x) } else { set.binary_search_by(|y| y.total_cmp(&(x + 0.0))).is_ok() }
}

fn eval_in(v: &Vals<'_>, set: &InSet, list: &[Lit], n: usize) -> Tri {
    let fast = match (v, set) {
        (Vals::Null, _) => return Tri::unknown(n),
        (Vals::Col { data, valid }, _) => {
            let raw = match (data, set) {
                (ColumnData::Int8(s), InSet::Ints(k)) => Some(Bitmap::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int16(s), InSet::Ints(k)) => Some(Bitmap::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int32(s), InSet::Ints(k)) => Some(Bitmap::from_slice(s, |x| k.contains(i64::from(*x)))),
                (ColumnData::Int64(s), InSet::Ints(k)) => Some(Bitmap::from_slice(s, |x| k.contains(*x))),
                (ColumnData::Float(s), InSet::Floats(k)) => {
                    Some(Bitmap::from_slice(s, |x| has_float(k, f64::from(*x))))
                }
                (ColumnData::Double(s), InSet::Floats(k)) => Some(Bitmap::from_slice(s, |x| has_float(k, *x))),
                (ColumnData::VarChar(s), InSet::Strs(k)) => Some(Bitmap::from_slice(s, |x| k.contains(x.as_str()))),
                (ColumnData::Bool(s), InSet::Bools { has_true, has_false }) => {
                    Some(Bitmap::from_slice(s, |x| if *x { *has_true } else { *has_false }))
                }
                _ => None,
            };
            raw.map(|r| (r, valid.as_ref()))
        }
        (Vals::Int { data, valid }, InSet::Ints(k)) => {
            Some((Bitmap::from_slice(data, |x| k.contains(*x)), valid.as_ref()))
        }
        (Vals::Float { data, valid }, InSet::Floats(k)) => {
            Some((Bitmap::from_slice(data, |x| has_float(k, *x)), valid.as_ref()))
        }
        _ => None,
    };
    match fast {
        Some((raw, valid)) => Tri::from_raw(raw, valid),
        None => Tri::from_opt(n, |i| dyn_in(v.dyn_at(i), list)),
    }
}

fn eval_like(v: &Vals<'_>, pattern: &LikePattern, n: usize) -> Tri {
    if let Vals::Col { data: ColumnData::VarChar(s), valid } = v {
        let raw = match pattern {
            LikePattern::Exact(p) => Bitmap::from_slice(s, |x| x == p),
            LikePattern::Prefix(p) => Bitmap::from_slice(s, |x| x.as_bytes().starts_with(p.as_bytes())),
            LikePattern::Suffix(p) => Bitmap::from_slice(s, |x| x.as_bytes().ends_with(p.as_bytes())),
            LikePattern::Infix(p) => Bitmap::from_slice(s, |x| x.contains(p.as_str())),
            LikePattern::General(_) => Bitmap::from_slice(s, |x| pattern.matches(x)),
        };
        return Tri::from_raw(raw, valid.as_ref());
    }
    Tri::from_opt(n, |i| match v.dyn_at(i) {
        Dyn::Str(s) => Some(pattern.matches(s)),
        _ => None,
    })
}

fn eval_is_null(v: &Vals<'_>, n: usize) -> Bitmap {
    match v {
        Vals::Null => Bitmap::ones(n),
        Vals::Col { valid, .. } | Vals::Int { valid, .. } | Vals::Float { valid, .. } => {
            valid.as_ref().map_or_else(|| Bitmap::zeros(n), Bitmap::not)
        }
        Vals::Lit(_) => Bitmap::zeros(n),
        Vals::Dyn(d) => Bitmap::from_slice(d, |x| x.is_null()),
    }
}

fn contains_row(arr: &[Value], mode: ContainsMode, items: &[Lit]) -> bool {
    let has = |l: &Lit| {
        let k = Dyn::of_lit(l);
        arr.iter().any(|e| dyn_eq(Dyn::of_json(e), k) == Some(true))
    };
    match mode {
        ContainsMode::One | ContainsMode::Any => items.iter().any(has),
        ContainsMode::All => items.iter().all(has),
    }
}

// ---------------------------------------------------------------------------------------
// Tree evaluation

fn column(src: &dyn ColumnSource, field: FieldId, n: usize) -> Result<Option<&Column>, ExprError> {
    let Some(c) = src.column(field) else {
        return Ok(None);
    };
    if c.len() != n {
        return Err(ExprError::eval(format!("column of field {field} has {} rows, expected {n}", c.len())));
    }
    if let Some(v) = &c.valid
        && v.len() != n
    {
        return Err(ExprError::eval(format!("column of field {field} has {} validity flags, expected {n}", v.len())));
    }
    Ok(Some(c))
}

fn kind_matches(kind: ColKind, data: &ColumnData) -> bool {
    matches!(
        (kind, data),
        (ColKind::Bool, ColumnData::Bool(_))
            | (ColKind::Int8, ColumnData::Int8(_))
            | (ColKind::Int16, ColumnData::Int16(_))
            | (ColKind::Int32, ColumnData::Int32(_))
            | (ColKind::Int64, ColumnData::Int64(_))
            | (ColKind::Float, ColumnData::Float(_))
            | (ColKind::Double, ColumnData::Double(_))
            | (ColKind::VarChar, ColumnData::VarChar(_))
    )
}

fn eval_value<'a>(v: &'a VExpr, src: &'a dyn ColumnSource, n: usize) -> Result<Vals<'a>, ExprError> {
    Ok(match v {
        VExpr::Lit(l) => Vals::Lit(l),
        VExpr::Column { field, kind } => match column(src, *field, n)? {
            None => Vals::Null,
            Some(c) => {
                if !kind_matches(*kind, &c.data) {
                    return Err(ExprError::eval(format!(
                        "column of field {field} holds {} data, the filter expects {kind:?}",
                        c.data.data_type().as_str_name()
                    )));
                }
                Vals::Col { data: &c.data, valid: c.valid.as_deref().map(Bitmap::from_bools) }
            }
        },
        VExpr::Json { field, path } => match column(src, *field, n)? {
            None => Vals::Null,
            Some(c) => {
                let ColumnData::Json(rows) = &c.data else {
                    return Err(ExprError::eval(format!(
                        "column of field {field} holds {} data, the filter expects JSON",
                        c.data.data_type().as_str_name()
                    )));
                };
                let d = rows
                    .iter()
                    .enumerate()
                    .map(|(i, row)| {
                        if !c.is_valid(i) {
                            return Dyn::Missing;
                        }
                        resolve(row, path).map_or(Dyn::Missing, Dyn::of_json)
                    })
                    .collect();
                Vals::Dyn(d)
            }
        },
        VExpr::Arith { op, lhs, rhs, ty } => {
            let l = eval_value(lhs, src, n)?;
            let r = eval_value(rhs, src, n)?;
            arith_vals(*op, &l, &r, *ty, n)
        }
        VExpr::Neg { expr, .. } => neg_vals(&eval_value(expr, src, n)?, n),
        VExpr::ArrayLength(inner) => {
            let x = eval_value(inner, src, n)?;
            Vals::Dyn(
                (0..n)
                    .map(|i| match x.dyn_at(i) {
                        Dyn::Json(Value::Array(a)) => Dyn::Int(a.len() as i64),
                        _ => Dyn::Null,
                    })
                    .collect(),
            )
        }
    })
}

pub(crate) fn eval_pred(p: &PExpr, src: &dyn ColumnSource, n: usize) -> Result<Tri, ExprError> {
    Ok(match p {
        PExpr::Const(b) => Tri::constant(*b, n),
        PExpr::And(items) => {
            let mut acc = Tri::constant(true, n);
            for it in items {
                acc = acc.and(&eval_pred(it, src, n)?);
                if acc.f.is_full() {
                    break;
                }
            }
            acc
        }
        PExpr::Or(items) => {
            let mut acc = Tri::constant(false, n);
            for it in items {
                acc = acc.or(&eval_pred(it, src, n)?);
                if acc.t.is_full() {
                    break;
                }
            }
            acc
        }
        PExpr::Not(x) => eval_pred(x, src, n)?.not(),
        PExpr::Cmp { lhs, op, rhs } => {
            let l = eval_value(lhs, src, n)?;
            let r = eval_value(rhs, src, n)?;
            compare(&l, *op, &r, n)
        }
        PExpr::Range { value, lower, upper } => {
            let v = eval_value(value, src, n)?;
            compare_lit(&v, lower.0, &lower.1, n).and(&compare_lit(&v, upper.0, &upper.1, n))
        }
        PExpr::In { value, list, set, negated } => {
            let t = eval_in(&eval_value(value, src, n)?, set, list, n);
            if *negated { t.not() } else { t }
        }
        PExpr::Like { value, pattern } => eval_like(&eval_value(value, src, n)?, pattern, n),
        PExpr::IsNull { value, negated } => {
            let t = Tri::from_known(eval_is_null(&eval_value(value, src, n)?, n));
            if *negated { t.not() } else { t }
        }
        PExpr::Truthy(value) => {
            let v = eval_value(value, src, n)?;
            match &v {
                Vals::Col { data: ColumnData::Bool(s), valid } => Tri::from_raw(Bitmap::from_bools(s), valid.as_ref()),
                _ => Tri::from_opt(n, |i| match v.dyn_at(i) {
                    Dyn::Bool(b) => Some(b),
                    _ => None,
                }),
            }
        }
        PExpr::Contains { value, mode, items } => {
            let v = eval_value(value, src, n)?;
            Tri::from_opt(n, |i| match v.dyn_at(i) {
                Dyn::Json(Value::Array(a)) => Some(contains_row(a, *mode, items)),
                _ => None,
            })
        }
        PExpr::Exists(value) => {
            let v = eval_value(value, src, n)?;
            Tri::from_known(Bitmap::from_fn(n, |i| v.dyn_at(i) != Dyn::Missing))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmap_basics() {
        let b = Bitmap::from_bools(&[true, false, true]);
        assert_eq!(b.to_bools(), vec![true, false, true]);
        assert_eq!(b.not().to_bools(), vec![false, true, false]);
        assert_eq!(b.not().count_ones(), 1);
        for n in [0, 1, 63, 64, 65, 130] {
            assert_eq!(Bitmap::ones(n).count_ones(), n);
            assert!(Bitmap::ones(n).is_full());
            assert_eq!(Bitmap::zeros(n).not().count_ones(), n);
            let v: Vec<i32> = (0..n as i32).collect();
            let odd = Bitmap::from_slice(&v, |x| x % 2 == 1);
            assert_eq!(odd.count_ones(), n / 2);
            assert_eq!(odd.to_bools(), (0..n).map(|i| i % 2 == 1).collect::<Vec<_>>());
            assert_eq!(Bitmap::from_fn(n, |i| i % 2 == 1), odd);
            assert_eq!(Bitmap::from_pairs(&v, &v, |a, b| a == b && a % 2 == 1), odd);
        }
    }

    #[test]
    fn kleene_logic() {
        // rows: true, false, unknown
        let a = Tri { t: Bitmap::from_bools(&[true, false, false]), f: Bitmap::from_bools(&[false, true, false]) };
        let all = |v: bool| Tri::constant(v, 3);
        assert_eq!(a.and(&all(false)), all(false));
        assert_eq!(a.or(&all(true)), all(true));
        assert_eq!(a.and(&all(true)), a);
        assert_eq!(a.or(&all(false)), a);
        let n = a.clone().not();
        assert_eq!(n.t.to_bools(), vec![false, true, false]);
        assert_eq!(n.f.to_bools(), vec![true, false, false]);
        // unknown and unknown stays unknown; unknown or true is true
        let u = Tri::unknown(3);
        assert_eq!(u.and(&u), u);
        assert_eq!(u.or(&a).t.to_bools(), vec![true, false, false]);
    }

    #[test]
    fn dynamic_comparisons() {
        use CmpOp::*;
        assert_eq!(dyn_cmp(Dyn::Int(2), Lt, Dyn::Float(2.5)), Some(true));
        assert_eq!(dyn_cmp(Dyn::Str("b"), Gt, Dyn::Str("a")), Some(true));
        assert_eq!(dyn_cmp(Dyn::Str("b"), Eq, Dyn::Int(1)), None);
        assert_eq!(dyn_cmp(Dyn::Bool(true), Lt, Dyn::Bool(false)), None);
        assert_eq!(dyn_cmp(Dyn::Null, Eq, Dyn::Int(1)), None);
        let arr: Value = serde_json::json!([1, "a", 2.0]);
        let lits = [Lit::Int(1), Lit::Str("a".into()), Lit::Int(2)];
        assert_eq!(dyn_cmp(Dyn::of_json(&arr), Eq, Dyn::Arr(&lits)), Some(true));
        assert_eq!(dyn_cmp(Dyn::of_json(&arr), Ne, Dyn::Arr(&lits[..2])), Some(true));
        assert_eq!(dyn_in(Dyn::Str("x"), &[Lit::Int(1)]), None);
        assert_eq!(dyn_in(Dyn::Str("x"), &[Lit::Int(1), Lit::Str("y".into())]), Some(false));
        assert_eq!(dyn_in(Dyn::Int(1), &[Lit::Float(1.0)]), Some(true));
        assert_eq!(dyn_in(Dyn::Int(1), &[]), Some(false));
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(7), Dyn::Int(0)), Dyn::Null);
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(7), Dyn::Int(2)), Dyn::Int(3));
        assert_eq!(dyn_arith(ArithOp::Div, Dyn::Int(-7), Dyn::Int(2)), Dyn::Int(-3));
        assert_eq!(dyn_arith(ArithOp::Mod, Dyn::Float(7.0), Dyn::Int(2)), Dyn::Null);
        assert_eq!(dyn_arith(ArithOp::Add, Dyn::Int(i64::MAX), Dyn::Int(1)), Dyn::Int(i64::MIN));
        assert_eq!(dyn_arith(ArithOp::Add, Dyn::Str("a"), Dyn::Int(1)), Dyn::Null);
    }

    #[test]
    fn json_paths() {
        let v: Value = serde_json::json!({"a": {"b": [10, {"c": true}]}, "0": "zero", "arr": ["x", "y"]});
        let k = |s: &str| PathElem::Key(s.into());
        assert_eq!(resolve(&v, &[k("a"), k("b"), PathElem::Index(0)]), Some(&serde_json::json!(10)));
        assert_eq!(resolve(&v, &[k("a"), k("b"), PathElem::Index(1), k("c")]), Some(&Value::Bool(true)));
        assert_eq!(resolve(&v, &[PathElem::Index(0)]), Some(&serde_json::json!("zero")));
        assert_eq!(resolve(&v, &[k("arr"), k("1")]), Some(&serde_json::json!("y")));
        assert_eq!(resolve(&v, &[k("arr"), k("01")]), None);
        assert_eq!(resolve(&v, &[k("arr"), PathElem::Index(5)]), None);
        assert_eq!(resolve(&v, &[k("arr"), PathElem::Index(-1)]), None);
        assert_eq!(resolve(&v, &[k("missing")]), None);
        assert_eq!(resolve(&v, &[k("0"), k("x")]), None);
    }
}
