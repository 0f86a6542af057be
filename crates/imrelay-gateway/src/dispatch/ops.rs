//! What a claimed delivery asks of its destination, part by part: a plain
//! message sends its rendered parts; a later message of a thread updates the
//! parts its root delivered (or, where the destination cannot edit them, is
//! sent as a new message naming the first); a recall takes back the parts its
//! origin delivered; an urgent push asks the platform to push the parts its
//! origin delivered (Feishu) or sends one DING (DingTalk) to its recipients.

use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::lifecycle::UrgentScope;
use imrelay_sdk::{Message, Payload, Quota, SentPart, UrgentKind};

use super::decide::{DeadCause, Decision, Wait};
use super::Inner;
use crate::channels::DestinationEntry;
use crate::domain::attempt::AttemptOutcome;
use crate::lifecycle::{annotate, card};
use crate::store::{
    AttemptRecord, Claimed, DeadReason, DeliveryState, MessageId, MessageKind, Store, Target,
    ThreadPos,
};

/// One request of a delivery.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Send(Payload),
    Update(SentPart),
    Recall(SentPart),
    /// Push `kind` to `users` about the part (the message's text is what a
    /// DING carries).
    Urgent {
        part: SentPart,
        kind: UrgentKind,
        users: Vec<String>,
    },
}

impl Op {
    /// Whom the request sends a message to, as far as the platform's
    /// per-recipient quotas count: a send's recipients. Updates, recalls and
    /// urgent pushes act on a sent message and are not counted per recipient.
    pub fn recipients(&self) -> &[String] {
        match self {
            Op::Send(p) => &p.recipients,
            _ => &[],
        }
    }
}

/// The requests of a claimed delivery, and the message they carry.
pub(super) struct Work {
    pub ops: Vec<Op>,
    pub message: Message,
    /// For an update in place: the first message's title and when it was
    /// sent, to name it if the update must go out as a new message.
    pub first: Option<(Option<String>, i64)>,
    /// For a thread's update: its lease on the card, held while it is sent.
    pub lease: Option<ThreadLease>,
}

/// The lease on updating one thread's card at one destination; given back
/// when dropped (and it expires anyway if this process dies first).
pub(super) struct ThreadLease {
    store: Arc<dyn Store>,
    root: MessageId,
    target: Target,
    owner: String,
}

impl Drop for ThreadLease {
    fn drop(&mut self) {
        let store = self.store.clone();
        let (root, target, owner) = (
            std::mem::take(&mut self.root),
            self.target.clone(),
            std::mem::take(&mut self.owner),
        );
        tokio::spawn(async move {
            if let Err(e) = store.unlock_thread(&root, &target, &owner).await {
                tracing::warn!(error = %e, "cannot give back a thread lease; it expires by itself");
            }
        });
    }
}

impl Work {
    /// This update as a new message naming the first (`None`: not an update).
    pub fn as_new_message(
        &self,
        c: &Claimed,
        m: &DestinationEntry,
        tz: &jiff::tz::TimeZone,
    ) -> Option<Work> {
        let (title, sent) = self.first.as_ref()?;
        let mut msg = self.message.clone();
        card::quote(&mut msg, title.as_deref(), *sent, tz);
        let mut c = c.clone();
        c.parts_done = 0;
        send_work(&c, m, msg).ok()
    }
}

/// Why there is no work: the decision to carry out instead, and a note for
/// the history when the decision alone would not explain it.
pub(super) struct Skip {
    pub decision: Decision,
    pub note: Option<AttemptRecord>,
}

impl From<Decision> for Skip {
    fn from(decision: Decision) -> Self {
        Skip {
            decision,
            note: None,
        }
    }
}

/// How long an update waits before looking again for its thread's first
/// message to be delivered.
const THREAD_WAIT_MS: i64 = 1_000;

