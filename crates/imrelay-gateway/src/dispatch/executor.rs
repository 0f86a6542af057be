//! The executor: carries a [`Decision`] out for one claimed delivery:
//! counters, telemetry and self-alerts, then one store write.
//!
//! No store error is dropped: each is logged with what happens next and
//! counted (`imrelay_dispatch_store_errors_total`, and `store_errors` in the
//! status). A failed write needs no repair here: a lost lease means another
//! dispatcher holds the delivery and finishes it; any other failure leaves
//! the delivery claimed, and it is sent again when its lease ends (at least
//! once).

use std::sync::atomic::Ordering;
use std::time::Duration;

use imrelay_sdk::outcome::RecipientFailure;
use imrelay_sdk::Report;

use super::decide::{attempt_is_permanent, Decision, Wait};
use super::Inner;
use crate::channels::Channel;
use crate::store::{
    AttemptRecord, Claimed, DeadReason, DeliveryId, Finish, FinishAction, StoreError,
};
use crate::telemetry::events;

/// What happens after a store write failed, for the log.
pub(super) const THEN_LEASE_ENDS: &str =
    "the delivery stays claimed and is sent again when its lease ends (at least once)";

/// One claimed delivery being sent: where it stands.
pub(super) struct Sending<'a> {
    pub c: &'a Claimed,
    pub channel: &'a Channel,
    /// The destination (pool member) of the last request.
    pub key: String,
    /// Requests made since the last store write, in order.
    pub attempts: Vec<AttemptRecord>,
    /// The part to send next (or that just failed).
    pub part: usize,
    /// Recipients that failed so far, with the first part each missed.
    pub failed: Vec<(RecipientFailure, usize)>,
    /// Failed attempts retried in place in this claim (ordered channels),
    /// which the claim's `attempts` does not include.
    pub failed_here: u32,
    /// The outcome of the last attempt retried in place, if any.
    pub last_outcome: Option<crate::domain::attempt::AttemptOutcome>,
    /// A retry in place holds later messages until then (ordered channels).
    pub hold_until: Option<i64>,
    /// Messages accepted after this one went out before it (ordered
    /// channels): recorded when it is delivered.
    pub out_of_order: bool,
}

impl<'a> Sending<'a> {
    pub fn new(c: &'a Claimed, channel: &'a Channel, key: String) -> Self {
        Sending {
            c,
            channel,
            key,
            attempts: Vec::new(),
            part: c.parts_done as usize,
            failed: Vec::new(),
            failed_here: 0,
            last_outcome: None,
            hold_until: None,
            out_of_order: false,
        }
    }
}

/// Whether the delivery goes on after [`Inner::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Send the next part (progress is recorded).
    Next,
    /// The claim has ended (or cannot go on).
    End,
}

/// The `error` label of a store error.
fn error_label(e: &StoreError) -> &'static str {
    match e {
        StoreError::Database(_) | StoreError::Connect { .. } | StoreError::Migrate(_) => "database",
        StoreError::Corrupt { .. } => "corrupt",
        StoreError::Internal(_) => "internal",
        StoreError::LeaseLost(_) => "lease_lost",
        StoreError::NotFound(_) => "not_found",
        StoreError::Invalid(_) => "invalid",
        StoreError::Closed => "closed",
    }
}

impl Inner {
    /// Carry out `d` for `s`; `report` is the answer it was decided on (none
    /// when nothing was sent).
    pub(super) async fn apply(
        &self,
        s: &mut Sending<'_>,
        report: Option<&Report>,
        d: Decision,
    ) -> Step {
        let action = match d {
            Decision::NextPart { next } => return self.progress(s, next).await,
            Decision::Delivered { parts } => {
                s.part = parts;
                self.note_out_of_order(s);
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                events::delivered(s.c, &s.key, self.now());
                FinishAction::Done
            }
            Decision::Split { parts, children } => {
                s.part = parts;
                self.note_out_of_order(s);
                self.counters.split.fetch_add(1, Ordering::Relaxed);
                FinishAction::Split { children }
            }
            Decision::Retry { at, delay } => {
                self.retry_scheduled(s, report, delay);
                FinishAction::Retry { at }
            }
            Decision::RetryAfterTokenRejected { at } => {
                self.retry_scheduled(s, report, Duration::ZERO);
                FinishAction::Retry { at }
            }
            Decision::Requeue { at, why } => {
                self.waits(s, at, why);
                FinishAction::Requeue { at }
            }
            Decision::Dead { reason, .. } => self.dead_action(s, reason),
        };
        self.finish(s, action).await;
        Step::End
    }

