//! The storage suite on SQLite, plus SQLite-specific checks (durability across
//! reopen, recovery of claims left by a crashed process, pragmas).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store_suite::{Ctx, T0};
use imrelay_gateway::store::sqlite::SqliteStore;
use imrelay_gateway::store::*;
use imrelay_sdk::clock::FixedClock;

async fn open_at(dir: &tempfile::TempDir, clock: Arc<FixedClock>) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("imrelay.db").display());
    SqliteStore::open(StoreOptions::new(url).with_clock(clock))
        .await
        .unwrap()
}

async fn run_case(name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(T0));
    let store: Arc<dyn Store> = Arc::new(open_at(&dir, clock.clone()).await);
    let ctx = Ctx {
        store: store.clone(),
        clock,
    };
    crate::store_suite::run(name, &ctx).await;
    store.close().await;
}

store_cases!();

#[tokio::test]
async fn committed_messages_survive_reopen_and_claims_are_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(T0));
    let store = open_at(&dir, clock.clone()).await;
    let a = NewMessage::new(
        "ops",
        imrelay_sdk::Message::text("a"),
        vec!["ops/x".parse().unwrap()],
    );
    let b = NewMessage::new(
        "ops",
        imrelay_sdk::Message::text("b"),
        vec!["ops/x".parse().unwrap()],
    );
    store.enqueue(vec![a.clone(), b.clone()]).await.unwrap();
    let claimed = store
        .claim(ClaimRequest {
            target: None,
            limit: 1,
            lease: Duration::from_secs(3600),
            owner: "dead-process".into(),
            order_hold: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Simulate a crash: no release, no close (the writer has committed already).
    drop(store);

    let store = open_at(&dir, clock.clone()).await;
    let st = store.stats().await.unwrap();
    assert_eq!(
        (st.messages, st.pending, st.in_flight),
        (2, 2, 0),
        "the lost claim is queued again at once"
    );
    let got = store
        .claim(ClaimRequest {
            target: None,
            limit: 10,
            lease: Duration::from_secs(30),
            owner: "new".into(),
            order_hold: None,
        })
        .await
        .unwrap();
    let mut ids: Vec<_> = got.iter().map(|c| c.message_id.clone()).collect();
    ids.sort();
    let mut want = vec![a.id, b.id];
    want.sort();
    assert_eq!(ids, want);
    store.close().await;
}

#[tokio::test]
async fn wal_and_full_sync_by_default_normal_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&dir, Arc::new(FixedClock::new(T0))).await;
    assert_eq!(
        store.pragmas().await.unwrap(),
        ("wal".to_string(), 2),
        "journal_mode=WAL, synchronous=FULL (2)"
    );
    store.close().await;
    let url = format!("sqlite://{}", dir.path().join("weak.db").display());
    let mut opts = StoreOptions::new(url);
    opts.synchronous = Synchronous::Normal;
    let weak = SqliteStore::open(opts).await.unwrap();
    assert_eq!(weak.pragmas().await.unwrap(), ("wal".to_string(), 1));
    weak.close().await;
}

