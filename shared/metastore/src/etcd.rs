//! The meta store on etcd (v3 API, through `etcd-client`).
//!
//! Every [`MetaKv`] call maps onto etcd requests of the same meaning (one request, except
//! for paginated scans and watches "from now", which first read the current revision), so
//! the store has exactly etcd's semantics: revisions, versions and create/mod revisions
//! are etcd's own, transactions are etcd transactions, watches are etcd watches and
//! leases are etcd leases. What this module adds:
//!
//! - **A root prefix** ([`EtcdMetaKvOptions::root_prefix`]): key `k` is stored as
//!   `root + k`, and the root is stripped again from every key returned (results,
//!   transaction reads, watch events), so several clusters or test runs share one etcd.
//!   Revisions and leases are etcd-wide, shared by every root.
//! - **Paginated scans**: [`MetaKv::scan_prefix`] reads pages of
//!   [`EtcdMetaKvOptions::scan_page_size`] keys. The first page fixes the revision and
//!   every later page reads at that revision, so the result is one consistent snapshot
//!   even while others write. If that revision is compacted between two pages, the scan
//!   starts over (a few times) at the current revision.
//! - **Watches that survive reconnects**: a watch remembers the revision after the last
//!   event it delivered; when its gRPC stream breaks it opens a new etcd watch from that
//!   revision (retrying with backoff for [`EtcdMetaKvOptions::watch_retry_timeout`]), so
//!   the consumer sees neither a gap nor a duplicate. If it cannot resume, the stream
//!   yields one error ([`MetaError::Compacted`] when the resume revision is gone,
//!   [`MetaError::Unavailable`] otherwise) and then ends; it never ends silently.
//! - **Errors with context**: the operation and the full key, and whether retrying may
//!   help ([`MetaError::is_retriable`]).
//!
//! ```text
//!  MetaKv call ─► root + key ─► etcd request (timeout) ─► strip root ─► KeyValue
//!  watch_prefix ─► Watch(create, start) ─► "created" ─► events ─┬─► WatchEvent ...
//!                       ▲                                        │ stream broke
//!                       └──── re-create from last revision + 1 ◄─┘
//! ```
//!
//! Differences from the embedded store, all etcd's own rules: a lease TTL is rounded up
//! to whole seconds and to etcd's minimum TTL; a transaction holds at most
//! `--max-txn-ops` (default 128) operations; a request is at most `--max-request-bytes`
//! (default 1.5 MiB); a watch from a compacted revision yields [`MetaError::Compacted`]
//! as its first item (the embedded store fails the `watch_prefix` call itself).
//! `docs/etcd.md` describes how to inspect the keys with `etcdctl`.

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::proto::{PbKeyValue, PbTxnOpResponse};
use etcd_client::{
    Client, ConnectOptions, DeleteOptions, GetOptions, KvClient, LeaseClient, PutOptions, WatchClient, WatchOptions,
};
use tokio::time::{Instant, sleep, timeout};
use tonic::Code;
use tracing::{debug, info, warn};

use crate::{
    CompareOp, CompareTarget, KeyValue, LeaseId, MetaError, MetaKv, Result, Revision, Txn, TxnOp, TxnOpResponse,
    TxnResponse, WatchEvent, WatchEventKind, WatchStream,
};

/// Largest gRPC message accepted from etcd. tonic's default (4 MiB) is too small for a
/// scan page of large values or a watch response that catches up over many revisions;
/// etcd itself sends up to 2 GiB.
const MAX_DECODING_MESSAGE_BYTES: usize = 512 << 20;
/// HTTP/2 pings on connections with open streams (watches), so a peer that vanished
/// without closing the connection is noticed. etcd's default `--grpc-keepalive-min-time`
/// is 5 s; pinging more often gets the connection closed with "too many pings".
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a scan starts over when its snapshot revision is compacted under it.
const SCAN_ATTEMPTS: usize = 3;
/// Backoff between attempts to re-create a broken watch.
const WATCH_RETRY_MIN_BACKOFF: Duration = Duration::from_millis(50);
const WATCH_RETRY_MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How [`EtcdMetaKv::connect`] talks to etcd.
#[derive(Clone)]
pub struct EtcdMetaKvOptions {
    /// Prefix of every key this store touches (e.g. `"by-dev/meta/"`), stripped from the
    /// keys it returns. Empty: the whole key space. Usually ends with `/`.
    pub root_prefix: String,
    /// Bound of establishing the connection and of the first request that proves it
    /// works (default 5 s).
    pub connect_timeout: Duration,
    /// Bound of every request, including opening a watch (default 10 s). A request
    /// that times out fails with the retriable [`MetaError::Unavailable`].
    pub request_timeout: Duration,
    /// How long a watch whose stream broke keeps trying to resume before it yields
    /// [`MetaError::Unavailable`] and ends (default 60 s).
    pub watch_retry_timeout: Duration,
    /// Keys per page of [`MetaKv::scan_prefix`] (default 1,000).
    pub scan_page_size: usize,
    /// User name and password, when etcd has authentication enabled.
    pub user: Option<(String, String)>,
}

impl Default for EtcdMetaKvOptions {
    fn default() -> Self {
        EtcdMetaKvOptions {
            root_prefix: String::new(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            watch_retry_timeout: Duration::from_secs(60),
            scan_page_size: 1000,
            user: None,
        }
    }
}

impl std::fmt::Debug for EtcdMetaKvOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetaKvOptions")
            .field("root_prefix", &self.root_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("watch_retry_timeout", &self.watch_retry_timeout)
            .field("scan_page_size", &self.scan_page_size)
            // Never the password.
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .finish()
    }
}

/// A [`MetaKv`] on an etcd cluster (3.4 or later).
#[derive(Clone)]
pub struct EtcdMetaKv {
    kv: KvClient,
    watch: WatchClient,
    lease: LeaseClient,
    endpoints: Vec<String>,
    root: String,
    request_timeout: Duration,
    watch_retry_timeout: Duration,
    scan_page_size: i64,
}

impl std::fmt::Debug for EtcdMetaKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdMetaKv").field("endpoints", &self.endpoints).field("root", &self.root).finish()
    }
}

