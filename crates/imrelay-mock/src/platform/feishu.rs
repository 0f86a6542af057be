//! Feishu / Lark. Lark (`open.larksuite.com`) has the same paths as Feishu
//! (`open.feishu.cn`), so these routes serve both: point either region's
//! `base_url` at the mock.
//!
//! | path | what |
//! |---|---|
//! | `POST /open-apis/bot/v2/hook/{hook}` | custom bot webhook (target `feishu:webhook:{hook}`) |
//! | `POST /open-apis/auth/v3/tenant_access_token/internal` | tenant token (target `feishu:app:{app_id}`) |
//! | `POST /open-apis/im/v1/messages?receive_id_type=..` | app bot message (target `feishu:app:{app_id}`) |
//! | `PATCH /open-apis/im/v1/messages/{message_id}` | update a card (`content` = card JSON string) |
//! | `PUT /open-apis/im/v1/messages/{message_id}` | edit a text or post (`msg_type`, `content`) |
//! | `DELETE /open-apis/im/v1/messages/{message_id}` | recall |
//! | `GET /open-apis/im/v1/messages/{message_id}/read_users?user_id_type=` | read receipts |
//!
//! Webhook checks, in Feishu's order and with its answers (always HTTP 200):
//! unknown hook → 19001; over 5/s or 100/min → 11232; body not JSON → 9499;
//! signature missing, wrong, or its `timestamp` more than an hour off → 19021;
//! a body over 20 KB, an unknown `msg_type` or missing content fields → 9499
//! (the real code for an oversize body is not documented); none of the bot's
//! keywords in the message → 19024. Success:
//! `{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}`.
//!
//! Token endpoint: unknown `app_id` → 10003, wrong secret → 10014. The same token
//! is returned while it has more than 30 minutes left, as Feishu does; otherwise
//! a new one (old tokens stay valid until their own expiry). Token requests are
//! logged without their body, which carries the app secret.
//!
//! Messages (errors as HTTP 400 with `{"code":N,"msg":..}`): no `Authorization`
//! → 99991661; an unknown or expired token → 99991663; over 50/s per app →
//! HTTP 429 with 99991400; over 5/s to one user of the app, or to one chat
//! whichever app sends (the bots in a group share its 5/s) → 230020; a bad
//! `receive_id_type`, `msg_type`, `content` that is not a JSON *string*, or
//! content that does not fit its type (a post wrapped in `post`, as the webhook
//! wants, is refused) → 230001; over 150 KB (text) / 30 KB (post, card) → 230025.
//! Test hooks: an open_id starting `ou_outside` → 230013 (outside the app's
//! availability), a chat_id starting `oc_nobot` → 230002 (bot not in the chat).
//! A `uuid` seen for the same app within the hour answers the first
//! `message_id` again and is logged as a duplicate, not a second delivery.
//! (The uuid memory is per server and is not cleared by `/_mock/reset`; it
//! forgets entries after the hour.) Every new message is kept in
//! [`MockState::sent`] as `{"msg_type", "content"}` (content parsed).
//!
//! After the send (same token and 50/s checks; errors HTTP 400): a message
//! that does not exist → 230001; another app's → 230012 (update, edit, read
//! receipts) or 230026 (recall); recalled → 230011. PATCH: cards only
//! (else 230054), both the old and the new card must set
//! `config.update_multi` (else 230001), over 30 KB → 230025, over 5 updates a
//! second of one message → 230020, sent more than 14 days ago → 230031.
//! PUT: texts and posts only (230054), at most 20 edits, within 24 h (the
//! tenant's edit limit; 230031 past it). DELETE: within 24 h (230009 past
//! it). read_users: within 7 days (230033), users marked with
//! `POST /_mock/messages/{id}/read`.
//!
//! Urgent pushes (`PATCH /open-apis/im/v1/messages/{message_id}/urgent_app`,
//! `urgent_sms`, `urgent_phone`, query `user_id_type`, body
//! `{"user_id_list": [..]}`; same token and 50/s checks, and 1,000 a minute
//! per app): `user_id_type` other than open_id/user_id/union_id or an empty
//! or over-200 list → 230001; an unknown message → 230001; another app's
//! → 230012; a recalled one → 230011 (the urgent pages document only
//! 230110 for a deleted one). Users must be in the message's chat: for a
//! message to a user that user only; for a chat (`chat_id`), anyone except
//! ids starting `ou_outside`. Others come back in
//! `data.invalid_user_id_list`; none valid → 230001. A user with 200 unread
//! urgent pushes → 230023. SMS and phone pushes draw one unit per user on
//! the app's `urgent_quota` (when set); not enough left → 230024. Each push
//! is kept on the message (`urgent` in `/_mock/messages`).
//!
//! Clicks (`POST /_mock/messages/{id}/click`): the `card.action.trigger`
//! callback is encrypted with the app's `callback.encrypt_key`, signed
//! (`X-Lark-Signature`) and carries `callback.token`; a `card` in the answer
//! replaces the message's card as a new revision, as Feishu does.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::callback::{feishu_card_action_event, fire, CallbackKind, CallbackSpec};
use crate::config::MockPlatform;
use crate::dedup::DedupStore;
use crate::faults::{inject, inject_token, Injected};
use crate::limiter::{LimitCheck, Window};
use crate::log::{LogEntry, SignatureCheck};
use crate::platform::{app_callback, injected_status, ClickError};
use crate::sent::{SentError, SentMessage, UrgentPush};
use crate::state::MockState;
use crate::tokens::TokenCheck;
use imrelay_sdk::lifecycle::ACTION_VALUE_ACTION;
use imrelay_sdk::platform::feishu::reply_card;
use imrelay_sdk::Secret;

const P: &str = "feishu";
const PLATFORM: MockPlatform = MockPlatform::Feishu;

/// Webhook request body limit (Feishu documents 20 KB).
pub const WEBHOOK_BODY_LIMIT: usize = 20 * 1024;
/// App message body limits (documented 150 KB for text, 30 KB for post/card).
pub const TEXT_BODY_LIMIT: usize = 150 * 1024;
pub const RICH_BODY_LIMIT: usize = 30 * 1024;
/// Signature timestamps may be this far from the server's clock.
pub const SIGN_WINDOW_SECS: i64 = 3600;
/// A `uuid` is honoured once within this window.
pub const UUID_WINDOW_MS: i64 = 3_600_000;
/// Feishu hands out the same token until it has less than this left.
const TOKEN_REUSE_MIN_SECS: u64 = 30 * 60;

