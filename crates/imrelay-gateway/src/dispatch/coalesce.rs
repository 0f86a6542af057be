//! Coalescing: folding a backlog of messages to one rate-limited destination
//! into digests. A digest keeps every original's content and id, so nothing is
//! lost by merging; delivering it settles every merged message.
//!
//! [`plan`] decides the digests (pure); `Inner::maybe_coalesce` decides when
//! a target's backlog is merged, claims it, and stores the digests.

use imrelay_sdk::message::{Body, Mentions, Message};

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use super::Inner;
use crate::channels::{Channel, Coalesce, DestinationEntry};
use crate::store::{
    ClaimRequest, Claimed, DeliveryId, MessageId, MessageKind, NewMessage, StoreError, Target,
    TargetBacklog,
};

/// Most deliveries claimed for one coalescing round.
const CLAIM_LIMIT: u32 = 1_000;

/// One message that may be merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub delivery_id: DeliveryId,
    pub message_id: MessageId,
    pub message: Message,
}

/// A planned digest: its members and the message that carries them.
#[derive(Debug, Clone, PartialEq)]
pub struct Digest {
    pub members: Vec<DeliveryId>,
    pub message: Message,
}

/// The text of one original inside a digest, or `None` when the message cannot
/// be expressed as text faithfully (raw platform JSON, images).
pub fn section(id: &str, msg: &Message) -> Option<String> {
    let mut out = String::new();
    match &msg.title {
        Some(t) if !t.trim().is_empty() => out.push_str(&format!("**{}** (id {id})\n", t.trim())),
        _ => out.push_str(&format!("(id {id})\n")),
    }
    match &msg.body {
        Body::Text { text } | Body::Markdown { text } => out.push_str(text),
        Body::Link { text, url, .. } => out.push_str(&format!("{text}\n{url}")),
        Body::Card { text, buttons, .. } => {
            out.push_str(text);
            for b in buttons {
                out.push_str(&format!("\n[{}]({})", b.text, b.url));
            }
        }
        Body::News { articles } => {
            for (i, a) in articles.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&format!("[{}]({})", a.title, a.url));
                if let Some(d) = &a.description {
                    out.push_str(&format!(" {d}"));
                }
            }
        }
        Body::Template { data, url, .. } => {
            let lines: Vec<String> = data.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            out.push_str(&lines.join("\n"));
            if let Some(u) = url {
                out.push_str(&format!("\n{u}"));
            }
        }
        Body::Image { .. } | Body::Raw { .. } => return None,
    }
    Some(out)
}

const SEPARATOR: &str = "\n\n---\n\n";

fn header(n: usize) -> String {
    format!(
        "**{n} messages merged into one digest because the destination's rate limit was reached**"
    )
}

fn merge_mentions(into: &mut Mentions, from: &Mentions) {
    into.all |= from.all;
    for m in &from.mobiles {
        if !into.mobiles.contains(m) {
            into.mobiles.push(m.clone());
        }
    }
    for u in &from.user_ids {
        if !into.user_ids.contains(u) {
            into.user_ids.push(u.clone());
        }
    }
}

/// Plan digests from `candidates` (oldest first). Messages are grouped with
/// others of the same recipients, in order, up to `max_bytes` of text per
/// digest. Returns the digests (each with at least two members) and the
/// candidates left as they are (not expressible as text, too large alone, or
/// without a partner).
pub fn plan(candidates: Vec<Candidate>, max_bytes: usize) -> (Vec<Digest>, Vec<Candidate>) {
    let mut digests = Vec::new();
    let mut left = Vec::new();
    let mut groups: Vec<Group> = Vec::new();
    for c in candidates {
        let Some(sec) = section(c.message_id.as_str(), &c.message) else {
            left.push(c);
            continue;
        };
        let cost = sec.len() + SEPARATOR.len();
        if cost + header_room() > max_bytes {
            left.push(c);
            continue;
        }
        let idx = match groups
            .iter()
            .position(|g| g.recipients == c.message.recipients)
        {
            Some(i) if groups[i].bytes + cost <= max_bytes => i,
            found => {
                // A full group is closed and a new one opened for its recipients.
                if let Some(i) = found {
                    groups.remove(i).close(&mut digests, &mut left);
                }
                groups.push(Group::open(c.message.recipients.clone()));
                groups.len() - 1
            }
        };
        groups[idx].add(c, sec, cost);
    }
    for g in groups {
        g.close(&mut digests, &mut left);
    }
    (digests, left)
}

