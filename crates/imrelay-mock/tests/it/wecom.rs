//! WeCom destinations of the SDK against the running mock: success paths, every
//! error class, token expiry and refresh, single-flight token fetches, partial
//! failures, the duplicate check, and the mock's own limits and validation.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use imrelay_mock::{
    AppConfig, FaultAction, MockConfig, MockPlatform, MockServer, RobotConfig, SignatureCheck,
};
use imrelay_sdk::message::{Article, Body, Button, ImageSource, Mentions};
use imrelay_sdk::outcome::{Code, Outcome};
use imrelay_sdk::{deliver, Client, Destination, Message, Platform};
use serde_json::json;

use crate::common::{code, control, fault, log, send_one, start};

const KEY: &str = "0b7c-robot-key";
const CORP: &str = "ww-mock-corp";
const SECRET: &str = "corp-secret-1";

async fn server() -> MockServer {
    let cfg = MockConfig::default()
        .with_robot(RobotConfig::new(MockPlatform::Wecom, KEY))
        .with_app(AppConfig::new(MockPlatform::Wecom, CORP, SECRET));
    start(cfg).await
}

fn client() -> Client {
    Client::new().unwrap()
}

fn robot(client: &Client, server: &MockServer, key: &str) -> Arc<dyn Destination> {
    client
        .build(
            &json!({"type": "wecom_robot", "base_url": server.base_url(),
            "webhook": format!("{}/cgi-bin/webhook/send?key={key}", server.base_url())}),
        )
        .unwrap()
}

fn app(client: &Client, server: &MockServer, secret: &str) -> Arc<dyn Destination> {
    client
        .build(
            &json!({"type": "wecom_app", "base_url": server.base_url(), "corp_id": CORP,
            "corp_secret": secret, "agent_id": 1000002, "recipients": ["zhangsan"]}),
        )
        .unwrap()
}

const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

fn every_body_kind() -> Vec<Message> {
    let button = |i: usize| Button {
        text: format!("b{i}"),
        url: format!("https://e.com/{i}"),
    };
    vec![
        Message::text("disk full").with_mentions(Mentions {
            all: true,
            mobiles: vec!["13800001111".into()],
            user_ids: vec!["wangqing".into()],
            ..Default::default()
        }),
        Message::markdown("t", "**磁盘** 告警").with_mentions(Mentions {
            user_ids: vec!["wangqing".into()],
            ..Default::default()
        }),
        Message::new(Body::Image {
            image: ImageSource::Base64(base64::engine::general_purpose::STANDARD.encode(PNG)),
        }),
        Message::new(Body::Link {
            text: "summary".into(),
            url: "https://e.com".into(),
            pic_url: None,
        }),
        Message::new(Body::News {
            articles: vec![Article {
                title: "a".into(),
                url: "https://e.com/a".into(),
                description: Some("d".into()),
                pic_url: None,
            }],
        }),
        Message::new(Body::Card {
            text: "CPU 95%".into(),
            buttons: vec![button(1), button(2)],
            theme: None,
        })
        .with_title("High CPU"),
        Message::new(Body::Card {
            text: "no buttons".into(),
            buttons: vec![],
            theme: None,
        }),
    ]
}

