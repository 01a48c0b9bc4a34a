//! Errors of the log broker.

use std::path::PathBuf;

pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The topic does not exist (it was never created or was deleted).
    #[error("topic {topic} does not exist")]
    TopicNotFound { topic: String },
    /// A message exceeds the broker's size limit; the producer must split it.
    #[error("message of {size} bytes exceeds the broker limit of {limit} bytes")]
    MessageTooLarge { size: usize, limit: usize },
    /// The requested start position was already discarded by `truncate`.
    #[error("position {position} of topic {topic} was truncated (first retained: {first_retained})")]
    PositionTruncated { topic: String, position: u64, first_retained: u64 },
    /// Nobody serves the subject of a request.
    #[error("no responders for {subject}")]
    NoResponders { subject: String },
    /// No reply within the deadline.
    #[error("request to {subject} timed out after {timeout_ms} ms")]
    Timeout { subject: String, timeout_ms: u64 },
    /// A stored record failed its checksum: the log is corrupt beyond its recoverable tail.
    #[error("corrupt log record in {path} at offset {offset}: {reason}")]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The broker is shutting down or the connection is gone (retriable).
    #[error("broker unavailable: {reason}")]
    Unavailable { reason: String },
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
}

impl BrokerError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, BrokerError::NoResponders { .. } | BrokerError::Timeout { .. } | BrokerError::Unavailable { .. })
    }
}
