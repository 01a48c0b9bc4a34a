//! The conformance suite every [`MetaKv`] implementation must pass.
//!
//! Each function takes the store and a `prefix`; every key it touches starts with
//! `prefix`, so the suite can run against a real etcd shared with other tests at the
//! same time. For the same reason revisions are only compared with each other (other
//! writers may bump the store revision between two of our calls), never assumed to be
//! consecutive. Lease tests poll with generous timeouts, because a real etcd rounds TTLs
//! up to whole seconds and enforces a minimum TTL.
//!
//! Call [`run_all`] from each implementation's tests, with a fresh prefix per run.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::time::{Instant, sleep, timeout};

use crate::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, MetaError, MetaKv, Revision, Txn, TxnOp, TxnOpResponse,
    WatchEvent, WatchEventKind, WatchStream,
};

/// TTL of the leases the suite grants.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long the suite waits for an expected watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the suite waits for a lease to expire (a real etcd may round TTLs up).
const EXPIRY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the suite waits to conclude that no further event comes.
const QUIET_PERIOD: Duration = Duration::from_millis(300);
/// A lease id no store hands out in these tests.
const UNKNOWN_LEASE: LeaseId = 0x7e_adbe_ef01_2345;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Next event of a watch, failing the test on error, end or timeout.
pub async fn next_event(stream: &mut WatchStream, wait: Duration) -> WatchEvent {
    match timeout(wait, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(error))) => panic!("watch failed: {error}"),
        Ok(None) => panic!("watch stream ended"),
        Err(_) => panic!("no watch event within {wait:?}"),
    }
}

/// Fails the test if the watch yields anything within `wait`.
pub async fn assert_no_event(stream: &mut WatchStream, wait: Duration) {
    if let Ok(item) = timeout(wait, stream.next()).await {
        panic!("unexpected watch item: {item:?}");
    }
}

fn assert_put_event(event: &WatchEvent, key: &str, value: &str, revision: Revision, version: i64) {
    assert_eq!(event.kind, WatchEventKind::Put, "expected a put of {key}, got {event:?}");
    assert_eq!(event.kv.key, key, "{event:?}");
    assert_eq!(event.kv.value, b(value), "{event:?}");
    assert_eq!(event.kv.mod_revision, revision, "{event:?}");
    assert_eq!(event.kv.version, version, "{event:?}");
}

fn assert_delete_event(event: &WatchEvent, key: &str) -> Revision {
    assert_eq!(event.kind, WatchEventKind::Delete, "expected a delete of {key}, got {event:?}");
    assert_eq!(event.kv.key, key, "{event:?}");
    assert!(event.kv.value.is_empty(), "{event:?}");
    event.kv.mod_revision
}

async fn get(kv: &dyn MetaKv, key: &str) -> Option<KeyValue> {
    kv.get(key).await.unwrap_or_else(|error| panic!("get {key}: {error}"))
}

async fn must_get(kv: &dyn MetaKv, key: &str) -> KeyValue {
    get(kv, key).await.unwrap_or_else(|| panic!("{key} should exist"))
}

async fn put(kv: &dyn MetaKv, key: &str, value: &str) -> Revision {
    kv.put(key, b(value), 0).await.unwrap_or_else(|error| panic!("put {key}: {error}"))
}

async fn txn(kv: &dyn MetaKv, txn: Txn) -> crate::TxnResponse {
    kv.txn(txn.clone()).await.unwrap_or_else(|error| panic!("txn {txn:?}: {error}"))
}

async fn wait_until_absent(kv: &dyn MetaKv, key: &str, wait: Duration) {
    let deadline = Instant::now() + wait;
    while get(kv, key).await.is_some() {
        assert!(Instant::now() < deadline, "{key} still exists after {wait:?}");
        sleep(Duration::from_millis(50)).await;
    }
}

fn assert_lease_not_found(result: crate::Result<()>, lease: LeaseId) {
    match result {
        Err(MetaError::LeaseNotFound { lease: reported }) => assert_eq!(reported, lease),
        other => panic!("expected LeaseNotFound for lease {lease}, got {other:?}"),
    }
}

