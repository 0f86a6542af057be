//! `feishu_app`: a self-built app's bot sending to users or chats,
//! `POST {base}/open-apis/im/v1/messages?receive_id_type=..` with
//! `Authorization: Bearer {tenant_access_token}`.
//!
//! One request per recipient (the API takes one `receive_id`). Each carries a
//! `uuid` derived from the message id, part and recipient: Feishu executes a
//! uuid at most once per hour, so a retry after an unknown outcome cannot
//! deliver twice. `content` is a JSON *string*, and a post's content has no
//! outer `post` key (unlike the webhook).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use url::Url;

use super::render::{self, Ctx, Native};
use super::{base, check_raw, codes, urgent, Region};
use crate::destination::{dedup_key, Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::{HttpClient, HttpRequest};
use crate::lifecycle::{Lifecycle, Operation, RecallMode, SentPart, UpdateMode, UrgentKind};
use crate::limits::Overflow;
use crate::message::{Body, Message, Platform};
use crate::outcome::Report;
use crate::token::{Token, TokenSource};
use crate::{Error, Secret};

/// Self-built app token endpoint.
pub const TOKEN_PATH: &str = "/open-apis/auth/v3/tenant_access_token/internal";
/// Send-message endpoint (the `receive_id_type` query is added per request).
pub const MESSAGES_PATH: &str = "/open-apis/im/v1/messages";
/// Request body limit for text messages (documented 150 KB).
pub const TEXT_LIMIT: usize = 150_000;
/// Request body limit for posts and cards (documented 30 KB).
pub const RICH_LIMIT: usize = 30_000;
/// Cards can be updated (PATCH) within 14 days of sending.
pub const UPDATE_WINDOW: Duration = Duration::from_secs(14 * 86_400);
/// The bot recalls its own messages within the tenant's recall limit, 24
/// hours unless an administrator changed it.
pub const RECALL_WINDOW: Duration = Duration::from_secs(86_400);
/// Updates of one message: at most 5 a second.
pub const UPDATE_QUOTA: Quota = Quota::per_second(5);

const KIND: &str = "feishu_app";

/// How `receive_id` is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiveIdType {
    /// `ou_...`, the user's id within this app.
    #[default]
    OpenId,
    UserId,
    /// `on_...`, the user's id across the developer's apps.
    UnionId,
    Email,
    /// `oc_...`, a group chat the bot is in.
    ChatId,
}

impl ReceiveIdType {
    const ALL: [ReceiveIdType; 5] = [
        ReceiveIdType::OpenId,
        ReceiveIdType::UserId,
        ReceiveIdType::UnionId,
        ReceiveIdType::Email,
        ReceiveIdType::ChatId,
    ];

    /// The query value.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReceiveIdType::OpenId => "open_id",
            ReceiveIdType::UserId => "user_id",
            ReceiveIdType::UnionId => "union_id",
            ReceiveIdType::Email => "email",
            ReceiveIdType::ChatId => "chat_id",
        }
    }

    /// Split an optional `type:` prefix off a recipient (`chat_id:oc_x`), so one
    /// message can go to users and chats alike.
    pub fn split(recipient: &str) -> (Option<Self>, &str) {
        if let Some((prefix, id)) = recipient.split_once(':') {
            if let Some(t) = Self::ALL.iter().find(|t| t.as_str() == prefix) {
                return (Some(*t), id);
            }
        }
        (None, recipient)
    }
}

/// Config of a Feishu/Lark app bot.
///
/// ```toml
/// type = "feishu_app"
/// app_id = "cli_a1b2c3"
/// app_secret = "${FEISHU_APP_SECRET}"
/// receive_id_type = "open_id"               # default for unprefixed recipients
/// recipients = ["ou_7d8a6e", "chat_id:oc_5ad11"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuAppConfig {
    pub app_id: String,
    pub app_secret: Secret,
    /// `feishu` (default) or `lark`.
    #[serde(default)]
    pub region: Option<Region>,
    /// Overrides the region's host (a proxy, the mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// How recipients without a `type:` prefix are read (default `open_id`).
    #[serde(default)]
    pub receive_id_type: ReceiveIdType,
    /// Recipients used when a message names none.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// What to do with text over the size limit.
    #[serde(default)]
    pub overflow: Overflow,
}

/// The app's credentials, as a [`TokenSource`].
#[derive(Debug)]
struct Credentials {
    base: Url,
    app_id: String,
    app_secret: Secret,
}

#[async_trait]
impl TokenSource for Credentials {
    fn cache_key(&self) -> String {
        format!("feishu:{}:{}", self.app_id, self.app_secret.fingerprint())
    }

    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report> {
        let req = HttpRequest::post_json(
            endpoint::join(&self.base, TOKEN_PATH),
            &json!({ "app_id": self.app_id, "app_secret": self.app_secret.expose() }),
        );
        let resp = http.execute(req).await?;
        codes::token_answer(&resp)
    }
}

/// A Feishu/Lark app bot.
#[derive(Debug)]
pub struct FeishuApp {
    shared: Arc<Shared>,
    id: String,
    creds: Credentials,
    receive_id_type: ReceiveIdType,
    recipients: Vec<String>,
    overflow: Overflow,
}

