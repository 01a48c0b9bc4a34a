//! The conformance suite every [`LogBroker`] implementation runs.
//!
//! Each function takes the broker and a `prefix` that makes every topic and subject it
//! uses unique, so the suite can run against a server shared by many tests. Use a prefix
//! of ASCII letters, digits, `-` and `_` (it becomes part of topic names, which NATS
//! restricts); topics are named `<prefix>-<case>` and subjects `<topic>.<name>` or
//! `<prefix>.<case>.<name>`. Every function panics (via assertions) on a violation.
//! [`run_all`] runs every case.
//!
//! Contract details pinned down here:
//! * positions of a fresh topic start at 1 and a batch of small records gets contiguous
//!   positions (a record above the transport's single-message size may take several
//!   positions, see [`LogBroker::produce`]);
//! * `truncate(t, before)` makes exactly `before` the first retained position (when
//!   `before <= latest + 1`); subscribing `After(p)` with `p + 1 < before` fails with
//!   `PositionTruncated` (returned by `subscribe` or as the first item of the stream);
//! * a request delivered to no live server fails with `NoResponders` well before its
//!   timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::join_all;
use parking_lot::Mutex;

use crate::{
    BrokerError, Headers, LogBroker, LogMessage, LogStream, NotificationStream, OutgoingMessage, Position, SeekFrom,
    SubjectFilter,
};

/// Upper bound for anything that should happen "promptly".
const WAIT: Duration = Duration::from_secs(10);
/// How long a subscription must stay silent to count as "delivers nothing more".
const QUIET: Duration = Duration::from_millis(150);

fn topic_name(prefix: &str, case: &str) -> String {
    format!("{prefix}-{case}")
}

fn subject(topic: &str, name: &str) -> String {
    format!("{topic}.{name}")
}

fn msg(subject: &str, payload: impl Into<Bytes>) -> OutgoingMessage {
    OutgoingMessage::new(subject, payload)
}

async fn next_msg(stream: &mut LogStream) -> LogMessage {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(m))) => m,
        Ok(Some(Err(e))) => panic!("subscription yielded an error: {e}"),
        Ok(None) => panic!("subscription ended unexpectedly"),
        Err(_) => panic!("no record within {WAIT:?}"),
    }
}

async fn take(stream: &mut LogStream, n: usize) -> Vec<LogMessage> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(next_msg(stream).await);
    }
    out
}

async fn assert_quiet(stream: &mut LogStream, what: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET, stream.next()).await {
        panic!("{what}: expected no more records, got {item:?}");
    }
}

async fn subscribe(broker: &dyn LogBroker, topic: &str, filter: SubjectFilter, from: SeekFrom) -> LogStream {
    broker.subscribe(topic, filter, from).await.unwrap_or_else(|e| panic!("subscribe {topic} {from:?}: {e}"))
}

async fn produce(broker: &dyn LogBroker, topic: &str, msgs: Vec<OutgoingMessage>) -> Vec<Position> {
    broker.produce(topic, msgs).await.unwrap_or_else(|e| panic!("produce to {topic}: {e}"))
}

async fn ensure(broker: &dyn LogBroker, topic: &str) {
    broker.ensure_topic(topic).await.unwrap_or_else(|e| panic!("ensure_topic {topic}: {e}"));
}

fn positions(msgs: &[LogMessage]) -> Vec<Position> {
    msgs.iter().map(|m| m.position).collect()
}

fn payloads(msgs: &[LogMessage]) -> Vec<String> {
    msgs.iter().map(|m| String::from_utf8_lossy(&m.payload).into_owned()).collect()
}

/// Asserts that subscribing `from` fails with `PositionTruncated` reporting `first_retained`,
/// either from `subscribe` itself or as the first item of the stream.
async fn expect_truncated(broker: &dyn LogBroker, topic: &str, from: SeekFrom, first_retained: Position) {
    let err = match broker.subscribe(topic, SubjectFilter::All, from).await {
        Err(e) => e,
        Ok(mut stream) => match tokio::time::timeout(WAIT, stream.next()).await {
            Ok(Some(Err(e))) => e,
            other => panic!("subscribing {topic} {from:?} after truncation: expected an error, got {other:?}"),
        },
    };
    match err {
        BrokerError::PositionTruncated { first_retained: f, .. } => {
            assert_eq!(f, first_retained, "first_retained reported for {from:?}")
        }
        other => panic!("subscribing {topic} {from:?}: expected PositionTruncated, got {other}"),
    }
}

