//! Self-alerts: a destination's breaker opens under injected faults (mock
//! `POST /_mock/faults`), and the alert reaches the alert channel's robot on
//! the mock exactly once, though the breaker opens again and again.

use std::time::Duration;

use imrelay_gateway::config::Config;
use imrelay_gateway::Gateway;
use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};

const SECRET: &str = "SEC0123456789abcdef";
const KEY: &str = "admin-key-0123456789abcdef";

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until nothing is pending or in flight for the `oncall` channel.
async fn drain_alert_queue(gw: &Gateway) {
    let store = gw.store().clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = store.stats().await.unwrap();
        let open: u64 = s
            .by_target
            .iter()
            .filter(|t| t.target.starts_with("oncall/"))
            .map(|t| t.pending + t.in_flight)
            .sum();
        if open == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alert queue never drained"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn accepted_at(mock: &MockServer, token: &str) -> Vec<imrelay_mock::LogEntry> {
    let target = format!("dingtalk:robot:{token}");
    mock.state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.target == target && e.accepted)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn breaker_opening_alerts_the_alert_channel_once() {
    let mcfg = MockConfig {
        robots: vec![
            RobotConfig::new(MockPlatform::Dingtalk, "flaky").with_secret(SECRET),
            RobotConfig::new(MockPlatform::Dingtalk, "oncall").with_secret(SECRET),
        ],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = mock.base_url();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "admin"
key = "{KEY}"
channels = ["*"]

[self_alerts]
channel = "oncall"
dedup_window = "10m"

[channels.deploys]
retry = {{ base = "20ms", cap = "50ms", max_attempts = 50 }}
breaker = {{ failure_threshold = 2, open_for = "100ms", max_open_for = "200ms" }}
[[channels.deploys.destinations]]
type = "dingtalk_robot"
access_token = "flaky"
secret = "{SECRET}"
base_url = "{url}"

[channels.oncall]
[[channels.oncall.destinations]]
type = "dingtalk_robot"
access_token = "oncall"
secret = "{SECRET}"
base_url = "{url}"
"#
    );
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, listener).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();

    // Every request to the flaky robot fails with 503 until the rule is removed.
    let r = http
        .post(format!("{url}/_mock/faults"))
        .json(&serde_json::json!({"target": "dingtalk:robot:flaky", "http_status": 503}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let base = format!("http://{}", gw.addr());
    for i in 0..4 {
        let r = http
            .post(format!("{base}/v1/messages"))
            .bearer_auth(KEY)
            .json(&serde_json::json!({"channel": "deploys", "text": format!("deploy {i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }

    // Wait until the breaker has opened several times (each half-open probe
    // fails and reopens it) and the alert has arrived.
    let d = gw.dispatcher().clone();
    wait_until("the breaker to open three times", || {
        d.snapshot().destinations.iter().any(|s| {
            s.key.starts_with("dingtalk_robot")
                && s.breaker_opened_total >= 3
                && !s.key.contains("oncall")
        })
    })
    .await;
    wait_until("the alert at the oncall robot", || {
        !accepted_at(&mock, "oncall").is_empty()
    })
    .await;
    // Let the alert channel's queue drain, so a second alert would have been
    // sent by now if one had been enqueued.
    drain_alert_queue(&gw).await;

    let alerts = accepted_at(&mock, "oncall");
    assert_eq!(
        alerts.len(),
        1,
        "one alert, not one per failure: {alerts:#?}"
    );
    let body = alerts[0]
        .body
        .as_ref()
        .expect("the mock keeps bodies")
        .to_string();
    assert!(body.contains("circuit breaker opened"), "{body}");
    assert!(body.contains("WARNING"), "{body}");
    let failures = mock
        .state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.target == "dingtalk:robot:flaky" && !e.accepted)
        .count();
    assert!(failures >= 4, "the flaky robot failed {failures} times");

    // The metrics show the suppressed repeats.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dedup = metrics
        .lines()
        .find(|l| {
            l.starts_with("imrelay_alerts_total{")
                && l.contains("kind=\"breaker_opened\"")
                && l.contains("result=\"deduplicated\"")
        })
        .unwrap_or_else(|| panic!("no deduplicated alert count in:\n{metrics}"));
    let n: f64 = dedup.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2.0, "{dedup}");
    assert!(metrics.contains("imrelay_breaker_state{"), "{metrics}");

    // Heal the destination: everything is delivered after all.
    http.delete(format!("{url}/_mock/faults"))
        .send()
        .await
        .unwrap();
    wait_until("the deploys to be delivered", || {
        accepted_at(&mock, "flaky").len() >= 4
    })
    .await;
    gw.shutdown().await.unwrap();
    mock.stop().await;
}

/// The alerter's decisions: below the minimum severity, about the alert
/// channel itself (never: no loop), repeated (deduplicated), too many (rate
/// limited); only `Send` enqueues a message to the alert channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_graded_deduplicated_rate_limited_and_never_loop() {
    use imrelay_gateway::runtime::Live;
    use imrelay_gateway::self_alerts::{AlertKind, Alerts, AlertsConfig, Decision, Severity};
    use imrelay_gateway::store::StoreOptions;

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[[api_keys]]
name = "admin"
key = "{KEY}"
channels = ["*"]
[channels.deploys]
[[channels.deploys.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/deploys"
allow_private = true
[channels.oncall]
[[channels.oncall.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/oncall"
allow_private = true
"#
    );
    let cfg = Config::parse(&text, dir.path()).unwrap();
    let live = std::sync::Arc::new(Live::new(cfg).unwrap());
    let set = live.runtime().channels.clone();
    let key_of = |c: &str| set.get(c).unwrap().destinations[0].key.clone();
    let (deploys, oncall) = (key_of("deploys"), key_of("oncall"));
    let store = imrelay_gateway::store::open(StoreOptions::new(
        dir.path().join("a.db").to_string_lossy().into_owned(),
    ))
    .await
    .unwrap();
    let alerts = Alerts::new(
        AlertsConfig {
            channel: Some("oncall".into()),
            max_per_window: 2,
            ..AlertsConfig::default()
        },
        store.clone(),
        live.clone(),
    );

    // About the alert channel's own destination or messages: never.
    assert_eq!(alerts.breaker_opened(&oncall, 3), Decision::LoopSuppressed);
    assert_eq!(
        alerts.permanent_error("oncall", &oncall, Some("400"), "bad"),
        Decision::LoopSuppressed
    );
    // Once per kind and subject.
    assert_eq!(alerts.breaker_opened(&deploys, 3), Decision::Send);
    assert_eq!(alerts.breaker_opened(&deploys, 5), Decision::Deduplicated);
    // Another kind for the same destination is its own alert.
    assert_eq!(
        alerts.token_refresh_failing("deploys", &deploys, "40014"),
        Decision::Send
    );
    // Two per window: the third distinct alert waits.
    assert_eq!(
        alerts.permanent_error("deploys", &deploys, Some("310000"), "keywords"),
        Decision::RateLimited
    );
    // Info is below the default minimum (warning).
    assert_eq!(
        alerts.raise(
            AlertKind::DlqOverThreshold,
            "dlq",
            None,
            None,
            Some(Severity::Info),
            "x".into()
        ),
        Decision::BelowThreshold
    );

    // Exactly the two sent alerts were enqueued, to the alert channel.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = store.stats().await.unwrap();
        if s.messages >= 2 {
            assert_eq!(s.messages, 2);
            assert!(
                s.by_target.iter().all(|t| t.target.starts_with("oncall/")),
                "{s:?}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alerts never enqueued"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.close().await;
}

/// Token fetches failing (the mock's token endpoint answers 500) raise one
/// `token_refresh_failing` alert, however many attempts fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_token_fetches_alert_once() {
    let mcfg = MockConfig {
        robots: vec![RobotConfig::new(MockPlatform::Dingtalk, "oncall").with_secret(SECRET)],
        apps: vec![imrelay_mock::AppConfig::new(
            MockPlatform::Feishu,
            "cli_obs",
            "app-secret-obs",
        )],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = mock.base_url();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "admin"
key = "{KEY}"
channels = ["*"]
[self_alerts]
channel = "oncall"
[channels.feishu]
retry = {{ base = "20ms", cap = "50ms", max_attempts = 50 }}
breaker = {{ failure_threshold = 1000 }}
[[channels.feishu.destinations]]
type = "feishu_app"
app_id = "cli_obs"
app_secret = "app-secret-obs"
recipients = ["ou_obs"]
base_url = "{url}"
[channels.oncall]
[[channels.oncall.destinations]]
type = "dingtalk_robot"
access_token = "oncall"
secret = "{SECRET}"
base_url = "{url}"
"#
    );
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, listener).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{url}/_mock/faults"))
        .json(&serde_json::json!({"target": "feishu:app:cli_obs", "http_status": 500, "include_token_endpoints": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let base = format!("http://{}", gw.addr());
    let r = http
        .post(format!("{base}/v1/messages"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"channel": "feishu", "text": "needs a token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let failed_fetches = || {
        mock.state()
            .log
            .all()
            .into_iter()
            .filter(|e| e.target == "feishu:app:cli_obs" && !e.accepted)
            .count()
    };
    wait_until("several failed token fetches", || failed_fetches() >= 4).await;
    wait_until("the alert at the oncall robot", || {
        !accepted_at(&mock, "oncall").is_empty()
    })
    .await;
    wait_until("more failed fetches after the alert", || {
        failed_fetches() >= 6
    })
    .await;
    drain_alert_queue(&gw).await;
    let alerts = accepted_at(&mock, "oncall");
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let body = alerts[0].body.as_ref().unwrap().to_string();
    assert!(
        body.contains("access token for destination feishu_app"),
        "{body}"
    );
    assert!(body.contains("CRITICAL"), "{body}");
    assert!(
        !body.contains("app-secret-obs"),
        "the secret leaked: {body}"
    );
    gw.shutdown().await.unwrap();
    mock.stop().await;
}
