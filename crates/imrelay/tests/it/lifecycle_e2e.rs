//! The life of an alert in the chat, end to end with the real Alertmanager
//! and `imrelay serve` with its in-process mock: a Feishu app card, a
//! DingTalk app interactive card and a WeCom app template card per alert
//! group, each with buttons. A click from the chat (the mock fires each
//! platform's signed or encrypted card callback) acknowledges the alert and
//! the card changes for everyone; "silence 1h" creates a silence that
//! Alertmanager's own API returns; the alert resolves and the same cards
//! turn to resolved: one message per group and destination, created and
//! updated, never a second. A DingTalk custom robot, which cannot edit,
//! gets the resolution as a second message naming the first.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::alertmanager_e2e::{alertmanager_bin, jiff_now};
use crate::serve_support::{free_port, Scratch, Serve, KEY};
use serde_json::{json, Value};

const FS_VERIFY: &str = "life-verification-token";
const FS_ENCRYPT: &str = "life-encrypt-key-0123456789";
const WX_TOKEN: &str = "QDG6eK";
const WX_AES: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const DT_AES: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
const CARD_TOKEN: &str = "cardtoken0123456789abcdef";

struct Am {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16, mock_port: u16, db: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false
[store]
path = "{db}"
[dispatch]
poll_interval = "50ms"
[[api_keys]]
name = "alertmanager"
key = "{KEY}"
channels = ["fs", "dt", "wc", "robot"]

[lifecycle]
time_zone = "Asia/Shanghai"
allowed_users = ["ou_zhang", "dt_zhang", "wc_zhang"]
[lifecycle.names]
ou_zhang = "张三"
dt_zhang = "张三"
wc_zhang = "张三"

[mock]
listen = "127.0.0.1:{mock_port}"
[[mock.robots]]
platform = "dingtalk"
token = "life-robot"
[[mock.apps]]
platform = "feishu"
app_id = "cli_life"
app_secret = "fs-secret"
callback = {{ url = "http://127.0.0.1:{port}/v1/callbacks/fs", token = "{FS_VERIFY}", encrypt_key = "{FS_ENCRYPT}" }}
[[mock.apps]]
platform = "wecom"
app_id = "wwlife"
app_secret = "wc-secret"
callback = {{ url = "http://127.0.0.1:{port}/v1/callbacks/wc", token = "{WX_TOKEN}", encoding_aes_key = "{WX_AES}" }}
[[mock.apps]]
platform = "dingtalk"
app_id = "dinglife"
app_secret = "dt-secret"

[channels.fs]
[[channels.fs.destinations]]
type = "feishu_app"
app_id = "cli_life"
app_secret = "fs-secret"
base_url = "${{mock.url}}"
recipients = ["chat_id:oc_ops"]

[channels.dt]
[[channels.dt.destinations]]
type = "dingtalk_app"
mode = "robot"
app_key = "dinglife"
app_secret = "dt-secret"
robot_code = "dinglife"
base_url = "${{mock.url}}"
recipients = ["open_conversation_id:cid_ops"]
card_template_id = "imrelay-alert.schema"
card_callback_route_key = "imrelay"

[channels.wc]
[[channels.wc.destinations]]
type = "wecom_app"
corp_id = "wwlife"
corp_secret = "wc-secret"
agent_id = 1000002
base_url = "${{mock.url}}"
recipients = ["zhangsan"]

[channels.robot]
[[channels.robot.destinations]]
type = "dingtalk_robot"
access_token = "life-robot"
base_url = "${{mock.url}}"

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
receive_id = "wwlife"
[[callbacks]]
name = "dt"
platform = "dingtalk"
token = "dt-token"
encoding_aes_key = "{DT_AES}"
receive_id = "dinglife"
card_token = "{CARD_TOKEN}"

[alerting.routes.prod]
channels = ["fs", "dt", "wc", "robot"]
actions = ["ack", "silence:1h", "resolve"]
"#,
        db = db.display()
    )
}

