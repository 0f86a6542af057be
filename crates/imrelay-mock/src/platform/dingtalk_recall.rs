//! DingTalk recall and read receipts for app messages.
//!
//! | method | path | target | checks |
//! |---|---|---|---|
//! | POST | `/v1.0/robot/otoMessages/batchRecall` | `dingtalk:app:{appKey}` | token (HTTP 401), `robotCode`, 1..20 `processQueryKeys`; per key in `failedResult`: not this app's, already recalled, or sent more than 24 h ago |
//! | POST | `/v1.0/robot/groupMessages/recall` | `dingtalk:app:{appKey}` | the same, and `openConversationId` must be the group the message went to; 24 h (the 1:1 window, applied conservatively) |
//! | POST | `/topapi/message/corpconversation/recall?access_token=` | `dingtalk:app:{appkey}` | token (40014/42001), `agent_id`, `msg_task_id` of this app's notice (else 40035), within 24 h (else 40035 `消息已超过撤回时限`) |
//! | POST | `/topapi/message/corpconversation/getsendresult?access_token=` | `dingtalk:app:{appkey}` | token, this app's `task_id`; `send_result.read_user_id_list` / `unread_user_id_list` from the registry's reads |
//! | GET | `/v1.0/robot/oToMessages/readStatus?processQueryKey=&robotCode=` | `dingtalk:app:{appKey}` | token, this app's key; `messageReadInfoList` with `readStatus` `READ`/`UNREAD` |
//! | POST | `/v1.0/robot/groupMessages/query` | `dingtalk:app:{appKey}` | token, this app's key in that `openConversationId`; `readUserIds` (one page, `hasMore: false`) |
//!
//! A robot key is a plain message's `processQueryKey` or a card's
//! `carrierId`. Mock choices (not published by DingTalk): the failure
//! reasons' wording, the work notice errcodes, `READ`/`UNREAD`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::dingtalk::{
    errcode, non_empty, oapi_injected, oapi_token, parse_body, str_at, v1_caller, v1_error,
    v1_injected, with_body, DAY_MS, PLATFORM,
};
use super::query_param;
use crate::faults::inject;
use crate::log::LogEntry;
use crate::sent::{SentError, SentMessage};
use crate::state::MockState;

const MAX_RECALL_KEYS: usize = 20;

pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/v1.0/robot/otoMessages/batchRecall", post(oto_recall))
        .route("/v1.0/robot/groupMessages/recall", post(group_recall))
        .route(
            "/topapi/message/corpconversation/recall",
            post(work_notice_recall),
        )
        .route(
            "/topapi/message/corpconversation/getsendresult",
            post(send_result),
        )
        .route("/v1.0/robot/oToMessages/readStatus", get(robot_read_status))
        .route("/v1.0/robot/groupMessages/query", post(group_read_query))
}

/// The robot message a key names: a plain message by its `processQueryKey`,
/// a card by its delivery's `carrierId`.
fn robot_message(s: &MockState, key: &str) -> Option<SentMessage> {
    s.sent.get(key).or_else(|| {
        s.sent
            .list(Some(super::dingtalk::P), None)
            .into_iter()
            .find(|m| m.extra.get("carrierId").and_then(Value::as_str) == Some(key))
    })
}

/// Recall every key; `group` names the conversation the keys must be in.
fn recall_keys(s: &MockState, target: &str, keys: &[String], group: Option<&str>) -> Value {
    let now = s.now_ms();
    let mut success = Vec::new();
    let mut failed = Map::new();
    for key in keys {
        let found = robot_message(s, key)
            .filter(|m| group.is_none_or(|g| m.recipients.first().map(String::as_str) == Some(g)));
        let outcome = match found {
            Some(m) => s.sent.recall(&m.message_id, target, now, Some(DAY_MS)),
            None => Err(SentError::NotFound),
        };
        match outcome {
            Ok(()) => success.push(key.clone()),
            Err(e) => {
                failed.insert(key.clone(), json!(reason(e)));
            }
        }
    }
    json!({"successResult": success, "failedResult": failed})
}

