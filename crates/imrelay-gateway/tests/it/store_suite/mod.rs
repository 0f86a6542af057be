//! The storage test suite, written once against `&dyn Store` so every backend
//! (SQLite now, PostgreSQL later) runs the same checks. Each case gets a fresh,
//! empty store and the fixed clock it was opened with.

use std::sync::Arc;
use std::time::Duration;

use imrelay_gateway::store::*;
use imrelay_sdk::clock::{Clock, FixedClock};
use imrelay_sdk::Message;

mod console;
mod escalations;
mod groups;
mod latency;
mod lifecycle;
mod retention;
pub use retention::*;

pub const T0: i64 = 1_700_000_000_000;

/// A store under test and the clock it reads.
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
}

impl Ctx {
    pub fn s(&self) -> &dyn Store {
        &*self.store
    }
    pub fn advance(&self, ms: i64) {
        self.clock.set_ms(self.clock.now_ms() + ms);
    }
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }
}

pub fn msg(channel: &str, text: &str, targets: &[&str]) -> NewMessage {
    NewMessage::new(
        channel,
        Message::text(text),
        targets.iter().map(|t| t.parse().unwrap()).collect(),
    )
}

pub fn idem(key: &str, hash: &str) -> Idempotency {
    Idempotency {
        scope: "producer-a".into(),
        key: key.into(),
        body_hash: hash.into(),
    }
}

pub fn claim_req(target: Option<&str>, limit: u32, owner: &str) -> ClaimRequest {
    ClaimRequest {
        target: target.map(|t| t.parse().unwrap()),
        limit,
        lease: Duration::from_secs(30),
        owner: owner.into(),
        order_hold: None,
    }
}

pub fn attempt(outcome: &str, counted: bool, code: Option<&str>, msg: &str) -> AttemptRecord {
    AttemptRecord {
        started_at: T0,
        finished_at: T0 + 5,
        destination: "dingtalk_robot:abcd".into(),
        part: 0,
        outcome: outcome.parse().expect("an attempt outcome label"),
        counted,
        status: Some(200),
        code: code.map(str::to_string),
        message: msg.into(),
        platform_message_id: None,
        update_token: None,
        recipients: Vec::new(),
    }
}

pub(crate) async fn enqueue_one(ctx: &Ctx, m: NewMessage) -> MessageId {
    match ctx.s().enqueue(vec![m]).await.unwrap().remove(0) {
        EnqueueOutcome::Created { id } => id,
        other => panic!("expected Created, got {other:?}"),
    }
}

pub async fn enqueue_and_get(ctx: &Ctx) {
    let m = msg("ops", "disk full", &["ops/a", "ops/b"]).with_trace_id("trace-1");
    let id = enqueue_one(ctx, m.clone()).await;
    assert_eq!(id, m.id);
    let v = ctx.s().get_message(&id).await.unwrap().expect("stored");
    assert_eq!(v.channel, "ops");
    assert_eq!(v.kind, MessageKind::Normal);
    assert_eq!(v.state, MessageState::Pending);
    assert_eq!(v.message, Message::text("disk full"));
    assert_eq!(v.trace_id.as_deref(), Some("trace-1"));
    assert_eq!(v.created_at, T0);
    let targets: Vec<_> = v.deliveries.iter().map(|d| d.target.as_str()).collect();
    assert_eq!(targets, ["ops/a", "ops/b"]);
    for d in &v.deliveries {
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.due_at, Some(T0));
        assert!(d.history.is_empty());
    }
    assert!(ctx.s().get_message("nope").await.unwrap().is_none());
}

pub async fn batch_items_are_independent(ctx: &Ctx) {
    let good = msg("ops", "one", &["ops/a"]);
    let empty = msg("ops", "two", &[]);
    let out = ctx.s().enqueue(vec![good.clone(), empty]).await.unwrap();
    assert_eq!(
        out[0],
        EnqueueOutcome::Created {
            id: good.id.clone()
        }
    );
    assert!(
        matches!(&out[1], EnqueueOutcome::Rejected { reason } if reason.contains("no destination"))
    );
    assert_eq!(ctx.s().stats().await.unwrap().messages, 1);
}

pub async fn idempotency(ctx: &Ctx) {
    let first = msg("ops", "x", &["ops/a"]).with_idempotency(idem("k1", "h1"));
    let id = enqueue_one(ctx, first).await;
    let again = msg("ops", "x", &["ops/a"]).with_idempotency(idem("k1", "h1"));
    assert_eq!(
        ctx.s().enqueue(vec![again]).await.unwrap(),
        vec![EnqueueOutcome::Existing { id: id.clone() }]
    );
    let other_body = msg("ops", "y", &["ops/a"]).with_idempotency(idem("k1", "h2"));
    assert_eq!(
        ctx.s().enqueue(vec![other_body]).await.unwrap(),
        vec![EnqueueOutcome::Conflict { id: id.clone() }]
    );
    // Another producer's key space.
    let mut other_scope = idem("k1", "h1");
    other_scope.scope = "producer-b".into();
    let m = msg("ops", "x", &["ops/a"]).with_idempotency(other_scope);
    assert!(matches!(
        ctx.s().enqueue(vec![m]).await.unwrap()[0],
        EnqueueOutcome::Created { .. }
    ));
    assert_eq!(ctx.s().stats().await.unwrap().messages, 2);
}

pub async fn concurrent_idempotent_enqueues_create_one(ctx: &Ctx) {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = ctx.store.clone();
        tasks.push(tokio::spawn(async move {
            let m = msg("ops", "same", &["ops/a"]).with_idempotency(idem("once", "h"));
            store.enqueue(vec![m]).await.unwrap().remove(0)
        }));
    }
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            EnqueueOutcome::Created { id } => created.push(id),
            EnqueueOutcome::Existing { id } => existing.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created.len(), 1);
    assert_eq!(existing.len(), 99);
    assert!(existing.iter().all(|id| *id == created[0]));
    let st = ctx.s().stats().await.unwrap();
    assert_eq!((st.messages, st.pending), (1, 1));
}

