//! DingTalk DING: an app robot's urgent push in the app, by SMS or by phone.
//!
//! | method | path | target | checks |
//! |---|---|---|---|
//! | POST | `/v1.0/robot/ding/send` (header `x-acs-dingtalk-access-token`) | `dingtalk:app:{appKey}` | token (HTTP 401 `InvalidAuthentication`); then HTTP 400: over 6,000 a minute → `toomuch.msg`; `robotCode` not the app's robot (its app key) → `invalid.chatbotId`; `remindType` not 1, 2 or 3 or an empty `content` → `invalidParameter.param.invalid`; no receivers → `miss.staffId`; over 200 (app) or 20 (SMS, phone) → `ding.receivercount.limit`; SMS and phone beyond the app's `urgent_quota` → `ding.serverquota.insufficient` |
//!
//! The answer is `{"openDingId": .., "failedList": {reason: [userId, ..]}}`.
//! Mock convention (as in batchSend): userIds starting with `invalid` are not
//! in the organisation and come back in `failedList` under
//! `userId not found`; when none is left the answer is `miss.staffId`.
//!
//! Each DING is kept in the message registry (`GET /_mock/messages`) under
//! its `openDingId`, recipients the users it reached, content
//! `{"remindType", "content"}`, and one `urgent` entry (`app`, `sms`,
//! `phone`) naming them.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::dingtalk::{
    parse_body, str_at, v1_caller, v1_error, v1_injected, with_body, P, PLATFORM,
};
use crate::faults::inject;
use crate::limiter::{LimitCheck, Window};
use crate::log::LogEntry;
use crate::sent::{SentMessage, UrgentPush};
use crate::state::MockState;

const ENDPOINT: &str = "robot.ding.send";

pub fn routes() -> Router<Arc<MockState>> {
    Router::new().route("/v1.0/robot/ding/send", post(ding_send))
}

/// The kind a `remindType` names.
fn kind_of(remind_type: i64) -> Option<&'static str> {
    match remind_type {
        1 => Some("app"),
        2 => Some("sms"),
        3 => Some("phone"),
        _ => None,
    }
}

async fn ding_send(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, ENDPOINT, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, ENDPOINT, target.clone()), &body);
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let b = body.clone().unwrap_or(Value::Null);
    match check(&s, &target, &app_key, &b) {
        Ok((push, failed)) => {
            let id = format!("ding-{}", uuid::Uuid::new_v4().simple());
            let mut m = SentMessage::new(
                P,
                id.clone(),
                target.clone(),
                push.users.clone(),
                json!({
                    "remindType": b.get("remindType"),
                    "content": str_at(&b, &["content"]),
                }),
                push.at_ms,
            );
            m.urgent.push(push);
            s.sent.insert(m);
            s.record(entry().accepted());
            let failed_list = if failed.is_empty() {
                json!({})
            } else {
                json!({ "userId not found": failed })
            };
            Json(json!({"openDingId": id, "failedList": failed_list})).into_response()
        }
        Err((code, message, why)) => {
            s.record(entry().rejected(code, why));
            v1_error(StatusCode::BAD_REQUEST, code, message)
        }
    }
}

/// A refusal: (code, message as DingTalk words it, log reason).
type Refusal = (&'static str, &'static str, String);

/// The DING checks, in order; `Ok` is the push made and the users left out.
fn check(
    s: &MockState,
    target: &str,
    app_key: &str,
    b: &Value,
) -> Result<(UrgentPush, Vec<String>), Refusal> {
    if !matches!(
        s.limit(&format!("{target}:ding"), &[Window::per_minute(6_000)], 0),
        LimitCheck::Ok
    ) {
        return Err(("toomuch.msg", "send too fast", "over 6,000 a minute".into()));
    }
    if str_at(b, &["robotCode"]) != Some(app_key) {
        return Err((
            "invalid.chatbotId",
            "invalid.chatbotId",
            format!("robotCode {:?} is not this app's robot", b.get("robotCode")),
        ));
    }
    let Some(kind) = b
        .get("remindType")
        .and_then(Value::as_i64)
        .and_then(kind_of)
    else {
        return Err((
            "invalidParameter.param.invalid",
            "参数不合法",
            "remindType must be 1, 2 or 3".into(),
        ));
    };
    if str_at(b, &["content"]).is_none_or(str::is_empty) {
        return Err((
            "invalidParameter.param.invalid",
            "参数不合法",
            "content is required".into(),
        ));
    }
    let users: Vec<String> = b
        .get("receiverUserIdList")
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
            "miss.staffId",
            "miss.staffId",
            "no receiverUserIdList".into(),
        ));
    }
    let max = if kind == "app" { 200 } else { 20 };
    if users.len() > max {
        return Err((
            "ding.receivercount.limit",
            "ding receiver count limit",
            format!("{} receivers > {max} for a {kind} DING", users.len()),
        ));
    }
    let (failed, valid): (Vec<String>, Vec<String>) =
        users.into_iter().partition(|u| u.starts_with("invalid"));
    if valid.is_empty() {
        return Err(("miss.staffId", "miss.staffId", "no valid receiver".into()));
    }
    let push = UrgentPush {
        kind: kind.to_string(),
        users: valid,
        at_ms: s.now_ms(),
    };
    if push.paid() {
        if let Some(q) = s.app(P, app_key).and_then(|a| a.urgent_quota) {
            let used = s.sent.paid_pushes(target);
            if used + push.users.len() as u64 > q {
                return Err((
                    "ding.serverquota.insufficient",
                    "ding server quota insufficient",
                    format!("DING quota of {q} exhausted ({used} used)"),
                ));
            }
        }
    }
    Ok((push, failed))
}
