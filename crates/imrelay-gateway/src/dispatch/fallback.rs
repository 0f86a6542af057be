//! Fallback: a copy of a message for another channel when the primary cannot
//! deliver it, either because it was dead-lettered or because it stayed
//! undelivered past the channel's fallback `after` (a periodic scan). Each
//! delivery falls back at most once, and a fallback copy never falls back.

use std::sync::atomic::Ordering;

use imrelay_sdk::message::Body;
use imrelay_sdk::Message;

use super::Inner;
use crate::channels::{Channel, ChannelSet, Fallback};
use crate::store::{Claimed, MessageId, MessageKind, NewMessage, Overdue};

/// Overdue deliveries handled per channel per scan.
const SCAN_BATCH: u32 = 100;

/// The copy of a message for a fallback channel, marked as such. `None` when the
/// fallback channel does not exist in the current config (logged).
pub fn fallback_message(
    set: &ChannelSet,
    from_channel: &str,
    fb: &Fallback,
    message_id: &MessageId,
    msg: &Message,
    why: &str,
) -> Option<NewMessage> {
    let Some(target) = set.get(&fb.channel) else {
        tracing::warn!(channel = %from_channel, fallback = %fb.channel, "fallback channel is not configured; no copy sent");
        return None;
    };
    let mut m = msg.clone();
    m.id = None;
    m.title = Some(format!(
        "[fallback from {from_channel}] {}",
        msg.title_or_default()
    ));
    let note = format!("[fallback from channel {from_channel}, message {message_id}: {why}]");
    match &mut m.body {
        Body::Text { text } | Body::Markdown { text } => *text = format!("{note}\n{text}"),
        Body::Card { text, .. } | Body::Link { text, .. } => *text = format!("{note}\n{text}"),
        _ => {}
    }
    let mut nm = NewMessage::new(fb.channel.clone(), m, target.targets());
    nm.kind = MessageKind::Fallback;
    nm.origin = Some(message_id.clone());
    Some(nm)
}

/// The fallback a dead-lettered delivery of `kind` on `channel` goes to, if
/// any: fallback copies themselves never fall back (no loops), nor do urgent
/// pushes (their users are one platform's ids; what follows a failed push is
/// the escalation's business).
pub fn on_dead(channel: &Channel, kind: MessageKind) -> Option<&Fallback> {
    channel
        .fallback
        .as_ref()
        .filter(|_| kind != MessageKind::Fallback && !matches!(kind, MessageKind::Urgent(_)))
}

impl Inner {
    /// The fallback copy of dead-lettered `c`, when its channel has one.
    pub(super) fn fallback_on_dead(
        &self,
        channel: &Channel,
        c: &Claimed,
        why: &str,
    ) -> Option<NewMessage> {
        let fb = on_dead(channel, c.kind)?;
        let set = self.channels.current();
        let m = fallback_message(&set, &channel.name, fb, &c.message_id, &c.message, why);
        if m.is_some() {
            self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        m
    }

    /// Copy deliveries that stayed undelivered past their channel's fallback
    /// `after` to the fallback channel (once each), at most every
    /// `fallback_scan`.
    pub(super) async fn scan_fallbacks(&self, set: &ChannelSet, now: i64) {
        {
            let mut st = self.state.lock();
            if now < st.next_fallback_scan {
                return;
            }
            st.next_fallback_scan = now + self.cfg.fallback_scan.as_millis() as i64;
        }
        for ch in set.channels.values() {
            let Some(fb) = &ch.fallback else { continue };
            let Some(after) = fb.after else { continue };
            let before = now - after.as_millis() as i64;
            let overdue = match self.store.overdue(&ch.name, before, SCAN_BATCH).await {
                Ok(o) => o,
                Err(e) => {
                    self.store_failed(
                        "fallback_scan",
                        None,
                        &e,
                        "overdue deliveries are looked for again at the next scan",
                    );
                    return;
                }
            };
            let why = format!("still undelivered after {} s", after.as_secs());
            for o in overdue {
                self.fall_back_overdue(set, ch, fb, &o, &why).await;
            }
        }
    }

    async fn fall_back_overdue(
        &self,
        set: &ChannelSet,
        ch: &Channel,
        fb: &Fallback,
        o: &Overdue,
        why: &str,
    ) {
        let view = match self.store.get_message(o.message_id.as_str()).await {
            Ok(Some(v)) => v,
            // Purged since the scan: nothing left to copy.
            Ok(None) => return,
            Err(e) => {
                self.store_failed(
                    "fallback_read",
                    Some(o.delivery_id),
                    &e,
                    "the delivery is looked at again at the next scan",
                );
                return;
            }
        };
        let Some(m) = fallback_message(set, &ch.name, fb, &o.message_id, &view.message, why) else {
            return;
        };
        match self.store.fall_back(o.delivery_id, m).await {
            Ok(true) => {
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(message_id = %o.message_id, target_key = %o.target, fallback = %fb.channel,
                    "message copied to the fallback channel: primary unavailable too long");
            }
            Ok(false) => {}
            Err(e) => self.store_failed(
                "fallback",
                Some(o.delivery_id),
                &e,
                "no copy yet; the delivery is looked at again at the next scan",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_fall_back_once_and_copies_never_do() {
        let mut ch = Channel::new("primary", vec![]);
        assert_eq!(on_dead(&ch, MessageKind::Normal), None);
        let fb = Fallback {
            channel: "backup".into(),
            after: None,
        };
        ch.fallback = Some(fb.clone());
        assert_eq!(on_dead(&ch, MessageKind::Normal), Some(&fb));
        assert_eq!(on_dead(&ch, MessageKind::Digest), Some(&fb));
        assert_eq!(on_dead(&ch, MessageKind::Fallback), None);
        assert_eq!(
            on_dead(&ch, MessageKind::Urgent(imrelay_sdk::UrgentKind::Phone)),
            None
        );
    }

    #[test]
    fn the_copy_is_marked_and_addressed_to_the_fallback_channel() {
        let set = ChannelSet::new([Channel::new("backup", vec![])]);
        let fb = Fallback {
            channel: "backup".into(),
            after: None,
        };
        let msg = Message::text("disk full").with_title("Disk");
        let m = fallback_message(&set, "primary", &fb, &"m1".into(), &msg, "gave up").unwrap();
        assert_eq!(m.channel, "backup");
        assert_eq!(m.kind, MessageKind::Fallback);
        assert_eq!(m.origin.as_deref(), Some("m1"));
        assert_eq!(
            m.message.title.as_deref(),
            Some("[fallback from primary] Disk")
        );
        let Body::Text { text } = &m.message.body else {
            panic!("text stays text")
        };
        assert_eq!(
            text,
            "[fallback from channel primary, message m1: gave up]\ndisk full"
        );
        let missing = Fallback {
            channel: "nowhere".into(),
            after: None,
        };
        assert!(fallback_message(&set, "primary", &missing, &"m1".into(), &msg, "x").is_none());
    }
}
