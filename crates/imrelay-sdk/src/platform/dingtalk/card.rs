//! Interactive cards (互动卡片) of a `dingtalk_app` robot: a card instance made
//! from a template built in DingTalk's card platform, created and delivered in
//! one call, updated in place by its `outTrackId`, and clicked back through an
//! HTTP card callback.
//!
//! | what | request | source |
//! |---|---|---|
//! | create and deliver | `POST {api}/v1.0/card/instances/createAndDeliver` | `card_1_0` `CreateAndDeliverRequest` (aliyun/dingtalk-sdk) |
//! | update in place | `PUT {api}/v1.0/card/instances` | `card_1_0` `UpdateCardRequest` |
//! | a click | HTTP POST to the URL registered for `callbackRouteKey` | open-dingtalk/dingtalk-stream-sdk-python `card_callback_message.py` |
//!
//! # The template's parameters
//!
//! The template is the user's (`card_template_id`); imrelay fills these
//! `cardParamMap` keys, every value a string as the API wants:
//!
//! | key | value |
//! |---|---|
//! | `title` | the message title |
//! | `content` | the text as DingTalk markdown (a card body's link buttons are appended as links) |
//! | `theme` | the card body's `theme` (`red`, `green`, ...), `blue` when none: bind the header colour to it |
//! | `message_id` | the message id |
//! | `buttons` | JSON array of `{"id", "text", "style", "params"}`; bind a looped button's callback parameters to `params`, which holds `{"imrelay_message": <message id>, "imrelay_action": <action id>}` |
//! | `links` | JSON array of `{"text", "url"}` (the card body's URL buttons) |
//!
//! A click then arrives with `content.cardPrivateData.params` carrying the two
//! `imrelay_*` keys, which [`card_click`] reads.
//!
//! UNSURE: DingTalk documents no size limit for `cardParamMap`, and how an HTTP
//! card callback proves it comes from DingTalk (the register API takes an
//! `apiSecret` "to verify the source" but the scheme is not published where we
//! could read it): register a `callbackUrl` with an unguessable path or query
//! token and check it.

use serde_json::{json, Map, Value};

use super::{news_markdown, shape, Shape};
use crate::destination::dedup_key;
use crate::http::HttpResponse;
use crate::lifecycle::{ActionStyle, CardClick, ACTION_VALUE_ACTION, ACTION_VALUE_MESSAGE};
use crate::message::{Button, ImageSource, Message};
use crate::outcome::{Outcome, Report};
use crate::platform::errcode::str_field;

use super::codes;

/// Every `outTrackId` imrelay makes starts with this, so an update can tell a
/// card from a plain robot message (whose id is a `processQueryKey`).
pub const OUT_TRACK_PREFIX: &str = "imrelay_card_";

/// The `openSpaceId` prefix of a group chat (`dtv1.card//IM_GROUP.{openConversationId}`).
pub const GROUP_SPACE: &str = "dtv1.card//IM_GROUP.";
/// The `openSpaceId` prefix of the robot's 1:1 chat with a user
/// (`dtv1.card//IM_ROBOT.{userId}`).
pub const ROBOT_SPACE: &str = "dtv1.card//IM_ROBOT.";

