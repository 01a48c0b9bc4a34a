//! Opening the backends a configuration names.

use std::sync::Arc;

use fv_common::{FvError, FvResult};
use fv_config::Config;
use fv_logbroker::LogBrokerRef;
use fv_logbroker::embedded::{EmbeddedBroker, EmbeddedBrokerConfig};
use fv_logbroker::nats::{NatsBroker, NatsBrokerConfig};
use fv_metastore::MetaKvRef;
use fv_metastore::chroot::ChrootMetaKv;
use fv_metastore::embedded::EmbeddedMetaKv;
use fv_metastore::etcd::{EtcdMetaKv, EtcdMetaKvOptions};
use fv_objectstore::ObjectStoreRef;
use fv_objectstore::local::LocalObjectStore;
use fv_objectstore::s3::{S3Config, S3ObjectStore};

#[derive(Clone)]
pub struct Backends {
    pub broker: LogBrokerRef,
    /// Rooted at `config.meta.root`.
    pub meta: MetaKvRef,
    pub objects: ObjectStoreRef,
}

/// Opens the backends `config` names: the log broker (embedded file log or NATS
/// JetStream), the meta store (embedded or etcd, rooted at `config.meta.root`) and object
/// storage (a local directory or S3). Embedded backends live under `config.data_dir`
/// (`log/`, `meta/`, `objects/`) and take lock files, so two processes cannot share them:
/// a cluster of role processes needs NATS, etcd and S3.
pub async fn open(config: &Config) -> FvResult<Backends> {
    let dir = config.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|e| FvError::io(format!("cannot create data dir {}: {e}", dir.display())))?;
    let broker = open_broker(config).await?;
    let meta = open_meta(config).await?;
    let objects = open_objects(config).await?;
    tracing::info!(data_dir = %dir.display(), broker = broker.kind(), meta = meta.kind(), objects = objects.kind(), "backends opened");
    Ok(Backends { broker, meta, objects })
}

async fn open_broker(config: &Config) -> FvResult<LogBrokerRef> {
    let b = &config.broker;
    if b.kind == "nats" {
        let cfg = NatsBrokerConfig {
            stream_prefix: b.nats_stream_prefix.clone(),
            // The broker accepts a little more than producers aim for.
            max_record_bytes: b.max_message_bytes * 2,
            connection_name: format!("ferrovec-{}", std::process::id()),
            ..NatsBrokerConfig::default()
        };
        let broker = NatsBroker::connect(&b.nats_url, cfg)
            .await
            // The broker's error names the server with any credentials masked.
            .map_err(|e| FvError::unavailable(format!("cannot connect to NATS: {e}")))?;
        return Ok(broker);
    }
    let broker_cfg = EmbeddedBrokerConfig {
        fsync: b.fsync,
        segment_bytes: b.segment_bytes,
        max_message_bytes: b.max_message_bytes * 2,
    };
    let log_dir = config.data_dir.join("log");
    let broker = tokio::task::spawn_blocking(move || EmbeddedBroker::open(&log_dir, broker_cfg))
        .await
        .map_err(|e| FvError::internal(format!("broker open task failed: {e}")))?
        .map_err(|e| FvError::io(format!("cannot open the log: {e}")))?;
    Ok(broker)
}

async fn open_meta(config: &Config) -> FvResult<MetaKvRef> {
    let root = format!("{}/", config.meta.root.trim_end_matches('/'));
    if config.meta.kind == "etcd" {
        let endpoints: Vec<String> =
            config.meta.etcd_endpoints.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        let opts = EtcdMetaKvOptions { root_prefix: root, ..EtcdMetaKvOptions::default() };
        let meta = EtcdMetaKv::connect(&endpoints, opts)
            .await
            .map_err(|e| FvError::unavailable(format!("cannot connect to etcd at {endpoints:?}: {e}")))?;
        return Ok(Arc::new(meta));
    }
    let meta = EmbeddedMetaKv::open(&config.data_dir.join("meta"))
        .map_err(|e| FvError::io(format!("cannot open the meta store: {e}")))?;
    Ok(Arc::new(ChrootMetaKv::new(meta, root)))
}

async fn open_objects(config: &Config) -> FvResult<ObjectStoreRef> {
    let s = &config.storage;
    if s.kind == "s3" {
        let cfg = S3Config {
            endpoint: s.endpoint.clone(),
            region: s.region.clone(),
            bucket: s.bucket.clone(),
            access_key: s.access_key.clone(),
            secret_key: s.secret_key.clone(),
            path_style: s.path_style,
            root_prefix: s.root_prefix.clone(),
        };
        let store = S3ObjectStore::connect(cfg)
            .await
            .map_err(|e| FvError::unavailable(format!("cannot open S3 bucket {} at {}: {e}", s.bucket, s.endpoint)))?;
        return Ok(store);
    }
    let store = LocalObjectStore::open(&config.data_dir.join("objects"))
        .map_err(|e| FvError::io(format!("cannot open object storage: {e}")))?;
    Ok(store)
}
