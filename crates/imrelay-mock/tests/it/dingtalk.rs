//! DingTalk destinations of the SDK against the running mock, over loopback.

use std::sync::Arc;
use std::time::Duration;

use imrelay_mock::log::Query;
use imrelay_mock::{
    AppConfig, FaultAction, MockConfig, MockPlatform, MockServer, RobotConfig, SignatureCheck,
};
use imrelay_sdk::clock::FixedClock;
use imrelay_sdk::message::{Article, Body, Button, ImageSource};
use imrelay_sdk::outcome::{Code, Outcome};
use imrelay_sdk::{deliver, Client, ClientOptions, Destination, Mentions, Message, Platform};
use serde_json::{json, Value};

use crate::common::{code, control, fault, log, send_one, start};

const DT: MockPlatform = MockPlatform::Dingtalk;

fn build(client: &Client, server: &MockServer, kind: &str, mut cfg: Value) -> Arc<dyn Destination> {
    cfg["type"] = json!(kind);
    cfg["base_url"] = json!(server.base_url());
    client.build(&cfg).unwrap()
}

fn signed_robot_server_config() -> MockConfig {
    MockConfig::default()
        .with_robot(RobotConfig::new(DT, "tok-signed").with_secret("SECmock-secret"))
        .with_robot(RobotConfig::new(DT, "tok-plain"))
}

/// A card with text "c" and `n` buttons B1..Bn.
fn card(n: usize) -> Message {
    Message::new(Body::Card {
        text: "c".into(),
        buttons: (1..=n)
            .map(|i| Button {
                text: format!("B{i}"),
                url: format!("https://x.example.com/{i}"),
            })
            .collect(),
        theme: None,
    })
}

// ------------------------------------------------------------------ robot

#[tokio::test]
async fn robot_signed_send_is_accepted_with_signature_verified() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECmock-secret"}),
    );
    let msg = Message::text("deploy done").with_mentions(Mentions {
        mobiles: vec!["13800000000".into()],
        ..Default::default()
    });
    let r = send_one(robot.as_ref(), &msg).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");

    let entries = log(&server, "robot.send");
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert!(e.accepted);
    assert_eq!(e.signature, SignatureCheck::Verified);
    assert_eq!(e.target, "dingtalk:robot:tok-signed");
    assert_eq!(e.code.as_deref(), Some("0"));
    assert_eq!(
        e.body.as_ref().unwrap()["text"]["content"],
        "deploy done @13800000000"
    );
    assert_eq!(
        e.body.as_ref().unwrap()["at"]["atMobiles"],
        json!(["13800000000"])
    );
    server.stop().await;
}

#[tokio::test]
async fn robot_pasted_webhook_url_without_secret() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let webhook = format!("{}/robot/send?access_token=tok-plain", server.base_url());
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"webhook": webhook}),
    );
    let r = send_one(robot.as_ref(), &Message::markdown("T", "**ok**")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    let e = &log(&server, "robot.send")[0];
    assert_eq!(e.signature, SignatureCheck::NotRequired);
    assert_eq!(e.target, "dingtalk:robot:tok-plain");
}

#[tokio::test]
async fn robot_every_message_type_passes_the_mock_shape_checks() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECmock-secret"}),
    );
    let mut data = std::collections::BTreeMap::new();
    data.insert("host".to_string(), "db-1".to_string());
    let msgs = vec![
        Message::text("t"),
        Message::markdown("M", "# m"),
        Message::new(Body::Link {
            text: "l".into(),
            url: "https://x.example.com".into(),
            pic_url: None,
        }),
        card(1),
        card(3),
        card(0),
        Message::new(Body::News {
            articles: vec![Article {
                title: "a".into(),
                url: "https://a.example.com".into(),
                description: None,
                pic_url: None,
            }],
        }),
        Message::new(Body::Image {
            image: ImageSource::Url("https://x.example.com/i.png".into()),
        }),
        Message::new(Body::Template {
            template_id: "alert".into(),
            data,
            url: None,
        }),
    ];
    for m in &msgs {
        let r = send_one(robot.as_ref(), m).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{}: {r}", m.body.kind());
    }
    let entries = log(&server, "robot.send");
    assert_eq!(entries.len(), msgs.len());
    assert!(entries
        .iter()
        .all(|e| e.accepted && e.signature == SignatureCheck::Verified));
}

