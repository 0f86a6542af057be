//! DingTalk: the custom robot webhook, app tokens (legacy and v1.0), work
//! notices and the app robot's 1:1 batch send, answering in DingTalk's shapes.
//!
//! | method | path | target | checks |
//! |---|---|---|---|
//! | POST | `/robot/send?access_token=&timestamp=&sign=` | `dingtalk:robot:{token}` | token (300001), sign and 1 h window (310000 `sign not match` / `invalid timestamp`), body ≤ 20,000 bytes (460101), shape and msgtype (300001 `param error` / 400105), keywords (310000 `keywords not in content`), 20/min then blocked 10 min (130101) |
//! | GET | `/gettoken?appkey=&appsecret=` | `dingtalk:app:{appkey}` | credentials (40089) |
//! | POST | `/v1.0/oauth2/accessToken` | `dingtalk:app:{appKey}` | credentials (HTTP 400) |
//! | POST | `/topapi/message/corpconversation/asyncsend_v2?access_token=` | `dingtalk:app:{appkey}` | token (40014 unknown, 42001 expired), shape (40035), `msg` ≤ 2,048 bytes, ≤ 100 userids; same app + content + user within a day is accepted but logged as a duplicate (DingTalk drops it silently) |
//! | POST | `/v1.0/robot/oToMessages/batchSend` (header `x-acs-dingtalk-access-token`) | `dingtalk:app:{appkey}` | token (HTTP 401 `InvalidAuthentication`), `invalidParameter.*` (HTTP 400), ≤ 20 userIds |
//! | POST | `/v1.0/robot/groupMessages/send` (same header) | `dingtalk:app:{appkey}` | token, `robotCode`, `openConversationId`, `msgKey`/`msgParam` as batchSend |
//!
//! Cards, recall and read receipts are served by
//! [`dingtalk_card`](super::dingtalk_card) and
//! [`dingtalk_recall`](super::dingtalk_recall); DING by
//! [`dingtalk_ding`](super::dingtalk_ding).
//!
//! Every accepted app message is kept in the message registry
//! (`state.sent`, `GET /_mock/messages`): a work notice under its `task_id`
//! (with the users it went to; not when DingTalk drops it as a same-day
//! duplicate), a robot message under its `processQueryKey` (with the users it
//! reached, or the group's `openConversationId`), its content as
//! `{msgKey, msgParam}` with `msgParam` parsed.
//!
//! Mock conventions (not DingTalk behaviour, so partial failures are testable):
//! in batchSend, userIds starting with `invalid` come back in
//! `invalidStaffIdList` and userIds starting with `throttled` in
//! `flowControlledStaffIdList`; the others are accepted.
//!
//! Tokens: both token endpoints hand out the app's current token while it is
//! valid (DingTalk returns the same token within its lifetime), else a new one
//! with the configured lifetime.
//!
//! Robots that were never declared are accepted only with `accept_unknown`
//! (no signature, keyword or rate checks: a benchmark sink). Injected codes are
//! rendered as `{errcode, errmsg}` on the oapi endpoints; on the v1.0 endpoints
//! token codes (40014, 42001) become HTTP 401 `InvalidAuthentication`, rate codes
//! (130101, 410100) HTTP 403 `Forbidden.AccessDenied.QpsLimitForApi`, -1 HTTP 500
//! `ServiceUnavailable`, and other codes HTTP 400 with the number as `code`.
//!
//! UNSURE (platforms.md has no source): the codes for a wrong app secret (40089
//! legacy; HTTP 400 `invalidClientSecret` v1.0), for a malformed work notice
//! (40035), and the robot's `param error` for missing fields (300001).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::MockPlatform;
use crate::faults::{inject, inject_token, Injected};
use crate::limiter::{LimitCheck, Window};
use crate::log::{LogEntry, SignatureCheck};
use crate::platform::{injected_status, query_param};
use crate::sent::SentMessage;
use crate::state::MockState;
use crate::tokens::TokenCheck;

pub(crate) const PLATFORM: &str = "dingtalk";
pub(crate) const P: MockPlatform = MockPlatform::Dingtalk;

