//! Sends due groups: reads each group's newest message, makes the
//! notification, and sends it through [`Store::send_group`], a
//! compare-and-set on the group's version in the transaction that queues
//! it. A pass that lost the race (another instance sent the group, or a
//! fold came in between) sends nothing; the next pass sends what is left.

use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::message::Message;
use jiff::tz::TimeZone;

use crate::channels::ChannelSet;
use crate::store::{DueGroup, MessageKind, NewMessage, SendGroup, Store};

/// How many due groups one pass takes.
const BATCH: u32 = 100;

/// The config in force, as the runner needs it.
pub struct Snapshot {
    pub channels: Arc<ChannelSet>,
    pub groups: Arc<super::Groups>,
}

/// Run passes every `every` until the store closes.
pub fn spawn(
    store: Arc<dyn Store>,
    current: impl Fn() -> Snapshot + Send + Sync + 'static,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    let current = Arc::new(current);
    crate::store::every(every, "grouping", move || {
        let (store, current) = (store.clone(), current.clone());
        async move { pass(&*store, &current()).await }
    })
}

/// One pass: send every due group. How many this pass sent.
pub async fn pass(store: &dyn Store, now: &Snapshot) -> crate::store::Result<usize> {
    let due = store.due_groups(BATCH).await?;
    let mut sent = 0;
    for g in due {
        let m = notification(store, &g, now).await?;
        let id = m.id.clone();
        if store
            .send_group(SendGroup {
                id: g.id.clone(),
                version: g.version,
                message: m,
            })
            .await?
        {
            sent += 1;
            crate::telemetry::events::group_sent(&g.channel, g.pending);
            tracing::info!(group = %g.id, channel = %g.channel, folded = g.pending, notification = %id, "group sent");
        }
    }
    Ok(sent)
}

/// The notification of `g` now: its newest message with the count, under
/// the channel's quiet hours.
async fn notification(
    store: &dyn Store,
    g: &DueGroup,
    current: &Snapshot,
) -> crate::store::Result<NewMessage> {
    let now = store.now_ms();
    let channel = current.channels.get(&g.channel);
    let tz = current
        .groups
        .get(&g.channel)
        .map_or(TimeZone::UTC, |gr| gr.tz.clone());
    let latest = match &g.latest {
        Some(id) => store.get_message(id.as_str()).await?,
        None => None,
    };
    let since = g.pending_since.unwrap_or(now);
    let quiet = g.labels.contains_key(super::QUIET_UNTIL);
    let (message, labels, source, silence_url) = match latest {
        Some(v) => (v.message, v.labels, v.source, v.silence_url),
        // Retention pruned it: the count is all there is to say.
        None => (
            Message::text(format!("{:?}", g.labels)),
            g.labels.clone(),
            None,
            None,
        ),
    };
    let message = if quiet {
        let held = store.group_members(&g.id).await?;
        super::notify::quiet_digest(held.into_iter().map(|(_, m)| m).collect()).unwrap_or(message)
    } else {
        super::notify::notification(message, g.pending, since, now, &tz)
    };
    let mut m = NewMessage::new(g.channel.clone(), message, Vec::new());
    m.message.id = Some(m.id.to_string());
    m.kind = MessageKind::Digest;
    m.origin = g.latest.clone();
    if let Some(q) = channel.and_then(|c| c.quiet.as_ref()).filter(|_| !quiet) {
        m.not_before = q.hold_until(labels.get("severity").map(String::as_str), now);
    }
    // A digest of several stands for none of them alone.
    if !(quiet && g.pending > 1) {
        m.labels = labels;
        m.source = source;
        m.silence_url = silence_url;
    }
    Ok(m)
}
