//! WeCom self-built app messages: `GET /cgi-bin/gettoken` for the access token,
//! then `POST /cgi-bin/message/send?access_token=...`. See the table in [`super`].
//!
//! Recipients are user ids; `party:ID` and `tag:ID` address a department or a
//! tag, and `@all` everyone in the app's visible range. A message without
//! recipients goes to the configured `recipients`, `to_party` and `to_tag`.
//! Users are sent 1000 per request, parties and tags 100 per request.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use url::Url;

use super::card;
use super::{
    card_as_markdown, check_raw, codes, fit_text, news_bodies, non_empty, template_as_text,
    text_notice_card,
};
use crate::destination::{Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::{HttpClient, HttpRequest};
use crate::lifecycle::{Lifecycle, Operation, RecallMode, SentPart, UpdateMode};
use crate::limits::{truncate, Counting, Overflow};
use crate::message::{Body, ImageSource, Message, Platform};
use crate::outcome::Report;
use crate::platform::errcode;
use crate::token::{Token, TokenSource};
use crate::{Error, Secret};

/// Text and markdown content limit, UTF-8 bytes.
pub const TEXT_LIMIT: usize = 2048;
/// `textcard` title limit, bytes.
pub const TEXTCARD_TITLE_LIMIT: usize = 128;
/// `textcard` description limit, bytes.
pub const TEXTCARD_DESCRIPTION_LIMIT: usize = 512;
/// Users per request (`touser`).
pub const MAX_USERS: usize = 1000;
/// Parties (`toparty`) and tags (`totag`) per request.
pub const MAX_PARTIES: usize = 100;
/// Default `duplicate_check_interval`, seconds.
pub const DEFAULT_DUPLICATE_CHECK_INTERVAL: u32 = 1800;
/// Maximum `duplicate_check_interval`, seconds (4 h).
pub const MAX_DUPLICATE_CHECK_INTERVAL: u32 = 4 * 3600;
/// A `response_code` updates its card once, within 72 hours of being issued.
pub const UPDATE_WINDOW: Duration = Duration::from_secs(72 * 3600);
/// App messages are recalled within 24 hours.
pub const RECALL_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// Update-card endpoint.
pub const UPDATE_CARD_PATH: &str = "/cgi-bin/message/update_template_card";
/// Recall endpoint.
pub const RECALL_PATH: &str = "/cgi-bin/message/recall";

const KIND: &str = "wecom_app";

/// Config of a WeCom self-built app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WecomAppConfig {
    /// Company id (`ww...`), from My Company > Company Info.
    pub corp_id: String,
    /// The app's Secret.
    pub corp_secret: Secret,
    /// The app's AgentId (number; a numeric string is accepted).
    #[serde(deserialize_with = "int_or_string")]
    pub agent_id: i64,
    /// Default user ids (`@all` allowed) for messages without recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Default department ids.
    #[serde(default)]
    pub to_party: Vec<String>,
    /// Default tag ids.
    #[serde(default)]
    pub to_tag: Vec<String>,
    /// Seconds within which WeCom drops an identical message to the same
    /// recipients (default 1800, at most 14400).
    #[serde(default)]
    pub duplicate_check_interval: Option<u32>,
    /// API host; default `https://qyapi.weixin.qq.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// What to do with text over the byte limit (split by default).
    #[serde(default)]
    pub overflow: Overflow,
}

fn int_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(i64),
        Str(String),
    }
    match IntOrString::deserialize(d)? {
        IntOrString::Int(n) => Ok(n),
        IntOrString::Str(s) => s.trim().parse().map_err(|_| {
            serde::de::Error::custom(format!("`agent_id` must be a number, got `{s}`"))
        }),
    }
}

/// Fetches access tokens with `GET /cgi-bin/gettoken?corpid=&corpsecret=`.
pub struct WecomTokenSource {
    base: Url,
    corp_id: String,
    secret: Secret,
}

