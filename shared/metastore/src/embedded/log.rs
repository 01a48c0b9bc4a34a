//! The write-ahead log: `meta-<generation:016x>.wal`, a header
//! (`"FVMWAL01" | generation u64`) and one frame per commit.
//!
//! Frames are an [`fv_wal::FrameFormat`] with magic `FVMF`, no fixed fields and the crc
//! over the length and the payload: `"FVMF" | length u32 | crc32 u32 | payload`. The
//! payload is the revision, the Put/Delete events of that revision, lease grants and
//! revokes ([`encode_commit`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Buf, BufMut, Bytes};
use fv_wal::{FrameFormat, TornTail};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::codec::{Decoder, put_bytes, put_duration, put_len};
use super::eval::delete_event;
use super::state::{Commit, State};
use super::{corrupt, io_error};
use crate::{KeyValue, MetaError, Result, WatchEvent, WatchEventKind};

const WAL_MAGIC: &[u8; 8] = b"FVMWAL01";
pub(super) const WAL_HEADER_LEN: u64 = 16;
/// Frames whose length field says more than 1 GiB are treated as garbage when reading.
pub(super) const FORMAT: FrameFormat = FrameFormat::new(*b"FVMF").with_crc_over_length().with_max_body(1 << 30);

const EVENT_PUT: u8 = 1;
const EVENT_DELETE: u8 = 2;

pub(super) fn log_file_name(generation: u64) -> String {
    format!("meta-{generation:016x}.wal")
}

pub(super) fn parse_log_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("meta-")?.strip_suffix(".wal")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Removes logs of other generations: older ones are covered by the snapshot, newer
/// ones were created by a rotation that crashed before its snapshot was renamed (they
/// hold no frames then; one that does means the snapshot is missing or stale).
pub(super) fn remove_other_logs(dir: &Path, generation: u64) -> Result<()> {
    let mut removed = false;
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let Some(other) = entry.file_name().to_str().and_then(parse_log_file_name) else { continue };
        if other == generation {
            continue;
        }
        let path = entry.path();
        if other > generation {
            let len = entry.metadata().map_err(io_error(&path))?.len();
            if len > WAL_HEADER_LEN {
                return Err(corrupt(
                    &path,
                    0,
                    format!("log generation {other} holds data but the snapshot names generation {generation}"),
                ));
            }
        }
        info!(path = %path.display(), "removing stale meta log");
        fs::remove_file(&path).map_err(io_error(&path))?;
        removed = true;
    }
    if removed {
        fv_wal::sync_dir(dir).map_err(io_error(dir))?;
    }
    Ok(())
}

/// The open log: appended to by the writer thread.
pub(super) struct LogWriter {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) generation: u64,
    /// Bytes of valid, synced log (header + frames); the file position.
    pub(super) len: u64,
}

impl LogWriter {
    fn header(generation: u64) -> Vec<u8> {
        let mut header = Vec::with_capacity(WAL_HEADER_LEN as usize);
        header.put_slice(WAL_MAGIC);
        header.put_u64_le(generation);
        header
    }

    /// Creates an empty, durable log of `generation`.
    pub(super) fn create(dir: &Path, generation: u64) -> io::Result<LogWriter> {
        let path = dir.join(log_file_name(generation));
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        file.write_all(&Self::header(generation))?;
        file.sync_all()?;
        fv_wal::sync_dir(dir)?;
        Ok(LogWriter { file, path, generation, len: WAL_HEADER_LEN })
    }

    /// Opens the log of `generation` (creating it if missing), applies its frames to
    /// `state`, and cuts off a torn tail.
    pub(super) fn open_and_replay(dir: &Path, generation: u64, state: &mut State, now: Instant) -> Result<LogWriter> {
        let path = dir.join(log_file_name(generation));
        let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return LogWriter::create(dir, generation).map_err(io_error(&path));
            }
            Err(source) => return Err(MetaError::Io { path, source }),
        };
        let mut header = Vec::with_capacity(WAL_HEADER_LEN as usize);
        (&mut file).take(WAL_HEADER_LEN).read_to_end(&mut header).map_err(io_error(&path))?;
        if (header.len() as u64) < WAL_HEADER_LEN {
            // Crashed while creating the log: nothing was ever acknowledged from it.
            if !header.is_empty() {
                warn!(path = %path.display(), bytes = header.len(), "meta log header is torn; rewriting it");
            }
            drop(file);
            return LogWriter::create(dir, generation).map_err(io_error(&path));
        }
        let mut h = &header[..];
        let magic_ok = h[..8] == WAL_MAGIC[..];
        h.advance(8);
        if !magic_ok || h.get_u64_le() != generation {
            return Err(corrupt(&path, 0, "bad log header"));
        }
        let scan = fv_wal::recover(&FORMAT, &path, WAL_HEADER_LEN, TornTail::Truncate, |offset, frame| {
            let commit = decode_commit(frame.body).map_err(|reason| corrupt(&path, offset, reason))?;
            state.apply(commit, now).map_err(|reason| corrupt(&path, offset, reason))
        })?;
        file.seek(SeekFrom::Start(scan.end)).map_err(io_error(&path))?;
        debug!(path = %path.display(), frames = scan.frames, "replayed meta log");
        Ok(LogWriter { file, path, generation, len: scan.end })
    }

    /// Writes `buf` at the end of the log (not synced; see [`LogWriter::sync`]). On
    /// failure, the flag says whether the log is now in an unknown state (it could not be
    /// restored to its previous length).
    pub(super) fn write(&mut self, buf: &[u8]) -> std::result::Result<(), (io::Error, bool)> {
        if let Err(error) = self.file.write_all(buf) {
            let restored = self.file.set_len(self.len).and_then(|()| self.file.seek(SeekFrom::Start(self.len)));
            return Err((error, restored.is_err()));
        }
        Ok(())
    }

    /// One fdatasync for everything written; the caller then counts the bytes as part of
    /// the log.
    pub(super) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Appends the frame of `commit` to `buf`.