/// Where a card goes: a group the robot is in, or the robot's 1:1 chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardSpace<'a> {
    Group(&'a str),
    User(&'a str),
}

/// The card's id for part `part` of message `id` to `recipient`: the same on
/// every retry, so a retried send is the same card, never a second one.
pub fn out_track_id(id: &str, part: usize, recipient: &str) -> String {
    let key = dedup_key(Some(id), part, recipient).unwrap_or_default();
    format!("{OUT_TRACK_PREFIX}{}", key.replace('-', ""))
}

/// The `cardParamMap` for `msg` (see the module docs for the keys).
pub fn card_params(msg: &Message) -> Map<String, Value> {
    let (content, links) = content_and_links(msg);
    let theme = match &msg.body {
        crate::message::Body::Card { theme: Some(t), .. } if !t.trim().is_empty() => t.clone(),
        _ => "blue".to_string(),
    };
    let message_id = msg.id.clone().unwrap_or_default();
    let buttons: Vec<Value> = msg
        .actions
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "text": a.text,
                "style": style_name(a.style),
                "params": {ACTION_VALUE_MESSAGE: message_id, ACTION_VALUE_ACTION: a.id},
            })
        })
        .collect();
    let links: Vec<Value> = links
        .iter()
        .map(|b| json!({"text": b.text, "url": b.url}))
        .collect();
    let mut p = Map::new();
    p.insert("title".into(), json!(msg.title_or_default()));
    p.insert("content".into(), json!(content));
    p.insert("theme".into(), json!(theme));
    p.insert("message_id".into(), json!(message_id));
    // cardParamMap values are strings: arrays travel as JSON text.
    p.insert("buttons".into(), json!(Value::Array(buttons).to_string()));
    p.insert("links".into(), json!(Value::Array(links).to_string()));
    p
}

fn style_name(s: ActionStyle) -> &'static str {
    match s {
        ActionStyle::Default => "default",
        ActionStyle::Primary => "primary",
        ActionStyle::Danger => "danger",
    }
}

/// The card's markdown and the link buttons of a card body.
fn content_and_links(msg: &Message) -> (String, &[Button]) {
    let Ok(s) = shape(msg, "dingtalk_app") else {
        return (String::new(), &[]);
    };
    match s {
        Shape::Text(t) => (t, &[]),
        Shape::Markdown { text, .. } => (text, &[]),
        Shape::Card { text, buttons, .. } => (text.to_string(), buttons),
        Shape::Link {
            title, text, url, ..
        } => (format!("[{title}]({url})\n\n{text}"), &[]),
        Shape::News(articles) => (news_markdown(articles), &[]),
        Shape::Image { source, .. } => match source {
            ImageSource::Url(u) => (format!("![image]({u})"), &[]),
            _ => (String::new(), &[]),
        },
        Shape::Raw(v) => (v.to_string(), &[]),
    }
}

/// The `createAndDeliver` body of a card to `space` from robot `robot_code`.
pub fn create_and_deliver_body(
    template_id: &str,
    out_track_id: &str,
    route_key: Option<&str>,
    robot_code: &str,
    space: CardSpace<'_>,
    params: Map<String, Value>,
) -> Value {
    let mut b = Map::new();
    b.insert("cardTemplateId".into(), json!(template_id));
    b.insert("outTrackId".into(), json!(out_track_id));
    // Clicks come back over HTTP to the URL registered for the route key
    // (`POST /v1.0/card/callbacks/register`), not over a Stream connection.
    if let Some(k) = route_key {
        b.insert("callbackType".into(), json!("HTTP"));
        b.insert("callbackRouteKey".into(), json!(k));
    }
    b.insert("cardData".into(), json!({"cardParamMap": params}));
    // 1: the ids are userIds (not unionIds).
    b.insert("userIdType".into(), json!(1));
    match space {
        CardSpace::Group(cid) => {
            b.insert("openSpaceId".into(), json!(format!("{GROUP_SPACE}{cid}")));
            b.insert(
                "imGroupOpenSpaceModel".into(),
                json!({"supportForward": false}),
            );
            b.insert(
                "imGroupOpenDeliverModel".into(),
                json!({"robotCode": robot_code}),
            );
        }
        CardSpace::User(user) => {
            b.insert("openSpaceId".into(), json!(format!("{ROBOT_SPACE}{user}")));
            b.insert(
                "imRobotOpenSpaceModel".into(),
                json!({"supportForward": false}),
            );
            b.insert(
                "imRobotOpenDeliverModel".into(),
                json!({"spaceType": "IM_ROBOT", "robotCode": robot_code}),
            );
        }
    }
    Value::Object(b)
}

