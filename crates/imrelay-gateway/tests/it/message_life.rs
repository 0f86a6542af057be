//! The life of a message after it is sent, end to end against the mock:
//! threads whose later messages update the first (or, on custom robots,
//! follow it as new messages naming it), acknowledgements over the API,
//! recalls refused where the platform has none, updates over the API.

use std::time::Duration;

use imrelay_mock::{LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig};
use serde_json::{json, Value};

use crate::api_support::{TestGateway, ADMIN_KEY};

const SECRET: &str = "SEC0123456789abcdef";

struct Life {
    gw: TestGateway,
    mock: MockServer,
}

/// A gateway with channel `robot` (a DingTalk custom robot on the mock).
async fn start() -> Life {
    let mcfg = MockConfig {
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "grp").with_secret(SECRET)],
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
[channels.robot]
[[channels.robot.destinations]]
type = "dingtalk_robot"
access_token = "grp"
secret = "{SECRET}"
base_url = "{url}"
"#,
        url = mock.base_url()
    );
    Life {
        gw: TestGateway::start(&text).await,
        mock,
    }
}

impl Life {
    /// The texts the robot received, oldest first.
    fn robot_texts(&self) -> Vec<String> {
        self.mock
            .state()
            .log
            .all()
            .into_iter()
            .filter(|e: &LogEntry| e.target == "dingtalk:robot:grp" && e.accepted)
            .filter_map(|e| e.body)
            .map(|b| {
                b["markdown"]["text"]
                    .as_str()
                    .or(b["text"]["content"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    async fn submit(&self, body: Value) -> String {
        let r = self
            .gw
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        r.body["id"].as_str().unwrap().to_string()
    }

    async fn wait_texts(&self, n: usize) -> Vec<String> {
        for _ in 0..500 {
            let t = self.robot_texts();
            if t.len() >= n {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the robot never got {n} messages: {:?}", self.robot_texts());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_message_of_a_thread_on_a_custom_robot_is_a_new_message_naming_the_first() {
    let l = start().await;
    let first = l
        .submit(json!({"channel": "robot", "title": "CPU high", "body": {"type": "markdown", "text": "**firing** db-1"}, "thread": "grp-1"}))
        .await;
    l.gw.wait_state(&first, "delivered").await;
    let second = l
        .submit(json!({"channel": "robot", "title": "CPU high", "body": {"type": "markdown", "text": "**resolved** db-1"}, "thread": "grp-1"}))
        .await;
    let view = l.gw.wait_state(&second, "delivered").await;
    assert_eq!(view["thread"]["root"], first.as_str());
    assert_eq!(view["thread"]["seq"], 2);
    let texts = l.wait_texts(2).await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].starts_with("> ↪ 更新 Update of “CPU high”"),
        "{}",
        texts[1]
    );
    assert!(texts[1].contains("**resolved** db-1"), "{}", texts[1]);
    // The robot's answer carried no message id to keep.
    let root =
        l.gw.get(&format!("/v1/messages/{first}"), Some(ADMIN_KEY))
            .await;
    assert_eq!(root.body["thread"]["seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_over_the_api_is_recorded_once_and_shown_on_the_thread() {
    let l = start().await;
    let id = l
        .submit(json!({"channel": "robot", "title": "Disk full", "body": {"type": "markdown", "text": "**firing** /var"},
            "actions": [{"id": "ack", "text": "认领"}]}))
        .await;
    l.gw.wait_state(&id, "delivered").await;
    let r =
        l.gw.post(
            &format!("/v1/messages/{id}/ack"),
            Some(ADMIN_KEY),
            r#"{"by": "张三"}"#,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["ack"]["action"], "ack");
    assert_eq!(r.body["ack"]["user_name"], "张三");
    assert_eq!(r.body["already"], false);
    // A second click changes nothing.
    let again =
        l.gw.post(
            &format!("/v1/messages/{id}/ack"),
            Some(ADMIN_KEY),
            r#"{"by": "李四"}"#,
            &[],
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["already"], true);
    assert_eq!(again.body["ack"]["user_name"], "张三");
    let view =
        l.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    let acks = view.body["acks"].as_array().unwrap();
    assert_eq!(acks.len(), 1, "{:#}", view.body);
    // The update reached the robot as a new message saying who acknowledged.
    let texts = l.wait_texts(2).await;
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(
        texts[1].contains("已认领 Acknowledged by 张三"),
        "{}",
        texts[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_robot_cannot_recall_and_the_answer_says_why() {
    let l = start().await;
    let id = l.submit(json!({"channel": "robot", "text": "oops"})).await;
    l.gw.wait_state(&id, "delivered").await;
    let r =
        l.gw.delete(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    r.assert_problem(409, None);
    let d = &r.body["destinations"][0];
    assert!(d["target"].as_str().unwrap().starts_with("robot/"), "{d}");
    assert_eq!(d["kind"], "dingtalk_robot");
    assert_eq!(d["recall"], false);
    assert!(d["reason"].as_str().unwrap().contains("recall"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lifecycle_requests_are_refused_naming_the_field() {
    let l = start().await;
    let r = l
        .gw
        .post("/v1/messages", Some(ADMIN_KEY), &json!({"channel": "robot", "text": "x", "actions": [{"id": "reboot", "text": "Reboot"}]}).to_string(), &[])
        .await;
    r.assert_problem(422, Some("actions[0].id"));
    let id = l.submit(json!({"channel": "robot", "text": "x"})).await;
    let r =
        l.gw.post(
            &format!("/v1/messages/{id}/ack"),
            Some(ADMIN_KEY),
            r#"{"by": "a", "action": "silence:soon"}"#,
            &[],
        )
        .await;
    r.assert_problem(422, Some("action"));
    let r =
        l.gw.delete("/v1/messages/no-such-id", Some(ADMIN_KEY))
            .await;
    r.assert_problem(404, None);
    // Silencing a message that did not come from Alertmanager: 502, nothing recorded.
    l.gw.wait_state(&id, "delivered").await;
    let r =
        l.gw.post(
            &format!("/v1/messages/{id}/ack"),
            Some(ADMIN_KEY),
            r#"{"by": "a", "action": "silence:1h"}"#,
            &[],
        )
        .await;
    r.assert_problem(502, None);
    let view =
        l.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await;
    assert!(view.body.get("acks").is_none(), "{:#}", view.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_updates_the_thread_of_any_message() {
    let l = start().await;
    let id = l
        .submit(json!({"channel": "robot", "title": "Deploy", "text": "v1.2 rolling out"}))
        .await;
    l.gw.wait_state(&id, "delivered").await;
    let r =
        l.gw.http
            .patch(l.gw.url(&format!("/v1/messages/{id}")))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(json!({"title": "Deploy", "text": "v1.2 is live"}).to_string())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 202);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["of"], id.as_str());
    let update = body["id"].as_str().unwrap();
    let view = l.gw.wait_state(update, "delivered").await;
    assert_eq!(view["thread"]["root"], id.as_str());
    let texts = l.wait_texts(2).await;
    assert!(
        texts[1].contains("v1.2 is live") && texts[1].contains("Update of “Deploy”"),
        "{texts:?}"
    );
    // Another channel in the body is refused.
    let r =
        l.gw.http
            .patch(l.gw.url(&format!("/v1/messages/{id}")))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(json!({"channel": "elsewhere", "text": "x"}).to_string())
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 422);
}