impl WecomTokenSource {
    /// The token request (pure; for tests). Its URL carries the secret.
    pub fn request(&self) -> HttpRequest {
        let mut url = endpoint::join(&self.base, "/cgi-bin/gettoken");
        url.query_pairs_mut()
            .append_pair("corpid", &self.corp_id)
            .append_pair("corpsecret", self.secret.expose());
        HttpRequest::get(url)
    }
}

#[async_trait]
impl TokenSource for WecomTokenSource {
    fn cache_key(&self) -> String {
        format!("wecom:{}:{}", self.corp_id, self.secret.fingerprint())
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report> {
        let resp = http.execute(self.request()).await?;
        let (code, v) = codes::parse(&resp)?;
        if code != 0 {
            return Err(codes::token_error(code, &v, resp.status));
        }
        errcode::access_token(
            &v,
            resp.status,
            "gettoken answered ok without an access_token",
        )
    }
}

/// A WeCom self-built app.
pub struct WecomApp {
    shared: Arc<Shared>,
    id: String,
    base: Url,
    agent_id: i64,
    recipients: Vec<String>,
    to_party: Vec<String>,
    to_tag: Vec<String>,
    duplicate_check_interval: u32,
    overflow: Overflow,
    tokens: WecomTokenSource,
}

impl std::fmt::Debug for WecomApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WecomApp")
            .field("id", &self.id)
            .field("base", &self.base.as_str())
            .finish()
    }
}

/// One request's addressees.
#[derive(Debug, Default, Clone)]
struct Batch {
    users: Vec<String>,
    parties: Vec<String>,
    tags: Vec<String>,
}

impl Batch {
    /// Ids as reported in failures: users bare, `party:ID`, `tag:ID`.
    fn ids(&self) -> Vec<String> {
        let mut ids = self.users.clone();
        ids.extend(self.parties.iter().map(|p| format!("party:{p}")));
        ids.extend(self.tags.iter().map(|t| format!("tag:{t}")));
        ids
    }

    fn insert_into(&self, o: &mut Map<String, Value>) {
        if !self.users.is_empty() {
            o.insert("touser".into(), self.users.join("|").into());
        }
        if !self.parties.is_empty() {
            o.insert("toparty".into(), self.parties.join("|").into());
        }
        if !self.tags.is_empty() {
            o.insert("totag".into(), self.tags.join("|").into());
        }
    }
}

impl WecomApp {
    /// Build from config; a Config error names the bad field.
    pub fn new(client: &Client, cfg: WecomAppConfig) -> Result<Self, Error> {
        let base = endpoint::base_url(cfg.base_url.as_deref(), super::DEFAULT_BASE_URL, "base_url")
            .map_err(|e| Error::Config(format!("{KIND}: {e}")))?;
        let corp_id = cfg.corp_id.trim().to_string();
        if corp_id.is_empty() {
            return Err(Error::Config(format!(
                "{KIND}: `corp_id` is empty; copy the Company ID (My Company > Company Info)"
            )));
        }
        if cfg.corp_secret.expose().trim().is_empty() {
            return Err(Error::Config(format!(
                "{KIND}: `corp_secret` is empty; copy the app's Secret"
            )));
        }
        if cfg.agent_id <= 0 {
            return Err(Error::Config(format!(
                "{KIND}: `agent_id` must be the app's AgentId (a positive number)"
            )));
        }
        let interval = cfg
            .duplicate_check_interval
            .unwrap_or(DEFAULT_DUPLICATE_CHECK_INTERVAL);
        if interval == 0 || interval > MAX_DUPLICATE_CHECK_INTERVAL {
            return Err(Error::Config(format!(
                "{KIND}: `duplicate_check_interval` must be 1..={MAX_DUPLICATE_CHECK_INTERVAL} seconds"
            )));
        }
        Ok(WecomApp {
            shared: client.shared().clone(),
            id: format!("{KIND}:{corp_id}:{}", cfg.agent_id),
            tokens: WecomTokenSource {
                base: base.clone(),
                corp_id,
                secret: Secret::new(cfg.corp_secret.expose().trim()),
            },
            base,
            agent_id: cfg.agent_id,
            recipients: cfg.recipients,
            to_party: cfg.to_party,
            to_tag: cfg.to_tag,
            duplicate_check_interval: interval,
            overflow: cfg.overflow,
        })
    }

