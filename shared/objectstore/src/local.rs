//! [`ObjectStore`] over a local directory (standalone mode and tests).
//!
//! An object with key `a/b/c` is the file `<root>/a/b/c`. A put writes the data to a
//! temporary file under `<root>/.tmp/`, fsyncs it, renames it over the target and fsyncs
//! the target's directory (and the parents of any directory it had to create), so a
//! reader sees the old or the new object, never a mix, and an acknowledged put survives
//! a crash. `.tmp` is reserved: it is not a valid first key segment and never listed.
//! Deletes remove directories left empty (never the root).
//!
//! A key cannot be both an object and a "directory" of other objects (`a/b` and
//! `a/b/c`): unlike S3, a file system cannot hold both; such a put fails with
//! [`ObjectStoreError::InvalidKey`].

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::{ObjectMeta, ObjectStore, ObjectStoreError, Result};

/// Reserved directory (directly under the root) for in-flight puts.
pub const TMP_DIR: &str = ".tmp";
/// Temporary files older than this found at open are leftovers of a crash.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);
/// Attempts of a put racing with a delete that removes the directory it is writing into.
const PUT_ATTEMPTS: usize = 8;

/// Distinguishes temporary files of concurrent puts (across instances in one process).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An object store in a local directory. See the [module docs](self).
#[derive(Debug)]
pub struct LocalObjectStore {
    root: PathBuf,
}

impl LocalObjectStore {
    /// Opens (creating if needed) the store rooted at `root`, and removes temporary
    /// files that crashed puts left behind.
    pub fn open(root: &Path) -> Result<Arc<LocalObjectStore>> {
        fs::create_dir_all(root).map_err(io_error(root))?;
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
        let removed = remove_stale_tmp_files(&tmp)?;
        info!(root = %root.display(), removed_tmp_files = removed, "opened local object store");
        Ok(Arc::new(LocalObjectStore { root: root.to_owned() }))
    }

    /// The directory holding the objects.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> ObjectStoreError + '_ {
    move |source| ObjectStoreError::Io { path: path.to_owned(), source }
}

fn invalid_key(key: &str, reason: impl Into<String>) -> ObjectStoreError {
    ObjectStoreError::InvalidKey { key: key.to_owned(), reason: reason.into() }
}

/// Checks that `key` is a non-empty relative `/`-separated path with no empty, `.`
/// or `..` segments, no backslash or NUL, and not under the reserved `.tmp` directory.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(invalid_key(key, "empty key"));
    }
    if key.contains('\\') || key.contains('\0') {
        return Err(invalid_key(key, "contains a backslash or NUL"));
    }
    if key.starts_with('/') {
        return Err(invalid_key(key, "must be relative"));
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err(invalid_key(key, "empty path segment")),
            "." | ".." => return Err(invalid_key(key, "`.` and `..` segments are not allowed")),
            _ => {}
        }
    }
    if key.split('/').next() == Some(TMP_DIR) {
        return Err(invalid_key(key, "`.tmp` is reserved"));
    }
    Ok(())
}

/// True for "not there" errors, including a path component that is a file.
fn is_absent(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// fsyncs a directory, unless a concurrent delete removed it (then there is nothing
/// left to make durable).
fn sync_dir_if_exists(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(file) => file.sync_all().map_err(io_error(dir)),
        Err(error) if is_absent(&error) => Ok(()),
        Err(source) => Err(ObjectStoreError::Io { path: dir.to_owned(), source }),
    }
}

fn remove_stale_tmp_files(tmp: &Path) -> Result<usize> {
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in fs::read_dir(tmp).map_err(io_error(tmp))? {
        let entry = entry.map_err(io_error(tmp))?;
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let age = meta.modified().ok().and_then(|modified| now.duration_since(modified).ok());
        if age.is_some_and(|age| age >= STALE_TMP_AGE) {
            let result = if meta.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            match result {
                Ok(()) => removed += 1,
                Err(error) => warn!(path = %path.display(), %error, "could not remove a stale temporary file"),
            }
        }
    }
    Ok(removed)
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|error| ObjectStoreError::Unavailable { reason: format!("file-system task failed: {error}") })?
}

