//! WeCom (企业微信): the group robot webhook (`wecom_robot`) and app messages
//! (`wecom_app`). Reference: platforms.md §3.
//!
//! | body kind | `wecom_robot` | `wecom_app` |
//! |---|---|---|
//! | text | `text`; mentions: `mentioned_list` (user ids, `@all`), `mentioned_mobile_list` | `text` (mentions ignored: app messages go to recipients, there is no @) |
//! | markdown | `markdown` (config `markdown = "v1"`) with `<@userid>` appended; **mobiles and `@all` cannot be mentioned in markdown and are dropped**. With `markdown = "v2"`: `markdown_v2`, which cannot mention anyone (all mentions dropped) | `markdown` |
//! | link | `news` with one article | `textcard` (title, description, url, `btntxt` = "详情") |
//! | card | with buttons: `template_card` `text_notice` (`jump_list` ≤ 3 buttons, `card_action` = first button; further buttons become `text: url` lines); without buttons: degraded to markdown (`**title**` + text) | one button: `textcard`; two or more: `template_card` `text_notice` as for robots; none: markdown |
//! | news | `news`, 8 articles per message, more are split into several messages | same as robot |
//! | image | base64: `image` with `md5` of the raw bytes (jpg/png ≤ 2 MB); URL and key refused | key (`media_id`): `image`; base64 and URL refused (no upload) |
//! | template | degraded to text: title line, `key: value` lines, url | same as robot |
//! | raw | sent as is | sent as is; `agentid`, `touser`/`toparty`/`totag` and the duplicate check are added when absent |
//!
//! The message title is not rendered for text and markdown bodies (WeCom has no
//! title field there); it is the card, link or article title.
//!
//! Size limits (UTF-8 bytes, [`crate::limits::Counting::Utf8`]): robot text ≤ 2048,
//! robot markdown/markdown_v2 ≤ 4096, app text and markdown ≤ 2048, app
//! `textcard` description ≤ 512 and title ≤ 128 (truncated). Longer text is split
//! or truncated per the destination's `overflow`; mentions ride on the first part.
//!
//! After the send (see `docs/lifecycle.md`): a `wecom_app` message with
//! `actions` (and an id) goes out as a `button_interaction` template card,
//! one button per action; the send's `response_code` is the report's
//! `update_token`, good for one `update_template_card` within 72 h, and each
//! click ([`card_click`]) hands out a fresh one. App messages are recalled
//! within 24 h (`message/recall`). `wecom_robot`: no update, recall or
//! callback buttons; an update is a new message.
//!
//! Rate limits: robot 20 messages/minute (45009 beyond); app 30/minute and
//! 1000/hour per member. Robots have no dedup; apps send every request with
//! `enable_duplicate_check` so a retried request is not delivered twice within
//! `duplicate_check_interval` (note: neither is a genuinely identical message).

pub mod app;
mod card;
pub mod codes;
pub mod robot;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::destination::{parse_config, Registration};
use crate::limits::{fit, Counting, Overflow, OverflowMode};
use crate::message::{Article, Button, Message, Platform};
use crate::Error;

pub use app::{WecomApp, WecomAppConfig};
pub use card::{
    button_key, card_click, task_id, MAX_BUTTONS, MAX_KEY_BYTES, MAX_TASK_ID_BYTES,
    TEMPLATE_CARD_EVENT,
};
pub use robot::{WecomRobot, WecomRobotConfig};

/// The default API host.
pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";
/// Articles per `news` message.
pub const MAX_ARTICLES: usize = 8;
/// Buttons a `template_card` `jump_list` takes.
pub const MAX_JUMPS: usize = 3;

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[
    Registration {
        kind: "wecom_robot",
        platform: Platform::Wecom,
        summary: "WeCom group robot webhook (key); text, markdown, news, image, template card",
        build: |client, value| Ok(Arc::new(WecomRobot::new(client, parse_config("wecom_robot", value)?)?)),
    },
    Registration {
        kind: "wecom_app",
        platform: Platform::Wecom,
        summary: "WeCom self-built app messages to users, parties and tags (corp_id, corp_secret, agent_id)",
        build: |client, value| Ok(Arc::new(WecomApp::new(client, parse_config("wecom_app", value)?)?)),
    },
];

