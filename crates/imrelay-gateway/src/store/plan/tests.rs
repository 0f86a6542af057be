//! The planner's transitions, table-driven, without a database.

use super::*;
use DeliveryState::*;

const NOW: i64 = 1_000_000;
const D1: DeliveryId = DeliveryId::new(1);
const D7: DeliveryId = DeliveryId::new(7);

fn lease(state: DeliveryState, owner: Option<&str>, until: Option<i64>) -> Lease {
    Lease {
        state,
        owner: owner.map(str::to_string),
        lease_until: until,
        message_id: "m1".into(),
        target: "ch/a".parse().unwrap(),
    }
}

fn held() -> Lease {
    lease(Claimed, Some("me"), Some(NOW + 30_000))
}

fn att(outcome: AttemptOutcome, counted: bool) -> AttemptRecord {
    AttemptRecord {
        started_at: NOW - 10,
        finished_at: NOW - 5,
        destination: "ch/a".into(),
        part: 0,
        outcome,
        counted,
        status: None,
        code: None,
        message: String::new(),
        platform_message_id: None,
        update_token: None,
        recipients: Vec::new(),
    }
}

fn fin(action: FinishAction, attempts: Vec<AttemptRecord>) -> Finish {
    Finish {
        attempts,
        parts_done: 2,
        action,
    }
}

fn reason(code: &str, why: &str) -> DeadReason {
    DeadReason {
        code: Some(code.into()),
        reason: why.into(),
    }
}

#[test]
fn fence_table() {
    let cases: &[(&str, Option<Lease>, bool)] = &[
        ("held", Some(held()), true),
        // Expired, not re-claimed: nobody else can have sent it.
        (
            "expired, still ours",
            Some(lease(Claimed, Some("me"), Some(NOW - 1))),
            true,
        ),
        (
            "re-claimed by another",
            Some(lease(Claimed, Some("other"), Some(NOW + 1))),
            false,
        ),
        ("released", Some(lease(Pending, None, None)), false),
        ("already finished", Some(lease(Done, None, None)), false),
        ("dead-lettered", Some(lease(Dead, None, None)), false),
        (
            "merged into a digest",
            Some(lease(Merged, None, None)),
            false,
        ),
        (
            "claimed without owner",
            Some(lease(Claimed, None, None)),
            false,
        ),
        ("row gone (purged)", None, false),
    ];
    for (name, row, ok) in cases {
        let r = fence(row.as_ref(), D7, "me");
        match (ok, r) {
            (true, Ok(l)) => assert_eq!(l.target, "ch/a", "{name}"),
            (false, Err(StoreError::LeaseLost(D7))) => {}
            (_, r) => panic!("{name}: {r:?}"),
        }
    }
}

#[test]
fn every_transition_is_fenced() {
    let stolen = lease(Claimed, Some("other"), Some(NOW));
    let actions = [
        FinishAction::Done,
        FinishAction::Retry { at: NOW },
        FinishAction::Requeue { at: NOW },
        FinishAction::Dead {
            reason: reason("x", "y"),
            fallback: None,
        },
        FinishAction::Split { children: vec![] },
    ];
    for a in actions {
        let r = finish(Some(&stolen), D7, "me", fin(a.clone(), vec![]), NOW);
        assert!(matches!(r, Err(StoreError::LeaseLost(D7))), "{a:?}: {r:?}");
    }
    assert!(matches!(
        progress(Some(&stolen), D7, "me", vec![], 0, NOW, NOW),
        Err(StoreError::LeaseLost(D7))
    ));
    let digest = NewMessage::new(
        "c",
        imrelay_sdk::Message::text("d"),
        vec!["ch/a".parse().unwrap()],
    );
    assert!(matches!(
        merge_member(Some(&stolen), D7, "me", &digest),
        Err(StoreError::LeaseLost(D7))
    ));
}