impl Inner {
    /// The work of `c` on destination `m`, or what to decide instead (nothing
    /// to do, cannot be done, not yet).
    pub(super) async fn work(&self, c: &Claimed, m: &DestinationEntry) -> Result<Work, Skip> {
        let mut msg = c.message.clone();
        // A person resolved from the directory is mentioned by the id of
        // this destination's platform only.
        msg.mentions = msg.mentions.for_platform(m.dest.platform());
        // Platform dedup keys (Feishu `uuid`, WeChat `client_msg_id`, webhook
        // ids) derive from the message id: the gateway's id, unique per
        // accepted message and identical on every retry.
        msg.id = Some(c.message_id.to_string());
        if !c.recipients.is_empty() {
            msg.recipients = c.recipients.clone();
        }
        if c.kind == MessageKind::Recall {
            return self.recall_work(c, m, msg).await.map_err(Skip::from);
        }
        if let MessageKind::Urgent(kind) = c.kind {
            return self.urgent_work(c, m, kind, msg).await.map_err(Skip::from);
        }
        match &c.thread {
            Some(t) if !t.is_root(&c.message_id) => {
                let lease = self.thread_lease(c, t).await?;
                if self
                    .store
                    .superseded(&t.root, t.seq, &c.target)
                    .await
                    .map_err(|e| self.store_unavailable(e))?
                {
                    return Err(Skip {
                        decision: Decision::Delivered {
                            parts: c.parts_done as usize,
                        },
                        note: Some(superseded_note(&m.key, self.now())),
                    });
                }
                let mut work = self.update_work(c, m, t, msg).await.map_err(Skip::from)?;
                work.lease = Some(lease);
                Ok(work)
            }
            _ => send_work(c, m, msg).map_err(Skip::from),
        }
    }

    async fn update_work(
        &self,
        c: &Claimed,
        m: &DestinationEntry,
        t: &ThreadPos,
        mut msg: Message,
    ) -> Result<Work, Decision> {
        let store = |e: crate::store::StoreError| self.store_unavailable(e);
        let root = self.store.get_message(&t.root).await.map_err(store)?;
        let Some(root) = root else {
            // The root was pruned: this is the thread's message now.
            return send_work(c, m, msg);
        };
        let tz = &self.cfg.card_time_zone;
        annotate(&mut msg, &root.acks, tz);
        let parts: Vec<SentPart> = self
            .store
            .sent_parts(&t.root)
            .await
            .map_err(store)?
            .into_iter()
            .filter(|(target, p)| *target == c.target && p.part == 0 && p.destination == m.key)
            .map(|(_, p)| p.sent)
            .collect();
        let here = root.deliveries.iter().filter(|d| d.target == c.target);
        let (mut open, mut delivered_at) = (false, None);
        for d in here {
            match d.state {
                DeliveryState::Pending | DeliveryState::Claimed | DeliveryState::Merged => {
                    open = true
                }
                DeliveryState::Done => delivered_at = Some(d.updated_at),
                // Never sent there: a later message takes its place.
                DeliveryState::Dead | DeliveryState::Silenced => {}
            }
        }
        if parts.is_empty() {
            if open {
                return Err(Decision::Requeue {
                    at: self.now() + THREAD_WAIT_MS,
                    why: Wait::Thread,
                });
            }
            // Delivered without an id to edit (custom robots): a new message
            // that names the first. Never delivered: this one takes its place.
            if let Some(at) = delivered_at {
                card::quote(&mut msg, root.message.title.as_deref(), at, tz);
            }
            return send_work(c, m, msg);
        }
        let lifecycle = m.dest.lifecycle();
        let now = self.now();
        if parts
            .iter()
            .all(|p| lifecycle.updates_in_place(p.sent_at_ms, now))
        {
            self.keep_update_pace(&t.root, &c.target, &lifecycle.update_limits)?;
            let first_sent = parts.iter().map(|p| p.sent_at_ms).min().unwrap_or(now);
            return Ok(Work {
                ops: parts.into_iter().map(Op::Update).collect(),
                message: msg,
                first: Some((root.message.title.clone(), first_sent)),
                lease: None,
            });
        }
        let first_sent = parts.iter().map(|p| p.sent_at_ms).min().unwrap_or(now);
        card::quote(&mut msg, root.message.title.as_deref(), first_sent, tz);
        send_work(c, m, msg)
    }

