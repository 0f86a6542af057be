//! Dispatcher against the real mock platform server (DingTalk robots): rate
//! limits that never draw a penalty, coalescing, a 5xx outage with the breaker,
//! and permanent codes dead-lettered then replayed.
//!
//! Platform windows are shortened with the mock's `window_scale` and a matching
//! quota override in the channel, so the tests run in seconds.

use std::time::{Duration, Instant};

use crate::api_support::{TestGateway, ADMIN_KEY};
use crate::dispatch_common::*;
use imrelay_gateway::channels::{BreakerConfig, ChannelSet, Coalesce, DestinationEntry};
use imrelay_gateway::dispatch::breaker::BreakerState;
use imrelay_gateway::store::{DeadFilter, DeadSelector, MessageKind, MessageState, NewMessage};
use imrelay_mock::{
    FaultAction, FaultRule, LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig,
};
use imrelay_sdk::{Client, Message, Quota};

const SECRET: &str = "SEC0123456789abcdef";

async fn mock(scale: f64, robots: Vec<RobotConfig>) -> MockServer {
    let mut cfg = MockConfig {
        window_scale: scale,
        ..MockConfig::default()
    };
    cfg.robots = robots;
    MockServer::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn robot(token: &str) -> RobotConfig {
    RobotConfig::new(MockPlatform::Dingtalk, token).with_secret(SECRET)
}

/// A DingTalk robot destination on the mock, with its 20/min quota scaled like
/// the mock's windows.
fn dingtalk(client: &Client, mock: &MockServer, token: &str, scale: f64) -> DestinationEntry {
    let d = client
        .build(&serde_json::json!({
            "type": "dingtalk_robot",
            "access_token": token,
            "secret": SECRET,
            "base_url": mock.base_url(),
        }))
        .unwrap();
    let documented = d.rate_limits();
    assert_eq!(documented, vec![Quota::per_minute(20)]);
    let scaled = documented
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

fn log_for(mock: &MockServer, token: &str) -> Vec<LogEntry> {
    let target = format!("dingtalk:robot:{token}");
    mock.state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.target == target)
        .collect()
}

/// The most requests the mock accepted within any window of `window_ms`.
fn max_in_window(entries: &[LogEntry], window_ms: i64) -> usize {
    let mut t: Vec<i64> = entries
        .iter()
        .filter(|e| e.accepted)
        .map(|e| e.at_ms)
        .collect();
    t.sort();
    (0..t.len())
        .map(|i| t[i..].iter().take_while(|&&x| x < t[i] + window_ms).count())
        .max()
        .unwrap_or(0)
}

async fn send_many(h: &Harness, channel: &str, n: usize) -> Vec<String> {
    let targets = h.channels.load().get(channel).unwrap().targets();
    let mut ids = Vec::new();
    // Producers send in bursts; each burst is one commit.
    for chunk in (0..n).collect::<Vec<_>>().chunks(50) {
        let batch: Vec<NewMessage> = chunk
            .iter()
            .map(|i| {
                NewMessage::new(
                    channel,
                    Message::text(format!("alert {i}: cpu high on host-{i}")),
                    targets.clone(),
                )
            })
            .collect();
        ids.extend(batch.iter().map(|m| m.id.to_string()));
        h.store.enqueue(batch).await.unwrap();
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_to_one_dingtalk_robot_never_exceed_its_limit() {
    five_hundred_to_one_robot(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_to_one_dingtalk_robot_unordered_never_exceed_its_limit() {
    five_hundred_to_one_robot(false).await;
}

/// 500 messages to one robot, sent in order (one at a time) or concurrently:
/// either way the robot's whole quota is used and never exceeded.
async fn five_hundred_to_one_robot(ordered: bool) {
    // 60 s becomes 240 ms: 500 messages at 20 per window take about 6 s.
    let scale = 0.004;
    let window_ms = (60_000.0 * scale) as i64;
    let m = mock(scale, vec![robot("tok")]).await;
    let client = Client::new().unwrap();
    let mut ch = channel("ops", vec![dingtalk(&client, &m, "tok", scale)]);
    ch.ordered = ordered;
    let h = Harness::start(ChannelSet::new([ch])).await;
    let ids = send_many(&h, "ops", 500).await;
    h.wait_settled(&ids, Duration::from_secs(60)).await;

    let log = log_for(&m, "tok");
    let refused: Vec<_> = log.iter().filter(|e| !e.accepted).collect();
    assert!(
        refused.is_empty(),
        "the mock refused {} requests, first: {:?}",
        refused.len(),
        refused.first()
    );
    assert!(log.iter().all(|e| e.code.as_deref() != Some("130101")));
    assert_eq!(log.len(), 500, "each message exactly once");
    let peak = max_in_window(&log, window_ms);
    assert!(
        peak <= 20,
        "{peak} requests within one {window_ms} ms window"
    );
    assert_eq!(peak, 20, "and the limiter does use the whole quota");
    for id in &ids {
        assert_eq!(h.view(id).await.state, MessageState::Delivered);
    }
    assert_eq!(h.dispatcher.snapshot().counters.rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalescing_settles_five_hundred_within_two_minutes_keeping_every_message() {
    // 60 s becomes 1.2 s, so "two minutes" is 2.4 s.
    let scale = 0.02;
    let window_ms = (60_000.0 * scale) as i64;
    let two_minutes = Duration::from_secs(120).mul_f64(scale);
    let m = mock(scale, vec![robot("tok")]).await;
    let client = Client::new().unwrap();
    let mut ch = channel("ops", vec![dingtalk(&client, &m, "tok", scale)]);
    ch.coalesce = Some(Coalesce {
        max_delay: Duration::from_secs(60).mul_f64(scale),
        max_bytes: 3_500,
    });
    let h = Harness::start(ChannelSet::new([ch])).await;
    let start = Instant::now();
    let ids = send_many(&h, "ops", 500).await;
    h.wait_settled(&ids, two_minutes).await;
    let took = start.elapsed();
    assert!(took <= two_minutes, "settled in {took:?}");

    let log = log_for(&m, "tok");
    assert!(log.iter().all(|e| e.accepted), "nothing refused, no 130101");
    assert!(max_in_window(&log, window_ms) <= 20);
    assert!(log.len() < 100, "{} requests for 500 messages", log.len());
    // Every original's text reached the group; merged ones carry their id too.
    let mut bodies = String::new();
    for e in &log {
        bodies.push_str(&e.body.as_ref().unwrap().to_string());
    }
    let mut digests = 0;
    for (i, id) in ids.iter().enumerate() {
        assert!(
            bodies.contains(&format!("alert {i}: cpu high on host-{i}")),
            "message {i} is in no request"
        );
        let v = h.view(id).await;
        assert_eq!(v.state, MessageState::Delivered);
        if let Some(d) = &v.deliveries[0].merged_into {
            digests += 1;
            assert!(
                bodies.contains(id.as_str()),
                "merged message {id} lost its id"
            );
            let dv = h.view(d).await;
            assert_eq!(dv.kind, MessageKind::Digest);
            assert_eq!(dv.state, MessageState::Delivered);
        }
    }
    assert!(
        digests > 400,
        "most messages went out in digests ({digests})"
    );
    let st = h.dispatcher.snapshot();
    assert_eq!(st.counters.merged as usize, digests);
    assert_eq!(st.counters.rate_limited, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_5xx_retries_with_growing_delays_breaker_opens_and_closes_others_unaffected() {
    let scale = 0.01;
    let m = mock(scale, vec![robot("down"), robot("up")]).await;
    let client = Client::new().unwrap();
    let breaker = BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_millis(100),
        max_open_for: Duration::from_millis(800),
    };
    let down = dingtalk(&client, &m, "down", scale).with_breaker(breaker);
    let down_key = down.key.clone();
    let mut sick = channel("sick", vec![down]);
    sick.retry.max_attempts = 100;
    let well = channel("well", vec![dingtalk(&client, &m, "up", scale)]);
    let h = Harness::start(ChannelSet::new([sick, well])).await;

    // The robot answers 503 until told otherwise.
    m.state().faults.add(FaultRule {
        target: "dingtalk:robot:down".into(),
        action: FaultAction::Http { http_status: 503 },
        count: None,
        ratio: None,
        include_token_endpoints: false,
    });
    let fault_start = Instant::now();
    let sick_id = h.send("sick", Message::text("db1 unreachable")).await;

    let d = h.dispatcher.clone();
    let key = down_key.clone();
    wait_for(Duration::from_secs(10), "the breaker to open", || {
        let d = d.clone();
        let key = key.clone();
        async move { matches!(d.breaker(&key), Some(BreakerState::Open { .. })) }
    })
    .await;
    let status = h.dispatcher.status().await;
    let s = status
        .destinations
        .iter()
        .find(|d| d.key == down_key)
        .unwrap();
    assert_eq!(s.breaker.label(), "open", "visible in status");
    // Meanwhile the other channel flows.
    let well_ids = send_many(&h, "well", 15).await;
    h.wait_settled(&well_ids, Duration::from_secs(5)).await;
    let healthy_done = fault_start.elapsed();
    assert_eq!(
        h.view(&sick_id).await.state,
        MessageState::Pending,
        "paused, not failed"
    );

    // The outage goes on until the breaker has opened, probed and reopened
    // three times (100 + 200 + 400 ms of waiting), then ends.
    let d = h.dispatcher.clone();
    let key = down_key.clone();
    wait_for(Duration::from_secs(10), "failed probes", || {
        let d = d.clone();
        let key = key.clone();
        async move {
            let st = d.snapshot();
            st.destinations
                .iter()
                .any(|s| s.key == key && s.breaker_opened_total >= 4)
        }
    })
    .await;
    let outage = fault_start.elapsed();
    m.state().faults.clear();
    h.wait_settled(std::slice::from_ref(&sick_id), Duration::from_secs(10))
        .await;

    let v = h.view(&sick_id).await;
    assert_eq!(v.state, MessageState::Delivered);
    let hist = &v.deliveries[0].history;
    assert!(hist.len() >= 5, "{} attempts", hist.len());
    assert!(hist[..hist.len() - 1]
        .iter()
        .all(|a| a.outcome == "retry" && a.status == Some(503)));
    assert_eq!(hist.last().unwrap().outcome, "delivered");
    // Delays grow: the breaker's probes back off (100, 200, 400 ms...).
    let gaps: Vec<i64> = hist
        .windows(2)
        .map(|w| w[1].started_at - w[0].finished_at)
        .collect();
    let early = gaps[..2].iter().max().unwrap();
    let late = gaps[gaps.len() - 2..].iter().max().unwrap();
    assert!(late > early, "gaps {gaps:?}");
    assert!(*late >= 200, "gaps {gaps:?}");
    assert!(
        healthy_done < outage,
        "the healthy channel finished during the outage"
    );
    assert!(
        outage >= Duration::from_millis(600),
        "outage lasted {outage:?}"
    );
    assert_eq!(h.dispatcher.breaker(&down_key), Some(BreakerState::Closed));
    let st = h.dispatcher.snapshot();
    let s = st.destinations.iter().find(|d| d.key == down_key).unwrap();
    assert!(
        s.breaker_opened_total >= 4,
        "opened, probed, reopened: {}",
        s.breaker_opened_total
    );
    assert_eq!(log_for(&m, "up").len(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn permanent_code_dead_letters_at_once_with_the_platform_reason_and_replay_delivers() {
    let mut strict = robot("kw");
    strict.keywords = vec!["[alert]".into()];
    let m = mock(1.0, vec![strict]).await;
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel("ops", vec![dingtalk(&client, &m, "kw", 1.0)])]);
    let h = Harness::start(set).await;
    let id = h.send("ops", Message::text("deploy finished")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Dead);
    assert_eq!(v.deliveries[0].history.len(), 1, "dead at once");
    let dead = h.store.list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(dead[0].code.as_deref(), Some("310000"));
    assert!(
        dead[0].reason.starts_with("keywords not in content"),
        "{}",
        dead[0].reason
    );

    // The operator fixes the robot (drops the keyword rule); replay delivers once.
    m.state().add_robot(robot("kw"));
    h.store
        .replay(&DeadSelector::Filter(DeadFilter {
            code: Some("310000".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h.view(&id).await.state, MessageState::Delivered);
    let accepted: Vec<_> = log_for(&m, "kw")
        .into_iter()
        .filter(|e| e.accepted)
        .collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].body.as_ref().unwrap()["text"]["content"],
        "deploy finished"
    );
}

/// The message number of a DingTalk text body sent by [`send_many`].
fn alert_number(e: &LogEntry) -> usize {
    let body = e.body.as_ref().expect("the mock logs bodies");
    let text = body["text"]["content"].as_str().expect("a text message");
    text.strip_prefix("alert ")
        .and_then(|t| t.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not one of ours: {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_to_one_robot_arrive_in_accept_order_despite_latency_jitter_and_a_5xx() {
    // 60 s becomes 240 ms: 50 messages at 20 per window.
    let scale = 0.004;
    let m = mock(scale, vec![robot("tok")]).await;
    let client = Client::new().unwrap();
    let set = ChannelSet::new([channel("ops", vec![dingtalk(&client, &m, "tok", scale)])]);
    let latency = FaultRule {
        target: "dingtalk:robot:tok".into(),
        action: FaultAction::Latency { latency_ms: 30 },
        count: None,
        ratio: Some(0.5),
        include_token_endpoints: false,
    };
    m.state().faults.add(latency.clone());
    let h = Harness::start(set).await;
    let ids = send_many(&h, "ops", 50).await;
    // A 5xx in the middle of the run; the jitter goes on around it.
    wait_for(Duration::from_secs(10), "ten requests", || async {
        log_for(&m, "tok").len() >= 10
    })
    .await;
    m.state().faults.clear();
    m.state().faults.add(FaultRule {
        target: "dingtalk:robot:tok".into(),
        action: FaultAction::Http { http_status: 503 },
        count: Some(1),
        ratio: None,
        include_token_endpoints: false,
    });
    m.state().faults.add(latency);
    h.wait_settled(&ids, Duration::from_secs(30)).await;

    let log = log_for(&m, "tok");
    let refused: Vec<usize> = log
        .iter()
        .filter(|e| !e.accepted)
        .map(alert_number)
        .collect();
    assert_eq!(refused.len(), 1, "the injected 5xx: {log:?}");
    let accepted: Vec<usize> = log
        .iter()
        .filter(|e| e.accepted)
        .map(alert_number)
        .collect();
    assert_eq!(
        accepted,
        (0..50).collect::<Vec<_>>(),
        "the group reads them in accept order"
    );
    let late = &ids[refused[0]];
    let v = h.view(late).await;
    assert_eq!(v.deliveries[0].attempts, 1, "the 5xx counted");
    assert!(
        v.deliveries[0]
            .history
            .iter()
            .all(|a| a.outcome != "out_of_order"),
        "retried within its order_hold: in order"
    );
}

/// A quiet gateway runs about one dispatch cycle per message: a send that
/// ends with nothing waiting behind it starts no cycle of its own (each cycle
/// reads the backlog, so twice as many cycles cost twice the SQL per
/// message). Fifteen messages (under the robot's 20 a minute), each delivered before the next is accepted,
/// ordered and unordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_gateway_runs_one_dispatch_cycle_per_message() {
    for ordered in [true, false] {
        let mock = mock(1.0, vec![RobotConfig::new(MockPlatform::Dingtalk, "quiet")]).await;
        let text = format!(
            r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "1h"
[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]
[channels.ops]
ordered = {ordered}
[[channels.ops.destinations]]
type = "dingtalk_robot"
access_token = "quiet"
base_url = "{url}"
"#,
            url = mock.base_url()
        );
        let gw = TestGateway::start(&text).await;
        let before = gw.gw.dispatcher().snapshot().counters.cycles;
        for i in 0..15 {
            let r = gw
                .post(
                    "/v1/messages",
                    Some(ADMIN_KEY),
                    &format!(r#"{{"channel":"ops","text":"quiet {i}"}}"#),
                    &[],
                )
                .await;
            assert_eq!(r.status, 202, "{:?}", r.body);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let accepted = || {
                mock.state()
                    .log
                    .all()
                    .iter()
                    .filter(|e: &&LogEntry| e.target == "dingtalk:robot:quiet" && e.accepted)
                    .count()
            };
            while accepted() < i + 1 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "message {i} not delivered"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let cycles = gw.gw.dispatcher().snapshot().counters.cycles - before;
        eprintln!("ordered = {ordered}: {cycles} dispatch cycles for 15 messages");
        assert!(
            (15..=19).contains(&cycles),
            "ordered = {ordered}: {cycles} cycles for 15 lone messages"
        );
    }
}
