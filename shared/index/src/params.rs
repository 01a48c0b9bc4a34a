//! Index build and search parameters, parsed from what Milvus clients send: key/value
//! pairs (`index_type`, `metric_type`, `nlist=1024`, or a `params` key holding a JSON
//! object, as pymilvus 2.x sends) or one JSON object (`{"nlist": 1024}`,
//! `{"index_type": "IVF_PQ", "params": {"m": 48}}`). Numbers may come as JSON numbers or
//! strings. Unknown keys are ignored (clients send parameters of other index types); a
//! known key with a bad value is an error naming the key and its allowed range.
//!
//! Keys are case-insensitive except `M` (HNSW's maximum degree) and `m` (IVF_PQ's
//! sub-quantiser count), which Milvus tells apart by case.

use serde_json::Value;

use crate::error::{IndexError, Result};
use crate::metric::Metric;

/// Largest `nlist` (and `nprobe`) Milvus accepts.
pub const MAX_NLIST: usize = 65536;
/// Default number of inverted lists.
pub const DEFAULT_NLIST: usize = 128;
/// Default lists probed per query.
pub const DEFAULT_NPROBE: usize = 8;
/// Default bits per PQ code.
pub const DEFAULT_NBITS: usize = 8;
/// Default HNSW `M` (Milvus/knowhere: 30; layer 0 keeps up to `2·M` links).
pub const DEFAULT_HNSW_M: usize = 30;
/// HNSW `M` range (Milvus: [2, 2048]).
pub const HNSW_M_RANGE: (usize, usize) = (2, 2048);
/// Default HNSW `efConstruction` (Milvus/knowhere: 360).
pub const DEFAULT_EF_CONSTRUCTION: usize = 360;
/// Largest `efConstruction` and `ef` (Milvus: int_max).
pub const MAX_EF: usize = i32::MAX as usize;

/// Index types as Milvus names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexType {
    /// Exact search over the raw vectors.
    Flat,
    /// Inverted lists of raw vectors.
    IvfFlat,
    /// Inverted lists of 8-bit scalar-quantised residuals.
    IvfSq8,
    /// Inverted lists of product-quantised residuals.
    IvfPq,
    /// Hierarchical navigable small-world graph.
    Hnsw,
    /// Chosen by segment size at build time (see [`crate::index::auto_index`]).
    AutoIndex,
}

impl IndexType {
    /// Every type, in file-code order.
    pub const ALL: [IndexType; 6] = [
        IndexType::Flat,
        IndexType::IvfFlat,
        IndexType::IvfSq8,
        IndexType::IvfPq,
        IndexType::Hnsw,
        IndexType::AutoIndex,
    ];

    /// Parses a Milvus index type name (case-insensitive).
    pub fn parse(s: &str) -> Result<IndexType> {
        let u = s.trim().to_ascii_uppercase();
        IndexType::ALL.into_iter().find(|t| t.name() == u).ok_or_else(|| {
            IndexError::param("index_type", s, "one of FLAT, IVF_FLAT, IVF_SQ8, IVF_PQ, HNSW, AUTOINDEX")
        })
    }

    /// The Milvus name.
    pub fn name(self) -> &'static str {
        match self {
            IndexType::Flat => "FLAT",
            IndexType::IvfFlat => "IVF_FLAT",
            IndexType::IvfSq8 => "IVF_SQ8",
            IndexType::IvfPq => "IVF_PQ",
            IndexType::Hnsw => "HNSW",
            IndexType::AutoIndex => "AUTOINDEX",
        }
    }

    /// Whether the type has inverted lists (and so `nlist`/`nprobe`).
    pub fn is_ivf(self) -> bool {
        matches!(self, IndexType::IvfFlat | IndexType::IvfSq8 | IndexType::IvfPq)
    }
}

