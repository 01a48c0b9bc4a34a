//! Helpers shared by the meta store's unit tests.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::EmbeddedMetaKv;
use super::log::parse_log_file_name;
use crate::{KeyValue, MetaKv, Revision};

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(super) fn log_path(dir: &Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.file_name().and_then(|n| n.to_str()).and_then(parse_log_file_name).is_some())
        .collect();
    assert_eq!(logs.len(), 1, "exactly one log file: {logs:?}");
    logs.pop().expect("one log")
}

pub(super) async fn dump(kv: &EmbeddedMetaKv) -> (Vec<KeyValue>, Revision) {
    (kv.scan_prefix("").await.expect("scan"), kv.revision().await.expect("revision"))
}
