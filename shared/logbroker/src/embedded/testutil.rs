//! Helpers shared by the broker's unit tests.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::{EmbeddedBroker, EmbeddedBrokerConfig, FsyncPolicy};
use crate::{LogBroker, LogMessage, OutgoingMessage, SeekFrom, SubjectFilter};

pub(super) fn config(fsync: FsyncPolicy, segment_bytes: u64) -> EmbeddedBrokerConfig {
    EmbeddedBrokerConfig { fsync, segment_bytes, ..EmbeddedBrokerConfig::default() }
}

pub(super) fn open(dir: &Path) -> Arc<EmbeddedBroker> {
    EmbeddedBroker::open(dir, EmbeddedBrokerConfig::default()).expect("open broker")
}

pub(super) fn open_small(dir: &Path) -> Arc<EmbeddedBroker> {
    EmbeddedBroker::open(dir, config(FsyncPolicy::Always, 1024)).expect("open broker")
}

pub(super) fn segment_files(broker: &EmbeddedBroker, topic: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(broker.topic_dir(topic))
        .expect("topic dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

pub(super) async fn read_all(broker: &EmbeddedBroker, topic: &str, filter: SubjectFilter, n: usize) -> Vec<LogMessage> {
    let mut s = broker.subscribe(topic, filter, SeekFrom::Earliest).await.expect("subscribe");
    let mut out = Vec::new();
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), s.next())
            .await
            .expect("record in time")
            .expect("stream open")
            .expect("record");
        out.push(m);
    }
    out
}

/// Produces `batches` batches of `per_batch` records on subjects `a`/`b` alternating.
pub(super) async fn fill(broker: &EmbeddedBroker, topic: &str, batches: usize, per_batch: usize) {
    broker.ensure_topic(topic).await.expect("ensure");
    for b in 0..batches {
        let msgs = (0..per_batch)
            .map(|i| {
                let n = b * per_batch + i + 1;
                OutgoingMessage {
                    subject: if n.is_multiple_of(2) { "b".into() } else { "a".into() },
                    payload: Bytes::from(format!("payload-{n}-{}", "x".repeat(n % 50))),
                    headers: vec![("n".into(), n.to_string())],
                }
            })
            .collect();
        broker.produce(topic, msgs).await.expect("produce");
    }
}

pub(super) fn check_record(m: &LogMessage) {
    let n = m.position as usize;
    assert_eq!(m.payload.as_ref(), format!("payload-{n}-{}", "x".repeat(n % 50)).as_bytes());
    assert_eq!(m.subject, if n.is_multiple_of(2) { "b" } else { "a" });
    assert_eq!(m.headers, vec![("n".to_string(), n.to_string())]);
}

pub(super) fn flip_byte(path: &Path, offset: u64) {
    let f = OpenOptions::new().read(true).write(true).open(path).expect("open");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read");
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).expect("write");
}