/// Parameters of an index build.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexParams {
    /// Index type (AUTOINDEX is resolved at build time).
    pub index_type: IndexType,
    /// Metric of the vector field.
    pub metric: Metric,
    /// Inverted lists, 1..=65536 (default 128; at most the row count is used).
    pub nlist: usize,
    /// PQ sub-quantisers; must divide the dimension. `None`: the largest divisor of the
    /// dimension not above dim/4 (96 for 384-d, i.e. 4 dimensions per code).
    pub m: Option<usize>,
    /// Bits per PQ code, 1..=16 (default 8).
    pub nbits: usize,
    /// HNSW `M`, 2..=2048 (default 30): links per node on the upper layers, `2·M` on
    /// layer 0.
    pub hnsw_m: usize,
    /// HNSW `efConstruction`, 1..=2^31−1 (default 360): the beam width of an insertion.
    pub ef_construction: usize,
    /// k-means iterations, 1..=1000 (default 10).
    pub kmeans_iterations: usize,
    /// k-means training points per centroid, 1..=65536 (default 256).
    pub max_points_per_centroid: usize,
    /// Seed of the build (k-means sampling and init).
    pub seed: u64,
}

impl Default for IndexParams {
    /// AUTOINDEX with the COSINE metric (current Milvus' defaults).
    fn default() -> Self {
        IndexParams::new(IndexType::AutoIndex, Metric::Cosine)
    }
}

impl IndexParams {
    /// A type and metric with default parameters.
    pub fn new(index_type: IndexType, metric: Metric) -> IndexParams {
        IndexParams {
            index_type,
            metric,
            nlist: DEFAULT_NLIST,
            m: None,
            nbits: DEFAULT_NBITS,
            hnsw_m: DEFAULT_HNSW_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            kmeans_iterations: crate::kmeans::DEFAULT_ITERATIONS,
            max_points_per_centroid: crate::kmeans::DEFAULT_MAX_POINTS_PER_CENTROID,
            seed: 42,
        }
    }

    fn set_value(&mut self, key: &str, v: &Value) -> Result<()> {
        if key.trim() == "M" {
            self.hnsw_m = int("M", v, HNSW_M_RANGE.0, HNSW_M_RANGE.1)?;
            return Ok(());
        }
        match key.trim().to_ascii_lowercase().as_str() {
            "index_type" => self.index_type = IndexType::parse(&text("index_type", v)?)?,
            "metric_type" => {
                let s = text("metric_type", v)?;
                self.metric =
                    Metric::parse(&s).ok_or_else(|| IndexError::param("metric_type", &s, "one of L2, IP, COSINE"))?;
            }
            "params" => match v {
                Value::Object(o) => {
                    for (k, v) in o {
                        self.set_value(k, v)?;
                    }
                }
                _ => self.set_json_object(&text("params", v)?)?,
            },
            "nlist" => self.nlist = int("nlist", v, 1, MAX_NLIST)?,
            "m" => self.m = Some(int("m", v, 1, 65536)?),
            "nbits" => self.nbits = int("nbits", v, 1, 16)?,
            "efconstruction" => self.ef_construction = int("efConstruction", v, 1, MAX_EF)?,
            "kmeans_iterations" => self.kmeans_iterations = int("kmeans_iterations", v, 1, 1000)?,
            "max_points_per_centroid" => self.max_points_per_centroid = int("max_points_per_centroid", v, 1, 65536)?,
            "seed" => self.seed = int("seed", v, 0, usize::MAX)? as u64,
            _ => {}
        }
        Ok(())
    }

    /// The PQ sub-quantiser count for `dim` (explicit `m` or the default rule).
    pub fn m_for(&self, dim: usize) -> usize {
        self.m.unwrap_or_else(|| (1..=(dim / 4).max(1)).rev().find(|m| dim.is_multiple_of(*m)).unwrap_or(1))
    }

