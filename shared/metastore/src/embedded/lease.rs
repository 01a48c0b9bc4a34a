//! The lease task: revokes leases whose deadline passed, through the writer like any
//! other write (so an expiry is logged, and watchers see its deletes).

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;
use tracing::warn;

use super::Core;
use super::eval::WriteOp;
use super::writer::{Request, Requests};

/// The lease task re-checks deadlines at least this often.
const LEASE_CHECK_MAX_SLEEP: Duration = Duration::from_secs(1);

pub(super) async fn lease_expiry_loop(core: Weak<Core>, requests: Requests, wake: Arc<Notify>) {
    loop {
        let now = Instant::now();
        let (expired, next) = {
            let Some(core) = core.upgrade() else { return };
            let state = core.state.read();
            let mut expired = Vec::new();
            let mut next: Option<Instant> = None;
            for (&id, lease) in &state.leases {
                if lease.deadline <= now {
                    expired.push(id);
                } else {
                    next = Some(next.map_or(lease.deadline, |next| next.min(lease.deadline)));
                }
            }
            (expired, next)
        };
        let mut failed = false;
        for lease in expired {
            let (reply, rx) = oneshot::channel();
            if requests.append(Request { op: WriteOp::ExpireLease { lease }, reply }).is_err() {
                return;
            }
            match rx.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    warn!(lease, %error, "could not expire lease");
                    failed = true;
                }
                Err(_) => return,
            }
        }
        let mut wake_at = next.map_or(now + LEASE_CHECK_MAX_SLEEP, |next| next.min(now + LEASE_CHECK_MAX_SLEEP));
        if failed {
            wake_at = wake_at.max(Instant::now() + Duration::from_millis(100));
        }
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            () = wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::EmbeddedMetaKv;
    use super::super::testutil::*;
    use super::*;
    use crate::{MetaError, MetaKv, WatchEventKind, testsuite};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leases_come_back_with_a_fresh_ttl_then_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ttl = Duration::from_secs(1);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        let lease = kv.grant_lease(ttl).await.expect("grant");
        kv.put("session", b("alive"), lease).await.expect("put");
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(kv);

        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        let mut watch = kv.watch_prefix("session", None).await.expect("watch");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // 1.3 s since the last refresh, but the restart restarted the TTL.
        assert!(kv.get("session").await.expect("get").is_some(), "the lease got a fresh TTL");
        let event = testsuite::next_event(&mut watch, Duration::from_secs(5)).await;
        assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Delete, "session"));
        assert_eq!(kv.get("session").await.expect("get"), None);
        assert!(matches!(kv.keep_alive(lease).await, Err(MetaError::LeaseNotFound { .. })));
        drop(kv);

        // The expiry was logged like any delete.
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.get("session").await.expect("get"), None);
        assert!(matches!(kv.keep_alive(lease).await, Err(MetaError::LeaseNotFound { .. })));
    }
}
