//! DingTalk after the send, SDK against the mock: cards created, updated and
//! clicked, recalls inside and past the window, other apps refused, read
//! receipts.

use std::sync::Arc;

use axum::routing::post;
use axum::{Json, Router};
use imrelay_mock::platform::dingtalk_card::click;
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer};
use imrelay_sdk::lifecycle::{Action, ActionStyle};
use imrelay_sdk::message::Body;
use imrelay_sdk::outcome::Outcome;
use imrelay_sdk::platform::dingtalk::{card_click, App, AppConfig as SdkAppConfig};
use imrelay_sdk::{deliver, Client, Destination, Message, SentPart};
use serde_json::{json, Value};

use crate::common::{control, http, start};

const DT: MockPlatform = MockPlatform::Dingtalk;
const DAY_MS: i64 = 86_400_000;

fn two_apps() -> MockConfig {
    // Tokens outlive the clock jumps past the 24 h recall window.
    MockConfig {
        token_lifetime_secs: 3 * 86_400,
        ..MockConfig::default()
    }
    .with_app(AppConfig::new(DT, "dingapp1", "secret1"))
    .with_app(AppConfig::new(DT, "dingapp2", "secret2"))
}

fn app(server: &MockServer, cfg: Value) -> Arc<App> {
    let mut c = json!({"base_url": server.base_url()});
    c.as_object_mut()
        .unwrap()
        .extend(cfg.as_object().unwrap().clone());
    Arc::new(
        App::new(
            &Client::new().unwrap(),
            serde_json::from_value::<SdkAppConfig>(c).unwrap(),
        )
        .unwrap(),
    )
}

fn card_app(server: &MockServer, key: &str, secret: &str) -> Arc<App> {
    app(
        server,
        json!({"app_key": key, "app_secret": secret, "mode": "robot",
               "card_template_id": "tpl.schema", "card_callback_route_key": "imrelay",
               "recipients": ["open_conversation_id:cidOps=="]}),
    )
}

fn alert(theme: &str, text: &str) -> Message {
    Message::new(Body::Card {
        text: text.into(),
        buttons: Vec::new(),
        theme: Some(theme.into()),
    })
    .with_title("DiskFull")
    .with_id("alert-1")
    .with_actions(vec![Action {
        id: "ack".into(),
        text: "Acknowledge".into(),
        style: ActionStyle::Primary,
    }])
}