    /// Checks every field against its range for vectors of `dim` dimensions.
    pub fn validate(&self, dim: usize) -> Result<()> {
        if dim == 0 || dim > 32768 {
            return Err(IndexError::param("dim", dim, "1..=32768"));
        }
        if !(1..=MAX_NLIST).contains(&self.nlist) {
            return Err(IndexError::param("nlist", self.nlist, format!("1..={MAX_NLIST}")));
        }
        if !(1..=16).contains(&self.nbits) {
            return Err(IndexError::param("nbits", self.nbits, "1..=16"));
        }
        if !(HNSW_M_RANGE.0..=HNSW_M_RANGE.1).contains(&self.hnsw_m) {
            return Err(IndexError::param(
                "M",
                self.hnsw_m,
                format!("an integer in {}..={}", HNSW_M_RANGE.0, HNSW_M_RANGE.1),
            ));
        }
        if !(1..=MAX_EF).contains(&self.ef_construction) {
            return Err(IndexError::param(
                "efConstruction",
                self.ef_construction,
                format!("an integer in 1..={MAX_EF}"),
            ));
        }
        if !(1..=1000).contains(&self.kmeans_iterations) {
            return Err(IndexError::param("kmeans_iterations", self.kmeans_iterations, "1..=1000"));
        }
        if !(1..=65536).contains(&self.max_points_per_centroid) {
            return Err(IndexError::param("max_points_per_centroid", self.max_points_per_centroid, "1..=65536"));
        }
        if self.index_type == IndexType::IvfPq {
            let m = self.m_for(dim);
            if m == 0 || !dim.is_multiple_of(m) {
                return Err(IndexError::param("m", m, format!("a divisor of dim {dim}")));
            }
        }
        Ok(())
    }
}

/// Parameters of one search.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SearchParams {
    /// Lists probed per query, 1..=65536, clamped to the index's nlist; `None`: the
    /// index's default (8, or the AUTOINDEX choice).
    pub nprobe: Option<usize>,
    /// HNSW beam width on layer 0, 1..=2^31−1; at least the top-k of a search (Milvus'
    /// rule). `None`: `max(k, 16)`, or 512 for a range search (knowhere's defaults).
    pub ef: Option<usize>,
    /// Range search: outer bound (see [`Metric::in_range`]).
    pub radius: Option<f32>,
    /// Range search: inner bound (see [`Metric::in_range`]).
    pub range_filter: Option<f32>,
}

impl SearchParams {
    fn set_value(&mut self, key: &str, v: &Value) -> Result<()> {
        match key.trim().to_ascii_lowercase().as_str() {
            "nprobe" => self.nprobe = Some(int("nprobe", v, 1, MAX_NLIST)?),
            "ef" => self.ef = Some(int("ef", v, 1, MAX_EF)?),
            "radius" => self.radius = Some(float("radius", v)?),
            "range_filter" => self.range_filter = Some(float("range_filter", v)?),
            "params" => match v {
                Value::Object(o) => {
                    for (k, v) in o {
                        self.set_value(k, v)?;
                    }
                }
                _ => self.set_json_object(&text("params", v)?)?,
            },
            _ => {}
        }
        Ok(())
    }

    /// Checks the range bounds against the metric: for L2 `range_filter < radius`, for
    /// IP/COSINE `range_filter > radius` (Milvus' rule).
    pub fn validate(&self, metric: Metric) -> Result<()> {
        if let (Some(r), Some(f)) = (self.radius, self.range_filter) {
            let ok = if metric.higher_is_better() { f > r } else { f < r };
            if !ok {
                let rule = if metric.higher_is_better() { "greater" } else { "less" };
                return Err(IndexError::param(
                    "range_filter",
                    f,
                    format!("a value {rule} than radius {r} for metric {}", metric.name()),
                ));
            }
        }
        Ok(())
    }
}

/// The range-search bounds of one search (what the indexes need of [`SearchParams`]).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Bounds {
    pub radius: Option<f32>,
    pub range_filter: Option<f32>,
}

impl Bounds {
    /// Whether the search is a range search.
    #[inline]
    pub fn active(&self) -> bool {
        self.radius.is_some() || self.range_filter.is_some()
    }
}

