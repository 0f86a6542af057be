//! Grouping and dedup end to end against the mock, on a clock the test
//! moves: repeats of one fingerprint inside a group's interval are stored
//! (each visible, merged into the group) and reach the group chat as ONE
//! notification that says the count; the same across a restart (SQLite file
//! kept), and with two instances on PostgreSQL racing to send the group.
//!
//! The runner's passes are also driven by the test (`runner::pass`), so "the
//! group is never sent twice" is checked by passes that send nothing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imrelay_gateway::config::Config;
use imrelay_gateway::grouping::runner;
use imrelay_gateway::{Gateway, StartOptions};
use imrelay_mock::{LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig};
use imrelay_sdk::clock::{Clock, SystemClock};
use serde_json::{json, Value};

use crate::api_support::{MovedClock, TestGateway, ADMIN_KEY};

const SECRET: &str = "SECgroup0123456789";
const S: i64 = 1_000;
const MIN: i64 = 60 * S;

fn config(mock: &MockServer, store: &str) -> String {
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
[channels.robot]
group = {{ by = ["alertname", "host"], wait = "30s", interval = "5m", repeat = "4h", time_zone = "Asia/Shanghai" }}
[[channels.robot.destinations]]
type = "dingtalk_robot"
access_token = "grp"
secret = "{SECRET}"
base_url = "{url}"
"#,
        url = mock.base_url()
    )
}

