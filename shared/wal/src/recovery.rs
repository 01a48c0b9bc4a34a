//! Reading a file of frames back after a restart, and repairing a torn tail.
//!
//! A crash in the middle of an append leaves the end of the last file damaged: a partial
//! header, a partial body, or (when the file size reached the disk before the data) a run
//! of zeroes. None of it was acknowledged, because callers are answered only after the
//! fdatasync that follows the write, so it is cut off. Damage anywhere else means
//! acknowledged data is unreadable, and recovery refuses to guess: a bad frame in an
//! older file, or a bad frame followed by a valid one, is [`WalError::Corrupt`].

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use tracing::warn;

use crate::{FrameError, FrameFormat, WalError};

/// What [`recover`] may do about damage at the end of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TornTail {
    /// The file is the last one written: damage with no valid frame after it is a torn
    /// write and is truncated away.
    Truncate,
    /// Older files were complete and synced before a newer one was started: any damage is
    /// corruption.
    Refuse,
}

/// The result of [`recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Offset just past the last valid frame: the length of the file after any repair, and
    /// where the next append goes.
    pub end: u64,
    /// Number of valid frames.
    pub frames: u64,
    /// Set when a torn tail was cut off.
    pub truncated: Option<Truncated>,
}

/// A torn tail that [`recover`] cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncated {
    /// Where the damage started (the new file length).
    pub offset: u64,
    /// Bytes removed.
    pub dropped_bytes: u64,
    /// What was wrong with the frame at `offset`.
    pub reason: FrameError,
}

