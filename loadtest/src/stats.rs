//! Measurements of one phase: latencies, throughput over time, recall, errors by code.
//!
//! Every client task records into its own [`Recorder`] (no locks on the hot path); the
//! phase merges them and turns them into a [`Summary`] for the report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Latency histogram bucket bounds in milliseconds (upper bounds, log-spaced 1-2-5).
pub const HISTOGRAM_BOUNDS_MS: [f64; 19] =
    [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, f64::INFINITY];

#[derive(Debug, Clone)]
pub struct Recorder {
    /// The run's time origin, shared by every phase so timelines line up.
    origin: Instant,
    latencies_us: Vec<u64>,
    /// Completed requests per whole second since `origin`.
    per_second: BTreeMap<u64, u64>,
    errors: BTreeMap<String, u64>,
    items: u64,
    recall_sum: f64,
    recall_count: u64,
}

impl Recorder {
    pub fn new(origin: Instant) -> Self {
        Recorder {
            origin,
            latencies_us: Vec::new(),
            per_second: BTreeMap::new(),
            errors: BTreeMap::new(),
            items: 0,
            recall_sum: 0.0,
            recall_count: 0,
        }
    }

    /// A successful request that took `latency` and carried `items` rows or queries.
    pub fn ok(&mut self, latency: Duration, items: u64) {
        self.latencies_us.push(latency.as_micros() as u64);
        *self.per_second.entry(self.origin.elapsed().as_secs()).or_default() += 1;
        self.items += items;
    }

    /// A failed request, by error code ("1100", "transport", "timeout", ...).
    pub fn error(&mut self, code: impl Into<String>) {
        *self.errors.entry(code.into()).or_default() += 1;
    }

    pub fn recall(&mut self, r: f64) {
        self.recall_sum += r;
        self.recall_count += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        for (s, n) in other.per_second {
            *self.per_second.entry(s).or_default() += n;
        }
        for (c, n) in other.errors {
            *self.errors.entry(c).or_default() += n;
        }
        self.items += other.items;
        self.recall_sum += other.recall_sum;
        self.recall_count += other.recall_count;
    }

    /// Summarises the phase that ran for `elapsed`.
    pub fn summary(mut self, elapsed: Duration) -> Summary {
        self.latencies_us.sort_unstable();
        let lat = &self.latencies_us;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ms = |us: u64| us as f64 / 1000.0;
        let pct = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                // Nearest rank.
                let rank = ((p / 100.0) * lat.len() as f64).ceil() as usize;
                ms(lat[rank.clamp(1, lat.len()) - 1])
            }
        };
        let mut histogram = vec![0u64; HISTOGRAM_BOUNDS_MS.len()];
        for &us in lat {
            let bucket = HISTOGRAM_BOUNDS_MS.partition_point(|&b| b < ms(us));
            histogram[bucket.min(HISTOGRAM_BOUNDS_MS.len() - 1)] += 1;
        }
        let (first, last) = match (self.per_second.keys().next(), self.per_second.keys().next_back()) {
            (Some(&a), Some(&b)) => (a, b),
            _ => (0, 0),
        };
        let timeline = if self.per_second.is_empty() {
            vec![]
        } else {
            (first..=last).map(|s| [s, self.per_second.get(&s).copied().unwrap_or(0)]).collect()
        };
        Summary {
            requests: lat.len() as u64,
            items: self.items,
            errors: self.errors,
            seconds: secs,
            requests_per_s: lat.len() as f64 / secs,
            items_per_s: self.items as f64 / secs,
            latency_ms: Latency {
                mean: if lat.is_empty() { 0.0 } else { ms(lat.iter().sum::<u64>()) / lat.len() as f64 },
                p50: pct(50.0),
                p95: pct(95.0),
                p99: pct(99.0),
                max: lat.last().map_or(0.0, |&u| ms(u)),
            },
            recall: (self.recall_count > 0).then(|| self.recall_sum / self.recall_count as f64),
            histogram,
            timeline,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

/// What a phase (or one concurrency level of it) measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Successful requests.
    pub requests: u64,
    /// Rows (insert/delete) or queries (search) carried by the successful requests.
    pub items: u64,
    /// Failed requests by error code.
    pub errors: BTreeMap<String, u64>,
    pub seconds: f64,
    pub requests_per_s: f64,
    pub items_per_s: f64,
    pub latency_ms: Latency,
    /// Mean recall@k over every query answered (search phases with ground truth).
    pub recall: Option<f64>,
    /// Request counts per latency bucket ([`HISTOGRAM_BOUNDS_MS`] upper bounds).
    pub histogram: Vec<u64>,
    /// `[second since the run began, requests completed in it]`.
    pub timeline: Vec<[u64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_histogram_and_merge() {
        let origin = Instant::now();
        let mut a = Recorder::new(origin);
        let mut b = Recorder::new(origin);
        for ms in 1..=50u64 {
            a.ok(Duration::from_millis(ms), 1);
        }
        for ms in 51..=100u64 {
            b.ok(Duration::from_millis(ms), 2);
        }
        b.error("1100");
        b.error("1100");
        a.recall(1.0);
        b.recall(0.5);
        a.merge(b);
        let s = a.summary(Duration::from_secs(2));
        assert_eq!((s.requests, s.items), (100, 150));
        assert_eq!(s.errors.get("1100"), Some(&2));
        assert_eq!(s.requests_per_s, 50.0);
        assert_eq!((s.latency_ms.p50, s.latency_ms.p95, s.latency_ms.p99, s.latency_ms.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(s.latency_ms.mean, 50.5);
        assert_eq!(s.recall, Some(0.75));
        assert_eq!(s.histogram.iter().sum::<u64>(), 100);
        // 1 ms falls in the "≤ 1 ms" bucket, 2 in "≤ 2", 3-5 in "≤ 5", 51-100 in "≤ 100".
        assert_eq!(&s.histogram[3..10], &[1, 1, 3, 5, 10, 30, 50]);
        assert_eq!(s.timeline.iter().map(|t| t[1]).sum::<u64>(), 100);
    }

    #[test]
    fn an_empty_phase_summarises_to_zeros() {
        let s = Recorder::new(Instant::now()).summary(Duration::ZERO);
        assert_eq!((s.requests, s.latency_ms.p99, s.recall), (0, 0.0, None));
        assert!(s.timeline.is_empty());
    }
}
