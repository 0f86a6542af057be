//! Platform callbacks: verify, decrypt, deduplicate and normalize the events
//! Feishu/Lark, DingTalk, WeCom and WeChat push to imrelay, so they can be
//! stored and forwarded as signed webhooks (`docs/callbacks.md`).
//!
//! # Layout
//! - this file: the runtime [`CallbackSet`] built from `[[callbacks]]`, and
//!   [`CallbackApp::verify`], which turns one HTTP request into a [`Verdict`]
//!   (answer at once, or store an event then answer) or a [`Rejection`] naming
//!   the check that failed. It does no I/O, so it is tested without a server.
//! - [`normalize`]: platform events to the one documented JSON schema.
//! - [`handler`]: the HTTP endpoints (store, dedup, reply).
//!
//! Checks run in this order: parse the request (400), timestamp inside the
//! replay window (401), signature over the ciphertext *before* decrypting
//! (401), decrypt and receive id / verification token (403), event shape
//! (400), then, for events, a (timestamp, nonce) already used within the
//! window (401, [`replay`]). Duplicates are found when storing (the event id
//! is the store's idempotency key) and acknowledged with 200 without a second
//! forward.

pub mod clicks;
pub mod config;
pub mod handler;
pub mod normalize;
pub mod replay;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderMap, Method, StatusCode};
use imrelay_sdk::crypto::feishu::{self, EnvelopeKind, FeishuCipher};
use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
use imrelay_sdk::crypto::{check_timestamp, dingtalk, xml, CryptoError, TimestampUnit};
use imrelay_sdk::{sign, Secret};
use serde_json::{json, Value};

use config::{forward_channel, CallbackConfig, CallbackPlatform};

pub use normalize::Normalized;

/// Every configured callback app, by name.
#[derive(Debug, Default)]
pub struct CallbackSet {
    apps: BTreeMap<String, Arc<CallbackApp>>,
}

