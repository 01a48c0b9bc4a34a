//! The group-commit writer thread.
//!
//! ```text
//!  callers ──append──► queue ──► writer thread: take a group ─► write ─► one fdatasync ─► publish (apply, answer)
//!                                  (everything queued meanwhile)
//! ```
//!
//! One thread owns a store's open log file. While it writes and syncs one group, new
//! appends queue up; it then takes all of them (up to [`GroupConfig`]'s limits) as the
//! next group, so concurrent writers share one fdatasync and the sync rate, not the
//! writer count, bounds throughput. The store says how to write a group and how to
//! publish it ([`GroupCommit`]); this module fixes the order: *write, sync, publish*, so
//! a caller is never answered, and no reader sees a change, before it is durable.
//!
//! Control messages (a truncation, say) are barriers: the appends queued before one are
//! committed, then it runs, then the appends after it. Dropping the [`GroupWriter`]
//! commits what was queued and stops the thread.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tracing::{debug, error};

use crate::FsyncPolicy;

/// A store's side of the writer thread.
pub trait GroupCommit: Send + 'static {
    /// One queued append (its data and the channel to answer it on).
    type Append: Send + 'static;
    /// A request that is not an append; it runs between groups.
    type Control: Send + 'static;
    /// A group after [`GroupCommit::write`], waiting for the sync.
    type Pending;

    /// Size of an append, counted against [`GroupConfig::max_bytes`].
    fn append_bytes(append: &Self::Append) -> usize;

    /// Encodes and writes a group, without syncing. Failures are recorded in the pending
    /// group, to be answered by [`GroupCommit::publish`].
    fn write(&mut self, group: Vec<Self::Append>) -> Staged<Self::Pending>;

    /// Forces everything written so far to stable storage (one fdatasync). Called once per
    /// group that asked for it, and only under [`FsyncPolicy::Always`].
    fn sync(&mut self) -> io::Result<()>;

    /// Makes a written group visible and answers its callers. `synced` is the result of
    /// the sync (`Ok` when none was needed): on an error nothing of the group may be
    /// acknowledged.
    fn publish(&mut self, pending: Self::Pending, synced: io::Result<()>);

    /// Runs a control request.
    fn control(&mut self, control: Self::Control);
}

/// A group written by [`GroupCommit::write`].
#[derive(Debug)]
pub struct Staged<P> {
    /// What [`GroupCommit::publish`] needs.
    pub pending: P,
    /// Whether the group must be synced before it is published: false when nothing was
    /// written, the write failed, or no append asked for durability.
    pub needs_sync: bool,
}

/// Limits of a group, and the sync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// Most appends in one group.
    pub max_appends: usize,
    /// A group is closed once its appends reach this many bytes
    /// ([`GroupCommit::append_bytes`]).
    pub max_bytes: usize,
    /// Whether groups are synced.
    pub fsync: FsyncPolicy,
}

enum Msg<A, C> {
    Append(A),
    Control(C),
    Stop,
}

/// The handle of a writer thread; dropping it commits what is queued, then stops and
/// joins the thread.
pub struct GroupWriter<A, C> {
    sender: GroupSender<A, C>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

/// Queues requests for a writer thread; cloneable, for tasks that write besides the
/// handle's owner.
pub struct GroupSender<A, C> {
    tx: mpsc::Sender<Msg<A, C>>,
}

impl<A, C> Clone for GroupSender<A, C> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone() }
    }
}

impl<A: Send + 'static, C: Send + 'static> GroupSender<A, C> {
    /// Queues an append. Gives it back if the writer has stopped.
    pub fn append(&self, append: A) -> Result<(), A> {
        self.tx.send(Msg::Append(append)).map_err(|mpsc::SendError(msg)| match msg {
            Msg::Append(append) => append,
            Msg::Control(_) | Msg::Stop => unreachable!("an append was sent"),
        })
    }

    /// Queues a control request. Gives it back if the writer has stopped.
    pub fn control(&self, control: C) -> Result<(), C> {
        self.tx.send(Msg::Control(control)).map_err(|mpsc::SendError(msg)| match msg {
            Msg::Control(control) => control,
            Msg::Append(_) | Msg::Stop => unreachable!("a control request was sent"),
        })
    }
}

