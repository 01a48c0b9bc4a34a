//! Errors of the storage formats.

use fv_common::{Code, FvError};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Data does not fit the schema (wrong type, length or dimension).
    #[error("{0}")]
    Invalid(String),
    /// A stored file is damaged: bad magic, checksum, version or truncated.
    #[error("corrupt {kind} file {path}: {reason}")]
    Corrupt { kind: &'static str, path: String, reason: String },
}

impl From<StorageError> for FvError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => FvError::invalid_parameter(m),
            StorageError::Corrupt { .. } => FvError::new(Code::IoFailed, e.to_string()),
        }
    }
}
