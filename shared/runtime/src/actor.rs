//! The actix actor at the core of each role.
//!
//! Most roles keep their state behind an `Arc` shared with read-only request handlers
//! and use an actor to *serialise* every change: [`Exclusive`] runs one job at a time on
//! the shared core, each to completion (awaits included, `AtomicResponse`) before the
//! next starts. A job is any async closure over the core, so a new request that changes
//! state needs no message type of its own: its handler calls
//! `exclusive.run("what", move |core| async move { core.method(req).await })`.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use actix::prelude::*;
use fv_common::{FvError, FvResult};
use tracing::Instrument;

/// Converts an actor mailbox failure (the actor stopped) into a retriable error.
pub fn mailbox_error(e: actix::MailboxError) -> FvError {
    FvError::unavailable(format!("actor stopped: {e}"))
}

/// The actor that serialises the jobs run on a core of type `C`.
pub struct Exclusive<C: 'static> {
    core: Arc<C>,
}

impl<C: 'static> Actor for Exclusive<C> {
    type Context = Context<Self>;
}

type JobFuture<T> = Pin<Box<dyn Future<Output = FvResult<T>>>>;

/// One job: a closure that makes the future to run exclusively on the core.
struct Job<C, T> {
    make: Box<dyn FnOnce(Arc<C>) -> JobFuture<T> + Send>,
    _result: PhantomData<fn() -> T>,
}

impl<C: 'static, T: 'static> Message for Job<C, T> {
    type Result = FvResult<T>;
}

impl<C: 'static, T: 'static> Handler<Job<C, T>> for Exclusive<C> {
    type Result = AtomicResponse<Self, FvResult<T>>;

    fn handle(&mut self, job: Job<C, T>, _ctx: &mut Self::Context) -> Self::Result {
        AtomicResponse::new(Box::pin((job.make)(self.core.clone()).into_actor(self)))
    }
}

/// A cloneable handle to an [`Exclusive`] actor.
pub struct ExclusiveHandle<C: 'static> {
    addr: Addr<Exclusive<C>>,
}

impl<C: 'static> Clone for ExclusiveHandle<C> {
    fn clone(&self) -> Self {
        ExclusiveHandle { addr: self.addr.clone() }
    }
}

impl<C: Send + Sync + 'static> ExclusiveHandle<C> {
    /// Starts the actor in the current actix system (on the current arbiter).
    pub fn start(core: Arc<C>) -> ExclusiveHandle<C> {
        ExclusiveHandle { addr: Exclusive { core }.start() }
    }

    fn job<T, F, Fut>(name: &'static str, f: F) -> Job<C, T>
    where
        F: FnOnce(Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<T>> + 'static,
        T: 'static,
    {
        let make = move |core: Arc<C>| -> JobFuture<T> {
            let span = tracing::debug_span!("actor", job = name);
            Box::pin(f(core).instrument(span))
        };
        Job { make: Box::new(make), _result: PhantomData }
    }

    /// Runs `f` on the core once every earlier job has finished, and waits for its result.
    /// `name` labels the job's span.
    pub async fn run<T, F, Fut>(&self, name: &'static str, f: F) -> FvResult<T>
    where
        F: FnOnce(Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<T>> + 'static,
        T: Send + 'static,
    {
        self.addr.send(Self::job(name, f)).await.map_err(mailbox_error)?
    }

    /// Queues `f` without waiting for it (its result is dropped).
    pub fn spawn<T, F, Fut>(&self, name: &'static str, f: F)
    where
        F: FnOnce(Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<T>> + 'static,
        T: Send + 'static,
    {
        self.addr.do_send(Self::job(name, f));
    }

    /// Runs `f` like [`ExclusiveHandle::run`]; once it succeeded, queues `then` (whose
    /// result is dropped) without waiting for it: a change followed by the round that
    /// acts on it (indexcoord's scheduling, querycoord's reconciliation).
    pub async fn run_then<F, Fut, G, GFut>(
        &self,
        name: &'static str,
        f: F,
        then_name: &'static str,
        then: G,
    ) -> FvResult<()>
    where
        F: FnOnce(Arc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = FvResult<()>> + 'static,
        G: FnOnce(Arc<C>) -> GFut + Send + 'static,
        GFut: Future<Output = FvResult<()>> + 'static,
    {
        self.run(name, f).await?;
        self.spawn(then_name, then);
        Ok(())
    }

    /// Whether the actor still runs.
    pub fn connected(&self) -> bool {
        self.addr.connected()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Counter {
        running: AtomicUsize,
        overlaps: AtomicUsize,
        done: AtomicUsize,
    }

    impl Counter {
        async fn step(&self) -> FvResult<usize> {
            if self.running.fetch_add(1, Ordering::SeqCst) > 0 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            Ok(self.done.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    #[actix_rt::test]
    async fn jobs_run_one_at_a_time_awaits_included() {
        let core = Arc::new(Counter::default());
        let handle = ExclusiveHandle::start(core.clone());
        let runs = (0..20).map(|_| handle.run("step", |c| async move { c.step().await }));
        let mut results = futures::future::join_all(runs).await.into_iter().collect::<FvResult<Vec<_>>>().unwrap();
        results.sort();
        assert_eq!(results, (1..=20).collect::<Vec<_>>());
        assert_eq!(core.overlaps.load(Ordering::SeqCst), 0, "two jobs overlapped");
    }

    #[actix_rt::test]
    async fn errors_and_spawned_jobs_come_through() {
        let core = Arc::new(Counter::default());
        let handle = ExclusiveHandle::start(core.clone());
        let err = handle.run("fail", |_c| async move { Err::<(), _>(FvError::internal("boom")) }).await.unwrap_err();
        assert!(err.message.contains("boom"), "{err:?}");
        handle.spawn("step", |c| async move { c.step().await });
        // A job queued after the spawned one sees it finished.
        let n = handle.run("read", |c| async move { Ok(c.done.load(Ordering::SeqCst)) }).await.unwrap();
        assert_eq!(n, 1);
    }
}
