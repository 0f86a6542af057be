//! Platform events to imrelay's event types (`docs/callbacks.md`):
//! `message_received`, `card_action`, `bot_added`, `bot_removed`,
//! `user_followed`, `user_unfollowed`, `template_send_result`, and `raw` for
//! everything else. `data` holds the few fields a receiver needs most; the
//! whole decrypted event always travels beside it as `raw`.

use std::collections::BTreeMap;

use imrelay_sdk::crypto::feishu::{Envelope, EnvelopeKind};
use serde_json::{json, Map, Value};

/// An event's type and common fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// One of the documented types.
    pub kind: &'static str,
    /// The platform's own event type (`im.message.receive_v1`, `subscribe`,
    /// `text`, `user_add_org`...).
    pub event_type: Option<String>,
    /// Type-specific fields (null members dropped).
    pub data: Value,
}

fn obj(pairs: &[(&str, Value)]) -> Value {
    let m: Map<String, Value> = pairs
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| ((*k).to_string(), v.clone()))
        .collect();
    Value::Object(m)
}

fn at(v: &Value, path: &[&str]) -> Value {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return Value::Null,
        }
    }
    cur.clone()
}

fn raw(event_type: Option<String>) -> Normalized {
    Normalized {
        kind: "raw",
        event_type,
        data: json!({}),
    }
}

/// A Feishu schema 1.0 / 2.0 event.
pub fn feishu(env: &Envelope) -> Normalized {
    let e = &env.event;
    let et = env.event_type.clone();
    let Some(t) = et.as_deref() else {
        return raw(et);
    };
    let found = feishu_v2_event(t, e).or_else(|| {
        // Schema 1.0 names are only read as such from 1.0 envelopes.
        if env.kind == EnvelopeKind::V1 {
            feishu_v1_event(t, e)
        } else {
            None
        }
    });
    match found {
        Some((kind, data)) => Normalized {
            kind,
            event_type: et,
            data,
        },
        None => raw(et),
    }
}

/// The kind and fields of a schema 2.0 event type (also sent in 1.0
/// envelopes).
fn feishu_v2_event(event_type: &str, e: &Value) -> Option<(&'static str, Value)> {
    Some(match event_type {
        "im.message.receive_v1" => {
            let content = at(e, &["message", "content"]);
            let text = content
                .as_str()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
                .map(|c| at(&c, &["text"]))
                .unwrap_or(Value::Null);
            (
                "message_received",
                obj(&[
                    ("sender", at(e, &["sender", "sender_id", "open_id"])),
                    ("chat_id", at(e, &["message", "chat_id"])),
                    ("chat_type", at(e, &["message", "chat_type"])),
                    ("message_id", at(e, &["message", "message_id"])),
                    ("message_type", at(e, &["message", "message_type"])),
                    ("text", text),
                ]),
            )
        }
        "card.action.trigger" => (
            "card_action",
            obj(&[
                ("user", at(e, &["operator", "open_id"])),
                ("chat_id", at(e, &["context", "open_chat_id"])),
                ("message_id", at(e, &["context", "open_message_id"])),
                ("tag", at(e, &["action", "tag"])),
                ("value", at(e, &["action", "value"])),
            ]),
        ),
        "im.chat.member.bot.added_v1" => (
            "bot_added",
            obj(&[
                ("chat_id", at(e, &["chat_id"])),
                ("operator", at(e, &["operator_id", "open_id"])),
            ]),
        ),
        "im.chat.member.bot.deleted_v1" => (
            "bot_removed",
            obj(&[
                ("chat_id", at(e, &["chat_id"])),
                ("operator", at(e, &["operator_id", "open_id"])),
            ]),
        ),
        _ => return None,
    })
}

/// The kind and fields of a schema 1.0 event type.
fn feishu_v1_event(event_type: &str, e: &Value) -> Option<(&'static str, Value)> {
    Some(match event_type {
        "message" => (
            "message_received",
            obj(&[
                ("sender", at(e, &["open_id"])),
                ("chat_id", at(e, &["open_chat_id"])),
                ("chat_type", at(e, &["chat_type"])),
                ("message_id", at(e, &["open_message_id"])),
                ("message_type", at(e, &["msg_type"])),
                ("text", at(e, &["text_without_at_bot"])),
            ]),
        ),
        "add_bot" => (
            "bot_added",
            obj(&[
                ("chat_id", at(e, &["open_chat_id"])),
                ("operator", at(e, &["operator_open_id"])),
            ]),
        ),
        "remove_bot" => (
            "bot_removed",
            obj(&[
                ("chat_id", at(e, &["open_chat_id"])),
                ("operator", at(e, &["operator_open_id"])),
            ]),
        ),
        "p2p_chat_create" => (
            "user_followed",
            obj(&[("user", at(e, &["user", "open_id"]))]),
        ),
        _ => return None,
    })
}

