//! The directory of a store: its lock, and making changes to its entries durable.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::WalError;

/// Name of the lock file inside a store's directory.
pub const LOCK_FILE: &str = "LOCK";

/// Exclusive use of a store directory, held for as long as the value lives.
///
/// The lock is an advisory `flock` on `<dir>/LOCK`, so it is released by the kernel when
/// the process dies, however it dies: a crash never leaves a stale lock behind. The lock
/// belongs to the open file, so a second [`DirLock::acquire`] fails even within the
/// process that holds the first.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (which must exist), creating `LOCK` if needed. Fails with
    /// [`WalError::Locked`] when another open store holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, WalError> {
        let path = dir.join(LOCK_FILE);
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(WalError::io(&path))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(fs::TryLockError::WouldBlock) => Err(WalError::Locked { path }),
            Err(fs::TryLockError::Error(source)) => Err(WalError::Io { path, source }),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Makes the creation, removal or renaming of entries in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A failed [`replace_file`], telling whether the target was replaced.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Writing or renaming the temporary file failed: the target is unchanged (and the
    /// temporary file removed, as far as possible).
    #[error("cannot replace {path}: {source}")]
    NotReplaced {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The target holds the new contents, but the directory fsync failed, so a power loss
    /// may still bring the old contents back.
    #[error("replaced {path} but cannot sync its directory: {source}")]
    NotDurable {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<ReplaceError> for WalError {
    fn from(e: ReplaceError) -> Self {
        match e {
            ReplaceError::NotReplaced { path, source } | ReplaceError::NotDurable { path, source } => {
                WalError::Io { path, source }
            }
        }
    }
}

/// Replaces the file at `path` with `contents` atomically and durably: writes
/// `<path>.tmp`, fsyncs it, renames it over `path` and fsyncs the directory. Readers (and
/// a crash at any point) see either the old or the new contents, never a mix. A leftover
/// `<path>.tmp` from a crash is the caller's to remove when it opens the directory.
pub fn replace_file(path: &Path, contents: &[u8]) -> Result<(), ReplaceError> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = written {
        // Best effort: a leftover is removed on the next open anyway.
        let _ = fs::remove_file(&tmp);
        return Err(ReplaceError::NotReplaced { path: path.to_owned(), source });
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    sync_dir(dir).map_err(|source| ReplaceError::NotDurable { path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = DirLock::acquire(dir.path()).expect("first lock");
        assert_eq!(first.path(), dir.path().join(LOCK_FILE));
        match DirLock::acquire(dir.path()) {
            Err(WalError::Locked { path }) => assert_eq!(path, dir.path().join(LOCK_FILE)),
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(first);
        DirLock::acquire(dir.path()).expect("free again once the first lock is dropped");
    }

    #[test]
    fn a_lock_in_a_missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(DirLock::acquire(&dir.path().join("missing")), Err(WalError::Io { .. })));
    }

    #[test]
    fn replace_file_swaps_contents_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("first_retained");
        replace_file(&path, b"1\n").expect("create");
        replace_file(&path, b"42\n").expect("replace");
        assert_eq!(fs::read(&path).expect("read"), b"42\n");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("first_retained")]);
    }

    #[test]
    fn a_failed_replace_leaves_the_target_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        // The target is a non-empty directory: the rename fails after the temp file was written.
        let path = dir.path().join("target");
        fs::create_dir(&path).expect("mkdir");
        fs::write(path.join("inside"), b"x").expect("write");
        match replace_file(&path, b"new") {
            Err(ReplaceError::NotReplaced { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected NotReplaced, got {other:?}"),
        }
        assert!(path.join("inside").exists());
        assert!(!dir.path().join("target.tmp").exists(), "the temp file is removed");
    }
}
