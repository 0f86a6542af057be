//! The storage suite on PostgreSQL (unchanged, one fresh schema per case), plus
//! what only a shared database has: several store instances (standing in for
//! several `imrelay serve` processes) on one queue.
//!
//! Needs the machine's PostgreSQL at `postgres://postgres@127.0.0.1:5432/test`
//! (override with `IMRELAY_TEST_PG`). It FAILS, not skips, when the server is
//! down; `tests/run` starts it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store_suite::{Ctx, T0};
use imrelay_gateway::store::postgres::PgStore;
use imrelay_gateway::store::*;
use imrelay_sdk::clock::FixedClock;

fn base_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema name unique to this test run and case.
fn fresh_schema(case: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let run = std::process::id();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let mut case: String = case.chars().take(16).collect();
    case.retain(|c| c.is_ascii_alphanumeric() || c == '_');
    format!("t{run}_{nanos}_{n}_{case}")
}

fn url_for(schema: &str) -> String {
    format!("{}?schema={schema}", base_url())
}

async fn open_in(schema: &str, clock: Arc<FixedClock>) -> PgStore {
    match PgStore::open(StoreOptions::new(url_for(schema)).with_clock(clock)).await {
        Ok(s) => s,
        Err(e) => panic!(
            "cannot open the PostgreSQL test store: {e}\n\
             Start PostgreSQL with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start\n\
             and make sure database `test` exists (createdb -h 127.0.0.1 -U postgres test), \
             or point IMRELAY_TEST_PG at another server."
        ),
    }
}

/// Drop a test schema (best effort; a failed drop only leaves an empty schema).
async fn drop_schema(schema: &str) {
    use sqlx::Connection;
    if let Ok(mut c) = sqlx::PgConnection::connect(&base_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut c)
        .await;
    }
}

async fn run_case(name: &str) {
    let schema = fresh_schema(name);
    let clock = Arc::new(FixedClock::new(T0));
    let store: Arc<dyn Store> = Arc::new(open_in(&schema, clock.clone()).await);
    let ctx = Ctx {
        store: store.clone(),
        clock,
    };
    crate::store_suite::run(name, &ctx).await;
    store.close().await;
    drop_schema(&schema).await;
}

store_cases!();

fn one(text: &str) -> NewMessage {
    NewMessage::new(
        "ops",
        imrelay_sdk::Message::text(text),
        vec!["ops/x".parse().unwrap()],
    )
}

fn req(owner: &str, limit: u32) -> ClaimRequest {
    ClaimRequest {
        target: None,
        limit,
        lease: Duration::from_secs(30),
        owner: owner.into(),
        order_hold: None,
    }
}

/// Unlike SQLite, opening the store does not take back claims: another
/// instance may be alive and sending them. Only an expired lease frees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_instance_takes_only_expired_leases() {
    let schema = fresh_schema("leases");
    let clock = Arc::new(FixedClock::new(T0));
    let a = open_in(&schema, clock.clone()).await;
    a.enqueue(vec![one("m1"), one("m2")]).await.unwrap();
    let held = a.claim(req("instance-a", 1)).await.unwrap();
    assert_eq!(held.len(), 1);
    // "Instance A crashes": no release, no close.
    drop(a);

    let b = open_in(&schema, clock.clone()).await;
    let st = b.stats().await.unwrap();
    assert_eq!(
        (st.pending, st.in_flight),
        (1, 1),
        "the claim survives B's start"
    );
    let got = b.claim(req("instance-b", 10)).await.unwrap();
    assert_eq!(got.len(), 1, "only the unclaimed delivery");
    assert_ne!(got[0].delivery_id, held[0].delivery_id);
    assert!(b.claim(req("instance-b", 10)).await.unwrap().is_empty());
    b.complete(got[0].delivery_id, "instance-b", vec![], 1)
        .await
        .unwrap();

    clock.set_ms(T0 + 30_001);
    let back = b.claim(req("instance-b", 10)).await.unwrap();
    assert_eq!(back.len(), 1, "the expired lease returns to the pool");
    assert_eq!(back[0].delivery_id, held[0].delivery_id);
    b.complete(back[0].delivery_id, "instance-b", vec![], 1)
        .await
        .unwrap();
    assert!(matches!(
        b.complete(held[0].delivery_id, "instance-a", vec![], 1)
            .await,
        Err(StoreError::LeaseLost(_))
    ));
    b.close().await;
    drop_schema(&schema).await;
}