impl EtcdMetaKv {
    /// Connects to the etcd cluster at `endpoints` (`http://host:port` or `host:port`;
    /// requests are balanced over them) and checks that it answers.
    ///
    /// Fails with [`MetaError::InvalidArgument`] for empty endpoints or zero timeouts
    /// and page size, and with a retriable error when etcd does not answer within
    /// `options.connect_timeout`. TLS (`https://`) is not built in.
    pub async fn connect(endpoints: &[String], options: EtcdMetaKvOptions) -> Result<Self> {
        if endpoints.is_empty() || endpoints.iter().any(|endpoint| endpoint.trim().is_empty()) {
            return Err(invalid(format!("etcd endpoints must be non-empty, got {endpoints:?}")));
        }
        if options.connect_timeout.is_zero() || options.request_timeout.is_zero() {
            return Err(invalid(format!("etcd timeouts must be positive, got {options:?}")));
        }
        let scan_page_size = i64::try_from(options.scan_page_size)
            .ok()
            .filter(|size| *size > 0)
            .ok_or_else(|| invalid(format!("scan_page_size must be positive, got {}", options.scan_page_size)))?;
        let endpoints: Vec<String> = endpoints.iter().map(|endpoint| endpoint.trim().to_owned()).collect();
        let joined = endpoints.join(",");

        let mut connect_options = ConnectOptions::new()
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT)
            // etcd closes connections that ping without open streams.
            .with_keep_alive_while_idle(false)
            // A member cut off from its leader fails requests (and breaks watches, which
            // then resume, possibly on another endpoint) instead of stalling them.
            .with_require_leader(true);
        if let Some((name, password)) = &options.user {
            connect_options = connect_options.with_user(name.clone(), password.clone());
        }
        let client = match timeout(options.connect_timeout, Client::connect(&endpoints, Some(connect_options))).await {
            Ok(Ok(client)) => client,
            Ok(Err(source)) => return Err(etcd_error("connect", &joined, source)),
            Err(_) => return Err(no_answer("connect", &joined, options.connect_timeout)),
        };
        let store = EtcdMetaKv {
            kv: client.kv_client().max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
            watch: client.watch_client().max_decoding_message_size(MAX_DECODING_MESSAGE_BYTES),
            lease: client.lease_client(),
            endpoints,
            root: options.root_prefix,
            request_timeout: options.request_timeout,
            watch_retry_timeout: options.watch_retry_timeout,
            scan_page_size,
        };
        // The client connects lazily: one request proves the endpoints work.
        let revision = match timeout(options.connect_timeout, store.current_revision()).await {
            Ok(result) => result?,
            Err(_) => return Err(no_answer("connect", &joined, options.connect_timeout)),
        };
        info!(endpoints = %joined, root = %store.root, revision, "connected to etcd");
        Ok(store)
    }

    /// The prefix of every key in etcd.
    pub fn root_prefix(&self) -> &str {
        &self.root
    }

    /// The endpoints this store was connected to.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The etcd key of `key`; rejects the empty key (as etcd and the embedded store do).
    fn full_key(&self, key: &str) -> Result<String> {
        if key.is_empty() {
            return Err(invalid("empty key".to_owned()));
        }
        Ok(format!("{}{key}", self.root))
    }

    /// The etcd key range `[start, end)` of every key starting with `prefix`.
    fn prefix_range(&self, prefix: &str) -> (String, Vec<u8>) {
        let full = format!("{}{prefix}", self.root);
        let end = prefix_range_end(full.as_bytes());
        (full, end)
    }

    /// Turns an etcd key-value into ours, with the root stripped from the key.
    fn to_kv(&self, kv: PbKeyValue) -> Result<KeyValue> {
        let key = self.strip(kv.key)?;
        Ok(KeyValue {
            key,
            value: Bytes::from(kv.value),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            lease: kv.lease,
        })
    }

    fn strip(&self, key: Vec<u8>) -> Result<String> {
        strip_root(&self.root, key)
    }

    /// Runs one etcd request under the request timeout, mapping its error.
    async fn call<T>(
        &self,
        op: &'static str,
        key: &str,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match timeout(self.request_timeout, request).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(source)) => Err(etcd_error(op, key, source)),
            Err(_) => Err(no_answer(op, key, self.request_timeout)),
        }
    }

    /// The current etcd revision, from the header of a cheap linearizable read.
    async fn current_revision(&self) -> Result<Revision> {
        let mut kv = self.kv.clone();
        let probe = if self.root.is_empty() { "\0".to_owned() } else { self.root.clone() };
        let response =
            self.call("revision", &probe, kv.get(probe.clone(), Some(GetOptions::new().with_count_only()))).await?;
        header_revision(response.header(), "revision", &probe)
    }

    /// One page of a scan: up to `scan_page_size` keys of `[from, end)` at `revision`
    /// (0: the current one).
    async fn scan_page(
        &self,
        from: Vec<u8>,
        end: &[u8],
        revision: Revision,
        prefix: &str,
    ) -> Result<(Vec<PbKeyValue>, bool, Revision)> {
        let mut kv = self.kv.clone();
        let options =
            GetOptions::new().with_range(end.to_vec()).with_limit(self.scan_page_size).with_revision(revision);
        let response = self.call("scan", prefix, kv.get(from, Some(options))).await?;
        let header = header_revision(response.header(), "scan", prefix)?;
        Ok((response.0.kvs, response.0.more, header))
    }

    /// Finds which of `leases` (named by a failed transaction) is gone, for the error.
    async fn dead_lease(&self, leases: &[LeaseId]) -> LeaseId {
        if let [only] = leases {
            return *only;
        }
        for &lease in leases {
            let mut client = self.lease.clone();
            if let Ok(Ok(response)) = timeout(self.request_timeout, client.time_to_live(lease, None)).await
                && response.ttl() < 0
            {
                return lease;
            }
        }
        leases.first().copied().unwrap_or(0)
    }

    fn txn_op(&self, op: TxnOp) -> Result<etcd_client::TxnOp> {
        Ok(match op {
            TxnOp::Put { key, value, lease } => {
                let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
                etcd_client::TxnOp::put(self.full_key(&key)?, value.to_vec(), options)
            }
            TxnOp::Delete { key } => etcd_client::TxnOp::delete(self.full_key(&key)?, None),
            TxnOp::DeletePrefix { prefix } => {
                let (start, end) = self.prefix_range(&prefix);
                etcd_client::TxnOp::delete(range_start(start), Some(DeleteOptions::new().with_range(end)))
            }
            TxnOp::Get { key } => etcd_client::TxnOp::get(self.full_key(&key)?, None),
        })
    }

    fn compare(&self, compare: crate::Compare) -> Result<etcd_client::Compare> {
        let key = self.full_key(&compare.key)?;
        let op = match compare.op {
            CompareOp::Equal => etcd_client::CompareOp::Equal,
            CompareOp::NotEqual => etcd_client::CompareOp::NotEqual,
            CompareOp::Greater => etcd_client::CompareOp::Greater,
            CompareOp::Less => etcd_client::CompareOp::Less,
        };
        Ok(match compare.target {
            CompareTarget::Value(value) => etcd_client::Compare::value(key, op, value.to_vec()),
            CompareTarget::Version(version) => etcd_client::Compare::version(key, op, version),
            CompareTarget::CreateRevision(revision) => etcd_client::Compare::create_revision(key, op, revision),
            CompareTarget::ModRevision(revision) => etcd_client::Compare::mod_revision(key, op, revision),
        })
    }
}

