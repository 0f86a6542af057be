//! Silences for every message, through the API in Alertmanager's v2 shape:
//! a silenced message is stored `silenced` with the silence's id and not
//! sent; one that no silence matches goes out; deleting a silence early with
//! `release=true` sends what it held; silences survive a restart.

use imrelay_mock::{LogEntry, MockConfig, MockPlatform, MockServer, RobotConfig};
use serde_json::{json, Value};

use crate::api_support::{TestGateway, ADMIN_KEY, OPS_KEY};

const SECRET: &str = "SEC0123456789abcdef";

fn config(mock: &MockServer) -> String {
    format!(
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
name = "ops"
key = "{OPS_KEY}"
channels = ["robot"]
[channels.robot]
[[channels.robot.destinations]]
type = "dingtalk_robot"
access_token = "sil"
secret = "{SECRET}"
base_url = "{url}"
"#,
        url = mock.base_url()
    )
}

async fn mock() -> MockServer {
    let mcfg = MockConfig {
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "sil").with_secret(SECRET)],
        ..MockConfig::default()
    };
    MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn sent(mock: &MockServer) -> Vec<String> {
    mock.state()
        .log
        .all()
        .into_iter()
        .filter(|e: &LogEntry| e.accepted && e.target == "dingtalk:robot:sil")
        .filter_map(|e| e.body)
        .map(|b| {
            b["text"]["content"]
                .as_str()
                .or_else(|| b["markdown"]["text"].as_str())
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn iso(offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    jiff::Timestamp::from_millisecond(now + offset_s * 1000)
        .unwrap()
        .to_string()
}

async fn silence(gw: &TestGateway, matchers: Value) -> String {
    let body = json!({"matchers": matchers, "startsAt": iso(-1), "endsAt": iso(3600),
        "createdBy": "张三", "comment": "db-1 maintenance"});
    let r = gw
        .post("/v1/silences", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["silenceID"].as_str().unwrap().to_string()
}

async fn submit(gw: &TestGateway, text: &str, labels: Value) -> String {
    let body = json!({"channel": "robot", "text": text, "labels": labels});
    let r = gw
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silenced_message_is_kept_not_sent_and_released_when_the_silence_ends_early() {
    let m = mock().await;
    let gw = TestGateway::start(&config(&m)).await;
    let id = silence(
        &gw,
        json!([{"name": "host", "value": "db-.*", "isRegex": true, "isEqual": true},
               {"name": "severity", "value": "info", "isRegex": false, "isEqual": false}]),
    )
    .await;
    let held = submit(
        &gw,
        "disk 91% on db-1",
        json!({"host": "db-1", "severity": "critical"}),
    )
    .await;
    let passes = submit(
        &gw,
        "disk 91% on web-1",
        json!({"host": "web-1", "severity": "critical"}),
    )
    .await;
    let info = submit(&gw, "fyi db-2", json!({"host": "db-2", "severity": "info"})).await;
    gw.wait_state(&passes, "delivered").await;
    gw.wait_state(&info, "delivered").await;
    let v = gw.wait_state(&held, "silenced").await;
    assert_eq!(v["deliveries"][0]["state"], "silenced");
    assert_eq!(v["deliveries"][0]["silenced_by"], id.as_str());
    assert!(
        !sent(&m).iter().any(|t| t.contains("db-1")),
        "{:?}",
        sent(&m)
    );

    // The list shows it active, in Alertmanager's shape.
    let l = gw.get("/v1/silences", Some(ADMIN_KEY)).await;
    assert_eq!(l.body[0]["id"], id.as_str());
    assert_eq!(l.body[0]["status"]["state"], "active");
    assert_eq!(l.body[0]["createdBy"], "张三");

    // Ended early, asking for release: the held message goes out.
    let r = gw
        .delete(&format!("/v1/silences/{id}?release=true"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["released"], 1);
    gw.wait_state(&held, "delivered").await;
    assert!(sent(&m).iter().any(|t| t.contains("db-1")));
    let one = gw.get(&format!("/v1/silences/{id}"), Some(ADMIN_KEY)).await;
    assert_eq!(one.body["status"]["state"], "expired");
    // After it ended, the same message goes out at once.
    let after = submit(
        &gw,
        "disk 92% on db-1",
        json!({"host": "db-1", "severity": "critical"}),
    )
    .await;
    gw.wait_state(&after, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_without_release_what_it_held_stays_held_and_silences_survive_a_restart() {
    let m = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = TestGateway::start_in(dir, &config(&m)).await;
    let id = silence(&gw, json!([{"name": "channel", "value": "robot"}])).await;
    let held = submit(&gw, "quiet please", json!({})).await;
    gw.wait_state(&held, "silenced").await;

    // A restart: the silence still holds.
    gw.gw.shutdown().await.unwrap();
    let gw = TestGateway::start_in(gw.dir, &config(&m)).await;
    let again = submit(&gw, "still quiet", json!({})).await;
    gw.wait_state(&again, "silenced").await;

    let r = gw
        .delete(&format!("/v1/silences/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.body["released"], 0, "{}", r.text);
    // What it held stays held, and was never sent.
    let v = gw
        .get(&format!("/v1/messages/{held}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(v.body["state"], "silenced");
    assert!(sent(&m).is_empty(), "{:?}", sent(&m));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_may_say_to_send_what_a_silence_held_when_it_ends_early() {
    let m = mock().await;
    // `team` (the same robot) says to send what a silence held; `robot` does not.
    let text = format!(
        "{}\n[channels.team]\nsilence_release = true\n[[channels.team.destinations]]\ntype = \"dingtalk_robot\"\naccess_token = \"sil\"\nsecret = \"{SECRET}\"\nbase_url = \"{}\"\n",
        config(&m),
        m.base_url()
    );
    let gw = TestGateway::start(&text).await;
    let id = silence(&gw, json!([{"name": "host", "value": "db-1"}])).await;
    let kept = submit(&gw, "robot: held", json!({"host": "db-1"})).await;
    let body = json!({"channel": "team", "text": "team: released", "labels": {"host": "db-1"}});
    let r = gw
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    let released = r.body["id"].as_str().unwrap().to_string();
    gw.wait_state(&kept, "silenced").await;
    gw.wait_state(&released, "silenced").await;

    // Ended early without saying: each channel's own setting decides.
    let r = gw
        .delete(&format!("/v1/silences/{id}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.body["released"], 1, "{}", r.text);
    gw.wait_state(&released, "delivered").await;
    let v = gw
        .get(&format!("/v1/messages/{kept}"), Some(ADMIN_KEY))
        .await;
    assert_eq!(v.body["state"], "silenced");
    assert_eq!(sent(&m), ["team: released"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_silences_are_refused_naming_the_field() {
    let m = mock().await;
    let gw = TestGateway::start(&config(&m)).await;
    let post = |body: Value, key: &'static str| {
        let gw = &gw;
        async move {
            gw.post("/v1/silences", Some(key), &body.to_string(), &[])
                .await
        }
    };
    let base = |matchers: Value| json!({"matchers": matchers, "startsAt": iso(-1), "endsAt": iso(60), "createdBy": "a", "comment": ""});
    post(
        base(json!([{"name": "host", "value": "(", "isRegex": true}])),
        ADMIN_KEY,
    )
    .await
    .assert_problem(422, Some("matchers[0].value"));
    post(
        base(json!([{"name": "host", "value": ".*", "isRegex": true}])),
        ADMIN_KEY,
    )
    .await
    .assert_problem(422, Some("matchers"));
    post(base(json!([{"name": "1host", "value": "a"}])), ADMIN_KEY)
        .await
        .assert_problem(422, Some("matchers[0].name"));
    let mut past = base(json!([{"name": "host", "value": "a"}]));
    past["endsAt"] = json!(iso(-10));
    past["startsAt"] = json!(iso(-20));
    post(past, ADMIN_KEY)
        .await
        .assert_problem(422, Some("endsAt"));
    // A key for one channel may not silence every channel.
    post(base(json!([{"name": "host", "value": "a"}])), OPS_KEY)
        .await
        .assert_problem(403, None);
    gw.delete("/v1/silences/nope", Some(ADMIN_KEY))
        .await
        .assert_problem(404, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_made_from_a_message_holds_the_next_one_like_it() {
    let m = mock().await;
    let gw = TestGateway::start(&config(&m)).await;
    let first = submit(
        &gw,
        "disk 91% on db-1",
        json!({"host": "db-1", "alertname": "DiskFull"}),
    )
    .await;
    gw.wait_state(&first, "delivered").await;
    // A key for this channel may silence its own messages.
    let r = gw
        .post(
            &format!("/v1/messages/{first}/silence"),
            Some(OPS_KEY),
            &json!({"duration": "1h", "by": "张三", "comment": "on it"}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"]["state"], "active");
    let names: Vec<&str> = r.body["matchers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alertname", "host", "channel"]);
    let again = submit(
        &gw,
        "disk 92% on db-1",
        json!({"host": "db-1", "alertname": "DiskFull"}),
    )
    .await;
    gw.wait_state(&again, "silenced").await;
    let other = submit(
        &gw,
        "disk 91% on db-2",
        json!({"host": "db-2", "alertname": "DiskFull"}),
    )
    .await;
    gw.wait_state(&other, "delivered").await;
    // No labels, nothing to silence by.
    let bare = submit(&gw, "plain", json!({})).await;
    gw.post(
        &format!("/v1/messages/{bare}/silence"),
        Some(ADMIN_KEY),
        &json!({"duration": "1h", "by": "a"}).to_string(),
        &[],
    )
    .await
    .assert_problem(422, Some("id"));
}

/// A clock the test sets.
struct SetClock(std::sync::atomic::AtomicI64);

impl imrelay_sdk::clock::Clock for SetClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl SetClock {
    /// Set the gateway's time and the platform's (the mock's) with it, so
    /// signed requests carry times the platform accepts.
    fn set(&self, ms: i64, mock: &MockServer) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
        mock.state().advance_clock(ms - mock.state().now_ms());
    }
}

/// A gateway whose clock (store and dispatcher) is `clock`.
async fn start_at(text: &str, clock: std::sync::Arc<SetClock>) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = imrelay_gateway::config::Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = imrelay_gateway::Gateway::start_with(
        cfg,
        listener,
        imrelay_gateway::StartOptions { clock: Some(clock) },
    )
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_maintenance_window_across_midnight_holds_what_it_selects() {
    window_across_midnight(r#"weekly = [{ days = ["sat"], from = "22:00", to = "06:00" }]"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_maintenance_window_across_midnight_holds_what_it_selects() {
    window_across_midnight("cron = \"0 22 * * SAT\"\nduration = \"8h\"").await;
}

/// Window `db-weekly` (`when`: its schedule) holds db hosts from Saturday
/// 22:00 to Sunday 06:00 in Shanghai.
async fn window_across_midnight(when: &str) {
    use std::sync::Arc;
    let m = mock().await;
    let text = format!(
        r#"{}
[[maintenance]]
name = "db-weekly"
matchers = ['host=~"db-.*"']
time_zone = "Asia/Shanghai"
{when}
"#,
        config(&m)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, &text).unwrap();
    let cfg = imrelay_gateway::config::Config::load(&path).unwrap();
    // Saturday 2026-12-05 23:30 in Shanghai (15:30 UTC).
    let sat_night = "2026-12-05T15:30:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let clock = Arc::new(SetClock(sat_night.into()));
    clock.set(sat_night, &m);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = imrelay_gateway::Gateway::start_with(
        cfg,
        listener,
        imrelay_gateway::StartOptions {
            clock: Some(clock.clone()),
        },
    )
    .await
    .unwrap();
    let gw = TestGateway {
        base: format!("http://{}", gw.addr()),
        gw,
        mock: None,
        dir,
        http: reqwest::Client::new(),
    };
    let held = submit(&gw, "db-1 rebooting", json!({"host": "db-1"})).await;
    let v = gw.wait_state(&held, "silenced").await;
    assert_eq!(v["deliveries"][0]["silenced_by"], "maintenance:db-weekly");
    let web = submit(&gw, "web-1 slow", json!({"host": "web-1"})).await;
    gw.wait_state(&web, "delivered").await;
    // Sunday 05:59 is still Saturday night's window; 06:00 is not.
    let sun = |hhmm: &str| {
        format!("2026-12-06T{hhmm}:00+08:00")
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    clock.set(sun("05:59"), &m);
    let late = submit(&gw, "db-2 still rebooting", json!({"host": "db-2"})).await;
    gw.wait_state(&late, "silenced").await;
    clock.set(sun("06:00"), &m);
    let after = submit(&gw, "db-1 is back", json!({"host": "db-1"})).await;
    gw.wait_state(&after, "delivered").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_hold_info_and_warning_until_morning_and_pass_critical() {
    use std::sync::Arc;
    let m = mock().await;
    let text = config(&m).replace(
        "[channels.robot]\n",
        "[channels.robot]\nquiet_hours = { from = \"22:00\", to = \"08:00\", time_zone = \"Asia/Shanghai\" }\n",
    );
    assert!(text.contains("quiet_hours"));
    // 23:30 in Shanghai; the quiet hours end at 08:00 (00:00 UTC).
    let night = "2026-12-01T15:30:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let morning = "2026-12-02T00:00:00Z"
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_millisecond();
    let clock = Arc::new(SetClock(night.into()));
    clock.set(night, &m);
    let gw = start_at(&text, clock.clone()).await;
    let info = submit(&gw, "backup done", json!({"severity": "info"})).await;
    let warning = submit(&gw, "disk 80%", json!({"severity": "warning"})).await;
    let unlabeled = submit(&gw, "fyi", json!({})).await;
    let critical = submit(&gw, "db down", json!({"severity": "critical"})).await;
    gw.wait_state(&critical, "delivered").await;
    // Each held one is stored, folded into the night's digest.
    let mut groups = Vec::new();
    for id in [&info, &warning, &unlabeled] {
        let v = gw.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY)).await;
        assert_eq!(v.body["state"], "pending", "{:#}", v.body);
        assert_eq!(v.body["deliveries"][0]["state"], "merged", "{:#}", v.body);
        groups.push(v.body["deliveries"][0]["group"].clone());
    }
    assert!(groups[0].is_string() && groups.iter().all(|g| *g == groups[0]));
    let g = gw
        .gw
        .store()
        .group(groups[0].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((g.due_at, g.pending), (Some(morning), 3));
    assert_eq!(sent(&m), ["db down"]);
    // Morning: what waited goes out as ONE digest, each message in it.
    clock.set(morning, &m);
    for id in [&info, &warning, &unlabeled] {
        gw.wait_state(id, "delivered").await;
    }
    let sent = sent(&m);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0], "db down");
    let digest = &sent[1];
    assert!(
        digest.contains("**3 messages held during quiet hours")
            && ["backup done", "disk 80%", "fyi"]
                .iter()
                .all(|t| digest.contains(t)),
        "{digest}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silence_made_on_one_instance_holds_what_another_accepts_on_postgresql() {
    let url = std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!(
        "silences_{}_{}",
        std::process::id(),
        imrelay_sdk::clock::Clock::now_ms(&imrelay_sdk::clock::SystemClock) % 1_000_000
    );
    let m = mock().await;
    let text = config(&m).replace(
        "[dispatch]",
        &format!("[store]\nurl = \"{url}?schema={schema}\"\n[dispatch]"),
    );
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;
    let id = silence(&a, json!([{"name": "host", "value": "db-1"}])).await;

    // B learns of it at its next refresh (every 2 s): wait for that, bounded.
    let labels: imrelay_gateway::store::Labels = [("host".to_string(), "db-1".to_string())].into();
    let now = || imrelay_sdk::clock::Clock::now_ms(&imrelay_sdk::clock::SystemClock);
    let mut seen = false;
    for _ in 0..500 {
        if b.gw.silences().holding(&labels, "robot", now()).is_some() {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(seen, "instance B never loaded the silence made on A");

    let held = submit(&b, "disk 91% on db-1", json!({"host": "db-1"})).await;
    let v = b.wait_state(&held, "silenced").await;
    assert_eq!(v["deliveries"][0]["silenced_by"], id.as_str());
    let other = submit(&b, "disk 91% on db-2", json!({"host": "db-2"})).await;
    b.wait_state(&other, "delivered").await;
    assert_eq!(sent(&m), ["disk 91% on db-2"]);

    // Ended early on A with release: what B held goes out, once.
    let r = a
        .delete(&format!("/v1/silences/{id}?release=true"), Some(ADMIN_KEY))
        .await;
    assert_eq!(r.body["released"], 1, "{}", r.text);
    a.wait_state(&held, "delivered").await;
    let mut got = sent(&m);
    got.sort();
    assert_eq!(got, ["disk 91% on db-1", "disk 91% on db-2"]);
}
