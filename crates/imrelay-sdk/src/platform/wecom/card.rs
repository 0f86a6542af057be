//! WeCom app messages after the send: the `button_interaction` template card
//! that carries `msg.actions`, the click that comes back as a
//! `template_card_event`, and what an update sends.
//!
//! - Send: `template_card` of `card_type: "button_interaction"` with a
//!   `task_id` (digits, letters and `_-@`, at most 128 bytes, unique per app)
//!   and one button per action whose `key` is the JSON
//!   `{"imrelay_message": id, "imrelay_action": action}` (keys are at most
//!   1024 bytes). The answer's `response_code` allows one update within 72 h
//!   (<https://developer.work.weixin.qq.com/document/path/90236>).
//! - Click: the app's callback receives `template_card_event` with
//!   `FromUserName`, `EventKey` (the key), `TaskId`, `CardType` and a fresh
//!   `ResponseCode` (<https://developer.work.weixin.qq.com/document/path/90376>).
//! - Update: `POST /cgi-bin/message/update_template_card` with `agentid`,
//!   `response_code`, `atall: 1` and the whole new `template_card`
//!   (<https://developer.work.weixin.qq.com/document/path/94888>).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::lifecycle::{Action, ActionStyle, CardClick, ACTION_VALUE_ACTION, ACTION_VALUE_MESSAGE};
use crate::message::{Body, Message};
use crate::Error;

/// Buttons a `button_interaction` card takes.
pub const MAX_BUTTONS: usize = 6;
/// Bytes a button `key` takes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Bytes a `task_id` takes.
pub const MAX_TASK_ID_BYTES: usize = 128;
/// The `Event` of a template card click.
pub const TEMPLATE_CARD_EVENT: &str = "template_card_event";

/// The `task_id` of the card for message `message_id` to the recipients
/// `batch` (one request's): stable, so a retry carries the same one; distinct
/// per request, as WeCom wants task ids unique within the app; and within
/// WeCom's charset (`[0-9A-Za-z_\-@]`) and length.
pub fn task_id(message_id: &str, batch: &[String]) -> String {
    const NS: uuid::Uuid = uuid::Uuid::from_u128(0x2b6c_8e0f_51a4_4c7d_9e31_0a6b_7c8d_9e0f);
    let key = format!("{message_id}\n{}", batch.join("|"));
    format!(
        "imrelay-{}",
        uuid::Uuid::new_v5(&NS, key.as_bytes()).simple()
    )
}

/// The button `key` of `action` on the card of message `message_id`.
pub fn button_key(message_id: &str, action: &str) -> String {
    json!({ ACTION_VALUE_MESSAGE: message_id, ACTION_VALUE_ACTION: action }).to_string()
}

/// WeCom's button styles (1 to 4; 1 when absent). Which colour each number is
/// is not documented in text; see docs/lifecycle.md.
fn style(s: ActionStyle) -> u8 {
    match s {
        ActionStyle::Primary => 1,
        ActionStyle::Default => 2,
        ActionStyle::Danger => 3,
    }
}

/// Whether `msg` goes out as a `button_interaction` card: it has actions and
/// an id for a click to name.
pub(crate) fn has_buttons(msg: &Message) -> bool {
    !msg.actions.is_empty() && msg.id.is_some()
}

/// The text a card shows under its title.
fn card_text(msg: &Message) -> String {
    match &msg.body {
        Body::Template { data, .. } => data
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        body => body.main_text().unwrap_or_default().to_string(),
    }
}

fn check_actions(message_id: &str, actions: &[Action]) -> Result<(), Error> {
    if actions.len() > MAX_BUTTONS {
        return Err(Error::InvalidMessage(format!(
            "`actions`: a WeCom button card takes at most {MAX_BUTTONS} buttons, got {}",
            actions.len()
        )));
    }
    for (i, a) in actions.iter().enumerate() {
        if a.id.trim().is_empty() || a.text.trim().is_empty() {
            return Err(Error::InvalidMessage(format!(
                "`actions[{i}]` needs an `id` and a `text`"
            )));
        }
        if button_key(message_id, &a.id).len() > MAX_KEY_BYTES {
            return Err(Error::InvalidMessage(format!(
                "`actions[{i}].id` with the message id is over WeCom's {MAX_KEY_BYTES}-byte button key; shorten them"
            )));
        }
    }
    Ok(())
}