/// Reads the frames of `path` from offset `start` (after the caller's file header, if any)
/// to the end, calling `on_frame(offset, frame)` for each valid one, in order.
///
/// Damage is handled as `tail` says (see [`TornTail`]). An error from `on_frame` (the
/// caller's own checks: sequence numbers, body structure) stops the scan and is returned
/// as is: a frame whose checksum is valid is what was written, so refusing it is never a
/// torn write.
pub fn recover<E: From<WalError>>(
    format: &FrameFormat,
    path: &Path,
    start: u64,
    tail: TornTail,
    mut on_frame: impl FnMut(u64, crate::Frame<'_>) -> Result<(), E>,
) -> Result<Scan, E> {
    let io_err = |source: io::Error| WalError::Io { path: path.to_owned(), source };
    let corrupt = |offset: u64, reason: String| WalError::Corrupt { path: path.to_owned(), offset, reason };
    let mut file = File::open(path).map_err(io_err)?;
    let file_len = file.metadata().map_err(io_err)?.len();
    if start > file_len {
        return Err(corrupt(0, format!("file of {file_len} bytes is shorter than its {start}-byte header")).into());
    }
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let header_len = format.header_len();
    let mut offset = start;
    let mut frames = 0u64;
    let mut frame = Vec::new();

    let damage: Option<(u64, FrameError)> = loop {
        let left = file_len - offset;
        if left == 0 {
            break None;
        }
        if left < header_len as u64 {
            break Some((offset, FrameError::IncompleteHeader { available: left, needed: header_len }));
        }
        frame.resize(header_len, 0);
        reader.read_exact(&mut frame).map_err(io_err)?;
        let header = match format.parse_header(&frame) {
            Ok(header) => header,
            Err(reason) => break Some((offset, reason)),
        };
        if header.frame_len > left {
            break Some((offset, FrameError::Incomplete { frame_len: header.frame_len, available: left }));
        }
        // Bounded by the file's size, checked just above.
        frame.resize(header.frame_len as usize, 0);
        reader.read_exact(&mut frame[header_len..]).map_err(io_err)?;
        if let Err(reason) = format.verify(&header, &frame) {
            break Some((offset, reason));
        }
        on_frame(offset, format.parts(&frame))?;
        frames += 1;
        offset += header.frame_len;
    };

    let Some((at, reason)) = damage else { return Ok(Scan { end: offset, frames, truncated: None }) };
    if tail == TornTail::Refuse {
        return Err(corrupt(at, reason.to_string()).into());
    }
    drop(reader);
    if let Some(valid_at) = valid_frame_after(format, path, at)? {
        return Err(corrupt(
            at,
            format!("{reason}; a valid frame follows at offset {valid_at}, so this is not a torn tail"),
        )
        .into());
    }
    let dropped_bytes = file_len - at;
    warn!(path = %path.display(), offset = at, dropped_bytes, %reason,
        "truncating the torn tail of a log file (crash during a write)");
    let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
    file.set_len(at).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(Scan { end: at, frames, truncated: Some(Truncated { offset: at, dropped_bytes, reason }) })
}

/// The offset of a complete frame with a valid checksum anywhere after `damaged_at`.
fn valid_frame_after(format: &FrameFormat, path: &Path, damaged_at: u64) -> Result<Option<u64>, WalError> {
    let io_err = |source: io::Error| WalError::Io { path: path.to_owned(), source };
    let mut file = File::open(path).map_err(io_err)?;
    file.seek(SeekFrom::Start(damaged_at + 1)).map_err(io_err)?;
    let mut rest = Vec::new();
    file.read_to_end(&mut rest).map_err(io_err)?;
    let magic = format.magic();
    let found = rest.windows(magic.len()).enumerate().find_map(|(i, window)| {
        (window == magic && format.decode(&rest[i..]).is_ok()).then_some(damaged_at + 1 + i as u64)
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use bytes::BufMut;

    use super::*;

    const FORMAT: FrameFormat = FrameFormat::new(*b"TEST").with_fixed_fields(8);
    /// A file header the scan starts after, as the meta store's log has.
    const FILE_HEADER: &[u8] = b"HEADER\0\0";

    fn frame(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let start = FORMAT.begin(&mut buf);
        buf.put_u64_le(n);
        buf.put_slice(format!("record {n} {}", "x".repeat(n as usize * 7)).as_bytes());
        FORMAT.finish(&mut buf, start).expect("finish");
        buf
    }

    /// A file of `n` frames after the header; returns it and the offset of each frame.
    fn write_file(dir: &Path, n: u64) -> (std::path::PathBuf, Vec<u64>) {
        let path = dir.join("log");
        let mut data = FILE_HEADER.to_vec();
        let mut offsets = Vec::new();
        for i in 1..=n {
            offsets.push(data.len() as u64);
            data.extend(frame(i));
        }
        fs::write(&path, &data).expect("write");
        (path, offsets)
    }

    fn scan(path: &Path, tail: TornTail) -> (Result<Scan, WalError>, Vec<(u64, u64)>) {
        let mut seen = Vec::new();
        let result = recover(&FORMAT, path, FILE_HEADER.len() as u64, tail, |offset, frame| {
            let mut fixed = frame.fixed;
            seen.push((offset, bytes::Buf::get_u64_le(&mut fixed)));
            Ok::<(), WalError>(())
        });
        (result, seen)
    }

    fn append(path: &Path, bytes: &[u8]) {
        fs::OpenOptions::new().append(true).open(path).expect("open").write_all(bytes).expect("append");
    }

    fn flip(path: &Path, offset: u64) {
        let mut data = fs::read(path).expect("read");
        data[offset as usize] ^= 0x40;
        fs::write(path, data).expect("write");
    }

    #[test]
    fn a_clean_file_is_read_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, offsets) = write_file(dir.path(), 3);
        let len = fs::metadata(&path).expect("meta").len();
        let (result, seen) = scan(&path, TornTail::Refuse);
        assert_eq!(result.expect("scan"), Scan { end: len, frames: 3, truncated: None });
        assert_eq!(seen, offsets.iter().copied().zip(1..=3).collect::<Vec<_>>());
    }

    #[test]
    fn an_empty_file_after_its_header_has_no_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = write_file(dir.path(), 0);
        let (result, seen) = scan(&path, TornTail::Truncate);
        assert_eq!(result.expect("scan"), Scan { end: FILE_HEADER.len() as u64, frames: 0, truncated: None });
        assert!(seen.is_empty());
        fs::write(&path, b"HEA").expect("shorter than the header");
        assert!(matches!(scan(&path, TornTail::Truncate).0, Err(WalError::Corrupt { offset: 0, .. })));
    }

    #[test]
    fn torn_tails_are_cut_off_in_the_last_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let whole = frame(4);
        let zeroes = vec![0u8; 4096];
        let tails: [&[u8]; 5] = [
            &whole[..3],
            &whole[..FORMAT.header_len() + 2],
            &whole[..whole.len() - 1],
            &zeroes,
            b"TEST\x10\0\0\0garbage",
        ];
        for tail in tails {
            let (path, offsets) = write_file(dir.path(), 3);
            let good = fs::metadata(&path).expect("meta").len();
            append(&path, tail);
            let (result, seen) = scan(&path, TornTail::Truncate);
            let scan = result.expect("a torn tail is repaired");
            assert_eq!((scan.end, scan.frames), (good, 3));
            let truncated = scan.truncated.expect("truncated");
            assert_eq!((truncated.offset, truncated.dropped_bytes), (good, tail.len() as u64));
            assert_eq!(fs::metadata(&path).expect("meta").len(), good, "the file was cut");
            assert_eq!(seen.len(), offsets.len());
            // Once repaired, the file scans clean.
            assert_eq!(self::scan(&path, TornTail::Refuse).0.expect("clean").truncated, None);
        }
    }

    #[test]
    fn a_torn_tail_of_an_older_file_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, _) = write_file(dir.path(), 2);
        let good = fs::metadata(&path).expect("meta").len();
        append(&path, &frame(3)[..10]);
        match scan(&path, TornTail::Refuse).0 {
            Err(WalError::Corrupt { offset, reason, .. }) => {
                assert_eq!(offset, good);
                assert!(reason.contains("incomplete frame header"), "{reason}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        assert_eq!(fs::metadata(&path).expect("meta").len(), good + 10, "nothing is cut");
    }

    #[test]
    fn damage_followed_by_a_valid_frame_is_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, offsets) = write_file(dir.path(), 3);
        let len = fs::metadata(&path).expect("meta").len();
        // A flipped body byte of the first frame, then a flipped magic of the second.
        for (offset, at) in [(offsets[0] + 20, offsets[0]), (offsets[1], offsets[1])] {
            let (path, _) = write_file(dir.path(), 3);
            flip(&path, offset);
            match scan(&path, TornTail::Truncate).0 {
                Err(WalError::Corrupt { offset, reason, .. }) => {
                    assert_eq!(offset, at);
                    assert!(reason.contains("a valid frame follows"), "{reason}");
                }
                other => panic!("expected Corrupt, got {other:?}"),
            }
            assert_eq!(fs::metadata(&path).expect("meta").len(), len, "nothing is cut");
        }
        // Damage in the last frame has nothing valid after it: a torn write.
        let (path, _) = write_file(dir.path(), 3);
        flip(&path, offsets[2] + 20);
        let scan = scan(&path, TornTail::Truncate).0.expect("repaired");
        assert_eq!((scan.end, scan.frames), (offsets[2], 2));
        assert!(matches!(scan.truncated.expect("cut").reason, FrameError::Checksum { .. }));
    }

    #[test]
    fn the_callers_refusal_stops_the_scan() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, offsets) = write_file(dir.path(), 3);
        let result = recover(&FORMAT, &path, FILE_HEADER.len() as u64, TornTail::Truncate, |offset, _| {
            if offset == offsets[1] {
                Err(WalError::Corrupt { path: path.clone(), offset, reason: "out of sequence".into() })
            } else {
                Ok(())
            }
        });
        assert!(matches!(result, Err(WalError::Corrupt { offset, .. }) if offset == offsets[1]));
        assert!(matches!(scan(&path, TornTail::Refuse).0, Ok(Scan { frames: 3, .. })), "nothing is cut");
    }

    #[test]
    fn a_missing_file_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(scan(&dir.path().join("none"), TornTail::Truncate).0, Err(WalError::Io { .. })));
    }
}
