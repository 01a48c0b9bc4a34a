//! DDL as persisted procedures.
//!
//! Each DDL request becomes a [`DdlProcedure`]: a step machine (one executor file per
//! operation under `ddl/`) whose state is saved in the meta store after every step
//! (`rootcoord/procedure/<id>`, see [`fv_runtime::procedure`]). A crash or an
//! unavailable coordinator stops it after its last saved step; the periodic
//! [`Ddl::finish_pending`] resumes it from there. Every procedure runs as a job of
//! rootcoord's exclusive DDL actor, so DDL is applied one request at a time, each
//! change stamped with a fresh timestamp: the order of the timestamps is the order of
//! the changes.
//!
//! | operation | steps |
//! |---|---|
//! | create collection | prepare → create meta → watch channels (datacoord) → broadcast |
//! | drop collection | mark dropping (+ broadcast) → release (querycoord) → drop data (datacoord) → drop indexes (indexcoord) → remove meta |
//! | rename collection | prepare → save meta → broadcast |
//! | create partition | prepare → save meta → broadcast |
//! | drop partition | prepare (must not be loaded) → save meta → broadcast → drop data (datacoord) |

mod create_collection;
mod create_partition;
mod drop_collection;
mod drop_partition;
mod rename_collection;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fv_common::channel::pchannel_name;
use fv_common::schema::Schema;
use fv_common::{DEFAULT_DB_NAME, FvError, FvResult};
use fv_proto::fv::meta::{CollectionInfo, CollectionState};
use fv_proto::fv::rootcoord::ddl_procedure::Op;
use fv_proto::fv::rootcoord::{
    CollectionMetaChanged, CreateCollectionRequest, CreatePartitionRequest, DdlProcedure, DropCollectionProcedure,
    DropCollectionRequest, DropPartitionRequest, RenameCollectionRequest, drop_collection_procedure,
};
use fv_runtime::RoleContext;
use fv_runtime::procedure::{Procedure, ProcedureStore, Step};
use parking_lot::RwLock;
use prost::Message;

use crate::catalog::Catalog;
use crate::tso::TsoHandle;

pub const COLLECTION_EVENT_SUBJECT: &str = "fv.evt.collection";
pub const MAX_PARTITIONS: usize = 1024;
/// Where unfinished DDL procedures are kept.
pub const PROCEDURE_PREFIX: &str = "rootcoord/procedure/";
const COORD_CALL_DEADLINE: Duration = Duration::from_secs(15);

/// What DDL procedures run against: the role's context, the catalog and the allocators.
pub struct Ddl {
    pub ctx: RoleContext,
    pub catalog: Arc<RwLock<Catalog>>,
    pub tso: TsoHandle,
    pub procedures: ProcedureStore,
}

/// "" means the default database; Ferrovec serves only that one for now.
pub fn resolve_db(db: &str) -> FvResult<String> {
    if db.is_empty() || db == DEFAULT_DB_NAME {
        Ok(DEFAULT_DB_NAME.to_string())
    } else {
        Err(FvError::database_not_found(db))
    }
}

impl Ddl {
    pub fn new(ctx: RoleContext, catalog: Arc<RwLock<Catalog>>, tso: TsoHandle) -> Ddl {
        let procedures = ProcedureStore::new(ctx.meta.clone(), PROCEDURE_PREFIX);
        Ddl { ctx, catalog, tso, procedures }
    }

    /// Runs a new procedure to the end (or until a step fails; it is then resumed later).
    async fn run(&self, op: Op) -> FvResult<()> {
        let id = self.tso.alloc_id(1).await?;
        self.procedures.run(id, &mut DdlProcedure { op: Some(op) }, self).await
    }

    pub async fn create_collection(&self, request: CreateCollectionRequest) -> FvResult<()> {
        self.run(Op::CreateCollection(create_collection::start(request))).await
    }

    pub async fn drop_collection(&self, request: DropCollectionRequest) -> FvResult<()> {
        self.run(Op::DropCollection(drop_collection::start(request))).await
    }

    pub async fn rename_collection(&self, request: RenameCollectionRequest) -> FvResult<()> {
        self.run(Op::RenameCollection(rename_collection::start(request))).await
    }

    pub async fn create_partition(&self, request: CreatePartitionRequest) -> FvResult<()> {
        self.run(Op::CreatePartition(create_partition::start(request))).await
    }

    pub async fn drop_partition(&self, request: DropPartitionRequest) -> FvResult<()> {
        self.run(Op::DropPartition(drop_partition::start(request))).await
    }