/// Robot limits: 20 a minute, then blocked for 10 minutes.
const ROBOT_WINDOW: [Window; 1] = [Window::per_minute(20)];
const ROBOT_BLOCK_MS: i64 = 600_000;
/// The robot's sign window: one hour either way.
const SIGN_WINDOW_MS: i64 = 3_600_000;
const ROBOT_BODY_LIMIT: usize = 20_000;
const WORK_NOTICE_MSG_LIMIT: usize = 2_048;
const WORK_NOTICE_MAX_USERS: usize = 100;
const BATCH_SEND_MAX_USERS: usize = 20;
const MSG_PARAM_LIMIT: usize = 15_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

/// DingTalk's routes.
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/robot/send", post(robot_send))
        .route("/gettoken", get(legacy_token))
        .route("/v1.0/oauth2/accessToken", post(v1_token))
        .route(
            "/topapi/message/corpconversation/asyncsend_v2",
            post(work_notice),
        )
        .route("/v1.0/robot/oToMessages/batchSend", post(batch_send))
        .route("/v1.0/robot/groupMessages/send", post(group_send))
        .merge(super::dingtalk_card::routes())
        .merge(super::dingtalk_recall::routes())
        .merge(super::dingtalk_ding::routes())
}

// ---------------------------------------------------------------- helpers

pub(crate) fn errcode(code: i64, msg: &str) -> Response {
    Json(json!({"errcode": code, "errmsg": msg})).into_response()
}

pub(crate) fn v1_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "requestid": uuid::Uuid::new_v4().simple().to_string(),
    });
    (status, Json(body)).into_response()
}

/// An injected HTTP failure, in the oapi shape.
fn oapi_http(status: u16) -> Response {
    let status = injected_status(status);
    (
        status,
        Json(json!({"errcode": -1, "errmsg": format!("injected HTTP {}", status.as_u16())})),
    )
        .into_response()
}

/// An injected failure on an oapi or robot endpoint: logged, answered in the
/// oapi shape.
pub(crate) fn oapi_injected(s: &MockState, entry: LogEntry, inj: Injected) -> Response {
    match inj {
        Injected::Code { code, msg } => {
            s.record(entry.rejected(code, "injected fault"));
            errcode(code, &msg)
        }
        Injected::Http(status) => {
            s.log
                .record(entry.rejected(format!("http {status}"), "injected fault"));
            oapi_http(status)
        }
        Injected::Answer(a) => {
            s.record(entry.rejected(a.log_code(), a.reason()));
            a.response()
        }
    }
}

/// An injected failure on a v1.0 endpoint, in the v1.0 shape.
pub(crate) fn v1_injected(inj: &Injected) -> (Response, String) {
    match inj {
        Injected::Answer(a) => (a.response(), a.log_code()),
        Injected::Http(status) => {
            let st = injected_status(*status);
            (
                v1_error(st, "ServiceUnavailable", "injected"),
                format!("http {status}"),
            )
        }
        Injected::Code { code, msg } => {
            let (st, name) = match code {
                40014 | 42001 => (
                    StatusCode::UNAUTHORIZED,
                    "InvalidAuthentication".to_string(),
                ),
                130101 | 410100 => (
                    StatusCode::FORBIDDEN,
                    "Forbidden.AccessDenied.QpsLimitForApi".to_string(),
                ),
                -1 => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceUnavailable".to_string(),
                ),
                other => (StatusCode::BAD_REQUEST, other.to_string()),
            };
            let resp = v1_error(st, &name, msg);
            (resp, name)
        }
    }
}

pub(crate) fn parse_body(body: &Bytes) -> Option<Value> {
    serde_json::from_slice(body).ok()
}

pub(crate) fn with_body(entry: LogEntry, body: &Option<Value>) -> LogEntry {
    match body {
        Some(b) => entry.body(b.clone()),
        None => entry,
    }
}

/// `base64(HMAC-SHA256(secret, "{ts}\n{secret}"))`, DingTalk's robot sign.
fn robot_sign(secret: &str, timestamp: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(secret.as_bytes());
    B64.encode(mac.finalize().into_bytes())
}

pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

pub(crate) fn non_empty(v: &Value, path: &[&str]) -> bool {
    str_at(v, path).is_some_and(|s| !s.is_empty())
}

// ---------------------------------------------------------------- robot

