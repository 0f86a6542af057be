//! The life of a Feishu app message after the send, SDK against the mock:
//! update in place (PATCH card, PUT text), recall within and past the
//! window, another app's message, read receipts, and a card click fired at a
//! receiver whose answer replaces the card.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use imrelay_mock::config::{AppCallback, AppConfig, MockConfig, MockPlatform};
use imrelay_mock::MockServer;
use imrelay_sdk::crypto::feishu::{self as fcrypto, FeishuCipher};
use imrelay_sdk::lifecycle::{Action, ActionStyle, SentPart};
use imrelay_sdk::message::{Body, Message};
use imrelay_sdk::platform::feishu::{card_click, card_click_reply, ToastKind};
use imrelay_sdk::{deliver, Client, Code, Destination, Outcome, Report};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::common::{control, http, log, start};

const APP_A: &str = "cli_app_a";
const APP_B: &str = "cli_app_b";
const SECRET: &str = "app-secret";
const VERIFY: &str = "verification-token";
const ENCRYPT: &str = "encrypt-key-of-the-app";
const DAY_MS: i64 = 86_400_000;

fn dest(server: &MockServer, app_id: &str) -> Arc<dyn Destination> {
    Client::new()
        .unwrap()
        .build(&json!({
            "type": "feishu_app",
            "app_id": app_id,
            "app_secret": SECRET,
            "base_url": server.base_url(),
            "recipients": ["chat_id:oc_ops"],
        }))
        .unwrap()
}

fn cfg() -> MockConfig {
    MockConfig::default()
        .with_app(AppConfig::new(MockPlatform::Feishu, APP_A, SECRET))
        .with_app(AppConfig::new(MockPlatform::Feishu, APP_B, SECRET))
}

fn alert(title: &str, theme: &str) -> Message {
    Message::new(Body::Card {
        text: "**HighCPU** on web-3".into(),
        buttons: vec![],
        theme: Some(theme.into()),
    })
    .with_title(title)
    .with_id("alert-1")
    .with_actions(vec![
        Action {
            id: "ack".into(),
            text: "认领".into(),
            style: ActionStyle::Primary,
        },
        Action {
            id: "silence:1h".into(),
            text: "静默 1h".into(),
            style: ActionStyle::Default,
        },
    ])
}

/// Send `msg` (one part) and keep what the caller keeps.
async fn send(d: &dyn Destination, msg: &Message) -> SentPart {
    let reports = deliver(d, msg).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    SentPart {
        platform_message_id: r.platform_message_id.clone().expect("a message id"),
        update_token: r.update_token.clone(),
        sent_at_ms: 0,
        recipients: vec!["chat_id:oc_ops".into()],
    }
}

