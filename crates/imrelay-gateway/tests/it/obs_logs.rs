//! One message's life in the logs: accepted through the API with a W3C
//! `traceparent`, a failed attempt (503), a retry, delivery. Every log line
//! from acceptance to delivery carries the message id and the trace id, the
//! trace id is returned in `X-Trace-Id`, and it is stored with the message.
//! Logs are captured in the production JSON format.

use std::io::Write;
use std::sync::Arc;

use crate::api_support::{TestGateway, ADMIN_KEY};
use crate::dispatch_common::{Answer, Receiver};
use imrelay_gateway::telemetry::logging::{init_with_writer, LogFormat};
use parking_lot::Mutex;
use serde_json::Value;

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_log_line_of_a_message_life_carries_its_ids() {
    let buf = Buffer::default();
    init_with_writer("info", LogFormat::Json, buf.clone());

    let rx = Receiver::start().await;
    rx.script("hook", [Answer::status(503)]);
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
retry = {{ base = "20ms", cap = "50ms", max_attempts = 5 }}
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
            r#"{"channel": "deploys", "text": "v1.2 is live"}"#,
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.headers["x-trace-id"], TRACE);
    let id = r.body["id"].as_str().unwrap().to_string();
    let view = t.wait_state(&id, "delivered").await;
    assert_eq!(view["trace_id"], TRACE, "the trace id is stored: {view:#}");
    let history = &view["deliveries"][0]["history"];
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{view:#}");
    t.gw.shutdown().await.unwrap();

    let logs = String::from_utf8(buf.0.lock().clone()).unwrap();
    let lines: Vec<Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let msg = |v: &Value| v["fields"]["message"].as_str().unwrap_or("").to_string();
    let start = lines
        .iter()
        .position(|v| msg(v) == "message accepted" && v["fields"]["message_id"] == id.as_str())
        .unwrap_or_else(|| panic!("no acceptance line in:\n{logs}"));
    let end = lines
        .iter()
        .rposition(|v| msg(v) == "delivered")
        .unwrap_or_else(|| panic!("no delivery line in:\n{logs}"));
    // Other tests in this binary run gateways at the same time, into the
    // same global subscriber: their lines about their own messages carry
    // other ids, and their start and stop lines carry none. Leave those out.
    let others_start_or_stop = |v: &Value| {
        matches!(
            msg(v).as_str(),
            "imrelay gateway listening"
                | "shutting down: no new messages accepted"
                | "imrelay gateway stopped"
                // The console tests' audit lines (no message of theirs here).
                | "console action"
                | "console login refused"
        )
    };
    let life: Vec<Value> = lines[start..=end]
        .iter()
        .filter(|v| {
            let text = v.to_string();
            let other_id = text.contains("\"message_id\":\"")
                && !text.contains(&format!("\"message_id\":\"{id}\""));
            !other_id && !others_start_or_stop(v)
        })
        .cloned()
        .collect();
    // The life has every step, in order.
    let steps: Vec<String> = life.iter().map(msg).collect();
    let pos = |s: &str| {
        steps
            .iter()
            .position(|m| m == s)
            .unwrap_or_else(|| panic!("no `{s}` line among {steps:?}"))
    };
    assert!(pos("message accepted") < pos("attempt failed"));
    assert!(pos("attempt failed") < pos("retry scheduled"));
    assert!(pos("retry scheduled") < pos("attempt delivered"));
    assert!(pos("attempt delivered") <= pos("delivered"));
    // Every line of it names the message and the trace.
    for line in &life {
        let text = line.to_string();
        assert!(
            text.contains(&format!("\"message_id\":\"{id}\"")),
            "a line without the message id: {text}"
        );
        assert!(
            text.contains(&format!("\"trace_id\":\"{TRACE}\"")),
            "a line without the trace id: {text}"
        );
    }
    assert!(life.len() >= 5, "{steps:?}");
    let _ = std::io::stdout().flush();
}
