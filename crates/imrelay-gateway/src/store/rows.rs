//! Row-to-type mapping shared by the SQLite and PostgreSQL stores.
//!
//! The SQL differs per backend, but both select the same column names with the
//! same types, so the assembly of [`MessageView`], [`DeadEntry`], [`Claimed`]
//! and friends lives here once, generic over sqlx's [`Row`] through [`Cols`].

use imrelay_sdk::Message;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::*;

/// Typed column access by name; one place for the sqlx bounds so the mapping
/// functions below work on any backend's rows.
pub(super) trait Cols {
    /// A non-null text column.
    fn text(&self, col: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, col: &str) -> Result<Option<String>>;
    /// A non-null integer column.
    fn int(&self, col: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, col: &str) -> Result<Option<i64>>;
    /// A boolean column (SQLite stores it as an integer; sqlx decodes both).
    fn flag(&self, col: &str) -> Result<bool>;

    /// A message id column (text).
    fn message_id(&self, col: &str) -> Result<MessageId> {
        self.text(col).map(MessageId::from)
    }
    /// A nullable message id column.
    fn opt_message_id(&self, col: &str) -> Result<Option<MessageId>> {
        Ok(self.opt_text(col)?.map(MessageId::from))
    }
    /// A delivery id column (integer).
    fn delivery_id(&self, col: &str) -> Result<DeliveryId> {
        self.int(col).map(DeliveryId::from)
    }
    /// A `"{channel}/{key}"` target column; other text is corrupt data.
    fn target(&self, col: &'static str) -> Result<Target> {
        let text = self.text(col)?;
        text.parse().map_err(|_| StoreError::Corrupt {
            column: col,
            value: format!("{text:?}, not a \"{{channel}}/{{key}}\" target"),
        })
    }
}

impl<R> Cols for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> Result<String> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64> {
        Ok(self.try_get(col)?)
    }
    fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        Ok(self.try_get(col)?)
    }
    fn flag(&self, col: &str) -> Result<bool> {
        Ok(self.try_get(col)?)
    }
}

/// Recipients as stored: a JSON array, or NULL when there are none.
pub(super) fn recipients_json(r: &[String]) -> Option<String> {
    if r.is_empty() {
        None
    } else {
        serde_json::to_string(r).ok()
    }
}

pub(super) fn parse_recipients(s: Option<String>) -> Vec<String> {
    s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

pub(super) fn parse_message(body: &str) -> Result<Message> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        column: "messages.body",
        value: format!("no valid message ({e})"),
    })
}

/// The row a post-claim transition is fenced on (columns: `state,
/// lease_owner, lease_until, message_id, target`).
pub(super) fn lease(row: &impl Cols) -> Result<super::plan::Lease> {
    Ok(super::plan::Lease {
        state: DeliveryState::parse(&row.text("state")?)?,
        owner: row.opt_text("lease_owner")?,
        lease_until: row.opt_int("lease_until")?,
        message_id: row.message_id("message_id")?,
        target: row.target("target")?,
    })
}

fn outcome(s: &str, column: &'static str) -> Result<AttemptOutcome> {
    s.parse().map_err(|_| StoreError::corrupt(column, s))
}

/// The `id` column of each row.
pub(super) fn ids<R: Cols>(rows: &[R]) -> Result<Vec<DeliveryId>> {
    rows.iter().map(|r| r.delivery_id("id")).collect()
}

/// A dead letter (columns: `id, message_id, channel, target, recipients,
/// dead_code, dead_reason, attempts, created_at, dead_at, body`).
pub(super) fn dead_entry(row: &impl Cols) -> Result<DeadEntry> {
    let body = row.text("body")?;
    Ok(DeadEntry {
        delivery_id: row.delivery_id("id")?,
        message_id: row.message_id("message_id")?,
        channel: row.text("channel")?,
        target: row.target("target")?,
        recipients: parse_recipients(row.opt_text("recipients")?),
        code: row.opt_text("dead_code")?,
        reason: row.opt_text("dead_reason")?.unwrap_or_default(),
        attempts: row.int("attempts")? as u32,
        created_at: row.int("created_at")?,
        dead_at: row.opt_int("dead_at")?.unwrap_or_default(),
        message: parse_message(&body)?,
    })
}

/// A claimed delivery (columns: `id, message_id, channel, target, kind, body,
/// recipients, attempts, parts_done, created_at, last_outcome, trace_id,
/// lease_until, origin, thread, thread_root, thread_seq, overtaken`).
pub(super) fn claimed(r: &impl Cols) -> Result<Claimed> {
    let body = r.text("body")?;
    Ok(Claimed {
        delivery_id: r.delivery_id("id")?,
        message_id: r.message_id("message_id")?,
        channel: r.text("channel")?,
        target: r.target("target")?,
        kind: MessageKind::parse(&r.text("kind")?)?,
        message: parse_message(&body)?,
        recipients: parse_recipients(r.opt_text("recipients")?),
        attempts: r.int("attempts")? as u32,
        parts_done: r.int("parts_done")? as u32,
        created_at: r.int("created_at")?,
        last_outcome: r
            .opt_text("last_outcome")?
            .map(|s| outcome(&s, "deliveries.last_outcome"))
            .transpose()?,
        trace_id: r.opt_text("trace_id")?,
        lease_until: r.int("lease_until")?,
        thread: thread_pos(r)?,
        origin: r.opt_message_id("origin")?,
        overtaken: r.int("overtaken")? != 0,
    })
}

/// The thread columns (`thread, thread_root, thread_seq`), when set.
pub(super) fn thread_pos(r: &impl Cols) -> Result<Option<ThreadPos>> {
    let (Some(key), Some(root), Some(seq)) = (
        r.opt_text("thread")?,
        r.opt_text("thread_root")?,
        r.opt_int("thread_seq")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(ThreadPos {
        key,
        root: root.into(),
        seq,
    }))
}

