//! Collection meta cached by (database, name), dropped when rootcoord broadcasts a
//! change to that collection.

use std::collections::HashMap;
use std::sync::Arc;

use fv_common::schema::Schema;
use fv_common::{DEFAULT_DB_NAME, FvError, FvResult, PartitionId};
use fv_proto::fv::meta::CollectionInfo;
use fv_proto::fv::rootcoord::DescribeCollectionRequest;
use fv_runtime::Clients;
use fv_runtime::RpcClient;
use parking_lot::RwLock;

pub const COLLECTION_EVENT_SUBJECT: &str = "fv.evt.collection";

/// A collection as the proxy needs it.
#[derive(Debug)]
pub struct Collection {
    pub info: CollectionInfo,
    pub schema: Arc<Schema>,
}

impl Collection {
    pub fn name(&self) -> &str {
        self.info.schema.as_ref().map(|s| s.name.as_str()).unwrap_or_default()
    }

    pub fn partition_id(&self, name: &str) -> FvResult<PartitionId> {
        let name = if name.is_empty() { fv_common::DEFAULT_PARTITION_NAME } else { name };
        self.info
            .partitions
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.id)
            .ok_or_else(|| FvError::partition_not_found(name))
    }
}

pub struct MetaCache {
    rpc: RpcClient,
    entries: RwLock<HashMap<(String, String), Arc<Collection>>>,
}

pub fn db_name(db: &str) -> String {
    if db.is_empty() { DEFAULT_DB_NAME.to_string() } else { db.to_string() }
}

impl MetaCache {
    pub fn new(rpc: RpcClient) -> MetaCache {
        MetaCache { rpc, entries: RwLock::new(HashMap::new()) }
    }

    pub async fn get(&self, db: &str, name: &str) -> FvResult<Arc<Collection>> {
        let db = db_name(db);
        if let Some(c) = self.entries.read().get(&(db.clone(), name.to_string())) {
            return Ok(c.clone());
        }
        let req =
            DescribeCollectionRequest { db_name: db.clone(), collection_name: name.to_string(), collection_id: 0 };
        let resp = self.rpc.rootcoord().describe_collection(&req).retry(crate::COORD_DEADLINE).await?;
        let info = resp.collection.ok_or_else(|| FvError::collection_not_found(&db, name))?;
        let schema = Arc::new(Schema::from_proto(
            info.schema.as_ref().ok_or_else(|| FvError::internal("collection without schema"))?,
        )?);
        let c = Arc::new(Collection { info, schema });
        self.entries.write().insert((db, name.to_string()), c.clone());
        Ok(c)
    }

    pub fn invalidate(&self, db: &str, name: &str) {
        self.entries.write().remove(&(db_name(db), name.to_string()));
    }

    pub fn invalidate_id(&self, id: i64) {
        self.entries.write().retain(|_, c| c.info.id != id);
    }
}
