//! The store's hot operations on SQLite with `synchronous=FULL` (every commit
//! fsynced), on a queue that already holds `QUEUED` deliveries, so costs that
//! grow with the queue show up here.
//!
//! `cargo bench -p imrelay-gateway --bench store`
//!
//! Each iteration is timed inside the runtime (`iter_custom`), so the figures
//! are the store's own: no HTTP, no dispatcher.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use imrelay_gateway::store::sqlite::SqliteStore;
use imrelay_gateway::store::{
    AttemptOutcome, AttemptRecord, ClaimRequest, Claimed, NewMessage, Store, StoreOptions,
};
use imrelay_sdk::Message;
use tokio::runtime::Runtime;

/// Deliveries waiting on each of two targets before measuring.
const QUEUED: usize = 50_000;
const OWNER: &str = "bench";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn message(target: &str, i: usize) -> NewMessage {
    NewMessage::new(
        "bench",
        Message::text(format!("[FIRING] disk usage on node-{i} above 90% for 5m")),
        vec![target.parse().expect("a target")],
    )
}

/// A store in a temporary directory with `QUEUED` deliveries on `bench/a` and
/// on `bench/b`.
async fn filled_store(dir: &tempfile::TempDir) -> Arc<SqliteStore> {
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = Arc::new(
        SqliteStore::open(StoreOptions::new(url))
            .await
            .expect("open store"),
    );
    for target in ["bench/a", "bench/b"] {
        for chunk in (0..QUEUED).collect::<Vec<_>>().chunks(1_000) {
            let batch = chunk.iter().map(|&i| message(target, i)).collect();
            store.enqueue(batch).await.expect("fill");
        }
    }
    store
}

fn claim_req(target: &str, limit: u32) -> ClaimRequest {
    ClaimRequest {
        target: Some(target.parse().expect("a target")),
        limit,
        lease: Duration::from_secs(60),
        owner: OWNER.into(),
        order_hold: None,
    }
}

fn delivered() -> Vec<AttemptRecord> {
    vec![AttemptRecord {
        started_at: 0,
        finished_at: 1,
        destination: "dingtalk_robot:bench".into(),
        part: 0,
        outcome: AttemptOutcome::Delivered,
        counted: true,
        status: Some(200),
        code: Some("0".into()),
        message: "ok".into(),
        platform_message_id: None,
        update_token: None,
        recipients: Vec::new(),
    }]
}

/// Give claimed deliveries back unchanged, so the queue stays the same size.
async fn give_back(store: &SqliteStore, claimed: Vec<Claimed>) {
    let now = store.now_ms();
    let backs = claimed
        .iter()
        .map(|c| store.requeue_without_attempt(c.delivery_id, OWNER, now, vec![], 0));
    for r in futures::future::join_all(backs).await {
        r.expect("give back");
    }
}

/// Claim 64 from `target`, topping it up first when it runs low (the ack
/// benchmark consumes its queue).
async fn claim_refilling(store: &SqliteStore, target: &str) -> Vec<Claimed> {
    let claimed = store.claim(claim_req(target, 64)).await.unwrap();
    if claimed.len() == 64 {
        return claimed;
    }
    give_back(store, claimed).await;
    let batch = (0..QUEUED / 10).map(|i| message(target, i)).collect();
    store.enqueue(batch).await.unwrap();
    store.claim(claim_req(target, 64)).await.unwrap()
}

fn benches(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = rt.block_on(filled_store(&dir));

    let mut g = c.benchmark_group("store");
    g.sample_size(20);

    g.throughput(Throughput::Elements(1));
    g.bench_function("enqueue/single (one commit, fsync)", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    i += 1;
                    store.enqueue(vec![message("bench/c", i)]).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    g.throughput(Throughput::Elements(64));
    g.bench_function("enqueue/64 concurrent singles (group commit)", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let calls = (0..64).map(|_| {
                        i += 1;
                        store.enqueue(vec![message("bench/c", i)])
                    });
                    for r in futures::future::join_all(calls).await {
                        r.unwrap();
                    }
                }
                start.elapsed()
            })
        })
    });

    g.throughput(Throughput::Elements(100));
    g.bench_function("enqueue/batch of 100", |b| {
        let mut i = 0;
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let batch = (0..100)
                        .map(|_| {
                            i += 1;
                            message("bench/c", i)
                        })
                        .collect();
                    store.enqueue(batch).await.unwrap();
                }
                start.elapsed()
            })
        })
    });

    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("backlog ({} queued, 3 targets)", 2 * QUEUED), |b| {
        b.iter(|| rt.block_on(store.backlog(256)).unwrap())
    });

    g.throughput(Throughput::Elements(64));
    g.bench_function(format!("claim 64 of {QUEUED} on one target"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let claimed = store.claim(claim_req("bench/a", 64)).await.unwrap();
                    spent += start.elapsed();
                    assert_eq!(claimed.len(), 64);
                    give_back(&store, claimed).await;
                }
                spent
            })
        })
    });

    g.throughput(Throughput::Elements(64));
    g.bench_function("ack 64 delivered, concurrently (group commit)", |b| {
        b.iter_batched(
            || rt.block_on(claim_refilling(&store, "bench/b")),
            |claimed| {
                rt.block_on(async {
                    let acks = claimed
                        .iter()
                        .map(|c| store.complete(c.delivery_id, OWNER, delivered(), 1));
                    for r in futures::future::join_all(acks).await {
                        r.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(store_benches, benches);
criterion_main!(store_benches);
