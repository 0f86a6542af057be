//! Lifecycle: `run` drains on shutdown and returns Ok; what was queued survives
//! a restart and is delivered; a draining gateway answers 503 to new messages;
//! the quickstart config works end to end against its in-process mock.

use std::sync::Arc;

use crate::api_support::*;
use axum::body::Body;
use axum::http::Request;
use imrelay_gateway::api::{self, AppState};
use imrelay_gateway::config::Config;
use imrelay_gateway::runtime::Live;
use imrelay_gateway::store::{self, StoreOptions};
use serde_json::Value;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_drains_on_shutdown_and_a_restart_delivers_what_was_queued() {
    let sink = Sink::start().await;
    // The receiver is down: messages are accepted and wait in the queue.
    sink.set_status(503);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, config_text(&sink, "")).unwrap();
    let cfg = Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(imrelay_gateway::run(cfg, listener, async move {
        let _ = stop_rx.await;
    }));

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(format!(r#"{{"channel": "alerts", "text": "queued-{i}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    stop_tx.send(()).unwrap();
    server
        .await
        .unwrap()
        .expect("run returns Ok after draining");

    // Restart on the same database with the receiver back.
    sink.set_status(200);
    let t = TestGateway::start_in(dir, &config_text(&sink, "")).await;
    for id in &ids {
        t.wait_state(id, "delivered").await;
    }
    let texts: Vec<String> = sink
        .bodies()
        .iter()
        .map(|b| b["body"]["text"].as_str().unwrap().to_string())
        .collect();
    for i in 0..5 {
        assert!(texts.contains(&format!("queued-{i}")), "{texts:?}");
    }
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_gateway_refuses_new_messages_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
"#
    );
    let cfg = Config::parse(&text, dir.path()).unwrap();
    let live = Arc::new(Live::new(cfg.clone()).unwrap());
    let store = store::open(StoreOptions::new(
        dir.path().join("q.db").to_string_lossy().into_owned(),
    ))
    .await
    .unwrap();
    let state = AppState::new(store.clone(), live);
    state
        .accepting
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let resp = api::router(state)
        .oneshot(
            Request::post("/v1/messages")
                .header("authorization", format!("Bearer {ADMIN_KEY}"))
                .header("content-type", "application/json")
                .body(Body::from(r#"{"channel": "alerts", "text": "late"}"#))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(store.stats().await.unwrap().messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quickstart_config_delivers_through_its_in_process_mock() {
    let text = include_str!("../../../../examples/quickstart.toml");
    // Free ports instead of the fixed ones, so parallel tests do not collide.
    let mock_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = text.replace("127.0.0.1:9100", &format!("127.0.0.1:{mock_port}"));
    assert!(text.contains("${mock.url}"));
    let t = TestGateway::start(&text).await;
    let mock = t.mock.as_ref().expect("the quickstart starts the mock");
    let key = "quickstart-demo-key-change-me";

    let r = t
        .post(
            "/v1/messages",
            Some(key),
            r#"{"channel": "alerts", "title": "Disk", "text": "disk 91% full on db-1"}"#,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let view = t.wait_state_as(key, &id, "delivered").await;
    assert_eq!(
        view["deliveries"].as_array().unwrap().len(),
        2,
        "DingTalk and Feishu"
    );

    for _ in 0..2 {
        let r = t
            .post(
                "/v1/messages",
                Some(key),
                r#"{"channel": "ops", "text": "pool"}"#,
                &[],
            )
            .await;
        t.wait_state_as(key, r.body["id"].as_str().unwrap(), "delivered")
            .await;
    }
    let log = mock.state().log.all();
    let targets: Vec<(&str, bool)> = log
        .iter()
        .map(|e| (e.target.as_str(), e.accepted))
        .collect();
    let count = |t: &str| log.iter().filter(|e| e.accepted && e.target == t).count();
    assert_eq!(
        count("dingtalk:robot:quickstart-dingtalk"),
        1,
        "{targets:?}"
    );
    assert_eq!(count("feishu:webhook:quickstart-feishu"), 1, "{targets:?}");
    assert_eq!(
        count("wecom:robot:quickstart-wecom-1") + count("wecom:robot:quickstart-wecom-2"),
        2,
        "a pool sends each message once: {targets:?}"
    );
    // Signed robots were verified by the mock.
    assert!(log
        .iter()
        .filter(|e| e.target.starts_with("dingtalk") || e.target.starts_with("feishu"))
        .all(|e| format!("{:?}", e.signature)
            .to_lowercase()
            .contains("verified")));

    // The README's card: sent with buttons, acknowledged by a click in the
    // chat, then resolved in place (one message, edited).
    let http = reqwest::Client::new();
    let mock_url = mock.base_url();
    // The quickstart's app calls back to port 8080; this gateway is elsewhere.
    let r = http
        .post(format!("{mock_url}/_mock/apps"))
        .json(&serde_json::json!({"platform": "feishu", "app_id": "cli_quickstart",
            "app_secret": "quickstart-app-secret", "callback": {
                "url": t.url("/v1/callbacks/feishu-oncall"),
                "token": "quickstart-verification-token", "encrypt_key": "quickstart-encrypt-key"}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let card = |text: &str, theme: &str| {
        serde_json::json!({"channel": "oncall", "title": "CPU high", "thread": "cpu-db-1",
            "body": {"type": "card", "text": text, "theme": theme},
            "actions": [{"id": "ack", "text": "认领"}, {"id": "resolve", "text": "已解决"}]})
        .to_string()
    };
    let r = t
        .post(
            "/v1/messages",
            Some(key),
            &card("**FIRING** cpu 97% on db-1", "red"),
            &[],
        )
        .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state_as(key, &id, "delivered").await;
    let sent = mock
        .state()
        .sent
        .list(Some(imrelay_mock::MockPlatform::Feishu), None);
    assert_eq!(sent.len(), 1);
    let om = sent[0].message_id.clone();
    let clicked: Value = http
        .post(format!("{mock_url}/_mock/messages/{om}/click"))
        .json(&serde_json::json!({"action": "ack", "user": "ou_zhangsan"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(clicked.to_string().contains("已认领"), "{clicked:#}");
    let r = t
        .post(
            "/v1/messages",
            Some(key),
            &card("**RESOLVED** cpu 40% on db-1", "green"),
            &[],
        )
        .await;
    t.wait_state_as(key, r.body["id"].as_str().unwrap(), "delivered")
        .await;
    let shows = |what: &str| {
        let m = mock.state().sent.get(&om).unwrap();
        m.current().to_string().contains(what)
    };
    for _ in 0..500 {
        if shows("RESOLVED") && shows("已认领 Acknowledged by 张三") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        shows("RESOLVED") && shows("已认领 Acknowledged by 张三"),
        "{:#?}",
        mock.state().sent.get(&om)
    );
    assert_eq!(
        mock.state()
            .sent
            .list(Some(imrelay_mock::MockPlatform::Feishu), None)
            .len(),
        1,
        "one card, edited"
    );
    t.gw.shutdown().await.unwrap();
}
