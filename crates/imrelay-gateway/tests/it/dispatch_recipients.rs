//! Per-recipient quotas end to end against the mock: Feishu takes about 5
//! messages a second to one user (230020 beyond), so 20 messages to one user
//! through the gateway go out 5 a second and the mock never answers 230020,
//! on one instance (a clock the test moves) and on two instances sharing one
//! PostgreSQL schema (the cluster limiter, on the database's clock).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imrelay_gateway::config::Config;
use imrelay_gateway::{Gateway, StartOptions};
use imrelay_mock::{AppConfig, LogEntry, MockConfig, MockPlatform, MockServer};
use imrelay_sdk::clock::{Clock, SystemClock};
use serde_json::json;

use crate::api_support::{MovedClock, TestGateway, ADMIN_KEY};

const APP: &str = "cli_quota";
const SECRET: &str = "quota-app-secret";
const USER: &str = "ou_oncall";
const TARGET: &str = "feishu:app:cli_quota";

fn config(mock: &MockServer, store: &str, dispatch: &str, channel: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
{store}
[dispatch]
poll_interval = "20ms"
{dispatch}
[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]
[channels.ops]
{channel}
[[channels.ops.destinations]]
type = "feishu_app"
app_id = "{APP}"
app_secret = "{SECRET}"
base_url = "{url}"
recipients = ["{USER}"]
"#,
        url = mock.base_url()
    )
}

async fn start_mock() -> MockServer {
    let cfg = MockConfig::default().with_app(AppConfig::new(MockPlatform::Feishu, APP, SECRET));
    MockServer::start(cfg, "127.0.0.1:0".parse().unwrap())
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

async fn submit(gw: &TestGateway, i: usize) -> String {
    let body = json!({"channel": "ops", "text": format!("disk full #{i}")});
    let r = gw
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

/// The mock's answers to the app's messages.
fn answers(mock: &MockServer) -> Vec<LogEntry> {
    mock.state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.endpoint == "im.messages" && e.target == TARGET)
        .collect()
}

fn delivered(mock: &MockServer) -> Vec<LogEntry> {
    answers(mock).into_iter().filter(|e| e.accepted).collect()
}

/// What the mock saw, for a failure message.
fn summary(mock: &MockServer) -> Vec<(i64, bool, Option<String>)> {
    answers(mock)
        .into_iter()
        .map(|e| (e.at_ms, e.accepted, e.code))
        .collect()
}

/// No answer was 230020, and no second (of the mock's clock) holds more
/// than 5 of the deliveries.
fn assert_within_the_users_quota(mock: &MockServer) {
    let all = answers(mock);
    let refused = all
        .iter()
        .filter(|e| e.code.as_deref() == Some("230020"))
        .count();
    assert_eq!(refused, 0, "answers with 230020: {:?}", summary(mock));
    let mut at: Vec<i64> = delivered(mock).iter().map(|e| e.at_ms).collect();
    at.sort();
    for (i, &t) in at.iter().enumerate() {
        let within = at[i..].iter().take_while(|&&u| u < t + 1_000).count();
        assert!(
            within <= 5,
            "{within} deliveries within a second from {t}: {:?}",
            summary(mock)
        );
    }
}

/// Wait (polling, at most `limit`) until the mock has delivered `n`.
async fn until_delivered(mock: &MockServer, n: usize, limit: Duration) {
    let fut = async {
        while delivered(mock).len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    if tokio::time::timeout(limit, fut).await.is_err() {
        panic!("never {n} delivered: {:?}", summary(mock));
    }
}

async fn twenty_to_one_user_on_one_instance(channel: &str) {
    let mock = start_mock().await;
    let clock = Arc::new(MovedClock::default());
    let gw = start_gateway(&config(&mock, "", "", channel), clock.clone()).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(submit(&gw, i).await);
    }
    // A second at a time, on both clocks (the mock's first, so it is never
    // behind the gateway's): five more may go each time.
    for step in 1..=4 {
        until_delivered(&mock, 5 * step, Duration::from_secs(10)).await;
        mock.state().advance_clock(1_100);
        clock.offset_ms.fetch_add(1_100, Ordering::SeqCst);
    }
    for id in &ids {
        gw.wait_state(id, "delivered").await;
    }
    assert_eq!(delivered(&mock).len(), 20, "{:?}", summary(&mock));
    assert_within_the_users_quota(&mock);
}

#[tokio::test]
async fn twenty_to_one_feishu_user_go_five_a_second_without_a_230020() {
    twenty_to_one_user_on_one_instance("").await;
}

#[tokio::test]
async fn twenty_to_one_feishu_user_unordered_go_five_a_second_without_a_230020() {
    twenty_to_one_user_on_one_instance("ordered = false").await;
}

fn pg_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Two instances take the messages in turns (small claims, unordered), each
/// within its own limiter; only the cluster limiter keeps the two together
/// within the user's 5 a second. Its windows run on the database's clock,
/// so this test takes the four seconds 20 messages need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_keep_one_feishu_users_five_a_second() {
    let schema = format!(
        "recipients_{}_{}",
        std::process::id(),
        SystemClock.now_ms() % 1_000_000
    );
    let store = format!("[store]\nurl = \"{}?schema={schema}\"", pg_url());
    let mock = start_mock().await;
    let clock = Arc::new(MovedClock::default());
    let text = config(
        &mock,
        &store,
        "claim_batch = 2\ncluster_rate_margin = \"50ms\"",
        "ordered = false",
    );
    let a = start_gateway(&text, clock.clone()).await;
    let b = start_gateway(&text, clock.clone()).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(submit(&a, i).await);
        ids.push(submit(&b, 10 + i).await);
    }
    until_delivered(&mock, 20, Duration::from_secs(30)).await;
    for id in &ids {
        a.wait_state(id, "delivered").await;
    }
    assert_within_the_users_quota(&mock);
    let sent = |g: &TestGateway| g.gw.dispatcher().snapshot().counters.sent;
    assert!(
        sent(&a) > 0 && sent(&b) > 0,
        "both instances sent: {} and {}",
        sent(&a),
        sent(&b)
    );
}

