//! WeChat Official Account template messages (`kind = "template"`,
//! `POST /cgi-bin/message/template/send`) and subscribe messages
//! (`kind = "subscribe"`, `POST /cgi-bin/message/subscribe/bizsend`), with the
//! access token from `POST /cgi-bin/stable_token`. See the table in [`super`].

use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use url::Url;

use super::codes;
use crate::destination::{dedup_key, Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::{HttpClient, HttpRequest};
use crate::limits::Overflow;
use crate::message::{Body, Message, Platform};
use crate::outcome::{Outcome, Report};
use crate::platform::{check_raw, errcode};
use crate::token::{Token, TokenSource};
use crate::{Error, Secret};

const KIND: &str = "wechat_template";

/// Which API the destination sends through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WechatKind {
    /// Template messages (服务号模板消息), deduplicated by `client_msg_id`.
    #[default]
    Template,
    /// Subscribe messages (服务号订阅通知, `bizsend`).
    Subscribe,
}

/// A mini program to open instead of the url.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MiniProgram {
    /// The mini program's AppID.
    pub appid: String,
    /// Page path with query, e.g. `index?foo=bar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagepath: Option<String>,
}

/// Config of a WeChat Official Account template/subscribe destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WechatTemplateConfig {
    /// The account's AppID.
    pub app_id: String,
    /// The account's AppSecret.
    pub app_secret: Secret,
    /// `template` (default) or `subscribe`.
    #[serde(default)]
    pub kind: WechatKind,
    /// Default template id, for template bodies with an empty `template_id`.
    #[serde(default)]
    pub template_id: Option<String>,
    /// Default link (kind `template`).
    #[serde(default)]
    pub url: Option<String>,
    /// Default web page to open (kind `subscribe`).
    #[serde(default)]
    pub page: Option<String>,
    /// Mini program to open (wins over `url` on WeChat's side).
    #[serde(default)]
    pub miniprogram: Option<MiniProgram>,
    /// Default openids for messages without recipients.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// API host; default `https://api.weixin.qq.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Accepted for uniformity with other destinations; template fields are
    /// never split.
    #[serde(default)]
    pub overflow: Overflow,
}

/// Fetches access tokens with `POST /cgi-bin/stable_token`.
///
/// `force_refresh` stays false (the same token while it is valid, safe for
/// several instances) unless the platform just rejected the very token the
/// normal call returns again: then one forced refresh follows, since a forced
/// refresh is limited per day.
pub struct WechatTokenSource {
    base: Url,
    app_id: String,
    secret: Secret,
    rejected: Mutex<Option<Secret>>,
}

impl WechatTokenSource {
    /// The token request (pure; for tests). Its body carries the secret.
    pub fn request(&self, force_refresh: bool) -> HttpRequest {
        let url = endpoint::join(&self.base, "/cgi-bin/stable_token");
        HttpRequest::post_json(
            url,
            &json!({
                "grant_type": "client_credential",
                "appid": self.app_id,
                "secret": self.secret.expose(),
                "force_refresh": force_refresh,
            }),
        )
    }

    /// Remember a token the platform refused, so the next fetch does not hand
    /// it out again.
    fn reject(&self, token: &Secret) {
        *self.rejected.lock() = Some(token.clone());
    }

    async fn fetch_once(&self, http: &HttpClient, force_refresh: bool) -> Result<Token, Report> {
        let resp = http.execute(self.request(force_refresh)).await?;
        let (code, v) = codes::parse(&resp)?;
        if code != 0 {
            return Err(codes::token_error(code, &v, resp.status));
        }
        errcode::access_token(
            &v,
            resp.status,
            "stable_token answered without an access_token",
        )
    }
}