/// Why a robot message body is refused: (errcode, errmsg, log reason).
type Refusal = (i64, &'static str, String);

fn param_error(what: impl Into<String>) -> Refusal {
    (300001, "param error", what.into())
}

/// Check a robot body's shape (field names are case-sensitive, as on DingTalk)
/// and return the text the keyword check looks at.
fn robot_content(body: &Value) -> Result<String, Refusal> {
    let msgtype = body.get("msgtype").and_then(Value::as_str).unwrap_or("");
    match msgtype {
        "text" => str_at(body, &["text", "content"])
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| param_error("text.content is missing")),
        "markdown" => {
            if !non_empty(body, &["markdown", "title"]) || !non_empty(body, &["markdown", "text"]) {
                return Err(param_error("markdown.title and markdown.text are required"));
            }
            Ok(format!(
                "{}\n{}",
                str_at(body, &["markdown", "title"]).unwrap_or(""),
                str_at(body, &["markdown", "text"]).unwrap_or("")
            ))
        }
        "link" => {
            for f in ["title", "text", "messageUrl"] {
                if !non_empty(body, &["link", f]) {
                    return Err(param_error(format!("link.{f} is missing")));
                }
            }
            Ok(format!(
                "{}\n{}",
                str_at(body, &["link", "title"]).unwrap_or(""),
                str_at(body, &["link", "text"]).unwrap_or("")
            ))
        }
        "actionCard" => {
            let card = body.get("actionCard").cloned().unwrap_or(Value::Null);
            if !non_empty(&card, &["title"]) || !non_empty(&card, &["text"]) {
                return Err(param_error(
                    "actionCard.title and actionCard.text are required",
                ));
            }
            let single = non_empty(&card, &["singleTitle"]) && non_empty(&card, &["singleURL"]);
            let btns = card.get("btns").and_then(Value::as_array).is_some_and(|b| {
                !b.is_empty()
                    && b.iter()
                        .all(|x| non_empty(x, &["title"]) && non_empty(x, &["actionURL"]))
            });
            if !single && !btns {
                return Err(param_error(
                    "actionCard needs singleTitle+singleURL or btns[{title, actionURL}]",
                ));
            }
            Ok(format!(
                "{}\n{}",
                str_at(&card, &["title"]).unwrap_or(""),
                str_at(&card, &["text"]).unwrap_or("")
            ))
        }
        "feedCard" => {
            let links = body
                .get("feedCard")
                .and_then(|f| f.get("links"))
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or_else(|| param_error("feedCard.links is missing or empty"))?;
            let mut text = String::new();
            for l in links {
                if !non_empty(l, &["title"]) || !non_empty(l, &["messageURL"]) {
                    return Err(param_error("feedCard.links[] needs title and messageURL"));
                }
                text.push_str(str_at(l, &["title"]).unwrap_or(""));
                text.push('\n');
            }
            Ok(text)
        }
        other => Err((
            400105,
            "不支持的消息类型，请使用文档中支持的消息类型",
            format!("unsupported msgtype `{other}`"),
        )),
    }
}

