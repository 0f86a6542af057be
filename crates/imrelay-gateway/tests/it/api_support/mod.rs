//! Shared helpers for the API tests: a webhook receiver, a gateway on port 0
//! with a config written to a temp dir, and a small HTTP client.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use imrelay_gateway::config::Config;
use imrelay_gateway::Gateway;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

pub const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
pub const OPS_KEY: &str = "ops-key-0123456789abcdef00";

/// A webhook receiver that records bodies and answers `status`.
#[derive(Clone)]
pub struct Sink {
    pub url: String,
    inner: Arc<SinkInner>,
}

struct SinkInner {
    bodies: Mutex<Vec<Value>>,
    status: AtomicU16,
    notify: Notify,
}

impl Sink {
    pub async fn start() -> Sink {
        let inner = Arc::new(SinkInner {
            bodies: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            notify: Notify::new(),
        });
        async fn hook(State(s): State<Arc<SinkInner>>, body: axum::body::Bytes) -> StatusCode {
            let status = s.status.load(Ordering::SeqCst);
            if status == 200 {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                s.bodies.lock().push(v);
            }
            s.notify.notify_waiters();
            StatusCode::from_u16(status).unwrap()
        }
        let app = Router::new()
            .route("/hook", post(hook))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sink {
            url: format!("http://{addr}/hook"),
            inner,
        }
    }

    /// Answer every request with `status` from now on (200 records the body).
    pub fn set_status(&self, status: u16) {
        self.inner.status.store(status, Ordering::SeqCst);
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.inner.bodies.lock().clone()
    }

    /// Wait (up to 20 s, real time: the gateway and receiver talk over
    /// loopback) until `pred` holds for the received bodies.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&[Value]) -> bool) {
        let fut = async {
            loop {
                let notified = self.inner.notify.notified();
                if pred(&self.inner.bodies.lock()) {
                    return;
                }
                // Also re-check now and then: a request may land between the
                // check and the wait.
                let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(20), fut)
            .await
            .is_err()
        {
            panic!(
                "timed out waiting for {what}; received: {:?}",
                self.bodies()
            );
        }
    }
}

/// The standard test config: channel `alerts` (webhook to `sink`), channel
/// `other` (webhook to `sink`), an admin key and an `ops` key for `alerts` only.
pub fn config_text(sink: &Sink, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
max_body_bytes = 65536
max_batch = 50
shutdown_grace = "5s"
watch = false

[dispatch]
poll_interval = "50ms"

[[api_keys]]
name = "admin"
key = "{ADMIN_KEY}"
channels = ["*"]

[[api_keys]]
name = "ops"
key = "{OPS_KEY}"
channels = ["alerts"]

[channels.alerts]
retry = {{ base = "50ms", cap = "200ms", max_attempts = 3 }}
[[channels.alerts.destinations]]
type = "webhook"
url = "{url}"
allow_private = true

[channels.other]
[[channels.other.destinations]]
type = "webhook"
url = "{url}?other"
allow_private = true
{extra}
"#,
        url = sink.url
    )
}

/// The system clock moved forward by what the test says (the gateway's,
/// given in `StartOptions`; move the mock's with it).
#[derive(Default)]
pub struct MovedClock {
    pub offset_ms: std::sync::atomic::AtomicI64,
}

impl imrelay_sdk::clock::Clock for MovedClock {
    fn now_ms(&self) -> i64 {
        imrelay_sdk::clock::SystemClock.now_ms()
            + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A gateway on 127.0.0.1:0 with its config and database in a temp dir.
pub struct TestGateway {
    pub gw: Gateway,
    /// The in-process mock when the config has `[mock]` (the binary starts it
    /// in production; tests start it here the same way).
    pub mock: Option<imrelay_mock::MockServer>,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestGateway {
    pub async fn start(text: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, text).await
    }

    pub async fn start_in(dir: tempfile::TempDir, text: &str) -> TestGateway {
        let path = dir.path().join("imrelay.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = Config::load(&path).unwrap();
        let mock = match &cfg.mock {
            Some(m) => {
                let settings = serde_json::Value::Object(m.settings.clone());
                let config: imrelay_mock::MockConfig = serde_json::from_value(settings).unwrap();
                Some(
                    imrelay_mock::MockServer::start(config, m.listen)
                        .await
                        .unwrap(),
                )
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw = Gateway::start(cfg, listener).await.unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        TestGateway {
            base: format!("http://{}", gw.addr()),
            gw,
            mock,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("imrelay.toml")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST JSON text with a key; returns (status, headers, body as JSON).
    pub async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.http.post(self.url(path)).body(body.to_string());
        req = req.header("content-type", "application/json");
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Resp {
        let mut req = self.http.get(self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str, key: Option<&str>) -> Resp {
        let mut req = self.http.delete(self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    /// Messages stored so far.
    pub async fn stored_messages(&self) -> u64 {
        self.gw.store().stats().await.unwrap().messages
    }

    /// Poll `GET /v1/messages/{id}` until its state is `state`.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        self.wait_state_as(ADMIN_KEY, id, state).await
    }

    /// [`TestGateway::wait_state`] with another API key.
    pub async fn wait_state_as(&self, key: &str, id: &str, state: &str) -> Value {
        let fut = async {
            loop {
                let r = self.get(&format!("/v1/messages/{id}"), Some(key)).await;
                if r.body["state"] == state {
                    return r.body;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        match tokio::time::timeout(Duration::from_secs(20), fut).await {
            Ok(v) => v,
            Err(_) => {
                let r = self.get(&format!("/v1/messages/{id}"), Some(key)).await;
                panic!("message {id} never reached `{state}`: {:#}", r.body)
            }
        }
    }
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Assert a problem+json answer with `status` naming `field`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: Option<&str>) {
        assert_eq!(self.status, status, "body: {}", self.text);
        assert_eq!(
            self.content_type(),
            "application/problem+json",
            "body: {}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.text
        );
        assert_eq!(self.body["field"].as_str(), field, "body: {}", self.text);
    }
}
