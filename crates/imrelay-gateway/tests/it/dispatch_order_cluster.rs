//! Accept order across instances: several gateways on one PostgreSQL
//! schema send an ordered target's deliveries one instance at a time, in
//! accept order. At the store: an ordered claim takes nothing while another
//! owner's lease on the target is live, starts at the head, and does not pass
//! an earlier delivery whose retry still holds the ones behind it.
//!
//! Needs the machine's PostgreSQL (see `store_postgres`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch_common::*;
use crate::store_suite::{attempt, T0};
use imrelay_gateway::channels::{ChannelSet, DestinationEntry};
use imrelay_gateway::store::postgres::PgStore;
use imrelay_gateway::store::*;
use imrelay_mock::{
    FaultAction, FaultRule, LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig,
};
use imrelay_sdk::clock::{Clock, FixedClock, SystemClock};
use imrelay_sdk::{Client, Message, Quota};

const SECRET: &str = "SECorder0123456789";
const TARGET: &str = "ops/x";

fn base_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema name unique to this test run and case.
fn fresh_schema(case: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("o{}_{nanos}_{n}_{case}", std::process::id())
}

async fn open_in(schema: &str, clock: Arc<dyn Clock>) -> PgStore {
    let url = format!("{}?schema={schema}", base_url());
    PgStore::open(StoreOptions::new(url).with_clock(clock))
        .await
        .expect("the PostgreSQL test store (see store_postgres)")
}

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

/// An ordered claim of [`TARGET`] with `order_hold`.
fn ordered(owner: &str, limit: u32, hold: Duration) -> ClaimRequest {
    ClaimRequest {
        target: Some(TARGET.parse().unwrap()),
        limit,
        lease: Duration::from_secs(30),
        owner: owner.into(),
        order_hold: Some(hold),
    }
}

/// Enqueue `n` messages to [`TARGET`], one commit each (accept order).
async fn enqueue(store: &PgStore, n: usize) -> Vec<MessageId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let m = NewMessage::new(
            "ops",
            Message::text(format!("m{i}")),
            vec![TARGET.parse().unwrap()],
        );
        match store.enqueue(vec![m]).await.unwrap().remove(0) {
            EnqueueOutcome::Created { id } => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    ids
}

fn messages(c: &[Claimed]) -> Vec<MessageId> {
    c.iter().map(|c| c.message_id.clone()).collect()
}

