//! Cluster test: three `imrelay serve` processes share one PostgreSQL database
//! (a fresh schema) and a mock platform living in this test process. Messages
//! stream to all three; one is killed with SIGKILL mid-stream. Then:
//! - every message that got a 202 is delivered at the mock (the dead
//!   instance's claims come back when their leases expire);
//! - no destination ever went above its platform limit in any window, across
//!   the cluster (the mock rejects nothing, and the accepted requests' arrival
//!   times are checked window by window);
//! - the Feishu app's token was fetched once per token lifetime for the whole
//!   cluster (not once per instance);
//! - no Feishu message (dedup key `uuid`) was delivered twice as new.
//!
//! Needs PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` (override with
//! `IMRELAY_TEST_PG`); FAILS when it is down (`tests/run` starts it).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::serve_support::*;
use imrelay_gateway::store::{postgres::PgStore, Store, StoreOptions};
use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer, RobotConfig};
use imrelay_sdk::Message;

const N: usize = 300;
const ROBOT: &str = "clustertok";
const APP: &str = "cli_cluster";
const TOKEN_LIFETIME_S: u64 = 4;

fn pg_url() -> String {
    let base = std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{base}?schema=cluster_{}_{nanos}", std::process::id())
}

fn config(port: u16, store_url: &str, mock_url: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "5s"
watch = false

[store]
url = "{store_url}"

[dispatch]
poll_interval = "200ms"
# Raised by the gateway to the send timeout plus a margin (here 12 s): the
# shortest safe lease, after which the killed instance's claims come back.
lease = "1s"
# The shared limiter's 1 s default margin, scaled like the windows.
cluster_rate_margin = "10ms"

[outbound]
# Short timeouts keep the claim lease (send timeout + margin) short, so the
# killed instance's claims come back within seconds.
timeouts = {{ connect = "1s", total = "2s" }}

[[api_keys]]
name = "producer"
key = "{KEY}"
channels = ["*"]

[channels.ding]
retry = {{ base = "100ms", cap = "1s" }}
[[channels.ding.destinations]]
type = "dingtalk_robot"
access_token = "{ROBOT}"
base_url = "{mock_url}"
# DingTalk's 20/min, scaled like the mock's windows (window_scale = 0.01).
rate_limit = [{{ count = 20, per = "600ms" }}]

[channels.fs]
retry = {{ base = "100ms", cap = "1s" }}
[[channels.fs.destinations]]
type = "feishu_app"
app_id = "{APP}"
app_secret = "cluster-secret"
base_url = "{mock_url}"
# Within the mock's per-user 5/s (scaled: 5 per 10 ms) whoever the recipient.
rate_limit = [{{ count = 5, per = "10ms" }}]
"#
    )
}

/// Drop the test's schema (best effort).
async fn drop_schema(url: &str) {
    use sqlx::Connection;
    let (base, schema) = url.split_once("?schema=").unwrap();
    if let Ok(mut c) = sqlx::PgConnection::connect(base).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut c)
        .await;
    }
}

