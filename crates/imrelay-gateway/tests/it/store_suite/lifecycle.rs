//! Lifecycle cases of the storage suite: threads, the parts a message
//! delivered, stale updates, update tokens, the thread lease, and retention
//! keeping an active thread's first message.

use std::time::Duration;

use imrelay_gateway::store::*;

use super::{attempt, claim_req, msg, Ctx};

const DAY: i64 = 24 * 3600 * 1000;

async fn enqueue(ctx: &Ctx, m: NewMessage) -> MessageId {
    match ctx.s().enqueue(vec![m]).await.unwrap().remove(0) {
        EnqueueOutcome::Created { id } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Deliver the one due delivery to `target`, the platform naming it `pid`
/// and handing out `token`.
async fn deliver(ctx: &Ctx, target: &str, pid: &str, token: Option<&str>) {
    let c = ctx
        .s()
        .claim(claim_req(Some(target), 1, "w"))
        .await
        .unwrap()
        .pop()
        .unwrap_or_else(|| panic!("nothing due to {target}"));
    let mut a = attempt("delivered", true, None, "ok");
    a.platform_message_id = Some(pid.into());
    a.update_token = token.map(str::to_string);
    a.recipients = vec!["chat_id:oc_1".into()];
    ctx.s()
        .complete(c.delivery_id, "w", vec![a], 1)
        .await
        .unwrap();
}

async fn thread_of(ctx: &Ctx, id: &MessageId) -> ThreadPos {
    ctx.s()
        .get_message(id)
        .await
        .unwrap()
        .unwrap()
        .thread
        .unwrap()
}

async fn newest_token(ctx: &Ctx, root: &MessageId) -> Option<String> {
    ctx.s().sent_parts(root).await.unwrap()[0]
        .1
        .sent
        .update_token
        .clone()
}

/// Messages of one thread on one channel: the first is the root, each later
/// one takes the next number; another channel's same key is another thread.
/// The root's delivered parts come back with what updating them needs, and a
/// message of the thread gives way to a later one to the same target.
pub async fn threads_keep_order_and_the_parts_to_update(ctx: &Ctx) {
    let root = enqueue(ctx, msg("ops", "firing", &["ops/a"]).with_thread("g1")).await;
    let second = enqueue(ctx, msg("ops", "resolved", &["ops/a"]).with_thread("g1")).await;
    let elsewhere = enqueue(ctx, msg("dev", "firing", &["dev/a"]).with_thread("g1")).await;
    let (p1, p2, p3) = (
        thread_of(ctx, &root).await,
        thread_of(ctx, &second).await,
        thread_of(ctx, &elsewhere).await,
    );
    assert_eq!((p1.root.clone(), p1.seq), (root.clone(), 1));
    assert_eq!((p2.root.clone(), p2.seq), (root.clone(), 2));
    assert_eq!((p3.root.clone(), p3.seq), (elsewhere.clone(), 1));

    deliver(ctx, "ops/a", "om_1", Some("code-1")).await;
    let parts = ctx.s().sent_parts(&root).await.unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    let (target, part) = &parts[0];
    assert_eq!(target.to_string(), "ops/a");
    assert_eq!(part.sent.platform_message_id, "om_1");
    assert_eq!(part.sent.update_token.as_deref(), Some("code-1"));
    assert_eq!(part.sent.recipients, ["chat_id:oc_1"]);
    // The root gives way to the message after it; that one to nothing.
    assert!(ctx.s().superseded(&root, 1, "ops/a").await.unwrap());
    assert!(!ctx.s().superseded(&root, 2, "ops/a").await.unwrap());
    assert_eq!(ctx.s().thread_latest(&root).await.unwrap(), Some(second));
}

/// Update tokens are kept as a list, newest used first, each spent once;
/// the thread lease is exclusive until given back or expired.
pub async fn update_tokens_and_the_thread_lease(ctx: &Ctx) {
    let root = enqueue(ctx, msg("ops", "card", &["ops/a"]).with_thread("g2")).await;
    deliver(ctx, "ops/a", "mid_1", Some("code-send")).await;
    ctx.s()
        .set_update_token("mid_1", "code-click")
        .await
        .unwrap();
    assert_eq!(
        newest_token(ctx, &root).await.as_deref(),
        Some("code-click")
    );
    ctx.s()
        .spend_update_token("mid_1", "code-click")
        .await
        .unwrap();
    assert_eq!(newest_token(ctx, &root).await.as_deref(), Some("code-send"));
    ctx.s()
        .spend_update_token("mid_1", "code-send")
        .await
        .unwrap();
    assert_eq!(newest_token(ctx, &root).await, None);

    let lease = Duration::from_secs(60);
    assert!(ctx
        .s()
        .lock_thread(&root, "ops/a", "one", lease)
        .await
        .unwrap());
    assert!(!ctx
        .s()
        .lock_thread(&root, "ops/a", "two", lease)
        .await
        .unwrap());
    assert!(ctx
        .s()
        .lock_thread(&root, "ops/b", "two", lease)
        .await
        .unwrap());
    ctx.s().unlock_thread(&root, "ops/a", "two").await.unwrap();
    assert!(
        !ctx.s()
            .lock_thread(&root, "ops/a", "two", lease)
            .await
            .unwrap(),
        "only the holder gives it back"
    );
    ctx.advance(61_000);
    assert!(
        ctx.s()
            .lock_thread(&root, "ops/a", "two", lease)
            .await
            .unwrap(),
        "an expired lease is taken over"
    );
    ctx.s().unlock_thread(&root, "ops/a", "two").await.unwrap();
    assert!(ctx
        .s()
        .lock_thread(&root, "ops/a", "one", lease)
        .await
        .unwrap());
}

/// Retention keeps a thread's first message while the thread is active (its
/// card is what later messages update), and drops it with the thread after.
pub async fn retention_keeps_an_active_threads_first_message(ctx: &Ctx) {
    let root = enqueue(ctx, msg("ops", "firing", &["ops/a"]).with_thread("g3")).await;
    deliver(ctx, "ops/a", "om_r", None).await;
    ctx.advance(6 * DAY);
    let later = enqueue(
        ctx,
        msg("ops", "still firing", &["ops/a"]).with_thread("g3"),
    )
    .await;
    deliver(ctx, "ops/a", "om_l", None).await;
    ctx.advance(2 * DAY);
    let r = Retention {
        keep_delivered: Duration::from_millis(7 * DAY as u64),
        pause: Duration::ZERO,
        ..Retention::DEFAULT
    };
    prune_expired(ctx.s(), &r, ctx.now()).await.unwrap();
    assert!(
        ctx.s().get_message(&root).await.unwrap().is_some(),
        "the active thread's root stays"
    );
    ctx.advance(7 * DAY);
    prune_expired(ctx.s(), &r, ctx.now()).await.unwrap();
    assert!(ctx.s().get_message(&later).await.unwrap().is_none());
    prune_expired(ctx.s(), &r, ctx.now()).await.unwrap();
    assert!(ctx.s().get_message(&root).await.unwrap().is_none());
    // The thread starts again with the next message.
    let fresh = enqueue(ctx, msg("ops", "again", &["ops/a"]).with_thread("g3")).await;
    let t = ctx
        .s()
        .get_message(&fresh)
        .await
        .unwrap()
        .unwrap()
        .thread
        .unwrap();
    assert_eq!((t.root, t.seq), (fresh, 1));
}
