//! DingTalk interactive cards: callback route registration, create and
//! deliver, update in place, and the click callback DingTalk sends when a
//! user presses a button.
//!
//! | method | path | target | checks |
//! |---|---|---|---|
//! | POST | `/v1.0/card/callbacks/register` | `dingtalk:app:{appKey}` | token (HTTP 401), `callbackRouteKey` and `callbackUrl` |
//! | POST | `/v1.0/card/instances/createAndDeliver` | `dingtalk:app:{appKey}` | token, `cardTemplateId`, `outTrackId`, `cardData.cardParamMap` of strings, `openSpaceId` `dtv1.card//IM_GROUP.{cid}` (with `imGroupOpenDeliverModel.robotCode`) or `dtv1.card//IM_ROBOT.{userId}` (with `imRobotOpenDeliverModel.spaceType = IM_ROBOT`), `callbackType = HTTP` needs `callbackRouteKey`; the same `outTrackId` again from the same app is the same card (logged as a duplicate) |
//! | PUT | `/v1.0/card/instances` | `dingtalk:app:{appKey}` | token, the card exists and is this app's (else HTTP 400 `param.outTrackIdNotExist`); `cardUpdateOptions.updateCardDataByKey` merges, otherwise the params are replaced |
//!
//! Every card is kept in the message registry under its `outTrackId`, with
//! each update a revision; `extra` holds its `carrierId` (the delivery's
//! `processQueryKey`, answered in `deliverResults` and taken by the recall
//! APIs), `openSpaceId` and `callbackRouteKey`.
//!
//! Refusals are HTTP 400 with the `param.*` codes DingTalk's card-instance
//! docs list (`param.empty`, `param.cardTemplateIdEmpty`,
//! `param.outTrackIdEmpty`, `param.cardPublicDataEmpty`,
//! `param.openSpaceModelInvalid`). Mock choices (not published):
//! `param.cardPublicDataInvalid`, `param.callbackRouteKeyEmpty`,
//! `param.outTrackIdExist`, `param.outTrackIdNotExist`, and the
//! `invalidParameter.callbackRouteKey.*` codes of the register call; a route
//! key registered twice with different URLs is refused unless `forceUpdate`;
//! the click is sent without a signature (see `docs/lifecycle.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use bytes::Bytes;
use imrelay_sdk::http::{HttpClient, HttpRequest, Timeouts};
use parking_lot::Mutex;
use serde_json::{json, Map, Value};

use super::dingtalk::{
    non_empty, parse_body, str_at, v1_caller, v1_error, v1_injected, with_body, P, PLATFORM,
};
use crate::faults::inject;
use crate::log::LogEntry;
use crate::sent::{SentError, SentMessage};
use crate::state::MockState;

const GROUP_SPACE: &str = "dtv1.card//IM_GROUP.";
const ROBOT_SPACE: &str = "dtv1.card//IM_ROBOT.";
/// The corpId the mock's clicks carry.
pub const MOCK_CORP_ID: &str = "dingmockcorp";

pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/v1.0/card/callbacks/register", post(register))
        .route(
            "/v1.0/card/instances/createAndDeliver",
            post(create_and_deliver),
        )
        .route("/v1.0/card/instances", axum::routing::put(update))
}

/// Registered card callback URLs, by `dingtalk:app:{appKey}` and route key.
#[derive(Debug, Default)]
pub struct CardRoutes {
    urls: Mutex<HashMap<(String, String), String>>,
}

impl CardRoutes {
    pub fn url(&self, target: &str, route_key: &str) -> Option<String> {
        self.urls
            .lock()
            .get(&(target.to_string(), route_key.to_string()))
            .cloned()
    }
}

fn target_of(app_key: &str) -> String {
    format!("dingtalk:app:{app_key}")
}

/// A logged v1.0 refusal: HTTP 400 with `code`.
fn refuse(s: &MockState, entry: LogEntry, code: &'static str, why: String) -> Response {
    s.record(entry.rejected(code, why.clone()));
    v1_error(StatusCode::BAD_REQUEST, code, &why)
}