fn parse_object(name: &str, text: &str) -> Result<serde_json::Map<String, Value>> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err(IndexError::param(name, text, "a JSON object such as {\"nlist\": 1024}")),
    }
}

fn text(name: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(IndexError::param(name, other, "a string")),
    }
}

/// The parsing entry points both parameter sets share, over their `set_value`.
macro_rules! parsed_from_pairs {
    ($ty:ident, $json_doc:literal) => {
        impl $ty {
            /// Defaults overridden by Milvus-style key/value pairs.
            pub fn from_kv<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<$ty> {
                let mut p = $ty::default();
                for (k, v) in pairs {
                    p.set(k.as_ref(), v.as_ref())?;
                }
                Ok(p)
            }

            #[doc = concat!("Defaults overridden by a JSON object ", $json_doc, ".")]
            pub fn from_json(text: &str) -> Result<$ty> {
                let mut p = $ty::default();
                p.set_json_object(text)?;
                Ok(p)
            }

            /// Applies one key/value pair; `params` takes a JSON object.
            pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
                self.set_value(key, &Value::String(value.to_string()))
            }

            /// Applies every key of a JSON object text.
            pub fn set_json_object(&mut self, text: &str) -> Result<()> {
                for (k, v) in parse_object("params", text)? {
                    self.set_value(&k, &v)?;
                }
                Ok(())
            }
        }
    };
}

parsed_from_pairs!(IndexParams, "(top-level keys and a nested `params`)");
parsed_from_pairs!(SearchParams, "(`{\"nprobe\": 16}`, or nested in `params`)");

fn int(name: &str, v: &Value, lo: usize, hi: usize) -> Result<usize> {
    let allowed = || {
        if hi == usize::MAX { format!("an integer >= {lo}") } else { format!("an integer in {lo}..={hi}") }
    };
    let parsed: Option<i128> = match v {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)),
        Value::String(s) => s.trim().trim_matches('"').parse::<i128>().ok(),
        _ => None,
    };
    let shown = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match parsed {
        Some(x) if x >= lo as i128 && x <= hi as i128 => Ok(x as usize),
        _ => Err(IndexError::param(name, shown, allowed())),
    }
}

