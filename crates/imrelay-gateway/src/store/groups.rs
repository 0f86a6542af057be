//! The SQL of message groups (a channel's `group`), shared by both backends.
//!
//! A fold and a send both move the group's `version` on. A send is a
//! compare-and-set on the version its sender read, in the transaction that
//! queues the notification (see migration `0007_groups`): whoever moves it
//! first sent the group, and a fold that came in between makes the send find
//! nothing to do (the next pass sends the group with that fold in it).

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::*;

/// What a group holds when a message is folded into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Held<'a> {
    pub pending: i64,
    pub due_at: Option<i64>,
    pub sent_at: Option<i64>,
    pub sent_hash: Option<&'a str>,
}

/// When a group is sent after a message with content `hash` is folded
/// into it at `now` (Alertmanager's `group_wait`, `group_interval`,
/// `repeat_interval`):
/// - a new group, or one silent for `repeat` since its last send, waits
///   `wait` for more;
/// - new content goes at most every `interval` after the last send;
/// - the same content as last sent goes again only `repeat` after it.
pub(super) fn due_after_fold(held: Held<'_>, g: &GroupSpec, now: i64) -> i64 {
    let changed = held.sent_hash != Some(g.content_hash.as_str());
    let due = match held.sent_at {
        None => now + g.wait_ms,
        Some(sent) if held.pending == 0 && now >= sent + g.repeat_ms => now + g.wait_ms,
        Some(sent) if changed => (sent + g.interval_ms).max(now),
        Some(sent) => sent + g.repeat_ms,
    };
    match held.due_at {
        Some(d) if held.pending > 0 => d.min(due),
        _ => due,
    }
}

const INSERT_GROUPED: &str =
    "INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at, group_id)
     VALUES ($1, $2, 'merged', $3, $3, $3, $4)";

/// Fold message `m` into group `g`: its deliveries are stored `merged` with
/// the group's id, and the group counts it and is due when
/// [`due_after_fold`] says.
pub(super) async fn fold<C: Conn>(
    c: &mut C,
    m: &NewMessage,
    g: &GroupSpec,
    now: i64,
) -> Result<()> {
    let labels = serde_json::to_string(&g.labels)
        .map_err(|e| StoreError::Invalid(format!("group labels: {e}")))?;
    // Exists first, so concurrent first messages of a group lock one row.
    c.exec(
        "INSERT INTO message_groups (id, channel, labels, version, pending, total, sends, repeat_ms,
           created_at, updated_at)
         VALUES ($1, $2, $3, 0, 0, 0, 0, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
        args![&g.id, &m.channel, labels, g.repeat_ms, now],
    )
    .await?;
    let rows = c
        .fetch(
            "SELECT pending, due_at, sent_at, sent_hash FROM message_groups WHERE id = $1 FOR_UPDATE",
            args![&g.id],
        )
        .await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::Internal("a group vanished while folding".into()))?;
    let sent_hash = r.opt_text("sent_hash")?;
    let held = Held {
        pending: r.int("pending")?,
        due_at: r.opt_int("due_at")?,
        sent_at: r.opt_int("sent_at")?,
        sent_hash: sent_hash.as_deref(),
    };
    let due = due_after_fold(held, g, now);
    c.exec(
        "UPDATE message_groups SET version = version + 1, pending = pending + 1,
           pending_since = COALESCE(pending_since, $2), total = total + 1, due_at = $3, latest = $4,
           latest_hash = $5, repeat_ms = $6, updated_at = $2
         WHERE id = $1",
        args![&g.id, now, due, &m.id, &g.content_hash, g.repeat_ms],
    )
    .await?;
    for t in &m.targets {
        c.exec(INSERT_GROUPED, args![&m.id, t, now, &g.id]).await?;
    }
    Ok(())
}

macro_rules! cols {
    () => {
        "id, channel, labels, version, pending, pending_since, total, latest, due_at, sent_at, sends, sent_message"
    };
}

fn due_group(r: &impl Cols) -> Result<DueGroup> {
    let labels = r.text("labels")?;
    Ok(DueGroup {
        id: r.text("id")?,
        channel: r.text("channel")?,
        labels: serde_json::from_str(&labels)
            .map_err(|_| StoreError::corrupt("message_groups.labels", labels))?,
        version: r.int("version")?,
        pending: r.int("pending")?,
        pending_since: r.opt_int("pending_since")?,
        total: r.int("total")?,
        latest: r.opt_message_id("latest")?,
        due_at: r.opt_int("due_at")?,
        sent_at: r.opt_int("sent_at")?,
        sends: r.int("sends")?,
        sent_message: r.opt_message_id("sent_message")?,
    })
}

/// Groups with something to send at `now`, earliest first.
pub(super) async fn due<C: Conn>(c: &mut C, now: i64, limit: u32) -> Result<Vec<DueGroup>> {
    const SQL: &str = concat!(
        "SELECT ",
        cols!(),
        " FROM message_groups WHERE due_at IS NOT NULL AND due_at <= $1 AND pending > 0
         ORDER BY due_at, id LIMIT $2"
    );
    let rows = c.fetch(SQL, args![now, limit]).await?;
    rows.iter().map(due_group).collect()
}

/// Group `id`, as it stands.
pub(super) async fn get<C: Conn>(c: &mut C, id: &str) -> Result<Option<DueGroup>> {
    const SQL: &str = concat!("SELECT ", cols!(), " FROM message_groups WHERE id = $1");
    let rows = c.fetch(SQL, args![id]).await?;
    rows.first().map(due_group).transpose()
}

