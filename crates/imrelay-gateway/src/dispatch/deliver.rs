//! Sending one claimed delivery: render it, then for each part
//! admit → send → decide → apply, until a decision ends the claim.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use imrelay_sdk::{Outcome, Payload, Report};

use super::admission::{Admit, Permit};
use super::decide::{self, DeadCause, Decision, Input};
use super::executor::{Sending, Step};
use super::{Inner, Job};
use crate::channels::DestinationEntry;
use crate::store::{AttemptRecord, Claimed, DeadReason};
use crate::telemetry::events;

impl Inner {
    /// Send one claimed delivery (its first local permit already taken) and
    /// record the outcome.
    pub(super) async fn deliver(self: &Arc<Self>, job: Job) {
        let Job {
            claimed: c,
            channel,
            members,
            mut member,
        } = job;
        let mut s = Sending::new(&c, &channel, members[member].key.clone());
        let payloads = match render(&c, &members[member]) {
            Ok(p) => p,
            Err(d) => {
                self.admission.cancel(&members[member].key);
                self.apply(&mut s, None, d).await;
                return;
            }
        };
        let mut held = true;
        loop {
            let permit = match self
                .admission
                .admit(&c.target, &members, member, held)
                .await
            {
                Admit::Go(p) => p,
                // The next part must wait: requeued with progress kept, not
                // an attempt.
                Admit::Wait { at, why } => {
                    self.apply(&mut s, None, Decision::Requeue { at, why })
                        .await;
                    return;
                }
            };
            held = false;
            member = permit.member;
            s.key = members[member].key.clone();
            let payload = &payloads[s.part];
            let report = self.send(&mut s, &members[member], payload, permit).await;
            let d = self.decide(&s, &report, payloads.len());
            if self.apply(&mut s, Some(&report), d).await == Step::End {
                return;
            }
        }
    }

    /// Send one part and account it: the destination's limiter and breaker,
    /// telemetry, alerts, and the attempt record.
    async fn send(
        &self,
        s: &mut Sending<'_>,
        m: &DestinationEntry,
        payload: &Payload,
        permit: Permit,
    ) -> Report {
        let started = self.now();
        let call = tracing::Instrument::instrument(
            m.dest.send(payload),
            events::platform_call_span(&m.key),
        );
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
        if let Some(a) = self.alerts.get() {
            if !report.outcome.is_delivered() {
                a.attempt_failed(&s.channel.name, &m.key, &report.message);
            }
            if report.outcome == Outcome::RefreshToken {
                a.token_refresh_failing(&s.channel.name, &m.key, &report.message);
            }
        }
        s.attempts.push(AttemptRecord::from_report(
            &report,
            &m.key,
            s.part as u32,
            started,
            ended,
        ));
        if report.outcome.is_delivered() {
            decide::note_failed(&mut s.failed, &report, s.part);
        }
        report
    }

    /// [`decide::decide`] with this claim's history and the time now.
    fn decide(&self, s: &Sending<'_>, report: &Report, parts: usize) -> Decision {
        let input = Input {
            report,
            previous: decide::previous_of(s.c.last_outcome),
            policy: &s.channel.retry,
            failed_before: s.c.attempts,
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

/// The payloads of `c` for destination `m`; a decision instead when there is
/// nothing to send (delivered) or it cannot be expressed (dead).
fn render(c: &Claimed, m: &DestinationEntry) -> Result<Vec<Payload>, Decision> {
    let mut msg = c.message.clone();
    // Platform dedup keys (Feishu `uuid`, WeChat `client_msg_id`, webhook ids)
    // derive from the message id: the gateway's id, unique per accepted
    // message and identical on every retry.
    msg.id = Some(c.message_id.clone());
    if !c.recipients.is_empty() {
        msg.recipients = c.recipients.clone();
    }
    match m.dest.render(&msg) {
        Ok(p) if (c.parts_done as usize) < p.len() => Ok(p),
        // Nothing (left) to send: done, with the progress it has.
        Ok(_) => Err(Decision::Delivered {
            parts: c.parts_done as usize,
        }),
        Err(e) => Err(Decision::Dead {
            reason: DeadReason {
                code: None,
                reason: format!("cannot render the message for {}: {e}", m.dest.kind()),
            },
            cause: DeadCause::Unrenderable,
        }),
    }
}