/// Three instances claiming at once from one queue: every delivery is claimed
/// exactly once (SKIP LOCKED), and none waits on another's locks forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_on_several_instances_never_share_a_delivery() {
    let schema = fresh_schema("claimers");
    let clock = Arc::new(FixedClock::new(T0));
    let stores: Vec<Arc<PgStore>> = vec![
        Arc::new(open_in(&schema, clock.clone()).await),
        Arc::new(open_in(&schema, clock.clone()).await),
        Arc::new(open_in(&schema, clock.clone()).await),
    ];
    let n = 600;
    let msgs: Vec<NewMessage> = (0..n).map(|i| one(&format!("m{i}"))).collect();
    stores[0].enqueue(msgs).await.unwrap();
    let mut tasks = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        for w in 0..4 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("i{i}-w{w}");
                let mut mine = Vec::new();
                loop {
                    let got = s.claim(req(&owner, 7)).await.unwrap();
                    if got.is_empty() {
                        break;
                    }
                    for c in got {
                        s.complete(c.delivery_id, &owner, vec![], 1).await.unwrap();
                        mine.push(c.delivery_id);
                    }
                }
                mine
            }));
        }
    }
    let mut all = Vec::new();
    let mut per_instance = [0usize; 3];
    for (k, t) in tasks.into_iter().enumerate() {
        let mine = t.await.unwrap();
        per_instance[k / 4] += mine.len();
        all.extend(mine);
    }
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(total, n, "each delivery completed once");
    assert_eq!(all.len(), n);
    eprintln!("deliveries per instance: {per_instance:?}");
    let st = stores[1].stats().await.unwrap();
    assert_eq!((st.done, st.pending, st.in_flight), (n as u64, 0, 0));
    for s in &stores {
        s.close().await;
    }
    drop_schema(&schema).await;
}

/// The same idempotency key sent to two instances at once creates one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_are_unique_across_instances() {
    let schema = fresh_schema("idem");
    let clock = Arc::new(FixedClock::new(T0));
    let a: Arc<dyn Store> = Arc::new(open_in(&schema, clock.clone()).await);
    let b: Arc<dyn Store> = Arc::new(open_in(&schema, clock.clone()).await);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let m = one("same").with_idempotency(Idempotency {
                scope: "producer".into(),
                key: "k-1".into(),
                body_hash: "h".into(),
            });
            s.enqueue(vec![m]).await.unwrap().remove(0)
        }));
    }
    let mut created = 0;
    let mut ids = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            EnqueueOutcome::Created { id } => {
                created += 1;
                ids.push(id)
            }
            EnqueueOutcome::Existing { id } => ids.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "every answer names the one message");
    assert_eq!(a.stats().await.unwrap().messages, 1);
    a.close().await;
    b.close().await;
    drop_schema(&schema).await;
}

/// Concurrent plain accepts are group-committed: 200 callers at once share
/// a few transactions (each message row records the transaction that wrote
/// it in `xmin`), each caller learns its own outcome, a repeated id is
/// created once, and one accept the server refuses fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_share_commits_and_keep_their_own_outcomes() {
    let schema = fresh_schema("group");
    let clock = Arc::new(FixedClock::new(T0));
    let store: Arc<dyn Store> = Arc::new(open_in(&schema, clock.clone()).await);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            // m0 is sent twice; m7's target holds a NUL byte, which
            // PostgreSQL refuses in text.
            let id = if i == 199 {
                "m0".to_string()
            } else {
                format!("m{i}")
            };
            let mut m = one(&id);
            m.id = id.as_str().into();
            if i == 7 {
                m.targets = vec!["ops/bad\0target".parse().unwrap()];
            }
            (i, s.enqueue(vec![m]).await)
        }));
    }
    let mut created = 0;
    let mut rejected = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (7, r) => assert!(r.is_err(), "the NUL target fails: {r:?}"),
            (i, Ok(mut out)) => match out.remove(0) {
                EnqueueOutcome::Created { id } => {
                    created += 1;
                    assert!(id.as_str() == format!("m{i}") || (i == 199 && id == "m0"));
                }
                EnqueueOutcome::Rejected { reason } => rejected.push((i, reason)),
                other => panic!("{i}: unexpected {other:?}"),
            },
            (i, Err(e)) => panic!("{i}: a good accept failed with its batch: {e}"),
        }
    }
    assert_eq!(created, 198, "every good accept is created once");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].1.contains("m0"), "{rejected:?}");
    assert_eq!(store.stats().await.unwrap().messages, 198);
    let pool = sqlx::PgPool::connect(&url_for(&schema)).await.unwrap();
    let (txs,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(DISTINCT xmin::text) FROM \"{schema}\".messages"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    eprintln!("200 concurrent accepts committed in {txs} transactions");
    assert!(
        txs <= 100,
        "accepts were not grouped: {txs} transactions for 198 messages"
    );
    pool.close().await;
    store.close().await;
    drop_schema(&schema).await;
}

