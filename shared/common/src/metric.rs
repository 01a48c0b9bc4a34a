//! Vector similarity metrics as Milvus names them (`metric_type` of an index or a search).
//!
//! It lives here, not in the index crate, because the proxy validates and parses metric
//! names without searching anything; the index crate re-exports it as `fv_index::Metric`.

/// A vector similarity metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance; smaller is closer.
    L2,
    /// Inner product; larger is closer.
    Ip,
    /// Cosine similarity; larger is closer.
    Cosine,
}

impl Metric {
    /// Parses "L2", "IP", "COSINE" (case-insensitive, surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<Metric> {
        match s.trim().to_ascii_uppercase().as_str() {
            "L2" => Some(Metric::L2),
            "IP" => Some(Metric::Ip),
            "COSINE" => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// The Milvus name ("L2", "IP", "COSINE").
    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "L2",
            Metric::Ip => "IP",
            Metric::Cosine => "COSINE",
        }
    }

    /// Whether a larger score means a closer vector.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// Whether score `a` ranks before score `b`.
    #[inline]
    pub fn better(self, a: f32, b: f32) -> bool {
        if self.higher_is_better() { a > b } else { a < b }
    }

    /// Whether `score` lies in Milvus' range-search window: for L2
    /// `range_filter <= d < radius`, for IP/COSINE `radius < s <= range_filter`.
    pub fn in_range(self, score: f32, radius: Option<f32>, range_filter: Option<f32>) -> bool {
        if self.higher_is_better() {
            radius.is_none_or(|r| score > r) && range_filter.is_none_or(|f| score <= f)
        } else {
            radius.is_none_or(|r| score < r) && range_filter.is_none_or(|f| score >= f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        assert_eq!(Metric::parse("cosine"), Some(Metric::Cosine));
        assert_eq!(Metric::parse(" ip "), Some(Metric::Ip));
        assert_eq!(Metric::parse("HAMMING"), None);
        for m in [Metric::L2, Metric::Ip, Metric::Cosine] {
            assert_eq!(Metric::parse(m.name()), Some(m));
        }
        assert!(Metric::L2.better(1.0, 2.0));
        assert!(Metric::Ip.better(2.0, 1.0));
        assert!(Metric::L2.in_range(1.0, Some(2.0), Some(0.5)));
        assert!(!Metric::L2.in_range(2.0, Some(2.0), None));
        assert!(Metric::Ip.in_range(0.8, Some(0.5), Some(0.9)));
        assert!(!Metric::Ip.in_range(0.95, Some(0.5), Some(0.9)));
    }
}