pub async fn claim_due_leases_and_fencing(ctx: &Ctx) {
    let a = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    ctx.advance(10);
    let b = enqueue_one(ctx, msg("ops", "b", &["ops/x"])).await;
    let _other = enqueue_one(ctx, msg("dev", "c", &["dev/y"])).await;

    let got = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 10, "w1"))
        .await
        .unwrap();
    let ids: Vec<_> = got.iter().map(|c| c.message_id.clone()).collect();
    assert_eq!(
        ids,
        [a.clone(), b.clone()],
        "oldest due first, only the asked target"
    );
    assert_eq!(got[0].message, Message::text("a"));
    assert_eq!(got[0].lease_until, ctx.now() + 30_000);
    assert_eq!(got[0].channel, "ops");
    assert_eq!(got[0].attempts, 0);

    // Claimed rows are not claimable again while leased.
    assert!(ctx
        .s()
        .claim(claim_req(None, 10, "w2"))
        .await
        .unwrap()
        .iter()
        .all(|c| c.target == "dev/y"));
    assert!(ctx
        .s()
        .claim(claim_req(None, 10, "w2"))
        .await
        .unwrap()
        .is_empty());

    // After the lease expires another claimer takes them; the first is fenced off.
    ctx.advance(30_001);
    let back = ctx.s().backlog(1_000).await.unwrap();
    assert_eq!(back.len(), 2);
    let again = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w2"))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].message_id, a);
    let d = again[0].delivery_id;
    let err = ctx.s().complete(d, "w1", vec![], 1).await.unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(x) if x == d), "{err:?}");
    ctx.s()
        .complete(d, "w2", vec![attempt("delivered", false, None, "ok")], 1)
        .await
        .unwrap();
    // A finished delivery cannot be finished twice.
    assert!(matches!(
        ctx.s().complete(d, "w2", vec![], 1).await,
        Err(StoreError::LeaseLost(_))
    ));
    let v = ctx.s().get_message(&a).await.unwrap().unwrap();
    assert_eq!(v.state, MessageState::Delivered);
    assert_eq!(v.deliveries[0].history.len(), 1);
    assert_eq!(v.deliveries[0].parts_done, 1);
}

pub async fn not_due_is_not_claimed(ctx: &Ctx) {
    enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .retry_at(
            c.delivery_id,
            "w",
            ctx.now() + 5_000,
            vec![attempt("retry", true, None, "busy")],
            0,
        )
        .await
        .unwrap();
    assert!(ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .is_empty());
    let b = ctx.s().backlog(1_000).await.unwrap();
    assert_eq!(
        b,
        vec![TargetBacklog {
            target: "ops/x".parse().unwrap(),
            pending: 1,
            due: 0,
            next_due_at: Some(ctx.now() + 5_000)
        }]
    );
    ctx.advance(5_000);
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c.attempts, 1);
    assert_eq!(c.last_outcome, Some(AttemptOutcome::Retry));
}

pub async fn retry_counts_requeue_does_not(ctx: &Ctx) {
    let id = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .retry_at(
            c.delivery_id,
            "w",
            ctx.now(),
            vec![attempt("retry", true, Some("-1"), "system busy")],
            0,
        )
        .await
        .unwrap();
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let mut rl = attempt("rate_limited", false, Some("130101"), "send too fast");
    rl.part = 1;
    ctx.s()
        .requeue_without_attempt(c.delivery_id, "w", ctx.now() + 60_000, vec![rl], 1)
        .await
        .unwrap();
    let v = ctx.s().get_message(&id).await.unwrap().unwrap();
    let d = &v.deliveries[0];
    assert_eq!(d.attempts, 1, "a rate limit is not an attempt");
    assert_eq!(
        d.parts_done, 1,
        "progress kept so a retry resumes at the failed part"
    );
    assert_eq!(d.due_at, Some(ctx.now() + 60_000));
    let outcomes: Vec<_> = d
        .history
        .iter()
        .map(|a| (a.outcome.as_str(), a.counted, a.code.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("retry", true, Some("-1")),
            ("rate_limited", false, Some("130101"))
        ]
    );
    ctx.advance(60_000);
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((c.attempts, c.parts_done), (1, 1));
}

