//! WeChat Official Account destinations of the SDK against the running mock:
//! template and subscribe messages, `client_msg_id` dedup, every error class,
//! token expiry and refresh (with the forced stable_token refresh), single-flight
//! token fetches, and the mock's token endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use imrelay_mock::{AppConfig, FaultAction, MockConfig, MockPlatform, MockServer};
use imrelay_sdk::message::Body;
use imrelay_sdk::outcome::{Code, Outcome};
use imrelay_sdk::{deliver, Client, Destination, Error, Message};
use serde_json::{json, Value};

use crate::common::{code, log, send_one};

const APPID: &str = "wx-mock-app";
const SECRET: &str = "app-secret-1";

async fn server() -> MockServer {
    let cfg = MockConfig::default().with_app(AppConfig::new(MockPlatform::Wechat, APPID, SECRET));
    crate::common::start(cfg).await
}

fn dest(client: &Client, server: &MockServer, extra: Value) -> Arc<dyn Destination> {
    let mut cfg = json!({"type": "wechat_template", "base_url": server.base_url(), "app_id": APPID,
        "app_secret": SECRET, "template_id": "TPL_1", "url": "https://e.com/detail", "recipients": ["oUSER1"]});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    client.build(&cfg).unwrap()
}

fn template(id: &str) -> Message {
    let mut data = BTreeMap::new();
    data.insert("thing1".to_string(), "磁盘告警".to_string());
    data.insert("time2".to_string(), "2026-01-01 12:00".to_string());
    Message::new(Body::Template {
        template_id: String::new(),
        data,
        url: None,
    })
    .with_id(id)
}

fn fault(server: &MockServer, action: FaultAction, count: u64) {
    crate::common::fault(server, &format!("wechat:app:{APPID}"), action, count);
}

#[tokio::test]
async fn template_messages_go_one_per_follower() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    let msg = template("alert-1").with_recipients(vec!["oA".into(), "oB".into()]);
    let reports = deliver(&*d, &msg).await.unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(r.is_complete_success(), "{r}");
        assert!(r
            .platform_message_id
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .is_ok());
    }
    let sends = log(&server, "template.send");
    assert_eq!(sends.len(), 2);
    let body = sends[0].body.as_ref().unwrap();
    assert_eq!(body["touser"], "oA");
    assert_eq!(body["template_id"], "TPL_1");
    assert_eq!(body["url"], "https://e.com/detail");
    assert_eq!(body["data"]["thing1"], json!({"value": "磁盘告警"}));
    assert_eq!(body["client_msg_id"].as_str().unwrap().len(), 36);
    assert!(sends
        .iter()
        .all(|e| e.accepted && e.target == format!("wechat:app:{APPID}")));
    // One stable_token call, logged without the secret.
    let tokens = log(&server, "stable_token");
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].body.as_ref().unwrap()["force_refresh"], false);
    assert!(!tokens[0]
        .body
        .as_ref()
        .unwrap()
        .to_string()
        .contains(SECRET));
    server.stop().await;
}

