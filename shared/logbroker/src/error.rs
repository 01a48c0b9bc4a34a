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
    /// The server behind a networked broker (NATS JetStream) failed or rejected
    /// `operation`. `retriable` says whether the same call may succeed later (timeouts, a
    /// lost connection, a server-side limit that clears) or not (a misconfigured stream).
    /// Note that a retried `produce` may store its records twice when the failure hid
    /// whether the first attempt was stored (an ack that never arrived).
    #[error("{operation}: {source}")]
    Backend {
        operation: String,
        retriable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Another producer appended to the topic in the middle of a batch too large for one
    /// atomic write, so the batch could not be kept contiguous; the records before the
    /// interruption may be stored. Not retriable as is: the caller must decide whether a
    /// partial batch is acceptable.
    #[error("concurrent append to topic {topic}: {reason}")]
    Conflict { topic: String, reason: String },
}

impl BrokerError {
    /// Whether retrying the same call later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            BrokerError::NoResponders { .. } | BrokerError::Timeout { .. } | BrokerError::Unavailable { .. } => true,
            BrokerError::Backend { retriable, .. } => *retriable,
            BrokerError::TopicNotFound { .. }
            | BrokerError::MessageTooLarge { .. }
            | BrokerError::PositionTruncated { .. }
            | BrokerError::Corrupt { .. }
            | BrokerError::Io { .. }
            | BrokerError::InvalidArgument { .. }
            | BrokerError::Conflict { .. } => false,
        }
    }
}

impl From<fv_wal::WalError> for BrokerError {
    fn from(e: fv_wal::WalError) -> Self {
        match e {
            fv_wal::WalError::Io { path, source } => BrokerError::Io { path, source },
            fv_wal::WalError::Corrupt { path, offset, reason } => BrokerError::Corrupt { path, offset, reason },
            fv_wal::WalError::Locked { path } => {
                let dir = path.parent().unwrap_or(&path);
                BrokerError::Unavailable { reason: format!("{} is in use by another log broker", dir.display()) }
            }
            fv_wal::WalError::FrameTooLarge { len } => {
                BrokerError::InvalidArgument { reason: format!("batch of {len} bytes is too large for one frame") }
            }
        }
    }
}