impl CallbackSet {
    pub fn new(apps: impl IntoIterator<Item = CallbackApp>) -> Self {
        CallbackSet {
            apps: apps
                .into_iter()
                .map(|a| (a.name.clone(), Arc::new(a)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<CallbackApp>> {
        self.apps.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// Carry the replay records of `old` (the set before a reload) over to the
    /// apps of the same name, so a reload does not reopen the window.
    pub fn keep_replays(&mut self, old: &CallbackSet) {
        for (name, app) in &mut self.apps {
            if let (Some(a), Some(o)) = (Arc::get_mut(app), old.apps.get(name)) {
                a.replays = o.replays.clone();
            }
        }
    }
}

/// One callback endpoint, ready to verify requests.
#[derive(Debug)]
pub struct CallbackApp {
    pub name: String,
    pub platform: CallbackPlatform,
    /// The forward channel (`callback:{name}`).
    pub channel: String,
    pub replay_window: std::time::Duration,
    crypto: AppCrypto,
    /// The (timestamp, nonce) pairs of events accepted within the window.
    replays: Arc<replay::ReplayCache>,
}

#[derive(Debug)]
enum AppCrypto {
    Feishu {
        cipher: Option<FeishuCipher>,
        encrypt_key: Option<Secret>,
        verification_token: Secret,
    },
    /// DingTalk and WeCom: always encrypted.
    WxBiz {
        crypt: WxBizMsgCrypt,
        /// DingTalk: the token of the card callback URL.
        card_token: Option<Secret>,
    },
    /// WeChat: the plain token signature always, the cipher in safe mode.
    Wechat {
        token: Secret,
        crypt: Option<WxBizMsgCrypt>,
    },
}

impl CallbackApp {
    /// Build from a validated config entry (the error says which key is wrong).
    pub fn from_config(cb: &CallbackConfig) -> Result<CallbackApp, (&'static str, String)> {
        let wx = |cb: &CallbackConfig| -> Result<Option<WxBizMsgCrypt>, (&'static str, String)> {
            match (&cb.token, &cb.encoding_aes_key) {
                (Some(t), Some(k)) => WxBizMsgCrypt::new(
                    t.clone(),
                    k.expose(),
                    cb.receive_id.clone().unwrap_or_default(),
                )
                .map(Some)
                .map_err(|e| ("encoding_aes_key", e.to_string())),
                _ => Ok(None),
            }
        };
        if let Some(t) = &cb.card_token {
            if cb.platform != CallbackPlatform::Dingtalk {
                return Err((
                    "card_token",
                    "only DingTalk apps take card callbacks authenticated by a URL token".into(),
                ));
            }
            if t.expose().len() < 16 || !t.expose().bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err((
                    "card_token",
                    "use at least 16 letters and digits (e.g. `openssl rand -hex 16`)".into(),
                ));
            }
        }
        let crypto = match cb.platform {
            CallbackPlatform::Feishu => AppCrypto::Feishu {
                cipher: cb
                    .encrypt_key
                    .as_ref()
                    .map(|k| FeishuCipher::new(k.expose()))
                    .transpose()
                    .map_err(|e| ("encrypt_key", e.to_string()))?,
                encrypt_key: cb.encrypt_key.clone(),
                verification_token: cb
                    .verification_token
                    .clone()
                    .ok_or(("verification_token", "is required".to_string()))?,
            },
            CallbackPlatform::Dingtalk | CallbackPlatform::Wecom => AppCrypto::WxBiz {
                crypt: wx(cb)?.ok_or((
                    "encoding_aes_key",
                    "token and encoding_aes_key are required".to_string(),
                ))?,
                card_token: cb.card_token.clone(),
            },
            CallbackPlatform::Wechat => AppCrypto::Wechat {
                token: cb
                    .token
                    .clone()
                    .ok_or(("token", "is required".to_string()))?,
                crypt: wx(cb)?,
            },
        };
        Ok(CallbackApp {
            name: cb.name.clone(),
            platform: cb.platform,
            channel: forward_channel(&cb.name),
            replay_window: cb.replay_window,
            crypto,
            replays: Arc::default(),
        })
    }
}

/// One HTTP request to a callback endpoint.
#[derive(Debug, Clone)]
pub struct CallbackRequest {
    pub method: Method,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
    /// Feishu legacy card action URL (`/v1/callbacks/{name}/card`).
    pub card: bool,
}

impl CallbackRequest {
    fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, name: &'static str) -> Result<&str, Rejection> {
        self.q(name)
            .ok_or_else(|| Rejection::malformed(format!("missing query parameter `{name}`")))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The 200 answer the platform needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub(crate) fn json(v: Value) -> Reply {
        Reply {
            content_type: "application/json",
            body: v.to_string(),
        }
    }
    fn text(s: impl Into<String>) -> Reply {
        Reply {
            content_type: "text/plain; charset=utf-8",
            body: s.into(),
        }
    }
}

/// A verified, decrypted event, ready to store.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedEvent {
    /// Deduplication key: the platform's event / message id, or a stand-in
    /// derived from the event (see [`normalize`]).
    pub event_id: String,
    /// The decrypted plaintext (JSON or XML) as the platform sent it.
    pub plaintext: String,
    pub normalized: Normalized,
    /// The raw event as JSON (parsed JSON, or the XML's fields).
    pub raw: Value,
}

/// What to do with a verified request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A handshake (URL verification, challenge, check_url): answer, store nothing.
    Answer { what: &'static str, reply: Reply },
    /// Store the event, then answer with `reply`.
    Event {
        event: Box<VerifiedEvent>,
        reply: Reply,
    },
}

/// Why a request was refused: the HTTP status, the check that failed (for
/// the log line and metrics) and a detail naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    /// `malformed`, `signature`, `timestamp`, `receive_id`, `verification_token`, `config`.
    pub check: &'static str,
    pub detail: String,
}

impl Rejection {
    pub fn malformed(detail: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            check: "malformed",
            detail: detail.into(),
        }
    }
    fn signature(detail: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::UNAUTHORIZED,
            check: "signature",
            detail: detail.into(),
        }
    }
}

