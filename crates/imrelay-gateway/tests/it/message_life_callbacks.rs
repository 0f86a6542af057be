//! Card callbacks that must change nothing: forged (bad signature or URL
//! token), replayed (the very same signed request again), stale (a timestamp
//! outside the replay window), from a user not on the allowed list, or naming
//! a message imrelay never sent. Genuine requests are built by
//! `imrelay_mock::callback::fire` (Feishu `card.action.trigger`, WeCom
//! `template_card_event`) and tampered with; each refusal is checked against
//! the store: no acknowledgement on the message and no card update queued.

use imrelay_mock::callback::{fire, CallbackKind, CallbackResult, CallbackSpec, SentRequest};
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer};
use imrelay_sdk::Secret;
use serde_json::{json, Value};

use crate::api_support::{TestGateway, ADMIN_KEY};

const FS_APP: &str = "cli_cb";
const FS_SECRET: &str = "fs-secret";
const FS_VERIFY: &str = "cb-verification-token";
const FS_ENCRYPT: &str = "cb-encrypt-key-0123456789";
const WC_CORP: &str = "wwcb";
const WC_SECRET: &str = "wc-secret";
const WX_TOKEN: &str = "QDG6eK";
const WX_AES: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const DT_APP: &str = "dingcb";
const DT_SECRET: &str = "dt-secret";
const DT_AES: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
const CARD_TOKEN: &str = "cardtoken0123456789abcdef";

struct Env {
    gw: TestGateway,
    _mock: MockServer,
}

/// A gateway with a Feishu app (`fs`), a WeCom app (`wc`) and a DingTalk app
/// robot sending interactive cards (`dt`), each with its callback app, and
/// only `ou_zhang`, `wc_zhang`, `dt_zhang` allowed to press buttons.
async fn start() -> Env {
    let mcfg = MockConfig {
        apps: vec![
            AppConfig::new(MockPlatform::Feishu, FS_APP, FS_SECRET),
            AppConfig::new(MockPlatform::Wecom, WC_CORP, WC_SECRET),
            AppConfig::new(MockPlatform::Dingtalk, DT_APP, DT_SECRET),
        ],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
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
allowed_users = ["ou_zhang", "wc_zhang", "dt_zhang"]

[channels.fs]
[[channels.fs.destinations]]
type = "feishu_app"
app_id = "{FS_APP}"
app_secret = "{FS_SECRET}"
base_url = "{url}"
recipients = ["chat_id:oc_ops"]

[channels.wc]
[[channels.wc.destinations]]
type = "wecom_app"
corp_id = "{WC_CORP}"
corp_secret = "{WC_SECRET}"
agent_id = 1000002
base_url = "{url}"
recipients = ["zhangsan"]

[channels.dt]
[[channels.dt.destinations]]
type = "dingtalk_app"
mode = "robot"
app_key = "{DT_APP}"
app_secret = "{DT_SECRET}"
robot_code = "{DT_APP}"
base_url = "{url}"
recipients = ["open_conversation_id:cid_ops"]
card_template_id = "imrelay-alert.schema"
card_callback_route_key = "imrelay"

[[callbacks]]
name = "fs"
platform = "feishu"
encrypt_key = "{FS_ENCRYPT}"
verification_token = "{FS_VERIFY}"
[[callbacks]]
name = "wc"
platform = "wecom"
token = "{WX_TOKEN}"
encoding_aes_key = "{WX_AES}"
receive_id = "{WC_CORP}"
[[callbacks]]
name = "dt"
platform = "dingtalk"
token = "dt-token"
encoding_aes_key = "{DT_AES}"
receive_id = "{DT_APP}"
card_token = "{CARD_TOKEN}"
"#,
        url = mock.base_url()
    );
    Env {
        gw: TestGateway::start(&text).await,
        _mock: mock,
    }
}

impl Env {
    /// Send an alert card with buttons to `channel`; its id and the
    /// platform's id of the delivered card.
    async fn card(&self, channel: &str) -> (String, String) {
        let body = json!({"channel": channel, "title": "CPU high",
            "body": {"type": "card", "text": "**firing** cpu 97%", "theme": "red"},
            "actions": [{"id": "ack", "text": "认领"}, {"id": "resolve", "text": "已解决"}]});
        let r = self
            .gw
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let view = self.gw.wait_state(&id, "delivered").await;
        let platform_id = view["deliveries"][0]["history"][0]["platform_message_id"]
            .as_str()
            .unwrap_or_else(|| panic!("the platform's id is kept: {view:#}"))
            .to_string();
        (id, platform_id)
    }