async fn register(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, "card.register_callback", &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = target_of(&app_key);
    // The log keeps no apiSecret.
    let shown = body.as_ref().map(|b| {
        json!({"callbackRouteKey": b.get("callbackRouteKey"), "callbackUrl": b.get("callbackUrl")})
    });
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "card.register_callback", target.clone()),
            &shown,
        )
    };
    let b = body.unwrap_or(Value::Null);
    let (Some(key), Some(url)) = (
        str_at(&b, &["callbackRouteKey"]).filter(|k| !k.is_empty()),
        str_at(&b, &["callbackUrl"]).filter(|u| !u.is_empty()),
    ) else {
        return refuse(
            &s,
            entry(),
            "invalidParameter.callbackRouteKey.empty",
            "callbackRouteKey and callbackUrl are required".into(),
        );
    };
    let force = b
        .get("forceUpdate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    {
        let mut urls = s.dingtalk_card_routes.urls.lock();
        let slot = (target.clone(), key.to_string());
        if urls.get(&slot).is_some_and(|u| u != url) && !force {
            drop(urls);
            return refuse(
                &s,
                entry(),
                "invalidParameter.callbackRouteKey.exist",
                format!("callbackRouteKey `{key}` is registered to another URL; set forceUpdate"),
            );
        }
        urls.insert(slot, url.to_string());
    }
    s.record(entry().accepted());
    Json(json!({"success": true, "result": {"callbackUrl": url, "apiSecret": str_at(&b, &["apiSecret"]).unwrap_or("")}}))
        .into_response()
}

/// A checked createAndDeliver body.
struct NewCard {
    out_track_id: String,
    params: Map<String, Value>,
    space_type: &'static str,
    space_id: String,
}

fn check_create(b: &Value) -> Result<NewCard, (&'static str, String)> {
    for (field, code) in [
        ("cardTemplateId", "param.cardTemplateIdEmpty"),
        ("outTrackId", "param.outTrackIdEmpty"),
        ("openSpaceId", "param.openSpaceModelInvalid"),
    ] {
        if !non_empty(b, &[field]) {
            return Err((code, format!("{field} is required")));
        }
    }
    let params = b
        .get("cardData")
        .and_then(|d| d.get("cardParamMap"))
        .and_then(Value::as_object)
        .ok_or((
            "param.cardPublicDataEmpty",
            "cardData.cardParamMap is required".to_string(),
        ))?;
    if let Some((k, _)) = params.iter().find(|(_, v)| !v.is_string()) {
        return Err((
            "param.cardPublicDataInvalid",
            format!("cardParamMap.{k} must be a string"),
        ));
    }
    if str_at(b, &["callbackType"]) == Some("HTTP") && !non_empty(b, &["callbackRouteKey"]) {
        return Err((
            "param.callbackRouteKeyEmpty",
            "callbackType HTTP needs callbackRouteKey".into(),
        ));
    }
    let space = str_at(b, &["openSpaceId"]).unwrap_or_default();
    let (space_type, space_id) = if let Some(cid) = space.strip_prefix(GROUP_SPACE) {
        if !non_empty(b, &["imGroupOpenDeliverModel", "robotCode"]) {
            return Err((
                "param.openSpaceModelInvalid",
                "imGroupOpenDeliverModel.robotCode is required for a group".into(),
            ));
        }
        ("IM_GROUP", cid)
    } else if let Some(user) = space.strip_prefix(ROBOT_SPACE) {
        if str_at(b, &["imRobotOpenDeliverModel", "spaceType"]) != Some("IM_ROBOT") {
            return Err((
                "param.openSpaceModelInvalid",
                "imRobotOpenDeliverModel.spaceType must be IM_ROBOT".into(),
            ));
        }
        ("IM_ROBOT", user)
    } else {
        return Err((
            "param.openSpaceModelInvalid",
            format!("openSpaceId `{space}` is neither {GROUP_SPACE}.. nor {ROBOT_SPACE}.."),
        ));
    };
    if space_id.is_empty() {
        return Err((
            "param.openSpaceModelInvalid",
            "openSpaceId names no space".into(),
        ));
    }
    Ok(NewCard {
        out_track_id: str_at(b, &["outTrackId"]).unwrap_or_default().to_string(),
        params: params.clone(),
        space_type,
        space_id: space_id.to_string(),
    })
}

fn created(m: &SentMessage) -> Response {
    let extra = |k: &str| m.extra.get(k).cloned().unwrap_or(Value::Null);
    Json(json!({
        "success": true,
        "result": {
            "outTrackId": m.message_id,
            "deliverResults": [{
                "spaceType": extra("spaceType"),
                "spaceId": m.recipients.first(),
                "success": true,
                "carrierId": extra("carrierId"),
            }],
        },
    }))
    .into_response()
}

