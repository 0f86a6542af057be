//! WeCom group robot webhook: `POST /cgi-bin/webhook/send?key=KEY`, no signing
//! (the key is the only credential). See the table in [`super`].

use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::{
    card_as_markdown, check_raw, codes, fit_text, news_bodies, non_empty, template_as_text,
    text_notice_card,
};
use crate::destination::{Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::HttpRequest;
use crate::limits::{cost, Counting, Overflow};
use crate::message::{Body, ImageSource, Mentions, Message, Platform};
use crate::outcome::Report;
use crate::{Error, Secret};

/// Text content limit, UTF-8 bytes.
pub const TEXT_LIMIT: usize = 2048;
/// Markdown (v1 and v2) content limit, UTF-8 bytes.
pub const MARKDOWN_LIMIT: usize = 4096;
/// Image limit, raw bytes before base64.
pub const IMAGE_LIMIT: usize = 2 * 1024 * 1024;

const KIND: &str = "wecom_robot";

/// Which markdown message type Markdown bodies use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkdownVersion {
    /// `markdown`: the older subset, supports `<@userid>` mentions.
    #[default]
    V1,
    /// `markdown_v2`: tables, lists, code; no mentions.
    V2,
}

/// Config of a WeCom group robot.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomRobotConfig {
    /// The robot key (the `key=` of its webhook URL). A full webhook URL is
    /// accepted here too.
    #[serde(default)]
    pub key: Option<Secret>,
    /// The robot's full webhook URL, `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// API host; default `https://qyapi.weixin.qq.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// `v1` (default) or `v2`: the markdown message type for Markdown bodies.
    #[serde(default)]
    pub markdown: MarkdownVersion,
    /// What to do with text over the byte limit (split by default).
    #[serde(default)]
    pub overflow: Overflow,
}

/// A WeCom group robot.
#[derive(Debug)]
pub struct WecomRobot {
    shared: Arc<Shared>,
    id: String,
    base: Url,
    key: Secret,
    markdown: MarkdownVersion,
    overflow: Overflow,
}

impl WecomRobot {
    /// Build from config; a Config error names the bad field.
    pub fn new(client: &Client, cfg: WecomRobotConfig) -> Result<Self, Error> {
        let base = endpoint::base_url(cfg.base_url.as_deref(), super::DEFAULT_BASE_URL, "base_url")
            .map_err(prefix)?;
        let key = robot_key(&cfg, &base)?;
        Ok(WecomRobot {
            shared: client.shared().clone(),
            id: format!("{KIND}:{}", key.fingerprint()),
            base,
            key,
            markdown: cfg.markdown,
            overflow: cfg.overflow,
        })
    }

    /// The request for `payload` (pure; for tests). The URL carries the key.
    pub fn request(&self, payload: &Payload) -> HttpRequest {
        // The key was checked to be URL-safe at build time.
        let url = endpoint::join(
            &self.base,
            &format!("/cgi-bin/webhook/send?key={}", self.key.expose()),
        );
        HttpRequest::post_json(url, &payload.body)
    }

    fn text_bodies(&self, text: &str, mentions: &Mentions) -> Vec<Value> {
        let mut users: Vec<&str> = mentions.user_ids.iter().map(String::as_str).collect();
        if mentions.all {
            users.push("@all");
        }
        fit_text(text, TEXT_LIMIT, 0, &self.overflow)
            .into_iter()
            .enumerate()
            .map(|(i, part)| {
                let mut t = serde_json::Map::new();
                t.insert("content".into(), part.into());
                // Mentions ride on the first part only: one ping per message.
                if i == 0 && !users.is_empty() {
                    t.insert("mentioned_list".into(), json!(users));
                }
                if i == 0 && !mentions.mobiles.is_empty() {
                    t.insert("mentioned_mobile_list".into(), json!(mentions.mobiles));
                }
                json!({"msgtype": "text", "text": t})
            })
            .collect()
    }