    /// The token source of this app (for tests and token warm-up).
    pub fn token_source(&self) -> &WecomTokenSource {
        &self.tokens
    }

    /// The send request for `payload` with `token` (pure; for tests).
    pub fn request(&self, payload: &Payload, token: &str) -> HttpRequest {
        let mut url = endpoint::join(&self.base, "/cgi-bin/message/send");
        url.query_pairs_mut().append_pair("access_token", token);
        HttpRequest::post_json(url, &payload.body)
    }

    /// `POST {base}{path}?access_token=` with `body` (pure; for tests).
    fn api_request(&self, path: &str, body: &Value, token: &str) -> HttpRequest {
        let mut url = endpoint::join(&self.base, path);
        url.query_pairs_mut().append_pair("access_token", token);
        HttpRequest::post_json(url, body)
    }

    /// The body that replaces the card of `sent` with `msg`: the whole new
    /// `button_interaction` card, for everyone who received it, spending the
    /// part's `response_code`.
    pub fn update_body(&self, sent: &SentPart, msg: &Message) -> Result<Value, Error> {
        let code = sent.update_token.as_deref().filter(|c| !c.is_empty()).ok_or_else(|| {
            Error::operation_unsupported(
                KIND,
                Operation::Update,
                "no response_code: WeCom updates only button cards, with the response_code of the send or of the last click",
            )
        })?;
        Ok(json!({
            "atall": 1,
            "agentid": self.agent_id,
            "response_code": code,
            "template_card": card::button_card(msg, &sent.recipients)?,
        }))
    }

    /// The recall body of `sent`.
    pub fn recall_body(sent: &SentPart) -> Value {
        json!({ "msgid": sent.platform_message_id })
    }

    async fn call(&self, path: &'static str, body: Value, sent: &SentPart) -> Report {
        let http = &self.shared.http;
        self.shared
            .tokens
            .with_token(&self.tokens, http, |token| {
                let req = self.api_request(path, &body, token.expose());
                async move {
                    match http.execute(req).await {
                        Ok(resp) => {
                            let mut r = codes::classify(&resp);
                            if r.outcome.is_delivered() {
                                r.platform_message_id = Some(sent.platform_message_id.clone());
                            }
                            r
                        }
                        Err(r) => r,
                    }
                }
            })
            .await
    }

    /// Spread the recipients over requests.
    fn batches(&self, msg: &Message) -> Result<Vec<Batch>, Error> {
        let mut all = Batch::default();
        if msg.recipients.is_empty() {
            all.users = self.recipients.clone();
            all.parties = self.to_party.clone();
            all.tags = self.to_tag.clone();
        } else {
            for r in &msg.recipients {
                if let Some(p) = r.strip_prefix("party:") {
                    all.parties.push(p.to_string());
                } else if let Some(t) = r.strip_prefix("tag:") {
                    all.tags.push(t.to_string());
                } else {
                    all.users.push(r.clone());
                }
            }
        }
        for list in [&mut all.users, &mut all.parties, &mut all.tags] {
            let mut seen = std::collections::HashSet::new();
            list.retain(|x| !x.trim().is_empty() && seen.insert(x.clone()));
        }
        if all.users.is_empty() && all.parties.is_empty() && all.tags.is_empty() {
            return Err(Error::InvalidMessage(format!(
                "no recipients: set `recipients` in the message, or `recipients`/`to_party`/`to_tag` in the {KIND} destination"
            )));
        }
        if all.users.iter().any(|u| u == "@all") {
            // @all already covers every party and tag of the app's range.
            return Ok(vec![Batch {
                users: vec!["@all".into()],
                ..Batch::default()
            }]);
        }
        let n = all
            .users
            .len()
            .div_ceil(MAX_USERS)
            .max(all.parties.len().div_ceil(MAX_PARTIES))
            .max(all.tags.len().div_ceil(MAX_PARTIES));
        let chunk = |v: &[String], size: usize, i: usize| -> Vec<String> {
            v.iter().skip(i * size).take(size).cloned().collect()
        };
        Ok((0..n)
            .map(|i| Batch {
                users: chunk(&all.users, MAX_USERS, i),
                parties: chunk(&all.parties, MAX_PARTIES, i),
                tags: chunk(&all.tags, MAX_PARTIES, i),
            })
            .collect())
    }

