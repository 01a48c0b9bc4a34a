//! Errors of the meta store.

use std::path::PathBuf;

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("lease {lease} not found or expired")]
    LeaseNotFound { lease: i64 },
    /// A watch asked for history that is no longer kept.
    #[error("revision {requested} is compacted (oldest kept: {oldest})")]
    Compacted { requested: i64, oldest: i64 },
    #[error("corrupt meta log {path} at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The backend cannot be reached (retriable).
    #[error("meta store unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    /// An etcd request failed: `op` on `key` (the full key, root prefix included).
    /// `retriable` is true for transport failures, timeouts and a missing leader, false
    /// when etcd rejected the request.
    #[error("etcd {op} {key:?} failed: {source}")]
    Etcd {
        op: &'static str,
        key: String,
        retriable: bool,
        #[source]
        source: etcd_client::Error,
    },
    /// The backend returned something this store cannot represent, e.g. a key that is
    /// not UTF-8 (written by another client) or an unknown event type.
    #[error("unexpected data from the meta store at {key:?}: {reason}")]
    UnexpectedData { key: String, reason: String },
}

impl MetaError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, MetaError::Unavailable { .. } | MetaError::Etcd { retriable: true, .. })
    }
}

impl From<fv_wal::WalError> for MetaError {
    fn from(e: fv_wal::WalError) -> Self {
        match e {
            fv_wal::WalError::Io { path, source } => MetaError::Io { path, source },
            fv_wal::WalError::Corrupt { path, offset, reason } => MetaError::Corrupt { path, offset, reason },
            fv_wal::WalError::Locked { path } => MetaError::Unavailable {
                reason: format!("{} is locked: the meta store is already open", path.display()),
            },
            fv_wal::WalError::FrameTooLarge { len } => {
                MetaError::InvalidArgument { reason: format!("commit of {len} bytes is too large for one frame") }
            }
        }
    }
}