const WEBHOOK_OK: &str =
    r#"{"StatusCode":0,"StatusMessage":"success","code":0,"data":{},"msg":"success"}"#;
const MSG_19001: &str = "param invalid: incoming webhook access token invalid";
const MSG_19021: &str = "sign match fail or timestamp is not within one hour from current time";
const MSG_19024: &str = "Key Words Not Found";
const MSG_9499: &str = "Bad Request";
const MSG_11232: &str = "frequency limited psm[lark.oapi.app_platform_runtime]appID[1500]";
const MSG_99991661: &str =
    "Missing access token for authorization. Please make a request with token attached.";
const MSG_99991663: &str =
    "Invalid access token for authorization. Please make a request with token attached.";
const MSG_99991400: &str = "request trigger frequency limit";
const MSG_230020: &str = "This operation triggers the frequency limit.";

const RECEIVE_ID_TYPES: &[&str] = &["open_id", "user_id", "union_id", "email", "chat_id"];
const APP_MSG_TYPES: &[&str] = &[
    "text",
    "post",
    "image",
    "file",
    "audio",
    "media",
    "sticker",
    "interactive",
    "share_chat",
    "share_user",
];

/// The routes (Feishu and Lark alike).
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/open-apis/bot/v2/hook/{hook}", post(webhook))
        .route(
            "/open-apis/auth/v3/tenant_access_token/internal",
            post(tenant_token),
        )
        .route("/open-apis/im/v1/messages", post(messages))
        .route(
            "/open-apis/im/v1/messages/{message_id}",
            patch(patch_card).put(edit_message).delete(recall),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/read_users",
            get(read_users),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/urgent_app",
            patch(urgent_app),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/urgent_sms",
            patch(urgent_sms),
        )
        .route(
            "/open-apis/im/v1/messages/{message_id}/urgent_phone",
            patch(urgent_phone),
        )
}

/// The first message id the app sent with this `uuid` within the hour, or
/// `None` after recording `new_id` for it.
fn dedup_uuid(
    dedup: &DedupStore,
    app_id: &str,
    uuid: &str,
    new_id: &str,
    now_ms: i64,
) -> Option<String> {
    let key = format!("feishu:uuid:{app_id}:{uuid}");
    dedup.first(&key, new_id, UUID_WINDOW_MS, now_ms)
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Feishu's error shape: `{"code":N,"data":{},"msg":".."}`.
fn code_body(code: i64, msg: &str) -> String {
    json!({ "code": code, "data": {}, "msg": msg }).to_string()
}

fn injected_response(i: &Injected, status_for_code: StatusCode) -> Response {
    match i {
        Injected::Code { code, msg } => json_response(status_for_code, code_body(*code, msg)),
        Injected::Http(s) => {
            let status = injected_status(*s);
            (status, format!("injected HTTP {s}")).into_response()
        }
        Injected::Answer(a) => a.response(),
    }
}

fn injected_entry(e: LogEntry, i: &Injected) -> LogEntry {
    match i {
        Injected::Code { code, msg } => e.rejected(code, format!("injected: {msg}")),
        Injected::Http(s) => e.rejected(format!("http {s}"), "injected HTTP status"),
        Injected::Answer(a) => e.rejected(a.log_code(), a.reason()),
    }
}

// ---------------------------------------------------------------------------
// Custom bot webhook

async fn webhook(
    State(state): State<Arc<MockState>>,
    Path(hook): Path<String>,
    body: Bytes,
) -> Response {
    let target = format!("feishu:webhook:{hook}");
    let entry = LogEntry::new(P, "bot.hook", target.as_str());
    if let Some(i) = inject(&state, &target).await {
        state
            .log
            .record(injected_entry(entry, &i).body(logged_body(&body, None)));
        return injected_response(&i, StatusCode::OK);
    }
    // Parse once; the value is checked by reference and then moved into the log.
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let verdict = check_webhook(&state, &hook, &target, body.len(), parsed.as_ref());
    let (entry, answer) = match verdict {
        Ok(sig) => (entry.signature(sig).accepted(), WEBHOOK_OK.to_string()),
        Err(r) => (
            entry.signature(r.signature).rejected(r.code, r.reason),
            code_body(r.code, &r.msg),
        ),
    };
    state.record(entry.body(logged_body(&body, parsed)));
    // The bot answers HTTP 200 whatever happened.
    json_response(StatusCode::OK, answer)
}

/// Why a request was refused, and how to answer.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: i64,
    msg: Cow<'static, str>,
    reason: Cow<'static, str>,
    signature: SignatureCheck,
}

impl Refusal {
    fn new(
        code: i64,
        msg: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Refusal {
            status: StatusCode::OK,
            code,
            msg: msg.into(),
            reason: reason.into(),
            signature: SignatureCheck::None,
        }
    }

    fn status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

/// The body as logged: the parsed JSON, or the start of a body that is not JSON.
fn logged_body(raw: &[u8], parsed: Option<Value>) -> Value {
    parsed.unwrap_or_else(|| {
        Value::String(String::from_utf8_lossy(&raw[..raw.len().min(512)]).into_owned())
    })
}

/// The webhook's checks, in order. `Ok` carries the signature verdict.
fn check_webhook(
    state: &MockState,
    hook: &str,
    target: &str,
    len: usize,
    v: Option<&Value>,
) -> Result<SignatureCheck, Refusal> {
    let robot = state.robot(PLATFORM, hook);
    if robot.is_none() && !state.accept_unknown() {
        return Err(Refusal::new(19001, MSG_19001, "unknown hook"));
    }
    let windows = [Window::per_second(5), Window::per_minute(100)];
    if !matches!(state.limit(target, &windows, 0), LimitCheck::Ok) {
        return Err(Refusal::new(11232, MSG_11232, "over 5/s or 100/min"));
    }
    let v = v.ok_or_else(|| Refusal::new(9499, MSG_9499, "body is not JSON"))?;
    // Signature: `timestamp` (seconds) and `sign` in the body.
    let signature = match robot.as_ref().and_then(|r| r.secret.as_deref()) {
        None => SignatureCheck::NotRequired,
        Some(secret) => match check_sign(v, secret, state.now_ms().div_euclid(1000)) {
            Ok(()) => SignatureCheck::Verified,
            Err(why) => {
                let mut r = Refusal::new(19021, MSG_19021, why);
                r.signature = SignatureCheck::Failed;
                return Err(r);
            }
        },
    };
    let refuse = |code, msg, reason: Cow<'static, str>| {
        let mut r = Refusal::new(code, msg, reason);
        r.signature = signature;
        Err(r)
    };
    if len > WEBHOOK_BODY_LIMIT {
        return refuse(
            9499,
            MSG_9499,
            format!("body of {len} bytes is over 20 KB").into(),
        );
    }
    if let Err(why) = check_webhook_shape(v) {
        return refuse(9499, MSG_9499, why.into());
    }
    if let Some(r) = robot.as_ref().filter(|r| !r.keywords.is_empty()) {
        let mut texts = Vec::new();
        for key in ["content", "card"] {
            if let Some(c) = v.get(key) {
                collect_strings(c, &mut texts);
            }
        }
        let found = r
            .keywords
            .iter()
            .any(|k| texts.iter().any(|t| t.contains(k.as_str())));
        if !found {
            return refuse(19024, MSG_19024, "no keyword in the message".into());
        }
    }
    Ok(signature)
}

