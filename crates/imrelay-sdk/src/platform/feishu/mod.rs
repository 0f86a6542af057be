//! # Feishu / Lark (飞书)
//!
//! Two destination types, for Feishu (`https://open.feishu.cn`) or Lark
//! (`https://open.larksuite.com`): the paths are identical and `region` only
//! picks the host (`base_url` overrides it, e.g. for the mock).
//!
//! - `feishu_webhook` ([`webhook::FeishuWebhook`]): a group's custom bot,
//!   `POST /open-apis/bot/v2/hook/{hook}`, optionally signed (`timestamp` and
//!   `sign` in the JSON body, see [`crate::sign::feishu_webhook`]).
//! - `feishu_app` ([`app::FeishuApp`]): a self-built app's bot,
//!   `POST /open-apis/im/v1/messages?receive_id_type=..` with a cached
//!   `tenant_access_token`, one request per recipient, each carrying a `uuid`
//!   derived from the message id so a retry cannot deliver twice.
//!
//! ## What each body kind becomes
//!
//! | Body | Native type | Notes |
//! |---|---|---|
//! | `text` | `text` | the title, if any, is the first line; mentions `<at user_id="all">所有人</at>`, `<at user_id="ou_x"></at>` |
//! | `markdown` | `interactive` card | one `lark_md` div (`# headings` become bold: lark_md has none); header = title; mentions `<at id=all></at>`, `<at id=ou_x></at>` |
//! | `card` | `interactive` card | as markdown, plus header colour `template` from `theme` (blue, green, orange, red, ... or info/success/warning/error) and an `action` row of URL `button`s |
//! | `link` | `post` | title, the text's lines, an `a` tag to the URL; `pic_url` dropped (post images need an uploaded image_key) |
//! | `news` | `post` | one `a` tag per article (title → URL) and its description; pictures dropped |
//! | `image` | `image` | `key` (an `image_key`) only; `base64`/`url` refused: webhook bots cannot upload images, and the app destination does not upload them |
//! | `template` | `post` | fields as `key: value` lines, the URL as an `a` tag |
//! | `raw` | as given | webhook: the whole body (`msg_type` + `content`/`card`), e.g. `share_chat`; app: `msg_type` + `content` (object or string), wrapped per recipient |
//!
//! Mentions by phone number (`mentions.mobiles`) are ignored: Feishu mentions by
//! open_id (`mentions.user_ids`) or everyone (`mentions.all`). In posts they are
//! a paragraph of `at` elements. When text is split, mentions go on the first
//! part, and links and buttons on the last.
//!
//! ## After the send (see `docs/lifecycle.md`)
//!
//! `feishu_app`: cards are updated in place (`PATCH /open-apis/im/v1/messages/:message_id`,
//! `content` = the card JSON string, within 14 days, 5 updates a second per
//! message; the card must say `"update_multi": true` before and after, which
//! the app's cards do); texts and posts are edited (`PUT`, at most 20 times,
//! within the tenant's edit limit); messages are recalled with `DELETE`
//! within the tenant's recall limit (24 h by default). `msg.actions` become
//! callback buttons on markdown and card bodies (other bodies have no
//! buttons) whose `value` is `{"imrelay_message": id, "imrelay_action":
//! action}`; [`card_click`] reads the click back from a `card.action.trigger`
//! callback and [`card_click_reply`] builds the 3-second answer.
//! `feishu_webhook`: custom bots have no update or recall API; an update is a
//! new message.
//!
//! ## Size limits (whole request body, JSON-escaped bytes)
//!
//! | Destination | Limit | |
//! |---|---|---|
//! | `feishu_webhook` | 20,000 bytes (documented "20 KB") | signature fields included |
//! | `feishu_app` text | 150,000 bytes (documented 150 KB) | `content` is escaped twice (it is a JSON string) |
//! | `feishu_app` post, card | 30,000 bytes (documented 30 KB) | |
//!
//! Text over a limit is split or truncated per the destination's `overflow`.
//!
//! ## Rate limits declared
//!
//! `feishu_webhook`: 5/s and 100/min per bot (over: code 11232).
//! `feishu_app`: 50/s per app (over: 99991400 or HTTP 429). Feishu also limits
//! each recipient user or group to about 5/s (230020); that per-recipient limit
//! is not declared (a [`crate::Quota`] is per destination), so a burst to one
//! chat can draw 230020, which is classified as rate limited. The commonly
//! quoted 1000/min per app is unconfirmed and not declared either.

pub mod app;
mod click;
pub mod codes;
mod render;
pub mod urgent;
pub mod webhook;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::destination::{parse_config, Registration};
use crate::endpoint;
use crate::message::Platform;
use crate::Error;

pub use app::{FeishuApp, FeishuAppConfig, ReceiveIdType};
pub use click::{card_click, card_click_reply, reply_card, ToastKind, CARD_ACTION_TRIGGER};
pub use render::CARD_TEMPLATES;
pub use webhook::{FeishuWebhook, FeishuWebhookConfig};

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[
    Registration {
        kind: "feishu_webhook",
        platform: Platform::Feishu,
        summary: "Feishu/Lark group custom bot webhook (optionally signed)",
        build: |client, value| {
            Ok(Arc::new(FeishuWebhook::new(
                client,
                parse_config("feishu_webhook", value)?,
            )?))
        },
    },
    Registration {
        kind: "feishu_app",
        platform: Platform::Feishu,
        summary: "Feishu/Lark app bot: messages to users or chats via im/v1/messages",
        build: |client, value| {
            Ok(Arc::new(FeishuApp::new(
                client,
                parse_config("feishu_app", value)?,
            )?))
        },
    },
];

/// Which service: Feishu (China) or Lark (international). Same API, other host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Feishu,
    Lark,
}

/// Feishu's open platform host.
pub const FEISHU_BASE: &str = "https://open.feishu.cn";
/// Lark's open platform host.
pub const LARK_BASE: &str = "https://open.larksuite.com";
const LARK_HOST: &str = "open.larksuite.com";

impl Region {
    /// The region's open platform host.
    pub const fn default_base(self) -> &'static str {
        match self {
            Region::Feishu => FEISHU_BASE,
            Region::Lark => LARK_BASE,
        }
    }
}

/// The base URL: `base_url` if set, else the region's host.
fn base(region: Option<Region>, base_url: Option<&str>) -> Result<Url, Error> {
    endpoint::base_url(
        base_url,
        region.unwrap_or_default().default_base(),
        "base_url",
    )
}

/// Refuse a raw payload marked for another platform.
fn check_raw(platform: Option<Platform>, kind: &'static str) -> Result<(), Error> {
    if platform.is_some_and(|p| p != Platform::Feishu) {
        return Err(Error::unsupported(
            kind,
            "raw",
            format!(
                "the raw payload is marked for {}",
                platform.map(|p| p.as_str()).unwrap_or("")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::Client;

    #[test]
    fn both_types_are_registered() {
        let client = Client::new().unwrap();
        let w = client
            .build(&serde_json::json!({"type": "feishu_webhook", "hook": "abc-123"}))
            .unwrap();
        assert_eq!(w.kind(), "feishu_webhook");
        let a = client
            .build(&serde_json::json!({"type": "feishu_app", "app_id": "cli_1", "app_secret": "s"}))
            .unwrap();
        assert_eq!(a.kind(), "feishu_app");
        assert!(a.dedups_retries());
        assert!(!w.dedups_retries());
    }
}