async fn robot_send(
    State(s): State<Arc<MockState>>,
    RawQuery(query): RawQuery,
    raw: Bytes,
) -> Response {
    let token = query_param(query.as_deref(), "access_token").unwrap_or_default();
    let target = format!("dingtalk:robot:{token}");
    let body = parse_body(&raw);
    let entry = || with_body(LogEntry::new(PLATFORM, "robot.send", target.clone()), &body);

    if let Some(inj) = inject(&s, &target).await {
        return oapi_injected(&s, entry(), inj);
    }

    let robot = if token.is_empty() {
        None
    } else {
        s.robot(P, &token)
    };
    let declared = robot.is_some();
    let Some(robot) = robot.or_else(|| {
        (s.accept_unknown() && !token.is_empty())
            .then(|| crate::config::RobotConfig::new(P, &token))
    }) else {
        let why = if token.is_empty() {
            "access_token is missing"
        } else {
            "unknown robot token"
        };
        s.record(entry().rejected(300001, why));
        return errcode(300001, "token is not exist");
    };

    // Signature, checked the way DingTalk does: a 1 h window, then the HMAC.
    let signature = match &robot.secret {
        None => SignatureCheck::NotRequired,
        Some(secret) => {
            let ts = query_param(query.as_deref(), "timestamp");
            let sign = query_param(query.as_deref(), "sign");
            let now = s.now_ms();
            let ts_ok = ts
                .as_deref()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| (now - t).abs() <= SIGN_WINDOW_MS);
            if !ts_ok {
                s.record(
                    entry()
                        .rejected(
                            310000,
                            format!(
                                "invalid timestamp {:?} (mock now {now})",
                                ts.as_deref().unwrap_or("")
                            ),
                        )
                        .signature(SignatureCheck::Failed),
                );
                return errcode(310000, "invalid timestamp");
            }
            let expected = robot_sign(secret, ts.as_deref().unwrap_or(""));
            let given = sign.unwrap_or_default();
            if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
                s.record(
                    entry()
                        .rejected(310000, "sign not match")
                        .signature(SignatureCheck::Failed),
                );
                return errcode(310000, "sign not match");
            }
            SignatureCheck::Verified
        }
    };
    let entry = || entry().signature(signature);

    if raw.len() > ROBOT_BODY_LIMIT {
        s.record(entry().rejected(
            460101,
            format!("body of {} bytes > {ROBOT_BODY_LIMIT}", raw.len()),
        ));
        return errcode(460101, "message too large, exceed 20000 bytes");
    }
    let Some(json_body) = body.as_ref() else {
        s.record(entry().rejected(300001, "body is not JSON"));
        return errcode(300001, "param error");
    };
    let content = match robot_content(json_body) {
        Ok(c) => c,
        Err((code, msg, why)) => {
            s.record(entry().rejected(code, why));
            return errcode(code, msg);
        }
    };
    if !robot.keywords.is_empty() && !robot.keywords.iter().any(|k| content.contains(k.as_str())) {
        s.log
            .record(entry().rejected(310000, "keywords not in content"));
        return errcode(310000, "keywords not in content");
    }
    // Undeclared robots (accept_unknown) are a benchmark sink: no rate limit.
    if declared {
        match s.limit(&target, &ROBOT_WINDOW, ROBOT_BLOCK_MS) {
            LimitCheck::Ok => {}
            LimitCheck::Exceeded => {
                s.record(entry().rejected(
                    130101,
                    "over 20 messages in a minute; robot blocked for 10 minutes",
                ));
                return errcode(130101, "send too fast, exceed 20 times per minute");
            }
            LimitCheck::Blocked { until_ms } => {
                s.log
                    .record(entry().rejected(130101, format!("robot blocked until {until_ms}")));
                return errcode(130101, "send too fast, exceed 20 times per minute");
            }
        }
    }
    s.record(entry().accepted());
    errcode(0, "ok")
}

// ---------------------------------------------------------------- tokens

/// Check app credentials; `Ok(lifetime)` when they are good.
fn app_credentials(s: &MockState, app_key: &str, app_secret: &str) -> Option<u64> {
    match s.app(P, app_key) {
        Some(app) if bool::from(app.app_secret.as_bytes().ct_eq(app_secret.as_bytes())) => {
            Some(s.token_lifetime(&app))
        }
        Some(_) => None,
        None if s.accept_unknown() && !app_key.is_empty() => Some(s.config().token_lifetime_secs),
        None => None,
    }
}

/// The app's current token while valid (DingTalk hands out the same one),
/// else a new one.
fn current_or_issue(s: &MockState, app_key: &str, lifetime: u64) -> (String, u64) {
    let now = s.now_ms();
    s.tokens
        .current(P, app_key, now)
        .unwrap_or_else(|| s.tokens.issue(P, app_key, now, lifetime))
}

async fn legacy_token(State(s): State<Arc<MockState>>, RawQuery(query): RawQuery) -> Response {
    let app_key = query_param(query.as_deref(), "appkey").unwrap_or_default();
    let app_secret = query_param(query.as_deref(), "appsecret").unwrap_or_default();
    let target = format!("dingtalk:app:{app_key}");
    let entry = || LogEntry::new(PLATFORM, "token", target.clone());
    if let Some(inj) = inject_token(&s, &target).await {
        return oapi_injected(&s, entry(), inj);
    }
    let Some(lifetime) = app_credentials(&s, &app_key, &app_secret) else {
        s.log
            .record(entry().rejected(40089, "unknown appkey or wrong appsecret"));
        return errcode(40089, "不合法的corpid或corpsecret");
    };
    let (token, expires_in) = current_or_issue(&s, &app_key, lifetime);
    s.record(entry().accepted());
    Json(json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}))
        .into_response()
}

