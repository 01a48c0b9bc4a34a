//! The conformance suite every [`ObjectStore`] implementation must pass.
//!
//! Each function takes the store and a `prefix` (ending with `/`); every key it touches
//! starts with `prefix`, so the suite can run against a real bucket shared with other
//! tests at the same time. Call [`run_all`] with a fresh prefix per run.

use bytes::Bytes;

use crate::{ObjectMeta, ObjectStore, ObjectStoreError};

/// Size of the large object in [`put_get_round_trip`].
pub const LARGE_OBJECT_BYTES: usize = 5 << 20;

/// Deterministic, position-dependent content (so misplaced ranges are caught).
pub fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)).to_le_bytes()[0] ^ (i >> 8) as u8)
        .collect()
}

async fn put(store: &dyn ObjectStore, key: &str, data: Bytes) {
    store.put(key, data).await.unwrap_or_else(|error| panic!("put {key}: {error}"));
}

async fn get(store: &dyn ObjectStore, key: &str) -> Bytes {
    store.get(key).await.unwrap_or_else(|error| panic!("get {key}: {error}"))
}

async fn list_keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let objects = store.list(prefix).await.unwrap_or_else(|error| panic!("list {prefix}: {error}"));
    objects.into_iter().map(|object| object.key).collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, key: &str) {
    match result {
        Err(ObjectStoreError::NotFound { key: reported }) => assert_eq!(reported, key),
        other => panic!("expected NotFound for {key}, got {other:?}"),
    }
}

/// Put/get of small, empty and large (5 MiB) objects, and overwrite.
pub async fn put_get_round_trip(store: &dyn ObjectStore, prefix: &str) {
    let small = format!("{prefix}small");
    put(store, &small, Bytes::from_static(b"hello")).await;
    assert_eq!(get(store, &small).await, Bytes::from_static(b"hello"));

    let empty = format!("{prefix}empty");
    put(store, &empty, Bytes::new()).await;
    assert!(get(store, &empty).await.is_empty());
    assert_eq!(store.head(&empty).await.expect("head"), Some(ObjectMeta { key: empty.clone(), size: 0 }));

    let large = format!("{prefix}nested/dir/large.bin");
    let data = pattern(LARGE_OBJECT_BYTES, 7);
    put(store, &large, data.clone()).await;
    let got = get(store, &large).await;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the large object reads back identically");

    // Overwrite replaces the whole object, including with a shorter one.
    put(store, &large, Bytes::from_static(b"short")).await;
    assert_eq!(get(store, &large).await, Bytes::from_static(b"short"));
    assert_eq!(store.head(&large).await.expect("head").map(|meta| meta.size), Some(5));
    put(store, &small, pattern(1000, 1)).await;
    assert_eq!(get(store, &small).await, pattern(1000, 1));
}

/// Reads, heads and ranges of absent objects.
pub async fn not_found(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}missing");
    assert_not_found(store.get(&key).await, &key);
    assert_not_found(store.get_range(&key, 0..1).await, &key);
    assert_eq!(store.head(&key).await.expect("head"), None);
    // A "directory" of other objects is not an object.
    put(store, &format!("{prefix}dir/child"), Bytes::from_static(b"x")).await;
    let dir = format!("{prefix}dir");
    assert_not_found(store.get(&dir).await, &dir);
    assert_eq!(store.head(&dir).await.expect("head"), None);
}

/// Range reads: middle, to the end, clamped, empty, invalid.
pub async fn ranges(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}ranged");
    let data = pattern(10_000, 3);
    put(store, &key, data.clone()).await;
    let range = |r: std::ops::Range<u64>| store.get_range(&key, r);

    assert_eq!(range(100..200).await.expect("middle"), data.slice(100..200));
    assert_eq!(range(0..10_000).await.expect("whole"), data);
    assert_eq!(range(9_000..10_000).await.expect("to the end"), data.slice(9_000..));
    assert_eq!(range(9_990..20_000).await.expect("clamped"), data.slice(9_990..));
    assert_eq!(range(0..u64::MAX).await.expect("clamped whole"), data);
    assert!(range(500..500).await.expect("empty range").is_empty());
    assert!(range(10_000..10_010).await.expect("start at the end").is_empty());
    match range(10_001..10_002).await {
        Err(ObjectStoreError::InvalidRange { start: 10_001, size: 10_000, .. }) => {}
        other => panic!("expected InvalidRange for a start beyond the end, got {other:?}"),
    }

    let empty = format!("{prefix}empty");
    put(store, &empty, Bytes::new()).await;
    assert!(store.get_range(&empty, 0..10).await.expect("range of an empty object").is_empty());
    assert!(matches!(store.get_range(&empty, 1..2).await, Err(ObjectStoreError::InvalidRange { .. })));
}