#[tokio::test]
async fn robot_bad_signature_gets_310000_sign_not_match() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECwrong"}),
    );
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.code, Some(Code::Int(310000)));
    assert_eq!(r.message, "sign not match");
    assert!(r.hint.as_deref().unwrap().contains("`secret`"));
    let e = &log(&server, "robot.send")[0];
    assert!(!e.accepted);
    assert_eq!(e.signature, SignatureCheck::Failed);
    // An unsigned request to a signing robot fails too.
    let unsigned = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed"}),
    );
    let r = send_one(unsigned.as_ref(), &Message::text("x")).await;
    assert_eq!(r.code, Some(Code::Int(310000)));
}

#[tokio::test]
async fn robot_timestamp_outside_one_hour_gets_invalid_timestamp() {
    let server = start(signed_robot_server_config()).await;
    let two_hours_ago = server.state().now_ms() - 2 * 3_600_000;
    let client = Client::with_options(ClientOptions {
        clock: Arc::new(FixedClock::new(two_hours_ago)),
        ..Default::default()
    })
    .unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECmock-secret"}),
    );
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.code, Some(Code::Int(310000)));
    assert_eq!(r.message, "invalid timestamp");
    assert!(r.hint.as_deref().unwrap().contains("clock"));
    // 59 minutes of skew is still inside the window.
    let client = Client::with_options(ClientOptions {
        clock: Arc::new(FixedClock::new(server.state().now_ms() - 59 * 60_000)),
        ..Default::default()
    })
    .unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECmock-secret"}),
    );
    assert_eq!(
        send_one(robot.as_ref(), &Message::text("x")).await.outcome,
        Outcome::Delivered
    );
}

#[tokio::test]
async fn robot_unknown_token_and_keywords() {
    let mut kw = RobotConfig::new(DT, "tok-kw");
    kw.keywords = vec!["告警".into()];
    let server = start(MockConfig::default().with_robot(kw)).await;
    let client = Client::new().unwrap();
    let unknown = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "nope"}),
    );
    let r = send_one(unknown.as_ref(), &Message::text("x")).await;
    assert_eq!(
        (r.outcome, r.code.clone(), r.message.as_str()),
        (
            Outcome::Permanent,
            Some(Code::Int(300001)),
            "token is not exist"
        )
    );

    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-kw"}),
    );
    let r = send_one(robot.as_ref(), &Message::text("disk full")).await;
    assert_eq!(r.code, Some(Code::Int(310000)));
    assert_eq!(r.message, "keywords not in content");
    assert!(r.hint.as_deref().unwrap().contains("keywords"));
    let r = send_one(robot.as_ref(), &Message::text("告警: disk full")).await;
    assert_eq!(r.outcome, Outcome::Delivered);
}

#[tokio::test]
async fn robot_21st_message_in_a_minute_gets_130101_and_the_robot_is_blocked() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-plain"}),
    );
    for i in 0..20 {
        let r = send_one(robot.as_ref(), &Message::text(format!("m{i}"))).await;
        assert_eq!(r.outcome, Outcome::Delivered, "message {i}: {r}");
    }
    let r = send_one(robot.as_ref(), &Message::text("m20")).await;
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(60)
        }
    );
    assert_eq!(r.code, Some(Code::Int(130101)));
    assert_eq!(r.message, "send too fast, exceed 20 times per minute");
    // A minute later the window has passed, but the 10-minute block has not.
    server.state().advance_clock(61_000);
    let r = send_one(robot.as_ref(), &Message::text("m21")).await;
    assert_eq!(r.code, Some(Code::Int(130101)));
    server.state().advance_clock(10 * 60_000);
    let r = send_one(robot.as_ref(), &Message::text("m22")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    let rejected = server.state().log.query(&Query {
        accepted: Some(false),
        ..Default::default()
    });
    assert_eq!(rejected.len(), 2);
    assert!(rejected.iter().all(|e| e.code.as_deref() == Some("130101")));
}

