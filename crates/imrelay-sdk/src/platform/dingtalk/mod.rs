//! DingTalk (钉钉) destinations.
//!
//! | config `type`    | what it is | request |
//! |---|---|---|
//! | `dingtalk_robot` | custom group robot webhook | `POST {base}/robot/send?access_token=..[&timestamp=..&sign=..]` |
//! | `dingtalk_app` `mode = "work_notice"` | internal app, work notice (工作通知) | `POST {oapi}/topapi/message/corpconversation/asyncsend_v2?access_token=..` |
//! | `dingtalk_app` `mode = "robot"` | internal app robot, 1:1 (单聊) | `POST {api}/v1.0/robot/oToMessages/batchSend` with header `x-acs-dingtalk-access-token` |
//! | `dingtalk_app` `mode = "robot"`, recipient `open_conversation_id:cid..` | the app robot in a group it is in | `POST {api}/v1.0/robot/groupMessages/send` |
//! | `dingtalk_app` `mode = "robot"` + `card_template_id`, message with `actions` and `id` | an interactive card per recipient ([`card`]) | `POST {api}/v1.0/card/instances/createAndDeliver` |
//!
//! # After the send
//!
//! Every send reports its platform id: a work notice's `task_id`, a robot
//! message's `processQueryKey`, a card's `outTrackId` (its delivery's
//! `carrierId` as the update token, which recall needs). Cards update in
//! place; nothing else on DingTalk can be edited, so other updates go out as
//! new messages. Work notices and robot messages (cards included) can be
//! recalled ([`recall`]) within 24 hours; custom robots cannot be recalled at
//! all. Read receipts: [`App::read_status`] ([`read`]). See
//! `docs/lifecycle.md` for the sources.
//!
//! # What each body kind becomes
//!
//! | body | robot (`msgtype`) | work notice (`msg.msgtype`) | app robot (`msgKey`) |
//! |---|---|---|---|
//! | text | `text` (title, if any, as the first line) | `text` | `sampleText` |
//! | markdown | `markdown` (title = notification text) | `markdown` | `sampleMarkdown` |
//! | link | `link` | `link` (`picUrl` only when given) | `sampleLink` |
//! | card, 0 buttons | `markdown` | `markdown` | `sampleMarkdown` |
//! | card, 1 button | `actionCard` with `singleTitle`/`singleURL` | `action_card` with `single_title`/`single_url` | `sampleActionCard` |
//! | card, n buttons | `actionCard` with `btns` (`btnOrientation` "1" for 2 buttons, else "0") | `action_card` with `btn_json_list` | `sampleActionCard2`..`5`; over 5: `sampleMarkdown` with the buttons as links |
//! | news | `feedCard` (descriptions dropped: feedCard has none) | `markdown` list of links | `sampleMarkdown` list of links |
//! | image by URL | `markdown` `![image](url)` | `markdown` `![image](url)` | `sampleImageMsg` |
//! | image by key | refused (robots take URLs only) | `image` (`media_id`) | refused |
//! | image bytes | refused (upload first) | refused | refused |
//! | template | `text`: title, then `key: value` lines, then the URL | same, `text` | same, `sampleText` |
//! | raw | the payload is the whole body | the payload is `msg` | the payload is `{msgKey, msgParam}` (`msgParam` object or string) |
//!
//! Mentions: the robot fills `at` (`atMobiles`, `atUserIds`, `isAtAll`) for text
//! and markdown (and the kinds degraded to them), and appends `@mobile` /
//! `@userId` to the content when the text lacks it, because DingTalk only pings
//! a mentioned person whose `@` appears in the text. When a message is split,
//! only the first part mentions. link, actionCard and feedCard cannot mention
//! (DingTalk ignores `at` there): mentions are dropped for them. App messages
//! are 1:1, so mentions do not apply.
//!
//! # Size limits
//!
//! | destination | limit | counted as |
//! |---|---|---|
//! | robot | whole JSON body ≤ 20,000 bytes (else errcode 460101) | text fitted with [`Counting::Json`] against 20,000 minus the rest of the body |
//! | work notice | `msg` ≤ 2,048 bytes | the serialized `msg` object |
//! | app robot | `msgParam` ≤ 15,000 bytes (documented for group sends; assumed for 1:1) | the `msgParam` string |
//!
//! Text and markdown over the limit are split or truncated by the destination's
//! `overflow` rule; link and card text are truncated (a second card makes no
//! sense). Recipients are sent 100 per work notice and 20 per batchSend.
//!
//! UNSURE (not confirmed from a primary source): the 15,000-byte `msgParam`
//! limit for 1:1 sends; the `sampleActionCard2..5` field names
//! (`actionTitleN`/`actionURLN`, as third-party SDKs use them); `robot_code`
//! defaulting to the app key; errcode 88's token-related `sub_code`s.
//!
//! [`Counting::Json`]: crate::limits::Counting::Json