fn check_sign(v: &Value, secret: &str, now_secs: i64) -> Result<(), &'static str> {
    let ts = match v.get("timestamp") {
        Some(Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| "timestamp is not a number")?,
        Some(Value::Number(n)) => n.as_i64().ok_or("timestamp is not an integer")?,
        _ => return Err("timestamp missing"),
    };
    let sign = v
        .get("sign")
        .and_then(Value::as_str)
        .ok_or("sign missing")?;
    if (now_secs - ts).abs() > SIGN_WINDOW_SECS {
        return Err("timestamp is more than an hour away from the server's clock");
    }
    // Feishu: the string "{timestamp}\n{secret}" is the HMAC key over an empty message.
    let key = format!("{ts}\n{secret}");
    let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).map_err(|_| "bad key")?;
    let expected = B64.encode(mac.finalize().into_bytes());
    if bool::from(expected.as_bytes().ct_eq(sign.as_bytes())) {
        Ok(())
    } else {
        Err("sign does not match")
    }
}

/// The webhook's message shapes: `content` is an object; cards under `card`.
fn check_webhook_shape(v: &Value) -> Result<(), String> {
    let msg_type = v
        .get("msg_type")
        .and_then(Value::as_str)
        .ok_or("msg_type missing")?;
    let content = v.get("content");
    let field = |name: &str| -> Result<(), String> {
        match content.and_then(|c| c.get(name)).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => Ok(()),
            _ => Err(format!("{msg_type}: content.{name} missing")),
        }
    };
    match msg_type {
        "text" => field("text"),
        "image" => field("image_key"),
        "share_chat" => field("share_chat_id"),
        "post" => {
            let post = content
                .and_then(|c| c.get("post"))
                .and_then(Value::as_object)
                .ok_or("post: content.post missing")?;
            check_post_languages(post)
        }
        "interactive" => {
            let card = v
                .get("card")
                .and_then(Value::as_object)
                .ok_or("interactive: card missing")?;
            if card.contains_key("elements")
                || card.contains_key("i18n_elements")
                || card.contains_key("type")
            {
                Ok(())
            } else {
                Err("interactive: card has no elements".into())
            }
        }
        other => Err(format!("unknown msg_type `{other}`")),
    }
}

/// A post is `{"zh_cn": {"title":..,"content":[[..]]}, ...}`.
fn check_post_languages(post: &serde_json::Map<String, Value>) -> Result<(), String> {
    if post.is_empty() {
        return Err("post: no language".into());
    }
    for (lang, body) in post {
        if !body.get("content").is_some_and(Value::is_array) {
            return Err(format!(
                "post: {lang}.content must be an array of paragraphs"
            ));
        }
    }
    Ok(())
}

fn collect_strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Tenant access token

#[derive(Debug, Deserialize)]
struct TokenRequest {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    app_secret: String,
}

async fn tenant_token(State(state): State<Arc<MockState>>, body: Bytes) -> Response {
    let req: Option<TokenRequest> = serde_json::from_slice(&body).ok();
    let app_id = req.as_ref().map(|r| r.app_id.as_str()).unwrap_or("");
    let target = format!("feishu:app:{app_id}");
    let entry = LogEntry::new(P, "auth.tenant_access_token", target.as_str());
    let fail = |entry: LogEntry, code: i64, msg: &str| {
        state.record(entry.rejected(code, msg));
        json_response(
            StatusCode::BAD_REQUEST,
            json!({ "code": code, "msg": msg }).to_string(),
        )
    };
    let Some(req) = req.filter(|r| !r.app_id.is_empty() && !r.app_secret.is_empty()) else {
        return fail(
            entry,
            10003,
            "invalid param: app_id and app_secret are required",
        );
    };
    if let Some(i) = inject_token(&state, &target).await {
        state.record(injected_entry(entry, &i));
        return injected_response(&i, StatusCode::BAD_REQUEST);
    }
    let lifetime = match state.app(PLATFORM, &req.app_id) {
        Some(app) if app.app_secret == req.app_secret => state.token_lifetime(&app),
        Some(_) => return fail(entry, 10014, "app secret invalid"),
        None if state.accept_unknown() => state.config().token_lifetime_secs,
        None => return fail(entry, 10003, "invalid param: app_id not found"),
    };
    let now = state.now_ms();
    // Same token while it has more than 30 minutes left; else a new one.
    let (token, expire) = match state.tokens.current(PLATFORM, &req.app_id, now) {
        Some((t, left)) if left > TOKEN_REUSE_MIN_SECS => (t, left),
        _ => state.tokens.issue(PLATFORM, &req.app_id, now, lifetime),
    };
    state.record(entry.accepted());
    json_response(
        StatusCode::OK,
        json!({ "code": 0, "msg": "ok", "tenant_access_token": token, "expire": expire })
            .to_string(),
    )
}

// ---------------------------------------------------------------------------
// IM messages

#[derive(Debug, Deserialize)]
struct MessagesQuery {
    receive_id_type: Option<String>,
}

