//! Fire a callback at a URL exactly as the platform would: encrypted, signed,
//! with the platform's query or headers, then check the answer the way the
//! platform does (decrypting an encrypted reply). For testing a callback
//! receiver — the imrelay gateway's callback endpoints or anyone else's.
//!
//! | kind | request | what the platform needs back |
//! |---|---|---|
//! | `wecom_verify` | `GET ?msg_signature&timestamp&nonce&echostr` | the decrypted echostr, verbatim |
//! | `wecom_message` | `POST ?msg_signature&timestamp&nonce`, XML envelope | empty, `success`, or encrypted reply XML |
//! | `wechat_message` | `POST ?signature&timestamp&nonce&openid&encrypt_type=aes&msg_signature`, XML | same |
//! | `dingtalk_event` | `POST ?msg_signature&timestamp(ms)&nonce`, `{"encrypt"}` | encrypted map of `success` |
//! | `feishu_event` | `POST {"encrypt"}` + `X-Lark-Request-Timestamp/Nonce`, `X-Lark-Signature` | HTTP 200 |
//! | `feishu_url_verification` | same, plaintext `{"type":"url_verification",...}` | `{"challenge": ...}` |
//! | `feishu_card_action` | as `feishu_event`: a `card.action.trigger` click by `user` on the button `{"imrelay_message": message, "imrelay_action": action}` | HTTP 200 within 3 s; `{"toast":..,"card":{"type":"raw","data":..}}` or `{}` |
//! | `wecom_card_action` | as `wecom_message`: a `template_card_event` click by `user` on the button whose key is `{"imrelay_message","imrelay_action"}`, with a fresh `ResponseCode` | as `wecom_message` |
//! | `dingtalk_card_action` | `POST ?token=` (the card callback URL's secret, from `token`), plain JSON: an `actionCallback` click by `user` on card `out_track_id`, the button's params `{"imrelay_message","imrelay_action"}` | HTTP 200 and a JSON object: `{}` or `{"cardData":{"cardParamMap":..}}` |
//!
//! ```no_run
//! # async fn demo() -> Result<(), imrelay_mock::callback::CallbackError> {
//! use imrelay_mock::callback::{fire, CallbackSpec};
//! let spec: CallbackSpec = serde_json::from_str(r#"{
//!     "kind": "wecom_message",
//!     "url": "http://127.0.0.1:8080/callback/wecom/corp1",
//!     "token": "QDG6eK",
//!     "encoding_aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
//!     "receive_id": "wx5823bf96d3bd56c7"
//! }"#).unwrap();
//! let result = fire(spec).await?;
//! println!("HTTP {} ok={} reply={:?}", result.status, result.ok, result.reply);
//! # Ok(()) }
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Method};
use imrelay_sdk::crypto::feishu::{self, FeishuCipher};
use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
use imrelay_sdk::crypto::{dingtalk, random_alnum, xml, CryptoError};
use imrelay_sdk::http::{HttpClient, HttpRequest, Timeouts};
use imrelay_sdk::{sign, Secret};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which platform callback to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackKind {
    /// WeCom URL verification (GET with an encrypted `echostr`).
    WecomVerify,
    /// WeCom app message/event (encrypted XML POST).
    WecomMessage,
    /// WeChat Official Account safe-mode message/event (encrypted XML POST).
    WechatMessage,
    /// DingTalk HTTP-push event (encrypted JSON POST, millisecond timestamp).
    DingtalkEvent,
    /// Feishu/Lark event (schema 2.0 unless `payload` says otherwise).
    FeishuEvent,
    /// Feishu/Lark `url_verification` challenge.
    FeishuUrlVerification,
    /// Feishu/Lark card button click (`card.action.trigger`, schema 2.0).
    FeishuCardAction,
    /// WeCom template card button click (`template_card_event`).
    WecomCardAction,
    /// DingTalk interactive card button click over HTTP (`actionCallback`),
    /// authenticated by the `token` in the registered callback URL.
    DingtalkCardAction,
}