async fn start_am(dir: &Scratch, imrelay_port: u16) -> Am {
    let port = free_port();
    let cfg = dir.path("alertmanager.yml");
    std::fs::write(
        &cfg,
        format!(
            r#"
route:
  receiver: imrelay
  group_by: ["alertname"]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: imrelay
    webhook_configs:
      - url: http://127.0.0.1:{imrelay_port}/v1/alertmanager/prod
        send_resolved: true
        http_config:
          authorization:
            credentials: {KEY}
"#
        ),
    )
    .unwrap();
    let log = dir.path("alertmanager.log");
    let child = Command::new(alertmanager_bin())
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.path("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // The URL notifications carry: where imrelay creates silences.
        .arg(format!("--web.external-url=http://127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start alertmanager");
    let am = Am {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("{}/-/ready", am.url))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not start: {}",
            std::fs::read_to_string(&am.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    am
}

fn alert(name: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": name, "severity": "critical", "instance": "db-1:9100"},
        "annotations": {"summary": format!("{name} on db-1")},
    });
    if let Some(e) = ends_at {
        a["endsAt"] = json!(e);
    }
    a
}

struct World {
    http: reqwest::Client,
    mock: String,
    am: Am,
    serve: Serve,
}

impl World {
    async fn post_alerts(&self, alerts: Value) {
        let r = self
            .http
            .post(format!("{}/api/v2/alerts", self.am.url))
            .json(&alerts)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }

    async fn messages(&self, platform: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_mock/messages?platform={platform}", self.mock))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The mock's messages of `platform` about alert `name`.
    async fn cards(&self, platform: &str, name: &str) -> Vec<Value> {
        self.messages(platform)
            .await
            .into_iter()
            .filter(|m| m["revisions"][0]["content"].to_string().contains(name))
            .collect()
    }

    async fn wait_card(
        &self,
        platform: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let cards = self.cards(platform, name).await;
            if let [one] = cards.as_slice() {
                if pred(&current(one)) {
                    return one.clone();
                }
            }
            assert!(
                cards.len() <= 1,
                "a second {platform} message for {name}: {cards:#?}\n--- imrelay log:\n{}",
                self.serve.log_text()
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} on {platform}; cards: {cards:#?}\n--- imrelay log:\n{}",
                self.serve.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, card: &Value, action: &str, user: &str) -> Value {
        let id = card["message_id"].as_str().unwrap();
        let r = self
            .http
            .post(format!("{}/_mock/messages/{id}/click", self.mock))
            .json(&json!({"action": action, "user": user}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "click {action} on {id}: {v:#}");
        v
    }

    async fn robot_texts(&self) -> Vec<String> {
        let v: Value = self
            .http
            .get(format!(
                "{}/_mock/requests?accepted=true&target=dingtalk:robot:life-robot",
                self.mock
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["body"]["markdown"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

fn current(m: &Value) -> String {
    m["revisions"].as_array().unwrap().last().unwrap()["content"].to_string()
}

/// DingTalk's card callbacks go to the URL registered for the card's route
/// key (a one-time call an admin makes).
async fn register_dingtalk_card_callback(http: &reqwest::Client, mock: &str, port: u16) {
    let token: Value = http
        .post(format!("{mock}/v1.0/oauth2/accessToken"))
        .json(&json!({"appKey": "dinglife", "appSecret": "dt-secret"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .post(format!("{mock}/v1.0/card/callbacks/register"))
        .header("x-acs-dingtalk-access-token", token["accessToken"].as_str().unwrap())
        .json(&json!({"callbackRouteKey": "imrelay", "apiSecret": "unused",
            "callbackUrl": format!("http://127.0.0.1:{port}/v1/callbacks/dt/card?token={CARD_TOKEN}")}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_card_is_acknowledged_silenced_and_resolved_in_place() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("life-e2e");
    let (port, mock_port) = (free_port(), free_port());
    let cfg = dir.path("imrelay.toml");
    std::fs::write(&cfg, config(port, mock_port, &dir.path("q.db"))).unwrap();
    let serve = Serve::start(&cfg, port, dir.path("imrelay.log")).await;
    let mock = format!("http://127.0.0.1:{mock_port}");
    let http = reqwest::Client::new();
    register_dingtalk_card_callback(&http, &mock, port).await;
    let am = start_am(&dir, port).await;
    let w = World {
        http,
        mock,
        am,
        serve,
    };

    // Two alert groups fire: DiskFull (acknowledged, then resolved) and
    // CPUHigh (silenced from the card).
    w.post_alerts(json!([alert("DiskFull", None), alert("CPUHigh", None)]))
        .await;
    let has_buttons = |c: &str| c.contains("imrelay_action") || c.contains("imrelay_message");
    let fs = w
        .wait_card("feishu", "DiskFull", "the firing card", has_buttons)
        .await;
    let dt = w
        .wait_card("dingtalk", "DiskFull", "the firing card", has_buttons)
        .await;
    let wc = w
        .wait_card("wecom", "DiskFull", "the firing card", has_buttons)
        .await;

    // 张三 acknowledges from each chat; each card shows it.
    let acked = |c: &str| c.contains("已认领 Acknowledged by 张三");
    let toast = w.click(&fs, "ack", "ou_zhang").await;
    assert!(toast.to_string().contains("已认领"), "{toast:#}");
    w.click(&dt, "ack", "dt_zhang").await;
    w.click(&wc, "ack", "wc_zhang").await;
    for p in ["feishu", "dingtalk", "wecom"] {
        w.wait_card(p, "DiskFull", "the acknowledgement", acked)
            .await;
    }
    // Someone not on the list changes nothing.
    let refused = w.click(&fs, "resolve", "ou_intruder").await;
    assert!(refused.to_string().contains("无权"), "{refused:#}");

    // "Silence 1h" on the CPUHigh card: a silence in Alertmanager itself.
    let cpu = w
        .wait_card("feishu", "CPUHigh", "the firing card", has_buttons)
        .await;
    let toast = w.click(&cpu, "silence:1h", "ou_zhang").await;
    assert!(toast.to_string().contains("已静默至"), "{toast:#}");
    let silences: Value = w
        .http
        .get(format!("{}/api/v2/silences", w.am.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let active: Vec<&Value> = silences
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"]["state"] == "active")
        .collect();
    assert_eq!(active.len(), 1, "{silences:#}");
    assert_eq!(active[0]["createdBy"], "张三");
    assert_eq!(
        active[0]["matchers"],
        json!([{"name": "alertname", "value": "CPUHigh", "isRegex": false, "isEqual": true}])
    );
    let silence_id = active[0]["id"].as_str().unwrap();
    w.wait_card("feishu", "CPUHigh", "the silence on the card", |c| {
        c.contains(silence_id)
    })
    .await;

    // DiskFull resolves: the same cards turn to resolved, still acknowledged.
    w.post_alerts(json!([alert("DiskFull", Some(&jiff_now()))]))
        .await;
    let resolved = |c: &str| c.contains("RESOLVED") && c.contains("已认领 Acknowledged by 张三");
    let fs = w
        .wait_card("feishu", "DiskFull", "the resolved card", resolved)
        .await;
    assert!(current(&fs).contains("green"), "{}", current(&fs));
    w.wait_card("dingtalk", "DiskFull", "the resolved card", resolved)
        .await;
    w.wait_card("wecom", "DiskFull", "the resolved card", resolved)
        .await;

    // The custom robot cannot edit: the resolution is a second message naming the first.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let texts = w.robot_texts().await;
        let disk: Vec<&String> = texts.iter().filter(|t| t.contains("DiskFull")).collect();
        if disk.len() >= 2 {
            assert!(disk[1].starts_with("> ↪ 更新 Update of"), "{}", disk[1]);
            assert!(disk[1].contains("RESOLVED"), "{}", disk[1]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the robot never got the resolution: {texts:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
