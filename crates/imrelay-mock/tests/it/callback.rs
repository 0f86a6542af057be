//! `imrelay_mock::callback::fire` against a tiny axum receiver that uses only
//! the SDK's crypto to verify and decrypt, as a real callback endpoint would.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use imrelay_mock::callback::{fire, CallbackError, CallbackKind, CallbackSpec};
use imrelay_sdk::crypto::feishu::{self, FeishuCipher};
use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
use imrelay_sdk::crypto::{check_timestamp, dingtalk, xml, TimestampUnit};
use imrelay_sdk::sign;
use parking_lot::Mutex;
use serde_json::json;

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const CORP: &str = "wx5823bf96d3bd56c7";
const DT_KEY: &str = "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7";
const DT_APPKEY: &str = "dingappkey123";
const FS_KEY: &str = "test key";
const FS_TOKEN: &str = "vtoken";
const WINDOW: Duration = Duration::from_secs(300);

/// What the receiver decrypted, and how it should answer.
#[derive(Default)]
struct Receiver {
    received: Mutex<Vec<String>>,
    /// Answer WeCom messages with this body instead of an encrypted echo.
    wecom_raw_answer: Mutex<Option<String>>,
}

type St = Arc<Receiver>;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn reject(e: impl std::fmt::Display) -> Response {
    (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
}

fn wecom() -> WxBizMsgCrypt {
    WxBizMsgCrypt::new(TOKEN, KEY, CORP).unwrap()
}

async fn wecom_verify(Query(q): Query<HashMap<String, String>>) -> Response {
    match wecom().verify_url(
        &q["msg_signature"],
        &q["timestamp"],
        &q["nonce"],
        &q["echostr"],
    ) {
        Ok(plain) => plain.into_response(),
        Err(e) => reject(e),
    }
}

async fn wecom_message(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let c = wecom();
    if let Err(e) = check_timestamp(&q["timestamp"], now_ms(), WINDOW, TimestampUnit::Seconds) {
        return reject(e);
    }
    let body = String::from_utf8_lossy(&body);
    let plain = match c.decrypt_message(&q["msg_signature"], &q["timestamp"], &q["nonce"], &body) {
        Ok(p) => p,
        Err(e) => return reject(e),
    };
    let event = xml::parse_event(&plain).unwrap();
    st.received.lock().push(plain);
    if let Some(raw) = st.wecom_raw_answer.lock().clone() {
        return raw.into_response();
    }
    let reply = format!("echo: {}", event["Content"]);
    c.encrypt_reply(&reply, &q["timestamp"], "replynonce")
        .unwrap()
        .into_response()
}

async fn wechat_message(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    // Safe mode carries both signatures: the plain one and msg_signature.
    let plain_sig = sign::sha1_sorted(&[TOKEN, &q["timestamp"], &q["nonce"]]);
    if q["signature"] != plain_sig || q["encrypt_type"] != "aes" {
        return reject("bad signature or encrypt_type");
    }
    let c = WxBizMsgCrypt::new(TOKEN, KEY, "wxappid").unwrap();
    let body = String::from_utf8_lossy(&body);
    match c.decrypt_message(&q["msg_signature"], &q["timestamp"], &q["nonce"], &body) {
        Ok(p) => {
            st.received.lock().push(format!("{}|{}", q["openid"], p));
            "success".into_response()
        }
        Err(e) => reject(e),
    }
}

async fn dingtalk_event(
    State(st): State<St>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let c = WxBizMsgCrypt::new(TOKEN, DT_KEY, DT_APPKEY).unwrap();
    let query = match dingtalk::CallbackQuery::from_pairs(&q) {
        Ok(q) => q,
        Err(e) => return reject(e),
    };
    if let Err(e) = check_timestamp(&query.timestamp, now_ms(), WINDOW, TimestampUnit::Millis) {
        return reject(e);
    }
    match dingtalk::decrypt_callback(&c, &query, &body) {
        Ok(p) => {
            st.received.lock().push(p);
            Json(dingtalk::success_reply(&c, now_ms()).unwrap()).into_response()
        }
        Err(e) => reject(e),
    }
}

async fn feishu_event(State(st): State<St>, headers: HeaderMap, body: Bytes) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ts, nonce, sig) = (
        h(feishu::HEADER_TIMESTAMP),
        h(feishu::HEADER_NONCE),
        h(feishu::HEADER_SIGNATURE),
    );
    if let Err(e) = feishu::verify_event_signature(&ts, &nonce, FS_KEY, &body, &sig) {
        return reject(e);
    }
    if let Err(e) = check_timestamp(&ts, now_ms(), WINDOW, TimestampUnit::Seconds) {
        return reject(e);
    }
    let cipher = FeishuCipher::new(FS_KEY).unwrap();
    let plain = match feishu::body_plaintext(Some(&cipher), &body) {
        Ok(p) => p,
        Err(e) => return reject(e),
    };
    let env = match feishu::parse_envelope(&plain) {
        Ok(e) => e,
        Err(e) => return reject(e),
    };
    if let Err(e) = env.verify_token(FS_TOKEN) {
        return reject(e);
    }
    st.received.lock().push(plain);
    match env.challenge_response() {
        Some(c) => Json(c).into_response(),
        None => Json(json!({})).into_response(),
    }
}