impl FeishuApp {
    /// Validate the config: non-empty credentials, a valid base URL, valid
    /// default recipients.
    pub fn new(client: &Client, cfg: FeishuAppConfig) -> Result<Self, Error> {
        let err = |m: String| Error::Config(format!("{KIND}: {m}"));
        let app_id = cfg.app_id.trim().to_string();
        if app_id.is_empty() {
            return Err(err(
                "`app_id` is empty: set the app's App ID (cli_...)".into()
            ));
        }
        if cfg.app_secret.expose().trim().is_empty() {
            return Err(err("`app_secret` is empty: set the app's App Secret".into()));
        }
        for (i, r) in cfg.recipients.iter().enumerate() {
            check_recipient(r).map_err(|m| err(format!("`recipients[{i}]` {m}")))?;
        }
        let base = base(cfg.region, cfg.base_url.as_deref()).map_err(|e| err(e.to_string()))?;
        Ok(FeishuApp {
            shared: client.shared().clone(),
            id: format!("{KIND}:{app_id}"),
            creds: Credentials {
                base,
                app_id,
                app_secret: cfg.app_secret,
            },
            receive_id_type: cfg.receive_id_type,
            recipients: cfg.recipients,
            overflow: cfg.overflow,
        })
    }

    /// The `receive_id_type` a payload goes out with: its recipient's prefix, or
    /// the configured default.
    fn receive_id_type_of(&self, payload: &Payload) -> ReceiveIdType {
        payload
            .recipients
            .first()
            .and_then(|r| ReceiveIdType::split(r).0)
            .unwrap_or(self.receive_id_type)
    }

    /// Build the send request for `payload` with `token`: pure, for tests.
    pub fn request(&self, payload: &Payload, token: &Secret) -> HttpRequest {
        let url = endpoint::join(
            &self.creds.base,
            &format!(
                "{MESSAGES_PATH}?receive_id_type={}",
                self.receive_id_type_of(payload).as_str()
            ),
        );
        HttpRequest::post_json(url, &payload.body)
            .header("authorization", &format!("Bearer {}", token.expose()))
    }

    /// `{base}/open-apis/im/v1/messages/{message_id}`: what PATCH, PUT and
    /// DELETE act on.
    fn message_url(&self, message_id: &str) -> Result<Url, Error> {
        let mut url = endpoint::join(&self.creds.base, MESSAGES_PATH);
        url.path_segments_mut()
            .map_err(|_| Error::Config(format!("{KIND}: `base_url` cannot take a path")))?
            .pop_if_empty()
            .push(message_id);
        Ok(url)
    }

    /// The request that replaces part `sent` with `native` content, with
    /// `token`: a card is PATCHed (`content` only), a text or post edited
    /// with PUT (`msg_type` and `content`). Pure, for tests.
    pub fn update_request(
        &self,
        sent: &SentPart,
        msg: &Message,
        token: &Secret,
    ) -> Result<HttpRequest, Error> {
        let (msg_type, content) = self.update_content(sent, msg)?;
        let url = self.message_url(&sent.platform_message_id)?;
        let mut req = if msg_type == "interactive" {
            let mut r = HttpRequest::post_json(url, &json!({ "content": content }));
            r.method = reqwest::Method::PATCH;
            r
        } else {
            let body = json!({ "msg_type": msg_type, "content": content });
            let mut r = HttpRequest::post_json(url, &body);
            r.method = reqwest::Method::PUT;
            r
        };
        req = req.header("authorization", &format!("Bearer {}", token.expose()));
        Ok(req)
    }

    /// The recall request for part `sent`. Pure, for tests.
    pub fn recall_request(&self, sent: &SentPart, token: &Secret) -> Result<HttpRequest, Error> {
        let mut req = HttpRequest::get(self.message_url(&sent.platform_message_id)?);
        req.method = reqwest::Method::DELETE;
        Ok(req.header("authorization", &format!("Bearer {}", token.expose())))
    }

    /// The urgent push request of `kind` about part `sent` to `users`, with
    /// `token`. The users are read as the config's `receive_id_type` (open
    /// ids by default; a chat id cannot be pushed). Pure, for tests.
    pub fn urgent_request(
        &self,
        sent: &SentPart,
        kind: UrgentKind,
        users: &[String],
        token: &Secret,
    ) -> Result<HttpRequest, Error> {
        let user_id_type = match self.receive_id_type {
            ReceiveIdType::ChatId | ReceiveIdType::Email => ReceiveIdType::OpenId,
            t => t,
        };
        let mut url = self.message_url(&sent.platform_message_id)?;
        url.path_segments_mut()
            .map_err(|_| Error::Config(format!("{KIND}: `base_url` cannot take a path")))?
            .push(urgent::path_segment(kind));
        url.query_pairs_mut()
            .append_pair("user_id_type", user_id_type.as_str());
        let mut req = HttpRequest::post_json(url, &urgent::body(users));
        req.method = reqwest::Method::PATCH;
        Ok(req.header("authorization", &format!("Bearer {}", token.expose())))
    }

