//! Evaluating writes against the committed state plus the effects of the batch so far
//! (the writer's view), and validating requests.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Bound;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::info;

use super::state::{Commit, Entry, State, prefix_range};
use crate::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, MetaError, Result, Revision, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchEvent, WatchEventKind,
};

#[derive(Debug)]
pub(super) enum WriteOp {
    Put {
        key: String,
        value: Bytes,
        lease: LeaseId,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
    Txn(Txn),
    GrantLease {
        ttl: Duration,
    },
    RevokeLease {
        lease: LeaseId,
    },
    /// Sent by the lease task: revoke if still present and past its deadline.
    ExpireLease {
        lease: LeaseId,
    },
}

#[derive(Debug)]
pub(super) enum WriteReply {
    Revision(Revision),
    Deleted(u64),
    Txn(TxnResponse),
    Lease(LeaseId),
    Done,
}

/// The committed state with the uncommitted effects of the batch being evaluated on top.
pub(super) struct Overlay<'a> {
    base: &'a State,
    now: Instant,
    changes: BTreeMap<String, Option<Entry>>,
    revision: Revision,
    next_lease_id: LeaseId,
    granted: HashSet<LeaseId>,
    revoked: HashSet<LeaseId>,
}

impl<'a> Overlay<'a> {
    pub(super) fn new(base: &'a State, now: Instant) -> Self {
        Overlay {
            base,
            now,
            changes: BTreeMap::new(),
            revision: base.revision,
            next_lease_id: base.next_lease_id,
            granted: HashSet::new(),
            revoked: HashSet::new(),
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        match self.changes.get(key) {
            Some(change) => change.as_ref(),
            None => self.base.kvs.get(key),
        }
    }

    fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: BTreeSet<&str> = prefix_range(&self.base.kvs, prefix)
            .map(|(key, _)| key.as_str())
            .filter(|key| !self.changes.contains_key(*key))
            .collect();
        keys.extend(
            self.changes
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(key, _)| key.starts_with(prefix))
                .filter(|(_, change)| change.is_some())
                .map(|(key, _)| key.as_str()),
        );
        keys.into_iter().map(str::to_owned).collect()
    }

    fn lease_exists(&self, lease: LeaseId) -> bool {
        !self.revoked.contains(&lease) && (self.granted.contains(&lease) || self.base.leases.contains_key(&lease))
    }

    /// Exists and has not reached its deadline.
    fn lease_alive(&self, lease: LeaseId) -> bool {
        self.lease_exists(lease)
            && (self.granted.contains(&lease) || self.base.leases.get(&lease).is_some_and(|l| l.deadline > self.now))
    }

    fn put(&mut self, key: &str, value: Bytes, lease: LeaseId, revision: Revision, events: &mut Vec<WatchEvent>) {
        let previous = self.entry(key);
        let entry = Entry {
            value,
            create_revision: previous.map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: previous.map_or(1, |p| p.version + 1),
            lease,
        };
        events.push(WatchEvent { kind: WatchEventKind::Put, kv: entry.to_kv(key) });
        self.changes.insert(key.to_owned(), Some(entry));
    }

    fn delete(&mut self, key: &str, revision: Revision, events: &mut Vec<WatchEvent>) -> bool {
        if self.entry(key).is_none() {
            return false;
        }
        events.push(delete_event(key, revision));
        self.changes.insert(key.to_owned(), None);
        true
    }

    fn compare_holds(&self, compare: &Compare) -> bool {
        let entry = self.entry(&compare.key);
        let ordering = match &compare.target {
            // etcd: a value comparison against an absent key is false for every operator.
            CompareTarget::Value(value) => match entry {
                Some(entry) => entry.value.as_ref().cmp(value.as_ref()),
                None => return false,
            },
            CompareTarget::Version(version) => entry.map_or(0, |e| e.version).cmp(version),
            CompareTarget::CreateRevision(revision) => entry.map_or(0, |e| e.create_revision).cmp(revision),
            CompareTarget::ModRevision(revision) => entry.map_or(0, |e| e.mod_revision).cmp(revision),
        };
        match compare.op {
            CompareOp::Equal => ordering == Ordering::Equal,
            CompareOp::NotEqual => ordering != Ordering::Equal,
            CompareOp::Greater => ordering == Ordering::Greater,
            CompareOp::Less => ordering == Ordering::Less,
        }
    }

    /// Evaluates one request. On success the overlay includes its effects and the
    /// returned commit (if any) is what must be logged and applied.
    pub(super) fn eval(&mut self, op: WriteOp) -> Result<(WriteReply, Option<Commit>)> {
        let revision = self.revision + 1;
        let mut events = Vec::new();
        match op {
            WriteOp::Put { key, value, lease } => {
                validate_key(&key)?;
                validate_value(&key, &value)?;
                if lease != 0 && !self.lease_alive(lease) {
                    return Err(MetaError::LeaseNotFound { lease });
                }
                self.put(&key, value, lease, revision, &mut events);
                Ok((WriteReply::Revision(revision), Some(self.commit(revision, events))))
            }
            WriteOp::Delete { key } => {
                validate_key(&key)?;
                if self.delete(&key, revision, &mut events) {
                    Ok((WriteReply::Deleted(1), Some(self.commit(revision, events))))
                } else {
                    Ok((WriteReply::Deleted(0), None))
                }
            }
            WriteOp::DeletePrefix { prefix } => {
                for key in self.keys_with_prefix(&prefix) {
                    self.delete(&key, revision, &mut events);
                }
                if events.is_empty() {
                    return Ok((WriteReply::Deleted(0), None));
                }
                Ok((WriteReply::Deleted(events.len() as u64), Some(self.commit(revision, events))))
            }
            WriteOp::Txn(txn) => {
                validate_txn(&txn)?;
                let succeeded = txn.compares.iter().all(|compare| self.compare_holds(compare));
                let ops = if succeeded { txn.success } else { txn.failure };
                // Validate before changing anything, so a failing txn applies nothing.
                for op in &ops {
                    if let TxnOp::Put { lease, .. } = op
                        && *lease != 0
                        && !self.lease_alive(*lease)
                    {
                        return Err(MetaError::LeaseNotFound { lease: *lease });
                    }
                }
                let mut responses = Vec::with_capacity(ops.len());
                for op in ops {
                    responses.push(match op {
                        TxnOp::Put { key, value, lease } => {
                            self.put(&key, value, lease, revision, &mut events);
                            TxnOpResponse::Put
                        }
                        TxnOp::Delete { key } => {
                            TxnOpResponse::Delete(u64::from(self.delete(&key, revision, &mut events)))
                        }
                        TxnOp::DeletePrefix { prefix } => {
                            let keys = self.keys_with_prefix(&prefix);
                            for key in &keys {
                                self.delete(key, revision, &mut events);
                            }
                            TxnOpResponse::Delete(keys.len() as u64)
                        }
                        TxnOp::Get { key } => TxnOpResponse::Get(self.entry(&key).map(|entry| entry.to_kv(&key))),
                    });
                }
                let commit = if events.is_empty() { None } else { Some(self.commit(revision, events)) };
                let response = TxnResponse { succeeded, revision: self.revision, responses };
                Ok((WriteReply::Txn(response), commit))
            }
            WriteOp::GrantLease { ttl } => {
                if ttl.is_zero() || u64::try_from(ttl.as_nanos()).is_err() {
                    return Err(MetaError::InvalidArgument { reason: format!("invalid lease TTL {ttl:?}") });
                }
                let lease = self.next_lease_id;
                self.next_lease_id += 1;
                self.granted.insert(lease);
                let commit = Commit { revision: self.revision, grants: vec![(lease, ttl)], ..Commit::default() };
                Ok((WriteReply::Lease(lease), Some(commit)))
            }
            WriteOp::RevokeLease { lease } => {
                if !self.lease_exists(lease) {
                    return Err(MetaError::LeaseNotFound { lease });
                }
                Ok((WriteReply::Done, Some(self.revoke(lease, revision))))
            }
            WriteOp::ExpireLease { lease } => {
                let expired = self.lease_exists(lease)
                    && !self.granted.contains(&lease)
                    && self.base.leases.get(&lease).is_some_and(|l| l.deadline <= self.now);
                if !expired {
                    return Ok((WriteReply::Done, None));
                }
                let commit = self.revoke(lease, revision);
                info!(lease, deleted_keys = commit.events.len(), "lease expired");
                Ok((WriteReply::Done, Some(commit)))
            }
        }
    }

    fn revoke(&mut self, lease: LeaseId, revision: Revision) -> Commit {
        let mut candidates: BTreeSet<String> = self.base.leases.get(&lease).map(|l| l.keys.clone()).unwrap_or_default();
        candidates.extend(self.changes.keys().cloned());
        let mut events = Vec::new();
        for key in candidates {
            if self.entry(&key).is_some_and(|entry| entry.lease == lease) {
                self.delete(&key, revision, &mut events);
            }
        }
        self.revoked.insert(lease);
        let mut commit = if events.is_empty() {
            Commit { revision: self.revision, ..Commit::default() }
        } else {
            self.commit(revision, events)
        };
        commit.revokes.push(lease);
        commit
    }

    fn commit(&mut self, revision: Revision, events: Vec<WatchEvent>) -> Commit {
        self.revision = revision;
        Commit { revision, events, ..Commit::default() }
    }
}

