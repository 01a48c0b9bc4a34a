//! [`NatsBroker`]: the log broker on NATS JetStream (async-nats), for clusters.
//!
//! # Mapping
//!
//! * A topic (pchannel) is a JetStream stream with file storage whose subjects are
//!   `<topic>.>`; its name is the topic upper-cased with dots turned into underscores,
//!   after an optional prefix (`fv.dml.3` -> stream `FV_DML_3`, see the `names` module).
//!   The stream's metadata `ferrovec.topic` names the topic, which also marks the streams
//!   [`LogBroker::topics`] lists.
//! * A record is a JetStream message on its subject (vchannels and time ticks are
//!   subjects of their pchannel); its [`Position`] is the stream sequence.
//! * Subscriptions are ordered consumers (ephemeral, in memory, no acks) with the
//!   subject filters as `filter_subjects`; `truncate` purges the stream below a sequence.
//! * Request/reply, notifications: core NATS (queue groups, `>` wildcards).
//!
//! # Contiguous, durable appends
//!
//! `produce` returns once JetStream acknowledged the records (stored on the stream's
//! replicas). A batch of more than one message is one JetStream *atomic batch*
//! (`allow_atomic` streams, server 2.12+): the server stores all of it or nothing, at
//! consecutive sequences, whatever other producers (in this process or others) do at the
//! same time. A batch of more than [`MAX_ATOMIC_BATCH`] messages is written as several
//! atomic batches, each after the first requiring the previous one to be the stream's
//! tail (`Nats-Expected-Last-Sequence`); in-process producers wait for such a batch, a
//! producer in another process that slips in makes it fail with
//! [`BrokerError::Conflict`].
//!
//! # Records above the server's `max_payload`
//!
//! A record whose payload and headers exceed the server's `max_payload` (1 MiB by
//! default) is split into chunks (`chunk` module) written in the same atomic batch, and
//! readers reassemble it: [`LogBroker::max_message_bytes`] is
//! [`NatsBrokerConfig::max_record_bytes`] (64 MiB by default), not `max_payload`. A
//! chunked record's position is the sequence of its last chunk, so `After(p)` resumes
//! after it, positions stay strictly increasing within a batch (contiguous in stream
//! sequences, not in records), and a reader that starts inside a record (after a
//! truncation) skips that record. Replies to requests are chunked the same way; requests
//! and notifications must fit in `max_payload`.

mod chunk;
mod mux;
mod names;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::pull::{Ordered, OrderedConfig};
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{self, DiscardPolicy, PurgeResponse, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, ContextBuilder};
use async_nats::jetstream::{Error as ApiError, ErrorCode};
use async_nats::{Client, ConnectOptions, Event, HeaderMap, Message, StatusCode, Subject, header};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{FutureExt, StreamExt, TryStreamExt};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, Semaphore, watch};
use tracing::{debug, info, warn};

use self::chunk::{ChunkInfo, Fed, Partial, Piece};
use self::mux::{Recv, ReplyInbox, ReplyMux};
use self::names::TOPIC_METADATA_KEY;
use crate::{
    BrokerError, Headers, IncomingRequest, LogBroker, LogMessage, LogStream, Notification, NotificationStream,
    OutgoingMessage, Position, Replier, RequestStream, Result, SeekFrom, SubjectFilter,
};

/// Most messages the server accepts in one atomic batch (its default limit).
pub const MAX_ATOMIC_BATCH: usize = 1000;
/// JetStream API requests (stream create/info/purge/list, consumer create) give up after
/// this long.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// A publish (or batch commit) not acknowledged within this long fails; its records may
/// still have been stored.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Atomic batches one process keeps in flight per topic (the server allows 50 per stream).
const MAX_INFLIGHT_BATCHES: usize = 16;
/// Attempts of an atomic batch the server rejected as a whole for a transient reason
/// (too many batches in flight, a batch torn by a reconnect).
const BATCH_ATTEMPTS: u32 = 5;
/// Messages one pull of a subscription asks for: bounds what a subscription buffers to
/// this many messages of at most `max_payload` each.
const PULL_BATCH: i64 = 64;

/// Where JetStream keeps a stream's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsStorage {
    /// Files on the servers' JetStream store (durable).
    #[default]
    File,
    /// Server memory: lost when the servers restart. For tests and experiments.
    Memory,
}

/// Settings of a [`NatsBroker`]. Every field has a default; see `docs/nats.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsBrokerConfig {
    /// Prepended to every stream name (`[A-Za-z0-9_-]`, at most 32 characters); lets
    /// Ferrovec's streams stand apart on a shared server. Subjects are not prefixed.
    pub stream_prefix: String,
    /// Replicas of each stream (1 on a single server, 3 or 5 in a JetStream cluster).
    pub replicas: usize,
    /// Stream storage.
    pub storage: NatsStorage,
    /// Discard records older than this many seconds (none: keep until truncated).
    pub max_age_secs: Option<u64>,
    /// Discard the oldest records of a stream above this many bytes (none: no limit).
    pub max_bytes: Option<u64>,
    /// Largest record payload ([`LogBroker::max_message_bytes`]); larger than the
    /// server's `max_payload`, records above it are chunked.
    pub max_record_bytes: usize,
    /// Connection name shown by the server's monitoring (`/connz`).
    pub connection_name: String,
}

impl Default for NatsBrokerConfig {
    fn default() -> Self {
        Self {
            stream_prefix: String::new(),
            replicas: 1,
            storage: NatsStorage::File,
            max_age_secs: None,
            max_bytes: None,
            max_record_bytes: 64 << 20,
            connection_name: "ferrovec".into(),
        }
    }
}

