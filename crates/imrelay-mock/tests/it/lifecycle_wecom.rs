//! The life of a WeCom app message after the send, SDK against the mock: a
//! button card updated with its response_code (one use, 72 h), recall within
//! and past 24 h, another app's message, and a click fired at a receiver that
//! decrypts the template_card_event and updates the card with the fresh code.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::RawQuery;
use axum::routing::post;
use axum::Router;
use imrelay_mock::config::{AppCallback, AppConfig, MockConfig, MockPlatform};
use imrelay_mock::MockServer;
use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
use imrelay_sdk::crypto::xml;
use imrelay_sdk::lifecycle::{Action, ActionStyle, SentPart};
use imrelay_sdk::message::Message;
use imrelay_sdk::platform::wecom::card_click;
use imrelay_sdk::{deliver, Client, Code, Destination, Outcome, Report};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::common::{control, http, log, start};

const CORP_A: &str = "ww-corp-a";
const CORP_B: &str = "ww-corp-b";
const SECRET: &str = "corp-secret";
const TOKEN: &str = "QDG6eK";
const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const HOUR_MS: i64 = 3_600_000;

fn dest(server: &MockServer, corp: &str) -> Arc<dyn Destination> {
    Client::new()
        .unwrap()
        .build(&json!({
            "type": "wecom_app",
            "corp_id": corp,
            "corp_secret": SECRET,
            "agent_id": 1000002,
            "base_url": server.base_url(),
            "recipients": ["zhangsan", "lisi"],
        }))
        .unwrap()
}

fn cfg(callback: Option<AppCallback>) -> MockConfig {
    let mut a = AppConfig::new(MockPlatform::Wecom, CORP_A, SECRET);
    a.callback = callback;
    MockConfig::default()
        .with_app(a)
        .with_app(AppConfig::new(MockPlatform::Wecom, CORP_B, SECRET))
}