fn is_topic_not_found<T: std::fmt::Debug>(r: &Result<T, BrokerError>) -> bool {
    matches!(r, Err(BrokerError::TopicNotFound { .. }))
}

/// `ensure_topic` twice (and concurrently) creates the topic once and never resets it.
pub async fn ensure_topic_is_idempotent(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "idem");
    ensure(broker, &t).await;
    ensure(broker, &t).await;
    let results = join_all((0..4).map(|_| broker.ensure_topic(&t))).await;
    for r in results {
        r.expect("concurrent ensure_topic");
    }
    assert_eq!(produce(broker, &t, vec![msg(&subject(&t, "a"), "x")]).await, vec![1]);
    ensure(broker, &t).await;
    assert_eq!(broker.latest_position(&t).await.expect("latest_position"), 1, "ensure_topic must not reset a topic");
    let topics = broker.topics().await.expect("topics");
    assert_eq!(topics.iter().filter(|n| **n == t).count(), 1, "topic listed once: {topics:?}");
    let mut s = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    assert_eq!(payloads(&take(&mut s, 1).await), vec!["x"]);
    assert_quiet(&mut s, "ensure_topic after produce").await;
}

/// Positions start at 1, are contiguous per batch and across batches; batches keep order.
pub async fn produce_assigns_contiguous_positions(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "contig");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    assert_eq!(produce(broker, &t, vec![]).await, Vec::<Position>::new(), "empty batch");
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 0, "empty batch appends nothing");
    assert_eq!(produce(broker, &t, vec![msg(&s, "1"), msg(&s, "2"), msg(&s, "3")]).await, vec![1, 2, 3]);
    assert_eq!(produce(broker, &t, vec![msg(&s, "4")]).await, vec![4]);
    assert_eq!(produce(broker, &t, vec![msg(&s, "5"), msg(&s, "6")]).await, vec![5, 6]);
    let batch: Vec<_> = (7..=56).map(|i| msg(&s, i.to_string())).collect();
    assert_eq!(produce(broker, &t, batch).await, (7..=56).collect::<Vec<_>>());
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 56);
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut sub, 56).await;
    assert_eq!(positions(&got), (1..=56).collect::<Vec<_>>());
    assert_eq!(payloads(&got), (1..=56).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(got.iter().all(|m| m.subject == s));
    assert_quiet(&mut sub, "after the last record").await;
}

/// `Earliest` replays everything retained, then follows.
pub async fn subscribe_from_earliest(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "earliest");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    for i in 1..=5 {
        produce(broker, &t, vec![msg(&s, format!("r{i}"))]).await;
    }
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut sub, 5).await;
    assert_eq!(positions(&got), vec![1, 2, 3, 4, 5]);
    assert_eq!(payloads(&got), vec!["r1", "r2", "r3", "r4", "r5"]);
    assert_quiet(&mut sub, "caught up").await;
    produce(broker, &t, vec![msg(&s, "r6")]).await;
    let m = next_msg(&mut sub).await;
    assert_eq!((m.position, m.payload.as_ref()), (6, &b"r6"[..]));
    // A second subscription is independent of the first.
    let mut other = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    assert_eq!(positions(&take(&mut other, 6).await), vec![1, 2, 3, 4, 5, 6]);
}

/// `Latest` delivers only records appended after subscribing.
pub async fn subscribe_from_latest(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "latest");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    let mut on_empty = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Latest).await;
    produce(broker, &t, vec![msg(&s, "old1"), msg(&s, "old2"), msg(&s, "old3")]).await;
    assert_eq!(positions(&take(&mut on_empty, 3).await), vec![1, 2, 3], "Latest on an empty topic");
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Latest).await;
    assert_quiet(&mut sub, "Latest before any new record").await;
    produce(broker, &t, vec![msg(&s, "new4"), msg(&s, "new5")]).await;
    let got = take(&mut sub, 2).await;
    assert_eq!(positions(&got), vec![4, 5]);
    assert_eq!(payloads(&got), vec!["new4", "new5"]);
    assert_quiet(&mut sub, "after the new records").await;
}

