//! The queue's SQL written once for both backends, and the execution of the
//! plans of [`super::plan`].
//!
//! Statements here are the same text in both dialects: `$n` placeholders
//! (SQLite accepts them too) and tokens that [`super::sql::Dialect::render`]
//! rewrites: `IN_LIST($n)` (a list bound as [`Arg::Ints`] or [`Arg::Texts`]:
//! `IN (SELECT value FROM json_each($n))` on SQLite, `= ANY($n)` on
//! PostgreSQL), `FOR_UPDATE` (row lock on PostgreSQL, nothing on SQLite,
//! whose single writer serialises every change anyway) and `COLLATE_BYTES`.
//!
//! What is truly one dialect's stays in its backend: the claims (SKIP
//! LOCKED), the set-based accepts and acknowledgements (`json_each`,
//! `UNNEST`), LISTEN/NOTIFY and the SQLite writer. The backlog scan is one
//! text for both, with the shape BENCHMARKS.md measured.

use super::plan::{self, Admit, Lease, Plan};
use super::rows::{self, recipients_json, Cols};
use super::sql::{args, Arg, Conn};
use super::*;

// ---- enqueue -------------------------------------------------------------

/// Outcomes of a bulk insert of plain messages, in input order, from the
/// ids the database inserted: an id's first occurrence is created, a
/// repeat or an id that existed already is refused (as one by one).
pub(super) fn bulk_outcomes(
    msgs: &[NewMessage],
    inserted: &mut std::collections::HashSet<String>,
) -> Vec<EnqueueOutcome> {
    msgs.iter()
        .map(|m| {
            if inserted.remove(m.id.as_str()) {
                EnqueueOutcome::Created { id: m.id.clone() }
            } else {
                EnqueueOutcome::Rejected {
                    reason: format!("message id `{}` already exists", m.id),
                }
            }
        })
        .collect()
}

/// Fold rows of `target, pending, due, next_due_at` that may name a target
/// twice (its pending deliveries, its expired claims) into one per target,
/// in byte order of the target.
pub(super) fn merge_backlog(rows: Vec<TargetBacklog>) -> Vec<TargetBacklog> {
    let mut by_target: std::collections::BTreeMap<Target, TargetBacklog> = Default::default();
    for r in rows {
        match by_target.get_mut(&r.target) {
            Some(b) => {
                b.pending += r.pending;
                b.due += r.due;
                b.next_due_at = b.next_due_at.into_iter().chain(r.next_due_at).min();
            }
            None => {
                by_target.insert(r.target.clone(), r);
            }
        }
    }
    by_target.into_values().collect()
}

const INSERT_MESSAGE: &str =
    "INSERT INTO messages (id, channel, kind, body, trace_id, origin, idem_scope, idem_key, body_hash, created_at,
       thread, thread_root, thread_seq, labels, silence_url, source)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) ON CONFLICT DO NOTHING";
// The first message of a thread on a channel becomes its root; every later
// one takes the next sequence number (the row lock orders concurrent accepts).
const JOIN_THREAD: &str =
    "INSERT INTO threads (channel, thread, root, seq, created_at) VALUES ($1, $2, $3, 1, $4)
     ON CONFLICT (channel, thread) DO UPDATE SET seq = threads.seq + 1 RETURNING root, seq";
const INSERT_DELIVERY: &str =
    "INSERT INTO deliveries (message_id, target, state, due_at, created_at, updated_at, silence_id)
     VALUES ($1, $2, CASE WHEN $4 IS NULL THEN 'pending' ELSE 'silenced' END, $5, $3, $3, $4)";
const BY_KEY: &str = "SELECT id, body_hash FROM messages WHERE idem_scope = $1 AND idem_key = $2";

/// The body as stored.
pub(super) fn body_of(m: &NewMessage) -> Result<String> {
    serde_json::to_string(&m.message).map_err(|e| StoreError::Invalid(format!("message: {e}")))
}

