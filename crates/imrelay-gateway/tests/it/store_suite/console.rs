//! The console's cases of the storage suite: sessions are found by their
//! digest until they expire or are closed, a touch moves only forward, the
//! audit trail lists newest first with its filters, and retention deletes
//! expired sessions and audit rows past their age.

use imrelay_gateway::store::*;

use super::Ctx;

fn session(ctx: &Ctx, name: &str, lifetime_ms: i64) -> ConsoleSession {
    ConsoleSession {
        kind: SessionKind::User,
        subject: name.into(),
        name: name.into(),
        csrf: "c".repeat(64),
        created_at: ctx.now(),
        expires_at: ctx.now() + lifetime_ms,
        last_seen: ctx.now(),
    }
}

fn entry(ctx: &Ctx, user: &str, action: &str) -> AuditEntry {
    AuditEntry {
        at: ctx.now(),
        user: user.into(),
        action: action.into(),
        object: "1,2".into(),
        outcome: "ok".into(),
        source: Some("192.0.2.7".into()),
    }
}

pub async fn console_sessions_and_the_audit_trail(ctx: &Ctx) {
    let s = ctx.s();
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let alice = session(ctx, "alice", 60_000);
    s.open_console_session(a, alice.clone()).await.unwrap();
    let key = ConsoleSession {
        kind: SessionKind::Key,
        subject: "ab".repeat(32),
        ..session(ctx, "ops", 120_000)
    };
    s.open_console_session(b, key.clone()).await.unwrap();
    assert_eq!(s.console_session(a).await.unwrap(), Some(alice.clone()));
    assert_eq!(s.console_session(b).await.unwrap(), Some(key));
    assert_eq!(s.console_session([3; 32]).await.unwrap(), None);

    ctx.advance(30_000);
    s.touch_console_session(a).await.unwrap();
    let seen = s.console_session(a).await.unwrap().unwrap();
    assert_eq!(seen.last_seen, ctx.now());

    // Expired: gone on read at once, deleted by retention later.
    ctx.advance(30_000);
    assert_eq!(s.console_session(a).await.unwrap(), None, "expired");
    assert!(s.console_session(b).await.unwrap().is_some());
    assert!(s.close_console_session(b).await.unwrap());
    assert!(!s.close_console_session(b).await.unwrap(), "closed once");
    assert_eq!(s.console_session(b).await.unwrap(), None, "logged out");

    // The audit trail: newest first, by user, by action or its family.
    s.audit(entry(ctx, "alice", "login")).await.unwrap();
    ctx.advance(1);
    s.audit(entry(ctx, "alice", "dlq.replay")).await.unwrap();
    ctx.advance(1);
    s.audit(AuditEntry {
        source: None,
        ..entry(ctx, "bob", "dlq.purge")
    })
    .await
    .unwrap();
    let all = s
        .audit_log(AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["dlq.purge", "dlq.replay", "login"]);
    assert_eq!(all[0].source, None);
    assert_eq!(all[1].source.as_deref(), Some("192.0.2.7"));
    let f = |user: Option<&str>, action: Option<&str>, limit| AuditFilter {
        user: user.map(str::to_string),
        action: action.map(str::to_string),
        limit,
    };
    let got = s.audit_log(f(Some("alice"), None, 10)).await.unwrap();
    assert_eq!(got.len(), 2);
    let got = s.audit_log(f(None, Some("dlq"), 10)).await.unwrap();
    assert_eq!(got.len(), 2, "a family of actions");
    let got = s
        .audit_log(f(Some("alice"), Some("dlq"), 10))
        .await
        .unwrap();
    assert_eq!(got[0].action, "dlq.replay");
    assert_eq!(got.len(), 1);
    let got = s.audit_log(f(None, Some("dl"), 10)).await.unwrap();
    assert!(got.is_empty(), "not a prefix of the name");
    assert_eq!(s.audit_log(f(None, None, 1)).await.unwrap().len(), 1);

    // The retention runner's pass: sessions expired by now, audit rows
    // older than `keep_audit`.
    let c = session(ctx, "carol", 60_000);
    s.open_console_session([4; 32], c.clone()).await.unwrap();
    s.open_console_session([5; 32], session(ctx, "dave", 1))
        .await
        .unwrap();
    ctx.advance(10);
    let r = Retention {
        keep_audit: std::time::Duration::from_millis(11),
        pause: std::time::Duration::ZERO,
        ..Retention::DEFAULT
    };
    prune_expired(s, &r, ctx.now()).await.unwrap();
    assert_eq!(s.console_session([5; 32]).await.unwrap(), None);
    // Nothing left to delete: alice's and dave's sessions and the oldest
    // audit row ("login") went.
    assert_eq!(s.prune_console(ctx.now(), ctx.now() - 11).await.unwrap(), 0);
    assert_eq!(s.console_session([4; 32]).await.unwrap(), Some(c));
    let left = s.audit_log(f(None, None, 10)).await.unwrap();
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|e| e.action != "login"));
}
