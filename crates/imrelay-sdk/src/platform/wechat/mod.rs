//! WeChat Official Account (公众号): template and subscribe messages
//! (`wechat_template`). Reference: platforms.md §4.
//!
//! | body kind | `wechat_template` |
//! |---|---|
//! | template | native: `template_id` (or the configured default), `data` as `{"key": {"value": "..."}}`, `url` (kind `template`) or `page` (kind `subscribe`), configured `miniprogram` |
//! | raw | sent as is; `touser` (one request per recipient), `template_id` and `client_msg_id` are added when absent |
//! | text, markdown, link, card, news, image | refused (`Error::Unsupported`): followers can only be pushed template messages, which need an approved template and its fields |
//!
//! One request per recipient openid. Kind `template` carries `client_msg_id`
//! = [`crate::destination::dedup_key`]`(message id, 0, openid)`, so a retry of
//! the same message to the same follower is not delivered twice (a message
//! without an id has no dedup). Kind `subscribe` has no dedup field.
//!
//! No size splitting: WeChat checks each field against the template's own rules
//! (47003 when broken). Rate limit: a daily quota per account (45009, waited out
//! for an hour at a time); no per-second limit is published.
//!
//! The access token comes from `POST /cgi-bin/stable_token` with
//! `force_refresh: false` (the same token while valid, so several instances
//! can share an account); see [`template::WechatTokenSource`].

pub mod codes;
pub mod template;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::destination::{parse_config, Registration};
use crate::message::Platform;

pub use template::{WechatKind, WechatTemplate, WechatTemplateConfig};

/// The default API host.
pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[Registration {
    kind: "wechat_template",
    platform: Platform::Wechat,
    summary:
        "WeChat Official Account template or subscribe messages to followers (app_id, app_secret)",
    build: |client, value| {
        Ok(Arc::new(WechatTemplate::new(
            client,
            parse_config("wechat_template", value)?,
        )?))
    },
}];