// `Report` is the SDK's answer type on both sides of a send (the core's
// `TokenSource::fetch` and `HttpResponse::json` return it as the error too);
// boxing it here alone would only make the module disagree with the core.
#![allow(clippy::result_large_err)]

pub mod app;
pub mod card;
pub mod codes;
pub mod ding;
pub mod read;
pub mod recall;
pub mod robot;

use std::sync::Arc;

use serde_json::Value;

use crate::destination::{parse_config, Registration};
use crate::limits::{self, Counting, Overflow, OverflowMode};
use crate::message::{Article, Body, Button, ImageSource, Message, Platform};
use crate::Error;

pub use app::{App, AppConfig, AppMode, TokenApi, GROUP_PREFIX};
pub use card::{card_click, card_click_reply};
pub use read::ReadStatus;
pub use robot::{Robot, RobotConfig};

/// Real hosts.
pub const OAPI_BASE: &str = "https://oapi.dingtalk.com";
pub const API_BASE: &str = "https://api.dingtalk.com";

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[
    Registration {
        kind: "dingtalk_robot",
        platform: Platform::Dingtalk,
        summary: "DingTalk custom group robot (webhook, optional SEC signing)",
        build: |client, value| {
            Ok(Arc::new(Robot::new(
                client,
                parse_config("dingtalk_robot", value)?,
            )?))
        },
    },
    Registration {
        kind: "dingtalk_app",
        platform: Platform::Dingtalk,
        summary: "DingTalk internal app: work notices or robot 1:1 messages",
        build: |client, value| {
            Ok(Arc::new(App::new(
                client,
                parse_config("dingtalk_app", value)?,
            )?))
        },
    },
];