impl From<CryptoError> for Rejection {
    fn from(e: CryptoError) -> Self {
        let (status, check) = match &e {
            CryptoError::ValidateSignature { field: "token" } => {
                (StatusCode::FORBIDDEN, "verification_token")
            }
            CryptoError::ValidateSignature { .. } => (StatusCode::UNAUTHORIZED, "signature"),
            CryptoError::Timestamp(_) => (StatusCode::UNAUTHORIZED, "timestamp"),
            CryptoError::ValidateReceiveId => (StatusCode::FORBIDDEN, "receive_id"),
            CryptoError::EncryptAes(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encrypt_reply"),
            _ => (StatusCode::BAD_REQUEST, "malformed"),
        };
        Rejection {
            status,
            check,
            detail: e.to_string(),
        }
    }
}

impl CallbackApp {
    /// Verify and decrypt one request at `now_ms`.
    pub fn verify(&self, req: &CallbackRequest, now_ms: i64) -> Result<Verdict, Rejection> {
        match (&self.crypto, self.platform) {
            (
                AppCrypto::Feishu {
                    cipher,
                    encrypt_key,
                    verification_token,
                },
                _,
            ) => self.feishu(
                req,
                now_ms,
                cipher.as_ref(),
                encrypt_key.as_ref(),
                verification_token,
            ),
            (AppCrypto::WxBiz { card_token, .. }, CallbackPlatform::Dingtalk) if req.card => {
                self.dingtalk_card(req, card_token.as_ref())
            }
            (AppCrypto::WxBiz { crypt, .. }, CallbackPlatform::Dingtalk) => {
                self.dingtalk(req, now_ms, crypt)
            }
            (AppCrypto::WxBiz { crypt, .. }, _) => self.wecom(req, now_ms, crypt),
            (AppCrypto::Wechat { token, crypt }, _) => {
                self.wechat(req, now_ms, token, crypt.as_ref())
            }
        }
    }

    /// [`CallbackApp::verify`], then for an event the replay guard: its
    /// (timestamp, nonce) must not have been used within the window. Keep the
    /// returned claim once the event is stored ([`replay::Claim::keep`]);
    /// dropping it lets the platform retry a request that failed.
    pub fn admit(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
    ) -> Result<(Verdict, replay::Claim), Rejection> {
        let verdict = self.verify(req, now_ms)?;
        if !matches!(verdict, Verdict::Event { .. }) {
            return Ok((verdict, replay::Claim::none()));
        }
        let Some((ts, nonce, ts_ms)) = self.signed_pair(req) else {
            return Ok((verdict, replay::Claim::none()));
        };
        let window = i64::try_from(self.replay_window.as_millis()).unwrap_or(i64::MAX);
        match self
            .replays
            .claim(&ts, &nonce, now_ms, ts_ms.saturating_add(window))
        {
            Some(claim) => Ok((verdict, claim)),
            None => Err(Rejection {
                status: StatusCode::UNAUTHORIZED,
                check: "replay",
                detail: format!(
                    "this timestamp ({ts}) and nonce were already used by an earlier callback; a request is accepted once"
                ),
            }),
        }
    }

    /// The request's timestamp and nonce (both set), and the timestamp in ms.
    fn signed_pair(&self, req: &CallbackRequest) -> Option<(String, String, i64)> {
        let (ts, nonce, ms_per_unit) = match self.platform {
            CallbackPlatform::Feishu => (
                req.header(feishu::HEADER_TIMESTAMP)?,
                req.header(feishu::HEADER_NONCE)?,
                1000,
            ),
            CallbackPlatform::Dingtalk => {
                let q = dingtalk::CallbackQuery::from_pairs(req.query.iter().map(|(k, v)| (k, v)))
                    .ok()?;
                return (!q.nonce.is_empty())
                    .then(|| q.timestamp.trim().parse::<i64>().ok())
                    .flatten()
                    .map(|ms| (q.timestamp, q.nonce, ms));
            }
            CallbackPlatform::Wecom | CallbackPlatform::Wechat => {
                (req.q("timestamp")?, req.q("nonce")?, 1000)
            }
        };
        if nonce.is_empty() {
            return None;
        }
        let t: i64 = ts.trim().parse().ok()?;
        Some((
            ts.to_owned(),
            nonce.to_owned(),
            t.saturating_mul(ms_per_unit),
        ))
    }