fn float(name: &str, v: &Value) -> Result<f32> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_matches('"').parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(x) if x.is_finite() => Ok(x as f32),
        _ => Err(IndexError::param(name, v, "a finite number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kv_and_json() {
        let p = IndexParams::from_kv([
            ("index_type", "IVF_PQ"),
            ("metric_type", "ip"),
            ("params", r#"{"nlist": 1024, "m": "48"}"#),
        ])
        .expect("parses");
        assert_eq!((p.index_type, p.metric, p.nlist, p.m, p.nbits), (IndexType::IvfPq, Metric::Ip, 1024, Some(48), 8));
        let p = IndexParams::from_kv([("index_type", "IVF_FLAT"), ("nlist", "16"), ("efConstruction", "200")])
            .expect("parses");
        assert_eq!((p.index_type, p.nlist), (IndexType::IvfFlat, 16));
        let p = IndexParams::from_json(r#"{"nlist":1024}"#).expect("parses");
        assert_eq!((p.index_type, p.metric, p.nlist), (IndexType::AutoIndex, Metric::Cosine, 1024));
        let p = IndexParams::from_json(r#"{"index_type":"IVF_SQ8","metric_type":"L2","params":{"nlist":"64"}}"#)
            .expect("parses");
        assert_eq!((p.index_type, p.metric, p.nlist), (IndexType::IvfSq8, Metric::L2, 64));
        let s = SearchParams::from_json(r#"{"nprobe":16}"#).expect("parses");
        assert_eq!(s.nprobe, Some(16));
        let s = SearchParams::from_kv([("params", r#"{"nprobe": 4, "radius": 0.5, "range_filter": "0.9", "ef": 64}"#)])
            .expect("parses");
        assert_eq!((s.nprobe, s.radius, s.range_filter), (Some(4), Some(0.5), Some(0.9)));
        assert!(s.validate(Metric::Ip).is_ok());
    }

    #[test]
    fn errors_name_the_parameter_and_range() {
        let msg = |r: Result<IndexParams>| r.expect_err("rejected").to_string();
        assert_eq!(msg(IndexParams::from_json(r#"{"nlist":0}"#)), "invalid parameter nlist=0: an integer in 1..=65536");
        assert_eq!(
            msg(IndexParams::from_json(r#"{"nlist":70000}"#)),
            "invalid parameter nlist=70000: an integer in 1..=65536"
        );
        assert!(msg(IndexParams::from_kv([("nlist", "many")])).contains("nlist=many"));
        assert!(msg(IndexParams::from_kv([("nbits", "17")])).contains("nbits=17: an integer in 1..=16"));
        assert!(msg(IndexParams::from_kv([("index_type", "DISKANN")])).contains("index_type=DISKANN"));
        assert!(msg(IndexParams::from_kv([("metric_type", "HAMMING")])).contains("metric_type=HAMMING"));
        assert!(msg(IndexParams::from_kv([("params", "{nlist")])).contains("params="));
        assert!(msg(IndexParams::from_json(r#"{"nlist":1.5}"#)).contains("nlist=1.5"));
        let e = SearchParams::from_json(r#"{"nprobe":0}"#).expect_err("rejected").to_string();
        assert_eq!(e, "invalid parameter nprobe=0: an integer in 1..=65536");
        assert!(SearchParams::from_kv([("radius", "x")]).is_err());
        let p = IndexParams { m: Some(5), ..IndexParams::new(IndexType::IvfPq, Metric::L2) };
        assert_eq!(p.validate(384).expect_err("m").to_string(), "invalid parameter m=5: a divisor of dim 384");
        let s = SearchParams { radius: Some(1.0), range_filter: Some(2.0), ..Default::default() };
        assert!(s.validate(Metric::L2).is_err() && s.validate(Metric::Ip).is_ok());
    }

    #[test]
    fn hnsw_parameters_parse() {
        // pymilvus' shape: `M` and `efConstruction` in `params`, as numbers or strings.
        let p = IndexParams::from_kv([
            ("index_type", "HNSW"),
            ("metric_type", "IP"),
            ("params", r#"{"M": 16, "efConstruction": "200"}"#),
        ])
        .expect("parses");
        assert_eq!((p.index_type, p.hnsw_m, p.ef_construction, p.m), (IndexType::Hnsw, 16, 200, None));
        // `M` (HNSW) and `m` (IVF_PQ) are different keys; defaults are Milvus' 30 and 360.
        let p = IndexParams::from_json(r#"{"index_type": "hnsw", "m": 8}"#).expect("parses");
        assert_eq!((p.index_type, p.hnsw_m, p.ef_construction, p.m), (IndexType::Hnsw, 30, 360, Some(8)));
        let p = IndexParams::from_kv([("M", "2048"), ("efconstruction", "2147483647")]).expect("parses");
        assert_eq!((p.hnsw_m, p.ef_construction), (2048, 2147483647));
        assert!(IndexParams::from_kv([("M", "1")]).is_err());
        assert!(IndexParams::from_kv([("efConstruction", "2147483648")]).is_err());
        let s = SearchParams::from_kv([("params", r#"{"ef": "64"}"#)]).expect("parses");
        assert_eq!((s.ef, s.nprobe), (Some(64), None));
    }

    #[test]
    fn default_m_divides_dim() {
        let p = IndexParams::new(IndexType::IvfPq, Metric::L2);
        assert_eq!(p.m_for(384), 96);
        assert_eq!(p.m_for(128), 32);
        assert_eq!(p.m_for(100), 25);
        assert_eq!(p.m_for(7), 1);
        assert_eq!(p.m_for(3), 1);
    }
}
