//! Order per destination: an ordered channel (the default) sends one message
//! at a time per destination, in accept order; a retry holds the ones behind
//! it for at most `order_hold`, then they go on and it is recorded as out of
//! order. `ordered = false` sends concurrently.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch_common::{channel, Harness};
use async_trait::async_trait;
use imrelay_gateway::channels::{ChannelSet, DestinationEntry};
use imrelay_gateway::store::{MessageState, NewMessage};
use imrelay_sdk::message::{Body, Platform};
use imrelay_sdk::{Destination, Message, Outcome, Payload, Quota, Report};
use parking_lot::Mutex;

/// Answers per message text from a script (then "delivered") after `latency`,
/// noting the order of requests and the most in flight at once.
#[derive(Debug, Default)]
struct ByText {
    kind: &'static str,
    latency: Duration,
    script: Mutex<HashMap<String, VecDeque<Report>>>,
    sent: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl ByText {
    fn new(latency: Duration, script: &[(&str, Vec<Report>)]) -> Arc<Self> {
        Arc::new(ByText {
            kind: "bytext",
            latency,
            script: Mutex::new(
                script
                    .iter()
                    .map(|(t, r)| (t.to_string(), r.iter().cloned().collect()))
                    .collect(),
            ),
            ..ByText::default()
        })
    }
    fn sent(&self) -> Vec<String> {
        self.sent.lock().clone()
    }
}

#[async_trait]
impl Destination for ByText {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn platform(&self) -> Platform {
        Platform::Webhook
    }
    fn id(&self) -> &str {
        "bytext:1"
    }
    fn rate_limits(&self) -> Vec<Quota> {
        vec![]
    }
    fn render(&self, msg: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
        let Body::Text { text } = &msg.body else {
            unreachable!("text only")
        };
        let mut p = Payload::new(serde_json::json!({ "text": text }));
        p.recipients = msg.recipients.clone();
        Ok(vec![p])
    }
    async fn send(&self, payload: &Payload) -> Report {
        let text = payload.body["text"].as_str().unwrap().to_string();
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        self.sent.lock().push(text.clone());
        tokio::time::sleep(self.latency).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.script
            .lock()
            .get_mut(&text)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(Report::delivered)
    }
}

fn transient() -> Report {
    Report::new(Outcome::Retry { after: None }, "busy")
}

/// Enqueue `texts` to `ops` in one commit, in this order.
async fn send_all(h: &Harness, texts: &[&str]) -> Vec<String> {
    let targets = h.channels.load().get("ops").unwrap().targets();
    let batch: Vec<NewMessage> = texts
        .iter()
        .map(|t| NewMessage::new("ops", Message::text(*t), targets.clone()))
        .collect();
    let ids = batch.iter().map(|m| m.id.to_string()).collect();
    h.store.enqueue(batch).await.unwrap();
    ids
}

fn texts(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ordered_destination_gets_one_message_at_a_time_in_accept_order() {
    let dest = ByText::new(
        Duration::from_millis(5),
        &[("m3", vec![transient(), transient()])],
    );
    let ch = channel("ops", vec![DestinationEntry::new(dest.clone())]);
    assert!(ch.ordered, "ordered by default");
    let h = Harness::start(ChannelSet::new([ch])).await;
    let all = texts(20);
    let ids = send_all(&h, &all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    let mut want: Vec<String> = all.clone();
    // m3 twice more, in its place: the ones behind it wait.
    want.insert(3, "m3".into());
    want.insert(3, "m3".into());
    assert_eq!(dest.sent(), want);
    assert_eq!(dest.max_in_flight.load(Ordering::SeqCst), 1);
    let v = h.view(&ids[3]).await;
    let d = &v.deliveries[0];
    assert_eq!(v.state, MessageState::Delivered);
    assert_eq!(d.attempts, 2, "both failures counted");
    let outcomes: Vec<&str> = d.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_past_order_hold_lets_the_others_go_and_is_marked_out_of_order() {
    let dest = ByText::new(Duration::from_millis(5), &[("m1", vec![transient()])]);
    let mut ch = channel("ops", vec![DestinationEntry::new(dest.clone())]);
    // No hold at all: a failed message never keeps the others waiting.
    ch.order_hold = Duration::ZERO;
    ch.retry.base = Duration::from_millis(300);
    ch.retry.cap = Duration::from_millis(300);
    let h = Harness::start(ChannelSet::new([ch])).await;
    let ids = send_all(&h, &["m0", "m1", "m2", "m3"]).await;
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    let sent = dest.sent();
    assert_eq!(&sent[..4], ["m0", "m1", "m2", "m3"], "{sent:?}");
    assert_eq!(&sent[4..], ["m1"], "m1 again, after the others");
    let d = &h.view(&ids[1]).await.deliveries[0];
    let outcomes: Vec<&str> = d.history.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "out_of_order", "delivered"]);
    assert_eq!(
        h.view(&ids[1]).await.state,
        MessageState::Delivered,
        "out of order, but delivered"
    );
    assert!(!d.history[1].counted);
    assert!(
        d.history[1].message.contains("order_hold"),
        "{}",
        d.history[1].message
    );
    for id in [&ids[0], &ids[2], &ids[3]] {
        let d = &h.view(id).await.deliveries[0];
        assert!(d.history.iter().all(|a| a.outcome != "out_of_order"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unordered_channel_sends_to_one_destination_concurrently() {
    let dest = ByText::new(Duration::from_millis(100), &[]);
    let mut ch = channel("ops", vec![DestinationEntry::new(dest.clone())]);
    ch.ordered = false;
    let h = Harness::start(ChannelSet::new([ch])).await;
    let all = texts(20);
    let ids = send_all(&h, &all.iter().map(String::as_str).collect::<Vec<_>>()).await;
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    assert!(
        dest.max_in_flight.load(Ordering::SeqCst) > 1,
        "concurrent sends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_gives_back_a_retry_waiting_in_place_at_once() {
    let dest = ByText::new(Duration::from_millis(5), &[("m0", vec![transient()])]);
    let mut ch = channel("ops", vec![DestinationEntry::new(dest.clone())]);
    ch.retry.base = Duration::from_secs(20);
    ch.retry.cap = Duration::from_secs(20);
    let cfg = imrelay_gateway::dispatch::DispatchConfig {
        drain_deadline: Duration::from_secs(10),
        ..crate::dispatch_common::test_dispatch_config()
    };
    let mut h = Harness::start_with(ChannelSet::new([ch]), cfg).await;
    let ids = send_all(&h, &["m0", "m1"]).await;
    crate::dispatch_common::wait_for(Duration::from_secs(5), "m0's failure recorded", || async {
        h.view(&ids[0]).await.deliveries[0].history.len() == 1
    })
    .await;
    let started = std::time::Instant::now();
    h.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the drain does not wait for the retry: {:?}",
        started.elapsed()
    );
    assert_eq!(dest.sent(), ["m0"], "m1 still waits behind it");
    let d = &h.view(&ids[0]).await.deliveries[0];
    assert_eq!(d.state, imrelay_gateway::store::DeliveryState::Pending);
    assert_eq!(d.attempts, 1, "the failure counted once");
    assert_eq!(
        h.view(&ids[1]).await.deliveries[0].state,
        imrelay_gateway::store::DeliveryState::Pending
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_app_keeps_order_per_recipient_and_sends_to_recipients_side_by_side() {
    let mut dest = ByText::new(Duration::from_millis(50), &[("u1-1", vec![transient()])]);
    Arc::get_mut(&mut dest).unwrap().kind = "bytext_app";
    let ch = channel("ops", vec![DestinationEntry::new(dest.clone())]);
    let h = Harness::start(ChannelSet::new([ch])).await;
    let targets = h.channels.load().get("ops").unwrap().targets();
    let mut batch = Vec::new();
    for i in 0..4 {
        for u in 0..3 {
            let m = Message::text(format!("u{u}-{i}")).with_recipients(vec![format!("u{u}")]);
            batch.push(NewMessage::new("ops", m, targets.clone()));
        }
    }
    let ids: Vec<String> = batch.iter().map(|m| m.id.to_string()).collect();
    h.store.enqueue(batch).await.unwrap();
    h.wait_settled(&ids, Duration::from_secs(10)).await;
    let sent = dest.sent();
    for u in 0..3 {
        let mine: Vec<&String> = sent
            .iter()
            .filter(|t| t.starts_with(&format!("u{u}-")))
            .collect();
        let mut want: Vec<String> = (0..4).map(|i| format!("u{u}-{i}")).collect();
        if u == 1 {
            want.insert(1, "u1-1".into());
        }
        assert_eq!(mine, want.iter().collect::<Vec<_>>(), "{sent:?}");
    }
    let most = dest.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&most),
        "one at a time per recipient: {most}"
    );
}
