//! The delivery state machine, planned once for both backends.
//!
//! Every transition of a claimed delivery (progress, finish with each
//! outcome, fold into a digest) is decided here by pure functions: given the
//! row as read (a [`Lease`]) and the request, they return what to write (a
//! [`Plan`]) or why not ([`StoreError::LeaseLost`], [`StoreError::Invalid`]).
//! The backends read the row, call the planner and execute the plan
//! ([`super::queue`]); only the SQL dialect is theirs.
//!
//! Transitions over sets of rows (claim, release, replay, purge, fall back)
//! are not planned row by row here: each is one statement over many rows,
//! written once in [`super::queue`] (the claims once per dialect), and
//! planning them per row would cost a round trip per row. The store suite
//! checks them on both backends.
//!
//! ```text
//! pending --claim--> claimed --Done/Split--> done
//!    ^                  |  \--Retry/Requeue--> pending
//!    |                  |   \--Dead--> dead --replay--> pending
//!    +---release--------+    \--coalesce--> merged --digest settles--> done | dead
//! ```

use super::*;

/// The columns of a delivery a post-claim transition reads (locked on
/// PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lease {
    pub state: DeliveryState,
    pub owner: Option<String>,
    pub lease_until: Option<i64>,
    pub message_id: MessageId,
    pub target: Target,
}

/// The fence: `owner` still holds `delivery`.
///
/// A delivery is held while it is `claimed` by `owner`. An expired lease
/// that nobody re-claimed is still held: no one else can have sent the
/// delivery, so the result is kept rather than sent again. Once another
/// claimer takes it (new owner), or it was released or finished (not
/// `claimed`), the result is refused with [`StoreError::LeaseLost`].
pub(super) fn fence<'a>(
    row: Option<&'a Lease>,
    delivery: DeliveryId,
    owner: &str,
) -> Result<&'a Lease> {
    match row {
        Some(l) if l.state == DeliveryState::Claimed && l.owner.as_deref() == Some(owner) => Ok(l),
        _ => Err(StoreError::LeaseLost(delivery)),
    }
}

/// The write to the delivery row itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Update {
    pub state: DeliveryState,
    /// Added to the failed-attempt count.
    pub add_attempts: i64,
    /// The next due time; `None` keeps the stored one.
    pub due_at: Option<i64>,
    pub parts_done: u32,
    /// `Some`: the claim is kept, leased until then; `None`: the lease ends.
    pub lease_until: Option<i64>,
    /// `None` keeps the stored one.
    pub last_outcome: Option<AttemptOutcome>,
    /// Set for `dead` (with `dead_at` = `at`), cleared otherwise.
    pub dead: Option<DeadReason>,
    pub at: i64,
}

/// A per-recipient delivery split off a partly failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ChildRow {
    pub recipients: Vec<String>,
    pub state: DeliveryState,
    pub attempts: i64,
    pub parts_done: u32,
    pub due_at: i64,
    pub last_outcome: Option<AttemptOutcome>,
    pub dead: Option<DeadReason>,
    pub at: i64,
}

/// How deliveries merged into a digest settle with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Settle {
    Done,
    Dead(DeadReason),
}

impl Settle {
    pub fn state(&self) -> DeliveryState {
        match self {
            Settle::Done => DeliveryState::Done,
            Settle::Dead(_) => DeliveryState::Dead,
        }
    }
}

/// What a transition writes, in order: the attempts, the row, the members
/// merged into it, the split-off children, the fallback copy.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    pub delivery: DeliveryId,
    pub message_id: MessageId,
    pub target: Target,
    pub attempts: Vec<AttemptRecord>,
    pub update: Update,
    pub members: Option<Settle>,
    pub children: Vec<ChildRow>,
    pub fallback: Option<Box<NewMessage>>,
    /// New work became due (children, a fallback copy): wake dispatchers.
    pub wakes: bool,
}

fn last_outcome(attempts: &[AttemptRecord]) -> Option<AttemptOutcome> {
    attempts.last().map(|a| a.outcome)
}

/// Record progress of a claim and extend its lease, keeping it claimed.
pub(super) fn progress(
    row: Option<&Lease>,
    delivery: DeliveryId,
    owner: &str,
    attempts: Vec<AttemptRecord>,
    parts_done: u32,
    lease_until: i64,
    now: i64,
) -> Result<Plan> {
    let l = fence(row, delivery, owner)?;
    // Failures retried within the claim count like those retried from the queue.
    let counted = attempts.iter().filter(|a| a.counted).count() as i64;
    Ok(Plan {
        delivery,
        message_id: l.message_id.clone(),
        target: l.target.clone(),
        update: Update {
            state: DeliveryState::Claimed,
            add_attempts: counted,
            due_at: None,
            parts_done,
            lease_until: Some(lease_until),
            last_outcome: last_outcome(&attempts),
            dead: None,
            at: now,
        },
        attempts,
        members: None,
        children: Vec::new(),
        fallback: None,
        wakes: false,
    })
}

