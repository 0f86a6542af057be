//! The SQL of escalations and on-call overrides, shared by both backends.
//!
//! A step fires by a compare-and-set on `next_step`, in the transaction that
//! queues the step's messages (see migration `0006_oncall`): whoever moves it
//! first fired the step, everyone else finds nothing to do.

use super::rows::Cols;
use super::sql::{args, Arg, Conn};
use super::*;

/// Start an escalation for message `id` of thread `root`, unless its thread
/// has an active one already (a thread's later messages do not start another).
pub(super) async fn start<C: Conn>(
    c: &mut C,
    m: &NewMessage,
    root: &str,
    start: &EscalationStart,
    now: i64,
) -> Result<()> {
    c.exec(
        "INSERT INTO escalations (id, root, channel, policy, state, next_step, due_at, started_at, updated_at)
         VALUES ($1, $2, $3, $4, 'active', 0, $5, $6, $6) ON CONFLICT DO NOTHING",
        args![&m.id, root, &m.channel, &start.policy, start.first_due, now],
    )
    .await?;
    Ok(())
}

/// End the active escalation of thread `root` (`state`: acknowledged,
/// resolved); how many ended (0 or 1).
pub(super) async fn stop<C: Conn>(
    c: &mut C,
    root: &str,
    state: EscalationState,
    by: &str,
    now: i64,
) -> Result<u64> {
    c.exec(
        "UPDATE escalations SET state = $2, ended_at = $3, ended_by = $4, updated_at = $3
         WHERE root = $1 AND state = 'active'",
        args![root, state.as_str(), now, by],
    )
    .await
}

/// The columns [`escalation`] reads.
macro_rules! cols {
    () => {
        "id, root, channel, policy, state, next_step, due_at, started_at, ended_at, ended_by"
    };
}

fn escalation(r: &impl Cols) -> Result<Escalation> {
    let state = r.text("state")?;
    Ok(Escalation {
        id: r.message_id("id")?,
        root: r.message_id("root")?,
        channel: r.text("channel")?,
        policy: r.text("policy")?,
        state: EscalationState::parse(&state)?,
        next_step: r.int("next_step")?,
        due_at: r.int("due_at")?,
        started_at: r.int("started_at")?,
        ended_at: r.opt_int("ended_at")?,
        ended_by: r.opt_text("ended_by")?,
        steps: Vec::new(),
    })
}

/// Active escalations whose next step is due at `now`, earliest first.
pub(super) async fn due<C: Conn>(c: &mut C, now: i64, limit: u32) -> Result<Vec<Escalation>> {
    const SQL: &str = concat!(
        "SELECT ",
        cols!(),
        " FROM escalations WHERE state = 'active' AND due_at <= $1 ORDER BY due_at, id LIMIT $2"
    );
    let rows = c.fetch(SQL, args![now, limit]).await?;
    rows.iter().map(escalation).collect()
}

/// Fire step `f.step` of escalation `f.id` if nobody has: record it, queue
/// its messages and move on to the next step (or complete). `false` when
/// the step was fired already or the escalation ended.
pub(super) async fn fire<C: Conn>(c: &mut C, f: &FireStep, now: i64) -> Result<bool> {
    let moved = match f.next_due {
        Some(due) => {
            c.exec(
                "UPDATE escalations SET next_step = next_step + 1, due_at = $3, updated_at = $4
                 WHERE id = $1 AND next_step = $2 AND state = 'active'",
                args![&f.id, f.step, due, now],
            )
            .await?
        }
        None => {
            c.exec(
                "UPDATE escalations SET next_step = next_step + 1, state = 'completed', ended_at = $3,
                   ended_by = 'policy', updated_at = $3
                 WHERE id = $1 AND next_step = $2 AND state = 'active'",
                args![&f.id, f.step, now],
            )
            .await?
        }
    };
    if moved == 0 {
        return Ok(false);
    }
    let detail = serde_json::to_string(&f.record)
        .map_err(|e| StoreError::Invalid(format!("escalation step: {e}")))?;
    c.exec(
        "INSERT INTO escalation_steps (escalation_id, step, fired_at, detail) VALUES ($1, $2, $3, $4)",
        args![&f.id, f.step, now, detail],
    )
    .await?;
    for m in &f.messages {
        super::queue::insert_new(c, m, now).await?;
    }
    Ok(true)
}

/// The escalation of thread `root` (the latest), with its steps.
pub(super) async fn of_thread<C: Conn>(c: &mut C, root: &str) -> Result<Option<Escalation>> {
    const SQL: &str = concat!(
        "SELECT ",
        cols!(),
        " FROM escalations WHERE root = $1 ORDER BY started_at DESC, id DESC LIMIT 1"
    );
    let rows = c.fetch(SQL, args![root]).await?;
    let Some(r) = rows.first() else {
        return Ok(None);
    };
    let mut e = escalation(r)?;
    let steps = c
        .fetch(
            "SELECT step, fired_at, detail FROM escalation_steps WHERE escalation_id = $1 ORDER BY step",
            args![&e.id],
        )
        .await?;
    for s in &steps {
        let d = s.text("detail")?;
        e.steps.push(FiredStep {
            step: s.int("step")?,
            fired_at: s.int("fired_at")?,
            record: serde_json::from_str(&d)
                .map_err(|_| StoreError::corrupt("escalation_steps.detail", d))?,
        });
    }
    Ok(Some(e))
}

/// Create an override.
pub(super) async fn put_override<C: Conn>(c: &mut C, o: &Override) -> Result<()> {
    c.exec(
        "INSERT INTO oncall_overrides (id, schedule, person, starts_at, ends_at, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            &o.id,
            &o.schedule,
            &o.person,
            o.starts_at,
            o.ends_at,
            &o.created_by,
            o.created_at
        ],
    )
    .await?;
    Ok(())
}

/// Overrides that have not ended by `now` (of one schedule, or all).
pub(super) async fn overrides<C: Conn>(
    c: &mut C,
    schedule: Option<&str>,
    now: i64,
) -> Result<Vec<Override>> {
    let rows = c
        .fetch(
            "SELECT id, schedule, person, starts_at, ends_at, created_by, created_at FROM oncall_overrides
             WHERE ends_at > $1 AND ($2 IS NULL OR schedule = $2) ORDER BY starts_at, created_at, id",
            args![now, schedule],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Override {
                id: r.text("id")?,
                schedule: r.text("schedule")?,
                person: r.text("person")?,
                starts_at: r.int("starts_at")?,
                ends_at: r.int("ends_at")?,
                created_by: r.text("created_by")?,
                created_at: r.int("created_at")?,
            })
        })
        .collect()
}

/// Delete override `id`; whether it existed.
pub(super) async fn delete_override<C: Conn>(c: &mut C, id: &str) -> Result<bool> {
    Ok(
        c.exec("DELETE FROM oncall_overrides WHERE id = $1", args![id])
            .await?
            > 0,
    )
}