fn reason(e: SentError) -> &'static str {
    match e {
        SentError::NotFound => "processQueryKey not found for this robot",
        SentError::Recalled => "message already recalled",
        SentError::PastWindow => "message sent more than 24 hours ago cannot be recalled",
    }
}

async fn robot_recall(
    s: &MockState,
    headers: &HeaderMap,
    raw: &Bytes,
    endpoint: &'static str,
    group: bool,
) -> Response {
    let body = parse_body(raw);
    let app_key = match v1_caller(s, headers, endpoint, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, endpoint, target.clone()), &body);
    if let Some(inj) = inject(s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let b = body.clone().unwrap_or(Value::Null);
    let keys: Vec<String> = b
        .get("processQueryKeys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let refusal = if !non_empty(&b, &["robotCode"]) {
        Some(("invalidParameter.robotCode.empty", "robotCode is required"))
    } else if keys.is_empty() {
        Some((
            "invalidParameter.processQueryKeys.empty",
            "processQueryKeys is required",
        ))
    } else if keys.len() > MAX_RECALL_KEYS {
        Some((
            "invalidParameter.processQueryKeys.overMax",
            "at most 20 processQueryKeys per call",
        ))
    } else if group && !non_empty(&b, &["openConversationId"]) {
        Some((
            "invalidParameter.openConversationId.empty",
            "openConversationId is required",
        ))
    } else {
        None
    };
    if let Some((code, why)) = refusal {
        s.record(entry().rejected(code, why));
        return v1_error(axum::http::StatusCode::BAD_REQUEST, code, why);
    }
    let conversation = group.then(|| str_at(&b, &["openConversationId"]).unwrap_or_default());
    let answer = recall_keys(s, &target, &keys, conversation);
    let mut e = entry().accepted();
    let failed = answer["failedResult"].as_object().map_or(0, Map::len);
    if failed > 0 {
        e.reason = Some(format!("{failed} of {} keys not recalled", keys.len()));
    }
    s.record(e);
    Json(answer).into_response()
}

async fn oto_recall(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    robot_recall(&s, &headers, &raw, "robot.oto_recall", false).await
}

async fn group_recall(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    robot_recall(&s, &headers, &raw, "robot.group_recall", true).await
}

/// An oapi call's app (by `?access_token=`), logged and refused when the
/// token is bad.
fn oapi_caller(
    s: &MockState,
    query: Option<&str>,
    endpoint: &'static str,
    body: &Option<Value>,
) -> Result<String, Box<Response>> {
    let token = query_param(query, "access_token").unwrap_or_default();
    oapi_token(s, &token).map_err(|(code, msg, why)| {
        s.record(
            with_body(LogEntry::new(PLATFORM, endpoint, "dingtalk:app:?"), body)
                .rejected(code, why),
        );
        Box::new(errcode(code, msg))
    })
}

/// A number sent as a number or a string (DingTalk's oapi takes both).
fn number_at(b: &Value, field: &str) -> Option<i64> {
    match b.get(field)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

async fn work_notice_recall(
    State(s): State<Arc<MockState>>,
    RawQuery(query): RawQuery,
    raw: Bytes,
) -> Response {
    let body = parse_body(&raw);
    let endpoint = "work_notice.recall";
    let app_key = match oapi_caller(&s, query.as_deref(), endpoint, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, endpoint, target.clone()), &body);
    if let Some(inj) = inject(&s, &target).await {
        return oapi_injected(&s, entry(), inj);
    }
    let b = body.clone().unwrap_or(Value::Null);
    let (Some(_), Some(task)) = (number_at(&b, "agent_id"), number_at(&b, "msg_task_id")) else {
        s.record(entry().rejected(40035, "agent_id and msg_task_id are required numbers"));
        return errcode(40035, "不合法的参数");
    };
    match s
        .sent
        .recall(&task.to_string(), &target, s.now_ms(), Some(DAY_MS))
    {
        Ok(()) => {
            s.record(entry().accepted());
            errcode(0, "ok")
        }
        Err(SentError::PastWindow) => {
            s.record(entry().rejected(40035, "sent more than 24 hours ago"));
            errcode(40035, "消息已超过撤回时限")
        }
        Err(e) => {
            s.record(entry().rejected(40035, reason(e)));
            errcode(40035, "不合法的参数")
        }
    }
}

