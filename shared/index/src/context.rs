//! What one search carries besides its parameters: the rows it may return and the flag
//! that stops it. A request that is cancelled or times out sets the flag; every search
//! loop polls it at a coarse step (a chunk of rows of an exact scan, a GEMM block, a probed
//! inverted list, 64 node expansions of an HNSW walk), so the poll costs nothing next to
//! the work between two polls, and a stopped search returns [`IndexError::Cancelled`]
//! instead of results. Builds take the same flag (a k-means iteration, an HNSW insertion
//! batch).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{IndexError, Result};
use crate::filter::{FixedBitSet, RowFilter};

/// The filter and the stop flag of one search. `SearchContext::default()` allows every
/// row and never stops.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchContext<'a> {
    filter: RowFilter<'a>,
    stop: Stop<'a>,
}

impl<'a> SearchContext<'a> {
    /// Every row, never stopped.
    pub fn new() -> SearchContext<'a> {
        SearchContext::default()
    }

    /// Only the rows whose bit is set in `filter` (`None`: every row). The bitset must
    /// cover every row of the searched segment.
    pub fn with_filter(self, filter: Option<&'a FixedBitSet>) -> SearchContext<'a> {
        SearchContext { filter: RowFilter::new(filter), ..self }
    }

    /// Stops the search with [`IndexError::Cancelled`] once `stop` is set.
    pub fn with_stop(self, stop: &'a AtomicBool) -> SearchContext<'a> {
        SearchContext { stop: Stop::new(Some(stop)), ..self }
    }

    /// Every row, stopped by `stop` (inner searches of a search, such as an IVF probe).
    pub(crate) fn stopped_by(stop: Stop<'a>) -> SearchContext<'a> {
        SearchContext { filter: RowFilter::ALL, stop }
    }

    /// The search's row filter.
    pub(crate) fn rows(&self) -> RowFilter<'a> {
        self.filter
    }

    /// The search's stop flag.
    pub(crate) fn stop(&self) -> Stop<'a> {
        self.stop
    }
}

impl<'a> From<&'a FixedBitSet> for SearchContext<'a> {
    fn from(filter: &'a FixedBitSet) -> SearchContext<'a> {
        SearchContext::new().with_filter(Some(filter))
    }
}

/// A stop flag as the loops poll it (none: never stops).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stop<'a>(Option<&'a AtomicBool>);

impl<'a> Stop<'a> {
    /// Never stops.
    pub const NEVER: Stop<'static> = Stop(None);

    pub fn new(flag: Option<&'a AtomicBool>) -> Stop<'a> {
        Stop(flag)
    }

    /// [`IndexError::Cancelled`] once the flag is set. A relaxed load: the flag carries no
    /// data, and a search seeing it one step late only does one step more.
    #[inline]
    pub fn check(&self) -> Result<()> {
        match self.0 {
            Some(f) if f.load(Ordering::Relaxed) => Err(IndexError::Cancelled),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_and_stop() {
        let bits = crate::filter::from_bools(&[true, false]);
        let flag = AtomicBool::new(false);
        let ctx = SearchContext::from(&bits).with_stop(&flag);
        assert!(ctx.rows().allows(0) && !ctx.rows().allows(1));
        assert!(ctx.stop().check().is_ok());
        flag.store(true, Ordering::Relaxed);
        assert_eq!(ctx.stop().check(), Err(IndexError::Cancelled));
        assert!(SearchContext::new().rows().is_all() && SearchContext::new().stop().check().is_ok());
        assert!(Stop::NEVER.check().is_ok());
        assert!(ctx.with_filter(None).rows().is_all());
    }
}