fn attempt(a: &impl Cols) -> Result<AttemptRecord> {
    Ok(AttemptRecord {
        started_at: a.int("started_at")?,
        finished_at: a.int("finished_at")?,
        destination: a.text("destination")?,
        part: a.int("part")? as u32,
        outcome: outcome(&a.text("outcome")?, "attempts.outcome")?,
        counted: a.flag("counted")?,
        status: a.opt_int("status")?.map(|s| s as u16),
        code: a.opt_text("code")?,
        message: a.text("message")?,
        platform_message_id: a.opt_text("platform_message_id")?,
        update_token: a.opt_text("update_token")?,
        recipients: parse_recipients(a.opt_text("recipients")?),
    })
}

fn delivery_view<R: Cols>(r: &R, attempts: &[R]) -> Result<DeliveryView> {
    let did = r.delivery_id("id")?;
    let state = DeliveryState::parse(&r.text("state")?)?;
    let mut history = Vec::new();
    for a in attempts {
        if a.delivery_id("delivery_id")? == did {
            history.push(attempt(a)?);
        }
    }
    let dead = if state == DeliveryState::Dead {
        Some(DeadReason {
            code: r.opt_text("dead_code")?,
            reason: r.opt_text("dead_reason")?.unwrap_or_default(),
        })
    } else {
        None
    };
    Ok(DeliveryView {
        id: did,
        target: r.target("target")?,
        state,
        recipients: parse_recipients(r.opt_text("recipients")?),
        attempts: r.int("attempts")? as u32,
        parts_done: r.int("parts_done")? as u32,
        // A due time means something only while the delivery waits.
        due_at: matches!(state, DeliveryState::Pending)
            .then(|| r.int("due_at"))
            .transpose()?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
        dead,
        silenced_by: r.opt_text("silence_id")?,
        merged_into: r.opt_message_id("merged_into")?,
        group: r.opt_text("group_id")?,
        history,
    })
}

/// A message with its deliveries and their attempts.
///
/// `m`: `id, channel, kind, body, trace_id, origin, created_at`;
/// `rows` (deliveries in order): `id, target, state, recipients, attempts,
/// parts_done, due_at, created_at, updated_at, dead_code, dead_reason,
/// merged_into` (the digest's message id); `attempts` (in order):
/// `delivery_id, started_at, finished_at, destination, part, outcome, counted,
/// status, code, message`.
pub(super) fn message_view<R: Cols>(m: &R, rows: &[R], attempts: &[R]) -> Result<MessageView> {
    let deliveries = rows
        .iter()
        .map(|r| delivery_view(r, attempts))
        .collect::<Result<Vec<_>>>()?;
    let body = m.text("body")?;
    Ok(MessageView {
        id: m.message_id("id")?,
        channel: m.text("channel")?,
        kind: MessageKind::parse(&m.text("kind")?)?,
        state: MessageState::from_deliveries(deliveries.iter().map(|d| &d.state)),
        message: parse_message(&body)?,
        trace_id: m.opt_text("trace_id")?,
        origin: m.opt_message_id("origin")?,
        created_at: m.int("created_at")?,
        thread: thread_pos(m)?,
        labels: match m.opt_text("labels")? {
            Some(l) => {
                serde_json::from_str(&l).map_err(|_| StoreError::corrupt("messages.labels", l))?
            }
            None => Labels::new(),
        },
        source: m.opt_text("source")?,
        silence_url: m.opt_text("silence_url")?,
        acks: Vec::new(),
        escalation: None,
        deliveries,
    })
}

/// One target's backlog (columns: `target, pending, due, next_due_at`).
pub(super) fn backlog(r: &impl Cols) -> Result<TargetBacklog> {
    Ok(TargetBacklog {
        target: r.target("target")?,
        pending: r.int("pending")? as u64,
        due: r.int("due")? as u64,
        next_due_at: r.opt_int("next_due_at")?,
    })
}

/// An overdue delivery (columns: `id, message_id, channel, target,
/// created_at`).
pub(super) fn overdue(r: &impl Cols) -> Result<Overdue> {
    Ok(Overdue {
        delivery_id: r.delivery_id("id")?,
        message_id: r.message_id("message_id")?,
        channel: r.text("channel")?,
        target: r.target("target")?,
        created_at: r.int("created_at")?,
    })
}

/// Delivery counts per state and per target, from rows `target, state, n`
/// ordered by target; targets with nothing pending, in flight or dead are
/// left out. `messages` and `oldest_pending_age_ms` are the caller's.
pub(super) fn tally<R: Cols>(rows: &[R]) -> Result<QueueStats> {
    let mut s = QueueStats::default();
    for r in rows {
        let target = r.target("target")?;
        let n = r.int("n")? as u64;
        let state = DeliveryState::parse(&r.text("state")?)?;
        if s.by_target.last().map(|t| &t.target) != Some(&target) {
            s.by_target.push(TargetStats {
                target,
                pending: 0,
                in_flight: 0,
                dead: 0,
            });
        }
        let t = s.by_target.last_mut().expect("pushed above");
        match state {
            DeliveryState::Pending => {
                s.pending += n;
                t.pending += n;
            }
            DeliveryState::Claimed => {
                s.in_flight += n;
                t.in_flight += n;
            }
            DeliveryState::Done => s.done += n,
            DeliveryState::Dead => {
                s.dead += n;
                t.dead += n;
            }
            DeliveryState::Merged => s.merged += n,
            DeliveryState::Silenced => s.silenced += n,
        }
    }
    s.by_target.retain(|t| t.pending + t.in_flight + t.dead > 0);
    Ok(s)
}