async fn receiver() -> (String, St) {
    let st: St = Arc::default();
    let app = Router::new()
        .route("/wecom", get(wecom_verify).post(wecom_message))
        .route("/wechat", post(wechat_message))
        .route("/dingtalk", post(dingtalk_event))
        .route("/feishu", post(feishu_event))
        .with_state(st.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), st)
}

fn spec(kind: CallbackKind, url: String) -> CallbackSpec {
    let mut s = CallbackSpec::new(kind, url);
    s.token = Some(TOKEN.into());
    s.encoding_aes_key = Some(KEY.into());
    s.receive_id = Some(CORP.into());
    s
}

#[tokio::test]
async fn wecom_url_verification_round_trip() {
    let (base, _) = receiver().await;
    let mut s = spec(CallbackKind::WecomVerify, format!("{base}/wecom"));
    s.payload = Some("1616140317555161061".into());
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.reply.as_deref(), Some("1616140317555161061"));
    assert_eq!(r.request.method, "GET");
    let url = url::Url::parse(&r.request.url).unwrap();
    let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(keys, ["msg_signature", "timestamp", "nonce", "echostr"]);

    // Default echostr: 19 random digits, echoed.
    let r = fire(spec(CallbackKind::WecomVerify, format!("{base}/wecom")))
        .await
        .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.plaintext.len(), 19);
    assert_eq!(r.reply.as_deref(), Some(r.plaintext.as_str()));
}

#[tokio::test]
async fn wecom_message_gets_an_encrypted_reply_decrypted() {
    let (base, st) = receiver().await;
    let mut s = spec(CallbackKind::WecomMessage, format!("{base}/wecom?corp=1"));
    s.agent_id = Some("218".into());
    let r = fire(s).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.reply.as_deref(),
        Some("echo: hello from the imrelay mock")
    );
    // The receiver decrypted exactly what the mock encrypted.
    assert_eq!(*st.received.lock(), vec![r.plaintext.clone()]);
    let event = xml::parse_event(&r.plaintext).unwrap();
    assert_eq!(event["ToUserName"], CORP);
    assert_eq!(event["AgentID"], "218");
    assert_eq!(event["MsgType"], "text");
    // The envelope carries ToUserName/Encrypt/AgentID; the URL keeps its own query.
    let env = xml::parse_envelope(r.request.body.as_bytes()).unwrap();
    assert_eq!(env.to_user_name.as_deref(), Some(CORP));
    assert_eq!(env.agent_id.as_deref(), Some("218"));
    assert!(
        r.request.url.contains("?corp=1&msg_signature="),
        "{}",
        r.request.url
    );
}

#[tokio::test]
async fn wecom_reply_problems_are_reported() {
    let (base, st) = receiver().await;
    // A plaintext reply is not what WeCom accepts.
    *st.wecom_raw_answer.lock() = Some("<xml><Content>hi</Content></xml>".into());
    let r = fire(spec(CallbackKind::WecomMessage, format!("{base}/wecom")))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.ok);
    assert!(
        r.reply_error.as_deref().unwrap().contains("Encrypt"),
        "{r:?}"
    );
    // `success` and empty are the "no reply" answers.
    for ok in ["success", ""] {
        *st.wecom_raw_answer.lock() = Some(ok.into());
        let r = fire(spec(CallbackKind::WecomMessage, format!("{base}/wecom")))
            .await
            .unwrap();
        assert!(r.ok, "{ok:?}: {r:?}");
        assert_eq!(r.reply, None);
    }
    // Wrong token: the receiver refuses, the result says so.
    *st.wecom_raw_answer.lock() = None;
    let mut s = spec(CallbackKind::WecomMessage, format!("{base}/wecom"));
    s.token = Some("wrong".into());
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(!r.ok);
    assert!(
        r.response_body.contains("msg_signature"),
        "{}",
        r.response_body
    );
    // A stale timestamp trips the receiver's replay window.
    let mut s = spec(CallbackKind::WecomMessage, format!("{base}/wecom"));
    s.timestamp = Some(1409659813);
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.response_body.contains("replay window"),
        "{}",
        r.response_body
    );
}

#[tokio::test]
async fn wechat_safe_mode_message() {
    let (base, st) = receiver().await;
    let mut s = spec(CallbackKind::WechatMessage, format!("{base}/wechat"));
    s.receive_id = Some("wxappid".into());
    s.openid = Some("o_abc".into());
    s.payload = Some("<xml><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><Content>中文 ✓</Content></xml>".into());
    let r = fire(s).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.reply, None);
    assert_eq!(
        st.received.lock().as_slice(),
        [format!("o_abc|{}", r.plaintext)]
    );
    let url = url::Url::parse(&r.request.url).unwrap();
    let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        keys,
        [
            "signature",
            "timestamp",
            "nonce",
            "openid",
            "encrypt_type",
            "msg_signature"
        ]
    );
}