#[tokio::test]
async fn robot_sends_every_body_kind() {
    let server = server().await;
    let client = client();
    let r = robot(&client, &server, KEY);
    let msgs = every_body_kind();
    for m in &msgs {
        let rep = send_one(&*r, m).await;
        assert!(rep.is_complete_success(), "{m:?}: {rep}");
    }
    let entries = log(&server, "robot.send");
    assert_eq!(entries.len(), msgs.len());
    for e in &entries {
        assert!(e.accepted, "{e:?}");
        assert_eq!(e.target, format!("wecom:robot:{KEY}"));
        assert_eq!(e.signature, SignatureCheck::NotRequired);
    }
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e.body.as_ref().unwrap()["msgtype"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "text",
            "markdown",
            "image",
            "news",
            "news",
            "template_card",
            "markdown"
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn robot_markdown_v2_and_split_text_are_accepted() {
    let server = server().await;
    let client = client();
    let r = client
        .build(&json!({"type": "wecom_robot", "base_url": server.base_url(), "key": KEY, "markdown": "v2"}))
        .unwrap();
    let rep = send_one(
        &*r,
        &Message::markdown("t", "# 标题\n| a | b |\n|---|---|\n| 1 | 2 |"),
    )
    .await;
    assert!(rep.is_complete_success(), "{rep}");
    // 3000 Chinese characters = 9000 bytes: split into parts the mock accepts (≤ 2048 B each).
    let reports = deliver(&*r, &Message::text("告".repeat(3000)))
        .await
        .unwrap();
    assert_eq!(reports.len(), 5);
    assert!(reports.iter().all(|r| r.is_complete_success()));
    assert!(log(&server, "robot.send").iter().all(|e| e.accepted));
    server.stop().await;
}

#[tokio::test]
async fn robot_unknown_key_is_93000() {
    let server = server().await;
    let client = client();
    let r = robot(&client, &server, "no-such-key");
    let rep = send_one(&*r, &Message::text("x")).await;
    assert_eq!(rep.outcome, Outcome::Permanent);
    assert_eq!(rep.code, Some(Code::Int(93000)));
    assert!(
        rep.message.starts_with("invalid webhook url, hint: ["),
        "{}",
        rep.message
    );
    assert!(rep
        .message
        .contains("more info at https://open.work.weixin.qq.com/devtool/query?e=93000"));
    // The key is in the URL, never in the report.
    assert!(!rep.to_string().contains("no-such-key"));
    let e = &log(&server, "robot.send")[0];
    assert!(!e.accepted);
    assert_eq!(e.code.as_deref(), Some("93000"));
    server.stop().await;
}

#[tokio::test]
async fn robot_21st_message_in_a_minute_is_45009() {
    let server = server().await;
    let client = client();
    let r = robot(&client, &server, KEY);
    for i in 0..20 {
        let rep = send_one(&*r, &Message::text(format!("m{i}"))).await;
        assert!(rep.is_complete_success(), "message {i}: {rep}");
    }
    let rep = send_one(&*r, &Message::text("m20")).await;
    assert_eq!(
        rep.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(60)
        }
    );
    assert_eq!(rep.code, Some(Code::Int(45009)));
    assert!(
        rep.message.starts_with("api freq out of limit"),
        "{}",
        rep.message
    );
    assert_eq!(r.rate_limits(), vec![imrelay_sdk::Quota::per_minute(20)]);
    server.stop().await;
}

#[tokio::test]
async fn mock_validates_robot_messages_with_the_real_codes() {
    let server = server().await;
    let client = client();
    let r = robot(&client, &server, KEY);
    let raw = |payload: serde_json::Value| {
        Message::new(Body::Raw {
            platform: Some(Platform::Wecom),
            payload,
        })
    };
    let cases = [
        (json!({"msgtype": "sticker", "sticker": {}}), 40008),
        (json!({"text": {"content": "no msgtype"}}), 40008),
        (json!({"msgtype": "text", "text": {"content": ""}}), 44004),
        (
            json!({"msgtype": "text", "text": {"content": "x".repeat(2049)}}),
            40058,
        ),
        (
            json!({"msgtype": "markdown", "markdown": {"content": "告".repeat(1366)}}),
            40058,
        ),
        (
            json!({"msgtype": "image", "image": {"base64": base64::engine::general_purpose::STANDARD.encode(PNG),
            "md5": "00000000000000000000000000000000"}}),
            301019,
        ),
        (json!({"msgtype": "news", "news": {"articles": []}}), 40058),
        (
            json!({"msgtype": "template_card", "template_card": {"card_type": "nope"}}),
            40058,
        ),
    ];
    for (payload, code) in cases {
        let rep = send_one(&*r, &raw(payload.clone())).await;
        assert_eq!(rep.outcome, Outcome::Permanent, "{payload}: {rep}");
        assert_eq!(rep.code, Some(Code::Int(code)), "{payload}: {rep}");
    }
    let rep = send_one(
        &*r,
        &raw(json!({"msgtype": "markdown", "markdown": {"content": "告".repeat(1366)}})),
    )
    .await;
    assert!(
        rep.message
            .starts_with("markdown.content exceed max length 4096"),
        "{}",
        rep.message
    );
    // Exactly at the limits is fine.
    let ok = send_one(
        &*r,
        &raw(json!({"msgtype": "markdown", "markdown": {"content": "告".repeat(1365)}})),
    )
    .await;
    assert!(ok.is_complete_success(), "{ok}");
    server.stop().await;
}

#[tokio::test]
async fn injected_codes_map_to_each_class() {
    let server = server().await;
    let client = client();
    let r = robot(&client, &server, KEY);
    let target = format!("wecom:robot:{KEY}");

    fault(&server, &target, code(-1), 1);
    assert_eq!(
        send_one(&*r, &Message::text("x")).await.outcome,
        Outcome::Retry { after: None }
    );
    fault(&server, &target, code(45009), 1);
    assert_eq!(
        send_one(&*r, &Message::text("x")).await.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(60)
        }
    );
    fault(&server, &target, code(40058), 1);
    assert_eq!(
        send_one(&*r, &Message::text("x")).await.outcome,
        Outcome::Permanent
    );
    fault(&server, &target, FaultAction::Http { http_status: 503 }, 1);
    let rep = send_one(&*r, &Message::text("x")).await;
    assert_eq!(
        (rep.outcome, rep.status),
        (Outcome::Retry { after: None }, Some(503))
    );

    // Token class on the app: two rejections in a row (the refresh-and-retry
    // also fails) surface as RefreshToken. Posted over the control API.
    let a = app(&client, &server, SECRET);
    let resp = control(
        &server,
        "faults",
        &json!({"target": format!("wecom:app:{CORP}"), "code": 40014, "count": 2}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let rep = send_one(&*a, &Message::text("x")).await;
    assert_eq!(rep.outcome, Outcome::RefreshToken);
    assert_eq!(rep.code, Some(Code::Int(40014)));
    // Once the fault is spent the app delivers.
    assert!(send_one(&*a, &Message::text("y"))
        .await
        .is_complete_success());
    server.stop().await;
}

#[tokio::test]
async fn app_sends_every_body_kind() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    let mut msgs = every_body_kind();
    // App images are media ids; drop the robot's base64 image.
    msgs.remove(2);
    msgs.push(Message::new(Body::Image {
        image: ImageSource::Key("MEDIA_ID".into()),
    }));
    for m in &msgs {
        let rep = send_one(&*a, m).await;
        assert!(rep.is_complete_success(), "{m:?}: {rep}");
        assert!(rep
            .platform_message_id
            .as_deref()
            .is_some_and(|id| id.starts_with("mock_")));
    }
    let sends = log(&server, "message.send");
    assert_eq!(sends.len(), msgs.len());
    assert!(sends
        .iter()
        .all(|e| e.accepted && e.target == format!("wecom:app:{CORP}")));
    let types: Vec<&str> = sends
        .iter()
        .map(|e| e.body.as_ref().unwrap()["msgtype"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "text",
            "markdown",
            "textcard",
            "news",
            "template_card",
            "markdown",
            "image"
        ]
    );
    // One token for all of them.
    assert_eq!(log(&server, "token").len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn expired_token_is_refreshed_once_and_the_send_retried() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    assert!(send_one(&*a, &Message::text("before"))
        .await
        .is_complete_success());
    let resp = control(&server, "tokens/expire", &json!({"platform": "wecom"})).await;
    assert_eq!(
        resp.json::<serde_json::Value>().await.unwrap()["expired"],
        1
    );
    let rep = send_one(&*a, &Message::text("after")).await;
    assert!(rep.is_complete_success(), "{rep}");
    assert_eq!(log(&server, "token").len(), 2, "exactly one refresh");
    let sends = log(&server, "message.send");
    let codes: Vec<&str> = sends.iter().map(|e| e.code.as_deref().unwrap()).collect();
    assert_eq!(codes, ["0", "42001", "0"]);
    server.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_sends_fetch_one_token() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move {
                let msg = Message::text(format!("m{i}")).with_recipients(vec![format!("user{i}")]);
                send_one(&*a, &msg).await
            })
        })
        .collect();
    for t in tasks {
        let rep = t.await.unwrap();
        assert!(rep.is_complete_success(), "{rep}");
    }
    assert_eq!(log(&server, "token").len(), 1);
    assert_eq!(
        log(&server, "message.send")
            .iter()
            .filter(|e| e.accepted)
            .count(),
        1000
    );
    assert_eq!(
        client
            .tokens()
            .stats()
            .fetches_ok
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn partial_failures_are_reported_per_recipient() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    let msg = Message::text("x").with_recipients(vec![
        "zhangsan".into(),
        "invalid_a".into(),
        "unlicensed_b".into(),
        "party:invalid_p".into(),
        "party:2".into(),
        "tag:invalid_t".into(),
    ]);
    let rep = send_one(&*a, &msg).await;
    assert_eq!(rep.outcome, Outcome::Delivered);
    let failed: Vec<(&str, Outcome)> = rep
        .failed_recipients
        .iter()
        .map(|f| (f.recipient.as_str(), f.outcome))
        .collect();
    assert_eq!(
        failed,
        [
            ("invalid_a", Outcome::Permanent),
            ("party:invalid_p", Outcome::Permanent),
            ("tag:invalid_t", Outcome::Permanent),
            ("unlicensed_b", Outcome::Permanent),
        ]
    );
    // Everyone invalid: 81013, permanent.
    let rep = send_one(
        &*a,
        &Message::text("y").with_recipients(vec!["invalid_1".into(), "invalid_2".into()]),
    )
    .await;
    assert_eq!(rep.outcome, Outcome::Permanent);
    assert_eq!(rep.code, Some(Code::Int(81013)));
    server.stop().await;
}