pub(super) fn delete_event(key: &str, revision: Revision) -> WatchEvent {
    WatchEvent {
        kind: WatchEventKind::Delete,
        kv: KeyValue {
            key: key.to_owned(),
            value: Bytes::new(),
            create_revision: 0,
            mod_revision: revision,
            version: 0,
            lease: 0,
        },
    }
}

pub(super) fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(MetaError::InvalidArgument { reason: "empty key".to_owned() });
    }
    if u32::try_from(key.len()).is_err() {
        return Err(MetaError::InvalidArgument { reason: format!("key of {} bytes is too long", key.len()) });
    }
    Ok(())
}

/// Largest value one key may hold. etcd refuses requests above 1.5 MiB by default; the
/// embedded store is generous, but bounded so that every commit fits in a log frame
/// that reading accepts (see [`MAX_COMMIT_BYTES`]).
pub(super) const MAX_VALUE_BYTES: usize = 256 << 20;
/// Largest sum of key and value sizes one transaction may write. A commit's log frame
/// holds a little more than this; frames above 1 GiB are refused when the log is read,
/// so a larger commit would be acknowledged and then lost or unreadable after a restart.
pub(super) const MAX_COMMIT_BYTES: usize = 768 << 20;

fn validate_value(key: &str, value: &Bytes) -> Result<()> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(MetaError::InvalidArgument {
            reason: format!("value of {} bytes for key {key:?} is too large (at most {MAX_VALUE_BYTES})", value.len()),
        });
    }
    Ok(())
}