    async fn recall_work(
        &self,
        c: &Claimed,
        m: &DestinationEntry,
        msg: Message,
    ) -> Result<Work, Decision> {
        let Some(origin) = &c.origin else {
            return Err(dead("a recall without the message it recalls"));
        };
        let parts: Vec<SentPart> = self
            .store
            .sent_parts(origin)
            .await
            .map_err(|e| self.store_unavailable(e))?
            .into_iter()
            .filter(|(target, p)| *target == c.target && p.destination == m.key)
            .map(|(_, p)| p.sent)
            .collect();
        let lifecycle = m.dest.lifecycle();
        let now = self.now();
        for p in &parts {
            if let Err(why) = lifecycle.can_recall(p.sent_at_ms, now) {
                return Err(dead(&format!(
                    "cannot recall {} from {}: {why}",
                    p.platform_message_id,
                    m.dest.kind()
                )));
            }
        }
        if parts.is_empty() {
            return Err(Decision::Delivered {
                parts: c.parts_done as usize,
            });
        }
        Ok(Work {
            ops: parts.into_iter().map(Op::Recall).collect(),
            message: msg,
            first: None,
            lease: None,
        })
    }

    /// The pushes of an urgent message: one per part its origin delivered at
    /// this target (part 0 of each recipient's message), to the users who
    /// got that part (a chat's part takes the users no 1:1 part names; users
    /// no part names go with the first, for the platform to list as
    /// invalid); or, where the push is a message of its own (DING), one.
    async fn urgent_work(
        &self,
        c: &Claimed,
        m: &DestinationEntry,
        kind: UrgentKind,
        msg: Message,
    ) -> Result<Work, Decision> {
        let Some(origin) = &c.origin else {
            return Err(dead("an urgent push without the message it pushes"));
        };
        let lifecycle = m.dest.lifecycle();
        if let Err(why) = lifecycle.can_urgent(kind) {
            return Err(dead(&format!(
                "{} cannot push urgently: {why}",
                m.dest.kind()
            )));
        }
        let users = msg.recipients.clone();
        if users.is_empty() {
            return Err(dead("an urgent push names no users"));
        }
        let parts: Vec<SentPart> = self
            .store
            .sent_parts(origin)
            .await
            .map_err(|e| self.store_unavailable(e))?
            .into_iter()
            .filter(|(target, p)| *target == c.target && p.destination == m.key && p.part == 0)
            .map(|(_, p)| p.sent)
            .collect();
        let ops = match lifecycle.urgent_scope {
            UrgentScope::Users => {
                let part = parts.into_iter().next().unwrap_or_else(|| SentPart {
                    platform_message_id: origin.to_string(),
                    update_token: None,
                    sent_at_ms: self.now(),
                    recipients: Vec::new(),
                });
                vec![Op::Urgent { part, kind, users }]
            }
            UrgentScope::SentMessage if parts.is_empty() => {
                return Err(self.origin_not_sent(origin, &c.target).await?);
            }
            UrgentScope::SentMessage => urgent_ops(parts, kind, &users),
        };
        // A push names at most what the platform takes: larger ones are
        // several parts, each sent once.
        let ops = split_urgent(ops, lifecycle.urgent_max_users(kind));
        Ok(Work {
            ops,
            message: msg,
            first: None,
            lease: None,
        })
    }

    /// Why an urgent push finds nothing of its origin to push: wait while
    /// the origin is still being sent there, else it never will be.
    async fn origin_not_sent(&self, origin: &str, target: &str) -> Result<Decision, Decision> {
        let view = self
            .store
            .get_message(origin)
            .await
            .map_err(|e| self.store_unavailable(e))?;
        let open = view.iter().flat_map(|v| v.deliveries.iter()).any(|d| {
            d.target == target
                && matches!(
                    d.state,
                    DeliveryState::Pending | DeliveryState::Claimed | DeliveryState::Merged
                )
        });
        Ok(if open {
            Decision::Requeue {
                at: self.now() + THREAD_WAIT_MS,
                why: Wait::Thread,
            }
        } else {
            dead(&format!(
                "nothing of {origin} with a platform id was delivered to {target}: there is no message to push"
            ))
        })
    }