/// The messages folded into group `id` since its last send, oldest first.
pub(super) async fn members<C: Conn>(
    c: &mut C,
    id: &str,
) -> Result<Vec<(MessageId, imrelay_sdk::Message)>> {
    let rows = c
        .fetch(
            "SELECT m.id, m.body, m.created_at FROM messages m WHERE m.id IN (
               SELECT d.message_id FROM deliveries d
               WHERE d.group_id = $1 AND d.state = 'merged' AND d.merged_into IS NULL)
             ORDER BY m.created_at, m.id",
            args![id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let body = r.text("body")?;
            let msg = serde_json::from_str(&body)
                .map_err(|_| StoreError::corrupt("messages.body", "(not a message)"))?;
            Ok((r.message_id("id")?, msg))
        })
        .collect()
}

/// Forget up to `limit` groups with nothing pending whose last send is
/// older than their `repeat` and than `before`: the next message of such a
/// group starts it anew anyway ([`due_after_fold`]), so nothing changes but
/// the table's size. How many.
pub(super) async fn forget_idle<C: Conn>(c: &mut C, before: i64, limit: u32) -> Result<u64> {
    c.exec(
        "DELETE FROM message_groups WHERE id IN (SELECT id FROM message_groups
           WHERE pending = 0 AND sent_at IS NOT NULL AND sent_at < $1 AND sent_at + repeat_ms < $1
           LIMIT $2)",
        args![before, limit],
    )
    .await
}

/// Send group `s.id` unless its version moved on: queue the notification to
/// the targets of the deliveries folded since the last send and point them
/// at it (they settle with it). Whether this call sent it.
pub(super) async fn send<C: Conn>(c: &mut C, s: &SendGroup, now: i64) -> Result<bool> {
    let moved = c
        .exec(
            "UPDATE message_groups SET version = version + 1, pending = 0, pending_since = NULL,
               due_at = NULL, sent_at = $3, sent_hash = latest_hash, sent_message = $4,
               sends = sends + 1, updated_at = $3
             WHERE id = $1 AND version = $2 AND pending > 0",
            args![&s.id, s.version, now, &s.message.id],
        )
        .await?;
    if moved == 0 {
        return Ok(false);
    }
    let rows = c
        .fetch(
            "SELECT DISTINCT target FROM deliveries
             WHERE group_id = $1 AND state = 'merged' AND merged_into IS NULL ORDER BY target",
            args![&s.id],
        )
        .await?;
    let mut m = s.message.clone();
    m.targets = rows
        .iter()
        .map(|r| r.target("target"))
        .collect::<Result<_>>()?;
    m.group = None;
    if m.targets.is_empty() {
        // Everything folded was pruned or settled meanwhile.
        return Ok(true);
    }
    super::queue::insert_new(c, &m, now).await?;
    c.exec(
        "UPDATE deliveries SET merged_into = (SELECT n.id FROM deliveries n
             WHERE n.message_id = $2 AND n.target = deliveries.target), updated_at = $3
         WHERE group_id = $1 AND state = 'merged' AND merged_into IS NULL",
        args![&s.id, &m.id, now],
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;
    const MIN: i64 = 60 * S;

    fn spec(hash: &str) -> GroupSpec {
        GroupSpec {
            id: "g".into(),
            labels: Labels::new(),
            wait_ms: 30 * S,
            interval_ms: 5 * MIN,
            repeat_ms: 240 * MIN,
            content_hash: hash.into(),
        }
    }

    fn held(
        pending: i64,
        due_at: Option<i64>,
        sent_at: Option<i64>,
        hash: Option<&str>,
    ) -> Held<'_> {
        Held {
            pending,
            due_at,
            sent_at,
            sent_hash: hash,
        }
    }

    #[test]
    fn a_new_group_waits_and_later_folds_keep_its_time() {
        assert_eq!(
            due_after_fold(held(0, None, None, None), &spec("a"), 0),
            30 * S
        );
        assert_eq!(
            due_after_fold(held(5, Some(30 * S), None, None), &spec("a"), 10 * S),
            30 * S
        );
    }

    #[test]
    fn new_content_goes_after_the_interval_and_repeats_after_repeat() {
        let sent = 10 * MIN;
        // Changed content a minute after a send: at the interval's end.
        assert_eq!(
            due_after_fold(held(0, None, Some(sent), Some("a")), &spec("b"), sent + MIN),
            sent + 5 * MIN
        );
        // Changed long after the interval: now.
        assert_eq!(
            due_after_fold(
                held(0, None, Some(sent), Some("a")),
                &spec("b"),
                sent + 30 * MIN
            ),
            sent + 30 * MIN
        );
        // The same content: only at the repeat.
        assert_eq!(
            due_after_fold(held(0, None, Some(sent), Some("a")), &spec("a"), sent + MIN),
            sent + 240 * MIN
        );
        // A repeat pending, then a change: the earlier time wins.
        assert_eq!(
            due_after_fold(
                held(3, Some(sent + 240 * MIN), Some(sent), Some("a")),
                &spec("b"),
                sent + MIN
            ),
            sent + 5 * MIN
        );
        // Silent for longer than the repeat: a new group again.
        assert_eq!(
            due_after_fold(
                held(0, None, Some(sent), Some("a")),
                &spec("a"),
                sent + 300 * MIN
            ),
            sent + 300 * MIN + 30 * S
        );
    }
}