impl Drop for NatsBroker {
    /// Closes the connection (after flushing what is queued): subscriptions, request
    /// streams and listeners end, as with the embedded broker.
    fn drop(&mut self) {
        let client = self.client.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = client.drain().await {
                    debug!(error = %e, "closing the NATS connection");
                }
            });
        }
    }
}

/// A topic known to exist, with the state its producers share.
struct TopicHandle {
    topic: String,
    stream: String,
    /// Shared by every append; taken exclusively by an append split over several atomic
    /// batches so that this process' other appends cannot land between them.
    appends: RwLock<()>,
    inflight: Semaphore,
}

/// The log broker on NATS JetStream. See the module docs.
pub struct NatsBroker {
    client: Client,
    js: jetstream::Context,
    config: NatsBrokerConfig,
    mux: ReplyMux,
    topics: Mutex<HashMap<String, Arc<TopicHandle>>>,
    /// Where the server is, without credentials (for logs and errors).
    server: String,
}

impl std::fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBroker").field("server", &self.server).field("config", &self.config).finish()
    }
}

fn backend(
    operation: impl Into<String>,
    retriable: bool,
    source: impl std::error::Error + Send + Sync + 'static,
) -> BrokerError {
    BrokerError::Backend { operation: operation.into(), retriable, source: Box::new(source) }
}

/// A plain-text error source for conditions without an error value of their own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reason(String);

fn backend_reason(operation: impl Into<String>, retriable: bool, reason: impl Into<String>) -> BrokerError {
    backend(operation, retriable, Reason(reason.into()))
}

/// `nats://user:pass@host:4222` -> `nats://***@host:4222`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        (None, Some(at)) => format!("***{}", &url[at..]),
        _ => url.to_owned(),
    }
}

/// A process-wide unique id for chunked records and replies (random start).
fn next_chunk_id() -> u64 {
    static NEXT: OnceLock<AtomicU64> = OnceLock::new();
    NEXT.get_or_init(|| AtomicU64::new(RandomState::new().build_hasher().finish())).fetch_add(1, Ordering::Relaxed)
}

/// An API error the server returned, or a failure to get an answer.
enum ApiFailure {
    Api(ApiError),
    Broker(BrokerError),
}

/// The error of a publish ack or batch reply.
enum AckFailure {
    /// The server rejected the publish (or batch).
    Api(ApiError),
    /// No stream captures the subject.
    NoStream,
    Broker(BrokerError),
}