/// Get of absent keys, put, overwrite: values, versions, create/mod revisions.
pub async fn put_get_overwrite(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}key");
    assert_eq!(get(kv, &key).await, None);
    let before = kv.revision().await.expect("revision");

    let r1 = put(kv, &key, "v1").await;
    assert!(r1 > before, "put revision {r1} should exceed the earlier store revision {before}");
    let expected =
        KeyValue { key: key.clone(), value: b("v1"), create_revision: r1, mod_revision: r1, version: 1, lease: 0 };
    assert_eq!(must_get(kv, &key).await, expected);
    assert!(kv.revision().await.expect("revision") >= r1);

    let r2 = put(kv, &key, "v2").await;
    assert!(r2 > r1);
    let expected = KeyValue { value: b("v2"), mod_revision: r2, version: 2, ..expected };
    assert_eq!(must_get(kv, &key).await, expected);

    // Same value again still counts as a change; an empty value is a value.
    let r3 = put(kv, &key, "v2").await;
    assert!(r3 > r2);
    assert_eq!(must_get(kv, &key).await.version, 3);
    let r4 = kv.put(&key, Bytes::new(), 0).await.expect("put empty value");
    let got = must_get(kv, &key).await;
    assert_eq!((got.value.len(), got.version, got.create_revision, got.mod_revision), (0, 4, r1, r4));

    // Other keys, including a prefix of this key, are independent.
    let other = format!("{prefix}other");
    let r5 = put(kv, &other, "o").await;
    assert!(r5 > r4);
    let got = must_get(kv, &other).await;
    assert_eq!((got.create_revision, got.version), (r5, 1));
    assert_eq!(get(kv, &format!("{prefix}ke")).await, None);
    assert_eq!(must_get(kv, &key).await.mod_revision, r4);
}

/// Delete of absent and present keys; re-creation resets version and create revision.
pub async fn delete_and_recreate(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}key");
    assert!(!kv.delete(&key).await.expect("delete absent"));
    let r1 = put(kv, &key, "a").await;
    let r2 = put(kv, &key, "b").await;
    assert!(kv.delete(&key).await.expect("delete"));
    assert_eq!(get(kv, &key).await, None);
    assert!(kv.revision().await.expect("revision") > r2, "a delete is a new revision");
    assert!(!kv.delete(&key).await.expect("delete again"));

    let r3 = put(kv, &key, "c").await;
    let got = must_get(kv, &key).await;
    assert!(r3 > r2 && r2 > r1);
    assert_eq!((got.create_revision, got.mod_revision, got.version), (r3, r3, 1));
}

/// delete_prefix counts and prefix boundaries.
pub async fn delete_prefix_counts(kv: &dyn MetaKv, prefix: &str) {
    let base = format!("{prefix}dp/");
    for key in ["a", "b", "c/d"] {
        put(kv, &format!("{base}{key}"), key).await;
    }
    let neighbours = [format!("{prefix}dpx"), format!("{prefix}dp")];
    for key in &neighbours {
        put(kv, key, "neighbour").await;
    }
    assert_eq!(kv.delete_prefix(&base).await.expect("delete_prefix"), 3);
    assert!(kv.scan_prefix(&base).await.expect("scan").is_empty());
    for key in &neighbours {
        assert!(get(kv, key).await.is_some(), "{key} is outside the deleted prefix");
    }
    assert_eq!(kv.delete_prefix(&base).await.expect("delete_prefix again"), 0);
    assert_eq!(kv.delete_prefix(&format!("{prefix}dp")).await.expect("delete_prefix"), 2);
    assert!(kv.scan_prefix(prefix).await.expect("scan").is_empty());
}

/// scan_prefix returns key order, full metadata, and nothing from neighbour prefixes.
pub async fn scan_prefix_order(kv: &dyn MetaKv, prefix: &str) {
    for key in ["scan/b/c", "scan/a", "scan/c", "scan/b", "scan0", "scan/a/z", "scam"] {
        put(kv, &format!("{prefix}{key}"), key).await;
    }
    let scanned = kv.scan_prefix(&format!("{prefix}scan/")).await.expect("scan");
    let names: Vec<&str> = scanned.iter().map(|kv| &kv.key[prefix.len()..]).collect();
    assert_eq!(names, ["scan/a", "scan/a/z", "scan/b", "scan/b/c", "scan/c"]);
    for item in &scanned {
        assert_eq!(item.value, b(&item.key[prefix.len()..]));
        assert_eq!(item, &must_get(kv, &item.key).await, "scan and get agree");
    }
    let scanned = kv.scan_prefix(&format!("{prefix}scan")).await.expect("scan");
    let names: Vec<&str> = scanned.iter().map(|kv| &kv.key[prefix.len()..]).collect();
    assert_eq!(names, ["scan/a", "scan/a/z", "scan/b", "scan/b/c", "scan/c", "scan0"]);
    assert!(kv.scan_prefix(&format!("{prefix}nothing/")).await.expect("scan").is_empty());
    assert_eq!(kv.scan_prefix(prefix).await.expect("scan").len(), 7);
}