impl CallbackKind {
    fn wxbiz(self) -> bool {
        matches!(
            self,
            CallbackKind::WecomVerify
                | CallbackKind::WecomMessage
                | CallbackKind::WecomCardAction
                | CallbackKind::WechatMessage
                | CallbackKind::DingtalkEvent
        )
    }
}

/// What to fire, and where. Read it from JSON (`serde_json::from_str`); the
/// `imrelay callback fire` reads the same fields from JSON. Secrets are [`Secret`]s:
/// `Debug` never prints them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackSpec {
    /// Which callback (see [`CallbackKind`]), e.g. `"wecom_message"`.
    pub kind: CallbackKind,
    /// The receiver's callback URL; its own query parameters are kept.
    pub url: String,
    /// WeCom / WeChat / DingTalk: the callback Token. Feishu: the Verification
    /// Token, written into the event (`header.token` / `token`). DingTalk card
    /// clicks: the secret sent as the URL's `token` parameter.
    #[serde(default)]
    pub token: Option<Secret>,
    /// WeCom / WeChat / DingTalk: the 43-character EncodingAESKey.
    #[serde(default)]
    pub encoding_aes_key: Option<Secret>,
    /// WeCom: corpid. WeChat: appid. DingTalk: corpId, appKey or suiteKey.
    #[serde(default)]
    pub receive_id: Option<String>,
    /// Feishu: the Encrypt Key. Without it the body goes in plaintext and
    /// unsigned, as Feishu does when no key is configured.
    #[serde(default)]
    pub encrypt_key: Option<Secret>,
    /// The plaintext to encrypt: the echostr (wecom_verify), event XML (WeCom,
    /// WeChat), event JSON (DingTalk, Feishu). A default event is built when absent.
    #[serde(default)]
    pub payload: Option<String>,
    /// The timestamp to send, in the platform's unit (seconds; DingTalk
    /// milliseconds). Default: now. Set an old one to test the replay window.
    #[serde(default)]
    pub timestamp: Option<i64>,
    /// The nonce to send. Default: random.
    #[serde(default)]
    pub nonce: Option<String>,
    /// WeCom: the `AgentID` in the envelope (default `1000002`).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// WeChat: the sender's `openid` (default `o_mock_user`).
    #[serde(default)]
    pub openid: Option<String>,
    /// WeChat: the account's original id `gh_...` in `ToUserName` (default `gh_mock`).
    #[serde(default)]
    pub to_user_name: Option<String>,
    /// Request timeout in milliseconds (default 5000; the platforms wait 1-5 s).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Card clicks: who clicked (Feishu open_id, WeCom UserID, DingTalk
    /// userId; default `ou_mock_user` / `mock_user`).
    #[serde(default)]
    pub user: Option<String>,
    /// Card clicks: the action id of the clicked button (default `ack`).
    #[serde(default)]
    pub action: Option<String>,
    /// Card clicks: the imrelay message id the button names.
    #[serde(default)]
    pub message: Option<String>,
    /// Feishu card clicks: the clicked message's `open_message_id`.
    #[serde(default)]
    pub open_message_id: Option<String>,
    /// WeCom card clicks: the card's `TaskId`.
    #[serde(default)]
    pub task_id: Option<String>,
    /// DingTalk card clicks: the card's `outTrackId`.
    #[serde(default)]
    pub out_track_id: Option<String>,
}

impl CallbackSpec {
    /// A spec of `kind` to `url` with every option at its default.
    pub fn new(kind: CallbackKind, url: impl Into<String>) -> Self {
        CallbackSpec {
            kind,
            url: url.into(),
            token: None,
            encoding_aes_key: None,
            receive_id: None,
            encrypt_key: None,
            payload: None,
            timestamp: None,
            nonce: None,
            agent_id: None,
            openid: None,
            to_user_name: None,
            timeout_ms: None,
            user: None,
            action: None,
            message: None,
            open_message_id: None,
            task_id: None,
            out_track_id: None,
        }
    }
}