/// Creates the missing directories between `root` and `dir`; fsyncs the parent of each
/// one it created, so the new entries are durable. Returns false when a concurrent
/// delete removed a directory on the way (the caller retries).
fn create_dirs(root: &Path, dir: &Path, key: &str) -> Result<bool> {
    let relative = dir.strip_prefix(root).unwrap_or(dir);
    let mut current = root.to_owned();
    for component in relative.components() {
        let parent = current.clone();
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => sync_dir_if_exists(&parent)?,
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => match fs::metadata(&current) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    let prefix = current.strip_prefix(root).unwrap_or(&current).display().to_string();
                    return Err(invalid_key(key, format!("{prefix} is an object, so it cannot hold other objects")));
                }
                // Removed by a concurrent delete since create_dir saw it.
                Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(source) => return Err(ObjectStoreError::Io { path: current, source }),
            },
            Err(error) if error.kind() == io::ErrorKind::NotADirectory => {
                return Err(invalid_key(key, "a parent path is an object, so it cannot hold other objects"));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(ObjectStoreError::Io { path: current, source }),
        }
    }
    Ok(true)
}

fn put_blocking(root: &Path, key: &str, data: &[u8]) -> Result<()> {
    let target = root.join(key);
    let parent = target.parent().expect("an object path is below the root").to_owned();
    if target.is_dir() {
        return Err(invalid_key(key, "other objects are stored under this key as a prefix"));
    }
    let tmp =
        root.join(TMP_DIR).join(format!("{}-{}.tmp", std::process::id(), TMP_COUNTER.fetch_add(1, Ordering::Relaxed)));
    let written = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(ObjectStoreError::Io { path: tmp, source });
    }
    // A concurrent delete may remove the (still empty) directories we create before the
    // rename lands in them: then create them again.
    let mut attempt = 0;
    let renamed = loop {
        attempt += 1;
        let raced = match create_dirs(root, &parent, key) {
            Ok(true) => match fs::rename(&tmp, &target) {
                Ok(()) => break Ok(()),
                Err(error) if error.kind() == io::ErrorKind::NotFound => true,
                Err(error)
                    if matches!(error.kind(), io::ErrorKind::IsADirectory | io::ErrorKind::DirectoryNotEmpty) =>
                {
                    break Err(invalid_key(key, "other objects are stored under this key as a prefix"));
                }
                Err(source) => break Err(ObjectStoreError::Io { path: target.clone(), source }),
            },
            Ok(false) => true,
            Err(error) => break Err(error),
        };
        if raced && attempt >= PUT_ATTEMPTS {
            break Err(ObjectStoreError::Io {
                path: parent.clone(),
                source: io::Error::new(io::ErrorKind::NotFound, "directory kept disappearing (concurrent deletes)"),
            });
        }
    };
    if let Err(error) = renamed {
        let _ = fs::remove_file(&tmp);
        return Err(error);
    }
    // Once renamed the directory is not empty, unless the object was deleted meanwhile.
    sync_dir_if_exists(&parent)
}

fn open_object(root: &Path, key: &str) -> Result<(File, u64)> {
    let path = root.join(key);
    let not_found = || ObjectStoreError::NotFound { key: key.to_owned() };
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(error) if is_absent(&error) => return Err(not_found()),
        Err(source) => return Err(ObjectStoreError::Io { path, source }),
    };
    let meta = file.metadata().map_err(io_error(&path))?;
    if !meta.is_file() {
        return Err(not_found());
    }
    Ok((file, meta.len()))
}

fn read_exact_at(file: &mut File, path: &Path, start: u64, len: u64) -> Result<Bytes> {
    let len = usize::try_from(len).map_err(|_| ObjectStoreError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::OutOfMemory, "range does not fit in memory"),
    })?;
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(start)).map_err(io_error(path))?;
    file.read_exact(&mut buf).map_err(io_error(path))?;
    Ok(Bytes::from(buf))
}

/// Removes `dir` and its parents while they are empty, stopping at `root`.
fn remove_empty_dirs(root: &Path, mut dir: &Path) {
    while dir != root && dir.starts_with(root) {
        if fs::remove_dir(dir).is_err() {
            // Not empty (the usual case), already gone, or in use by a concurrent put.
            break;
        }
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
}

/// Deletes one object file; true if it existed. Does not sync or clean up directories.
fn remove_object(root: &Path, key: &str) -> Result<bool> {
    let path = root.join(key);
    match fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(error) if is_absent(&error) || error.kind() == io::ErrorKind::IsADirectory => Ok(false),
        Err(source) => Err(ObjectStoreError::Io { path, source }),
    }
}

/// The directory to walk for `prefix` (the part up to its last `/`), or None when no
/// valid key can start with `prefix`.
fn listing_dir(prefix: &str) -> Option<&str> {
    let dir = match prefix.rfind('/') {
        Some(end) => &prefix[..end],
        None => return Some(""),
    };
    validate_key(dir).ok().map(|()| dir)
}

fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<ObjectMeta>> {
    let Some(dir) = listing_dir(prefix) else { return Ok(Vec::new()) };
    let mut objects = Vec::new();
    let start = if dir.is_empty() { root.to_owned() } else { root.join(dir) };
    let mut pending = vec![(start, dir.to_owned())];
    while let Some((path, key_prefix)) = pending.pop() {
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(error) if is_absent(&error) => continue,
            Err(source) => return Err(ObjectStoreError::Io { path, source }),
        };
        for entry in entries {
            let entry = entry.map_err(io_error(&path))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                warn!(path = %entry.path().display(), "skipping a file whose name is not UTF-8");
                continue;
            };
            if key_prefix.is_empty() && name == TMP_DIR {
                continue;
            }
            let key = if key_prefix.is_empty() { name } else { format!("{key_prefix}/{name}") };
            // Follows symlinks; an entry removed meanwhile is skipped.
            let meta = match fs::metadata(entry.path()) {
                Ok(meta) => meta,
                Err(error) if is_absent(&error) => continue,
                Err(source) => return Err(ObjectStoreError::Io { path: entry.path(), source }),
            };
            if meta.is_dir() {
                // Only descend where keys can still match the prefix.
                let dir_key = format!("{key}/");
                if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                    pending.push((entry.path(), key));
                }
            } else if meta.is_file() && key.starts_with(prefix) {
                objects.push(ObjectMeta { key, size: meta.len() });
            }
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(objects)
}