async fn v1_token(State(s): State<Arc<MockState>>, raw: Bytes) -> Response {
    let body = parse_body(&raw).unwrap_or(Value::Null);
    let app_key = str_at(&body, &["appKey"]).unwrap_or("").to_string();
    let app_secret = str_at(&body, &["appSecret"]).unwrap_or("");
    let target = format!("dingtalk:app:{app_key}");
    // The log never keeps the app secret.
    let entry =
        || LogEntry::new(PLATFORM, "token", target.clone()).body(json!({"appKey": app_key}));
    if let Some(inj) = inject_token(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    if app_key.is_empty() || app_secret.is_empty() {
        s.log
            .record(entry().rejected("invalidParameter", "appKey or appSecret missing"));
        return v1_error(
            StatusCode::BAD_REQUEST,
            "invalidParameter.appKey.empty",
            "appKey and appSecret are required",
        );
    }
    let Some(lifetime) = app_credentials(&s, &app_key, app_secret) else {
        s.log
            .record(entry().rejected("invalidClientSecret", "unknown appKey or wrong appSecret"));
        return v1_error(
            StatusCode::BAD_REQUEST,
            "invalidClientSecret",
            "无效的appKey或appSecret",
        );
    };
    let (token, expires_in) = current_or_issue(&s, &app_key, lifetime);
    s.record(entry().accepted());
    Json(json!({"accessToken": token, "expireIn": expires_in})).into_response()
}

// ---------------------------------------------------------------- work notice

/// Check a work notice `msg` (the types DingTalk lists, with their fields).
fn check_work_notice_msg(msg: &Value) -> Result<(), String> {
    let t = msg.get("msgtype").and_then(Value::as_str).unwrap_or("");
    let need = |path: &[&str]| -> Result<(), String> {
        if non_empty(msg, path) {
            Ok(())
        } else {
            Err(format!("msg.{} is missing", path.join(".")))
        }
    };
    match t {
        "text" => need(&["text", "content"]),
        "image" => need(&["image", "media_id"]),
        "voice" => need(&["voice", "media_id"]),
        "file" => need(&["file", "media_id"]),
        "link" => {
            need(&["link", "messageUrl"])?;
            need(&["link", "title"])?;
            need(&["link", "text"])
        }
        "markdown" => {
            need(&["markdown", "title"])?;
            need(&["markdown", "text"])
        }
        "oa" => need(&["oa", "message_url"]),
        "action_card" => {
            need(&["action_card", "title"])?;
            need(&["action_card", "markdown"])?;
            let single = non_empty(msg, &["action_card", "single_title"])
                && non_empty(msg, &["action_card", "single_url"]);
            let btns = msg
                .get("action_card")
                .and_then(|c| c.get("btn_json_list"))
                .and_then(Value::as_array)
                .is_some_and(|b| {
                    !b.is_empty()
                        && b.iter()
                            .all(|x| non_empty(x, &["title"]) && non_empty(x, &["action_url"]))
                });
            if single || btns {
                Ok(())
            } else {
                Err("action_card needs single_title+single_url or btn_json_list[{title, action_url}]".into())
            }
        }
        other => Err(format!("unsupported msg.msgtype `{other}`")),
    }
}

/// Resolve an oapi `?access_token=`: `Ok(app_key)` or the legacy error answer.
pub(crate) fn oapi_token(
    s: &MockState,
    token: &str,
) -> Result<String, (i64, &'static str, &'static str)> {
    match s.tokens.check(P, token, s.now_ms()) {
        TokenCheck::Valid { app_id } => Ok(app_id),
        TokenCheck::Expired => Err((42001, "access_token expired", "expired access_token")),
        TokenCheck::Unknown => Err((40014, "不合法的access_token", "unknown access_token")),
    }
}

async fn work_notice(
    State(s): State<Arc<MockState>>,
    RawQuery(query): RawQuery,
    raw: Bytes,
) -> Response {
    let token = query_param(query.as_deref(), "access_token").unwrap_or_default();
    let body = parse_body(&raw);
    let app_key = match oapi_token(&s, &token) {
        Ok(a) => a,
        Err((code, msg, why)) => {
            s.record(
                with_body(
                    LogEntry::new(PLATFORM, "work_notice", "dingtalk:app:?"),
                    &body,
                )
                .rejected(code, why),
            );
            return errcode(code, msg);
        }
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "work_notice", target.clone()),
            &body,
        )
    };
    if let Some(inj) = inject(&s, &target).await {
        return oapi_injected(&s, entry(), inj);
    }
    let refuse = |why: String| {
        s.record(entry().rejected(40035, why));
        errcode(40035, "不合法的参数")
    };
    let Some(b) = body.as_ref() else {
        return refuse("body is not JSON".into());
    };
    if !b
        .get("agent_id")
        .is_some_and(|a| a.is_i64() || a.as_str().is_some_and(|s| s.parse::<i64>().is_ok()))
    {
        return refuse("agent_id is missing or not a number".into());
    }
    let users: Vec<&str> = str_at(b, &["userid_list"])
        .map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let to_all = b
        .get("to_all_user")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if users.is_empty() && !non_empty(b, &["dept_id_list"]) && !to_all {
        return refuse("one of userid_list, dept_id_list, to_all_user is required".into());
    }
    if users.len() > WORK_NOTICE_MAX_USERS {
        return refuse(format!("{} userids > {WORK_NOTICE_MAX_USERS}", users.len()));
    }
    let Some(msg) = b.get("msg") else {
        return refuse("msg is missing".into());
    };
    if let Err(why) = check_work_notice_msg(msg) {
        return refuse(why);
    }
    let msg_text = msg.to_string();
    if msg_text.len() > WORK_NOTICE_MSG_LIMIT {
        return refuse(format!(
            "msg of {} bytes > {WORK_NOTICE_MSG_LIMIT}",
            msg_text.len()
        ));
    }
    // Same app + same content + same user: delivered once a day. The request
    // still succeeds; a request every one of whose users already had it is
    // logged as a duplicate.
    let mut h = DefaultHasher::new();
    msg_text.hash(&mut h);
    let content = h.finish();
    let mut fresh = users.is_empty();
    for u in &users {
        let key = format!("dingtalk:wn-dedup:{app_key}:{content:x}:{u}");
        if !s.dedup.seen(&key, DAY_MS, s.now_ms()) {
            fresh = true;
        }
    }
    let mut e = entry().accepted();
    if !fresh {
        e = e.duplicate();
        e.reason = Some("same content to the same users within a day: dropped silently".into());
    }
    let task_id = 256_000_000_000u64 + s.record(e);
    // A notice every user already had is dropped: nobody sees a message.
    if fresh {
        s.sent.insert(SentMessage::new(
            P,
            task_id.to_string(),
            target.clone(),
            users.iter().map(|u| u.to_string()).collect(),
            msg.clone(),
            s.now_ms(),
        ));
    }
    Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "task_id": task_id,
        "request_id": uuid::Uuid::new_v4().simple().to_string(),
    }))
    .into_response()
}