impl NatsBroker {
    /// Connects to the NATS server(s) at `url` (`nats://host:4222`, several separated by
    /// commas; credentials may be given as `nats://user:pass@host` or `nats://token@host`)
    /// and checks that JetStream is available and recent enough (2.12+, for atomic batches).
    /// The connection reconnects by itself when the server goes away.
    pub async fn connect(url: &str, config: NatsBrokerConfig) -> Result<Arc<NatsBroker>> {
        names::validate_stream_prefix(&config.stream_prefix)?;
        if !(1..=5).contains(&config.replicas) {
            return Err(BrokerError::InvalidArgument {
                reason: format!("replicas must be 1 to 5, not {}", config.replicas),
            });
        }
        if config.max_record_bytes < (1 << 20) || config.max_record_bytes > (1 << 30) {
            return Err(BrokerError::InvalidArgument {
                reason: format!("max_record_bytes must be between 1 MiB and 1 GiB, not {}", config.max_record_bytes),
            });
        }
        let server = redact(url);
        let events_server = server.clone();
        let (disconnects_tx, disconnects) = watch::channel(0u64);
        let disconnects_tx = Arc::new(disconnects_tx);
        let client = ConnectOptions::new()
            .name(&config.connection_name)
            .request_timeout(Some(API_TIMEOUT))
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let server = events_server.clone();
                let disconnects = disconnects_tx.clone();
                async move {
                    match event {
                        Event::Connected => info!(%server, "connected to NATS"),
                        Event::Disconnected => {
                            disconnects.send_modify(|n| *n += 1);
                            warn!(%server, "disconnected from NATS; reconnecting");
                        }
                        Event::SlowConsumer(sid) => {
                            warn!(%server, sid, "a NATS subscription does not keep up; messages dropped")
                        }
                        other => warn!(%server, event = %other, "NATS connection event"),
                    }
                }
            })
            .connect(url)
            .await
            .map_err(|e| {
                use async_nats::ConnectErrorKind as K;
                // A malformed address or refused credentials do not get better by retrying.
                let retriable =
                    !matches!(e.kind(), K::ServerParse | K::Authentication | K::AuthorizationViolation | K::Tls);
                backend(format!("connecting to NATS at {server}"), retriable, e)
            })?;
        let js = ContextBuilder::new().timeout(API_TIMEOUT).build(client.clone());
        js.query_account().await.map_err(|e| {
            backend(format!("checking JetStream on {server} (is the server started with JetStream, `-js`?)"), true, e)
        })?;
        let info = client.server_info();
        if !client.is_server_compatible(2, 12, 0) {
            return Err(backend_reason(
                format!("checking the NATS server version at {server}"),
                false,
                format!(
                    "server {} is too old: Ferrovec needs nats-server 2.12 or later (atomic batches)",
                    info.version
                ),
            ));
        }
        let mux = ReplyMux::start(&client, disconnects).await?;
        info!(%server, version = %info.version, max_payload = info.max_payload, "NATS JetStream log broker ready");
        Ok(Arc::new(NatsBroker { client, js, config, mux, topics: Mutex::default(), server }))
    }

    /// The configuration this broker was opened with.
    pub fn config(&self) -> &NatsBrokerConfig {
        &self.config
    }

    /// The JetStream stream that holds `topic` (whether or not it exists).
    pub fn stream_name(&self, topic: &str) -> Result<String> {
        names::validate_topic(topic)?;
        Ok(names::stream_name(&self.config.stream_prefix, topic))
    }

    /// The largest NATS message the server accepts (its `max_payload`).
    pub fn max_payload(&self) -> usize {
        self.client.max_payload()
    }

    fn stream_config(&self, topic: &str, stream: &str) -> stream::Config {
        stream::Config {
            name: stream.to_owned(),
            subjects: vec![names::topic_subjects(topic)],
            description: Some(format!("Ferrovec topic {topic}")),
            storage: match self.config.storage {
                NatsStorage::File => StorageType::File,
                NatsStorage::Memory => StorageType::Memory,
            },
            num_replicas: self.config.replicas,
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            max_age: Duration::from_secs(self.config.max_age_secs.unwrap_or(0)),
            max_bytes: self.config.max_bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
            max_messages: -1,
            max_messages_per_subject: -1,
            max_consumers: -1,
            allow_atomic_publish: true,
            metadata: HashMap::from([(TOPIC_METADATA_KEY.to_owned(), topic.to_owned())]),
            ..Default::default()
        }
    }

    /// Sends a JetStream API request (`subject` without the `$JS.API.` prefix).
    async fn api<T: DeserializeOwned>(
        &self,
        operation: &str,
        subject: &str,
        body: &(impl Serialize + ?Sized),
    ) -> std::result::Result<T, ApiFailure> {
        match self.js.request::<_, _, Response<T>>(subject.to_owned(), body).await {
            Ok(Response::Ok(v)) => Ok(v),
            Ok(Response::Err { error }) => Err(ApiFailure::Api(error)),
            Err(e) => Err(ApiFailure::Broker(backend(format!("{operation} (JetStream API {subject})"), true, e))),
        }
    }

    /// A stream's info; `None` when it does not exist.
    async fn stream_info(&self, stream: &str) -> Result<Option<stream::Info>> {
        let operation = format!("reading the info of stream {stream}");
        match self.api::<stream::Info>(&operation, &format!("STREAM.INFO.{stream}"), &()).await {
            Ok(info) => Ok(Some(info)),
            Err(ApiFailure::Api(e)) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => Ok(None),
            Err(ApiFailure::Api(e)) => Err(api_error(operation, e)),
            Err(ApiFailure::Broker(e)) => Err(e),
        }
    }

    /// The info of a known topic's stream (`TopicNotFound` when it is gone).
    async fn topic_info(&self, handle: &TopicHandle) -> Result<stream::Info> {
        match self.stream_info(&handle.stream).await? {
            Some(info) => Ok(info),
            None => Err(self.topic_gone(handle)),
        }
    }

    /// Forgets a topic whose stream disappeared.
    fn topic_gone(&self, handle: &TopicHandle) -> BrokerError {
        self.topics.lock().remove(&handle.topic);
        BrokerError::TopicNotFound { topic: handle.topic.clone() }
    }

    fn remember(&self, topic: &str, stream: &str) -> Arc<TopicHandle> {
        self.topics
            .lock()
            .entry(topic.to_owned())
            .or_insert_with(|| {
                Arc::new(TopicHandle {
                    topic: topic.to_owned(),
                    stream: stream.to_owned(),
                    appends: RwLock::new(()),
                    inflight: Semaphore::new(MAX_INFLIGHT_BATCHES),
                })
            })
            .clone()
    }

    /// The handle of an existing topic (`TopicNotFound` otherwise).
    async fn resolve(&self, topic: &str) -> Result<Arc<TopicHandle>> {
        names::validate_topic(topic)?;
        if let Some(h) = self.topics.lock().get(topic) {
            return Ok(h.clone());
        }
        let stream = names::stream_name(&self.config.stream_prefix, topic);
        let Some(info) = self.stream_info(&stream).await? else {
            return Err(BrokerError::TopicNotFound { topic: topic.to_owned() });
        };
        match stream_topic(&info) {
            Some(owner) if owner == topic => Ok(self.remember(topic, &stream)),
            other => {
                debug!(topic, stream, owner = ?other, "the topic's stream name belongs to another topic");
                Err(BrokerError::TopicNotFound { topic: topic.to_owned() })
            }
        }
    }

    /// Waits for the reply JetStream sends to a publish with a reply subject.
    async fn await_reply(&self, inbox: &mut ReplyInbox, what: &str) -> std::result::Result<Message, AckFailure> {
        let operation = || format!("waiting for JetStream to acknowledge {what}");
        match inbox.recv(tokio::time::Instant::now() + ACK_TIMEOUT).await {
            Err(Recv::TimedOut) => Err(AckFailure::Broker(backend_reason(
                operation(),
                true,
                format!("no ack within {ACK_TIMEOUT:?} (the records may or may not be stored)"),
            ))),
            Err(Recv::ConnectionLost) => Err(AckFailure::Broker(backend_reason(
                operation(),
                true,
                "the connection to NATS dropped (the records may or may not be stored)",
            ))),
            Err(Recv::Closed) => Err(AckFailure::Broker(backend_reason(operation(), true, "the reply inbox closed"))),
            Ok(msg) if msg.status == Some(StatusCode::NO_RESPONDERS) => Err(AckFailure::NoStream),
            Ok(msg) => Ok(msg),
        }
    }

    async fn await_ack(&self, inbox: &mut ReplyInbox, what: &str) -> std::result::Result<PublishAck, AckFailure> {
        let msg = self.await_reply(inbox, what).await?;
        match serde_json::from_slice::<Response<PublishAck>>(&msg.payload) {
            Ok(Response::Ok(ack)) => Ok(ack),
            Ok(Response::Err { error }) => Err(AckFailure::Api(error)),
            Err(e) => Err(AckFailure::Broker(backend(format!("decoding the JetStream ack of {what}"), false, e))),
        }
    }

    async fn send(&self, subject: &str, reply: Option<&str>, headers: HeaderMap, payload: Bytes) -> Result<()> {
        let subject = subject.to_owned();
        let result = match (reply, headers.is_empty()) {
            (Some(r), false) => {
                self.client.publish_with_reply_and_headers(subject, r.to_owned(), headers, payload).await
            }
            (Some(r), true) => self.client.publish_with_reply(subject, r.to_owned(), payload).await,
            (None, false) => self.client.publish_with_headers(subject, headers, payload).await,
            (None, true) => self.client.publish(subject, payload).await,
        };
        result.map_err(|e| backend("publishing to NATS", true, e))
    }

    /// Publishes one message and waits for its ack.
    async fn publish_one(
        &self,
        handle: &TopicHandle,
        subject: &str,
        piece: Piece,
    ) -> std::result::Result<PublishAck, AckFailure> {
        let mut inbox = self.mux.register();
        self.send(subject, Some(&inbox.subject), piece.headers, piece.payload).await.map_err(AckFailure::Broker)?;
        self.await_ack(&mut inbox, &format!("a record of topic {}", handle.topic)).await
    }

    /// Publishes `msgs` as one atomic batch; `expected_last` requires the stream's last
    /// sequence before the batch.
    async fn publish_batch(
        &self,
        handle: &TopicHandle,
        msgs: &[(String, Piece)],
        expected_last: Option<u64>,
    ) -> std::result::Result<PublishAck, AckFailure> {
        let batch_id = self.mux.unique_id();
        let mut first_inbox = self.mux.register();
        let mut commit_inbox = self.mux.register();
        let n = msgs.len();
        for (i, (subject, piece)) in msgs.iter().enumerate() {
            let mut headers = piece.headers.clone();
            headers.insert(header::NATS_BATCH_ID, batch_id.as_str());
            headers.insert(header::NATS_BATCH_SEQUENCE, (i + 1).to_string());
            if i == 0
                && let Some(seq) = expected_last
            {
                headers.insert(header::NATS_EXPECTED_LAST_SEQUENCE, seq.to_string());
            }
            let reply = if i + 1 == n {
                headers.insert(header::NATS_BATCH_COMMIT, header::NATS_BATCH_COMMIT_FINAL);
                Some(commit_inbox.subject.as_str())
            } else if i == 0 {
                Some(first_inbox.subject.as_str())
            } else {
                None
            };
            self.send(subject, reply, headers, piece.payload.clone()).await.map_err(AckFailure::Broker)?;
        }
        let what = format!("a batch of {n} messages on topic {}", handle.topic);
        // The first message is answered with an empty message, or with the error that
        // abandoned the batch (more telling than the commit's).
        let first = self.await_reply(&mut first_inbox, &what).await?;
        if !first.payload.is_empty()
            && let Ok(Response::Err { error }) = serde_json::from_slice::<Response<serde_json::Value>>(&first.payload)
        {
            return Err(AckFailure::Api(error));
        }
        let ack = self.await_ack(&mut commit_inbox, &what).await?;
        if let Some(count) = ack.batch_size
            && count != n as u64
        {
            return Err(AckFailure::Broker(backend_reason(
                format!("committing {what}"),
                false,
                format!("the server reports {count} stored messages"),
            )));
        }
        Ok(ack)
    }

    /// [`Self::publish_batch`], retried while the server rejects the whole batch for a
    /// transient reason.
    async fn publish_batch_retrying(
        &self,
        handle: &TopicHandle,
        msgs: &[(String, Piece)],
        expected_last: Option<u64>,
    ) -> Result<PublishAck> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.publish_batch(handle, msgs, expected_last).await {
                Ok(ack) => return Ok(ack),
                Err(AckFailure::Api(e))
                    if attempt < BATCH_ATTEMPTS
                        && [
                            ErrorCode::ATOMIC_PUBLISH_TOO_MANY_INFLIGHT,
                            ErrorCode::ATOMIC_PUBLISH_INCOMPLETE_BATCH,
                        ]
                        .contains(&e.error_code()) =>
                {
                    debug!(topic = %handle.topic, attempt, error = %e, "atomic batch rejected; retrying");
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(e) => return Err(self.ack_error(handle, e)),
            }
        }
    }

    fn ack_error(&self, handle: &TopicHandle, failure: AckFailure) -> BrokerError {
        match failure {
            AckFailure::NoStream => self.topic_gone(handle),
            AckFailure::Broker(e) => e,
            AckFailure::Api(e) => match e.error_code() {
                ErrorCode::STREAM_NOT_FOUND => self.topic_gone(handle),
                ErrorCode::STREAM_WRONG_LAST_SEQUENCE => BrokerError::Conflict {
                    topic: handle.topic.clone(),
                    reason: format!("another producer appended between the parts of a large batch ({e})"),
                },
                ErrorCode::ATOMIC_PUBLISH_DISABLED => backend(
                    format!(
                        "appending to topic {}: stream {} does not allow atomic batches (it was not created by \
                         this broker; enable allow_atomic on it)",
                        handle.topic, handle.stream
                    ),
                    false,
                    e,
                ),
                _ => {
                    let retriable = e.code() >= 500
                        || [ErrorCode::ATOMIC_PUBLISH_TOO_MANY_INFLIGHT, ErrorCode::ATOMIC_PUBLISH_INCOMPLETE_BATCH]
                            .contains(&e.error_code());
                    backend(format!("appending to topic {} (stream {})", handle.topic, handle.stream), retriable, e)
                }
            },
        }
    }

    /// Appends a batch (see the module docs).
    async fn append(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>> {
        let handle = self.resolve(topic).await?;
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let limit = self.config.max_record_bytes;
        for m in &messages {
            if m.payload.len() > limit {
                return Err(BrokerError::MessageTooLarge { size: m.payload.len(), limit });
            }
            names::validate_record_subject(topic, &m.subject)?;
        }
        // Split everything (validating headers) before sending anything.
        let max_payload = self.client.max_payload();
        let mut flat: Vec<(usize, String, Piece)> = Vec::with_capacity(messages.len());
        for (i, m) in messages.iter().enumerate() {
            for piece in chunk::split(next_chunk_id(), &m.payload, &m.headers, max_payload)? {
                flat.push((i, m.subject.clone(), piece));
            }
        }
        let mut positions = vec![0; messages.len()];
        if flat.len() == 1 {
            let _shared = handle.appends.read().await;
            let (_, subject, piece) = flat.pop().expect("one message");
            let ack = self.publish_one(&handle, &subject, piece).await.map_err(|e| self.ack_error(&handle, e))?;
            self.check_stream(&handle, &ack)?;
            positions[0] = ack.sequence;
            return Ok(positions);
        }
        let split = flat.len() > MAX_ATOMIC_BATCH;
        let _shared = if split { None } else { Some(handle.appends.read().await) };
        let _exclusive = if split { Some(handle.appends.write().await) } else { None };
        if split {
            debug!(topic, messages = flat.len(), "batch larger than one atomic batch; appending it in parts");
        }
        let mut expected_last = None;
        for part in flat.chunks(MAX_ATOMIC_BATCH) {
            let msgs: Vec<(String, Piece)> = part.iter().map(|(_, s, p)| (s.clone(), p.clone())).collect();
            let ack = {
                let _permit = handle.inflight.acquire().await.expect("the semaphore is never closed");
                self.publish_batch_retrying(&handle, &msgs, expected_last).await?
            };
            self.check_stream(&handle, &ack)?;
            let Some(first) = (ack.sequence + 1).checked_sub(part.len() as u64) else {
                return Err(backend_reason(
                    format!("appending to topic {topic}"),
                    false,
                    format!("the ack of a batch of {} messages names sequence {}", part.len(), ack.sequence),
                ));
            };
            for (offset, (record, _, _)) in part.iter().enumerate() {
                // A record's position is the sequence of its last piece.
                positions[*record] = first + offset as u64;
            }
            expected_last = Some(ack.sequence);
        }
        Ok(positions)
    }

    fn check_stream(&self, handle: &TopicHandle, ack: &PublishAck) -> Result<()> {
        if ack.stream != handle.stream {
            return Err(backend_reason(
                format!("appending to topic {}", handle.topic),
                false,
                format!("stored in stream {} instead of {}", ack.stream, handle.stream),
            ));
        }
        Ok(())
    }

    /// Creates a topic's stream, or checks the existing one.
    async fn create_topic(&self, topic: &str) -> Result<()> {
        let stream = names::stream_name(&self.config.stream_prefix, topic);
        let config = self.stream_config(topic, &stream);
        let operation = format!("creating stream {stream} for topic {topic}");
        match self.api::<stream::Info>(&operation, &format!("STREAM.CREATE.{stream}"), &config).await {
            Ok(_) => {
                // Also the answer when an identical stream exists already.
                info!(topic, stream, "topic ready");
                self.remember(topic, &stream);
                return Ok(());
            }
            Err(ApiFailure::Api(e)) if e.error_code() == ErrorCode::STREAM_NAME_EXIST => {
                // It exists with another configuration: fine if it is this topic's.
            }
            Err(ApiFailure::Api(e)) if e.error_code() == ErrorCode::STREAM_SUBJECT_OVERLAP => {
                return Err(BrokerError::InvalidArgument {
                    reason: format!("topic {topic}: its subjects {topic}.> overlap another stream's ({e})"),
                });
            }
            Err(ApiFailure::Api(e)) => return Err(api_error(operation, e)),
            Err(ApiFailure::Broker(e)) => return Err(e),
        }
        let Some(info) = self.stream_info(&stream).await? else {
            return Err(backend_reason(operation, true, "the stream exists and does not (deleted meanwhile?)"));
        };
        match stream_topic(&info) {
            Some(owner) if owner == topic => {}
            Some(owner) => {
                return Err(BrokerError::InvalidArgument {
                    reason: format!("topic {topic} maps to stream {stream}, which already holds topic {owner}"),
                });
            }
            None => {
                return Err(BrokerError::InvalidArgument {
                    reason: format!("topic {topic} maps to stream {stream}, which exists but is not a Ferrovec topic"),
                });
            }
        }
        if !info.config.allow_atomic_publish {
            let mut updated = info.config.clone();
            updated.allow_atomic_publish = true;
            let operation = format!("enabling atomic batches on stream {stream}");
            match self.api::<stream::Info>(&operation, &format!("STREAM.UPDATE.{stream}"), &updated).await {
                Ok(_) => info!(topic, stream, "enabled atomic batches on an existing stream"),
                Err(ApiFailure::Api(e)) => return Err(api_error(operation, e)),
                Err(ApiFailure::Broker(e)) => return Err(e),
            }
        }
        debug!(topic, stream, "topic exists");
        self.remember(topic, &stream);
        Ok(())
    }
}

