//! Sending one claimed delivery: render it, then for each part
//! admit → send → decide → apply, until a decision ends the claim.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::{Message, Outcome, Report};

use super::admission::{Admit, Permit};
use super::decide::{self, Decision, Input};
use super::executor::{Sending, Step};
use super::ops::Op;
use super::{Inner, Job};
use crate::channels::DestinationEntry;
use crate::store::{AttemptRecord, FinishAction};
use crate::telemetry::events;

impl Inner {
    /// Send one claimed delivery and record the outcome.
    pub(super) async fn deliver(self: &Arc<Self>, job: Job) {
        let Job {
            claimed: c,
            channel,
            members,
            member: permit_of,
            out_of_order,
        } = job;
        let mut held = permit_of.is_some();
        let mut member = permit_of.unwrap_or_else(|| self.admission.turn(&c.target, members.len()));
        let mut s = Sending::new(&c, &channel, members[member].key.clone());
        s.out_of_order = out_of_order;
        let mut work = match self.work(&c, &members[member]).await {
            Ok(w) => w,
            Err(skip) => {
                if held {
                    self.admission.cancel(&members[member].key);
                }
                s.attempts.extend(skip.note);
                self.apply(&mut s, None, skip.decision).await;
                return;
            }
        };
        loop {
            let permit = match self
                .admission
                .admit(
                    &c.target,
                    &members,
                    member,
                    held,
                    work.ops[s.part].recipients(),
                )
                .await
            {
                Admit::Go(p) => p,
                // The next part must wait: not an attempt. In place (ordered
                // channels) or requeued with progress kept.
                Admit::Wait { at, why } => {
                    held = false;
                    match self
                        .wait_in_place(&mut s, None, Decision::Requeue { at, why })
                        .await
                    {
                        InPlace::Again => continue,
                        InPlace::Stop => return,
                        InPlace::No(d) => {
                            self.apply(&mut s, None, d).await;
                            return;
                        }
                    }
                }
            };
            held = false;
            member = permit.member;
            s.key = members[member].key.clone();
            let op = &work.ops[s.part];
            let report = self
                .send(&mut s, &members[member], op, &work.message, permit)
                .await;
            self.spend_update_token(op, &report).await;
            // The platform would not edit the card after all (its window or
            // edit count passed, its update token is spent): the update goes
            // out as a new message naming the first, in this claim.
            if matches!(op, Op::Update(_)) && report.outcome == Outcome::Permanent {
                if let Some(mut w) =
                    work.as_new_message(&c, &members[member], &self.cfg.card_time_zone)
                {
                    tracing::info!(message_id = %c.message_id, destination = %members[member].key,
                        reason = %report.message, "the platform refused the update in place; sent as a new message");
                    w.lease = work.lease.take();
                    work = w;
                    s.part = 0;
                    continue;
                }
            }
            let d = self.decide(&s, &report, work.ops.len());
            let d = match self.wait_in_place(&mut s, Some(&report), d).await {
                InPlace::Again => continue,
                InPlace::Stop => return,
                InPlace::No(d) => d,
            };
            if self.apply(&mut s, Some(&report), d).await == Step::End {
                return;
            }
        }
    }

    /// An update token is good for one update (WeCom's response_code): once
    /// the platform took or refused it, it is spent.
    async fn spend_update_token(&self, op: &Op, report: &Report) {
        let (Op::Update(part), Some(token)) = (op, op_token(op)) else {
            return;
        };
        if report.outcome.is_delivered() || report.outcome == Outcome::Permanent {
            if let Err(e) = self
                .store
                .spend_update_token(&part.platform_message_id, token)
                .await
            {
                tracing::warn!(error = %e, "cannot forget a used update token");
            }
        }
    }

    /// In an ordered channel, a delivery that must wait keeps its claim and
    /// its place in the lane: record what was tried, wait here and go again.
    /// A retry does so only until `order_hold` after its first failure in
    /// this claim; past that (and in unordered channels) the decision stands.
    async fn wait_in_place(
        &self,
        s: &mut Sending<'_>,
        report: Option<&Report>,
        d: Decision,
    ) -> InPlace {
        // Stopping: the decision stands, as in an unordered channel.
        if !s.channel.ordered || !self.running.load(Ordering::Relaxed) {
            return InPlace::No(d);
        }
        let now = self.now();
        let (at, delay) = match d {
            Decision::Requeue { at, why } => {
                self.waits(s, at, why);
                (at, None)
            }
            Decision::Retry { at, delay } => (at, Some(delay)),
            Decision::RetryAfterTokenRejected { at } => (at, Some(Duration::ZERO)),
            d => return InPlace::No(d),
        };
        if let Some(delay) = delay {
            let hold_ms = s.channel.order_hold.as_millis() as i64;
            let until = *s.hold_until.get_or_insert(now + hold_ms);
            // A zero hold never holds, not even a retry due at once.
            if hold_ms == 0 || at > until {
                tracing::info!(message_id = %s.c.message_id, target_key = %s.c.target,
                    order_hold_ms = hold_ms,
                    "a retry would hold later messages past the channel's order_hold: they go ahead and this one is sent later, out of order");
                return InPlace::No(d);
            }
            self.retry_scheduled(s, report, delay);
            s.failed_here += 1;
        }
        if let Some(a) = s.attempts.last() {
            s.last_outcome = Some(a.outcome);
        }
        // The attempts are recorded now, so the history shows why it waits.
        if !s.attempts.is_empty() && self.progress(s, s.part).await == Step::End {
            return InPlace::Stop;
        }
        let stop = self.stopping.notified();
        tokio::pin!(stop);
        stop.as_mut().enable();
        if self.running.load(Ordering::Relaxed) {
            // At least 1 ms: a wait until now must not spin.
            let wait = Duration::from_millis((at - self.now()).max(1) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => return InPlace::Again,
                _ = &mut stop => {}
            }
        }
        // Stopping while waiting: back to the queue, due when it would have
        // been sent (its failures are recorded already, so not a retry).
        self.finish(s, FinishAction::Requeue { at }).await;
        InPlace::Stop
    }