pub(super) fn encode_frame(commit: &Commit, buf: &mut Vec<u8>) {
    let start = FORMAT.begin(buf);
    encode_commit(commit, buf);
    FORMAT.finish(buf, start).expect("frames are far smaller than 4 GiB");
}

/// The payload of a commit's frame.
fn encode_commit(commit: &Commit, buf: &mut Vec<u8>) {
    buf.put_i64_le(commit.revision);
    put_len(buf, commit.events.len());
    for event in &commit.events {
        match event.kind {
            WatchEventKind::Put => {
                buf.put_u8(EVENT_PUT);
                put_bytes(buf, event.kv.key.as_bytes());
                put_bytes(buf, &event.kv.value);
                buf.put_i64_le(event.kv.create_revision);
                buf.put_i64_le(event.kv.version);
                buf.put_i64_le(event.kv.lease);
            }
            WatchEventKind::Delete => {
                buf.put_u8(EVENT_DELETE);
                put_bytes(buf, event.kv.key.as_bytes());
            }
        }
    }
    put_len(buf, commit.grants.len());
    for &(lease, ttl) in &commit.grants {
        buf.put_i64_le(lease);
        put_duration(buf, ttl);
    }
    put_len(buf, commit.revokes.len());
    for &lease in &commit.revokes {
        buf.put_i64_le(lease);
    }
}

