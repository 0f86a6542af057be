//! Outcome handling with a scripted destination: the token-refresh rule, partial
//! recipient failures, split messages resuming at the failed part, and stable
//! dedup keys across retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::dispatch_common::*;
use async_trait::async_trait;
use imrelay_gateway::channels::{ChannelSet, DestinationEntry};
use imrelay_gateway::dispatch::DispatchConfig;
use imrelay_gateway::store::{
    self, Ack, AttemptRecord, ClaimRequest, Claimed, DeadEntry, DeadFilter, DeadSelector,
    DeliveryId, DeliveryState, EnqueueOutcome, Finish, MessageId, MessageState, MessageView,
    NewMessage, Overdue, QueueStats, SentPartRecord, Silence, Store, StoreError, TargetBacklog,
};
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

/// A store whose first `finish` calls fail as a broken disk would.
struct FailingFinish {
    inner: Arc<dyn Store>,
    failures_left: AtomicU32,
}

#[async_trait]
impl Store for FailingFinish {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn now_ms(&self) -> i64 {
        self.inner.now_ms()
    }
    fn notifier(&self) -> Arc<tokio::sync::Notify> {
        self.inner.notifier()
    }
    async fn enqueue(&self, msgs: Vec<NewMessage>) -> store::Result<Vec<EnqueueOutcome>> {
        self.inner.enqueue(msgs).await
    }
    async fn get_message(&self, id: &str) -> store::Result<Option<MessageView>> {
        self.inner.get_message(id).await
    }
    async fn sent_parts(&self, message: &str) -> store::Result<Vec<(String, SentPartRecord)>> {
        self.inner.sent_parts(message).await
    }
    async fn superseded(&self, root: &str, seq: i64, target: &str) -> store::Result<bool> {
        self.inner.superseded(root, seq, target).await
    }
    async fn thread_latest(&self, root: &str) -> store::Result<Option<MessageId>> {
        self.inner.thread_latest(root).await
    }
    async fn adopt_thread(&self, id: &str) -> store::Result<Option<String>> {
        self.inner.adopt_thread(id).await
    }
    async fn acknowledge(
        &self,
        root: &str,
        ack: Ack,
        update: Option<NewMessage>,
    ) -> store::Result<()> {
        self.inner.acknowledge(root, ack, update).await
    }
    async fn set_update_token(&self, platform_message_id: &str, token: &str) -> store::Result<()> {
        self.inner
            .set_update_token(platform_message_id, token)
            .await
    }
    async fn put_silence(&self, silence: Silence) -> store::Result<()> {
        self.inner.put_silence(silence).await
    }
    async fn due_groups(&self, limit: u32) -> store::Result<Vec<store::DueGroup>> {
        self.inner.due_groups(limit).await
    }
    async fn send_group(&self, send: store::SendGroup) -> store::Result<bool> {
        self.inner.send_group(send).await
    }
    async fn group(&self, id: &str) -> store::Result<Option<store::DueGroup>> {
        self.inner.group(id).await
    }
    async fn group_members(
        &self,
        id: &str,
    ) -> store::Result<Vec<(store::MessageId, imrelay_sdk::Message)>> {
        self.inner.group_members(id).await
    }
    async fn due_escalations(&self, limit: u32) -> store::Result<Vec<store::Escalation>> {
        self.inner.due_escalations(limit).await
    }
    async fn fire_escalation(&self, fire: store::FireStep) -> store::Result<bool> {
        self.inner.fire_escalation(fire).await
    }
    async fn stop_escalation(
        &self,
        root: &str,
        state: store::EscalationState,
        by: &str,
    ) -> store::Result<bool> {
        self.inner.stop_escalation(root, state, by).await
    }
    async fn put_override(&self, o: store::Override) -> store::Result<()> {
        self.inner.put_override(o).await
    }
    async fn overrides(&self, schedule: Option<&str>) -> store::Result<Vec<store::Override>> {
        self.inner.overrides(schedule).await
    }
    async fn delete_override(&self, id: &str) -> store::Result<bool> {
        self.inner.delete_override(id).await
    }
    async fn silences(&self) -> store::Result<Vec<Silence>> {
        self.inner.silences().await
    }
    async fn expire_silence(
        &self,
        id: &str,
        release: store::Release,
    ) -> store::Result<Option<u64>> {
        self.inner.expire_silence(id, release).await
    }
    async fn spend_update_token(
        &self,
        platform_message_id: &str,
        token: &str,
    ) -> store::Result<()> {
        self.inner
            .spend_update_token(platform_message_id, token)
            .await
    }
    async fn lock_thread(
        &self,
        root: &str,
        target: &str,
        owner: &str,
        lease: Duration,
    ) -> store::Result<bool> {
        self.inner.lock_thread(root, target, owner, lease).await
    }
    async fn unlock_thread(&self, root: &str, target: &str, owner: &str) -> store::Result<()> {
        self.inner.unlock_thread(root, target, owner).await
    }
    async fn backlog(&self, cap: u64) -> store::Result<Vec<TargetBacklog>> {
        self.inner.backlog(cap).await
    }
    async fn claim(&self, req: ClaimRequest) -> store::Result<Vec<Claimed>> {
        self.inner.claim(req).await
    }
    async fn progress(
        &self,
        delivery: DeliveryId,
        owner: &str,
        attempts: Vec<AttemptRecord>,
        parts_done: u32,
        lease_until: i64,
    ) -> store::Result<()> {
        self.inner
            .progress(delivery, owner, attempts, parts_done, lease_until)
            .await
    }
    async fn extend_leases(
        &self,
        owner: &str,
        deliveries: Vec<DeliveryId>,
        lease_until: i64,
    ) -> store::Result<u64> {
        self.inner
            .extend_leases(owner, deliveries, lease_until)
            .await
    }
    async fn finish(&self, delivery: DeliveryId, owner: &str, finish: Finish) -> store::Result<()> {
        let fail = self
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(StoreError::Database(std::sync::Arc::new(sqlx::Error::Io(
                std::io::Error::other("disk I/O error (injected)"),
            ))));
        }
        self.inner.finish(delivery, owner, finish).await
    }
    async fn coalesce(
        &self,
        owner: &str,
        members: Vec<DeliveryId>,
        digest: NewMessage,
    ) -> store::Result<MessageId> {
        self.inner.coalesce(owner, members, digest).await
    }
    async fn overdue(
        &self,
        channel: &str,
        created_before: i64,
        limit: u32,
    ) -> store::Result<Vec<Overdue>> {
        self.inner.overdue(channel, created_before, limit).await
    }
    async fn fall_back(&self, delivery: DeliveryId, fallback: NewMessage) -> store::Result<bool> {
        self.inner.fall_back(delivery, fallback).await
    }
    async fn list_dead(&self, filter: &DeadFilter) -> store::Result<Vec<DeadEntry>> {
        self.inner.list_dead(filter).await
    }
    async fn search_messages(
        &self,
        filter: &store::MessageFilter,
    ) -> store::Result<Vec<store::MessageSummary>> {
        self.inner.search_messages(filter).await
    }
    async fn activity(
        &self,
        since: i64,
        channels: Option<&[String]>,
    ) -> store::Result<Vec<store::ActivityMinute>> {
        self.inner.activity(since, channels).await
    }
    async fn get_dead(&self, delivery: DeliveryId) -> store::Result<Option<DeadEntry>> {
        self.inner.get_dead(delivery).await
    }
    async fn replay(&self, sel: &DeadSelector) -> store::Result<u64> {
        self.inner.replay(sel).await
    }
    async fn purge_dead(&self, sel: &DeadSelector) -> store::Result<u64> {
        self.inner.purge_dead(sel).await
    }
    async fn release(&self, owner: &str) -> store::Result<u64> {
        self.inner.release(owner).await
    }
    async fn stats(&self) -> store::Result<QueueStats> {
        self.inner.stats().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_store_cannot_record_is_counted_and_the_delivery_returns_after_its_lease() {
    let dest = Scripted::new([]);
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(FailingFinish {
        inner: open_store(&dir).await,
        failures_left: AtomicU32::new(1),
    });
    // A short lease: the outcome that was not recorded leaves the claim to
    // run out, with no heartbeat once the send task has ended.
    let cfg = DispatchConfig {
        send_timeout: Duration::from_secs(1),
        lease: Duration::from_secs(1),
        ..test_dispatch_config()
    };
    let h = Harness::start_on(dir, store, harness_channel(dest.clone()), cfg);
    let id = h.send("app", Message::text("x")).await;
    wait_for(Duration::from_secs(5), "the first send", || async {
        dest.sent().len() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.dispatcher.snapshot().counters.store_errors, 1);
    assert_eq!(
        h.view(&id).await.deliveries[0].state,
        DeliveryState::Claimed,
        "the outcome was not recorded: the delivery stays claimed"
    );
    h.wait_settled(std::slice::from_ref(&id), Duration::from_secs(15))
        .await;
    let v = h.view(&id).await;
    assert_eq!(v.state, MessageState::Delivered);
    assert_eq!(dest.sent().len(), 2, "sent again once the lease ended");
    assert_eq!(
        v.deliveries[0].history.len(),
        1,
        "only the recorded attempt"
    );
}