async fn start_mock() -> MockServer {
    let mcfg = MockConfig {
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "grp").with_secret(SECRET)],
        ..MockConfig::default()
    };
    MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn start_gateway(dir: tempfile::TempDir, text: &str, clock: Arc<MovedClock>) -> TestGateway {
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

struct Env {
    gws: Vec<TestGateway>,
    mock: MockServer,
    clock: Arc<MovedClock>,
    text: String,
}

async fn start(instances: usize, store: &str) -> Env {
    let mock = start_mock().await;
    let clock = Arc::new(MovedClock::default());
    let text = config(&mock, store);
    let mut gws = Vec::new();
    for _ in 0..instances {
        gws.push(start_gateway(tempfile::tempdir().unwrap(), &text, clock.clone()).await);
    }
    Env {
        gws,
        mock,
        clock,
        text,
    }
}

impl Env {
    /// Move the gateways' clock and the mock's by `ms`.
    fn advance(&self, ms: i64) {
        self.clock.offset_ms.fetch_add(ms, Ordering::SeqCst);
        self.mock.state().advance_clock(ms);
    }

    /// One pass of the group runner of instance `i`; groups it sent.
    async fn pass(&self, i: usize) -> usize {
        let gw = &self.gws[i].gw;
        let rt = gw.live().runtime();
        let now = runner::Snapshot {
            channels: rt.channels.clone(),
            groups: rt.groups.clone(),
        };
        runner::pass(&**gw.store(), &now).await.unwrap()
    }

    /// What the group chat received, in order.
    fn sent(&self) -> Vec<String> {
        self.mock
            .state()
            .log
            .all()
            .into_iter()
            .filter(|e: &LogEntry| e.accepted && e.target == "dingtalk:robot:grp")
            .filter_map(|e| e.body)
            .map(|b| {
                b["text"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Wait (polling, bounded) until the chat received `n` messages.
    async fn until_sent(&self, n: usize) {
        for _ in 0..500 {
            if self.sent().len() >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the chat never received {n} messages: {:?}", self.sent());
    }
}

async fn submit(gw: &TestGateway, text: &str, host: &str) -> String {
    let body = json!({"channel": "robot", "text": text,
        "labels": {"alertname": "DiskFull", "host": host, "severity": "warning"}});
    let r = gw
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

/// `n` repeats of the db-1 alert, `at_once` at a time.
async fn repeats(gw: &TestGateway, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n / 10 {
        let batch = (0..10).map(|_| submit(gw, "disk 91% on db-1", "db-1"));
        ids.extend(futures::future::join_all(batch).await);
    }
    ids
}

async fn view(gw: &TestGateway, id: &str) -> Value {
    gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
        .await
        .body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_repeats_in_one_interval_make_one_notification_with_the_count() {
    let env = start(1, "").await;
    let gw = &env.gws[0];
    let ids = repeats(gw, 100).await;
    let other = submit(gw, "disk 91% on db-2", "db-2").await;

    // Every repeat is stored and visible, folded into its group, not sent.
    let v = view(gw, &ids[57]).await;
    assert_eq!(v["state"], "pending", "{v:#}");
    assert_eq!(v["deliveries"][0]["state"], "merged", "{v:#}");
    let group = v["deliveries"][0]["group"].as_str().unwrap().to_string();
    assert_eq!(
        view(gw, &ids[0]).await["deliveries"][0]["group"],
        group.as_str()
    );
    assert_ne!(
        view(gw, &other).await["deliveries"][0]["group"],
        group.as_str()
    );
    assert_eq!(env.pass(0).await, 0, "nothing is due before `wait`");
    assert!(env.sent().is_empty(), "{:?}", env.sent());
    let g = gw
        .get(&format!("/v1/groups/{group}"), Some(ADMIN_KEY))
        .await
        .body;
    assert_eq!(
        (&g["pending"], &g["total"], &g["sends"]),
        (&json!(100), &json!(100), &json!(0)),
        "{g:#}"
    );
    assert_eq!(
        g["labels"],
        json!({"alertname": "DiskFull", "host": "db-1"})
    );
    // The newest of the last ten, sent at once.
    assert!(ids[90..].iter().any(|i| g["latest"] == i.as_str()), "{g:#}");

    // After `wait`: one notification per group, the repeats' with the count.
    env.advance(30 * S);
    env.until_sent(2).await;
    let sent = env.sent();
    assert_eq!(sent.len(), 2, "{sent:?}");
    let db1 = sent.iter().find(|t| t.contains("db-1")).unwrap();
    assert!(db1.starts_with("disk 91% on db-1\n\n×100 since "), "{db1}");
    assert!(db1.ends_with("(重复 100 次)"), "{db1}");
    assert!(sent.contains(&"disk 91% on db-2".to_string()), "{sent:?}");
    // Each repeat settles with the notification and names it.
    let v = gw.wait_state(&ids[99], "delivered").await;
    let notification = v["deliveries"][0]["merged_into"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        view(gw, &ids[0]).await["deliveries"][0]["merged_into"],
        notification.as_str()
    );
    assert_eq!(env.pass(0).await, 0, "a sent group is never sent again");
    let g = gw
        .get(&format!("/v1/groups/{group}"), Some(ADMIN_KEY))
        .await
        .body;
    assert_eq!(g["sent_message"], notification.as_str(), "{g:#}");
    assert_eq!((&g["pending"], &g["sends"]), (&json!(0), &json!(1)));
    gw.get("/v1/groups/nope", Some(ADMIN_KEY))
        .await
        .assert_problem(404, None);

    // The same alert again within `repeat`: kept, not sent at the interval.
    env.advance(MIN);
    let later = repeats(gw, 10).await;
    env.advance(5 * MIN);
    assert_eq!(env.pass(0).await, 0);
    assert_eq!(env.sent().len(), 2);
    // New content goes at the interval, with the repeats since the last send.
    let changed = submit(gw, "disk 99% on db-1", "db-1").await;
    env.until_sent(3).await;
    let third = env.sent()[2].clone();
    assert!(
        third.starts_with("disk 99% on db-1\n\n×11 since "),
        "{third}"
    );
    gw.wait_state(&later[0], "delivered").await;
    gw.wait_state(&changed, "delivered").await;
    let g = gw.gw.store().group(&group).await.unwrap().unwrap();
    assert_eq!((g.pending, g.total, g.sends), (0, 111, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_open_across_a_restart_is_sent_once_with_every_repeat() {
    let env = start(1, "").await;
    let Env {
        mut gws,
        mock,
        clock,
        text,
    } = env;
    let gw = gws.remove(0);
    let before = repeats(&gw, 50).await;
    gw.gw.shutdown().await.unwrap();
    let gw = start_gateway(gw.dir, &text, clock.clone()).await;
    let after = repeats(&gw, 50).await;
    let env = Env {
        gws: vec![gw],
        mock,
        clock,
        text,
    };
    env.advance(30 * S);
    env.until_sent(1).await;
    let gw = &env.gws[0];
    gw.wait_state(&before[0], "delivered").await;
    gw.wait_state(&after[49], "delivered").await;
    assert_eq!(env.pass(0).await, 0);
    let sent = env.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("×100 since "), "{}", sent[0]);
}

fn pg_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_postgresql_send_a_group_once() {
    let schema = format!(
        "grouping_{}_{}",
        std::process::id(),
        SystemClock.now_ms() % 1_000_000
    );
    let store = format!("[store]\nurl = \"{}?schema={schema}\"", pg_url());
    let env = start(2, &store).await;
    // Both instances take repeats of one alert at once.
    let (a, b) = tokio::join!(repeats(&env.gws[0], 50), repeats(&env.gws[1], 50));
    env.advance(30 * S);
    // Both instances' runners and two explicit passes race for the group.
    let (x, y) = tokio::join!(env.pass(0), env.pass(1));
    assert!(
        x + y <= 1,
        "the group was sent {} times by the passes",
        x + y
    );
    env.until_sent(1).await;
    env.gws[1].wait_state(&a[0], "delivered").await;
    env.gws[0].wait_state(&b[49], "delivered").await;
    assert_eq!(env.pass(0).await + env.pass(1).await, 0);
    let sent = env.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("×100 since "), "{}", sent[0]);
}
