//! The platform-neutral message. Every destination renders it to its own native
//! types; see the crate docs for the table of what each platform does with each
//! body kind (native, degraded, or refused).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One message, as producers describe it.
///
/// ```
/// use imrelay_sdk::message::{Body, Mentions, Message};
/// let msg: Message = serde_json::from_str(r#"{
///     "title": "Deploy",
///     "body": {"type": "markdown", "text": "**v1.2** is live"},
///     "mentions": {"mobiles": ["13800000000"]}
/// }"#).unwrap();
/// assert!(matches!(msg.body, Body::Markdown { .. }));
/// assert_eq!(msg.mentions, Mentions { mobiles: vec!["13800000000".into()], ..Default::default() });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Stable id of the logical message. Destinations with a platform dedup key
    /// (Feishu `uuid`, WeChat `client_msg_id`) derive it from this id, so a retry
    /// of the same message cannot be delivered twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Title: notification text on DingTalk, card header on Feishu, and so on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub body: Body,
    #[serde(default, skip_serializing_if = "Mentions::is_empty")]
    pub mentions: Mentions,
    /// Recipients for app destinations (user ids, open ids, chat ids...). Empty
    /// means "the destination's configured default recipients". Robots ignore it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Buttons whose clicks call back (acknowledge, silence, resolve). Drawn
    /// where the destination takes card callbacks
    /// ([`Lifecycle::card_actions`](crate::Lifecycle::card_actions)), and only
    /// when the message has an [`id`](Message::id) for the click to name;
    /// left out elsewhere. Link buttons belong in [`Body::Card`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::lifecycle::Action>,
}

impl Message {
    pub fn new(body: Body) -> Self {
        Message {
            id: None,
            title: None,
            body,
            mentions: Mentions::default(),
            recipients: Vec::new(),
            actions: Vec::new(),
        }
    }

    pub fn text(text: impl Into<String>) -> Self {
        Self::new(Body::Text { text: text.into() })
    }

    pub fn markdown(title: impl Into<String>, text: impl Into<String>) -> Self {
        Self::new(Body::Markdown { text: text.into() }).with_title(title)
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    pub fn with_mentions(mut self, mentions: Mentions) -> Self {
        self.mentions = mentions;
        self
    }

    pub fn with_recipients(mut self, recipients: Vec<String>) -> Self {
        self.recipients = recipients;
        self
    }

    pub fn with_actions(mut self, actions: Vec<crate::lifecycle::Action>) -> Self {
        self.actions = actions;
        self
    }

    /// The title, or a short default derived from the body, for platforms that
    /// require one (DingTalk markdown, Feishu cards).
    pub fn title_or_default(&self) -> String {
        if let Some(t) = self.title.as_deref().filter(|t| !t.trim().is_empty()) {
            return t.to_string();
        }
        let text = self.body.main_text().unwrap_or("");
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let first = first.trim_start_matches(['#', ' ', '>', '*']).trim();
        // Whole grapheme clusters, so an emoji or accented letter is not cut.
        let short: String = unicode_segmentation::UnicodeSegmentation::graphemes(first, true)
            .take(32)
            .collect();
        if short.is_empty() {
            "imrelay".to_string()
        } else {
            short
        }
    }
}

/// What the message says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// Plain text.
    Text { text: String },
    /// Markdown (each platform's own dialect; DingTalk and WeCom support a subset).
    Markdown { text: String },
    /// A single link with a summary and an optional picture.
    Link {
        text: String,
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pic_url: Option<String>,
    },
    /// A card: markdown text and buttons that open URLs.
    Card {
        text: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<Button>,
        /// Header colour where the platform has one (Feishu `template`: blue,
        /// green, orange, red, grey...). Ignored elsewhere.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        theme: Option<String>,
    },
    /// A list of articles/links (DingTalk feedCard, WeCom news).
    News { articles: Vec<Article> },
    /// An image.
    Image { image: ImageSource },
    /// A platform template with named fields (WeChat template and subscribe
    /// messages). Other platforms render the fields as `key: value` lines.
    Template {
        template_id: String,
        data: BTreeMap<String, String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    /// Native platform JSON, sent as is. When `platform` is set, a destination
    /// of another platform refuses it instead of sending nonsense.
    Raw {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        platform: Option<Platform>,
        payload: serde_json::Value,
    },
}

impl Body {
    /// The main human-readable text, if the body has one.
    pub fn main_text(&self) -> Option<&str> {
        match self {
            Body::Text { text } | Body::Markdown { text } => Some(text),
            Body::Link { text, .. } | Body::Card { text, .. } => Some(text),
            Body::News { articles } => articles.first().map(|a| a.title.as_str()),
            _ => None,
        }
    }