/// Most accepted requests to `target` within any `window_ms` at the mock.
fn busiest_window(mock: &MockServer, target: &str, endpoint: &str, window_ms: i64) -> usize {
    let mut at: Vec<i64> = mock
        .state()
        .log
        .all()
        .iter()
        .filter(|e| e.target == target && e.endpoint == endpoint && e.accepted)
        .map(|e| e.at_ms)
        .collect();
    at.sort();
    (0..at.len())
        .map(|i| {
            at[i..]
                .iter()
                .take_while(|&&t| t < at[i] + window_ms)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_queue_limits_and_tokens_through_a_sigkill() {
    let url = pg_url();
    // Fail (not skip) without PostgreSQL, saying how to start it. This also
    // creates and migrates the schema before the instances race for it.
    let probe = match PgStore::open(StoreOptions::new(url.clone())).await {
        Ok(s) => s,
        Err(e) => panic!(
            "PostgreSQL is needed for this test: {e}\nStart it with: \
             pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        ),
    };
    // Tokens live 4 s (refreshed 0.8 s early), so the run spans several
    // token lifetimes.
    let mut app = AppConfig::new(MockPlatform::Feishu, APP, "cluster-secret");
    app.token_lifetime_secs = Some(TOKEN_LIFETIME_S);
    let mut mc = MockConfig::default()
        .with_robot(RobotConfig::new(MockPlatform::Dingtalk, ROBOT))
        .with_app(app);
    mc.window_scale = 0.01;
    let mock = MockServer::start(mc, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();

    let dir = Scratch::new("cluster");
    let mut nodes = Vec::new();
    for k in 0..3 {
        let cfg = dir.path(&format!("node{k}.toml"));
        let port = free_port();
        std::fs::write(&cfg, config(port, &url, &mock.base_url())).unwrap();
        nodes.push(Serve::start(&cfg, port, dir.path(&format!("node{k}.log"))).await);
    }
    let servers: Vec<String> = nodes.iter().map(|n| n.server()).collect();

    // Six producers spread messages over the three instances; even numbers go
    // to DingTalk, odd ones to Feishu (one of 20 users each).
    let accepted = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for _ in 0..6 {
        let (accepted, next, servers) = (accepted.clone(), next.clone(), servers.clone());
        producers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= N {
                    break;
                }
                let (channel, msg) = if i % 2 == 0 {
                    ("ding", Message::text(format!("cl-{i:05}-end")))
                } else {
                    (
                        "fs",
                        Message::text(format!("cl-{i:05}-end"))
                            .with_recipients(vec![format!("ou_user_{}", i % 20)]),
                    )
                };
                let server = &servers[i % 3];
                if imrelay_gateway::client::submit(server, KEY, channel, &msg)
                    .await
                    .is_ok()
                {
                    accepted.lock().unwrap().push(i);
                }
            }
        }));
    }

    // SIGKILL node 0 once the stream is well under way and sends are flowing.
    let mut waited = 0;
    loop {
        let n = accepted.lock().unwrap().len();
        let delivered = mock.state().log.all().iter().filter(|e| e.accepted).count();
        if n >= N / 3 && delivered >= 20 {
            break;
        }
        waited += 1;
        assert!(waited < 1500, "the stream never got going");
        // Waiting on other processes: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let in_flight_at_kill = probe.stats().await.unwrap().in_flight;
    nodes[0].child.kill().unwrap(); // SIGKILL
    nodes[0].child.wait().unwrap();
    killed.store(true, Ordering::SeqCst);
    for p in producers {
        p.await.unwrap();
    }
    let accepted: Vec<usize> = accepted.lock().unwrap().clone();
    assert!(accepted.len() > N / 2, "only {} accepted", accepted.len());

    // Every acknowledged message arrives (the dead node's claims come back
    // when their leases expire).
    let markers: Vec<String> = accepted.iter().map(|i| format!("cl-{i:05}-end")).collect();
    let mut missing = markers.clone();
    for _ in 0..1200 {
        let counts = delivery_counts(&mock, "cl-");
        missing.retain(|m| counts.get(m).is_none_or(|c| c.0 == 0));
        if missing.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages never arrived (e.g. {:?}); node1 log:\n{}",
        missing.len(),
        markers.len(),
        &missing[..missing.len().min(5)],
        nodes[1].log_text()
    );

    // And the queue drains: sends of the dead node whose outcome it never
    // recorded are claimed again once their leases expire, and sent again.
    let mut st = probe.stats().await.unwrap();
    for _ in 0..600 {
        if st.pending + st.in_flight == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        st = probe.stats().await.unwrap();
    }
    assert_eq!((st.pending, st.in_flight), (0, 0), "{st:?}");
    assert_eq!(st.dead, 0, "{st:?}");

    // No duplicates where the platform deduplicates (Feishu `uuid`).
    let mut resent = 0;
    let counts = delivery_counts(&mock, "cl-");
    for i in accepted.iter().filter(|i| *i % 2 == 1) {
        let (all, first_time) = counts
            .get(&format!("cl-{i:05}-end"))
            .copied()
            .unwrap_or_default();
        assert_eq!(
            first_time, 1,
            "message {i} delivered {first_time} times as new"
        );
        resent += all - first_time;
    }

    // Never above a platform limit, in any window, across the cluster.
    let log = mock.state().log.all();
    let rejected: Vec<_> = log.iter().filter(|e| !e.accepted).collect();
    assert!(
        rejected.is_empty(),
        "the mock rejected requests (rate limits?): {:?}",
        rejected
            .iter()
            .take(5)
            .map(|e| (&e.target, &e.code, &e.reason))
            .collect::<Vec<_>>()
    );
    let ding_target = format!("dingtalk:robot:{ROBOT}");
    let ding_max = busiest_window(&mock, &ding_target, "robot.send", 600);
    assert!(ding_max <= 20, "{ding_max} DingTalk requests within 600 ms");
    let fs_target = format!("feishu:app:{APP}");
    let fs_max = busiest_window(&mock, &fs_target, "im.messages", 10);
    assert!(fs_max <= 5, "{fs_max} Feishu requests within 10 ms");

    // One token fetch per credential per token lifetime for the whole
    // cluster: consecutive fetches are at least the refresh period apart
    // (lifetime minus the 20% refresh margin), never one per instance.
    let fetched_at: Vec<i64> = log
        .iter()
        .filter(|e| e.endpoint == "auth.tenant_access_token" && e.accepted)
        .map(|e| e.at_ms)
        .collect();
    let token_fetches = fetched_at.len();
    let refresh_period_ms = (TOKEN_LIFETIME_S * 1000 * 4 / 5) as i64;
    assert!(token_fetches >= 1);
    for w in fetched_at.windows(2) {
        assert!(
            w[1] - w[0] >= refresh_period_ms - 100,
            "two token fetches {} ms apart (fetches at {fetched_at:?})",
            w[1] - w[0]
        );
    }

    eprintln!(
        "cluster: accepted {} of {N}; in flight at the kill {in_flight_at_kill}; \
         busiest DingTalk 600 ms window {ding_max}/20; busiest Feishu 10 ms window {fs_max}/5; \
         token fetches {token_fetches}; Feishu resends deduplicated by the platform {resent}",
        accepted.len()
    );

    for n in nodes.iter_mut().skip(1) {
        n.signal("TERM");
        assert_eq!(n.wait_exit(20).await, Some(0), "log:\n{}", n.log_text());
    }
    probe.close().await;
    drop_schema(&url).await;
    mock.stop().await;
}