    /// When `s` was overtaken, count it and say so in its history, next to
    /// the request that delivered it.
    fn note_out_of_order(&self, s: &mut Sending<'_>) {
        if !s.out_of_order {
            return;
        }
        let now = self.now();
        events::out_of_order(s.c, &s.key);
        tracing::warn!(message_id = %s.c.message_id, target_key = %s.c.target,
            "delivered out of order: messages accepted after it went out while it was retried");
        let note = AttemptRecord::note(
            crate::domain::attempt::AttemptOutcome::OutOfOrder,
            &s.key,
            s.part.saturating_sub(1) as u32,
            now,
            format!(
                "delivered after messages accepted later: its retry outlasted the channel's order_hold ({})",
                humantime::format_duration(s.channel.order_hold)
            ),
        );
        // Before the delivering request, so that stays the last outcome.
        let at = s.attempts.len().saturating_sub(1);
        s.attempts.insert(at, note);
    }

    pub(super) fn retry_scheduled(
        &self,
        s: &Sending<'_>,
        report: Option<&Report>,
        delay: Duration,
    ) {
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = report {
            events::retry_scheduled(s.c, &s.key, r, delay);
        }
    }

    /// Account a wait that is not an attempt.
    pub(super) fn waits(&self, s: &Sending<'_>, at: i64, why: Wait) {
        match why {
            Wait::Platform { wait } => {
                self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                events::rate_limited(s.c, &s.key, wait);
                tracing::warn!(destination = %s.key, wait_ms = wait.as_millis() as u64,
                    "the platform rate limited a request; the destination waits and the delivery is requeued");
            }
            // A breaker pause shows as a limiter wait, as it always has: both
            // are imrelay's own holds on the destination.
            Wait::Limiter | Wait::Breaker => {
                let wait = Duration::from_millis((at - self.now()).max(0) as u64);
                events::rate_limit_wait(&s.key, "limiter", wait);
            }
            // The recipient stays out of the labels and the log: it may be a
            // phone number.
            Wait::Recipient => {
                let wait = Duration::from_millis((at - self.now()).max(0) as u64);
                events::rate_limit_wait(&s.key, "recipient", wait);
                tracing::debug!(destination = %s.key, at, "a recipient's quota is used up; the delivery waits");
            }
            Wait::Cluster => {
                tracing::debug!(destination = %s.key, at, "over the cluster's quota; requeued with progress kept");
            }
            Wait::Thread => {
                tracing::debug!(destination = %s.key, at, "an update waits for its thread's first message");
            }
        }
    }

    /// Dead-letter: counters, telemetry, alerts, and the fallback copy when
    /// the channel has one.
    fn dead_action(&self, s: &Sending<'_>, reason: DeadReason) -> FinishAction {
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        events::dead(s.c, &s.key, &reason, s.attempts.last());
        if let Some(a) = self.alerts.get() {
            if let Some(last) = s.attempts.last().filter(|a| attempt_is_permanent(a)) {
                a.permanent_error(
                    &s.channel.name,
                    &last.destination,
                    reason.code.as_deref(),
                    &reason.reason,
                );
            }
            a.check_dlq();
        }
        tracing::warn!(message_id = %s.c.message_id, target_key = %s.c.target, code = ?reason.code,
            reason = %reason.reason, "delivery dead-lettered");
        let fallback = self.fallback_on_dead(s.channel, s.c, &reason.reason);
        FinishAction::Dead {
            reason,
            fallback: fallback.map(Box::new),
        }
    }

    /// Record the parts sent so far and extend the lease; go on with `next`.
    pub(super) async fn progress(&self, s: &mut Sending<'_>, next: usize) -> Step {
        let until = self.now() + self.cfg.lease.as_millis() as i64;
        let batch = std::mem::take(&mut s.attempts);
        let r = self
            .store
            .progress(s.c.delivery_id, &self.cfg.owner, batch, next as u32, until)
            .await;
        match r {
            Ok(()) => {
                s.part = next;
                Step::Next
            }
            Err(e) => {
                self.store_failed(
                    "progress",
                    Some(s.c.delivery_id),
                    &e,
                    "stopping this send; the delivery is sent again from its last recorded part when its lease ends",
                );
                Step::End
            }
        }
    }

    /// End the claim with `action`.
    pub(super) async fn finish(&self, s: &mut Sending<'_>, action: FinishAction) {
        let f = Finish {
            attempts: std::mem::take(&mut s.attempts),
            parts_done: s.part as u32,
            action,
        };
        if let Err(e) = self.store.finish(s.c.delivery_id, &self.cfg.owner, f).await {
            self.store_failed("finish", Some(s.c.delivery_id), &e, THEN_LEASE_ENDS);
        }
    }