    fn window(&self, ts: &str, now_ms: i64, unit: TimestampUnit) -> Result<(), Rejection> {
        check_timestamp(ts, now_ms, self.replay_window, unit).map_err(Rejection::from)
    }

    fn only(&self, req: &CallbackRequest, m: Method) -> Result<(), Rejection> {
        if req.method == m {
            Ok(())
        } else {
            Err(Rejection {
                status: StatusCode::METHOD_NOT_ALLOWED,
                check: "method",
                detail: format!(
                    "{} callbacks use {m} here, not {}",
                    self.platform.as_str(),
                    req.method
                ),
            })
        }
    }

    fn feishu(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
        cipher: Option<&FeishuCipher>,
        encrypt_key: Option<&Secret>,
        token: &Secret,
    ) -> Result<Verdict, Rejection> {
        self.only(req, Method::POST)?;
        feishu_check_encrypted(req, cipher)?;
        // Verify before decrypting, whenever there is a signature.
        let signed = self.feishu_signature(req, now_ms, encrypt_key, token)?;
        let plaintext = feishu::body_plaintext(cipher, &req.body)?;
        let v: Value = serde_json::from_str(&plaintext).map_err(|e| {
            Rejection::malformed(format!("the decrypted callback is not JSON: {e}"))
        })?;
        let url_verification = v.get("type").and_then(Value::as_str) == Some("url_verification");
        // Unsigned requests are accepted only where Feishu does not sign:
        // the URL challenge, and events of an app without an Encrypt Key.
        if !signed && !url_verification && (req.card || encrypt_key.is_some()) {
            return Err(Rejection::signature(format!(
                "missing `{}` header",
                feishu::HEADER_SIGNATURE
            )));
        }
        if req.card && !url_verification && v.get("schema").is_none() {
            return Ok(feishu_legacy_card(plaintext, v));
        }
        feishu_envelope(plaintext, v, token)
    }

    /// Check the timestamp and, when there is one, the signature: whether the
    /// request was signed.
    fn feishu_signature(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
        encrypt_key: Option<&Secret>,
        token: &Secret,
    ) -> Result<bool, Rejection> {
        let ts = req.header(feishu::HEADER_TIMESTAMP);
        let nonce = req.header(feishu::HEADER_NONCE).unwrap_or_default();
        let Some(sig) = req.header(feishu::HEADER_SIGNATURE) else {
            if let Some(ts) = ts {
                self.window(ts, now_ms, TimestampUnit::Seconds)?;
            }
            return Ok(false);
        };
        let ts = ts.ok_or_else(|| {
            Rejection::malformed(format!("missing `{}` header", feishu::HEADER_TIMESTAMP))
        })?;
        self.window(ts, now_ms, TimestampUnit::Seconds)?;
        if req.card {
            feishu::verify_card_signature(ts, nonce, token.expose(), &req.body, sig)?;
        } else if let Some(k) = encrypt_key {
            feishu::verify_event_signature(ts, nonce, k.expose(), &req.body, sig)?;
        }
        Ok(true)
    }

    fn dingtalk(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
        c: &WxBizMsgCrypt,
    ) -> Result<Verdict, Rejection> {
        self.only(req, Method::POST)?;
        let q = dingtalk::CallbackQuery::from_pairs(req.query.iter().map(|(k, v)| (k, v)))?;
        self.window(&q.timestamp, now_ms, TimestampUnit::Millis)?;
        let plaintext = dingtalk::decrypt_callback(c, &q, &req.body)?;
        let v: Value = serde_json::from_str(&plaintext).map_err(|e| {
            Rejection::malformed(format!("the decrypted DingTalk event is not JSON: {e}"))
        })?;
        let reply = Reply::json(
            serde_json::to_value(dingtalk::success_reply(c, now_ms)?).unwrap_or_default(),
        );
        if v.get("EventType").and_then(Value::as_str) == Some("check_url") {
            return Ok(Verdict::Answer {
                what: "check_url",
                reply,
            });
        }
        let n = normalize::dingtalk(&v);
        Ok(Verdict::Event {
            event: Box::new(VerifiedEvent {
                event_id: normalize::json_event_id(&v, &plaintext),
                plaintext,
                normalized: n,
                raw: v,
            }),
            reply,
        })
    }

