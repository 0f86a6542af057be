//! On call end to end against the mock, on a clock the test moves: a
//! critical alert goes to the group robot @ the on-call DBA; unacknowledged
//! after the first delay, the on-call gets a Feishu urgent push on the alert
//! card and an SMS; acknowledged from the card before the next step, no
//! voice call is ever placed. Unacknowledged, the policy runs to the voice
//! call with every step once, also when two instances on PostgreSQL race
//! for each step; the message's view shows the timeline.
//!
//! The runner's passes are also driven by the test (`escalate::pass`), so
//! "no later step ever fires" is checked by a pass that fires nothing rather
//! than by waiting.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imrelay_gateway::config::Config;
use imrelay_gateway::oncall::escalate::{self, Snapshot};
use imrelay_gateway::{Gateway, StartOptions};
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer, RobotConfig};
use imrelay_sdk::clock::{Clock, SystemClock};
use serde_json::{json, Value};

use crate::api_support::{MovedClock, TestGateway, ADMIN_KEY};

const APP: &str = "cli_oncall";
const SECRET: &str = "app-secret";
const AK: &str = "LTAI5tOncallMock";
const AK_SECRET: &str = "aliyun-ak-secret";
const MIN: i64 = 60_000;
const ENCRYPT_KEY: &str = "oncall-encrypt-key";
const VERIFY: &str = "oncall-verification-token";

fn config(mock: &str, store: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
{store}
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]
[lifecycle]
time_zone = "UTC"

[[callbacks]]
name = "fs"
platform = "feishu"
encrypt_key = "{ENCRYPT_KEY}"
verification_token = "{VERIFY}"

[[people]]
name = "zhangsan"
display = "张三"
phone = "+8613800000001"
dingtalk = {{ userid = "zs01", mobile = "13800000001" }}
feishu = {{ open_id = "ou_zhang" }}

[[people]]
name = "lisi"
phone = "+8613800000002"
feishu = {{ open_id = "ou_li" }}

[[schedules]]
name = "dba"
time_zone = "Asia/Shanghai"
[[schedules.layers]]
rotation = "weekly"
start = "2020-01-06"
people = ["zhangsan"]

[[escalation_policies]]
name = "critical"
[[escalation_policies.steps]]
after = "5m"
notify = [
  {{ urgent = "app", to = ["oncall:dba"] }},
  {{ channel = "sms", to = ["oncall:dba"] }},
]
[[escalation_policies.steps]]
after = "10m"
notify = [{{ channel = "voice", to = ["oncall:dba", "label:owner"] }}]

[channels.alerts]
[[channels.alerts.destinations]]
type = "dingtalk_robot"
access_token = "grp"
base_url = "{mock}"
[[channels.alerts.destinations]]
type = "feishu_app"
app_id = "{APP}"
app_secret = "{SECRET}"
base_url = "{mock}"
recipients = ["chat_id:oc_ops"]

[channels.sms]
[[channels.sms.destinations]]
type = "aliyun_sms"
access_key_id = "{AK}"
access_key_secret = "{AK_SECRET}"
sign_name = "告警平台"
template_code = "SMS_100000001"
template_param = "content"
base_url = "{mock}"

[channels.voice]
[[channels.voice.destinations]]
type = "aliyun_voice"
access_key_id = "{AK}"
access_key_secret = "{AK_SECRET}"
tts_code = "TTS_100000002"
template_param = "text"
base_url = "{mock}"
"#
    )
}

struct Env {
    gws: Vec<TestGateway>,
    mock: MockServer,
    clock: Arc<MovedClock>,
    http: reqwest::Client,
}

async fn start_mock() -> MockServer {
    let mcfg = MockConfig {
        apps: vec![
            AppConfig::new(MockPlatform::Feishu, APP, SECRET),
            AppConfig::new(MockPlatform::Aliyun, AK, AK_SECRET),
        ],
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "grp")],
        ..MockConfig::default()
    };
    MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn start_gateway(text: &str, clock: Arc<MovedClock>) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start_with(cfg, listener, StartOptions { clock: Some(clock) })
        .await
        .unwrap();
    TestGateway {
        base: format!("http://{}", gw.addr()),
        gw,
        mock: None,
        dir,
        http: reqwest::Client::new(),
    }
}