/// `After(p)` starts at `p + 1`, also beyond the current end.
pub async fn subscribe_after_position(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "after");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    let batch: Vec<_> = (1..=10).map(|i| msg(&s, format!("m{i}"))).collect();
    produce(broker, &t, batch).await;

    let mut from0 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(0)).await;
    assert_eq!(positions(&take(&mut from0, 10).await), (1..=10).collect::<Vec<_>>());

    let mut from4 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(4)).await;
    let got = take(&mut from4, 6).await;
    assert_eq!(positions(&got), vec![5, 6, 7, 8, 9, 10]);
    assert_eq!(payloads(&got)[0], "m5", "After(4) starts inside a batch");
    assert_quiet(&mut from4, "After(4) caught up").await;

    let mut from10 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(10)).await;
    assert_quiet(&mut from10, "After(latest)").await;
    // Beyond the end: waits for positions > 12.
    let mut from12 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(12)).await;
    produce(broker, &t, vec![msg(&s, "m11"), msg(&s, "m12"), msg(&s, "m13")]).await;
    assert_eq!(positions(&take(&mut from10, 3).await), vec![11, 12, 13]);
    let m = next_msg(&mut from12).await;
    assert_eq!((m.position, m.payload.as_ref()), (13, &b"m13"[..]));
    assert_quiet(&mut from12, "After(12)").await;
}

/// Subject filters deliver only matching records, with their original positions.
pub async fn subject_filters(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "filter");
    ensure(broker, &t).await;
    let (a, b, c) = (subject(&t, "a"), subject(&t, "b"), subject(&t, "c"));
    // positions: 1 a, 2 b, 3 c, 4 a, 5 a, 6 b, 7 c, 8 a
    produce(broker, &t, vec![msg(&a, "a1"), msg(&b, "b2"), msg(&c, "c3")]).await;
    produce(broker, &t, vec![msg(&a, "a4")]).await;
    produce(broker, &t, vec![msg(&a, "a5"), msg(&b, "b6"), msg(&c, "c7"), msg(&a, "a8")]).await;

    let mut only_a = subscribe(broker, &t, SubjectFilter::Subjects(vec![a.clone()]), SeekFrom::Earliest).await;
    let got = take(&mut only_a, 4).await;
    assert_eq!(positions(&got), vec![1, 4, 5, 8]);
    assert_eq!(payloads(&got), vec!["a1", "a4", "a5", "a8"]);
    assert!(got.iter().all(|m| m.subject == a));
    assert_quiet(&mut only_a, "filter a").await;

    let ac = SubjectFilter::Subjects(vec![a.clone(), c.clone()]);
    let mut a_and_c = subscribe(broker, &t, ac.clone(), SeekFrom::Earliest).await;
    assert_eq!(positions(&take(&mut a_and_c, 6).await), vec![1, 3, 4, 5, 7, 8]);

    let mut after = subscribe(broker, &t, ac, SeekFrom::After(4)).await;
    assert_eq!(positions(&take(&mut after, 3).await), vec![5, 7, 8]);

    let mut all = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut all, 8).await;
    assert_eq!(positions(&got), (1..=8).collect::<Vec<_>>());
    assert_eq!(got[5].subject, b);

    // Live records are filtered too; a filter matching nothing yet waits.
    let d = subject(&t, "d");
    let mut only_d = subscribe(broker, &t, SubjectFilter::Subjects(vec![d.clone()]), SeekFrom::Earliest).await;
    assert_quiet(&mut only_d, "filter d before any d").await;
    produce(broker, &t, vec![msg(&b, "b9"), msg(&d, "d10"), msg(&a, "a11")]).await;
    let m = next_msg(&mut only_d).await;
    assert_eq!((m.position, m.subject.as_str(), m.payload.as_ref()), (10, d.as_str(), &b"d10"[..]));
    assert_eq!(positions(&take(&mut only_a, 1).await), vec![11]);
    assert_quiet(&mut only_d, "filter d after d10").await;
    assert_quiet(&mut only_a, "filter a after a11").await;
}

/// Records appended after subscribing are delivered promptly, without gaps or duplicates
/// at the boundary between history and live records.
pub async fn live_follow(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "live");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    for i in 1..=5u64 {
        let started = Instant::now();
        assert_eq!(produce(broker, &t, vec![msg(&s, format!("live{i}"))]).await, vec![i]);
        let m = next_msg(&mut sub).await;
        assert_eq!((m.position, payloads(std::slice::from_ref(&m))[0].clone()), (i, format!("live{i}")));
        assert!(started.elapsed() < Duration::from_secs(2), "live record took {:?}", started.elapsed());
    }

    // Subscribe while a producer is appending: history and live records must join up.
    const TOTAL: u64 = 400;
    let producer = async {
        for chunk in 0..(TOTAL / 4) {
            let batch = (0..4).map(|j| msg(&s, format!("b{}", 5 + chunk * 4 + j + 1))).collect();
            produce(broker, &t, batch).await;
            if chunk % 10 == 0 {
                tokio::task::yield_now().await;
            }
        }
    };
    let consumer = async {
        for _ in 0..5 {
            tokio::task::yield_now().await;
        }
        let mut late = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
        take(&mut late, (5 + TOTAL) as usize).await
    };
    let ((), got) = futures::join!(producer, consumer);
    assert_eq!(positions(&got), (1..=5 + TOTAL).collect::<Vec<_>>(), "gap or duplicate at the live boundary");
    assert_eq!(payloads(&got)[5], "b6");
    let rest = take(&mut sub, TOTAL as usize).await;
    assert_eq!(positions(&rest), (6..=5 + TOTAL).collect::<Vec<_>>());
}

