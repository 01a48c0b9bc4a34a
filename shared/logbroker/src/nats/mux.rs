//! One wildcard inbox subscription shared by every reply this broker waits for: publish
//! acks (JetStream answers a publish that carries a reply subject) and request replies.
//!
//! async-nats' own request path keeps only the first reply of a request; chunked replies
//! and atomic-batch acks need several messages per reply subject, and registering the
//! reply subject before publishing keeps the publish and the rest of a batch in order on
//! the connection.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::{Client, Message};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;
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
}

impl ReplyMux {
    pub(crate) async fn start(client: &Client) -> Result<ReplyMux> {
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
        Ok(ReplyMux { prefix, next: AtomicU64::new(1), waiters, task })
    }

    /// A fresh reply subject and the receiver of the messages sent to it. Dropping the
    /// inbox stops routing to it.
    pub(crate) fn register(&self) -> ReplyInbox {
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiters.lock().insert(token, tx);
        ReplyInbox { subject: format!("{}.{token}", self.prefix), token, rx, waiters: self.waiters.clone() }
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
    pub rx: mpsc::UnboundedReceiver<Message>,
    waiters: Waiters,
}

impl Drop for ReplyInbox {
    fn drop(&mut self) {
        self.waiters.lock().remove(&self.token);
    }
}