async fn message(server: &MockServer, id: &str) -> Value {
    http()
        .get(format!("{}/_mock/messages/{id}", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn card_of(m: &Value, revision: usize) -> &Value {
    &m["revisions"][revision]["content"]["content"]
}

fn refused_with(r: &Report, code: i64) {
    assert_eq!(r.outcome, Outcome::Permanent, "{r:?}");
    assert_eq!(r.code, Some(Code::Int(code)), "{r:?}");
}

async fn advance(server: &MockServer, ms: i64) {
    control(server, "clock", &json!({"advance_ms": ms})).await;
}

#[tokio::test]
async fn a_card_is_updated_in_place_and_every_revision_is_kept() {
    let server = start(cfg()).await;
    let d = dest(&server, APP_A);
    let sent = send(&*d, &alert("HighCPU firing", "firing")).await;
    let m = message(&server, &sent.platform_message_id).await;
    assert_eq!(m["target"], format!("feishu:app:{APP_A}"));
    assert_eq!(m["recipients"], json!(["chat_id:oc_ops"]));
    assert_eq!(card_of(&m, 0)["header"]["template"], "red");

    let r = d
        .update(&sent, &alert("HighCPU resolved", "resolved"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    assert_eq!(
        r.platform_message_id.as_ref(),
        Some(&sent.platform_message_id)
    );
    let m = message(&server, &sent.platform_message_id).await;
    assert_eq!(m["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(card_of(&m, 1)["header"]["template"], "green");
    assert_eq!(
        card_of(&m, 1)["header"]["title"]["content"],
        "HighCPU resolved"
    );
    // One message for the whole story: no second send.
    let all = server.state().sent.list(Some(MockPlatform::Feishu), None);
    assert_eq!(all.len(), 1);

    // Texts are edited with PUT; a text cannot become a card.
    let text = send(&*d, &Message::text("deploy started").with_id("t1")).await;
    let r = d
        .update(&text, &Message::text("deploy finished"))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let m = message(&server, &text.platform_message_id).await;
    assert_eq!(
        m["revisions"][1]["content"]["content"]["text"],
        "deploy finished"
    );
    refused_with(&d.update(&text, &alert("x", "info")).await.unwrap(), 230054);
}

#[tokio::test]
async fn updates_past_fourteen_days_and_of_recalled_messages_are_refused() {
    let server = start(cfg()).await;
    let d = dest(&server, APP_A);
    let old = send(&*d, &alert("a", "firing")).await;
    advance(&server, 14 * DAY_MS + 1_000).await;
    refused_with(
        &d.update(&old, &alert("b", "resolved")).await.unwrap(),
        230031,
    );

    let fresh = send(&*d, &alert("a", "firing")).await;
    let r = d.recall(&fresh).await.unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let m = message(&server, &fresh.platform_message_id).await;
    assert!(m["recalled_at_ms"].is_i64(), "{m}");
    refused_with(
        &d.update(&fresh, &alert("b", "resolved")).await.unwrap(),
        230011,
    );
    refused_with(&d.recall(&fresh).await.unwrap(), 230011);
}

#[tokio::test]
async fn recall_inside_the_day_works_and_past_it_gets_230009() {
    let server = start(cfg()).await;
    let d = dest(&server, APP_A);
    let a = send(&*d, &Message::text("oops")).await;
    let b = send(&*d, &Message::text("oops again")).await;
    advance(&server, DAY_MS - 1_000).await;
    assert_eq!(d.recall(&a).await.unwrap().outcome, Outcome::Delivered);
    advance(&server, 2_000).await;
    let r = d.recall(&b).await.unwrap();
    refused_with(&r, 230009);
    assert!(r.hint.unwrap().contains("recall limit"));
    // The lifecycle says the same before anyone asks the platform.
    assert!(d.lifecycle().can_recall(0, DAY_MS + 1_000).is_err());
}

#[tokio::test]
async fn another_apps_message_cannot_be_updated_recalled_or_read() {
    let server = start(cfg()).await;
    let a = dest(&server, APP_A);
    let b = dest(&server, APP_B);
    let sent = send(&*a, &alert("a", "firing")).await;
    refused_with(&b.recall(&sent).await.unwrap(), 230026);
    refused_with(
        &b.update(&sent, &alert("b", "resolved")).await.unwrap(),
        230012,
    );
    let unknown = SentPart {
        platform_message_id: "om_nope".into(),
        ..sent.clone()
    };
    refused_with(&a.recall(&unknown).await.unwrap(), 230001);
    let m = message(&server, &sent.platform_message_id).await;
    assert!(m.get("recalled_at_ms").is_none());
    assert_eq!(m["revisions"].as_array().unwrap().len(), 1);
    // Each refusal is in the request log with its code and the caller.
    let recalls = log(&server, "im.messages.delete");
    assert_eq!(recalls.len(), 2);
    assert_eq!(recalls[0].target, format!("feishu:app:{APP_B}"));
    assert_eq!(recalls[0].code.as_deref(), Some("230026"));
    assert!(!recalls[0].accepted);
    assert_eq!(
        log(&server, "im.messages.patch")[0].code.as_deref(),
        Some("230012")
    );
}

async fn tenant_token(server: &MockServer, app_id: &str) -> String {
    let v: Value = http()
        .post(format!(
            "{}/open-apis/auth/v3/tenant_access_token/internal",
            server.base_url()
        ))
        .json(&json!({"app_id": app_id, "app_secret": SECRET}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["tenant_access_token"].as_str().unwrap().to_string()
}

async fn read_users(server: &MockServer, app_id: &str, id: &str) -> Value {
    let token = tenant_token(server, app_id).await;
    http()
        .get(format!(
            "{}/open-apis/im/v1/messages/{id}/read_users?user_id_type=open_id",
            server.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn read_receipts_list_who_read_within_seven_days() {
    let server = start(cfg()).await;
    let d = dest(&server, APP_A);
    let sent = send(&*d, &Message::text("disk full")).await;
    let id = &sent.platform_message_id;
    let v = read_users(&server, APP_A, id).await;
    assert_eq!(v["data"]["items"], json!([]));
    for user in ["ou_zhang", "ou_li", "ou_zhang"] {
        let r = control(
            &server,
            &format!("messages/{id}/read"),
            &json!({"user": user}),
        )
        .await;
        assert!(r.status().is_success());
    }
    let v = read_users(&server, APP_A, id).await;
    let users: Vec<&str> = v["data"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["ou_zhang", "ou_li"]);
    assert_eq!(read_users(&server, APP_B, id).await["code"], 230012);
    advance(&server, 7 * DAY_MS + 1_000).await;
    assert_eq!(read_users(&server, APP_A, id).await["code"], 230033);
    let r = control(&server, "messages/om_none/read", &json!({"user": "u"})).await;
    assert_eq!(r.status(), 404);
}

/// What the receiver saw of each click.
#[derive(Default)]
struct Seen {
    clicks: Vec<imrelay_sdk::CardClick>,
    token_ok: Vec<bool>,
}

/// A receiver that verifies and decrypts the callback as an app must, reads
/// the click and answers with a toast and a card saying who took it.
async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let st = seen.clone();
    let app = Router::new().route(
        "/callback",
        post(move |headers: HeaderMap, body: Bytes| {
            let st = st.clone();
            async move {
                let h = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_string();
                fcrypto::verify_event_signature(
                    &h(fcrypto::HEADER_TIMESTAMP),
                    &h(fcrypto::HEADER_NONCE),
                    ENCRYPT,
                    &body,
                    &h(fcrypto::HEADER_SIGNATURE),
                )
                .expect("signed with the encrypt key");
                let cipher = FeishuCipher::new(ENCRYPT).unwrap();
                let plain = fcrypto::body_plaintext(Some(&cipher), &body).unwrap();
                let envelope = fcrypto::parse_envelope(&plain).unwrap();
                let v: Value = serde_json::from_str(&plain).unwrap();
                let click = card_click(&v).expect("a click on an imrelay button");
                let card = json!({
                    "config": {"wide_screen_mode": true, "update_multi": true},
                    "header": {"title": {"tag": "plain_text", "content": "已认领"}, "template": "blue"},
                    "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": format!("已认领 by <at id={}></at>", click.user_id)}}],
                });
                let mut s = st.lock().await;
                s.token_ok.push(envelope.verify_token(VERIFY).is_ok());
                s.clicks.push(click);
                Json(card_click_reply("已认领", ToastKind::Success, Some(card)))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/callback"), seen)
}

#[tokio::test]
async fn a_click_reaches_the_receiver_and_its_card_replaces_the_message() {
    let (url, seen) = receiver().await;
    let mut cb = AppCallback::new(url);
    cb.token = Some(VERIFY.into());
    cb.encrypt_key = Some(ENCRYPT.into());
    let server = start(
        MockConfig::default()
            .with_app(AppConfig::new(MockPlatform::Feishu, APP_A, SECRET).with_callback(cb))
            .with_app(AppConfig::new(MockPlatform::Feishu, APP_B, SECRET)),
    )
    .await;
    let d = dest(&server, APP_A);
    let sent = send(&*d, &alert("HighCPU firing", "firing")).await;
    let id = &sent.platform_message_id;

    let r = control(
        &server,
        &format!("messages/{id}/click"),
        &json!({"action": "ack", "user": "ou_zhang"}),
    )
    .await;
    assert!(r.status().is_success());
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["callback"]["ok"], true, "{out}");
    assert_eq!(out["toast"]["content"], "已认领");
    assert_eq!(out["revisions"], 2);

    let s = seen.lock().await;
    assert_eq!(s.token_ok, [true]);
    let c = &s.clicks[0];
    assert_eq!(
        (c.message_id.as_str(), c.action.as_str(), c.user_id.as_str()),
        ("alert-1", "ack", "ou_zhang")
    );
    assert_eq!(c.platform_message_id.as_ref(), Some(id));
    drop(s);

    let m = message(&server, id).await;
    assert_eq!(card_of(&m, 1)["header"]["title"]["content"], "已认领");
    // The receiver's card has no buttons left: a second click finds none.
    let r = control(
        &server,
        &format!("messages/{id}/click"),
        &json!({"action": "ack", "user": "ou_li"}),
    )
    .await;
    assert_eq!(r.status(), 404);

    // An app without a callback, and a recalled message, cannot be clicked.
    let b = dest(&server, APP_B);
    let other = send(&*b, &alert("x", "firing")).await;
    let r = control(
        &server,
        &format!("messages/{}/click", other.platform_message_id),
        &json!({"action": "ack", "user": "ou_li"}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("no `callback`"));
    b.recall(&other).await.unwrap();
    let r = control(
        &server,
        &format!("messages/{}/click", other.platform_message_id),
        &json!({"action": "ack", "user": "ou_li"}),
    )
    .await;
    assert_eq!(r.status(), 409);
}

#[tokio::test]
async fn the_cli_spec_fires_the_same_click() {
    use imrelay_mock::callback::{fire, CallbackError, CallbackSpec};
    let (url, seen) = receiver().await;
    let spec: CallbackSpec = serde_json::from_value(json!({
        "kind": "feishu_card_action", "url": url, "token": VERIFY, "encrypt_key": ENCRYPT,
        "message": "msg-9", "action": "resolve", "user": "ou_wang", "open_message_id": "om_9",
    }))
    .unwrap();
    let r = fire(spec).await.unwrap();
    assert!(r.ok, "{r:?}");
    let reply: Value = serde_json::from_str(r.reply.as_deref().unwrap()).unwrap();
    assert_eq!(reply["toast"]["type"], "success");
    let s = seen.lock().await;
    assert_eq!(s.token_ok, [true]);
    let c = &s.clicks[0];
    assert_eq!(
        (c.message_id.as_str(), c.action.as_str(), c.user_id.as_str()),
        ("msg-9", "resolve", "ou_wang")
    );
    assert_eq!(c.platform_message_id.as_deref(), Some("om_9"));
    let no_message: CallbackSpec = serde_json::from_value(json!({
        "kind": "feishu_card_action", "url": "http://127.0.0.1:9/", "encrypt_key": ENCRYPT,
    }))
    .unwrap();
    match fire(no_message).await {
        Err(CallbackError::Spec(m)) => assert!(m.contains("`message`"), "{m}"),
        other => panic!("{other:?}"),
    }
}