/// `latest_position` is 0 for an empty topic and then the last position.
pub async fn latest_position_tracks_appends(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "latestpos");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 0);
    produce(broker, &t, vec![msg(&s, "1"), msg(&s, "2"), msg(&s, "3")]).await;
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 3);
    produce(broker, &t, vec![msg(&s, "4")]).await;
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 4);
}

/// Headers, empty payloads and binary payloads survive the round trip.
pub async fn headers_round_trip(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "headers");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    let headers: Headers = vec![
        ("trace-id".into(), "00-abc-def-01".into()),
        ("msg-type".into(), "insert".into()),
        ("k".into(), "v1".into()),
        ("k".into(), "v2".into()),
    ];
    let binary: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let with_headers =
        OutgoingMessage { subject: s.clone(), payload: Bytes::from(binary.clone()), headers: headers.clone() };
    let empty = OutgoingMessage::new(&s, Bytes::new());
    produce(broker, &t, vec![with_headers, empty]).await;
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut sub, 2).await;
    let sorted = |h: &Headers| {
        let mut h = h.clone();
        h.sort();
        h
    };
    assert_eq!(sorted(&got[0].headers), sorted(&headers));
    let k_values: Vec<_> = got[0].headers.iter().filter(|(k, _)| k == "k").map(|(_, v)| v.as_str()).collect();
    assert_eq!(k_values, vec!["v1", "v2"], "values of a repeated header keep their order");
    assert_eq!(got[0].payload.as_ref(), binary.as_slice());
    assert!(got[1].headers.is_empty());
    assert!(got[1].payload.is_empty());
    assert_eq!(got[1].subject, s);
}

/// Concurrent producers get distinct contiguous positions; a subscriber sees every record
/// exactly once, in position order.
pub async fn concurrent_producers(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "concurrent");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    const PRODUCERS: usize = 8;
    const CALLS: usize = 20;
    let sizes = |p: usize, c: usize| 1 + (p + c) % 3;
    let total: usize = (0..PRODUCERS).flat_map(|p| (0..CALLS).map(move |c| sizes(p, c))).sum();

    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let reader = tokio::spawn(async move { take(&mut sub, total).await });

    let producers = (0..PRODUCERS).map(|p| {
        let (t, s) = (t.clone(), s.clone());
        async move {
            let mut assigned = Vec::new();
            for c in 0..CALLS {
                let batch: Vec<_> = (0..sizes(p, c)).map(|j| msg(&s, format!("p{p}-c{c}-j{j}"))).collect();
                let names: Vec<String> = (0..batch.len()).map(|j| format!("p{p}-c{c}-j{j}")).collect();
                let pos = produce(broker, &t, batch).await;
                assert_eq!(pos.len(), names.len());
                assert!(pos.windows(2).all(|w| w[1] == w[0] + 1), "batch positions not contiguous: {pos:?}");
                assigned.extend(pos.into_iter().zip(names));
            }
            assigned
        }
    });
    let expected: BTreeMap<Position, String> = join_all(producers).await.into_iter().flatten().collect();
    assert_eq!(expected.len(), total, "positions handed out twice");
    assert_eq!(expected.keys().copied().collect::<Vec<_>>(), (1..=total as u64).collect::<Vec<_>>());

    let got = tokio::time::timeout(WAIT, reader).await.expect("subscriber finished").expect("subscriber task");
    assert_eq!(positions(&got), (1..=total as u64).collect::<Vec<_>>(), "each record exactly once, in order");
    for m in &got {
        assert_eq!(String::from_utf8_lossy(&m.payload), expected[&m.position].as_str(), "payload at {}", m.position);
    }
}