    /// Give back a claim that was never sent, unchanged and due at `at`.
    pub(super) async fn give_back(&self, c: &Claimed, at: i64) {
        let r = self
            .store
            .requeue_without_attempt(c.delivery_id, &self.cfg.owner, at, vec![], c.parts_done)
            .await;
        if let Err(e) = r {
            self.store_failed(
                "give_back",
                Some(c.delivery_id),
                &e,
                "the delivery stays claimed, unsent, until its lease ends",
            );
        }
    }

    /// Log and count a failed store operation. `then`: what happens to the
    /// work for any error but a lost lease.
    pub(super) fn store_failed(
        &self,
        op: &'static str,
        delivery: Option<DeliveryId>,
        e: &StoreError,
        then: &str,
    ) {
        self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
        events::dispatch_store_error(op, error_label(e));
        let delivery = delivery.map_or(0, DeliveryId::get);
        match e {
            StoreError::LeaseLost(_) => tracing::warn!(op, delivery, error = %e,
                "another dispatcher holds this delivery now and finishes it; this dispatcher's result is dropped"),
            _ => tracing::error!(op, delivery, error = %e, "store operation failed: {then}"),
        }
    }
}

/// Log a finished send task that panicked.
pub(super) fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        if e.is_panic() {
            tracing::error!(error = %e, "a send task panicked; its delivery returns when the lease expires");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::ChannelSet;
    use crate::dispatch::{DispatchConfig, Dispatcher};
    use crate::store::{ClaimRequest, DeliveryState, NewMessage, Store, StoreOptions};
    use arc_swap::ArcSwap;
    use imrelay_sdk::Message;
    use std::sync::Arc;

    async fn setup(dir: &tempfile::TempDir) -> (Arc<dyn Store>, Dispatcher) {
        let url = format!("sqlite://{}", dir.path().join("q.db").display());
        let store = crate::store::open(StoreOptions::new(url)).await.unwrap();
        let channels = Arc::new(ArcSwap::from_pointee(ChannelSet::new([])));
        let cfg = DispatchConfig {
            owner: "me".into(),
            ..DispatchConfig::default()
        };
        (store.clone(), Dispatcher::new(store, channels, cfg))
    }

    async fn claimed_by(store: &Arc<dyn Store>, owner: &str) -> Claimed {
        let m = NewMessage::new("app", Message::text("x"), vec!["app/d".parse().unwrap()]);
        store.enqueue(vec![m]).await.unwrap();
        let mut c = store
            .claim(ClaimRequest {
                target: None,
                limit: 1,
                lease: Duration::from_secs(60),
                owner: owner.into(),
                order_hold: None,
            })
            .await
            .unwrap();
        c.pop().expect("one claimed")
    }

    #[tokio::test]
    async fn a_lost_lease_is_counted_and_leaves_the_delivery_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let (store, d) = setup(&dir).await;
        let c = claimed_by(&store, "someone-else").await;
        let channel = Channel::new("app", vec![]);
        let mut s = Sending::new(&c, &channel, "d".into());
        assert_eq!(
            d.inner
                .apply(&mut s, None, Decision::Delivered { parts: 1 })
                .await,
            Step::End
        );
        d.inner.give_back(&c, 0).await;
        assert_eq!(d.snapshot().counters.store_errors, 2);
        let v = store.get_message(&c.message_id).await.unwrap().unwrap();
        assert_eq!(
            v.deliveries[0].state,
            DeliveryState::Claimed,
            "still the other owner's"
        );
    }

    #[tokio::test]
    async fn a_failed_progress_write_stops_the_send() {
        let dir = tempfile::tempdir().unwrap();
        let (store, d) = setup(&dir).await;
        let c = claimed_by(&store, "someone-else").await;
        let channel = Channel::new("app", vec![]);
        let mut s = Sending::new(&c, &channel, "d".into());
        let step = d
            .inner
            .apply(&mut s, None, Decision::NextPart { next: 1 })
            .await;
        assert_eq!(step, Step::End);
        assert_eq!(s.part, 0, "the part is not advanced");
        assert_eq!(d.snapshot().counters.store_errors, 1);
    }

    #[tokio::test]
    async fn a_closed_store_is_counted_too() {
        let dir = tempfile::tempdir().unwrap();
        let (store, d) = setup(&dir).await;
        let c = claimed_by(&store, "me").await;
        store.close().await;
        let channel = Channel::new("app", vec![]);
        let mut s = Sending::new(&c, &channel, "d".into());
        d.inner
            .apply(
                &mut s,
                None,
                Decision::Requeue {
                    at: 0,
                    why: Wait::Cluster,
                },
            )
            .await;
        assert_eq!(d.snapshot().counters.store_errors, 1);
    }
}
