//! Persisted procedures: an operation of several steps (a DDL, a balance move) run as
//! a step machine whose state is saved in the meta store after every step, so that a
//! crash at any point resumes at the step after the last one saved.
//!
//! A procedure is a protobuf message (its state, including which step comes next) with
//! a [`Procedure::step`] that performs the next step and moves the state on. The store
//! runs it to the end:
//!
//! ```text
//!   step 1 ok -> save state -> step 2 ok -> save state -> ... -> last step ok -> delete
//!   step k fails: the state saved after step k-1 stays; resume() runs step k again
//!   step k says Fail: the record is deleted and the error returned
//! ```
//!
//! Nothing is saved before the first step succeeds, so a first step that only checks
//! and prepares (validation, id allocation) can refuse a request without leaving
//! anything behind. Every later step must be idempotent: a crash after a step's effect
//! but before its state is saved runs it again.

use std::future::Future;

use bytes::Bytes;
use fv_common::{FvError, FvResult};
use fv_metastore::MetaKvRef;
use prost::Message;

use crate::errors::meta_err;

/// What a step tells the runner.
#[derive(Debug)]
pub enum Step {
    /// More steps follow; the state (already moved on) is saved before the next.
    Next,
    /// The procedure is finished; its record is deleted.
    Done,
    /// The procedure cannot complete (e.g. a name taken meanwhile): its record is
    /// deleted and the error returned. Only for a step that has had no effect yet, as
    /// nothing undoes the earlier steps.
    Fail(FvError),
}

/// An operation as a step machine over a context `C` (the role's core).
pub trait Procedure<C: ?Sized>: Message + Default {
    /// Performs the next step and records in `self` what comes after it.
    fn step(&mut self, ctx: &C) -> impl Future<Output = FvResult<Step>>;

    /// What the procedure does, for logs (`drop collection 4421`).
    fn describe(&self) -> String;
}

/// Where a role keeps its unfinished procedures: one key per procedure under `prefix`,
/// named by an id the caller allocates (ids order resumption).
#[derive(Clone)]
pub struct ProcedureStore {
    meta: MetaKvRef,
    prefix: String,
}

impl ProcedureStore {
    /// `prefix` ends with `/`, e.g. `rootcoord/procedure/`.
    pub fn new(meta: MetaKvRef, prefix: impl Into<String>) -> ProcedureStore {
        ProcedureStore { meta, prefix: prefix.into() }
    }

    fn key(&self, id: i64) -> String {
        // Zero-padded so that the store's key order is the id order.
        format!("{}{id:020}", self.prefix)
    }

    /// Records procedure `id` in its current state, as [`ProcedureStore::run`] does
    /// after each step (tests use it to stage an interrupted procedure).
    pub async fn save<P: Message>(&self, id: i64, procedure: &P) -> FvResult<()> {
        self.meta.put(&self.key(id), Bytes::from(procedure.encode_to_vec()), 0).await.map_err(meta_err)?;
        Ok(())
    }

    async fn delete(&self, id: i64) -> FvResult<()> {
        self.meta.delete(&self.key(id)).await.map_err(meta_err)?;
        Ok(())
    }

    /// Runs `procedure` (id `id`) from its current state to the end, saving its state
    /// after every step but the last and deleting its record when it is done.
    pub async fn run<C: ?Sized, P: Procedure<C>>(&self, id: i64, procedure: &mut P, ctx: &C) -> FvResult<()> {
        loop {
            match procedure.step(ctx).await {
                Ok(Step::Next) => self.save(id, procedure).await?,
                Ok(Step::Done) => return self.delete(id).await,
                Ok(Step::Fail(e)) => {
                    self.delete(id).await?;
                    return Err(e);
                }
                Err(e) => {
                    tracing::debug!(error = %e, id, procedure = %procedure.describe(), "procedure step failed");
                    return Err(e);
                }
            }
        }
    }

    /// Forgets procedure `id` without running it further (for procedures whose effects
    /// another mechanism reconciles, e.g. querycoord's distribution rounds).
    pub async fn abandon(&self, id: i64) -> FvResult<()> {
        self.delete(id).await
    }

    /// The unfinished procedures, in id order.
    pub async fn pending<P: Message + Default>(&self) -> FvResult<Vec<(i64, P)>> {
        let kvs = self.meta.scan_prefix(&self.prefix).await.map_err(meta_err)?;
        kvs.iter()
            .map(|kv| {
                let id = kv.key[self.prefix.len()..]
                    .parse::<i64>()
                    .map_err(|_| FvError::internal(format!("procedure key {} has no id", kv.key)))?;
                let p = P::decode(kv.value.clone())
                    .map_err(|e| FvError::internal(format!("undecodable procedure {}: {e}", kv.key)))?;
                Ok((id, p))
            })
            .collect()
    }