    /// The message content as `(msgtype, content)` pairs, one per request.
    fn contents(&self, msg: &Message) -> Result<Vec<(String, Value)>, Error> {
        let texts = |msgtype: &str, text: &str| -> Vec<(String, Value)> {
            fit_text(text, TEXT_LIMIT, 0, &self.overflow)
                .into_iter()
                .map(|part| (msgtype.to_string(), json!({"content": part})))
                .collect()
        };
        let textcard = |title: String, description: &str, url: &str, btntxt: Option<&str>| {
            // Over-long textcard fields are cut: a card is a summary, the link has the rest.
            let mut card = json!({
                "title": truncate(&title, TEXTCARD_TITLE_LIMIT, Counting::Utf8, "…"),
                "description": truncate(description, TEXTCARD_DESCRIPTION_LIMIT, Counting::Utf8, "…"),
                "url": url,
            });
            if let Some(b) = btntxt {
                card["btntxt"] = b.into();
            }
            ("textcard".to_string(), card)
        };
        Ok(match &msg.body {
            Body::Text { text } => texts("text", non_empty(text, "body.text")?),
            Body::Markdown { text } => texts("markdown", non_empty(text, "body.text")?),
            Body::Link { text, url, .. } => vec![textcard(msg.title_or_default(), text, url, None)],
            Body::Card { text, buttons, .. } => match buttons.len() {
                0 => texts("markdown", &card_as_markdown(msg, text)),
                1 => vec![textcard(msg.title_or_default(), text, &buttons[0].url, Some(&buttons[0].text))],
                _ => vec![("template_card".into(), text_notice_card(msg, text, buttons))],
            },
            Body::News { articles } => news_bodies(articles, &self.overflow)?
                .into_iter()
                .map(|b| ("news".to_string(), b["news"].clone()))
                .collect(),
            Body::Image { image } => match image {
                ImageSource::Key(media_id) => vec![("image".into(), json!({"media_id": media_id}))],
                _ => {
                    return Err(Error::unsupported(
                        KIND,
                        "image",
                        "WeCom app images need a `media_id` from the media upload API: send `{\"key\": MEDIA_ID}`",
                    ))
                }
            },
            Body::Template { data, url, .. } => {
                let text = template_as_text(msg, data, url.as_deref());
                texts("text", non_empty(&text, "body.data")?)
            }
            Body::Raw { .. } => unreachable!("raw bodies are rendered by render_raw"),
        })
    }

    fn envelope(&self, batch: &Batch, msgtype: &str, content: Value) -> Value {
        let mut o = Map::new();
        batch.insert_into(&mut o);
        o.insert("msgtype".into(), msgtype.into());
        o.insert("agentid".into(), self.agent_id.into());
        o.insert(msgtype.into(), content);
        self.insert_dedup(&mut o);
        Value::Object(o)
    }

    fn insert_dedup(&self, o: &mut Map<String, Value>) {
        // WeCom drops an identical message to the same recipients within the
        // interval, which makes a retry after an unknown outcome safe.
        o.entry("enable_duplicate_check").or_insert(1.into());
        o.entry("duplicate_check_interval")
            .or_insert(self.duplicate_check_interval.into());
    }