/// Concurrent acknowledgements are group-committed: 200 deliveries finished
/// at once share a few transactions (`xmin` of their rows), each is done;
/// one whose lease another owner holds is refused alone, and one whose
/// write the server refuses (a fallback with a NUL byte) fails alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_finishes_share_commits_and_a_lost_lease_fails_alone() {
    let schema = fresh_schema("fin");
    let clock = Arc::new(FixedClock::new(T0));
    let store: Arc<dyn Store> = Arc::new(open_in(&schema, clock.clone()).await);
    let msgs: Vec<NewMessage> = (0..200).map(|i| one(&format!("m{i}"))).collect();
    store.enqueue(msgs).await.unwrap();
    let claimed = store.claim(req("w", 200)).await.unwrap();
    assert_eq!(claimed.len(), 200);
    let mut tasks = Vec::new();
    for (i, c) in claimed.iter().enumerate() {
        let s = store.clone();
        let id = c.delivery_id;
        // One finish names an owner that does not hold the lease.
        let owner = if i == 50 { "someone-else" } else { "w" };
        tasks.push(tokio::spawn(async move {
            let action = if i == 60 {
                let mut fb = one("fallback");
                fb.targets = vec!["ops/bad\0target".parse().unwrap()];
                FinishAction::Dead {
                    reason: DeadReason {
                        code: None,
                        reason: "gone".into(),
                    },
                    fallback: Some(Box::new(fb)),
                }
            } else {
                FinishAction::Done
            };
            let f = Finish {
                attempts: Vec::new(),
                parts_done: 1,
                action,
            };
            (i, s.finish(id, owner, f).await)
        }));
    }
    for t in tasks {
        match t.await.unwrap() {
            (50, r) => assert!(
                matches!(r, Err(StoreError::LeaseLost(_))),
                "the other owner's finish is refused: {r:?}"
            ),
            (60, r) => assert!(
                matches!(r, Err(StoreError::Database(_))),
                "the refused write fails: {r:?}"
            ),
            (i, r) => r.unwrap_or_else(|e| panic!("{i}: {e}")),
        }
    }
    let pool = sqlx::PgPool::connect(&url_for(&schema)).await.unwrap();
    let (done, txs): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*), count(DISTINCT xmin::text) FROM \"{schema}\".deliveries WHERE state = 'done'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    eprintln!("198 concurrent acknowledgements committed in {txs} transactions");
    assert_eq!(done, 198);
    assert!(
        txs <= 100,
        "acknowledgements were not grouped: {txs} transactions"
    );
    let (claimed_left,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM \"{schema}\".deliveries WHERE state = 'claimed'"
    )))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(claimed_left, 2, "the two refused are still claimed by `w`");
    pool.close().await;
    store.close().await;
    drop_schema(&schema).await;
}

/// LISTEN/NOTIFY: an enqueue on one instance wakes the others' dispatchers
/// within milliseconds (no polling involved: nothing else would wake them).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_enqueue_on_one_instance_wakes_the_others() {
    let schema = fresh_schema("wake");
    let clock = Arc::new(FixedClock::new(T0));
    let a = open_in(&schema, clock.clone()).await;
    let b = open_in(&schema, clock.clone()).await;
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let n = b.notifier();
        let waiter = tokio::spawn(async move { n.notified().await });
        tokio::task::yield_now().await;
        let t = Instant::now();
        a.enqueue(vec![one(&format!("m{i}"))]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the other instance was woken")
            .unwrap();
        worst = worst.max(t.elapsed());
    }
    eprintln!("cross-instance wake-up after enqueue: worst {worst:?} over 20");
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    a.close().await;
    b.close().await;
    drop_schema(&schema).await;
}