/// A Feishu `card.action.trigger` callback (schema 2.0) for a click by
/// `user` (open_id) on a button whose `value` is `value`, in message
/// `open_message_id` of chat `open_chat_id`, as Feishu sends it
/// (<https://open.feishu.cn/document/uAjLw4CM/ukzMukzMukzM/feishu-cards/card-callback-communication>).
pub fn feishu_card_action_event(
    verification_token: &str,
    app_id: &str,
    user: &str,
    value: &Value,
    open_message_id: &str,
    open_chat_id: &str,
) -> Value {
    json!({
        "schema": "2.0",
        "header": {
            "event_id": uuid::Uuid::new_v4().simple().to_string(),
            "token": verification_token,
            // Microseconds, as in Feishu's examples.
            "create_time": (now_ms() * 1000).to_string(),
            "event_type": "card.action.trigger",
            "tenant_key": "mock_tenant",
            "app_id": app_id,
        },
        "event": {
            "operator": {
                "tenant_key": "mock_tenant",
                "user_id": user,
                "open_id": user,
            },
            // The delayed-update token of this click.
            "token": format!("c-{}", random_alnum(32)),
            "action": { "value": value, "tag": "button" },
            "host": "im_message",
            "context": { "open_message_id": open_message_id, "open_chat_id": open_chat_id },
        },
    })
}

/// What a WeCom `template_card_event` says: a click by `user` on the button
/// with `event_key` of card `task_id`, handing out `response_code` for one
/// update (<https://developer.work.weixin.qq.com/document/path/90376>).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WecomCardClick<'a> {
    pub corp_id: &'a str,
    pub user: &'a str,
    pub event_key: &'a str,
    pub task_id: &'a str,
    pub card_type: &'a str,
    pub response_code: &'a str,
    pub agent_id: &'a str,
    pub create_time: i64,
}

/// The decrypted XML of a WeCom `template_card_event`.
pub fn wecom_card_action_event(c: &WecomCardClick) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[template_card_event]]></Event><EventKey><![CDATA[{}]]></EventKey><TaskId><![CDATA[{}]]></TaskId><CardType><![CDATA[{}]]></CardType><ResponseCode><![CDATA[{}]]></ResponseCode><AgentID>{}</AgentID></xml>",
        cdata_safe(c.corp_id),
        cdata_safe(c.user),
        c.create_time,
        cdata_safe(c.event_key),
        cdata_safe(c.task_id),
        cdata_safe(c.card_type),
        cdata_safe(c.response_code),
        cdata_safe(c.agent_id),
    )
}

/// A DingTalk card callback (`actionCallback`, HTTP mode) for a click by
/// `user` (userId) on button `action` of card `out_track_id`, whose params
/// are `params`, as DingTalk posts it (the shape the mock's own DingTalk
/// fires, see `platform::dingtalk_card::click_body`).
pub fn dingtalk_card_action_event(
    user: &str,
    action: &str,
    params: &Value,
    out_track_id: &str,
) -> Value {
    // DingTalk sends the private data as a JSON string, in `content` and `value`.
    let content = json!({"cardPrivateData": {"actionIds": [action], "params": params}}).to_string();
    json!({
        "type": "actionCallback",
        "outTrackId": out_track_id,
        "corpId": "dingmockcorp",
        "userId": user,
        "userIdType": 1,
        "extension": "{}",
        "content": content,
        "value": content,
    })
}

/// The button value / key imrelay's rendering gives an action button.
pub fn action_value(message: &str, action: &str) -> Value {
    json!({
        imrelay_sdk::lifecycle::ACTION_VALUE_MESSAGE: message,
        imrelay_sdk::lifecycle::ACTION_VALUE_ACTION: action,
    })
}

