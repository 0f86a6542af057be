//! Helpers for tests that run `imrelay serve` as a child process against a mock
//! platform server living in the test process (so the mock, and its request
//! log, survive the child being killed).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const KEY: &str = "child-test-key-0123456789abcdef";

/// A free loopback port (bound once and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch folder removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "imrelay-{name}-{}-{}",
            std::process::id(),
            uuid_like()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A running `imrelay serve`.
pub struct Serve {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Serve {
    /// Start `imrelay serve --config <config>` and wait until it listens on `port`.
    pub async fn start(config: &Path, port: u16, log: PathBuf) -> Serve {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_imrelay"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn imrelay serve");
        let mut s = Serve { child, port, log };
        s.wait_listening().await;
        s
    }

    async fn wait_listening(&mut self) {
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "imrelay serve exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return;
            }
            // Waiting on another process to bind: nothing to await but time.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "imrelay serve did not listen on {addr}; log:\n{}",
            self.log_text()
        );
    }

    pub fn server(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Wait for the child to exit (up to `secs`), returning its exit code.
    pub async fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        for _ in 0..secs * 20 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "imrelay serve did not exit within {secs}s; log:\n{}",
            self.log_text()
        );
    }

    /// Poll the log until it contains `needle`.
    pub async fn wait_log(&self, needle: &str, secs: u64) {
        for _ in 0..secs * 20 {
            if self.log_text().contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the log never said `{needle}`:\n{}", self.log_text());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every accepted (and, separately, non-duplicate) mock log entry whose body
/// contains `marker`.
/// [`deliveries_of`] for every marker `{prefix}NNNNN-end` at once, in one
/// pass over the log (a stream of thousands would otherwise take minutes).
pub fn delivery_counts(
    mock: &imrelay_mock::MockServer,
    prefix: &str,
) -> std::collections::HashMap<String, (usize, usize)> {
    let mut counts: std::collections::HashMap<String, (usize, usize)> = Default::default();
    for e in mock.state().log.all().into_iter().filter(|e| e.accepted) {
        let Some(body) = e.body.as_ref().map(|b| b.to_string()) else {
            continue;
        };
        let mut rest = body.as_str();
        let mut seen = std::collections::HashSet::new();
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            if let Some(end) = tail.find("-end") {
                let marker = &tail[..end + "-end".len()];
                if marker[prefix.len()..marker.len() - 4]
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && seen.insert(marker.to_string())
                {
                    let c = counts.entry(marker.to_string()).or_default();
                    c.0 += 1;
                    if !e.duplicate {
                        c.1 += 1;
                    }
                }
            }
            rest = &tail[prefix.len()..];
        }
    }
    counts
}

pub fn deliveries_of(mock: &imrelay_mock::MockServer, marker: &str) -> (usize, usize) {
    let mut accepted = 0;
    let mut first_time = 0;
    for e in mock.state().log.all() {
        let hit = e
            .body
            .as_ref()
            .is_some_and(|b| b.to_string().contains(marker));
        if hit && e.accepted {
            accepted += 1;
            if !e.duplicate {
                first_time += 1;
            }
        }
    }
    (accepted, first_time)
}

/// A proxy in front of the mock that can hold answers back: in `withhold`
/// mode it forwards each request (so the platform acts on it) and then sits on
/// the answer. Killing the gateway then leaves sends whose outcome it never
/// learned: exactly the case platform dedup keys exist for.
#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    pub withhold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Requests forwarded whose answers are being withheld right now.
    pub held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        use std::sync::atomic::Ordering;
        use std::sync::Arc;
        let withhold = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let http = imrelay_sdk::http::HttpClient::new(Default::default()).unwrap();
        let (w, h) = (withhold.clone(), held.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (http, w, h, upstream) = (http.clone(), w.clone(), h.clone(), upstream.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 22)
                    .await
                    .unwrap_or_default();
                let url = format!(
                    "{upstream}{}",
                    parts
                        .uri
                        .path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                );
                let headers = parts
                    .headers
                    .iter()
                    .filter(|(k, _)| *k != "host" && *k != "content-length")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let req = imrelay_sdk::http::HttpRequest {
                    method: parts.method,
                    url: url.parse().unwrap(),
                    headers,
                    body: Some(body.to_vec()),
                };
                let resp = http.execute(req).await;
                if w.load(Ordering::SeqCst) {
                    h.fetch_add(1, Ordering::SeqCst);
                    // The gateway is killed while this waits; it never sees the answer.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                match resp {
                    Ok(r) => {
                        let mut out = axum::response::Response::new(axum::body::Body::from(r.body));
                        *out.status_mut() = axum::http::StatusCode::from_u16(r.status).unwrap();
                        for (k, v) in r.headers.iter() {
                            if k != "content-length" && k != "transfer-encoding" {
                                out.headers_mut().insert(k.clone(), v.clone());
                            }
                        }
                        out
                    }
                    Err(_) => {
                        let mut out = axum::response::Response::new(axum::body::Body::empty());
                        *out.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
                        out
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy {
            url,
            withhold,
            held,
        }
    }
}

/// A child `imrelay serve` with two channels, `ops` and `other`, on the mock
/// WeCom robot `robot`, and the API key [`KEY`] for `ops` only. Keep the
/// scratch folder while the gateway runs.
pub async fn two_channel_gateway(
    name: &str,
    robot: &str,
) -> (imrelay_mock::MockServer, Scratch, Serve) {
    use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};
    let mock = MockServer::start(
        MockConfig::default().with_robot(RobotConfig::new(MockPlatform::Wecom, robot)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = Scratch::new(name);
    let cfg = dir.path("imrelay.toml");
    let port = free_port();
    let url = mock.base_url();
    std::fs::write(
        &cfg,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
watch = false
[store]
path = "queue.db"
[[api_keys]]
name = "t"
key = "{KEY}"
channels = ["ops"]
[channels.ops]
[[channels.ops.destinations]]
type = "wecom_robot"
key = "{robot}"
base_url = "{url}"
[channels.other]
[[channels.other.destinations]]
type = "wecom_robot"
key = "{robot}"
base_url = "{url}"
"#
        ),
    )
    .unwrap();
    let serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    (mock, dir, serve)
}