#[tokio::test]
async fn subscribe_messages_use_bizsend_with_page() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(
        &client,
        &server,
        json!({"kind": "subscribe", "url": null, "page": "https://e.com/p"}),
    );
    let rep = send_one(&*d, &template("s-1")).await;
    assert!(rep.is_complete_success(), "{rep}");
    let sends = log(&server, "subscribe.send");
    assert_eq!(sends.len(), 1);
    let body = sends[0].body.as_ref().unwrap();
    assert_eq!(body["page"], "https://e.com/p");
    assert!(body.get("client_msg_id").is_none());
    // A follower who refused the subscription.
    let rep = send_one(
        &*d,
        &template("s-2").with_recipients(vec!["refused_1".into()]),
    )
    .await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(43101)))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_retried_template_message_is_not_delivered_twice() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    assert!(d.dedups_retries());
    let msg = template("alert-7");
    // Rendering again (as a retry after a lost answer does) gives the same client_msg_id.
    let first = d.render(&msg).unwrap();
    let again = d.render(&msg).unwrap();
    assert_eq!(first, again);
    assert!(d.send(&first[0]).await.is_complete_success());
    assert!(d.send(&again[0]).await.is_complete_success());
    let sends = log(&server, "template.send");
    assert_eq!(sends.len(), 2);
    assert!(!sends[0].duplicate && sends[1].duplicate);
    assert_eq!(
        sends.iter().filter(|e| e.accepted && !e.duplicate).count(),
        1
    );
    // A different message to the same follower is delivered.
    assert!(send_one(&*d, &template("alert-8"))
        .await
        .is_complete_success());
    assert_eq!(
        log(&server, "template.send")
            .iter()
            .filter(|e| !e.duplicate)
            .count(),
        2
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_recipient_template_and_data_are_permanent() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    let rep = send_one(
        &*d,
        &template("x").with_recipients(vec!["invalid_openid".into()]),
    )
    .await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(40003)))
    );
    assert!(
        rep.message.starts_with("invalid openid rid: "),
        "{}",
        rep.message
    );
    let bad_tpl = dest(&client, &server, json!({"template_id": "invalid_tpl"}));
    let rep = send_one(&*bad_tpl, &template("y")).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(40037)))
    );
    let raw = Message::new(Body::Raw {
        platform: None,
        payload: json!({"data": {"thing1": "not an object"}}),
    });
    let rep = send_one(&*d, &raw).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(47003)))
    );
    // Free text never reaches the platform.
    assert!(matches!(
        d.render(&Message::text("hi")),
        Err(Error::Unsupported { .. })
    ));
    server.stop().await;
}

#[tokio::test]
async fn injected_codes_map_to_each_class() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    fault(&server, code(-1), 1);
    assert_eq!(
        send_one(&*d, &template("a")).await.outcome,
        Outcome::Retry { after: None }
    );
    fault(&server, code(45009), 1);
    assert_eq!(
        send_one(&*d, &template("b")).await.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(3600)
        }
    );
    fault(&server, code(43004), 1);
    assert_eq!(
        send_one(&*d, &template("c")).await.outcome,
        Outcome::Permanent
    );
    fault(&server, FaultAction::Http { http_status: 502 }, 1);
    let rep = send_one(&*d, &template("d")).await;
    assert_eq!(
        (rep.outcome, rep.status),
        (Outcome::Retry { after: None }, Some(502))
    );

    // 40001 twice: the SDK refreshes once and retries once, then reports
    // RefreshToken. stable_token would hand back the rejected token, so the
    // refresh is forced.
    fault(&server, code(40001), 2);
    let rep = send_one(&*d, &template("e")).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::RefreshToken, Some(Code::Int(40001)))
    );
    let forced: Vec<bool> = log(&server, "stable_token")
        .iter()
        .map(|e| e.body.as_ref().unwrap()["force_refresh"].as_bool().unwrap())
        .collect();
    assert_eq!(forced, [false, false, true]);
    assert!(send_one(&*d, &template("f")).await.is_complete_success());
    server.stop().await;
}

#[tokio::test]
async fn expired_token_is_refreshed_once_and_the_send_retried() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    assert!(send_one(&*d, &template("1")).await.is_complete_success());
    server
        .state()
        .tokens
        .expire_all(Some(MockPlatform::Wechat), server.state().now_ms());
    let rep = send_one(&*d, &template("2")).await;
    assert!(rep.is_complete_success(), "{rep}");
    let tokens = log(&server, "stable_token");
    assert_eq!(tokens.len(), 2, "exactly one refresh");
    // The expired token was not forced out: stable_token issued a new one by itself.
    assert_eq!(tokens[1].body.as_ref().unwrap()["force_refresh"], false);
    let sends = log(&server, "template.send");
    let codes: Vec<&str> = sends.iter().map(|e| e.code.as_deref().unwrap()).collect();
    assert_eq!(codes, ["0", "42001", "0"]);
    assert_eq!(sends[1].reason.as_deref(), Some("access_token expired"));
    server.stop().await;
}