    /// Runs every unfinished procedure on, in id order; returns how many are still
    /// unfinished (a step failed again; the next call retries it).
    pub async fn resume<C: ?Sized, P: Procedure<C>>(&self, ctx: &C) -> FvResult<usize> {
        let mut left = 0;
        for (id, mut p) in self.pending::<P>().await? {
            tracing::info!(id, procedure = %p.describe(), "resuming procedure");
            if let Err(e) = self.run(id, &mut p, ctx).await {
                tracing::warn!(error = %e, id, procedure = %p.describe(), "procedure not finished yet");
                left += 1;
            }
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// A test procedure: counts up to `steps`, failing once at the context's `fail_at`.
    #[derive(Clone, PartialEq, Message)]
    struct Counter {
        #[prost(uint32, tag = "1")]
        next: u32,
        #[prost(uint32, tag = "2")]
        steps: u32,
    }

    #[derive(Default)]
    struct Ctx {
        /// Steps performed, in order.
        log: RefCell<Vec<u32>>,
        /// Step that fails (once), if any.
        fail_at: RefCell<Option<u32>>,
    }

    impl Procedure<Ctx> for Counter {
        async fn step(&mut self, ctx: &Ctx) -> FvResult<Step> {
            if *ctx.fail_at.borrow() == Some(self.next) {
                ctx.fail_at.borrow_mut().take();
                return Err(FvError::unavailable("injected"));
            }
            if self.steps == 0 && self.next == 1 {
                return Ok(Step::Fail(FvError::invalid_parameter("gave up")));
            }
            ctx.log.borrow_mut().push(self.next);
            self.next += 1;
            Ok(if self.next == self.steps { Step::Done } else { Step::Next })
        }

        fn describe(&self) -> String {
            format!("count to {}", self.steps)
        }
    }

    fn store() -> (tempfile::TempDir, ProcedureStore, MetaKvRef) {
        let dir = tempfile::tempdir().unwrap();
        let meta: MetaKvRef = fv_metastore::embedded::EmbeddedMetaKv::open(dir.path()).unwrap();
        (dir, ProcedureStore::new(meta.clone(), "test/procedure/"), meta)
    }

    #[tokio::test]
    async fn runs_to_the_end_and_leaves_nothing() {
        let (_dir, store, meta) = store();
        let ctx = Ctx::default();
        let mut p = Counter { next: 0, steps: 4 };
        store.run(7, &mut p, &ctx).await.unwrap();
        assert_eq!(*ctx.log.borrow(), vec![0, 1, 2, 3]);
        assert!(meta.scan_prefix("test/procedure/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_first_step_saves_nothing() {
        let (_dir, store, _meta) = store();
        let ctx = Ctx { fail_at: RefCell::new(Some(0)), ..Default::default() };
        let mut p = Counter { next: 0, steps: 3 };
        assert!(store.run(1, &mut p, &ctx).await.is_err());
        assert!(store.pending::<Counter>().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_later_step_resumes_where_it_stopped() {
        let (_dir, store, _meta) = store();
        let ctx = Ctx { fail_at: RefCell::new(Some(2)), ..Default::default() };
        let mut p = Counter { next: 0, steps: 4 };
        assert!(store.run(3, &mut p, &ctx).await.is_err());
        let pending = store.pending::<Counter>().await.unwrap();
        assert_eq!(pending, vec![(3, Counter { next: 2, steps: 4 })]);
        // As after a restart: the saved state runs on from step 2, steps 0 and 1 are not
        // repeated.
        assert_eq!(store.resume::<Ctx, Counter>(&ctx).await.unwrap(), 0);
        assert_eq!(*ctx.log.borrow(), vec![0, 1, 2, 3]);
        assert!(store.pending::<Counter>().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_step_that_gives_up_deletes_the_record() {
        let (_dir, store, _meta) = store();
        let ctx = Ctx::default();
        // `steps == 0` makes the test procedure give up at its second step.
        let mut p = Counter { next: 0, steps: 0 };
        let err = store.run(5, &mut p, &ctx).await.unwrap_err();
        assert!(err.message.contains("gave up"), "{err:?}");
        assert!(store.pending::<Counter>().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn resumes_in_id_order() {
        let (_dir, store, _meta) = store();
        let ctx = Ctx::default();
        for id in [12, 3, 100] {
            store.save(id, &Counter { next: id as u32, steps: id as u32 + 1 }).await.unwrap();
        }
        assert_eq!(store.resume::<Ctx, Counter>(&ctx).await.unwrap(), 0);
        assert_eq!(*ctx.log.borrow(), vec![3, 12, 100]);
    }
}
