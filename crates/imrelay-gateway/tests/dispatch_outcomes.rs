//! Outcome handling with a scripted destination: the token-refresh rule, partial
//! recipient failures, split messages resuming at the failed part, and stable
//! dedup keys across retries.

mod dispatch_common;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use dispatch_common::*;
use imrelay_gateway::channels::{ChannelSet, DestinationEntry};
use imrelay_gateway::store::{DeadFilter, DeliveryState, MessageState};
use imrelay_sdk::message::{Body, Platform};
use imrelay_sdk::outcome::RecipientFailure;
use imrelay_sdk::{Destination, Message, Outcome, Payload, Quota, Report};
use parking_lot::Mutex;

/// A destination that renders `text` split on `|` into parts (one request per
/// part, addressed to the message's recipients) and answers from a script
/// (then "delivered").
#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Report>>,
    sent: Mutex<Vec<Payload>>,
}

impl Scripted {
    fn new(answers: impl IntoIterator<Item = Report>) -> Arc<Self> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.into_iter().collect()),
            sent: Mutex::default(),
        })
    }
    fn sent(&self) -> Vec<Payload> {
        self.sent.lock().clone()
    }
}

#[async_trait]
impl Destination for Scripted {
    fn kind(&self) -> &'static str {
        "scripted"
    }
    fn platform(&self) -> Platform {
        Platform::Webhook
    }
    fn id(&self) -> &str {
        "scripted:1"
    }
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(1000)]
    }
    fn render(&self, msg: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
        let Body::Text { text } = &msg.body else {
            return Err(imrelay_sdk::Error::unsupported(
                "scripted",
                msg.body.kind(),
                "text only",
            ));
        };
        Ok(text
            .split('|')
            .enumerate()
            .map(|(i, part)| {
                let mut p = Payload::new(serde_json::json!({ "part": part }));
                p.recipients = msg.recipients.clone();
                p.dedup_key = imrelay_sdk::destination::dedup_key(
                    msg.id.as_deref(),
                    i,
                    &msg.recipients.join(","),
                );
                p
            })
            .collect())
    }
    async fn send(&self, payload: &Payload) -> Report {
        self.sent.lock().push(payload.clone());
        self.answers
            .lock()
            .pop_front()
            .unwrap_or_else(Report::delivered)
    }
}

fn harness_channel(dest: Arc<Scripted>) -> ChannelSet {
    let entry = DestinationEntry::new(dest).with_breaker(fast_breaker());
    ChannelSet::new([channel("app", vec![entry])])
}

fn report(outcome: Outcome, msg: &str) -> Report {
    Report::new(outcome, msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_token_is_retried_at_once_once_then_permanent() {
    let dest = Scripted::new([
        report(Outcome::RefreshToken, "access_token expired")
            .with_code(imrelay_sdk::Code::Int(42001)),
        report(Outcome::RefreshToken, "access_token invalid")
            .with_code(imrelay_sdk::Code::Int(40014)),
    ]);
    let h = Harness::start(harness_channel(dest.clone())).await;
    let id = h.send("app", Message::text("x")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Dead);
    let hist = &v.deliveries[0].history;
    assert_eq!(hist.len(), 2);
    assert!(
        hist[1].started_at - hist[0].finished_at < 500,
        "the second try is immediate"
    );
    let dead = v.deliveries[0].dead.clone().unwrap();
    assert_eq!(dead.code.as_deref(), Some("40014"));
    assert_eq!(dead.reason, "access_token invalid");

    let dest = Scripted::new([report(Outcome::RefreshToken, "expired")]);
    let h = Harness::start(harness_channel(dest.clone())).await;
    let id = h.send("app", Message::text("x")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    assert_eq!(h.view(&id).await.state, MessageState::Delivered);
    assert_eq!(dest.sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_failure_splits_per_recipient() {
    let mut partial = Report::delivered();
    partial.failed_recipients = vec![
        RecipientFailure {
            recipient: "bob".into(),
            outcome: Outcome::RateLimited {
                wait: Duration::from_millis(100),
            },
            reason: "user flow control".into(),
        },
        RecipientFailure {
            recipient: "carol".into(),
            outcome: Outcome::Permanent,
            reason: "user not found".into(),
        },
    ];
    let dest = Scripted::new([partial]);
    let h = Harness::start(harness_channel(dest.clone())).await;
    let msg =
        Message::text("hello").with_recipients(vec!["alice".into(), "bob".into(), "carol".into()]);
    let id = h.send("app", msg).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(
        v.state,
        MessageState::Partial,
        "alice and bob delivered, carol dead"
    );
    let summary: Vec<(DeliveryState, Vec<String>)> = v
        .deliveries
        .iter()
        .map(|d| (d.state, d.recipients.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (DeliveryState::Done, vec![]),
            (DeliveryState::Done, vec!["bob".to_string()]),
            (DeliveryState::Dead, vec!["carol".to_string()]),
        ]
    );
    let sent = dest.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].recipients,
        ["bob"],
        "only the throttled recipient is sent again"
    );
    let dead = h.store.list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(dead[0].recipients, ["carol"]);
    assert_eq!(dead[0].reason, "user not found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_message_resumes_at_the_failed_part_with_stable_dedup_keys() {
    let dest = Scripted::new([
        Report::delivered(),
        report(Outcome::Retry { after: None }, "system busy"),
        report(Outcome::Retry { after: None }, "system busy"),
    ]);
    let h = Harness::start(harness_channel(dest.clone())).await;
    let id = h.send("app", Message::text("one|two|three")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Delivered);
    assert_eq!(v.deliveries[0].parts_done, 3);
    let parts: Vec<String> = dest
        .sent()
        .iter()
        .map(|p| p.body["part"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        parts,
        ["one", "two", "two", "two", "three"],
        "part one is not sent again"
    );
    let keys: Vec<Option<String>> = dest.sent().iter().map(|p| p.dedup_key.clone()).collect();
    assert_eq!(keys[1], keys[2], "a retry carries the same dedup key");
    assert_eq!(
        keys[1],
        imrelay_sdk::destination::dedup_key(Some(&id), 1, ""),
        "derived from the gateway's message id"
    );
    let hist: Vec<(u32, &str)> = v.deliveries[0]
        .history
        .iter()
        .map(|a| (a.part, a.outcome.as_str()))
        .collect();
    assert_eq!(
        hist,
        [
            (0, "delivered"),
            (1, "retry"),
            (1, "retry"),
            (1, "delivered"),
            (2, "delivered")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_destination_cannot_express_is_dead_lettered_with_why() {
    let dest = Scripted::new([]);
    let h = Harness::start(harness_channel(dest.clone())).await;
    let id = h.send("app", Message::markdown("t", "**x**")).await;
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(10))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Dead);
    let reason = v.deliveries[0].dead.clone().unwrap().reason;
    assert!(
        reason.starts_with("cannot render the message for scripted:"),
        "{reason}"
    );
    assert!(dest.sent().is_empty());
    // The permit was given back: the destination still sends.
    let ok = h.send("app", Message::text("fine")).await;
    h.wait_settled(std::slice::from_ref(&ok), Duration::from_secs(10))
        .await;
    assert_eq!(h.view(&ok).await.state, MessageState::Delivered);
}
