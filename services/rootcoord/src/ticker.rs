//! Time ticks.
//!
//! A TimeTick T on a pchannel promises that no DML with a timestamp <= T follows it. To
//! publish T, rootcoord first asks every live proxy to confirm T: a proxy answers once
//! each DML it started on any pchannel before the request is stored on the log (its
//! producers are serial, so the answer waits behind at most one DML), and every DML it
//! starts afterwards gets a timestamp allocated after T. Then T is appended to every
//! pchannel in use. Rounds run periodically and on demand (`SyncTimeTick`, used by
//! readers that need serviceable time now); concurrent demands share a round.

use std::collections::BTreeSet;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fv_common::channel::tick_subject;
use fv_common::{Code, FvError, FvResult, Timestamp};
use fv_logbroker::OutgoingMessage;
use fv_proto::fv::msg::{DmlMessage, TimeTickMsg, dml_message::Body};
use fv_proto::fv::proxy::ConfirmTimeTickRequest;
use fv_runtime::Clients;
use fv_runtime::rpc::Role;
use fv_runtime::{RoleContext, session};
use parking_lot::RwLock;
use prost::Message;

use crate::catalog::Catalog;
use crate::tso::TsoHandle;

const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Ticker {
    ctx: RoleContext,
    tso: TsoHandle,
    catalog: Arc<RwLock<Catalog>>,
    last_published: AtomicU64,
    /// Held while a round runs; rounds are serial.
    round: tokio::sync::Mutex<()>,
    /// Rounds started and finished, so a demand is served by the first round that
    /// starts after it arrived (demands arriving during a round share the next one).
    started: AtomicU64,
    finished: AtomicU64,
}

impl Ticker {
    pub fn new(ctx: RoleContext, tso: TsoHandle, catalog: Arc<RwLock<Catalog>>) -> Arc<Ticker> {
        Arc::new(Ticker {
            ctx,
            tso,
            catalog,
            last_published: AtomicU64::new(0),
            round: tokio::sync::Mutex::new(()),
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        })
    }

    pub fn last_published(&self) -> Timestamp {
        self.last_published.load(Ordering::Acquire)
    }

    fn pchannels_in_use(&self) -> BTreeSet<String> {
        self.catalog.read().all().iter().flat_map(|c| c.pchannels.clone()).collect()
    }

    /// One round: allocate T, have every proxy confirm it, publish it everywhere.
    async fn run_round(&self) -> FvResult<Timestamp> {
        let t = self.tso.alloc_ts(1).await?;
        let proxies = session::list(&self.ctx.meta, Role::Proxy).await?;
        let req = ConfirmTimeTickRequest { timestamp: t, pchannels: vec![] };
        let confirmations = futures::future::join_all(
            proxies
                .iter()
                .map(|p| self.ctx.rpc.proxy(p.node_id).confirm_time_tick(&req).timeout(CONFIRM_TIMEOUT).into_future()),
        )
        .await;
        for (p, c) in proxies.iter().zip(confirmations) {
            match c {
                Ok(_) => {}
                // A proxy whose session outlived its process serves nothing and can
                // produce nothing: it cannot hold DML back.
                Err(e) if e.code == Code::ServiceUnavailable => {
                    tracing::debug!(proxy = p.node_id, "proxy gone; not waiting for it")
                }
                Err(e) => {
                    return Err(e.context(format!("proxy {} did not confirm time tick", p.node_id)));
                }
            }
        }
        let payload = Bytes::from(
            DmlMessage { body: Some(Body::TimeTick(TimeTickMsg { timestamp: t, source_id: self.ctx.node_id })) }
                .encode_to_vec(),
        );
        let channels = self.pchannels_in_use();
        // Ticks need no durability: a lost tick is simply published again later.
        let results = futures::future::join_all(channels.iter().map(|p| {
            let msg = OutgoingMessage::new(tick_subject(p), payload.clone());
            self.ctx.broker.produce_volatile(p, vec![msg])
        }))
        .await;
        for (p, r) in channels.iter().zip(results) {
            r.map_err(|e| FvError::unavailable(format!("cannot publish time tick on {p}: {e}")))?;
        }
        self.last_published.fetch_max(t, Ordering::AcqRel);
        Ok(t)
    }

    /// Publishes a tick >= `min_ts` (one allocated after this call when `min_ts` is 0)
    /// and returns it.
    pub async fn sync(&self, min_ts: Timestamp) -> FvResult<Timestamp> {
        let last = self.last_published();
        if min_ts != 0 && last >= min_ts {
            return Ok(last);
        }
        // Any round that starts after this point allocates a tick above everything
        // stamped before the call.
        let needed = self.started.load(Ordering::Acquire) + 1;
        let _round = self.round.lock().await;
        if self.finished.load(Ordering::Acquire) >= needed {
            return Ok(self.last_published());
        }
        self.locked_round().await
    }

    /// Runs a round; the caller holds `self.round`.
    async fn locked_round(&self) -> FvResult<Timestamp> {
        let n = self.started.fetch_add(1, Ordering::AcqRel) + 1;
        let r = self.run_round().await;
        self.finished.store(n, Ordering::Release);
        r
    }

    /// The periodic loop; ends with the role.
    pub async fn run(self: Arc<Self>) {
        let period = Duration::from_millis(self.ctx.config.rootcoord.time_tick_interval_ms);
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.ctx.shutdown.wait() => return,
                _ = interval.tick() => {}
            }
            if self.pchannels_in_use().is_empty() {
                continue;
            }
            let _round = self.round.lock().await;
            if let Err(e) = self.locked_round().await {
                tracing::warn!(error = %e, "time tick round failed");
            }
        }
    }
}