#[tokio::test]
async fn closed_store_refuses_calls() {
    let schema = fresh_schema("closed");
    let store = open_in(&schema, Arc::new(FixedClock::new(T0))).await;
    store.close().await;
    assert!(matches!(
        store.enqueue(vec![one("a")]).await,
        Err(StoreError::Closed)
    ));
    drop_schema(&schema).await;
}

#[tokio::test]
async fn an_unreachable_server_is_an_error_naming_the_url_field() {
    let err = PgStore::open(StoreOptions::new(
        "postgres://postgres:hunter2@127.0.0.1:1/test?connect_timeout=2",
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`store.url`") && err.contains("127.0.0.1:1"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

/// `store::open` picks PostgreSQL by URL scheme.
#[tokio::test]
async fn open_selects_postgres_by_url() {
    let schema = fresh_schema("open");
    let s = imrelay_gateway::store::open(StoreOptions::new(url_for(&schema)))
        .await
        .unwrap();
    assert_eq!(s.backend(), "postgres");
    s.close().await;
    drop_schema(&schema).await;
}

fn cluster_pool(schema: &str) -> sqlx::PgPool {
    imrelay_gateway::store::postgres::PgTarget::parse(&url_for(schema))
        .unwrap()
        .lazy_pool(4)
}

/// 21 sends to a DingTalk robot (20 per 60 s) from three instances: the 21st
/// is refused until 60 s plus the margin after the first one ended, timed by
/// the database clock. Time moves by shifting the stored slots back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_limiter_keeps_a_margin_past_every_window() {
    use imrelay_gateway::dispatch::limits::{SharedAdmit, SharedLimiter};
    use imrelay_gateway::store::postgres::cluster::{PgLimiter, DEFAULT_MARGIN};
    use imrelay_sdk::Quota;

    assert_eq!(DEFAULT_MARGIN, Duration::from_secs(1));
    let schema = fresh_schema("margin");
    let store = open_in(&schema, Arc::new(FixedClock::new(T0))).await; // migrates
    let pool = cluster_pool(&schema);
    let limiters: Vec<PgLimiter> = (0..3)
        .map(|_| PgLimiter::new(cluster_pool(&schema)))
        .collect();
    let q = [Quota {
        count: 20,
        per: Duration::from_secs(60),
    }];
    let key = "dingtalk:robot:margin";
    // The wait counts from the first send; however slow the machine, the
    // wait plus the time since then covers the window and the margin.
    let t0 = Instant::now();
    for i in 0..20 {
        let l = &limiters[i % 3];
        match l.acquire(key, &q, Duration::from_secs(5)).await.unwrap() {
            SharedAdmit::Granted(p) => l.release(p, None).await,
            other => panic!("send {i} is within the quota: {other:?}"),
        }
    }
    let wait = |d: SharedAdmit| match d {
        SharedAdmit::Wait(d) => d,
        other => panic!("the 21st send must wait: {other:?}"),
    };
    let d = wait(
        limiters[0]
            .acquire(key, &q, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    assert!(d + t0.elapsed() >= Duration::from_millis(60_900), "{d:?}");
    // Move time on: the first send ended 60.5 s ago. The window alone
    // (60 s and rounding) has passed, the margin has not.
    let shift = |ms: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "UPDATE rate_slots SET held_until = held_until - $1, started_at = started_at - $1",
            )
            .bind(ms)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    let (first,): (i64,) = sqlx::query_as(
        "SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint - MIN(held_until) FROM rate_slots",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    shift(60_500 - first).await;
    let d = wait(
        limiters[1]
            .acquire(key, &q, Duration::from_secs(5))
            .await
            .unwrap(),
    );
    assert!(
        d > Duration::from_millis(300) && d <= Duration::from_millis(1_000),
        "{d:?}"
    );
    // Past 60 s plus the margin (1 s): admitted.
    shift(1_000).await;
    let granted = limiters[2]
        .acquire(key, &q, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(granted, SharedAdmit::Granted(_)), "{granted:?}");

    // A configured margin replaces the default.
    let key = "dingtalk:robot:wide";
    let wide = PgLimiter::new(cluster_pool(&schema)).with_margin(Duration::from_secs(5));
    let t0 = Instant::now();
    for _ in 0..20 {
        let SharedAdmit::Granted(p) = wide.acquire(key, &q, Duration::from_secs(5)).await.unwrap()
        else {
            panic!("within the quota");
        };
        wide.release(p, None).await;
    }
    let d = wait(wide.acquire(key, &q, Duration::from_secs(5)).await.unwrap());
    assert!(d + t0.elapsed() >= Duration::from_millis(64_900), "{d:?}");
    assert!(d <= Duration::from_millis(66_000), "{d:?}");
    store.close().await;
    drop_schema(&schema).await;
}

/// Two instances' limiters on one destination: together they admit no more
/// than the quota per window; a release starts the window from the end; a
/// platform wait reported by one instance holds back the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_limiter_admits_the_quota_across_instances() {
    use imrelay_gateway::dispatch::limits::{SharedAdmit, SharedLimiter};
    use imrelay_gateway::store::postgres::cluster::PgLimiter;
    use imrelay_sdk::Quota;

    let schema = fresh_schema("limiter");
    let store = open_in(&schema, Arc::new(FixedClock::new(T0))).await; // migrates
    let a = Arc::new(PgLimiter::new(cluster_pool(&schema)));
    let b = Arc::new(PgLimiter::new(cluster_pool(&schema)));
    let q = [Quota {
        count: 3,
        per: Duration::from_secs(30),
    }];
    let mut tasks = Vec::new();
    for i in 0..12 {
        let l = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            l.acquire("dingtalk:robot:x", &q, Duration::from_secs(5))
                .await
                .unwrap()
        }));
    }
    let mut granted = Vec::new();
    let mut waits = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            SharedAdmit::Granted(p) => granted.push(p),
            SharedAdmit::Wait(d) => waits.push(d),
        }
    }
    assert_eq!(granted.len(), 3, "the quota, across both instances");
    assert_eq!(waits.len(), 9);
    // In flight: the wait is short (their end is unknown), not a whole window.
    assert!(
        waits.iter().all(|d| *d <= Duration::from_millis(50)),
        "{waits:?}"
    );
    for p in granted {
        a.release(p, None).await;
    }
    // Ended now: they occupy the window for 30 s (+ margin) from their end.
    match b
        .acquire("dingtalk:robot:x", &q, Duration::from_secs(5))
        .await
        .unwrap()
    {
        SharedAdmit::Wait(d) => assert!(d > Duration::from_secs(29), "{d:?}"),
        other => panic!("expected a wait, got {other:?}"),
    }
    // Another destination is independent; a platform wait blocks it for all.
    let SharedAdmit::Granted(p) = a
        .acquire("feishu:webhook:y", &q, Duration::from_secs(5))
        .await
        .unwrap()
    else {
        panic!("another destination has its own quota");
    };
    a.release(p, Some(Duration::from_secs(20))).await;
    match b
        .acquire("feishu:webhook:y", &q, Duration::from_secs(5))
        .await
        .unwrap()
    {
        SharedAdmit::Wait(d) => assert!(d > Duration::from_secs(19), "{d:?}"),
        other => panic!("the platform wait must hold back the other instance: {other:?}"),
    }
    store.close().await;
    drop_schema(&schema).await;
}

