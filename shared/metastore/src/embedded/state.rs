//! The in-memory state of the meta store: keys, leases, the watch history and the
//! watchers, and how a committed change ([`Commit`], one log frame) is applied to them.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::warn;

use super::EmbeddedMetaKvConfig;
use crate::{KeyValue, LeaseId, Revision, WatchEvent, WatchEventKind};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub(super) value: Bytes,
    pub(super) create_revision: Revision,
    pub(super) mod_revision: Revision,
    pub(super) version: i64,
    pub(super) lease: LeaseId,
}

impl Entry {
    pub(super) fn to_kv(&self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: self.value.clone(),
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }

    pub(super) fn from_kv(kv: &KeyValue) -> Self {
        Entry {
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        }
    }
}

pub(super) struct Lease {
    pub(super) ttl: Duration,
    pub(super) deadline: Instant,
    pub(super) keys: BTreeSet<String>,
}

pub(super) struct Watcher {
    pub(super) prefix: String,
    /// Live events below this revision were replayed from history (or not asked for).
    pub(super) start: Revision,
    pub(super) tx: mpsc::Sender<WatchEvent>,
    /// Set when the watcher is cut off: (first revision not delivered, oldest kept).
    pub(super) overflow: Arc<Mutex<Option<(Revision, Revision)>>>,
}

/// One committed change: one frame of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Commit {
    /// The store revision after the change (unchanged when there are no events).
    pub(super) revision: Revision,
    pub(super) events: Vec<WatchEvent>,
    pub(super) grants: Vec<(LeaseId, Duration)>,
    pub(super) revokes: Vec<LeaseId>,
}

pub(super) struct State {
    pub(super) kvs: BTreeMap<String, Entry>,
    pub(super) revision: Revision,
    pub(super) leases: HashMap<LeaseId, Lease>,
    pub(super) next_lease_id: LeaseId,
    /// Recent events, in revision order; complete for revisions >= `oldest_history`.
    pub(super) history: VecDeque<WatchEvent>,
    pub(super) oldest_history: Revision,
    /// Approximate memory of `history`.
    pub(super) history_bytes: usize,
    history_limit: usize,
    history_max_bytes: usize,
    pub(super) watchers: Vec<Watcher>,
}

/// Approximate memory taken by an event kept in the history.
pub(super) fn event_bytes(event: &WatchEvent) -> usize {
    event.kv.key.len() + event.kv.value.len() + std::mem::size_of::<WatchEvent>()
}

impl State {
    pub(super) fn new(config: &EmbeddedMetaKvConfig) -> Self {
        State {
            kvs: BTreeMap::new(),
            revision: 0,
            leases: HashMap::new(),
            next_lease_id: 1,
            history: VecDeque::new(),
            oldest_history: 1,
            history_bytes: 0,
            history_limit: config.history_events,
            history_max_bytes: config.history_bytes,
            watchers: Vec::new(),
        }
    }

    /// Applies a commit (live or replayed from the log); an error means the commit
    /// does not fit the state, i.e. the log is inconsistent.
    pub(super) fn apply(&mut self, commit: Commit, now: Instant) -> std::result::Result<(), String> {
        let expected = if commit.events.is_empty() { self.revision } else { self.revision + 1 };
        if commit.revision != expected {
            return Err(format!("revision {} does not follow revision {}", commit.revision, self.revision));
        }
        for &(id, ttl) in &commit.grants {
            if id < self.next_lease_id || self.leases.contains_key(&id) {
                return Err(format!("lease {id} granted twice"));
            }
            self.leases.insert(id, Lease { ttl, deadline: now + ttl, keys: BTreeSet::new() });
            self.next_lease_id = id + 1;
        }
        for event in &commit.events {
            let key = &event.kv.key;
            if event.kv.mod_revision != commit.revision {
                return Err(format!("event on {key:?} has revision {}", event.kv.mod_revision));
            }
            let old = match event.kind {
                WatchEventKind::Put => {
                    if event.kv.lease != 0 {
                        let lease = self
                            .leases
                            .get_mut(&event.kv.lease)
                            .ok_or_else(|| format!("put of {key:?} with unknown lease {}", event.kv.lease))?;
                        lease.keys.insert(key.clone());
                    }
                    self.kvs.insert(key.clone(), Entry::from_kv(&event.kv))
                }
                WatchEventKind::Delete => {
                    Some(self.kvs.remove(key).ok_or_else(|| format!("delete of absent key {key:?}"))?)
                }
            };
            if let Some(old) = old {
                let same_lease = event.kind == WatchEventKind::Put && old.lease == event.kv.lease;
                if old.lease != 0
                    && !same_lease
                    && let Some(lease) = self.leases.get_mut(&old.lease)
                {
                    lease.keys.remove(key);
                }
            }
        }
        for id in &commit.revokes {
            match self.leases.remove(id) {
                Some(lease) if lease.keys.is_empty() => {}
                Some(lease) => return Err(format!("lease {id} revoked with {} keys attached", lease.keys.len())),
                None => return Err(format!("revoke of unknown lease {id}")),
            }
        }
        self.revision = commit.revision;
        if !commit.events.is_empty() {
            self.dispatch(&commit.events);
            self.record_history(commit.events);
        }
        Ok(())
    }