/// Insert a message and its deliveries; `false` (nothing written) when its id
/// or idempotency key exists already.
pub(super) async fn insert_message<C: Conn>(c: &mut C, m: &NewMessage, now: i64) -> Result<bool> {
    let idem = m.idempotency.as_ref();
    let thread = match &m.thread {
        Some(key) => Some(join_thread(c, &m.channel, key, &m.id, now).await?),
        None => None,
    };
    let labels = (!m.labels.is_empty())
        .then(|| serde_json::to_string(&m.labels))
        .transpose()
        .map_err(|e| StoreError::Invalid(format!("labels: {e}")))?;
    let inserted = c
        .exec(
            INSERT_MESSAGE,
            args![
                &m.id,
                &m.channel,
                m.kind.as_str(),
                body_of(m)?,
                m.trace_id.clone(),
                m.origin.clone(),
                idem.map(|i| i.scope.as_str()),
                idem.map(|i| i.key.as_str()),
                idem.map(|i| i.body_hash.as_str()),
                now,
                m.thread.clone(),
                thread.as_ref().map(|t| t.root.clone()),
                thread.as_ref().map(|t| t.seq),
                labels,
                m.silence_url.clone(),
                m.source.clone()
            ],
        )
        .await?;
    if inserted == 0 {
        return Ok(false);
    }
    let root = thread.as_ref().map_or(&m.id, |t| &t.root);
    if m.resolved {
        super::escalations::stop(c, root, EscalationState::Resolved, "source", now).await?;
    }
    if let Some(e) = &m.escalation {
        super::escalations::start(c, m, root, e, now).await?;
    }
    if let Some(g) = &m.group {
        return super::groups::fold(c, m, g, now).await.map(|()| true);
    }
    for t in &m.targets {
        let due = m.not_before.map_or(now, |at| at.max(now));
        c.exec(
            INSERT_DELIVERY,
            args![&m.id, t, now, m.silenced_by.clone(), due],
        )
        .await?;
    }
    Ok(true)
}

/// Join `id` to thread `key` of `channel`: the root and its sequence number.
async fn join_thread<C: Conn>(
    c: &mut C,
    channel: &str,
    key: &str,
    id: &str,
    now: i64,
) -> Result<ThreadPos> {
    let rows = c.fetch(JOIN_THREAD, args![channel, key, id, now]).await?;
    let r = rows
        .first()
        .ok_or_else(|| StoreError::Internal("joining a thread returned no row".into()))?;
    Ok(ThreadPos {
        key: key.to_string(),
        root: r.message_id("root")?,
        seq: r.int("seq")?,
    })
}

/// Insert a message the store itself creates (digest, fallback copy); an id
/// collision is an error, not an outcome.
pub(super) async fn insert_new<C: Conn>(c: &mut C, m: &NewMessage, now: i64) -> Result<()> {
    if insert_message(c, m, now).await? {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "message id `{}` already exists",
            m.id
        )))
    }
}

async fn by_key<C: Conn>(c: &mut C, m: &NewMessage) -> Result<Option<(MessageId, Option<String>)>> {
    let Some(i) = &m.idempotency else {
        return Ok(None);
    };
    let rows = c.fetch(BY_KEY, args![&i.scope, &i.key]).await?;
    rows.first()
        .map(|r| Ok((r.message_id("id")?, r.opt_text("body_hash")?)))
        .transpose()
}

/// Enqueue one message, idempotency key checked.
pub(super) async fn enqueue_one<C: Conn>(
    c: &mut C,
    m: &NewMessage,
    now: i64,
) -> Result<EnqueueOutcome> {
    if let Admit::Answer(o) = plan::admit(m, by_key(c, m).await?) {
        return Ok(o);
    }
    if insert_message(c, m, now).await? {
        return Ok(EnqueueOutcome::Created { id: m.id.clone() });
    }
    // Another instance (or transaction) committed the same key between the
    // look-up and the insert: the insert waited for it, then did nothing.
    Ok(plan::not_inserted(m, by_key(c, m).await?))
}

/// Enqueue messages one by one, in order.
pub(super) async fn enqueue_all<C: Conn>(
    c: &mut C,
    msgs: &[NewMessage],
    now: i64,
) -> Result<Vec<EnqueueOutcome>> {
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        out.push(enqueue_one(c, m, now).await?);
    }
    Ok(out)
}

// ---- claimed deliveries --------------------------------------------------

const LEASE: &str =
    "SELECT state, lease_owner, lease_until, message_id, target FROM deliveries WHERE id = $1 FOR_UPDATE";
const INSERT_ATTEMPT: &str =
    "INSERT INTO attempts (delivery_id, started_at, finished_at, destination, part, outcome, counted, status, code, message,
       platform_message_id, update_token, recipients)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const UPDATE: &str = "UPDATE deliveries SET state = $2, attempts = attempts + $3, due_at = COALESCE($4, due_at),
       parts_done = $5, lease_owner = CASE WHEN $6 IS NULL THEN NULL ELSE lease_owner END, lease_until = $6,
       last_outcome = COALESCE($7, last_outcome), dead_code = $8, dead_reason = $9, dead_at = $10, updated_at = $11
     WHERE id = $1";
