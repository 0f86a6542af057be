//! Crash test: a child `imrelay serve` receives a steady stream of messages and
//! is killed with SIGKILL, then restarted on the same database. Every message
//! that got a 202 is delivered at the mock, and none twice on a platform with
//! dedup keys (Feishu app `uuid`: the mock logs a repeated uuid as a duplicate,
//! not a second delivery).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::serve_support::*;
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer};
use imrelay_sdk::Message;

/// (message number, id) of every message that got a 202.
type Accepted = std::sync::Mutex<Vec<(usize, String)>>;

/// The most messages the producers send in all.
const MAX_STREAM: usize = 1_500;

fn config(port: u16, mock_url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "5s"
watch = false

[store]
path = "queue.db"

[dispatch]
poll_interval = "50ms"
# Short leases so nothing waits long for a dead claimer either way.
lease = "2s"

[[api_keys]]
name = "producer"
key = "{KEY}"
channels = ["*"]

[channels.feishu]
retry = {{ base = "100ms", cap = "1s" }}
[[channels.feishu.destinations]]
type = "feishu_app"
app_id = "cli_crash"
app_secret = "crash-secret"
base_url = "{mock_url}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_loses_nothing_and_duplicates_nothing() {
    let mock = MockServer::start(
        MockConfig::default().with_app(AppConfig::new(
            MockPlatform::Feishu,
            "cli_crash",
            "crash-secret",
        )),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let proxy = Proxy::start(mock.base_url()).await;
    let dir = Scratch::new("crash");
    let cfg_path = dir.path("imrelay.toml");
    let port = free_port();
    std::fs::write(&cfg_path, config(port, &proxy.url)).unwrap();
    let mut serve = Serve::start(&cfg_path, port, dir.path("serve.log")).await;

    // A steady stream from 4 producers; each message to one of 20 users (the
    // mock limits 5/s per user, as Feishu does).
    let accepted = Arc::new(Accepted::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut producers = Vec::new();
    for _ in 0..4 {
        let (accepted, stop, next, server) =
            (accepted.clone(), stop.clone(), next.clone(), serve.server());
        producers.push(tokio::spawn(async move {
            // At most MAX_STREAM messages: when the kill comes late (its
            // sends wait out the send timeout), the backlog stays one the
            // restart drains within the test's wait.
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= MAX_STREAM {
                    break;
                }
                let msg = Message::text(format!("crash-{i:05}-end"))
                    .with_recipients(vec![format!("ou_user_{}", i % 20)]);
                match imrelay_gateway::client::submit(&server, KEY, "feishu", &msg).await {
                    Ok(id) => accepted.lock().unwrap().push((i, id)),
                    // The server is gone (killed): this message was never acknowledged.
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    // Kill once a good number were accepted and some were delivered, and while
    // a few sends have reached the platform but not their answers, so the kill
    // lands with work queued, in flight (outcome unknown) and done.
    let mut waited = 0;
    loop {
        let n = accepted.lock().unwrap().len();
        let delivered = mock.state().log.all().iter().filter(|e| e.accepted).count();
        if n >= 200 && delivered >= 20 {
            break;
        }
        waited += 1;
        assert!(
            waited < 600,
            "the stream never got going; log:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    proxy.withhold.store(true, Ordering::SeqCst);
    while proxy.held.load(Ordering::SeqCst) < 3 {
        waited += 1;
        assert!(
            waited < 1200,
            "no send reached the platform while answers were held"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.child.kill().unwrap(); // SIGKILL
    serve.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    let accepted: Vec<(usize, String)> = accepted.lock().unwrap().clone();
    let at_kill = mock.state().log.all().iter().filter(|e| e.accepted).count();
    assert!(
        at_kill < accepted.len(),
        "the kill should land with a backlog ({at_kill} delivered of {})",
        accepted.len()
    );

    // Restart on the same database (new port: the old one may linger).
    proxy.withhold.store(false, Ordering::SeqCst);
    let port2 = free_port();
    std::fs::write(&cfg_path, config(port2, &proxy.url)).unwrap();
    let mut serve = Serve::start(&cfg_path, port2, dir.path("serve.log")).await;

    let markers: Vec<String> = accepted
        .iter()
        .map(|(i, _)| format!("crash-{i:05}-end"))
        .collect();
    let mut missing = markers.clone();
    for _ in 0..1200 {
        let counts = delivery_counts(&mock, "crash-");
        missing.retain(|m| counts.get(m).is_none_or(|c| c.0 == 0));
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages never arrived (e.g. {:?}); log:\n{}",
        missing.len(),
        markers.len(),
        &missing[..missing.len().min(5)],
        serve.log_text()
    );
    let mut resent = 0;
    let counts = delivery_counts(&mock, "crash-");
    for m in &markers {
        let (all, first_time) = counts.get(m).copied().unwrap_or_default();
        assert_eq!(
            first_time, 1,
            "{m} was delivered {first_time} times as a new message"
        );
        resent += all - first_time;
    }
    eprintln!(
        "accepted {}, delivered before the kill {at_kill}, resent after restart and deduplicated by the platform {resent}",
        markers.len()
    );
    assert!(
        resent >= 3,
        "the sends whose answers were lost must have been sent again (at least once)"
    );

    serve.signal("TERM");
    assert_eq!(
        serve.wait_exit(20).await,
        Some(0),
        "log:\n{}",
        serve.log_text()
    );
    mock.stop().await;
}