/// Refuse text WeCom would answer with 44004 (empty content).
fn non_empty<'a>(text: &'a str, field: &str) -> Result<&'a str, Error> {
    if text.trim().is_empty() {
        Err(Error::InvalidMessage(format!(
            "`{field}` is empty; WeCom refuses empty content"
        )))
    } else {
        Ok(text)
    }
}

/// Fit `text` into pieces of `limit` bytes, leaving `reserve` bytes free in
/// every piece (for mentions appended to the first one).
fn fit_text(text: &str, limit: usize, reserve: usize, overflow: &Overflow) -> Vec<String> {
    fit(
        text,
        limit.saturating_sub(reserve),
        Counting::Utf8,
        overflow,
    )
}

/// `news` messages for `articles`, eight per message. Split mode sends at most
/// `max_parts` messages; truncate mode only the first eight articles.
fn news_bodies(articles: &[Article], overflow: &Overflow) -> Result<Vec<Value>, Error> {
    if articles.is_empty() {
        return Err(Error::InvalidMessage(
            "`body.articles` is empty; news needs 1 to 8 articles".into(),
        ));
    }
    let max_msgs = match overflow.mode {
        OverflowMode::Split => overflow.max_parts.max(1),
        OverflowMode::Truncate => 1,
    };
    Ok(articles
        .chunks(MAX_ARTICLES)
        .take(max_msgs)
        .map(|chunk| {
            let list: Vec<Value> = chunk.iter().map(article_json).collect();
            json!({"msgtype": "news", "news": {"articles": list}})
        })
        .collect())
}

fn article_json(a: &Article) -> Value {
    let mut o = Map::new();
    o.insert("title".into(), a.title.clone().into());
    if let Some(d) = &a.description {
        o.insert("description".into(), d.clone().into());
    }
    o.insert("url".into(), a.url.clone().into());
    if let Some(p) = &a.pic_url {
        o.insert("picurl".into(), p.clone().into());
    }
    Value::Object(o)
}

/// A `template_card` of type `text_notice`: the card's text as `sub_title_text`,
/// up to three buttons in `jump_list`, the first button as the card's click
/// action; buttons past the third become `text: url` lines.
fn text_notice_card(msg: &Message, text: &str, buttons: &[Button]) -> Value {
    let mut sub = text.to_string();
    for b in buttons.iter().skip(MAX_JUMPS) {
        sub.push_str(&format!("\n{}: {}", b.text, b.url));
    }
    let jumps: Vec<Value> = buttons
        .iter()
        .take(MAX_JUMPS)
        .map(|b| json!({"type": 1, "title": b.text, "url": b.url}))
        .collect();
    json!({
        "card_type": "text_notice",
        "main_title": {"title": msg.title_or_default()},
        "sub_title_text": sub,
        "jump_list": jumps,
        "card_action": {"type": 1, "url": buttons[0].url},
    })
}

/// A card without buttons, degraded to markdown: bold title, then the text.
fn card_as_markdown(msg: &Message, text: &str) -> String {
    format!("**{}**\n{}", msg.title_or_default(), text)
}

/// A template degraded to text: the title line (if any), `key: value` lines,
/// and the url.
fn template_as_text(
    msg: &Message,
    data: &std::collections::BTreeMap<String, String>,
    url: Option<&str>,
) -> String {
    let mut lines: Vec<String> = Vec::new();
    if let Some(t) = msg.title.as_deref().filter(|t| !t.trim().is_empty()) {
        lines.push(t.to_string());
    }
    lines.extend(data.iter().map(|(k, v)| format!("{k}: {v}")));
    if let Some(u) = url {
        lines.push(u.to_string());
    }
    lines.join("\n")
}

/// Refuse a raw payload marked for another platform.
fn check_raw(platform: Option<Platform>, kind: &'static str) -> Result<(), Error> {
    super::check_raw(platform, Platform::Wecom, kind)
}