#[async_trait]
impl TokenSource for WechatTokenSource {
    fn cache_key(&self) -> String {
        format!("wechat:{}:{}", self.app_id, self.secret.fingerprint())
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report> {
        let token = self.fetch_once(http, false).await?;
        let rejected = self.rejected.lock().take();
        if rejected.as_ref() == Some(&token.value) {
            tracing::info!(credential = %self.cache_key(), "stable_token returned the rejected token; forcing a refresh");
            return self.fetch_once(http, true).await;
        }
        Ok(token)
    }
}

/// A WeChat Official Account template or subscribe message destination.
pub struct WechatTemplate {
    shared: Arc<Shared>,
    id: String,
    base: Url,
    kind: WechatKind,
    template_id: Option<String>,
    url: Option<String>,
    page: Option<String>,
    miniprogram: Option<MiniProgram>,
    recipients: Vec<String>,
    tokens: WechatTokenSource,
}

impl std::fmt::Debug for WechatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WechatTemplate")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("base", &self.base.as_str())
            .finish()
    }
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl WechatTemplate {
    /// Build from config; a Config error names the bad field.
    pub fn new(client: &Client, cfg: WechatTemplateConfig) -> Result<Self, Error> {
        let base = endpoint::base_url(cfg.base_url.as_deref(), super::DEFAULT_BASE_URL, "base_url")
            .map_err(|e| Error::Config(format!("{KIND}: {e}")))?;
        let app_id = cfg.app_id.trim().to_string();
        if app_id.is_empty() {
            return Err(Error::Config(format!(
                "{KIND}: `app_id` is empty; copy the AppID (MP admin > Settings and Development > Basic Configuration)"
            )));
        }
        if cfg.app_secret.expose().trim().is_empty() {
            return Err(Error::Config(format!(
                "{KIND}: `app_secret` is empty; copy the AppSecret"
            )));
        }
        match cfg.kind {
            WechatKind::Template if cfg.page.is_some() => {
                return Err(Error::Config(format!(
                    "{KIND}: `page` is for kind = \"subscribe\"; template messages link with `url`"
                )));
            }
            WechatKind::Subscribe if cfg.url.is_some() => {
                return Err(Error::Config(format!(
                    "{KIND}: `url` is for kind = \"template\"; subscribe messages link with `page`"
                )));
            }
            _ => {}
        }
        if cfg
            .miniprogram
            .as_ref()
            .is_some_and(|m| m.appid.trim().is_empty())
        {
            return Err(Error::Config(format!(
                "{KIND}: `miniprogram.appid` is empty"
            )));
        }
        let kind_name = match cfg.kind {
            WechatKind::Template => "template",
            WechatKind::Subscribe => "subscribe",
        };
        Ok(WechatTemplate {
            shared: client.shared().clone(),
            id: format!("{KIND}:{app_id}:{kind_name}"),
            tokens: WechatTokenSource {
                base: base.clone(),
                app_id,
                secret: Secret::new(cfg.app_secret.expose().trim()),
                rejected: Mutex::new(None),
            },
            base,
            kind: cfg.kind,
            template_id: non_empty(cfg.template_id),
            url: non_empty(cfg.url),
            page: non_empty(cfg.page),
            miniprogram: cfg.miniprogram,
            recipients: cfg.recipients,
        })
    }

    /// The token source of this account (for tests and token warm-up).
    pub fn token_source(&self) -> &WechatTokenSource {
        &self.tokens
    }

    fn path(&self) -> &'static str {
        match self.kind {
            WechatKind::Template => "/cgi-bin/message/template/send",
            WechatKind::Subscribe => "/cgi-bin/message/subscribe/bizsend",
        }
    }

    /// The send request for `payload` with `token` (pure; for tests).
    pub fn request(&self, payload: &Payload, token: &str) -> HttpRequest {
        let mut url = endpoint::join(&self.base, self.path());
        url.query_pairs_mut().append_pair("access_token", token);
        HttpRequest::post_json(url, &payload.body)
    }

    fn openids(&self, msg: &Message) -> Result<Vec<String>, Error> {
        let source = if msg.recipients.is_empty() {
            &self.recipients
        } else {
            &msg.recipients
        };
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<String> = source
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && seen.insert(s.clone()))
            .collect();
        if ids.is_empty() {
            return Err(Error::InvalidMessage(format!(
                "no recipients: set `recipients` (openids) in the message or in the {KIND} destination"
            )));
        }
        Ok(ids)
    }

    /// One payload per openid, each with its own `client_msg_id` (kind template).
    fn per_recipient(
        &self,
        msg: &Message,
        base: &Map<String, Value>,
    ) -> Result<Vec<Payload>, Error> {
        Ok(self
            .openids(msg)?
            .into_iter()
            .map(|openid| {
                let mut o = Map::new();
                o.insert("touser".into(), openid.clone().into());
                o.extend(base.clone());
                let key = self.with_dedup(&mut o, msg, &openid);
                let mut p = Payload::new(Value::Object(o));
                p.recipients = vec![openid];
                p.dedup_key = key;
                p
            })
            .collect())
    }

    /// Put `client_msg_id` in a template message (unless already there) and
    /// return it; subscribe messages have no dedup field.
    fn with_dedup(
        &self,
        o: &mut Map<String, Value>,
        msg: &Message,
        openid: &str,
    ) -> Option<String> {
        if self.kind != WechatKind::Template {
            return None;
        }
        if let Some(existing) = o.get("client_msg_id").and_then(|v| v.as_str()) {
            return Some(existing.to_string());
        }
        let key = dedup_key(msg.id.as_deref(), 0, openid)?;
        o.insert("client_msg_id".into(), key.clone().into());
        Some(key)
    }

    fn template_fields(
        &self,
        template_id: &str,
        data: &std::collections::BTreeMap<String, String>,
        url: Option<&String>,
    ) -> Result<Map<String, Value>, Error> {
        let template_id = Some(template_id.trim())
            .filter(|t| !t.is_empty())
            .or(self.template_id.as_deref())
            .ok_or_else(|| {
                Error::InvalidMessage(format!(
                    "`body.template_id` is empty and the {KIND} destination has no `template_id`"
                ))
            })?;
        if data.is_empty() {
            return Err(Error::InvalidMessage(
                "`body.data` is empty; fill the template's fields (e.g. {\"thing1\": \"...\"})"
                    .into(),
            ));
        }
        let mut o = Map::new();
        o.insert("template_id".into(), template_id.into());
        let link = url.cloned().or_else(|| match self.kind {
            WechatKind::Template => self.url.clone(),
            WechatKind::Subscribe => self.page.clone(),
        });
        if let Some(link) = link {
            let field = match self.kind {
                WechatKind::Template => "url",
                WechatKind::Subscribe => "page",
            };
            o.insert(field.into(), link.into());
        }
        if let Some(mp) = &self.miniprogram {
            o.insert("miniprogram".into(), json!(mp));
        }
        let fields: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "value": v })))
            .collect();
        o.insert("data".into(), Value::Object(fields));
        Ok(o)
    }
}