/// Room the digest's header takes.
fn header_room() -> usize {
    header(9999).len() + SEPARATOR.len()
}

/// A digest being filled: messages to the same recipients.
struct Group {
    recipients: Vec<String>,
    members: Vec<Candidate>,
    sections: Vec<String>,
    mentions: Mentions,
    bytes: usize,
}

impl Group {
    fn open(recipients: Vec<String>) -> Self {
        Group {
            recipients,
            members: Vec::new(),
            sections: Vec::new(),
            mentions: Mentions::default(),
            bytes: header_room(),
        }
    }

    fn add(&mut self, c: Candidate, section: String, cost: usize) {
        self.bytes += cost;
        merge_mentions(&mut self.mentions, &c.message.mentions);
        self.sections.push(section);
        self.members.push(c);
    }

    /// A digest of two or more members; a lone member is left as it is.
    fn close(self, digests: &mut Vec<Digest>, left: &mut Vec<Candidate>) {
        if self.members.len() < 2 {
            left.extend(self.members);
            return;
        }
        let mut text = header(self.members.len());
        for s in &self.sections {
            text.push_str(SEPARATOR);
            text.push_str(s);
        }
        let mut message =
            Message::markdown(format!("Digest of {} messages", self.members.len()), text)
                .with_mentions(self.mentions);
        message.recipients = self.recipients;
        digests.push(Digest {
            members: self.members.iter().map(|c| c.delivery_id).collect(),
            message,
        });
    }
}

/// Deliveries claimed for a coalescing round that may be merged (the first
/// list) and those that must go as they are (digests, split message halfway,
/// per-recipient deliveries).
fn mergeable(claimed: Vec<Claimed>) -> (Vec<Claimed>, Vec<Claimed>) {
    claimed.into_iter().partition(|c| {
        c.kind != MessageKind::Digest && c.parts_done == 0 && c.recipients.is_empty()
    })
}

impl Inner {
    /// Merge the backlog of `b.target` into digests when it cannot drain
    /// within `max_delay` at the destinations' rate.
    pub(super) async fn maybe_coalesce(
        &self,
        b: &TargetBacklog,
        channel: &Channel,
        members: &[&DestinationEntry],
        cc: Coalesce,
        now: i64,
    ) -> Result<(), StoreError> {
        if !self.coalesce_due(b, members, cc, now) {
            return Ok(());
        }
        let claimed = self
            .store
            .claim(ClaimRequest {
                target: Some(b.target.clone()),
                limit: CLAIM_LIMIT,
                lease: self.cfg.lease,
                owner: self.cfg.owner.clone(),
                order_hold: None,
            })
            .await?;
        let (candidates, mut keep) = mergeable(claimed);
        let mut by_id: HashMap<DeliveryId, Claimed> = candidates
            .iter()
            .map(|c| (c.delivery_id, c.clone()))
            .collect();
        let (digests, left) = plan(
            candidates
                .into_iter()
                .map(|c| Candidate {
                    delivery_id: c.delivery_id,
                    message_id: c.message_id,
                    message: c.message,
                })
                .collect(),
            cc.max_bytes,
        );
        let mut merged = 0u64;
        for d in digests {
            match self.store_digest(channel, &b.target, &d).await {
                Some(n) => merged += n,
                None => keep.extend(d.members.iter().filter_map(|id| by_id.remove(id))),
            }
        }
        self.counters.merged.fetch_add(merged, Ordering::Relaxed);
        if let Some(t) = self.state.lock().targets.get_mut(&b.target) {
            t.coalesce_idle = merged == 0;
        }
        keep.extend(left.iter().filter_map(|c| by_id.remove(&c.delivery_id)));
        // Give back what was not merged, unchanged and due now, in one go (the
        // store group-commits concurrent writes).
        let now = self.now();
        futures::future::join_all(keep.iter().map(|c| self.give_back(c, now))).await;
        Ok(())
    }

    /// Whether the backlog of `b.target` is to be merged now: it cannot drain
    /// within `max_delay`, and the last round is not too recent (longer
    /// pauses after a round that merged nothing).
    fn coalesce_due(
        &self,
        b: &TargetBacklog,
        members: &[&DestinationEntry],
        cc: Coalesce,
        now: i64,
    ) -> bool {
        let capacity = self.admission.capacity_within(members, cc.max_delay);
        let mut st = self.state.lock();
        let t = st.targets.entry(b.target.clone()).or_default();
        // The next cycles count the backlog this far; until then `pending`
        // may stop short of `capacity`, which only delays coalescing.
        t.count_need = (capacity.ceil() as u64).saturating_add(1);
        if (b.pending as f64) <= capacity || b.due < 2 {
            return false;
        }
        let pause = if t.coalesce_idle {
            (cc.max_delay.as_millis() as i64 / 2).max(1_000)
        } else {
            (cc.max_delay.as_millis() as i64 / 4).min(1_000)
        };
        if t.last_coalesce != 0 && now - t.last_coalesce < pause {
            return false;
        }
        t.last_coalesce = now;
        true
    }

