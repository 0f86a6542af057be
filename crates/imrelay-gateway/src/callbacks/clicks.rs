//! Card clicks among verified callback events: which events are clicks on
//! imrelay's buttons (each platform's SDK module reads its own shape), and
//! the answer each platform shows the clicker.

use std::collections::BTreeMap;

use imrelay_sdk::platform::{dingtalk, feishu, wecom};
use imrelay_sdk::CardClick;
use serde_json::Value;

use super::config::CallbackPlatform;
use super::{Reply, VerifiedEvent};
use crate::lifecycle::click::ClickAnswer;

/// The click `ev` is, when it is one on an imrelay button.
pub fn card_click(platform: CallbackPlatform, ev: &VerifiedEvent) -> Option<CardClick> {
    match platform {
        CallbackPlatform::Feishu => feishu::card_click(&ev.raw),
        CallbackPlatform::Dingtalk => dingtalk::card_click(&ev.raw),
        CallbackPlatform::Wecom => wecom::card_click(&fields(&ev.raw)),
        CallbackPlatform::Wechat => None,
    }
}

/// An XML event's fields, as the callback layer keeps them (a JSON object
/// of strings).
fn fields(raw: &Value) -> BTreeMap<String, String> {
    raw.as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The answer to a click: Feishu shows a toast; DingTalk and WeCom take the
/// platform's usual acknowledgement (`standard`) and show the card update
/// that follows.
pub fn reply(platform: CallbackPlatform, answer: &ClickAnswer, standard: Reply) -> Reply {
    match platform {
        CallbackPlatform::Feishu => {
            let kind = if answer.ok {
                feishu::ToastKind::Success
            } else {
                feishu::ToastKind::Error
            };
            Reply::json(feishu::card_click_reply(&answer.text, kind, None))
        }
        _ => standard,
    }
}