#[tokio::test]
async fn expired_token_answer_has_the_real_shape() {
    let server = server().await;
    let http = reqwest::Client::new();
    let tok: Value = http
        .post(format!("{}/cgi-bin/stable_token", server.base_url()))
        .json(&json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tok.get("errcode").is_none());
    assert_eq!(tok["expires_in"], 7200);
    server
        .state()
        .tokens
        .expire_all(None, server.state().now_ms());
    let answer: Value = http
        .post(format!(
            "{}/cgi-bin/message/template/send?access_token={}",
            server.base_url(),
            tok["access_token"].as_str().unwrap()
        ))
        .json(&json!({"touser": "o1", "template_id": "T", "data": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["errcode"], 42001);
    assert!(answer["errmsg"]
        .as_str()
        .unwrap()
        .starts_with("access_token expired rid: "));
    server.stop().await;
}

#[tokio::test]
async fn a_thousand_concurrent_sends_fetch_one_token() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({}));
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let d = d.clone();
            tokio::spawn(async move { send_one(&*d, &template(&format!("m{i}"))).await })
        })
        .collect();
    for t in tasks {
        let rep = t.await.unwrap();
        assert!(rep.is_complete_success(), "{rep}");
    }
    assert_eq!(log(&server, "stable_token").len(), 1);
    assert_eq!(
        log(&server, "template.send")
            .iter()
            .filter(|e| e.accepted && !e.duplicate)
            .count(),
        1000
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_credentials_are_permanent() {
    let server = server().await;
    let client = Client::new().unwrap();
    let d = dest(&client, &server, json!({"app_secret": "wrong"}));
    let rep = send_one(&*d, &template("x")).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(40125)))
    );
    let d = dest(&client, &server, json!({"app_id": "wx-nobody"}));
    let rep = send_one(&*d, &template("x")).await;
    assert_eq!(
        (rep.outcome, rep.code),
        (Outcome::Permanent, Some(Code::Int(40013)))
    );
    assert!(log(&server, "template.send").is_empty());
    server.stop().await;
}

#[tokio::test]
async fn token_endpoints_follow_their_reuse_rules() {
    let server = server().await;
    let http = reqwest::Client::new();
    let base = server.base_url();
    let stable = |force: bool| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: Value = http
                .post(format!("{base}/cgi-bin/stable_token"))
                .json(&json!({"grant_type": "client_credential", "appid": APPID, "secret": SECRET, "force_refresh": force}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["access_token"].as_str().unwrap().to_string()
        }
    };
    let plain = || {
        let http = http.clone();
        let url = format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={APPID}&secret={SECRET}"
        );
        async move {
            let v: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["access_token"].as_str().unwrap().to_string()
        }
    };
    let send_with = |token: String| {
        let http = http.clone();
        let base = base.clone();
        async move {
            let v: Value = http
                .post(format!(
                    "{base}/cgi-bin/message/template/send?access_token={token}"
                ))
                .json(&json!({"touser": "o1", "template_id": "T", "data": {"a": {"value": "b"}}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["errcode"].as_i64().unwrap()
        }
    };
    let s1 = stable(false).await;
    assert_eq!(stable(false).await, s1, "same token while valid");
    let p1 = plain().await;
    let p2 = plain().await;
    assert_ne!(p1, p2, "/cgi-bin/token issues a new token each call");
    assert_eq!(
        send_with(p1).await,
        40001,
        "the previous plain token is invalidated"
    );
    assert_eq!(send_with(p2).await, 0);
    assert_eq!(
        send_with(s1.clone()).await,
        0,
        "stable tokens are independent of /cgi-bin/token"
    );
    let s2 = stable(true).await;
    assert_ne!(s2, s1, "force_refresh issues a new token");
    assert_eq!(stable(false).await, s2);
    assert_eq!(log(&server, "token").len(), 2);
    server.stop().await;
}
