//! Callback endpoints end to end: `imrelay_mock::callback::fire` plays the
//! platform against a gateway on port 0, which forwards to a receiver in this
//! test that checks the Standard Webhooks signature. Real time over loopback;
//! retry and breaker timings are scaled down (see
//! `receiver_down_for_a_while_still_gets_every_event`).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use imrelay_gateway::config::Config;
use imrelay_gateway::Gateway;
use imrelay_mock::callback::{fire, CallbackKind, CallbackSpec};
use imrelay_sdk::{sign, Secret};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FS_KEY: &str = "fs encrypt key";
const FS_TOKEN: &str = "fs-verification-token";
const WX_TOKEN: &str = "QDG6eK";
const WX_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "ww5823bf96d3bd56c7";
const APPID: &str = "wx0123456789abcdef";
const DT_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
const DT_APPKEY: &str = "dingappkey123";

/// One forwarded webhook as received.
#[derive(Debug, Clone)]
struct Hook {
    id: String,
    ts: i64,
    sig: String,
    body: Bytes,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    fn verifies(&self) -> bool {
        sign::verify_standard_webhook(WHSEC, &self.id, self.ts, &self.body, &self.sig)
    }
}

#[derive(Default)]
struct RecvInner {
    hooks: Mutex<Vec<Hook>>,
    notify: Notify,
}

/// A receiver that can be stopped (its port closed) and started again on
/// the same port.
struct Receiver {
    port: u16,
    inner: Arc<RecvInner>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

async fn hook(State(s): State<Arc<RecvInner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    s.hooks.lock().push(Hook {
        id: h("webhook-id"),
        ts: h("webhook-timestamp").parse().unwrap_or_default(),
        sig: h("webhook-signature"),
        body,
    });
    s.notify.notify_waiters();
    StatusCode::NO_CONTENT
}

impl Receiver {
    async fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut r = Receiver {
            port: l.local_addr().unwrap().port(),
            inner: Arc::default(),
            stop: None,
            task: None,
        };
        r.serve(l);
        r
    }