/// A Feishu legacy card action (`{open_id, open_message_id, action: {value, tag}}`).
pub fn feishu_card(v: &Value) -> Normalized {
    Normalized {
        kind: "card_action",
        event_type: Some("card.action".into()),
        data: obj(&[
            ("user", at(v, &["open_id"])),
            ("chat_id", at(v, &["open_chat_id"])),
            ("message_id", at(v, &["open_message_id"])),
            ("tag", at(v, &["action", "tag"])),
            ("value", at(v, &["action", "value"])),
        ]),
    }
}

/// A DingTalk HTTP card callback (`{outTrackId, userId, value, ...}`).
pub fn dingtalk_card(v: &Value) -> Normalized {
    Normalized {
        kind: "card_action",
        event_type: Some("card.callback".into()),
        data: obj(&[
            ("user", at(v, &["userId"])),
            ("message_id", at(v, &["outTrackId"])),
            ("value", at(v, &["value"])),
        ]),
    }
}

/// A WeCom or WeChat event XML (flat fields).
pub fn wx(f: &BTreeMap<String, String>) -> Normalized {
    let s = |k: &str| {
        f.get(k)
            .map(|v| Value::String(v.clone()))
            .unwrap_or(Value::Null)
    };
    let msg_type = f.get("MsgType").map(String::as_str).unwrap_or_default();
    if msg_type != "event" {
        if msg_type.is_empty() {
            return raw(None);
        }
        return Normalized {
            kind: "message_received",
            event_type: Some(msg_type.to_string()),
            data: obj(&[
                ("sender", s("FromUserName")),
                ("chat_id", s("ChatId")),
                ("message_id", s("MsgId")),
                ("message_type", s("MsgType")),
                ("text", s("Content")),
            ]),
        };
    }
    let event = f.get("Event").cloned().unwrap_or_default();
    let (kind, data) = match event.as_str() {
        "subscribe" => ("user_followed", obj(&[("user", s("FromUserName"))])),
        "unsubscribe" => ("user_unfollowed", obj(&[("user", s("FromUserName"))])),
        "TEMPLATESENDJOBFINISH" => (
            "template_send_result",
            obj(&[
                ("user", s("FromUserName")),
                ("message_id", s("MsgID")),
                ("status", s("Status")),
            ]),
        ),
        "template_card_event" => (
            "card_action",
            obj(&[
                ("user", s("FromUserName")),
                ("value", s("EventKey")),
                ("task_id", s("TaskId")),
                ("card_type", s("CardType")),
            ]),
        ),
        _ => return raw(Some(event)),
    };
    Normalized {
        kind,
        event_type: Some(event),
        data,
    }
}

/// A DingTalk event (`EventType`); forwarded as `raw` with its type.
pub fn dingtalk(v: &Value) -> Normalized {
    raw(v
        .get("EventType")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// The dedup key of a WeCom/WeChat event: `MsgId` (messages) or `MsgID`
/// (template results); for other events `FromUserName` + `CreateTime` +
/// `Event`, as the platforms advise. Keys are prefixed by their source.
pub fn xml_event_id(f: &BTreeMap<String, String>, plaintext: &str) -> String {
    if let Some(id) = f.get("MsgId").or_else(|| f.get("MsgID")) {
        return format!("msg:{id}");
    }
    match (f.get("FromUserName"), f.get("CreateTime")) {
        (Some(from), Some(t)) => format!(
            "evt:{from}:{t}:{}:{}",
            f.get("Event").map(String::as_str).unwrap_or_default(),
            f.get("EventKey").map(String::as_str).unwrap_or_default()
        ),
        _ => hash_id(plaintext),
    }
}

/// The dedup key of a JSON event: an id field when there is one, otherwise a
/// hash of the plaintext (a platform retry resends the same event).
pub fn json_event_id(v: &Value, plaintext: &str) -> String {
    for k in ["eventId", "EventId", "event_id", "msgId"] {
        if let Some(id) = v.get(k).and_then(Value::as_str) {
            if !id.is_empty() {
                return format!("id:{id}");
            }
        }
    }
    hash_id(plaintext)
}

fn hash_id(plaintext: &str) -> String {
    format!("sha256:{}", crate::store::body_hash(plaintext.as_bytes()))
}