// ---------------------------------------------------------------- robot 1:1

const MSG_KEYS: &[(&str, &[&str])] = &[
    ("sampleText", &["content"]),
    ("sampleMarkdown", &["title", "text"]),
    ("sampleImageMsg", &["photoURL"]),
    ("sampleLink", &["text", "title", "messageUrl"]),
    (
        "sampleActionCard",
        &["title", "text", "singleTitle", "singleURL"],
    ),
    (
        "sampleActionCard2",
        &[
            "title",
            "text",
            "actionTitle1",
            "actionURL1",
            "actionTitle2",
            "actionURL2",
        ],
    ),
    (
        "sampleActionCard3",
        &[
            "title",
            "text",
            "actionTitle1",
            "actionURL1",
            "actionTitle2",
            "actionURL2",
            "actionTitle3",
            "actionURL3",
        ],
    ),
    (
        "sampleActionCard4",
        &[
            "title",
            "text",
            "actionTitle1",
            "actionURL1",
            "actionTitle2",
            "actionURL2",
            "actionTitle3",
            "actionURL3",
            "actionTitle4",
            "actionURL4",
        ],
    ),
    (
        "sampleActionCard5",
        &[
            "title",
            "text",
            "actionTitle1",
            "actionURL1",
            "actionTitle2",
            "actionURL2",
            "actionTitle3",
            "actionURL3",
            "actionTitle4",
            "actionURL4",
            "actionTitle5",
            "actionURL5",
        ],
    ),
    (
        "sampleActionCard6",
        &[
            "title",
            "text",
            "buttonTitle1",
            "buttonUrl1",
            "buttonTitle2",
            "buttonUrl2",
        ],
    ),
    ("sampleFile", &["mediaId", "fileName", "fileType"]),
    ("sampleAudio", &["mediaId", "duration"]),
    ("sampleVideo", &["duration", "videoMediaId", "videoType"]),
];