const SETTLE_MEMBERS: &str =
    "UPDATE deliveries SET state = $2, dead_code = $3, dead_reason = $4, dead_at = $5,
       updated_at = $6 WHERE merged_into = $1 AND state = 'merged'";
const INSERT_CHILD: &str =
    "INSERT INTO deliveries (message_id, target, recipients, state, attempts, parts_done, due_at,
       last_outcome, dead_code, dead_reason, dead_at, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";

/// Read (and on PostgreSQL lock) the row a transition is fenced on.
pub(super) async fn lease<C: Conn>(c: &mut C, delivery: DeliveryId) -> Result<Option<Lease>> {
    let rows = c.fetch(LEASE, args![delivery]).await?;
    rows.first().map(rows::lease).transpose()
}

pub(super) async fn insert_attempts<C: Conn>(
    c: &mut C,
    delivery: DeliveryId,
    attempts: &[AttemptRecord],
) -> Result<()> {
    for a in attempts {
        c.exec(
            INSERT_ATTEMPT,
            args![
                delivery,
                a.started_at,
                a.finished_at,
                &a.destination,
                a.part,
                a.outcome.as_str(),
                a.counted,
                a.status.map(i64::from),
                a.code.clone(),
                &a.message,
                a.platform_message_id.clone(),
                a.update_token.clone(),
                if a.platform_message_id.is_some() {
                    recipients_json(&a.recipients)
                } else {
                    None
                }
            ],
        )
        .await?;
    }
    Ok(())
}

/// Write a plan; returns whether new work became due.
pub(super) async fn execute<C: Conn>(c: &mut C, p: Plan) -> Result<bool> {
    insert_attempts(c, p.delivery, &p.attempts).await?;
    let u = &p.update;
    let dead = u.dead.as_ref();
    c.exec(
        UPDATE,
        args![
            p.delivery,
            u.state.as_str(),
            u.add_attempts,
            u.due_at,
            u.parts_done,
            u.lease_until,
            u.last_outcome.map(AttemptOutcome::as_str),
            dead.and_then(|d| d.code.clone()),
            dead.map(|d| d.reason.clone()),
            dead.map(|_| u.at),
            u.at
        ],
    )
    .await?;
    if let Some(s) = &p.members {
        let dead = match s {
            plan::Settle::Dead(r) => Some(r),
            plan::Settle::Done => None,
        };
        c.exec(
            SETTLE_MEMBERS,
            args![
                p.delivery,
                s.state().as_str(),
                dead.and_then(|d| d.code.clone()),
                dead.map(|d| d.reason.clone()),
                dead.map(|_| u.at),
                u.at
            ],
        )
        .await?;
    }
    for ch in &p.children {
        let dead = ch.dead.as_ref();
        c.exec(
            INSERT_CHILD,
            args![
                &p.message_id,
                &p.target,
                recipients_json(&ch.recipients),
                ch.state.as_str(),
                ch.attempts,
                ch.parts_done,
                ch.due_at,
                ch.last_outcome.map(AttemptOutcome::as_str),
                dead.and_then(|d| d.code.clone()),
                dead.map(|d| d.reason.clone()),
                dead.map(|_| ch.at),
                ch.at
            ],
        )
        .await?;
    }
    if let Some(fb) = &p.fallback {
        insert_new(c, fb, u.at).await?;
    }
    Ok(p.wakes)
}

pub(super) async fn progress<C: Conn>(
    c: &mut C,
    delivery: DeliveryId,
    owner: &str,
    attempts: Vec<AttemptRecord>,
    parts_done: u32,
    lease_until: i64,
    now: i64,
) -> Result<()> {
    let row = lease(c, delivery).await?;
    let p = plan::progress(
        row.as_ref(),
        delivery,
        owner,
        attempts,
        parts_done,
        lease_until,
        now,
    )?;
    execute(c, p).await?;
    Ok(())
}

/// End a claim; returns whether new work became due (children, fallback).
pub(super) async fn finish<C: Conn>(
    c: &mut C,
    delivery: DeliveryId,
    owner: &str,
    f: Finish,
    now: i64,
) -> Result<bool> {
    let row = lease(c, delivery).await?;
    let p = plan::finish(row.as_ref(), delivery, owner, f, now)?;
    execute(c, p).await
}