/// The `PUT /v1.0/card/instances` body that replaces the card's parameters by
/// key (parameters not named keep their value).
pub fn update_body(out_track_id: &str, params: Map<String, Value>) -> Value {
    json!({
        "outTrackId": out_track_id,
        "cardData": {"cardParamMap": params},
        "cardUpdateOptions": {"updateCardDataByKey": true},
        "userIdType": 1,
    })
}

/// Classify a `createAndDeliver` answer: `{"success": true, "result":
/// {"outTrackId", "deliverResults": [{"spaceType", "spaceId", "success",
/// "errorMsg", "carrierId"}]}}`. The id is the `outTrackId`; the delivery's
/// `carrierId` (the message's `processQueryKey`, which recall needs) is kept
/// as the update token.
pub fn classify_create(resp: &HttpResponse, out_track_id: &str) -> Report {
    let v = match codes::classify_v1(resp) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let result = v.get("result").unwrap_or(&Value::Null);
    let failed = result
        .get("deliverResults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|d| d.get("success").and_then(Value::as_bool) == Some(false));
    if let Some(d) = failed {
        return Report::new(
            Outcome::Permanent,
            format!(
                "the card was created but not delivered to {}: {}",
                str_field(d, "spaceId"),
                str_field(d, "errorMsg")
            ),
        )
        .with_status(resp.status)
        .with_hint("check the robot is in the group (or the user may receive its messages) and the template is published");
    }
    let mut r = Report::delivered().with_status(resp.status);
    r.platform_message_id = Some(
        Some(str_field(result, "outTrackId"))
            .filter(|s| !s.is_empty())
            .unwrap_or(out_track_id)
            .to_string(),
    );
    r.update_token = result
        .get("deliverResults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| str_field(d, "carrierId"))
        .find(|c| !c.is_empty())
        .map(str::to_string);
    r
}

/// Classify a card update answer (`{"success": true, "result": true}`).
pub fn classify_update(resp: &HttpResponse, out_track_id: &str) -> Report {
    match codes::classify_v1(resp) {
        Ok(v) if v.get("success").and_then(Value::as_bool) == Some(false) => Report::new(
            Outcome::Permanent,
            format!("DingTalk did not update card {out_track_id}"),
        )
        .with_status(resp.status),
        Ok(_) => {
            let mut r = Report::delivered().with_status(resp.status);
            r.platform_message_id = Some(out_track_id.to_string());
            r
        }
        Err(r) => r,
    }
}

/// Read a click from a DingTalk HTTP card callback body:
///
/// ```json
/// {"type": "actionCallback", "outTrackId": "imrelay_card_…", "corpId": "ding…",
///  "userId": "manager1234", "userIdType": 1,
///  "content": "{\"cardPrivateData\":{\"actionIds\":[\"ack\"],\"params\":{\"imrelay_message\":\"m1\",\"imrelay_action\":\"ack\"}}}"}
/// ```
///
/// `content` is a JSON string (an object is taken too). `None` when it is not
/// a click on one of imrelay's buttons (no message id in the params).
pub fn card_click(v: &serde_json::Value) -> Option<CardClick> {
    let content = match v.get("content")? {
        Value::String(s) => serde_json::from_str::<Value>(s).ok()?,
        o @ Value::Object(_) => o.clone(),
        _ => return None,
    };
    let private = content.get("cardPrivateData")?;
    let params = private.get("params");
    let param = |k: &str| {
        params
            .and_then(|p| p.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let message_id = param(ACTION_VALUE_MESSAGE)?;
    // The template may bind only the message id and name the button by its
    // component id instead.
    let action = param(ACTION_VALUE_ACTION).or_else(|| {
        private
            .get("actionIds")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .map(str::to_string)
    })?;
    let user_id = v
        .get("userId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?
        .to_string();
    Some(CardClick {
        message_id,
        action,
        user_id,
        platform_message_id: v
            .get("outTrackId")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        update_token: None,
    })
}

/// The answer to a card callback. With `updated`, the card shows that message
/// for everyone at once (`cardData`); without, the card stays as it is.
/// DingTalk takes the answer's `cardData.cardParamMap` (and `userPrivateData`
/// for the clicking user alone, unused here).
pub fn card_click_reply(updated: Option<&Message>) -> Value {
    match updated {
        Some(msg) => json!({"cardData": {"cardParamMap": card_params(msg)}}),
        None => json!({}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Action;
    use crate::message::Body;
    use crate::platform::testing::resp;

    fn alert() -> Message {
        Message::new(Body::Card {
            text: "**disk full** on db-1".into(),
            buttons: vec![Button {
                text: "Runbook".into(),
                url: "https://runbooks.example.com/disk".into(),
            }],
            theme: Some("red".into()),
        })
        .with_title("DiskFull")
        .with_id("m-42")
        .with_actions(vec![
            Action {
                id: "ack".into(),
                text: "认领".into(),
                style: ActionStyle::Primary,
            },
            Action {
                id: "silence:1h".into(),
                text: "静默 1h".into(),
                style: ActionStyle::Default,
            },
        ])
    }

    #[test]
    fn params_carry_the_buttons_with_their_callback_values() {
        let p = card_params(&alert());
        assert_eq!(p["title"], "DiskFull");
        assert_eq!(p["theme"], "red");
        assert_eq!(p["content"], "**disk full** on db-1");
        assert!(
            p.values().all(Value::is_string),
            "cardParamMap takes strings"
        );
        let buttons: Value = serde_json::from_str(p["buttons"].as_str().unwrap()).unwrap();
        insta::assert_json_snapshot!(buttons, @r#"
        [
          {
            "id": "ack",
            "text": "认领",
            "style": "primary",
            "params": {
              "imrelay_message": "m-42",
              "imrelay_action": "ack"
            }
          },
          {
            "id": "silence:1h",
            "text": "静默 1h",
            "style": "default",
            "params": {
              "imrelay_message": "m-42",
              "imrelay_action": "silence:1h"
            }
          }
        ]
        "#);
        let links: Value = serde_json::from_str(p["links"].as_str().unwrap()).unwrap();
        assert_eq!(
            links,
            json!([{"text": "Runbook", "url": "https://runbooks.example.com/disk"}])
        );
    }

    #[test]
    fn out_track_id_is_stable_per_part_and_recipient() {
        let a = out_track_id("m-42", 0, "open_conversation_id:cid1");
        assert_eq!(a, out_track_id("m-42", 0, "open_conversation_id:cid1"));
        assert!(a.starts_with(OUT_TRACK_PREFIX));
        assert_ne!(a, out_track_id("m-42", 1, "open_conversation_id:cid1"));
        assert_ne!(a, out_track_id("m-42", 0, "manager1234"));
        assert_ne!(a, out_track_id("m-43", 0, "open_conversation_id:cid1"));
    }

    #[test]
    fn create_body_for_a_group_and_for_a_user() {
        let g = create_and_deliver_body(
            "tpl.schema",
            "imrelay_card_x",
            Some("imrelay"),
            "dingrobot",
            CardSpace::Group("cidAbC=="),
            Map::new(),
        );
        insta::assert_json_snapshot!(g, @r#"
        {
          "cardTemplateId": "tpl.schema",
          "outTrackId": "imrelay_card_x",
          "callbackType": "HTTP",
          "callbackRouteKey": "imrelay",
          "cardData": {
            "cardParamMap": {}
          },
          "userIdType": 1,
          "openSpaceId": "dtv1.card//IM_GROUP.cidAbC==",
          "imGroupOpenSpaceModel": {
            "supportForward": false
          },
          "imGroupOpenDeliverModel": {
            "robotCode": "dingrobot"
          }
        }
        "#);
        let u = create_and_deliver_body(
            "tpl.schema",
            "imrelay_card_y",
            None,
            "dingrobot",
            CardSpace::User("manager1234"),
            Map::new(),
        );
        assert_eq!(u["openSpaceId"], "dtv1.card//IM_ROBOT.manager1234");
        assert_eq!(
            u["imRobotOpenDeliverModel"],
            json!({"spaceType": "IM_ROBOT", "robotCode": "dingrobot"})
        );
        assert!(u.get("callbackType").is_none());
    }

    #[test]
    fn a_real_shaped_callback_becomes_a_click() {
        // The shape of open-dingtalk/dingtalk-stream-sdk-python's
        // CardCallbackMessage, with the params our buttons carry.
        let body = json!({
            "extension": "{}",
            "corpId": "ding9f50b15bccd16741",
            "spaceType": "IM_GROUP",
            "userIdType": 1,
            "type": "actionCallback",
            "userId": "04574258341072934",
            "content": "{\"cardPrivateData\":{\"actionIds\":[\"button_node_ocljnpbz4i4\"],\"params\":{\"imrelay_message\":\"m-42\",\"imrelay_action\":\"silence:1h\"}}}",
            "spaceId": "cidAbC==",
            "outTrackId": "imrelay_card_53d6dda4",
        });
        assert_eq!(
            card_click(&body),
            Some(CardClick {
                message_id: "m-42".into(),
                action: "silence:1h".into(),
                user_id: "04574258341072934".into(),
                platform_message_id: Some("imrelay_card_53d6dda4".into()),
                update_token: None,
            })
        );
        // The component id stands in for a template that binds only the message.
        let mut only_msg = body.clone();
        only_msg["content"] = json!(
            "{\"cardPrivateData\":{\"actionIds\":[\"ack\"],\"params\":{\"imrelay_message\":\"m-42\"}}}"
        );
        assert_eq!(card_click(&only_msg).unwrap().action, "ack");
        // Someone else's card, or a body that is not a click.
        let mut foreign = body.clone();
        foreign["content"] = json!("{\"cardPrivateData\":{\"actionIds\":[\"x\"],\"params\":{}}}");
        assert_eq!(card_click(&foreign), None);
        assert_eq!(card_click(&json!({"EventType": "check_url"})), None);
    }

    #[test]
    fn the_reply_carries_the_new_card_data_or_nothing() {
        assert_eq!(card_click_reply(None), json!({}));
        let reply = card_click_reply(Some(&alert()));
        assert_eq!(reply["cardData"]["cardParamMap"]["title"], "DiskFull");
    }

    #[test]
    fn create_answers() {
        let ok = classify_create(
            &resp(
                200,
                r#"{"success":true,"result":{"outTrackId":"imrelay_card_x","deliverResults":[{"spaceType":"IM_GROUP","spaceId":"cid1","success":true,"carrierId":"pqk-9"}]}}"#,
            ),
            "imrelay_card_x",
        );
        assert_eq!(ok.outcome, Outcome::Delivered);
        assert_eq!(ok.platform_message_id.as_deref(), Some("imrelay_card_x"));
        assert_eq!(ok.update_token.as_deref(), Some("pqk-9"));
        let not_delivered = classify_create(
            &resp(
                200,
                r#"{"success":true,"result":{"outTrackId":"imrelay_card_x","deliverResults":[{"spaceType":"IM_GROUP","spaceId":"cid1","success":false,"errorMsg":"robot not in group"}]}}"#,
            ),
            "imrelay_card_x",
        );
        assert_eq!(not_delivered.outcome, Outcome::Permanent);
        assert!(not_delivered.message.contains("robot not in group"));
        let throttled = classify_create(
            &resp(
                403,
                r#"{"code":"Forbidden.AccessDenied.QpsLimitForApi","message":"qps"}"#,
            ),
            "imrelay_card_x",
        );
        assert!(matches!(throttled.outcome, Outcome::RateLimited { .. }));
    }
}