/// Number of keys [`scan_prefix_many_keys`] writes: more than two pages of a store that
/// paginates scans (etcd reads 1,000 keys per page).
pub const MANY_KEYS: usize = 2_500;

/// A prefix holding more keys than one page: every key comes back once, in order.
pub async fn scan_prefix_many_keys(kv: &dyn MetaKv, prefix: &str) {
    let base = format!("{prefix}many/");
    let key = |i: usize| format!("{base}{i:05}");
    let indices: Vec<usize> = (0..MANY_KEYS).collect();
    // Batches of 100 puts (etcd allows 128 operations per transaction by default).
    for chunk in indices.chunks(100) {
        let puts = chunk.iter().map(|&i| TxnOp::put(key(i), i.to_string())).collect();
        assert!(txn(kv, Txn { compares: vec![], success: puts, failure: vec![] }).await.succeeded);
    }
    put(kv, &format!("{prefix}many0"), "neighbour").await;
    let scanned = kv.scan_prefix(&base).await.expect("scan");
    assert_eq!(scanned.len(), MANY_KEYS);
    for (i, item) in scanned.iter().enumerate() {
        assert_eq!((item.key.as_str(), &item.value), (key(i).as_str(), &b(&i.to_string())));
        assert_eq!(item.version, 1);
    }
    assert_eq!(kv.scan_prefix(prefix).await.expect("scan").len(), MANY_KEYS + 1);
    assert_eq!(kv.delete_prefix(&base).await.expect("delete_prefix"), MANY_KEYS as u64);
    assert!(kv.scan_prefix(&base).await.expect("scan").is_empty());
}

async fn holds(kv: &dyn MetaKv, compare: Compare) -> bool {
    let key = compare.key.clone();
    txn(kv, Txn { compares: vec![compare], success: vec![TxnOp::Get { key }], failure: vec![] }).await.succeeded
}

fn cmp(key: &str, op: CompareOp, target: CompareTarget) -> Compare {
    Compare { key: key.to_owned(), op, target }
}