pub(super) async fn coalesce<C: Conn>(
    c: &mut C,
    owner: &str,
    members: Vec<DeliveryId>,
    digest: NewMessage,
    now: i64,
) -> Result<MessageId> {
    plan::check_digest(&members, &digest)?;
    for &m in &members {
        let row = lease(c, m).await?;
        plan::merge_member(row.as_ref(), m, owner, &digest)?;
    }
    insert_new(c, &digest, now).await?;
    let rows = c
        .fetch(
            "SELECT id FROM deliveries WHERE message_id = $1",
            args![&digest.id],
        )
        .await?;
    let did = rows
        .first()
        .map(|r| r.int("id"))
        .transpose()?
        .ok_or_else(|| StoreError::Internal("the digest's delivery was not inserted".into()))?;
    c.exec(
        "UPDATE deliveries SET state = 'merged', merged_into = $1, lease_owner = NULL, lease_until = NULL,
         updated_at = $2 WHERE id IN_LIST($3)",
        args![did, now, members],
    )
    .await?;
    Ok(digest.id)
}

// ---- the queue -----------------------------------------------------------

/// Pending work per target, each count stopping at `cap`.
///
/// A loose index scan over `deliveries_queue (state, target, due_at)`: one
/// index seek per distinct target, then counts that stop at `cap`. Expired
/// claims are few (bounded by what was in flight).
pub(super) async fn backlog<C: Conn>(c: &mut C, now: i64, cap: u64) -> Result<Vec<TargetBacklog>> {
    let rows = c
        .fetch(
            "WITH RECURSIVE t(target) AS (
               SELECT (SELECT MIN(target) FROM deliveries WHERE state = 'pending')
               UNION ALL
               SELECT (SELECT MIN(target) FROM deliveries WHERE state = 'pending' AND target > t.target)
               FROM t WHERE t.target IS NOT NULL)
             SELECT target,
               (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
                  WHERE state = 'pending' AND target = t.target LIMIT $2) p) AS pending,
               (SELECT COUNT(*) FROM (SELECT 1 FROM deliveries
                  WHERE state = 'pending' AND target = t.target AND due_at <= $1 LIMIT $2) d) AS due,
               (SELECT MIN(due_at) FROM deliveries WHERE state = 'pending' AND target = t.target) AS next_due_at
             FROM t WHERE target IS NOT NULL
             UNION ALL
             SELECT target, COUNT(*), COUNT(*), $1 FROM deliveries
             WHERE state = 'claimed' AND lease_until <= $1 GROUP BY target",
            args![now, cap.min(i64::MAX as u64) as i64],
        )
        .await?;
    let rows = rows.iter().map(rows::backlog).collect::<Result<Vec<_>>>()?;
    Ok(merge_backlog(rows))
}

/// The order a claim hands its deliveries out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClaimOrder {
    /// Oldest due first.
    Due,
    /// Accept order (delivery id): an ordered target's.
    Accept,
}

/// The deliveries a claim just leased, with their messages, in `order`.
pub(super) async fn claimed<C: Conn>(
    c: &mut C,
    ids: Vec<DeliveryId>,
    order: ClaimOrder,
) -> Result<Vec<Claimed>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Two whole statements: the connection takes static SQL.
    macro_rules! select {
        ($overtaken:literal, $order:literal) => {
            concat!(
                "SELECT d.id, d.message_id, m.channel, d.target, m.kind, m.body, d.recipients, d.attempts,
                   d.parts_done, m.created_at, d.last_outcome, m.trace_id, d.lease_until, m.origin,
                   m.thread, m.thread_root, m.thread_seq, ",
                $overtaken,
                " AS overtaken
                 FROM deliveries d JOIN messages m ON m.id = d.message_id
                 WHERE d.id IN_LIST($1) ORDER BY ",
                $order
            )
        };
    }
    let sql = match order {
        ClaimOrder::Due => select!("CAST(0 AS BIGINT)", "d.due_at, d.id"),
        // Only a delivery that waited (failed or was requeued) can have been
        // passed; the scan runs from it up the primary key, over what was
        // accepted since.
        ClaimOrder::Accept => select!(
            "CASE WHEN d.last_outcome IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries l
               WHERE l.id > d.id AND l.target = d.target AND l.state = 'done')
             THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END",
            "d.id"
        ),
    };
    let rows = c.fetch(sql, args![ids]).await?;
    rows.iter().map(rows::claimed).collect()
}

// ---- open deliveries -----------------------------------------------------