/// Check a batchSend body: `Err((code, message))` for HTTP 400.
fn check_batch_send(b: &Value) -> Result<Vec<String>, (&'static str, String)> {
    if !non_empty(b, &["robotCode"]) {
        return Err((
            "invalidParameter.robotCode.empty",
            "robotCode is required".into(),
        ));
    }
    let users: Vec<String> = b
        .get("userIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if users.is_empty() {
        return Err((
            "invalidParameter.userIds.empty",
            "userIds is required".into(),
        ));
    }
    if users.len() > BATCH_SEND_MAX_USERS {
        return Err((
            "invalidParameter.userIds.overMax",
            format!("{} userIds > {BATCH_SEND_MAX_USERS}", users.len()),
        ));
    }
    check_msg(b)?;
    Ok(users)
}

/// The app a v1.0 call's `x-acs-dingtalk-access-token` belongs to, or the
/// logged HTTP 401 `InvalidAuthentication` answer.
pub(crate) fn v1_caller(
    s: &MockState,
    headers: &HeaderMap,
    endpoint: &'static str,
    body: &Option<Value>,
) -> Result<String, Box<Response>> {
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match s.tokens.check(P, token, s.now_ms()) {
        TokenCheck::Valid { app_id } => Ok(app_id),
        other => {
            let why = if other == TokenCheck::Expired {
                "expired access token"
            } else {
                "unknown access token"
            };
            s.record(
                with_body(LogEntry::new(PLATFORM, endpoint, "dingtalk:app:?"), body)
                    .rejected("InvalidAuthentication", why),
            );
            Err(Box::new(v1_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthentication",
                "不合法的access_token",
            )))
        }
    }
}

/// Check a robot message's `msgKey` and `msgParam` (a JSON string whose
/// fields the key needs).
fn check_msg(b: &Value) -> Result<(), (&'static str, String)> {
    let key = str_at(b, &["msgKey"]).unwrap_or("");
    let Some((_, fields)) = MSG_KEYS.iter().find(|(k, _)| *k == key) else {
        return Err((
            "invalidParameter.msgKey.invalid",
            format!("unknown msgKey `{key}`"),
        ));
    };
    // msgParam is a JSON *string*, not an object.
    let Some(param) = b.get("msgParam").and_then(Value::as_str) else {
        return Err((
            "invalidParameter.msgParam.invalid",
            "msgParam must be a JSON string".into(),
        ));
    };
    if param.len() > MSG_PARAM_LIMIT {
        return Err((
            "invalidParameter.msgParam.invalid",
            format!("msgParam of {} bytes > {MSG_PARAM_LIMIT}", param.len()),
        ));
    }
    let Ok(param) = serde_json::from_str::<Value>(param) else {
        return Err((
            "invalidParameter.msgParam.invalid",
            "msgParam is not JSON".into(),
        ));
    };
    if let Some(f) = fields.iter().find(|f| !non_empty(&param, &[f])) {
        return Err((
            "invalidParameter.msgParam.invalid",
            format!("msgParam.{f} is missing for {key}"),
        ));
    }
    Ok(())
}

/// What an app robot message shows, as the registry keeps it.
fn app_robot_content(b: &Value) -> Value {
    json!({
        "msgKey": b.get("msgKey").cloned().unwrap_or(Value::Null),
        "msgParam": b
            .get("msgParam")
            .and_then(Value::as_str)
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .unwrap_or(Value::Null),
    })
}

async fn group_send(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, "robot.group_send", &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "robot.group_send", target.clone()),
            &body,
        )
    };
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let checked = body
        .as_ref()
        .ok_or(("invalidParameter.body", "body is not JSON".to_string()))
        .and_then(|b| {
            if !non_empty(b, &["robotCode"]) {
                return Err((
                    "invalidParameter.robotCode.empty",
                    "robotCode is required".into(),
                ));
            }
            if !non_empty(b, &["openConversationId"]) {
                return Err((
                    "invalidParameter.openConversationId.empty",
                    "openConversationId is required".into(),
                ));
            }
            check_msg(b).map(|_| b)
        });
    let b = match checked {
        Ok(b) => b,
        Err((code, why)) => {
            s.record(entry().rejected(code, why.clone()));
            return v1_error(StatusCode::BAD_REQUEST, code, &why);
        }
    };
    let seq = s.record(entry().accepted());
    let key = format!("mock-pqk-{seq}");
    let cid = str_at(b, &["openConversationId"]).unwrap_or_default();
    s.sent.insert(SentMessage::new(
        P,
        key.clone(),
        target.clone(),
        vec![cid.to_string()],
        app_robot_content(b),
        s.now_ms(),
    ));
    Json(json!({"processQueryKey": key})).into_response()
}

