//! Property test: thousands of generated requests (methods, paths, headers,
//! bodies from random bytes to almost-valid messages) thrown at the API router.
//! None may get a 5xx, every error must be problem+json, and every 2xx must be
//! JSON.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use axum::Router;
use imrelay_gateway::api::{self, ApiLimits, AppState};
use imrelay_gateway::config::Config;
use imrelay_gateway::runtime::Live;
use imrelay_gateway::store::{self, StoreOptions, Synchronous};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "admin-key-0123456789abcdef";
const OPS: &str = "ops-key-0123456789abcdef00";

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
[[api_keys]]
name = "admin"
key = "{ADMIN}"
channels = ["*"]
[[api_keys]]
name = "ops"
key = "{OPS}"
channels = ["alerts"]
[channels.alerts]
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
[[channels.dt.destinations]]
type = "dingtalk_robot"
access_token = "t0"
secret = "SECx"
[[channels.dt.destinations]]
type = "dingtalk_app"
app_key = "k"
app_secret = "s"
agent_id = 1
[[channels.fs.destinations]]
type = "feishu_webhook"
hook = "h"
secret = "s"
[[channels.fs.destinations]]
type = "feishu_app"
app_id = "cli_x"
app_secret = "s"
recipients = ["ou_1"]
[[channels.wc.destinations]]
type = "wecom_robot"
key = "k"
[[channels.wc.destinations]]
type = "wecom_app"
corp_id = "c"
corp_secret = "s"
agent_id = 1
[[channels.wx.destinations]]
type = "wechat_template"
app_id = "wx1"
app_secret = "s"
template_id = "tpl"
recipients = ["o1"]
[channels.pool]
pool = true
[[channels.pool.destinations]]
type = "webhook"
url = "https://hooks.example.com/p1"
[[channels.pool.destinations]]
type = "webhook"
url = "https://hooks.example.com/p2"
"#
        );
        let cfg = Config::parse(&text, dir.path()).unwrap();
        let live = Arc::new(Live::new(cfg.clone()).unwrap());
        let path = dir.path().join("q.db");
        let app = rt.block_on(async {
            let mut opts = StoreOptions::new(path.to_string_lossy().into_owned());
            // Durability is not under test here; speed is.
            opts.synchronous = Synchronous::Normal;
            let store = store::open(opts).await.unwrap();
            let state = AppState::new(store, live).with_limits(ApiLimits {
                max_body_bytes: 4096,
                max_batch: 20,
            });
            api::router(state)
        });
        Fixture { rt, app, _dir: dir }
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("alerts"),
            Just("pool"),
            Just("text"),
            Just("markdown"),
            Just("raw"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("channel".to_string()),
                    Just("text".to_string()),
                    Just("body".to_string()),
                    Just("type".to_string()),
                    Just("title".to_string()),
                    Just("recipients".to_string()),
                    Just("mentions".to_string()),
                    Just("messages".to_string()),
                    Just("ids".to_string()),
                    Just("filter".to_string()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Requests close to valid, so the generator reaches deep validation paths.
fn near_valid() -> impl Strategy<Value = Value> {
    let channel = prop_oneof![
        Just(json!("alerts")),
        Just(json!("pool")),
        Just(json!("nope")),
        json_value()
    ];
    let body = prop_oneof![
        ".{0,30}".prop_map(|t| json!({"type": "text", "text": t})),
        ".{0,30}".prop_map(|t| json!({"type": "markdown", "text": t})),
        (".{0,10}", ".{0,30}").prop_map(|(t, u)| json!({"type": "link", "text": t, "url": u})),
        ".{0,10}".prop_map(
            |t| json!({"type": "card", "text": t, "buttons": [{"text": t, "url": "https://x"}]})
        ),
        json_value().prop_map(|p| json!({"type": "raw", "payload": p})),
        (".{0,10}", ".{0,20}")
            .prop_map(|(t, u)| json!({"type": "news", "articles": [{"title": t, "url": u}]})),
        prop_oneof![Just("url"), Just("key"), Just("base64")].prop_flat_map(
            |k| ".{0,20}".prop_map(move |v| json!({"type": "image", "image": {k: v}}))
        ),
        (
            ".{0,8}",
            prop::collection::btree_map("[a-z]{1,5}", ".{0,10}", 0..3)
        )
            .prop_map(|(t, d)| json!({"type": "template", "template_id": t, "data": d})),
        json_value().prop_map(|p| json!({"type": "raw", "platform": "dingtalk", "payload": p})),
        json_value(),
    ];
    (
        channel,
        prop::option::of(".{0,40}"),
        prop::option::of(body),
        prop::option::of(prop::collection::vec(".{0,6}", 0..3)),
        prop::option::of(json_value()),
    )
        .prop_map(|(channel, text, body, recipients, extra)| {
            let mut m = serde_json::Map::new();
            m.insert("channel".into(), channel);
            if let Some(t) = text {
                m.insert("text".into(), json!(t));
            }
            if let Some(b) = body {
                m.insert("body".into(), b);
            }
            if let Some(r) = recipients {
                m.insert("recipients".into(), json!(r));
            }
            if let Some(e) = extra {
                m.insert("mentions".into(), e);
            }
            Value::Object(m)
        })
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        near_valid().prop_map(|v| v.to_string().into_bytes()),
        prop::collection::vec(near_valid(), 0..4)
            .prop_map(|v| json!({"messages": v}).to_string().into_bytes()),
        (1usize..3).prop_map(|n| vec![b'{'; n * 3000]),
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/v1/messages".to_string()),
        Just("/v1/messages/batch".to_string()),
        "[a-zA-Z0-9%-]{0,40}".prop_map(|id| format!("/v1/messages/{id}")),
        Just("/v1/dlq".to_string()),
        "[a-z0-9=&%:.-]{0,40}".prop_map(|q| format!("/v1/dlq?{q}")),
        "[a-z0-9%-]{0,12}".prop_map(|id| format!("/v1/dlq/{id}")),
        "[0-9a-z]{0,12}".prop_map(|id| format!("/v1/dlq/{id}/replay")),
        Just("/v1/dlq/replay".to_string()),
        Just("/v1/dlq/purge".to_string()),
        Just("/v1/status".to_string()),
        Just("/healthz".to_string()),
        "/[a-z0-9/._-]{0,30}",
    ]
}

/// Mostly the right method and body for an endpoint, sometimes anything.
fn request() -> impl Strategy<Value = (Method, String, Vec<u8>)> {
    let single = prop_oneof![
        3 => near_valid().prop_map(|v| v.to_string().into_bytes()),
        1 => body_bytes(),
    ];
    let batch = prop_oneof![
        3 => prop::collection::vec(near_valid(), 0..4).prop_map(|v| json!({"messages": v}).to_string().into_bytes()),
        1 => body_bytes(),
    ];
    let selector = prop_oneof![
        prop::collection::vec(any::<i64>(), 0..3)
            .prop_map(|ids| json!({"ids": ids}).to_string().into_bytes()),
        json_value().prop_map(|f| json!({"filter": f}).to_string().into_bytes()),
        body_bytes(),
    ];
    prop_oneof![
        6 => single.prop_map(|b| (Method::POST, "/v1/messages".to_string(), b)),
        2 => batch.prop_map(|b| (Method::POST, "/v1/messages/batch".to_string(), b)),
        2 => path().prop_map(|p| (Method::GET, p, Vec::new())),
        1 => (prop_oneof![Just("/v1/dlq/replay"), Just("/v1/dlq/purge")], selector)
            .prop_map(|(p, b)| (Method::POST, p.to_string(), b)),
        1 => "[0-9a-z]{0,12}".prop_map(|id| (Method::DELETE, format!("/v1/dlq/{id}"), Vec::new())),
        1 => (method(), path(), body_bytes()),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::POST),
        3 => Just(Method::GET),
        1 => Just(Method::DELETE),
        1 => Just(Method::PUT),
        1 => Just(Method::PATCH),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
    ]
}