    /// Resumes the procedures a crash or an unavailable coordinator interrupted. A
    /// collection left Dropping without a procedure (by a build before DDL procedures)
    /// gets one that continues after the mark.
    pub async fn finish_pending(&self) -> FvResult<()> {
        let pending = self.procedures.pending::<DdlProcedure>().await?;
        let covered: Vec<i64> = pending
            .iter()
            .filter_map(|(_, p)| match &p.op {
                Some(Op::DropCollection(d)) => Some(d.collection_id),
                _ => None,
            })
            .collect();
        let orphans: Vec<i64> = self
            .catalog
            .read()
            .all()
            .iter()
            .filter(|c| c.state != CollectionState::CollectionCreated as i32 && !covered.contains(&c.id))
            .map(|c| c.id)
            .collect();
        for collection_id in orphans {
            let proc = DropCollectionProcedure {
                step: drop_collection_procedure::Step::Release as i32,
                request: None,
                collection_id,
            };
            if let Err(e) = self.run(Op::DropCollection(proc)).await {
                tracing::warn!(error = %e, id = collection_id, "collection drop not finished yet");
            }
        }
        self.procedures.resume::<Ddl, DdlProcedure>(self).await?;
        Ok(())
    }

    /// Tells proxies that a collection's meta changed, so they drop cached copies.
    async fn notify_changed(&self, info: &CollectionInfo) {
        let ev = CollectionMetaChanged {
            db_name: info.db_name.clone(),
            collection_name: info.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
            collection_id: info.id,
            timestamp: info.update_ts,
        };
        if let Err(e) =
            self.ctx.broker.notify(COLLECTION_EVENT_SUBJECT, Bytes::from(ev.encode_to_vec()), Vec::new()).await
        {
            tracing::warn!(error = %e, "cannot broadcast collection change");
        }
    }

    fn live_by_name(&self, db: &str, name: &str) -> FvResult<Arc<CollectionInfo>> {
        self.catalog.read().by_name(db, name).ok_or_else(|| FvError::collection_not_found(db, name))
    }

    /// The live collection `id`, as a procedure step finds it; `None` when it was
    /// dropped meanwhile, which makes the rest of a procedure on it moot.
    fn live_by_id(&self, id: i64) -> Option<Arc<CollectionInfo>> {
        self.catalog.read().by_id(id)
    }

    /// Picks the least used pchannels for `shards` new vchannels.
    fn choose_pchannels(&self, shards: usize) -> Vec<String> {
        let mut usage = self.catalog.read().pchannel_usage();
        let n = self.ctx.config.rootcoord.dml_channels;
        (0..shards)
            .map(|_| {
                let best = (0..n)
                    .map(pchannel_name)
                    .min_by_key(|p| {
                        (usage.get(p).copied().unwrap_or(0), fv_common::channel::pchannel_index(p).unwrap_or(0))
                    })
                    .expect("at least one pchannel is configured");
                *usage.entry(best.clone()).or_insert(0) += 1;
                best
            })
            .collect()
    }
}

impl Procedure<Ddl> for DdlProcedure {
    async fn step(&mut self, ddl: &Ddl) -> FvResult<Step> {
        match self.op.as_mut() {
            Some(Op::CreateCollection(p)) => create_collection::step(p, ddl).await,
            Some(Op::DropCollection(p)) => drop_collection::step(p, ddl).await,
            Some(Op::RenameCollection(p)) => rename_collection::step(p, ddl).await,
            Some(Op::CreatePartition(p)) => create_partition::step(p, ddl).await,
            Some(Op::DropPartition(p)) => drop_partition::step(p, ddl).await,
            None => Ok(Step::Fail(FvError::internal("DDL procedure without an operation"))),
        }
    }

    fn describe(&self) -> String {
        match &self.op {
            Some(Op::CreateCollection(p)) => {
                format!("create collection {:?}", p.request.as_ref().map(|r| &r.collection_name))
            }
            Some(Op::DropCollection(p)) => format!("drop collection {}", p.collection_id),
            Some(Op::RenameCollection(p)) => format!("rename collection {}", p.collection_id),
            Some(Op::CreatePartition(p)) => format!("create partition in collection {}", p.collection_id),
            Some(Op::DropPartition(p)) => format!("drop partition {} of {}", p.partition_id, p.collection_id),
            None => "empty DDL procedure".into(),
        }
    }
}

/// Parses the stored schema of a collection (used by readers that need typed fields).
pub fn parsed_schema(info: &CollectionInfo) -> FvResult<Schema> {
    Schema::from_proto(info.schema.as_ref().ok_or_else(|| FvError::internal("collection without schema"))?)
}
