//! Node ids and live sessions in the meta store.
//!
//! Each running role instance holds a key `session/<role>/<node_id>` attached to a lease
//! that it keeps alive; when the process dies, the lease expires and the key vanishes,
//! which is how coordinators learn that a node left.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use fv_common::{FvError, FvResult, NodeId};
use fv_metastore::{Compare, MetaKvRef, Txn, TxnOp, WatchEventKind, WatchStream};
use fv_proto::fv::meta::Session as SessionInfo;
use prost::Message;

use crate::errors::meta_err;
use crate::rpc::Role;
use crate::shutdown::Shutdown;

const NODE_ID_KEY: &str = "session/next_node_id";

pub fn session_prefix(role: Role) -> String {
    format!("session/{}/", role.name())
}

pub fn session_key(role: Role, node: NodeId) -> String {
    format!("session/{}/{node}", role.name())
}

/// Allocates a cluster-unique node id (compare-and-swap on a counter).
pub async fn allocate_node_id(meta: &MetaKvRef) -> FvResult<NodeId> {
    for _ in 0..1000 {
        let cur = meta.get(NODE_ID_KEY).await.map_err(meta_err)?;
        let (next, cmp) = match &cur {
            None => (1, Compare::absent(NODE_ID_KEY)),
            Some(kv) => {
                let v: i64 = std::str::from_utf8(&kv.value).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
                (v + 1, Compare::mod_revision_equals(NODE_ID_KEY, kv.mod_revision))
            }
        };
        let txn =
            Txn { compares: vec![cmp], success: vec![TxnOp::put(NODE_ID_KEY, next.to_string())], failure: vec![] };
        if meta.txn(txn).await.map_err(meta_err)?.succeeded {
            return Ok(next);
        }
    }
    Err(FvError::internal("could not allocate a node id: too much contention"))
}

/// Registers a live session and keeps it alive until `shutdown` fires, then revokes it.
pub async fn register(
    meta: MetaKvRef,
    role: Role,
    node_id: NodeId,
    address: String,
    ttl: Duration,
    shutdown: Shutdown,
) -> FvResult<()> {
    let info = SessionInfo {
        node_id,
        role: role.name().to_string(),
        address,
        version: env!("CARGO_PKG_VERSION").to_string(),
        start_time_ms: fv_common::ts::now_ms(),
    };
    let payload = Bytes::from(info.encode_to_vec());
    let key = session_key(role, node_id);
    let mut lease = meta.grant_lease(ttl).await.map_err(meta_err)?;
    meta.put(&key, payload.clone(), lease).await.map_err(meta_err)?;
    tokio::spawn(async move {
        let period = ttl / 3;
        loop {
            tokio::select! {
                _ = shutdown.wait() => {
                    let _ = meta.revoke_lease(lease).await;
                    return;
                }
                _ = tokio::time::sleep(period) => {}
            }
            if meta.keep_alive(lease).await.is_err() {
                // The lease expired (e.g. a long pause): register again under a new one.
                tracing::warn!(role = role.name(), node_id, "session lease lost; registering again");
                match meta.grant_lease(ttl).await {
                    Ok(l) => {
                        lease = l;
                        if let Err(e) = meta.put(&key, payload.clone(), lease).await {
                            tracing::warn!(error = %e, "cannot re-register session");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot grant session lease"),
                }
            }
        }
    });
    Ok(())
}

/// Live sessions of a role.
pub async fn list(meta: &MetaKvRef, role: Role) -> FvResult<Vec<SessionInfo>> {
    let kvs = meta.scan_prefix(&session_prefix(role)).await.map_err(meta_err)?;
    Ok(kvs.iter().filter_map(|kv| SessionInfo::decode(kv.value.clone()).ok()).collect())
}

/// A change in a role's live sessions.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    Up(SessionInfo),
    Down(NodeId),
}

/// Watches a role's sessions from now on.
pub async fn watch(meta: &MetaKvRef, role: Role) -> FvResult<futures::stream::BoxStream<'static, SessionEvent>> {
    let prefix = session_prefix(role);
    let stream: WatchStream = meta.watch_prefix(&prefix, None).await.map_err(meta_err)?;
    Ok(stream
        .filter_map(move |ev| {
            let prefix = prefix.clone();
            async move {
                let ev = ev.ok()?;
                match ev.kind {
                    WatchEventKind::Put => SessionInfo::decode(ev.kv.value).ok().map(SessionEvent::Up),
                    WatchEventKind::Delete => ev.kv.key.strip_prefix(&prefix)?.parse().ok().map(SessionEvent::Down),
                }
            }
        })
        .boxed())
}