    /// A raw payload is sent as is, with `agentid`, the recipients and the
    /// duplicate check filled in when it lacks them.
    fn render_raw(&self, msg: &Message, payload: &Value) -> Result<Vec<Payload>, Error> {
        let obj = payload.as_object().ok_or_else(|| {
            Error::InvalidMessage("`body.payload` must be a JSON object for wecom_app".into())
        })?;
        let mut base = obj.clone();
        base.entry("agentid").or_insert(self.agent_id.into());
        self.insert_dedup(&mut base);
        let addressed = ["touser", "toparty", "totag"]
            .iter()
            .any(|k| base.contains_key(*k));
        if addressed {
            let field = |k: &str| {
                base.get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string()
            };
            let ids = Batch {
                users: field("touser")
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                parties: field("toparty")
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
                tags: field("totag")
                    .split('|')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            }
            .ids();
            let mut p = Payload::new(Value::Object(base));
            p.recipients = ids;
            return Ok(vec![p]);
        }
        Ok(self
            .batches(msg)?
            .into_iter()
            .map(|b| {
                let mut o = Map::new();
                b.insert_into(&mut o);
                o.extend(base.clone());
                let mut p = Payload::new(Value::Object(o));
                p.recipients = b.ids();
                p
            })
            .collect())
    }
}

#[async_trait]
impl Destination for WecomApp {
    async fn token_state(&self) -> Option<crate::token::TokenState> {
        Some(
            self.shared
                .tokens
                .state_with_shared(&self.tokens.cache_key())
                .await,
        )
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn platform(&self) -> Platform {
        Platform::Wecom
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// Per member: 30 messages a minute, 1000 an hour. Exact when every message
    /// goes to the default recipients, conservative otherwise.
    fn rate_limits(&self) -> Vec<Quota> {
        vec![
            Quota::per_minute(30),
            Quota {
                count: 1000,
                per: Duration::from_secs(3600),
            },
        ]
    }

    fn dedups_retries(&self) -> bool {
        true
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        if let Body::Raw { platform, payload } = &msg.body {
            check_raw(*platform, KIND)?;
            return self.render_raw(msg, payload);
        }
        let batches = self.batches(msg)?;
        let buttons =
            card::has_buttons(msg) && !matches!(msg.body, Body::News { .. } | Body::Image { .. });
        if buttons {
            // Actions make a button card, one per request: its task id is
            // the request's own.
            return batches
                .iter()
                .map(|b| {
                    let content = card::button_card(msg, &b.ids())?;
                    let mut p = Payload::new(self.envelope(b, "template_card", content));
                    p.recipients = b.ids();
                    Ok(p)
                })
                .collect();
        }
        let contents = self.contents(msg)?;
        let mut out = Vec::with_capacity(contents.len() * batches.len());
        for b in &batches {
            for (msgtype, content) in &contents {
                let mut p = Payload::new(self.envelope(b, msgtype, content.clone()));
                p.recipients = b.ids();
                out.push(p);
            }
        }
        Ok(out)
    }

    async fn send(&self, payload: &Payload) -> Report {
        let http = &self.shared.http;
        self.shared
            .tokens
            .with_token(&self.tokens, http, |token| {
                let req = self.request(payload, token.expose());
                async move {
                    match http.execute(req).await {
                        Ok(resp) => codes::classify(&resp),
                        Err(r) => r,
                    }
                }
            })
            .await
    }

    /// Button cards are replaced in place with their `response_code` (one
    /// use, 72 h); messages are recalled within 24 h. Actions become the
    /// buttons of a `button_interaction` card.
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            update: UpdateMode::InPlace {
                window: Some(UPDATE_WINDOW),
            },
            recall: RecallMode::Within {
                window: RECALL_WINDOW,
            },
            card_actions: true,
            update_limits: Vec::new(),
            // WeCom's only urgent call is the paid 紧急通知 app's voice call
            // (`/cgi-bin/pstncc/call`), not tied to a sent message.
            urgent_unsupported: Some("WeCom has no urgent push about a sent message (its voice-call API belongs to the separate 紧急通知 app)".into()),
            ..Lifecycle::send_only("")
        }
    }

    async fn update(&self, sent: &SentPart, msg: &Message) -> Result<Report, Error> {
        let body = self.update_body(sent, msg)?;
        Ok(self.call(UPDATE_CARD_PATH, body, sent).await)
    }

    async fn recall(&self, sent: &SentPart) -> Result<Report, Error> {
        Ok(self.call(RECALL_PATH, Self::recall_body(sent), sent).await)
    }
}