/// Every compare target against absent and present keys; both branches; responses.
pub async fn txn_compare_targets(kv: &dyn MetaKv, prefix: &str) {
    use CompareOp::{Equal, Greater, Less, NotEqual};
    use CompareTarget::{CreateRevision, ModRevision, Value, Version};
    let key = format!("{prefix}k");

    // Absent key: version/create/mod revision are 0, value compares are always false.
    assert!(holds(kv, Compare::absent(&key)).await);
    assert!(!holds(kv, Compare::present(&key)).await);
    for op in [Equal, NotEqual, Greater, Less] {
        assert!(!holds(kv, cmp(&key, op, Value(b("")))).await, "value {op:?} on an absent key is false");
    }
    assert!(holds(kv, cmp(&key, Equal, Version(0))).await);
    assert!(holds(kv, cmp(&key, Equal, CreateRevision(0))).await);
    assert!(holds(kv, cmp(&key, Equal, ModRevision(0))).await);
    assert!(holds(kv, cmp(&key, Less, ModRevision(1))).await);

    // Create-if-absent: success branch.
    let create = Txn {
        compares: vec![Compare::absent(&key)],
        success: vec![TxnOp::put(&key, "v1")],
        failure: vec![TxnOp::Get { key: key.clone() }],
    };
    let response = txn(kv, create.clone()).await;
    assert!(response.succeeded);
    assert_eq!(response.responses, vec![TxnOpResponse::Put]);
    let r1 = response.revision;
    let created = must_get(kv, &key).await;
    assert_eq!((created.create_revision, created.mod_revision, created.version), (r1, r1, 1));

    // Again: the failure branch runs and reads the key.
    let response = txn(kv, create).await;
    assert!(!response.succeeded);
    assert_eq!(response.responses, vec![TxnOpResponse::Get(Some(created.clone()))]);
    assert!(response.revision >= r1);
    assert_eq!(must_get(kv, &key).await, created, "the failure branch only read");

    assert!(holds(kv, Compare::present(&key)).await);
    assert!(!holds(kv, Compare::absent(&key)).await);
    assert!(holds(kv, Compare::value_equals(&key, "v1")).await);
    assert!(!holds(kv, Compare::value_equals(&key, "v2")).await);
    assert!(holds(kv, cmp(&key, NotEqual, Value(b("v2")))).await);
    assert!(holds(kv, cmp(&key, Greater, Value(b("v0")))).await);
    assert!(holds(kv, cmp(&key, Less, Value(b("v2")))).await);
    assert!(!holds(kv, cmp(&key, Less, Value(b("v0")))).await);
    assert!(holds(kv, cmp(&key, Equal, Version(1))).await);
    assert!(holds(kv, cmp(&key, Greater, Version(0))).await);
    assert!(holds(kv, cmp(&key, Less, Version(2))).await);
    assert!(!holds(kv, cmp(&key, NotEqual, Version(1))).await);
    assert!(holds(kv, cmp(&key, Equal, CreateRevision(r1))).await);
    assert!(!holds(kv, cmp(&key, NotEqual, CreateRevision(r1))).await);
    assert!(holds(kv, cmp(&key, Less, CreateRevision(r1 + 1))).await);
    assert!(holds(kv, Compare::mod_revision_equals(&key, r1)).await);
    assert!(holds(kv, cmp(&key, Greater, ModRevision(r1 - 1))).await);

    // After an overwrite the old mod revision is stale; the create revision stays.
    let r2 = put(kv, &key, "v2").await;
    assert!(!holds(kv, Compare::mod_revision_equals(&key, r1)).await);
    assert!(holds(kv, Compare::mod_revision_equals(&key, r2)).await);
    assert!(holds(kv, cmp(&key, Equal, CreateRevision(r1))).await);
    assert!(holds(kv, cmp(&key, Equal, Version(2))).await);

    // A success branch with several operations: one response each, one revision.
    let flag = format!("{prefix}flag");
    let other = format!("{prefix}other");
    put(kv, &other, "o").await;
    let response = txn(
        kv,
        Txn {
            compares: vec![Compare::value_equals(&key, "v2")],
            success: vec![
                TxnOp::put(&flag, "1"),
                TxnOp::delete(&key),
                TxnOp::delete(format!("{prefix}absent")),
                TxnOp::DeletePrefix { prefix: format!("{prefix}none/") },
                TxnOp::Get { key: other.clone() },
            ],
            failure: vec![],
        },
    )
    .await;
    assert!(response.succeeded);
    let other_kv = must_get(kv, &other).await;
    assert_eq!(
        response.responses,
        vec![
            TxnOpResponse::Put,
            TxnOpResponse::Delete(1),
            TxnOpResponse::Delete(0),
            TxnOpResponse::Delete(0),
            TxnOpResponse::Get(Some(other_kv)),
        ]
    );
    assert!(response.revision > r2);
    assert_eq!(must_get(kv, &flag).await.mod_revision, response.revision);
    assert_eq!(get(kv, &key).await, None);

    // A failing compare with writes in the failure branch applies that branch.
    let response = txn(
        kv,
        Txn {
            compares: vec![Compare::present(&key)],
            success: vec![TxnOp::put(&flag, "success")],
            failure: vec![TxnOp::put(&flag, "failure")],
        },
    )
    .await;
    assert!(!response.succeeded);
    assert_eq!(response.responses, vec![TxnOpResponse::Put]);
    let got = must_get(kv, &flag).await;
    assert_eq!((got.value, got.mod_revision, got.version), (b("failure"), response.revision, 2));

    // No compares: the success branch runs.
    let response = txn(kv, Txn::default()).await;
    assert!(response.succeeded);
    assert!(response.responses.is_empty());
}