/// `truncate` makes earlier positions unreadable; later positions stay readable.
pub async fn truncate_discards_prefix(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "truncate");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    for i in 1..=10 {
        produce(broker, &t, vec![msg(&s, format!("t{i}"))]).await;
    }
    broker.truncate(&t, 6).await.expect("truncate");
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 10, "truncate keeps the latest position");
    expect_truncated(broker, &t, SeekFrom::After(2), 6).await;
    expect_truncated(broker, &t, SeekFrom::After(0), 6).await;
    expect_truncated(broker, &t, SeekFrom::After(4), 6).await;

    let mut earliest = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut earliest, 5).await;
    assert_eq!(positions(&got), vec![6, 7, 8, 9, 10]);
    assert_eq!(payloads(&got)[0], "t6");
    let mut after5 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(5)).await;
    assert_eq!(positions(&take(&mut after5, 5).await), vec![6, 7, 8, 9, 10]);

    // Truncating below the current start changes nothing.
    broker.truncate(&t, 3).await.expect("truncate below start");
    expect_truncated(broker, &t, SeekFrom::After(4), 6).await;
    assert_eq!(produce(broker, &t, vec![msg(&s, "t11")]).await, vec![11], "positions continue after truncate");
    assert_eq!(next_msg(&mut earliest).await.position, 11);

    // Truncating everything: the topic continues with the next position.
    broker.truncate(&t, 12).await.expect("truncate all");
    expect_truncated(broker, &t, SeekFrom::After(10), 12).await;
    let mut from_start = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let mut after11 = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(11)).await;
    assert_quiet(&mut from_start, "fully truncated topic").await;
    assert_eq!(produce(broker, &t, vec![msg(&s, "t12")]).await, vec![12]);
    assert_eq!(next_msg(&mut from_start).await.position, 12);
    assert_eq!(next_msg(&mut after11).await.position, 12);
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 12);
}

/// A record above the limit rejects the whole batch and leaves the topic unchanged.
pub async fn message_too_large_appends_nothing(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "toolarge");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    produce(broker, &t, vec![msg(&s, "ok1"), msg(&s, "ok2")]).await;
    let limit = broker.max_message_bytes();
    let huge = Bytes::from(vec![7u8; limit + 1]);
    let err = broker
        .produce(&t, vec![msg(&s, "before"), msg(&s, huge), msg(&s, "after")])
        .await
        .expect_err("a message above the limit must be rejected");
    match err {
        BrokerError::MessageTooLarge { size, limit: l } => {
            assert_eq!(size, limit + 1);
            assert_eq!(l, limit);
        }
        other => panic!("expected MessageTooLarge, got {other}"),
    }
    assert_eq!(broker.latest_position(&t).await.expect("latest"), 2, "nothing of the batch appended");
    assert_eq!(produce(broker, &t, vec![msg(&s, "ok3")]).await, vec![3], "no position consumed by the failed batch");
    let mut sub = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    assert_eq!(payloads(&take(&mut sub, 3).await), vec!["ok1", "ok2", "ok3"]);
    assert_quiet(&mut sub, "after a rejected batch").await;
}

/// A record of exactly [`LogBroker::max_message_bytes`] bytes is accepted and read back
/// intact, between small records, through every kind of start position and a subject
/// filter. (An implementation may store such a record as several entries internally, so
/// its position need only be above the previous record's.)
pub async fn record_at_the_size_limit_round_trips(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "atlimit");
    ensure(broker, &t).await;
    let (a, b) = (subject(&t, "a"), subject(&t, "b"));
    let limit = broker.max_message_bytes();
    let big: Bytes = (0..limit).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let headers: Headers = vec![("trace-id".into(), "00-big-01".into())];
    let batch = vec![
        msg(&a, "before"),
        OutgoingMessage { subject: b.clone(), payload: big.clone(), headers: headers.clone() },
        msg(&a, "after"),
    ];
    let pos = produce(broker, &t, batch).await;
    assert_eq!(pos[0], 1, "positions start at 1");
    assert!(pos[0] < pos[1] && pos[1] < pos[2], "positions increase: {pos:?}");
    assert_eq!(pos[2], pos[1] + 1, "a small record right after a large one is next");
    assert_eq!(broker.latest_position(&t).await.expect("latest"), pos[2]);

    let mut all = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    let got = take(&mut all, 3).await;
    assert_eq!(positions(&got), pos);
    assert_eq!(got[0].payload.as_ref(), b"before");
    assert!(got[1].payload == big, "the large record is intact ({} of {limit} bytes)", got[1].payload.len());
    assert_eq!((got[1].subject.as_str(), &got[1].headers), (b.as_str(), &headers));
    assert_eq!(got[2].payload.as_ref(), b"after");
    assert_quiet(&mut all, "after the batch").await;
    drop(got);

    let mut only_b = subscribe(broker, &t, SubjectFilter::Subjects(vec![b.clone()]), SeekFrom::Earliest).await;
    let m = next_msg(&mut only_b).await;
    assert!(m.position == pos[1] && m.payload == big, "filtered read of the large record");
    assert_quiet(&mut only_b, "filter b").await;
    let mut after_big = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(pos[1])).await;
    assert_eq!(next_msg(&mut after_big).await.position, pos[2], "After(position of the large record)");
    let mut after_first = subscribe(broker, &t, SubjectFilter::All, SeekFrom::After(pos[0])).await;
    let m = next_msg(&mut after_first).await;
    assert!(m.position == pos[1] && m.payload == big, "After(p) right before the large record");
}