#[async_trait]
impl MetaKv for EtcdMetaKv {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let full = self.full_key(key)?;
        let mut kv = self.kv.clone();
        let response = self.call("get", &full, kv.get(full.clone(), None)).await?;
        response.0.kvs.into_iter().next().map(|kv| self.to_kv(kv)).transpose()
    }

    async fn scan_prefix(&self, prefix: &str) -> Result<Vec<KeyValue>> {
        let (start, end) = self.prefix_range(prefix);
        let mut attempt = 0;
        'scan: loop {
            attempt += 1;
            let mut result = Vec::new();
            let mut from = range_start(start.clone()).into_bytes();
            // 0 reads the current revision; the first page's revision pins the others.
            let mut revision = 0;
            let mut pages = 0usize;
            loop {
                let (kvs, more, header) = match self.scan_page(from, &end, revision, &start).await {
                    Ok(page) => page,
                    Err(error) if revision != 0 && attempt < SCAN_ATTEMPTS && is_compacted(&error) => {
                        warn!(prefix = %start, revision, attempt, "scan snapshot compacted between pages; starting over");
                        continue 'scan;
                    }
                    Err(error) => return Err(error),
                };
                pages += 1;
                if revision == 0 {
                    revision = header;
                }
                // The next page starts right after the last key of this one.
                let next = kvs.last().map(|kv| {
                    let mut next = kv.key.clone();
                    next.push(0);
                    next
                });
                for kv in kvs {
                    result.push(self.to_kv(kv)?);
                }
                match next {
                    Some(next) if more => from = next,
                    _ => {
                        debug!(prefix = %start, revision, pages, keys = result.len(), "scanned prefix");
                        return Ok(result);
                    }
                }
            }
        }
    }

    async fn put(&self, key: &str, value: Bytes, lease: LeaseId) -> Result<Revision> {
        let full = self.full_key(key)?;
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        let mut kv = self.kv.clone();
        let response = match self.call("put", &full, kv.put(full.clone(), value.to_vec(), options)).await {
            Err(error) if lease != 0 && is_lease_not_found(&error) => return Err(MetaError::LeaseNotFound { lease }),
            other => other?,
        };
        header_revision(response.header(), "put", &full)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let full = self.full_key(key)?;
        let mut kv = self.kv.clone();
        let response = self.call("delete", &full, kv.delete(full.clone(), None)).await?;
        Ok(response.deleted() > 0)
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let (start, end) = self.prefix_range(prefix);
        let mut kv = self.kv.clone();
        let options = DeleteOptions::new().with_range(end);
        let response = self.call("delete_prefix", &start, kv.delete(range_start(start.clone()), Some(options))).await?;
        Ok(u64::try_from(response.deleted()).unwrap_or(0))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let leases: Vec<LeaseId> = {
            let mut leases: Vec<LeaseId> = txn
                .success
                .iter()
                .chain(&txn.failure)
                .filter_map(|op| match op {
                    TxnOp::Put { lease, .. } if *lease != 0 => Some(*lease),
                    _ => None,
                })
                .collect();
            leases.sort_unstable();
            leases.dedup();
            leases
        };
        // The first compared or written key names the transaction in errors.
        let label = txn
            .compares
            .iter()
            .map(|compare| compare.key.as_str())
            .chain(txn.success.iter().chain(&txn.failure).map(|op| match op {
                TxnOp::Put { key, .. } | TxnOp::Delete { key } | TxnOp::Get { key } => key.as_str(),
                TxnOp::DeletePrefix { prefix } => prefix.as_str(),
            }))
            .next()
            .map(|key| format!("{}{key}", self.root))
            .unwrap_or_else(|| self.root.clone());
        let compares = txn.compares.into_iter().map(|compare| self.compare(compare)).collect::<Result<Vec<_>>>()?;
        let success = txn.success.into_iter().map(|op| self.txn_op(op)).collect::<Result<Vec<_>>>()?;
        let failure = txn.failure.into_iter().map(|op| self.txn_op(op)).collect::<Result<Vec<_>>>()?;
        let request = etcd_client::Txn::new().when(compares).and_then(success).or_else(failure);

        let mut kv = self.kv.clone();
        let response = match self.call("txn", &label, kv.txn(request)).await {
            Err(error) if !leases.is_empty() && is_lease_not_found(&error) => {
                return Err(MetaError::LeaseNotFound { lease: self.dead_lease(&leases).await });
            }
            other => other?,
        };
        let revision = header_revision(response.header(), "txn", &label)?;
        let succeeded = response.succeeded();
        let mut responses = Vec::with_capacity(response.0.responses.len());
        for op in response.0.responses {
            responses.push(match op.response {
                Some(PbTxnOpResponse::ResponsePut(_)) => TxnOpResponse::Put,
                Some(PbTxnOpResponse::ResponseDeleteRange(delete)) => {
                    TxnOpResponse::Delete(u64::try_from(delete.deleted).unwrap_or(0))
                }
                Some(PbTxnOpResponse::ResponseRange(range)) => {
                    TxnOpResponse::Get(range.kvs.into_iter().next().map(|kv| self.to_kv(kv)).transpose()?)
                }
                Some(PbTxnOpResponse::ResponseTxn(_)) | None => {
                    return Err(MetaError::UnexpectedData {
                        key: label,
                        reason: "etcd answered a transaction operation with a nested or empty response".to_owned(),
                    });
                }
            });
        }
        Ok(TxnResponse { succeeded, revision, responses })
    }

    async fn watch_prefix(&self, prefix: &str, start_revision: Option<Revision>) -> Result<WatchStream> {
        let (start_key, end) = self.prefix_range(prefix);
        // "From now on" is made explicit (the revision after the current one) so that a
        // watch that has to resume knows where it started.
        let start = match start_revision {
            Some(start) if start > 0 => start,
            _ => self.current_revision().await? + 1,
        };
        let watcher = Watcher {
            client: self.watch.clone(),
            root: self.root.clone(),
            key: range_start(start_key),
            end,
            request_timeout: self.request_timeout,
            retry_timeout: self.watch_retry_timeout,
            stream: None,
            pending: VecDeque::new(),
            next_revision: start,
            finished: false,
        };
        let stream = watcher.open().await?;
        debug!(prefix = %watcher.key, start, "watch created");
        let watcher = Watcher { stream: Some(stream), ..watcher };
        Ok(Box::pin(futures::stream::unfold(watcher, Watcher::next)))
    }

    async fn revision(&self) -> Result<Revision> {
        self.current_revision().await
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() {
            return Err(invalid(format!("invalid lease TTL {ttl:?}")));
        }
        // etcd counts whole seconds: round up, never down to an earlier expiry.
        let seconds = ttl.as_secs().saturating_add(u64::from(ttl.subsec_nanos() > 0));
        let seconds = i64::try_from(seconds).map_err(|_| invalid(format!("invalid lease TTL {ttl:?}")))?;
        let mut lease = self.lease.clone();
        let label = format!("ttl={seconds}s");
        let response = self.call("grant_lease", &label, lease.grant(seconds, None)).await?;
        if !response.error().is_empty() {
            return Err(MetaError::Etcd {
                op: "grant_lease",
                key: label,
                retriable: false,
                source: etcd_client::Error::InvalidArgs(response.error().to_owned()),
            });
        }
        debug!(lease = response.id(), requested = ?ttl, granted_seconds = response.ttl(), "lease granted");
        Ok(response.id())
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        // etcd has no unary keep-alive: open the bidirectional stream, send one refresh,
        // read its answer (etcd-client does both in `keep_alive`), close the stream.
        let mut client = self.lease.clone();
        match self.call("keep_alive", &format!("lease={lease}"), client.keep_alive(lease)).await {
            Ok(_keeper_and_stream) => Ok(()),
            Err(MetaError::Etcd { source: etcd_client::Error::LeaseKeepAliveError(reason), .. })
                if reason.contains("lease not found") =>
            {
                Err(MetaError::LeaseNotFound { lease })
            }
            Err(error) => Err(error),
        }
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        let mut client = self.lease.clone();
        match self.call("revoke_lease", &format!("lease={lease}"), client.revoke(lease)).await {
            Ok(_) => Ok(()),
            Err(error) if is_lease_not_found(&error) => Err(MetaError::LeaseNotFound { lease }),
            Err(error) => Err(error),
        }
    }

    fn kind(&self) -> &'static str {
        "etcd"
    }
}