/// Checks keys, and (as etcd does) that no branch writes one key twice.
pub(super) fn validate_txn(txn: &Txn) -> Result<()> {
    for compare in &txn.compares {
        validate_key(&compare.key)?;
    }
    for branch in [&txn.success, &txn.failure] {
        let written: usize = branch
            .iter()
            .map(|op| match op {
                TxnOp::Put { key, value, .. } => key.len() + value.len(),
                _ => 0,
            })
            .sum();
        if written > MAX_COMMIT_BYTES {
            return Err(MetaError::InvalidArgument {
                reason: format!("a transaction writing {written} bytes is too large (at most {MAX_COMMIT_BYTES})"),
            });
        }
    }
    for branch in [&txn.success, &txn.failure] {
        let mut puts = BTreeSet::new();
        for op in branch {
            match op {
                TxnOp::Put { key, value, .. } => {
                    validate_key(key)?;
                    validate_value(key, value)?;
                    if !puts.insert(key.as_str()) {
                        return Err(duplicate_key(key));
                    }
                }
                TxnOp::Delete { key } | TxnOp::Get { key } => validate_key(key)?,
                TxnOp::DeletePrefix { .. } => {}
            }
        }
        for op in branch {
            match op {
                TxnOp::Delete { key } if puts.contains(key.as_str()) => return Err(duplicate_key(key)),
                TxnOp::DeletePrefix { prefix } => {
                    if let Some(key) = puts.iter().find(|key| key.starts_with(prefix.as_str())) {
                        return Err(duplicate_key(key));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn duplicate_key(key: &str) -> MetaError {
    MetaError::InvalidArgument { reason: format!("duplicate key {key:?} given in txn request") }
}

#[cfg(test)]
mod tests {
    use super::super::EmbeddedMetaKv;
    use super::super::testutil::*;
    use super::*;
    use crate::MetaKv;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_requests_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        assert!(matches!(kv.put("", b("v"), 0).await, Err(MetaError::InvalidArgument { .. })));
        assert!(matches!(kv.get("").await, Err(MetaError::InvalidArgument { .. })));
        assert!(matches!(kv.grant_lease(Duration::ZERO).await, Err(MetaError::InvalidArgument { .. })));
        let duplicate =
            Txn { compares: vec![], success: vec![TxnOp::put("k", "1"), TxnOp::put("k", "2")], failure: vec![] };
        assert!(matches!(kv.txn(duplicate).await, Err(MetaError::InvalidArgument { .. })));
        let overlapping = Txn {
            compares: vec![],
            success: vec![],
            failure: vec![TxnOp::put("p/k", "1"), TxnOp::DeletePrefix { prefix: "p/".to_owned() }],
        };
        assert!(matches!(kv.txn(overlapping).await, Err(MetaError::InvalidArgument { .. })));
        assert_eq!(kv.revision().await.expect("revision"), 0, "nothing was applied");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_too_large_for_a_readable_log_frame_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let big = Bytes::from(vec![7u8; MAX_VALUE_BYTES + 1]);
        assert!(matches!(kv.put("k", big, 0).await, Err(MetaError::InvalidArgument { .. })));
        // Four values each under the value limit, together over the commit limit.
        let quarter = Bytes::from(vec![7u8; MAX_COMMIT_BYTES / 4 + 1]);
        let ops = (0..4).map(|i| TxnOp::put(format!("k{i}"), quarter.clone())).collect();
        let txn = Txn { compares: vec![], success: ops, failure: vec![] };
        assert!(matches!(kv.txn(txn).await, Err(MetaError::InvalidArgument { .. })));
        assert_eq!(kv.revision().await.expect("revision"), 0, "nothing was applied");
    }
}
