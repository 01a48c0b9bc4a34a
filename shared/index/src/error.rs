//! The one error type of the crate: every fallible public call returns [`IndexError`], so a
//! caller (proxy, index node, query node) can turn bad parameters or a corrupt file into a
//! user-facing message instead of a panic.

/// Why an index operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IndexError {
    /// A build or search parameter is malformed or out of range.
    #[error("invalid parameter {name}={value}: {allowed}")]
    InvalidParam {
        /// Parameter name as the user spelled it (`nlist`, `nprobe`, ...).
        name: String,
        /// The offending value, as received.
        value: String,
        /// What would have been accepted (range or list of values).
        allowed: String,
    },
    /// Input buffers do not fit the index (dimension, filter length, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The index type or metric is not supported here.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A serialised index failed its checksum or structural checks; it must be rebuilt.
    #[error("corrupt index file: {0}")]
    Corrupt(String),
    /// The search or build was stopped through its stop flag (its request was cancelled
    /// or timed out); no result was produced.
    #[error("cancelled: the request was cancelled or timed out")]
    Cancelled,
}

impl IndexError {
    /// Shorthand for [`IndexError::InvalidParam`].
    pub fn param(name: &str, value: impl ToString, allowed: impl Into<String>) -> IndexError {
        IndexError::InvalidParam { name: name.to_string(), value: value.to_string(), allowed: allowed.into() }
    }

    pub(crate) fn input(msg: impl Into<String>) -> IndexError {
        IndexError::InvalidInput(msg.into())
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> IndexError {
        IndexError::Corrupt(msg.into())
    }
}

/// Result alias of the crate.
pub type Result<T> = std::result::Result<T, IndexError>;
