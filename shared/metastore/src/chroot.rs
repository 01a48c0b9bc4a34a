//! A [`MetaKv`] confined to a key prefix ("chroot"), as GreptimeDB's `ChrootKvBackend`.
//!
//! Every key and prefix is prefixed with the root on the way in, and the root is
//! stripped from keys on the way out (results, transaction responses, watch events).
//! Tests and clusters sharing one etcd each get their own root. Revisions and leases
//! are those of the inner store (shared by every root).

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::{
    Compare, KeyValue, LeaseId, MetaKv, MetaKvRef, Result, Revision, Txn, TxnOp, TxnOpResponse, TxnResponse,
    WatchEvent, WatchStream,
};

/// A view of `inner` where key `k` is stored as `root + k`.
#[derive(Clone)]
pub struct ChrootMetaKv {
    inner: MetaKvRef,
    root: String,
}

impl std::fmt::Debug for ChrootMetaKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChrootMetaKv").field("inner", &self.inner.kind()).field("root", &self.root).finish()
    }
}

impl ChrootMetaKv {
    /// Wraps `inner` so that every key lives under `root` (e.g. `"tests/<uuid>/"`).
    pub fn new(inner: MetaKvRef, root: impl Into<String>) -> ChrootMetaKv {
        ChrootMetaKv { inner, root: root.into() }
    }

    /// The prefix added to every key.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The wrapped store.
    pub fn inner(&self) -> &MetaKvRef {
        &self.inner
    }

    fn full(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.root.len() + key.len());
        full.push_str(&self.root);
        full.push_str(key);
        full
    }

    fn strip(&self, mut kv: KeyValue) -> KeyValue {
        kv.key = strip_root(&self.root, kv.key);
        kv
    }

    fn map_op(&self, op: TxnOp) -> TxnOp {
        match op {
            TxnOp::Put { key, value, lease } => TxnOp::Put { key: self.full(&key), value, lease },
            TxnOp::Delete { key } => TxnOp::Delete { key: self.full(&key) },
            TxnOp::DeletePrefix { prefix } => TxnOp::DeletePrefix { prefix: self.full(&prefix) },
            TxnOp::Get { key } => TxnOp::Get { key: self.full(&key) },
        }
    }
}

/// Removes `root` from the front of `key`. The inner store only returns keys under the
/// root we asked for, so the fallback (keeping the key) is never taken.
fn strip_root(root: &str, key: String) -> String {
    match key.strip_prefix(root) {
        Some(stripped) => stripped.to_owned(),
        None => {
            tracing::error!(root, key, "inner meta store returned a key outside the chroot");
            key
        }
    }
}

#[async_trait]
impl MetaKv for ChrootMetaKv {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        Ok(self.inner.get(&self.full(key)).await?.map(|kv| self.strip(kv)))
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let kvs = self.inner.scan_prefix(&self.full(prefix)).await?;
        Ok(kvs.into_iter().map(|kv| self.strip(kv)).collect())
    }

    async fn put(&self, key: &str, value: Bytes, lease: LeaseId) -> Result<Revision> {
        self.inner.put(&self.full(key), value, lease).await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        self.inner.delete(&self.full(key)).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        self.inner.delete_prefix(&self.full(prefix)).await
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let txn = Txn {
            compares: txn
                .compares
                .into_iter()
                .map(|compare| Compare { key: self.full(&compare.key), ..compare })
                .collect(),
            success: txn.success.into_iter().map(|op| self.map_op(op)).collect(),
            failure: txn.failure.into_iter().map(|op| self.map_op(op)).collect(),
        };
        let mut response = self.inner.txn(txn).await?;
        for op in &mut response.responses {
            if let TxnOpResponse::Get(Some(kv)) = op {
                kv.key = strip_root(&self.root, std::mem::take(&mut kv.key));
            }
        }
        Ok(response)
    }

    async fn watch_prefix(&self, prefix: &str, start_revision: Option<Revision>) -> Result<WatchStream> {
        let stream = self.inner.watch_prefix(&self.full(prefix), start_revision).await?;
        let root = self.root.clone();
        Ok(Box::pin(stream.map(move |event| {
            event.map(|WatchEvent { kind, mut kv }| {
                kv.key = strip_root(&root, kv.key);
                WatchEvent { kind, kv }
            })
        })))
    }

    async fn revision(&self) -> Result<Revision> {
        self.inner.revision().await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        self.inner.grant_lease(ttl).await
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        self.inner.keep_alive(lease).await
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        self.inner.revoke_lease(lease).await
    }

    /// The kind of the inner store (the backend that actually holds the data).
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::embedded::EmbeddedMetaKv;
    use crate::{WatchEventKind, testsuite};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_over_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner: MetaKvRef = EmbeddedMetaKv::open(dir.path()).expect("open");
        // A neighbour root that must stay untouched by the suite.
        inner.put("/tenant-b/suite/untouched", b("x"), 0).await.expect("put");
        let chroot = ChrootMetaKv::new(inner.clone(), "/tenant-a/");
        testsuite::run_all(&chroot, "suite/").await;
        assert!(inner.get("/tenant-b/suite/untouched").await.expect("get").is_some());
        let keys = inner.scan_prefix("").await.expect("scan");
        assert!(keys.iter().all(|kv| kv.key.starts_with("/tenant-a/suite/") || kv.key.starts_with("/tenant-b/")));
        assert!(keys.iter().any(|kv| kv.key.starts_with("/tenant-a/suite/")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn roots_are_isolated_and_stripped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner: MetaKvRef = EmbeddedMetaKv::open(dir.path()).expect("open");
        let a = ChrootMetaKv::new(inner.clone(), "a/");
        let b_root = ChrootMetaKv::new(Arc::clone(&inner), "b/");
        assert_eq!(a.root(), "a/");

        let mut watch = a.watch_prefix("", None).await.expect("watch");
        let revision = a.put("k", b("from a"), 0).await.expect("put");
        b_root.put("k", b("from b"), 0).await.expect("put");
        let got = a.get("k").await.expect("get").expect("k");
        assert_eq!((got.key.as_str(), got.value.clone(), got.mod_revision), ("k", b("from a"), revision));
        assert_eq!(inner.get("a/k").await.expect("get").expect("a/k").value, b("from a"));
        assert_eq!(b_root.get("k").await.expect("get").expect("k").value, b("from b"));

        let scanned = a.scan_prefix("").await.expect("scan");
        assert_eq!(scanned.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["k"]);

        let event = testsuite::next_event(&mut watch, std::time::Duration::from_secs(5)).await;
        assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Put, "k"));

        let response = a
            .txn(Txn {
                compares: vec![Compare::value_equals("k", "from a")],
                success: vec![TxnOp::Get { key: "k".to_owned() }, TxnOp::put("k2", "2")],
                failure: vec![],
            })
            .await
            .expect("txn");
        assert!(response.succeeded);
        match &response.responses[0] {
            TxnOpResponse::Get(Some(kv)) => assert_eq!(kv.key, "k"),
            other => panic!("unexpected response {other:?}"),
        }
        let event = testsuite::next_event(&mut watch, std::time::Duration::from_secs(5)).await;
        assert_eq!(event.kv.key, "k2");

        assert_eq!(a.delete_prefix("").await.expect("delete_prefix"), 2);
        assert_eq!(b_root.get("k").await.expect("get").expect("k").value, b("from b"));
        assert_eq!(inner.scan_prefix("").await.expect("scan").len(), 1);
        assert_eq!(a.kind(), "embedded");
    }
}