/// Operations on a topic that was never created fail with `TopicNotFound`.
pub async fn missing_topic_is_not_found(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "missing");
    let s = subject(&t, "a");
    assert!(is_topic_not_found(&broker.produce(&t, vec![msg(&s, "x")]).await));
    assert!(is_topic_not_found(&broker.subscribe(&t, SubjectFilter::All, SeekFrom::Earliest).await.map(|_| ())));
    assert!(is_topic_not_found(&broker.latest_position(&t).await));
    assert!(!broker.topics().await.expect("topics").contains(&t));
}

/// `topics` lists every created topic.
pub async fn topics_lists_created_topics(broker: &dyn LogBroker, prefix: &str) {
    let names: Vec<String> = (0..3).map(|i| topic_name(prefix, &format!("list{i}"))).collect();
    for n in &names {
        ensure(broker, n).await;
    }
    let listed = broker.topics().await.expect("topics");
    for n in &names {
        assert!(listed.contains(n), "{n} missing from {listed:?}");
    }
}

/// Dropping a subscription does not disturb the topic or other subscriptions.
pub async fn dropped_subscription_is_harmless(broker: &dyn LogBroker, prefix: &str) {
    let t = topic_name(prefix, "dropsub");
    ensure(broker, &t).await;
    let s = subject(&t, "a");
    produce(broker, &t, vec![msg(&s, "1")]).await;
    let mut keep = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
    for _ in 0..10 {
        let mut tmp = subscribe(broker, &t, SubjectFilter::All, SeekFrom::Earliest).await;
        assert_eq!(next_msg(&mut tmp).await.position, 1);
    }
    drop(subscribe(broker, &t, SubjectFilter::All, SeekFrom::Latest).await);
    produce(broker, &t, vec![msg(&s, "2")]).await;
    assert_eq!(positions(&take(&mut keep, 2).await), vec![1, 2]);
}

async fn spawn_echo_server(mut requests: crate::RequestStream, tag: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let mut reply = format!("{tag}:").into_bytes();
            reply.extend_from_slice(&req.payload);
            let _ = req.respond(Bytes::from(reply), Vec::new()).await;
        }
    })
}

/// A request reaches the server with its subject, payload and headers, and the reply comes
/// back.
pub async fn request_reply_round_trip(broker: &dyn LogBroker, prefix: &str) {
    let subj = format!("{prefix}.rpc.echo");
    let mut requests = broker.serve(&subj, None).await.expect("serve");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = tokio::spawn(async move {
        while let Some(req) = requests.next().await {
            let _ = seen_tx.send((req.subject.clone(), req.headers.clone()));
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&req.payload);
            req.respond(Bytes::from(reply), vec![("r".into(), "1".into())]).await.expect("respond");
        }
    });
    for i in 0..3 {
        let headers: Headers = vec![("x-req".into(), i.to_string())];
        let reply =
            broker.request(&subj, Bytes::from(format!("ping{i}")), headers.clone(), WAIT).await.expect("request");
        assert_eq!(reply.as_ref(), format!("echo:ping{i}").as_bytes());
        let (s, h) = seen_rx.recv().await.expect("server saw the request");
        assert_eq!(s, subj);
        assert_eq!(h, headers);
    }
    server.abort();
}