    fn dispatch(&mut self, events: &[WatchEvent]) {
        if self.watchers.is_empty() {
            return;
        }
        let oldest = self.oldest_history;
        self.watchers.retain(|watcher| {
            for event in events {
                if event.kv.mod_revision < watcher.start || !event.kv.key.starts_with(&watcher.prefix) {
                    continue;
                }
                match watcher.tx.try_send(event.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        warn!(
                            prefix = %watcher.prefix,
                            revision = event.kv.mod_revision,
                            "watcher fell too far behind; ending its stream with Compacted"
                        );
                        *watcher.overflow.lock() = Some((event.kv.mod_revision, oldest));
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            !watcher.tx.is_closed()
        });
    }

    fn record_history(&mut self, events: Vec<WatchEvent>) {
        self.history_bytes += events.iter().map(event_bytes).sum::<usize>();
        self.history.extend(events);
        let mut dropped = None;
        while self.history.len() > self.history_limit || self.history_bytes > self.history_max_bytes {
            let Some(event) = self.history.pop_front() else { break };
            self.history_bytes -= event_bytes(&event);
            dropped = Some(event.kv.mod_revision);
        }
        if let Some(revision) = dropped {
            // Keep whole revisions only: a start revision is either fully available or not.
            while let Some(event) = self.history.pop_front_if(|event| event.kv.mod_revision == revision) {
                self.history_bytes -= event_bytes(&event);
            }
            self.oldest_history = revision + 1;
        }
    }
}

pub(super) fn prefix_range<'a>(
    kvs: &'a BTreeMap<String, Entry>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
    kvs.range::<str, _>((Bound::Included(prefix), Bound::Unbounded)).take_while(move |(key, _)| key.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::super::testutil::*;
    use super::super::{EmbeddedMetaKv, EmbeddedMetaKvConfig};
    use super::*;
    use crate::{MetaError, MetaKv, testsuite};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_history_is_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { history_events: 10, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        for i in 1..=30 {
            kv.put(&format!("k{i:02}"), b("v"), 0).await.expect("put");
        }
        match kv.watch_prefix("", Some(5)).await {
            Err(MetaError::Compacted { requested: 5, oldest: 21 }) => {}
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted, got a stream"),
        }
        let mut watch = kv.watch_prefix("", Some(21)).await.expect("watch from the oldest kept revision");
        for revision in 21..=30 {
            let event = testsuite::next_event(&mut watch, Duration::from_secs(5)).await;
            assert_eq!(event.kv.mod_revision, revision);
        }
        testsuite::assert_no_event(&mut watch, Duration::from_millis(100)).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_history_is_bounded_in_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { history_bytes: 100 << 10, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        for i in 1..=20 {
            kv.put(&format!("k{i:02}"), Bytes::from(vec![0u8; 10 << 10]), 0).await.expect("put");
        }
        let state = kv.core.state.read();
        assert!(state.history_bytes <= 100 << 10);
        assert!((9..=10).contains(&state.history.len()), "{} events kept", state.history.len());
        assert_eq!(state.oldest_history, state.history.front().expect("kept events").kv.mod_revision);
        assert_eq!(state.history_bytes, state.history.iter().map(event_bytes).sum::<usize>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_watcher_is_cut_off_without_blocking_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = EmbeddedMetaKvConfig { watch_buffer_events: 8, ..EmbeddedMetaKvConfig::default() };
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), config).expect("open");
        let mut slow = kv.watch_prefix("", None).await.expect("watch");
        let mut other_prefix = kv.watch_prefix("elsewhere/", None).await.expect("watch");
        for i in 1..=100 {
            kv.put(&format!("k{i:03}"), b("v"), 0).await.expect("writers are never blocked by watchers");
        }
        for revision in 1..=8 {
            let event = testsuite::next_event(&mut slow, Duration::from_secs(5)).await;
            assert_eq!(event.kv.mod_revision, revision);
        }
        match tokio::time::timeout(Duration::from_secs(5), slow.next()).await {
            Ok(Some(Err(MetaError::Compacted { requested: 9, .. }))) => {}
            other => panic!("expected Compacted at revision 9, got {other:?}"),
        }
        assert!(slow.next().await.is_none(), "the stream ends after the error");
        // A watcher with nothing to deliver is unaffected.
        kv.put("elsewhere/x", b("v"), 0).await.expect("put");
        let event = testsuite::next_event(&mut other_prefix, Duration::from_secs(5)).await;
        assert_eq!(event.kv.key, "elsewhere/x");
        assert_eq!(kv.core.state.read().watchers.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_a_watch_releases_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let watch = kv.watch_prefix("", None).await.expect("watch");
        let _kept = kv.watch_prefix("", None).await.expect("watch");
        assert_eq!(kv.core.state.read().watchers.len(), 2);
        drop(watch);
        kv.put("k", b("v"), 0).await.expect("put");
        assert_eq!(kv.core.state.read().watchers.len(), 1);
    }
}