    /// A DingTalk HTTP card callback: plain JSON, authenticated by the
    /// token in the URL it was registered with.
    fn dingtalk_card(
        &self,
        req: &CallbackRequest,
        card_token: Option<&Secret>,
    ) -> Result<Verdict, Rejection> {
        self.only(req, Method::POST)?;
        let Some(expected) = card_token else {
            return Err(Rejection {
                status: StatusCode::NOT_FOUND,
                check: "config",
                detail: "this DingTalk app takes no card callbacks; set `card_token` on its [[callbacks]] entry".into(),
            });
        };
        let given = req.q("token").unwrap_or_default();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.expose().as_bytes(),
        )) {
            return Err(Rejection {
                status: StatusCode::UNAUTHORIZED,
                check: "signature",
                detail: "the `token` in the card callback URL is missing or wrong".into(),
            });
        }
        let plaintext = String::from_utf8(req.body.to_vec())
            .map_err(|_| Rejection::malformed("a DingTalk card callback body is UTF-8 JSON"))?;
        let v: Value = serde_json::from_str(&plaintext).map_err(|e| {
            Rejection::malformed(format!("a DingTalk card callback body is JSON: {e}"))
        })?;
        Ok(Verdict::Event {
            event: Box::new(VerifiedEvent {
                event_id: normalize::json_event_id(&v, &plaintext),
                normalized: normalize::dingtalk_card(&v),
                plaintext,
                raw: v,
            }),
            reply: Reply::json(serde_json::json!({})),
        })
    }

    fn wecom(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
        c: &WxBizMsgCrypt,
    ) -> Result<Verdict, Rejection> {
        let sig = req.need("msg_signature")?;
        let ts = req.need("timestamp")?;
        let nonce = req.need("nonce")?;
        self.window(ts, now_ms, TimestampUnit::Seconds)?;
        if req.method == Method::GET {
            let echostr = req.need("echostr")?;
            let plain = c.verify_url(sig, ts, nonce, echostr)?;
            return Ok(Verdict::Answer {
                what: "echostr",
                reply: Reply::text(plain),
            });
        }
        self.only(req, Method::POST)?;
        let body = std::str::from_utf8(&req.body)
            .map_err(|_| Rejection::malformed("the body is not UTF-8"))?;
        let plaintext = c.decrypt_message(sig, ts, nonce, body)?;
        // WeCom takes an empty 200 as "received, no passive reply".
        self.xml_event(plaintext, Reply::text(""))
    }

    fn wechat(
        &self,
        req: &CallbackRequest,
        now_ms: i64,
        token: &Secret,
        crypt: Option<&WxBizMsgCrypt>,
    ) -> Result<Verdict, Rejection> {
        let sig = req.need("signature")?;
        let ts = req.need("timestamp")?;
        let nonce = req.need("nonce")?;
        self.window(ts, now_ms, TimestampUnit::Seconds)?;
        let expected = sign::sha1_sorted(&[token.expose(), ts, nonce]);
        if !sign::constant_time_eq(
            sig.trim().to_ascii_lowercase().as_bytes(),
            expected.as_bytes(),
        ) {
            return Err(Rejection::signature(
                "`signature` does not match: check the token configured for this endpoint",
            ));
        }
        if req.method == Method::GET {
            return Ok(Verdict::Answer {
                what: "echostr",
                reply: Reply::text(req.need("echostr")?),
            });
        }
        self.only(req, Method::POST)?;
        let body = std::str::from_utf8(&req.body)
            .map_err(|_| Rejection::malformed("the body is not UTF-8"))?;
        let plaintext = match (req.q("encrypt_type"), crypt) {
            (Some("aes"), Some(c)) => c.decrypt_message(req.need("msg_signature")?, ts, nonce, body)?,
            (Some("aes"), None) => {
                return Err(Rejection {
                    status: StatusCode::BAD_REQUEST,
                    check: "config",
                    detail: "the message is encrypted (safe mode) but no encoding_aes_key is configured for this endpoint".into(),
                })
            }
            // Refuse a downgrade: with a key configured, WeChat encrypts.
            (_, Some(_)) => {
                return Err(Rejection::malformed(
                    "expected `encrypt_type=aes`: this endpoint is configured for safe mode (encoding_aes_key is set)",
                ))
            }
            (_, None) => body.to_owned(),
        };
        // "success" tells WeChat there is no passive reply.
        self.xml_event(plaintext, Reply::text("success"))
    }

    fn xml_event(&self, plaintext: String, reply: Reply) -> Result<Verdict, Rejection> {
        let fields = xml::parse_event(&plaintext)?;
        let n = normalize::wx(&fields);
        let event_id = normalize::xml_event_id(&fields, &plaintext);
        let raw = serde_json::to_value(&fields).unwrap_or_default();
        Ok(Verdict::Event {
            event: Box::new(VerifiedEvent {
                event_id,
                plaintext,
                normalized: n,
                raw,
            }),
            reply,
        })
    }

    /// The document forwarded to the receivers (`docs/callbacks.md`).
    pub fn forward_document(&self, id: &str, ev: &VerifiedEvent, received_ms: i64) -> Value {
        let received_at = jiff::Timestamp::from_millisecond(received_ms)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut doc = json!({
            "id": id,
            "type": ev.normalized.kind,
            "app": self.name,
            "platform": self.platform.as_str(),
            "event_id": ev.event_id,
            "event_type": ev.normalized.event_type,
            "received_at": received_at,
            "data": ev.normalized.data,
            "raw": ev.raw,
        });
        if matches!(
            self.platform,
            CallbackPlatform::Wecom | CallbackPlatform::Wechat
        ) {
            doc["raw_xml"] = Value::String(ev.plaintext.clone());
        }
        doc
    }
}