/// head reports sizes; list orders keys, matches plain string prefixes, includes nested keys.
pub async fn head_and_list(store: &dyn ObjectStore, prefix: &str) {
    let keys = ["b/c/d", "a", "b/a", "ba", "b-x", "b/e", "c/d/e/f"];
    for (i, key) in keys.iter().enumerate() {
        put(store, &format!("{prefix}{key}"), pattern(i * 10, 0)).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let key = format!("{prefix}{key}");
        assert_eq!(store.head(&key).await.expect("head"), Some(ObjectMeta { key, size: (i * 10) as u64 }));
    }
    let full = |names: &[&str]| names.iter().map(|name| format!("{prefix}{name}")).collect::<Vec<_>>();

    let listed = store.list(prefix).await.expect("list");
    assert_eq!(
        listed.iter().map(|object| object.key.clone()).collect::<Vec<_>>(),
        full(&["a", "b-x", "b/a", "b/c/d", "b/e", "ba", "c/d/e/f"]),
        "every key, nested ones included, in byte order"
    );
    for object in &listed {
        let index = keys.iter().position(|key| format!("{prefix}{key}") == object.key).expect("listed key was put");
        assert_eq!(object.size, (index * 10) as u64, "list reports sizes");
    }
    // A prefix is a plain string prefix, not a directory.
    assert_eq!(list_keys(store, &format!("{prefix}b/")).await, full(&["b/a", "b/c/d", "b/e"]));
    assert_eq!(list_keys(store, &format!("{prefix}b")).await, full(&["b-x", "b/a", "b/c/d", "b/e", "ba"]));
    assert_eq!(list_keys(store, &format!("{prefix}b/c")).await, full(&["b/c/d"]));
    assert_eq!(list_keys(store, &format!("{prefix}c/d")).await, full(&["c/d/e/f"]));
    assert_eq!(list_keys(store, &format!("{prefix}c/d/e/f")).await, full(&["c/d/e/f"]));
    assert!(list_keys(store, &format!("{prefix}c/d/e/f/")).await.is_empty());
    assert!(list_keys(store, &format!("{prefix}zzz")).await.is_empty());
    assert!(list_keys(store, &format!("{prefix}nothing/here/")).await.is_empty());
}

/// Deleting absent keys succeeds; a deleted object is gone; delete_prefix counts.
pub async fn delete_semantics(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}x/y/z");
    store.delete(&key).await.expect("delete of an absent key");
    put(store, &key, Bytes::from_static(b"z")).await;
    store.delete(&key).await.expect("delete");
    assert_not_found(store.get(&key).await, &key);
    assert_eq!(store.head(&key).await.expect("head"), None);
    store.delete(&key).await.expect("delete again");
    assert!(list_keys(store, prefix).await.is_empty());
    // The key can be written again after its directories were cleaned up.
    put(store, &key, Bytes::from_static(b"again")).await;
    assert_eq!(get(store, &key).await, Bytes::from_static(b"again"));
    store.delete(&key).await.expect("delete");

    for name in ["dp/a", "dp/b/c", "dp/b/d", "dpx", "dq"] {
        put(store, &format!("{prefix}{name}"), Bytes::from_static(b"1")).await;
    }
    assert_eq!(store.delete_prefix(&format!("{prefix}dp/")).await.expect("delete_prefix"), 3);
    assert_eq!(list_keys(store, prefix).await, vec![format!("{prefix}dpx"), format!("{prefix}dq")]);
    assert_eq!(store.delete_prefix(&format!("{prefix}dp/")).await.expect("delete_prefix again"), 0);
    assert_eq!(store.delete_prefix(&format!("{prefix}d")).await.expect("delete_prefix"), 2);
    assert!(list_keys(store, prefix).await.is_empty());
    // The deleted paths can be reused for objects.
    put(store, &format!("{prefix}dp"), Bytes::from_static(b"file where a directory was")).await;
    assert_eq!(store.delete_prefix(prefix).await.expect("delete_prefix"), 1);
}

/// Concurrent puts of different keys (some sharing new directories) all land.
pub async fn concurrent_puts(store: &dyn ObjectStore, prefix: &str) {
    const OBJECTS: usize = 32;
    let key = |i: usize| format!("{prefix}shard-{}/object-{i:03}", i % 4);
    futures::future::join_all((0..OBJECTS).map(|i| async move {
        put(store, &key(i), pattern(1000 + i, i as u8)).await;
    }))
    .await;
    for i in 0..OBJECTS {
        assert_eq!(get(store, &key(i)).await, pattern(1000 + i, i as u8));
    }
    assert_eq!(store.list(prefix).await.expect("list").len(), OBJECTS);
    // Concurrent puts and deletes under the same directories.
    futures::future::join_all((0..OBJECTS).map(|i| async move {
        if i % 2 == 0 {
            store.delete(&key(i)).await.expect("delete");
        } else {
            put(store, &key(i), Bytes::from_static(b"rewritten")).await;
        }
    }))
    .await;
    let listed = list_keys(store, prefix).await;
    let mut expected: Vec<String> = (0..OBJECTS).filter(|i| i % 2 == 1).map(key).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.delete_prefix(prefix).await.expect("delete_prefix"), (OBJECTS / 2) as u64);
}

/// Runs the whole suite, each test under its own sub-prefix of `prefix`.
pub async fn run_all(store: &dyn ObjectStore, prefix: &str) {
    let sub = |name: &str| format!("{prefix}{name}/");
    put_get_round_trip(store, &sub("put_get_round_trip")).await;
    not_found(store, &sub("not_found")).await;
    ranges(store, &sub("ranges")).await;
    head_and_list(store, &sub("head_and_list")).await;
    delete_semantics(store, &sub("delete_semantics")).await;
    concurrent_puts(store, &sub("concurrent_puts")).await;
    // Leave a shared bucket clean: this also deletes a deep tree of leftovers in one go.
    let left = store.list(prefix).await.expect("list").len() as u64;
    assert!(left > 0);
    assert_eq!(store.delete_prefix(prefix).await.expect("delete_prefix"), left);
    assert!(store.list(prefix).await.expect("list").is_empty());
}
