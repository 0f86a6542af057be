//! A Feishu app card's life against the mock, end to end through the
//! gateway's API and its callback endpoint: the card is sent with buttons; a
//! click (the mock fires Feishu's encrypted, signed `card.action.trigger`)
//! is acted on and the same card updated for everyone; later messages of
//! the thread edit it in place; a user not on the allowed list changes
//! nothing; a recall takes it back; updates never land out of order.

use std::time::Duration;

use imrelay_mock::{MockConfig, MockServer};
use serde_json::{json, Value};

use crate::api_support::{TestGateway, ADMIN_KEY};

const APP: &str = "cli_life";
const SECRET: &str = "app-secret-life";
const ENCRYPT_KEY: &str = "life-encrypt-key-0123456789";
const VERIFY: &str = "life-verification-token";

struct Card {
    gw: TestGateway,
    mock: MockServer,
    http: reqwest::Client,
}

async fn start(extra: &str) -> Card {
    let mock = MockServer::start(MockConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]
[lifecycle]
time_zone = "UTC"
allowed_users = ["ou_zhang", "ou_li"]
[lifecycle.names]
ou_zhang = "张三"
[channels.ops]
{extra}
[[channels.ops.destinations]]
type = "feishu_app"
app_id = "{APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["chat_id:oc_ops"]
[[callbacks]]
name = "fs"
platform = "feishu"
encrypt_key = "{ENCRYPT_KEY}"
verification_token = "{VERIFY}"
"#,
        url = mock.base_url()
    );
    let gw = TestGateway::start(&text).await;
    let http = reqwest::Client::new();
    // The platform learns the app's callback URL (as in Feishu's console).
    let r = http
        .post(format!("{}/_mock/apps", mock.base_url()))
        .json(&json!({"platform": "feishu", "app_id": APP, "app_secret": SECRET,
            "callback": {"url": gw.url("/v1/callbacks/fs"), "token": VERIFY, "encrypt_key": ENCRYPT_KEY}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Card { gw, mock, http }
}

impl Card {
    async fn submit(&self, body: Value) -> String {
        let r = self
            .gw
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    async fn messages(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!(
                "{}/_mock/messages?platform=feishu",
                self.mock.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    /// Wait until the mock's messages satisfy `pred`.
    async fn wait(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..500 {
            let m = self.messages().await;
            if pred(&m) {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "never: {what}; the mock has {:#}",
            json!(self.messages().await)
        );
    }

    async fn click(&self, platform_id: &str, action: &str, user: &str) -> Value {
        let r = self
            .http
            .post(format!(
                "{}/_mock/messages/{platform_id}/click",
                self.mock.base_url()
            ))
            .json(&json!({"action": action, "user": user}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{body:#}");
        body
    }
}

/// The card content of a mock message's latest revision, as text.
fn current(m: &Value) -> String {
    m["revisions"].as_array().unwrap().last().unwrap()["content"].to_string()
}

fn firing(text: &str) -> Value {
    json!({"channel": "ops", "title": "CPU high", "thread": "cpu-db-1",
        "body": {"type": "card", "text": text, "theme": "red"},
        "actions": [{"id": "ack", "text": "认领"}, {"id": "resolve", "text": "已解决"}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_acknowledges_and_later_messages_edit_the_same_card() {
    let c = start("").await;
    let id = c.submit(firing("**firing** cpu 97%")).await;
    let view = c.gw.wait_state(&id, "delivered").await;
    let om = view["deliveries"][0]["history"][0]["platform_message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the platform's id is kept: {view:#}"))
        .to_string();
    assert!(om.starts_with("om_"), "{om}");
    let sent = c.wait("one card", |m| m.len() == 1).await;
    assert!(
        current(&sent[0]).contains("imrelay_action"),
        "buttons call back: {}",
        current(&sent[0])
    );

    // 张三 clicks "认领": Feishu shows the toast, and the card says so for everyone.
    let fired = c.click(&om, "ack", "ou_zhang").await;
    assert!(fired.to_string().contains("已认领"), "the toast: {fired:#}");
    let acked = c
        .wait("the card shows the acknowledgement", |m| {
            m.len() == 1 && current(&m[0]).contains("已认领 Acknowledged by 张三")
        })
        .await;
    assert!(
        !current(&acked[0]).contains("\"ack\""),
        "no ack button once acknowledged"
    );
    let v =
        c.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    assert_eq!(v.body["acks"][0]["user_id"], "ou_zhang");
    assert_eq!(v.body["acks"][0]["user_name"], "张三");
    assert_eq!(v.body["acks"][0]["source"], "feishu");

    // A user not on the list: refused with a toast, nothing recorded.
    let refused = c.click(&om, "resolve", "ou_evil").await;
    assert!(refused.to_string().contains("无权"), "{refused:#}");
    let v =
        c.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    assert_eq!(v.body["acks"].as_array().unwrap().len(), 1, "{:#}", v.body);

    // The alert resolves: the same card turns green, keeping the acknowledgement.
    let resolved = c
        .submit(
            json!({"channel": "ops", "title": "CPU high", "thread": "cpu-db-1",
            "body": {"type": "card", "text": "**resolved** at 03:20", "theme": "green"}}),
        )
        .await;
    c.gw.wait_state(&resolved, "delivered").await;
    let last = c
        .wait("the card resolved", |m| {
            current(&m[0]).contains("**resolved** at 03:20")
        })
        .await;
    assert_eq!(last.len(), 1, "never a second message: {last:#?}");
    let card = current(&last[0]);
    assert!(card.contains("green"), "{card}");
    assert!(card.contains("已认领 Acknowledged by 张三"), "{card}");
    assert!(last[0]["revisions"].as_array().unwrap().len() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_takes_the_card_back_and_a_second_answers_nothing_left() {
    let c = start("").await;
    let id = c.submit(firing("**firing** disk")).await;
    c.gw.wait_state(&id, "delivered").await;
    let r =
        c.gw.delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["destinations"][0]["recall"], true);
    let recall = r.body["id"].as_str().unwrap().to_string();
    c.gw.wait_state(&recall, "delivered").await;
    let m = c
        .wait("recalled", |m| m[0]["recalled_at_ms"].is_i64())
        .await;
    assert_eq!(m.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_never_land_out_of_order_even_when_the_platform_answers_slowly() {
    // Unordered channel: nothing but the thread lease keeps updates in order.
    let c = start("ordered = false").await;
    let id = c.submit(firing("v1 firing")).await;
    c.gw.wait_state(&id, "delivered").await;
    // The next update's request takes 600 ms at the platform.
    let r = c
        .http
        .post(format!("{}/_mock/faults", c.mock.base_url()))
        .json(&json!({"target": format!("feishu:app:{APP}"), "latency_ms": 600, "count": 1}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let update = |text: &str| {
        let mut body = firing(text);
        body["actions"] = json!([]);
        body
    };
    let mut ids = vec![c.submit(update("v2 resolved")).await];
    // v2's request is at the platform (the fault took it) when v3 arrives.
    for _ in 0..500 {
        let f: Value = c
            .http
            .get(format!("{}/_mock/faults", c.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if f.as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ids.push(c.submit(update("v3 firing again")).await);
    for i in &ids {
        c.gw.wait_state(i, "delivered").await;
    }
    let m = c
        .wait("the newest content", |m| {
            current(&m[0]).contains("v3 firing again")
        })
        .await;
    // Let a stale update land if one were still on its way.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let m2 = c.messages().await;
    assert_eq!(m2.len(), 1, "{m:#?}");
    assert!(
        current(&m2[0]).contains("v3 firing again"),
        "a stale update landed last: {:#}",
        m2[0]
    );
    let texts: Vec<String> = m2[0]["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["content"].to_string())
        .collect();
    let pos = |s: &str| texts.iter().position(|t| t.contains(s));
    if let (Some(v2), Some(v3)) = (pos("v2 resolved"), pos("v3 firing again")) {
        assert!(v2 < v3, "v2 after v3: {texts:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_keep_to_the_platforms_limit_per_message() {
    let c = start("").await;
    let id = c.submit(firing("v0")).await;
    c.gw.wait_state(&id, "delivered").await;
    // Seven updates, each sent as soon as the one before is delivered: Feishu
    // takes five a second per message, and refuses the sixth.
    for i in 1..=7 {
        let mut body = firing(&format!("v{i}"));
        body["actions"] = json!([]);
        let u = c.submit(body).await;
        c.gw.wait_state(&u, "delivered").await;
    }
    let m = c
        .wait("the last update", |m| current(&m[0]).contains("v7"))
        .await;
    assert_eq!(m.len(), 1, "every update in place: {m:#?}");
    let at: Vec<i64> = m[0]["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["at_ms"].as_i64().unwrap())
        .collect();
    assert_eq!(at.len(), 8, "{m:#?}");
    for w in at[1..].windows(2) {
        assert!(
            w[1] - w[0] >= 190,
            "updates closer than Feishu allows: {at:?}"
        );
    }
}
