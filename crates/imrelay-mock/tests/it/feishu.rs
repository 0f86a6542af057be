//! Feishu/Lark destinations of imrelay-sdk against the running mock: every
//! destination type end to end, each error class, token expiry and refresh,
//! uuid dedup, per-recipient failures, and the mock's own limits and checks.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use imrelay_mock::config::{AppConfig, MockConfig, MockPlatform, RobotConfig};
use imrelay_mock::{FaultAction, MockServer, SignatureCheck};
use imrelay_sdk::message::{Article, Body, Button, ImageSource, Mentions, Message};
use imrelay_sdk::{deliver, Client, Code, Destination, Outcome};
use serde_json::{json, Value};

use crate::common::{code, control, fault, http, log as entries, send_one, start};

const APP_ID: &str = "cli_mock_app";
const APP_SECRET: &str = "mock-app-secret";

fn robot(hook: &str) -> RobotConfig {
    RobotConfig::new(MockPlatform::Feishu, hook)
}

fn app_cfg() -> MockConfig {
    MockConfig::default().with_app(AppConfig::new(MockPlatform::Feishu, APP_ID, APP_SECRET))
}

fn webhook(server: &MockServer, hook: &str, secret: Option<&str>) -> Arc<dyn Destination> {
    let mut cfg = json!({
        "type": "feishu_webhook",
        "webhook": format!("{}/open-apis/bot/v2/hook/{hook}", server.base_url()),
        "base_url": server.base_url(),
    });
    if let Some(s) = secret {
        cfg["secret"] = json!(s);
    }
    Client::new().unwrap().build(&cfg).unwrap()
}

fn app_on(
    client: &Client,
    server: &MockServer,
    secret: &str,
    recipients: &[&str],
) -> Arc<dyn Destination> {
    client
        .build(&json!({
            "type": "feishu_app",
            "app_id": APP_ID,
            "app_secret": secret,
            "base_url": server.base_url(),
            "recipients": recipients,
        }))
        .unwrap()
}

fn app(server: &MockServer, recipients: &[&str]) -> Arc<dyn Destination> {
    app_on(&Client::new().unwrap(), server, APP_SECRET, recipients)
}

fn token_fetches(server: &MockServer) -> usize {
    entries(server, "auth.tenant_access_token")
        .iter()
        .filter(|e| e.accepted)
        .count()
}

// ---------------------------------------------------------------------------
// Webhook