fn decode_commit(payload: &[u8]) -> std::result::Result<Commit, String> {
    let mut dec = Decoder::new(payload);
    let revision = dec.i64()?;
    let mut commit = Commit { revision, ..Commit::default() };
    for _ in 0..dec.u32()? {
        let kind = dec.u8()?;
        let key = dec.string()?;
        commit.events.push(match kind {
            EVENT_PUT => {
                let value = Bytes::copy_from_slice(dec.bytes()?);
                let create_revision = dec.i64()?;
                let version = dec.i64()?;
                let lease = dec.i64()?;
                let kv = KeyValue { key, value, create_revision, mod_revision: revision, version, lease };
                WatchEvent { kind: WatchEventKind::Put, kv }
            }
            EVENT_DELETE => delete_event(&key, revision),
            other => return Err(format!("unknown event kind {other}")),
        });
    }
    for _ in 0..dec.u32()? {
        let lease = dec.i64()?;
        commit.grants.push((lease, dec.duration()?));
    }
    for _ in 0..dec.u32()? {
        commit.revokes.push(dec.i64()?);
    }
    dec.finish()?;
    Ok(commit)
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::path::Path;
    use std::time::Duration;

    use super::super::testutil::*;
    use super::super::{EmbeddedMetaKv, EmbeddedMetaKvConfig};
    use super::*;
    use crate::{Compare, MetaError, MetaKv, Txn, TxnOp};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        kv.put("a", b("1"), 0).await.expect("put");
        kv.put("b", b("2"), 0).await.expect("put");
        drop(kv);
        let log = log_path(dir.path());
        let good_len = fs::metadata(&log).expect("log").len();

        // A frame whose payload never made it to disk.
        let mut file = OpenOptions::new().append(true).open(&log).expect("open log");
        let mut torn = Vec::new();
        torn.extend_from_slice(&FORMAT.magic());
        torn.extend_from_slice(&100u32.to_le_bytes());
        torn.extend_from_slice(&[0xAB; 14]);
        file.write_all(&torn).expect("append");
        drop(file);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after a torn frame");
        assert_eq!(fs::metadata(&log).expect("log").len(), good_len, "the torn tail was cut off");
        assert_eq!(kv.get("b").await.expect("get").expect("b").value, b("2"));
        assert_eq!(kv.put("c", b("3"), 0).await.expect("put"), 3);
        drop(kv);

        // Zeroed pages at the tail (file size updated, data not written).
        let mut file = OpenOptions::new().append(true).open(&log).expect("open log");
        file.write_all(&[0u8; 4096]).expect("append");
        drop(file);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after zeroed tail");
        assert_eq!(kv.get("c").await.expect("get").expect("c").value, b("3"));
        drop(kv);

        // The last frame cut in the middle: that write was never acknowledged.
        let len = fs::metadata(&log).expect("log").len();
        OpenOptions::new().write(true).open(&log).expect("open log").set_len(len - 3).expect("truncate");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen after a cut frame");
        assert_eq!(kv.get("c").await.expect("get"), None);
        assert_eq!(kv.revision().await.expect("revision"), 2);
        assert_eq!(kv.put("d", b("4"), 0).await.expect("put"), 3);
        drop(kv);
        let kv = EmbeddedMetaKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.scan_prefix("").await.expect("scan").len(), 3);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open(dir.path()).expect("open");
        for key in ["a", "b", "c"] {
            kv.put(key, b(key), 0).await.expect("put");
        }
        drop(kv);
        let log = log_path(dir.path());
        let mut data = fs::read(&log).expect("read log");
        let first_payload = WAL_HEADER_LEN as usize + FORMAT.header_len() + 2;
        data[first_payload] ^= 0xFF;
        fs::write(&log, &data).expect("write log");
        match EmbeddedMetaKv::open(dir.path()) {
            Err(MetaError::Corrupt { offset, .. }) => assert_eq!(offset, WAL_HEADER_LEN),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    /// A meta directory as the store wrote it before its WAL code moved to fv-wal (commit
    /// 83c7e5a): a snapshot (after a rotation) and a log with frames after it. Files
    /// written by older builds must keep opening, and this build must write the same bytes.
    const GOLDEN_FILES: &[(&str, &str)] = &[
        (
            "meta-0000000000000003.wal",
            concat!(
                "46564d57414c3031030000000000000046564d461a000000567279820400000000000000010000000201000000610000",
                "00000000000046564d463800000031411bb1050000000000000001000000010100000063020000003333030000000000",
                "0000020000000000000000000000000000000000000000000000",
            ),
        ),
        (
            "meta.snap",
            concat!(
                "46564d534e415031e6000000000000008be28efd01000000030000000000000003000000000000000200000000000000",
                "010000000100000000000000005847f80d00000004000000000000000100000061010000003101000000000000000100",
                "000000000000010000000000000000000000000000000100000063010000003303000000000000000300000000000000",
                "010000000000000000000000000000000100000064010000003403000000000000000300000000000000010000000000",
                "0000000000000000000001000000730700000073657373696f6e02000000000000000200000000000000010000000000",
                "00000100000000000000",
            ),
        ),
    ];

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn golden_config() -> EmbeddedMetaKvConfig {
        EmbeddedMetaKvConfig { snapshot_log_bytes: 96, ..EmbeddedMetaKvConfig::default() }
    }

    /// The directory's files (but `LOCK`), sorted by name, as hex.
    fn files_as_hex(dir: &Path) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry"))
            .filter(|e| e.file_name() != "LOCK")
            .map(|e| (e.file_name().to_string_lossy().into_owned(), hex(&fs::read(e.path()).expect("read"))))
            .collect();
        files.sort();
        files
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_of_the_original_format_open_and_are_reproduced() {
        // This build writes the same bytes.
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), golden_config()).expect("open");
        kv.put("a", b("1"), 0).await.expect("put");
        let lease = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
        kv.put("s", b("session"), lease).await.expect("put with lease");
        let txn = Txn {
            compares: vec![Compare::absent("c")],
            success: vec![TxnOp::put("c", "3"), TxnOp::put("d", "4")],
            failure: vec![],
        };
        assert!(kv.txn(txn).await.expect("txn").succeeded);
        assert!(kv.delete("a").await.expect("delete"));
        kv.put("c", b("33"), 0).await.expect("put");
        let expected = dump(&kv).await;
        drop(kv);
        let written = files_as_hex(dir.path());
        let golden: Vec<(String, String)> = GOLDEN_FILES.iter().map(|(n, h)| (n.to_string(), h.to_string())).collect();
        assert_eq!(written, golden, "files changed");

        // Files written by the original code open with the same contents.
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, data) in GOLDEN_FILES {
            fs::write(dir.path().join(name), unhex(data)).expect("write");
        }
        let kv = EmbeddedMetaKv::open_with_config(dir.path(), golden_config()).expect("open the original files");
        assert_eq!(dump(&kv).await, expected);
        assert_eq!(expected.1, 5);
        kv.keep_alive(lease).await.expect("the lease came back");
        assert_eq!(kv.put("e", b("5"), 0).await.expect("put"), 6);
    }
}