/// A failed compare applies nothing; a successful txn applies everything at one revision.
pub async fn txn_atomicity(kv: &dyn MetaKv, prefix: &str) {
    let (a, b_key, c) = (format!("{prefix}a"), format!("{prefix}b"), format!("{prefix}c"));
    put(kv, &a, "a").await;
    let a_before = must_get(kv, &a).await;

    // One compare out of three fails.
    let response = txn(
        kv,
        Txn {
            compares: vec![Compare::present(&a), Compare::absent(&b_key), Compare::value_equals(&a, "wrong")],
            success: vec![TxnOp::put(&b_key, "x"), TxnOp::delete(&a)],
            failure: vec![],
        },
    )
    .await;
    assert!(!response.succeeded);
    assert!(response.responses.is_empty());
    assert_eq!(must_get(kv, &a).await, a_before);
    assert_eq!(get(kv, &b_key).await, None);

    // All compares hold: every operation lands at the same revision.
    let response = txn(
        kv,
        Txn {
            compares: vec![Compare::present(&a), Compare::absent(&b_key)],
            success: vec![TxnOp::put(&b_key, "x"), TxnOp::put(&c, "y"), TxnOp::delete(&a)],
            failure: vec![],
        },
    )
    .await;
    assert!(response.succeeded);
    let (got_b, got_c) = (must_get(kv, &b_key).await, must_get(kv, &c).await);
    assert_eq!(got_b.mod_revision, response.revision);
    assert_eq!(got_c.mod_revision, response.revision);
    assert_eq!(got_b.create_revision, response.revision);
    assert_eq!(get(kv, &a).await, None);

    // An operation that cannot be applied (unknown lease) fails the whole txn.
    let d = format!("{prefix}d");
    let result = kv
        .txn(Txn {
            compares: vec![],
            success: vec![
                TxnOp::put(&d, "1"),
                TxnOp::Put { key: format!("{prefix}e"), value: b("2"), lease: UNKNOWN_LEASE },
            ],
            failure: vec![],
        })
        .await;
    assert!(result.is_err(), "a put with an unknown lease must fail the txn: {result:?}");
    assert_eq!(get(kv, &d).await, None, "a failed txn applies nothing");
    assert_eq!(get(kv, &format!("{prefix}e")).await, None);
}

/// A branch that writes one key twice is rejected as a whole (as etcd does), whichever
/// branch would run.
pub async fn txn_rejects_duplicate_keys(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}k");
    let other = format!("{prefix}other");
    let rejected = [
        Txn { compares: vec![], success: vec![TxnOp::put(&key, "1"), TxnOp::put(&key, "2")], failure: vec![] },
        Txn {
            compares: vec![],
            success: vec![TxnOp::put(&other, "1")],
            failure: vec![TxnOp::put(&key, "1"), TxnOp::delete(&key)],
        },
        Txn {
            compares: vec![],
            success: vec![TxnOp::put(&key, "1"), TxnOp::DeletePrefix { prefix: prefix.to_owned() }],
            failure: vec![],
        },
    ];
    for request in rejected {
        match kv.txn(request.clone()).await {
            Err(MetaError::InvalidArgument { .. }) => {}
            other => panic!("expected InvalidArgument for {request:?}, got {other:?}"),
        }
    }
    assert_eq!(get(kv, &key).await, None);
    assert_eq!(get(kv, &other).await, None, "a rejected txn applies nothing");
    // Reading a key that the same branch writes is fine.
    let response = txn(
        kv,
        Txn {
            compares: vec![],
            success: vec![TxnOp::put(&key, "1"), TxnOp::Get { key: key.clone() }],
            failure: vec![],
        },
    )
    .await;
    assert!(response.succeeded);
    assert_eq!(response.responses.len(), 2);
}

/// Number of concurrent incrementers in [`cas_concurrent_increments`].
pub const CAS_TASKS: usize = 4;
/// Increments per task in [`cas_concurrent_increments`].
pub const CAS_INCREMENTS: usize = 25;

