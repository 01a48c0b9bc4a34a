//! Opening a topic directory: validating its segments, cutting off a torn tail, finishing
//! an interrupted truncation, and the `first_retained` file.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use fv_wal::TornTail;
use tracing::{debug, info, warn};

use super::frame::{FORMAT, parse_fixed, parse_records};
use super::names::{parse_segment_name, segment_path};
use super::topic::SegMeta;
use super::{INDEX_INTERVAL, io_err, sync_dir};
use crate::{BrokerError, Position, Result};

const FIRST_RETAINED_FILE: &str = "first_retained";

/// The segment being appended to.
pub(super) struct Active {
    pub(super) base: Position,
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) len: u64,
    pub(super) last_index: Option<u64>,
}

/// A topic as found on disk, ready for its writer.
pub(super) struct Recovered {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) segments: BTreeMap<Position, SegMeta>,
    pub(super) first_retained: Position,
    pub(super) tip: Position,
    pub(super) active: Active,
}

struct ScannedSegment {
    end: u64,
    last: Position,
    index: Vec<(Position, u64)>,
}

/// Validates the frames of one segment starting with position `first`. In the last
/// segment, damage with nothing valid after it is truncated away.
fn scan_segment(path: &Path, first: Position, is_last: bool) -> Result<ScannedSegment> {
    let mut seq = first;
    let mut index = Vec::new();
    let mut last_index: Option<u64> = None;
    let corrupt = |offset: u64, reason: String| BrokerError::Corrupt { path: path.to_path_buf(), offset, reason };
    let tail = if is_last { TornTail::Truncate } else { TornTail::Refuse };
    let scan = fv_wal::recover(&FORMAT, path, 0, tail, |offset, frame| {
        // The checksum holds, so the frame is what we wrote: inconsistencies are not torn writes.
        let (first_seq, count) = parse_fixed(frame.fixed);
        if first_seq != seq {
            return Err(corrupt(offset, format!("frame starts at position {first_seq} but {seq} was expected")));
        }
        if count == 0 {
            return Err(corrupt(offset, "empty frame".into()));
        }
        parse_records(frame.body, count, |_, _| Ok(())).map_err(|reason| corrupt(offset, reason))?;
        if last_index.is_none_or(|li| offset - li >= INDEX_INTERVAL) {
            index.push((seq, offset));
            last_index = Some(offset);
        }
        seq += u64::from(count);
        Ok(())
    })?;
    Ok(ScannedSegment { end: scan.end, last: seq - 1, index })
}

