//! OTLP export (feature `otlp`): one message's spans (the API request, the
//! delivery attempt, the platform call) reach an OTLP/HTTP collector in the
//! producer's trace. Run with `cargo test -p imrelay-gateway --features otlp
//! --test it obs_otlp`.
#![cfg(feature = "otlp")]

use std::sync::Arc;

use crate::api_support::{TestGateway, ADMIN_KEY};
use crate::dispatch_common::Receiver;
use axum::routing::post;
use imrelay_gateway::telemetry::logging::{init_with_writer, LogFormat};
use parking_lot::Mutex;

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_message_spans_reach_the_collector_in_the_producers_trace() {
    // A fake collector: records every OTLP/HTTP export body.
    let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let b = bodies.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let b = b.clone();
            async move {
                b.lock().push(body.to_vec());
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    std::env::set_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &collector);
    init_with_writer("info", LogFormat::Json, std::io::sink);

    let rx = Receiver::start().await;
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
[channels.deploys]
[[channels.deploys.destinations]]
type = "webhook"
url = "{}"
allow_private = true
"#,
        rx.url("hook")
    );
    let t = TestGateway::start(&text).await;
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            r#"{"channel": "deploys", "text": "traced"}"#,
            &[(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state(&id, "delivered").await;
    t.gw.shutdown().await.unwrap();
    // The batch exporter sends from its own thread over a blocking client.
    tokio::task::spawn_blocking(imrelay_gateway::telemetry::otlp::flush)
        .await
        .unwrap();

    let all: Vec<u8> = bodies.lock().concat();
    assert!(!all.is_empty(), "nothing was exported to {collector}");
    let has = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    let trace_bytes = hex::decode(TRACE).unwrap();
    for name in ["request", "delivery", "platform_call", "imrelay"] {
        assert!(has(name.as_bytes()), "no `{name}` in the export");
    }
    // Each exported span carries its trace id: the request, the delivery and
    // the platform call are all in the producer's trace.
    let in_trace = all
        .windows(trace_bytes.len())
        .filter(|w| *w == trace_bytes.as_slice())
        .count();
    assert!(
        in_trace >= 3,
        "only {in_trace} spans in the producer's trace"
    );
    assert!(has(id.as_bytes()), "the message id is not a span attribute");
}