/// `instances` gateways on one store (`store`: a `[store]` section).
async fn start(instances: usize, store: &str) -> Env {
    let mock = start_mock().await;
    let clock = Arc::new(MovedClock::default());
    let text = config(&mock.base_url(), store);
    let mut gws = Vec::new();
    for _ in 0..instances {
        gws.push(start_gateway(&text, clock.clone()).await);
    }
    // The platform learns the app's callback URL (as in Feishu's console).
    let r = reqwest::Client::new()
        .post(format!("{}/_mock/apps", mock.base_url()))
        .json(&json!({"platform": "feishu", "app_id": APP, "app_secret": SECRET,
            "callback": {"url": gws[0].url("/v1/callbacks/fs"), "token": VERIFY, "encrypt_key": ENCRYPT_KEY}}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Env {
        gws,
        mock,
        clock,
        http: reqwest::Client::new(),
    }
}

impl Env {
    fn gw(&self) -> &TestGateway {
        &self.gws[0]
    }

    /// Move the gateways' clock and the mock's by `ms`.
    fn advance(&self, ms: i64) {
        self.clock.offset_ms.fetch_add(ms, Ordering::SeqCst);
        self.mock.state().advance_clock(ms);
    }

    /// One pass of the escalation runner of instance `i`; steps it fired.
    async fn pass(&self, i: usize) -> usize {
        let gw = &self.gws[i].gw;
        let rt = gw.live().runtime();
        let now = Snapshot {
            oncall: rt.oncall.clone(),
            channels: rt.channels.clone(),
        };
        escalate::pass(&**gw.store(), &now).await.unwrap()
    }

    async fn alert(&self) -> String {
        let body = json!({
            "channel": "alerts",
            "title": "MySQL down",
            "body": {"type": "markdown", "text": "db-1 is not answering"},
            "labels": {"owner": "lisi", "severity": "critical"},
            "mentions": ["oncall:dba"],
            "escalation": "critical",
            "actions": [{"id": "ack", "text": "认领"}],
        });
        let r = self
            .gw()
            .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        self.gw().wait_state(&id, "delivered").await;
        id
    }

    async fn mock_messages(&self, platform: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!(
                "{}/_mock/messages?platform={platform}",
                self.mock.base_url()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().cloned().unwrap_or_default()
    }

    /// What the mock's robot `token` received (accepted requests' bodies).
    async fn robot_bodies(&self, token: &str) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/_mock/requests", self.mock.base_url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let target = format!("dingtalk:robot:{token}");
        v["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["target"] == target.as_str() && e["accepted"] == true)
            .map(|e| e["body"].clone())
            .collect()
    }

    /// Wait (polling, bounded) until `probe` says yes.
    async fn until<F, Fut>(&self, what: &str, probe: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..500 {
            if probe().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never: {what}");
    }

    async fn view(&self, id: &str) -> Value {
        self.gw()
            .get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await
            .body
    }

    /// Wait until the messages step `n` of the escalation of `id` queued are
    /// delivered.
    async fn step_delivered(&self, id: &str, n: usize) {
        let esc = self.view(id).await["escalation"].clone();
        for notified in esc["steps"][n]["notified"].as_array().unwrap() {
            let mid = notified["message_id"].as_str().unwrap();
            self.gw().wait_state(mid, "delivered").await;
        }
    }

    /// What the phone `number` received over `platform` (aliyun SMS or calls).
    async fn to_phone(&self, number: &str) -> Vec<Value> {
        self.mock_messages("aliyun")
            .await
            .into_iter()
            .filter(|m| {
                m["recipients"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == number))
            })
            .collect()
    }

    async fn sms_to(&self, number: &str) -> usize {
        self.to_phone(number)
            .await
            .iter()
            .filter(|m| m["target"].as_str().is_some_and(|t| t.contains("sms")))
            .count()
    }

    async fn calls_to(&self, number: &str) -> usize {
        self.to_phone(number)
            .await
            .iter()
            .filter(|m| m["target"].as_str().is_some_and(|t| t.contains("voice")))
            .count()
    }

    /// The alert's card in the ops chat, as the mock keeps it.
    async fn card(&self) -> Value {
        self.mock_messages("feishu")
            .await
            .into_iter()
            .find(|m| m["recipients"] == json!(["chat_id:oc_ops"]))
            .expect("the card in the ops chat")
    }

    /// Urgent pushes on the alert card: (kind, users).
    async fn urgent_pushes(&self) -> Vec<(String, Value)> {
        self.card().await["urgent"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|u| {
                (
                    u["kind"].as_str().unwrap_or("").to_string(),
                    u["users"].clone(),
                )
            })
            .collect()
    }
}

const ZS_PHONE: &str = "13800000001";

#[tokio::test]
async fn the_on_call_is_mentioned_then_escalated_to_until_the_card_is_acknowledged() {
    let env = start(1, "").await;
    let id = env.alert().await;

    // The group robot @s the on-call DBA by the phone DingTalk knows them by.
    let grp = env.robot_bodies("grp").await;
    assert_eq!(grp.len(), 1, "{grp:#?}");
    assert_eq!(grp[0]["at"]["atMobiles"], json!([ZS_PHONE]), "{:#}", grp[0]);

    // Before the first delay nothing escalates.
    env.advance(4 * MIN);
    assert_eq!(env.pass(0).await, 0);
    assert!(env.urgent_pushes().await.is_empty());

    // Five minutes unacknowledged: a Feishu urgent push on the alert card
    // and an SMS to the on-call, once.
    env.advance(MIN);
    env.until("the first step fires", || async {
        env.view(&id).await["escalation"]["next_step"] == 1
    })
    .await;
    assert_eq!(env.pass(0).await, 0, "a fired step never fires again");
    env.step_delivered(&id, 0).await;
    assert_eq!(
        env.urgent_pushes().await,
        [("app".to_string(), json!(["ou_zhang"]))]
    );
    assert_eq!(env.sms_to(ZS_PHONE).await, 1);

    // 张三 acknowledges from the card in the ops chat.
    let card = env.card().await;
    let r = env
        .http
        .post(format!(
            "{}/_mock/messages/{}/click",
            env.mock.base_url(),
            card["message_id"].as_str().unwrap()
        ))
        .json(&json!({"action": "ack", "user": "ou_zhang"}))
        .send()
        .await
        .unwrap();
    let click: Value = r.json().await.unwrap();
    assert_eq!(click["callback"]["ok"], true, "{click:#}");
    env.until("the escalation ends acknowledged", || async {
        env.view(&id).await["escalation"]["state"] == "acknowledged"
    })
    .await;

    // Long past the second step's delay, no call is ever placed.
    env.advance(30 * MIN);
    assert_eq!(env.pass(0).await, 0);
    assert_eq!(env.calls_to(ZS_PHONE).await, 0);
    let esc = env.view(&id).await["escalation"].clone();
    assert_eq!(esc["ended_by"], "ou_zhang", "{esc:#}");
    let steps = esc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{esc:#}");
    assert_eq!(steps[0]["notified"][0]["via"], "urgent:app");
    assert_eq!(steps[0]["notified"][1]["via"], "channel:sms");
    assert_eq!(steps[0]["notified"][1]["people"], json!(["zhangsan"]));
}

/// Step 1 fired and its push and SMS delivered; then step 2 and its calls.
async fn run_to_the_voice_call(env: &Env, id: &str) {
    env.advance(5 * MIN);
    env.until("step 1", || async {
        env.view(id).await["escalation"]["next_step"] == 1
    })
    .await;
    env.step_delivered(id, 0).await;
    env.advance(10 * MIN);
    env.until("step 2 completes the policy", || async {
        env.view(id).await["escalation"]["state"] == "completed"
    })
    .await;
    env.step_delivered(id, 1).await;
}

#[tokio::test]
async fn unacknowledged_it_runs_to_the_voice_call_once_and_labels_name_people() {
    let env = start(1, "").await;
    let id = env.alert().await;
    run_to_the_voice_call(&env, &id).await;
    // The second step called the on-call and the alert's owner (label owner=lisi).
    assert_eq!(env.calls_to(ZS_PHONE).await, 1);
    assert_eq!(env.calls_to("13800000002").await, 1);
    let esc = env.view(&id).await["escalation"].clone();
    let steps = esc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{esc:#}");
    assert_eq!(
        steps[1]["notified"][0]["people"],
        json!(["zhangsan", "lisi"])
    );
    // Nothing more, ever: every step happened exactly once.
    env.advance(60 * MIN);
    assert_eq!(env.pass(0).await, 0);
    assert_eq!(env.urgent_pushes().await.len(), 1);
    assert_eq!(env.sms_to(ZS_PHONE).await, 1);
    assert_eq!(env.calls_to(ZS_PHONE).await, 1);
}

fn pg_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test]
async fn two_instances_on_postgresql_fire_each_step_once() {
    let schema = format!(
        "oncall_{}_{}",
        std::process::id(),
        SystemClock.now_ms() % 1_000_000
    );
    let store = format!("[store]\nurl = \"{}?schema={schema}\"", pg_url());
    let env = start(2, &store).await;
    let id = env.alert().await;
    for (step, wait) in [(1, 5 * MIN), (2, 10 * MIN)] {
        env.advance(wait);
        // Both instances' runners and two explicit passes race for the step.
        let (a, b) = tokio::join!(env.pass(0), env.pass(1));
        assert!(
            a + b <= 1,
            "step {step} fired {} times by the passes",
            a + b
        );
        env.until("the step is fired", || async {
            env.view(&id).await["escalation"]["next_step"] == step
        })
        .await;
        env.step_delivered(&id, step as usize - 1).await;
    }
    let esc = env.view(&id).await["escalation"].clone();
    assert_eq!(esc["steps"].as_array().unwrap().len(), 2, "{esc:#}");
    assert_eq!(esc["state"], "completed");
    assert_eq!(env.urgent_pushes().await.len(), 1);
    assert_eq!(env.sms_to(ZS_PHONE).await, 1);
    assert_eq!(env.calls_to(ZS_PHONE).await, 1);
}

#[tokio::test]
async fn who_is_on_call_and_overrides_over_the_api() {
    let env = start(1, "").await;
    let gw = env.gw();
    let r = gw.get("/v1/oncall/dba", Some(ADMIN_KEY)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["now"]["person"], "zhangsan");
    assert_eq!(r.body["now"]["display"], "张三");

    let now = env.clock.now_ms();
    let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
    let body = json!({"person": "lisi", "startsAt": ts(now - MIN), "endsAt": ts(now + 60 * MIN)});
    let r = gw
        .post(
            "/v1/oncall/dba/overrides",
            Some(ADMIN_KEY),
            &body.to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let oid = r.body["id"].as_str().unwrap().to_string();
    let r = gw.get("/v1/oncall/dba", Some(ADMIN_KEY)).await;
    assert_eq!(r.body["now"]["person"], "lisi", "{}", r.text);
    assert_eq!(r.body["now"]["overrideId"], oid.as_str());
    assert_eq!(r.body["next"]["person"], "zhangsan");

    // An alert now @s the override: lisi has only a Feishu id, so the ops
    // chat's card mentions them.
    let id = env.alert().await;
    let view = env.view(&id).await;
    assert_eq!(
        view["message"]["mentions"]["per_platform"],
        json!({"feishu": ["ou_li"]}),
        "{view:#}"
    );

    // Mistakes are 4xx naming the field.
    let bad = json!({"person": "ghost", "startsAt": ts(now), "endsAt": ts(now + MIN)});
    gw.post(
        "/v1/oncall/dba/overrides",
        Some(ADMIN_KEY),
        &bad.to_string(),
        &[],
    )
    .await
    .assert_problem(422, Some("person"));
    let r = gw.get("/v1/oncall/nope", Some(ADMIN_KEY)).await;
    assert_eq!(r.status, 404);
    let bad_ref = json!({"channel": "alerts", "text": "x", "mentions": ["oncall:nope"]});
    gw.post("/v1/messages", Some(ADMIN_KEY), &bad_ref.to_string(), &[])
        .await
        .assert_problem(422, Some("mentions[0]"));
    let bad_policy = json!({"channel": "alerts", "text": "x", "escalation": "nope"});
    gw.post(
        "/v1/messages",
        Some(ADMIN_KEY),
        &bad_policy.to_string(),
        &[],
    )
    .await
    .assert_problem(422, Some("escalation"));

    let r = gw
        .delete(&format!("/v1/oncall/dba/overrides/{oid}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = gw.get("/v1/oncall/dba", Some(ADMIN_KEY)).await;
    assert_eq!(r.body["now"]["person"], "zhangsan");
}

#[tokio::test]
async fn a_read_receipt_acknowledges_where_the_policy_says_so() {
    const DT_APP: &str = "dingoncall";
    let mock = MockServer::start(
        MockConfig {
            apps: vec![AppConfig::new(MockPlatform::Dingtalk, DT_APP, SECRET)],
            robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "pager")],
            ..MockConfig::default()
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let url = mock.base_url();
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

[[people]]
name = "zhangsan"
dingtalk = {{ userid = "zs01" }}

[[schedules]]
name = "dba"
[[schedules.layers]]
rotation = "daily"
start = "2020-01-01"
people = ["zhangsan"]

[[escalation_policies]]
name = "critical"
stop_when_read = true
[[escalation_policies.steps]]
after = "5m"
notify = [{{ channel = "pager", to = ["oncall:dba"] }}]

[channels.dtgroup]
[[channels.dtgroup.destinations]]
type = "dingtalk_app"
mode = "robot"
app_key = "{DT_APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["open_conversation_id:cid_ops"]

[channels.pager]
[[channels.pager.destinations]]
type = "dingtalk_robot"
access_token = "pager"
base_url = "{url}"
"#
    );
    let clock = Arc::new(MovedClock::default());
    let env = Env {
        gws: vec![start_gateway(&text, clock.clone()).await],
        mock,
        clock,
        http: reqwest::Client::new(),
    };
    let body = json!({"channel": "dtgroup", "text": "MySQL down", "escalation": "critical"});
    let r = env
        .gw()
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    let view = env.gw().wait_state(&id, "delivered").await;
    let key = view["deliveries"][0]["history"][0]["platform_message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("the platform's id is kept: {view:#}"))
        .to_string();

    // Nobody read it yet: the read check finds no one (the step is not due).
    env.advance(MIN);
    assert_eq!(env.pass(0).await, 0);
    // 张三 reads it in the group.
    let r = env
        .http
        .post(format!("{}/_mock/messages/{key}/read", env.mock.base_url()))
        .json(&json!({"user": "zs01"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    env.advance(5 * MIN);
    env.until("the read ends the escalation", || async {
        env.view(&id).await["escalation"]["state"] == "acknowledged"
    })
    .await;
    let esc = env.view(&id).await["escalation"].clone();
    assert_eq!(esc["ended_by"], "read:zhangsan", "{esc:#}");
    assert!(esc["steps"].as_array().unwrap().is_empty(), "{esc:#}");
    assert_eq!(env.pass(0).await, 0);
    assert!(env.robot_bodies("pager").await.is_empty());
}