/// Mark a delivery as fallen back and enqueue its copy; `false` when it was
/// already marked or is no longer open. Two instances scanning at once: the
/// row update decides which one enqueues the copy.
pub(super) async fn fall_back<C: Conn>(
    c: &mut C,
    delivery: DeliveryId,
    fallback: &NewMessage,
    now: i64,
) -> Result<bool> {
    let n = c
        .exec(
            "UPDATE deliveries SET fell_back = TRUE, updated_at = $2
             WHERE id = $1 AND NOT fell_back AND state IN ('pending', 'claimed')",
            args![delivery, now],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    insert_new(c, fallback, now).await?;
    Ok(true)
}

/// Give back every delivery `owner` holds, due now at the latest.
pub(super) async fn release<C: Conn>(c: &mut C, owner: &str, now: i64) -> Result<u64> {
    c.exec(
        "UPDATE deliveries SET state = 'pending', lease_owner = NULL, lease_until = NULL,
         due_at = CASE WHEN due_at < $2 THEN due_at ELSE $2 END, updated_at = $2
         WHERE state = 'claimed' AND lease_owner = $1",
        args![owner, now],
    )
    .await
}

/// Extend the leases `owner` still holds among `ids` to `until` (never
/// shortening one): the heartbeat of sends still running.
pub(super) async fn extend_leases<C: Conn>(
    c: &mut C,
    owner: &str,
    ids: Vec<DeliveryId>,
    until: i64,
) -> Result<u64> {
    c.exec(
        "UPDATE deliveries SET lease_until = $2
         WHERE state = 'claimed' AND lease_owner = $1 AND lease_until < $2 AND id IN_LIST($3)",
        args![owner, until, ids],
    )
    .await
}

pub(super) async fn overdue<C: Conn>(
    c: &mut C,
    channel: &str,
    created_before: i64,
    limit: u32,
) -> Result<Vec<Overdue>> {
    let rows = c
        .fetch(
            "SELECT d.id, d.message_id, m.channel, d.target, m.created_at FROM deliveries d
             JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed') AND NOT d.fell_back AND m.kind <> 'fallback'
               AND m.created_at < $1 AND m.channel = $3 ORDER BY m.created_at, d.id LIMIT $2",
            args![created_before, limit, channel],
        )
        .await?;
    rows.iter().map(rows::overdue).collect()
}

// ---- dead letters --------------------------------------------------------

const DEAD_PAGE: &str = "SELECT d.id, d.message_id, m.channel, d.target, d.recipients, d.dead_code, d.dead_reason,
       d.attempts, m.created_at, d.dead_at, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id
     WHERE d.state = 'dead' AND ($1 IS NULL OR m.channel = $1) AND ($2 IS NULL OR d.dead_code = $2)
       AND ($3 IS NULL OR d.message_id = $3) AND ($4 IS NULL OR d.dead_at >= $4) AND ($5 IS NULL OR d.dead_at < $5)
       AND d.id > $6 ORDER BY d.id LIMIT $7";
const DEAD_IDS: &str = "SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.message_id
     WHERE d.state = 'dead' AND ($1 IS NULL OR m.channel = $1) AND ($2 IS NULL OR d.dead_code = $2)
       AND ($3 IS NULL OR d.message_id = $3) AND ($4 IS NULL OR d.dead_at >= $4) AND ($5 IS NULL OR d.dead_at < $5)
       AND d.id > $6 ORDER BY d.id LIMIT $7";

fn filter_args(f: &DeadFilter, after: i64, limit: i64) -> Vec<Arg> {
    args![
        f.channel.clone(),
        f.code.clone(),
        f.message_id.clone(),
        f.since,
        f.until,
        after,
        limit
    ]
}

pub(super) async fn list_dead<C: Conn>(c: &mut C, f: &DeadFilter) -> Result<Vec<DeadEntry>> {
    let limit = if f.limit == 0 { 100 } else { f.limit as i64 };
    let rows = c
        .fetch(
            DEAD_PAGE,
            filter_args(f, f.after.map_or(0, DeliveryId::get), limit),
        )
        .await?;
    rows.iter().map(rows::dead_entry).collect()
}

pub(super) async fn get_dead<C: Conn>(
    c: &mut C,
    delivery: DeliveryId,
) -> Result<Option<DeadEntry>> {
    let rows = c
        .fetch(
            "SELECT d.id, d.message_id, m.channel, d.target, d.recipients, d.dead_code, d.dead_reason,
               d.attempts, m.created_at, d.dead_at, m.body FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state = 'dead' AND d.id = $1",
            args![delivery],
        )
        .await?;
    rows.first().map(rows::dead_entry).transpose()
}

/// Ids of the dead letters a selector names, ascending.
async fn dead_ids<C: Conn>(c: &mut C, sel: &DeadSelector) -> Result<Vec<DeliveryId>> {
    let rows = match sel {
        DeadSelector::Ids(ids) => {
            c.fetch(
                "SELECT id FROM deliveries WHERE state = 'dead' AND id IN_LIST($1) ORDER BY id",
                args![ids.clone()],
            )
            .await?
        }
        DeadSelector::Filter(f) => c.fetch(DEAD_IDS, filter_args(f, 0, i64::MAX)).await?,
    };
    rows::ids(&rows)
}

/// Put dead letters back in the queue, due now, attempts reset. A member
/// whose digest is replayed too goes back to waiting for the digest; any
/// other becomes an ordinary delivery again.
pub(super) async fn replay<C: Conn>(c: &mut C, sel: &DeadSelector, now: i64) -> Result<u64> {
    let ids = dead_ids(c, sel).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let revived = c
        .exec(
            "UPDATE deliveries SET state = 'merged', dead_code = NULL, dead_reason = NULL, dead_at = NULL,
             updated_at = $2 WHERE state = 'dead' AND merged_into IN_LIST($1)",
            args![ids.clone(), now],
        )
        .await?;
    let replayed = c
        .exec(
            "UPDATE deliveries SET state = 'pending', attempts = 0, due_at = $2, dead_code = NULL,
             dead_reason = NULL, dead_at = NULL, merged_into = NULL, last_outcome = NULL,
             lease_owner = NULL, lease_until = NULL, updated_at = $2
             WHERE state = 'dead' AND id IN_LIST($1)",
            args![ids, now],
        )
        .await?;
    Ok(revived + replayed)
}

/// Delete dead letters and the messages left with no delivery.
pub(super) async fn purge<C: Conn>(c: &mut C, sel: &DeadSelector) -> Result<u64> {
    let ids = dead_ids(c, sel).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let msgs = c
        .fetch(
            "SELECT DISTINCT message_id FROM deliveries WHERE id IN_LIST($1)",
            args![ids.clone()],
        )
        .await?;
    let msgs = msgs
        .iter()
        .map(|r| r.text("message_id"))
        .collect::<Result<Vec<_>>>()?;
    let n = c
        .exec(
            "DELETE FROM deliveries WHERE state = 'dead' AND id IN_LIST($1)",
            args![ids],
        )
        .await?;
    c.exec(
        "DELETE FROM messages WHERE id IN_LIST($1)
         AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.message_id = messages.id)",
        args![msgs],
    )
    .await?;
    Ok(n)
}

