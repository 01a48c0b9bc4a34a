//! Opening the backends a configuration names.

use std::sync::Arc;

use fv_common::{FvError, FvResult};
use fv_config::{Config, FsyncPolicy};
use fv_logbroker::LogBrokerRef;
use fv_logbroker::embedded::{EmbeddedBroker, EmbeddedBrokerConfig};
use fv_metastore::MetaKvRef;
use fv_metastore::chroot::ChrootMetaKv;
use fv_metastore::embedded::EmbeddedMetaKv;
use fv_objectstore::ObjectStoreRef;
use fv_objectstore::local::LocalObjectStore;

#[derive(Clone)]
pub struct Backends {
    pub broker: LogBrokerRef,
    /// Rooted at `config.meta.root`.
    pub meta: MetaKvRef,
    pub objects: ObjectStoreRef,
}

/// Opens the embedded backends under `config.data_dir` (`log/`, `meta/`, `objects/`).
/// Each takes a lock file, so two processes cannot share a data directory.
pub async fn open(config: &Config) -> FvResult<Backends> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| FvError::io(format!("cannot create data dir {}: {e}", dir.display())))?;
    let broker_cfg = EmbeddedBrokerConfig {
        fsync: match config.broker.fsync {
            FsyncPolicy::Always => fv_logbroker::embedded::FsyncPolicy::Always,
            FsyncPolicy::Never => fv_logbroker::embedded::FsyncPolicy::Never,
        },
        segment_bytes: config.broker.segment_bytes,
        // The broker accepts a little more than producers aim for.
        max_message_bytes: config.broker.max_message_bytes * 2,
    };
    let log_dir = dir.join("log");
    let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::open(&log_dir, broker_cfg))
        .await
        .map_err(|e| FvError::internal(format!("broker open task failed: {e}")))?
        .map_err(|e| FvError::io(format!("cannot open the log: {e}")))?;
    let meta =
        EmbeddedMetaKv::open(&dir.join("meta")).map_err(|e| FvError::io(format!("cannot open the meta store: {e}")))?;
    let meta: MetaKvRef = Arc::new(ChrootMetaKv::new(meta, format!("{}/", config.meta.root.trim_end_matches('/'))));
    let broker: LogBrokerRef = broker;
    let objects: ObjectStoreRef = LocalObjectStore::open(&dir.join("objects"))
        .map_err(|e| FvError::io(format!("cannot open object storage: {e}")))?;
    tracing::info!(data_dir = %dir.display(), broker = broker.kind(), meta = meta.kind(), objects = objects.kind(), "backends opened");
    Ok(Backends { broker, meta, objects })
}
