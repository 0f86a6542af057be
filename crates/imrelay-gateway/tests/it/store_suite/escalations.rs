//! Escalation cases of the storage suite: a step fires once (a second firer
//! of the same step finds nothing), atomically with the messages it queues
//! (a failed insert leaves the step unfired, to be fired again), and an
//! acknowledgement or a resolve ends it; a thread starts one escalation.

use imrelay_gateway::store::*;

use super::{msg, Ctx};

const MIN: i64 = 60_000;

fn escalated(text: &str, due: i64) -> NewMessage {
    let mut m = msg("alerts", text, &["alerts/robot"]);
    m.escalation = Some(EscalationStart {
        policy: "critical".into(),
        first_due: due,
    });
    m
}

fn step(e: &Escalation, messages: Vec<NewMessage>, next_due: Option<i64>) -> FireStep {
    FireStep {
        id: e.id.clone(),
        step: e.next_step,
        record: StepRecord {
            policy_step: e.next_step as usize,
            round: 0,
            notified: messages
                .iter()
                .map(|m| Notified {
                    via: "channel:pager".into(),
                    people: vec!["zhangsan".into()],
                    message_id: m.id.clone(),
                })
                .collect(),
            notes: Vec::new(),
        },
        messages,
        next_due,
    }
}

pub async fn escalation_steps_fire_once_and_atomically(ctx: &Ctx) {
    let s = ctx.s();
    let m = escalated("db down", ctx.now() + 5 * MIN);
    let id = m.id.clone();
    s.enqueue(vec![m]).await.unwrap();
    assert!(
        s.due_escalations(10).await.unwrap().is_empty(),
        "not due yet"
    );
    ctx.advance(5 * MIN);
    let due = s.due_escalations(10).await.unwrap();
    assert_eq!(due.len(), 1);
    let e = &due[0];
    assert_eq!((e.id.as_str(), e.next_step), (id.as_str(), 0));

    // A step whose message cannot be inserted (its id exists) fires nothing.
    let mut clash = msg("pager", "page", &["pager/robot"]);
    clash.id = id.clone();
    assert!(s
        .fire_escalation(step(e, vec![clash], Some(ctx.now() + MIN)))
        .await
        .is_err());
    let again = s.due_escalations(10).await.unwrap();
    assert_eq!(again[0].next_step, 0, "the failed step is still to fire");
    assert!(s
        .get_message(&id)
        .await
        .unwrap()
        .unwrap()
        .escalation
        .unwrap()
        .steps
        .is_empty());

    // Two firers of the same step: one fires it (and its message), one finds nothing.
    let page = msg("pager", "page", &["pager/robot"]);
    let first = s.fire_escalation(step(e, vec![page], Some(ctx.now() + 10 * MIN)));
    let second = s.fire_escalation(step(
        e,
        vec![msg("pager", "page", &["pager/robot"])],
        Some(ctx.now() + 10 * MIN),
    ));
    let (a, b) = tokio::join!(first, second);
    assert_eq!(
        [a.unwrap(), b.unwrap()].iter().filter(|f| **f).count(),
        1,
        "exactly one firer wins"
    );
    let view = s.get_message(&id).await.unwrap().unwrap();
    let esc = view.escalation.unwrap();
    assert_eq!((esc.next_step, esc.steps.len()), (1, 1));
    let queued: Vec<_> = esc.steps[0]
        .record
        .notified
        .iter()
        .map(|n| n.message_id.clone())
        .collect();
    assert_eq!(queued.len(), 1);
    assert!(
        s.get_message(&queued[0]).await.unwrap().is_some(),
        "its message is queued"
    );
    assert!(s.due_escalations(10).await.unwrap().is_empty());

    // Acknowledged: it ends, and nothing is due any more.
    ctx.advance(20 * MIN);
    let ack = Ack {
        action: AckAction::Ack,
        user_id: "ou_zhang".into(),
        user_name: None,
        source: "api".into(),
        detail: None,
        at: ctx.now(),
    };
    s.acknowledge(&id, ack, None).await.unwrap();
    assert!(s.due_escalations(10).await.unwrap().is_empty());
    let esc = s
        .get_message(&id)
        .await
        .unwrap()
        .unwrap()
        .escalation
        .unwrap();
    assert_eq!(esc.state, EscalationState::Acknowledged);
    assert_eq!(esc.ended_by.as_deref(), Some("ou_zhang"));
    let late = Escalation {
        next_step: 1,
        ..esc
    };
    assert!(!s
        .fire_escalation(step(&late, Vec::new(), None))
        .await
        .unwrap());
}

pub async fn a_thread_escalates_once_and_a_resolve_ends_it(ctx: &Ctx) {
    let s = ctx.s();
    let first = escalated("db down", ctx.now() + MIN).with_thread("db-1");
    let root = first.id.clone();
    s.enqueue(vec![first]).await.unwrap();
    // The thread's later firing message starts no second escalation.
    s.enqueue(vec![
        escalated("db still down", ctx.now() + MIN).with_thread("db-1")
    ])
    .await
    .unwrap();
    ctx.advance(MIN);
    let due = s.due_escalations(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].root, root);
    let mut resolved = msg("alerts", "db back", &["alerts/robot"]).with_thread("db-1");
    resolved.resolved = true;
    s.enqueue(vec![resolved]).await.unwrap();
    assert!(s.due_escalations(10).await.unwrap().is_empty());
    let esc = s
        .get_message(&root)
        .await
        .unwrap()
        .unwrap()
        .escalation
        .unwrap();
    assert_eq!(esc.state, EscalationState::Resolved);
}

pub async fn oncall_overrides_are_kept_until_they_end(ctx: &Ctx) {
    let s = ctx.s();
    let o = |id: &str, sched: &str, ends: i64| Override {
        id: id.into(),
        schedule: sched.into(),
        person: "lisi".into(),
        starts_at: ctx.now(),
        ends_at: ends,
        created_by: "admin".into(),
        created_at: ctx.now(),
    };
    s.put_override(o("a", "dba", ctx.now() + 60 * MIN))
        .await
        .unwrap();
    s.put_override(o("b", "web", ctx.now() + 10 * MIN))
        .await
        .unwrap();
    assert_eq!(s.overrides(None).await.unwrap().len(), 2);
    assert_eq!(s.overrides(Some("dba")).await.unwrap()[0].id, "a");
    ctx.advance(10 * MIN);
    let left: Vec<_> = s
        .overrides(None)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.id)
        .collect();
    assert_eq!(left, ["a"], "an ended override is not in force");
    assert!(s.delete_override("a").await.unwrap());
    assert!(!s.delete_override("a").await.unwrap());
    assert!(s.overrides(None).await.unwrap().is_empty());
}
