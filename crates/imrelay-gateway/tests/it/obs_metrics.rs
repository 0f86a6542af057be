//! `/metrics`, `/healthz` and `/readyz` on a running gateway.

use std::sync::atomic::Ordering;

use crate::api_support::{config_text, Sink, TestGateway, ADMIN_KEY};
use imrelay_gateway::telemetry::events;
use tower::ServiceExt;

/// The value of the sample whose line starts with `name{` and has all `labels`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_follow_a_delivery_with_bounded_labels() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            r#"{"channel": "other", "text": "metrics please"}"#,
            &[("x-request-id", "req-metrics-1")],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.headers["x-trace-id"], "req-metrics-1");
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state(&id, "delivered").await;

    let resp = t.http.get(t.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let m = resp.text().await.unwrap();
    let ch = "channel=\"other\"";
    assert!(
        sample(&m, events::MESSAGES_ACCEPTED, &[ch]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            events::DELIVERIES,
            &[ch, "outcome=\"delivered\"", "platform=\"webhook\""]
        )
        .unwrap()
            >= 1.0,
        "{m}"
    );
    assert!(
        sample(&m, &format!("{}_count", events::DELIVERY_LATENCY), &[ch]).unwrap() >= 1.0,
        "{m}"
    );
    assert!(
        m.contains(&format!("{}_bucket{{", events::DELIVERY_LATENCY)),
        "histogram buckets: {m}"
    );
    assert!(
        sample(
            &m,
            &format!("{}_count", events::PLATFORM_REQUEST_DURATION),
            &["platform=\"webhook\""]
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(
        sample(&m, events::QUEUE_DEPTH, &["state=\"pending\""]),
        Some(0.0),
        "{m}"
    );
    assert_eq!(sample(&m, events::DLQ_SIZE, &[]), Some(0.0), "{m}");
    assert_eq!(sample(&m, events::READY, &[]), Some(1.0), "{m}");
    assert!(
        sample(&m, events::BREAKER_STATE, &["platform=\"webhook\""]).is_some(),
        "{m}"
    );
    assert!(
        sample(&m, events::CONFIG_RELOADS, &["outcome=\"applied\""]).is_some(),
        "{m}"
    );
    // Help and type lines, as Prometheus expects.
    assert!(
        m.contains(&format!("# TYPE {} counter", events::MESSAGES_ACCEPTED)),
        "{m}"
    );
    // Message ids and trace ids are never labels.
    assert!(!m.contains(&id) && !m.contains("req-metrics-1"), "{m}");
    // Every metric imrelay exports is one `events` defines.
    for line in m.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| events::ALL.contains(b))
            .unwrap_or(name);
        assert!(events::ALL.contains(&base), "undeclared metric {name}");
    }
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let r = t.get("/healthz", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
    let r = t.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "ready");
    assert_eq!(r.body["checks"]["store"]["ok"], true);
    assert_eq!(r.body["checks"]["config"]["channels"], 2);

    // Draining: the same router answers 503 naming the check.
    let live = t.gw.live();
    let state = imrelay_gateway::api::AppState::new(t.gw.store().clone(), live.clone());
    state.accepting.store(false, Ordering::Release);
    let app = imrelay_gateway::api::router(state.clone());
    let resp = app
        .clone()
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["checks"]["draining"]["draining"], true, "{v}");

    // A closed store: not ready either.
    state.accepting.store(true, Ordering::Release);
    t.gw.store().close().await;
    let resp = app
        .oneshot(
            axum::http::Request::get("/readyz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["checks"]["store"]["ok"], false, "{v}");
}

/// Readiness follows whether accepts commit, not whether reads answer: a
/// store refusing every write (as a full or read-only disk does) is not
/// ready while reads still work, and `/readyz` (no key) gives a generic
/// reason, never the database's text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_commits_and_keeps_the_error_text_private() {
    use imrelay_gateway::store::sqlite::SqliteStore;
    use imrelay_gateway::store::{NewMessage, Store, StoreOptions};

    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ready.db").display());
    let store = std::sync::Arc::new(SqliteStore::open(StoreOptions::new(url)).await.unwrap());
    let state = imrelay_gateway::api::AppState::new(store.clone(), t.gw.live().clone());
    let app = imrelay_gateway::api::router(state);
    let readyz = || async {
        let resp = app
            .clone()
            .oneshot(
                axum::http::Request::get("/readyz")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    };
    let one = || {
        NewMessage::new(
            "ops",
            imrelay_sdk::Message::text("a"),
            vec!["ops/x".parse().unwrap()],
        )
    };
    assert_eq!(readyz().await.0, 200);

    store.set_query_only(true).await.unwrap();
    let err = store.enqueue(vec![one()]).await.unwrap_err();
    assert!(store.stats().await.is_ok(), "reads still answer");
    let (status, text) = readyz().await;
    assert_eq!(status, 503, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["checks"]["store"]["ok"], false, "{v}");
    assert_eq!(
        v["checks"]["store"]["error"], "the store cannot commit",
        "{v}"
    );
    for private in ["readonly", "attempt to write", "database error", "code:"] {
        assert!(
            !text.contains(private),
            "`{private}` in {text} (error: {err})"
        );
    }

    // Writes work again: the next committed accept makes it ready.
    store.set_query_only(false).await.unwrap();
    store.enqueue(vec![one()]).await.unwrap();
    assert_eq!(readyz().await.0, 200);
    store.close().await;
    t.gw.shutdown().await.unwrap();
}

/// The store's size: messages by state and the database's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_store_size() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            r#"{"channel": "other", "text": "size please"}"#,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state(&id, "delivered").await;
    let m = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&m, events::STORE_MESSAGES, &["state=\"settled\""]),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, events::STORE_MESSAGES, &["state=\"open\""]),
        Some(0.0),
        "{m}"
    );
    assert!(
        sample(&m, events::STORE_BYTES, &[]).is_some_and(|b| b > 0.0),
        "{m}"
    );
    t.gw.shutdown().await.unwrap();
}