    /// The lease on the card of `c`'s thread at its target, or a wait when
    /// another update of it is being sent (here or by another instance).
    async fn thread_lease(&self, c: &Claimed, t: &ThreadPos) -> Result<ThreadLease, Skip> {
        let owner = format!("{}#{}", self.cfg.owner, c.delivery_id);
        // Longer than one send can take; a crash leaves it to expire.
        let lease = self.cfg.send_timeout * 2 + Duration::from_secs(5);
        let taken = self
            .store
            .lock_thread(&t.root, &c.target, &owner, lease)
            .await
            .map_err(|e| self.store_unavailable(e))?;
        if !taken {
            return Err(Skip::from(Decision::Requeue {
                at: self.now() + THREAD_WAIT_MS / 4,
                why: Wait::Thread,
            }));
        }
        Ok(ThreadLease {
            store: self.store.clone(),
            root: t.root.clone(),
            target: c.target.clone(),
            owner,
        })
    }

    /// Wait when the card was updated too recently for the platform's
    /// update limits (the closest spacing its quotas allow), in this process.
    fn keep_update_pace(&self, root: &str, target: &str, limits: &[Quota]) -> Result<(), Decision> {
        let Some(gap) = limits
            .iter()
            .filter(|q| q.count > 0)
            .map(|q| q.per.as_millis() as i64 / i64::from(q.count))
            .max()
        else {
            return Ok(());
        };
        let now = self.now();
        let key = format!("{root}\n{target}");
        let mut pace = self.update_pace.lock();
        if let Some(last) = pace.get(&key).filter(|last| now < **last + gap) {
            return Err(Decision::Requeue {
                at: last + gap,
                why: Wait::Limiter,
            });
        }
        // Forget cards not updated for a while, so the map stays small.
        if pace.len() > 10_000 {
            pace.retain(|_, last| now - *last < 60_000);
        }
        pace.insert(key, now);
        Ok(())
    }

    /// A store read failed while planning: try again shortly, not an attempt.
    fn store_unavailable(&self, e: crate::store::StoreError) -> Decision {
        tracing::warn!(error = %e, "cannot read the thread of an update; it waits");
        Decision::Requeue {
            at: self.now() + THREAD_WAIT_MS,
            why: Wait::Thread,
        }
    }
}

/// One push per sent part, to the users who got it; a chat's parts share
/// the users no 1:1 part names, and users no part names at all go with the
/// first part (the platform lists them as invalid: a failed recipient).
fn urgent_ops(parts: Vec<SentPart>, kind: UrgentKind, users: &[String]) -> Vec<Op> {
    // A recipient as rendered: `chat_id:oc_x`, `open_id:ou_x` or `ou_x`.
    let id_of = |r: &str| r.split_once(':').map_or(r, |(_, id)| id).to_string();
    let is_chat = |p: &SentPart| {
        p.recipients
            .first()
            .is_some_and(|r| r.starts_with("chat_id:") || r.starts_with("open_conversation_id:"))
    };
    let direct: Vec<String> = parts
        .iter()
        .filter(|p| !is_chat(p))
        .flat_map(|p| p.recipients.iter().map(|r| id_of(r)))
        .collect();
    let unmatched: Vec<String> = users
        .iter()
        .filter(|u| !direct.contains(&id_of(u)))
        .cloned()
        .collect();
    let any_chat = parts.iter().any(&is_chat);
    let first = parts.first().cloned();
    let mut ops: Vec<Op> = Vec::new();
    for p in parts {
        let mine: Vec<String> = if is_chat(&p) {
            unmatched.clone()
        } else {
            users
                .iter()
                .filter(|u| p.recipients.iter().any(|r| id_of(r) == id_of(u)))
                .cloned()
                .collect()
        };
        if !mine.is_empty() {
            ops.push(Op::Urgent {
                part: p,
                kind,
                users: mine,
            });
        }
    }
    if !any_chat && !unmatched.is_empty() {
        match (ops.first_mut(), first) {
            (Some(Op::Urgent { users, .. }), _) => users.extend(unmatched),
            (_, Some(part)) => ops.push(Op::Urgent {
                part,
                kind,
                users: unmatched,
            }),
            _ => {}
        }
    }
    ops
}

