//! Errors of object storage.

use std::path::PathBuf;

pub type Result<T, E = ObjectStoreError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreError {
    #[error("object {key} not found")]
    NotFound { key: String },
    #[error("range {start}..{end} is invalid for object {key} of {size} bytes")]
    InvalidRange { key: String, start: u64, end: u64, size: u64 },
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The backend cannot be reached (retriable).
    #[error("object storage unavailable: {reason}")]
    Unavailable { reason: String },
}

impl ObjectStoreError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, ObjectStoreError::Unavailable { .. })
    }
}