#[tokio::test]
async fn robot_body_limit_matches_the_sdk_split() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-signed", "secret": "SECmock-secret"}),
    );
    // 36,000 bytes of Chinese with quotes and newlines (escaped in JSON): split to fit.
    let text = "磁盘\"告警\"\n".repeat(3_000);
    let reports = deliver(robot.as_ref(), &Message::text(&text))
        .await
        .unwrap();
    assert!(reports.len() >= 2);
    assert!(
        reports.iter().all(|r| r.outcome == Outcome::Delivered),
        "{reports:?}"
    );
    // A raw body over the limit is refused with DingTalk's code.
    let raw = Message::new(Body::Raw {
        platform: Some(Platform::Dingtalk),
        payload: json!({"msgtype": "text", "text": {"content": "字".repeat(7_000)}}),
    });
    let r = send_one(robot.as_ref(), &raw).await;
    assert_eq!(
        (r.outcome, r.code),
        (Outcome::Permanent, Some(Code::Int(460101)))
    );
    // So is an unknown msgtype.
    let raw = Message::new(Body::Raw {
        platform: None,
        payload: json!({"msgtype": "image", "image": {"picURL": "x"}}),
    });
    let r = send_one(robot.as_ref(), &raw).await;
    assert_eq!(
        (r.outcome, r.code),
        (Outcome::Permanent, Some(Code::Int(400105)))
    );
}

#[tokio::test]
async fn robot_injected_redirect_and_oversize_answers_are_refused_by_the_sdk() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-plain"}),
    );
    let target = "dingtalk:robot:tok-plain";
    // Redirected to another robot of the same mock: it must hear nothing.
    let elsewhere = format!("{}/robot/send?access_token=tok-signed", server.base_url());
    fault(
        &server,
        target,
        FaultAction::Redirect {
            redirect_to: elsewhere.clone(),
            redirect_status: 302,
        },
        1,
    );
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Permanent, "{r}");
    assert_eq!(r.status, Some(302));
    assert!(r.message.contains(&elsewhere), "{r}");

    fault(
        &server,
        target,
        FaultAction::Oversize {
            oversize_bytes: 10 << 20,
        },
        1,
    );
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Retry { after: None }, "{r}");
    assert!(r.message.contains("answer larger than 256 KiB"), "{r}");

    let sent = log(&server, "robot.send");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0].code.as_deref(), Some("http 302"));
    assert!(sent.iter().all(|e| !e.accepted && e.target == target));
    // The fault is spent: the next send goes through.
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
}

#[tokio::test]
async fn robot_injected_faults_map_to_each_class() {
    let server = start(signed_robot_server_config()).await;
    let client = Client::new().unwrap();
    let robot = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-plain"}),
    );
    let target = "dingtalk:robot:tok-plain";
    let cases = [
        (
            FaultAction::Code {
                code: -1,
                msg: Some("系统繁忙".into()),
            },
            Outcome::Retry { after: None },
        ),
        (
            code(130101),
            Outcome::RateLimited {
                wait: Duration::from_secs(60),
            },
        ),
        (
            code(410100),
            Outcome::RateLimited {
                wait: Duration::from_secs(60),
            },
        ),
        (code(400102), Outcome::Permanent),
        (code(999999), Outcome::Permanent),
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
    for (action, expected) in cases {
        fault(&server, target, action.clone(), 1);
        let r = send_one(robot.as_ref(), &Message::text("x")).await;
        assert_eq!(r.outcome, expected, "{action:?}: {r}");
    }
    // Faults are used up: the next send goes through.
    assert_eq!(
        send_one(robot.as_ref(), &Message::text("x")).await.outcome,
        Outcome::Delivered
    );
}