#[tokio::test]
async fn in_memory_is_refused_with_the_field_named() {
    let err = SqliteStore::open(StoreOptions::new("sqlite::memory:"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`store.url`"), "{err}");
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&dir, Arc::new(FixedClock::new(T0))).await;
    store.close().await;
    let m = NewMessage::new(
        "ops",
        imrelay_sdk::Message::text("a"),
        vec!["ops/x".parse().unwrap()],
    );
    assert!(matches!(
        store.enqueue(vec![m]).await,
        Err(StoreError::Closed)
    ));
}

/// Group commit: concurrent single-message enqueues (each durable on return)
/// must reach a throughput far above one fsync per message. Measures both and
/// prints them; asserts only a conservative ratio so slow CI disks pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_concurrent_enqueues_beat_serial_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(open_at(&dir, Arc::new(FixedClock::new(T0))).await);
    let one = || {
        NewMessage::new(
            "ops",
            imrelay_sdk::Message::text("x"),
            vec!["ops/x".parse().unwrap()],
        )
    };

    let serial_n = 200;
    let t = Instant::now();
    for _ in 0..serial_n {
        store.enqueue(vec![one()]).await.unwrap();
    }
    let serial_rate = serial_n as f64 / t.elapsed().as_secs_f64();

    let conc_n = 4000;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conc_n {
        let s = store.clone();
        let m = one();
        tasks.push(tokio::spawn(
            async move { s.enqueue(vec![m]).await.unwrap() },
        ));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let conc_rate = conc_n as f64 / t.elapsed().as_secs_f64();
    eprintln!("sqlite synchronous=FULL: serial {serial_rate:.0} msg/s, concurrent (group commit) {conc_rate:.0} msg/s");
    let batches = 20;
    let t = Instant::now();
    for _ in 0..batches {
        store
            .enqueue((0..500).map(|_| one()).collect())
            .await
            .unwrap();
    }
    let batch_rate = (batches * 500) as f64 / t.elapsed().as_secs_f64();
    eprintln!("sqlite synchronous=FULL: batches of 500: {batch_rate:.0} msg/s");
    assert_eq!(
        store.stats().await.unwrap().messages,
        (serial_n + conc_n + batches * 500) as u64
    );
    assert!(
        conc_rate > serial_rate * 2.0,
        "group commit gave {conc_rate:.0}/s vs serial {serial_rate:.0}/s"
    );
    store.close().await;
}

/// Health follows commits, not reads: a store refusing every write (as a
/// full or read-only disk does) is unhealthy from the first failed accept
/// and its probe fails too, while reads still answer; a committed accept
/// heals it; a closed store is not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_failed_commits_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_at(&dir, Arc::new(FixedClock::new(T0))).await;
    let one = || {
        NewMessage::new(
            "ops",
            imrelay_sdk::Message::text("a"),
            vec!["ops/x".parse().unwrap()],
        )
    };
    assert!(store.ready().await.ok);
    store.set_query_only(true).await.unwrap();
    let err = store.enqueue(vec![one()]).await.unwrap_err();
    let h = store.health();
    assert_eq!(
        (h.ok, h.since, h.last_error_kind),
        (false, T0, Some("read_only")),
        "{err}"
    );
    assert!(store.stats().await.is_ok(), "reads still answer");
    assert!(!store.ready().await.ok, "the probe cannot commit either");
    store.set_query_only(false).await.unwrap();
    store.enqueue(vec![one()]).await.unwrap();
    assert!(store.health().ok);
    assert!(store.ready().await.ok);
    store.close().await;
    let h = store.ready().await;
    assert_eq!((h.ok, h.last_error_kind), (false, Some("closed")));
}

/// The background task prunes on its own, on the store's clock: a message
/// delivered more than `keep_delivered` ago goes at the first pass, one
/// still pending stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_task_prunes_on_the_store_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(T0));
    let store: Arc<dyn Store> = Arc::new(open_at(&dir, clock.clone()).await);
    let one = |t: &str| {
        NewMessage::new(
            "ops",
            imrelay_sdk::Message::text("a"),
            vec![t.parse().unwrap()],
        )
    };
    let old = one("ops/x");
    let open = one("ops/y");
    store
        .enqueue(vec![old.clone(), open.clone()])
        .await
        .unwrap();
    let c = store
        .claim(ClaimRequest {
            target: Some("ops/x".parse().unwrap()),
            limit: 1,
            lease: Duration::from_secs(30),
            owner: "w".into(),
            order_hold: None,
        })
        .await
        .unwrap()
        .remove(0);
    store.complete(c.delivery_id, "w", vec![], 1).await.unwrap();
    clock.set_ms(T0 + 7 * 24 * 3600 * 1000 + 1);
    static PRUNED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    fn count(n: u64) {
        PRUNED.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
    }
    let task = retention::spawn(
        store.clone(),
        Retention {
            pause: Duration::ZERO,
            ..Retention::DEFAULT
        },
        count,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.get_message(&old.id).await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the first pass did not prune");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The pass reported what it deleted (the gateway turns it into a metric).
    while PRUNED.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the pass did not report its count"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(store.get_message(&open.id).await.unwrap().is_some());
    task.abort();
    store.close().await;
}