/// The request as it went on the wire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What came back, judged as the platform would.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallbackResult {
    pub status: u16,
    pub request: SentRequest,
    /// The plaintext that was encrypted and sent (echostr, event XML/JSON).
    pub plaintext: String,
    /// The raw answer body (lossy UTF-8).
    pub response_body: String,
    /// The answer as the platform reads it: the decrypted reply (WeCom/WeChat
    /// encrypted XML, DingTalk encrypted map), the echoed echostr, the
    /// returned challenge. `None` for an empty / `success` / ignored answer.
    pub reply: Option<String>,
    /// Why the answer would not satisfy the platform, if it would not.
    pub reply_error: Option<String>,
    /// HTTP 200 and no `reply_error`: the platform would count it delivered.
    pub ok: bool,
}

/// Why a callback could not be fired (the receiver's answer, good or bad, is
/// in [`CallbackResult`] instead).
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    #[error("callback spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("sending the callback failed: {0}")]
    Http(String),
}

fn need<'a, T>(v: &'a Option<T>, field: &str, kind: CallbackKind) -> Result<&'a T, CallbackError> {
    v.as_ref().ok_or_else(|| {
        CallbackError::Spec(format!(
            "`{field}` is required for kind {}",
            serde_json::to_value(kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))
    })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Fire one callback and judge the answer.
pub async fn fire(spec: CallbackSpec) -> Result<CallbackResult, CallbackError> {
    let mut url = url::Url::parse(&spec.url)
        .map_err(|e| CallbackError::Spec(format!("`url` is not a URL ({e}): {}", spec.url)))?;
    let kind = spec.kind;
    let timestamp = spec.timestamp.unwrap_or_else(|| match kind {
        CallbackKind::DingtalkEvent => now_ms(),
        _ => now_ms() / 1000,
    });
    let ts = timestamp.to_string();
    let nonce = spec.nonce.clone().unwrap_or_else(|| match kind {
        // WeCom/WeChat send digits; DingTalk and Feishu letters and digits.
        CallbackKind::WecomVerify
        | CallbackKind::WecomMessage
        | CallbackKind::WecomCardAction
        | CallbackKind::WechatMessage => random_digits(10),
        _ => random_alnum(16),
    });

    let wx = if kind.wxbiz() {
        Some(WxBizMsgCrypt::new(
            need(&spec.token, "token", kind)?.clone(),
            need(&spec.encoding_aes_key, "encoding_aes_key", kind)?.expose(),
            need(&spec.receive_id, "receive_id", kind)?.clone(),
        )?)
    } else {
        None
    };
    if matches!(
        kind,
        CallbackKind::FeishuCardAction
            | CallbackKind::WecomCardAction
            | CallbackKind::DingtalkCardAction
    ) && spec.payload.is_none()
    {
        need(&spec.message, "message", kind)?;
    }
    let plaintext = spec
        .payload
        .clone()
        .unwrap_or_else(|| default_payload(&spec, timestamp));

    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let (method, body) = match (kind, &wx) {
        (CallbackKind::WecomVerify, Some(c)) => {
            let echostr = c.encrypt(&plaintext)?;
            url.query_pairs_mut()
                .append_pair("msg_signature", &c.signature(&ts, &nonce, &echostr))
                .append_pair("timestamp", &ts)
                .append_pair("nonce", &nonce)
                .append_pair("echostr", &echostr);
            (Method::GET, String::new())
        }
        (CallbackKind::WecomMessage | CallbackKind::WecomCardAction, Some(c)) => {
            let encrypt = c.encrypt(&plaintext)?;
            url.query_pairs_mut()
                .append_pair("msg_signature", &c.signature(&ts, &nonce, &encrypt))
                .append_pair("timestamp", &ts)
                .append_pair("nonce", &nonce);
            let agent = spec.agent_id.as_deref().unwrap_or("1000002");
            headers.push((CONTENT_TYPE, HeaderValue::from_static("text/xml")));
            let body = format!(
                "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt><AgentID><![CDATA[{}]]></AgentID></xml>",
                cdata_safe(c.receive_id()),
                cdata_safe(agent)
            );
            (Method::POST, body)
        }
        (CallbackKind::WechatMessage, Some(c)) => {
            let encrypt = c.encrypt(&plaintext)?;
            let token = need(&spec.token, "token", kind)?.expose();
            let openid = spec.openid.as_deref().unwrap_or("o_mock_user");
            url.query_pairs_mut()
                .append_pair("signature", &sign::sha1_sorted(&[token, &ts, &nonce]))
                .append_pair("timestamp", &ts)
                .append_pair("nonce", &nonce)
                .append_pair("openid", openid)
                .append_pair("encrypt_type", "aes")
                .append_pair("msg_signature", &c.signature(&ts, &nonce, &encrypt));
            headers.push((CONTENT_TYPE, HeaderValue::from_static("text/xml")));
            let to = spec.to_user_name.as_deref().unwrap_or("gh_mock");
            let body = format!(
                "<xml><ToUserName><![CDATA[{}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>",
                cdata_safe(to)
            );
            (Method::POST, body)
        }
        (CallbackKind::DingtalkEvent, Some(c)) => {
            let encrypt = c.encrypt(&plaintext)?;
            url.query_pairs_mut()
                .append_pair("msg_signature", &c.signature(&ts, &nonce, &encrypt))
                .append_pair("timestamp", &ts)
                .append_pair("nonce", &nonce);
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
            (Method::POST, json!({ "encrypt": encrypt }).to_string())
        }
        (
            CallbackKind::FeishuEvent
            | CallbackKind::FeishuUrlVerification
            | CallbackKind::FeishuCardAction,
            _,
        ) => {
            headers.push((
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            ));
            let body = match &spec.encrypt_key {
                Some(k) => {
                    let cipher = FeishuCipher::new(k.expose())?;
                    json!({ "encrypt": cipher.encrypt(&plaintext) }).to_string()
                }
                None => plaintext.clone(),
            };
            push_header(&mut headers, feishu::HEADER_TIMESTAMP, &ts)?;
            push_header(&mut headers, feishu::HEADER_NONCE, &nonce)?;
            if let Some(k) = &spec.encrypt_key {
                let sig = sign::feishu_event(&ts, &nonce, k.expose(), body.as_bytes());
                push_header(&mut headers, feishu::HEADER_SIGNATURE, &sig)?;
            }
            (Method::POST, body)
        }
        (CallbackKind::DingtalkCardAction, _) => {
            // No signature: the URL's token is all DingTalk sends.
            if let Some(t) = &spec.token {
                url.query_pairs_mut().append_pair("token", t.expose());
            }
            headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
            (Method::POST, plaintext.clone())
        }
        // `wx` is built for every WeChat-family kind above.
        _ => return Err(CallbackError::Spec("no cipher for this kind".into())),
    };

    let request = SentRequest {
        method: method.to_string(),
        url: url.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect(),
        body: body.clone(),
    };
    let client = HttpClient::new(Timeouts {
        connect: Duration::from_secs(5),
        read: Duration::from_millis(spec.timeout_ms.unwrap_or(5000)),
        total: Duration::from_millis(spec.timeout_ms.unwrap_or(5000)),
    })
    .map_err(|e| CallbackError::Http(e.to_string()))?;
    let resp = client
        .execute(HttpRequest {
            method,
            url,
            headers,
            body: (!body.is_empty()).then(|| body.into_bytes()),
        })
        .await
        .map_err(|r| CallbackError::Http(r.message))?;

    let response_body = String::from_utf8_lossy(&resp.body).into_owned();
    let judged = judge(&spec, wx.as_ref(), &plaintext, &response_body);
    let (reply, mut reply_error) = match judged {
        Ok(reply) => (reply, None),
        Err(e) => (None, Some(e)),
    };
    if resp.status != 200 && reply_error.is_none() {
        reply_error = Some(format!(
            "HTTP {}: the platform treats anything but 200 as a failed delivery and retries",
            resp.status
        ));
    }
    Ok(CallbackResult {
        status: resp.status,
        request,
        plaintext,
        ok: resp.status == 200 && reply_error.is_none(),
        response_body,
        reply,
        reply_error,
    })
}

/// Read the answer as the platform does.
fn judge(
    spec: &CallbackSpec,
    wx: Option<&WxBizMsgCrypt>,
    plaintext: &str,
    body: &str,
) -> Result<Option<String>, String> {
    match (spec.kind, wx) {
        (CallbackKind::WecomVerify, _) => {
            // WeCom compares the body byte for byte: no quotes, BOM or newline.
            if body == plaintext {
                Ok(Some(body.to_owned()))
            } else {
                Err(format!(
                    "the answer must be the decrypted echostr `{plaintext}` verbatim, got `{}`",
                    snippet(body)
                ))
            }
        }
        (
            CallbackKind::WecomMessage
            | CallbackKind::WecomCardAction
            | CallbackKind::WechatMessage,
            Some(c),
        ) => {
            let trimmed = body.trim();
            if trimmed.is_empty() || trimmed == "success" {
                return Ok(None);
            }
            let reply = xml::parse_reply(trimmed.as_bytes()).map_err(|e| {
                format!("the answer is neither empty, `success`, nor an encrypted reply XML: {e}")
            })?;
            c.verify_and_decrypt(
                &reply.msg_signature,
                &reply.timestamp,
                &reply.nonce,
                &reply.encrypt,
            )
            .map(Some)
            .map_err(|e| format!("the encrypted reply does not verify: {e}"))
        }
        (CallbackKind::DingtalkEvent, Some(c)) => {
            let map: dingtalk::EncryptedMap = serde_json::from_str(body).map_err(|e| {
                format!(
                    "DingTalk needs the encrypted map {{msg_signature,timeStamp,nonce,encrypt}} of `success`: {e}"
                )
            })?;
            let reply = dingtalk::decrypt_map(c, &map)
                .map_err(|e| format!("the encrypted reply does not verify: {e}"))?;
            if reply == "success" {
                Ok(Some(reply))
            } else {
                Err(format!(
                    "the encrypted reply is `{}`, DingTalk needs `success`",
                    snippet(&reply)
                ))
            }
        }
        (CallbackKind::FeishuUrlVerification, _) => {
            let want = serde_json::from_str::<Value>(plaintext).ok().and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            let got = serde_json::from_str::<Value>(body).ok().and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            match (want, got) {
                (Some(w), Some(g)) if w == g => Ok(Some(g)),
                (w, _) => Err(format!(
                    "the answer must be {{\"challenge\": \"{}\"}}, got `{}`",
                    w.unwrap_or_default(),
                    snippet(body)
                )),
            }
        }
        (CallbackKind::DingtalkCardAction, _) => match serde_json::from_str::<Value>(body.trim()) {
            // `{}`, or the card's new parameters for everyone.
            Ok(v @ Value::Object(_)) => Ok(Some(v.to_string())),
            _ => Err(format!(
                "a DingTalk card callback answer must be a JSON object (`{{}}` or `{{\"cardData\": ..}}`), got `{}`",
                snippet(body)
            )),
        },
        (CallbackKind::FeishuCardAction, _) => {
            // Feishu reads the answer: `{}`, a toast, a card; anything that is
            // not a JSON object shows the user an error.
            let trimmed = body.trim();
            if trimmed.is_empty() {
                return Ok(None);
            }
            match serde_json::from_str::<Value>(trimmed) {
                Ok(v @ Value::Object(_)) => Ok(Some(v.to_string())),
                _ => Err(format!(
                    "a card callback answer must be a JSON object (`{{}}`, a toast, a card), got `{}`",
                    snippet(body)
                )),
            }
        }
        // Feishu reads only the status of an event answer.
        _ => Ok(None),
    }
}

fn default_payload(spec: &CallbackSpec, timestamp: i64) -> String {
    let token = spec
        .token
        .as_ref()
        .map(|t| t.expose().to_owned())
        .unwrap_or_default();
    match spec.kind {
        CallbackKind::WecomVerify => random_digits(19),
        CallbackKind::WecomMessage => format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[mock_user]]></FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the imrelay mock]]></Content><MsgId>{}</MsgId><AgentID>{}</AgentID></xml>",
            cdata_safe(spec.receive_id.as_deref().unwrap_or_default()),
            random_digits(19),
            spec.agent_id.as_deref().unwrap_or("1000002")
        ),
        CallbackKind::WechatMessage => format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hello from the imrelay mock]]></Content><MsgId>{}</MsgId></xml>",
            cdata_safe(spec.to_user_name.as_deref().unwrap_or("gh_mock")),
            cdata_safe(spec.openid.as_deref().unwrap_or("o_mock_user")),
            random_digits(19)
        ),
        CallbackKind::DingtalkEvent => json!({ "EventType": "check_url" }).to_string(),
        CallbackKind::FeishuCardAction => feishu_card_action_event(
            &token,
            "cli_mock",
            spec.user.as_deref().unwrap_or("ou_mock_user"),
            &action_value(
                spec.message.as_deref().unwrap_or_default(),
                spec.action.as_deref().unwrap_or("ack"),
            ),
            spec.open_message_id.as_deref().unwrap_or("om_mock"),
            "oc_mock_chat",
        )
        .to_string(),
        CallbackKind::WecomCardAction => wecom_card_action_event(&WecomCardClick {
            corp_id: spec.receive_id.as_deref().unwrap_or_default(),
            user: spec.user.as_deref().unwrap_or("mock_user"),
            event_key: &action_value(
                spec.message.as_deref().unwrap_or_default(),
                spec.action.as_deref().unwrap_or("ack"),
            )
            .to_string(),
            task_id: spec.task_id.as_deref().unwrap_or("mock_task"),
            card_type: "button_interaction",
            response_code: &random_alnum(32),
            agent_id: spec.agent_id.as_deref().unwrap_or("1000002"),
            create_time: timestamp,
        }),
        CallbackKind::DingtalkCardAction => {
            let action = spec.action.as_deref().unwrap_or("ack");
            dingtalk_card_action_event(
                spec.user.as_deref().unwrap_or("mock_user"),
                action,
                &action_value(spec.message.as_deref().unwrap_or_default(), action),
                spec.out_track_id.as_deref().unwrap_or("mock_out_track_id"),
            )
            .to_string()
        }
        CallbackKind::FeishuUrlVerification => json!({
            "challenge": random_alnum(22),
            "token": token,
            "type": "url_verification",
        })
        .to_string(),
        CallbackKind::FeishuEvent => json!({
            "schema": "2.0",
            "header": {
                "event_id": uuid::Uuid::new_v4().simple().to_string(),
                "event_type": "im.message.receive_v1",
                "create_time": (timestamp * 1000).to_string(),
                "token": token,
                "app_id": "cli_mock",
                "tenant_key": "mock_tenant",
            },
            "event": {
                "sender": { "sender_id": { "open_id": "ou_mock_user" }, "sender_type": "user" },
                "message": {
                    "message_id": format!("om_{}", random_alnum(24)),
                    "chat_id": "oc_mock_chat",
                    "chat_type": "p2p",
                    "message_type": "text",
                    "content": json!({ "text": "hello from the imrelay mock" }).to_string(),
                },
            },
        })
        .to_string(),
    }
}

fn push_header(
    headers: &mut Vec<(HeaderName, HeaderValue)>,
    name: &str,
    value: &str,
) -> Result<(), CallbackError> {
    let invalid = || CallbackError::Spec(format!("`{name}` value is not valid header text"));
    let v = HeaderValue::from_str(value).map_err(|_| invalid())?;
    // `from_bytes` lower-cases the name, as HTTP/2 requires.
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
    headers.push((n, v));
    Ok(())
}

fn cdata_safe(s: &str) -> String {
    s.replace("]]>", "]]]]><![CDATA[>")
}

fn random_digits(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

fn snippet(s: &str) -> String {
    s.chars().take(200).collect()
}