/// A counting token source: each fetch is a new token.
struct Fetches(std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl imrelay_sdk::token::TokenSource for Fetches {
    fn cache_key(&self) -> String {
        "feishu_app:cli_test:fp".into()
    }
    async fn fetch(
        &self,
        _http: &imrelay_sdk::http::HttpClient,
    ) -> Result<imrelay_sdk::token::Token, imrelay_sdk::Report> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        // A slow token endpoint, so concurrent callers really overlap.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(imrelay_sdk::token::Token {
            value: imrelay_sdk::Secret::new(format!("tok-{n}")),
            expires_in: Duration::from_secs(7200),
        })
    }
}

/// Three instances' token managers share the PostgreSQL cache: one fetch for
/// all of them, and a rejected token is replaced once for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shared_token_cache_fetches_once_for_all_instances() {
    use imrelay_gateway::store::postgres::cluster::PgTokenCache;
    use imrelay_sdk::token::{SharedTokenCache, TokenManager};

    let schema = fresh_schema("tokens");
    let store = open_in(&schema, Arc::new(FixedClock::new(T0))).await; // migrates
    let http = imrelay_sdk::http::HttpClient::new(Default::default()).unwrap();
    let src = Arc::new(Fetches(Default::default()));
    let managers: Vec<Arc<TokenManager>> = (0..3)
        .map(|_| {
            let tm = TokenManager::new();
            let cache: Arc<dyn SharedTokenCache> =
                Arc::new(PgTokenCache::new(cluster_pool(&schema)));
            tm.set_shared(Some(cache));
            Arc::new(tm)
        })
        .collect();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let (tm, src, http) = (managers[i % 3].clone(), src.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            tm.get(&*src, &http).await.unwrap().expose().to_string()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "tok-0");
    }
    assert_eq!(src.0.load(Ordering::SeqCst), 1, "one fetch for the cluster");

    // Instance 0 is told the token is bad; instance 1, holding the same old
    // token, then finds the replacement instead of fetching again.
    for tm in &managers[..2] {
        let r = tm
            .with_token(&*src, &http, |tok| {
                let ok = tok.expose() == "tok-1";
                async move {
                    if ok {
                        imrelay_sdk::Report::delivered()
                    } else {
                        imrelay_sdk::Report::new(
                            imrelay_sdk::Outcome::RefreshToken,
                            "99991663 token invalid",
                        )
                    }
                }
            })
            .await;
        assert!(r.outcome.is_delivered(), "{r:?}");
    }
    assert_eq!(
        src.0.load(Ordering::SeqCst),
        2,
        "one refresh for the cluster"
    );
    store.close().await;
    drop_schema(&schema).await;
}

