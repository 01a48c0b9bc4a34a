//! Timestamp and id allocation.
//!
//! Both allocators hand out values below a limit that is persisted *before* any value
//! beyond it is handed out. After a restart they resume from the persisted limit, so a
//! value can never be issued twice, even if the wall clock went backwards.
//!
//! [`TsoActor`] owns both allocators; extending a persisted limit is an exclusive
//! (atomic) handler, so nothing is handed out before its limit is durable.

use actix::prelude::*;
use fv_common::ts::{MAX_LOGICAL, compose, now_ms};
use fv_common::{FvResult, Timestamp};
use fv_metastore::MetaKvRef;
use fv_runtime::actor::mailbox_error;

use crate::catalog::{ID_LIMIT_KEY, TSO_LIMIT_KEY, load_u64, store_u64};

/// Milliseconds of timestamps reserved per persisted limit.
pub const TSO_WINDOW_MS: u64 = 3_000;
/// Ids reserved per persisted limit.
pub const ID_BATCH: i64 = 100_000;

#[derive(Debug, Clone)]
pub struct Tso {
    last_physical: u64,
    last_logical: u64,
    /// Exclusive limit on the physical part that may be handed out.
    limit_ms: u64,
}

impl Tso {
    /// Resumes after `persisted_limit_ms` (0 for a new cluster).
    pub fn new(persisted_limit_ms: u64) -> Tso {
        Tso { last_physical: persisted_limit_ms, last_logical: 0, limit_ms: persisted_limit_ms }
    }

    fn next_physical(&self, now_ms: u64, count: u32) -> (u64, u64) {
        let phys = now_ms.max(self.last_physical);
        let mut logical = if phys == self.last_physical { self.last_logical + 1 } else { 0 };
        let mut phys = phys;
        if logical + count as u64 > MAX_LOGICAL + 1 {
            phys += 1;
            logical = 0;
        }
        (phys, logical)
    }

    /// Some(new limit) when allocating `count` now would reach the persisted limit.
    pub fn needs_extension(&self, now_ms: u64, count: u32) -> Option<u64> {
        let (phys, _) = self.next_physical(now_ms, count);
        (phys + 1 >= self.limit_ms).then_some(phys + TSO_WINDOW_MS)
    }

    pub fn set_limit(&mut self, limit_ms: u64) {
        self.limit_ms = self.limit_ms.max(limit_ms);
    }

    /// Allocates `count` consecutive timestamps; returns the first. The caller must have
    /// persisted any extension `needs_extension` asked for.
    pub fn alloc(&mut self, now_ms: u64, count: u32) -> Timestamp {
        let count = count.max(1);
        let (phys, logical) = self.next_physical(now_ms, count);
        debug_assert!(phys < self.limit_ms, "allocation beyond the persisted limit");
        self.last_physical = phys;
        self.last_logical = logical + count as u64 - 1;
        compose(phys, logical)
    }

    pub fn last(&self) -> Timestamp {
        compose(self.last_physical, self.last_logical)
    }
}

#[derive(Debug, Clone)]
pub struct IdAllocator {
    next: i64,
    limit: i64,
}

impl IdAllocator {
    /// Resumes at the persisted limit (ids start at 1 for a new cluster, above the
    /// reserved range Milvus uses for system fields).
    pub fn new(persisted_limit: i64) -> IdAllocator {
        let start = persisted_limit.max(1);
        IdAllocator { next: start, limit: start }
    }

    pub fn needs_extension(&self, count: u32) -> Option<i64> {
        (self.next + count as i64 > self.limit).then(|| self.next + (count as i64).max(ID_BATCH))
    }

    pub fn set_limit(&mut self, limit: i64) {
        self.limit = self.limit.max(limit);
    }

    pub fn alloc(&mut self, count: u32) -> i64 {
        let first = self.next;
        self.next += count.max(1) as i64;
        debug_assert!(self.next <= self.limit);
        first
    }
}

pub struct TsoActor {
    tso: Tso,
    ids: IdAllocator,
    meta: MetaKvRef,
}

impl TsoActor {
    pub fn new(tso: Tso, ids: IdAllocator, meta: MetaKvRef) -> TsoActor {
        TsoActor { tso, ids, meta }
    }
}

impl Actor for TsoActor {
    type Context = Context<Self>;
}

/// Allocates `count` consecutive timestamps; replies with the first.
#[derive(Message)]
#[rtype(result = "FvResult<Timestamp>")]
pub struct AllocTs(pub u32);

/// Allocates `count` consecutive ids; replies with the first.
#[derive(Message)]
#[rtype(result = "FvResult<i64>")]
pub struct AllocId(pub u32);

impl Handler<AllocTs> for TsoActor {
    type Result = AtomicResponse<Self, FvResult<Timestamp>>;