/// One watch: the etcd stream it reads and where to resume it.
struct Watcher {
    client: WatchClient,
    root: String,
    /// The etcd key range watched.
    key: String,
    end: Vec<u8>,
    request_timeout: Duration,
    retry_timeout: Duration,
    /// None while the stream is broken.
    stream: Option<etcd_client::WatchStream>,
    /// Events of the last response not yet handed out.
    pending: VecDeque<WatchEvent>,
    /// The first revision not yet delivered: where a new etcd watch resumes.
    next_revision: Revision,
    /// An error was yielded; the stream ends.
    finished: bool,
}

impl Watcher {
    /// Creates an etcd watch from `next_revision` and waits for its "created" answer,
    /// after which etcd delivers every later change.
    async fn open(&self) -> Result<etcd_client::WatchStream> {
        let start = self.next_revision;
        let mut client = self.client.clone();
        let options = WatchOptions::new().with_range(self.end.clone()).with_start_revision(start);
        let create = async {
            let mut stream = client.watch(self.key.clone(), Some(options)).await?;
            let first = stream.message().await?;
            Ok::<_, etcd_client::Error>((stream, first))
        };
        let (stream, first) = match timeout(self.request_timeout, create).await {
            Ok(Ok(created)) => created,
            Ok(Err(source)) => return Err(etcd_error("watch", &self.key, source)),
            Err(_) => return Err(no_answer("watch", &self.key, self.request_timeout)),
        };
        match first {
            Some(response) if response.canceled() => Err(self.canceled(&response)),
            Some(response) if response.created() => Ok(stream),
            Some(response) => Err(MetaError::UnexpectedData {
                key: self.key.clone(),
                reason: format!("the first watch response is not \"created\": {response:?}"),
            }),
            None => Err(MetaError::Etcd {
                op: "watch",
                key: self.key.clone(),
                retriable: true,
                source: etcd_client::Error::WatchError("the stream ended before the watch was created".to_owned()),
            }),
        }
    }

    /// The error for a watch etcd canceled.
    fn canceled(&self, response: &etcd_client::WatchResponse) -> MetaError {
        if response.compact_revision() > 0 {
            return MetaError::Compacted { requested: self.next_revision, oldest: response.compact_revision() };
        }
        MetaError::Etcd {
            op: "watch",
            key: self.key.clone(),
            retriable: false,
            source: etcd_client::Error::WatchError(format!("canceled by etcd: {}", response.cancel_reason())),
        }
    }