/// Split pushes naming more than `max` users into pushes of `max`.
fn split_urgent(ops: Vec<Op>, max: Option<usize>) -> Vec<Op> {
    let Some(max) = max.filter(|m| *m > 0) else {
        return ops;
    };
    ops.into_iter()
        .flat_map(|op| match op {
            Op::Urgent { part, kind, users } if users.len() > max => users
                .chunks(max)
                .map(|c| Op::Urgent {
                    part: part.clone(),
                    kind,
                    users: c.to_vec(),
                })
                .collect(),
            op => vec![op],
        })
        .collect()
}

/// The history note of an update that gave way to a newer one.
fn superseded_note(key: &str, at: i64) -> AttemptRecord {
    AttemptRecord::note(
        AttemptOutcome::Superseded,
        key,
        0,
        at,
        "not sent: a newer message of its thread goes to this destination",
    )
}

fn dead(reason: &str) -> Decision {
    Decision::Dead {
        reason: DeadReason {
            code: None,
            reason: reason.to_string(),
        },
        cause: DeadCause::Unrenderable,
    }
}

/// The rendered parts of `msg` for `m`: what is left to send of them, or a
/// decision when there is nothing (delivered) or it cannot be expressed.
fn send_work(c: &Claimed, m: &DestinationEntry, msg: Message) -> Result<Work, Decision> {
    match m.dest.render(&msg) {
        Ok(p) if (c.parts_done as usize) < p.len() => Ok(Work {
            ops: p.into_iter().map(Op::Send).collect(),
            message: msg,
            first: None,
            lease: None,
        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(id: &str, recipient: &str) -> SentPart {
        SentPart {
            platform_message_id: id.into(),
            update_token: None,
            sent_at_ms: 0,
            recipients: vec![recipient.into()],
        }
    }

    fn pushes(ops: &[Op]) -> Vec<(String, Vec<String>)> {
        ops.iter()
            .map(|o| match o {
                Op::Urgent { part, users, .. } => (part.platform_message_id.clone(), users.clone()),
                _ => panic!("not an urgent push"),
            })
            .collect()
    }

    fn users(u: &[&str]) -> Vec<String> {
        u.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn each_user_is_pushed_about_the_message_they_got() {
        let parts = vec![part("om_a", "ou_alice"), part("om_b", "open_id:ou_bob")];
        let ops = urgent_ops(parts.clone(), UrgentKind::Phone, &users(&["ou_bob"]));
        assert_eq!(pushes(&ops), [("om_b".to_string(), users(&["ou_bob"]))]);
        // A user nobody sent to goes with the first push, for the platform
        // to refuse by name.
        let ops = urgent_ops(parts, UrgentKind::App, &users(&["ou_alice", "ou_carol"]));
        assert_eq!(
            pushes(&ops),
            [("om_a".to_string(), users(&["ou_alice", "ou_carol"]))]
        );
    }

    #[test]
    fn a_push_larger_than_the_platform_takes_is_split() {
        let many: Vec<String> = (0..45).map(|i| format!("u{i}")).collect();
        let ops = vec![Op::Urgent {
            part: part("ding", "u0"),
            kind: UrgentKind::Sms,
            users: many.clone(),
        }];
        let split = pushes(&split_urgent(ops.clone(), Some(20)));
        let sizes: Vec<usize> = split.iter().map(|(_, u)| u.len()).collect();
        assert_eq!(sizes, [20, 20, 5]);
        let all: Vec<String> = split.iter().flat_map(|(_, u)| u.clone()).collect();
        assert_eq!(all, many);
        assert_eq!(pushes(&split_urgent(ops, None))[0].1.len(), 45);
    }

    #[test]
    fn a_chat_message_takes_the_users_no_direct_message_names() {
        let parts = vec![part("om_a", "ou_alice"), part("om_g", "chat_id:oc_ops")];
        let ops = urgent_ops(parts, UrgentKind::Sms, &users(&["ou_alice", "ou_dave"]));
        assert_eq!(
            pushes(&ops),
            [
                ("om_a".to_string(), users(&["ou_alice"])),
                ("om_g".to_string(), users(&["ou_dave"]))
            ]
        );
    }
}