impl<A: Send + 'static, C: Send + 'static> GroupWriter<A, C> {
    /// Starts a writer thread named `name` that commits through `handler`.
    pub fn spawn<H>(name: &str, config: GroupConfig, handler: H) -> io::Result<Self>
    where
        H: GroupCommit<Append = A, Control = C>,
    {
        let (tx, rx) = mpsc::channel();
        let thread_name = name.to_owned();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            run(handler, &rx, config);
            debug!(writer = %thread_name, "writer thread stopped");
        })?;
        Ok(Self { sender: GroupSender { tx }, thread: Some(thread), name: name.to_owned() })
    }

    /// Queues an append. Gives it back if the writer has stopped.
    pub fn append(&self, append: A) -> Result<(), A> {
        self.sender.append(append)
    }

    /// Queues a control request. Gives it back if the writer has stopped.
    pub fn control(&self, control: C) -> Result<(), C> {
        self.sender.control(control)
    }

    /// Another sender for the same thread. It does not keep the thread alive: dropping
    /// the [`GroupWriter`] stops it, and later requests are given back.
    pub fn sender(&self) -> GroupSender<A, C> {
        self.sender.clone()
    }
}

impl<A, C> Drop for GroupWriter<A, C> {
    fn drop(&mut self) {
        // Requests queued before the stop are still committed. A failed send means the
        // thread is gone already.
        let _ = self.sender.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!(writer = %self.name, "writer thread panicked");
        }
    }
}