/// Who of `m`'s recipients read it, and who not yet.
fn split_reads(m: &SentMessage) -> (Vec<String>, Vec<String>) {
    m.recipients
        .iter()
        .cloned()
        .partition(|u| m.read_by.iter().any(|(r, _)| r == u))
}

async fn send_result(
    State(s): State<Arc<MockState>>,
    RawQuery(query): RawQuery,
    raw: Bytes,
) -> Response {
    let body = parse_body(&raw);
    let endpoint = "work_notice.send_result";
    let app_key = match oapi_caller(&s, query.as_deref(), endpoint, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, endpoint, target.clone()), &body);
    if let Some(inj) = inject(&s, &target).await {
        return oapi_injected(&s, entry(), inj);
    }
    let b = body.clone().unwrap_or(Value::Null);
    let found = number_at(&b, "task_id")
        .and_then(|t| s.sent.get(&t.to_string()))
        .filter(|m| m.target == target);
    let Some(m) = found else {
        s.record(entry().rejected(40035, "no such task_id of this app"));
        return errcode(40035, "不合法的参数");
    };
    let (read, unread) = split_reads(&m);
    s.record(entry().accepted());
    Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "send_result": {
            "read_user_id_list": read,
            "unread_user_id_list": unread,
            "invalid_user_id_list": [],
            "forbidden_user_id_list": [],
            "failed_user_id_list": [],
            "invalid_dept_id_list": [],
        },
    }))
    .into_response()
}

async fn robot_read_status(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let endpoint = "robot.read_status";
    let key = query_param(query.as_deref(), "processQueryKey").unwrap_or_default();
    let shown = Some(json!({"processQueryKey": key}));
    let app_key = match v1_caller(&s, &headers, endpoint, &shown) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, endpoint, target.clone()), &shown);
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let Some(m) = robot_message(&s, &key).filter(|m| m.target == target) else {
        let code = "invalidParameter.processQueryKey.notExist";
        s.record(entry().rejected(code, "no such processQueryKey of this app"));
        return v1_error(
            axum::http::StatusCode::BAD_REQUEST,
            code,
            "processQueryKey not found",
        );
    };
    let infos: Vec<Value> = m
        .recipients
        .iter()
        .map(|u| {
            let read = m.read_by.iter().find(|(r, _)| r == u);
            json!({
                "name": u,
                "userId": u,
                "readStatus": if read.is_some() { "READ" } else { "UNREAD" },
                "readTimestamp": read.map_or(0, |(_, at)| *at),
            })
        })
        .collect();
    s.record(entry().accepted());
    Json(json!({"sendStatus": "SUCCESS", "messageReadInfoList": infos})).into_response()
}

async fn group_read_query(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let endpoint = "robot.group_query";
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, endpoint, &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = format!("dingtalk:app:{app_key}");
    let entry = || with_body(LogEntry::new(PLATFORM, endpoint, target.clone()), &body);
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let b = body.clone().unwrap_or(Value::Null);
    let key = str_at(&b, &["processQueryKey"]).unwrap_or_default();
    let cid = str_at(&b, &["openConversationId"]).unwrap_or_default();
    let found = robot_message(&s, key)
        .filter(|m| m.target == target && m.recipients.first().map(String::as_str) == Some(cid));
    let Some(m) = found else {
        let code = "invalidParameter.processQueryKey.notExist";
        s.record(entry().rejected(code, "no such processQueryKey of this app in that group"));
        return v1_error(
            axum::http::StatusCode::BAD_REQUEST,
            code,
            "processQueryKey not found",
        );
    };
    let read: Vec<&String> = m.read_by.iter().map(|(u, _)| u).collect();
    s.record(entry().accepted());
    Json(json!({
        "readUserIds": read,
        "readUsers": read.iter().map(|u| json!({"userId": u})).collect::<Vec<_>>(),
        "sendStatus": "SUCCESS",
        "hasMore": false,
    }))
    .into_response()
}