#[async_trait]
impl ObjectStore for LocalObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        let size = data.len();
        blocking(move || put_blocking(&root, &key, &data).map(|()| debug!(key, size, "put object"))).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        let path = self.path(key);
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || {
            let (mut file, size) = open_object(&root, &key)?;
            read_exact_at(&mut file, &path, 0, size)
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        let path = self.path(key);
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || {
            let (mut file, size) = open_object(&root, &key)?;
            if range.start > size || range.end < range.start {
                return Err(ObjectStoreError::InvalidRange { key, start: range.start, end: range.end, size });
            }
            let end = range.end.min(size);
            read_exact_at(&mut file, &path, range.start, end - range.start)
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        validate_key(key)?;
        let path = self.path(key);
        let key = key.to_owned();
        blocking(move || match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta { key, size: meta.len() })),
            Ok(_) => Ok(None),
            Err(error) if is_absent(&error) => Ok(None),
            Err(source) => Err(ObjectStoreError::Io { path, source }),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || list_blocking(&root, &prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let (root, key) = (self.root.clone(), key.to_owned());
        blocking(move || {
            if remove_object(&root, &key)? {
                let path = root.join(&key);
                let parent = path.parent().expect("an object path is below the root");
                sync_dir_if_exists(parent)?;
                remove_empty_dirs(&root, parent);
                debug!(key, "deleted object");
            }
            Ok(())
        })
        .await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let (root, prefix) = (self.root.clone(), prefix.to_owned());
        blocking(move || {
            let objects = list_blocking(&root, &prefix)?;
            let mut deleted = 0;
            let mut dirs = std::collections::BTreeSet::new();
            for object in &objects {
                if remove_object(&root, &object.key)? {
                    deleted += 1;
                    let path = root.join(&object.key);
                    dirs.insert(path.parent().expect("an object path is below the root").to_owned());
                }
            }
            // Deepest directories first, so parents can become empty in turn.
            for dir in dirs.iter().rev() {
                sync_dir_if_exists(dir)?;
                remove_empty_dirs(&root, dir);
            }
            debug!(prefix, deleted, "deleted objects by prefix");
            Ok(deleted)
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        testsuite::run_all(store.as_ref(), "suite/").await;
        // Everything the suite wrote was deleted again, directories included.
        let left: Vec<_> =
            fs::read_dir(dir.path()).expect("read root").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(TMP_DIR)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn invalid_keys_are_rejected() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        let outside = dir.path().join("..").join("escaped");
        for key in [
            "",
            "/abs",
            "a//b",
            "a/",
            "./a",
            "a/./b",
            "..",
            "../escaped",
            "a/../../escaped",
            "a\\b",
            "a\0b",
            ".tmp",
            ".tmp/x",
        ] {
            let data = Bytes::from_static(b"x");
            assert!(matches!(store.put(key, data).await, Err(ObjectStoreError::InvalidKey { .. })), "put {key:?}");
            assert!(matches!(store.get(key).await, Err(ObjectStoreError::InvalidKey { .. })), "get {key:?}");
            assert!(matches!(store.get_range(key, 0..1).await, Err(ObjectStoreError::InvalidKey { .. })));
            assert!(matches!(store.head(key).await, Err(ObjectStoreError::InvalidKey { .. })), "head {key:?}");
            assert!(matches!(store.delete(key).await, Err(ObjectStoreError::InvalidKey { .. })), "delete {key:?}");
        }
        assert!(!outside.exists());
        // Names that merely look special are fine.
        for key in ["..a", "a..", ".hidden", "a/.b", ".tmpx/y", "x/.tmp"] {
            store.put(key, Bytes::from_static(b"ok")).await.expect(key);
            assert_eq!(store.get(key).await.expect(key), Bytes::from_static(b"ok"));
        }
        // Listing prefixes that no valid key can have is simply empty.
        for prefix in ["../", "/", "a//", ".tmp/"] {
            assert!(store.list(prefix).await.expect(prefix).is_empty(), "list {prefix:?}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn object_and_prefix_conflicts_are_invalid_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        store.put("a/b", Bytes::from_static(b"file")).await.expect("put");
        assert!(matches!(store.put("a/b/c", Bytes::new()).await, Err(ObjectStoreError::InvalidKey { .. })));
        assert!(matches!(store.put("a", Bytes::new()).await, Err(ObjectStoreError::InvalidKey { .. })));
        assert!(matches!(store.get("a/b/c").await, Err(ObjectStoreError::NotFound { .. })));
        store.delete("a/b/c").await.expect("delete below a file is a no-op");
        store.delete("a").await.expect("delete of a directory is a no-op");
        assert_eq!(store.get("a/b").await.expect("get"), Bytes::from_static(b"file"));
        assert_eq!(fs::read_dir(dir.path().join(TMP_DIR)).expect("tmp").count(), 0, "failed puts clean up");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn temp_files_are_invisible_and_stale_ones_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        store.put("x", Bytes::from_static(b"1")).await.expect("put");
        // An in-flight put (fresh) and a crashed one (old).
        let tmp = dir.path().join(TMP_DIR);
        fs::write(tmp.join("inflight.tmp"), b"partial").expect("write");
        let stale = tmp.join("crashed.tmp");
        fs::write(&stale, b"partial").expect("write");
        let old = SystemTime::now() - STALE_TMP_AGE - Duration::from_secs(60);
        File::options().write(true).open(&stale).expect("open").set_modified(old).expect("set mtime");

        let listed: Vec<_> = store.list("").await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(listed, ["x"]);
        assert!(store.list(".t").await.expect("list").is_empty());
        assert_eq!(store.delete_prefix("").await.expect("delete_prefix"), 1);
        assert!(tmp.join("inflight.tmp").exists(), "delete_prefix does not touch temp files");

        drop(store);
        let _store = LocalObjectStore::open(dir.path()).expect("reopen");
        assert!(!stale.exists(), "stale temp files are removed at open");
        assert!(tmp.join("inflight.tmp").exists(), "recent temp files may belong to a live put");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        let data = testsuite::pattern(100_000, 9);
        store.put("insert_log/1/2/3/100/1", data.clone()).await.expect("put");
        store.put("stats_log/1/2/3/100/1", Bytes::from_static(b"stats")).await.expect("put");
        drop(store);
        let store = LocalObjectStore::open(dir.path()).expect("reopen");
        assert_eq!(store.get("insert_log/1/2/3/100/1").await.expect("get"), data);
        assert_eq!(store.list("").await.expect("list").len(), 2);
        assert_eq!(store.kind(), "local");
        assert_eq!(store.root(), dir.path());
    }

    /// Puts racing with deletes that remove the directories the puts are creating.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn puts_and_deletes_race_on_shared_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        let tasks: Vec<_> = (0..4)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let key = format!("deep/a/b/c/{task}-{i}");
                        store.put(&key, Bytes::from_static(b"x")).await.expect("put");
                        assert_eq!(store.get(&key).await.expect("get"), Bytes::from_static(b"x"));
                        store.delete(&key).await.expect("delete");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert!(store.list("").await.expect("list").is_empty());
        assert!(!dir.path().join("deep").exists(), "empty directories were removed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_never_see_partial_objects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjectStore::open(dir.path()).expect("open");
        let (old, new) = (Bytes::from(vec![1u8; 1 << 20]), Bytes::from(vec![2u8; 2 << 20]));
        store.put("obj", old.clone()).await.expect("put");
        let writer = {
            let store = store.clone();
            let (old, new) = (old.clone(), new.clone());
            tokio::spawn(async move {
                for i in 0..20 {
                    store.put("obj", if i % 2 == 0 { new.clone() } else { old.clone() }).await.expect("put");
                }
            })
        };
        while !writer.is_finished() {
            let got = store.get("obj").await.expect("get");
            assert!(got == old || got == new, "a reader saw a mix of {} bytes", got.len());
        }
        writer.await.expect("writer");
    }
}
