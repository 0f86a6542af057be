//! `POST /v1/sources/{name}` end to end: each source's real payload shape
//! (fixtures after the official docs' examples, in `fixtures/sources/`)
//! through a gateway whose channel is a DingTalk custom robot on the mock;
//! what reaches the robot is checked, and a resolution joins its alert's
//! thread (a custom robot cannot edit, so it is a second message naming the
//! first).

use std::time::Duration;

use hmac::{Hmac, Mac};
use imrelay_mock::{LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::api_support::{Resp, TestGateway, ADMIN_KEY};

const SECRET: &str = "SEC0123456789abcdef";
const GITLAB_TOKEN: &str = "gl-token-0123456789";
const GITHUB_SECRET: &str = "gh-secret-0123456789";

struct Src {
    gw: TestGateway,
    mock: MockServer,
}

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/it/fixtures/sources/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// A gateway with channel `team` (a DingTalk custom robot on the mock) and
/// one source of each type sending to it.
async fn start() -> Src {
    let mcfg = MockConfig {
        robots: vec![
            RobotConfig::new(MockPlatform::Dingtalk, "grp").with_secret(SECRET),
            RobotConfig::new(MockPlatform::Feishu, "hook-fs").with_secret(SECRET),
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
[[api_keys]]
name = "elsewhere"
key = "other-key-0123456789abcdef"
channels = ["other"]
[lifecycle]
time_zone = "UTC"
[channels.team]
[[channels.team.destinations]]
type = "dingtalk_robot"
access_token = "grp"
secret = "{SECRET}"
base_url = "{url}"
[channels.other]
[[channels.other.destinations]]
type = "dingtalk_robot"
access_token = "grp"
secret = "{SECRET}"
base_url = "{url}"
[channels.feishu]
[[channels.feishu.destinations]]
type = "feishu_webhook"
hook = "hook-fs"
secret = "{SECRET}"
base_url = "{url}"

[sources.grafana]
type = "grafana"
channels = ["team"]
actions = ["ack"]
[sources.grafana_feishu]
type = "grafana"
channels = ["feishu"]
[sources.zabbix]
type = "zabbix"
channels = ["team"]
[sources.aliyun]
type = "aliyun_cloudmonitor"
channels = ["team"]
[sources.tencent]
type = "tencent_cloud"
channels = ["team"]
[sources.gitlab]
type = "gitlab"
channels = ["team"]
token = "{GITLAB_TOKEN}"
[sources.github]
type = "github"
channels = ["team"]
secret = "{GITHUB_SECRET}"
[sources.billing]
type = "json"
channels = ["team"]
title = "/alert/name"
text = "/alert/description"
labels = {{ severity = "/level", host = "/host" }}
status = "/state"
resolved_values = ["OK", "resolved"]
thread = "/id"

[[people]]
name = "zhangsan"
dingtalk = {{ mobile = "13800000001" }}
[[schedules]]
name = "dba"
[[schedules.layers]]
rotation = "daily"
start = "2020-01-01"
people = ["zhangsan"]
[[escalation_policies]]
name = "critical"
[[escalation_policies.steps]]
after = "1h"
notify = [{{ channel = "team", to = ["oncall:dba"] }}]

[sources.routed]
type = "json"
channels = ["team"]
title = "/alert/name"
text = "/alert/description"
labels = {{ severity = "/level", host = "/host" }}
status = "/state"
resolved_values = ["OK"]
thread = "/id"
[[sources.routed.rules]]
matchers = ['severity="critical"']
channels = ["other"]
mentions = ["oncall:dba"]
escalation = "critical"
"#,
        url = mock.base_url()
    );
    Src {
        gw: TestGateway::start(&text).await,
        mock,
    }
}

impl Src {
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
                b["actionCard"]["text"]
                    .as_str()
                    .or(b["markdown"]["text"].as_str())
                    .or(b["text"]["content"].as_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Polls until the robot has `n` messages (or fails at the deadline).
    async fn wait_texts(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let t = self.robot_texts();
            if t.len() >= n {
                return t;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the robot never got {n} messages: {t:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// POST `body` to a source with the admin key as a bearer header.
    async fn post(&self, source: &str, body: &Value, headers: &[(&str, &str)]) -> Resp {
        self.gw
            .post(
                &format!("/v1/sources/{source}"),
                Some(ADMIN_KEY),
                &body.to_string(),
                headers,
            )
            .await
    }

    /// POST raw text with the key in `?key=` (senders that cannot set headers).
    async fn post_with_query_key(
        &self,
        path_and_query: &str,
        content_type: &str,
        body: String,
    ) -> Resp {
        let r = self
            .gw
            .http
            .post(self.gw.url(path_and_query))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        Resp::from(r).await
    }

    /// Post the firing then the resolving payload; the second message must
    /// name the first (one thread). Returns both texts.
    async fn fire_then_resolve(
        &self,
        first: Resp,
        second: impl std::future::Future<Output = Resp>,
    ) -> (String, String) {
        assert_eq!(first.status, 200, "{}", first.text);
        let id = first.body["messages"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        self.gw.wait_state(&id, "delivered").await;
        let second = second.await;
        assert_eq!(second.status, 200, "{}", second.text);
        assert_eq!(
            second.body["messages"][0]["thread"], first.body["messages"][0]["thread"],
            "{:#} vs {:#}",
            first.body, second.body
        );
        let view = self
            .gw
            .wait_state(
                second.body["messages"][0]["id"].as_str().unwrap(),
                "delivered",
            )
            .await;
        assert_eq!(view["thread"]["root"], id.as_str(), "{view:#}");
        let texts = self.wait_texts(2).await;
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(texts[1].starts_with("> ↪ 更新 Update of"), "{}", texts[1]);
        (texts[0].clone(), texts[1].clone())
    }
}

fn github_signature(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(GITHUB_SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_firing_then_resolved_updates_the_group_card() {
    let s = start().await;
    let firing = fixture_json("grafana_firing.json");
    let mut resolved = firing.clone();
    resolved["status"] = json!("resolved");
    for a in resolved["alerts"].as_array_mut().unwrap() {
        a["status"] = json!("resolved");
        a["endsAt"] = json!("2021-10-12T10:05:03.157076+02:00");
    }
    let first = s.post("grafana", &firing, &[]).await;
    let (fire, resolve) = s
        .fire_then_resolve(first, s.post("grafana", &resolved, &[]))
        .await;
    assert!(
        fire.contains("🔥 FIRING · High memory usage, High CPU usage"),
        "{fire}"
    );
    assert!(
        fire.contains("**High memory usage** (firing) team=blue zone=us-1: This alert was triggered for zone us-1 · B=44.24, C=1"),
        "{fire}"
    );
    assert!(
        fire.contains("`severity=critical`") && fire.contains("`team=blue`"),
        "{fire}"
    );
    assert!(
        resolve.contains("✅ RESOLVED · High memory usage, High CPU usage"),
        "{resolve}"
    );
    // The firing card's buttons: Grafana's links.
    let cards: Vec<Value> = s
        .mock
        .state()
        .log
        .all()
        .into_iter()
        .filter_map(|e| e.body)
        .collect();
    let titles: Vec<&str> = cards[0]["actionCard"]["btns"]
        .as_array()
        .map(|b| b.iter().filter_map(|b| b["title"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        titles,
        ["Dashboard", "Panel", "Source", "Silence"],
        "{:#}",
        cards[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_on_a_feishu_webhook_is_a_card_coloured_by_severity() {
    let s = start().await;
    let r = s
        .post("grafana_feishu", &fixture_json("grafana_firing.json"), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.body["messages"][0]["id"].as_str().unwrap();
    s.gw.wait_state(id, "delivered").await;
    let sent: Vec<Value> = s
        .mock
        .state()
        .log
        .all()
        .into_iter()
        .filter(|e: &LogEntry| e.target.starts_with("feishu") && e.accepted)
        .filter_map(|e| e.body)
        .collect();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let card = &sent[0]["card"];
    assert_eq!(card["header"]["template"], "red", "{card:#}");
    assert_eq!(
        card["header"]["title"]["content"],
        "🔥 FIRING · High memory usage, High CPU usage"
    );
    assert!(
        card.to_string()
            .contains("This alert was triggered for zone eu-1"),
        "{card:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zabbix_resolved_updates_the_problem_card() {
    let s = start().await;
    let first = s
        .post("zabbix", &fixture_json("zabbix_problem.json"), &[])
        .await;
    let (problem, resolved) = s
        .fire_then_resolve(
            first,
            s.post("zabbix", &fixture_json("zabbix_resolved.json"), &[]),
        )
        .await;
    assert!(
        problem.contains("🔥 FIRING · Linux: High CPU utilization (over 90% for 5m)"),
        "{problem}"
    );
    assert!(problem.contains("**Host:** db-1 (10.0.0.5)"), "{problem}");
    assert!(
        problem.contains("`severity=error`") && problem.contains("`zabbix_severity=High`"),
        "{problem}"
    );
    assert!(problem.contains("`component=cpu`"), "{problem}");
    assert!(!problem.contains("{EVENT.RECOVERY"), "{problem}");
    assert!(
        resolved.contains("✅ RESOLVED") && resolved.contains("**Recovered:** 2024.05.01 10:14:33"),
        "{resolved}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloudmonitor_posts_a_form_with_the_key_in_the_url_and_ok_resolves() {
    let s = start().await;
    let alert = fixture("aliyun_alert.form");
    let ok = alert
        .replace("alertState=ALERT", "alertState=OK")
        .replace("curValue=97.8", "curValue=31.2");
    let form = "application/x-www-form-urlencoded";
    let path = format!("/v1/sources/aliyun?key={ADMIN_KEY}");
    let first = s.post_with_query_key(&path, form, alert).await;
    let (fire, resolve) = s
        .fire_then_resolve(first, s.post_with_query_key(&path, form, ok))
        .await;
    assert!(fire.contains("🔥 FIRING · CPU使用率告警"), "{fire}");
    assert!(
        fire.contains("**Instance:** web-1") && fire.contains("**Value:** 97.8"),
        "{fire}"
    );
    assert!(fire.contains("`severity=critical`"), "{fire}");
    assert!(
        resolve.contains("✅ RESOLVED") && resolve.contains("**Value:** 31.2"),
        "{resolve}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_recovery_updates_the_alarm_card() {
    let s = start().await;
    let alarm = fixture_json("tencent_alarm.json");
    let mut recovered = alarm.clone();
    recovered["alarmStatus"] = json!("0");
    recovered["recoverTime"] = json!("2017-03-09 07:50:00");
    let path = format!("/v1/sources/tencent?key={ADMIN_KEY}");
    let json_type = "application/json";
    let first = s
        .post_with_query_key(&path, json_type, alarm.to_string())
        .await;
    let (fire, resolve) = s
        .fire_then_resolve(
            first,
            s.post_with_query_key(&path, json_type, recovered.to_string()),
        )
        .await;
    assert!(
        fire.contains("🔥 FIRING · CPU high · ins-o9p3rg3m"),
        "{fire}"
    );
    assert!(
        fire.contains("**Condition:** CPU利用率 > 90%") && fire.contains("**Current:** 100%"),
        "{fire}"
    );
    assert!(
        resolve.contains("✅ RESOLVED") && resolve.contains("**Recovered:** 2017-03-09 07:50:00"),
        "{resolve}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitlab_pipeline_goes_from_running_to_success_in_one_thread() {
    let s = start().await;
    let running = fixture_json("gitlab_pipeline.json");
    let mut success = running.clone();
    success["object_attributes"]["status"] = json!("success");
    success["object_attributes"]["duration"] = json!(63);
    let hdrs = [
        ("x-gitlab-token", GITLAB_TOKEN),
        ("x-gitlab-event", "Pipeline Hook"),
    ];
    let bad = s
        .post("gitlab", &running, &[("x-gitlab-token", "not-the-token")])
        .await;
    bad.assert_problem(401, Some("X-Gitlab-Token"));
    let none = s.post("gitlab", &running, &[]).await;
    none.assert_problem(401, Some("X-Gitlab-Token"));
    let first = s.post("gitlab", &running, &hdrs).await;
    let (run, done) = s
        .fire_then_resolve(first, s.post("gitlab", &success, &hdrs))
        .await;
    assert!(
        run.contains("⏳ RUNNING · Pipeline #31 · gitlab-org/gitlab-test"),
        "{run}"
    );
    assert!(
        run.contains("**Ref:** master") && run.contains("**By:** Administrator"),
        "{run}"
    );
    assert!(
        done.contains("✅ SUCCESS · Pipeline #31") && done.contains("(63s)"),
        "{done}"
    );
    // An event kind the source does not keep is answered 200 and dropped.
    let push = s
        .post(
            "gitlab",
            &json!({"object_kind": "push", "ref": "refs/heads/master"}),
            &hdrs,
        )
        .await;
    assert_eq!(push.status, 200, "{}", push.text);
    assert!(
        push.body["ignored"].as_str().unwrap().contains("push"),
        "{}",
        push.text
    );
    let deploy = s
        .post("gitlab", &fixture_json("gitlab_deployment.json"), &hdrs)
        .await;
    assert_eq!(deploy.status, 200, "{}", deploy.text);
    let texts = s.wait_texts(3).await;
    assert!(
        texts[2].contains("✅ SUCCESS · Deploy to staging · root/test-deployment-webhooks"),
        "{}",
        texts[2]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_signatures_are_checked_and_a_run_concludes_in_its_thread() {
    let s = start().await;
    let running = fixture_json("github_workflow_run.json");
    let mut completed = running.clone();
    completed["action"] = json!("completed");
    completed["workflow_run"]["status"] = json!("completed");
    completed["workflow_run"]["conclusion"] = json!("failure");
    let (body, done_body) = (running.to_string(), completed.to_string());
    let event = ("x-github-event", "workflow_run");
    let bad = s
        .post(
            "github",
            &running,
            &[
                event,
                ("x-hub-signature-256", &github_signature("other body")),
            ],
        )
        .await;
    bad.assert_problem(401, Some("X-Hub-Signature-256"));
    let sig = github_signature(&body);
    let first = s
        .post("github", &running, &[event, ("x-hub-signature-256", &sig)])
        .await;
    let done_sig = github_signature(&done_body);
    let (run, failed) = s
        .fire_then_resolve(
            first,
            s.post(
                "github",
                &completed,
                &[event, ("x-hub-signature-256", &done_sig)],
            ),
        )
        .await;
    assert!(
        run.contains("⏳ RUNNING · Build #562 · octo-org/octo-repo"),
        "{run}"
    );
    assert!(
        run.contains("**Commit:** acb5820 Update README.md"),
        "{run}"
    );
    assert!(
        failed.contains("❌ FAILED · Build #562") && failed.contains("**Status:** failure"),
        "{failed}"
    );
    let ping = json!({"zen": "Keep it logically awesome.", "hook_id": 1});
    let p = s
        .post(
            "github",
            &ping,
            &[
                ("x-github-event", "ping"),
                ("x-hub-signature-256", &github_signature(&ping.to_string())),
            ],
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_source_maps_pointers_and_names_a_missing_field() {
    let s = start().await;
    let alarm = fixture_json("json_alarm.json");
    let mut ok = alarm.clone();
    ok["state"] = json!("OK");
    ok["alert"]["description"] = json!("5xx ratio back to 0.1%");
    let first = s.post("billing", &alarm, &[]).await;
    let (fire, resolve) = s
        .fire_then_resolve(first, s.post("billing", &ok, &[]))
        .await;
    assert!(
        fire.contains("🔥 FIRING · Payment errors above 2%"),
        "{fire}"
    );
    assert!(
        fire.contains("5xx ratio is 3.4% over the last 5 minutes"),
        "{fire}"
    );
    assert!(
        fire.contains("`host=pay-api-1`") && fire.contains("`severity=critical`"),
        "{fire}"
    );
    assert!(
        resolve.contains("✅ RESOLVED") && resolve.contains("back to 0.1%"),
        "{resolve}"
    );
    let missing = s
        .post("billing", &json!({"id": "x", "state": "ALARM"}), &[])
        .await;
    missing.assert_problem(422, Some("/alert/name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_scoped_and_checked_in_the_url_too() {
    let s = start().await;
    let body = fixture_json("zabbix_problem.json").to_string();
    let json_type = "application/json";
    let none = s
        .post_with_query_key("/v1/sources/zabbix", json_type, body.clone())
        .await;
    none.assert_problem(401, Some("key"));
    let wrong = s
        .post_with_query_key("/v1/sources/zabbix?key=not-a-key", json_type, body.clone())
        .await;
    wrong.assert_problem(401, Some("key"));
    let scoped = s
        .post_with_query_key(
            "/v1/sources/zabbix?key=other-key-0123456789abcdef",
            json_type,
            body.clone(),
        )
        .await;
    scoped.assert_problem(403, None);
    let unknown = s
        .post_with_query_key(
            &format!("/v1/sources/nagios?key={ADMIN_KEY}"),
            json_type,
            body.clone(),
        )
        .await;
    unknown.assert_problem(404, Some("name"));
    let not_zabbix = s.post("zabbix", &json!({"hello": "world"}), &[]).await;
    not_zabbix.assert_problem(422, Some("event_id"));
    assert!(s.robot_texts().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sources_rules_route_by_label_mention_the_on_call_and_escalate() {
    let s = start().await;
    let critical = fixture_json("json_alarm.json");
    assert_eq!(
        critical["level"], "critical",
        "the fixture is a critical alarm"
    );
    let r = s.post("routed", &critical, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["messages"][0]["channel"], "other", "{}", r.text);
    let id = r.body["messages"][0]["id"].as_str().unwrap().to_string();
    let view =
        s.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await
            .body;
    assert_eq!(
        view["message"]["mentions"]["mobiles"],
        json!(["13800000001"]),
        "{view:#}"
    );
    assert_eq!(view["escalation"]["state"], "active", "{view:#}");

    let mut warning = critical.clone();
    warning["level"] = json!("warning");
    warning["id"] = json!("another-alarm");
    let r = s.post("routed", &warning, &[]).await;
    assert_eq!(r.body["messages"][0]["channel"], "team", "{}", r.text);
    let wid = r.body["messages"][0]["id"].as_str().unwrap().to_string();
    let wview =
        s.gw.get(&format!("/v1/messages/{wid}"), Some(ADMIN_KEY))
            .await
            .body;
    assert!(wview.get("escalation").is_none(), "{wview:#}");

    // The critical alarm resolves in its thread: its escalation ends.
    let mut ok = critical.clone();
    ok["state"] = json!("OK");
    s.post("routed", &ok, &[]).await;
    let view =
        s.gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await
            .body;
    assert_eq!(view["escalation"]["state"], "resolved", "{view:#}");
}