fn auth() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        3 => Just(Some(format!("Bearer {ADMIN}").into_bytes())),
        2 => Just(Some(format!("Bearer {OPS}").into_bytes())),
        1 => Just(None),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
        1 => "(Bearer|bearer|Basic|) ?[ -~]{0,30}".prop_map(|s| Some(s.into_bytes())),
    ]
}

fn extra_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("idempotency-key".to_string()),
                Just("content-type".to_string()),
                Just("x-request-id".to_string()),
                Just("content-length".to_string()),
                Just("authorization".to_string()),
                "x-[a-z]{1,8}",
            ],
            prop_oneof![
                "[ -~]{0,40}".prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..30),
            ],
        ),
        0..4,
    )
}

/// Status codes seen, to show the generator reaches every layer.
static SEEN: OnceLock<parking_lot::Mutex<std::collections::BTreeMap<u16, u32>>> = OnceLock::new();

fn check(
    method: Method,
    path: String,
    auth: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    json_type: bool,
) -> Result<(), TestCaseError> {
    let f = fixture();
    let mut req = Request::builder().method(method.clone()).uri(path.as_str());
    if let Some(a) = auth {
        if let Ok(v) = HeaderValue::from_bytes(&a) {
            req = req.header("authorization", v);
        }
    }
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            req = req.header(k, v);
        }
    }
    // Clients send JSON bodies as JSON; without this almost every POST would
    // stop at 415 and the deeper checks would go untested.
    if json_type {
        req = req.header("content-type", "application/json");
    }
    let is_head = method == Method::HEAD;
    let Ok(req) = req.body(Body::from(body)) else {
        return Ok(());
    };
    let (status, ctype, bytes) = f.rt.block_on(async {
        let resp = f.app.clone().oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, ctype, bytes)
    });
    *SEEN
        .get_or_init(Default::default)
        .lock()
        .entry(status)
        .or_default() += 1;
    prop_assert!(
        status < 500,
        "{status} for {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    if is_head {
        // HEAD answers carry no body.
    } else if status >= 400 {
        prop_assert_eq!(
            ctype.as_str(),
            "application/problem+json",
            "{} for {}",
            status,
            path
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(v["status"].as_u64(), Some(status as u64));
        prop_assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()));
    } else if !bytes.is_empty() {
        prop_assert!(
            serde_json::from_slice::<Value>(&bytes).is_ok(),
            "{status}: non-JSON answer"
        );
    }
    Ok(())
}

#[test]
fn no_request_gets_a_5xx() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4000),
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        request(),
        auth(),
        extra_headers(),
        prop::bool::weighted(0.9),
    );
    if let Err(e) = runner.run(&strategy, |((m, p, b), a, h, j)| check(m, p, a, h, b, j)) {
        panic!("{e}");
    }
    let seen = SEEN.get().unwrap().lock().clone();
    eprintln!("statuses seen: {seen:?}");
    // The generator must reach acceptance and each class of refusal, or it
    // tests nothing.
    for s in [200, 202, 400, 401, 403, 404, 405, 413, 415, 422] {
        assert!(
            seen.get(&s).copied().unwrap_or(0) > 0,
            "never saw {s}: {seen:?}"
        );
    }
}