fn alert(title: &str, with_buttons: bool) -> Message {
    let msg = Message::markdown(title, "**web-3** CPU at 97%").with_id("alert-7");
    if !with_buttons {
        return msg;
    }
    msg.with_actions(vec![
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

async fn send(d: &dyn Destination, msg: &Message) -> SentPart {
    let reports = deliver(d, msg).await.unwrap();
    assert_eq!(reports.len(), 1);
    let r = &reports[0];
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    SentPart {
        platform_message_id: r.platform_message_id.clone().unwrap(),
        update_token: r.update_token.clone(),
        sent_at_ms: 0,
        recipients: vec!["zhangsan".into(), "lisi".into()],
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

fn refused_with(r: &Report, code: i64) {
    assert_eq!(r.outcome, Outcome::Permanent, "{r:?}");
    assert_eq!(r.code, Some(Code::Int(code)), "{r:?}");
}

async fn advance(server: &MockServer, ms: i64) {
    control(server, "clock", &json!({"advance_ms": ms})).await;
}

#[tokio::test]
async fn a_button_card_is_replaced_once_per_response_code() {
    let server = start(cfg(None)).await;
    let d = dest(&server, CORP_A);
    let sent = send(&*d, &alert("HighCPU firing", true)).await;
    assert!(
        sent.update_token.is_some(),
        "a button card answers a response_code"
    );
    let m = message(&server, &sent.platform_message_id).await;
    assert_eq!(m["target"], format!("wecom:app:{CORP_A}"));
    assert_eq!(
        m["revisions"][0]["content"]["template_card"]["card_type"],
        "button_interaction"
    );

    let r = d
        .update(&sent, &alert("HighCPU resolved", false))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let m = message(&server, &sent.platform_message_id).await;
    let card = &m["revisions"][1]["content"]["template_card"];
    assert_eq!(card["main_title"]["title"], "HighCPU resolved");
    assert_eq!(card["replace_text"], "HighCPU resolved");
    // The same code a second time is refused and changes nothing.
    refused_with(
        &d.update(&sent, &alert("again", false)).await.unwrap(),
        60140,
    );
    let m = message(&server, &sent.platform_message_id).await;
    assert_eq!(m["revisions"].as_array().unwrap().len(), 2);
    let updates = log(&server, "message.update_template_card");
    let verdicts: Vec<(bool, Option<&str>)> = updates
        .iter()
        .map(|e| (e.accepted, e.code.as_deref()))
        .collect();
    assert_eq!(verdicts, [(true, Some("0")), (false, Some("60140"))]);
    // A plain message has no code: nothing to update it with.
    let text = send(&*d, &Message::text("hello")).await;
    assert_eq!(text.update_token, None);
    assert!(d.update(&text, &Message::text("x")).await.is_err());
}

#[tokio::test]
async fn a_response_code_expires_after_72_hours_and_is_the_apps_own() {
    let server = start(cfg(None)).await;
    let a = dest(&server, CORP_A);
    let b = dest(&server, CORP_B);
    let sent = send(&*a, &alert("x", true)).await;
    refused_with(&b.update(&sent, &alert("y", true)).await.unwrap(), 60140);
    refused_with(&b.recall(&sent).await.unwrap(), 40058);
    advance(&server, 72 * HOUR_MS + 1_000).await;
    refused_with(&a.update(&sent, &alert("y", true)).await.unwrap(), 60140);
}

#[tokio::test]
async fn recall_inside_24_hours_works_and_past_it_is_refused() {
    let server = start(cfg(None)).await;
    let d = dest(&server, CORP_A);
    let first = send(&*d, &Message::text("oops")).await;
    let second = send(&*d, &Message::text("oops again")).await;
    advance(&server, 24 * HOUR_MS - 1_000).await;
    assert_eq!(d.recall(&first).await.unwrap().outcome, Outcome::Delivered);
    let m = message(&server, &first.platform_message_id).await;
    assert!(m["recalled_at_ms"].is_i64());
    refused_with(&d.recall(&first).await.unwrap(), 40058);
    advance(&server, 2_000).await;
    let r = d.recall(&second).await.unwrap();
    refused_with(&r, 40058);
    assert!(r.message.contains("24 hours"), "{r:?}");
}

#[derive(Default)]
struct Seen {
    events: Vec<BTreeMap<String, String>>,
}

/// A receiver that verifies and decrypts the callback as a WeCom app must
/// and answers `success`.
async fn receiver() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let st = seen.clone();
    let app = Router::new().route(
        "/wecom",
        post(move |RawQuery(q): RawQuery, body: String| {
            let st = st.clone();
            async move {
                let q = q.unwrap_or_default();
                let p = |k: &str| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.into_owned())
                        .unwrap()
                };
                let crypt = WxBizMsgCrypt::new(TOKEN, AES_KEY, CORP_A).unwrap();
                let plain = crypt
                    .decrypt_message(&p("msg_signature"), &p("timestamp"), &p("nonce"), &body)
                    .expect("signed and encrypted for this corp");
                st.lock()
                    .await
                    .events
                    .push(xml::parse_event(&plain).unwrap());
                "success"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/wecom"), seen)
}

#[tokio::test]
async fn a_click_hands_the_receiver_a_fresh_code_that_updates_the_card() {
    let (url, seen) = receiver().await;
    let mut cb = AppCallback::new(url);
    cb.token = Some(TOKEN.into());
    cb.encoding_aes_key = Some(AES_KEY.into());
    let server = start(cfg(Some(cb))).await;
    let d = dest(&server, CORP_A);
    let mut sent = send(&*d, &alert("HighCPU firing", true)).await;
    // The send's code is spent on a first update.
    assert_eq!(
        d.update(&sent, &alert("HighCPU still firing", true))
            .await
            .unwrap()
            .outcome,
        Outcome::Delivered
    );
    let id = sent.platform_message_id.clone();
    let r = control(
        &server,
        &format!("messages/{id}/click"),
        &json!({"action": "silence:1h", "user": "zhangsan"}),
    )
    .await;
    assert!(r.status().is_success());
    let out: Value = r.json().await.unwrap();
    assert_eq!(out["callback"]["ok"], true, "{out}");

    let event = seen.lock().await.events.pop().unwrap();
    assert_eq!(event["Event"], "template_card_event");
    assert_eq!(event["CardType"], "button_interaction");
    assert_eq!(event["AgentID"], "1000002");
    let click = card_click(&event).unwrap();
    assert_eq!(
        (
            click.message_id.as_str(),
            click.action.as_str(),
            click.user_id.as_str()
        ),
        ("alert-7", "silence:1h", "zhangsan")
    );
    assert_eq!(
        click.update_token.as_ref(),
        out["response_code"].as_str().map(String::from).as_ref()
    );

    // The click's code updates the card once.
    sent.update_token = click.update_token;
    let r = d
        .update(&sent, &alert("静默至 04:12", false))
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r:?}");
    let m = message(&server, &id).await;
    assert_eq!(m["revisions"].as_array().unwrap().len(), 3);
    refused_with(
        &d.update(&sent, &alert("again", false)).await.unwrap(),
        60140,
    );

    // A button the card no longer has, and an app without a callback.
    let r = control(
        &server,
        &format!("messages/{id}/click"),
        &json!({"action": "ack", "user": "lisi"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    let other = send(&*dest(&server, CORP_B), &alert("x", true)).await;
    let r = control(
        &server,
        &format!("messages/{}/click", other.platform_message_id),
        &json!({"action": "ack", "user": "lisi"}),
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn the_cli_spec_fires_the_same_click() {
    use imrelay_mock::callback::{fire, CallbackSpec};
    let (url, seen) = receiver().await;
    let spec: CallbackSpec = serde_json::from_value(json!({
        "kind": "wecom_card_action", "url": url, "token": TOKEN, "encoding_aes_key": AES_KEY,
        "receive_id": CORP_A, "message": "msg-9", "action": "ack", "user": "wangwu",
        "task_id": "imrelay-task",
    }))
    .unwrap();
    let r = fire(spec).await.unwrap();
    assert!(r.ok, "{r:?}");
    let event = seen.lock().await.events.pop().unwrap();
    assert_eq!(event["TaskId"], "imrelay-task");
    let c = card_click(&event).unwrap();
    assert_eq!(
        (c.message_id.as_str(), c.action.as_str(), c.user_id.as_str()),
        ("msg-9", "ack", "wangwu")
    );
    assert!(c.update_token.is_some_and(|t| !t.is_empty()));
}
