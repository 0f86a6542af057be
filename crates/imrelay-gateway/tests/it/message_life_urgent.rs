//! Urgent pushes through `POST /v1/messages/{id}/urgent` against the mock:
//! a Feishu phone push reaches the user exactly once for the platform's
//! message id, a DingTalk DING carries the message's title to its user, a
//! WeCom message answers 409 with the reason, an exhausted SMS quota ends
//! dead-lettered with Feishu's code, a user outside the chat is dead for
//! that user alone; and the API's refusals (unknown message, another
//! channel's key, a bad kind, an urgent push of an urgent push).

use imrelay_gateway::config::Config;
use imrelay_gateway::{Gateway, StartOptions};
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer};
use serde_json::{json, Value};

use crate::api_support::{TestGateway, ADMIN_KEY};

const FS_APP: &str = "cli_urgent";
const FS_POOR: &str = "cli_no_quota";
const WC_CORP: &str = "wwurgent";
const DT_APP: &str = "dingurgent";
const SECRET: &str = "app-secret";
const FS_KEY: &str = "fs-only-key-0123456789";

struct Env {
    gw: TestGateway,
    mock: MockServer,
    http: reqwest::Client,
}

/// Channels: `fs` (Feishu app to ou_alice), `fsgroup` (the same app to a
/// chat), `poor` (a Feishu app whose tenant has no SMS/phone quota left),
/// `dt` (DingTalk app robot to user001), `wc` (WeCom app).
async fn start() -> Env {
    let mcfg = MockConfig {
        apps: vec![
            AppConfig::new(MockPlatform::Feishu, FS_APP, SECRET),
            AppConfig {
                urgent_quota: Some(0),
                ..AppConfig::new(MockPlatform::Feishu, FS_POOR, SECRET)
            },
            AppConfig::new(MockPlatform::Wecom, WC_CORP, SECRET),
            AppConfig::new(MockPlatform::Dingtalk, DT_APP, SECRET),
        ],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = mock.base_url();
    let feishu = |app: &str, recipient: &str| {
        format!(
            r#"type = "feishu_app"
app_id = "{app}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["{recipient}"]"#
        )
    };
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
[[api_keys]]
name = "fs-only"
key = "{FS_KEY}"
channels = ["fs"]

[channels.fs]
[[channels.fs.destinations]]
{fs}

[channels.fsgroup]
[[channels.fsgroup.destinations]]
{fsgroup}

[channels.poor]
[[channels.poor.destinations]]
{poor}

[channels.dt]
[[channels.dt.destinations]]
type = "dingtalk_app"
mode = "robot"
app_key = "{DT_APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["user001"]

[channels.wc]
[[channels.wc.destinations]]
type = "wecom_app"
corp_id = "{WC_CORP}"
corp_secret = "{SECRET}"
agent_id = 1000002
base_url = "{url}"
recipients = ["zhangsan"]
"#,
        fs = feishu(FS_APP, "ou_alice"),
        fsgroup = feishu(FS_APP, "chat_id:oc_ops"),
        poor = feishu(FS_POOR, "ou_alice"),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start_with(cfg, listener, StartOptions { clock: None })
        .await
        .unwrap();
    Env {
        gw: TestGateway {
            base: format!("http://{}", gw.addr()),
            gw,
            mock: None,
            dir,
            http: reqwest::Client::new(),
        },
        mock,
        http: reqwest::Client::new(),
    }
}

impl Env {
    /// Send `body` and wait until it is delivered; its id and the
    /// platform's id for it.
    async fn sent(&self, body: Value) -> (String, String) {
        let r = self
            .gw
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let view = self.gw.wait_state(&id, "delivered").await;
        let pid = view["deliveries"][0]["history"][0]["platform_message_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the platform's id is kept: {view:#}"))
            .to_string();
        (id, pid)
    }

    async fn urgent(&self, key: &str, id: &str, body: Value) -> crate::api_support::Resp {
        self.gw
            .post(
                &format!("/v1/messages/{id}/urgent"),
                Some(key),
                &body.to_string(),
                &[],
            )
            .await
    }

    /// Every message the mock's platforms took.
    async fn at_platform(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_mock/messages", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    async fn message_at_platform(&self, pid: &str) -> Value {
        self.at_platform()
            .await
            .into_iter()
            .find(|m| m["message_id"] == pid)
            .unwrap_or_else(|| panic!("the mock has no {pid}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feishu_phone_push_reaches_the_user_once_for_the_sent_message() {
    let env = start().await;
    let (id, pid) = env
        .sent(json!({"channel": "fs", "title": "DiskFull", "text": "disk full on db-1"}))
        .await;
    let r = env
        .urgent(
            ADMIN_KEY,
            &id,
            json!({"kind": "phone", "users": ["ou_alice"]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["of"], id.as_str());
    let d = &r.body["destinations"][0];
    assert_eq!(
        (d["kind"].as_str(), d["urgent"].as_bool()),
        (Some("feishu_app"), Some(true)),
        "{d}"
    );
    let push = r.body["id"].as_str().unwrap();
    let pv = env.gw.wait_state(push, "delivered").await;
    assert_eq!(pv["kind"], "urgent_phone", "{pv:#}");
    assert_eq!(pv["origin"], id.as_str());
    let history = pv["deliveries"][0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "one request: {pv:#}");
    assert_eq!(history[0]["outcome"], "delivered");

    let m = env.message_at_platform(&pid).await;
    assert_eq!(
        m["urgent"],
        json!([{"kind": "phone", "users": ["ou_alice"], "at_ms": m["urgent"][0]["at_ms"]}]),
        "exactly one phone push to ou_alice: {m:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_outside_the_chat_is_dead_alone_and_the_others_are_pushed() {
    let env = start().await;
    let (id, pid) = env
        .sent(json!({"channel": "fsgroup", "text": "disk full"}))
        .await;
    let r = env
        .urgent(
            ADMIN_KEY,
            &id,
            json!({"kind": "app", "users": ["ou_bob", "ou_outside_eve"]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pv = env
        .gw
        .wait_state(r.body["id"].as_str().unwrap(), "partial")
        .await;
    let dead: Vec<&Value> = pv["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["state"] == "dead")
        .collect();
    assert_eq!(dead.len(), 1, "{pv:#}");
    assert_eq!(dead[0]["recipients"], json!(["ou_outside_eve"]));
    assert!(
        dead[0]["dead"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_user_id_list"),
        "{pv:#}"
    );
    let m = env.message_at_platform(&pid).await;
    assert_eq!(m["urgent"][0]["users"], json!(["ou_bob"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_quota_is_dead_lettered_with_the_platforms_code() {
    let env = start().await;
    let (id, pid) = env
        .sent(json!({"channel": "poor", "text": "disk full"}))
        .await;
    let r = env
        .urgent(
            ADMIN_KEY,
            &id,
            json!({"kind": "sms", "users": ["ou_alice"]}),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let pv = env
        .gw
        .wait_state(r.body["id"].as_str().unwrap(), "dead")
        .await;
    let dead = &pv["deliveries"][0]["dead"];
    assert_eq!(dead["code"], "230024", "{pv:#}");
    assert!(dead["reason"].as_str().unwrap().contains("quota"), "{pv:#}");
    assert!(env.message_at_platform(&pid).await["urgent"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ding_carries_the_title_to_its_user() {
    let env = start().await;
    let (id, _) = env
        .sent(json!({"channel": "dt", "title": "DiskFull on db-1", "text": "disk full"}))
        .await;
    let r = env
        .urgent(ADMIN_KEY, &id, json!({"kind": "app", "users": ["user001"]}))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["destinations"][0]["kind"], "dingtalk_app");
    let pv = env
        .gw
        .wait_state(r.body["id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(pv["kind"], "urgent_app");
    let dings: Vec<Value> = env
        .at_platform()
        .await
        .into_iter()
        .filter(|m| m["urgent"].is_array() && m["platform"] == "dingtalk")
        .collect();
    assert_eq!(dings.len(), 1, "{dings:#?}");
    assert_eq!(dings[0]["urgent"][0]["kind"], "app");
    assert_eq!(dings[0]["urgent"][0]["users"], json!(["user001"]));
    assert_eq!(
        dings[0]["revisions"][0]["content"]["content"],
        "DiskFull on db-1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_cannot_push_and_the_api_refuses_what_it_must() {
    let env = start().await;
    let (wc, _) = env
        .sent(json!({"channel": "wc", "text": "disk full"}))
        .await;
    let r = env
        .urgent(
            ADMIN_KEY,
            &wc,
            json!({"kind": "app", "users": ["zhangsan"]}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let d = &r.body["destinations"][0];
    assert_eq!(
        (d["kind"].as_str(), d["urgent"].as_bool()),
        (Some("wecom_app"), Some(false))
    );
    assert!(d["reason"].as_str().unwrap().contains("WeCom"), "{d}");

    let (fs, _) = env
        .sent(json!({"channel": "fs", "text": "disk full"}))
        .await;
    // Unknown, and another channel's message for a key of `fs` only: alike.
    let body = json!({"kind": "app", "users": ["ou_alice"]});
    assert_eq!(
        env.urgent(ADMIN_KEY, "no-such-message", body.clone())
            .await
            .status,
        404
    );
    assert_eq!(env.urgent(FS_KEY, &wc, body.clone()).await.status, 404);
    assert_eq!(env.urgent(FS_KEY, &fs, body.clone()).await.status, 202);
    let bad = env
        .urgent(
            ADMIN_KEY,
            &fs,
            json!({"kind": "pager", "users": ["ou_alice"]}),
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    let none = env
        .urgent(ADMIN_KEY, &fs, json!({"kind": "app", "users": []}))
        .await;
    assert_eq!(none.status, 422, "{}", none.text);
    assert_eq!(none.body["field"], "users");
    // An urgent push is not itself pushed.
    let push = env.urgent(ADMIN_KEY, &fs, body.clone()).await;
    let again = env
        .urgent(ADMIN_KEY, push.body["id"].as_str().unwrap(), body)
        .await;
    assert_eq!(again.status, 422, "{}", again.text);
    // Nor updated: its text would go out as a message of its own.
    let r = env
        .gw
        .http
        .patch(format!(
            "{}/v1/messages/{}",
            env.gw.base,
            push.body["id"].as_str().unwrap()
        ))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"text": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
}