    /// Short name used in errors: "text", "markdown", ...
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Text { .. } => "text",
            Body::Markdown { .. } => "markdown",
            Body::Link { .. } => "link",
            Body::Card { .. } => "card",
            Body::News { .. } => "news",
            Body::Image { .. } => "image",
            Body::Template { .. } => "template",
            Body::Raw { .. } => "raw",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Button {
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Article {
    pub title: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pic_url: Option<String>,
}

/// Where an image comes from. Platforms accept different kinds: WeCom robots take
/// the bytes, Feishu takes an uploaded `image_key`, DingTalk robots only a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ImageSource {
    /// Raw image bytes, base64-encoded in JSON.
    Base64(String),
    /// A platform media id / image key obtained from the platform's upload API.
    Key(String),
    /// A public URL.
    Url(String),
}

/// Who to notify.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mentions {
    /// Everyone in the group.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    /// Phone numbers (DingTalk, WeCom robots).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mobiles: Vec<String>,
    /// Platform user ids (DingTalk userId, Feishu open_id, WeCom userid).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_ids: Vec<String>,
    /// User ids that only one platform knows (a person resolved from a
    /// directory has a different id on each): a destination mentions those of
    /// its platform on top of `user_ids`, after [`Mentions::for_platform`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_platform: BTreeMap<Platform, Vec<String>>,
}

impl Mentions {
    pub fn is_empty(&self) -> bool {
        !self.all
            && self.mobiles.is_empty()
            && self.user_ids.is_empty()
            && self.per_platform.values().all(Vec::is_empty)
    }

    /// The mentions as a destination of `platform` sends them: `user_ids`
    /// plus that platform's own ids, without the other platforms'.
    pub fn for_platform(&self, platform: Platform) -> Mentions {
        let mut user_ids = self.user_ids.clone();
        for id in self.per_platform.get(&platform).into_iter().flatten() {
            if !user_ids.contains(id) {
                user_ids.push(id.clone());
            }
        }
        Mentions {
            all: self.all,
            mobiles: self.mobiles.clone(),
            user_ids,
            per_platform: BTreeMap::new(),
        }
    }
}

/// The platform families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Dingtalk,
    Feishu,
    Wecom,
    Wechat,
    Webhook,
    Email,
    Aliyun,
    Tencent,
}

impl Platform {
    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Dingtalk => "dingtalk",
            Platform::Feishu => "feishu",
            Platform::Wecom => "wecom",
            Platform::Wechat => "wechat",
            Platform::Webhook => "webhook",
            Platform::Email => "email",
            Platform::Aliyun => "aliyun",
            Platform::Tencent => "tencent",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_title_keeps_whole_grapheme_clusters() {
        // 31 letters, then a family emoji (4 people joined by ZWJs) as the 32nd
        // cluster: kept whole, not cut after its first person.
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}\u{200d}\u{1f466}";
        let text = format!("{}{family}tail", "a".repeat(31));
        let title = Message::text(text).title_or_default();
        assert_eq!(title, format!("{}{family}", "a".repeat(31)));
    }
}
