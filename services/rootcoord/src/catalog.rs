//! Collection meta: typed keys in the meta store and the in-memory copy reads are served
//! from.
//!
//! Keys (under the meta root):
//! - `rootcoord/tso_limit`, `rootcoord/id_limit`: allocator limits (decimal);
//! - `rootcoord/collection/<id>`: a `CollectionInfo`;
//! - `rootcoord/name/<db>/<name>`: the id of the live collection with that name (its
//!   presence makes names unique through compare-and-swap);
//! - `rootcoord/procedure/<id>`: a DDL procedure in progress (see [`crate::ddl`]).

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use fv_common::{CollectionId, FvError, FvResult};
use fv_metastore::{Compare, MetaKvRef, Txn, TxnOp};
use fv_proto::fv::meta::{CollectionInfo, CollectionState};
use fv_runtime::errors::meta_err;
use prost::Message;

pub const TSO_LIMIT_KEY: &str = "rootcoord/tso_limit";
pub const ID_LIMIT_KEY: &str = "rootcoord/id_limit";
const COLLECTION_PREFIX: &str = "rootcoord/collection/";
const NAME_PREFIX: &str = "rootcoord/name/";

pub fn collection_key(id: CollectionId) -> String {
    format!("{COLLECTION_PREFIX}{id}")
}

pub fn name_key(db: &str, name: &str) -> String {
    format!("{NAME_PREFIX}{db}/{name}")
}

pub async fn load_u64(meta: &MetaKvRef, key: &str) -> FvResult<u64> {
    Ok(match meta.get(key).await.map_err(meta_err)? {
        None => 0,
        Some(kv) => std::str::from_utf8(&kv.value)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| FvError::internal(format!("meta key {key} holds no number")))?,
    })
}

pub async fn store_u64(meta: &MetaKvRef, key: &str, v: u64) -> FvResult<()> {
    meta.put(key, Bytes::from(v.to_string()), 0).await.map_err(meta_err)?;
    Ok(())
}

/// In-memory view of every collection that is not fully dropped.
#[derive(Debug, Default)]
pub struct Catalog {
    by_id: HashMap<CollectionId, Arc<CollectionInfo>>,
    by_name: HashMap<(String, String), CollectionId>,
}

impl Catalog {
    pub fn insert(&mut self, info: CollectionInfo) {
        let key = (info.db_name.clone(), info.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default());
        if info.state == CollectionState::CollectionCreated as i32 {
            self.by_name.insert(key, info.id);
        } else if self.by_name.get(&key) == Some(&info.id) {
            self.by_name.remove(&key);
        }
        self.by_id.insert(info.id, Arc::new(info));
    }

    pub fn remove(&mut self, id: CollectionId) {
        if let Some(info) = self.by_id.remove(&id) {
            let key = (info.db_name.clone(), info.schema.as_ref().map(|s| s.name.clone()).unwrap_or_default());
            if self.by_name.get(&key) == Some(&id) {
                self.by_name.remove(&key);
            }
        }
    }

    /// A live (not dropping) collection by name.
    pub fn by_name(&self, db: &str, name: &str) -> Option<Arc<CollectionInfo>> {
        let id = self.by_name.get(&(db.to_string(), name.to_string()))?;
        self.by_id.get(id).cloned()
    }

    /// A live collection by id.
    pub fn by_id(&self, id: CollectionId) -> Option<Arc<CollectionInfo>> {
        self.by_id.get(&id).filter(|c| c.state == CollectionState::CollectionCreated as i32).cloned()
    }

    /// Including collections being dropped.
    pub fn any_by_id(&self, id: CollectionId) -> Option<Arc<CollectionInfo>> {
        self.by_id.get(&id).cloned()
    }

    pub fn live(&self, db: &str) -> Vec<Arc<CollectionInfo>> {
        let mut v: Vec<_> = self
            .by_id
            .values()
            .filter(|c| c.state == CollectionState::CollectionCreated as i32 && c.db_name == db)
            .cloned()
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    pub fn all(&self) -> Vec<Arc<CollectionInfo>> {
        let mut v: Vec<_> = self.by_id.values().cloned().collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// How many shards live on each pchannel.
    pub fn pchannel_usage(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for c in self.by_id.values() {
            for p in &c.pchannels {
                *m.entry(p.clone()).or_insert(0) += 1;
            }
        }
        m
    }
}

/// The catalog as the meta store holds it.
pub async fn recover(meta: &MetaKvRef) -> FvResult<Catalog> {
    let mut cat = Catalog::default();
    for info in load_all(meta).await? {
        cat.insert(info);
    }
    Ok(cat)
}

/// Loads every stored collection.
pub async fn load_all(meta: &MetaKvRef) -> FvResult<Vec<CollectionInfo>> {
    let kvs = meta.scan_prefix(COLLECTION_PREFIX).await.map_err(meta_err)?;
    kvs.iter()
        .map(|kv| {
            CollectionInfo::decode(kv.value.clone())
                .map_err(|e| FvError::internal(format!("corrupt collection meta {}: {e}", kv.key)))
        })
        .collect()
}

/// Stores a new collection; fails with `false` when the name is taken.
pub async fn create(meta: &MetaKvRef, info: &CollectionInfo) -> FvResult<bool> {
    let name = info.schema.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
    let nk = name_key(&info.db_name, name);
    let txn = Txn {
        compares: vec![Compare::absent(nk.clone())],
        success: vec![TxnOp::put(collection_key(info.id), info.encode_to_vec()), TxnOp::put(nk, info.id.to_string())],
        failure: vec![],
    };
    Ok(meta.txn(txn).await.map_err(meta_err)?.succeeded)
}

/// Overwrites a collection's record (state changes, partitions, renames).
pub async fn save(meta: &MetaKvRef, info: &CollectionInfo, name_change: Option<(&str, &str)>) -> FvResult<bool> {
    let mut success = vec![TxnOp::put(collection_key(info.id), info.encode_to_vec())];
    let mut compares = vec![];
    if let Some((old, new)) = name_change {
        let nk = name_key(&info.db_name, new);
        compares.push(Compare::absent(nk.clone()));
        success.push(TxnOp::delete(name_key(&info.db_name, old)));
        success.push(TxnOp::put(nk, info.id.to_string()));
    }
    if info.state != CollectionState::CollectionCreated as i32 {
        let name = info.schema.as_ref().map(|s| s.name.as_str()).unwrap_or_default();
        success.push(TxnOp::delete(name_key(&info.db_name, name)));
    }
    Ok(meta.txn(Txn { compares, success, failure: vec![] }).await.map_err(meta_err)?.succeeded)
}

pub async fn remove(meta: &MetaKvRef, info: &CollectionInfo) -> FvResult<()> {
    meta.delete(&collection_key(info.id)).await.map_err(meta_err)?;
    Ok(())
}
