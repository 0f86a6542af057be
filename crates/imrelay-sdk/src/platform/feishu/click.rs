//! Card callbacks: a click on a callback button comes back as a
//! `card.action.trigger` callback (schema 2.0) or, from apps still on the old
//! callback, as the legacy card action body. Both carry the button's `value`,
//! which imrelay's rendering fills with the message id and the action id.
//!
//! The receiver must answer within 3 seconds, with HTTP 200 and a body that
//! may show a toast and replace the card for everyone
//! ([`card_click_reply`]).
//!
//! Shapes: <https://open.feishu.cn/document/uAjLw4CM/ukzMukzMukzM/feishu-cards/card-callback-communication>
//! (v2) and <https://open.larksuite.com/document/ukTMukTMukTM/uYzM3QjL2MzN04iNzcDN/configuring-card-callbacks/card-callback-structure>
//! (legacy).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::lifecycle::{CardClick, ACTION_VALUE_ACTION, ACTION_VALUE_MESSAGE};

/// The `event_type` of a card callback in schema 2.0.
pub const CARD_ACTION_TRIGGER: &str = "card.action.trigger";

/// How a toast looks in the Feishu client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToastKind {
    #[default]
    Info,
    Success,
    Warning,
    Error,
}

impl ToastKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ToastKind::Info => "info",
            ToastKind::Success => "success",
            ToastKind::Warning => "warning",
            ToastKind::Error => "error",
        }
    }
}

