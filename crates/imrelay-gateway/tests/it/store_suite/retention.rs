//! Retention cases of the storage suite: which settled messages expire, on
//! the store's own clock (advanced by hand: no sleeps).

use std::time::Duration;

use imrelay_gateway::store::*;

use super::{attempt, claim_req, msg, Ctx, T0};

const DAY: i64 = 24 * 3600 * 1000;

async fn enqueue(ctx: &Ctx, m: NewMessage) -> MessageId {
    match ctx.s().enqueue(vec![m]).await.unwrap().remove(0) {
        EnqueueOutcome::Created { id } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Claim the one due delivery to `target` and settle it.
async fn settle(ctx: &Ctx, target: &str, dead: bool) {
    let c = ctx
        .s()
        .claim(claim_req(Some(target), 1, "w"))
        .await
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("nothing due to {target}"));
    let a = vec![attempt("delivered", true, None, "ok")];
    if dead {
        let reason = DeadReason {
            code: Some("310000".into()),
            reason: "keywords not in content".into(),
        };
        ctx.s()
            .dead(c.delivery_id, "w", reason, a, 0)
            .await
            .unwrap();
    } else {
        ctx.s().complete(c.delivery_id, "w", a, 1).await.unwrap();
    }
}

fn retention(batch: u32) -> Retention {
    Retention {
        keep_delivered: Duration::from_millis(7 * DAY as u64),
        keep_dead: Duration::from_millis(30 * DAY as u64),
        batch,
        pause: Duration::ZERO,
        ..Retention::DEFAULT
    }
}

async fn kept(ctx: &Ctx, ids: &[&MessageId]) -> Vec<bool> {
    let mut out = Vec::new();
    for id in ids {
        out.push(ctx.s().get_message(id).await.unwrap().is_some());
    }
    out
}

/// Delivered messages go `keep_delivered` after delivery, dead ones
/// `keep_dead` after they died; a message with any open delivery stays
/// whatever its age, and so does one half delivered, half pending. Batches of
/// one walk past messages that must stay.
pub async fn retention_prunes_only_expired_settled_messages(ctx: &Ctx) {
    // Oldest first: a delivered delivery whose message still has a pending one.
    let half = enqueue(ctx, msg("ops", "half", &["ops/h1", "ops/h2"])).await;
    settle(ctx, "ops/h1", false).await;
    ctx.advance(1);
    let delivered = enqueue(ctx, msg("ops", "delivered", &["ops/d"])).await;
    settle(ctx, "ops/d", false).await;
    let dead = enqueue(ctx, msg("ops", "dead", &["ops/x"])).await;
    settle(ctx, "ops/x", true).await;
    let partial = enqueue(ctx, msg("ops", "partial", &["ops/p1", "ops/p2"])).await;
    settle(ctx, "ops/p1", false).await;
    settle(ctx, "ops/p2", true).await;
    let pending = enqueue(ctx, msg("ops", "pending", &["ops/slow"])).await;
    let claimed = enqueue(ctx, msg("ops", "claimed", &["ops/c"])).await;
    ctx.s()
        .claim(claim_req(Some("ops/c"), 1, "w"))
        .await
        .unwrap();
    ctx.advance(6 * DAY);
    let later = enqueue(ctx, msg("ops", "later", &["ops/l"])).await;
    settle(ctx, "ops/l", false).await;
    let all = [
        &half, &delivered, &dead, &partial, &pending, &claimed, &later,
    ];
    let size = ctx.s().size().await.unwrap();
    assert_eq!((size.open, size.settled), (3, 4), "{size:?}");
    assert!(size.bytes.is_some_and(|b| b > 0), "{size:?}");

    // Nothing is old enough yet.
    let r = retention(1);
    assert_eq!(prune_expired(ctx.s(), &r, ctx.now()).await.unwrap(), 0);
    assert_eq!(kept(ctx, &all).await, [true; 7]);

    // 7 days and a second after the first deliveries.
    ctx.advance(DAY + 1_000);
    assert_eq!(prune_expired(ctx.s(), &r, ctx.now()).await.unwrap(), 1);
    assert_eq!(
        kept(ctx, &all).await,
        [true, false, true, true, true, true, true]
    );
    // Its deliveries and attempts went with it.
    let st = ctx.s().stats().await.unwrap();
    assert_eq!(st.messages, 6);

    // 30 days on: the dead letter and the partial message expire with the
    // DLQ's age, the later delivered one with its own; open ones stay.
    ctx.advance(23 * DAY);
    assert_eq!(prune_expired(ctx.s(), &r, ctx.now()).await.unwrap(), 3);
    assert_eq!(
        kept(ctx, &all).await,
        [true, false, false, false, true, true, false]
    );
    assert!(ctx
        .s()
        .list_dead(&DeadFilter::default())
        .await
        .unwrap()
        .is_empty());
    // A year on, open messages are still there.
    ctx.advance(365 * DAY);
    assert_eq!(
        prune_expired(ctx.s(), &retention(1_000), ctx.now())
            .await
            .unwrap(),
        0
    );
    assert_eq!(kept(ctx, &[&half, &pending, &claimed]).await, [true; 3]);
    let size = ctx.s().size().await.unwrap();
    assert_eq!((size.open, size.settled), (3, 0), "{size:?}");
    // Once its last delivery settles, the half-delivered message goes too.
    ctx.s().release("w").await.unwrap();
    settle(ctx, "ops/h2", false).await;
    ctx.advance(7 * DAY + 1);
    assert_eq!(prune_expired(ctx.s(), &r, ctx.now()).await.unwrap(), 1);
    assert_eq!(kept(ctx, &[&half]).await, [false]);
    let _ = T0;
}

/// A batch deletes at most `limit` messages and says where the next one
/// starts; the walk ends with `next: None`.
pub async fn prune_batches_are_bounded(ctx: &Ctx) {
    for i in 0..5 {
        let t = format!("ops/b{i}");
        enqueue(ctx, msg("ops", "b", &[&t])).await;
        settle(ctx, &t, false).await;
        ctx.advance(1);
    }
    ctx.advance(8 * DAY);
    let now = ctx.now();
    let mut batch = PruneBatch {
        walk: Expiry::Delivered,
        delivered_before: now - 7 * DAY,
        dead_before: now - 30 * DAY,
        after: (i64::MIN, i64::MIN),
        limit: 2,
    };
    let mut sizes = Vec::new();
    loop {
        let p = ctx.s().prune(batch).await.unwrap();
        assert!(p.messages <= 2, "{p:?}");
        sizes.push(p.messages);
        match p.next {
            Some(next) => batch.after = next,
            None => break,
        }
    }
    assert_eq!(sizes.iter().sum::<u64>(), 5, "{sizes:?}");
    assert!(sizes.len() >= 3, "{sizes:?}");
    assert_eq!(ctx.s().stats().await.unwrap().messages, 0);
}
