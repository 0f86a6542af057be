//! `imrelay message recall|ack|update|urgent` against `imrelay serve` with its
//! in-process mock: each acts on a message the gateway sent and says what
//! happened; refusals exit non-zero with the gateway's reason (per
//! destination for a recall).

use std::time::{Duration, Instant};

use crate::serve_support::{free_port, Scratch, Serve, KEY};
use serde_json::{json, Value};

fn config(port: u16, mock_port: u16) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false
[store]
path = "queue.db"
[dispatch]
poll_interval = "50ms"
[[api_keys]]
name = "ops"
key = "{KEY}"
channels = ["fs", "robot"]
[lifecycle]
time_zone = "UTC"

[mock]
listen = "127.0.0.1:{mock_port}"
[[mock.robots]]
platform = "dingtalk"
token = "cli-robot"
[[mock.apps]]
platform = "feishu"
app_id = "cli_msg"
app_secret = "fs-secret"

[channels.fs]
[[channels.fs.destinations]]
type = "feishu_app"
app_id = "cli_msg"
app_secret = "fs-secret"
base_url = "${{mock.url}}"
recipients = ["chat_id:oc_ops"]

[channels.robot]
[[channels.robot.destinations]]
type = "dingtalk_robot"
access_token = "cli-robot"
base_url = "${{mock.url}}"
"#
    )
}

struct World {
    serve: Serve,
    mock: String,
    http: reqwest::Client,
    _dir: Scratch,
}

/// What a run of `imrelay message ...` did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl World {
    async fn start() -> World {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = Scratch::new("message-cli");
        let (port, mock_port) = (free_port(), free_port());
        let cfg = dir.path("imrelay.toml");
        std::fs::write(&cfg, config(port, mock_port)).unwrap();
        let serve = Serve::start(&cfg, port, dir.path("imrelay.log")).await;
        World {
            serve,
            mock: format!("http://127.0.0.1:{mock_port}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `imrelay message ARGS` with the server and key from the environment.
    async fn message(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
            .arg("message")
            .args(args)
            .env("IMRELAY_SERVER", self.serve.server())
            .env("IMRELAY_API_KEY", KEY)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn get(&self, url: String) -> Value {
        self.http
            .get(url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Submit `body` and wait until it is delivered; its id and the
    /// platform's id of its first part.
    async fn delivered(&self, body: Value) -> (String, Option<String>) {
        let r: Value = self
            .http
            .post(format!("{}/v1/messages", self.serve.server()))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{r:#}"))
            .to_string();
        let view = self
            .until("delivered", || async {
                let v = self
                    .get(format!("{}/v1/messages/{id}", self.serve.server()))
                    .await;
                (v["state"] == "delivered").then_some(v)
            })
            .await;
        let pid = view["deliveries"][0]["history"][0]["platform_message_id"]
            .as_str()
            .map(str::to_string);
        (id, pid)
    }

    /// The mock's record of `pid` once `pred` holds for it.
    async fn at_platform(&self, pid: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.until(what, || async {
            let m = self
                .get(format!("{}/_mock/messages/{pid}", self.mock))
                .await;
            pred(&m).then_some(m)
        })
        .await
    }

    /// Poll `f` (the gateway is another process) until it gives a value.
    async fn until<F, Fut>(&self, what: &str, f: F) -> Value
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Option<Value>>,
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; imrelay log:\n{}",
                self.serve.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_update_and_recall_from_the_command_line() {
    let w = World::start().await;
    let (id, pid) = w
        .delivered(json!({"channel": "fs", "title": "CPU high",
            "body": {"type": "card", "text": "**firing** cpu 97%", "theme": "red"},
            "actions": [{"id": "ack", "text": "认领"}]}))
        .await;
    let pid = pid.expect("Feishu names the message");

    // Acknowledge: recorded once; the second says nothing changed.
    let r = w.message(&["ack", &id, "--by", "张三"]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("ack recorded, by 张三"), "{}", r.stderr);
    let r = w.message(&["ack", &id, "--by", "李四", "--json"]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("already done: ack by 张三"),
        "{}",
        r.stderr
    );
    let answer: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(answer["already"], true);
    w.at_platform(&pid, "the card shows the acknowledgement", |m| {
        m["revisions"].to_string().contains("Acknowledged by 张三")
    })
    .await;

    // A bad action: the gateway's reason, naming the field.
    let r = w
        .message(&["ack", &id, "--by", "张三", "--action", "silence:soon"])
        .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("HTTP 422") && r.stderr.contains("[field: action]"),
        "{}",
        r.stderr
    );

    // Update: the same card edited in place.
    let r = w
        .message(&[
            "update",
            &id,
            "--title",
            "CPU high",
            "--body",
            r#"{"type": "card", "text": "**resolved** at 03:20", "theme": "green"}"#,
        ])
        .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("of message {id} queued")),
        "{}",
        r.stderr
    );
    w.at_platform(&pid, "the card resolved", |m| {
        m["revisions"]
            .as_array()
            .and_then(|r| r.last())
            .is_some_and(|r| r["content"].to_string().contains("**resolved** at 03:20"))
    })
    .await;
    let r = w.message(&["update", &id, "--body", "[1]"]).await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("JSON object"), "{}", r.stderr);

    // An urgent phone push: per destination, and seen at the platform.
    let r = w
        .message(&["urgent", &id, "--kind", "phone", "--user", "ou_alice"])
        .await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("fs/feishu_app:cli_msg (feishu_app): will push"),
        "{}",
        r.stderr
    );
    w.at_platform(&pid, "the phone push", |m| {
        m["urgent"][0]["kind"] == "phone" && m["urgent"][0]["users"] == json!(["ou_alice"])
    })
    .await;
    let r = w
        .message(&["urgent", &id, "--kind", "pager", "--user", "ou_alice"])
        .await;
    assert_eq!(r.code, Some(2), "{}", r.stderr);

    // Recall: per destination, and taken back at the platform.
    let r = w.message(&["recall", &id]).await;
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("fs/feishu_app:cli_msg (feishu_app): will be recalled (1 part)"),
        "{}",
        r.stderr
    );
    w.at_platform(&pid, "recalled", |m| m["recalled_at_ms"].is_i64())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_non_zero_with_the_gateways_reason() {
    let w = World::start().await;
    let (id, _) = w
        .delivered(json!({"channel": "robot", "text": "oops"}))
        .await;

    // A custom robot cannot recall: 409, and why, per destination.
    let r = w.message(&["recall", &id]).await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 409"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("(dingtalk_robot): cannot be recalled: custom robots have no recall API"),
        "{}",
        r.stderr
    );

    // Nor push urgently.
    let r = w
        .message(&["urgent", &id, "--kind", "app", "--user", "u1"])
        .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains("HTTP 409") && r.stderr.contains("(dingtalk_robot): cannot push:"),
        "{}",
        r.stderr
    );

    // No such message.
    let r = w
        .message(&["recall", "01936f1e-8a4c-7d2e-9b1a-3c5d7e9f1a2b"])
        .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 404"), "{}", r.stderr);

    // A wrong key, given as a flag over the environment.
    let r = w
        .message(&["ack", &id, "--by", "x", "--key", "not-a-key"])
        .await;
    assert_eq!(r.code, Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("HTTP 401"), "{}", r.stderr);

    // Nobody listening: exit 3.
    let r = w
        .message(&[
            "recall",
            &id,
            "--server",
            &format!("http://127.0.0.1:{}", free_port()),
        ])
        .await;
    assert_eq!(r.code, Some(3), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach the gateway"),
        "{}",
        r.stderr
    );
}