/// The body is JSON, and encrypted when an Encrypt Key is configured (Feishu
/// then encrypts every callback).
fn feishu_check_encrypted(
    req: &CallbackRequest,
    cipher: Option<&FeishuCipher>,
) -> Result<(), Rejection> {
    let encrypted = serde_json::from_slice::<Value>(&req.body)
        .map_err(|e| Rejection::malformed(format!("a Feishu callback body is JSON: {e}")))?
        .get("encrypt")
        .is_some();
    if cipher.is_some() && !encrypted {
        return Err(Rejection::malformed(
            "the body is not encrypted, but an encrypt_key is configured: Feishu encrypts every callback when the Encrypt Key is set",
        ));
    }
    Ok(())
}

/// A legacy card action: `{open_id, open_message_id, token, action}`,
/// authenticated by the SHA-1 signature with the verification token.
fn feishu_legacy_card(plaintext: String, v: Value) -> Verdict {
    let n = normalize::feishu_card(&v);
    let event_id = match v.get("token").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => format!("card:{t}"),
        _ => format!("sha256:{}", crate::store::body_hash(plaintext.as_bytes())),
    };
    Verdict::Event {
        event: Box::new(VerifiedEvent {
            event_id,
            plaintext,
            normalized: n,
            raw: v,
        }),
        reply: Reply::json(json!({})),
    }
}

/// An event envelope (schema 2.0 or 1.0, or a card action in one): the URL
/// challenge's answer, or the event.
fn feishu_envelope(plaintext: String, v: Value, token: &Secret) -> Result<Verdict, Rejection> {
    let env = feishu::parse_envelope(&plaintext)?;
    env.verify_token(token.expose())?;
    if env.kind == EnvelopeKind::UrlVerification {
        return Ok(Verdict::Answer {
            what: "url_verification",
            reply: Reply::json(env.challenge_response().unwrap_or_default()),
        });
    }
    let event_id = env
        .event_id
        .clone()
        .ok_or_else(|| Rejection::malformed("the event has no id"))?;
    Ok(Verdict::Event {
        event: Box::new(VerifiedEvent {
            event_id,
            normalized: normalize::feishu(&env),
            plaintext,
            raw: v,
        }),
        // What Feishu's own SDK answers.
        reply: Reply::json(json!({"msg": "success"})),
    })
}

#[cfg(test)]
mod tests;