/// End a claim.
pub(super) fn finish(
    row: Option<&Lease>,
    delivery: DeliveryId,
    owner: &str,
    f: Finish,
    now: i64,
) -> Result<Plan> {
    let l = fence(row, delivery, owner)?;
    let last = last_outcome(&f.attempts);
    let base = Update {
        state: DeliveryState::Done,
        add_attempts: 0,
        due_at: None,
        parts_done: f.parts_done,
        lease_until: None,
        last_outcome: last,
        dead: None,
        at: now,
    };
    let mut plan = Plan {
        delivery,
        message_id: l.message_id.clone(),
        target: l.target.clone(),
        attempts: Vec::new(),
        update: base.clone(),
        members: None,
        children: Vec::new(),
        fallback: None,
        wakes: false,
    };
    match f.action {
        FinishAction::Done => plan.members = Some(Settle::Done),
        FinishAction::Retry { at } => {
            plan.update = Update {
                state: DeliveryState::Pending,
                add_attempts: 1,
                due_at: Some(at),
                ..base
            };
        }
        // Not an attempt: the stored outcome stays what the last counted
        // request said.
        FinishAction::Requeue { at } => {
            plan.update = Update {
                state: DeliveryState::Pending,
                due_at: Some(at),
                last_outcome: None,
                ..base
            };
        }
        FinishAction::Dead { reason, fallback } => {
            let counted = f.attempts.iter().any(|a| a.counted);
            plan.members = Some(Settle::Dead(merged_into_dead(&l.message_id, &reason)));
            plan.update = Update {
                state: DeliveryState::Dead,
                add_attempts: counted as i64,
                dead: Some(reason),
                ..base
            };
            plan.wakes = fallback.is_some();
            plan.fallback = fallback;
        }
        FinishAction::Split { children } => {
            plan.wakes = true;
            plan.children = children
                .into_iter()
                .map(|ch| child_row(ch, last, now))
                .collect();
        }
    }
    plan.attempts = f.attempts;
    Ok(plan)
}

/// Why the deliveries merged into dead-lettered digest `digest` die with it.
fn merged_into_dead(digest: &MessageId, reason: &DeadReason) -> DeadReason {
    DeadReason {
        code: reason.code.clone(),
        reason: format!(
            "the digest {digest} it was merged into was dead-lettered: {}",
            reason.reason
        ),
    }
}

/// The row of a per-recipient child split off at `now`: a child to retry
/// counts the failed attempt, one dead at once is dead-lettered now.
fn child_row(ch: ChildDelivery, last: Option<AttemptOutcome>, now: i64) -> ChildRow {
    let (state, due_at, attempts, dead) = match ch.state {
        ChildState::Pending { due_at } => (DeliveryState::Pending, due_at, 0, None),
        ChildState::Retry { due_at } => (DeliveryState::Pending, due_at, 1, None),
        ChildState::Dead(r) => (DeliveryState::Dead, now, 1, Some(r)),
    };
    ChildRow {
        recipients: ch.recipients,
        state,
        attempts,
        parts_done: ch.parts_done,
        due_at,
        last_outcome: last,
        dead,
        at: now,
    }
}

/// Check a digest before its members are read: one target, some members.
pub(super) fn check_digest(members: &[DeliveryId], digest: &NewMessage) -> Result<()> {
    if digest.targets.len() != 1 {
        return Err(StoreError::Invalid(
            "a digest needs exactly one target".into(),
        ));
    }
    if members.is_empty() {
        return Err(StoreError::Invalid("a digest needs members".into()));
    }
    Ok(())
}

/// A member may be folded into the digest: `owner` holds it and it goes to
/// the digest's target.
pub(super) fn merge_member(
    row: Option<&Lease>,
    member: DeliveryId,
    owner: &str,
    digest: &NewMessage,
) -> Result<()> {
    let l = fence(row, member, owner)?;
    if digest.targets.first() != Some(&l.target) {
        return Err(StoreError::Invalid(format!(
            "delivery {member} goes to `{}`, not the digest's target",
            l.target
        )));
    }
    Ok(())
}

/// The first step of enqueueing one message, given the message an
/// idempotency key names (its id and body hash) if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Admit {
    /// Answer without writing.
    Answer(EnqueueOutcome),
    /// Insert it.
    Insert,
}

/// The answer when an idempotency key exists already: the same body is the
/// same message, another body a conflict.
pub(super) fn existing(
    id: MessageId,
    stored_hash: Option<&str>,
    body_hash: &str,
) -> EnqueueOutcome {
    if stored_hash == Some(body_hash) {
        EnqueueOutcome::Existing { id }
    } else {
        EnqueueOutcome::Conflict { id }
    }
}

pub(super) fn admit(m: &NewMessage, by_key: Option<(MessageId, Option<String>)>) -> Admit {
    if let (Some(i), Some((id, hash))) = (&m.idempotency, by_key) {
        return Admit::Answer(existing(id, hash.as_deref(), &i.body_hash));
    }
    if m.targets.is_empty() {
        return Admit::Answer(EnqueueOutcome::Rejected {
            reason: format!("channel `{}` has no destination", m.channel),
        });
    }
    Admit::Insert
}

/// The answer when the insert wrote nothing: the key was committed by
/// someone else meanwhile (`by_key`, looked up again), else the id exists.
pub(super) fn not_inserted(
    m: &NewMessage,
    by_key: Option<(MessageId, Option<String>)>,
) -> EnqueueOutcome {
    match (&m.idempotency, by_key) {
        (Some(i), Some((id, hash))) => existing(id, hash.as_deref(), &i.body_hash),
        _ => duplicate_id(&m.id),
    }
}

pub(super) fn duplicate_id(id: &MessageId) -> EnqueueOutcome {
    EnqueueOutcome::Rejected {
        reason: format!("message id `{id}` already exists"),
    }
}

#[cfg(test)]
mod tests;
