//! Urgent pushes, SDK against the mock: Feishu 加急 about a sent message
//! (pushed, a user outside the chat listed, another app's and a recalled
//! message refused, the paid quota exhausted) and DingTalk DING (sent, an
//! unknown user listed, the quota exhausted).

use std::sync::Arc;

use imrelay_mock::config::{AppConfig, MockConfig, MockPlatform};
use imrelay_mock::MockServer;
use imrelay_sdk::lifecycle::UrgentKind;
use imrelay_sdk::{deliver, Client, Code, Destination, Message, Outcome, Report, SentPart};
use serde_json::{json, Value};

use crate::common::{http, log, start};

const SECRET: &str = "app-secret";

fn feishu(server: &MockServer, app_id: &str, recipient: &str) -> Arc<dyn Destination> {
    Client::new()
        .unwrap()
        .build(&json!({
            "type": "feishu_app",
            "app_id": app_id,
            "app_secret": SECRET,
            "base_url": server.base_url(),
            "recipients": [recipient],
        }))
        .unwrap()
}

fn ding(server: &MockServer, app_key: &str) -> Arc<dyn Destination> {
    Client::new()
        .unwrap()
        .build(&json!({
            "type": "dingtalk_app",
            "app_key": app_key,
            "app_secret": SECRET,
            "mode": "robot",
            "base_url": server.base_url(),
            "recipients": ["manager1234"],
        }))
        .unwrap()
}

fn quota(app: AppConfig, n: u64) -> AppConfig {
    AppConfig {
        urgent_quota: Some(n),
        ..app
    }
}

fn cfg() -> MockConfig {
    MockConfig::default()
        .with_app(quota(
            AppConfig::new(MockPlatform::Feishu, "cli_a", SECRET),
            1,
        ))
        .with_app(AppConfig::new(MockPlatform::Feishu, "cli_b", SECRET))
        .with_app(quota(
            AppConfig::new(MockPlatform::Dingtalk, "dingkey", SECRET),
            0,
        ))
}

/// Send one message and keep what the caller keeps of it.
async fn send(d: &dyn Destination, recipient: &str) -> SentPart {
    let reports = deliver(d, &Message::text("disk full on db-1"))
        .await
        .unwrap();
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    SentPart {
        platform_message_id: r.platform_message_id.clone().unwrap(),
        update_token: None,
        sent_at_ms: 0,
        recipients: vec![recipient.into()],
    }
}

async fn mock_message(server: &MockServer, id: &str) -> Value {
    http()
        .get(format!("{}/_mock/messages/{id}", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn urgent(d: &dyn Destination, sent: &SentPart, kind: UrgentKind, users: &[&str]) -> Report {
    let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
    d.urgent(sent, kind, &users, "disk full on db-1")
        .await
        .unwrap()
}

fn refused_with(r: &Report, code: i64) {
    assert_eq!(r.outcome, Outcome::Permanent, "{r:?}");
    assert_eq!(r.code, Some(Code::Int(code)), "{r:?}");
}

#[tokio::test]
async fn feishu_pushes_the_recipient_and_lists_users_outside_the_chat() {
    let server = start(cfg()).await;
    let d = feishu(&server, "cli_a", "ou_alice");
    let sent = send(&*d, "ou_alice").await;

    let r = urgent(&*d, &sent, UrgentKind::Phone, &["ou_alice", "ou_bob"]).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let failed: Vec<_> = r
        .failed_recipients
        .iter()
        .map(|f| f.recipient.as_str())
        .collect();
    assert_eq!(failed, ["ou_bob"], "ou_bob never got the message");

    let m = mock_message(&server, &sent.platform_message_id).await;
    assert_eq!(m["urgent"].as_array().unwrap().len(), 1);
    assert_eq!(m["urgent"][0]["kind"], "phone");
    assert_eq!(m["urgent"][0]["users"], json!(["ou_alice"]));
    let entries = log(&server, "im.messages.urgent_phone");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].body.as_ref().unwrap()["user_id_list"],
        json!(["ou_alice", "ou_bob"])
    );

    // Nobody valid: Feishu answers 230001 and pushes nothing.
    let none = urgent(&*d, &sent, UrgentKind::App, &["ou_bob"]).await;
    refused_with(&none, 230001);
    let m = mock_message(&server, &sent.platform_message_id).await;
    assert_eq!(m["urgent"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn feishu_refuses_the_quota_past_its_end_another_apps_message_and_a_recalled_one() {
    let server = start(cfg()).await;
    let a = feishu(&server, "cli_a", "chat_id:oc_ops");
    let sent = send(&*a, "chat_id:oc_ops").await;

    // A quota of one paid push: the SMS takes it, the phone call finds none;
    // app pushes are free.
    let sms = urgent(&*a, &sent, UrgentKind::Sms, &["ou_alice"]).await;
    assert_eq!(sms.outcome, Outcome::Delivered, "{sms:?}");
    let phone = urgent(&*a, &sent, UrgentKind::Phone, &["ou_alice"]).await;
    refused_with(&phone, 230024);
    assert!(phone.hint.as_deref().unwrap().contains("quota"));
    let app = urgent(&*a, &sent, UrgentKind::App, &["ou_alice", "ou_outside_1"]).await;
    assert_eq!(app.outcome, Outcome::Delivered);
    assert_eq!(app.failed_recipients[0].recipient, "ou_outside_1");

    // The bot pushes only its own messages.
    let b = feishu(&server, "cli_b", "chat_id:oc_ops");
    refused_with(
        &urgent(&*b, &sent, UrgentKind::App, &["ou_alice"]).await,
        230012,
    );
    // A message the mock never sent.
    let ghost = SentPart {
        platform_message_id: "om_never_sent".into(),
        ..sent.clone()
    };
    refused_with(
        &urgent(&*a, &ghost, UrgentKind::App, &["ou_alice"]).await,
        230001,
    );
    // Recalled.
    assert!(a.recall(&sent).await.unwrap().outcome.is_delivered());
    refused_with(
        &urgent(&*a, &sent, UrgentKind::App, &["ou_alice"]).await,
        230011,
    );
}

#[tokio::test]
async fn a_ding_reaches_its_users_and_lists_the_unknown_ones() {
    let server = start(cfg()).await;
    let d = ding(&server, "dingkey");
    let sent = SentPart {
        platform_message_id: "pqk-any".into(),
        update_token: None,
        sent_at_ms: 0,
        recipients: vec!["manager1234".into()],
    };
    let r = urgent(&*d, &sent, UrgentKind::App, &["manager1234", "invalid_9"]).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(r.failed_recipients.len(), 1);
    assert_eq!(r.failed_recipients[0].recipient, "invalid_9");
    let dings = server
        .state()
        .sent
        .list(Some(MockPlatform::Dingtalk), Some("dingtalk:app:dingkey"));
    assert_eq!(dings.len(), 1);
    assert_eq!(dings[0].urgent[0].kind, "app");
    assert_eq!(dings[0].urgent[0].users, ["manager1234"]);
    assert_eq!(dings[0].current()["content"], "disk full on db-1");
    assert!(r.message.contains(&dings[0].message_id), "{}", r.message);

    // The organisation bought no SMS/phone DINGs.
    let phone = urgent(&*d, &sent, UrgentKind::Phone, &["manager1234"]).await;
    assert_eq!(phone.outcome, Outcome::Permanent, "{phone:?}");
    assert_eq!(
        phone.code,
        Some(Code::Name("ding.serverquota.insufficient".into()))
    );
}