#[tokio::test]
async fn faults_can_be_posted_over_the_control_api() {
    let server = start(signed_robot_server_config()).await;
    let resp = control(
        &server,
        "faults",
        &json!({"target": "dingtalk:robot:tok-plain", "code": 130101, "count": 1}),
    )
    .await;
    assert!(resp.status().is_success());
    let robot = build(
        &Client::new().unwrap(),
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-plain"}),
    );
    let r = send_one(robot.as_ref(), &Message::text("x")).await;
    assert_eq!(r.code, Some(Code::Int(130101)));
}

// ------------------------------------------------------------------ apps

fn app_server_config() -> MockConfig {
    MockConfig::default().with_app(AppConfig::new(DT, "dingapp", "app-secret"))
}

fn work_notice(client: &Client, server: &MockServer, token_api: &str) -> Arc<dyn Destination> {
    build(
        client,
        server,
        "dingtalk_app",
        json!({"app_key": "dingapp", "app_secret": "app-secret", "agent_id": 42, "token_api": token_api, "recipients": ["manager1"]}),
    )
}

fn app_robot(client: &Client, server: &MockServer) -> Arc<dyn Destination> {
    build(
        client,
        server,
        "dingtalk_app",
        json!({"app_key": "dingapp", "app_secret": "app-secret", "mode": "robot", "recipients": ["manager1"]}),
    )
}

#[tokio::test]
async fn work_notice_with_v1_and_legacy_tokens() {
    for token_api in ["v1", "legacy"] {
        let server = start(app_server_config()).await;
        let client = Client::new().unwrap();
        let dest = work_notice(&client, &server, token_api);
        let r = send_one(dest.as_ref(), &Message::markdown("T", "**hello**")).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{token_api}: {r}");
        assert!(
            r.platform_message_id
                .as_deref()
                .is_some_and(|id| id.parse::<u64>().is_ok()),
            "{r:?}"
        );
        let tokens = log(&server, "token");
        assert_eq!(tokens.len(), 1, "{token_api}");
        assert!(tokens[0].accepted);
        assert_eq!(tokens[0].target, "dingtalk:app:dingapp");
        let sends = log(&server, "work_notice");
        assert_eq!(sends.len(), 1);
        assert!(sends[0].accepted && !sends[0].duplicate);
        assert_eq!(sends[0].body.as_ref().unwrap()["userid_list"], "manager1");
        // The same content to the same user again: accepted, dropped as a duplicate.
        let r = send_one(dest.as_ref(), &Message::markdown("T", "**hello**")).await;
        assert_eq!(r.outcome, Outcome::Delivered);
        assert!(log(&server, "work_notice")[1].duplicate);
        server.stop().await;
    }
}