#[tokio::test]
async fn dingtalk_event_with_ms_timestamp_and_success_reply() {
    let (base, st) = receiver().await;
    let mut s = spec(CallbackKind::DingtalkEvent, format!("{base}/dingtalk"));
    s.encoding_aes_key = Some(DT_KEY.into());
    s.receive_id = Some(DT_APPKEY.into());
    let r = fire(s).await.unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.reply.as_deref(), Some("success"));
    assert_eq!(r.plaintext, r#"{"EventType":"check_url"}"#);
    assert_eq!(*st.received.lock(), vec![r.plaintext.clone()]);
    let url = url::Url::parse(&r.request.url).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["timestamp"].len(), 13, "milliseconds: {}", q["timestamp"]);
    assert_eq!(q["nonce"].len(), 16);
    let body: serde_json::Value = serde_json::from_str(&r.request.body).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert!(body["encrypt"].is_string());

    // Wrong owner key: the receiver's receive-id check refuses it.
    let mut s = spec(CallbackKind::DingtalkEvent, format!("{base}/dingtalk"));
    s.encoding_aes_key = Some(DT_KEY.into());
    s.receive_id = Some("other-corp".into());
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.response_body.contains("receive id"),
        "{}",
        r.response_body
    );
}

#[tokio::test]
async fn feishu_url_verification_and_event() {
    let (base, st) = receiver().await;
    let mut s = spec(
        CallbackKind::FeishuUrlVerification,
        format!("{base}/feishu"),
    );
    s.token = Some(FS_TOKEN.into());
    s.encrypt_key = Some(FS_KEY.into());
    let r = fire(s).await.unwrap();
    assert!(r.ok, "{r:?}");
    let want: serde_json::Value = serde_json::from_str(&r.plaintext).unwrap();
    assert_eq!(r.reply.as_deref(), want["challenge"].as_str());
    let headers: Vec<&str> = r.request.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        headers,
        [
            "content-type",
            "x-lark-request-timestamp",
            "x-lark-request-nonce",
            "x-lark-signature"
        ]
    );

    let mut s = spec(CallbackKind::FeishuEvent, format!("{base}/feishu"));
    s.token = Some(FS_TOKEN.into());
    s.encrypt_key = Some(FS_KEY.into());
    let r = fire(s).await.unwrap();
    assert!(r.ok, "{r:?}");
    let env = feishu::parse_envelope(&st.received.lock()[1]).unwrap();
    assert_eq!(env.kind, feishu::EnvelopeKind::V2);
    assert_eq!(env.event_type.as_deref(), Some("im.message.receive_v1"));
    assert_eq!(env.event_id.as_ref().unwrap().len(), 32);

    // Wrong verification token inside the (correctly signed) event.
    let mut s = spec(CallbackKind::FeishuEvent, format!("{base}/feishu"));
    s.token = Some("other".into());
    s.encrypt_key = Some(FS_KEY.into());
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(!r.ok);
    // Wrong encrypt key: signature refused before decrypting.
    let mut s = spec(CallbackKind::FeishuEvent, format!("{base}/feishu"));
    s.token = Some(FS_TOKEN.into());
    s.encrypt_key = Some("other key".into());
    let r = fire(s).await.unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.response_body.contains("X-Lark-Signature"),
        "{}",
        r.response_body
    );
}

#[tokio::test]
async fn spec_from_json_and_spec_errors() {
    let s: CallbackSpec = serde_json::from_str(
        r#"{"kind":"dingtalk_event","url":"http://127.0.0.1:1/x","token":"t","encoding_aes_key":"k","receive_id":"r","timestamp":1608001896814}"#,
    )
    .unwrap();
    assert_eq!(s.kind, CallbackKind::DingtalkEvent);
    assert_eq!(s.timestamp, Some(1608001896814));
    // Secrets never print.
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("\"t\"") && !dbg.contains("\"k\""), "{dbg}");
    // A bad key is a typed crypto error, before anything is sent.
    assert!(matches!(fire(s).await, Err(CallbackError::Crypto(_))));

    let e =
        serde_json::from_str::<CallbackSpec>(r#"{"kind":"wecom_message","url":"u","tokn":"x"}"#)
            .unwrap_err();
    assert!(e.to_string().contains("tokn"), "{e}");

    let mut s = spec(CallbackKind::WecomMessage, "http://127.0.0.1:1/".into());
    s.encoding_aes_key = None;
    let e = fire(s).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "callback spec: `encoding_aes_key` is required for kind wecom_message"
    );
    let e = fire(spec(CallbackKind::WecomMessage, "not a url".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, CallbackError::Spec(_)), "{e}");
    // Nothing listening: a transport error, not a panic.
    let e = fire(spec(
        CallbackKind::WecomMessage,
        "http://127.0.0.1:1/".into(),
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, CallbackError::Http(_)), "{e}");
}