fn part(r: &imrelay_sdk::Report, recipient: &str) -> SentPart {
    SentPart {
        platform_message_id: r.platform_message_id.clone().unwrap(),
        update_token: r.update_token.clone(),
        sent_at_ms: 0,
        recipients: vec![recipient.into()],
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

async fn advance(server: &MockServer, ms: i64) {
    control(server, "clock", &json!({"advance_ms": ms})).await;
}

#[tokio::test]
async fn a_card_is_created_once_then_updated_in_place() {
    let server = start(two_apps()).await;
    let dest = card_app(&server, "dingapp1", "secret1");
    let firing = alert("red", "**disk full** on db-1");
    let r = deliver(dest.as_ref(), &firing).await.unwrap().remove(0);
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    let id = r.platform_message_id.clone().unwrap();
    assert!(id.starts_with("imrelay_card_"), "{id}");
    assert!(r.update_token.is_some(), "the carrierId recall needs");
    // A retried send is the same card, not a second one.
    let again = deliver(dest.as_ref(), &firing).await.unwrap().remove(0);
    assert_eq!(again.platform_message_id.as_deref(), Some(id.as_str()));
    let resolved = alert("green", "resolved at 03:12");
    let u = dest
        .update(&part(&r, "open_conversation_id:cidOps=="), &resolved)
        .await
        .unwrap();
    assert_eq!(u.outcome, Outcome::Delivered, "{u}");

    let m = message(&server, &id).await;
    let revisions = m["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 2);
    assert_eq!(revisions[0]["content"]["theme"], "red");
    assert_eq!(revisions[1]["content"]["theme"], "green");
    assert_eq!(revisions[1]["content"]["content"], "resolved at 03:12");
    assert_eq!(m["recipients"], json!(["cidOps=="]));
    let all: Value = http()
        .get(format!(
            "{}/_mock/messages?platform=dingtalk",
            server.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["total"], 1, "one card, never a second message");
}

#[tokio::test]
async fn updates_and_recalls_refresh_an_expired_token_once() {
    let server = start(two_apps()).await;
    let dest = card_app(&server, "dingapp1", "secret1");
    let r = deliver(dest.as_ref(), &alert("red", "x"))
        .await
        .unwrap()
        .remove(0);
    let sent = part(&r, "open_conversation_id:cidOps==");
    control(&server, "tokens/expire", &json!({"platform": "dingtalk"})).await;
    let u = dest.update(&sent, &alert("green", "y")).await.unwrap();
    assert_eq!(u.outcome, Outcome::Delivered, "{u}");
    control(&server, "tokens/expire", &json!({"platform": "dingtalk"})).await;
    let rec = dest.recall(&sent).await.unwrap();
    assert_eq!(rec.outcome, Outcome::Delivered, "{rec}");
}

#[tokio::test]
async fn another_apps_card_cannot_be_updated() {
    let server = start(two_apps()).await;
    let mine = card_app(&server, "dingapp1", "secret1");
    let theirs = card_app(&server, "dingapp2", "secret2");
    let r = deliver(mine.as_ref(), &alert("red", "x"))
        .await
        .unwrap()
        .remove(0);
    let u = theirs
        .update(
            &part(&r, "open_conversation_id:cidOps=="),
            &alert("green", "y"),
        )
        .await
        .unwrap();
    assert_eq!(u.outcome, Outcome::Permanent, "{u}");
    let m = message(&server, r.platform_message_id.as_deref().unwrap()).await;
    assert_eq!(m["revisions"].as_array().unwrap().len(), 1);
}

/// A receiver that answers every card callback with a card turned green.
async fn receiver(seen: Arc<parking_lot::Mutex<Vec<Value>>>) -> String {
    let app = Router::new().route(
        "/dingtalk/card",
        post(move |Json(body): Json<Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().push(body);
                Json(json!({"cardData": {"cardParamMap": {"theme": "green", "content": "已认领 by 张三"}}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/dingtalk/card")
}

#[tokio::test]
async fn a_click_calls_the_registered_url_and_its_answer_updates_the_card() {
    let server = start(two_apps()).await;
    let dest = card_app(&server, "dingapp1", "secret1");
    let r = deliver(dest.as_ref(), &alert("red", "x"))
        .await
        .unwrap()
        .remove(0);
    let id = r.platform_message_id.clone().unwrap();
    let sent = server.state().sent.get(&id).unwrap();
    // Nothing registered for the route key yet.
    let err = click(server.state(), &sent, "ack", "user-7")
        .await
        .unwrap_err();
    assert!(err.contains("no callback URL"), "{err}");

    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let url = receiver(seen.clone()).await;
    let token = server
        .state()
        .tokens
        .current(DT, "dingapp1", server.state().now_ms())
        .unwrap()
        .0;
    let reg = http()
        .post(format!(
            "{}/v1.0/card/callbacks/register",
            server.base_url()
        ))
        .header("x-acs-dingtalk-access-token", token)
        .json(&json!({"callbackRouteKey": "imrelay", "callbackUrl": url, "apiSecret": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reg.status(), 200);

    let out = click(server.state(), &sent, "ack", "user-7").await.unwrap();
    assert_eq!(out["status"], 200);
    let body = seen.lock()[0].clone();
    let c = card_click(&body).expect("the SDK reads the mock's callback");
    assert_eq!(
        (c.message_id.as_str(), c.action.as_str(), c.user_id.as_str()),
        ("alert-1", "ack", "user-7")
    );
    assert_eq!(c.platform_message_id.as_deref(), Some(id.as_str()));
    let m = message(&server, &id).await;
    let last = m["revisions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"]["theme"], "green");
    assert_eq!(last["content"]["title"], "DiskFull", "updated by key");
    assert!(click(server.state(), &sent, "silence:1h", "user-7")
        .await
        .is_err());
}

#[tokio::test]
async fn robot_messages_are_recalled_within_24_hours_only() {
    let server = start(two_apps()).await;
    let dest = app(
        &server,
        json!({"app_key": "dingapp1", "app_secret": "secret1", "mode": "robot",
               "recipients": ["manager1234", "open_conversation_id:cidOps=="]}),
    );
    let reports = deliver(dest.as_ref(), &Message::text("wrong alert"))
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    let oto = part(&reports[0], "manager1234");
    let group = part(&reports[1], "open_conversation_id:cidOps==");
    let r = dest.recall(&oto).await.unwrap();
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    let again = dest.recall(&oto).await.unwrap();
    assert_eq!(again.outcome, Outcome::Permanent);
    assert!(
        again.message.contains("already recalled"),
        "{}",
        again.message
    );
    assert!(message(&server, &oto.platform_message_id).await["recalled_at_ms"].is_i64());

    advance(&server, DAY_MS + 1).await;
    let late = dest.recall(&group).await.unwrap();
    assert_eq!(late.outcome, Outcome::Permanent, "{late}");
    assert!(late.message.contains("24 hours"), "{}", late.message);
    assert!(message(&server, &group.platform_message_id).await["recalled_at_ms"].is_null());
}

#[tokio::test]
async fn a_card_is_recalled_by_its_carrier_id() {
    let server = start(two_apps()).await;
    let dest = card_app(&server, "dingapp1", "secret1");
    let r = deliver(dest.as_ref(), &alert("red", "x"))
        .await
        .unwrap()
        .remove(0);
    let rec = dest
        .recall(&part(&r, "open_conversation_id:cidOps=="))
        .await
        .unwrap();
    assert_eq!(rec.outcome, Outcome::Delivered, "{rec}");
    let m = message(&server, r.platform_message_id.as_deref().unwrap()).await;
    assert!(m["recalled_at_ms"].is_i64());
}

#[tokio::test]
async fn another_apps_message_is_not_recalled() {
    let server = start(two_apps()).await;
    let robot = |key: &str, secret: &str| {
        app(
            &server,
            json!({"app_key": key, "app_secret": secret, "mode": "robot", "recipients": ["manager1234"]}),
        )
    };
    let mine = robot("dingapp1", "secret1");
    let theirs = robot("dingapp2", "secret2");
    let r = deliver(mine.as_ref(), &Message::text("x"))
        .await
        .unwrap()
        .remove(0);
    let refused = theirs.recall(&part(&r, "manager1234")).await.unwrap();
    assert_eq!(refused.outcome, Outcome::Permanent);
    assert!(refused.message.contains("not found"), "{}", refused.message);
    assert!(
        message(&server, r.platform_message_id.as_deref().unwrap()).await["recalled_at_ms"]
            .is_null()
    );
}

fn work_notice(server: &MockServer) -> Arc<App> {
    app(
        server,
        json!({"app_key": "dingapp1", "app_secret": "secret1", "agent_id": 42,
               "recipients": ["u1", "u2"], "token_api": "legacy"}),
    )
}

#[tokio::test]
async fn work_notices_are_recalled_within_the_window_and_report_reads() {
    let server = start(two_apps()).await;
    let dest = work_notice(&server);
    let r = deliver(dest.as_ref(), &Message::text("maintenance at 22:00"))
        .await
        .unwrap()
        .remove(0);
    let task_id = r.platform_message_id.clone().unwrap();
    assert!(task_id.parse::<i64>().is_ok(), "{task_id}");

    let status = dest.read_status(&part(&r, "u1")).await.unwrap();
    assert_eq!((status.read.len(), status.unread.len()), (0, 2));
    server
        .state()
        .sent
        .mark_read(&task_id, "u2", server.state().now_ms());
    let status = dest.read_status(&part(&r, "u1")).await.unwrap();
    assert_eq!(status.read, vec!["u2"]);
    assert_eq!(status.unread, vec!["u1"]);

    let ok = dest.recall(&part(&r, "u1")).await.unwrap();
    assert_eq!(ok.outcome, Outcome::Delivered, "{ok}");

    let r2 = deliver(dest.as_ref(), &Message::text("another"))
        .await
        .unwrap()
        .remove(0);
    advance(&server, DAY_MS + 1).await;
    let late = dest.recall(&part(&r2, "u1")).await.unwrap();
    assert_eq!(late.outcome, Outcome::Permanent, "{late}");
    assert!(late.message.contains("撤回时限"), "{}", late.message);
}

#[tokio::test]
async fn robot_read_status_follows_the_reads() {
    let server = start(two_apps()).await;
    let dest = app(
        &server,
        json!({"app_key": "dingapp1", "app_secret": "secret1", "mode": "robot",
               "recipients": ["u1", "u2", "open_conversation_id:cidOps=="]}),
    );
    let reports = deliver(dest.as_ref(), &Message::text("x")).await.unwrap();
    let oto = part(&reports[0], "u1");
    let group = part(&reports[1], "open_conversation_id:cidOps==");
    let now = server.state().now_ms();
    server
        .state()
        .sent
        .mark_read(&oto.platform_message_id, "u1", now);
    server
        .state()
        .sent
        .mark_read(&group.platform_message_id, "u9", now);
    let s = dest.read_status(&oto).await.unwrap();
    assert_eq!(s.read, vec!["u1"]);
    assert_eq!(s.unread, vec!["u2"]);
    let g = dest.read_status(&group).await.unwrap();
    assert_eq!(g.read, vec!["u9"]);
    assert!(
        g.unread.is_empty(),
        "DingTalk lists no unread users of a group"
    );
}

#[tokio::test]
async fn custom_robots_and_plain_messages_cannot_be_edited() {
    let server = start(two_apps()).await;
    let robot = Client::new()
        .unwrap()
        .build(
            &json!({"type": "dingtalk_robot", "access_token": "t", "base_url": server.base_url()}),
        )
        .unwrap();
    let l = robot.lifecycle();
    assert!(!l.card_actions);
    assert_eq!(
        l.can_recall(0, 0).unwrap_err(),
        "custom robots have no recall API: the webhook returns no message id to recall"
    );
    let wn = work_notice(&server);
    let r = deliver(wn.as_ref(), &Message::text("x"))
        .await
        .unwrap()
        .remove(0);
    assert!(matches!(
        wn.update(&part(&r, "u1"), &Message::text("y")).await,
        Err(imrelay_sdk::Error::OperationUnsupported { .. })
    ));
}
