//! Setup the platform integration tests share: start a mock over loopback,
//! send through a destination, read the mock's log, inject faults and call the
//! control API.

// Each test file uses its own subset of these helpers.

use imrelay_mock::log::Query;
use imrelay_mock::{FaultAction, FaultRule, LogEntry, MockConfig, MockServer};
use imrelay_sdk::{deliver, Destination, Message, Report};
use serde_json::Value;

/// A mock with `cfg` on a free loopback port.
pub async fn start(cfg: MockConfig) -> MockServer {
    MockServer::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// The requests the mock logged for `endpoint`, oldest first.
pub fn log(server: &MockServer, endpoint: &str) -> Vec<LogEntry> {
    server.state().log.query(&Query {
        endpoint: Some(endpoint.into()),
        ..Default::default()
    })
}

/// Make the next `count` requests to `target` fail with `action`.
pub fn fault(server: &MockServer, target: &str, action: FaultAction, count: u64) {
    server.state().faults.add(FaultRule {
        target: target.into(),
        action,
        count: Some(count),
        ratio: None,
        include_token_endpoints: false,
    });
}

/// A fault answering the platform error `code` with its default message.
pub fn code(code: i64) -> FaultAction {
    FaultAction::Code { code, msg: None }
}

/// Deliver `msg`, which must make exactly one request, and return its report.
pub async fn send_one(dest: &dyn Destination, msg: &Message) -> Report {
    let mut reports = deliver(dest, msg).await.unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.remove(0)
}

/// A plain HTTP client for calling the mock directly.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `POST /_mock/{path}` with a JSON body.
pub async fn control(server: &MockServer, path: &str, body: &Value) -> reqwest::Response {
    http()
        .post(format!("{}/_mock/{path}", server.base_url()))
        .json(body)
        .send()
        .await
        .unwrap()
}