const AK: &str = "LTAI5tQuotaMock";
const AK_SECRET: &str = "aliyun-quota-secret";

/// An SMS to two numbers waits while one of them had its one SMS of the
/// minute (Aliyun: 1 a minute, 5 an hour, 10 a day per number): the request
/// needs a permit for each number, and is neither sent early (drawing
/// `isv.BUSINESS_LIMIT_CONTROL`) nor split.
#[tokio::test]
async fn an_sms_to_two_numbers_waits_for_the_one_out_of_quota() {
    let mcfg = MockConfig::default().with_app(AppConfig::new(MockPlatform::Aliyun, AK, AK_SECRET));
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
[channels.sms]
ordered = false
[[channels.sms.destinations]]
type = "aliyun_sms"
access_key_id = "{AK}"
access_key_secret = "{AK_SECRET}"
sign_name = "告警平台"
template_code = "SMS_100000001"
template_param = "content"
base_url = "{url}"
"#,
        url = mock.base_url()
    );
    let clock = Arc::new(MovedClock::default());
    let gw = start_gateway(&text, clock.clone()).await;
    let sms = |to: &[&str], text: &str| json!({"channel": "sms", "text": text, "recipients": to});
    let post = |body: serde_json::Value| {
        let gw = &gw;
        async move {
            let r = gw
                .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
                .await;
            assert_eq!(r.status, 202, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let first = post(sms(&["13800000001"], "disk full")).await;
    gw.wait_state(&first, "delivered").await;
    let second = post(sms(&["13800000002", "13800000001"], "disk still full")).await;
    // It was taken up and put back until 13800000001's minute has passed.
    let fut = async {
        loop {
            let v = gw
                .get(&format!("/v1/messages/{second}"), Some(ADMIN_KEY))
                .await
                .body;
            let due = v["deliveries"][0]["due_at"].as_i64().unwrap_or(0);
            if due > clock.now_ms() + 50_000 {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let waiting = tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("the second SMS never waited for the first number's minute");
    assert_eq!(waiting["state"], "pending", "{waiting:#}");
    assert_eq!(
        waiting["deliveries"][0]["attempts"], 0,
        "waiting is not an attempt"
    );
    mock.state().advance_clock(61_000);
    clock.offset_ms.fetch_add(61_000, Ordering::SeqCst);
    gw.wait_state(&second, "delivered").await;
    let sms: Vec<LogEntry> = mock
        .state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.endpoint == "sms.send")
        .collect();
    let refused: Vec<_> = sms.iter().filter(|e| !e.accepted).collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    let numbers: Vec<String> = sms
        .iter()
        .map(|e| {
            e.body.as_ref().unwrap()["PhoneNumbers"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(numbers, ["13800000001", "13800000002,13800000001"]);
}
