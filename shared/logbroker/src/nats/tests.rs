//! Tests against a real NATS server (`FERROVEC_TEST_NATS_URL`, started by
//! `scripts/deps.sh start_nats`). Without it they print a notice and pass, unless
//! `FERROVEC_REQUIRE_REAL_BACKENDS=1`. Every test uses topics under its own prefix and
//! deletes its streams at the end.

use std::collections::BTreeSet;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;

use super::*;
use crate::testsuite;

/// Bound of every test against a real server.
const TEST_TIMEOUT: Duration = Duration::from_secs(300);
const WAIT: Duration = Duration::from_secs(10);

/// The test server's URL, or None (after a notice) when none is configured. Panics
/// instead when `FERROVEC_REQUIRE_REAL_BACKENDS=1`, so a CI run cannot silently skip.
fn test_url(name: &str) -> Option<String> {
    let url = std::env::var("FERROVEC_TEST_NATS_URL").unwrap_or_default();
    if url.is_empty() {
        if std::env::var("FERROVEC_REQUIRE_REAL_BACKENDS").as_deref() == Ok("1") {
            panic!(
                "FERROVEC_REQUIRE_REAL_BACKENDS=1 but FERROVEC_TEST_NATS_URL is not set: start NATS \
                 (`source scripts/deps.sh && start_nats`) or unset FERROVEC_REQUIRE_REAL_BACKENDS"
            );
        }
        eprintln!("notice: FERROVEC_TEST_NATS_URL is not set; skipping the NATS test {name}");
        return None;
    }
    Some(url)
}

/// A topic prefix unique to this run and test (letters, digits, `-`).
fn unique_prefix(name: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_nanos();
    format!("fvt{}-{:x}-{name}", std::process::id(), nanos % (1 << 48))
}

async fn bounded<F: std::future::Future>(name: &str, future: F) -> F::Output {
    tokio::time::timeout(TEST_TIMEOUT, future).await.unwrap_or_else(|_| panic!("{name} took over {TEST_TIMEOUT:?}"))
}

async fn connect(url: &str) -> Arc<NatsBroker> {
    NatsBroker::connect(url, NatsBrokerConfig::default()).await.expect("connect to NATS")
}

/// Deletes the streams of the topics under `prefix`; returns how many.
async fn delete_topics(broker: &NatsBroker, prefix: &str) -> usize {
    let mut deleted = 0;
    for topic in broker.topics().await.expect("topics") {
        if topic.starts_with(prefix) {
            let stream = broker.stream_name(&topic).expect("stream name");
            broker.js.delete_stream(&stream).await.unwrap_or_else(|e| panic!("delete stream {stream}: {e}"));
            deleted += 1;
        }
    }
    deleted
}

fn record(subject: &str, payload: impl Into<Bytes>, headers: &[(&str, &str)]) -> OutgoingMessage {
    OutgoingMessage {
        subject: subject.to_owned(),
        payload: payload.into(),
        headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

async fn next(stream: &mut LogStream) -> LogMessage {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(m))) => m,
        other => panic!("expected a record, got {other:?}"),
    }
}