pub async fn progress_extends_lease(ctx: &Ctx) {
    enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .progress(
            c.delivery_id,
            "w",
            vec![attempt("delivered", false, None, "ok")],
            1,
            ctx.now() + 90_000,
        )
        .await
        .unwrap();
    ctx.advance(60_000);
    assert!(
        ctx.s()
            .claim(claim_req(None, 1, "other"))
            .await
            .unwrap()
            .is_empty(),
        "lease was extended"
    );
    ctx.advance(30_001);
    let c2 = ctx
        .s()
        .claim(claim_req(None, 1, "other"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(c2.parts_done, 1);
    assert!(matches!(
        ctx.s()
            .progress(c.delivery_id, "w", vec![], 2, ctx.now())
            .await,
        Err(StoreError::LeaseLost(_))
    ));
}

pub async fn dead_letters_list_replay_purge(ctx: &Ctx) {
    let a = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let b = enqueue_one(ctx, msg("dev", "b", &["dev/y"])).await;
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let reason = DeadReason {
        code: Some("310000".into()),
        reason: "keywords not in content".into(),
    };
    ctx.s()
        .dead(
            c.delivery_id,
            "w",
            reason.clone(),
            vec![attempt(
                "permanent",
                true,
                Some("310000"),
                "keywords not in content",
            )],
            0,
        )
        .await
        .unwrap();
    ctx.advance(1_000);
    let c2 = ctx
        .s()
        .claim(claim_req(Some("dev/y"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .dead(
            c2.delivery_id,
            "w",
            DeadReason {
                code: None,
                reason: "max attempts".into(),
            },
            vec![],
            0,
        )
        .await
        .unwrap();

    let all = ctx.s().list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].message_id, a);
    assert_eq!(all[0].code.as_deref(), Some("310000"));
    assert_eq!(all[0].reason, "keywords not in content");
    assert_eq!(all[0].attempts, 1);
    assert_eq!(all[0].dead_at, T0);
    assert_eq!(all[0].message, Message::text("a"));
    let by_channel = ctx
        .s()
        .list_dead(&DeadFilter {
            channel: Some("dev".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_channel
            .iter()
            .map(|d| d.message_id.as_str())
            .collect::<Vec<_>>(),
        [b.as_str()]
    );
    let by_code = ctx
        .s()
        .list_dead(&DeadFilter {
            code: Some("310000".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_code.len(), 1);
    let by_time = ctx
        .s()
        .list_dead(&DeadFilter {
            since: Some(T0 + 500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_time.len(), 1);
    assert_eq!(by_time[0].message_id, b);
    let until = ctx
        .s()
        .list_dead(&DeadFilter {
            until: Some(T0 + 500),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(until[0].message_id, a);
    let page = ctx
        .s()
        .list_dead(&DeadFilter {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    let next = ctx
        .s()
        .list_dead(&DeadFilter {
            limit: 1,
            after: Some(page[0].delivery_id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next[0].message_id, b);
    assert_eq!(
        ctx.s().get_dead(all[0].delivery_id).await.unwrap().unwrap(),
        all[0]
    );
    assert!(ctx
        .s()
        .get_dead(DeliveryId::new(999_999))
        .await
        .unwrap()
        .is_none());

    let v = ctx.s().get_message(&a).await.unwrap().unwrap();
    assert_eq!(v.state, MessageState::Dead);
    assert_eq!(v.deliveries[0].dead, Some(reason));

    // Replay one: pending again, due now, attempts reset, history kept.
    ctx.advance(1_000);
    assert_eq!(
        ctx.s()
            .replay(&DeadSelector::Ids(vec![all[0].delivery_id]))
            .await
            .unwrap(),
        1
    );
    let v = ctx.s().get_message(&a).await.unwrap().unwrap();
    assert_eq!(v.state, MessageState::Pending);
    assert_eq!(v.deliveries[0].attempts, 0);
    assert_eq!(v.deliveries[0].due_at, Some(ctx.now()));
    assert_eq!(v.deliveries[0].history.len(), 1);
    assert_eq!(
        ctx.s()
            .list_dead(&DeadFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((c.attempts, c.last_outcome), (0, None));

    // Purge by filter deletes the dead letter and its now-empty message.
    assert_eq!(
        ctx.s()
            .replay(&DeadSelector::Ids(vec![c.delivery_id]))
            .await
            .unwrap(),
        0,
        "only dead letters replay"
    );
    let n = ctx
        .s()
        .purge_dead(&DeadSelector::Filter(DeadFilter {
            channel: Some("dev".into()),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(ctx.s().get_message(&b).await.unwrap().is_none());
    assert!(ctx
        .s()
        .list_dead(&DeadFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(ctx.s().get_message(&a).await.unwrap().is_some());
}

pub async fn dead_with_fallback_enqueues_atomically(ctx: &Ctx) {
    let a = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let mut fb = msg("oncall", "a", &["oncall/z"]);
    fb.kind = MessageKind::Fallback;
    fb.origin = Some(a.clone());
    let fb_id = fb.id.clone();
    ctx.s()
        .finish(
            c.delivery_id,
            "w",
            Finish {
                attempts: vec![attempt(
                    "permanent",
                    true,
                    Some("300001"),
                    "token is not exist",
                )],
                parts_done: 0,
                action: FinishAction::Dead {
                    reason: DeadReason {
                        code: Some("300001".into()),
                        reason: "token is not exist".into(),
                    },
                    fallback: Some(Box::new(fb)),
                },
            },
        )
        .await
        .unwrap();
    let v = ctx.s().get_message(&fb_id).await.unwrap().unwrap();
    assert_eq!(v.kind, MessageKind::Fallback);
    assert_eq!(v.origin.as_deref(), Some(a.as_str()));
    assert_eq!(v.deliveries[0].target, "oncall/z");
    let got = ctx.s().claim(claim_req(None, 5, "w")).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, MessageKind::Fallback);
}

pub async fn split_recipients(ctx: &Ctx) {
    let id = enqueue_one(ctx, msg("app", "hello", &["app/wecom_app:1"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .finish(
            c.delivery_id,
            "w",
            Finish {
                attempts: vec![attempt("delivered", false, None, "ok; invaliduser: bob")],
                parts_done: 1,
                action: FinishAction::Split {
                    children: vec![
                        ChildDelivery {
                            recipients: vec!["carol".into()],
                            parts_done: 0,
                            state: ChildState::Pending {
                                due_at: ctx.now() + 1_000,
                            },
                        },
                        ChildDelivery {
                            recipients: vec!["bob".into()],
                            parts_done: 0,
                            state: ChildState::Dead(DeadReason {
                                code: Some("81013".into()),
                                reason: "user not found".into(),
                            }),
                        },
                    ],
                },
            },
        )
        .await
        .unwrap();
    let v = ctx.s().get_message(&id).await.unwrap().unwrap();
    assert_eq!(v.deliveries.len(), 3);
    assert_eq!(v.deliveries[0].state, DeliveryState::Done);
    assert_eq!(v.deliveries[1].state, DeliveryState::Pending);
    assert_eq!(v.deliveries[1].recipients, ["carol"]);
    assert_eq!(v.deliveries[1].target, "app/wecom_app:1");
    assert_eq!(v.deliveries[2].state, DeliveryState::Dead);
    assert_eq!(v.deliveries[2].recipients, ["bob"]);
    assert_eq!(v.state, MessageState::Pending);
    let dead = ctx.s().list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(dead[0].recipients, ["bob"]);
    assert_eq!(dead[0].code.as_deref(), Some("81013"));
    ctx.advance(1_000);
    let c = ctx.s().claim(claim_req(None, 5, "w")).await.unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].recipients, ["carol"]);
    ctx.s()
        .complete(c[0].delivery_id, "w", vec![], 1)
        .await
        .unwrap();
    assert_eq!(
        ctx.s().get_message(&id).await.unwrap().unwrap().state,
        MessageState::Partial
    );
}

pub async fn coalesce_settles_members(ctx: &Ctx) {
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(enqueue_one(ctx, msg("ops", &format!("m{i}"), &["ops/r"])).await);
    }
    let claimed = ctx
        .s()
        .claim(claim_req(Some("ops/r"), 5, "w"))
        .await
        .unwrap();
    let members: Vec<_> = claimed.iter().map(|c| c.delivery_id).collect();
    let mut digest = msg("ops", "digest of 5", &["ops/r"]);
    digest.kind = MessageKind::Digest;
    let digest_id = ctx
        .s()
        .coalesce("w", members.clone(), digest)
        .await
        .unwrap();
    for id in &ids {
        let v = ctx.s().get_message(id).await.unwrap().unwrap();
        assert_eq!(v.deliveries[0].state, DeliveryState::Merged);
        assert_eq!(
            v.deliveries[0].merged_into.as_deref(),
            Some(digest_id.as_str())
        );
        assert_eq!(v.state, MessageState::Pending);
    }
    // Members are not claimable; the digest is, once.
    let got = ctx.s().claim(claim_req(None, 10, "w")).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message_id, digest_id);
    assert_eq!(got[0].kind, MessageKind::Digest);
    let st = ctx.s().stats().await.unwrap();
    assert_eq!((st.merged, st.in_flight, st.pending), (5, 1, 0));

    // Digest dead -> members dead with the digest's code.
    ctx.s()
        .dead(
            got[0].delivery_id,
            "w",
            DeadReason {
                code: Some("460101".into()),
                reason: "too large".into(),
            },
            vec![],
            0,
        )
        .await
        .unwrap();
    let dead = ctx.s().list_dead(&DeadFilter::default()).await.unwrap();
    assert_eq!(dead.len(), 6);
    assert!(dead.iter().all(|d| d.code.as_deref() == Some("460101")));
    // Replaying the digest brings its members back to waiting for it.
    let digest_dead = dead
        .iter()
        .find(|d| d.message_id == digest_id)
        .unwrap()
        .delivery_id;
    assert_eq!(
        ctx.s()
            .replay(&DeadSelector::Ids(vec![digest_dead]))
            .await
            .unwrap(),
        6
    );
    let got = ctx.s().claim(claim_req(None, 10, "w")).await.unwrap();
    assert_eq!(got.len(), 1);
    ctx.s()
        .complete(
            got[0].delivery_id,
            "w",
            vec![attempt("delivered", false, None, "ok")],
            1,
        )
        .await
        .unwrap();
    for id in &ids {
        let v = ctx.s().get_message(id).await.unwrap().unwrap();
        assert_eq!(
            v.state,
            MessageState::Delivered,
            "merged members settle with the digest"
        );
    }
    // Coalescing needs claims the caller holds.
    let x = enqueue_one(ctx, msg("ops", "x", &["ops/r"])).await;
    let v = ctx.s().get_message(&x).await.unwrap().unwrap();
    let err = ctx
        .s()
        .coalesce("w", vec![v.deliveries[0].id], msg("ops", "d", &["ops/r"]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost(_)));
}

pub async fn release_returns_claims(ctx: &Ctx) {
    enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    enqueue_one(ctx, msg("ops", "b", &["ops/x"])).await;
    let got = ctx.s().claim(claim_req(None, 10, "w1")).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(ctx.s().release("someone-else").await.unwrap(), 0);
    assert_eq!(ctx.s().release("w1").await.unwrap(), 2);
    let again = ctx.s().claim(claim_req(None, 10, "w2")).await.unwrap();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|c| c.attempts == 0));
}

pub async fn overdue_and_fall_back(ctx: &Ctx) {
    let a = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    ctx.advance(60_000);
    let _b = enqueue_one(ctx, msg("ops", "b", &["ops/x"])).await;
    let over = ctx
        .s()
        .overdue("ops", ctx.now() - 30_000, 10)
        .await
        .unwrap();
    assert_eq!(over.len(), 1);
    assert_eq!(over[0].message_id, a);
    let mut fb = msg("oncall", "a", &["oncall/z"]);
    fb.kind = MessageKind::Fallback;
    fb.origin = Some(a.clone());
    assert!(ctx
        .s()
        .fall_back(over[0].delivery_id, fb.clone())
        .await
        .unwrap());
    let mut fb2 = fb.clone();
    fb2.id = new_message_id();
    assert!(
        !ctx.s().fall_back(over[0].delivery_id, fb2).await.unwrap(),
        "only once"
    );
    assert!(ctx
        .s()
        .overdue("ops", ctx.now() - 30_000, 10)
        .await
        .unwrap()
        .is_empty());
    // The fallback copy itself never falls back again.
    ctx.advance(120_000);
    let over = ctx.s().overdue("ops", ctx.now(), 10).await.unwrap();
    assert_eq!(over.len(), 1, "only b: {over:?}");
    assert!(
        ctx.s()
            .overdue("oncall", ctx.now(), 10)
            .await
            .unwrap()
            .is_empty(),
        "fallback copies never fall back"
    );
    assert!(ctx
        .s()
        .overdue("other", ctx.now(), 10)
        .await
        .unwrap()
        .is_empty());
}

pub async fn stats_count_states(ctx: &Ctx) {
    enqueue_one(ctx, msg("ops", "a", &["ops/x", "ops/y"])).await;
    enqueue_one(ctx, msg("ops", "b", &["ops/x"])).await;
    ctx.advance(2_000);
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/y"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .dead(
            c.delivery_id,
            "w",
            DeadReason {
                code: None,
                reason: "x".into(),
            },
            vec![],
            0,
        )
        .await
        .unwrap();
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let _ = c;
    let st = ctx.s().stats().await.unwrap();
    assert_eq!(st.messages, 2);
    assert_eq!((st.pending, st.in_flight, st.done, st.dead), (1, 1, 0, 1));
    assert_eq!(st.oldest_pending_age_ms, Some(2_000));
    let x = st.by_target.iter().find(|t| t.target == "ops/x").unwrap();
    assert_eq!((x.pending, x.in_flight, x.dead), (1, 1, 0));
    let y = st.by_target.iter().find(|t| t.target == "ops/y").unwrap();
    assert_eq!(y.dead, 1);
}

/// The console's search (newest first; channel, state, text, trace id and
/// time filters) and its per-minute counts.
pub async fn search_and_activity_for_the_console(ctx: &Ctx) {
    let minute = |t: i64| t / 60_000 * 60_000;
    let t_a = ctx.now();
    let a = enqueue_one(ctx, msg("ops", "disk FULL on db-1", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    ctx.s()
        .complete(
            c.delivery_id,
            "w",
            vec![attempt("delivered", false, None, "ok")],
            1,
        )
        .await
        .unwrap();
    ctx.advance(61_000);
    let t_b = ctx.now();
    let mut m = msg("dev", "cpu 100%_hot \"quoted\"", &["dev/y"]);
    m.labels = [("host".to_string(), "DB-7".to_string())].into();
    let b = enqueue_one(ctx, m).await;
    let c = ctx
        .s()
        .claim(claim_req(Some("dev/y"), 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let why = DeadReason {
        code: Some("310000".into()),
        reason: "keywords".into(),
    };
    let mut refused = attempt("permanent", true, Some("310000"), "keywords");
    (refused.started_at, refused.finished_at) = (t_b, t_b + 5);
    ctx.s()
        .dead(c.delivery_id, "w", why, vec![refused], 0)
        .await
        .unwrap();
    ctx.advance(1);
    let c = enqueue_one(
        ctx,
        msg("ops", "磁盘已满 pending", &["ops/x"]).with_trace_id("t-9"),
    )
    .await;

    let ids = |f: MessageFilter| async move {
        let found = ctx.s().search_messages(&f).await.unwrap();
        found.into_iter().map(|m| m.id).collect::<Vec<_>>()
    };
    let all = ctx
        .s()
        .search_messages(&MessageFilter::default())
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        vec![c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(
        all.iter().map(|m| m.state).collect::<Vec<_>>(),
        vec![
            MessageState::Pending,
            MessageState::Dead,
            MessageState::Delivered
        ]
    );
    assert_eq!(all[0].trace_id.as_deref(), Some("t-9"));
    assert_eq!(all[2].message, Message::text("disk FULL on db-1"));
    let text = |t: &str| MessageFilter {
        text: Some(t.into()),
        ..Default::default()
    };
    assert_eq!(
        ids(text("disk full")).await,
        vec![a.clone()],
        "ASCII in either case"
    );
    assert_eq!(
        ids(text("disk_full")).await,
        Vec::<MessageId>::new(),
        "_ is no wildcard"
    );
    assert_eq!(ids(text("100%_h")).await, vec![b.clone()]);
    assert_eq!(
        ids(text("\"quoted\"")).await,
        vec![b.clone()],
        "quotes as typed"
    );
    assert_eq!(ids(text("磁盘")).await, vec![c.clone()]);
    let state = |s| MessageFilter {
        state: Some(s),
        ..Default::default()
    };
    assert_eq!(ids(state(MessageState::Delivered)).await, vec![a.clone()]);
    assert_eq!(ids(state(MessageState::Dead)).await, vec![b.clone()]);
    assert_eq!(ids(state(MessageState::Pending)).await, vec![c.clone()]);
    assert!(ids(state(MessageState::Silenced)).await.is_empty());
    let chans = |c: &[&str]| MessageFilter {
        channels: Some(c.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    assert_eq!(ids(chans(&["ops"])).await, vec![c.clone(), a.clone()]);
    assert!(ids(chans(&[])).await.is_empty(), "no channel: nothing");
    let f = MessageFilter {
        trace_id: Some("t-9".into()),
        ..Default::default()
    };
    assert_eq!(ids(f).await, vec![c.clone()]);
    let f = MessageFilter {
        since: Some(t_b),
        until: Some(t_b + 1),
        ..Default::default()
    };
    assert_eq!(ids(f).await, vec![b.clone()]);
    let label = |k: &str, v: &str| MessageFilter {
        label: Some((k.into(), v.into())),
        ..Default::default()
    };
    assert_eq!(ids(label("host", "db-7")).await, vec![b.clone()]);
    assert!(
        ids(label("host", "db-")).await.is_empty(),
        "the whole value"
    );
    assert!(ids(label("hos", "db-7")).await.is_empty(), "the whole name");
    let f = MessageFilter {
        limit: 1,
        ..Default::default()
    };
    assert_eq!(ids(f).await, vec![c.clone()]);

    let act = ctx.s().activity(minute(t_a), None).await.unwrap();
    let at = |m: i64| {
        act.iter()
            .find(|x| x.minute == minute(m))
            .copied()
            .unwrap_or_default()
    };
    assert_eq!(
        (at(t_a).accepted, at(t_a).delivered, at(t_a).dead),
        (1, 1, 0),
        "{act:?}"
    );
    assert_eq!(
        (at(t_b).accepted, at(t_b).delivered, at(t_b).dead),
        (2, 0, 1),
        "{act:?}"
    );
    assert_eq!((at(t_a).failed, at(t_b).failed), (0, 1), "{act:?}");
    let dev = ctx
        .s()
        .activity(minute(t_a), Some(&["dev".to_string()]))
        .await
        .unwrap();
    assert_eq!(
        dev,
        vec![ActivityMinute {
            minute: minute(t_b),
            accepted: 1,
            delivered: 0,
            failed: 1,
            dead: 1
        }]
    );
    assert!(ctx
        .s()
        .activity(t_b + 60_000, None)
        .await
        .unwrap()
        .is_empty());
}

/// The dispatcher's view of the queue: counts that stop at the cap, expired
/// claims counted as due now, claims oldest first and expired ones included.
pub async fn backlog_caps_counts_and_includes_expired_claims(ctx: &Ctx) {
    let xs: Vec<NewMessage> = (0..10)
        .map(|i| msg("ops", &format!("x{i}"), &["ops/x"]))
        .collect();
    ctx.s().enqueue(xs).await.unwrap();
    ctx.advance(10);
    let ys: Vec<NewMessage> = (0..3)
        .map(|i| msg("dev", &format!("y{i}"), &["dev/y"]))
        .collect();
    ctx.s().enqueue(ys).await.unwrap();
    let b = ctx.s().backlog(5).await.unwrap();
    assert_eq!(
        b,
        vec![
            TargetBacklog {
                target: "dev/y".parse().unwrap(),
                pending: 3,
                due: 3,
                next_due_at: Some(T0 + 10)
            },
            TargetBacklog {
                target: "ops/x".parse().unwrap(),
                pending: 5,
                due: 5,
                next_due_at: Some(T0)
            },
        ]
    );
    // Claimed deliveries leave the backlog while their lease holds.
    let first = ctx
        .s()
        .claim(claim_req(Some("dev/y"), 2, "w1"))
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let b = ctx.s().backlog(100).await.unwrap();
    assert_eq!(
        b[0],
        TargetBacklog {
            target: "dev/y".parse().unwrap(),
            pending: 1,
            due: 1,
            next_due_at: Some(T0 + 10)
        }
    );
    assert_eq!(b[1].pending, 10);
    // Once it expires they count again (due, not before the oldest pending one),
    // and are claimed before the rest.
    ctx.advance(30_001);
    let b = ctx.s().backlog(100).await.unwrap();
    assert_eq!(
        b[0],
        TargetBacklog {
            target: "dev/y".parse().unwrap(),
            pending: 3,
            due: 3,
            next_due_at: Some(T0 + 10)
        }
    );
    let again = ctx
        .s()
        .claim(claim_req(Some("dev/y"), 2, "w2"))
        .await
        .unwrap();
    let mut got: Vec<i64> = again.iter().map(|c| c.delivery_id.get()).collect();
    let mut want: Vec<i64> = first.iter().map(|c| c.delivery_id.get()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "expired claims are taken before pending ones");
    // A targeted claim takes the oldest due first and never another target's.
    let xs = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 4, "w2"))
        .await
        .unwrap();
    let texts: Vec<String> = xs
        .iter()
        .map(|c| match &c.message.body {
            imrelay_sdk::message::Body::Text { text } => text.clone(),
            other => panic!("unexpected body {other:?}"),
        })
        .collect();
    assert_eq!(texts, ["x0", "x1", "x2", "x3"]);
}

/// Many writers at once (they share one transaction on SQLite): every
/// message keeps its own outcome, a repeated id is created once, each
/// acknowledgement is fenced on its own, and nothing else is touched.
pub async fn concurrent_writes_keep_their_own_outcomes(ctx: &Ctx) {
    let mut dup = msg("ops", "first", &["ops/x", "ops/y"]);
    dup.id = "fixed-id".into();
    let mut dup2 = msg("ops", "second", &["ops/x"]);
    dup2.id = "fixed-id".into();
    let mut calls = Vec::new();
    for i in 0..40 {
        let store = ctx.store.clone();
        let m = match i {
            7 => dup.clone(),
            8 => dup2.clone(),
            _ => msg("ops", &format!("m{i}"), &["ops/x"]),
        };
        calls.push(tokio::spawn(async move {
            (m.id.clone(), store.enqueue(vec![m]).await.unwrap())
        }));
    }
    let mut created = 0;
    let mut fixed = Vec::new();
    for c in calls {
        let (id, out) = c.await.unwrap();
        match &out[0] {
            EnqueueOutcome::Created { id: got } => {
                assert_eq!(*got, id);
                created += 1;
                if id == "fixed-id" {
                    fixed.push("created");
                }
            }
            EnqueueOutcome::Rejected { reason } => {
                assert_eq!(id, "fixed-id");
                assert!(reason.contains("already exists"), "{reason}");
                fixed.push("rejected");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    fixed.sort();
    assert_eq!(
        fixed,
        ["created", "rejected"],
        "one of the two fixed-id messages wins"
    );
    assert_eq!(created, 39);
    let v = ctx.s().get_message("fixed-id").await.unwrap().unwrap();
    let targets = v.deliveries.len();
    assert!(
        targets == 1 || targets == 2,
        "only the winner's deliveries exist"
    );

    // 40 deliveries (+1 if the two-target message won) on ops/x; claim them
    // all, lose the lease of some, acknowledge all at once.
    let claimed = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 100, "w1"))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 39);
    ctx.advance(30_001);
    let stolen = ctx
        .s()
        .claim(claim_req(Some("ops/x"), 5, "w2"))
        .await
        .unwrap();
    assert_eq!(stolen.len(), 5);
    let stolen_ids: Vec<i64> = stolen.iter().map(|c| c.delivery_id.get()).collect();
    let acks = claimed.iter().map(|c| {
        let store = ctx.store.clone();
        let id = c.delivery_id;
        async move {
            let r = store
                .complete(
                    id,
                    "w1",
                    vec![attempt("delivered", true, Some("0"), "ok")],
                    1,
                )
                .await;
            (id, r)
        }
    });
    for (id, r) in futures::future::join_all(acks).await {
        if stolen_ids.contains(&id.get()) {
            assert!(
                matches!(r, Err(StoreError::LeaseLost(x)) if x == id),
                "{r:?}"
            );
        } else {
            r.unwrap();
        }
    }
    let st = ctx.s().stats().await.unwrap();
    assert_eq!(st.in_flight, 5, "the stolen ones stay with w2");
    assert_eq!(st.done, 34);
    let acked = claimed
        .iter()
        .find(|c| !stolen_ids.contains(&c.delivery_id.get()))
        .unwrap();
    let m = ctx
        .s()
        .get_message(&acked.message_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.deliveries[0].history.len(), 1);
    assert_eq!(
        m.deliveries[0].history[0].outcome,
        AttemptOutcome::Delivered
    );

    // An id repeated within one batch: the first is created, with only its
    // own deliveries.
    let mut a = msg("ops", "a", &["ops/x"]);
    a.id = "twice".into();
    let mut b = msg("ops", "b", &["ops/x", "ops/y"]);
    b.id = "twice".into();
    let out = ctx.s().enqueue(vec![a, b]).await.unwrap();
    assert_eq!(out[0], EnqueueOutcome::Created { id: "twice".into() });
    assert!(
        matches!(&out[1], EnqueueOutcome::Rejected { .. }),
        "{out:?}"
    );
    let v = ctx.s().get_message("twice").await.unwrap().unwrap();
    assert_eq!(v.deliveries.len(), 1);
}

pub async fn notifier_wakes_on_enqueue(ctx: &Ctx) {
    let n = ctx.s().notifier();
    let waiter = tokio::spawn(async move { n.notified().await });
    tokio::task::yield_now().await;
    enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("woken")
        .unwrap();
}

pub async fn extend_leases_of_held_claims(ctx: &Ctx) {
    enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    enqueue_one(ctx, msg("ops", "b", &["ops/x"])).await;
    enqueue_one(ctx, msg("ops", "c", &["ops/x"])).await;
    let held = ctx.s().claim(claim_req(None, 3, "w")).await.unwrap();
    let ids: Vec<DeliveryId> = held.iter().map(|c| c.delivery_id).collect();
    assert_eq!(
        ctx.s()
            .extend_leases("other", ids.clone(), ctx.now() + 90_000)
            .await
            .unwrap(),
        0,
        "only the owner extends its leases"
    );
    // The first two are still sending; the third is not in the heartbeat.
    let until = ctx.now() + 90_000;
    assert_eq!(
        ctx.s()
            .extend_leases("w", ids[..2].to_vec(), until)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ctx.s()
            .extend_leases("w", ids[..2].to_vec(), until - 50_000)
            .await
            .unwrap(),
        0,
        "a lease is never shortened"
    );
    assert_eq!(ctx.s().extend_leases("w", vec![], until).await.unwrap(), 0);
    ctx.advance(30_001);
    let taken = ctx.s().claim(claim_req(None, 3, "other")).await.unwrap();
    assert_eq!(
        taken.iter().map(|c| c.delivery_id).collect::<Vec<_>>(),
        [ids[2]],
        "only the lease left out expired"
    );
    // A finished delivery is no longer extended.
    ctx.s().complete(ids[0], "w", vec![], 1).await.unwrap();
    assert_eq!(
        ctx.s()
            .extend_leases("w", ids.clone(), until + 1)
            .await
            .unwrap(),
        1,
        "neither the finished one nor the one another owner holds now"
    );
    ctx.advance(50_000);
    let later = ctx.s().claim(claim_req(None, 3, "third")).await.unwrap();
    assert_eq!(
        later.iter().map(|c| c.delivery_id).collect::<Vec<_>>(),
        [ids[2]],
        "the extended lease still holds; the other owner's has run out"
    );
}

pub async fn progress_counts_failures_retried_in_the_claim(ctx: &Ctx) {
    let id = enqueue_one(ctx, msg("ops", "a", &["ops/x"])).await;
    let c = ctx
        .s()
        .claim(claim_req(None, 1, "w"))
        .await
        .unwrap()
        .remove(0);
    let until = ctx.now() + 30_000;
    ctx.s()
        .progress(
            c.delivery_id,
            "w",
            vec![
                attempt("retry", true, None, "503"),
                attempt("rate_limited", false, None, "wait"),
                attempt("retry", true, None, "502"),
            ],
            0,
            until,
        )
        .await
        .unwrap();
    let d = &ctx.s().get_message(&id).await.unwrap().unwrap().deliveries[0];
    assert_eq!(d.attempts, 2, "the counted ones");
    assert_eq!(d.history.len(), 3);
    ctx.s()
        .complete(
            c.delivery_id,
            "w",
            vec![attempt("delivered", false, None, "ok")],
            1,
        )
        .await
        .unwrap();
    let d = &ctx.s().get_message(&id).await.unwrap().unwrap().deliveries[0];
    assert_eq!((d.attempts, d.history.len()), (2, 4));
}

/// Every case, by name, for backends to run one per test.
pub const CASES: &[&str] = &[
    "console_sessions_and_the_audit_trail",
    "latency_percentiles_of_delivered_messages",
    "escalation_steps_fire_once_and_atomically",
    "a_thread_escalates_once_and_a_resolve_ends_it",
    "oncall_overrides_are_kept_until_they_end",
    "enqueue_and_get",
    "batch_items_are_independent",
    "idempotency",
    "concurrent_idempotent_enqueues_create_one",
    "claim_due_leases_and_fencing",
    "not_due_is_not_claimed",
    "retry_counts_requeue_does_not",
    "progress_extends_lease",
    "extend_leases_of_held_claims",
    "progress_counts_failures_retried_in_the_claim",
    "dead_letters_list_replay_purge",
    "dead_with_fallback_enqueues_atomically",
    "split_recipients",
    "coalesce_settles_members",
    "release_returns_claims",
    "overdue_and_fall_back",
    "stats_count_states",
    "notifier_wakes_on_enqueue",
    "backlog_caps_counts_and_includes_expired_claims",
    "concurrent_writes_keep_their_own_outcomes",
    "retention_prunes_only_expired_settled_messages",
    "prune_batches_are_bounded",
    "threads_keep_order_and_the_parts_to_update",
    "update_tokens_and_the_thread_lease",
    "retention_keeps_an_active_threads_first_message",
    "search_and_activity_for_the_console",
    "a_group_is_sent_once_and_its_members_settle_with_it",
];

/// Run one case by name.
pub async fn run(name: &str, ctx: &Ctx) {
    match name {
        "enqueue_and_get" => enqueue_and_get(ctx).await,
        "batch_items_are_independent" => batch_items_are_independent(ctx).await,
        "idempotency" => idempotency(ctx).await,
        "concurrent_idempotent_enqueues_create_one" => {
            concurrent_idempotent_enqueues_create_one(ctx).await
        }
        "claim_due_leases_and_fencing" => claim_due_leases_and_fencing(ctx).await,
        "not_due_is_not_claimed" => not_due_is_not_claimed(ctx).await,
        "retry_counts_requeue_does_not" => retry_counts_requeue_does_not(ctx).await,
        "progress_extends_lease" => progress_extends_lease(ctx).await,
        "extend_leases_of_held_claims" => extend_leases_of_held_claims(ctx).await,
        "progress_counts_failures_retried_in_the_claim" => {
            progress_counts_failures_retried_in_the_claim(ctx).await
        }
        "dead_letters_list_replay_purge" => dead_letters_list_replay_purge(ctx).await,
        "dead_with_fallback_enqueues_atomically" => {
            dead_with_fallback_enqueues_atomically(ctx).await
        }
        "split_recipients" => split_recipients(ctx).await,
        "coalesce_settles_members" => coalesce_settles_members(ctx).await,
        "release_returns_claims" => release_returns_claims(ctx).await,
        "overdue_and_fall_back" => overdue_and_fall_back(ctx).await,
        "stats_count_states" => stats_count_states(ctx).await,
        "notifier_wakes_on_enqueue" => notifier_wakes_on_enqueue(ctx).await,
        "backlog_caps_counts_and_includes_expired_claims" => {
            backlog_caps_counts_and_includes_expired_claims(ctx).await
        }
        "concurrent_writes_keep_their_own_outcomes" => {
            concurrent_writes_keep_their_own_outcomes(ctx).await
        }
        "retention_prunes_only_expired_settled_messages" => {
            retention_prunes_only_expired_settled_messages(ctx).await
        }
        "prune_batches_are_bounded" => prune_batches_are_bounded(ctx).await,
        "escalation_steps_fire_once_and_atomically" => {
            escalations::escalation_steps_fire_once_and_atomically(ctx).await
        }
        "a_thread_escalates_once_and_a_resolve_ends_it" => {
            escalations::a_thread_escalates_once_and_a_resolve_ends_it(ctx).await
        }
        "oncall_overrides_are_kept_until_they_end" => {
            escalations::oncall_overrides_are_kept_until_they_end(ctx).await
        }
        "threads_keep_order_and_the_parts_to_update" => {
            lifecycle::threads_keep_order_and_the_parts_to_update(ctx).await
        }
        "update_tokens_and_the_thread_lease" => {
            lifecycle::update_tokens_and_the_thread_lease(ctx).await
        }
        "retention_keeps_an_active_threads_first_message" => {
            lifecycle::retention_keeps_an_active_threads_first_message(ctx).await
        }
        "search_and_activity_for_the_console" => search_and_activity_for_the_console(ctx).await,
        "a_group_is_sent_once_and_its_members_settle_with_it" => {
            groups::a_group_is_sent_once_and_its_members_settle_with_it(ctx).await
        }
        "latency_percentiles_of_delivered_messages" => {
            latency::latency_percentiles_of_delivered_messages(ctx).await
        }
        "console_sessions_and_the_audit_trail" => {
            console::console_sessions_and_the_audit_trail(ctx).await
        }
        other => panic!("unknown store test case {other}"),
    }
}

/// Every suite case as a test of the invoking backend's `run_case(name)`
/// (store_sqlite.rs, store_postgres.rs), with a check that none is missing.
macro_rules! store_cases {
    () => {
        store_cases!(
            enqueue_and_get,
            batch_items_are_independent,
            idempotency,
            concurrent_idempotent_enqueues_create_one,
            claim_due_leases_and_fencing,
            not_due_is_not_claimed,
            retry_counts_requeue_does_not,
            progress_extends_lease,
            extend_leases_of_held_claims,
            progress_counts_failures_retried_in_the_claim,
            dead_letters_list_replay_purge,
            dead_with_fallback_enqueues_atomically,
            split_recipients,
            coalesce_settles_members,
            release_returns_claims,
            overdue_and_fall_back,
            stats_count_states,
            notifier_wakes_on_enqueue,
            backlog_caps_counts_and_includes_expired_claims,
            concurrent_writes_keep_their_own_outcomes,
            retention_prunes_only_expired_settled_messages,
            prune_batches_are_bounded,
            threads_keep_order_and_the_parts_to_update,
            update_tokens_and_the_thread_lease,
            retention_keeps_an_active_threads_first_message,
            escalation_steps_fire_once_and_atomically,
            a_thread_escalates_once_and_a_resolve_ends_it,
            oncall_overrides_are_kept_until_they_end,
            a_group_is_sent_once_and_its_members_settle_with_it,
            search_and_activity_for_the_console,
            latency_percentiles_of_delivered_messages,
            console_sessions_and_the_audit_trail,
        );
    };

    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                run_case(stringify!($name)).await;
            }
        )*

        #[test]
        fn every_suite_case_runs_here() {
            let here = [$(stringify!($name)),*];
            for c in crate::store_suite::CASES {
                assert!(here.contains(c), "add `{c}` to the store_cases! list");
            }
        }
    };
}