#[tokio::test]
async fn webhook_signed_text_is_accepted_with_signature_verified() {
    let server =
        start(MockConfig::default().with_robot(robot("hk1").with_secret("bot-secret"))).await;
    let dest = webhook(&server, "hk1", Some("bot-secret"));
    let msg = Message::text("disk full").with_mentions(Mentions {
        all: true,
        ..Default::default()
    });
    let r = send_one(&*dest, &msg).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");

    let log = entries(&server, "bot.hook");
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert!(e.accepted);
    assert_eq!(e.target, "feishu:webhook:hk1");
    assert_eq!(e.signature, SignatureCheck::Verified);
    let body = e.body.as_ref().unwrap();
    assert_eq!(
        body["content"]["text"],
        "disk full <at user_id=\"all\">所有人</at>"
    );
    assert!(body["sign"].is_string() && body["timestamp"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn webhook_every_body_kind_passes_the_mocks_shape_checks() {
    let mut data = BTreeMap::new();
    data.insert("host".to_string(), "db-1".to_string());
    let msgs = [
        Message::text("plain"),
        Message::markdown("Deploy", "# v1\n**done**"),
        Message::new(Body::Card {
            text: "CPU **high**".into(),
            buttons: vec![Button {
                text: "Open".into(),
                url: "https://example.com".into(),
            }],
            theme: Some("red".into()),
        })
        .with_title("Alert"),
        Message::new(Body::Link {
            text: "notes".into(),
            url: "https://example.com/r".into(),
            pic_url: None,
        }),
        Message::new(Body::News {
            articles: vec![Article {
                title: "A".into(),
                url: "https://example.com/a".into(),
                description: Some("d".into()),
                pic_url: None,
            }],
        }),
        Message::new(Body::Template {
            template_id: "t".into(),
            data,
            url: None,
        }),
        Message::new(Body::Image {
            image: ImageSource::Key("img_v2_abc".into()),
        }),
        Message::new(Body::Raw {
            platform: None,
            payload: json!({"msg_type": "share_chat", "content": {"share_chat_id": "oc_f5b1"}}),
        }),
    ];
    // One bot per message: a single bot takes only 5 per second.
    let mut cfg = MockConfig::default();
    for i in 0..msgs.len() {
        cfg = cfg.with_robot(robot(&format!("kind{i}")).with_secret("s"));
    }
    let server = start(cfg).await;
    for (i, msg) in msgs.iter().enumerate() {
        let dest = webhook(&server, &format!("kind{i}"), Some("s"));
        let r = send_one(&*dest, msg).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{}: {r}", msg.body.kind());
    }
    let log = entries(&server, "bot.hook");
    assert_eq!(log.len(), msgs.len());
    assert!(log
        .iter()
        .all(|e| e.accepted && e.signature == SignatureCheck::Verified));
    server.stop().await;
}

#[tokio::test]
async fn lark_region_uses_the_same_paths() {
    let server = start(MockConfig::default().with_robot(robot("lark1"))).await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({"type": "feishu_webhook", "hook": "lark1", "region": "lark", "base_url": server.base_url()}))
        .unwrap();
    let r = send_one(&*dest, &Message::text("hello from lark")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    assert_eq!(
        entries(&server, "bot.hook")[0].signature,
        SignatureCheck::NotRequired
    );
    server.stop().await;
}

#[tokio::test]
async fn webhook_wrong_secret_gets_19021() {
    let server = start(MockConfig::default().with_robot(robot("hk1").with_secret("right"))).await;
    let r = send_one(
        &*webhook(&server, "hk1", Some("wrong")),
        &Message::text("x"),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.code, Some(Code::Int(19021)));
    assert_eq!(
        r.message,
        "sign match fail or timestamp is not within one hour from current time"
    );
    // Unsigned, to a bot that requires a signature: the same.
    let r = send_one(&*webhook(&server, "hk1", None), &Message::text("x")).await;
    assert_eq!(r.code, Some(Code::Int(19021)));
    let log = entries(&server, "bot.hook");
    assert!(log
        .iter()
        .all(|e| !e.accepted && e.signature == SignatureCheck::Failed));
    server.stop().await;
}

#[tokio::test]
async fn webhook_timestamp_outside_the_hour_gets_19021() {
    let server = start(MockConfig::default().with_robot(robot("hk1").with_secret("s"))).await;
    let dest = webhook(&server, "hk1", Some("s"));
    // The mock's clock runs an hour and a bit ahead of ours.
    server.state().advance_clock(3_601_000);
    let r = send_one(&*dest, &Message::text("x")).await;
    assert_eq!(r.code, Some(Code::Int(19021)));
    assert_eq!(r.outcome, Outcome::Permanent);
    // Within the hour again: accepted (the SDK signs every send afresh).
    server.state().advance_clock(-2_000);
    let r = send_one(&*dest, &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    server.stop().await;
}

#[tokio::test]
async fn webhook_keywords_and_unknown_hook() {
    let mut kw = robot("kw");
    kw.keywords = vec!["告警".into()];
    let server = start(MockConfig::default().with_robot(kw)).await;
    let dest = webhook(&server, "kw", None);
    let r = send_one(&*dest, &Message::text("hello")).await;
    assert_eq!(
        (r.outcome, r.code),
        (Outcome::Permanent, Some(Code::Int(19024)))
    );
    let r = send_one(&*dest, &Message::text("hello").with_title("告警")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");

    let r = send_one(&*webhook(&server, "nope", None), &Message::text("x")).await;
    assert_eq!(
        (r.outcome, r.code),
        (Outcome::Permanent, Some(Code::Int(19001)))
    );
    assert!(r.message.contains("incoming webhook access token invalid"));
    server.stop().await;
}

#[tokio::test]
async fn webhook_sixth_message_within_a_second_gets_11232() {
    // Windows stretched tenfold, so a slow machine still sends six "within a second".
    let mut cfg = MockConfig::default().with_robot(robot("fast"));
    cfg.window_scale = 10.0;
    let server = start(cfg).await;
    let dest = webhook(&server, "fast", None);
    for i in 0..5 {
        let r = send_one(&*dest, &Message::text(format!("m{i}"))).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    }
    let r = send_one(&*dest, &Message::text("m5")).await;
    assert_eq!(r.code, Some(Code::Int(11232)));
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(1)
        }
    );
    assert!(r.message.starts_with("frequency limited"));
    server.stop().await;
}

#[tokio::test]
async fn webhook_injected_faults_map_to_each_class() {
    let server = start(MockConfig::default().with_robot(robot("f"))).await;
    let dest = webhook(&server, "f", None);
    let target = "feishu:webhook:f";
    let cases = [
        (
            code(11232),
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
        (code(19024), Outcome::Permanent),
        (code(424242), Outcome::Permanent),
        (
            FaultAction::Http { http_status: 503 },
            Outcome::Retry { after: None },
        ),
        (
            FaultAction::Http { http_status: 429 },
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
    ];
    for (action, want) in cases {
        fault(&server, target, action.clone(), 1);
        let r = send_one(&*dest, &Message::text("x")).await;
        assert_eq!(r.outcome, want, "{action:?}: {r}");
        // Move the mock's clock on rather than sleeping, so the bot's 5/s
        // limit never interferes.
        server.state().advance_clock(1_000);
    }
    server.stop().await;
}

#[tokio::test]
async fn mock_answers_in_feishus_exact_shapes() {
    let server = start(MockConfig::default().with_robot(robot("hk").with_secret("s"))).await;
    let http = http();
    let base = server.base_url();
    let post = |path: &str, body: &str| {
        http.post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let text = |r: reqwest::Response| async move { (r.status().as_u16(), r.text().await.unwrap()) };

    let (s, b) = text(
        post(
            "/open-apis/bot/v2/hook/hk",
            r#"{"msg_type":"text","content":{"text":"x"}}"#,
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#
    );
    let (_, b) = text(post("/open-apis/bot/v2/hook/other", "{}").await.unwrap()).await;
    assert_eq!(
        b,
        r#"{"code":19001,"data":{},"msg":"param invalid: incoming webhook access token invalid"}"#
    );
    let (_, b) = text(
        post("/open-apis/bot/v2/hook/hk", "{not json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(b, r#"{"code":9499,"data":{},"msg":"Bad Request"}"#);

    // A correctly signed request gets Feishu's success body.
    let now = (server.state().now_ms() / 1000).to_string();
    let sign = imrelay_sdk::sign::feishu_webhook("s", now.parse().unwrap());
    let body =
        json!({"timestamp": now, "sign": sign, "msg_type": "text", "content": {"text": "x"}})
            .to_string();
    let (_, b) = text(post("/open-apis/bot/v2/hook/hk", &body).await.unwrap()).await;
    assert_eq!(
        b,
        r#"{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}"#
    );

    // App API without a token, and with content that is an object, not a string.
    let (s, b) = text(
        post("/open-apis/im/v1/messages?receive_id_type=open_id", "{}")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(serde_json::from_str::<Value>(&b).unwrap()["code"], 99991661);
    let (s, b) = text(
        http.post(format!(
            "{base}/open-apis/im/v1/messages?receive_id_type=open_id"
        ))
        .header("authorization", "Bearer t-forged")
        .body("{}")
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (
            s,
            serde_json::from_str::<Value>(&b).unwrap()["code"].clone()
        ),
        (400, json!(99991663))
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------
// App

#[tokio::test]
async fn app_delivers_to_each_recipient_with_uuid_and_message_id() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_alice", "chat_id:oc_ops"]);
    let msg = Message::markdown("Deploy", "**v1.2** is live").with_id("m-1");
    let reports = deliver(&*dest, &msg).await.unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
        assert!(r.platform_message_id.as_deref().unwrap().starts_with("om_"));
    }
    assert_eq!(token_fetches(&server), 1);
    let sent = entries(&server, "im.messages");
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|e| e.accepted && !e.duplicate && e.target == format!("feishu:app:{APP_ID}")));
    let ids: Vec<&str> = sent
        .iter()
        .map(|e| e.body.as_ref().unwrap()["receive_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ou_alice", "oc_ops"]);
    let uuids: Vec<&str> = sent
        .iter()
        .map(|e| e.body.as_ref().unwrap()["uuid"].as_str().unwrap())
        .collect();
    assert_ne!(uuids[0], uuids[1]);
    server.stop().await;
}

#[tokio::test]
async fn app_every_body_kind_passes_the_mocks_shape_checks() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_1"]);
    let msgs = [
        Message::text("t"),
        Message::markdown("m", "**b**"),
        Message::new(Body::Card {
            text: "c".into(),
            buttons: vec![Button {
                text: "b".into(),
                url: "https://example.com".into(),
            }],
            theme: Some("green".into()),
        }),
        Message::new(Body::Link {
            text: "l".into(),
            url: "https://example.com".into(),
            pic_url: None,
        }),
        Message::new(Body::Image {
            image: ImageSource::Key("img_v2_1".into()),
        }),
        Message::new(Body::Raw {
            platform: None,
            payload: json!({"msg_type": "share_chat", "content": {"chat_id": "oc_1"}}),
        }),
    ];
    for (i, msg) in msgs.iter().enumerate() {
        // One recipient takes 5 per second; the mock's clock moves on instead of sleeping.
        server.state().advance_clock(1_000);
        let r = send_one(&*dest, &msg.clone().with_id(format!("k{i}"))).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{}: {r}", msg.body.kind());
    }
    server.stop().await;
}

#[tokio::test]
async fn app_retry_with_the_same_uuid_is_not_delivered_twice() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_1"]);
    let payload = dest
        .render(&Message::text("once").with_id("msg-7"))
        .unwrap()
        .remove(0);
    let first = dest.send(&payload).await;
    // A retry (say the first answer was lost) re-renders to the same uuid.
    let again = dest
        .render(&Message::text("once").with_id("msg-7"))
        .unwrap()
        .remove(0);
    assert_eq!(again, payload);
    let second = dest.send(&again).await;
    assert_eq!(first.outcome, Outcome::Delivered);
    assert_eq!(second.outcome, Outcome::Delivered);
    assert_eq!(first.platform_message_id, second.platform_message_id);

    let sent = entries(&server, "im.messages");
    let delivered = sent.iter().filter(|e| e.accepted && !e.duplicate).count();
    let duplicates = sent.iter().filter(|e| e.duplicate).count();
    assert_eq!((delivered, duplicates), (1, 1), "no duplicates delivered");
    // The per-target counters agree (one more accepted: the token request).
    let c = &server.state().log.counts()[&format!("feishu:app:{APP_ID}")];
    assert_eq!((c.accepted, c.duplicates), (2, 1), "{c:?}");
    server.stop().await;
}

#[tokio::test]
async fn reset_forgets_the_uuid_dedup_memory() {
    let server = start(app_cfg()).await;
    let msg = Message::text("once").with_id("msg-8");
    let dest = app(&server, &["ou_1"]);
    let payload = dest.render(&msg).unwrap().remove(0);
    let first = dest.send(&payload).await;
    assert_eq!(first.outcome, Outcome::Delivered, "{first}");
    let again = dest.send(&payload).await;
    assert_eq!(again.platform_message_id, first.platform_message_id);

    let resp = control(&server, "reset", &json!({})).await;
    assert!(resp.status().is_success());
    // Reset also forgot the token: a fresh client fetches a new one.
    let dest = app(&server, &["ou_1"]);
    let after = dest.send(&dest.render(&msg).unwrap().remove(0)).await;
    assert_eq!(after.outcome, Outcome::Delivered, "{after}");
    assert_ne!(after.platform_message_id, first.platform_message_id);
    let sent = entries(&server, "im.messages");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].accepted && !sent[0].duplicate, "{:?}", sent[0]);
    server.stop().await;
}

#[tokio::test]
async fn app_token_expired_mid_run_is_refreshed_once() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_1"]);
    assert_eq!(
        send_one(&*dest, &Message::text("a")).await.outcome,
        Outcome::Delivered
    );
    assert_eq!(token_fetches(&server), 1);

    let resp = control(&server, "tokens/expire", &json!({"platform": "feishu"})).await;
    assert!(resp.status().is_success());

    let r = send_one(&*dest, &Message::text("b")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    assert_eq!(token_fetches(&server), 2);
    let codes: Vec<Option<String>> = entries(&server, "im.messages")
        .into_iter()
        .map(|e| e.code)
        .collect();
    assert_eq!(
        codes,
        [Some("0".into()), Some("99991663".into()), Some("0".into())]
    );
    server.stop().await;
}

#[tokio::test]
async fn app_short_lived_token_is_renewed() {
    let mut cfg = app_cfg();
    cfg.apps[0].token_lifetime_secs = Some(60);
    let server = start(cfg).await;
    let dest = app(&server, &["ou_1"]);
    assert_eq!(
        send_one(&*dest, &Message::text("a")).await.outcome,
        Outcome::Delivered
    );
    // The mock's token dies; the SDK's cached copy does not know yet.
    server.state().advance_clock(61_000);
    let r = send_one(&*dest, &Message::text("b")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    assert_eq!(token_fetches(&server), 2);
    server.stop().await;
}

#[tokio::test]
async fn app_thousand_concurrent_sends_fetch_one_token() {
    let server = start(app_cfg()).await;
    let client = Client::new().unwrap();
    let recipients: Vec<String> = (0..1000).map(|i| format!("ou_{i}")).collect();
    let refs: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let dest = app_on(&client, &server, APP_SECRET, &refs);
    let payloads = dest
        .render(&Message::text("fan out").with_id("bulk"))
        .unwrap();
    assert_eq!(payloads.len(), 1000);
    let reports = futures::future::join_all(payloads.iter().map(|p| dest.send(p))).await;
    assert_eq!(token_fetches(&server), 1);
    assert_eq!(
        client
            .tokens()
            .stats()
            .fetches_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // Every send reached the messages API with a valid token; the app-wide
    // 50/s limit answers the excess with 99991400 (rate limited, not lost).
    let sent = entries(&server, "im.messages");
    assert_eq!(sent.len(), 1000);
    assert!(sent.iter().all(|e| e.code.as_deref() != Some("99991663")));
    for r in &reports {
        assert!(
            matches!(r.outcome, Outcome::Delivered | Outcome::RateLimited { .. }),
            "{r}"
        );
    }
    let delivered = reports.iter().filter(|r| r.outcome.is_delivered()).count();
    assert!(delivered >= 50, "{delivered}");
    server.stop().await;
}

#[tokio::test]
async fn app_injected_faults_map_to_each_class() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_1"]);
    let target = format!("feishu:app:{APP_ID}");
    // Prime the token so fault counts apply to sends only.
    assert!(send_one(&*dest, &Message::text("warm"))
        .await
        .outcome
        .is_delivered());
    let cases = [
        (
            code(230020),
            1,
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
        (
            code(99991400),
            1,
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
        (code(230002), 1, Outcome::Permanent),
        (code(230099), 1, Outcome::Permanent),
        (
            FaultAction::Http { http_status: 500 },
            1,
            Outcome::Retry { after: None },
        ),
        (
            FaultAction::Http { http_status: 429 },
            1,
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
        // A rejected token is refreshed and the send retried once...
        (code(99991663), 1, Outcome::Delivered),
        // ...and rejected again, reported as such.
        (code(99991663), 2, Outcome::RefreshToken),
    ];
    for (action, count, want) in cases {
        server.state().advance_clock(1_000);
        fault(&server, &target, action.clone(), count);
        let r = send_one(&*dest, &Message::text("x")).await;
        assert_eq!(r.outcome, want, "{action:?}: {r}");
    }
    // Two refreshes: one per 99991663 case (Feishu hands back the same, still
    // valid token, and the retry with it succeeds or meets the second fault).
    assert_eq!(token_fetches(&server), 3);
    server.stop().await;
}

#[tokio::test]
async fn app_partial_failure_is_reported_per_recipient() {
    let server = start(app_cfg()).await;
    let dest = app(&server, &["ou_ok", "ou_outside_1", "chat_id:oc_nobot_1"]);
    let payloads = dest.render(&Message::text("hi").with_id("p")).unwrap();
    let mut results = Vec::new();
    for p in &payloads {
        let r = dest.send(p).await;
        results.push((p.recipients[0].clone(), r.outcome, r.code));
    }
    assert_eq!(
        results,
        [
            ("ou_ok".to_string(), Outcome::Delivered, None),
            (
                "ou_outside_1".to_string(),
                Outcome::Permanent,
                Some(Code::Int(230013))
            ),
            (
                "chat_id:oc_nobot_1".to_string(),
                Outcome::Permanent,
                Some(Code::Int(230002))
            ),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn app_sixth_message_to_one_user_within_a_second_gets_230020() {
    let mut cfg = app_cfg();
    cfg.window_scale = 10.0;
    let server = start(cfg).await;
    let dest = app(&server, &["ou_busy"]);
    for i in 0..5 {
        let r = send_one(&*dest, &Message::text(format!("m{i}"))).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    }
    let r = send_one(&*dest, &Message::text("m5")).await;
    assert_eq!(r.code, Some(Code::Int(230020)));
    assert!(matches!(r.outcome, Outcome::RateLimited { .. }));
    server.stop().await;
}

#[tokio::test]
async fn two_apps_share_a_groups_five_a_second_but_not_a_users() {
    const OTHER: &str = "cli_mock_other";
    let mut cfg = app_cfg().with_app(AppConfig::new(MockPlatform::Feishu, OTHER, APP_SECRET));
    cfg.window_scale = 10.0;
    let server = start(cfg).await;
    let other = |recipients: &[&str]| {
        Client::new()
            .unwrap()
            .build(&json!({
                "type": "feishu_app",
                "app_id": OTHER,
                "app_secret": APP_SECRET,
                "base_url": server.base_url(),
                "recipients": recipients,
            }))
            .unwrap()
    };
    for (to, sixth) in [
        ("ou_both", Outcome::Delivered),
        (
            "chat_id:oc_both",
            Outcome::RateLimited {
                wait: Duration::ZERO,
            },
        ),
    ] {
        let (a, b) = (app(&server, &[to]), other(&[to]));
        for i in 0..3 {
            let r = send_one(&*a, &Message::text(format!("a{i}"))).await;
            assert_eq!(r.outcome, Outcome::Delivered, "{to}: {r}");
        }
        for i in 0..2 {
            let r = send_one(&*b, &Message::text(format!("b{i}"))).await;
            assert_eq!(r.outcome, Outcome::Delivered, "{to}: {r}");
        }
        let r = send_one(&*b, &Message::text("b2")).await;
        assert_eq!(
            std::mem::discriminant(&r.outcome),
            std::mem::discriminant(&sixth),
            "{to}: the other app's third, the sixth in the second: {r}"
        );
        if matches!(sixth, Outcome::RateLimited { .. }) {
            assert_eq!(r.code, Some(Code::Int(230020)));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn app_wrong_secret_is_permanent_and_sends_nothing() {
    let server = start(app_cfg()).await;
    let dest = app_on(&Client::new().unwrap(), &server, "wrong-secret", &["ou_1"]);
    let r = send_one(&*dest, &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.code, Some(Code::Int(10014)));
    assert!(!r.to_string().contains("wrong-secret"));
    assert!(entries(&server, "im.messages").is_empty());
    server.stop().await;
}

/// Text that a destination splits into exactly `parts` parts of about
/// `part_bytes` each.
fn long_text(parts: usize, part_bytes: usize) -> String {
    let line = "a line of the long report, repeated\n";
    line.repeat(parts * part_bytes / line.len() - parts)
}

#[tokio::test]
async fn eight_parts_to_a_bot_are_paced_within_its_five_a_second() {
    let server = start(MockConfig::default().with_robot(robot("parts"))).await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({
            "type": "feishu_webhook",
            "webhook": format!("{}/open-apis/bot/v2/hook/parts", server.base_url()),
            "base_url": server.base_url(),
            "overflow": {"max_parts": 8},
        }))
        .unwrap();
    let msg = Message::text(long_text(8, 19_000));
    assert_eq!(dest.render(&msg).unwrap().len(), 8);
    let t0 = std::time::Instant::now();
    let reports = deliver(&*dest, &msg).await.unwrap();
    let took = t0.elapsed();
    assert_eq!(reports.len(), 8, "{reports:?}");
    for r in &reports {
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    }
    let log = entries(&server, "bot.hook");
    assert_eq!(log.len(), 8);
    assert!(log.iter().all(|e| e.accepted), "{log:?}");
    assert!(took >= Duration::from_secs(1), "{took:?}");
    server.stop().await;
}

#[tokio::test]
async fn eight_parts_to_one_user_are_paced_within_five_a_second() {
    let server = start(app_cfg()).await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({
            "type": "feishu_app",
            "app_id": APP_ID,
            "app_secret": APP_SECRET,
            "base_url": server.base_url(),
            "recipients": ["ou_parts"],
            "overflow": {"max_parts": 8},
        }))
        .unwrap();
    let msg = Message::text(long_text(8, 140_000));
    assert_eq!(dest.render(&msg).unwrap().len(), 8);
    let reports = deliver(&*dest, &msg).await.unwrap();
    assert_eq!(reports.len(), 8, "{reports:?}");
    for r in &reports {
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    }
    let sent = entries(&server, "im.messages");
    assert_eq!(sent.len(), 8);
    assert!(
        sent.iter().all(|e| e.accepted),
        "{:?}",
        sent.iter().map(|e| &e.code).collect::<Vec<_>>()
    );
    server.stop().await;
}
