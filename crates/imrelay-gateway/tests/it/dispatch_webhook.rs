//! Dispatcher behaviour against a tiny scriptable HTTP receiver (`webhook`
//! destinations): outcomes, retries, dead letters and replay, fallback, pools,
//! hot reload, graceful shutdown and crash recovery.

use std::time::Duration;

use crate::dispatch_common::*;
use imrelay_gateway::channels::{ChannelSet, Fallback};
use imrelay_gateway::dispatch::breaker::BreakerState;
use imrelay_gateway::store::{DeadFilter, DeadSelector, DeliveryState, MessageKind, MessageState};
use imrelay_sdk::{Client, Message, Quota};

const FAST: Quota = Quota {
    count: 1000,
    per: Duration::from_secs(1),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivers_each_message_once_and_records_the_attempt() {
    let rx = Receiver::start().await;
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(&client, &rx.url("a"), vec![FAST])],
    )]);
    let h = Harness::start(set).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(h.send("ops", Message::text(format!("hello {i}"))).await);
    }
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    let got = rx.delivered("a");
    assert_eq!(got.len(), 20);
    for (i, id) in ids.iter().enumerate() {
        let v = h.view(id).await;
        assert_eq!(v.state, MessageState::Delivered);
        let d = &v.deliveries[0];
        assert_eq!(d.history.len(), 1);
        assert_eq!(d.history[0].outcome, "delivered");
        assert_eq!(d.history[0].status, Some(200));
        assert!(!d.history[0].counted);
        // The message id is the dedup key's source, stable across retries.
        assert!(got
            .iter()
            .any(|b| b["id"] == id.as_str() && b["body"]["text"] == format!("hello {i}")));
    }
    let st = h.dispatcher.status().await;
    assert_eq!(st.counters.delivered, 20);
    assert_eq!(st.queue.unwrap().done, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_failures_retry_with_backoff_then_deliver() {
    let rx = Receiver::start().await;
    rx.script(
        "a",
        [
            Answer::status(503),
            Answer::status(502),
            Answer::status(500),
        ],
    );
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(&client, &rx.url("a"), vec![FAST])],
    )]);
    let h = Harness::start(set).await;
    let id = h.send("ops", Message::text("eventually")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Delivered);
    let d = &v.deliveries[0];
    assert_eq!(d.attempts, 3, "three failed attempts counted");
    let outcomes: Vec<_> = d
        .history
        .iter()
        .map(|a| (a.outcome.as_str(), a.status))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("retry", Some(503)),
            ("retry", Some(502)),
            ("retry", Some(500)),
            ("delivered", Some(200))
        ]
    );
    // Each retry waited no longer than its ceiling (20, 40, 80 ms, widened at
    // most 4x by the error rate), and the attempts are in order.
    for w in d.history.windows(2) {
        assert!(w[1].started_at >= w[0].finished_at);
        assert!(w[1].started_at - w[0].finished_at < 1_000);
    }
    assert_eq!(rx.delivered("a").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_refusal_dead_letters_at_once_and_replay_delivers_once() {
    let rx = Receiver::start().await;
    rx.set_default(Some(Answer::status(400).body("unknown field `colour`")));
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(&client, &rx.url("a"), vec![FAST])],
    )]);
    let h = Harness::start(set).await;
    let id = h.send("ops", Message::text("x")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Dead);
    assert_eq!(
        v.deliveries[0].history.len(),
        1,
        "no retry of a permanent refusal"
    );
    let dead = h.store.list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].reason.contains("HTTP 400: unknown field `colour`"),
        "{}",
        dead[0].reason
    );

    // Fixed: replay delivers it, once.
    rx.set_default(None);
    assert_eq!(
        h.store
            .replay(&DeadSelector::Ids(vec![dead[0].delivery_id]))
            .await
            .unwrap(),
        1
    );
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h.view(&id).await.state, MessageState::Delivered);
    assert_eq!(rx.delivered("a").len(), 1);
    assert!(h
        .store
        .list_dead(&DeadFilter::default())
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gives_up_after_max_attempts_with_the_last_answer() {
    let rx = Receiver::start().await;
    rx.set_default(Some(Answer::status(503).body("maintenance")));
    let client = Client::new().unwrap();
    let mut ch = channel("ops", vec![webhook(&client, &rx.url("a"), vec![FAST])]);
    ch.retry.max_attempts = 3;
    ch.destinations[0].breaker.failure_threshold = 100;
    let h = Harness::start(ChannelSet::new([ch])).await;
    let id = h.send("ops", Message::text("x")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Dead);
    assert_eq!(v.deliveries[0].history.len(), 3);
    let reason = &v.deliveries[0].dead.as_ref().unwrap().reason;
    assert!(
        reason.starts_with("gave up after 3 attempts; last answer: HTTP 503: maintenance"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limited_answers_wait_and_do_not_count_as_attempts() {
    let rx = Receiver::start().await;
    let mut slow_down = Answer::status(429);
    slow_down.retry_after = Some(1);
    rx.script("a", [slow_down.clone(), slow_down]);
    let client = Client::new().unwrap();
    let mut ch = channel("ops", vec![webhook(&client, &rx.url("a"), vec![FAST])]);
    ch.retry.max_attempts = 1; // a counted failure would dead-letter at once
    let h = Harness::start(ChannelSet::new([ch])).await;
    let id = h.send("ops", Message::text("x")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Delivered);
    assert_eq!(v.deliveries[0].attempts, 0);
    let h3 = &v.deliveries[0].history;
    assert_eq!(
        h3.iter().map(|a| a.outcome.as_str()).collect::<Vec<_>>(),
        ["rate_limited", "rate_limited", "delivered"]
    );
    // The destination waited the platform's Retry-After each time.
    assert!(h3[1].started_at - h3[0].finished_at >= 1_000);
    assert!(h3[2].started_at - h3[1].finished_at >= 1_000);
    assert_eq!(h.dispatcher.snapshot().counters.rate_limited, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dead_letter_goes_to_the_fallback_channel_marked() {
    let rx = Receiver::start().await;
    rx.script("primary", [Answer::status(410).body("gone")]);
    let client = Client::new().unwrap();
    let mut primary = channel(
        "ops",
        vec![webhook(&client, &rx.url("primary"), vec![FAST])],
    );
    primary.fallback = Some(Fallback {
        channel: "oncall".into(),
        after: None,
    });
    let backup = channel(
        "oncall",
        vec![webhook(&client, &rx.url("backup"), vec![FAST])],
    );
    let h = Harness::start(ChannelSet::new([primary, backup])).await;
    let id = h.send("ops", Message::text("db down")).await;
    let store = h.store.clone();
    wait_for(Duration::from_secs(10), "the fallback copy", || {
        let store = store.clone();
        async move { store.stats().await.unwrap().done == 1 }
    })
    .await;
    assert_eq!(h.view(&id).await.state, MessageState::Dead);
    let got = rx.delivered("backup");
    assert_eq!(got.len(), 1);
    let text = got[0]["body"]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "[fallback from channel ops, message {id}: HTTP 410: gone"
        )),
        "{text}"
    );
    assert!(text.ends_with("\ndb down"));
    assert_eq!(got[0]["title"], "[fallback from ops] db down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unavailable_too_long_falls_back_while_the_primary_keeps_trying() {
    let rx = Receiver::start().await;
    rx.script("primary", (0..8).map(|_| Answer::status(503)));
    let client = Client::new().unwrap();
    let mut primary = channel(
        "ops",
        vec![webhook(&client, &rx.url("primary"), vec![FAST])],
    );
    primary.fallback = Some(Fallback {
        channel: "oncall".into(),
        after: Some(Duration::from_millis(300)),
    });
    primary.retry.max_attempts = 100;
    let backup = channel(
        "oncall",
        vec![webhook(&client, &rx.url("backup"), vec![FAST])],
    );
    let h = Harness::start(ChannelSet::new([primary, backup])).await;
    let id = h.send("ops", Message::text("disk")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(20))
        .await;
    assert_eq!(
        h.view(&id).await.state,
        MessageState::Delivered,
        "the primary delivered in the end"
    );
    let backup = rx.delivered("backup");
    assert_eq!(backup.len(), 1, "exactly one fallback copy");
    assert!(backup[0]["body"]["text"]
        .as_str()
        .unwrap()
        .contains("still undelivered after 0 s"));
    let st = h.dispatcher.snapshot();
    assert_eq!(st.counters.fallbacks, 1);
    let fb_msgs = h.store.stats().await.unwrap().messages;
    assert_eq!(fb_msgs, 2);
    let _ = MessageKind::Fallback;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn robot_pool_spreads_messages_over_members_within_each_limit() {
    let rx = Receiver::start().await;
    let client = Client::new().unwrap();
    let q = Quota {
        count: 5,
        per: Duration::from_millis(500),
    };
    let mut pool = channel(
        "grp",
        vec![
            webhook(&client, &rx.url("r1"), vec![q]),
            webhook(&client, &rx.url("r2"), vec![q]),
            webhook(&client, &rx.url("r3"), vec![q]),
        ],
    );
    pool.pool = true;
    assert_eq!(pool.targets(), ["grp/pool"]);
    let h = Harness::start(ChannelSet::new([pool])).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(h.send("grp", Message::text(format!("m{i}"))).await);
    }
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    let per: Vec<usize> = ["r1", "r2", "r3"]
        .iter()
        .map(|p| rx.delivered(p).len())
        .collect();
    assert_eq!(
        per.iter().sum::<usize>(),
        30,
        "each message once, by one member"
    );
    assert!(per.iter().all(|&n| n >= 8), "spread in turn: {per:?}");
    for p in ["r1", "r2", "r3"] {
        let times: Vec<i64> = rx.seen_at(p).iter().map(|s| s.at_ms).collect();
        for i in 0..times.len() {
            let n = times[i..]
                .iter()
                .take_while(|&&t| t < times[i] + 500)
                .count();
            assert!(n <= 5, "{p}: {n} requests within 500 ms");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_adds_a_channel_and_waiting_deliveries_resume() {
    let rx = Receiver::start().await;
    let client = Client::new().unwrap();
    let ops = channel("ops", vec![webhook(&client, &rx.url("a"), vec![FAST])]);
    let h = Harness::start(ChannelSet::new([ops.clone()])).await;
    // A delivery to a target the running config lacks waits; it is not failed.
    let late = channel("late", vec![webhook(&client, &rx.url("b"), vec![FAST])]);
    let targets = late.targets();
    let m = imrelay_gateway::store::NewMessage::new("late", Message::text("queued early"), targets);
    let id = m.id.to_string();
    h.store.enqueue(vec![m]).await.unwrap();
    let first = h.send("ops", Message::text("x")).await;
    h.wait_settled(&[first], Duration::from_secs(10)).await;
    assert_eq!(
        h.view(&id).await.deliveries[0].state,
        DeliveryState::Pending
    );
    h.channels
        .store(std::sync::Arc::new(ChannelSet::new([ops, late])));
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h.view(&id).await.state, MessageState::Delivered);
    assert_eq!(rx.delivered("b").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn breaker_opens_pauses_the_destination_and_closes_while_others_flow() {
    let rx = Receiver::start().await;
    rx.script("bad", (0..6).map(|_| Answer::status(503)));
    let client = Client::new().unwrap();
    let bad = webhook(&client, &rx.url("bad"), vec![FAST]);
    let bad_key = bad.key.clone();
    let mut sick = channel("sick", vec![bad]);
    sick.retry.max_attempts = 50;
    let well = channel("well", vec![webhook(&client, &rx.url("good"), vec![FAST])]);
    let h = Harness::start(ChannelSet::new([sick, well])).await;
    let mut sick_ids = Vec::new();
    for i in 0..5 {
        sick_ids.push(h.send("sick", Message::text(format!("s{i}"))).await);
    }
    // Wait until the breaker opens, then check the healthy channel still flows.
    let d = h.dispatcher.clone();
    let key = bad_key.clone();
    wait_for(Duration::from_secs(10), "the breaker to open", || {
        let d = d.clone();
        let key = key.clone();
        async move { matches!(d.breaker(&key), Some(BreakerState::Open { .. })) }
    })
    .await;
    let mut well_ids = Vec::new();
    for i in 0..10 {
        well_ids.push(h.send("well", Message::text(format!("w{i}"))).await);
    }
    h.wait_settled(&well_ids, Duration::from_secs(10)).await;
    assert_eq!(rx.delivered("good").len(), 10);
    h.wait_settled(&sick_ids, Duration::from_secs(20)).await;
    for id in &sick_ids {
        assert_eq!(
            h.view(id).await.state,
            MessageState::Delivered,
            "a breaker pauses, it never fails messages"
        );
    }
    assert_eq!(h.dispatcher.breaker(&bad_key), Some(BreakerState::Closed));
    let st = h.dispatcher.snapshot();
    let s = st.destinations.iter().find(|d| d.key == bad_key).unwrap();
    assert!(s.breaker_opened_total >= 1);
    assert_eq!(rx.delivered("bad").len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_releases_unfinished_sends_and_a_restart_delivers_them() {
    let rx = Receiver::start().await;
    let mut hang = Answer::status(200);
    hang.delay = Duration::from_secs(30);
    rx.script("a", [hang]);
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(&client, &rx.url("a"), vec![FAST])],
    )]);
    let mut h = Harness::start(set.clone()).await;
    let id = h.send("ops", Message::text("x")).await;
    let store = h.store.clone();
    wait_for(Duration::from_secs(10), "the send to start", || {
        let store = store.clone();
        async move { store.stats().await.unwrap().in_flight == 1 }
    })
    .await;
    let t = std::time::Instant::now();
    h.stop().await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the drain deadline bounds shutdown"
    );
    let v = h.view(&id).await;
    assert_eq!(
        v.deliveries[0].state,
        DeliveryState::Pending,
        "released, not lost"
    );
    assert_eq!(
        v.deliveries[0].attempts, 0,
        "a cut-off send is not a failed attempt"
    );
    let h2 = Harness::start_on(
        tempfile::tempdir().unwrap(),
        h.store.clone(),
        set,
        test_dispatch_config(),
    );
    h2.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h2.view(&id).await.state, MessageState::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_crash_claimed_deliveries_are_sent_again() {
    let rx = Receiver::start().await;
    let mut hang = Answer::status(200);
    hang.delay = Duration::from_secs(30);
    rx.script("a", [hang]);
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(&client, &rx.url("a"), vec![FAST])],
    )]);
    let mut cfg = test_dispatch_config();
    cfg.lease = Duration::from_secs(3600);
    let mut h = Harness::start_with(set.clone(), cfg.clone()).await;
    let id = h.send("ops", Message::text("survive")).await;
    let store = h.store.clone();
    wait_for(Duration::from_secs(10), "the send to start", || {
        let store = store.clone();
        async move { store.stats().await.unwrap().in_flight == 1 }
    })
    .await;
    // Crash: the dispatcher dies mid-send, nothing is released, the lease is long.
    h.kill().await;
    let dir = std::mem::replace(&mut h.dir, tempfile::tempdir().unwrap());
    drop(store);
    drop(h);
    // Restart on the same database file.
    let store = open_store(&dir).await;
    let h2 = Harness::start_on(dir, store, set, test_dispatch_config());
    h2.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h2.view(&id).await.state, MessageState::Delivered);
    assert_eq!(
        rx.delivered("a").len(),
        1,
        "the hung first request never completed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn status_reports_breakers_limiters_and_queue() {
    let rx = Receiver::start().await;
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel(
        "ops",
        vec![webhook(
            &client,
            &rx.url("a"),
            vec![Quota {
                count: 2,
                per: Duration::from_secs(60),
            }],
        )],
    )]);
    let h = Harness::start(set).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(h.send("ops", Message::text(format!("{i}"))).await);
    }
    h.wait_settled(&ids[..2], Duration::from_secs(10)).await;
    let st = h.dispatcher.status().await;
    assert!(st.running);
    let q = st.queue.as_ref().unwrap();
    assert_eq!(
        (q.done, q.pending),
        (2, 2),
        "the limiter holds the rest back: {q:?}"
    );
    assert_eq!(st.destinations.len(), 1);
    let d = &st.destinations[0];
    assert_eq!(d.breaker, BreakerState::Closed);
    assert_eq!(d.available_now, 0);
    assert_eq!(d.sent_total, 2);
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["destinations"][0]["breaker"]["state"], "closed");
    assert_eq!(rx.delivered("a").len(), 2);
}
