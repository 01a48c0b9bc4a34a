//! proxy: the Milvus API. It validates requests against the schema, assigns
//! auto-ids, hashes rows to shards and publishes DML on the log, fans searches and
//! queries out to each shard's delegator and reduces their results, and forwards DDL
//! to the coordinators.
//!
//! - [`meta_cache`]: collection meta by name, invalidated by rootcoord's broadcasts.
//! - [`producer`]: one actor per pchannel that stamps and publishes DML serially, which
//!   is what lets the proxy confirm time ticks (see rootcoord's ticker).
//! - [`dml`]: insert, upsert and delete.
//! - [`read`]: search and query (consistency, fan-out, reduce, output fields).
//! - [`ddl`]: collections, partitions, indexes, load/release, flush, statistics.
//! - [`distribution`]: which query nodes serve a loaded collection.
//! - [`service`]: the `MilvusService` implementation, which turns every outcome into a
//!   Milvus status.

pub mod ddl;
pub mod distribution;
pub mod dml;
pub mod meta_cache;
pub mod output;
pub mod producer;
pub mod read;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use fv_common::{FvError, FvResult, Timestamp};
use fv_proto::fv::rootcoord::{AllocIdRequest, AllocTimestampRequest};
use fv_runtime::Clients;
use fv_runtime::RoleContext;

pub use service::start;

/// Deadline for requests to coordinators made on behalf of a client.
pub const COORD_DEADLINE: Duration = Duration::from_secs(30);

/// Bound of one attempt of a quick coordinator call (allocation, segment assignment);
/// these answer in milliseconds, so an attempt this long means the coordinator died
/// with the request and the call should go to its successor.
pub const QUICK_ATTEMPT: Duration = Duration::from_secs(3);

/// Shared state of one proxy.
pub struct Proxy {
    pub ctx: RoleContext,
    pub cache: meta_cache::MetaCache,
    pub producers: producer::Producers,
    pub leaders: read::LeaderCache,
}

impl Proxy {
    pub async fn alloc_ts(&self) -> FvResult<Timestamp> {
        Ok(self
            .ctx
            .rpc
            .rootcoord()
            .alloc_timestamp(&AllocTimestampRequest { count: 1 })
            .retry(COORD_DEADLINE)
            .timeout(QUICK_ATTEMPT)
            .await?
            .timestamp)
    }

    pub async fn alloc_ids(&self, count: u32) -> FvResult<i64> {
        if count == 0 {
            return Err(FvError::invalid_parameter("cannot allocate zero ids"));
        }
        Ok(self
            .ctx
            .rpc
            .rootcoord()
            .alloc_id(&AllocIdRequest { count })
            .retry(COORD_DEADLINE)
            .timeout(QUICK_ATTEMPT)
            .await?
            .id_begin)
    }
}

pub type ProxyRef = Arc<Proxy>;