/// The click in a decrypted card callback, when it is a click on one of
/// imrelay's action buttons. Takes the whole callback (schema 2.0 envelope
/// `{"schema":"2.0","header":..,"event":{..}}`, its `event` alone, or the
/// legacy body `{"open_id","open_message_id","action":{..}}`); `None` for
/// anything else (another event, a button imrelay did not draw).
///
/// ```
/// use imrelay_sdk::platform::feishu::card_click;
/// let cb = serde_json::json!({
///     "schema": "2.0",
///     "header": {"event_type": "card.action.trigger", "token": "v"},
///     "event": {
///         "operator": {"open_id": "ou_1"},
///         "action": {"tag": "button", "value": {"imrelay_message": "m1", "imrelay_action": "ack"}},
///         "context": {"open_message_id": "om_1", "open_chat_id": "oc_1"}
///     }
/// });
/// let click = card_click(&cb).unwrap();
/// assert_eq!((click.message_id.as_str(), click.action.as_str(), click.user_id.as_str()), ("m1", "ack", "ou_1"));
/// assert_eq!(click.platform_message_id.as_deref(), Some("om_1"));
/// ```
pub fn card_click(event: &Value) -> Option<CardClick> {
    let is_v2 = event.get("schema").and_then(Value::as_str) == Some("2.0");
    if is_v2 {
        let kind = event.pointer("/header/event_type").and_then(Value::as_str);
        if kind.is_some_and(|k| k != CARD_ACTION_TRIGGER) {
            return None;
        }
    }
    let e = if is_v2 { event.get("event")? } else { event };
    let value = action_value(e.pointer("/action/value")?)?;
    let field = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let message_id = field(ACTION_VALUE_MESSAGE)?;
    let action = field(ACTION_VALUE_ACTION)?;
    // v2: `operator.open_id`; legacy: `open_id` at the top.
    let user_id = e
        .pointer("/operator/open_id")
        .or_else(|| e.get("open_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())?
        .to_string();
    let platform_message_id = e
        .pointer("/context/open_message_id")
        .or_else(|| e.get("open_message_id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Some(CardClick {
        message_id,
        action,
        user_id,
        platform_message_id,
        update_token: None,
    })
}

/// A button `value` is an object, or (older cards, some SDKs) a JSON string.
fn action_value(v: &Value) -> Option<Value> {
    match v {
        Value::Object(_) => Some(v.clone()),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .ok()
            .filter(Value::is_object),
        _ => None,
    }
}

/// The answer to a card callback: a toast for the clicking user and, when
/// `card` is given, the card that replaces the clicked one for everyone
/// (`{"toast":{"type","content"},"card":{"type":"raw","data":card}}`).
/// Feishu waits 3 seconds for it.
///
/// ```
/// use imrelay_sdk::platform::feishu::{card_click_reply, ToastKind};
/// let r = card_click_reply("已认领", ToastKind::Success, None);
/// assert_eq!(r, serde_json::json!({"toast": {"type": "success", "content": "已认领"}}));
/// ```
pub fn card_click_reply(toast: &str, kind: ToastKind, card: Option<Value>) -> Value {
    let mut reply = json!({ "toast": { "type": kind.as_str(), "content": toast } });
    if let Some(card) = card {
        reply["card"] = json!({ "type": "raw", "data": card });
    }
    reply
}

/// The card a callback answer carries, as Feishu reads it: `card.data` of a
/// `raw` card (schema 2.0 answer), or a whole card answered to a legacy
/// callback.
pub fn reply_card(reply: &Value) -> Option<Value> {
    match reply.get("card") {
        Some(c) if c.get("type").and_then(Value::as_str) == Some("raw") => c.get("data").cloned(),
        Some(_) => None,
        // Legacy callbacks are answered with the new card itself.
        None if reply.get("elements").is_some() || reply.get("i18n_elements").is_some() => {
            Some(reply.clone())
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `card.action.trigger` callback as the Feishu docs show it, with the
    /// value imrelay's rendering puts on a button.
    fn v2() -> Value {
        json!({
            "schema": "2.0",
            "header": {
                "event_id": "f7984f25108f8137722bb63cee927e66",
                "token": "066zT6pS4QCbgj5Do145GfDbbagCHGgF",
                "create_time": "1603977298000000",
                "event_type": "card.action.trigger",
                "tenant_key": "2df73991750ad9b2",
                "app_id": "cli_a5fb0ae6a4f8d00b"
            },
            "event": {
                "operator": {
                    "tenant_key": "2df73991750ad9b2",
                    "user_id": "867e6f9b",
                    "open_id": "ou_3c14f3a59eaf2825dbe25359f15211dc",
                    "union_id": "on_cad4860e7af114fb4ff6c5d496d1dd76"
                },
                "token": "c-295ee57216a5dc9de90fefd0aadb4b1d7d337bc2",
                "action": {
                    "value": {"imrelay_message": "msg-42", "imrelay_action": "silence:1h"},
                    "tag": "button"
                },
                "host": "im_message",
                "context": {
                    "open_message_id": "om_x100b8e8e0d5a7ab8b3d3d2a1c6f45a9",
                    "open_chat_id": "oc_x1a2b3c4d5e6f"
                }
            }
        })
    }

    #[test]
    fn reads_the_v2_event_and_its_inner_event() {
        let want = CardClick {
            message_id: "msg-42".into(),
            action: "silence:1h".into(),
            user_id: "ou_3c14f3a59eaf2825dbe25359f15211dc".into(),
            platform_message_id: Some("om_x100b8e8e0d5a7ab8b3d3d2a1c6f45a9".into()),
            update_token: None,
        };
        assert_eq!(card_click(&v2()), Some(want.clone()));
        // The `event` object alone (what an envelope parser hands on).
        assert_eq!(card_click(&v2()["event"]), Some(want));
    }

    #[test]
    fn reads_the_legacy_callback_with_a_string_value() {
        let legacy = json!({
            "open_id": "ou_sdfimx9ue7l2f5df6f7e2c64a6f7b8b9",
            "user_id": "7b8ec9f2",
            "open_message_id": "om_abcdefg1234567890",
            "open_chat_id": "oc_abcdefg1234567890",
            "tenant_key": "d32004232",
            "token": "c-1234567890abcdefg",
            "action": {
                "value": "{\"imrelay_message\":\"m1\",\"imrelay_action\":\"ack\"}",
                "tag": "button"
            }
        });
        let c = card_click(&legacy).unwrap();
        assert_eq!(c.message_id, "m1");
        assert_eq!(c.action, "ack");
        assert_eq!(c.user_id, "ou_sdfimx9ue7l2f5df6f7e2c64a6f7b8b9");
        assert_eq!(
            c.platform_message_id.as_deref(),
            Some("om_abcdefg1234567890")
        );
    }

    #[test]
    fn other_events_and_foreign_buttons_are_not_clicks() {
        let mut other = v2();
        other["header"]["event_type"] = json!("im.message.receive_v1");
        assert_eq!(card_click(&other), None);
        let mut foreign = v2();
        foreign["event"]["action"]["value"] = json!({"key": "approve"});
        assert_eq!(card_click(&foreign), None);
        let mut anonymous = v2();
        anonymous["event"]["operator"] = json!({});
        assert_eq!(card_click(&anonymous), None);
        assert_eq!(card_click(&json!({"type": "url_verification"})), None);
    }

    #[test]
    fn the_reply_carries_the_toast_and_a_raw_card_that_reads_back() {
        let card = json!({"config": {"update_multi": true}, "elements": []});
        let r = card_click_reply("Acknowledged", ToastKind::Success, Some(card.clone()));
        assert_eq!(
            r,
            json!({
                "toast": {"type": "success", "content": "Acknowledged"},
                "card": {"type": "raw", "data": card}
            })
        );
        assert_eq!(reply_card(&r), Some(card.clone()));
        assert_eq!(reply_card(&card), Some(card));
        assert_eq!(
            reply_card(&card_click_reply("x", ToastKind::Error, None)),
            None
        );
    }
}