/// (name, action, attempts) -> (state, +attempts, due_at, last_outcome,
/// dead, members settle, children, wakes)
#[test]
fn finish_table() {
    use AttemptOutcome as O;
    let dead_r = reason("40001", "bad token");
    let fb = Box::new(NewMessage::new(
        "fb",
        imrelay_sdk::Message::text("x"),
        vec!["fb/a".parse().unwrap()],
    ));
    type Row = (
        &'static str,
        FinishAction,
        Vec<AttemptRecord>,
        DeliveryState,
        i64,
        Option<i64>,
        Option<AttemptOutcome>,
        Option<DeadReason>,
        Option<Settle>,
        bool,
    );
    let member_dead = Settle::Dead(DeadReason {
        code: Some("40001".into()),
        reason: "the digest m1 it was merged into was dead-lettered: bad token".into(),
    });
    let table: Vec<Row> = vec![
        (
            "done",
            FinishAction::Done,
            vec![att(O::Delivered, false)],
            Done,
            0,
            None,
            Some(O::Delivered),
            None,
            Some(Settle::Done),
            false,
        ),
        (
            "done, no request made",
            FinishAction::Done,
            vec![],
            Done,
            0,
            None,
            None,
            None,
            Some(Settle::Done),
            false,
        ),
        (
            "retry counts",
            FinishAction::Retry { at: NOW + 500 },
            vec![att(O::Retry, true)],
            Pending,
            1,
            Some(NOW + 500),
            Some(O::Retry),
            None,
            None,
            false,
        ),
        (
            "requeue does not count nor record",
            FinishAction::Requeue { at: NOW + 9 },
            vec![att(O::RateLimited, false)],
            Pending,
            0,
            Some(NOW + 9),
            None,
            None,
            None,
            false,
        ),
        (
            "dead after a counted failure",
            FinishAction::Dead {
                reason: dead_r.clone(),
                fallback: None,
            },
            vec![att(O::Retry, true), att(O::Permanent, true)],
            Dead,
            1,
            None,
            Some(O::Permanent),
            Some(dead_r.clone()),
            Some(member_dead.clone()),
            false,
        ),
        (
            "dead without a counted failure (max age)",
            FinishAction::Dead {
                reason: dead_r.clone(),
                fallback: None,
            },
            vec![att(O::RateLimited, false)],
            Dead,
            0,
            None,
            Some(O::RateLimited),
            Some(dead_r.clone()),
            Some(member_dead.clone()),
            false,
        ),
        (
            "dead with a fallback wakes",
            FinishAction::Dead {
                reason: dead_r.clone(),
                fallback: Some(fb.clone()),
            },
            vec![],
            Dead,
            0,
            None,
            None,
            Some(dead_r.clone()),
            Some(member_dead.clone()),
            true,
        ),
        (
            "split is done and wakes",
            FinishAction::Split { children: vec![] },
            vec![att(O::Delivered, false)],
            Done,
            0,
            None,
            Some(O::Delivered),
            None,
            None,
            true,
        ),
    ];
    for (name, action, attempts, state, add, due, last, dead, members, wakes) in table {
        let want_fb = matches!(
            &action,
            FinishAction::Dead {
                fallback: Some(_),
                ..
            }
        );
        let p = finish(Some(&held()), D7, "me", fin(action, attempts.clone()), NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let u = &p.update;
        assert_eq!(u.state, state, "{name}");
        assert_eq!(u.add_attempts, add, "{name}");
        assert_eq!(u.due_at, due, "{name}");
        assert_eq!(u.last_outcome, last, "{name}");
        assert_eq!(u.dead, dead, "{name}");
        assert_eq!(u.parts_done, 2, "{name}");
        assert_eq!(u.lease_until, None, "{name}: the lease ends");
        assert_eq!(u.at, NOW, "{name}");
        assert_eq!(p.members, members, "{name}");
        assert_eq!(p.wakes, wakes, "{name}");
        assert_eq!(p.attempts, attempts, "{name}: every attempt is recorded");
        assert_eq!(p.fallback.is_some(), want_fb, "{name}");
        assert_eq!(
            (p.delivery, p.message_id.as_str(), p.target.as_str()),
            (D7, "m1", "ch/a")
        );
    }
}

#[test]
fn split_children() {
    let children = vec![
        ChildDelivery {
            recipients: vec!["u1".into()],
            parts_done: 1,
            state: ChildState::Pending { due_at: NOW + 1 },
        },
        ChildDelivery {
            recipients: vec!["u2".into(), "u3".into()],
            parts_done: 0,
            state: ChildState::Retry { due_at: NOW + 2 },
        },
        ChildDelivery {
            recipients: vec!["u4".into()],
            parts_done: 0,
            state: ChildState::Dead(reason("43004", "not a member")),
        },
    ];
    let p = finish(
        Some(&held()),
        D7,
        "me",
        fin(
            FinishAction::Split { children },
            vec![att(AttemptOutcome::Retry, true)],
        ),
        NOW,
    )
    .unwrap();
    let got: Vec<_> = p
        .children
        .iter()
        .map(|c| {
            (
                c.recipients.len(),
                c.state,
                c.attempts,
                c.parts_done,
                c.due_at,
                c.dead.is_some(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (1, Pending, 0, 1, NOW + 1, false),
            (2, Pending, 1, 0, NOW + 2, false),
            (1, Dead, 1, 0, NOW, true),
        ]
    );
    assert!(p
        .children
        .iter()
        .all(|c| c.last_outcome == Some(AttemptOutcome::Retry) && c.at == NOW));
    assert_eq!(p.update.state, Done);
}

#[test]
fn progress_keeps_the_claim_and_extends_the_lease() {
    let p = progress(
        Some(&held()),
        D7,
        "me",
        vec![att(AttemptOutcome::Delivered, false)],
        3,
        NOW + 60_000,
        NOW,
    )
    .unwrap();
    assert_eq!(
        p.update,
        Update {
            state: Claimed,
            add_attempts: 0,
            due_at: None,
            parts_done: 3,
            lease_until: Some(NOW + 60_000),
            last_outcome: Some(AttemptOutcome::Delivered),
            dead: None,
            at: NOW,
        }
    );
    assert_eq!(p.attempts.len(), 1);
    assert!(p.members.is_none() && p.children.is_empty() && !p.wakes);
    // No attempt: the stored outcome is kept.
    let p = progress(Some(&held()), D7, "me", vec![], 3, NOW + 1, NOW).unwrap();
    assert_eq!(p.update.last_outcome, None);
}

#[test]
fn coalesce_checks() {
    let msg = || imrelay_sdk::Message::text("d");
    let digest = NewMessage::new("c", msg(), vec!["ch/a".parse().unwrap()]);
    assert!(check_digest(&[D1], &digest).is_ok());
    assert!(matches!(
        check_digest(&[], &digest),
        Err(StoreError::Invalid(_))
    ));
    let two = NewMessage::new(
        "c",
        msg(),
        vec!["ch/a".parse().unwrap(), "ch/b".parse().unwrap()],
    );
    assert!(matches!(
        check_digest(&[D1], &two),
        Err(StoreError::Invalid(_))
    ));
    assert!(merge_member(Some(&held()), D1, "me", &digest).is_ok());
    let elsewhere = NewMessage::new("c", msg(), vec!["ch/b".parse().unwrap()]);
    let e = merge_member(Some(&held()), D1, "me", &elsewhere).unwrap_err();
    assert!(e.to_string().contains("goes to `ch/a`"), "{e}");
    assert!(matches!(
        merge_member(Some(&lease(Done, None, None)), D1, "me", &digest),
        Err(StoreError::LeaseLost(D1))
    ));
}

#[test]
fn enqueue_table() {
    let msg = imrelay_sdk::Message::text("hi");
    let plain = NewMessage::new("c", msg.clone(), vec!["c/a".parse().unwrap()]);
    let keyed = plain.clone().with_idempotency(Idempotency {
        scope: "k".into(),
        key: "x".into(),
        body_hash: "h1".into(),
    });
    let no_target = NewMessage::new("c", msg, vec![]);
    let found = |h: &str| Some((MessageId::from("old"), Some(h.to_string())));
    assert_eq!(admit(&plain, None), Admit::Insert);
    assert_eq!(admit(&keyed, None), Admit::Insert);
    assert_eq!(
        admit(&keyed, found("h1")),
        Admit::Answer(EnqueueOutcome::Existing { id: "old".into() })
    );
    assert_eq!(
        admit(&keyed, found("h2")),
        Admit::Answer(EnqueueOutcome::Conflict { id: "old".into() })
    );
    assert!(matches!(
        admit(&no_target, None),
        Admit::Answer(EnqueueOutcome::Rejected { reason }) if reason.contains("no destination")
    ));
    // The insert wrote nothing: a racing key wins, else the id existed.
    assert_eq!(
        not_inserted(&keyed, found("h1")),
        EnqueueOutcome::Existing { id: "old".into() }
    );
    assert!(matches!(
        not_inserted(&keyed, None),
        EnqueueOutcome::Rejected { reason } if reason.contains("already exists")
    ));
    assert!(matches!(
        not_inserted(&plain, found("h1")),
        EnqueueOutcome::Rejected { .. }
    ));
}