/// The topic a stream was created for (its metadata), if it is one of ours.
fn stream_topic(info: &stream::Info) -> Option<&str> {
    let topic = info.config.metadata.get(TOPIC_METADATA_KEY)?;
    (info.config.subjects == [names::topic_subjects(topic)]).then_some(topic.as_str())
}

fn api_error(operation: String, e: ApiError) -> BrokerError {
    let retriable = e.code() >= 500;
    backend(operation, retriable, e)
}

#[async_trait]
impl LogBroker for NatsBroker {
    async fn ensure_topic(&self, topic: &str) -> Result<()> {
        names::validate_topic(topic)?;
        // Always asks the server (one idempotent request), which recreates a stream that
        // was deleted behind this process' back.
        self.create_topic(topic).await
    }

    async fn produce(&self, topic: &str, messages: Vec<OutgoingMessage>) -> Result<Vec<Position>> {
        self.append(topic, messages).await
    }

    async fn subscribe(&self, topic: &str, filter: SubjectFilter, from: SeekFrom) -> Result<LogStream> {
        let handle = self.resolve(topic).await?;
        let mut filters = match filter {
            SubjectFilter::All => Vec::new(),
            SubjectFilter::Subjects(list) => {
                if list.is_empty() {
                    // Matches nothing, ever.
                    return Ok(Box::pin(futures::stream::pending()));
                }
                for s in &list {
                    names::validate_record_subject(topic, s)?;
                }
                list
            }
        };
        filters.sort();
        filters.dedup();
        let gap_check = filters.is_empty();

        let info = self.topic_info(&handle).await?;
        let first = info.state.first_sequence.max(1);
        let last = info.state.last_sequence;
        let (deliver_policy, floor) = match from {
            SeekFrom::Earliest => (DeliverPolicy::All, 0),
            SeekFrom::Latest => {
                let next = last.saturating_add(1);
                (DeliverPolicy::ByStartSequence { start_sequence: next }, next)
            }
            SeekFrom::After(p) => {
                let next = p.saturating_add(1);
                if next < first {
                    return Err(BrokerError::PositionTruncated {
                        topic: topic.to_owned(),
                        position: next,
                        first_retained: first,
                    });
                }
                (DeliverPolicy::ByStartSequence { start_sequence: next }, next)
            }
        };
        let config = OrderedConfig {
            description: Some(format!("ferrovec subscription to {topic}")),
            filter_subject: if filters.len() == 1 { filters[0].clone() } else { String::new() },
            filter_subjects: if filters.len() > 1 { filters } else { Vec::new() },
            deliver_policy,
            max_batch: PULL_BATCH,
            ..Default::default()
        };
        let operation = format!("subscribing to topic {topic} (stream {})", handle.stream);
        let consumer = match self.js.create_consumer_on_stream(config, &handle.stream).await {
            Ok(c) => c,
            Err(e) => {
                if let async_nats::jetstream::stream::ConsumerErrorKind::JetStream(api) = e.kind()
                    && api.error_code() == ErrorCode::STREAM_NOT_FOUND
                {
                    return Err(self.topic_gone(&handle));
                }
                return Err(backend(operation, true, e));
            }
        };
        let messages = consumer.messages().await.map_err(|e| backend(operation, true, e))?;
        debug!(topic, ?from, floor, "subscribed");
        let sub = Subscription {
            topic: topic.to_owned(),
            messages,
            floor,
            last_seen: 0,
            expect_next: match from {
                SeekFrom::Earliest => None,
                SeekFrom::Latest | SeekFrom::After(_) => gap_check.then_some(floor),
            },
            gap_check,
            partial: None,
            limit: self.config.max_record_bytes,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(sub, |mut sub| async move {
            let item = sub.next_item().await?;
            Some((item, sub))
        })))
    }

    async fn latest_position(&self, topic: &str) -> Result<Position> {
        let handle = self.resolve(topic).await?;
        Ok(self.topic_info(&handle).await?.state.last_sequence)
    }

    async fn truncate(&self, topic: &str, before: Position) -> Result<()> {
        let handle = self.resolve(topic).await?;
        let info = self.topic_info(&handle).await?;
        let first = info.state.first_sequence.max(1);
        // Purging beyond the tail would move the next sequence forward.
        let before = before.min(info.state.last_sequence.saturating_add(1));
        if before <= first {
            return Ok(());
        }
        let operation = format!("truncating topic {topic} (stream {}) before {before}", handle.stream);
        let body = serde_json::json!({ "seq": before });
        match self.api::<PurgeResponse>(&operation, &format!("STREAM.PURGE.{}", handle.stream), &body).await {
            Ok(r) => {
                debug!(topic, before, purged = r.purged, "truncated");
                Ok(())
            }
            Err(ApiFailure::Api(e)) if e.error_code() == ErrorCode::STREAM_NOT_FOUND => Err(self.topic_gone(&handle)),
            Err(ApiFailure::Api(e)) => Err(api_error(operation, e)),
            Err(ApiFailure::Broker(e)) => Err(e),
        }
    }

    async fn topics(&self) -> Result<Vec<String>> {
        let infos: Vec<stream::Info> =
            self.js.streams().try_collect().await.map_err(|e| backend("listing JetStream streams", true, e))?;
        let mut topics: Vec<String> = infos
            .iter()
            .filter(|info| info.config.name.starts_with(&self.config.stream_prefix))
            .filter_map(|info| {
                let topic = stream_topic(info)?;
                (names::stream_name(&self.config.stream_prefix, topic) == info.config.name).then(|| topic.to_owned())
            })
            .collect();
        topics.sort();
        topics.dedup();
        Ok(topics)
    }

    async fn serve(&self, subject: &str, queue_group: Option<&str>) -> Result<RequestStream> {
        names::validate_subject(subject)?;
        let sub = match queue_group {
            Some(group) => {
                names::validate_queue_group(group)?;
                self.client.queue_subscribe(subject.to_owned(), group.to_owned()).await
            }
            None => self.client.subscribe(subject.to_owned()).await,
        }
        .map_err(|e| backend(format!("serving {subject}"), true, e))?;
        debug!(subject, ?queue_group, "serving");
        Ok(Box::pin(ServeStream {
            sub,
            client: self.client.clone(),
            limit: self.config.max_record_bytes,
            queue: queue_group.is_some(),
        }))
    }

    async fn request(&self, subject: &str, payload: Bytes, headers: Headers, timeout: Duration) -> Result<Bytes> {
        names::validate_subject(subject)?;
        let map = chunk::to_nats_headers(&headers)?;
        let size = chunk::headers_wire_len(&headers) + payload.len();
        let max_payload = self.client.max_payload();
        if size > max_payload {
            return Err(BrokerError::MessageTooLarge { size, limit: max_payload });
        }
        let mut inbox = self.mux.register();
        self.send(subject, Some(&inbox.subject), map, payload).await?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut partials: HashMap<u64, Partial> = HashMap::new();
        loop {
            let msg = match inbox.recv(deadline).await {
                Err(Recv::TimedOut) => {
                    return Err(BrokerError::Timeout {
                        subject: subject.to_owned(),
                        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                    });
                }
                Err(Recv::ConnectionLost) => {
                    return Err(backend_reason(
                        format!("waiting for the reply to {subject}"),
                        true,
                        "the connection to NATS dropped (the request may or may not have been handled)",
                    ));
                }
                Err(Recv::Closed) => {
                    return Err(backend_reason(
                        format!("waiting for the reply to {subject}"),
                        true,
                        "the reply inbox closed",
                    ));
                }
                Ok(m) => m,
            };
            match msg.status {
                Some(StatusCode::NO_RESPONDERS) => {
                    return Err(BrokerError::NoResponders { subject: subject.to_owned() });
                }
                Some(status) => {
                    debug!(subject, %status, "status message on a reply inbox ignored");
                    continue;
                }
                None => {}
            }
            if msg.headers.as_ref().and_then(|h| h.get(STATUS_HEADER)).map(|v| v.as_str()) == Some(STATUS_DROPPED) {
                // The queue-group member that got the request dropped it unanswered.
                return Err(BrokerError::NoResponders { subject: subject.to_owned() });
            }
            match ChunkInfo::of(msg.headers.as_ref()) {
                Ok(None) => return Ok(msg.payload),
                Err(raw) => warn!(subject, raw, "reply with a malformed chunk header ignored"),
                Ok(Some(info)) => {
                    if info.index == 0
                        && let Some(p) =
                            Partial::start(info, msg.subject.as_str(), Vec::new(), self.config.max_record_bytes)
                    {
                        partials.insert(info.id, p);
                    }
                    let Some(p) = partials.get_mut(&info.id) else { continue };
                    match p.feed(info, msg.subject.as_str(), &msg.payload) {
                        Fed::More => {}
                        Fed::Done(payload) => return Ok(payload),
                        Fed::Mismatch => {
                            warn!(subject, "a chunked reply arrived incomplete; ignored");
                            partials.remove(&info.id);
                        }
                    }
                }
            }
        }
    }

    async fn notify(&self, subject: &str, payload: Bytes, headers: Headers) -> Result<()> {
        names::validate_subject(subject)?;
        let map = chunk::to_nats_headers(&headers)?;
        let size = chunk::headers_wire_len(&headers) + payload.len();
        let max_payload = self.client.max_payload();
        if size > max_payload {
            return Err(BrokerError::MessageTooLarge { size, limit: max_payload });
        }
        self.send(subject, None, map, payload).await
    }

    async fn listen(&self, subject: &str) -> Result<NotificationStream> {
        names::validate_pattern(subject)?;
        let sub = self
            .client
            .subscribe(subject.to_owned())
            .await
            .map_err(|e| backend(format!("listening on {subject}"), true, e))?;
        Ok(Box::pin(sub.map(|msg| Notification {
            subject: msg.subject.to_string(),
            headers: chunk::from_nats_headers(msg.headers.as_ref()),
            payload: msg.payload,
        })))
    }

    fn max_message_bytes(&self) -> usize {
        self.config.max_record_bytes
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}