/// A TCP proxy in front of PostgreSQL that can stop "the server": `stop`
/// cuts every open connection and leaves new ones unanswered, as a stopped
/// or unreachable host does; `start` forwards again.
struct Proxy {
    port: u16,
    down: Arc<std::sync::atomic::AtomicBool>,
    piped: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(server: std::net::SocketAddr) -> Proxy {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let piped = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (d, p) = (down.clone(), piped.clone());
        let accept = tokio::spawn(async move {
            let mut unanswered = Vec::new();
            while let Ok((mut inbound, _)) = l.accept().await {
                if d.load(Ordering::Acquire) {
                    unanswered.push(inbound);
                    continue;
                }
                p.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(server).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                }));
            }
        });
        Proxy {
            port,
            down,
            piped,
            accept,
        }
    }

    fn stop(&self) {
        self.down.store(true, Ordering::Release);
        for t in self.piped.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn start_again(&self) {
        self.down.store(false, Ordering::Release);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.stop();
    }
}

/// PostgreSQL stops answering: an accept fails within about the acquire
/// timeout (1 s) instead of 10 s, the store reports itself unhealthy at
/// once, a readiness probe is bounded, and once the server is back a probe
/// makes it ready again. The health holds a kind, never the error's text
/// (which names the database user).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_down_accepts_and_readiness_fail_fast() {
    use sqlx::postgres::PgConnectOptions;
    use std::str::FromStr;

    let base = base_url();
    let o = PgConnectOptions::from_str(&base).unwrap();
    let server = tokio::net::lookup_host((o.get_host(), o.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = Proxy::start(server).await;
    let hostport = format!("{}:{}", o.get_host(), o.get_port());
    assert!(base.contains(&hostport), "{base}");
    let schema = fresh_schema("down");
    let url = format!(
        "{}?schema={schema}",
        base.replacen(&hostport, &format!("127.0.0.1:{}", proxy.port), 1)
    );
    let opts = StoreOptions::new(url).with_clock(Arc::new(FixedClock::new(T0)));
    assert_eq!(opts.acquire_timeout, Duration::from_secs(1));
    let store = PgStore::open(opts).await.unwrap();
    store.enqueue(vec![one("before")]).await.unwrap();
    assert!(store.ready().await.ok);

    proxy.stop();
    let t = Instant::now();
    let err = store.enqueue(vec![one("while down")]).await.unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(2_500),
        "{:?}",
        t.elapsed()
    );
    assert!(fault_kind(&err).is_some(), "{err}");
    let h = store.health();
    assert!(!h.ok && h.last_error_kind.is_some(), "{h:?}");
    let t = Instant::now();
    let h = store.ready().await;
    assert!(!h.ok, "{h:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // Probes are spaced; the next one is bounded too.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let t = Instant::now();
    assert!(!store.ready().await.ok);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    proxy.start_again();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let h = store.ready().await;
    assert!(h.ok, "{h:?}");
    store.enqueue(vec![one("after")]).await.unwrap();
    store.close().await;
    drop(proxy);
    drop_schema(&schema).await;
}