    /// The acknowledgements `GET /v1/messages/{id}` shows.
    async fn acks(&self, id: &str) -> Vec<Value> {
        let v = self
            .gw
            .get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
        assert_eq!(v.status, 200, "{}", v.text);
        v.body["acks"].as_array().cloned().unwrap_or_default()
    }

    /// Nothing happened to `id`: no acknowledgement, and no card update
    /// queued (an acted click enqueues one; `stored` is the count before).
    async fn assert_untouched(&self, what: &str, id: &str, stored: u64) {
        let acks = self.acks(id).await;
        assert!(acks.is_empty(), "{what}: recorded {acks:#?}");
        assert_eq!(
            self.gw.stored_messages().await,
            stored,
            "{what}: a card update was queued"
        );
    }

    fn feishu(&self, message: &str, open_message_id: &str, user: &str) -> CallbackSpec {
        let mut s = CallbackSpec::new(
            CallbackKind::FeishuCardAction,
            self.gw.url("/v1/callbacks/fs"),
        );
        s.encrypt_key = Some(Secret::new(FS_ENCRYPT));
        s.token = Some(Secret::new(FS_VERIFY));
        s.message = Some(message.into());
        s.open_message_id = Some(open_message_id.into());
        s.user = Some(user.into());
        s.action = Some("ack".into());
        s
    }

    fn wecom(&self, message: &str, user: &str) -> CallbackSpec {
        let mut s = CallbackSpec::new(
            CallbackKind::WecomCardAction,
            self.gw.url("/v1/callbacks/wc"),
        );
        s.token = Some(Secret::new(WX_TOKEN));
        s.encoding_aes_key = Some(Secret::new(WX_AES));
        s.receive_id = Some(WC_CORP.into());
        s.message = Some(message.into());
        s.user = Some(user.into());
        s.action = Some("ack".into());
        s
    }
}

