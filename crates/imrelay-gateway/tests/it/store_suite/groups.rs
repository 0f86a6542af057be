//! Message-group cases of the storage suite: folded messages are stored
//! merged with their group and counted; a group is due when its wait ends;
//! sending it is a compare-and-set on the version read (a fold in between or
//! a second sender finds nothing to do), and the folded deliveries settle
//! with the notification.

use imrelay_gateway::store::*;

use super::{claim_req, msg, Ctx};

fn grouped(text: &str) -> NewMessage {
    let mut m = msg("ops", text, &["ops/x"]);
    m.labels = [("host".to_string(), "db-1".to_string())].into();
    m.group = Some(GroupSpec {
        id: "g-db-1".into(),
        labels: m.labels.clone(),
        wait_ms: 30_000,
        interval_ms: 300_000,
        repeat_ms: 14_400_000,
        content_hash: "h".into(),
    });
    m
}

fn notification(g: &DueGroup) -> SendGroup {
    SendGroup {
        id: g.id.clone(),
        version: g.version,
        message: msg("ops", &format!("×{}", g.pending), &[]),
    }
}

pub async fn a_group_is_sent_once_and_its_members_settle_with_it(ctx: &Ctx) {
    let s = ctx.s();
    let out = s
        .enqueue((0..3).map(|i| grouped(&format!("m{i}"))).collect())
        .await
        .unwrap();
    let first = match &out[0] {
        EnqueueOutcome::Created { id } => id.clone(),
        other => panic!("{other:?}"),
    };
    let v = s.get_message(&first).await.unwrap().unwrap();
    assert_eq!(v.deliveries[0].state, DeliveryState::Merged);
    assert_eq!(v.deliveries[0].group.as_deref(), Some("g-db-1"));
    assert!(s.due_groups(10).await.unwrap().is_empty(), "waits 30 s");
    assert!(s.claim(claim_req(None, 10, "w")).await.unwrap().is_empty());

    ctx.advance(30_000);
    let due = s.due_groups(10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].pending, due[0].total), (3, 3));
    // A fold after the read: the send with the old version does nothing.
    s.enqueue(vec![grouped("m3")]).await.unwrap();
    assert!(!s.send_group(notification(&due[0])).await.unwrap());
    assert_eq!(s.group_members("g-db-1").await.unwrap().len(), 4);
    let due = s.due_groups(10).await.unwrap();
    assert_eq!(due[0].pending, 4);
    let send = notification(&due[0]);
    let note = send.message.id.clone();
    assert!(s.send_group(send.clone()).await.unwrap());
    assert!(!s.send_group(send).await.unwrap(), "sent once");
    assert!(s.due_groups(10).await.unwrap().is_empty());
    let g = s.group("g-db-1").await.unwrap().unwrap();
    assert_eq!((g.pending, g.total, g.sends), (0, 4, 1));
    assert_eq!(g.sent_message.as_ref(), Some(&note));

    // The notification goes to the members' target; delivering it settles them.
    let claimed = s.claim(claim_req(None, 10, "w")).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        (claimed[0].message_id.clone(), claimed[0].target.as_str()),
        (note.clone(), "ops/x")
    );
    let v = s.get_message(&first).await.unwrap().unwrap();
    assert_eq!(v.deliveries[0].merged_into.as_ref(), Some(&note));
    s.complete(claimed[0].delivery_id, "w", Vec::new(), 1)
        .await
        .unwrap();
    let v = s.get_message(&first).await.unwrap().unwrap();
    assert_eq!(v.state, MessageState::Delivered);
    assert!(s.group_members("g-db-1").await.unwrap().is_empty());

    // Retention forgets the group only once it is idle past its `repeat`
    // (4 h here) and the retention age (1 h): until then a repeat must
    // still find when it was last sent.
    let r = Retention {
        keep_delivered: std::time::Duration::from_secs(3600),
        pause: std::time::Duration::ZERO,
        ..Retention::DEFAULT
    };
    ctx.advance(2 * 3_600_000);
    prune_expired(s, &r, ctx.now()).await.unwrap();
    assert!(s.group("g-db-1").await.unwrap().is_some());
    ctx.advance(3 * 3_600_000 + 60_000);
    prune_expired(s, &r, ctx.now()).await.unwrap();
    assert!(s.group("g-db-1").await.unwrap().is_none());
}
