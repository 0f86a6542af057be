//! Accept-to-delivered percentiles for the console's overview.

use imrelay_gateway::store::*;

use super::{attempt, claim_req, enqueue_one, msg, Ctx};

/// Deliver the one delivery of a message on `target`, its successful
/// request finishing `after` ms after acceptance (a failed request first
/// when `retried`).
async fn deliver_after(ctx: &Ctx, channel: &str, target: &str, after: i64, retried: bool) {
    let created = ctx.now();
    enqueue_one(ctx, msg(channel, "x", &[target])).await;
    let c = ctx
        .s()
        .claim(claim_req(Some(target), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let mut attempts = Vec::new();
    if retried {
        let mut failed = attempt("retry", true, Some("500"), "busy");
        (failed.started_at, failed.finished_at) = (created, created + 1);
        attempts.push(failed);
    }
    let mut ok = attempt("delivered", false, None, "ok");
    (ok.started_at, ok.finished_at) = (created + after - 5, created + after);
    attempts.push(ok);
    ctx.s()
        .complete(c.delivery_id, "w", attempts, 1)
        .await
        .unwrap();
}

pub async fn latency_percentiles_of_delivered_messages(ctx: &Ctx) {
    let t0 = ctx.now();
    // Before the window: not counted.
    deliver_after(ctx, "ops", "ops/x", 50_000, false).await;
    ctx.advance(3_600_000);
    let since = ctx.now();
    deliver_after(ctx, "ops", "ops/x", 100, false).await;
    deliver_after(ctx, "ops", "ops/x", 300, true).await;
    deliver_after(ctx, "dev", "dev/y", 1_000, false).await;
    // A dead letter is not a delivery.
    enqueue_one(ctx, msg("ops", "dead", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let why = DeadReason {
        code: Some("310000".into()),
        reason: "keywords".into(),
    };
    ctx.s()
        .dead(
            c.delivery_id,
            "w",
            why,
            vec![attempt("permanent", true, None, "no")],
            0,
        )
        .await
        .unwrap();

    let all = ctx.s().latency(since, None).await.unwrap();
    assert_eq!(
        (all.count, all.p50_ms, all.p90_ms, all.p99_ms),
        (3, Some(300), Some(1_000), Some(1_000)),
        "{all:?}"
    );
    let ops = ctx
        .s()
        .latency(since, Some(&["ops".to_string()]))
        .await
        .unwrap();
    assert_eq!(
        (ops.count, ops.p50_ms, ops.p99_ms),
        (2, Some(100), Some(300)),
        "only the caller's channels; the retried one from acceptance"
    );
    let none = ctx.s().latency(since, Some(&[])).await.unwrap();
    assert_eq!(none, Latency::default());
    let earlier = ctx.s().latency(t0, None).await.unwrap();
    assert_eq!((earlier.count, earlier.p99_ms), (4, Some(50_000)));
}
