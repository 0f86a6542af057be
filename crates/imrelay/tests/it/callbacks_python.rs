//! Interop with the platforms' official Python SDKs: `imrelay serve` runs as a
//! child with four `[[callbacks]]` apps forwarding to a receiver in this test;
//! tests/python/callbacks_e2e.py builds callbacks with wechatpy and lark-oapi,
//! posts them, checks imrelay's replies with those SDKs, and verifies what was
//! forwarded with the `standardwebhooks` package.
//!
//! Needs the virtualenv `tests/run` creates (`$IMRELAY_PY_VENV`, default
//! `~/.cache/imrelay/pyvenv`). Without it this test FAILS, saying how to
//! create it: it is never skipped.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::serve_support::{free_port, Scratch, Serve};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Mutex;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("IMRELAY_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/imrelay/pyvenv")
        });
    let py = venv.join("bin/python");
    if !py.exists() {
        panic!(
            "\n\nthe Python virtualenv for the callback interop test is missing: {} does not exist.\n\
             Create it (as tests/run does):\n  python3 -m venv {v}\n  {v}/bin/pip install -r tests/python/requirements.txt\n\
             or point IMRELAY_PY_VENV at an existing one.\n\n",
            py.display(),
            v = venv.display()
        );
    }
    py
}

type Received = Arc<Mutex<Vec<Value>>>;

async fn record(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut h = serde_json::Map::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            h.insert(name.into(), json!(v));
        }
    }
    r.lock().unwrap().push(json!({
        "headers": h,
        // The forwarded body is UTF-8 JSON; the script re-encodes it byte for byte.
        "body": String::from_utf8(body.to_vec()).expect("forwarded body is UTF-8"),
    }));
    StatusCode::OK
}

async fn dump(State(r): State<Received>) -> Json<Vec<Value>> {
    Json(r.lock().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_interoperate_with_callback_endpoints() {
    let python = venv_python();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/callbacks_e2e.py");

    let received: Received = Arc::default();
    let app = Router::new()
        .route("/events", post(record))
        .route("/received", get(dump))
        .with_state(received.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let recv = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let scratch = Scratch::new("callbacks-python");
    let port = free_port();
    let fwd = format!(
        "retry = {{ base = \"50ms\", cap = \"500ms\" }}\nforward = [{{ url = \"{recv}/events\", secret = \"{WHSEC}\", allow_private = true }}]"
    );
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false
[store]
path = "imrelay.db"
[dispatch]
poll_interval = "50ms"
[[api_keys]]
name = "admin"
key = "admin-key-0123456789abcdef"
channels = ["*"]

[[callbacks]]
name = "feishu-py"
platform = "feishu"
encrypt_key = "lark-encrypt-key-py"
verification_token = "lark-vtoken-py"
{fwd}

[[callbacks]]
name = "dingtalk-py"
platform = "dingtalk"
token = "ding-token-py"
encoding_aes_key = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7"
receive_id = "dingappkeypy"
{fwd}

[[callbacks]]
name = "wecom-py"
platform = "wecom"
token = "QDG6eK"
encoding_aes_key = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
receive_id = "ww5823bf96d3bd56c7"
{fwd}

[[callbacks]]
name = "wechat-py"
platform = "wechat"
token = "wechat-token-py"
encoding_aes_key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
receive_id = "wx0123456789abcdef"
{fwd}
"#
    );
    let cfg_path = scratch.path("imrelay.toml");
    std::fs::write(&cfg_path, config).unwrap();
    let serve = Serve::start(&cfg_path, port, scratch.path("serve.log")).await;

    let settings = json!({
        "gateway": serve.server(),
        "received": format!("{recv}/received"),
        "whsec": WHSEC,
        "feishu": {"name": "feishu-py", "encrypt_key": "lark-encrypt-key-py", "verification_token": "lark-vtoken-py"},
        "dingtalk": {"name": "dingtalk-py", "token": "ding-token-py",
                     "encoding_aes_key": "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7", "app_key": "dingappkeypy"},
        "wecom": {"name": "wecom-py", "token": "QDG6eK",
                  "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "corp_id": "ww5823bf96d3bd56c7"},
        "wechat": {"name": "wechat-py", "token": "wechat-token-py",
                   "encoding_aes_key": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "appid": "wx0123456789abcdef"},
    });
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(settings.to_string())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the Python interop script did not finish within 60 s")
        .expect("cannot run the venv's python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "tests/python/callbacks_e2e.py failed ({}):\n{stdout}\n{stderr}\n--- imrelay serve log ---\n{}",
        out.status,
        serve.log_text()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    // The gateway logged each refusal with the check that failed.
    let log = serve.log_text();
    assert!(
        log.contains("callback rejected: signature check failed"),
        "{log}"
    );
    assert!(
        log.contains("callback rejected: duplicate check failed"),
        "{log}"
    );
}
