//! One wildcard inbox subscription shared by every reply this broker waits for: publish
//! acks (JetStream answers a publish that carries a reply subject) and request replies.
//!
//! async-nats' own request path keeps only the first reply of a request; chunked replies
//! and atomic-batch acks need several messages per reply subject, and registering the
//! reply subject before publishing keeps the publish and the rest of a batch in order on
//! the connection.
//!
//! A reply can be lost with the connection (a publish still in the old socket's buffer),
//! so an inbox also watches the connection: [`ReplyInbox::recv`] fails fast with
//! [`Recv::ConnectionLost`] when the connection dropped after the inbox was registered,
//! instead of waiting for its whole timeout.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::{Client, Message};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::{BrokerError, Result};

type Waiters = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Message>>>>;

pub(crate) struct ReplyMux {
    /// `<inbox prefix>.<unique id>`; reply subjects are `<prefix>.<token>`.
    prefix: String,
    next: AtomicU64,
    waiters: Waiters,
    task: JoinHandle<()>,
    /// Counts the connection's disconnects.
    disconnects: watch::Receiver<u64>,
}

impl ReplyMux {
    /// `disconnects` counts the connection's disconnects (fed by its event callback).
    pub(crate) async fn start(client: &Client, disconnects: watch::Receiver<u64>) -> Result<ReplyMux> {
        let prefix = client.new_inbox();
        let mut sub = client.subscribe(format!("{prefix}.*")).await.map_err(|e| BrokerError::Backend {
            operation: "subscribing to the reply inbox".into(),
            retriable: true,
            source: Box::new(e),
        })?;
        let waiters: Waiters = Arc::default();
        let task = tokio::spawn({
            let waiters = waiters.clone();
            async move {
                while let Some(msg) = sub.next().await {
                    let token = msg.subject.as_str().rsplit('.').next().and_then(|t| t.parse::<u64>().ok());
                    let Some(token) = token else { continue };
                    let waiters = waiters.lock();
                    match waiters.get(&token) {
                        Some(tx) => {
                            let _ = tx.send(msg);
                        }
                        None => debug!(subject = %msg.subject, "reply for nobody waiting (late or duplicate)"),
                    }
                }
                debug!("reply inbox subscription ended");
            }
        });
        Ok(ReplyMux { prefix, next: AtomicU64::new(1), waiters, task, disconnects })
    }

    /// A fresh reply subject and the receiver of the messages sent to it. Dropping the
    /// inbox stops routing to it.
    pub(crate) fn register(&self) -> ReplyInbox {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters.lock().insert(token, tx);
        let mut disconnects = self.disconnects.clone();
        let epoch = *disconnects.borrow_and_update();
        ReplyInbox {
            subject: format!("{}.{token}", self.prefix),
            token,
            rx,
            waiters: self.waiters.clone(),
            disconnects,
            epoch,
        }
    }

    /// A unique id for this connection (for atomic batch ids).
    pub(crate) fn unique_id(&self) -> String {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        // The inbox prefix is `_INBOX.<nuid>`: the nuid is unique per connection.
        let nuid = self.prefix.rsplit('.').next().unwrap_or_default();
        format!("{nuid}-{id}")
    }
}

impl Drop for ReplyMux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) struct ReplyInbox {
    pub subject: String,
    token: u64,
    rx: mpsc::UnboundedReceiver<Message>,
    waiters: Waiters,
    disconnects: watch::Receiver<u64>,
    /// The disconnect count when the inbox was registered.
    epoch: u64,
}

/// Why [`ReplyInbox::recv`] returned no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recv {
    TimedOut,
    /// The connection dropped after the inbox was registered: what was sent may or may
    /// not have reached the server, and a reply may have been lost.
    ConnectionLost,
    Closed,
}

impl ReplyInbox {
    /// The next message sent to this inbox, waiting at most until `deadline`.
    pub(crate) async fn recv(&mut self, deadline: tokio::time::Instant) -> std::result::Result<Message, Recv> {
        let epoch = self.epoch;
        let lost = async {
            // The guard (not Send) is dropped before any further await.
            let changed = self.disconnects.wait_for(|n| *n != epoch).await.is_ok();
            if !changed {
                // The connection is gone for good: the timeout decides.
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            // Messages that arrived before the disconnect are still delivered.
            biased;
            msg = self.rx.recv() => msg.ok_or(Recv::Closed),
            () = lost => Err(Recv::ConnectionLost),
            () = tokio::time::sleep_until(deadline) => Err(Recv::TimedOut),
        }
    }
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.token);
    }
}
