//! Hybrid timestamps as Milvus' TSO issues them: `physical_ms << 18 | logical`.
//!
//! The physical part is wall-clock milliseconds, the logical part a counter within one
//! millisecond, so timestamps order events globally and still read as times.

use std::time::{SystemTime, UNIX_EPOCH};

pub type Timestamp = u64;

pub const LOGICAL_BITS: u32 = 18;
pub const LOGICAL_MASK: u64 = (1 << LOGICAL_BITS) - 1;
/// Largest logical counter value within one physical millisecond.
pub const MAX_LOGICAL: u64 = LOGICAL_MASK;

/// pymilvus `guarantee_timestamp` sentinel for Eventually consistency.
pub const GUARANTEE_EVENTUALLY: Timestamp = 1;
/// pymilvus `guarantee_timestamp` sentinel for Bounded consistency.
pub const GUARANTEE_BOUNDED: Timestamp = 2;
/// Internal guarantee meaning "everything acknowledged before this read": the shard
/// delegator obtains a fresh time tick itself (saves the proxy a timestamp request).
pub const GUARANTEE_STRONG: Timestamp = Timestamp::MAX;

pub fn compose(physical_ms: u64, logical: u64) -> Timestamp {
    (physical_ms << LOGICAL_BITS) | (logical & LOGICAL_MASK)
}

pub fn physical_ms(ts: Timestamp) -> u64 {
    ts >> LOGICAL_BITS
}

pub fn logical(ts: Timestamp) -> u64 {
    ts & LOGICAL_MASK
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A timestamp for "now minus `staleness_ms`", used for Bounded reads. Not monotonic;
/// never use it to stamp data.
pub fn wall_clock_ts_minus(staleness_ms: u64) -> Timestamp {
    compose(now_ms().saturating_sub(staleness_ms), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_and_split_round_trip() {
        let ts = compose(1_700_000_000_123, 42);
        assert_eq!(physical_ms(ts), 1_700_000_000_123);
        assert_eq!(logical(ts), 42);
        assert!(compose(5, MAX_LOGICAL) < compose(6, 0));
    }
}
