//! The meta store: a key/value store with etcd's semantics.
//!
//! Keys are UTF-8 strings ordered bytewise; values are bytes. Every change increments a
//! store-wide *revision*; each key remembers the revision that created it, the revision
//! of its last change and its version (number of puts since creation). Transactions
//! compare keys and then apply one of two lists of operations atomically. Watches deliver
//! every change under a prefix in revision order. Leases expire keys whose owner stopped
//! refreshing them: that is how roles register live sessions.
//!
//! Implementations: [`embedded::EmbeddedMetaKv`] (a file-backed store for standalone and
//! tests) and [`etcd::EtcdMetaKv`] (an etcd cluster). Every implementation must pass
//! [`testsuite`].

pub mod chroot;
pub mod embedded;
pub mod error;
pub mod etcd;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::{MetaError, Result};

pub type Revision = i64;
pub type LeaseId = i64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    /// Number of puts since the key was (re)created; 0 means "absent" in comparisons.
    pub version: i64,
    /// The lease the key is attached to (0 = none).
    pub lease: LeaseId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Equal,
    NotEqual,
    Greater,
    Less,
}

/// What a comparison looks at. An absent key has version, create and mod revision 0 and
/// no value (a value comparison against an absent key is false for every operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Value(Bytes),
    Version(i64),
    CreateRevision(Revision),
    ModRevision(Revision),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compare {
    pub key: String,
    pub op: CompareOp,
    pub target: CompareTarget,
}

impl Compare {
    /// True when `key` does not exist.
    pub fn absent(key: impl Into<String>) -> Self {
        Self { key: key.into(), op: CompareOp::Equal, target: CompareTarget::Version(0) }
    }
    /// True when `key` exists.
    pub fn present(key: impl Into<String>) -> Self {
        Self { key: key.into(), op: CompareOp::Greater, target: CompareTarget::Version(0) }
    }
    pub fn value_equals(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self { key: key.into(), op: CompareOp::Equal, target: CompareTarget::Value(value.into()) }
    }
    pub fn mod_revision_equals(key: impl Into<String>, revision: Revision) -> Self {
        Self { key: key.into(), op: CompareOp::Equal, target: CompareTarget::ModRevision(revision) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    Put { key: String, value: Bytes, lease: LeaseId },
    Delete { key: String },
    DeletePrefix { prefix: String },
    Get { key: String },
}

impl TxnOp {
    pub fn put(key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        TxnOp::Put { key: key.into(), value: value.into(), lease: 0 }
    }
    pub fn delete(key: impl Into<String>) -> Self {
        TxnOp::Delete { key: key.into() }
    }
}

/// If every comparison holds, `success` is applied, otherwise `failure`; atomically,
/// as one revision (when anything changes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    pub compares: Vec<Compare>,
    pub success: Vec<TxnOp>,
    pub failure: Vec<TxnOp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnOpResponse {
    Put,
    /// Number of keys deleted.
    Delete(u64),
    Get(Option<KeyValue>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResponse {
    pub succeeded: bool,
    /// The store revision after the transaction.
    pub revision: Revision,
    /// One entry per operation of the branch that ran.
    pub responses: Vec<TxnOpResponse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventKind {
    Put,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    pub kind: WatchEventKind,
    /// For deletes: the key, an empty value and `mod_revision` = the deleting revision.
    pub kv: KeyValue,
}

/// Events of a watch in revision order. Yields [`MetaError::Compacted`] if the
/// requested start revision is no longer available.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent>> + Send>>;

#[async_trait]
pub trait MetaKv: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// Every key starting with `prefix`, in key order.
    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>>;

    /// Stores `value` under `key` (attached to `lease` when non-zero); returns the new revision.
    async fn put(&self, key: &str, value: Bytes, lease: LeaseId) -> Result<Revision>;

    /// Deletes `key`; returns whether it existed.
    async fn delete(&self, key: &str) -> Result<bool>;

    /// Deletes every key under `prefix`; returns how many.
    async fn delete_prefix(&self, prefix: &str) -> Result<u64>;

    async fn txn(&self, txn: Txn) -> Result<TxnResponse>;

    /// Changes under `prefix` with revision >= `start_revision` (None: from now on).
    async fn watch_prefix(&self, prefix: &str, start_revision: Option<Revision>) -> Result<WatchStream>;

    /// Current store revision.
    async fn revision(&self) -> Result<Revision>;

    /// Grants a lease that expires `ttl` after its last refresh.
    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId>;

    /// Refreshes a lease; fails with [`MetaError::LeaseNotFound`] once it expired.
    async fn keep_alive(&self, lease: LeaseId) -> Result<()>;

    /// Revokes a lease, deleting its keys.
    async fn revoke_lease(&self, lease: LeaseId) -> Result<()>;

    fn kind(&self) -> &'static str;
}

pub type MetaKvRef = Arc<dyn MetaKv>;