// ---- reads ---------------------------------------------------------------

/// A message with every delivery and attempt (run it in one snapshot).
pub(super) async fn message_view<C: Conn>(c: &mut C, id: &str) -> Result<Option<MessageView>> {
    let m = c
        .fetch(
            "SELECT id, channel, kind, body, trace_id, origin, created_at, thread, thread_root, thread_seq,
               labels, source, silence_url FROM messages WHERE id = $1",
            args![id],
        )
        .await?;
    let Some(m) = m.first() else {
        return Ok(None);
    };
    let deliveries = c
        .fetch(
            "SELECT d.id, d.target, d.state, d.recipients, d.attempts, d.parts_done, d.due_at, d.created_at,
               d.updated_at, d.dead_code, d.dead_reason, g.message_id AS merged_into, d.silence_id,
               d.group_id
             FROM deliveries d LEFT JOIN deliveries g ON g.id = d.merged_into
             WHERE d.message_id = $1 ORDER BY d.id",
            args![id],
        )
        .await?;
    let attempts = c
        .fetch(
            "SELECT a.delivery_id, a.started_at, a.finished_at, a.destination, a.part, a.outcome, a.counted,
               a.status, a.code, a.message, a.platform_message_id, a.update_token, a.recipients
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.message_id = $1 ORDER BY a.id",
            args![id],
        )
        .await?;
    let mut view = rows::message_view(m, &deliveries, &attempts)?;
    if let Some(t) = &view.thread {
        view.acks = super::lifecycle::acks(c, &t.root).await?;
    }
    let root = view.thread.as_ref().map_or(&view.id, |t| &t.root).clone();
    view.escalation = super::escalations::of_thread(c, &root).await?;
    Ok(Some(view))
}