/// Header of the notice a queue-group server sends when it drops a request unanswered.
const STATUS_HEADER: &str = "Ferrovec-Status";
const STATUS_DROPPED: &str = "dropped";

/// Tells the requester behind `reply` that its request was dropped unanswered, so that it
/// fails with `NoResponders` at once instead of waiting for its timeout.
fn send_dropped_notice(client: &Client, reply: Subject) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    let client = client.clone();
    runtime.spawn(async move {
        let mut headers = HeaderMap::new();
        headers.insert(STATUS_HEADER, STATUS_DROPPED);
        if let Err(e) = client.publish_with_headers(reply, headers, Bytes::new()).await {
            debug!(error = %e, "could not send a dropped-request notice");
        }
    });
}

/// The requests of one `serve` call. With a queue group, each request goes to exactly one
/// member, so a request that member drops (the [`IncomingRequest`], or this stream with
/// requests still queued in it) is answered with a dropped notice. Without a queue group
/// other servers may still answer, so nothing is sent.
///
/// Best effort: a request the server routes to this member in the instant the member
/// unsubscribes is discarded by the client library (async-nats forgets the subscription
/// without waiting for the server's confirmation, `drain` included), and its requester
/// waits for its timeout (every request has one; `Call::retry` in fv-runtime retries).
struct ServeStream {
    sub: async_nats::Subscriber,
    client: Client,
    limit: usize,
    queue: bool,
}