#[tokio::test]
async fn token_expired_mid_run_is_refreshed_once_and_the_send_retried() {
    for mode in ["work_notice", "robot"] {
        let server = start(app_server_config()).await;
        let client = Client::new().unwrap();
        let dest = if mode == "robot" {
            app_robot(&client, &server)
        } else {
            work_notice(&client, &server, "v1")
        };
        assert_eq!(
            send_one(dest.as_ref(), &Message::text("one")).await.outcome,
            Outcome::Delivered
        );
        let expired = control(&server, "tokens/expire", &json!({"platform": "dingtalk"})).await;
        assert!(expired.status().is_success());
        let r = send_one(dest.as_ref(), &Message::text("two")).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{mode}: {r}");
        assert_eq!(
            log(&server, "token").len(),
            2,
            "{mode}: exactly one refresh"
        );
        let endpoint = if mode == "robot" {
            "robot.batch_send"
        } else {
            "work_notice"
        };
        let sends = log(&server, endpoint);
        let codes: Vec<_> = sends.iter().map(|e| e.code.clone().unwrap()).collect();
        let expired_code = if mode == "robot" {
            "InvalidAuthentication"
        } else {
            "42001"
        };
        assert_eq!(codes, vec!["0", expired_code, "0"], "{mode}");
        assert_eq!(
            client
                .tokens()
                .stats()
                .invalidations
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn app_injected_faults_map_to_each_class() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    let wn = work_notice(&client, &server, "legacy");
    let rb = app_robot(&client, &server);
    let target = "dingtalk:app:dingapp";
    // Warm the token so faults hit the sends.
    assert_eq!(
        send_one(wn.as_ref(), &Message::text("warm")).await.outcome,
        Outcome::Delivered
    );
    let cases: Vec<(&Arc<dyn Destination>, FaultAction, u64, Outcome)> = vec![
        (&wn, code(-1), 1, Outcome::Retry { after: None }),
        (&wn, code(60011), 1, Outcome::Permanent),
        (
            &wn,
            FaultAction::Http { http_status: 502 },
            1,
            Outcome::Retry { after: None },
        ),
        // A token code twice: refreshed once, still rejected.
        (&wn, code(40014), 2, Outcome::RefreshToken),
        (
            &rb,
            code(130101),
            1,
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
        ),
        (&rb, code(42001), 2, Outcome::RefreshToken),
        (
            &rb,
            FaultAction::Http { http_status: 503 },
            1,
            Outcome::Retry { after: None },
        ),
        (&rb, code(12345), 1, Outcome::Permanent),
    ];
    for (dest, action, count, expected) in cases {
        fault(&server, target, action.clone(), count);
        let r = send_one(dest.as_ref(), &Message::text(format!("{action:?}"))).await;
        assert_eq!(r.outcome, expected, "{} {action:?}: {r}", dest.id());
        assert!(
            !r.message.contains("dingtalk-"),
            "no token in the report: {}",
            r.message
        );
    }
    // A token code once: refreshed, and the retry succeeds.
    fault(&server, target, code(42001), 1);
    assert_eq!(
        send_one(wn.as_ref(), &Message::text("after")).await.outcome,
        Outcome::Delivered
    );
}

#[tokio::test]
async fn batch_send_partial_failures_are_reported_per_recipient() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    let dest = app_robot(&client, &server);
    let msg = Message::text("hi").with_recipients(vec![
        "u1".into(),
        "invalid-x".into(),
        "throttled-y".into(),
        "u2".into(),
    ]);
    let r = send_one(dest.as_ref(), &msg).await;
    assert_eq!(r.outcome, Outcome::Delivered);
    assert!(r
        .platform_message_id
        .as_deref()
        .unwrap()
        .starts_with("mock-pqk-"));
    let failed: Vec<(&str, Outcome)> = r
        .failed_recipients
        .iter()
        .map(|f| (f.recipient.as_str(), f.outcome))
        .collect();
    assert_eq!(
        failed,
        vec![
            (
                "throttled-y",
                Outcome::RateLimited {
                    wait: Duration::from_secs(60)
                }
            ),
            ("invalid-x", Outcome::Permanent),
        ]
    );
    let e = &log(&server, "robot.batch_send")[0];
    assert!(e.accepted);
    assert_eq!(e.body.as_ref().unwrap()["msgKey"], "sampleText");
    assert!(e.body.as_ref().unwrap()["msgParam"].is_string());
}

#[tokio::test]
async fn batch_send_bad_parameters_are_permanent() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    let dest = app_robot(&client, &server);
    let raw = Message::new(Body::Raw {
        platform: None,
        payload: json!({"msgKey": "sampleNope", "msgParam": {"x": 1}}),
    });
    let r = send_one(dest.as_ref(), &raw).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.status, Some(400));
    assert_eq!(
        r.code,
        Some(Code::Name("invalidParameter.msgKey.invalid".into()))
    );
}