fn read_first_retained(topic_dir: &Path) -> Result<Option<Position>> {
    let path = topic_dir.join(FIRST_RETAINED_FILE);
    match fs::read_to_string(&path) {
        Ok(s) => s.trim().parse::<Position>().map(Some).map_err(|e| BrokerError::Corrupt {
            path,
            offset: 0,
            reason: format!("invalid first retained position {s:?}: {e}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Persists the truncation point: a decimal number and a newline, replaced atomically
/// (temp file, fsync, rename, directory fsync).
pub(super) fn write_first_retained(topic_dir: &Path, first: Position) -> Result<()> {
    fv_wal::replace_file(&topic_dir.join(FIRST_RETAINED_FILE), format!("{first}\n").as_bytes())
        .map_err(|e| fv_wal::WalError::from(e).into())
}

/// Opens (and repairs the torn tail of) the topic stored in `topic_dir`, creating its
/// first segment when it has none.
pub(super) fn recover_topic(topic_dir: &Path, name: &str) -> Result<Recovered> {
    let mut files: BTreeMap<Position, PathBuf> = BTreeMap::new();
    for entry in fs::read_dir(topic_dir).map_err(io_err(topic_dir))? {
        let entry = entry.map_err(io_err(topic_dir))?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if let Some(base) = parse_segment_name(&file_name) {
            files.insert(base, entry.path());
        } else if file_name.ends_with(".tmp") {
            let path = entry.path();
            debug!(path = %path.display(), "removing leftover temporary file");
            fs::remove_file(&path).map_err(io_err(&path))?;
        } else if file_name != FIRST_RETAINED_FILE {
            warn!(path = %entry.path().display(), "ignoring unexpected file in topic directory");
        }
    }
    let persisted_first = read_first_retained(topic_dir)?;

    let mut segments = BTreeMap::new();
    let mut expected: Option<Position> = None;
    let count = files.len();
    for (i, (base, path)) in files.into_iter().enumerate() {
        if let Some(exp) = expected
            && base != exp
        {
            return Err(BrokerError::Corrupt {
                path,
                offset: 0,
                reason: format!("segment starts at position {base} but the previous one ends at {}", exp - 1),
            });
        }
        if base == 0 {
            return Err(BrokerError::Corrupt { path, offset: 0, reason: "segment named 0".into() });
        }
        let scanned = scan_segment(&path, base, i + 1 == count)?;
        expected = Some(scanned.last + 1);
        segments.insert(base, SegMeta { base, path, end: scanned.end, last: scanned.last, index: scanned.index });
    }

    let first_base = segments.keys().next().copied();
    let mut first_retained = persisted_first.unwrap_or(1).max(1);
    if let Some(first_base) = first_base
        && first_base > first_retained
    {
        return Err(BrokerError::Corrupt {
            path: segment_path(topic_dir, first_base),
            offset: 0,
            reason: format!(
                "the oldest segment starts at position {first_base} but positions from {first_retained} are retained"
            ),
        });
    }
    let tip = segments.values().next_back().map_or(first_retained - 1, |s| s.last);
    if first_retained > tip + 1 {
        warn!(topic = name, first_retained, tip, "first retained position is beyond the end of the log; clamping");
        first_retained = tip + 1;
    }

    // Finish a truncation interrupted between persisting the position and deleting files.
    let last_base = segments.keys().next_back().copied();
    let doomed: Vec<Position> =
        segments.values().filter(|s| Some(s.base) != last_base && s.last < first_retained).map(|s| s.base).collect();
    for base in doomed {
        if let Some(seg) = segments.remove(&base) {
            info!(path = %seg.path.display(), "removing segment below the first retained position");
            fs::remove_file(&seg.path).map_err(io_err(&seg.path))?;
        }
    }

    let active = match segments.values().next_back() {
        Some(seg) => {
            let file = OpenOptions::new().append(true).open(&seg.path).map_err(io_err(&seg.path))?;
            Active {
                base: seg.base,
                path: seg.path.clone(),
                file,
                len: seg.end,
                last_index: seg.index.last().map(|&(_, off)| off),
            }
        }
        None => {
            let base = tip + 1;
            let path = segment_path(topic_dir, base);
            let file = OpenOptions::new().create_new(true).append(true).open(&path).map_err(io_err(&path))?;
            sync_dir(topic_dir)?;
            segments.insert(base, SegMeta { base, path: path.clone(), end: 0, last: base - 1, index: Vec::new() });
            Active { base, path, file, len: 0, last_index: None }
        }
    };
    debug!(topic = name, first_retained, tip, segments = segments.len(), "recovered topic");
    Ok(Recovered { name: name.to_owned(), dir: topic_dir.to_path_buf(), segments, first_retained, tip, active })
}

#[cfg(test)]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;

    use bytes::Bytes;
    use futures::StreamExt;
    use tempfile::TempDir;

    use super::super::frame::FORMAT;
    use super::super::testutil::*;
    use super::super::{EmbeddedBroker, EmbeddedBrokerConfig, FsyncPolicy};
    use crate::{BrokerError, LogBroker, OutgoingMessage, SeekFrom, SubjectFilter};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_keeps_records_and_positions_continue() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "fv-dml-0", 40, 5).await;
        assert!(segment_files(&broker, "fv-dml-0").len() > 5, "small segments roll");
        drop(broker);

        let broker = open_small(dir.path());
        assert_eq!(broker.topics().await.expect("topics"), vec!["fv-dml-0".to_string()]);
        assert_eq!(broker.latest_position("fv-dml-0").await.expect("latest"), 200);
        let all = read_all(&broker, "fv-dml-0", SubjectFilter::All, 200).await;
        assert_eq!(all.iter().map(|m| m.position).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
        all.iter().for_each(check_record);
        let only_b = read_all(&broker, "fv-dml-0", SubjectFilter::Subjects(vec!["b".into()]), 100).await;
        assert_eq!(only_b.iter().map(|m| m.position).collect::<Vec<_>>(), (1..=100).map(|i| i * 2).collect::<Vec<_>>());
        // Seeking into the middle of a batch in the middle of a segment.
        let mut s = broker.subscribe("fv-dml-0", SubjectFilter::All, SeekFrom::After(123)).await.expect("subscribe");
        let m = s.next().await.expect("open").expect("record");
        assert_eq!(m.position, 124);
        check_record(&m);

        assert_eq!(
            broker.produce("fv-dml-0", vec![OutgoingMessage::new("a", "next")]).await.expect("produce"),
            vec![201]
        );
        drop(s);
        drop(broker);
        let broker = open_small(dir.path());
        assert_eq!(broker.latest_position("fv-dml-0").await.expect("latest"), 201);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_tail_garbage_is_truncated() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 3, 4).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        let good_len = fs::metadata(&seg).expect("meta").len();
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open segment");
        f.write_all(b"FVLB\x10\x00\x00\x00garbage garbage garbage").expect("append garbage");
        drop(f);

        let broker = open(dir.path());
        assert_eq!(fs::metadata(&seg).expect("meta").len(), good_len, "garbage cut off");
        assert_eq!(broker.latest_position("t").await.expect("latest"), 12);
        read_all(&broker, "t", SubjectFilter::All, 12).await.iter().for_each(check_record);
        assert_eq!(broker.produce("t", vec![OutgoingMessage::new("a", "13")]).await.expect("produce"), vec![13]);
        drop(broker);
        let broker = open(dir.path());
        assert_eq!(broker.latest_position("t").await.expect("latest"), 13);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_last_frame_recovers_to_last_complete_batch() {
        for cut in [5u64, 30, 60] {
            let dir = TempDir::new().expect("tempdir");
            let broker = open(dir.path());
            fill(&broker, "t", 3, 4).await;
            let seg = segment_files(&broker, "t").pop().expect("segment");
            drop(broker);
            let len = fs::metadata(&seg).expect("meta").len();
            // Cut `cut` bytes off the last frame: from its body, or into its header.
            let f = OpenOptions::new().write(true).open(&seg).expect("open segment");
            f.set_len(len - cut).expect("cut");
            drop(f);

            let broker = open(dir.path());
            assert_eq!(broker.latest_position("t").await.expect("latest"), 8, "cut {cut}: last batch dropped whole");
            read_all(&broker, "t", SubjectFilter::All, 8).await.iter().for_each(check_record);
            let pos = broker.produce("t", vec![OutgoingMessage::new("a", "x")]).await.expect("produce");
            assert_eq!(pos, vec![9]);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn torn_header_only_tail() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 2, 1).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        let mut f = OpenOptions::new().append(true).open(&seg).expect("open segment");
        f.write_all(&FORMAT.magic()).expect("partial header");
        f.write_all(&[0u8; 9]).expect("partial header");
        drop(f);
        let broker = open(dir.path());
        assert_eq!(broker.latest_position("t").await.expect("latest"), 2);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flipped_byte_in_older_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 20, 5).await;
        let segs = segment_files(&broker, "t");
        assert!(segs.len() >= 3);
        drop(broker);
        flip_byte(&segs[1], 40);
        match EmbeddedBroker::open(dir.path(), config(FsyncPolicy::Always, 1024)) {
            Err(BrokerError::Corrupt { path, offset, reason }) => {
                assert_eq!(path, segs[1]);
                assert_eq!(offset, 0, "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flipped_byte_mid_last_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        fill(&broker, "t", 5, 3).await;
        let seg = segment_files(&broker, "t").pop().expect("segment");
        drop(broker);
        // Damage the first frame; acknowledged frames follow, so this is not a torn tail.
        flip_byte(&seg, 30);
        let err = EmbeddedBroker::open(dir.path(), EmbeddedBrokerConfig::default()).expect_err("corrupt");
        assert!(matches!(err, BrokerError::Corrupt { .. }), "{err}");
        assert!(fs::metadata(&seg).expect("meta").len() > 100, "nothing truncated");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_middle_segment_is_corrupt() {
        let dir = TempDir::new().expect("tempdir");
        let broker = open_small(dir.path());
        fill(&broker, "t", 20, 5).await;
        let segs = segment_files(&broker, "t");
        drop(broker);
        fs::remove_file(&segs[1]).expect("remove");
        let err = EmbeddedBroker::open(dir.path(), EmbeddedBrokerConfig::default()).expect_err("corrupt");
        assert!(matches!(err, BrokerError::Corrupt { .. }), "{err}");
    }

    /// A topic as the broker wrote it before its WAL code moved to fv-wal (commit
    /// 83c7e5a): two batches, then `truncate(2)`. Files written by older builds must keep
    /// opening, and this build must write the same bytes.
    const GOLDEN_TOPIC: &str = "fv-dml-0";
    const GOLDEN_SEGMENT_NAME: &str = "00000000000000000001.log";
    const GOLDEN_SEGMENT: &str = concat!(
        "46564c423f00000071e3451b0100000000000000020000000d00000066762d646d6c2d302e6331763001000000010000",
        "006b01000000760500000068656c6c6f0b00000066762d646d6c2d302e7474000000000000000046564c424500000013",
        "7983460300000000000000010000000d00000066762d646d6c2d302e6331763002000000050000007472616365030000",
        "00616263040000007479706506000000696e736572740a00000000010203040506070809",
    );
    const GOLDEN_FIRST_RETAINED: &str = "2\n";

    fn golden_batches() -> Vec<Vec<OutgoingMessage>> {
        vec![
            vec![
                OutgoingMessage {
                    subject: "fv-dml-0.c1v0".into(),
                    payload: Bytes::from_static(b"hello"),
                    headers: vec![("k".into(), "v".into())],
                },
                OutgoingMessage::new("fv-dml-0.tt", Bytes::new()),
            ],
            vec![OutgoingMessage {
                subject: "fv-dml-0.c1v0".into(),
                payload: Bytes::from((0u8..10).collect::<Vec<_>>()),
                headers: vec![("trace".into(), "abc".into()), ("type".into(), "insert".into())],
            }],
        ]
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn files_of_the_original_format_open_and_are_reproduced() {
        // This build writes the same bytes.
        let dir = TempDir::new().expect("tempdir");
        let broker = open(dir.path());
        broker.ensure_topic(GOLDEN_TOPIC).await.expect("ensure");
        let mut positions = Vec::new();
        for batch in golden_batches() {
            positions.extend(broker.produce(GOLDEN_TOPIC, batch).await.expect("produce"));
        }
        assert_eq!(positions, vec![1, 2, 3]);
        broker.truncate(GOLDEN_TOPIC, 2).await.expect("truncate");
        let topic_dir = broker.topic_dir(GOLDEN_TOPIC);
        drop(broker);
        let segment = fs::read(topic_dir.join(GOLDEN_SEGMENT_NAME)).expect("segment");
        assert_eq!(hex(&segment), GOLDEN_SEGMENT, "segment bytes changed");
        let first = fs::read_to_string(topic_dir.join("first_retained")).expect("first_retained");
        assert_eq!(first, GOLDEN_FIRST_RETAINED);

        // Files written by the original code open and read back as produced.
        let dir = TempDir::new().expect("tempdir");
        let topic_dir = dir.path().join(GOLDEN_TOPIC);
        fs::create_dir_all(&topic_dir).expect("mkdir");
        fs::write(topic_dir.join(GOLDEN_SEGMENT_NAME), unhex(GOLDEN_SEGMENT)).expect("write segment");
        fs::write(topic_dir.join("first_retained"), GOLDEN_FIRST_RETAINED).expect("write first_retained");
        let broker = open(dir.path());
        assert_eq!(broker.topics().await.expect("topics"), vec![GOLDEN_TOPIC.to_string()]);
        assert_eq!(broker.first_retained(GOLDEN_TOPIC).expect("topic"), 2);
        assert_eq!(broker.latest_position(GOLDEN_TOPIC).await.expect("latest"), 3);
        let got = read_all(&broker, GOLDEN_TOPIC, SubjectFilter::All, 2).await;
        let expected: Vec<OutgoingMessage> = golden_batches().into_iter().flatten().skip(1).collect();
        for (m, e) in got.iter().zip(&expected) {
            assert_eq!((&m.subject, &m.payload, &m.headers), (&e.subject, &e.payload, &e.headers));
        }
        assert_eq!(got.iter().map(|m| m.position).collect::<Vec<_>>(), vec![2, 3]);
        let next = broker.produce(GOLDEN_TOPIC, vec![OutgoingMessage::new("fv-dml-0.x", "4")]).await.expect("produce");
        assert_eq!(next, vec![4]);
    }
}