impl futures::Stream for ServeStream {
    type Item = IncomingRequest;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        loop {
            let msg = match self.sub.poll_next_unpin(cx) {
                std::task::Poll::Ready(Some(msg)) => msg,
                std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                std::task::Poll::Pending => return std::task::Poll::Pending,
            };
            let Some(reply) = msg.reply else {
                debug!(subject = %msg.subject, "request without a reply subject ignored");
                continue;
            };
            return std::task::Poll::Ready(Some(IncomingRequest {
                subject: msg.subject.to_string(),
                headers: chunk::from_nats_headers(msg.headers.as_ref()),
                payload: msg.payload,
                replier: Box::new(NatsReplier {
                    client: self.client.clone(),
                    reply: Some(reply),
                    limit: self.limit,
                    queue: self.queue,
                }),
            }));
        }
    }
}

impl Drop for ServeStream {
    fn drop(&mut self) {
        if !self.queue {
            return;
        }
        // Requests delivered to this member but not taken yet.
        while let Some(Some(msg)) = self.sub.next().now_or_never() {
            if let Some(reply) = msg.reply {
                send_dropped_notice(&self.client, reply);
            }
        }
    }
}

/// Replies to one request (chunked when the reply exceeds `max_payload`).
struct NatsReplier {
    client: Client,
    /// Taken by the reply; still set when the request is dropped unanswered.
    reply: Option<Subject>,
    limit: usize,
    queue: bool,
}