#[tokio::test]
async fn app_every_message_type_passes_the_mock_shape_checks() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    let wn = work_notice(&client, &server, "v1");
    let rb = app_robot(&client, &server);
    let msgs = vec![
        Message::text("t"),
        Message::markdown("M", "# m"),
        Message::new(Body::Link {
            text: "l".into(),
            url: "https://x.example.com".into(),
            pic_url: Some("https://x.example.com/p.png".into()),
        }),
        card(1),
        card(2),
        card(5),
        card(7),
        Message::new(Body::News {
            articles: vec![Article {
                title: "a".into(),
                url: "https://a.example.com".into(),
                description: Some("d".into()),
                pic_url: None,
            }],
        }),
        Message::new(Body::Image {
            image: ImageSource::Url("https://x.example.com/i.png".into()),
        }),
    ];
    for dest in [&wn, &rb] {
        for m in &msgs {
            let r = send_one(dest.as_ref(), m).await;
            assert_eq!(
                r.outcome,
                Outcome::Delivered,
                "{} {}: {r}",
                dest.id(),
                m.body.kind()
            );
        }
    }
    let all = server.state().log.query(&Query {
        accepted: Some(false),
        ..Default::default()
    });
    assert!(all.is_empty(), "{all:?}");
}

#[tokio::test]
async fn wrong_app_secret_is_permanent_and_names_the_fields() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    for token_api in ["v1", "legacy"] {
        let dest = build(
            &client,
            &server,
            "dingtalk_app",
            json!({"app_key": "dingapp", "app_secret": "wrong", "agent_id": 42, "token_api": token_api, "recipients": ["u"]}),
        );
        let r = send_one(dest.as_ref(), &Message::text("x")).await;
        assert_eq!(r.outcome, Outcome::Permanent, "{token_api}: {r}");
        assert!(r.message.starts_with("fetching the access token"), "{r}");
        assert!(r.hint.as_deref().unwrap().contains("`app_secret`"));
        assert!(!r.to_string().contains("wrong"), "{r}");
    }
    assert!(log(&server, "work_notice").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_sends_share_one_token_fetch() {
    let server = start(app_server_config()).await;
    let client = Client::new().unwrap();
    let dest = app_robot(&client, &server);
    let msgs: Vec<Message> = (0..1000)
        .map(|i| Message::text(format!("m{i}")).with_recipients(vec![format!("u{i}")]))
        .collect();
    let sends = msgs.iter().map(|m| {
        let dest = dest.clone();
        async move { deliver(dest.as_ref(), m).await.unwrap() }
    });
    let reports = futures::future::join_all(sends).await;
    assert!(reports
        .iter()
        .flatten()
        .all(|r| r.outcome == Outcome::Delivered));
    assert_eq!(log(&server, "token").len(), 1);
    assert_eq!(log(&server, "robot.batch_send").len(), 1000);
    server.stop().await;
}

#[tokio::test]
async fn robot_keywords_setting_gets_every_msgtype_past_a_keyword_robot() {
    let mut kw = RobotConfig::new(DT, "tok-kw");
    kw.keywords = vec!["告警".into()];
    let server = start(MockConfig::default().with_robot(kw)).await;
    let client = Client::new().unwrap();
    let bare = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-kw"}),
    );
    let keyworded = build(
        &client,
        &server,
        "dingtalk_robot",
        json!({"access_token": "tok-kw", "keywords": ["告警"]}),
    );
    let article = |t: &str| Article {
        title: t.into(),
        url: format!("https://x.example.com/{t}"),
        description: None,
        pic_url: None,
    };
    let messages = [
        Message::text("disk full"),
        Message::markdown("Disk", "### db-1\n> full"),
        Message::new(Body::Link {
            text: "build #42 failed".into(),
            url: "https://ci.example.com/42".into(),
            pic_url: None,
        })
        .with_title("CI"),
        card(1),
        card(2),
        Message::new(Body::News {
            articles: vec![article("A"), article("B")],
        }),
    ];
    for msg in &messages {
        let r = send_one(bare.as_ref(), msg).await;
        assert_eq!(r.code, Some(Code::Int(310000)), "{msg:?} without keywords");
        let r = send_one(keyworded.as_ref(), msg).await;
        assert_eq!(r.outcome, Outcome::Delivered, "{msg:?}: {r}");
    }
}