#[tokio::test]
async fn a_retried_app_message_is_not_delivered_twice() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    assert!(a.dedups_retries());
    let payloads = a
        .render(&Message::text("deploy v1.2 done").with_id("m-1"))
        .unwrap();
    // The first answer was lost (say); the caller retries the same payload.
    assert!(a.send(&payloads[0]).await.is_complete_success());
    assert!(a.send(&payloads[0]).await.is_complete_success());
    let sends = log(&server, "message.send");
    assert_eq!(sends.len(), 2);
    assert!(!sends[0].duplicate);
    assert!(sends[1].duplicate && sends[1].accepted);
    assert_eq!(
        server.state().log.counts()[&format!("wecom:app:{CORP}")].duplicates,
        1
    );
    // Delivered once: one accepted send that is not a duplicate.
    assert_eq!(
        sends.iter().filter(|e| e.accepted && !e.duplicate).count(),
        1
    );
    server.stop().await;
}

#[tokio::test]
async fn app_per_member_limit_is_45009() {
    let server = server().await;
    let client = client();
    let a = app(&client, &server, SECRET);
    for i in 0..30 {
        assert!(send_one(&*a, &Message::text(format!("m{i}")))
            .await
            .is_complete_success());
    }
    let rep = send_one(&*a, &Message::text("m30")).await;
    assert_eq!(
        rep.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(60)
        }
    );
    assert_eq!(rep.code, Some(Code::Int(45009)));
    // Another member is not affected.
    let other = Message::text("m31").with_recipients(vec!["lisi".into()]);
    assert!(send_one(&*a, &other).await.is_complete_success());
    server.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_permanent() {
    let server = server().await;
    let client = client();
    let rep = send_one(&*app(&client, &server, "wrong-secret"), &Message::text("x")).await;
    assert_eq!(rep.outcome, Outcome::Permanent);
    assert_eq!(rep.code, Some(Code::Int(40001)));
    assert!(!rep.to_string().contains("wrong-secret"));
    let other_corp = client
        .build(
            &json!({"type": "wecom_app", "base_url": server.base_url(), "corp_id": "ww-nobody",
            "corp_secret": SECRET, "agent_id": 1, "recipients": ["a"]}),
        )
        .unwrap();
    let rep = send_one(&*other_corp, &Message::text("x")).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(40013)))
    );
    // No message was sent, and the token log holds no secret.
    assert!(log(&server, "message.send").is_empty());
    for e in log(&server, "token") {
        assert!(
            !e.body.unwrap().to_string().contains("secret"),
            "secret in the log"
        );
    }
    server.stop().await;
}