/// Which robot of a channel fails shows in `imrelay_deliveries_total`: each
/// delivery is counted with its destination's secret-free key, never its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_counted_per_destination() {
    let sink = Sink::start().await;
    let extra = format!(
        r#"
[channels.pair]
retry = {{ base = "10ms", cap = "20ms", max_attempts = 1 }}
[[channels.pair.destinations]]
type = "webhook"
url = "{url}?pair-secret-token"
allow_private = true
[[channels.pair.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/down-secret-token"
allow_private = true
"#,
        url = sink.url
    );
    let t = TestGateway::start(&config_text(&sink, &extra)).await;
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            r#"{"channel": "pair", "text": "which robot fails?"}"#,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state(&id, "partial").await;

    // The keys, as the message's history names them.
    let v = t.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY)).await;
    let key_of = |state: &str| {
        v.body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["state"] == state)
            .and_then(|d| d["history"][0]["destination"].as_str())
            .unwrap_or_else(|| panic!("a {state} delivery with history: {}", v.body))
            .to_string()
    };
    let (good, bad) = (key_of("done"), key_of("dead"));
    assert_ne!(good, bad);

    let m = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ch = "channel=\"pair\"";
    let dest = |k: &str| format!("destination=\"{k}\"");
    assert_eq!(
        sample(
            &m,
            events::DELIVERIES,
            &[ch, &dest(&good), "outcome=\"delivered\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            events::DELIVERIES,
            &[ch, &dest(&bad), "outcome=\"dead\""]
        ),
        Some(1.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            events::DELIVERIES,
            &[ch, &dest(&good), "outcome=\"dead\""]
        ),
        None,
        "the working robot has no dead letters: {m}"
    );
    assert!(!m.contains("secret-token"), "no URL in a label: {m}");
    t.gw.shutdown().await.unwrap();
}

/// A message of an ordered channel delivered after a later one (its retry
/// outlasted `order_hold`) says so in its history and in a counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_delivered_out_of_order_is_counted_and_marked() {
    let sink = Sink::start().await;
    let extra = format!(
        r#"
[channels.late]
order_hold = "0s"
retry = {{ base = "20ms", cap = "50ms", max_attempts = 1000 }}
[[channels.late.destinations]]
type = "webhook"
url = "{url}?late"
allow_private = true
"#,
        url = sink.url
    );
    let t = TestGateway::start(&config_text(&sink, &extra)).await;
    let post = |text: &'static str| {
        let t = &t;
        async move {
            let body = format!(r#"{{"channel": "late", "text": "{text}"}}"#);
            let r = t.post("/v1/messages", Some(ADMIN_KEY), &body, &[]).await;
            assert_eq!(r.status, 202, "{}", r.text);
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let tried = |id: String| {
        let t = &t;
        async move {
            for _ in 0..500 {
                let v = t.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY)).await;
                if v.body["deliveries"][0]["history"]
                    .as_array()
                    .is_some_and(|h| !h.is_empty())
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("{id} was never tried");
        }
    };
    // The first fails and waits for its retry; the second goes out meanwhile.
    sink.set_status(503);
    let first = post("down").await;
    tried(first.clone()).await;
    let second = post("up").await;
    tried(second.clone()).await;
    sink.set_status(200);
    let v = t.wait_state(&first, "delivered").await;
    t.wait_state(&second, "delivered").await;

    let history = v["deliveries"][0]["history"].as_array().unwrap();
    let notes: Vec<_> = history
        .iter()
        .filter(|a| a["outcome"] == "out_of_order")
        .collect();
    assert_eq!(notes.len(), 1, "{history:?}");
    assert_eq!(notes[0]["counted"], false);
    assert_eq!(
        history.last().unwrap()["outcome"],
        "delivered",
        "{history:?}"
    );
    let m = t
        .http
        .get(t.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dest = format!(
        "destination=\"{}\"",
        history[0]["destination"].as_str().unwrap()
    );
    assert_eq!(
        sample(&m, events::OUT_OF_ORDER, &["channel=\"late\"", &dest]),
        Some(1.0),
        "{m}"
    );
    t.gw.shutdown().await.unwrap();
}