// ---- the console's search and activity ----------------------------------

/// The counts a message's state is derived from, summed per message (see
/// [`MessageState::from_deliveries`]; the `HAVING` clause repeats it).
const SEARCH: &str = "SELECT m.id, m.channel, m.body, m.trace_id, m.created_at,
       SUM(CASE WHEN d.state IN ('pending', 'claimed', 'merged') THEN 1 ELSE 0 END) AS n_open,
       SUM(CASE WHEN d.state = 'done' THEN 1 ELSE 0 END) AS n_done,
       SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) AS n_dead,
       SUM(CASE WHEN d.state = 'silenced' THEN 1 ELSE 0 END) AS n_held
     FROM messages m LEFT JOIN deliveries d ON d.message_id = m.id
     WHERE ($1 OR m.channel IN_LIST($2)) AND ($3 IS NULL OR LOWER(m.body) LIKE $3 ESCAPE '!')
       AND ($4 IS NULL OR m.trace_id = $4) AND ($5 IS NULL OR m.created_at >= $5)
       AND ($6 IS NULL OR m.created_at < $6) AND ($9 IS NULL OR LOWER(m.labels) LIKE $9 ESCAPE '!')
     GROUP BY m.id, m.channel, m.body, m.trace_id, m.created_at
     HAVING $8 IS NULL
       OR ($8 = 'pending' AND SUM(CASE WHEN d.state IN ('pending', 'claimed', 'merged') THEN 1 ELSE 0 END) > 0)
       OR (SUM(CASE WHEN d.state IN ('pending', 'claimed', 'merged') THEN 1 ELSE 0 END) = 0 AND (
            ($8 = 'silenced' AND SUM(CASE WHEN d.state = 'silenced' THEN 1 ELSE 0 END) > 0)
         OR (SUM(CASE WHEN d.state = 'silenced' THEN 1 ELSE 0 END) = 0 AND (
              ($8 = 'dead' AND SUM(CASE WHEN d.state = 'done' THEN 1 ELSE 0 END) = 0
                 AND SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) > 0)
           OR ($8 = 'delivered' AND SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) = 0)
           OR ($8 = 'partial' AND SUM(CASE WHEN d.state = 'done' THEN 1 ELSE 0 END) > 0
                 AND SUM(CASE WHEN d.state = 'dead' THEN 1 ELSE 0 END) > 0)))))
     ORDER BY m.created_at DESC, m.id DESC LIMIT $7";

/// `text` as a `LIKE` pattern matching it anywhere, its wildcards escaped
/// (with `!`, the same in both dialects' string literals),
/// ASCII letters lowered (both databases lower the stored side the same way
/// for ASCII; other letters match as written).
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            p.push('!');
        }
        p.push(c.to_ascii_lowercase());
    }
    p.push('%');
    p
}

fn state_text(s: MessageState) -> &'static str {
    match s {
        MessageState::Pending => "pending",
        MessageState::Delivered => "delivered",
        MessageState::Dead => "dead",
        MessageState::Partial => "partial",
        MessageState::Silenced => "silenced",
    }
}

pub(super) async fn search_messages<C: Conn>(
    c: &mut C,
    f: &MessageFilter,
) -> Result<Vec<MessageSummary>> {
    let limit = if f.limit == 0 { 100 } else { f.limit as i64 };
    // The body is stored as JSON, so search the text as JSON writes it
    // (quotes and backslashes escaped).
    let text = f.text.as_deref().filter(|t| !t.is_empty()).map(|t| {
        let json = serde_json::to_string(t).unwrap_or_default();
        contains_pattern(&json[1..json.len().saturating_sub(1).max(1)])
    });
    // Labels are stored as a compact JSON object: `"name":"value"` in it.
    let label = f.label.as_ref().map(|(k, v)| {
        let pair = format!(
            "{}:{}",
            serde_json::to_string(k).unwrap_or_default(),
            serde_json::to_string(v).unwrap_or_default()
        );
        contains_pattern(&pair)
    });
    let rows = c
        .fetch(
            SEARCH,
            args![
                f.channels.is_none(),
                f.channels.clone().unwrap_or_default(),
                text,
                f.trace_id.clone(),
                f.since,
                f.until,
                limit,
                f.state.map(state_text),
                label
            ],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let n = |col: &str| r.int(col).map(|v| v.max(0) as usize);
            let (open, done, dead, held) = (n("n_open")?, n("n_done")?, n("n_dead")?, n("n_held")?);
            let states = std::iter::repeat_n(DeliveryState::Pending, open)
                .chain(std::iter::repeat_n(DeliveryState::Done, done))
                .chain(std::iter::repeat_n(DeliveryState::Dead, dead))
                .chain(std::iter::repeat_n(DeliveryState::Silenced, held))
                .collect::<Vec<_>>();
            Ok(MessageSummary {
                id: r.message_id("id")?,
                channel: r.text("channel")?,
                state: MessageState::from_deliveries(&states),
                created_at: r.int("created_at")?,
                trace_id: r.opt_text("trace_id")?,
                message: rows::parse_message(&r.text("body")?)?,
            })
        })
        .collect()
}