    /// The users of an urgent push as Feishu takes them: ids without a
    /// `type:` prefix, at most [`urgent::MAX_USERS`]; a chat cannot be pushed.
    fn urgent_users(users: &[String]) -> Result<Vec<String>, Error> {
        let refuse = Error::InvalidMessage;
        if users.is_empty() {
            return Err(refuse("an urgent push names at least one user".into()));
        }
        if users.len() > urgent::MAX_USERS {
            return Err(refuse(format!(
                "Feishu pushes at most {} users a call; got {}",
                urgent::MAX_USERS,
                users.len()
            )));
        }
        users
            .iter()
            .map(|u| match ReceiveIdType::split(u) {
                (Some(ReceiveIdType::ChatId | ReceiveIdType::Email), _) => Err(refuse(format!(
                    "`{u}`: Feishu pushes users by open_id, user_id or union_id, not chats or e-mail addresses"
                ))),
                (_, id) if id.trim().is_empty() || id.chars().any(char::is_whitespace) => {
                    Err(refuse(format!("`{u}` is not a Feishu user id")))
                }
                (_, id) => Ok(id.to_string()),
            })
            .collect()
    }

    /// `msg` rendered for one part: its type and stringified content. An
    /// update replaces one message, so it must render to one part.
    fn update_content(&self, sent: &SentPart, msg: &Message) -> Result<(String, String), Error> {
        // The recipients only shape the envelope; the sent part's own keep
        // rendering from refusing a message that names none.
        let mut one = msg.clone();
        one.recipients = vec![sent
            .recipients
            .first()
            .cloned()
            .unwrap_or_else(|| "open_id:ou_update".into())];
        let payloads = self.render(&one)?;
        let [payload] = payloads.as_slice() else {
            return Err(Error::InvalidMessage(format!(
                "an update replaces one message, but this one renders to {} parts; shorten it",
                payloads.len()
            )));
        };
        let msg_type = payload.body["msg_type"].as_str().unwrap_or_default();
        if !matches!(msg_type, "interactive" | "text" | "post") {
            return Err(Error::operation_unsupported(
                KIND,
                Operation::Update,
                format!("Feishu edits text, post and card messages only, not `{msg_type}`"),
            ));
        }
        let content = payload.body["content"].as_str().unwrap_or_default();
        Ok((msg_type.to_string(), content.to_string()))
    }

    async fn execute(&self, req: HttpRequest, sent: &SentPart) -> Report {
        match self.shared.http.execute(req).await {
            Ok(resp) => {
                let mut r = codes::classify_api(&resp);
                if r.outcome.is_delivered() {
                    // PATCH, PUT and DELETE answer `data: {}`: the id stays.
                    r.platform_message_id = Some(sent.platform_message_id.clone());
                }
                r
            }
            Err(r) => r,
        }
    }

    async fn attempt(&self, payload: &Payload, token: Secret) -> Report {
        match self
            .shared
            .http
            .execute(self.request(payload, &token))
            .await
        {
            Ok(resp) => codes::classify_api(&resp),
            Err(r) => r,
        }
    }

    /// The request body for one recipient.
    fn body(receive_id: &str, msg_type: &str, content: &str, uuid: Option<&str>) -> Value {
        let mut body =
            json!({ "receive_id": receive_id, "msg_type": msg_type, "content": content });
        if let Some(u) = uuid {
            body["uuid"] = json!(u);
        }
        body
    }
}

/// A recipient is an id, optionally prefixed with its type (`chat_id:oc_x`).
fn check_recipient(r: &str) -> Result<(), String> {
    let (_, id) = ReceiveIdType::split(r);
    if id.trim().is_empty() || id.chars().any(char::is_whitespace) {
        return Err(format!(
            "(`{r}`) is not a Feishu id; use an open_id (ou_..), or prefix the type: chat_id:oc_.., email:a@b.c, user_id:.., union_id:on_.."
        ));
    }
    Ok(())
}

#[async_trait]
impl Destination for FeishuApp {
    async fn token_state(&self) -> Option<crate::token::TokenState> {
        Some(
            self.shared
                .tokens
                .state_with_shared(&self.creds.cache_key())
                .await,
        )
    }