/// A neutral body reduced to what DingTalk can say, before a destination picks
/// its own field names. Degradations common to every DingTalk destination
/// happen here (template to text lines, a card without buttons to markdown).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape<'a> {
    Text(String),
    Markdown {
        title: String,
        text: String,
    },
    Link {
        title: String,
        text: &'a str,
        url: &'a str,
        pic: Option<&'a str>,
    },
    /// At least one button.
    Card {
        title: String,
        text: &'a str,
        buttons: &'a [Button],
    },
    News(&'a [Article]),
    Image {
        title: String,
        source: &'a ImageSource,
    },
    Raw(&'a Value),
}

pub(crate) fn shape<'a>(msg: &'a Message, kind: &'static str) -> Result<Shape<'a>, Error> {
    Ok(match &msg.body {
        Body::Text { text } => Shape::Text(
            match msg.title.as_deref().filter(|t| !t.trim().is_empty()) {
                Some(title) => format!("{title}\n{text}"),
                None => text.clone(),
            },
        ),
        Body::Markdown { text } => Shape::Markdown {
            title: msg.title_or_default(),
            text: text.clone(),
        },
        Body::Link { text, url, pic_url } => Shape::Link {
            title: msg.title_or_default(),
            text,
            url,
            pic: pic_url.as_deref().filter(|p| !p.is_empty()),
        },
        Body::Card { text, buttons, .. } if buttons.is_empty() => Shape::Markdown {
            title: msg.title_or_default(),
            text: text.clone(),
        },
        Body::Card { text, buttons, .. } => Shape::Card {
            title: msg.title_or_default(),
            text,
            buttons,
        },
        Body::News { articles } if articles.is_empty() => {
            return Err(Error::InvalidMessage(
                "`body.articles` is empty: a news message needs at least one article".into(),
            ))
        }
        Body::News { articles } => Shape::News(articles),
        Body::Image { image } => Shape::Image {
            title: msg
                .title
                .clone()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "[image]".into()),
            source: image,
        },
        Body::Template {
            template_id,
            data,
            url,
        } => {
            let mut lines = Vec::with_capacity(data.len() + 2);
            lines.push(
                msg.title
                    .clone()
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| template_id.clone()),
            );
            lines.extend(data.iter().map(|(k, v)| format!("{k}: {v}")));
            if let Some(u) = url {
                lines.push(u.clone());
            }
            Shape::Text(lines.join("\n"))
        }
        Body::Raw { platform, payload } => {
            if let Some(p) = platform.filter(|p| *p != Platform::Dingtalk) {
                return Err(Error::unsupported(
                    kind,
                    "raw",
                    format!("the raw payload is marked for {p}, not dingtalk"),
                ));
            }
            if !payload.is_object() {
                return Err(Error::InvalidMessage(
                    "`body.payload` must be a JSON object".into(),
                ));
            }
            Shape::Raw(payload)
        }
    })
}

/// Markdown list of article links (for destinations without feedCard).
pub(crate) fn news_markdown(articles: &[Article]) -> String {
    articles
        .iter()
        .map(
            |a| match a.description.as_deref().filter(|d| !d.is_empty()) {
                Some(d) => format!("- [{}]({})  \n  {d}", a.title, a.url),
                None => format!("- [{}]({})", a.title, a.url),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// Card text followed by its buttons as markdown links (for more buttons than
/// the destination can show).
pub(crate) fn buttons_markdown(text: &str, buttons: &[Button]) -> String {
    let links: Vec<String> = buttons
        .iter()
        .map(|b| format!("[{}]({})", b.text, b.url))
        .collect();
    format!("{text}\n\n{}", links.join(" | "))
}

/// The smallest text budget worth sending; a title or envelope that leaves
/// less than this is an error, not a message of ellipses.
const MIN_TEXT_BUDGET: usize = 64;

/// Fit `text` into bodies built by `make` so each serialized body stays within
/// `limit` bytes, keeping `reserve` bytes free (for mentions appended later).
/// Text is counted as JSON-escaped bytes, the way it travels.
pub(crate) fn fit_text(
    text: &str,
    limit: usize,
    reserve: usize,
    overflow: &Overflow,
    make: impl Fn(&str) -> Value,
    what: &str,
) -> Result<Vec<String>, Error> {
    let envelope = serde_json::to_string(&make(""))
        .map(|s| s.len())
        .unwrap_or(0);
    let budget = limit
        .checked_sub(envelope + reserve)
        .filter(|b| *b >= MIN_TEXT_BUDGET)
        .ok_or_else(|| {
            Error::InvalidMessage(format!(
                "{what}: the title and other fields take {envelope} of the {limit} bytes DingTalk allows; shorten `title`"
            ))
        })?;
    Ok(limits::fit(text, budget, Counting::Json, overflow))
}

/// The overflow rule for kinds that cannot be split (link, card): truncate.
pub(crate) fn truncating(overflow: &Overflow) -> Overflow {
    Overflow {
        mode: OverflowMode::Truncate,
        ..overflow.clone()
    }
}

/// Serialized size of `v`.
pub(crate) fn json_len(v: &Value) -> usize {
    serde_json::to_string(v)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}