async fn batch_send(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, "robot.batch_send", &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "robot.batch_send", target.clone()),
            &body,
        )
    };
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let users = match body
        .as_ref()
        .ok_or(("invalidParameter.body", "body is not JSON".to_string()))
        .and_then(check_batch_send)
    {
        Ok(u) => u,
        Err((code, why)) => {
            s.record(entry().rejected(code, why.clone()));
            return v1_error(StatusCode::BAD_REQUEST, code, &why);
        }
    };
    let invalid: Vec<&String> = users.iter().filter(|u| u.starts_with("invalid")).collect();
    let throttled: Vec<&String> = users
        .iter()
        .filter(|u| u.starts_with("throttled"))
        .collect();
    let mut e = entry().accepted();
    if !invalid.is_empty() || !throttled.is_empty() {
        e.reason = Some(format!(
            "partial: {} invalid, {} flow-controlled",
            invalid.len(),
            throttled.len()
        ));
    }
    let seq = s.record(e);
    let key = format!("mock-pqk-{seq}");
    let delivered: Vec<String> = users
        .iter()
        .filter(|u| !u.starts_with("invalid") && !u.starts_with("throttled"))
        .cloned()
        .collect();
    if !delivered.is_empty() {
        if let Some(b) = body.as_ref() {
            s.sent.insert(SentMessage::new(
                P,
                key.clone(),
                target.clone(),
                delivered,
                app_robot_content(b),
                s.now_ms(),
            ));
        }
    }
    Json(json!({
        "processQueryKey": key,
        "invalidStaffIdList": invalid,
        "flowControlledStaffIdList": throttled,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    // platforms.md §6.5 (the same vector the SDK's signer is checked against).
    #[test]
    fn robot_sign_vector() {
        assert_eq!(
            robot_sign("SEC_this_is_secret", "1577000000000"),
            "9nj3Vql0XE92d3DA3bb2X5oIV/jCn5uoYXVqz0cKTlA="
        );
    }

    #[test]
    fn robot_shapes_are_case_sensitive() {
        let ok = json!({"msgtype": "link", "link": {"title": "t", "text": "x", "messageUrl": "u"}});
        assert!(robot_content(&ok).is_ok());
        let wrong =
            json!({"msgtype": "link", "link": {"title": "t", "text": "x", "messageURL": "u"}});
        assert_eq!(robot_content(&wrong).unwrap_err().0, 300001);
        let feed = json!({"msgtype": "feedCard", "feedCard": {"links": [{"title": "t", "messageUrl": "u"}]}});
        assert_eq!(robot_content(&feed).unwrap_err().0, 300001);
        assert_eq!(
            robot_content(&json!({"msgtype": "image"})).unwrap_err().0,
            400105
        );
    }

    #[test]
    fn batch_send_checks() {
        let good = json!({"robotCode": "k", "userIds": ["u"], "msgKey": "sampleText", "msgParam": "{\"content\":\"x\"}"});
        assert_eq!(check_batch_send(&good).unwrap(), vec!["u"]);
        let obj = json!({"robotCode": "k", "userIds": ["u"], "msgKey": "sampleText", "msgParam": {"content": "x"}});
        assert_eq!(
            check_batch_send(&obj).unwrap_err().0,
            "invalidParameter.msgParam.invalid"
        );
        let many = json!({"robotCode": "k", "userIds": (0..21).map(|i| format!("u{i}")).collect::<Vec<_>>(), "msgKey": "sampleText", "msgParam": "{}"});
        assert_eq!(
            check_batch_send(&many).unwrap_err().0,
            "invalidParameter.userIds.overMax"
        );
        let key =
            json!({"robotCode": "k", "userIds": ["u"], "msgKey": "sampleNope", "msgParam": "{}"});
        assert_eq!(
            check_batch_send(&key).unwrap_err().0,
            "invalidParameter.msgKey.invalid"
        );
    }
}