    fn handle(&mut self, msg: AllocTs, _ctx: &mut Context<Self>) -> Self::Result {
        let count = msg.0.max(1);
        match self.tso.needs_extension(now_ms(), count) {
            None => AtomicResponse::new(Box::pin(fut::ready(Ok(self.tso.alloc(now_ms(), count))))),
            Some(limit) => {
                let meta = self.meta.clone();
                AtomicResponse::new(Box::pin(
                    async move { store_u64(&meta, TSO_LIMIT_KEY, limit).await }.into_actor(self).map(
                        move |res, act, _| {
                            res?;
                            act.tso.set_limit(limit);
                            // The clock may have advanced past the new window meanwhile; the
                            // window is seconds long, so one extension always suffices.
                            Ok(act.tso.alloc(now_ms().min(limit.saturating_sub(2)), count))
                        },
                    ),
                ))
            }
        }
    }
}

impl Handler<AllocId> for TsoActor {
    type Result = AtomicResponse<Self, FvResult<i64>>;

    fn handle(&mut self, msg: AllocId, _ctx: &mut Context<Self>) -> Self::Result {
        let count = msg.0.max(1);
        match self.ids.needs_extension(count) {
            None => AtomicResponse::new(Box::pin(fut::ready(Ok(self.ids.alloc(count))))),
            Some(limit) => {
                let meta = self.meta.clone();
                AtomicResponse::new(Box::pin(
                    async move { store_u64(&meta, ID_LIMIT_KEY, limit as u64).await }.into_actor(self).map(
                        move |res, act, _| {
                            res?;
                            act.ids.set_limit(limit);
                            Ok(act.ids.alloc(count))
                        },
                    ),
                ))
            }
        }
    }
}

/// Typed handle to the `TsoActor`.
#[derive(Clone)]
pub struct TsoHandle(pub Addr<TsoActor>);

impl TsoHandle {
    /// Starts the allocators after the limits persisted in `meta` (in the current actix
    /// system).
    pub async fn start(meta: &MetaKvRef) -> FvResult<TsoHandle> {
        let tso_limit = load_u64(meta, TSO_LIMIT_KEY).await?;
        let id_limit = load_u64(meta, ID_LIMIT_KEY).await? as i64;
        Ok(TsoHandle(TsoActor::new(Tso::new(tso_limit), IdAllocator::new(id_limit), meta.clone()).start()))
    }

    pub async fn alloc_ts(&self, count: u32) -> FvResult<Timestamp> {
        self.0.send(AllocTs(count)).await.map_err(mailbox_error)?
    }
    pub async fn alloc_id(&self, count: u32) -> FvResult<i64> {
        self.0.send(AllocId(count)).await.map_err(mailbox_error)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fv_common::ts::{logical, physical_ms};

    #[test]
    fn timestamps_are_strictly_monotonic() {
        let mut t = Tso::new(0);
        let mut last = 0;
        let mut now = 1_000;
        for i in 0..10_000u64 {
            if i % 1000 == 0 {
                now += 1;
            }
            if let Some(l) = t.needs_extension(now, 3) {
                t.set_limit(l);
            }
            let ts = t.alloc(now, 3);
            assert!(ts > last, "ts {ts} not after {last}");
            last = ts + 2;
        }
    }

    #[test]
    fn clock_going_backwards_never_repeats() {
        let mut t = Tso::new(0);
        t.set_limit(t.needs_extension(5_000, 1).expect("fresh allocator needs a limit"));
        let a = t.alloc(5_000, 1);
        let b = t.alloc(4_000, 1); // clock jumped back
        assert!(b > a);
        assert_eq!(physical_ms(b), 5_000);
    }

    #[test]
    fn logical_overflow_borrows_the_next_millisecond() {
        let mut t = Tso::new(0);
        t.set_limit(10_000);
        let a = t.alloc(100, (MAX_LOGICAL - 1) as u32);
        let b = t.alloc(100, 5);
        assert_eq!(physical_ms(a), 100);
        assert_eq!(physical_ms(b), 101);
        assert_eq!(logical(b), 0);
    }

    #[test]
    fn restart_resumes_above_the_persisted_limit() {
        let mut t = Tso::new(0);
        let limit = t.needs_extension(9_000, 1).expect("extension");
        t.set_limit(limit);
        let before = t.alloc(9_000, 1);
        // Crash: a new allocator starts from the persisted limit even if the clock is behind.
        let mut r = Tso::new(limit);
        if let Some(l) = r.needs_extension(8_000, 1) {
            r.set_limit(l);
        }
        assert!(r.alloc(8_000, 1) > before);
    }

    #[test]
    fn ids_never_repeat_across_restart() {
        let mut a = IdAllocator::new(0);
        let l = a.needs_extension(10).expect("needs a limit");
        a.set_limit(l);
        let first = a.alloc(10);
        assert_eq!(first, 1);
        let mut b = IdAllocator::new(l);
        if let Some(l2) = b.needs_extension(1) {
            b.set_limit(l2);
        }
        assert!(b.alloc(1) >= first + 10);
    }
}
