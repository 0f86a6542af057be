//! Recalls through `DELETE /v1/messages/{id}` against the mock, for every
//! destination whose platform has a recall API (Feishu app, DingTalk work
//! notices, app-robot messages and interactive cards, WeCom app): each is
//! seen recalled at the platform. And the refusals: a custom robot (no
//! recall API) and a message past the platform's window answer 409 with a
//! reason per destination; a recall the platform itself refuses ends
//! dead-lettered with the platform's reason.
//!
//! The gateway runs on a clock the test moves (and the mock's with it), so
//! "a day later" takes no time.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use imrelay_gateway::config::Config;
use imrelay_gateway::{Gateway, StartOptions};
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer, RobotConfig};

use serde_json::{json, Value};

use crate::api_support::{MovedClock, TestGateway, ADMIN_KEY};

const FS_APP: &str = "cli_recall";
const WC_CORP: &str = "wwrecall";
const DT_APP: &str = "dingrecall";
const SECRET: &str = "app-secret";
const DAY_MS: i64 = 86_400_000;

struct Env {
    gw: TestGateway,
    mock: MockServer,
    clock: Arc<MovedClock>,
    http: reqwest::Client,
}

/// Channels: `fs` (Feishu app), `wc` (WeCom app), `notice` (DingTalk work
/// notices), `dtgroup` / `dtoto` (DingTalk app robot in a group / 1:1),
/// `dtcard` (DingTalk app robot interactive cards), `robot` (a DingTalk
/// custom robot) and `mixed` (a Feishu app and the custom robot).
async fn start() -> Env {
    let mcfg = MockConfig {
        apps: vec![
            AppConfig::new(MockPlatform::Feishu, FS_APP, SECRET),
            AppConfig::new(MockPlatform::Wecom, WC_CORP, SECRET),
            AppConfig::new(MockPlatform::Dingtalk, DT_APP, SECRET),
        ],
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "grp")],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = mock.base_url();
    let feishu = format!(
        r#"type = "feishu_app"
app_id = "{FS_APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["chat_id:oc_ops"]"#
    );
    let robot = format!(
        r#"type = "dingtalk_robot"
access_token = "grp"
base_url = "{url}""#
    );
    let dt_robot = |recipients: &str, extra: &str| {
        format!(
            r#"type = "dingtalk_app"
mode = "robot"
app_key = "{DT_APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = [{recipients}]
{extra}"#
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
[lifecycle]
time_zone = "UTC"

[channels.fs]
[[channels.fs.destinations]]
{feishu}

[channels.wc]
[[channels.wc.destinations]]
type = "wecom_app"
corp_id = "{WC_CORP}"
corp_secret = "{SECRET}"
agent_id = 1000002
base_url = "{url}"
recipients = ["zhangsan"]

[channels.notice]
[[channels.notice.destinations]]
type = "dingtalk_app"
mode = "work_notice"
app_key = "{DT_APP}"
app_secret = "{SECRET}"
agent_id = 1000003
base_url = "{url}"
recipients = ["user001"]

[channels.dtgroup]
[[channels.dtgroup.destinations]]
{dtgroup}

[channels.dtoto]
[[channels.dtoto.destinations]]
{dtoto}

[channels.dtcard]
[[channels.dtcard.destinations]]
{dtcard}

[channels.robot]
[[channels.robot.destinations]]
{robot}

[channels.mixed]
[[channels.mixed.destinations]]
{feishu}
[[channels.mixed.destinations]]
{robot}
"#,
        dtgroup = dt_robot(r#""open_conversation_id:cid_ops""#, ""),
        dtoto = dt_robot(r#""user001""#, ""),
        dtcard = dt_robot(
            r#""open_conversation_id:cid_ops""#,
            "card_template_id = \"imrelay-alert.schema\"\ncard_callback_route_key = \"imrelay\""
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let clock = Arc::new(MovedClock::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start_with(
        cfg,
        listener,
        StartOptions {
            clock: Some(clock.clone()),
        },
    )
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
        clock,
        http: reqwest::Client::new(),
    }
}

impl Env {
    /// Send `body` (to its `channel`) and wait until it is delivered; its id
    /// and its view.
    async fn sent(&self, body: Value) -> (String, Value) {
        let r = self
            .gw
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let view = self.gw.wait_state(&id, "delivered").await;
        (id, view)
    }

    /// The mock's record of the message the platform knows as `platform_id`.
    async fn at_platform(&self, platform_id: &str) -> Value {
        let r = self
            .http
            .get(format!(
                "{}/_mock/messages/{platform_id}",
                self.mock.base_url()
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "the mock has no {platform_id}");
        r.json().await.unwrap()
    }

    /// `ms` pass, for the gateway and the platforms alike.
    async fn time_passes(&self, ms: i64) {
        self.clock.offset_ms.fetch_add(ms, Ordering::SeqCst);
        let r = self
            .http
            .post(format!("{}/_mock/clock", self.mock.base_url()))
            .json(&json!({ "advance_ms": ms }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }

    async fn fault(&self, rule: Value) {
        let r = self
            .http
            .post(format!("{}/_mock/faults", self.mock.base_url()))
            .json(&rule)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
}

fn platform_id(view: &Value) -> String {
    view["deliveries"][0]["history"][0]["platform_message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the platform's id is kept: {view:#}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_with_a_recall_api_takes_the_message_back() {
    let env = start().await;
    let card = json!({"title": "Disk full", "body": {"type": "card", "text": "**firing** /var", "theme": "red"},
        "actions": [{"id": "ack", "text": "认领"}]});
    let cases = [
        ("fs", "feishu_app", json!({"text": "wrong alert, sorry"})),
        ("fs", "feishu_app", card.clone()),
        ("wc", "wecom_app", json!({"text": "wrong alert, sorry"})),
        ("wc", "wecom_app", card.clone()),
        (
            "notice",
            "dingtalk_app",
            json!({"text": "wrong alert, sorry"}),
        ),
        (
            "dtgroup",
            "dingtalk_app",
            json!({"text": "wrong alert, sorry"}),
        ),
        (
            "dtoto",
            "dingtalk_app",
            json!({"text": "wrong alert, sorry"}),
        ),
        ("dtcard", "dingtalk_app", card),
    ];
    for (channel, kind, mut body) in cases {
        body["channel"] = json!(channel);
        let (id, view) = env.sent(body).await;
        let pid = platform_id(&view);
        assert!(
            env.at_platform(&pid).await["recalled_at_ms"].is_null(),
            "{channel}"
        );
        let r = env
            .gw
            .delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
        assert_eq!(r.status, 202, "{channel}: {}", r.text);
        assert_eq!(r.body["of"], id.as_str());
        let d = &r.body["destinations"][0];
        assert_eq!(
            (
                d["kind"].as_str(),
                d["recall"].as_bool(),
                d["parts"].as_u64()
            ),
            (Some(kind), Some(true), Some(1)),
            "{channel}: {d}"
        );
        assert!(d.get("reason").is_none(), "{channel}: {d}");
        let recall = r.body["id"].as_str().unwrap();
        let rv = env.gw.wait_state(recall, "delivered").await;
        assert_eq!(rv["kind"], "recall", "{rv:#}");
        let m = env.at_platform(&pid).await;
        assert!(
            m["recalled_at_ms"].is_i64(),
            "{channel}: the platform still shows it: {m:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_robot_is_refused_per_destination_while_the_app_recalls() {
    let env = start().await;
    let (id, view) = env
        .sent(json!({"channel": "mixed", "text": "wrong alert, sorry"}))
        .await;
    let r = env
        .gw
        .delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let ds = r.body["destinations"].as_array().unwrap();
    assert_eq!(ds.len(), 2, "{ds:#?}");
    let by_kind = |k: &str| ds.iter().find(|d| d["kind"] == k).unwrap().clone();
    assert_eq!(by_kind("feishu_app")["recall"], true);
    let robot = by_kind("dingtalk_robot");
    assert_eq!(robot["recall"], false);
    let reason = robot["reason"].as_str().unwrap();
    assert!(reason.contains("no recall API"), "{reason}");
    env.gw
        .wait_state(r.body["id"].as_str().unwrap(), "delivered")
        .await;
    let fs = view["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == "mixed/feishu_app:cli_recall")
        .expect("a delivery to the Feishu app");
    let pid = fs["history"][0]["platform_message_id"].as_str().unwrap();
    assert!(env.at_platform(pid).await["recalled_at_ms"].is_i64());

    // Only the robot: nothing can be recalled.
    let (id, _) = env.sent(json!({"channel": "robot", "text": "oops"})).await;
    let r = env
        .gw
        .delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
        .await;
    r.assert_problem(409, None);
    let d = &r.body["destinations"][0];
    assert_eq!(
        (d["kind"].as_str(), d["recall"].as_bool()),
        (Some("dingtalk_robot"), Some(false))
    );
    assert!(
        d["reason"].as_str().unwrap().contains("no recall API"),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_platforms_window_the_recall_is_refused_naming_the_window() {
    let env = start().await;
    let mut sent = Vec::new();
    for channel in ["fs", "wc", "notice", "dtgroup"] {
        let (id, view) = env
            .sent(json!({"channel": channel, "text": "an old alert"}))
            .await;
        sent.push((channel, id, platform_id(&view)));
    }
    let (late, late_view) = env
        .sent(json!({"channel": "fs", "text": "recalled just in time"}))
        .await;

    // 23 hours on, still within the window.
    env.time_passes(23 * 3_600_000).await;
    let r = env
        .gw
        .delete(&format!("/v1/messages/{late}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    env.gw
        .wait_state(r.body["id"].as_str().unwrap(), "delivered")
        .await;
    assert!(env.at_platform(&platform_id(&late_view)).await["recalled_at_ms"].is_i64());

    // 25 hours on, past it everywhere.
    env.time_passes(2 * 3_600_000).await;
    for (channel, id, pid) in &sent {
        let r = env
            .gw
            .delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
        r.assert_problem(409, None);
        assert_eq!(
            r.body["type"]
                .as_str()
                .map(|t| t.ends_with("cannot-recall")),
            Some(true),
            "{}",
            r.text
        );
        let d = &r.body["destinations"][0];
        assert_eq!(d["recall"], false, "{channel}: {d}");
        let reason = d["reason"].as_str().unwrap();
        assert!(
            reason.contains("only within 1d") && reason.contains("25h0m old"),
            "{channel}: {reason}"
        );
        // Nothing was asked of the platform.
        assert!(env.at_platform(pid).await["recalled_at_ms"].is_null());
    }
}

/// Recall `id` and wait for the recall to be dead-lettered; its one
/// delivery's `dead` record.
async fn dead_recall(env: &Env, id: &str) -> Value {
    let r = env
        .gw
        .delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let recall = r.body["id"].as_str().unwrap();
    let rv = env.gw.wait_state(recall, "dead").await;
    assert_eq!(rv["kind"], "recall", "{rv:#}");
    assert_eq!(rv["origin"], id, "{rv:#}");
    rv["deliveries"][0]["dead"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recall_the_platform_refuses_is_dead_lettered_with_its_reason() {
    let env = start().await;

    // Feishu answers as for a message past the tenant's recall limit (which
    // an administrator may have set below imrelay's 24 h).
    let (id, view) = env.sent(json!({"channel": "fs", "text": "an alert"})).await;
    env.fault(
        json!({"target": format!("feishu:app:{FS_APP}"), "code": 230009,
        "msg": "Message can only be recalled within one days.", "count": 1}),
    )
    .await;
    let dead = dead_recall(&env, &id).await;
    assert_eq!(dead["code"], "230009", "{dead:#}");
    let reason = dead["reason"].as_str().unwrap();
    assert!(
        reason.contains("only be recalled within one days"),
        "{reason}"
    );
    assert!(reason.contains("past the recall limit"), "{reason}");
    assert!(env.at_platform(&platform_id(&view)).await["recalled_at_ms"].is_null());

    // WeCom: the mock's code for an expired msgid.
    let (id, view) = env.sent(json!({"channel": "wc", "text": "an alert"})).await;
    env.fault(
        json!({"target": format!("wecom:app:{WC_CORP}"), "code": 40058,
        "msg": "msgid expired", "count": 1}),
    )
    .await;
    let dead = dead_recall(&env, &id).await;
    assert_eq!(dead["code"], "40058", "{dead:#}");
    assert!(
        dead["reason"].as_str().unwrap().contains("msgid expired"),
        "{dead:#}"
    );
    assert!(env.at_platform(&platform_id(&view)).await["recalled_at_ms"].is_null());

    // DingTalk's own clock says a day has passed while the gateway's does
    // not: its answer lists the key as failed, with its reason.
    let (id, view) = env
        .sent(json!({"channel": "dtgroup", "text": "an alert"}))
        .await;
    let r = env
        .http
        .post(format!("{}/_mock/clock", env.mock.base_url()))
        .json(&json!({ "advance_ms": DAY_MS + 60_000 }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let dead = dead_recall(&env, &id).await;
    let reason = dead["reason"].as_str().unwrap();
    assert!(reason.starts_with("DingTalk did not recall"), "{reason}");
    assert!(reason.contains("more than 24 hours ago"), "{reason}");
    assert!(env.at_platform(&platform_id(&view)).await["recalled_at_ms"].is_null());
}
