//! Request/reply and notifications, in-process: the embedded broker serves one process,
//! so a request is handed to its servers' channels and a notification to its listeners'.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::names::validate_subject;
use crate::{
    BrokerError, Headers, IncomingRequest, Notification, NotificationStream, Replier, RequestStream, Result,
    subject_matches,
};

/// Notifications queued for a listener that does not keep up before new ones are dropped.
const NOTIFY_QUEUE: usize = 65_536;

/// The servers and listeners of one broker.
#[derive(Default)]
pub(super) struct InProc {
    routing: Arc<Mutex<Routing>>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    next_id: AtomicU64,
}

impl InProc {
    /// Ends every request and notification stream.
    pub(super) fn close(&self) {
        self.routing.lock().subjects.clear();
        self.listeners.lock().clear();
    }

    pub(super) fn serve(&self, subject: &str, queue_group: Option<&str>) -> Result<RequestStream> {
        validate_subject(subject)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut routing = self.routing.lock();
            let servers = routing.subjects.entry(subject.to_owned()).or_default();
            let server = Server { id, tx };
            match queue_group {
                None => servers.plain.push(server),
                Some(g) => servers.groups.entry(g.to_owned()).or_default().members.push(server),
            }
        }
        debug!(subject, ?queue_group, "serving");
        Ok(Box::pin(ServeStream {
            rx,
            routing: self.routing.clone(),
            subject: subject.to_owned(),
            group: queue_group.map(str::to_owned),
            id,
        }))
    }

    pub(super) async fn request(
        &self,
        subject: &str,
        payload: Bytes,
        headers: Headers,
        timeout: Duration,
    ) -> Result<Bytes> {
        validate_subject(subject)?;
        let (tx, rx) = oneshot::channel();
        let slot: ReplySlot = Arc::new(Mutex::new(Some(tx)));
        let make = || IncomingRequest {
            subject: subject.to_owned(),
            payload: payload.clone(),
            headers: headers.clone(),
            replier: Box::new(InProcReplier { slot: slot.clone() }),
        };
        let mut delivered = 0usize;
        {
            let mut routing = self.routing.lock();
            if let Some(servers) = routing.subjects.get_mut(subject) {
                // Every plain server gets the request; servers that went away are removed.
                servers.plain.retain(|s| {
                    let ok = s.tx.send(make()).is_ok();
                    delivered += usize::from(ok);
                    ok
                });
                // One member of each queue group, round-robin.
                for group in servers.groups.values_mut() {
                    let mut req = make();
                    while !group.members.is_empty() {
                        let i = group.next % group.members.len();
                        match group.members[i].tx.send(req) {
                            Ok(()) => {
                                group.next = i + 1;
                                delivered += 1;
                                break;
                            }
                            Err(mpsc::error::SendError(back)) => {
                                group.members.remove(i);
                                req = back;
                            }
                        }
                    }
                }
                servers.groups.retain(|_, g| !g.members.is_empty());
                if servers.is_empty() {
                    routing.subjects.remove(subject);
                }
            }
        }
        drop(slot);
        if delivered == 0 {
            return Err(BrokerError::NoResponders { subject: subject.to_owned() });
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            // Every server dropped the request without replying (e.g. it stopped serving).
            Ok(Err(_)) => Err(BrokerError::NoResponders { subject: subject.to_owned() }),
            Err(_) => Err(BrokerError::Timeout {
                subject: subject.to_owned(),
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    pub(super) fn notify(&self, subject: &str, payload: Bytes, headers: Headers) -> Result<()> {
        validate_subject(subject)?;
        let mut listeners = self.listeners.lock();
        listeners.retain(|l| {
            if !subject_matches(&l.pattern, subject) {
                return true;
            }
            let n = Notification { subject: subject.to_owned(), payload: payload.clone(), headers: headers.clone() };
            match l.tx.try_send(n) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    warn!(subject, pattern = %l.pattern, "listener does not keep up; notification dropped");
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        Ok(())
    }

    pub(super) fn listen(&self, subject: &str) -> Result<NotificationStream> {
        validate_subject(subject)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(NOTIFY_QUEUE);
        self.listeners.lock().push(Listener { id, pattern: subject.to_owned(), tx });
        Ok(Box::pin(ListenStream { rx, listeners: self.listeners.clone(), id }))
    }
}

struct Server {
    id: u64,
    tx: mpsc::UnboundedSender<IncomingRequest>,
}

#[derive(Default)]
struct Group {
    members: Vec<Server>,
    next: usize,
}

#[derive(Default)]
struct SubjectServers {
    plain: Vec<Server>,
    groups: BTreeMap<String, Group>,
}

impl SubjectServers {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }
}

#[derive(Default)]
struct Routing {
    subjects: HashMap<String, SubjectServers>,
}

type ReplySlot = Arc<Mutex<Option<oneshot::Sender<Bytes>>>>;

struct InProcReplier {
    slot: ReplySlot,
}

#[async_trait]
impl Replier for InProcReplier {
    async fn reply(self: Box<Self>, payload: Bytes, _headers: Headers) -> Result<()> {
        // Later replies (and replies after the requester gave up) are dropped, as in NATS.
        if let Some(tx) = self.slot.lock().take() {
            let _ = tx.send(payload);
        }
        Ok(())
    }
}

struct ServeStream {
    rx: mpsc::UnboundedReceiver<IncomingRequest>,
    routing: Arc<Mutex<Routing>>,
    subject: String,
    group: Option<String>,
    id: u64,
}

impl Stream for ServeStream {
    type Item = IncomingRequest;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Drop for ServeStream {
    fn drop(&mut self) {
        let mut routing = self.routing.lock();
        let Some(servers) = routing.subjects.get_mut(&self.subject) else { return };
        match &self.group {
            None => servers.plain.retain(|s| s.id != self.id),
            Some(g) => {
                if let Some(group) = servers.groups.get_mut(g) {
                    group.members.retain(|s| s.id != self.id);
                    if group.members.is_empty() {
                        servers.groups.remove(g);
                    }
                }
            }
        }
        if servers.is_empty() {
            routing.subjects.remove(&self.subject);
        }
    }
}

struct Listener {
    id: u64,
    pattern: String,
    tx: mpsc::Sender<Notification>,
}

struct ListenStream {
    rx: mpsc::Receiver<Notification>,
    listeners: Arc<Mutex<Vec<Listener>>>,
    id: u64,
}

impl Stream for ListenStream {
    type Item = Notification;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().rx.poll_recv(cx)
    }
}

impl Drop for ListenStream {
    fn drop(&mut self) {
        self.listeners.lock().retain(|l| l.id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use futures::StreamExt;
    use tempfile::TempDir;

    use super::super::testutil::*;
    use crate::{BrokerError, LogBroker};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_dropped_by_server_is_no_responders() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        let mut requests = broker.serve("svc", Some("g")).await.expect("serve");
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                drop(req);
            }
        });
        let started = Instant::now();
        let err = broker.request("svc", Bytes::new(), Vec::new(), Duration::from_secs(10)).await.expect_err("dropped");
        assert!(matches!(err, BrokerError::NoResponders { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        server.abort();
    }
}