    fn serve(&mut self, l: TcpListener) {
        let app = Router::new()
            .route("/events", post(hook))
            .with_state(self.inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        self.stop = Some(tx);
        self.task = Some(tokio::spawn(async move {
            axum::serve(l, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        }));
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    async fn down(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    async fn up(&mut self) {
        let l = TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        self.serve(l);
    }

    fn hooks(&self) -> Vec<Hook> {
        self.inner.hooks.lock().clone()
    }

    async fn wait_for(&self, what: &str, n: usize) -> Vec<Hook> {
        let fut = async {
            loop {
                let notified = self.inner.notify.notified();
                if self.inner.hooks.lock().len() >= n {
                    return;
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(15), fut)
            .await
            .is_err()
        {
            panic!("timed out waiting for {what}; got {:?}", self.hooks());
        }
        self.hooks()
    }
}

fn config(recv: &Receiver) -> String {
    let fwd = format!(
        "retry = {{ base = \"20ms\", cap = \"200ms\", max_attempts = 1000 }}\nbreaker = {{ failure_threshold = 3, open_for = \"100ms\", max_open_for = \"300ms\" }}\nforward = [{{ url = \"{}\", secret = \"{WHSEC}\", allow_private = true }}]",
        recv.url()
    );
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "admin"
key = "admin-key-0123456789abcdef"
channels = ["*"]

[[callbacks]]
name = "fs"
platform = "feishu"
encrypt_key = "{FS_KEY}"
verification_token = "{FS_TOKEN}"
{fwd}

[[callbacks]]
name = "dt"
platform = "dingtalk"
token = "{WX_TOKEN}"
encoding_aes_key = "{DT_KEY}"
receive_id = "{DT_APPKEY}"
{fwd}

[[callbacks]]
name = "wc"
platform = "wecom"
token = "{WX_TOKEN}"
encoding_aes_key = "{WX_KEY}"
receive_id = "{CORP}"
{fwd}

[[callbacks]]
name = "wx"
platform = "wechat"
token = "{WX_TOKEN}"
encoding_aes_key = "{WX_KEY}"
receive_id = "{APPID}"
{fwd}

[[callbacks]]
name = "wxp"
platform = "wechat"
token = "{WX_TOKEN}"
{fwd}
"#
    )
}

struct Env {
    gw: Gateway,
    base: String,
    dir: tempfile::TempDir,
}

async fn start(recv: &Receiver) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, config(recv)).unwrap();
    let cfg = Config::load(&path).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, l).await.unwrap();
    Env {
        base: format!("http://{}", gw.addr()),
        gw,
        dir,
    }
}

fn spec(env: &Env, kind: CallbackKind, app: &str) -> CallbackSpec {
    let mut v = json!({"kind": kind, "url": format!("{}/v1/callbacks/{app}", env.base)});
    match kind {
        CallbackKind::FeishuEvent | CallbackKind::FeishuUrlVerification => {
            v["encrypt_key"] = json!(FS_KEY);
            v["token"] = json!(FS_TOKEN);
        }
        CallbackKind::DingtalkEvent => {
            v["token"] = json!(WX_TOKEN);
            v["encoding_aes_key"] = json!(DT_KEY);
            v["receive_id"] = json!(DT_APPKEY);
        }
        CallbackKind::WechatMessage => {
            v["token"] = json!(WX_TOKEN);
            v["encoding_aes_key"] = json!(WX_KEY);
            v["receive_id"] = json!(APPID);
        }
        _ => {
            v["token"] = json!(WX_TOKEN);
            v["encoding_aes_key"] = json!(WX_KEY);
            v["receive_id"] = json!(CORP);
        }
    }
    serde_json::from_value(v).unwrap()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_platform_is_verified_acknowledged_and_forwarded_signed() {
    let recv = Receiver::start().await;
    let env = start(&recv).await;

    // Handshakes are answered and not forwarded.
    let r = fire(spec(&env, CallbackKind::FeishuUrlVerification, "fs"))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let r = fire(spec(&env, CallbackKind::WecomVerify, "wc"))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    let r = fire(spec(&env, CallbackKind::DingtalkEvent, "dt"))
        .await
        .unwrap(); // check_url
    assert!(r.ok && r.reply.as_deref() == Some("success"), "{r:?}");
    // WeChat's plain GET check (the mock fires only its safe-mode POST).
    let ts = now_s().to_string();
    let get = format!(
        "{}/v1/callbacks/wx?signature={}&timestamp={ts}&nonce=42&echostr=hello123",
        env.base,
        sign::sha1_sorted(&[WX_TOKEN, &ts, "42"]),
    );
    let resp = reqwest::get(&get).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "hello123");

    // Events: one per platform.
    let fs = fire(spec(&env, CallbackKind::FeishuEvent, "fs"))
        .await
        .unwrap();
    assert!(fs.ok, "{fs:?}");
    let mut dt = spec(&env, CallbackKind::DingtalkEvent, "dt");
    dt.payload =
        Some(json!({"EventType": "user_add_org", "UserId": ["u1"], "TimeStamp": "1"}).to_string());
    let dt = fire(dt).await.unwrap();
    assert!(dt.ok && dt.reply.as_deref() == Some("success"), "{dt:?}");
    let wc = fire(spec(&env, CallbackKind::WecomMessage, "wc"))
        .await
        .unwrap();
    assert!(wc.ok, "{wc:?}");
    let mut wx = spec(&env, CallbackKind::WechatMessage, "wx");
    wx.payload = Some(format!(
        "<xml><ToUserName><![CDATA[gh_mock]]></ToUserName><FromUserName><![CDATA[o_fan]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>",
        now_s()
    ));
    let wx = fire(wx).await.unwrap();
    assert!(wx.ok && wx.response_body == "success", "{wx:?}");

    let hooks = recv.wait_for("4 forwarded events", 4).await;
    // The store is the source of truth: handshakes were never stored.
    assert_eq!(env.gw.store().stats().await.unwrap().messages, 4);
    assert_eq!(
        hooks.len(),
        4,
        "handshakes must not be forwarded: {hooks:?}"
    );
    let mut by_app = std::collections::BTreeMap::new();
    for h in &hooks {
        assert!(
            h.verifies(),
            "Standard Webhooks signature must verify: {h:?}"
        );
        assert!(h.id.starts_with("msg_"), "{}", h.id);
        let v = h.json();
        by_app.insert(v["app"].as_str().unwrap().to_string(), v);
    }
    let f = &by_app["fs"];
    assert_eq!(f["type"], "message_received");
    assert_eq!(f["data"]["text"], "hello from the imrelay mock");
    assert_eq!(
        f["raw"],
        serde_json::from_str::<Value>(&fs.plaintext).unwrap()
    );
    let d = &by_app["dt"];
    assert_eq!(
        (d["type"].as_str(), d["event_type"].as_str()),
        (Some("raw"), Some("user_add_org"))
    );
    assert_eq!(d["raw"]["UserId"], json!(["u1"]));
    let w = &by_app["wc"];
    assert_eq!(w["type"], "message_received");
    assert_eq!(w["raw_xml"], wc.plaintext.as_str());
    assert_eq!(w["data"]["text"], "hello from the imrelay mock");
    let x = &by_app["wx"];
    assert_eq!(
        (x["type"].as_str(), x["data"]["user"].as_str()),
        (Some("user_followed"), Some("o_fan"))
    );
    env.gw.shutdown().await.unwrap();
}

/// Send a recorded request again, byte for byte.
async fn resend(req: &imrelay_mock::callback::SentRequest) -> (u16, String) {
    let c = reqwest::Client::new();
    let mut b = c.request(req.method.parse().unwrap(), &req.url);
    for (k, v) in &req.headers {
        b = b.header(k, v);
    }
    let r = b.body(req.body.clone()).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_with_the_right_status_and_never_forwarded() {
    let recv = Receiver::start().await;
    let env = start(&recv).await;

    // Wrong signature: the sender holds another token / encrypt key.
    let mut s = spec(&env, CallbackKind::WecomMessage, "wc");
    s.token = Some(Secret::new("not-the-token"));
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(
        r.response_body.contains("\"check\":\"signature\""),
        "{}",
        r.response_body
    );
    let mut s = spec(&env, CallbackKind::FeishuEvent, "fs");
    s.encrypt_key = Some(Secret::new("another key"));
    assert_eq!(fire(s).await.unwrap().status, 401);
    let mut s = spec(&env, CallbackKind::DingtalkEvent, "dt");
    s.token = Some(Secret::new("nope"));
    assert_eq!(fire(s).await.unwrap().status, 401);

    // Wrong Feishu verification token (signature fine): 403.
    let mut s = spec(&env, CallbackKind::FeishuEvent, "fs");
    s.token = Some(Secret::new("other-app-token"));
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 403, "{r:?}");

    // Stale timestamp (an hour old), correctly signed.
    for (kind, app, ts) in [
        (CallbackKind::WecomMessage, "wc", now_s() - 3600),
        (CallbackKind::WechatMessage, "wx", now_s() - 3600),
        (CallbackKind::FeishuEvent, "fs", now_s() - 3600),
        (CallbackKind::DingtalkEvent, "dt", (now_s() - 3600) * 1000),
    ] {
        let mut s = spec(&env, kind, app);
        s.timestamp = Some(ts);
        if kind == CallbackKind::DingtalkEvent {
            s.payload = Some(r#"{"EventType":"x"}"#.into());
        }
        let r = fire(s).await.unwrap();
        assert_eq!(r.status, 401, "{app}: {r:?}");
        assert!(
            r.response_body.contains("\"check\":\"timestamp\""),
            "{}",
            r.response_body
        );
    }

    // Tampered body: a good request with its ciphertext changed.
    let good = fire(spec(&env, CallbackKind::FeishuEvent, "fs"))
        .await
        .unwrap();
    assert!(good.ok);
    let mut t = good.request.clone();
    let v: Value = serde_json::from_str(&t.body).unwrap();
    let enc = v["encrypt"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        if enc.starts_with('A') { 'B' } else { 'A' },
        &enc[1..]
    );
    t.body = json!({ "encrypt": flipped }).to_string();
    let (status, body) = resend(&t).await;
    assert_eq!(status, 401, "{body}");
    let wc = fire(spec(&env, CallbackKind::WecomMessage, "wc"))
        .await
        .unwrap();
    assert!(wc.ok);
    let mut t = wc.request.clone();
    t.body = t
        .body
        .replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA");
    assert_eq!(resend(&t).await.0, 401);
    // Malformed: not the platform's envelope at all.
    let mut t = wc.request.clone();
    t.body = "<xml><NoEncrypt/></xml>".into();
    assert_eq!(resend(&t).await.0, 400);

    // Replayed request: the same request again is refused (its timestamp
    // and nonce were used) and not forwarded again; a platform retry (new
    // nonce and signature, same event) is acknowledged (200, so the platform
    // stops) but not forwarded again.
    let (status, body) = resend(&good.request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    let (status, body) = resend(&wc.request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    let mut retry = spec(&env, CallbackKind::FeishuEvent, "fs");
    retry.payload = Some(good.plaintext.clone());
    assert!(fire(retry).await.unwrap().ok);

    // Unknown app.
    let mut s = spec(&env, CallbackKind::WecomMessage, "nope");
    s.url = format!("{}/v1/callbacks/nope", env.base);
    assert_eq!(fire(s).await.unwrap().status, 404);

    // Producers cannot inject into a forward channel, even with a `*` key.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/messages", env.base))
        .bearer_auth("admin-key-0123456789abcdef")
        .json(&json!({"channel": "callback:wc", "body": {"type": "raw", "payload": {"type": "message_received"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let detail = r.text().await.unwrap();
    assert!(detail.contains("no channel `callback:wc`"), "{detail}");

    // Exactly the two good events were stored and forwarded.
    let stats = env.gw.store().stats().await.unwrap();
    assert_eq!(stats.messages, 2, "{stats:?}");
    let hooks = recv.wait_for("the two good events", 2).await;
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    let apps: Vec<String> = hooks
        .iter()
        .map(|h| h.json()["app"].as_str().unwrap().to_string())
        .collect();
    assert!(
        apps.contains(&"fs".to_string()) && apps.contains(&"wc".to_string()),
        "{apps:?}"
    );
    env.gw.shutdown().await.unwrap();
}

/// A WeChat plaintext-mode POST: the signature covers token, timestamp and
/// nonce only; the body is the event XML as is.
async fn wechat_plain(env: &Env, ts: &str, nonce: &str, msg_id: u64, text: &str) -> (u16, String) {
    let url = format!(
        "{}/v1/callbacks/wxp?signature={}&timestamp={ts}&nonce={nonce}&openid=o_fan",
        env.base,
        sign::sha1_sorted(&[WX_TOKEN, ts, nonce]),
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_mock]]></ToUserName><FromUserName><![CDATA[o_fan]]></FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{text}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    );
    let r = reqwest::Client::new()
        .post(url)
        .header("content-type", "text/xml")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_timestamp_and_nonce_is_refused_on_every_platform() {
    let recv = Receiver::start().await;
    let env = start(&recv).await;

    // WeChat plaintext mode: a captured URL with a forged body and a new MsgId.
    let ts = now_s().to_string();
    let (status, body) = wechat_plain(&env, &ts, "1234567", 1001, "genuine").await;
    assert_eq!((status, body.as_str()), (200, "success"));
    let (status, body) = wechat_plain(&env, &ts, "1234567", 1002, "forged").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    // ... and the genuine request itself, again.
    let (status, body) = wechat_plain(&env, &ts, "1234567", 1001, "genuine").await;
    assert_eq!(status, 401, "{body}");
    // The next genuine callback (a new nonce) is accepted.
    let (status, _) = wechat_plain(&env, &ts, "7654321", 1003, "next").await;
    assert_eq!(status, 200);

    // Encrypted platforms: the same signed request, byte for byte.
    let mut dt = spec(&env, CallbackKind::DingtalkEvent, "dt");
    dt.payload = Some(json!({"EventType": "user_add_org", "UserId": ["u2"]}).to_string());
    let dt = fire(dt).await.unwrap();
    assert!(dt.ok, "{dt:?}");
    let (status, body) = resend(&dt.request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"check\":\"replay\""), "{body}");
    let wx = fire(spec(&env, CallbackKind::WechatMessage, "wx"))
        .await
        .unwrap();
    assert!(wx.ok, "{wx:?}");
    assert_eq!(resend(&wx.request).await.0, 401);

    // A reload keeps what was seen.
    env.gw
        .live()
        .reload_file(&env.dir.path().join("imrelay.toml"))
        .unwrap();
    let (status, _) = wechat_plain(&env, &ts, "1234567", 1004, "after reload").await;
    assert_eq!(status, 401);
    assert_eq!(resend(&dt.request).await.0, 401);

    // Only the genuine events were stored and forwarded.
    let hooks = recv.wait_for("the four genuine events", 4).await;
    assert_eq!(env.gw.store().stats().await.unwrap().messages, 4);
    let texts: Vec<String> = hooks
        .iter()
        .filter_map(|h| h.json()["data"]["text"].as_str().map(str::to_owned))
        .collect();
    assert!(
        texts.contains(&"genuine".to_string()) && texts.contains(&"next".to_string()),
        "{texts:?}"
    );
    assert!(
        !texts.iter().any(|t| t == "forged" || t == "after reload"),
        "{texts:?}"
    );
    env.gw.shutdown().await.unwrap();
}

/// "Down for a minute", scaled by about 1/50: the receiver's port is closed
/// while 12 events arrive, and stays closed until the forward target's
/// breaker has opened 5 times (about 1-2 s here). The forward channel retries
/// with a 20 ms base / 200 ms cap (production: 1 s / 5 min) and enough
/// attempts to outlast the outage; the breaker reopens after 100-300 ms
/// (production: 10 s - 5 min), so the outage spans as many retry and breaker
/// cycles as a minute-long one would at production settings. What is tested
/// is the mechanism: events acknowledged while the receiver is down stay
/// queued (none dead) and all arrive, signed, once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_a_while_still_gets_every_event() {
    let mut recv = Receiver::start().await;
    let env = start(&recv).await;
    recv.down().await;
    let started = std::time::Instant::now();
    let mut sent = Vec::new();
    for i in 0..12 {
        let (kind, app) = [
            (CallbackKind::FeishuEvent, "fs"),
            (CallbackKind::WecomMessage, "wc"),
            (CallbackKind::WechatMessage, "wx"),
        ][i % 3];
        let r = fire(spec(&env, kind, app)).await.unwrap();
        assert!(r.ok, "acknowledged while the receiver is down: {r:?}");
        sent.push(r.plaintext);
    }
    // Stay down until the dispatcher has failed over and over: the breaker
    // of the forward target opened 5 times (each after 3 failed sends).
    let dispatcher = env.gw.dispatcher();
    let opened = || {
        dispatcher
            .snapshot()
            .destinations
            .iter()
            .map(|d| d.breaker_opened_total)
            .max()
            .unwrap_or(0)
    };
    let wait = async {
        while opened() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .expect("the forward target's breaker should open repeatedly while the receiver is down");
    let outage = started.elapsed();
    assert!(recv.hooks().is_empty());
    let stats = env.gw.store().stats().await.unwrap();
    assert_eq!(stats.pending + stats.in_flight, 12, "{stats:?}");
    assert_eq!(stats.dead, 0);
    recv.up().await;
    let hooks = recv.wait_for("every event after the outage", 12).await;
    eprintln!(
        "receiver down for {outage:?}; all 12 events arrived {:?} after it came back",
        started.elapsed() - outage
    );
    let mut got: Vec<String> = hooks
        .iter()
        .map(|h| {
            assert!(h.verifies());
            let v = h.json();
            match v["raw_xml"].as_str() {
                Some(x) => x.to_string(),
                None => v["raw"].to_string(),
            }
        })
        .collect();
    let mut want: Vec<String> = sent
        .iter()
        .map(|p| match serde_json::from_str::<Value>(p) {
            Ok(v) => v.to_string(),
            Err(_) => p.clone(),
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    env.gw.shutdown().await.unwrap();
}