const HOLD: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_owner_takes_nothing_of_an_ordered_target_while_the_first_lease_lives() {
    let schema = fresh_schema("lease");
    let clock = Arc::new(FixedClock::new(T0));
    let a = open_in(&schema, clock.clone()).await;
    let b = open_in(&schema, clock.clone()).await;
    let ids = enqueue(&a, 3).await;

    let held = a.claim(ordered("a", 1, HOLD)).await.unwrap();
    assert_eq!(messages(&held), ids[..1]);
    assert!(
        b.claim(ordered("b", 10, HOLD)).await.unwrap().is_empty(),
        "instance a is sending to the target"
    );
    // The opt-out is untouched: an unordered claim takes what is free.
    let mut any = ordered("b", 1, HOLD);
    any.order_hold = None;
    let free = b.claim(any).await.unwrap();
    assert_eq!(messages(&free), ids[1..2]);
    b.release("b").await.unwrap();

    clock.set_ms(T0 + 30_001);
    let next = b.claim(ordered("b", 10, HOLD)).await.unwrap();
    assert_eq!(
        messages(&next),
        ids,
        "the lease ran out: from the head, in accept order"
    );
    assert!(matches!(
        a.complete(held[0].delivery_id, "a", vec![], 1).await,
        Err(StoreError::LeaseLost(_))
    ));
    a.close().await;
    b.close().await;
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_ordered_claims_on_several_instances_let_one_through() {
    let schema = fresh_schema("race");
    let clock = Arc::new(FixedClock::new(T0));
    let mut stores = Vec::new();
    for _ in 0..3 {
        stores.push(Arc::new(open_in(&schema, clock.clone()).await));
    }
    let ids = enqueue(&stores[0], 6).await;
    for _ in 0..5 {
        let claims = (0..9).map(|i| {
            let s = stores[i % 3].clone();
            tokio::spawn(async move { s.claim(ordered(&format!("o{i}"), 2, HOLD)).await })
        });
        let got: Vec<Vec<Claimed>> = futures::future::join_all(claims)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(got.len(), 1, "one claimer at a time: {got:?}");
        assert_eq!(messages(&got[0]), ids[..2], "the head, in accept order");
        // Let it go back for the next round.
        clock.set_ms(clock.now_ms() + 30_001);
    }
    for s in stores {
        s.close().await;
    }
    drop_schema(&schema).await;
}

/// Fail the claimed head with a retry due at `retry_at`.
async fn fail_head(store: &PgStore, owner: &str, retry_at: i64) -> DeliveryId {
    let c = store.claim(ordered(owner, 1, HOLD)).await.unwrap();
    assert_eq!(c.len(), 1);
    let mut failed = attempt("retry", true, Some("503"), "unavailable");
    failed.status = Some(503);
    let finish = Finish {
        attempts: vec![failed],
        parts_done: 0,
        action: FinishAction::Retry { at: retry_at },
    };
    store.finish(c[0].delivery_id, owner, finish).await.unwrap();
    c[0].delivery_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_due_within_order_hold_holds_the_later_ones_on_every_instance() {
    let schema = fresh_schema("hold");
    let clock = Arc::new(FixedClock::new(T0));
    let a = open_in(&schema, clock.clone()).await;
    let b = open_in(&schema, clock.clone()).await;
    let ids = enqueue(&a, 2).await;
    // Failed at T0 + 5, retried 10 s later: within the 30 s hold.
    fail_head(&a, "a", T0 + 10_000).await;
    clock.set_ms(T0 + 1_000);
    assert!(
        b.claim(ordered("b", 10, HOLD)).await.unwrap().is_empty(),
        "the retry holds the message behind it"
    );
    clock.set_ms(T0 + 10_000);
    let got = b.claim(ordered("b", 10, HOLD)).await.unwrap();
    assert_eq!(messages(&got), ids, "the retry first, in accept order");
    a.close().await;
    b.close().await;
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_due_past_order_hold_lets_the_later_ones_go_on() {
    let schema = fresh_schema("pass");
    let clock = Arc::new(FixedClock::new(T0));
    let a = open_in(&schema, clock.clone()).await;
    let b = open_in(&schema, clock.clone()).await;
    let ids = enqueue(&a, 3).await;
    let hold = Duration::from_secs(5);
    fail_head(&a, "a", T0 + 10_000).await;
    clock.set_ms(T0 + 1_000);
    let got = b.claim(ordered("b", 10, hold)).await.unwrap();
    assert_eq!(messages(&got), ids[1..], "past the hold: the others go on");
    assert!(got.iter().all(|c| !c.overtaken));
    for c in &got {
        b.complete(c.delivery_id, "b", vec![], 1).await.unwrap();
    }
    clock.set_ms(T0 + 10_000);
    let late = a.claim(ordered("a", 10, hold)).await.unwrap();
    assert_eq!(messages(&late), ids[..1]);
    assert!(late[0].overtaken, "later ones went out before it");
    a.close().await;
    b.close().await;
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delivery_sent_by_another_instance_than_the_later_ones_is_marked_out_of_order() {
    let schema = fresh_schema("late");
    let rx = Receiver::start().await;
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "hooks",
        vec![webhook(&client, &rx.url("h"), vec![])],
    )]);
    let targets = set.get("hooks").unwrap().targets();
    let a = open_in(&schema, Arc::new(SystemClock)).await;
    let mut ids = Vec::new();
    for i in 0..2 {
        let m = NewMessage::new("hooks", Message::text(format!("m{i}")), targets.clone());
        ids.push(m.id.to_string());
        a.enqueue(vec![m]).await.unwrap();
    }
    // Instance a: the first fails with a retry past its hold (none), the
    // second goes out.
    let c = a
        .claim(ClaimRequest {
            target: Some(targets[0].clone()),
            limit: 2,
            lease: Duration::from_secs(30),
            owner: "a".into(),
            order_hold: Some(Duration::ZERO),
        })
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    let finish = Finish {
        attempts: vec![attempt("retry", true, None, "unavailable")],
        parts_done: 0,
        action: FinishAction::Retry {
            at: SystemClock.now_ms(),
        },
    };
    a.finish(c[0].delivery_id, "a", finish).await.unwrap();
    a.complete(c[1].delivery_id, "a", vec![], 1).await.unwrap();

    // Instance b, which never saw the second, sends the first.
    let b: Arc<dyn Store> = Arc::new(open_in(&schema, Arc::new(SystemClock)).await);
    let mut h = Harness::start_on(tempfile::tempdir().unwrap(), b, set, test_dispatch_config());
    h.wait_settled(&ids[..1], Duration::from_secs(10)).await;
    assert_eq!(rx.delivered("h").len(), 1);
    let v = h.view(&ids[0]).await;
    assert!(
        v.deliveries[0]
            .history
            .iter()
            .any(|a| a.outcome == "out_of_order"),
        "{:?}",
        v.deliveries[0].history
    );
    h.stop().await;
    h.store.close().await;
    a.close().await;
    drop_schema(&schema).await;
}

// ---- two dispatchers against the mock -------------------------------------

/// A DingTalk robot on the mock with its quota scaled like the mock's
/// windows.
fn dingtalk(client: &Client, mock: &MockServer, scale: f64) -> DestinationEntry {
    let d = client
        .build(&serde_json::json!({
            "type": "dingtalk_robot",
            "access_token": "tok",
            "secret": SECRET,
            "base_url": mock.base_url(),
        }))
        .unwrap();
    let scaled = d
        .rate_limits()
        .into_iter()
        .map(|q| Quota {
            count: q.count,
            per: q.per.mul_f64(scale),
        })
        .collect();
    DestinationEntry::new(d)
        .with_quotas(scaled)
        .with_breaker(fast_breaker())
}

fn accepted_numbers(mock: &MockServer) -> (Vec<usize>, Vec<usize>) {
    let log: Vec<LogEntry> = mock
        .state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.target == "dingtalk:robot:tok")
        .collect();
    let number = |e: &LogEntry| {
        let text = e.body.as_ref().expect("the mock logs bodies")["text"]["content"]
            .as_str()
            .expect("a text message")
            .to_string();
        text.strip_prefix("alert ")
            .and_then(|t| t.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not one of ours: {text}"))
    };
    let ok = log.iter().filter(|e| e.accepted).map(number).collect();
    let refused = log.iter().filter(|e| !e.accepted).map(number).collect();
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_send_fifty_to_one_robot_in_accept_order_despite_jitter_and_a_5xx() {
    // 60 s becomes 240 ms: 50 messages at 20 per window.
    let scale = 0.004;
    let mock = MockServer::start(
        MockConfig {
            window_scale: scale,
            robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "tok").with_secret(SECRET)],
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let latency = FaultRule {
        target: "dingtalk:robot:tok".into(),
        action: FaultAction::Latency { latency_ms: 30 },
        count: None,
        ratio: Some(0.5),
        include_token_endpoints: false,
    };
    mock.state().faults.add(latency.clone());

    let schema = fresh_schema("mock");
    let client = Client::new().unwrap();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store: Arc<dyn Store> = Arc::new(open_in(&schema, Arc::new(SystemClock)).await);
        let set = ChannelSet::new([channel("ops", vec![dingtalk(&client, &mock, scale)])]);
        let mut cfg = test_dispatch_config();
        // The cluster limiter keeps the two within the robot's quota.
        cfg.shared_limits = store.shared_limiter();
        instances.push(Harness::start_on(
            tempfile::tempdir().unwrap(),
            store,
            set,
            cfg,
        ));
    }
    let target = instances[0].channels.load().get("ops").unwrap().targets();

    // Accepted in order, in bursts, alternately on either instance, while
    // both are sending; a 5xx strikes in the middle of the run.
    let mut ids = Vec::new();
    for (burst, chunk) in (0..50).collect::<Vec<usize>>().chunks(5).enumerate() {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| {
                NewMessage::new(
                    "ops",
                    Message::text(format!("alert {i}: cpu high on host-{i}")),
                    target.clone(),
                )
            })
            .collect();
        ids.extend(batch.iter().map(|m| m.id.to_string()));
        instances[burst % 2].store.enqueue(batch).await.unwrap();
        if burst == 4 {
            mock.state().faults.clear();
            mock.state().faults.add(FaultRule {
                target: "dingtalk:robot:tok".into(),
                action: FaultAction::Http { http_status: 503 },
                count: Some(1),
                ratio: None,
                include_token_endpoints: false,
            });
            mock.state().faults.add(latency.clone());
        }
        let sent = burst * 5;
        wait_for(Duration::from_secs(10), "the run to go on", || async {
            accepted_numbers(&mock).0.len() >= sent.saturating_sub(3)
        })
        .await;
    }
    instances[0]
        .wait_settled(&ids, Duration::from_secs(30))
        .await;

    let (accepted, refused) = accepted_numbers(&mock);
    assert_eq!(refused.len(), 1, "the injected 5xx: {refused:?}");
    assert_eq!(
        accepted,
        (0..50).collect::<Vec<_>>(),
        "the group reads them in accept order"
    );
    let sent_by: Vec<u64> = instances
        .iter()
        .map(|h| h.dispatcher.snapshot().counters.delivered)
        .collect();
    assert_eq!(sent_by.iter().sum::<u64>(), 50, "{sent_by:?}");
    let late = instances[0].view(&ids[refused[0]]).await;
    assert_eq!(late.deliveries[0].attempts, 1, "the 5xx counted");
    assert!(
        late.deliveries[0]
            .history
            .iter()
            .all(|a| a.outcome != "out_of_order"),
        "retried within its order_hold: in order"
    );
    for h in &mut instances {
        h.stop().await;
    }
    for h in &instances {
        h.store.close().await;
    }
    drop_schema(&schema).await;
}