    /// Enqueue digest `d` and fold its members into it; how many were merged,
    /// or `None` when the store refused (the members are then sent one by
    /// one).
    async fn store_digest(&self, channel: &Channel, target: &Target, d: &Digest) -> Option<u64> {
        let n = d.members.len() as u64;
        let mut m = NewMessage::new(
            channel.name.clone(),
            d.message.clone(),
            vec![target.clone()],
        );
        m.message.id = Some(m.id.to_string());
        m.kind = MessageKind::Digest;
        match self
            .store
            .coalesce(&self.cfg.owner, d.members.clone(), m)
            .await
        {
            Ok(id) => {
                self.counters.digests.fetch_add(1, Ordering::Relaxed);
                tracing::info!(digest = %id, merged = n, target_key = %target, "backlog merged into a digest");
                Some(n)
            }
            Err(e) => {
                self.store_failed(
                    "coalesce",
                    None,
                    &e,
                    "no digest; its members are sent individually",
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(i: i64, msg: Message) -> Candidate {
        Candidate {
            delivery_id: DeliveryId::new(i),
            message_id: MessageId::from(format!("m{i}")),
            message: msg,
        }
    }

    #[test]
    fn digest_keeps_every_original_and_id() {
        let cands = vec![
            cand(1, Message::text("disk full on db1").with_title("Disk")),
            cand(2, Message::markdown("CPU", "**cpu** 99%")),
            cand(3, Message::text("third")),
        ];
        let (d, left) = plan(cands, 4000);
        assert!(left.is_empty());
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].members, [1, 2, 3]);
        let Body::Markdown { text } = &d[0].message.body else {
            panic!()
        };
        insta::assert_snapshot!(text, @r"
        **3 messages merged into one digest because the destination's rate limit was reached**

        ---

        **Disk** (id m1)
        disk full on db1

        ---

        **CPU** (id m2)
        **cpu** 99%

        ---

        (id m3)
        third
        ");
        assert_eq!(d[0].message.title.as_deref(), Some("Digest of 3 messages"));
    }

    #[test]
    fn budget_splits_digests_and_raw_stays_alone() {
        let mut cands: Vec<Candidate> = (0..10)
            .map(|i| cand(i, Message::text("x".repeat(300))))
            .collect();
        cands.push(cand(
            99,
            Message::new(Body::Raw {
                platform: None,
                payload: serde_json::json!({}),
            }),
        ));
        cands.push(cand(100, Message::text("y".repeat(5000))));
        let (d, left) = plan(cands, 1200);
        let sizes: Vec<usize> = d.iter().map(|d| d.members.len()).collect();
        assert_eq!(
            sizes,
            [3, 3, 3],
            "three 300-byte texts fit in 1200 bytes with the header"
        );
        for dg in &d {
            let Body::Markdown { text } = &dg.message.body else {
                panic!()
            };
            assert!(text.len() <= 1200, "{}", text.len());
        }
        let mut left: Vec<i64> = left.iter().map(|c| c.delivery_id.get()).collect();
        left.sort();
        assert_eq!(
            left,
            [9, 99, 100],
            "no partner for the last; raw and oversized stay alone"
        );
    }

    #[test]
    fn recipients_and_mentions() {
        let a = Message::text("a").with_recipients(vec!["u1".into()]);
        let b = Message::text("b").with_mentions(Mentions {
            mobiles: vec!["138".into()],
            ..Default::default()
        });
        let c = Message::text("c").with_mentions(Mentions {
            all: true,
            mobiles: vec!["138".into()],
            ..Default::default()
        });
        let (d, left) = plan(vec![cand(1, a), cand(2, b), cand(3, c)], 4000);
        assert_eq!(
            left.len(),
            1,
            "the one with other recipients has no partner"
        );
        assert_eq!(d[0].members, [2, 3]);
        assert!(d[0].message.mentions.all);
        assert_eq!(d[0].message.mentions.mobiles, ["138"]);
    }
}