#[async_trait]
impl Replier for NatsReplier {
    async fn reply(mut self: Box<Self>, payload: Bytes, headers: Headers) -> Result<()> {
        // Checked first: a reply that cannot be sent leaves the request dropped (see Drop).
        if payload.len() > self.limit {
            return Err(BrokerError::MessageTooLarge { size: payload.len(), limit: self.limit });
        }
        let pieces = chunk::split(next_chunk_id(), &payload, &headers, self.client.max_payload())?;
        let reply = self.reply.take().expect("a replier replies once (reply consumes it)");
        for piece in pieces {
            let result = if piece.headers.is_empty() {
                self.client.publish(reply.clone(), piece.payload).await
            } else {
                self.client.publish_with_headers(reply.clone(), piece.headers, piece.payload).await
            };
            result.map_err(|e| backend("publishing a reply", true, e))?;
        }
        Ok(())
    }
}

impl Drop for NatsReplier {
    fn drop(&mut self) {
        if let Some(reply) = self.reply.take()
            && self.queue
        {
            send_dropped_notice(&self.client, reply);
        }
    }
}

/// The state of one subscription: dedup after consumer recreations, truncation
/// detection, chunk reassembly.
struct Subscription {
    topic: String,
    messages: Ordered,
    /// Sequences below this are not delivered (the start position).
    floor: u64,
    /// Highest stream sequence seen.
    last_seen: u64,
    /// With no subject filter: the sequence the next message must have; a higher one
    /// means the records in between were truncated.
    expect_next: Option<u64>,
    gap_check: bool,
    partial: Option<Partial>,
    limit: usize,
    done: bool,
}