/// The `button_interaction` card for `msg` sent to `batch`. Without actions
/// (an update that closes the card) the buttons give way to one grey,
/// unclickable button reading `replace_text`, as WeCom shows a handled card.
pub(crate) fn button_card(msg: &Message, batch: &[String]) -> Result<Value, Error> {
    let mut card = json!({
        "card_type": "button_interaction",
        "main_title": { "title": msg.title_or_default() },
        "sub_title_text": card_text(msg),
    });
    if let Some(id) = msg.id.as_deref() {
        card["task_id"] = json!(task_id(id, batch));
    }
    if let Body::Card { buttons, .. } = &msg.body {
        if !buttons.is_empty() {
            let jumps: Vec<Value> = buttons
                .iter()
                .take(super::MAX_JUMPS)
                .map(|b| json!({"type": 1, "title": b.text, "url": b.url}))
                .collect();
            card["jump_list"] = Value::Array(jumps);
        }
    }
    match msg.id.as_deref().filter(|_| !msg.actions.is_empty()) {
        Some(id) => {
            check_actions(id, &msg.actions)?;
            let buttons: Vec<Value> = msg
                .actions
                .iter()
                .map(|a| json!({"text": a.text, "style": style(a.style), "key": button_key(id, &a.id)}))
                .collect();
            card["button_list"] = Value::Array(buttons);
        }
        None => card["replace_text"] = json!(msg.title_or_default()),
    }
    Ok(card)
}

/// The click in a decrypted `template_card_event` (the event XML's fields, as
/// [`crate::crypto::xml::parse_event`] reads them), when it is a click on one
/// of imrelay's buttons; `update_token` is the fresh `ResponseCode` for the
/// next update.
///
/// ```
/// use std::collections::BTreeMap;
/// let ev: BTreeMap<String, String> = [
///     ("MsgType", "event"), ("Event", "template_card_event"),
///     ("FromUserName", "zhangsan"), ("TaskId", "imrelay-1"),
///     ("CardType", "button_interaction"), ("ResponseCode", "rc-1"),
///     ("EventKey", r#"{"imrelay_message":"m1","imrelay_action":"ack"}"#),
/// ].into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
/// let c = imrelay_sdk::platform::wecom::card_click(&ev).unwrap();
/// assert_eq!((c.message_id.as_str(), c.action.as_str(), c.user_id.as_str()), ("m1", "ack", "zhangsan"));
/// assert_eq!(c.update_token.as_deref(), Some("rc-1"));
/// ```
pub fn card_click(fields: &BTreeMap<String, String>) -> Option<CardClick> {
    if fields
        .get("Event")
        .is_some_and(|e| e != TEMPLATE_CARD_EVENT)
    {
        return None;
    }
    let key: Value = serde_json::from_str(fields.get("EventKey")?).ok()?;
    let field = |k: &str| {
        key.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let non_empty = |k: &str| fields.get(k).filter(|s| !s.is_empty()).cloned();
    Some(CardClick {
        message_id: field(ACTION_VALUE_MESSAGE)?,
        action: field(ACTION_VALUE_ACTION)?,
        user_id: non_empty("FromUserName")?,
        // The event names the card's task, not the message's msgid.
        platform_message_id: None,
        update_token: non_empty("ResponseCode"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str) -> BTreeMap<String, String> {
        // The template_card_event of the WeCom docs (path 90376), decrypted.
        [
            ("ToUserName", "toUser"),
            ("FromUserName", "FromUser"),
            ("CreateTime", "123456789"),
            ("MsgType", "event"),
            ("Event", "template_card_event"),
            ("EventKey", key),
            ("TaskId", "taskid111"),
            ("CardType", "button_interaction"),
            ("ResponseCode", "ResponseCode"),
            ("AgentID", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn task_ids_are_stable_distinct_per_batch_and_in_charset() {
        let a = task_id("alert/1 with spaces", &["u1".into()]);
        assert_eq!(a, task_id("alert/1 with spaces", &["u1".into()]));
        assert_ne!(a, task_id("alert/1 with spaces", &["u2".into()]));
        assert!(a.len() <= MAX_TASK_ID_BYTES);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-@".contains(&b)));
    }

    #[test]
    fn clicks_on_imrelay_buttons_are_read_and_others_are_not() {
        let c = card_click(&event(&button_key("msg-42", "silence:1h"))).unwrap();
        assert_eq!(c.message_id, "msg-42");
        assert_eq!(c.action, "silence:1h");
        assert_eq!(c.user_id, "FromUser");
        assert_eq!(c.update_token.as_deref(), Some("ResponseCode"));
        assert_eq!(card_click(&event("key111")), None);
        let mut other = event(&button_key("m", "a"));
        other.insert("Event".into(), "enter_agent".into());
        assert_eq!(card_click(&other), None);
    }

    #[test]
    fn too_many_buttons_and_long_keys_are_refused() {
        let act = |id: &str| Action {
            id: id.into(),
            text: "x".into(),
            style: ActionStyle::Default,
        };
        let msg = Message::text("x")
            .with_id("m")
            .with_actions((0..7).map(|i| act(&i.to_string())).collect());
        assert!(button_card(&msg, &[])
            .unwrap_err()
            .to_string()
            .contains("at most 6"));
        let msg = Message::text("x")
            .with_id("m")
            .with_actions(vec![act(&"a".repeat(1100))]);
        assert!(button_card(&msg, &[])
            .unwrap_err()
            .to_string()
            .contains("1024"));
    }
}