    /// The stream's step: the next event, resuming the etcd watch when it broke.
    async fn next(mut self) -> Option<(Result<WatchEvent>, Watcher)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((Ok(event), self));
            }
            if self.finished {
                return None;
            }
            let message = match self.stream.as_mut() {
                Some(stream) => stream.message().await,
                None => Ok(None),
            };
            let outcome = match message {
                Ok(Some(response)) => self.absorb(response),
                Ok(None) => {
                    warn!(prefix = %self.key, next_revision = self.next_revision, "watch stream ended; resuming");
                    self.resume().await
                }
                Err(error) => {
                    warn!(prefix = %self.key, next_revision = self.next_revision, %error, "watch stream broke; resuming");
                    self.resume().await
                }
            };
            if let Err(error) = outcome {
                self.finished = true;
                self.stream = None;
                return Some((Err(error), self));
            }
        }
    }

    /// Queues the events of one response and moves the resume point past them.
    fn absorb(&mut self, response: etcd_client::WatchResponse) -> Result<()> {
        if response.canceled() {
            return Err(self.canceled(&response));
        }
        for event in response.0.events {
            let Some(kv) = event.kv else {
                return Err(MetaError::UnexpectedData {
                    key: self.key.clone(),
                    reason: "watch event without a key-value".to_owned(),
                });
            };
            let key = strip_root(&self.root, kv.key)?;
            let revision = kv.mod_revision;
            let event = match event.r#type {
                0 => WatchEvent {
                    kind: WatchEventKind::Put,
                    kv: KeyValue {
                        key,
                        value: Bytes::from(kv.value),
                        create_revision: kv.create_revision,
                        mod_revision: revision,
                        version: kv.version,
                        lease: kv.lease,
                    },
                },
                1 => WatchEvent {
                    kind: WatchEventKind::Delete,
                    kv: KeyValue {
                        key,
                        value: Bytes::new(),
                        create_revision: 0,
                        mod_revision: revision,
                        version: 0,
                        lease: 0,
                    },
                },
                other => {
                    return Err(MetaError::UnexpectedData {
                        key,
                        reason: format!("unknown watch event type {other} at revision {revision}"),
                    });
                }
            };
            // etcd never splits one revision over two responses, so once a response is
            // queued, resuming after its last revision loses nothing.
            self.next_revision = self.next_revision.max(revision + 1);
            self.pending.push_back(event);
        }
        Ok(())
    }

    /// Re-creates the etcd watch from `next_revision`, retrying transient failures with
    /// backoff for `retry_timeout`.
    async fn resume(&mut self) -> Result<()> {
        self.stream = None;
        let deadline = Instant::now() + self.retry_timeout;
        let mut backoff = WATCH_RETRY_MIN_BACKOFF;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.open().await {
                Ok(stream) => {
                    info!(prefix = %self.key, from = self.next_revision, attempts, "watch resumed");
                    self.stream = Some(stream);
                    return Ok(());
                }
                Err(error) if error.is_retriable() && Instant::now() < deadline => {
                    debug!(prefix = %self.key, attempts, %error, "watch not resumed yet; retrying");
                    // The last attempt comes right at the deadline.
                    sleep(backoff.min(deadline.saturating_duration_since(Instant::now()))).await;
                    backoff = (backoff * 2).min(WATCH_RETRY_MAX_BACKOFF);
                }
                Err(error) if error.is_retriable() => {
                    warn!(prefix = %self.key, attempts, %error, "giving up on resuming the watch");
                    return Err(MetaError::Unavailable {
                        reason: format!(
                            "the watch on {:?} broke and could not resume from revision {} within {:?} \
                             ({attempts} attempts; last error: {error})",
                            self.key, self.next_revision, self.retry_timeout
                        ),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// The end of the etcd range holding every key that starts with `prefix`: the prefix
/// with its last byte below 0xff incremented (and what follows dropped). With no such
/// byte (empty or all 0xff), `"\0"`, which etcd reads as "no upper bound".
fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|byte| *byte < 0xff) {
        Some(last) => {
            let mut end = prefix[..=last].to_vec();
            end[last] += 1;
            end
        }
        None => vec![0],
    }
}

/// The start of a prefix range: etcd rejects an empty key, and `"\0"` is the smallest.
fn range_start(prefix: String) -> String {
    if prefix.is_empty() { "\0".to_owned() } else { prefix }
}

fn strip_root(root: &str, key: Vec<u8>) -> Result<String> {
    let key = String::from_utf8(key).map_err(|error| MetaError::UnexpectedData {
        key: String::from_utf8_lossy(error.as_bytes()).into_owned(),
        reason: "the key is not UTF-8".to_owned(),
    })?;
    match key.strip_prefix(root) {
        Some(stripped) => Ok(stripped.to_owned()),
        None => Err(MetaError::UnexpectedData { reason: format!("the key is outside the root prefix {root:?}"), key }),
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>, op: &'static str, key: &str) -> Result<Revision> {
    header.map(|header| header.revision()).ok_or_else(|| MetaError::UnexpectedData {
        key: key.to_owned(),
        reason: format!("etcd answered {op} without a response header"),
    })
}

fn invalid(reason: String) -> MetaError {
    MetaError::InvalidArgument { reason }
}

fn no_answer(op: &'static str, key: &str, after: Duration) -> MetaError {
    MetaError::Unavailable { reason: format!("etcd {op} {key:?}: no answer within {after:?}") }
}

/// Classifies an etcd-client error: rejected requests are not retriable, transport
/// failures, timeouts and leader trouble are.
fn etcd_error(op: &'static str, key: &str, source: etcd_client::Error) -> MetaError {
    let retriable = match &source {
        etcd_client::Error::GRpcStatus(status) => match status.code() {
            // A request over etcd's limits is rejected with InvalidArgument ("request is
            // too large", "too many operations in txn request") or, past the gRPC
            // message limit, ResourceExhausted ("received message larger than max").
            Code::InvalidArgument => {
                return invalid(format!("etcd {op} {key:?}: {}", status.message()));
            }
            Code::ResourceExhausted if status.message().contains("larger than max") => {
                return invalid(format!("etcd {op} {key:?}: {}", status.message()));
            }
            // etcd: no leader, leader changed, request timed out, too many requests;
            // tonic: connection failures (Unavailable, Unknown) and local timeouts (Cancelled).
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown => true,
            Code::Ok
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::Unimplemented
            | Code::Internal
            | Code::DataLoss
            | Code::Unauthenticated => false,
        },
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        _ => false,
    };
    MetaError::Etcd { op, key: key.to_owned(), retriable, source }
}

/// etcd's `ErrGRPCLeaseNotFound` ("etcdserver: requested lease not found").
fn is_lease_not_found(error: &MetaError) -> bool {
    matches!(
        error,
        MetaError::Etcd { source: etcd_client::Error::GRpcStatus(status), .. }
            if status.code() == Code::NotFound && status.message().contains("lease not found")
    )
}

/// etcd's `ErrGRPCCompacted` ("mvcc: required revision has been compacted").
fn is_compacted(error: &MetaError) -> bool {
    matches!(
        error,
        MetaError::Etcd { source: etcd_client::Error::GRpcStatus(status), .. }
            if status.code() == Code::OutOfRange && status.message().contains("compacted")
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use futures::StreamExt;
    use parking_lot::Mutex;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::testsuite::{self, assert_no_event, next_event};
    use crate::{Compare, MetaKvRef};

    /// Bound of every test against a real server.
    const TEST_TIMEOUT: Duration = Duration::from_secs(300);
    const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Holds the test server, shared or alone (`exclusive`), until the returned file is
    /// dropped. Compacting etcd breaks watches from older revisions anywhere on the
    /// server, so the test that compacts holds it alone and every other test holds it
    /// shared. An flock, so it also works when nextest runs each test in its own process.
    async fn hold_server(exclusive: bool) -> std::fs::File {
        tokio::task::spawn_blocking(move || {
            let path = std::env::temp_dir().join("ferrovec-etcd-tests.lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .unwrap_or_else(|error| panic!("open {}: {error}", path.display()));
            let locked = if exclusive { file.lock() } else { file.lock_shared() };
            locked.unwrap_or_else(|error| panic!("lock {}: {error}", path.display()));
            file
        })
        .await
        .expect("the lock task")
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// The test server's endpoints and options with a root prefix unique to this run and
    /// `name`, or None (after a notice) when no server is configured. Panics instead when
    /// `FERROVEC_REQUIRE_REAL_BACKENDS=1`, so a CI run cannot silently skip.
    fn test_config(name: &str) -> Option<(Vec<String>, EtcdMetaKvOptions)> {
        let endpoints = std::env::var("FERROVEC_TEST_ETCD_ENDPOINT").unwrap_or_default();
        if endpoints.trim().is_empty() {
            if std::env::var("FERROVEC_REQUIRE_REAL_BACKENDS").as_deref() == Ok("1") {
                panic!(
                    "FERROVEC_REQUIRE_REAL_BACKENDS=1 but FERROVEC_TEST_ETCD_ENDPOINT is not set: start etcd \
                     (`source scripts/deps.sh && start_etcd`) or unset FERROVEC_REQUIRE_REAL_BACKENDS"
                );
            }
            eprintln!("notice: FERROVEC_TEST_ETCD_ENDPOINT is not set; skipping the etcd test {name}");
            return None;
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
        let options = EtcdMetaKvOptions {
            root_prefix: format!("/ferrovec-test/{}-{nanos}/{name}/", std::process::id()),
            ..EtcdMetaKvOptions::default()
        };
        Some((endpoints.split(',').map(|endpoint| endpoint.trim().to_owned()).collect(), options))
    }

    async fn bounded<F: Future>(name: &str, future: F) -> F::Output {
        timeout(TEST_TIMEOUT, future).await.unwrap_or_else(|_| panic!("{name} took over {TEST_TIMEOUT:?}"))
    }

    /// Deletes everything under the store's root and checks nothing is left.
    async fn clean_up(store: &EtcdMetaKv) {
        store.delete_prefix("").await.expect("clean up");
        assert!(store.scan_prefix("").await.expect("scan").is_empty(), "nothing left under {}", store.root_prefix());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let Some((endpoints, options)) = test_config("conformance") else { return };
        let _server = hold_server(false).await;
        bounded("conformance suite", async {
            let store = EtcdMetaKv::connect(&endpoints, options).await.expect("connect");
            assert_eq!(store.kind(), "etcd");
            testsuite::run_all(&store, "suite/").await;
            clean_up(&store).await;
        })
        .await;
        eprintln!("etcd conformance suite passed against {endpoints:?}");
    }

    /// The suite again with scans of two keys per page, and through a chroot on top.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite_with_tiny_pages_under_a_chroot() {
        let Some((endpoints, options)) = test_config("tiny-pages") else { return };
        let _server = hold_server(false).await;
        bounded("conformance suite with tiny pages", async {
            let store = EtcdMetaKv::connect(&endpoints, EtcdMetaKvOptions { scan_page_size: 2, ..options })
                .await
                .expect("connect");
            let inner: MetaKvRef = Arc::new(store.clone());
            let chroot = crate::chroot::ChrootMetaKv::new(inner, "chroot/");
            testsuite::run_all(&chroot, "suite/").await;
            assert!(store.scan_prefix("").await.expect("scan").iter().all(|kv| kv.key.starts_with("chroot/suite/")));
            clean_up(&store).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn root_prefix_isolates_and_strips() {
        let Some((endpoints, options)) = test_config("roots") else { return };
        let _server = hold_server(false).await;
        bounded("root prefix test", async {
            let root = options.root_prefix.clone();
            let with_root = |sub: &str| EtcdMetaKvOptions { root_prefix: format!("{root}{sub}"), ..options.clone() };
            let outer = EtcdMetaKv::connect(&endpoints, options.clone()).await.expect("connect");
            let a = EtcdMetaKv::connect(&endpoints, with_root("a/")).await.expect("connect a");
            let b_store = EtcdMetaKv::connect(&endpoints, with_root("b/")).await.expect("connect b");
            assert_eq!(a.root_prefix(), format!("{root}a/"));

            let mut watch = a.watch_prefix("", None).await.expect("watch");
            let revision = a.put("k", b("from a"), 0).await.expect("put");
            b_store.put("k", b("from b"), 0).await.expect("put");
            let got = a.get("k").await.expect("get").expect("k");
            assert_eq!((got.key.as_str(), got.value, got.mod_revision), ("k", b("from a"), revision));
            assert_eq!(outer.get("a/k").await.expect("get").expect("a/k").value, b("from a"));
            let keys: Vec<String> = outer.scan_prefix("").await.expect("scan").into_iter().map(|kv| kv.key).collect();
            assert_eq!(keys, ["a/k", "b/k"]);
            assert_eq!(a.scan_prefix("").await.expect("scan").len(), 1);

            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Put, "k"));
            let response = a
                .txn(Txn {
                    compares: vec![Compare::value_equals("k", "from a")],
                    success: vec![TxnOp::Get { key: "k".to_owned() }, TxnOp::put("k2", "2")],
                    failure: vec![],
                })
                .await
                .expect("txn");
            match &response.responses[0] {
                TxnOpResponse::Get(Some(kv)) => assert_eq!(kv.key, "k"),
                other => panic!("unexpected response {other:?}"),
            }
            assert_eq!(next_event(&mut watch, EVENT_TIMEOUT).await.kv.key, "k2");
            // b's key is outside a's watch.
            b_store.put("k3", b("b"), 0).await.expect("put");
            assert_no_event(&mut watch, Duration::from_millis(300)).await;

            assert_eq!(a.delete_prefix("").await.expect("delete_prefix"), 2);
            assert_eq!(b_store.get("k").await.expect("get").expect("k").value, b("from b"));
            clean_up(&outer).await;
        })
        .await;
    }

    /// Every scan is one snapshot although it reads many pages while a writer runs: the
    /// writer puts `a/<i>` then `z/<i>`, so any consistent view holds `z/<i>` only with
    /// `a/<i>`, and the `a/` keys (first pages) are never older than the `z/` keys (last).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scan_pages_are_one_snapshot() {
        let Some((endpoints, options)) = test_config("snapshot") else { return };
        let _server = hold_server(false).await;
        bounded("scan snapshot test", async {
            let store = EtcdMetaKv::connect(&endpoints, EtcdMetaKvOptions { scan_page_size: 3, ..options })
                .await
                .expect("connect");
            for i in 0..30 {
                store.put(&format!("m/{i:02}"), b("middle"), 0).await.expect("put");
            }
            let writer = {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        store.put(&format!("a/{i:03}"), b("a"), 0).await.expect("put a");
                        store.put(&format!("z/{i:03}"), b("z"), 0).await.expect("put z");
                    }
                })
            };
            let mut scans = 0;
            let mut saw_partial_pair = false;
            while !writer.is_finished() || scans == 0 {
                let scanned = store.scan_prefix("").await.expect("scan");
                let count = |prefix: &str| scanned.iter().filter(|kv| kv.key.starts_with(prefix)).count();
                let (a_count, middle, z_count) = (count("a/"), count("m/"), count("z/"));
                assert_eq!(middle, 30);
                assert!(
                    z_count == a_count || z_count + 1 == a_count,
                    "scan {scans} is not one snapshot: {a_count} a/ keys but {z_count} z/ keys"
                );
                saw_partial_pair |= z_count + 1 == a_count;
                let keys: Vec<&str> = scanned.iter().map(|kv| kv.key.as_str()).collect();
                assert!(keys.windows(2).all(|pair| pair[0] < pair[1]), "key order");
                scans += 1;
            }
            writer.await.expect("writer");
            eprintln!("{scans} consistent scans during the writes (a scan between a/ and z/ seen: {saw_partial_pair})");
            clean_up(&store).await;
        })
        .await;
    }

    /// A watch from a compacted revision yields Compacted (then ends); from the
    /// compaction revision on, history is still there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_from_a_compacted_revision() {
        let Some((endpoints, options)) = test_config("compacted") else { return };
        let _server = hold_server(true).await;
        bounded("compaction test", async {
            let store = EtcdMetaKv::connect(&endpoints, options).await.expect("connect");
            let r1 = store.put("w/k", b("1"), 0).await.expect("put");
            store.put("w/k", b("2"), 0).await.expect("put");
            let r3 = store.put("w/k", b("3"), 0).await.expect("put");
            let mut raw = Client::connect(&endpoints, None).await.expect("raw client");
            raw.compact(r3, Some(etcd_client::CompactionOptions::new().with_physical())).await.expect("compact");

            let mut watch = store.watch_prefix("w/", Some(r1)).await.expect("watch");
            match timeout(EVENT_TIMEOUT, watch.next()).await.expect("an item in time") {
                Some(Err(MetaError::Compacted { requested, oldest })) => assert_eq!((requested, oldest), (r1, r3)),
                other => panic!("expected Compacted, got {other:?}"),
            }
            assert!(timeout(EVENT_TIMEOUT, watch.next()).await.expect("the end in time").is_none());

            let mut watch = store.watch_prefix("w/", Some(r3)).await.expect("watch from the compaction revision");
            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kv.value, event.kv.mod_revision, event.kv.version), (b("3"), r3, 3));
            assert_eq!(store.scan_prefix("w/").await.expect("scan").len(), 1);
            clean_up(&store).await;
        })
        .await;
    }

    /// A TCP proxy in front of etcd whose connections the test can cut.
    struct Proxy {
        endpoint: String,
        accept: JoinHandle<()>,
        connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    }

    impl Proxy {
        async fn start(etcd_endpoint: &str) -> Proxy {
            let target = etcd_endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
            let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
            let connections = Arc::new(Mutex::new(Vec::new()));
            let accept = tokio::spawn({
                let connections = Arc::clone(&connections);
                async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let target = target.clone();
                        let connection = tokio::spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(&target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                        connections.lock().push(connection);
                    }
                }
            });
            Proxy { endpoint, accept, connections }
        }

        /// Closes every open connection (new ones are still accepted).
        fn sever(&self) {
            for connection in self.connections.lock().drain(..) {
                connection.abort();
            }
        }

        /// Closes every connection and stops listening: connections are refused.
        fn stop(&self) {
            self.accept.abort();
            self.sever();
        }
    }

    impl Drop for Proxy {
        fn drop(&mut self) {
            self.stop();
        }
    }

    /// A broken connection does not end a watch: it resumes after the last delivered
    /// revision, with no gap and no duplicate.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_resumes_after_the_connection_breaks() {
        let Some((endpoints, options)) = test_config("reconnect") else { return };
        let _server = hold_server(false).await;
        bounded("reconnect test", async {
            let direct = EtcdMetaKv::connect(&endpoints, options.clone()).await.expect("connect");
            let proxy = Proxy::start(&endpoints[0]).await;
            let proxied = EtcdMetaKv::connect(std::slice::from_ref(&proxy.endpoint), options.clone())
                .await
                .expect("connect through the proxy");
            let mut watch = proxied.watch_prefix("w/", None).await.expect("watch");
            let r1 = direct.put("w/a", b("1"), 0).await.expect("put");
            assert_eq!(next_event(&mut watch, EVENT_TIMEOUT).await.kv.mod_revision, r1);

            // Changes while the connection is down arrive once it is back.
            proxy.sever();
            let r2 = direct.put("w/b", b("2"), 0).await.expect("put");
            assert!(direct.delete("w/a").await.expect("delete"));
            let r4 = direct.put("w/b", b("4"), 0).await.expect("put");
            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kind, event.kv.key.as_str(), event.kv.mod_revision), (WatchEventKind::Put, "w/b", r2));
            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Delete, "w/a"));
            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kv.mod_revision, event.kv.version), (r4, 2));

            // Cut while idle, then a change.
            proxy.sever();
            sleep(Duration::from_millis(200)).await;
            let r5 = direct.put("w/c", b("5"), 0).await.expect("put");
            assert_eq!(next_event(&mut watch, EVENT_TIMEOUT).await.kv.mod_revision, r5);
            assert_no_event(&mut watch, Duration::from_millis(500)).await;

            // Plain requests through the proxied store work again (the first may still
            // see the broken connection, which is a retriable error).
            let mut attempts = 0;
            let got = loop {
                attempts += 1;
                match proxied.get("w/c").await {
                    Ok(got) => break got,
                    Err(error) if error.is_retriable() && attempts < 10 => sleep(Duration::from_millis(100)).await,
                    Err(error) => panic!("get through the proxy: {error}"),
                }
            };
            assert_eq!(got.expect("w/c").mod_revision, r5);
            clean_up(&direct).await;
        })
        .await;
    }

    /// When etcd stays unreachable, the watch yields an error and then ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn watch_reports_a_lost_server() {
        let Some((endpoints, options)) = test_config("lost") else { return };
        let _server = hold_server(false).await;
        bounded("lost server test", async {
            let direct = EtcdMetaKv::connect(&endpoints, options.clone()).await.expect("connect");
            let proxy = Proxy::start(&endpoints[0]).await;
            let proxied = EtcdMetaKv::connect(
                std::slice::from_ref(&proxy.endpoint),
                EtcdMetaKvOptions {
                    request_timeout: Duration::from_millis(500),
                    watch_retry_timeout: Duration::from_secs(2),
                    ..options.clone()
                },
            )
            .await
            .expect("connect through the proxy");
            let mut watch = proxied.watch_prefix("w/", None).await.expect("watch");
            direct.put("w/a", b("1"), 0).await.expect("put");
            next_event(&mut watch, EVENT_TIMEOUT).await;

            proxy.stop();
            let started = Instant::now();
            direct.put("w/b", b("2"), 0).await.expect("put");
            match timeout(Duration::from_secs(30), watch.next()).await.expect("an item in time") {
                Some(Err(error @ MetaError::Unavailable { .. })) => {
                    assert!(error.is_retriable());
                    eprintln!("watch gave up after {:?}: {error}", started.elapsed());
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
            assert!(started.elapsed() >= Duration::from_secs(2), "retried for watch_retry_timeout");
            assert!(timeout(EVENT_TIMEOUT, watch.next()).await.expect("the end in time").is_none());

            match proxied.get("w/b").await {
                Err(error) => assert!(error.is_retriable(), "{error:?}"),
                Ok(got) => panic!("read through a stopped proxy: {got:?}"),
            }
            clean_up(&direct).await;
        })
        .await;
    }

    /// A role that dies loses its session: its key, attached to a lease it kept alive,
    /// disappears once it stops refreshing and the TTL passes, and a watcher sees the
    /// Delete. While it refreshes, the key outlives many TTLs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_owner_loses_its_session() {
        let Some((endpoints, options)) = test_config("session") else { return };
        let _server = hold_server(false).await;
        bounded("session test", async {
            let ttl = Duration::from_secs(1);
            let key = "session/querynode/7";
            let coordinator = EtcdMetaKv::connect(&endpoints, options.clone()).await.expect("connect");
            // The role has its own connection, as a separate process would.
            let role = EtcdMetaKv::connect(&endpoints, options.clone()).await.expect("connect the role");
            let mut watch = coordinator.watch_prefix("session/", None).await.expect("watch");
            let lease = role.grant_lease(ttl).await.expect("grant");
            let created = role.put(key, b("127.0.0.1:21123"), lease).await.expect("register");
            let event = next_event(&mut watch, EVENT_TIMEOUT).await;
            assert_eq!((event.kind, event.kv.lease, event.kv.mod_revision), (WatchEventKind::Put, lease, created));

            let last_refresh = Arc::new(Mutex::new(Instant::now()));
            let refresher = tokio::spawn({
                let last_refresh = Arc::clone(&last_refresh);
                async move {
                    loop {
                        role.keep_alive(lease).await.expect("keep_alive of a live session");
                        *last_refresh.lock() = Instant::now();
                        sleep(ttl / 4).await;
                    }
                }
            });
            // Three TTLs of refreshing: nothing happens.
            assert_no_event(&mut watch, ttl * 3).await;
            assert_eq!(coordinator.get(key).await.expect("get").expect("alive").mod_revision, created);

            // The role dies: no more refreshes, and its connection goes away with it.
            refresher.abort();
            assert!(refresher.await.expect_err("aborted").is_cancelled());
            let died = *last_refresh.lock();
            let event = next_event(&mut watch, Duration::from_secs(15)).await;
            let lost_after = died.elapsed();
            assert_eq!((event.kind, event.kv.key.as_str()), (WatchEventKind::Delete, key));
            assert!(event.kv.mod_revision > created);
            assert!(lost_after >= ttl * 3 / 4, "the session expired {lost_after:?} after the last refresh");
            eprintln!("session lost {lost_after:?} after the last refresh (TTL {ttl:?})");
            assert_eq!(coordinator.get(key).await.expect("get"), None);
            match coordinator.keep_alive(lease).await {
                Err(MetaError::LeaseNotFound { lease: reported }) => assert_eq!(reported, lease),
                other => panic!("expected LeaseNotFound, got {other:?}"),
            }
            clean_up(&coordinator).await;
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_input_is_rejected() {
        let Some((endpoints, options)) = test_config("bad-input") else { return };
        let _server = hold_server(false).await;
        bounded("bad input test", async {
            let store = EtcdMetaKv::connect(&endpoints, options).await.expect("connect");
            let invalid = |result: Result<()>, what: &str| match result {
                Err(MetaError::InvalidArgument { .. }) => {}
                other => panic!("{what}: expected InvalidArgument, got {other:?}"),
            };
            invalid(store.get("").await.map(|_| ()), "get of the empty key");
            invalid(store.put("", b("v"), 0).await.map(|_| ()), "put of the empty key");
            invalid(store.delete("").await.map(|_| ()), "delete of the empty key");
            invalid(
                store.txn(Txn { compares: vec![Compare::absent("")], ..Txn::default() }).await.map(|_| ()),
                "compare on the empty key",
            );
            invalid(store.grant_lease(Duration::ZERO).await.map(|_| ()), "lease without TTL");
            invalid(store.grant_lease(Duration::MAX).await.map(|_| ()), "lease with an endless TTL");
            // More operations than etcd allows in one transaction (--max-txn-ops, 128).
            let puts = (0..200).map(|i| TxnOp::put(format!("many/{i}"), "v")).collect();
            invalid(store.txn(Txn { success: puts, ..Txn::default() }).await.map(|_| ()), "oversized txn");
            // A value over etcd's request limit (--max-request-bytes, 1.5 MiB).
            let huge = Bytes::from(vec![b'x'; 2 << 20]);
            invalid(store.put("huge", huge, 0).await.map(|_| ()), "a 2 MiB value");
            let large = Bytes::from(vec![b'x'; 1700 << 10]);
            invalid(store.put("large", large, 0).await.map(|_| ()), "a 1.7 MiB value");
            // A sub-second TTL is rounded up, never down.
            let lease = store.grant_lease(Duration::from_millis(1)).await.expect("grant");
            store.put("short", b("v"), lease).await.expect("put");
            store.revoke_lease(lease).await.expect("revoke");
            assert!(store.scan_prefix("").await.expect("scan").is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn connect_fails_fast_without_a_server() {
        // A port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        drop(listener);
        let options = EtcdMetaKvOptions { connect_timeout: Duration::from_millis(500), ..EtcdMetaKvOptions::default() };
        let started = Instant::now();
        match EtcdMetaKv::connect(&[endpoint], options).await {
            Err(error) => assert!(error.is_retriable(), "{error:?}"),
            Ok(store) => panic!("connected to nothing: {store:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(5));

        for (endpoints, options) in [
            (vec![], EtcdMetaKvOptions::default()),
            (vec![" ".to_owned()], EtcdMetaKvOptions::default()),
            (
                vec!["http://127.0.0.1:1".to_owned()],
                EtcdMetaKvOptions { scan_page_size: 0, ..EtcdMetaKvOptions::default() },
            ),
            (
                vec!["http://127.0.0.1:1".to_owned()],
                EtcdMetaKvOptions { request_timeout: Duration::ZERO, ..EtcdMetaKvOptions::default() },
            ),
        ] {
            match EtcdMetaKv::connect(&endpoints, options.clone()).await {
                Err(MetaError::InvalidArgument { .. }) => {}
                other => panic!("{endpoints:?} {options:?}: expected InvalidArgument, got {other:?}"),
            }
        }
        let debug = format!(
            "{:?}",
            EtcdMetaKvOptions { user: Some(("root".into(), "secret".into())), ..EtcdMetaKvOptions::default() }
        );
        assert!(debug.contains("root") && !debug.contains("secret"), "{debug}");
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_range_end(b"abc"), b"abd");
        assert_eq!(prefix_range_end(b"a/"), b"a0");
        assert_eq!(prefix_range_end(b"a\xff"), b"b");
        assert_eq!(prefix_range_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_range_end(b""), b"\0");
        assert_eq!(range_start(String::new()), "\0");
        assert_eq!(range_start("x/".to_owned()), "x/");
        assert_eq!(strip_root("r/", b"r/k".to_vec()).expect("strip"), "k");
        assert!(matches!(strip_root("r/", b"s/k".to_vec()), Err(MetaError::UnexpectedData { .. })));
        assert!(matches!(strip_root("", vec![0xff, 0xfe]), Err(MetaError::UnexpectedData { .. })));
    }
}