/// N tasks × M increments of one counter with compare-and-swap on the mod revision.
pub async fn cas_concurrent_increments(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}counter");
    let worker = |_task: usize| {
        let key = key.clone();
        async move {
            let mut conflicts = 0usize;
            for _ in 0..CAS_INCREMENTS {
                loop {
                    let (value, compare) = match get(kv, &key).await {
                        None => (0u64, Compare::absent(&key)),
                        Some(current) => {
                            let text = std::str::from_utf8(&current.value).expect("counter is UTF-8");
                            (
                                text.parse().expect("counter is a number"),
                                Compare::mod_revision_equals(&key, current.mod_revision),
                            )
                        }
                    };
                    let response = txn(
                        kv,
                        Txn {
                            compares: vec![compare],
                            success: vec![TxnOp::put(&key, (value + 1).to_string())],
                            failure: vec![],
                        },
                    )
                    .await;
                    if response.succeeded {
                        break;
                    }
                    conflicts += 1;
                }
            }
            conflicts
        }
    };
    let conflicts: usize = futures::future::join_all((0..CAS_TASKS).map(worker)).await.into_iter().sum();
    let total = CAS_TASKS * CAS_INCREMENTS;
    let got = must_get(kv, &key).await;
    assert_eq!(got.value, b(&total.to_string()), "no increment lost ({conflicts} conflicts retried)");
    assert_eq!(got.version, total as i64);
}

/// A watch from now sees exactly the later changes under its prefix.
pub async fn watch_from_now(kv: &dyn MetaKv, prefix: &str) {
    let base = format!("{prefix}w/");
    put(kv, &format!("{base}old"), "before the watch").await;
    let mut watch = kv.watch_prefix(&base, None).await.expect("watch");
    put(kv, &format!("{prefix}w-neighbour"), "outside").await;
    let a = format!("{base}a");
    let r1 = put(kv, &a, "1").await;
    let r2 = put(kv, &a, "2").await;
    let r3 = put(kv, &format!("{base}b"), "1").await;
    assert!(kv.delete(&a).await.expect("delete"));

    let event = next_event(&mut watch, EVENT_TIMEOUT).await;
    assert_put_event(&event, &a, "1", r1, 1);
    assert_eq!(event.kv.create_revision, r1);
    let event = next_event(&mut watch, EVENT_TIMEOUT).await;
    assert_put_event(&event, &a, "2", r2, 2);
    assert_eq!(event.kv.create_revision, r1);
    assert_put_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &format!("{base}b"), "1", r3, 1);
    let r4 = assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &a);
    assert!(r4 > r3);
    assert_no_event(&mut watch, QUIET_PERIOD).await;
}

/// A watch from a past revision replays history, then goes live with no gap or duplicate.
pub async fn watch_from_past_revision(kv: &dyn MetaKv, prefix: &str) {
    let base = format!("{prefix}w/");
    let (a, b_key, c, d) = (format!("{base}a"), format!("{base}b"), format!("{base}c"), format!("{base}d"));
    let r1 = put(kv, &a, "a").await;
    let r2 = put(kv, &b_key, "b").await;
    put(kv, &format!("{prefix}w-neighbour"), "outside").await;
    assert!(kv.delete(&a).await.expect("delete"));

    let mut from_r1 = kv.watch_prefix(&base, Some(r1)).await.expect("watch from r1");
    let mut from_r2 = kv.watch_prefix(&base, Some(r2)).await.expect("watch from r2");
    assert_put_event(&next_event(&mut from_r1, EVENT_TIMEOUT).await, &a, "a", r1, 1);
    assert_put_event(&next_event(&mut from_r1, EVENT_TIMEOUT).await, &b_key, "b", r2, 1);
    let r3 = assert_delete_event(&next_event(&mut from_r1, EVENT_TIMEOUT).await, &a);
    assert!(r3 > r2);

    let r4 = put(kv, &c, "c").await;
    assert_put_event(&next_event(&mut from_r1, EVENT_TIMEOUT).await, &c, "c", r4, 1);
    assert_no_event(&mut from_r1, QUIET_PERIOD).await;

    assert_put_event(&next_event(&mut from_r2, EVENT_TIMEOUT).await, &b_key, "b", r2, 1);
    assert_eq!(assert_delete_event(&next_event(&mut from_r2, EVENT_TIMEOUT).await, &a), r3);
    assert_put_event(&next_event(&mut from_r2, EVENT_TIMEOUT).await, &c, "c", r4, 1);
    assert_no_event(&mut from_r2, QUIET_PERIOD).await;

    // A start revision in the future: only changes from there on.
    let mut future = kv.watch_prefix(&base, Some(r4 + 1)).await.expect("watch from the future");
    let r5 = put(kv, &d, "d").await;
    assert_put_event(&next_event(&mut future, EVENT_TIMEOUT).await, &d, "d", r5, 1);
    assert_no_event(&mut future, QUIET_PERIOD).await;
}