    fn markdown_bodies(&self, text: &str, mentions: &Mentions) -> Vec<Value> {
        match self.markdown {
            MarkdownVersion::V1 => {
                // Markdown mentions are `<@userid>` in the content; phone numbers
                // and @all have no markdown form and are dropped (documented).
                let suffix: String = mentions
                    .user_ids
                    .iter()
                    .map(|u| format!("<@{u}>"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let suffix = if suffix.is_empty() {
                    suffix
                } else {
                    format!("\n{suffix}")
                };
                let reserve = cost(&suffix, Counting::Utf8);
                fit_text(text, MARKDOWN_LIMIT, reserve, &self.overflow)
                    .into_iter()
                    .enumerate()
                    .map(|(i, mut part)| {
                        if i == 0 {
                            part.push_str(&suffix);
                        }
                        json!({"msgtype": "markdown", "markdown": {"content": part}})
                    })
                    .collect()
            }
            MarkdownVersion::V2 => fit_text(text, MARKDOWN_LIMIT, 0, &self.overflow)
                .into_iter()
                .map(|part| json!({"msgtype": "markdown_v2", "markdown_v2": {"content": part}}))
                .collect(),
        }
    }
}

fn prefix(e: Error) -> Error {
    match e {
        Error::Config(m) => Error::Config(format!("{KIND}: {m}")),
        e => e,
    }
}

/// The robot key from `key` or `webhook`, accepting a full webhook URL in either.
fn robot_key(cfg: &WecomRobotConfig, base: &Url) -> Result<Secret, Error> {
    let (field, raw) = match (&cfg.key, &cfg.webhook) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!(
                "{KIND}: set either `key` or `webhook`, not both"
            )));
        }
        (Some(k), None) => ("key", k.expose().trim()),
        (None, Some(w)) => ("webhook", w.expose().trim()),
        (None, None) => {
            return Err(Error::Config(format!(
                "{KIND}: missing `key`: set `key` to the robot key or `webhook` to its URL \
                 (group settings > robots > webhook address)"
            )));
        }
    };
    if raw.is_empty() {
        return Err(Error::Config(format!(
            "{KIND}: `{field}` is empty; paste the robot's webhook URL or key"
        )));
    }
    let key = if raw.starts_with("http://") || raw.starts_with("https://") {
        // People paste the whole URL; passing it as the key gives 93000.
        let url = Url::parse(raw)
            .map_err(|e| Error::Config(format!("{KIND}: `{field}` is not a valid URL ({e})")))?;
        endpoint::check_same_origin(&url, base, field).map_err(prefix)?;
        if !url.path().ends_with("/cgi-bin/webhook/send") {
            return Err(Error::Config(format!(
                "{KIND}: `{field}` must be a robot webhook URL ending in /cgi-bin/webhook/send?key=..."
            )));
        }
        endpoint::query_param(&url, "key")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::Config(format!("{KIND}: `{field}` has no `key=` parameter")))?
    } else if field == "webhook" {
        return Err(Error::Config(format!(
            "{KIND}: `webhook` must be the full URL (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...); \
             put a bare key in `key`"
        )));
    } else {
        raw.to_string()
    };
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::Config(format!(
            "{KIND}: `{field}`: the robot key may hold only letters, digits, `-` and `_`; copy it again"
        )));
    }
    Ok(Secret::new(key))
}

/// `image` from base64: validated, ≤ 2 MB raw, jpg or png, with the md5 hex
/// of the raw bytes.
fn image_body(b64: &str) -> Result<Value, Error> {
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let raw = B64.decode(cleaned.as_bytes()).map_err(|e| {
        Error::InvalidMessage(format!("`body.image.base64` is not valid base64 ({e})"))
    })?;
    if raw.len() > IMAGE_LIMIT {
        return Err(Error::InvalidMessage(format!(
            "`body.image.base64` decodes to {} bytes; WeCom robots take images up to 2 MB ({IMAGE_LIMIT} bytes): \
             shrink or recompress it",
            raw.len()
        )));
    }
    let png = raw.starts_with(b"\x89PNG\r\n\x1a\n");
    let jpg = raw.starts_with(&[0xFF, 0xD8, 0xFF]);
    if !png && !jpg {
        return Err(Error::InvalidMessage(
            "`body.image.base64` is neither a JPEG nor a PNG; WeCom robots take only those".into(),
        ));
    }
    let md5 = hex::encode(Md5::digest(&raw));
    Ok(json!({"msgtype": "image", "image": {"base64": B64.encode(&raw), "md5": md5}}))
}

#[async_trait]
impl Destination for WecomRobot {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn platform(&self) -> Platform {
        Platform::Wecom
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_minute(20)]
    }

    fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        crate::lifecycle::Lifecycle::send_only("group robots have no recall API")
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let bodies = match &msg.body {
            Body::Text { text } => self.text_bodies(non_empty(text, "body.text")?, &msg.mentions),
            Body::Markdown { text } => self.markdown_bodies(non_empty(text, "body.text")?, &msg.mentions),
            Body::Link { text, url, pic_url } => news_bodies(
                &[crate::message::Article {
                    title: msg.title_or_default(),
                    url: url.clone(),
                    description: Some(text.clone()).filter(|t| !t.is_empty()),
                    pic_url: pic_url.clone(),
                }],
                &self.overflow,
            )?,
            Body::News { articles } => news_bodies(articles, &self.overflow)?,
            Body::Card { text, buttons, .. } if buttons.is_empty() => {
                self.markdown_bodies(&card_as_markdown(msg, text), &msg.mentions)
            }
            Body::Card { text, buttons, .. } => {
                vec![json!({"msgtype": "template_card", "template_card": text_notice_card(msg, text, buttons)})]
            }
            Body::Image { image } => match image {
                ImageSource::Base64(b64) => vec![image_body(b64)?],
                ImageSource::Url(_) => {
                    return Err(Error::unsupported(
                        KIND,
                        "image",
                        "WeCom robots take the image bytes, not a URL: download it and send `{\"base64\": ...}`",
                    ))
                }
                ImageSource::Key(_) => {
                    return Err(Error::unsupported(
                        KIND,
                        "image",
                        "WeCom robot images are sent as bytes; a media key is not accepted: send `{\"base64\": ...}`",
                    ))
                }
            },
            Body::Template { data, url, .. } => {
                let text = template_as_text(msg, data, url.as_deref());
                self.text_bodies(non_empty(&text, "body.data")?, &msg.mentions)
            }
            Body::Raw { platform, payload } => {
                check_raw(*platform, KIND)?;
                vec![payload.clone()]
            }
        };
        Ok(bodies.into_iter().map(Payload::new).collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        match self.shared.http.execute(self.request(payload)).await {
            Ok(resp) => codes::classify(&resp),
            Err(r) => r,
        }
    }
}