/// A request to a subject nobody serves fails fast with `NoResponders`, also once the
/// only server stopped serving.
pub async fn request_without_responders(broker: &dyn LogBroker, prefix: &str) {
    let subj = format!("{prefix}.rpc.nobody");
    let started = Instant::now();
    let err = broker.request(&subj, Bytes::from_static(b"x"), Vec::new(), WAIT).await.expect_err("no server");
    assert!(matches!(err, BrokerError::NoResponders { .. }), "expected NoResponders, got {err}");
    assert!(err.is_retriable());
    assert!(started.elapsed() < WAIT / 2, "NoResponders took {:?}", started.elapsed());

    let gone = format!("{prefix}.rpc.gone");
    let requests = broker.serve(&gone, None).await.expect("serve");
    let server = spawn_echo_server(requests, "s").await;
    let reply = broker.request(&gone, Bytes::from_static(b"1"), Vec::new(), WAIT).await.expect("served");
    assert_eq!(reply.as_ref(), b"s:1");
    server.abort();
    let _ = server.await;
    // Interest may take a moment to disappear on a networked broker.
    let deadline = Instant::now() + WAIT;
    loop {
        match broker.request(&gone, Bytes::from_static(b"2"), Vec::new(), Duration::from_millis(500)).await {
            Err(BrokerError::NoResponders { .. }) => break,
            other => assert!(Instant::now() < deadline, "server dropped but request gave {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A request nobody answers fails with `Timeout` after its deadline.
pub async fn request_timeout(broker: &dyn LogBroker, prefix: &str) {
    let subj = format!("{prefix}.rpc.silent");
    let mut requests = broker.serve(&subj, None).await.expect("serve");
    let (got_tx, mut got_rx) = tokio::sync::mpsc::unbounded_channel();
    // Holds every request without replying.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(req) = requests.next().await {
            let _ = got_tx.send(());
            held.push(req);
        }
    });
    let timeout = Duration::from_millis(200);
    let started = Instant::now();
    let err = broker.request(&subj, Bytes::from_static(b"x"), Vec::new(), timeout).await.expect_err("no reply");
    let elapsed = started.elapsed();
    match &err {
        BrokerError::Timeout { subject, .. } => assert_eq!(subject, &subj),
        other => panic!("expected Timeout, got {other}"),
    }
    assert!(err.is_retriable());
    assert!(elapsed >= timeout - Duration::from_millis(20), "timed out early: {elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(3), "timed out late: {elapsed:?}");
    assert!(got_rx.try_recv().is_ok(), "the server received the request");
    server.abort();
}

/// Each request to a queue group is handled by exactly one member, and the load spreads.
pub async fn queue_group_distribution(broker: &dyn LogBroker, prefix: &str) {
    let subj = format!("{prefix}.rpc.work");
    const MEMBERS: usize = 3;
    const REQUESTS: usize = 60;
    let handled: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let mut servers = Vec::new();
    for member in 0..MEMBERS {
        let mut requests = broker.serve(&subj, Some("workers")).await.expect("serve");
        let handled = handled.clone();
        servers.push(tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let id = String::from_utf8_lossy(&req.payload).into_owned();
                handled.lock().push((member, id));
                let _ = req.respond(Bytes::from(member.to_string()), Vec::new()).await;
            }
        }));
    }
    let replies =
        join_all((0..REQUESTS).map(|i| broker.request(&subj, Bytes::from(format!("req{i}")), Vec::new(), WAIT))).await;
    let mut per_member = [0usize; MEMBERS];
    for r in replies {
        let member: usize = String::from_utf8_lossy(&r.expect("request")).parse().expect("member id");
        per_member[member] += 1;
    }
    let handled = handled.lock().clone();
    assert_eq!(handled.len(), REQUESTS, "each request handled exactly once");
    let ids: BTreeSet<&str> = handled.iter().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), REQUESTS, "no request handled twice");
    assert!(per_member.iter().all(|&n| n > 0), "every member got work: {per_member:?}");
    for s in servers {
        s.abort();
    }
}

/// Without a queue group every server receives the request; the first reply wins.
pub async fn fanout_without_queue_group(broker: &dyn LogBroker, prefix: &str) {
    let subj = format!("{prefix}.rpc.fanout");
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut servers = Vec::new();
    for (name, answers) in [("a", true), ("b", false)] {
        let mut requests = broker.serve(&subj, None).await.expect("serve");
        let seen_tx = seen_tx.clone();
        servers.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Some(req) = requests.next().await {
                let _ = seen_tx.send(name);
                if answers {
                    let _ = req.respond(Bytes::from(name), Vec::new()).await;
                } else {
                    held.push(req);
                }
            }
        }));
    }
    let reply = broker.request(&subj, Bytes::from_static(b"hi"), Vec::new(), WAIT).await.expect("request");
    assert_eq!(reply.as_ref(), b"a");
    let mut seen = BTreeSet::new();
    for _ in 0..2 {
        let name = tokio::time::timeout(WAIT, seen_rx.recv()).await.expect("delivery").expect("channel");
        seen.insert(name);
    }
    assert_eq!(seen, BTreeSet::from(["a", "b"]), "both servers received the request");
    for s in servers {
        s.abort();
    }
}