    fn kind(&self) -> &'static str {
        KIND
    }

    fn platform(&self) -> Platform {
        Platform::Feishu
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// The app-wide 50/s; the ~5/s per recipient is [`recipient_rate_limits`].
    ///
    /// [`recipient_rate_limits`]: Destination::recipient_rate_limits
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(50)]
    }

    /// Feishu allows about 5 messages a second to one user or one group
    /// (shared by the bots in it); beyond that it answers 230020. Source:
    /// the send-message page's rate limits ("to the same user 5 QPS per app;
    /// to the same group 5 QPS shared by all bots in the group"), platforms
    /// notes 2c.
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(5)]
    }

    /// A group's 5 a second is shared by every bot in it, whichever app:
    /// a chat is named on the platform, a user per app.
    fn shared_recipient_quota(&self, recipient: &str) -> Option<String> {
        let (t, id) = ReceiveIdType::split(recipient);
        (t.unwrap_or(self.receive_id_type) == ReceiveIdType::ChatId)
            .then(|| format!("feishu:chat:{id}"))
    }

    fn dedups_retries(&self) -> bool {
        true
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let recipients = if msg.recipients.is_empty() {
            &self.recipients
        } else {
            &msg.recipients
        };
        if recipients.is_empty() {
            return Err(Error::InvalidMessage(format!(
                "no recipients: set `recipients` on the message or in the {KIND} config"
            )));
        }
        for (i, r) in recipients.iter().enumerate() {
            check_recipient(r)
                .map_err(|m| Error::InvalidMessage(format!("`recipients[{i}]` {m}")))?;
        }

        // (msg_type, stringified content) per part.
        let parts: Vec<(String, String)> = match &msg.body {
            Body::Raw { platform, payload } => {
                check_raw(*platform, KIND)?;
                let msg_type = payload
                    .get("msg_type")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        Error::InvalidMessage(
                            "`body.payload.msg_type` is missing (e.g. \"share_chat\")".into(),
                        )
                    })?;
                let content = match payload.get("content") {
                    Some(Value::String(s)) => s.clone(),
                    Some(c @ Value::Object(_)) => c.to_string(),
                    _ => {
                        return Err(Error::InvalidMessage(
                            "`body.payload.content` must be an object or a JSON string".into(),
                        ))
                    }
                };
                vec![(msg_type.to_string(), content)]
            }
            _ => {
                // Size with the longest recipient and a uuid, so every request fits.
                let longest = recipients
                    .iter()
                    .map(|r| ReceiveIdType::split(r).1)
                    .max_by_key(|r| r.len())
                    .unwrap_or("");
                let uuid = "00000000-0000-0000-0000-000000000000";
                let measure = |n: &Native| {
                    let body = Self::body(longest, n.msg_type, &n.content.to_string(), Some(uuid));
                    serde_json::to_vec(&body).map_or(usize::MAX, |b| b.len())
                };
                let ctx = Ctx {
                    dest: KIND,
                    overflow: &self.overflow,
                    measure: &measure,
                    limit: |t| if t == "text" { TEXT_LIMIT } else { RICH_LIMIT },
                    image_refusal: "imrelay does not upload images; upload it with POST /open-apis/im/v1/images and send its `image_key` as `{\"key\": ..}`",
                    interactive: true,
                };
                render::render(msg, &ctx)?
                    .into_iter()
                    .map(|n| (n.msg_type.to_string(), n.content.to_string()))
                    .collect()
            }
        };

        let mut payloads = Vec::with_capacity(parts.len() * recipients.len());
        for (part, (msg_type, content)) in parts.iter().enumerate() {
            for r in recipients {
                let key = dedup_key(msg.id.as_deref(), part, r);
                let (_, receive_id) = ReceiveIdType::split(r);
                payloads.push(Payload {
                    body: Self::body(receive_id, msg_type, content, key.as_deref()),
                    recipients: vec![r.clone()],
                    dedup_key: key,
                });
            }
        }
        Ok(payloads)
    }

    async fn send(&self, payload: &Payload) -> Report {
        self.shared
            .tokens
            .with_token(&self.creds, &self.shared.http, |token| {
                self.attempt(payload, token)
            })
            .await
    }

    /// Cards are updated in place (PATCH) within 14 days, 5 times a second
    /// per message; texts and posts are edited (PUT) within the tenant's edit
    /// limit, at most 20 times. The bot recalls its own messages within the
    /// tenant's recall limit (24 h by default). Cards carry callback buttons.
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle {
            update: UpdateMode::InPlace {
                window: Some(UPDATE_WINDOW),
            },
            recall: RecallMode::Within {
                window: RECALL_WINDOW,
            },
            card_actions: true,
            update_limits: vec![UPDATE_QUOTA],
            urgent: UrgentKind::ALL.to_vec(),
            urgent_scope: crate::lifecycle::UrgentScope::SentMessage,
            urgent_unsupported: None,
            urgent_limits: urgent::LIMITS.to_vec(),
            urgent_max_users: UrgentKind::ALL
                .iter()
                .map(|k| (*k, urgent::MAX_USERS))
                .collect(),
        }
    }

    async fn update(&self, sent: &SentPart, msg: &Message) -> Result<Report, Error> {
        // Render (and refuse) before fetching a token.
        self.update_content(sent, msg)?;
        Ok(self
            .shared
            .tokens
            .with_token(&self.creds, &self.shared.http, |token| async move {
                match self.update_request(sent, msg, &token) {
                    Ok(req) => self.execute(req, sent).await,
                    Err(e) => Report::new(crate::outcome::Outcome::Permanent, e.to_string()),
                }
            })
            .await)
    }

    /// `PATCH .../urgent_app|urgent_sms|urgent_phone` about the part; users
    /// outside its chat come back as failed recipients. `text` is unused:
    /// Feishu pushes the message itself.
    async fn urgent(
        &self,
        sent: &SentPart,
        kind: UrgentKind,
        users: &[String],
        _text: &str,
    ) -> Result<Report, Error> {
        let users = Self::urgent_users(users)?;
        self.message_url(&sent.platform_message_id)?;
        let users = &users;
        Ok(self
            .shared
            .tokens
            .with_token(&self.creds, &self.shared.http, |token| async move {
                match self.urgent_request(sent, kind, users, &token) {
                    Ok(req) => match self.shared.http.execute(req).await {
                        Ok(resp) => urgent::classify(&resp),
                        Err(r) => r,
                    },
                    Err(e) => Report::new(crate::outcome::Outcome::Permanent, e.to_string()),
                }
            })
            .await)
    }

    async fn recall(&self, sent: &SentPart) -> Result<Report, Error> {
        self.message_url(&sent.platform_message_id)?;
        Ok(self
            .shared
            .tokens
            .with_token(&self.creds, &self.shared.http, |token| async move {
                match self.recall_request(sent, &token) {
                    Ok(req) => self.execute(req, sent).await,
                    Err(e) => Report::new(crate::outcome::Outcome::Permanent, e.to_string()),
                }
            })
            .await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{self, Counting};
    use crate::message::{Button, ImageSource, Mentions};

    fn app(recipients: &[&str]) -> FeishuApp {
        FeishuApp::new(
            &Client::new().unwrap(),
            FeishuAppConfig {
                app_id: "cli_a1b2c3".into(),
                app_secret: Secret::new("app-secret-value"),
                region: None,
                base_url: None,
                receive_id_type: ReceiveIdType::OpenId,
                recipients: recipients.iter().map(|r| r.to_string()).collect(),
                overflow: Overflow::default(),
            },
        )
        .unwrap()
    }

    fn build(cfg: Value) -> Result<Arc<dyn Destination>, Error> {
        let mut cfg = cfg;
        cfg["type"] = json!("feishu_app");
        Client::new().unwrap().build(&cfg)
    }

    fn content(p: &Payload) -> Value {
        serde_json::from_str(p.body["content"].as_str().expect("content is a string")).unwrap()
    }

    #[test]
    fn a_groups_quota_is_shared_by_every_app_and_a_users_is_not() {
        let a = app(&["ou_x"]);
        assert_eq!(a.recipient_rate_limits(), [Quota::per_second(5)]);
        assert_eq!(
            a.shared_recipient_quota("chat_id:oc_ops").as_deref(),
            Some("feishu:chat:oc_ops")
        );
        assert_eq!(a.shared_recipient_quota("ou_x"), None);
        assert_eq!(a.shared_recipient_quota("email:a@b.c"), None);
        let chats = build(json!({"app_id": "cli_other", "app_secret": "s",
            "receive_id_type": "chat_id", "recipients": ["oc_ops"]}))
        .unwrap();
        assert_eq!(
            chats.shared_recipient_quota("oc_ops").as_deref(),
            Some("feishu:chat:oc_ops"),
            "an unprefixed id of a chat-addressed app"
        );
    }

    #[test]
    fn text_goes_once_per_recipient_with_a_stable_uuid() {
        let a = app(&["ou_7d8a6e6df7621556ce0d21922b676706ccs", "chat_id:oc_5ad11"]);
        let msg = Message::text("deploy done")
            .with_id("msg-42")
            .with_mentions(Mentions {
                user_ids: vec!["ou_x".into()],
                ..Default::default()
            });
        let payloads = a.render(&msg).unwrap();
        insta::assert_json_snapshot!(payloads, @r#"
        [
          {
            "body": {
              "receive_id": "ou_7d8a6e6df7621556ce0d21922b676706ccs",
              "msg_type": "text",
              "content": "{\"text\":\"deploy done <at user_id=\\\"ou_x\\\"></at>\"}",
              "uuid": "1faa729d-0631-5573-af91-3ce9ba36ba82"
            },
            "recipients": [
              "ou_7d8a6e6df7621556ce0d21922b676706ccs"
            ],
            "dedup_key": "1faa729d-0631-5573-af91-3ce9ba36ba82"
          },
          {
            "body": {
              "receive_id": "oc_5ad11",
              "msg_type": "text",
              "content": "{\"text\":\"deploy done <at user_id=\\\"ou_x\\\"></at>\"}",
              "uuid": "9e4d045e-0a07-5552-997c-faef062fad34"
            },
            "recipients": [
              "chat_id:oc_5ad11"
            ],
            "dedup_key": "9e4d045e-0a07-5552-997c-faef062fad34"
          }
        ]
        "#);
        assert_eq!(
            payloads[0].dedup_key,
            dedup_key(Some("msg-42"), 0, "ou_7d8a6e6df7621556ce0d21922b676706ccs")
        );
        assert_ne!(payloads[0].dedup_key, payloads[1].dedup_key);
        // Rendering again (a retry) yields the same uuids.
        assert_eq!(a.render(&msg).unwrap(), payloads);
        // No id, no uuid.
        let anon = a.render(&Message::text("x")).unwrap();
        assert!(anon[0].body.get("uuid").is_none() && anon[0].dedup_key.is_none());
    }

    #[test]
    fn message_recipients_override_the_configured_ones() {
        let a = app(&["ou_default"]);
        let p = a
            .render(&Message::text("x").with_recipients(vec!["email:ops@example.com".into()]))
            .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].body["receive_id"], "ops@example.com");
        assert_eq!(p[0].recipients, vec!["email:ops@example.com".to_string()]);
        let e = app(&[])
            .render(&Message::text("x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no recipients") && e.contains("`recipients`"),
            "{e}"
        );
        let e = a
            .render(&Message::text("x").with_recipients(vec!["chat_id:".into()]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`recipients[0]`"), "{e}");
    }

    #[test]
    fn request_carries_the_type_and_bearer_token() {
        let a = app(&["ou_1", "chat_id:oc_2", "union_id:on_3"]);
        let payloads = a.render(&Message::text("x")).unwrap();
        let token = Secret::new("t-abc");
        let urls: Vec<String> = payloads
            .iter()
            .map(|p| a.request(p, &token).url.to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "https://open.feishu.cn/open-apis/im/v1/messages?receive_id_type=open_id",
                "https://open.feishu.cn/open-apis/im/v1/messages?receive_id_type=chat_id",
                "https://open.feishu.cn/open-apis/im/v1/messages?receive_id_type=union_id",
            ]
        );
        let req = a.request(&payloads[0], &token);
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap();
        assert_eq!(auth.1, "Bearer t-abc");
        assert_eq!(req.json_body().unwrap(), payloads[0].body);
    }

    #[test]
    fn default_receive_id_type_and_lark_region() {
        let d = build(json!({
            "app_id": "cli_1", "app_secret": "s", "region": "lark",
            "receive_id_type": "user_id", "recipients": ["u1"],
        }))
        .unwrap();
        let dbg = format!("{d:?}");
        assert!(
            dbg.contains("open.larksuite.com") && dbg.contains("UserId") && !dbg.contains("\"s\""),
            "{dbg}"
        );
    }

    #[test]
    fn link_post_has_no_outer_post_key() {
        let a = app(&["ou_1"]);
        let msg = Message::new(Body::Link {
            text: "Release notes".into(),
            url: "https://example.com/r".into(),
            pic_url: None,
        })
        .with_title("v1.2")
        .with_id("m1");
        let p = a.render(&msg).unwrap();
        assert_eq!(p[0].body["msg_type"], "post");
        insta::assert_json_snapshot!(content(&p[0]), @r#"
        {
          "zh_cn": {
            "title": "v1.2",
            "content": [
              [
                {
                  "tag": "text",
                  "text": "Release notes"
                }
              ],
              [
                {
                  "tag": "a",
                  "text": "https://example.com/r",
                  "href": "https://example.com/r"
                }
              ]
            ]
          }
        }
        "#);
    }

    #[test]
    fn card_content_is_a_stringified_card() {
        let a = app(&["chat_id:oc_1"]);
        let msg = Message::new(Body::Card {
            text: "**HighCPU** on web-3".into(),
            buttons: vec![Button {
                text: "Runbook".into(),
                url: "https://wiki.example.com/cpu".into(),
            }],
            theme: Some("warning".into()),
        })
        .with_title("Alert")
        .with_mentions(Mentions {
            all: true,
            ..Default::default()
        });
        let p = a.render(&msg).unwrap();
        assert_eq!(p[0].body["msg_type"], "interactive");
        assert!(p[0].body["content"].is_string());
        insta::assert_json_snapshot!(content(&p[0]), @r#"
        {
          "config": {
            "wide_screen_mode": true,
            "update_multi": true
          },
          "header": {
            "title": {
              "tag": "plain_text",
              "content": "Alert"
            },
            "template": "orange"
          },
          "elements": [
            {
              "tag": "div",
              "text": {
                "tag": "lark_md",
                "content": "**HighCPU** on web-3\n<at id=all></at>"
              }
            },
            {
              "tag": "action",
              "actions": [
                {
                  "tag": "button",
                  "text": {
                    "tag": "plain_text",
                    "content": "Runbook"
                  },
                  "url": "https://wiki.example.com/cpu",
                  "type": "primary"
                }
              ]
            }
          ]
        }
        "#);
    }

    #[test]
    fn image_and_raw_share_chat() {
        let a = app(&["ou_1"]);
        let p = a
            .render(&Message::new(Body::Image {
                image: ImageSource::Key("img_v2_x".into()),
            }))
            .unwrap();
        assert_eq!(p[0].body["msg_type"], "image");
        assert_eq!(p[0].body["content"], r#"{"image_key":"img_v2_x"}"#);
        let e = a
            .render(&Message::new(Body::Image {
                image: ImageSource::Url("https://x/i.png".into()),
            }))
            .unwrap_err();
        assert!(e.to_string().contains("im/v1/images"), "{e}");

        let raw = Message::new(Body::Raw {
            platform: Some(Platform::Feishu),
            payload: json!({"msg_type": "share_chat", "content": {"chat_id": "oc_x"}}),
        })
        .with_id("m2");
        let p = a.render(&raw).unwrap();
        insta::assert_json_snapshot!(p[0].body, @r#"
        {
          "receive_id": "ou_1",
          "msg_type": "share_chat",
          "content": "{\"chat_id\":\"oc_x\"}",
          "uuid": "9c538d78-77dd-5224-8b82-13c754387ec7"
        }
        "#);
        let bad = Message::new(Body::Raw {
            platform: None,
            payload: json!({"content": {}}),
        });
        assert!(a
            .render(&bad)
            .unwrap_err()
            .to_string()
            .contains("`body.payload.msg_type`"));
        let other = Message::new(Body::Raw {
            platform: Some(Platform::Wecom),
            payload: json!({}),
        });
        assert!(matches!(a.render(&other), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn double_escaped_text_still_fits_the_limit() {
        // Quotes cost 2 bytes in JSON and 4 once the content string is escaped
        // again: the renderer must account for the second escaping.
        let a = app(&["ou_1"]);
        let text = "say \"告警\"\n".repeat(20_000);
        let parts = a.render(&Message::text(text.clone()).with_id("m")).unwrap();
        assert!(parts.len() > 1);
        for p in &parts {
            let len = serde_json::to_vec(&p.body).unwrap().len();
            assert!(len <= TEXT_LIMIT, "{len}");
        }
        assert!(serde_json::to_vec(&parts[0].body).unwrap().len() > TEXT_LIMIT * 9 / 10);
        let joined: String = parts
            .iter()
            .map(|p| {
                content(p)["text"]
                    .as_str()
                    .unwrap()
                    .rsplit_once(" (")
                    .unwrap()
                    .0
                    .to_string()
            })
            .collect();
        assert!(text.starts_with(&joined));
    }

    #[test]
    fn chinese_card_is_split_under_the_rich_limit() {
        let a = app(&["ou_1"]);
        let text = "数据库主机磁盘使用率超过阈值，请尽快处理。\n".repeat(800); // ~50 KB
        assert!(limits::cost(&text, Counting::Utf8) > RICH_LIMIT);
        let parts = a.render(&Message::markdown("告警", text)).unwrap();
        assert_eq!(parts.len(), 2);
        for p in &parts {
            assert!(serde_json::to_vec(&p.body).unwrap().len() <= RICH_LIMIT);
            assert_eq!(content(p)["header"]["title"]["content"], "告警");
        }
    }

    fn part(id: &str) -> SentPart {
        SentPart {
            platform_message_id: id.into(),
            update_token: None,
            sent_at_ms: 0,
            recipients: vec!["chat_id:oc_1".into()],
        }
    }

    #[test]
    fn actions_become_callback_buttons_naming_message_and_action() {
        use crate::lifecycle::{Action, ActionStyle};
        let a = app(&["chat_id:oc_1"]);
        let actions = vec![
            Action {
                id: "ack".into(),
                text: "认领".into(),
                style: ActionStyle::Primary,
            },
            Action {
                id: "silence:1h".into(),
                text: "静默 1h".into(),
                style: ActionStyle::Default,
            },
        ];
        let msg = Message::new(Body::Card {
            text: "**HighCPU** on web-3".into(),
            buttons: vec![Button {
                text: "Runbook".into(),
                url: "https://wiki.example.com/cpu".into(),
            }],
            theme: Some("firing".into()),
        })
        .with_title("Alert")
        .with_id("msg-42")
        .with_actions(actions.clone());
        let p = a.render(&msg).unwrap();
        insta::assert_json_snapshot!(content(&p[0])["elements"][1], @r#"
        {
          "tag": "action",
          "actions": [
            {
              "tag": "button",
              "text": {
                "tag": "plain_text",
                "content": "Runbook"
              },
              "url": "https://wiki.example.com/cpu",
              "type": "primary"
            },
            {
              "tag": "button",
              "text": {
                "tag": "plain_text",
                "content": "认领"
              },
              "type": "primary",
              "value": {
                "imrelay_message": "msg-42",
                "imrelay_action": "ack"
              }
            },
            {
              "tag": "button",
              "text": {
                "tag": "plain_text",
                "content": "静默 1h"
              },
              "type": "default",
              "value": {
                "imrelay_message": "msg-42",
                "imrelay_action": "silence:1h"
              }
            }
          ]
        }
        "#);
        assert_eq!(content(&p[0])["config"]["update_multi"], true);
        // A markdown body gets the row too; without an id there is nothing
        // for a click to name, so no callback buttons.
        let md = a
            .render(
                &Message::markdown("t", "x")
                    .with_id("m")
                    .with_actions(actions.clone()),
            )
            .unwrap();
        assert_eq!(
            content(&md[0])["elements"][1]["actions"][0]["value"]["imrelay_action"],
            "ack"
        );
        let anon = a
            .render(&Message::markdown("t", "x").with_actions(actions))
            .unwrap();
        assert!(content(&anon[0])["elements"].get(1).is_none());
        let bad = Message::markdown("t", "x")
            .with_id("m")
            .with_actions(vec![Action {
                id: " ".into(),
                text: "x".into(),
                style: ActionStyle::Default,
            }]);
        assert!(a
            .render(&bad)
            .unwrap_err()
            .to_string()
            .contains("`actions[0].id`"));
    }

    #[test]
    fn a_card_update_is_a_patch_of_the_card_string_and_text_a_put() {
        let a = app(&["chat_id:oc_1"]);
        let token = Secret::new("t-abc");
        let card = Message::markdown("Resolved", "**HighCPU** is over").with_id("msg-42");
        let req = a.update_request(&part("om_1"), &card, &token).unwrap();
        assert_eq!(req.method, reqwest::Method::PATCH);
        assert_eq!(
            req.url.as_str(),
            "https://open.feishu.cn/open-apis/im/v1/messages/om_1"
        );
        let body = req.json_body().unwrap();
        assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
        let sent: Value = serde_json::from_str(body["content"].as_str().unwrap()).unwrap();
        assert_eq!(sent["header"]["title"]["content"], "Resolved");
        assert_eq!(sent["config"]["update_multi"], true);
        assert!(req
            .headers
            .iter()
            .any(|(k, v)| k == "authorization" && v == "Bearer t-abc"));

        let text = a
            .update_request(&part("om_2"), &Message::text("fixed"), &token)
            .unwrap();
        assert_eq!(text.method, reqwest::Method::PUT);
        assert_eq!(
            text.json_body().unwrap(),
            json!({"msg_type": "text", "content": "{\"text\":\"fixed\"}"})
        );

        let image = Message::new(Body::Image {
            image: ImageSource::Key("img_v2_x".into()),
        });
        assert!(matches!(
            a.update_request(&part("om_3"), &image, &token),
            Err(Error::OperationUnsupported { .. })
        ));
        let long = Message::text("x".repeat(200_000)).with_id("m");
        let e = a.update_request(&part("om_4"), &long, &token).unwrap_err();
        assert!(e.to_string().contains("renders to"), "{e}");
    }

    #[test]
    fn recall_is_a_delete_of_the_message_and_the_id_is_escaped() {
        let a = app(&["ou_1"]);
        let req = a.recall_request(&part("om_1"), &Secret::new("t")).unwrap();
        assert_eq!(req.method, reqwest::Method::DELETE);
        assert_eq!(
            req.url.as_str(),
            "https://open.feishu.cn/open-apis/im/v1/messages/om_1"
        );
        assert!(req.body.is_none());
        let odd = a
            .recall_request(&part("om/../x"), &Secret::new("t"))
            .unwrap();
        assert_eq!(
            odd.url.as_str(),
            "https://open.feishu.cn/open-apis/im/v1/messages/om%2F..%2Fx"
        );
    }

    #[test]
    fn urgent_requests_patch_the_message_with_the_user_id_type() {
        let a = app(&["ou_1"]);
        let sent = SentPart {
            platform_message_id: "om_dc13".into(),
            update_token: None,
            sent_at_ms: 0,
            recipients: vec!["ou_1".into()],
        };
        let users = FeishuApp::urgent_users(&["ou_1".into(), "open_id:ou_2".into()]).unwrap();
        assert_eq!(users, ["ou_1", "ou_2"]);
        let req = a
            .urgent_request(&sent, UrgentKind::Phone, &users, &Secret::new("t-1"))
            .unwrap();
        assert_eq!(req.method, reqwest::Method::PATCH);
        assert_eq!(
            req.url.as_str(),
            "https://open.feishu.cn/open-apis/im/v1/messages/om_dc13/urgent_phone?user_id_type=open_id"
        );
        assert_eq!(
            req.json_body().unwrap(),
            json!({"user_id_list": ["ou_1", "ou_2"]})
        );
        let chat = FeishuApp::urgent_users(&["chat_id:oc_1".into()]).unwrap_err();
        assert!(chat.to_string().contains("not chats"), "{chat}");
        assert!(FeishuApp::urgent_users(&[]).is_err());
        let l = a.lifecycle();
        assert_eq!(l.urgent, UrgentKind::ALL.to_vec());
        assert_eq!(l.urgent_limits, urgent::LIMITS.to_vec());
    }

    #[test]
    fn lifecycle_windows_and_limits() {
        let l = app(&["ou_1"]).lifecycle();
        assert!(l.card_actions);
        assert_eq!(l.update_limits, vec![Quota::per_second(5)]);
        let day = 86_400_000;
        assert!(l.can_recall(0, day).is_ok());
        assert!(l.can_recall(0, day + 1).is_err());
        assert!(l.updates_in_place(0, 14 * day));
        assert!(!l.updates_in_place(0, 14 * day + 1));
        let hook = Client::new()
            .unwrap()
            .build(&json!({"type": "feishu_webhook", "hook": "h"}))
            .unwrap()
            .lifecycle();
        assert!(!hook.card_actions);
        assert_eq!(
            hook.can_recall(0, 0).unwrap_err(),
            "custom bots have no recall API"
        );
    }

    #[test]
    fn config_errors_name_the_field() {
        let cases = [
            (json!({"app_secret": "s"}), "missing field `app_id`"),
            (json!({"app_id": "cli_1"}), "missing field `app_secret`"),
            (
                json!({"app_id": " ", "app_secret": "s"}),
                "`app_id` is empty",
            ),
            (
                json!({"app_id": "cli_1", "app_secret": ""}),
                "`app_secret` is empty",
            ),
            (
                json!({"app_id": "cli_1", "app_secret": "s", "receive_id_type": "phone"}),
                "unknown variant `phone`",
            ),
            (
                json!({"app_id": "cli_1", "app_secret": "s", "recipients": ["a b"]}),
                "`recipients[0]`",
            ),
            (
                json!({"app_id": "cli_1", "app_secret": "s", "base_url": "nope"}),
                "`base_url`",
            ),
        ];
        for (cfg, want) in cases {
            let e = build(cfg.clone()).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{cfg}");
            assert!(e.to_string().contains(want), "{cfg}: {e}");
        }
    }

    #[test]
    fn cache_key_and_debug_hide_the_secret() {
        let a = app(&["ou_1"]);
        let key = a.creds.cache_key();
        assert!(
            key.starts_with("feishu:cli_a1b2c3:") && !key.contains("app-secret-value"),
            "{key}"
        );
        assert!(!format!("{a:?}").contains("app-secret-value"));
        assert_eq!(a.rate_limits(), vec![Quota::per_second(50)]);
        assert_eq!(a.id(), "feishu_app:cli_a1b2c3");
    }
}
