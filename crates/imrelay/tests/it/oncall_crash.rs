//! Crash test for escalation: a child `imrelay serve` fires the first step
//! of an escalation, is killed with SIGKILL before the second, and restarts
//! on the same database. The second step fires after the restart, and each
//! step reached the mock exactly once.
//!
//! A real process cannot share the test's clock, so the policy's delays are
//! real seconds; the test waits on conditions (never on a fixed sleep) and
//! asserts counts, not timings.

use std::time::Duration;

use crate::serve_support::*;
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer, RobotConfig};
use serde_json::{json, Value};

const APP: &str = "cli_esc";
const SECRET: &str = "esc-secret";

fn config(port: u16, mock: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false
[store]
path = "queue.db"
[dispatch]
poll_interval = "50ms"
lease = "2s"
[[api_keys]]
name = "admin"
key = "{KEY}"
channels = ["*"]

[[people]]
name = "zhangsan"
dingtalk = {{ userid = "zs01" }}
feishu = {{ open_id = "ou_zhang" }}

[[schedules]]
name = "dba"
[[schedules.layers]]
rotation = "daily"
start = "2020-01-01"
people = ["zhangsan"]

[[escalation_policies]]
name = "critical"
[[escalation_policies.steps]]
after = "1s"
notify = [{{ channel = "dm", to = ["oncall:dba"] }}]
[[escalation_policies.steps]]
after = "4s"
notify = [{{ channel = "pager", to = ["oncall:dba"] }}]

[channels.alerts]
[[channels.alerts.destinations]]
type = "dingtalk_robot"
access_token = "grp"
base_url = "{mock}"

[channels.dm]
[[channels.dm.destinations]]
type = "feishu_app"
app_id = "{APP}"
app_secret = "{SECRET}"
base_url = "{mock}"

[channels.pager]
[[channels.pager.destinations]]
type = "dingtalk_robot"
access_token = "pager"
base_url = "{mock}"
"#
    )
}

async fn get(http: &reqwest::Client, url: &str) -> Value {
    http.get(url)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Poll `probe` (every 50 ms, at most `secs`) until it holds.
async fn until<F, Fut>(what: &str, secs: u64, probe: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 20 {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_steps_neither_skips_nor_repeats_one() {
    let mock = MockServer::start(
        MockConfig {
            apps: vec![AppConfig::new(MockPlatform::Feishu, APP, SECRET)],
            robots: vec![
                RobotConfig::new(MockPlatform::Dingtalk, "grp"),
                RobotConfig::new(MockPlatform::Dingtalk, "pager"),
            ],
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = Scratch::new("oncall-crash");
    let port = free_port();
    let cfg = dir.path("imrelay.toml");
    std::fs::write(&cfg, config(port, &mock.base_url())).unwrap();
    let mut serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{}/v1/messages", serve.server()))
        .bearer_auth(KEY)
        .json(&json!({"channel": "alerts", "text": "MySQL down",
            "mentions": ["oncall:dba"], "escalation": "critical"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let view_url = format!("{}/v1/messages/{id}", serve.server());

    until("the first step fires", 20, || async {
        get(&http, &view_url).await["escalation"]["next_step"] == 1
    })
    .await;
    let dms = |m: &MockServer| {
        m.state()
            .sent
            .list(None, None)
            .iter()
            .filter(|s| s.recipients == ["open_id:ou_zhang"])
            .count()
    };
    let pager = |m: &MockServer| {
        m.state()
            .log
            .all()
            .iter()
            .filter(|e| e.accepted && e.target == "dingtalk:robot:pager")
            .count()
    };
    assert_eq!(pager(&mock), 0, "the kill lands between the steps");
    serve.child.kill().unwrap(); // SIGKILL
    serve.child.wait().unwrap();

    let serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    let view_url = format!("{}/v1/messages/{id}", serve.server());
    until("the second step fires after the restart", 30, || async {
        get(&http, &view_url).await["escalation"]["state"] == "completed"
    })
    .await;
    until("both steps' messages reach the platform", 20, || async {
        dms(&mock) >= 1 && pager(&mock) >= 1
    })
    .await;
    let view = get(&http, &view_url).await;
    let steps = view["escalation"]["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{view:#}");
    assert_eq!(dms(&mock), 1, "the first step was not repeated");
    assert_eq!(pager(&mock), 1, "the second step fired once");
}