async fn create_and_deliver(
    State(s): State<Arc<MockState>>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, "card.create_and_deliver", &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = target_of(&app_key);
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "card.create_and_deliver", target.clone()),
            &body,
        )
    };
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let card = match body
        .as_ref()
        .ok_or(("param.empty", "body is not JSON".to_string()))
        .and_then(check_create)
    {
        Ok(c) => c,
        Err((code, why)) => return refuse(&s, entry(), code, why),
    };
    if let Some(existing) = s.sent.get(&card.out_track_id) {
        if existing.target != target {
            return refuse(
                &s,
                entry(),
                "param.outTrackIdExist",
                "outTrackId is another app's card".into(),
            );
        }
        let mut e = entry().accepted().duplicate();
        e.reason = Some("the same outTrackId again: the card exists, nothing new shown".into());
        s.record(e);
        return created(&existing);
    }
    let seq = s.record(entry().accepted());
    let b = body.as_ref().unwrap_or(&Value::Null);
    let mut m = SentMessage::new(
        P,
        card.out_track_id,
        target,
        vec![card.space_id],
        Value::Object(card.params),
        s.now_ms(),
    );
    m.extra
        .insert("carrierId".into(), json!(format!("mock-carrier-{seq}")));
    m.extra.insert("spaceType".into(), json!(card.space_type));
    for k in ["openSpaceId", "callbackRouteKey", "cardTemplateId"] {
        if let Some(v) = b.get(k) {
            m.extra.insert(k.into(), v.clone());
        }
    }
    let answer = created(&m);
    s.sent.insert(m);
    answer
}

/// The params after an update: merged by key, or replaced.
fn apply(current: &Value, params: &Map<String, Value>, by_key: bool) -> Value {
    let mut next = match current {
        Value::Object(o) if by_key => o.clone(),
        _ => Map::new(),
    };
    next.extend(params.clone());
    Value::Object(next)
}