    /// Make one request and account it: the destination's limiter and
    /// breaker, telemetry, alerts, and the attempt record.
    async fn send(
        &self,
        s: &mut Sending<'_>,
        m: &DestinationEntry,
        op: &Op,
        msg: &Message,
        permit: Permit,
    ) -> Report {
        let started = self.now();
        let request = async {
            let refused = |e: imrelay_sdk::Error| Report::new(Outcome::Permanent, e.to_string());
            match op {
                Op::Send(payload) => m.dest.send(payload).await,
                Op::Update(part) => m.dest.update(part, msg).await.unwrap_or_else(refused),
                Op::Recall(part) => m.dest.recall(part).await.unwrap_or_else(refused),
                Op::Urgent { part, kind, users } => m
                    .dest
                    .urgent(part, *kind, users, &urgent_text(msg))
                    .await
                    .unwrap_or_else(refused),
            }
        };
        let call = tracing::Instrument::instrument(request, events::platform_call_span(&m.key));
        let report = match tokio::time::timeout(self.cfg.send_timeout, call).await {
            Ok(r) => r,
            Err(_) => Report::new(
                Outcome::Retry { after: None },
                format!("no answer within {} s", self.cfg.send_timeout.as_secs_f64()),
            ),
        };
        let ended = self.now();
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let settled = self.admission.settle(&m.key, permit, &report, ended).await;
        if let Some(n) = settled.breaker_opened {
            events::breaker_opened(&m.key, n);
            if let Some(a) = self.alerts.get() {
                a.breaker_opened(&m.key, n);
            }
        }
        events::attempt(&m.key, &report, started, ended);
        if let Op::Urgent { kind, .. } = op {
            events::urgent_push(&m.key, *kind, &report);
        }
        if let Some(a) = self.alerts.get() {
            if !report.outcome.is_delivered() {
                a.attempt_failed(&s.channel.name, &m.key, &report.message);
            }
            if report.outcome == Outcome::RefreshToken {
                a.token_refresh_failing(&s.channel.name, &m.key, &report.message);
            }
        }
        let mut record = AttemptRecord::from_report(&report, &m.key, s.part as u32, started, ended);
        if let Op::Send(payload) = op {
            record.recipients = payload.recipients.clone();
        }
        s.attempts.push(record);
        if report.outcome.is_delivered() {
            decide::note_failed(&mut s.failed, &report, s.part);
        }
        report
    }

    /// [`decide::decide`] with this claim's history and the time now.
    fn decide(&self, s: &Sending<'_>, report: &Report, parts: usize) -> Decision {
        let last = s.last_outcome.or(s.c.last_outcome);
        let input = Input {
            report,
            previous: decide::previous_of(last),
            policy: &s.channel.retry,
            failed_before: s.c.attempts + s.failed_here,
            created_at: s.c.created_at,
            now: self.now(),
            part: s.part,
            parts,
            failed: &s.failed,
            error_rate: self.admission.error_rate(&s.key),
        };
        decide::decide(&input, &mut rand::random::<f64>)
    }
}

/// What [`Inner::wait_in_place`] made of a decision.
enum InPlace {
    /// Waited in place: send again.
    Again,
    /// The claim ends here: given back (the dispatcher stops), or its
    /// progress could not be recorded (its lease ends it).
    Stop,
    /// Carry the decision out.
    No(Decision),
}

/// What an urgent push carries where the platform shows text (a DING): the
/// queued message's text, else its title.
fn urgent_text(msg: &Message) -> String {
    match &msg.body {
        imrelay_sdk::Body::Text { text } | imrelay_sdk::Body::Markdown { text }
            if !text.trim().is_empty() =>
        {
            text.clone()
        }
        _ => msg.title_or_default(),
    }
}

/// The update token an operation uses, if any.
fn op_token(op: &Op) -> Option<&str> {
    match op {
        Op::Update(part) => part.update_token.as_deref(),
        _ => None,
    }
}