fn run<H: GroupCommit>(mut handler: H, rx: &mpsc::Receiver<Msg<H::Append, H::Control>>, config: GroupConfig) {
    let mut next: Option<Msg<H::Append, H::Control>> = None;
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => match rx.recv() {
                Ok(msg) => msg,
                Err(_) => return,
            },
        };
        match msg {
            Msg::Stop => return,
            Msg::Control(control) => handler.control(control),
            Msg::Append(first) => {
                let mut bytes = H::append_bytes(&first);
                let mut group = vec![first];
                while group.len() < config.max_appends && bytes < config.max_bytes {
                    match rx.try_recv() {
                        Ok(Msg::Append(append)) => {
                            bytes = bytes.saturating_add(H::append_bytes(&append));
                            group.push(append);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let staged = handler.write(group);
                let synced =
                    if staged.needs_sync && config.fsync == FsyncPolicy::Always { handler.sync() } else { Ok(()) };
                handler.publish(staged.pending, synced);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier, Mutex};
    use std::time::Duration;

    use super::*;

    /// What the test store has done, in order.
    #[derive(Debug, Default)]
    struct Journal {
        /// Values written, in order.
        written: Vec<u64>,
        /// How many values are durable (covered by a sync).
        durable: usize,
        syncs: usize,
        groups: Vec<Vec<u64>>,
        controls: Vec<&'static str>,
    }

    /// An append: a value, whether it must be durable, and where to send the ack (the
    /// number of durable values at the time of the ack).
    struct Append {
        value: u64,
        durable: bool,
        ack: mpsc::Sender<io::Result<usize>>,
    }

    struct TestStore {
        journal: Arc<Mutex<Journal>>,
        sync_delay: Duration,
        fail_sync: bool,
    }

    impl GroupCommit for TestStore {
        type Append = Append;
        type Control = &'static str;
        type Pending = Vec<Append>;

        fn append_bytes(_: &Append) -> usize {
            8
        }

        fn write(&mut self, group: Vec<Append>) -> Staged<Vec<Append>> {
            let mut j = self.journal.lock().expect("journal");
            j.written.extend(group.iter().map(|a| a.value));
            j.groups.push(group.iter().map(|a| a.value).collect());
            let needs_sync = group.iter().any(|a| a.durable);
            Staged { pending: group, needs_sync }
        }

        fn sync(&mut self) -> io::Result<()> {
            std::thread::sleep(self.sync_delay);
            if self.fail_sync {
                return Err(io::Error::other("disk on fire"));
            }
            let mut j = self.journal.lock().expect("journal");
            j.durable = j.written.len();
            j.syncs += 1;
            Ok(())
        }

        fn publish(&mut self, pending: Vec<Append>, synced: io::Result<()>) {
            let durable = self.journal.lock().expect("journal").durable;
            for append in pending {
                let answer = match &synced {
                    Ok(()) => Ok(durable),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                let _ = append.ack.send(answer);
            }
        }

        fn control(&mut self, control: &'static str) {
            self.journal.lock().expect("journal").controls.push(control);
        }
    }

    fn spawn(
        fsync: FsyncPolicy,
        max_appends: usize,
        fail_sync: bool,
    ) -> (GroupWriter<Append, &'static str>, Arc<Mutex<Journal>>) {
        let journal = Arc::new(Mutex::new(Journal::default()));
        let store = TestStore { journal: journal.clone(), sync_delay: Duration::from_millis(2), fail_sync };
        let config = GroupConfig { max_appends, max_bytes: usize::MAX, fsync };
        (GroupWriter::spawn("test-writer", config, store).expect("spawn"), journal)
    }

    fn append(
        writer: &GroupSender<Append, &'static str>,
        value: u64,
        durable: bool,
    ) -> mpsc::Receiver<io::Result<usize>> {
        let (ack, rx) = mpsc::channel();
        assert!(writer.append(Append { value, durable, ack }).is_ok(), "writer running");
        rx
    }

    #[test]
    fn concurrent_writers_share_syncs_and_are_acked_only_when_durable() {
        let (writer, journal) = spawn(FsyncPolicy::Always, 1024, false);
        const THREADS: u64 = 8;
        const PER_THREAD: u64 = 25;
        let start = Arc::new(Barrier::new(THREADS as usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let sender = writer.sender();
                let journal = journal.clone();
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..PER_THREAD {
                        let value = t * 1000 + i;
                        let durable_at_ack = append(&sender, value, true).recv().expect("ack").expect("committed");
                        let j = journal.lock().expect("journal");
                        let index = j.written.iter().position(|v| *v == value).expect("written");
                        assert!(index < durable_at_ack, "value {value} acknowledged before it was synced");
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().expect("writer thread"));
        let j = journal.lock().expect("journal");
        let total = (THREADS * PER_THREAD) as usize;
        assert_eq!(j.written.len(), total);
        assert_eq!(j.durable, total);
        assert!(j.syncs < total, "{} syncs for {total} appends: no group commit", j.syncs);
        assert!(j.groups.iter().any(|g| g.len() > 1), "some group holds several appends");
    }

    #[test]
    fn groups_respect_the_limit_and_controls_are_barriers() {
        let (writer, journal) = spawn(FsyncPolicy::Always, 3, false);
        // Stall the writer on a first append so the rest queue up behind it.
        let first = append(&writer.sender(), 0, true);
        let acks: Vec<_> = (1..=5).map(|v| append(&writer.sender(), v, true)).collect();
        writer.control("truncate").expect("control");
        let after: Vec<_> = (6..=7).map(|v| append(&writer.sender(), v, true)).collect();
        for rx in std::iter::once(first).chain(acks).chain(after) {
            rx.recv().expect("ack").expect("committed");
        }
        drop(writer);
        let j = journal.lock().expect("journal");
        assert!(j.groups.iter().all(|g| g.len() <= 3), "{:?}", j.groups);
        assert_eq!(j.written, (0..=7).collect::<Vec<_>>(), "appends keep their order");
        assert_eq!(j.controls, vec!["truncate"]);
        // No group spans the barrier.
        assert!(j.groups.iter().all(|g| g.iter().all(|v| *v <= 5) || g.iter().all(|v| *v >= 6)), "{:?}", j.groups);
    }

    #[test]
    fn never_policy_and_volatile_groups_skip_the_sync() {
        let (writer, journal) = spawn(FsyncPolicy::Never, 1024, false);
        append(&writer.sender(), 1, true).recv().expect("ack").expect("committed");
        assert_eq!(journal.lock().expect("journal").syncs, 0, "Never does not sync");
        drop(writer);

        let (writer, journal) = spawn(FsyncPolicy::Always, 1024, false);
        append(&writer.sender(), 1, false).recv().expect("ack").expect("committed");
        assert_eq!(journal.lock().expect("journal").syncs, 0, "nothing asked for durability");
        append(&writer.sender(), 2, true).recv().expect("ack").expect("committed");
        assert_eq!(journal.lock().expect("journal").syncs, 1);
    }

    #[test]
    fn a_failed_sync_fails_the_group() {
        let (writer, journal) = spawn(FsyncPolicy::Always, 1024, true);
        let err = append(&writer.sender(), 1, true).recv().expect("ack").expect_err("the sync failed");
        assert_eq!(err.to_string(), "disk on fire");
        assert_eq!(journal.lock().expect("journal").durable, 0);
    }

    #[test]
    fn dropping_the_writer_commits_the_queue_then_refuses() {
        let (writer, journal) = spawn(FsyncPolicy::Always, 1024, false);
        let sender = writer.sender();
        let acks: Vec<_> = (1..=20).map(|v| append(&sender, v, true)).collect();
        drop(writer);
        for rx in acks {
            rx.recv().expect("queued before the stop, so answered").expect("committed");
        }
        assert_eq!(journal.lock().expect("journal").written.len(), 20);
        let (ack, _rx) = mpsc::channel();
        let back = sender.append(Append { value: 99, durable: true, ack }).expect_err("stopped");
        assert_eq!(back.value, 99, "the append is given back");
        assert_eq!(sender.control("late"), Err("late"));
    }
}