async fn update(State(s): State<Arc<MockState>>, headers: HeaderMap, raw: Bytes) -> Response {
    let body = parse_body(&raw);
    let app_key = match v1_caller(&s, &headers, "card.update", &body) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let target = target_of(&app_key);
    let entry = || {
        with_body(
            LogEntry::new(PLATFORM, "card.update", target.clone()),
            &body,
        )
    };
    if let Some(inj) = inject(&s, &target).await {
        let (resp, code) = v1_injected(&inj);
        s.record(entry().rejected(code, "injected fault"));
        return resp;
    }
    let b = body.clone().unwrap_or(Value::Null);
    let Some(id) = str_at(&b, &["outTrackId"]).filter(|i| !i.is_empty()) else {
        return refuse(
            &s,
            entry(),
            "param.outTrackIdEmpty",
            "outTrackId is required".into(),
        );
    };
    let params = b
        .get("cardData")
        .and_then(|d| d.get("cardParamMap"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let by_key = b
        .get("cardUpdateOptions")
        .and_then(|o| o.get("updateCardDataByKey"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let now = s.now_ms();
    let result = s.sent.modify(id, &target, now, None, |m| {
        let next = apply(m.current(), &params, by_key);
        m.revisions.push(crate::sent::Revision {
            at_ms: now,
            content: next,
        });
    });
    match result {
        Ok(()) => {
            s.record(entry().accepted());
            Json(json!({"success": true, "result": true})).into_response()
        }
        Err(SentError::Recalled) => refuse(
            &s,
            entry(),
            "param.outTrackIdNotExist",
            format!("card {id} was recalled"),
        ),
        Err(_) => refuse(
            &s,
            entry(),
            "param.outTrackIdNotExist",
            format!("no card {id} of this app"),
        ),
    }
}

/// The callback DingTalk sends when `user` presses the button of `msg` whose
/// action id is `action`: the button's own `params` (as the card's `buttons`
/// parameter holds them) in `content.cardPrivateData`.
pub fn click_body(msg: &SentMessage, action: &str, user: &str) -> Result<Value, String> {
    let buttons: Value = msg
        .current()
        .get("buttons")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str(b).ok())
        .ok_or_else(|| format!("card {} has no `buttons` parameter", msg.message_id))?;
    let button = buttons
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b.get("id").and_then(Value::as_str) == Some(action))
        .ok_or_else(|| format!("card {} has no button `{action}`", msg.message_id))?;
    let content = json!({"cardPrivateData": {
        "actionIds": [action],
        "params": button.get("params").cloned().unwrap_or_else(|| json!({})),
    }})
    .to_string();
    let extra = |k: &str| msg.extra.get(k).cloned().unwrap_or(json!(""));
    Ok(json!({
        "type": "actionCallback",
        "outTrackId": msg.message_id,
        "corpId": MOCK_CORP_ID,
        "userId": user,
        "userIdType": 1,
        "spaceType": extra("spaceType"),
        "spaceId": msg.recipients.first(),
        "extension": "{}",
        "content": content,
        "value": content,
    }))
}

/// Fire the card callback for a click on `msg`'s button `action` by `user`
/// at the URL registered for the card's `callbackRouteKey`, the way DingTalk
/// does, and apply the `cardData` the receiver answers to the card (DingTalk
/// shows it to everyone). Returns `{"url", "request", "status", "reply"}`.
pub async fn click(
    state: &MockState,
    msg: &SentMessage,
    action: &str,
    user: &str,
) -> Result<Value, String> {
    let route = msg
        .extra
        .get("callbackRouteKey")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "card {} was created without a callbackRouteKey: it calls nobody back",
                msg.message_id
            )
        })?;
    let url = state
        .dingtalk_card_routes
        .url(&msg.target, route)
        .ok_or_else(|| {
            format!("no callback URL registered for route key `{route}` (POST /v1.0/card/callbacks/register)")
        })?;
    let body = click_body(msg, action, user)?;
    let parsed = url::Url::parse(&url).map_err(|e| format!("callback URL `{url}`: {e}"))?;
    let client = HttpClient::new(Timeouts {
        connect: Duration::from_secs(5),
        read: Duration::from_secs(5),
        total: Duration::from_secs(5),
    })
    .map_err(|e| e.to_string())?;
    let resp = client
        .execute(HttpRequest::post_json(parsed, &body))
        .await
        .map_err(|r| format!("calling {url}: {}", r.message))?;
    let reply: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| json!(String::from_utf8_lossy(&resp.body)));
    if (200..300).contains(&resp.status) {
        if let Some(params) = reply
            .get("cardData")
            .and_then(|d| d.get("cardParamMap"))
            .and_then(Value::as_object)
        {
            let now = state.now_ms();
            // The answer updates the card by key, as DingTalk applies it.
            let _ = state
                .sent
                .modify(&msg.message_id, &msg.target, now, None, |m| {
                    let next = apply(m.current(), params, true);
                    m.revisions.push(crate::sent::Revision {
                        at_ms: now,
                        content: next,
                    });
                });
        }
    }
    Ok(json!({"url": url, "request": body, "status": resp.status, "reply": reply}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card_body() -> Value {
        json!({
            "cardTemplateId": "tpl",
            "outTrackId": "imrelay_card_1",
            "callbackType": "HTTP",
            "callbackRouteKey": "imrelay",
            "cardData": {"cardParamMap": {"title": "t"}},
            "openSpaceId": "dtv1.card//IM_GROUP.cid1",
            "imGroupOpenDeliverModel": {"robotCode": "dingkey"},
        })
    }

    #[test]
    fn create_checks() {
        let ok = check_create(&card_body()).unwrap();
        assert_eq!((ok.space_type, ok.space_id.as_str()), ("IM_GROUP", "cid1"));
        let mut no_robot = card_body();
        no_robot["imGroupOpenDeliverModel"] = json!({});
        assert_eq!(
            check_create(&no_robot).err().unwrap().0,
            "param.openSpaceModelInvalid"
        );
        let mut number = card_body();
        number["cardData"]["cardParamMap"]["n"] = json!(1);
        assert_eq!(
            check_create(&number).err().unwrap().0,
            "param.cardPublicDataInvalid"
        );
        let mut no_route = card_body();
        no_route.as_object_mut().unwrap().remove("callbackRouteKey");
        assert!(check_create(&no_route).is_err());
    }

    #[test]
    fn updates_merge_by_key_or_replace() {
        let cur = json!({"a": "1", "b": "2"});
        let new: Map<String, Value> = serde_json::from_value(json!({"b": "3"})).unwrap();
        assert_eq!(apply(&cur, &new, true), json!({"a": "1", "b": "3"}));
        assert_eq!(apply(&cur, &new, false), json!({"b": "3"}));
    }
}