async fn messages(
    State(state): State<Arc<MockState>>,
    Query(q): Query<MessagesQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    // Who is calling: the token names the app.
    let app_id = match authorize(&state, &headers) {
        Ok(app_id) => app_id,
        Err(r) => {
            let entry = LogEntry::new(P, "im.messages", "feishu:app:");
            return refused(&state, entry, logged_body(&body, parsed), r);
        }
    };
    let target = format!("feishu:app:{app_id}");
    let entry = LogEntry::new(P, "im.messages", target.as_str());
    if let Some(i) = inject(&state, &target).await {
        state
            .log
            .record(injected_entry(entry, &i).body(logged_body(&body, parsed)));
        return injected_response(&i, StatusCode::BAD_REQUEST);
    }
    let outcome = check_message(&state, &app_id, &target, &q, body.len(), parsed.as_ref());
    let logged = logged_body(&body, parsed);
    match outcome {
        Ok(ok) => {
            let mut entry = entry.accepted().body(logged);
            if let Some(reason) = ok.duplicate_of {
                entry = entry.duplicate();
                entry.reason = Some(reason);
            }
            state.record(entry);
            if let Some(sent) = ok.sent {
                state.sent.insert(sent);
            }
            json_response(StatusCode::OK, ok.answer)
        }
        Err(r) => refused(&state, entry, logged, r),
    }
}

/// Log a refusal and answer it in the open API's shape.
fn refused(state: &MockState, entry: LogEntry, body: Value, r: Refusal) -> Response {
    state
        .log
        .record(entry.rejected(r.code, r.reason).body(body));
    let mut resp = json_response(
        r.status,
        json!({ "code": r.code, "msg": r.msg, "data": {} }).to_string(),
    );
    if r.status == StatusCode::TOO_MANY_REQUESTS {
        resp.headers_mut()
            .insert("x-ogw-ratelimit-reset", HeaderValue::from_static("1"));
    }
    resp
}

/// The app id behind the request's bearer token.
fn authorize(state: &MockState, headers: &HeaderMap) -> Result<String, Refusal> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return Err(
            Refusal::new(99991661, MSG_99991661, "no Authorization bearer token")
                .status(StatusCode::BAD_REQUEST),
        );
    };
    match state.tokens.check(PLATFORM, token, state.now_ms()) {
        TokenCheck::Valid { app_id } => Ok(app_id),
        TokenCheck::Expired => {
            Err(Refusal::new(99991663, MSG_99991663, "token expired")
                .status(StatusCode::BAD_REQUEST))
        }
        TokenCheck::Unknown => {
            Err(Refusal::new(99991663, MSG_99991663, "token unknown")
                .status(StatusCode::BAD_REQUEST))
        }
    }
}

/// An accepted message: the answer, whether it repeats an earlier uuid, and
/// (when it is new) the message to keep.
struct Accepted {
    answer: String,
    duplicate_of: Option<String>,
    sent: Option<SentMessage>,
}