const ACCEPTED_PER_MINUTE: &str = "SELECT created_at / 60000 AS minute, COUNT(*) AS n FROM messages
     WHERE created_at >= $1 AND ($2 OR channel IN_LIST($3)) GROUP BY created_at / 60000";
const DONE_PER_MINUTE: &str = "SELECT d.updated_at / 60000 AS minute, COUNT(*) AS n
     FROM deliveries d JOIN messages m ON m.id = d.message_id
     WHERE d.state = 'done' AND d.updated_at >= $1 AND ($2 OR m.channel IN_LIST($3))
     GROUP BY d.updated_at / 60000";
const FAILED_PER_MINUTE: &str = "SELECT a.finished_at / 60000 AS minute, COUNT(*) AS n
     FROM attempts a JOIN deliveries d ON d.id = a.delivery_id JOIN messages m ON m.id = d.message_id
     WHERE a.outcome <> 'delivered' AND a.finished_at >= $1 AND ($2 OR m.channel IN_LIST($3))
     GROUP BY a.finished_at / 60000";
const DEAD_PER_MINUTE: &str = "SELECT d.dead_at / 60000 AS minute, COUNT(*) AS n
     FROM deliveries d JOIN messages m ON m.id = d.message_id
     WHERE d.state = 'dead' AND d.dead_at >= $1 AND ($2 OR m.channel IN_LIST($3))
     GROUP BY d.dead_at / 60000";

pub(super) async fn activity<C: Conn>(
    c: &mut C,
    since: i64,
    channels: Option<&[String]>,
) -> Result<Vec<ActivityMinute>> {
    let mut by_minute: std::collections::BTreeMap<i64, ActivityMinute> = Default::default();
    for (i, sql) in [
        ACCEPTED_PER_MINUTE,
        DONE_PER_MINUTE,
        FAILED_PER_MINUTE,
        DEAD_PER_MINUTE,
    ]
    .into_iter()
    .enumerate()
    {
        let list = channels.map(<[String]>::to_vec).unwrap_or_default();
        let rows = c.fetch(sql, args![since, channels.is_none(), list]).await?;
        for r in &rows {
            let minute = r.int("minute")? * 60_000;
            let n = r.int("n")?.max(0) as u64;
            let m = by_minute.entry(minute).or_insert(ActivityMinute {
                minute,
                ..Default::default()
            });
            match i {
                0 => m.accepted += n,
                1 => m.delivered += n,
                2 => m.failed += n,
                _ => m.dead += n,
            }
        }
    }
    Ok(by_minute.into_values().collect())
}

/// Queue counts (run it in one snapshot).
pub(super) async fn stats<C: Conn>(c: &mut C, now: i64) -> Result<QueueStats> {
    let rows = c
        .fetch(
            "SELECT target, state, COUNT(*) AS n FROM deliveries GROUP BY target, state
             ORDER BY target COLLATE_BYTES",
            vec![],
        )
        .await?;
    let mut s = rows::tally(&rows)?;
    let n = c
        .fetch("SELECT COUNT(*) AS n FROM messages", vec![])
        .await?;
    s.messages = n.first().map(|r| r.int("n")).transpose()?.unwrap_or(0) as u64;
    // A message folded into a group waits for the group by design (up to
    // its `repeat`), not behind a stuck queue; the group's notification is
    // what counts.
    let oldest = c
        .fetch(
            "SELECT MIN(m.created_at) AS oldest FROM deliveries d JOIN messages m ON m.id = d.message_id
             WHERE d.state IN ('pending', 'claimed', 'merged') AND d.group_id IS NULL",
            vec![],
        )
        .await?;
    let oldest = oldest
        .first()
        .map(|r| r.opt_int("oldest"))
        .transpose()?
        .flatten();
    s.oldest_pending_age_ms = oldest.map(|o| (now - o).max(0));
    Ok(s)
}