async fn assert_quiet(stream: &mut LogStream, what: &str) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("{what}: expected nothing, got {item:?}");
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    Bytes::from((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite() {
    let Some(url) = test_url("conformance") else { return };
    bounded("conformance suite", async {
        let broker = connect(&url).await;
        assert_eq!(broker.kind(), "nats");
        let prefix = unique_prefix("suite");
        testsuite::run_all(&*broker, &prefix).await;
        assert!(delete_topics(&broker, &prefix).await >= 10, "the suite's topics were listed and deleted");
        assert!(broker.topics().await.expect("topics").iter().all(|t| !t.starts_with(&prefix)));
    })
    .await;
    eprintln!("NATS conformance suite passed against {}", redact(&url));
}

/// Records of several MiB are chunked below the server's max_payload and come back whole,
/// with their headers, through every kind of subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_mib_records_are_chunked_transparently() {
    let Some(url) = test_url("chunking") else { return };
    bounded("chunking test", async {
        let broker = connect(&url).await;
        let max_payload = broker.max_payload();
        assert!(broker.max_message_bytes() >= 16 * max_payload, "the logical limit is far above max_payload");
        let prefix = unique_prefix("chunk");
        let t = format!("{prefix}.big");
        broker.ensure_topic(&t).await.expect("ensure");
        let (a, b) = (format!("{t}.a"), format!("{t}.b"));
        let big1 = pattern(5 << 20, 1);
        let big2 = pattern(3 * max_payload + 17, 2);
        let batch = vec![
            record(&a, "small1", &[("k", "1")]),
            record(&b, big1.clone(), &[("trace", "00-abc-01"), ("k", "x"), ("k", "y")]),
            record(&a, "small2", &[]),
            record(&a, big2.clone(), &[]),
        ];
        let pos = broker.produce(&t, batch).await.expect("produce");
        assert_eq!(pos[0], 1);
        let chunks1 = pos[1] - pos[0];
        assert!(chunks1 >= 6, "5 MiB takes several chunks: {pos:?}");
        assert_eq!(pos[2], pos[1] + 1);
        assert_eq!(pos[3] - pos[2], 4, "3 max_payloads and a bit make 4 chunks: {pos:?}");
        assert_eq!(broker.latest_position(&t).await.expect("latest"), pos[3]);

        let mut all = broker.subscribe(&t, SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        let got: Vec<LogMessage> =
            vec![next(&mut all).await, next(&mut all).await, next(&mut all).await, next(&mut all).await];
        assert_eq!(got.iter().map(|m| m.position).collect::<Vec<_>>(), pos);
        assert_eq!(got[0].payload.as_ref(), b"small1");
        assert!(got[1].payload == big1, "5 MiB record intact");
        assert_eq!(got[1].subject, b);
        let mut h = got[1].headers.clone();
        h.sort();
        assert_eq!(h, vec![("k".into(), "x".into()), ("k".into(), "y".into()), ("trace".into(), "00-abc-01".into())]);
        assert!(got[3].payload == big2);
        assert!(got[3].headers.is_empty());
        assert_quiet(&mut all, "after the batch").await;

        // After(p) resumes after the chunked record.
        let mut after = broker.subscribe(&t, SubjectFilter::All, SeekFrom::After(pos[1])).await.expect("subscribe");
        assert_eq!(next(&mut after).await.payload.as_ref(), b"small2");
        // Subject filters see whole records.
        let mut only_b = broker
            .subscribe(&t, SubjectFilter::Subjects(vec![b.clone()]), SeekFrom::Earliest)
            .await
            .expect("subscribe");
        let m = next(&mut only_b).await;
        assert_eq!((m.position, m.payload == big1), (pos[1], true));
        assert_quiet(&mut only_b, "filter b").await;
        // A live chunked record reaches a subscriber that follows.
        let mut latest = broker.subscribe(&t, SubjectFilter::All, SeekFrom::Latest).await.expect("subscribe");
        let big3 = pattern(2 * max_payload, 3);
        let p3 = broker.produce(&t, vec![record(&b, big3.clone(), &[])]).await.expect("produce");
        let m = next(&mut latest).await;
        assert_eq!(m.position, p3[0]);
        assert!(m.payload == big3);
        let m = next(&mut only_b).await;
        assert_eq!(m.position, p3[0]);

        // One byte above the logical limit is refused.
        let limit = broker.max_message_bytes();
        let err = broker.produce(&t, vec![record(&a, vec![0u8; limit + 1], &[])]).await.expect_err("too large");
        assert!(matches!(err, BrokerError::MessageTooLarge { size, limit: l } if size == limit + 1 && l == limit));
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// A subscription that starts inside a chunked record (after a truncation) skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncation_inside_a_chunked_record_skips_it() {
    let Some(url) = test_url("chunk truncation") else { return };
    bounded("chunk truncation test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("chunktrunc");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        let big = pattern(3 * broker.max_payload(), 9);
        let pos = broker
            .produce(&t, vec![record(&s, "before", &[]), record(&s, big, &[]), record(&s, "after", &[])])
            .await
            .expect("produce");
        assert!(pos[1] - pos[0] >= 3);
        // Cut the big record in the middle.
        let cut = pos[1] - 1;
        broker.truncate(&t, cut).await.expect("truncate");
        let mut earliest = broker.subscribe(&t, SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        let m = next(&mut earliest).await;
        assert_eq!((m.position, m.payload.as_ref()), (pos[2], &b"after"[..]));
        let mut filtered = broker
            .subscribe(&t, SubjectFilter::Subjects(vec![s.clone()]), SeekFrom::Earliest)
            .await
            .expect("subscribe");
        assert_eq!(next(&mut filtered).await.position, pos[2]);
        match broker.subscribe(&t, SubjectFilter::All, SeekFrom::After(pos[0])).await {
            Err(BrokerError::PositionTruncated { first_retained, .. }) => assert_eq!(first_retained, cut),
            other => panic!("expected PositionTruncated, got {:?}", other.map(|_| ())),
        }
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// A subscriber without a filter that falls behind a truncation gets `PositionTruncated`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_subscriber_sees_truncation_error() {
    let Some(url) = test_url("lagging subscriber") else { return };
    bounded("lagging subscriber test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("lag");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        broker.produce(&t, (1..=10).map(|i| record(&s, format!("r{i}"), &[])).collect()).await.expect("produce");
        // Subscribed at 3 but not reading yet: the consumer's first pull may already have
        // fetched everything, so truncate before the first message is requested.
        let mut sub = broker.subscribe(&t, SubjectFilter::All, SeekFrom::After(2)).await.expect("subscribe");
        broker.truncate(&t, 8).await.expect("truncate");
        loop {
            match tokio::time::timeout(WAIT, sub.next()).await.expect("an item").expect("stream open") {
                Ok(m) => assert!(m.position < 8, "{}", m.position),
                Err(BrokerError::PositionTruncated { position, first_retained, .. }) => {
                    assert_eq!(first_retained, 8);
                    assert!((3..8).contains(&position), "{position}");
                    break;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(
            tokio::time::timeout(WAIT, sub.next()).await.expect("ends").is_none(),
            "the stream ends after an error"
        );
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// Two connections (two processes, as far as the server can tell) producing to one topic
/// at once: every batch is contiguous and nothing is lost or duplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_stay_contiguous_across_connections() {
    let Some(url) = test_url("cross-connection batches") else { return };
    bounded("cross-connection test", async {
        let (b1, b2) = (connect(&url).await, connect(&url).await);
        let prefix = unique_prefix("xconn");
        let t = format!("{prefix}.t");
        b1.ensure_topic(&t).await.expect("ensure");
        b2.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        let work = |broker: Arc<NatsBroker>, who: usize| {
            let (t, s) = (t.clone(), s.clone());
            async move {
                let mut out = Vec::new();
                for call in 0..15 {
                    let n = 1 + (call + who) % 5;
                    let names: Vec<String> = (0..n).map(|j| format!("{who}-{call}-{j}")).collect();
                    let batch = names.iter().map(|p| record(&s, p.clone(), &[])).collect();
                    let pos = broker.produce(&t, batch).await.expect("produce");
                    assert!(pos.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {pos:?}");
                    out.extend(pos.into_iter().zip(names));
                }
                out
            }
        };
        let (r1, r2, r3) = tokio::join!(work(b1.clone(), 0), work(b2.clone(), 1), work(b1.clone(), 2));
        let all: Vec<(Position, String)> = r1.into_iter().chain(r2).chain(r3).collect();
        let positions: BTreeSet<Position> = all.iter().map(|(p, _)| *p).collect();
        assert_eq!(positions.len(), all.len(), "no position twice");
        assert_eq!(positions.iter().copied().collect::<Vec<_>>(), (1..=all.len() as u64).collect::<Vec<_>>());
        let mut sub = b2.subscribe(&t, SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        let mut expected = all.clone();
        expected.sort();
        for (p, name) in expected {
            let m = next(&mut sub).await;
            assert_eq!((m.position, String::from_utf8_lossy(&m.payload).into_owned()), (p, name));
        }
        assert_eq!(delete_topics(&b1, &prefix).await, 1);
    })
    .await;
}

/// A batch of more messages than one atomic batch takes is written in parts, still
/// contiguous, and in-process producers wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_above_the_atomic_limit_are_split() {
    let Some(url) = test_url("large batches") else { return };
    bounded("large batch test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("split");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        let n = MAX_ATOMIC_BATCH * 2 + 10;
        let big = broker.produce(&t, (0..n).map(|i| record(&s, format!("{i}"), &[])).collect());
        let small = async {
            let mut out = Vec::new();
            for i in 0..20 {
                out.push(broker.produce(&t, vec![record(&s, format!("x{i}"), &[])]).await.expect("small")[0]);
            }
            out
        };
        let (big, small) = tokio::join!(big, small);
        let big = big.expect("large batch");
        assert_eq!(big.len(), n);
        assert!(big.windows(2).all(|w| w[1] == w[0] + 1), "the large batch is contiguous");
        assert!(small.iter().all(|p| *p < big[0] || *p > big[n - 1]), "nothing lands inside the large batch");
        assert_eq!(broker.latest_position(&t).await.expect("latest"), (n + 20) as u64);
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// Topics map to readable stream names; a topic whose stream name is taken by another
/// topic is refused, and bad input is rejected without side effects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_collisions_and_invalid_input() {
    let Some(url) = test_url("names") else { return };
    bounded("names test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("names");
        let t = format!("{prefix}.dml.3");
        broker.ensure_topic(&t).await.expect("ensure");
        let stream = broker.stream_name(&t).expect("name");
        assert_eq!(stream, format!("{}_DML_3", prefix.to_ascii_uppercase()));
        let info = broker.stream_info(&stream).await.expect("info").expect("stream exists");
        assert_eq!(info.config.subjects, vec![format!("{t}.>")]);
        assert_eq!(info.config.storage, StorageType::File);
        assert!(info.config.allow_atomic_publish);

        // `<prefix>.dml_3` maps to the same stream name.
        let twin = format!("{prefix}.dml_3");
        assert_eq!(broker.stream_name(&twin).expect("name"), stream);
        assert!(matches!(broker.ensure_topic(&twin).await, Err(BrokerError::InvalidArgument { .. })));
        let fresh = connect(&url).await;
        assert!(matches!(
            fresh.produce(&twin, vec![record(&format!("{twin}.a"), "x", &[])]).await,
            Err(BrokerError::TopicNotFound { .. })
        ));
        let topics = broker.topics().await.expect("topics");
        assert!(topics.contains(&t) && !topics.contains(&twin), "{topics:?}");

        let s = format!("{t}.a");
        let bad_batches = vec![
            vec![record(&s, "ok", &[]), record(&format!("{prefix}.other.a"), "outside the topic", &[])],
            vec![record(&format!("{t}.*"), "wildcard", &[])],
            vec![record(&format!("{t}.a b"), "space", &[])],
            vec![record(&s, "ok", &[]), record(&s, "reserved header", &[("Nats-Msg-Id", "1")])],
            vec![record(&s, "line break", &[("k", "a\r\nb")])],
            vec![record(&s, "colon", &[("a:b", "v")])],
        ];
        for batch in bad_batches {
            let err = broker.produce(&t, batch.clone()).await.expect_err("invalid");
            assert!(matches!(err, BrokerError::InvalidArgument { .. }), "{batch:?}: {err}");
        }
        assert_eq!(broker.latest_position(&t).await.expect("latest"), 0, "nothing appended");
        for bad in ["", "a b", "a/b", "a..b", "x.>"] {
            assert!(matches!(broker.ensure_topic(bad).await, Err(BrokerError::InvalidArgument { .. })), "{bad:?}");
        }
        assert!(matches!(broker.listen("a.*.b").await, Err(BrokerError::InvalidArgument { .. })));
        assert!(matches!(broker.serve("a.>", None).await, Err(BrokerError::InvalidArgument { .. })));
        assert!(matches!(
            broker.subscribe(&t, SubjectFilter::Subjects(vec!["elsewhere.a".into()]), SeekFrom::Earliest).await,
            Err(BrokerError::InvalidArgument { .. })
        ));
        // An empty filter list matches nothing (and does not fail).
        let mut none =
            broker.subscribe(&t, SubjectFilter::Subjects(Vec::new()), SeekFrom::Earliest).await.expect("subscribe");
        broker.produce(&t, vec![record(&s, "x", &[])]).await.expect("produce");
        assert_quiet(&mut none, "empty filter").await;
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// A stream deleted behind the broker's back makes the topic missing, and `ensure_topic`
/// creates it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_stream_is_missing_until_ensured_again() {
    let Some(url) = test_url("deleted stream") else { return };
    bounded("deleted stream test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("deleted");
        let t = format!("{prefix}.t");
        let s = format!("{t}.s");
        broker.ensure_topic(&t).await.expect("ensure");
        assert_eq!(broker.produce(&t, vec![record(&s, "1", &[])]).await.expect("produce"), vec![1]);
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
        let err = broker.produce(&t, vec![record(&s, "2", &[])]).await.expect_err("stream deleted");
        assert!(matches!(err, BrokerError::TopicNotFound { .. }), "{err}");
        let err = broker.produce(&t, vec![record(&s, "2", &[]), record(&s, "3", &[])]).await.expect_err("batch");
        assert!(matches!(err, BrokerError::TopicNotFound { .. }), "{err}");
        assert!(matches!(broker.latest_position(&t).await, Err(BrokerError::TopicNotFound { .. })));
        broker.ensure_topic(&t).await.expect("ensure again");
        assert_eq!(broker.produce(&t, vec![record(&s, "1", &[])]).await.expect("produce"), vec![1]);
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// Replies above max_payload are chunked; requests above it are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_replies_are_chunked() {
    let Some(url) = test_url("large replies") else { return };
    bounded("large reply test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("reply");
        let subject = format!("{prefix}.rpc.big");
        let mut requests = broker.serve(&subject, Some("g")).await.expect("serve");
        let max_payload = broker.max_payload();
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let len: usize = String::from_utf8_lossy(&req.payload).parse().expect("length");
                req.respond(pattern(len, 5), vec![("k".into(), "v".into())]).await.expect("respond");
            }
        });
        for len in [0, 10, max_payload - 600, max_payload, 3 * max_payload + 1, 6 << 20] {
            let reply =
                broker.request(&subject, Bytes::from(len.to_string()), Vec::new(), WAIT).await.expect("request");
            assert!(reply == pattern(len, 5), "reply of {len} bytes intact (got {})", reply.len());
        }
        let err = broker
            .request(&subject, pattern(max_payload + 1, 0), Vec::new(), WAIT)
            .await
            .expect_err("request above max_payload");
        assert!(matches!(err, BrokerError::MessageTooLarge { .. }), "{err}");
        let err = broker.notify(&subject, pattern(max_payload + 1, 0), Vec::new()).await.expect_err("too large");
        assert!(matches!(err, BrokerError::MessageTooLarge { .. }), "{err}");
        server.abort();
    })
    .await;
}

/// A request that the queue-group member receiving it drops (unanswered, or still queued
/// when the member stops serving) fails with `NoResponders` well before its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_dropped_by_a_queue_member_is_no_responders() {
    let Some(url) = test_url("dropped requests") else { return };
    bounded("dropped request test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("dropped");
        let subject = format!("{prefix}.rpc.drop");
        let mut requests = broker.serve(&subject, Some("g")).await.expect("serve");
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                drop(req);
            }
        });
        let started = Instant::now();
        let err = broker.request(&subject, Bytes::new(), Vec::new(), WAIT).await.expect_err("dropped");
        assert!(matches!(err, BrokerError::NoResponders { .. }), "{err}");
        assert!(started.elapsed() < WAIT / 2, "took {:?}", started.elapsed());
        server.abort();

        // Requests queued in a stream that is dropped before taking them. A subject of its
        // own: the aborted server above may still be a member of the group for a moment
        // (abort is asynchronous), and a request NATS routes to a member in the instant it
        // unsubscribes is lost (see `ServeStream`), so it would wait for its timeout.
        let subject = format!("{prefix}.rpc.queued");
        let queued = broker.serve(&subject, Some("g")).await.expect("serve");
        let pending = {
            let broker = broker.clone();
            let subject = subject.clone();
            tokio::spawn(async move { broker.request(&subject, Bytes::new(), Vec::new(), WAIT).await })
        };
        // Time for the request to reach the served stream (where the drop answers it); wide,
        // for a CI machine busy with the whole suite.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let started = Instant::now();
        drop(queued);
        let err = pending.await.expect("task").expect_err("dropped while queued");
        assert!(matches!(err, BrokerError::NoResponders { .. }), "{err}");
        assert!(started.elapsed() < WAIT / 2, "took {:?}", started.elapsed());

        // A reply that cannot be sent (too large) also releases the requester.
        let subject = format!("{prefix}.rpc.too_large");
        let mut requests = broker.serve(&subject, Some("g")).await.expect("serve");
        let limit = broker.max_message_bytes();
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let err = req.respond(Bytes::from(vec![0u8; limit + 1]), Vec::new()).await.expect_err("too large");
                assert!(matches!(err, BrokerError::MessageTooLarge { .. }));
            }
        });
        let err = broker.request(&subject, Bytes::new(), Vec::new(), WAIT).await.expect_err("unanswerable");
        assert!(matches!(err, BrokerError::NoResponders { .. }), "{err}");
        server.abort();
    })
    .await;
}

/// Produce latency stays low for single records and small batches (ack round trips).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_round_trips_are_fast() {
    let Some(url) = test_url("latency") else { return };
    bounded("latency test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("lat");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        let mut sub = broker.subscribe(&t, SubjectFilter::All, SeekFrom::Latest).await.expect("subscribe");
        let mut single = Vec::new();
        let mut batch = Vec::new();
        for i in 0..100u64 {
            let started = Instant::now();
            broker.produce(&t, vec![record(&s, format!("{i}"), &[])]).await.expect("produce");
            next(&mut sub).await;
            single.push(started.elapsed());
            let started = Instant::now();
            broker.produce(&t, vec![record(&s, "a", &[]), record(&s, "b", &[])]).await.expect("produce");
            batch.push(started.elapsed());
        }
        single.sort();
        batch.sort();
        let (s50, b50) = (single[50], batch[50]);
        eprintln!("produce+deliver median {s50:?}, 2-record atomic batch median {b50:?}");
        // Generous bounds for a loaded 2-core machine.
        assert!(s50 < Duration::from_millis(50), "single produce+deliver median {s50:?}");
        assert!(b50 < Duration::from_millis(50), "batch produce median {b50:?}");
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// A TCP proxy in front of the server whose connections can be cut.
struct Proxy {
    url: String,
    conns: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(server_url: &str) -> Proxy {
        let target = server_url.trim_start_matches("nats://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("nats://{}", listener.local_addr().expect("addr"));
        let conns: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let accept = tokio::spawn({
            let conns = conns.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let target = target.clone();
                    conns.lock().push(tokio::spawn(async move {
                        if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    }));
                }
            }
        });
        Proxy { url, conns, accept }
    }

    /// Drops every open connection (both directions at once, like a network failure).
    fn cut(&self) {
        for c in self.conns.lock().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// After the connection breaks, async-nats reconnects: a subscription continues without
/// gaps or duplicates, produce and request/reply work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_and_calls_survive_a_reconnect() {
    let Some(url) = test_url("reconnect") else { return };
    bounded("reconnect test", async {
        let proxy = Proxy::start(&url).await;
        let broker = connect(&proxy.url).await;
        let prefix = unique_prefix("reconn");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        let s = format!("{t}.s");
        let mut filtered = broker
            .subscribe(&t, SubjectFilter::Subjects(vec![s.clone()]), SeekFrom::Earliest)
            .await
            .expect("subscribe");
        let mut all = broker.subscribe(&t, SubjectFilter::All, SeekFrom::After(0)).await.expect("subscribe");
        let rpc = format!("{prefix}.rpc.echo");
        let mut requests = broker.serve(&rpc, Some("g")).await.expect("serve");
        let server = tokio::spawn(async move {
            while let Some(req) = requests.next().await {
                let payload = req.payload.clone();
                let _ = req.respond(payload, Vec::new()).await;
            }
        });
        broker.produce(&t, (1..=5).map(|i| record(&s, format!("m{i}"), &[])).collect()).await.expect("produce");
        for i in 1..=5 {
            assert_eq!(next(&mut filtered).await.position, i);
            assert_eq!(next(&mut all).await.position, i);
        }

        proxy.cut();
        // Calls made while reconnecting may fail with retriable errors; retry them.
        let deadline = Instant::now() + WAIT * 3;
        let mut produced = 0;
        while produced < 5 {
            match broker.produce(&t, vec![record(&s, format!("after{produced}"), &[])]).await {
                Ok(_) => produced += 1,
                Err(e) => {
                    assert!(e.is_retriable(), "{e}");
                    assert!(Instant::now() < deadline, "no produce succeeded after the reconnect: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        let latest = broker.latest_position(&t).await.expect("latest");
        assert!(latest >= 10);
        for expected in 6..=latest {
            assert_eq!(next(&mut filtered).await.position, expected, "filtered subscription after the reconnect");
            assert_eq!(next(&mut all).await.position, expected, "unfiltered subscription after the reconnect");
        }
        assert_quiet(&mut all, "no duplicates after the reconnect").await;
        let reply = loop {
            match broker.request(&rpc, Bytes::from_static(b"ping"), Vec::new(), WAIT).await {
                Ok(r) => break r,
                Err(e) => {
                    assert!(e.is_retriable() && Instant::now() < deadline, "{e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(reply.as_ref(), b"ping");
        server.abort();
        assert_eq!(delete_topics(&broker, &prefix).await, 1);
    })
    .await;
}

/// Dropping the broker closes its connection: its streams end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_the_broker_is_dropped() {
    let Some(url) = test_url("broker drop") else { return };
    bounded("broker drop test", async {
        let broker = connect(&url).await;
        let prefix = unique_prefix("drop");
        let t = format!("{prefix}.t");
        broker.ensure_topic(&t).await.expect("ensure");
        broker.produce(&t, vec![record(&format!("{t}.s"), "1", &[])]).await.expect("produce");
        let mut sub = broker.subscribe(&t, SubjectFilter::All, SeekFrom::Earliest).await.expect("subscribe");
        assert_eq!(next(&mut sub).await.position, 1);
        let mut requests = broker.serve(&format!("{prefix}.svc"), None).await.expect("serve");
        let mut notes = broker.listen(&format!("{prefix}.evt.>")).await.expect("listen");
        drop(broker);
        assert!(tokio::time::timeout(WAIT, requests.next()).await.expect("ends").is_none());
        assert!(tokio::time::timeout(WAIT, notes.next()).await.expect("ends").is_none());
        let end = tokio::time::timeout(WAIT, sub.next()).await.expect("the subscription ends");
        assert!(!matches!(end, Some(Ok(_))), "no record after the broker is gone: {end:?}");
        let cleanup = connect(&url).await;
        assert_eq!(delete_topics(&cleanup, &prefix).await, 1);
    })
    .await;
}

/// Connecting to a port nobody listens on fails with a retriable error, quickly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_a_retriable_error() {
    let started = Instant::now();
    let err = NatsBroker::connect("nats://127.0.0.1:1", NatsBrokerConfig::default()).await.expect_err("nobody there");
    assert!(err.is_retriable(), "{err}");
    assert!(matches!(err, BrokerError::Backend { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let err = NatsBroker::connect("nats://[::1", NatsBrokerConfig::default()).await.expect_err("malformed address");
    assert!(!err.is_retriable(), "{err}");
    let bad = NatsBrokerConfig { stream_prefix: "a.b".into(), ..NatsBrokerConfig::default() };
    assert!(matches!(NatsBroker::connect("nats://127.0.0.1:1", bad).await, Err(BrokerError::InvalidArgument { .. })));
}

#[test]
fn urls_are_redacted() {
    assert_eq!(redact("nats://user:pw@host:4222"), "nats://***@host:4222");
    assert_eq!(redact("nats://host:4222"), "nats://host:4222");
    assert_eq!(redact("tok@host"), "***@host");
}

#[test]
fn config_has_defaults_and_refuses_unknown_keys() {
    let cfg: NatsBrokerConfig = serde_json::from_str(r#"{"replicas": 3, "max_age_secs": 86400}"#).expect("parse");
    assert_eq!((cfg.replicas, cfg.max_age_secs, cfg.storage), (3, Some(86400), NatsStorage::File));
    assert_eq!(cfg.max_record_bytes, 64 << 20);
    assert!(serde_json::from_str::<NatsBrokerConfig>(r#"{"replica": 3}"#).is_err());
}