/// The messages API's checks, in order, then dedup by uuid.
fn check_message(
    state: &MockState,
    app_id: &str,
    target: &str,
    q: &MessagesQuery,
    len: usize,
    v: Option<&Value>,
) -> Result<Accepted, Refusal> {
    let bad = |code: i64, msg: &'static str, reason: Cow<'static, str>| {
        Err(Refusal::new(code, msg, reason).status(StatusCode::BAD_REQUEST))
    };
    let invalid = |why: String| {
        Err(Refusal::new(230001, format!("invalid param: {why}"), why)
            .status(StatusCode::BAD_REQUEST))
    };
    if !matches!(
        state.limit(target, &[Window::per_second(50)], 0),
        LimitCheck::Ok
    ) {
        return Err(Refusal::new(99991400, MSG_99991400, "over 50/s per app")
            .status(StatusCode::TOO_MANY_REQUESTS));
    }
    let Some(v) = v else {
        return bad(9499, MSG_9499, "body is not JSON".into());
    };
    let receive_id_type = q.receive_id_type.as_deref().unwrap_or("");
    if !RECEIVE_ID_TYPES.contains(&receive_id_type) {
        return invalid(format!(
            "receive_id_type `{receive_id_type}` must be one of {RECEIVE_ID_TYPES:?}"
        ));
    }
    let receive_id = v.get("receive_id").and_then(Value::as_str).unwrap_or("");
    if receive_id.is_empty() {
        return invalid("receive_id missing".into());
    }
    let msg_type = v.get("msg_type").and_then(Value::as_str).unwrap_or("");
    if !APP_MSG_TYPES.contains(&msg_type) {
        return invalid(format!("msg_type `{msg_type}` is not a message type"));
    }
    let Some(content) = v.get("content").and_then(Value::as_str) else {
        return invalid("content must be a JSON string (stringified JSON)".into());
    };
    let Ok(parsed) = serde_json::from_str::<Value>(content) else {
        return invalid("content is not valid JSON".into());
    };
    if let Err(why) = check_app_content(msg_type, &parsed) {
        return invalid(why);
    }
    let limit = if msg_type == "text" {
        TEXT_BODY_LIMIT
    } else {
        RICH_BODY_LIMIT
    };
    if len > limit {
        let why = format!("body of {len} bytes is over the {msg_type} limit of {limit}");
        return bad(230025, "message content too long", why.into());
    }
    if receive_id_type == "open_id" && receive_id.starts_with("ou_outside") {
        return bad(
            230013,
            "Bot has NO availability to this user.",
            "recipient outside availability".into(),
        );
    }
    if receive_id_type == "chat_id" && receive_id.starts_with("oc_nobot") {
        return bad(
            230002,
            "Bot/User can NOT be out of the chat.",
            "bot not in chat".into(),
        );
    }
    // 5/s to one user of an app; a group's 5/s is shared by every bot in it
    // (platforms.md 2c), so a chat counts whichever app sends.
    let recipient_key = if receive_id_type == "chat_id" {
        format!("feishu:chat:{receive_id}")
    } else {
        format!("{target}:{receive_id_type}:{receive_id}")
    };
    if !matches!(
        state.limit(&recipient_key, &[Window::per_second(5)], 0),
        LimitCheck::Ok
    ) {
        return bad(230020, MSG_230020, "over 5/s to one recipient".into());
    }

    let now = state.now_ms();
    let mut message_id = format!("om_{}", uuid::Uuid::new_v4().simple());
    let mut duplicate_of = None;
    if let Some(u) = v
        .get("uuid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
    {
        if let Some(first) = dedup_uuid(&state.dedup, app_id, u, &message_id, now) {
            duplicate_of = Some(format!("uuid {u} already sent within the hour as {first}"));
            message_id = first;
        }
    }
    let chat_id = if receive_id_type == "chat_id" {
        receive_id.to_string()
    } else {
        format!("oc_p2p_{}", &message_id[3..19])
    };
    let sent = duplicate_of.is_none().then(|| {
        let mut m = SentMessage::new(
            PLATFORM,
            message_id.clone(),
            target,
            vec![format!("{receive_id_type}:{receive_id}")],
            json!({ "msg_type": msg_type, "content": parsed }),
            now,
        );
        m.extra.insert("chat_id".into(), json!(chat_id));
        m
    });
    let answer = json!({
        "code": 0,
        "msg": "success",
        "data": {
            "message_id": message_id,
            "root_id": "",
            "parent_id": "",
            "msg_type": msg_type,
            "create_time": now.to_string(),
            "update_time": now.to_string(),
            "deleted": false,
            "updated": false,
            "chat_id": chat_id,
            "sender": { "id": app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": "mock_tenant" },
            "body": { "content": content },
        }
    })
    .to_string();
    Ok(Accepted {
        answer,
        duplicate_of,
        sent,
    })
}

/// The app API's content shapes (the parsed `content` string).
fn check_app_content(msg_type: &str, c: &Value) -> Result<(), String> {
    let Some(obj) = c.as_object() else {
        return Err("content must encode a JSON object".into());
    };
    let field = |name: &str| match obj.get(name).and_then(Value::as_str) {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err(format!("{msg_type}: content.{name} missing")),
    };
    match msg_type {
        "text" => field("text"),
        "image" => field("image_key"),
        "share_chat" => field("chat_id"),
        "share_user" => field("user_id"),
        "post" => {
            if obj.contains_key("post") {
                return Err(
                    "post: content must not be wrapped in `post` (that is the webhook's shape)"
                        .into(),
                );
            }
            check_post_languages(obj)
        }
        "interactive" => {
            if obj.contains_key("elements")
                || obj.contains_key("i18n_elements")
                || obj.contains_key("type")
            {
                Ok(())
            } else {
                Err("interactive: the card has no elements".into())
            }
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// After the send: update (PATCH card, PUT text/post), recall, read receipts

/// Cards are updated within 14 days of sending.
pub const UPDATE_WINDOW_MS: i64 = 14 * 86_400_000;
/// Texts and posts are edited within the tenant's edit limit; the mock takes
/// 24 hours (the default recall limit; the edit limit's default is not
/// documented).
pub const EDIT_WINDOW_MS: i64 = 86_400_000;
/// The bot recalls its messages within the tenant's limit, 24 h by default.
pub const RECALL_WINDOW_MS: i64 = 86_400_000;
/// Read receipts are kept 7 days.
pub const READ_WINDOW_MS: i64 = 7 * 86_400_000;
/// A message is edited at most 20 times.
pub const MAX_EDITS: usize = 20;

const MSG_230001: &str = "Your request contains an invalid request parameter.";
const MSG_230009: &str = "Message can only be recalled within one days.";
const MSG_230011: &str = "The message is recalled.";
const MSG_230012: &str = "Bot is NOT the sender of the message.";
const MSG_230026: &str = "No permission to recall this message.";
const MSG_230031: &str = "Message can only be modified within 14 days after sending.";
const MSG_230033: &str =
    "Get the reading status must be done within 7 days after the message is sent.";
const MSG_230054: &str = "This operation is not supported for this message type.";

fn bad(code: i64, msg: &'static str, reason: impl Into<Cow<'static, str>>) -> Refusal {
    Refusal::new(code, msg, reason).status(StatusCode::BAD_REQUEST)
}

fn success() -> Response {
    json_response(
        StatusCode::OK,
        json!({ "code": 0, "msg": "success", "data": {} }).to_string(),
    )
}

/// The checks every call on a sent message shares, in Feishu's order: the
/// token, injected faults, the app's 50/s. `Ok` is the app id, the log
/// entry and the target; `Err` the answer already given.
async fn on_message(
    state: &MockState,
    headers: &HeaderMap,
    endpoint: &'static str,
    body: &Value,
) -> Result<(String, LogEntry), Response> {
    let app_id = match authorize(state, headers) {
        Ok(a) => a,
        Err(r) => {
            let entry = LogEntry::new(P, endpoint, "feishu:app:");
            return Err(refused(state, entry, body.clone(), r));
        }
    };
    let target = format!("feishu:app:{app_id}");
    let entry = LogEntry::new(P, endpoint, target.as_str());
    if let Some(i) = inject(state, &target).await {
        state.record(injected_entry(entry, &i).body(body.clone()));
        return Err(injected_response(&i, StatusCode::BAD_REQUEST));
    }
    if !matches!(
        state.limit(&target, &[Window::per_second(50)], 0),
        LimitCheck::Ok
    ) {
        let r = Refusal::new(99991400, MSG_99991400, "over 50/s per app")
            .status(StatusCode::TOO_MANY_REQUESTS);
        return Err(refused(state, entry, body.clone(), r));
    }
    Ok((app_id, entry))
}

/// The app's own message `id`, or the refusal: unknown → 230001, another
/// app's → `foreign` (230012 for updates and reads, 230026 for recalls).
fn own_message(
    state: &MockState,
    id: &str,
    target: &str,
    foreign: (i64, &'static str),
) -> Result<SentMessage, Refusal> {
    match state.sent.get(id) {
        Some(m) if m.platform == PLATFORM && m.target == target => Ok(m),
        Some(m) if m.platform == PLATFORM => Err(bad(
            foreign.0,
            foreign.1,
            format!("{id} was sent by {}", m.target),
        )),
        _ => Err(bad(
            230001,
            MSG_230001,
            format!("no message {id}: invalid message_id"),
        )),
    }
}

/// Turn a [`SentError`] into Feishu's answer for the operation.
fn sent_refusal(e: SentError, past_window: (i64, &'static str)) -> Refusal {
    match e {
        SentError::NotFound => bad(230001, MSG_230001, "invalid message_id"),
        SentError::Recalled => bad(230011, MSG_230011, "the message was recalled"),
        SentError::PastWindow => bad(past_window.0, past_window.1, "past the window"),
    }
}

fn msg_type_of(m: &SentMessage) -> &str {
    m.current()
        .get("msg_type")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Whether a card declares itself shared (`config.update_multi`), which
/// Feishu requires of a card before and after a PATCH.
fn update_multi(card: &Value) -> bool {
    card.pointer("/config/update_multi").and_then(Value::as_bool) == Some(true)
        // Card JSON 2.0 cards are always shared.
        || card.get("schema").and_then(Value::as_str) == Some("2.0")
}

async fn patch_card(
    State(state): State<Arc<MockState>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let logged = logged_body(&body, parsed.clone());
    on_sent_message(&state, &headers, "im.messages.patch", logged, |target| {
        check_patch(&state, target, &message_id, body.len(), parsed.as_ref())
    })
    .await
}

/// One operation on a sent message (update, edit, recall): the token and
/// fault checks every message endpoint makes, then `op` on the caller's
/// target, logged as accepted or with the platform's refusal.
async fn on_sent_message(
    state: &MockState,
    headers: &HeaderMap,
    endpoint: &'static str,
    logged: Value,
    op: impl FnOnce(&str) -> Result<(), Refusal>,
) -> Response {
    let (_, entry) = match on_message(state, headers, endpoint, &logged).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let target = entry.target.clone();
    match op(&target) {
        Ok(()) => {
            state.record(entry.accepted().body(logged));
            success()
        }
        Err(r) => refused(state, entry, logged, r),
    }
}

fn check_patch(
    state: &MockState,
    target: &str,
    id: &str,
    len: usize,
    v: Option<&Value>,
) -> Result<(), Refusal> {
    let v = v.ok_or_else(|| bad(9499, MSG_9499, "body is not JSON"))?;
    let card = v
        .get("content")
        .and_then(Value::as_str)
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .ok_or_else(|| {
            bad(
                230001,
                MSG_230001,
                "content must be the card as a JSON string",
            )
        })?;
    check_app_content("interactive", &card).map_err(|why| bad(230001, MSG_230001, why))?;
    if len > RICH_BODY_LIMIT {
        return Err(bad(
            230025,
            "The length of the message content reaches its limit.",
            format!("body of {len} bytes is over 30 KB"),
        ));
    }
    let m = own_message(state, id, target, (230012, MSG_230012))?;
    if msg_type_of(&m) != "interactive" {
        return Err(bad(
            230054,
            MSG_230054,
            "PATCH updates cards only; edit texts and posts with PUT",
        ));
    }
    let before = m.current().get("content").cloned().unwrap_or(Value::Null);
    if !update_multi(&before) || !update_multi(&card) {
        return Err(bad(
            230001,
            MSG_230001,
            "the card must declare config.update_multi = true before and after the update",
        ));
    }
    let per_message = format!("{target}:update:{id}");
    if !matches!(
        state.limit(&per_message, &[Window::per_second(5)], 0),
        LimitCheck::Ok
    ) {
        return Err(bad(230020, MSG_230020, "over 5 updates/s of one message"));
    }
    let content = json!({ "msg_type": "interactive", "content": card });
    state
        .sent
        .update(id, target, content, state.now_ms(), Some(UPDATE_WINDOW_MS))
        .map_err(|e| sent_refusal(e, (230031, MSG_230031)))
}

async fn edit_message(
    State(state): State<Arc<MockState>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let logged = logged_body(&body, parsed.clone());
    on_sent_message(&state, &headers, "im.messages.update", logged, |target| {
        check_edit(&state, target, &message_id, body.len(), parsed.as_ref())
    })
    .await
}

fn check_edit(
    state: &MockState,
    target: &str,
    id: &str,
    len: usize,
    v: Option<&Value>,
) -> Result<(), Refusal> {
    let v = v.ok_or_else(|| bad(9499, MSG_9499, "body is not JSON"))?;
    let msg_type = v.get("msg_type").and_then(Value::as_str).unwrap_or("");
    if !matches!(msg_type, "text" | "post") {
        return Err(bad(
            230001,
            MSG_230001,
            format!("msg_type `{msg_type}`: PUT edits text and post messages"),
        ));
    }
    let content = v
        .get("content")
        .and_then(Value::as_str)
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .ok_or_else(|| bad(230001, MSG_230001, "content must be a JSON string"))?;
    check_app_content(msg_type, &content).map_err(|why| bad(230001, MSG_230001, why))?;
    let limit = if msg_type == "text" {
        TEXT_BODY_LIMIT
    } else {
        RICH_BODY_LIMIT
    };
    if len > limit {
        return Err(bad(
            230025,
            "The length of the message content reaches its limit.",
            format!("body of {len} bytes is over the {msg_type} limit"),
        ));
    }
    let m = own_message(state, id, target, (230012, MSG_230012))?;
    if !matches!(msg_type_of(&m), "text" | "post") {
        return Err(bad(
            230054,
            MSG_230054,
            "PUT edits texts and posts; update cards with PATCH",
        ));
    }
    if m.revisions.len() > MAX_EDITS {
        return Err(bad(
            230001,
            MSG_230001,
            "a message can be edited at most 20 times",
        ));
    }
    let content = json!({ "msg_type": msg_type, "content": content });
    state
        .sent
        .update(id, target, content, state.now_ms(), Some(EDIT_WINDOW_MS))
        .map_err(|e| sent_refusal(e, (230031, MSG_230031)))
}

async fn recall(
    State(state): State<Arc<MockState>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let logged = json!({ "message_id": message_id });
    on_sent_message(&state, &headers, "im.messages.delete", logged, |target| {
        own_message(&state, &message_id, target, (230026, MSG_230026))?;
        state
            .sent
            .recall(&message_id, target, state.now_ms(), Some(RECALL_WINDOW_MS))
            .map_err(|e| sent_refusal(e, (230009, MSG_230009)))
    })
    .await
}

#[derive(Debug, Deserialize)]
struct ReadUsersQuery {
    user_id_type: Option<String>,
}

async fn read_users(
    State(state): State<Arc<MockState>>,
    Path(message_id): Path<String>,
    Query(q): Query<ReadUsersQuery>,
    headers: HeaderMap,
) -> Response {
    let logged = json!({ "message_id": message_id, "user_id_type": q.user_id_type });
    let (_, entry) = match on_message(&state, &headers, "im.messages.read_users", &logged).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let target = entry.target.clone();
    let user_id_type = q.user_id_type.unwrap_or_default();
    let outcome = if !matches!(user_id_type.as_str(), "open_id" | "user_id" | "union_id") {
        Err(bad(
            230001,
            MSG_230001,
            "user_id_type must be open_id, user_id or union_id",
        ))
    } else {
        own_message(&state, &message_id, &target, (230012, MSG_230012)).and_then(|m| {
            if state.now_ms() - m.sent_at_ms > READ_WINDOW_MS {
                Err(bad(230033, MSG_230033, "sent more than 7 days ago"))
            } else {
                Ok(m)
            }
        })
    };
    match outcome {
        Ok(m) => {
            state.record(entry.accepted().body(logged));
            let items: Vec<Value> = m
                .read_by
                .iter()
                .map(|(user, at)| {
                    json!({
                        "user_id_type": user_id_type,
                        "user_id": user,
                        "timestamp": at.to_string(),
                        "tenant_key": "mock_tenant",
                    })
                })
                .collect();
            json_response(
                StatusCode::OK,
                json!({
                    "code": 0,
                    "msg": "success",
                    "data": { "items": items, "has_more": false, "page_token": "" },
                })
                .to_string(),
            )
        }
        Err(r) => refused(&state, entry, logged, r),
    }
}

// ---------------------------------------------------------------------------
// Urgent pushes (加急)

/// Users per urgent call.
const URGENT_MAX_USERS: usize = 200;
/// Unread urgent pushes a user may have.
const URGENT_MAX_UNREAD: usize = 200;
const MSG_230023: &str = "The user has too many unread urgent messages.";
const MSG_230024: &str = "Reach the upper limit of urgent message.";

#[derive(Debug, Deserialize)]
struct UrgentQuery {
    user_id_type: Option<String>,
}

async fn urgent_app(
    state: State<Arc<MockState>>,
    id: Path<String>,
    q: Query<UrgentQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    urgent(state, id, q, headers, body, "app").await
}

async fn urgent_sms(
    state: State<Arc<MockState>>,
    id: Path<String>,
    q: Query<UrgentQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    urgent(state, id, q, headers, body, "sms").await
}

async fn urgent_phone(
    state: State<Arc<MockState>>,
    id: Path<String>,
    q: Query<UrgentQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    urgent(state, id, q, headers, body, "phone").await
}

async fn urgent(
    State(state): State<Arc<MockState>>,
    Path(message_id): Path<String>,
    Query(q): Query<UrgentQuery>,
    headers: HeaderMap,
    body: Bytes,
    kind: &'static str,
) -> Response {
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let logged = logged_body(&body, parsed.clone());
    let endpoint = match kind {
        "app" => "im.messages.urgent_app",
        "sms" => "im.messages.urgent_sms",
        _ => "im.messages.urgent_phone",
    };
    let (_, entry) = match on_message(&state, &headers, endpoint, &logged).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let target = entry.target.clone();
    match check_urgent(&state, &target, &message_id, &q, parsed.as_ref(), kind) {
        Ok(invalid) => {
            state.record(entry.accepted().body(logged));
            json_response(
                StatusCode::OK,
                json!({
                    "code": 0,
                    "msg": "success",
                    "data": { "invalid_user_id_list": invalid },
                })
                .to_string(),
            )
        }
        Err(r) => refused(&state, entry, logged, r),
    }
}

/// The urgent checks, in order; `Ok` lists the users not pushed (outside
/// the message's chat) after pushing the others.
fn check_urgent(
    state: &MockState,
    target: &str,
    id: &str,
    q: &UrgentQuery,
    v: Option<&Value>,
    kind: &str,
) -> Result<Vec<String>, Refusal> {
    if !matches!(
        state.limit(&format!("{target}:urgent"), &[Window::per_minute(1_000)], 0),
        LimitCheck::Ok
    ) {
        return Err(
            Refusal::new(99991400, MSG_99991400, "over 1,000 urgent pushes a minute")
                .status(StatusCode::TOO_MANY_REQUESTS),
        );
    }
    let user_id_type = q.user_id_type.as_deref().unwrap_or("");
    if !matches!(user_id_type, "open_id" | "user_id" | "union_id") {
        return Err(bad(
            230001,
            MSG_230001,
            "user_id_type must be open_id, user_id or union_id",
        ));
    }
    let v = v.ok_or_else(|| bad(9499, MSG_9499, "body is not JSON"))?;
    let users: Vec<String> = v
        .get("user_id_list")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if users.is_empty() || users.len() > URGENT_MAX_USERS {
        return Err(bad(
            230001,
            MSG_230001,
            format!("user_id_list must name 1..=200 users, got {}", users.len()),
        ));
    }
    let m = own_message(state, id, target, (230012, MSG_230012))?;
    if m.recalled_at_ms.is_some() {
        return Err(sent_refusal(SentError::Recalled, (0, "")));
    }
    // Who is in the message's chat: the user it went to, or (a group) anyone
    // but the test hook's outsiders.
    let in_chat = |u: &str| match m.recipients.first().and_then(|r| r.split_once(':')) {
        Some(("chat_id", _)) => !u.starts_with("ou_outside"),
        Some((_, id)) => id == u,
        None => false,
    };
    let (valid, invalid): (Vec<String>, Vec<String>) = users.into_iter().partition(|u| in_chat(u));
    if valid.is_empty() {
        return Err(bad(
            230001,
            MSG_230001,
            format!("none of {invalid:?} is in the message's chat"),
        ));
    }
    if let Some(u) = valid
        .iter()
        .find(|u| state.sent.unread_urgent(u) >= URGENT_MAX_UNREAD)
    {
        return Err(bad(
            230023,
            MSG_230023,
            format!("{u} has 200 unread urgent messages"),
        ));
    }
    let push = UrgentPush {
        kind: kind.to_string(),
        users: valid,
        at_ms: state.now_ms(),
    };
    if push.paid() {
        let app_id = target.strip_prefix("feishu:app:").unwrap_or_default();
        let quota = state.app(PLATFORM, app_id).and_then(|a| a.urgent_quota);
        if let Some(q) = quota {
            let used = state.sent.paid_pushes(target);
            if used + push.users.len() as u64 > q {
                return Err(bad(
                    230024,
                    MSG_230024,
                    format!("urgent quota of {q} exhausted ({used} used)"),
                ));
            }
        }
    }
    state
        .sent
        .push_urgent(id, target, push)
        .map_err(|e| sent_refusal(e, (0, "")))?;
    Ok(invalid)
}

// ---------------------------------------------------------------------------
// Card clicks

/// The callback `value` of the button of `action` on `card` (a button
/// imrelay drew names its action under `imrelay_action`).
fn find_button(card: &Value, action: &str) -> Option<Value> {
    match card {
        Value::Object(o) => {
            if o.get("tag").and_then(Value::as_str) == Some("button") {
                let value = match o.get("value") {
                    Some(v @ Value::Object(_)) => Some(v.clone()),
                    Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
                    _ => None,
                };
                if let Some(v) = value
                    .filter(|v| v.get(ACTION_VALUE_ACTION).and_then(Value::as_str) == Some(action))
                {
                    return Some(v);
                }
            }
            o.values().find_map(|v| find_button(v, action))
        }
        Value::Array(a) => a.iter().find_map(|v| find_button(v, action)),
        _ => None,
    }
}

/// Fire a `card.action.trigger` for a click by `user` on the `action` button
/// of `m`, encrypted and signed with the app's callback secrets; a card in
/// the answer replaces the message's card, as Feishu does.
pub(crate) async fn click(
    state: &MockState,
    m: &SentMessage,
    action: &str,
    user: &str,
) -> Result<Value, ClickError> {
    let app_id = m
        .target
        .strip_prefix("feishu:app:")
        .ok_or_else(|| ClickError::new(StatusCode::BAD_REQUEST, "not an app's message"))?;
    let cb = app_callback(state, PLATFORM, app_id)?;
    let current = m.current();
    if current.get("msg_type").and_then(Value::as_str) != Some("interactive") {
        return Err(ClickError::new(
            StatusCode::CONFLICT,
            format!("{} is not a card: it has no buttons", m.message_id),
        ));
    }
    let value = find_button(&current["content"], action).ok_or_else(|| {
        ClickError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the current card of {} has no button with action `{action}`",
                m.message_id
            ),
        )
    })?;
    let chat_id = m
        .extra
        .get("chat_id")
        .and_then(Value::as_str)
        .unwrap_or("oc_mock_chat");
    let event = feishu_card_action_event(
        cb.token.as_deref().unwrap_or_default(),
        app_id,
        user,
        &value,
        &m.message_id,
        chat_id,
    );
    let mut spec = CallbackSpec::new(CallbackKind::FeishuCardAction, cb.url);
    // Signed at the platform's time (the mock's clock, which tests move).
    spec.timestamp = Some(state.now_ms() / 1000);
    spec.token = cb.token.map(Secret::new);
    spec.encrypt_key = cb.encrypt_key.map(Secret::new);
    spec.payload = Some(event.to_string());
    // Feishu gives the receiver 3 seconds.
    spec.timeout_ms = Some(CLICK_DEADLINE_MS);
    let result = fire(spec)
        .await
        .map_err(|e| ClickError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    let reply = result
        .reply
        .as_deref()
        .and_then(|r| serde_json::from_str::<Value>(r).ok());
    let card = reply.as_ref().filter(|_| result.ok).and_then(reply_card);
    if let Some(card) = &card {
        let content = json!({ "msg_type": "interactive", "content": card });
        state
            .sent
            .update(&m.message_id, &m.target, content, state.now_ms(), None)
            .map_err(|e| {
                ClickError::new(StatusCode::CONFLICT, format!("applying the card: {e:?}"))
            })?;
    }
    let revisions = state
        .sent
        .get(&m.message_id)
        .map_or(0, |m| m.revisions.len());
    Ok(json!({
        "platform": "feishu",
        "message_id": m.message_id,
        "event": event,
        "callback": result,
        "toast": reply.as_ref().and_then(|r| r.get("toast")).cloned(),
        "applied_card": card,
        "revisions": revisions,
    }))
}

/// How long Feishu waits for a card callback's answer.
pub const CLICK_DEADLINE_MS: u64 = 3000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_vector_and_window() {
        // platforms.md §6.5.
        let v = json!({"timestamp": "1599360473", "sign": "/eYKrXQBzTjUZJ3s6NX16VxGbTwmK7AEs8/FnvC1CSw="});
        assert_eq!(check_sign(&v, "this is secret", 1599360473), Ok(()));
        assert_eq!(check_sign(&v, "this is secret", 1599360473 + 3600), Ok(()));
        assert!(check_sign(&v, "this is secret", 1599360473 + 3601).is_err());
        assert!(check_sign(&v, "this is secret", 1599360473 - 3601).is_err());
        assert_eq!(
            check_sign(&v, "other", 1599360473),
            Err("sign does not match")
        );
        assert_eq!(check_sign(&json!({}), "s", 0), Err("timestamp missing"));
    }

    #[test]
    fn shapes() {
        assert!(check_webhook_shape(&json!({"msg_type":"text","content":{"text":"hi"}})).is_ok());
        assert!(
            check_webhook_shape(&json!({"msg_type":"text","content":"{\"text\":\"hi\"}"})).is_err()
        );
        assert!(check_webhook_shape(
            &json!({"msg_type":"post","content":{"zh_cn":{"content":[]}}})
        )
        .is_err());
        assert!(check_webhook_shape(
            &json!({"msg_type":"post","content":{"post":{"zh_cn":{"content":[]}}}})
        )
        .is_ok());
        assert!(check_webhook_shape(&json!({"msg_type":"nope"})).is_err());
        assert!(check_app_content("post", &json!({"post":{"zh_cn":{"content":[]}}})).is_err());
        assert!(check_app_content("post", &json!({"zh_cn":{"title":"t","content":[]}})).is_ok());
        assert!(check_app_content("share_chat", &json!({"chat_id":"oc_1"})).is_ok());
    }

    #[test]
    fn buttons_are_found_by_action_in_object_or_string_values() {
        let card = json!({"elements": [
            {"tag": "div", "text": {"tag": "lark_md", "content": "x"}},
            {"tag": "action", "actions": [
                {"tag": "button", "url": "https://runbook"},
                {"tag": "button", "value": {"imrelay_message": "m", "imrelay_action": "ack"}},
                {"tag": "button", "value": "{\"imrelay_message\":\"m\",\"imrelay_action\":\"resolve\"}"},
            ]},
        ]});
        assert_eq!(
            find_button(&card, "ack"),
            Some(json!({"imrelay_message": "m", "imrelay_action": "ack"}))
        );
        assert_eq!(
            find_button(&card, "resolve").unwrap()["imrelay_action"],
            "resolve"
        );
        assert_eq!(find_button(&card, "silence:1h"), None);
        assert!(update_multi(&json!({"config": {"update_multi": true}})));
        assert!(update_multi(&json!({"schema": "2.0"})));
        assert!(!update_multi(&json!({"config": {}})));
    }

    #[test]
    fn uuid_dedup_window() {
        let s = DedupStore::default();
        assert_eq!(dedup_uuid(&s, "a", "u", "om_1", 0), None);
        assert_eq!(
            dedup_uuid(&s, "a", "u", "om_2", 1000).as_deref(),
            Some("om_1")
        );
        assert_eq!(dedup_uuid(&s, "b", "u", "om_3", 1000), None);
        assert_eq!(dedup_uuid(&s, "a", "u", "om_4", UUID_WINDOW_MS + 1), None);
    }
}
