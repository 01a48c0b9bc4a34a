//! The log broker: Ferrovec's Milvus `MsgStream`.
//!
//! A *topic* is a Milvus pchannel: an append-only, durable sequence of records numbered
//! 1, 2, 3, ... (the [`Position`]). Every record carries a *subject*, which starts with
//! `<topic>.`; vchannels are subjects inside their pchannel's topic, so a consumer of one
//! vchannel subscribes to its pchannel with a subject filter (plus the pchannel's
//! time-tick subject). This maps one-to-one onto NATS JetStream (topic = stream with
//! subjects `<topic>.>`, subject = subject, position = stream sequence).
//!
//! Besides the durable log the broker carries two ephemeral facilities that roles use to
//! talk to each other without knowing addresses: request/reply on a subject (with queue
//! groups) and fire-and-forget notifications.
//!
//! Implementations: [`embedded::EmbeddedBroker`] (files under a directory, for
//! standalone and tests) and [`nats::NatsBroker`] (NATS JetStream, for clusters; see
//! `docs/nats.md`). Every implementation must pass [`testsuite`].

pub mod embedded;
pub mod error;
pub mod nats;
#[cfg(any(test, feature = "testing"))]
pub mod testsuite;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub use error::{BrokerError, Result};

/// Sequence number of a record in a topic; the first record is 1. Position 0 means
/// "before the first record".
pub type Position = u64;

/// Key/value metadata carried beside a payload (trace context, message type).
pub type Headers = Vec<(String, String)>;

/// Where a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekFrom {
    /// From the first record still retained.
    Earliest,
    /// Only records appended after the subscription is made.
    Latest,
    /// Records with a position strictly greater than the given one (resume after a
    /// checkpoint).
    After(Position),
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Headers,
}

impl OutgoingMessage {
    pub fn new(subject: impl Into<String>, payload: impl Into<Bytes>) -> Self {
        Self { subject: subject.into(), payload: payload.into(), headers: Vec::new() }
    }
}

/// A record read from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    pub position: Position,
    pub subject: String,
    pub payload: Bytes,
    pub headers: Headers,
}

/// Which subjects of a topic a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectFilter {
    All,
    /// Exactly these subjects (no wildcards).
    Subjects(Vec<String>),
}

impl SubjectFilter {
    pub fn matches(&self, subject: &str) -> bool {
        match self {
            SubjectFilter::All => true,
            SubjectFilter::Subjects(list) => list.iter().any(|s| s == subject),
        }
    }
}

/// Records of a subscription in position order. The stream ends only when the
/// broker shuts down or the topic is deleted; errors are yielded, not panicked.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<LogMessage>> + Send>>;

/// Sends the reply to one request.
#[async_trait]
pub trait Replier: Send {
    async fn reply(self: Box<Self>, payload: Bytes, headers: Headers) -> Result<()>;
}

/// A request received on a served subject.
pub struct IncomingRequest {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Headers,
    pub replier: Box<dyn Replier>,
}

impl IncomingRequest {
    pub async fn respond(self, payload: Bytes, headers: Headers) -> Result<()> {
        self.replier.reply(payload, headers).await
    }
}

impl std::fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("subject", &self.subject)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Requests arriving on a served subject. Dropping the stream stops serving.
pub type RequestStream = Pin<Box<dyn Stream<Item = IncomingRequest> + Send>>;

/// Ephemeral notifications (not stored, delivered only to current subscribers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub subject: String,
    pub payload: Bytes,
    pub headers: Headers,
}
pub type NotificationStream = Pin<Box<dyn Stream<Item = Notification> + Send>>;

/// The log broker contract. See the crate docs.
#[async_trait]
pub trait LogBroker: Send + Sync + 'static {
    /// Creates `topic` if it does not exist. Idempotent.
    async fn ensure_topic(&self, topic: &str) -> Result<()>;

    /// Appends `messages` to `topic` contiguously and in order, and returns their
    /// positions only once they are durably stored (the point at which a client may be
    /// acknowledged). Positions are strictly increasing and no other producer's record
    /// lands between them; records that fit in one message of the transport get
    /// consecutive positions, while a larger one may span several positions (NATS stores
    /// it in chunks and its position is that of its last chunk). An empty batch returns
    /// an empty vector. A message larger than
    /// [`LogBroker::max_message_bytes`] is rejected with [`BrokerError::MessageTooLarge`]
    /// and nothing of the batch is appended.
    async fn produce(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>>;

    /// Like [`LogBroker::produce`] for records that need not survive a power loss (time
    /// ticks): they are ordered and visible like any record, but the broker may skip
    /// forcing them to stable storage. Durable records written later still cover them.
    async fn produce_volatile(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>> {
        self.produce(topic, messages).await
    }

    /// Reads `topic` from `from`, delivering only records whose subject matches `filter`,
    /// then follows new records as they are appended.
    async fn subscribe(&self, topic: &str, filter: SubjectFilter, from: SeekFrom) -> Result<LogStream>;

    /// Position of the last record of `topic` (0 when it is empty).
    async fn latest_position(&self, topic: &str) -> Result<Position>;

    /// Allows the broker to discard records with position < `before`. Readers must not
    /// seek before it afterwards; seeking to a discarded position yields
    /// [`BrokerError::PositionTruncated`].
    async fn truncate(&self, topic: &str, before: Position) -> Result<()>;

    /// Lists existing topics.
    async fn topics(&self) -> Result<Vec<String>>;

    /// Serves requests sent to `subject`. With a queue group, each request goes to one
    /// member of the group; without, every server of the subject receives it and the
    /// first reply wins.
    async fn serve(&self, subject: &str, queue_group: Option<&str>) -> Result<RequestStream>;

    /// Sends a request and waits for the reply. Fails with [`BrokerError::NoResponders`]
    /// when nobody serves `subject` and [`BrokerError::Timeout`] after `timeout`.
    async fn request(&self, subject: &str, payload: Bytes, headers: Headers, timeout: Duration) -> Result<Bytes>;

    /// Publishes an ephemeral notification.
    async fn notify(&self, subject: &str, payload: Bytes, headers: Headers) -> Result<()>;

    /// Subscribes to ephemeral notifications on `subject`; a trailing `>` token matches
    /// any suffix (`fv.evt.>`).
    async fn listen(&self, subject: &str) -> Result<NotificationStream>;

    /// Largest payload a single record may carry; producers split data above it.
    fn max_message_bytes(&self) -> usize;

    /// A short name for logs ("embedded", "nats").
    fn kind(&self) -> &'static str;
}

pub type LogBrokerRef = Arc<dyn LogBroker>;

/// Whether a notification subject pattern (`a.b.>` style or exact) matches a subject.
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    match pattern.strip_suffix('>') {
        Some(prefix) => subject.len() > prefix.len() && subject.starts_with(prefix),
        None => pattern == subject,
    }
}