#[async_trait]
impl Destination for WechatTemplate {
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
        Platform::Wechat
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// None published per second; the daily quota depends on the account and
    /// answers 45009 when reached (classified as a one-hour wait).
    fn rate_limits(&self) -> Vec<Quota> {
        Vec::new()
    }

    fn dedups_retries(&self) -> bool {
        self.kind == WechatKind::Template
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        match &msg.body {
            Body::Template { template_id, data, url } => {
                let fields = self.template_fields(template_id, data, url.as_ref())?;
                self.per_recipient(msg, &fields)
            }
            Body::Raw { platform, payload } => {
                check_raw(*platform, Platform::Wechat, KIND)?;
                let mut obj = payload
                    .as_object()
                    .cloned()
                    .ok_or_else(|| Error::InvalidMessage("`body.payload` must be a JSON object for wechat_template".into()))?;
                if let Some(t) = &self.template_id {
                    obj.entry("template_id").or_insert(t.clone().into());
                }
                match obj.get("touser").and_then(|t| t.as_str()).map(str::to_string) {
                    Some(openid) => {
                        let key = self.with_dedup(&mut obj, msg, &openid);
                        let mut p = Payload::new(Value::Object(obj));
                        p.recipients = vec![openid];
                        p.dedup_key = key;
                        Ok(vec![p])
                    }
                    None => self.per_recipient(msg, &obj),
                }
            }
            other => Err(Error::unsupported(
                KIND,
                other.kind(),
                "WeChat Official Accounts push only template messages: they need a `template_id` approved in the MP \
                 admin and its named fields. Send `{\"type\": \"template\", \"template_id\": \"...\", \"data\": \
                 {\"thing1\": \"...\"}}`",
            )),
        }
    }

    async fn send(&self, payload: &Payload) -> Report {
        let http = &self.shared.http;
        self.shared
            .tokens
            .with_token(&self.tokens, http, |token| {
                let req = self.request(payload, token.expose());
                async move {
                    let report = match http.execute(req).await {
                        Ok(resp) => codes::classify(&resp),
                        Err(r) => r,
                    };
                    if report.outcome == Outcome::RefreshToken {
                        self.tokens.reject(&token);
                    }
                    report
                }
            })
            .await
    }
}