/// Deletes, delete_prefix and transactions as seen by a watch.
pub async fn watch_deletes_and_txn(kv: &dyn MetaKv, prefix: &str) {
    let base = format!("{prefix}w/");
    let key = |name: &str| format!("{base}{name}");
    for name in ["x", "y", "z/1", "z/2"] {
        put(kv, &key(name), name).await;
    }
    let mut watch = kv.watch_prefix(&base, None).await.expect("watch");

    let response = txn(
        kv,
        Txn {
            compares: vec![Compare::present(key("x"))],
            success: vec![TxnOp::put(key("x"), "tx"), TxnOp::delete(key("y")), TxnOp::put(key("n"), "new")],
            failure: vec![],
        },
    )
    .await;
    assert!(response.succeeded);
    let revision = response.revision;
    assert_put_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("x"), "tx", revision, 2);
    assert_eq!(assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("y")), revision);
    assert_put_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("n"), "new", revision, 1);

    assert_eq!(kv.delete_prefix(&key("z/")).await.expect("delete_prefix"), 2);
    let r2 = assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("z/1"));
    assert!(r2 > revision);
    assert_eq!(assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("z/2")), r2);

    assert!(kv.delete(&key("x")).await.expect("delete"));
    assert!(assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("x")) > r2);
    // Deleting absent keys changes nothing and emits nothing.
    assert!(!kv.delete(&key("x")).await.expect("delete absent"));
    assert_eq!(kv.delete_prefix(&key("z/")).await.expect("delete_prefix"), 0);
    assert_no_event(&mut watch, QUIET_PERIOD).await;
}

/// An unrefreshed lease expires: its key is deleted and a Delete event is emitted.
pub async fn lease_expiry(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}session");
    let plain = format!("{prefix}plain");
    put(kv, &plain, "no lease").await;
    let lease = kv.grant_lease(LEASE_TTL).await.expect("grant");
    assert_ne!(lease, 0);
    let mut watch = kv.watch_prefix(&key, None).await.expect("watch");
    let revision = kv.put(&key, b("alive"), lease).await.expect("put with lease");
    assert_eq!(must_get(kv, &key).await.lease, lease);
    let event = next_event(&mut watch, EVENT_TIMEOUT).await;
    assert_put_event(&event, &key, "alive", revision, 1);
    assert_eq!(event.kv.lease, lease);

    wait_until_absent(kv, &key, EXPIRY_TIMEOUT).await;
    let deleted_at = assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key);
    assert!(deleted_at > revision);
    assert_lease_not_found(kv.keep_alive(lease).await, lease);
    assert!(kv.put(&key, b("again"), lease).await.is_err(), "put with an expired lease");
    assert!(get(kv, &plain).await.is_some(), "keys without the lease stay");
}

/// keep_alive keeps a lease (and its keys) alive past its TTL; then it expires.
pub async fn lease_keep_alive(kv: &dyn MetaKv, prefix: &str) {
    let key = format!("{prefix}session");
    let lease = kv.grant_lease(LEASE_TTL).await.expect("grant");
    kv.put(&key, b("alive"), lease).await.expect("put with lease");
    let until = Instant::now() + LEASE_TTL * 3;
    while Instant::now() < until {
        sleep(LEASE_TTL / 5).await;
        kv.keep_alive(lease).await.expect("keep_alive of a live lease");
    }
    assert!(get(kv, &key).await.is_some(), "a refreshed lease keeps its key");
    wait_until_absent(kv, &key, EXPIRY_TIMEOUT).await;
    assert_lease_not_found(kv.keep_alive(lease).await, lease);
}