async fn next_note(stream: &mut NotificationStream) -> crate::Notification {
    tokio::time::timeout(WAIT, stream.next()).await.expect("notification in time").expect("listener open")
}

/// Notifications reach current listeners whose pattern matches (`>` matches any suffix).
pub async fn notify_and_listen(broker: &dyn LogBroker, prefix: &str) {
    let evt = format!("{prefix}.evt");
    let mut all = broker.listen(&format!("{evt}.>")).await.expect("listen");
    let mut exact = broker.listen(&format!("{evt}.a")).await.expect("listen");
    let mut other = broker.listen(&format!("{prefix}.other.>")).await.expect("listen");

    // No listener for this one: silently dropped.
    broker.notify(&format!("{prefix}.nobody.x"), Bytes::from_static(b"-"), Vec::new()).await.expect("notify");
    broker.notify(&format!("{evt}.a"), Bytes::from_static(b"1"), vec![("h".into(), "v".into())]).await.expect("notify");
    broker.notify(&format!("{evt}.b.c"), Bytes::from_static(b"2"), Vec::new()).await.expect("notify");
    // `evt.>` does not match `evt` itself.
    broker.notify(&evt, Bytes::from_static(b"3"), Vec::new()).await.expect("notify");
    // Markers: the next notification each listener gets after the real ones.
    broker.notify(&format!("{evt}.a"), Bytes::from_static(b"end"), Vec::new()).await.expect("notify");
    broker.notify(&format!("{prefix}.other.end"), Bytes::from_static(b"end"), Vec::new()).await.expect("notify");

    let n = next_note(&mut all).await;
    assert_eq!((n.subject.as_str(), n.payload.as_ref()), (format!("{evt}.a").as_str(), &b"1"[..]));
    assert_eq!(n.headers, vec![("h".to_string(), "v".to_string())]);
    let n = next_note(&mut all).await;
    assert_eq!((n.subject.as_str(), n.payload.as_ref()), (format!("{evt}.b.c").as_str(), &b"2"[..]));
    assert_eq!(next_note(&mut all).await.payload.as_ref(), b"end", "`{evt}.>` must not match `{evt}`");

    assert_eq!(next_note(&mut exact).await.payload.as_ref(), b"1");
    assert_eq!(next_note(&mut exact).await.payload.as_ref(), b"end");

    let n = next_note(&mut other).await;
    assert_eq!((n.subject.as_str(), n.payload.as_ref()), (format!("{prefix}.other.end").as_str(), &b"end"[..]));

    // A dropped listener no longer receives anything; the others still do.
    drop(exact);
    broker.notify(&format!("{evt}.a"), Bytes::from_static(b"after"), Vec::new()).await.expect("notify");
    assert_eq!(next_note(&mut all).await.payload.as_ref(), b"after");
}

/// Runs every case of the suite.
pub async fn run_all(broker: &dyn LogBroker, prefix: &str) {
    ensure_topic_is_idempotent(broker, prefix).await;
    produce_assigns_contiguous_positions(broker, prefix).await;
    subscribe_from_earliest(broker, prefix).await;
    subscribe_from_latest(broker, prefix).await;
    subscribe_after_position(broker, prefix).await;
    subject_filters(broker, prefix).await;
    live_follow(broker, prefix).await;
    latest_position_tracks_appends(broker, prefix).await;
    headers_round_trip(broker, prefix).await;
    concurrent_producers(broker, prefix).await;
    truncate_discards_prefix(broker, prefix).await;
    message_too_large_appends_nothing(broker, prefix).await;
    record_at_the_size_limit_round_trips(broker, prefix).await;
    missing_topic_is_not_found(broker, prefix).await;
    topics_lists_created_topics(broker, prefix).await;
    dropped_subscription_is_harmless(broker, prefix).await;
    request_reply_round_trip(broker, prefix).await;
    request_without_responders(broker, prefix).await;
    request_timeout(broker, prefix).await;
    queue_group_distribution(broker, prefix).await;
    fanout_without_queue_group(broker, prefix).await;
    notify_and_listen(broker, prefix).await;
}