/// Send a recorded request again, byte for byte.
async fn resend(req: &SentRequest) -> (u16, String) {
    let c = reqwest::Client::new();
    let mut b = c.request(req.method.parse().unwrap(), &req.url);
    for (k, v) in &req.headers {
        b = b.header(k, v);
    }
    let r = b.body(req.body.clone()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A 401 problem naming the failed `check`.
#[track_caller]
fn assert_refused(r: &CallbackResult, check: &str) {
    assert_eq!(r.status, 401, "{r:?}");
    let v: Value = serde_json::from_str(&r.response_body).unwrap();
    assert_eq!(v["check"], check, "{v:#}");
}

/// Feishu's toast of a refused click.
#[track_caller]
fn feishu_error_toast(r: &CallbackResult) -> String {
    assert!(r.ok, "Feishu must get a 200 and a JSON answer: {r:?}");
    let v: Value = serde_json::from_str(&r.response_body).unwrap();
    assert_eq!(v["toast"]["type"], "error", "{v:#}");
    v["toast"]["content"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_forged_stale_foreign_and_replayed_clicks_change_nothing() {
    let env = start().await;
    let (id, om) = env.card("fs").await;
    let stored = env.gw.stored_messages().await;

    // Forged: signed and encrypted with a key that is not the app's.
    let mut forged = env.feishu(&id, &om, "ou_zhang");
    forged.encrypt_key = Some(Secret::new("an attacker's guess"));
    assert_refused(&fire(forged).await.unwrap(), "signature");
    env.assert_untouched("a forged click", &id, stored).await;

    // Stale: correctly signed, but an hour old (or an hour ahead).
    for ts in [now_s() - 3600, now_s() + 3600] {
        let mut stale = env.feishu(&id, &om, "ou_zhang");
        stale.timestamp = Some(ts);
        assert_refused(&fire(stale).await.unwrap(), "timestamp");
        env.assert_untouched("a stale click", &id, stored).await;
    }

    // Genuine, but from someone not on the allowed list: a toast says no.
    let r = fire(env.feishu(&id, &om, "ou_evil")).await.unwrap();
    let toast = feishu_error_toast(&r);
    assert!(toast.contains("无权"), "{toast}");
    env.assert_untouched("a click by ou_evil", &id, stored)
        .await;

    // Genuine, naming a message imrelay never sent.
    let r = fire(env.feishu("no-such-message", &om, "ou_zhang"))
        .await
        .unwrap();
    let toast = feishu_error_toast(&r);
    assert!(toast.contains("不存在"), "{toast}");
    env.assert_untouched("a click on an unknown message", &id, stored)
        .await;

    // Genuine: acted on once.
    let good = fire(env.feishu(&id, &om, "ou_zhang")).await.unwrap();
    assert!(good.ok, "{good:?}");
    assert!(good.response_body.contains("已认领"), "{good:?}");
    let acks = env.acks(&id).await;
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(acks[0]["user_id"], "ou_zhang");
    assert_eq!(acks[0]["source"], "feishu");
    let after = env.gw.stored_messages().await;
    assert_eq!(after, stored + 1, "one card update queued");

    // The very same signed request again: a replay, refused.
    let (status, body) = resend(&good.request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    assert_eq!(env.acks(&id).await.len(), 1);
    assert_eq!(env.gw.stored_messages().await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_forged_stale_foreign_and_replayed_clicks_change_nothing() {
    let env = start().await;
    let (id, _msgid) = env.card("wc").await;
    let stored = env.gw.stored_messages().await;

    // Forged: signed with a token that is not the app's.
    let mut forged = env.wecom(&id, "wc_zhang");
    forged.token = Some(Secret::new("not-the-token"));
    assert_refused(&fire(forged).await.unwrap(), "signature");
    env.assert_untouched("a forged click", &id, stored).await;

    // Stale: correctly signed, an hour old (or an hour ahead).
    for ts in [now_s() - 3600, now_s() + 3600] {
        let mut stale = env.wecom(&id, "wc_zhang");
        stale.timestamp = Some(ts);
        assert_refused(&fire(stale).await.unwrap(), "timestamp");
        env.assert_untouched("a stale click", &id, stored).await;
    }

    // A user not on the allowed list, and a message imrelay never sent:
    // WeCom takes the usual empty answer (its passive reply has no toast),
    // and nothing is recorded.
    let r = fire(env.wecom(&id, "wc_evil")).await.unwrap();
    assert!(r.ok, "{r:?}");
    env.assert_untouched("a click by wc_evil", &id, stored)
        .await;
    let r = fire(env.wecom("no-such-message", "wc_zhang"))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    env.assert_untouched("a click on an unknown message", &id, stored)
        .await;

    // Genuine: acted on once.
    let good = fire(env.wecom(&id, "wc_zhang")).await.unwrap();
    assert!(good.ok, "{good:?}");
    let acks = env.acks(&id).await;
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(acks[0]["user_id"], "wc_zhang");
    assert_eq!(acks[0]["source"], "wecom");
    let after = env.gw.stored_messages().await;
    assert_eq!(after, stored + 1, "one card update queued");

    // The very same request again: a replay, refused.
    let (status, body) = resend(&good.request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    assert_eq!(env.acks(&id).await.len(), 1);
    assert_eq!(env.gw.stored_messages().await, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_card_callbacks_without_the_url_token_change_nothing() {
    let env = start().await;
    let (id, out_track_id) = env.card("dt").await;
    let stored = env.gw.stored_messages().await;
    // A click as DingTalk posts it: the URL's token is its only credential.
    let click = |query: &str, token: Option<&str>, user: &str| {
        let mut s = CallbackSpec::new(
            CallbackKind::DingtalkCardAction,
            env.gw.url(&format!("/v1/callbacks/dt/card{query}")),
        );
        s.token = token.map(Secret::new);
        s.message = Some(id.clone());
        s.out_track_id = Some(out_track_id.clone());
        s.user = Some(user.into());
        fire(s)
    };

    for (what, query, token) in [
        ("no token", "", None),
        ("an empty token", "", Some("")),
        ("a wrong token", "", Some("cardtoken0123456789abcdeX")),
        (
            "the token in another parameter",
            "?t=cardtoken0123456789abcdef",
            None,
        ),
    ] {
        let r = click(query, token, "dt_zhang").await.unwrap();
        assert_refused(&r, "signature");
        env.assert_untouched(what, &id, stored).await;
    }

    // With the token, a user not on the list is refused; the allowed one acts.
    let r = click("", Some(CARD_TOKEN), "dt_evil").await.unwrap();
    assert!(r.ok, "{r:?}");
    env.assert_untouched("a click by dt_evil", &id, stored)
        .await;
    let r = click("", Some(CARD_TOKEN), "dt_zhang").await.unwrap();
    assert!(r.ok, "{r:?}");
    let acks = env.acks(&id).await;
    assert_eq!(acks.len(), 1, "{acks:#?}");
    assert_eq!(acks[0]["user_id"], "dt_zhang");
    assert_eq!(acks[0]["source"], "dingtalk");
    let after = env.gw.stored_messages().await;
    assert_eq!(after, stored + 1, "one card update queued");

    // DingTalk signs nothing and sends no nonce, so the same request again
    // is answered (a retry must stop) but changes nothing.
    let (status, body) = resend(&r.request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.acks(&id).await.len(), 1);
    assert_eq!(env.gw.stored_messages().await, after);
}