/// Revoking deletes exactly the keys attached to the lease, as one revision.
pub async fn lease_revoke(kv: &dyn MetaKv, prefix: &str) {
    let key = |name: &str| format!("{prefix}{name}");
    let lease = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
    kv.put(&key("a"), b("a"), lease).await.expect("put with lease");
    let response = txn(
        kv,
        Txn { compares: vec![], success: vec![TxnOp::Put { key: key("b"), value: b("b"), lease }], failure: vec![] },
    )
    .await;
    assert!(response.succeeded);
    assert_eq!(must_get(kv, &key("b")).await.lease, lease);
    put(kv, &key("c"), "no lease").await;
    // Re-putting without the lease detaches the key from it.
    kv.put(&key("d"), b("d"), lease).await.expect("put with lease");
    put(kv, &key("d"), "detached").await;
    assert_eq!(must_get(kv, &key("d")).await.lease, 0);

    let mut watch = kv.watch_prefix(prefix, None).await.expect("watch");
    kv.revoke_lease(lease).await.expect("revoke");
    assert_eq!(get(kv, &key("a")).await, None, "revoke deletes before it returns");
    assert_eq!(get(kv, &key("b")).await, None);
    assert!(get(kv, &key("c")).await.is_some());
    assert_eq!(must_get(kv, &key("d")).await.value, b("detached"));
    let revision = assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("a"));
    assert_eq!(assert_delete_event(&next_event(&mut watch, EVENT_TIMEOUT).await, &key("b")), revision);
    assert_no_event(&mut watch, QUIET_PERIOD).await;

    assert_lease_not_found(kv.keep_alive(lease).await, lease);
    assert_lease_not_found(kv.revoke_lease(lease).await, lease);
    assert!(kv.put(&key("e"), b("e"), lease).await.is_err(), "put with a revoked lease");
    assert_eq!(get(kv, &key("e")).await, None);

    // A lease with no keys can be revoked too.
    let empty = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
    kv.revoke_lease(empty).await.expect("revoke a lease without keys");
    assert_lease_not_found(kv.keep_alive(empty).await, empty);
}

/// Unknown leases: keep_alive fails with LeaseNotFound, puts fail; grants are distinct.
pub async fn lease_not_found(kv: &dyn MetaKv, prefix: &str) {
    assert_lease_not_found(kv.keep_alive(UNKNOWN_LEASE).await, UNKNOWN_LEASE);
    let key = format!("{prefix}k");
    assert!(kv.put(&key, b("v"), UNKNOWN_LEASE).await.is_err(), "put with an unknown lease");
    assert_eq!(get(kv, &key).await, None);

    let first = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
    let second = kv.grant_lease(Duration::from_secs(60)).await.expect("grant");
    assert!(first != 0 && second != 0 && first != second);
    kv.keep_alive(first).await.expect("keep_alive");
    kv.revoke_lease(first).await.expect("revoke");
    kv.revoke_lease(second).await.expect("revoke");
}

/// Runs the whole suite, each test under its own sub-prefix of `prefix`.
pub async fn run_all(kv: &dyn MetaKv, prefix: &str) {
    let sub = |name: &str| format!("{prefix}{name}/");
    put_get_overwrite(kv, &sub("put_get_overwrite")).await;
    delete_and_recreate(kv, &sub("delete_and_recreate")).await;
    delete_prefix_counts(kv, &sub("delete_prefix_counts")).await;
    scan_prefix_order(kv, &sub("scan_prefix_order")).await;
    scan_prefix_many_keys(kv, &sub("scan_prefix_many_keys")).await;
    txn_compare_targets(kv, &sub("txn_compare_targets")).await;
    txn_atomicity(kv, &sub("txn_atomicity")).await;
    txn_rejects_duplicate_keys(kv, &sub("txn_rejects_duplicate_keys")).await;
    cas_concurrent_increments(kv, &sub("cas_concurrent_increments")).await;
    watch_from_now(kv, &sub("watch_from_now")).await;
    watch_from_past_revision(kv, &sub("watch_from_past_revision")).await;
    watch_deletes_and_txn(kv, &sub("watch_deletes_and_txn")).await;
    lease_not_found(kv, &sub("lease_not_found")).await;
    // The slow (timing) tests run side by side.
    let (expiry, keep_alive, revoke) = (sub("lease_expiry"), sub("lease_keep_alive"), sub("lease_revoke"));
    tokio::join!(lease_expiry(kv, &expiry), lease_keep_alive(kv, &keep_alive), lease_revoke(kv, &revoke));
}