impl Subscription {
    async fn next_item(&mut self) -> Option<Result<LogMessage>> {
        loop {
            if self.done {
                return None;
            }
            let msg = match self.messages.next().await? {
                Ok(m) => m,
                Err(e) => {
                    self.done = true;
                    return Some(Err(backend(format!("consuming topic {}", self.topic), true, e)));
                }
            };
            let seq = match msg.info() {
                Ok(info) => info.stream_sequence,
                Err(e) => {
                    warn!(topic = %self.topic, error = %e, "message without JetStream metadata skipped");
                    continue;
                }
            };
            // The ordered consumer may replay after recreating itself.
            if seq < self.floor || seq <= self.last_seen {
                continue;
            }
            if let Some(expected) = self.expect_next
                && seq > expected
            {
                self.done = true;
                return Some(Err(BrokerError::PositionTruncated {
                    topic: self.topic.clone(),
                    position: expected,
                    first_retained: seq,
                }));
            }
            self.last_seen = seq;
            if self.gap_check {
                self.expect_next = Some(seq + 1);
            }
            let m = msg.message;
            match ChunkInfo::of(m.headers.as_ref()) {
                Ok(None) => {
                    if self.partial.take().is_some() {
                        warn!(topic = %self.topic, seq, "incomplete chunked record skipped");
                    }
                    return Some(Ok(LogMessage {
                        position: seq,
                        subject: m.subject.to_string(),
                        headers: chunk::from_nats_headers(m.headers.as_ref()),
                        payload: m.payload,
                    }));
                }
                Err(raw) => {
                    warn!(topic = %self.topic, seq, raw, "record with a malformed chunk header skipped");
                    self.partial = None;
                }
                Ok(Some(info)) => {
                    if info.index == 0 {
                        if self.partial.is_some() {
                            warn!(topic = %self.topic, seq, "incomplete chunked record skipped");
                        }
                        self.partial = Partial::start(
                            info,
                            m.subject.as_str(),
                            chunk::from_nats_headers(m.headers.as_ref()),
                            self.limit,
                        );
                        if self.partial.is_none() {
                            warn!(topic = %self.topic, seq, total = info.total, "chunked record above the size limit skipped");
                        }
                    }
                    let Some(partial) = self.partial.as_mut() else {
                        // The rest of a record whose start was truncated (or skipped).
                        debug!(topic = %self.topic, seq, "chunk of a record whose start is not readable skipped");
                        continue;
                    };
                    match partial.feed(info, m.subject.as_str(), &m.payload) {
                        Fed::More => {}
                        Fed::Done(payload) => {
                            let partial = self.partial.take().expect("assembling a record");
                            return Some(Ok(LogMessage {
                                position: seq,
                                subject: partial.subject,
                                headers: partial.headers,
                                payload,
                            }));
                        }
                        Fed::Mismatch => {
                            warn!(topic = %self.topic, seq, "chunks out of order; incomplete record skipped");
                            self.partial = None;
                        }
                    }
                }
            }
        }
    }
}
