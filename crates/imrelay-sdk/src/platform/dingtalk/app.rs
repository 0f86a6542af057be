//! A DingTalk internal app (企业内部应用): work notices (工作通知) through the
//! legacy oapi, or its robot's 1:1 messages through the v1.0 API.
//!
//! Tokens: `token_api = "v1"` (default) fetches with
//! `POST {api}/v1.0/oauth2/accessToken`, `"legacy"` with
//! `GET {oapi}/gettoken?appkey=&appsecret=`. Both give the same kind of token,
//! which v1.0 calls take in the `x-acs-dingtalk-access-token` header and the work
//! notice API as `?access_token=`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Map, Value};
use url::Url;

use super::card::{self, CardSpace};
use super::ding;
use super::read::{self, ReadStatus};
use super::recall;
use super::{
    buttons_markdown, codes, fit_text, news_markdown, shape, truncating, Shape, API_BASE, OAPI_BASE,
};
use crate::destination::{Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::lifecycle::{
    Lifecycle, Operation, RecallMode, SentPart, UpdateMode, UrgentKind, UrgentScope,
};
use crate::limits::Overflow;
use crate::message::{Body, Button, ImageSource, Message, Platform};
use crate::outcome::{Outcome, Report};
use crate::platform::errcode;
use crate::token::{Token, TokenSource};
use crate::{Error, Secret};

const KIND: &str = "dingtalk_app";

/// Work notices: `msg` ≤ 2,048 bytes.
pub const WORK_NOTICE_MSG_LIMIT: usize = 2_048;
/// Work notices: userids per request (`userid_list`).
pub const WORK_NOTICE_BATCH: usize = 100;
/// batchSend: `msgParam` bytes. Documented (15,000) for group sends; assumed
/// for 1:1 sends, which document no limit of their own.
pub const MSG_PARAM_LIMIT: usize = 15_000;
/// batchSend: `userIds` per call.
pub const BATCH_SEND_BATCH: usize = 20;
/// DingTalk's token lifetime when the answer omits it.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(7200);

/// Which API the app sends through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppMode {
    /// Work notices (`topapi/message/corpconversation/asyncsend_v2`); needs `agent_id`.
    #[default]
    WorkNotice,
    /// The app robot's 1:1 messages (`v1.0/robot/oToMessages/batchSend`).
    Robot,
}

impl AppMode {
    fn as_str(self) -> &'static str {
        match self {
            AppMode::WorkNotice => "work_notice",
            AppMode::Robot => "robot",
        }
    }
}

/// Which endpoint issues the access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenApi {
    /// `POST /v1.0/oauth2/accessToken` on the v1.0 host.
    #[default]
    V1,
    /// `GET /gettoken` on the oapi host.
    Legacy,
}

/// Config of a `dingtalk_app` destination.
///
/// ```toml
/// type = "dingtalk_app"
/// app_key = "dingxxxx"
/// app_secret = "..."
/// mode = "work_notice"        # or "robot"
/// agent_id = 123456           # work notices
/// recipients = ["manager1234"]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    /// AppKey (also called Client ID).
    pub app_key: String,
    /// AppSecret (Client Secret).
    pub app_secret: Secret,
    /// The app's AgentId, required for work notices.
    #[serde(default, deserialize_with = "agent_id")]
    pub agent_id: Option<i64>,
    /// The robot's code for `mode = "robot"`; defaults to `app_key`, which is an
    /// internal app robot's code.
    #[serde(default)]
    pub robot_code: Option<String>,
    #[serde(default)]
    pub mode: AppMode,
    #[serde(default)]
    pub token_api: TokenApi,
    /// oapi host (default `https://oapi.dingtalk.com`). When `api_base_url` is
    /// not set this is used for the v1.0 API too, so one mock serves both.
    #[serde(default)]
    pub base_url: Option<String>,
    /// v1.0 API host (default `https://api.dingtalk.com`).
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// userIds to send to when a message names none.
    #[serde(default)]
    pub recipients: Vec<String>,
    /// What to do with text over the size limits.
    #[serde(default)]
    pub overflow: Overflow,
    /// `mode = "robot"`: the interactive card template (built and published
    /// in DingTalk's card platform) that messages with action buttons are
    /// drawn with; see [`super::card`] for the parameters it gets.
    #[serde(default)]
    pub card_template_id: Option<String>,
    /// The `callbackRouteKey` registered (`POST /v1.0/card/callbacks/register`)
    /// for the URL that receives card clicks over HTTP.
    #[serde(default)]
    pub card_callback_route_key: Option<String>,
}

fn agent_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        N(i64),
        S(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::N(n)) => Ok(Some(n)),
        Some(NumOrStr::S(s)) => s.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("`agent_id` must be a number, got `{s}`"))
        }),
    }
}

fn config_err(msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("{KIND}: {msg}"))
}

fn base(configured: Option<&str>, default: &str, field: &str) -> Result<Url, Error> {
    endpoint::base_url(configured, default, field).map_err(|e| {
        config_err(
            e.to_string()
                .trim_start_matches("invalid destination config: "),
        )
    })
}

/// Fetches tokens with `POST {api}/v1.0/oauth2/accessToken`.
#[derive(Debug, Clone)]
pub struct V1TokenSource {
    pub api: Url,
    pub app_key: String,
    pub app_secret: Secret,
}

/// Fetches tokens with `GET {oapi}/gettoken?appkey=&appsecret=`.
#[derive(Debug, Clone)]
pub struct LegacyTokenSource {
    pub oapi: Url,
    pub app_key: String,
    pub app_secret: Secret,
}

fn token_cache_key(app_key: &str, secret: &Secret) -> String {
    format!("dingtalk:{app_key}:{}", secret.fingerprint())
}

/// A token endpoint that rejects the credential: refreshing cannot help.
fn token_failure(mut r: Report) -> Report {
    errcode::token_refusal_is_permanent(&mut r);
    if r.outcome == Outcome::Permanent {
        r.hint = Some(format!(
            "{}check `app_key` and `app_secret` (developer console -> app -> credentials)",
            r.hint.map(|h| format!("{h}; ")).unwrap_or_default()
        ));
    }
    r.message = format!("fetching the access token: {}", r.message);
    r
}

fn lifetime(v: &Value, field: &str) -> Duration {
    v.get(field)
        .and_then(Value::as_u64)
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME)
}

fn missing_token(resp: &HttpResponse) -> Report {
    token_failure(
        Report::new(Outcome::Retry { after: None }, "the answer has no token")
            .with_status(resp.status),
    )
}

/// Parse a v1.0 token answer `{"accessToken":"...","expireIn":7200}`.
pub fn parse_v1_token(resp: &HttpResponse) -> Result<Token, Report> {
    let v = codes::classify_v1(resp).map_err(token_failure)?;
    match v
        .get("accessToken")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(t) => Ok(Token {
            value: Secret::new(t),
            expires_in: lifetime(&v, "expireIn"),
        }),
        None => Err(missing_token(resp)),
    }
}

/// Parse a legacy token answer `{"errcode":0,"access_token":"...","expires_in":7200}`.
pub fn parse_legacy_token(resp: &HttpResponse) -> Result<Token, Report> {
    let v = codes::classify_oapi(resp).map_err(token_failure)?;
    match v
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        Some(t) => Ok(Token {
            value: Secret::new(t),
            expires_in: lifetime(&v, "expires_in"),
        }),
        None => Err(missing_token(resp)),
    }
}

impl V1TokenSource {
    /// The token request (pure).
    pub fn request(&self) -> HttpRequest {
        HttpRequest::post_json(
            endpoint::join(&self.api, "/v1.0/oauth2/accessToken"),
            &json!({"appKey": self.app_key, "appSecret": self.app_secret.expose()}),
        )
    }
}

impl LegacyTokenSource {
    /// The token request (pure). The secret travels in the query, as DingTalk
    /// wants; transport errors never print the URL.
    pub fn request(&self) -> HttpRequest {
        let mut url = endpoint::join(&self.oapi, "/gettoken");
        url.query_pairs_mut()
            .append_pair("appkey", &self.app_key)
            .append_pair("appsecret", self.app_secret.expose());
        HttpRequest::get(url)
    }
}

#[async_trait]
impl TokenSource for V1TokenSource {
    fn cache_key(&self) -> String {
        token_cache_key(&self.app_key, &self.app_secret)
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report> {
        let resp = http.execute(self.request()).await.map_err(token_failure)?;
        parse_v1_token(&resp)
    }
}

#[async_trait]
impl TokenSource for LegacyTokenSource {
    fn cache_key(&self) -> String {
        token_cache_key(&self.app_key, &self.app_secret)
    }
    async fn fetch(&self, http: &HttpClient) -> Result<Token, Report> {
        let resp = http.execute(self.request()).await.map_err(token_failure)?;
        parse_legacy_token(&resp)
    }
}

#[derive(Debug)]
enum Tokens {
    V1(V1TokenSource),
    Legacy(LegacyTokenSource),
}

impl Tokens {
    fn source(&self) -> &dyn TokenSource {
        match self {
            Tokens::V1(s) => s,
            Tokens::Legacy(s) => s,
        }
    }
}

/// A DingTalk internal app.
#[derive(Debug)]
pub struct App {
    shared: Arc<Shared>,
    id: String,
    mode: AppMode,
    agent_id: i64,
    robot_code: String,
    oapi: Url,
    api: Url,
    tokens: Tokens,
    recipients: Vec<String>,
    overflow: Overflow,
    card_template_id: Option<String>,
    card_route_key: Option<String>,
}

impl App {
    /// Validate the config and build the destination.
    pub fn new(client: &Client, cfg: AppConfig) -> Result<Self, Error> {
        let app_key = cfg.app_key.trim().to_string();
        if app_key.is_empty() {
            return Err(config_err(
                "`app_key` is empty; set the app's AppKey (Client ID)",
            ));
        }
        if cfg.app_secret.expose().trim().is_empty() {
            return Err(config_err(
                "`app_secret` is empty; set the app's AppSecret (Client Secret)",
            ));
        }
        let app_secret = Secret::new(cfg.app_secret.expose().trim());
        let oapi = base(cfg.base_url.as_deref(), OAPI_BASE, "base_url")?;
        let api = match (&cfg.api_base_url, &cfg.base_url) {
            (Some(a), _) => base(Some(a), API_BASE, "api_base_url")?,
            (None, Some(_)) => oapi.clone(),
            (None, None) => base(None, API_BASE, "api_base_url")?,
        };
        let agent_id = match (cfg.mode, cfg.agent_id) {
            (AppMode::WorkNotice, None) => {
                return Err(config_err(
                    "`agent_id` is required for `mode = \"work_notice\"` (the app's AgentId in the developer console)",
                ))
            }
            (_, Some(n)) if n <= 0 => return Err(config_err("`agent_id` must be a positive number")),
            (_, n) => n.unwrap_or(0),
        };
        let robot_code =
            match cfg.robot_code {
                Some(c) if c.trim().is_empty() => return Err(config_err(
                    "`robot_code` is empty; remove it to use `app_key`, or set the robot's code",
                )),
                Some(c) => c.trim().to_string(),
                None => app_key.clone(),
            };
        let recipients = clean_recipients(&cfg.recipients, cfg.mode)
            .map_err(|e| config_err(format!("`recipients`: {e}")))?;
        let card_template_id = non_blank(cfg.card_template_id, "card_template_id")?;
        let card_route_key = non_blank(cfg.card_callback_route_key, "card_callback_route_key")?;
        if card_template_id.is_some() && cfg.mode != AppMode::Robot {
            return Err(config_err(
                "`card_template_id` needs `mode = \"robot\"`: interactive cards are sent by the app's robot",
            ));
        }
        if card_route_key.is_some() && card_template_id.is_none() {
            return Err(config_err(
                "`card_callback_route_key` is set but `card_template_id` is not: set the card template that carries the buttons",
            ));
        }
        let tokens = match cfg.token_api {
            TokenApi::V1 => Tokens::V1(V1TokenSource {
                api: api.clone(),
                app_key: app_key.clone(),
                app_secret,
            }),
            TokenApi::Legacy => Tokens::Legacy(LegacyTokenSource {
                oapi: oapi.clone(),
                app_key: app_key.clone(),
                app_secret,
            }),
        };
        Ok(App {
            shared: client.shared().clone(),
            id: format!("{KIND}:{app_key}:{}", cfg.mode.as_str()),
            mode: cfg.mode,
            agent_id,
            robot_code,
            oapi,
            api,
            tokens,
            recipients,
            overflow: cfg.overflow,
            card_template_id,
            card_route_key,
        })
    }

    /// The token source this app uses (for tests and token warm-up).
    pub fn token_source(&self) -> &dyn TokenSource {
        self.tokens.source()
    }

    /// The request for `payload` with `token` (pure).
    pub fn request(&self, payload: &Payload, token: &Secret) -> HttpRequest {
        match self.mode {
            AppMode::WorkNotice => {
                HttpRequest::post_json(self.oapi_url(WORK_NOTICE_SEND_PATH, token), &payload.body)
            }
            AppMode::Robot => {
                self.v1_post(RobotCall::of(&payload.body).path(), &payload.body, token)
            }
        }
    }

    /// `{oapi}{path}?access_token=`.
    fn oapi_url(&self, path: &str, token: &Secret) -> Url {
        let mut url = endpoint::join(&self.oapi, path);
        url.query_pairs_mut()
            .append_pair("access_token", token.expose());
        url
    }

    /// A v1.0 POST with the token in its header.
    fn v1_post(&self, path: &str, body: &Value, token: &Secret) -> HttpRequest {
        HttpRequest::post_json(endpoint::join(&self.api, path), body)
            .header("x-acs-dingtalk-access-token", token.expose())
    }

    /// The card update request for a sent card (pure).
    pub fn update_request(&self, out_track_id: &str, msg: &Message, token: &Secret) -> HttpRequest {
        let mut req = self.v1_post(
            CARD_INSTANCES_PATH,
            &card::update_body(out_track_id, card::card_params(msg)),
            token,
        );
        req.method = reqwest::Method::PUT;
        req
    }

    /// What recalls a sent part; `Err` when it cannot be recalled (a card
    /// whose delivery named no `carrierId`, a work notice id that is not a
    /// task id).
    fn recall_plan(&self, sent: &SentPart) -> Result<RecallPlan, Error> {
        let unsupported = |why: String| Error::operation_unsupported(KIND, Operation::Recall, why);
        Ok(match self.mode {
            AppMode::WorkNotice => {
                let task_id = task_id(&sent.platform_message_id).map_err(unsupported)?;
                RecallPlan::WorkNotice(recall::work_notice_body(self.agent_id, task_id))
            }
            AppMode::Robot => {
                let key = robot_message_key(sent).map_err(unsupported)?;
                let (path, body) = match sent.recipients.first().map(|r| robot_target(r)) {
                    Some(RobotTarget::Group(cid)) => (
                        GROUP_RECALL_PATH,
                        recall::group_body(&self.robot_code, cid, key),
                    ),
                    _ => (OTO_RECALL_PATH, recall::oto_body(&self.robot_code, key)),
                };
                RecallPlan::Robot {
                    path,
                    body,
                    key: key.to_string(),
                }
            }
        })
    }

    /// The DING request pushing `kind` to `users` with `content` (pure).
    pub fn ding_request(
        &self,
        kind: UrgentKind,
        users: &[String],
        content: &str,
        token: &Secret,
    ) -> HttpRequest {
        self.v1_post(
            ding::DING_PATH,
            &ding::body(&self.robot_code, kind, users, content),
            token,
        )
    }

    /// The receivers of a DING: userIds (a group cannot be DINGed), within
    /// DingTalk's count for `kind`.
    fn ding_users(kind: UrgentKind, users: &[String]) -> Result<(), Error> {
        let refuse = Error::InvalidMessage;
        if users.is_empty() {
            return Err(refuse("a DING names at least one user".into()));
        }
        let max = ding::max_receivers(kind);
        if users.len() > max {
            return Err(refuse(format!(
                "a {kind} DING reaches at most {max} users; got {}",
                users.len()
            )));
        }
        if let Some(u) = users
            .iter()
            .find(|u| u.starts_with(GROUP_PREFIX) || u.trim().is_empty())
        {
            return Err(refuse(format!(
                "`{u}`: a DING goes to users by userId, not to groups"
            )));
        }
        Ok(())
    }

    /// The recall request for a sent part (pure).
    pub fn recall_request(&self, sent: &SentPart, token: &Secret) -> Result<HttpRequest, Error> {
        Ok(self.recall_plan(sent)?.request(self, token))
    }

    /// Run one authenticated request (refreshing a rejected token once) and
    /// classify its answer.
    async fn exchange(
        &self,
        build: impl Fn(&Secret) -> HttpRequest + Send + Sync,
        classify: impl Fn(&HttpResponse) -> Report + Send + Sync,
    ) -> Report {
        let shared = &self.shared;
        shared
            .tokens
            .with_token(self.tokens.source(), &shared.http, |token| {
                let req = build(&token);
                let classify = &classify;
                async move {
                    match shared.http.execute(req).await {
                        Ok(resp) => classify(&resp),
                        Err(r) => r,
                    }
                }
            })
            .await
    }

    /// [`exchange`](Self::exchange) for a query: the parsed answer, or the
    /// report of why there is none.
    async fn call<T: Send>(
        &self,
        build: impl Fn(&Secret) -> HttpRequest + Send + Sync,
        parse: impl Fn(&HttpResponse) -> Result<T, Report> + Send + Sync,
    ) -> Result<T, Report> {
        let parsed = std::sync::Mutex::new(None);
        let report = self
            .exchange(build, |resp| match parse(resp) {
                Ok(t) => {
                    if let Ok(mut slot) = parsed.lock() {
                        *slot = Some(t);
                    }
                    Report::delivered().with_status(resp.status)
                }
                Err(r) => r,
            })
            .await;
        match parsed.into_inner().ok().flatten() {
            Some(t) if report.outcome.is_delivered() => Ok(t),
            _ => Err(report),
        }
    }

    /// Who read a sent part: a work notice (by its `task_id`), a robot 1:1
    /// message, or a robot message in a group (read users only: DingTalk
    /// lists no unread ones there). Cards are asked by their `carrierId`.
    /// Ask within a day: a work notice's result is reportedly kept 24 hours.
    pub async fn read_status(&self, sent: &SentPart) -> Result<ReadStatus, Report> {
        let not_queryable = |e: String| Report::new(Outcome::Permanent, e);
        match self.mode {
            AppMode::WorkNotice => {
                let task_id = task_id(&sent.platform_message_id).map_err(not_queryable)?;
                let body = read::send_result_body(self.agent_id, task_id);
                self.call(
                    |t| {
                        HttpRequest::post_json(
                            self.oapi_url(WORK_NOTICE_SEND_RESULT_PATH, t),
                            &body,
                        )
                    },
                    read::parse_send_result,
                )
                .await
            }
            AppMode::Robot => {
                let key = robot_message_key(sent).map_err(not_queryable)?;
                match sent.recipients.first().map(|r| robot_target(r)) {
                    Some(RobotTarget::Group(cid)) => self.group_reads(cid, key).await,
                    _ => {
                        let mut url = endpoint::join(&self.api, ROBOT_READ_STATUS_PATH);
                        url.query_pairs_mut()
                            .append_pair("processQueryKey", key)
                            .append_pair("robotCode", &self.robot_code);
                        self.call(
                            |t| {
                                HttpRequest::get(url.clone())
                                    .header("x-acs-dingtalk-access-token", t.expose())
                            },
                            read::parse_robot_read_status,
                        )
                        .await
                    }
                }
            }
        }
    }

    /// Every page of a group message's read users.
    async fn group_reads(&self, cid: &str, key: &str) -> Result<ReadStatus, Report> {
        // A bound, so a platform that keeps answering `hasMore` cannot loop us.
        const MAX_PAGES: usize = 100;
        let mut status = ReadStatus::default();
        let mut next: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let body = read::group_query_body(&self.robot_code, cid, key, next.as_deref());
            let (read, more) = self
                .call(
                    |t| self.v1_post(GROUP_READ_QUERY_PATH, &body, t),
                    read::parse_group_query,
                )
                .await?;
            status.read.extend(read);
            match more {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        Ok(status)
    }

    /// Whether `msg` goes out as an interactive card: robot mode, action
    /// buttons and an id for their clicks to name. `Err` when it has buttons
    /// but no template is configured to draw them.
    fn draws_card<'a>(&'a self, msg: &'a Message) -> Result<Option<(&'a str, &'a str)>, Error> {
        if self.mode != AppMode::Robot || msg.actions.is_empty() {
            return Ok(None);
        }
        let Some(id) = msg.id.as_deref() else {
            return Ok(None);
        };
        if matches!(msg.body, Body::Raw { .. }) {
            return Ok(None);
        }
        match self.card_template_id.as_deref() {
            Some(t) => Ok(Some((t, id))),
            None => Err(config_err(
                "the message has action buttons but `card_template_id` is not set: set the interactive card template that draws them (and `card_callback_route_key` for their clicks)",
            )),
        }
    }

    fn recipients_for(&self, msg: &Message) -> Result<Vec<String>, Error> {
        let list = if msg.recipients.is_empty() {
            self.recipients.clone()
        } else {
            clean_recipients(&msg.recipients, self.mode)
                .map_err(|e| Error::InvalidMessage(format!("`recipients`: {e}")))?
        };
        if list.is_empty() {
            return Err(Error::InvalidMessage(
                "no recipients: set `recipients` (DingTalk userIds) on the message or in the destination's config".into(),
            ));
        }
        Ok(list)
    }

    /// Work notice `msg` objects, one per part.
    fn work_notice_msgs(&self, msg: &Message) -> Result<Vec<Value>, Error> {
        let limit = WORK_NOTICE_MSG_LIMIT;
        let text_msgs = |text: &str| -> Result<Vec<Value>, Error> {
            let make = |t: &str| json!({"msgtype": "text", "text": {"content": t}});
            Ok(fit_text(text, limit, 0, &self.overflow, make, "text")?
                .iter()
                .map(|t| make(t))
                .collect())
        };
        let markdown_msgs = |title: &str, text: &str| -> Result<Vec<Value>, Error> {
            let make =
                |t: &str| json!({"msgtype": "markdown", "markdown": {"title": title, "text": t}});
            Ok(fit_text(text, limit, 0, &self.overflow, make, "markdown")?
                .iter()
                .map(|t| make(t))
                .collect())
        };
        Ok(match shape(msg, KIND)? {
            Shape::Text(text) => text_msgs(&text)?,
            Shape::Markdown { title, text } => markdown_msgs(&title, &text)?,
            Shape::Link { title, text, url, pic } => {
                let make = |t: &str| {
                    let mut link = Map::new();
                    link.insert("title".into(), json!(title));
                    link.insert("text".into(), json!(t));
                    if let Some(p) = pic {
                        link.insert("picUrl".into(), json!(p));
                    }
                    link.insert("messageUrl".into(), json!(url));
                    json!({"msgtype": "link", "link": link})
                };
                let t = fit_text(text, limit, 0, &truncating(&self.overflow), make, "link")?;
                vec![make(&t[0])]
            }
            Shape::Card { title, text, buttons } => {
                let make = |t: &str| work_notice_card(&title, t, buttons);
                let t = fit_text(text, limit, 0, &truncating(&self.overflow), make, "card")?;
                vec![make(&t[0])]
            }
            Shape::News(articles) => markdown_msgs(&msg.title_or_default(), &news_markdown(articles))?,
            Shape::Image { title, source } => match source {
                ImageSource::Key(k) => vec![json!({"msgtype": "image", "image": {"media_id": k}})],
                ImageSource::Url(u) => markdown_msgs(&title, &format!("![image]({u})"))?,
                ImageSource::Base64(_) => {
                    return Err(Error::unsupported(
                        KIND,
                        "image",
                        "work notices take an uploaded media_id (`image: {key: ...}`) or a URL, not bytes",
                    ))
                }
            },
            Shape::Raw(v) => vec![v.clone()],
        })
    }

    /// batchSend `(msgKey, msgParam object)` pairs, one per part.
    fn robot_params(&self, msg: &Message) -> Result<Vec<(String, Value)>, Error> {
        let limit = MSG_PARAM_LIMIT;
        let split = |key: &str,
                     make: &dyn Fn(&str) -> Value,
                     text: &str|
         -> Result<Vec<(String, Value)>, Error> {
            Ok(fit_text(text, limit, 0, &self.overflow, make, key)?
                .iter()
                .map(|t| (key.to_string(), make(t)))
                .collect())
        };
        let markdown = |title: &str, text: &str| {
            split(
                "sampleMarkdown",
                &|t: &str| json!({"title": title, "text": t}),
                text,
            )
        };
        Ok(match shape(msg, KIND)? {
            Shape::Text(text) => split("sampleText", &|t: &str| json!({"content": t}), &text)?,
            Shape::Markdown { title, text } => markdown(&title, &text)?,
            Shape::Link {
                title,
                text,
                url,
                pic,
            } => {
                let make = |t: &str| json!({"title": title, "text": t, "picUrl": pic.unwrap_or(""), "messageUrl": url});
                let t = fit_text(
                    text,
                    limit,
                    0,
                    &truncating(&self.overflow),
                    make,
                    "sampleLink",
                )?;
                vec![("sampleLink".to_string(), make(&t[0]))]
            }
            Shape::Card {
                title,
                text,
                buttons,
            } if buttons.len() > 5 => markdown(&title, &buttons_markdown(text, buttons))?,
            Shape::Card {
                title,
                text,
                buttons,
            } => {
                let key = if buttons.len() == 1 {
                    "sampleActionCard".to_string()
                } else {
                    format!("sampleActionCard{}", buttons.len())
                };
                let make = |t: &str| robot_card(&title, t, buttons);
                let t = fit_text(text, limit, 0, &truncating(&self.overflow), make, &key)?;
                vec![(key, make(&t[0]))]
            }
            Shape::News(articles) => markdown(&msg.title_or_default(), &news_markdown(articles))?,
            Shape::Image { source, .. } => match source {
                ImageSource::Url(u) => vec![("sampleImageMsg".to_string(), json!({"photoURL": u}))],
                ImageSource::Key(_) | ImageSource::Base64(_) => {
                    return Err(Error::unsupported(
                        KIND,
                        "image",
                        "robot 1:1 messages take an image by URL (`image: {url: ...}`)",
                    ))
                }
            },
            Shape::Raw(v) => {
                let key = v.get("msgKey").and_then(Value::as_str).filter(|k| !k.is_empty()).ok_or_else(|| {
                    Error::InvalidMessage("`body.payload.msgKey` is missing: a raw robot message is `{msgKey, msgParam}`".into())
                })?;
                let param = match v.get("msgParam") {
                    Some(Value::String(s)) => serde_json::from_str(s).map_err(|e| {
                        Error::InvalidMessage(format!(
                            "`body.payload.msgParam` is a string but not JSON: {e}"
                        ))
                    })?,
                    Some(p @ Value::Object(_)) => p.clone(),
                    _ => {
                        return Err(Error::InvalidMessage(
                            "`body.payload.msgParam` must be an object or a JSON string".into(),
                        ))
                    }
                };
                vec![(key.to_string(), param)]
            }
        })
    }
}

/// Trim, drop empties and duplicates (keeping order); refuse ids that would
/// break the comma-joined `userid_list`.
fn clean_recipients(list: &[String], mode: AppMode) -> Result<Vec<String>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        if mode == AppMode::WorkNotice && r.contains(',') {
            return Err(format!(
                "userId `{r}` contains a comma; list each userId separately"
            ));
        }
        match (mode, r.strip_prefix(GROUP_PREFIX)) {
            (AppMode::WorkNotice, Some(_)) => {
                return Err(format!(
                    "`{r}`: work notices go to users; send to a group with `mode = \"robot\"`"
                ))
            }
            (AppMode::Robot, Some(cid)) if cid.trim().is_empty() => {
                return Err(format!(
                    "`{r}` names no group; write `{GROUP_PREFIX}cid...` with the group's openConversationId"
                ))
            }
            _ => {}
        }
        if seen.insert(r) {
            out.push(r.to_string());
        }
    }
    Ok(out)
}

fn work_notice_card(title: &str, text: &str, buttons: &[Button]) -> Value {
    if let [only] = buttons {
        json!({"msgtype": "action_card", "action_card": {
            "title": title, "markdown": text, "single_title": only.text, "single_url": only.url,
        }})
    } else {
        let orientation = if buttons.len() == 2 { "1" } else { "0" };
        let btns: Vec<Value> = buttons
            .iter()
            .map(|b| json!({"title": b.text, "action_url": b.url}))
            .collect();
        json!({"msgtype": "action_card", "action_card": {
            "title": title, "markdown": text, "btn_orientation": orientation, "btn_json_list": btns,
        }})
    }
}

/// `sampleActionCard` (one button) or `sampleActionCard2..5` (`actionTitleN`/`actionURLN`).
fn robot_card(title: &str, text: &str, buttons: &[Button]) -> Value {
    let mut p = Map::new();
    p.insert("title".into(), json!(title));
    p.insert("text".into(), json!(text));
    if let [only] = buttons {
        p.insert("singleTitle".into(), json!(only.text));
        p.insert("singleURL".into(), json!(only.url));
    } else {
        for (i, b) in buttons.iter().enumerate() {
            p.insert(format!("actionTitle{}", i + 1), json!(b.text));
            p.insert(format!("actionURL{}", i + 1), json!(b.url));
        }
    }
    Value::Object(p)
}

#[async_trait]
impl Destination for App {
    async fn token_state(&self) -> Option<crate::token::TokenState> {
        Some(
            self.shared
                .tokens
                .state_with_shared(&self.tokens.source().cache_key())
                .await,
        )
    }

    fn kind(&self) -> &'static str {
        KIND
    }
    fn platform(&self) -> Platform {
        Platform::Dingtalk
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn rate_limits(&self) -> Vec<Quota> {
        // DingTalk's per-app QPS limits are not published (60 QPS is reported);
        // stay well below.
        vec![Quota::per_second(20)]
    }
    fn dedups_retries(&self) -> bool {
        // Work notices: the same app, content and user are delivered once a day.
        self.mode == AppMode::WorkNotice
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let recipients = self.recipients_for(msg)?;
        let mut out = Vec::new();
        match self.mode {
            AppMode::WorkNotice => {
                let msgs = self.work_notice_msgs(msg)?;
                for batch in recipients.chunks(WORK_NOTICE_BATCH) {
                    for m in &msgs {
                        let mut p = Payload::new(json!({
                            "agent_id": self.agent_id,
                            "userid_list": batch.join(","),
                            "msg": m,
                        }));
                        p.recipients = batch.to_vec();
                        out.push(p);
                    }
                }
            }
            AppMode::Robot => {
                if let Some((template, id)) = self.draws_card(msg)? {
                    let params = card::card_params(msg);
                    for r in &recipients {
                        let space = match robot_target(r) {
                            RobotTarget::Group(cid) => CardSpace::Group(cid),
                            RobotTarget::User(u) => CardSpace::User(u),
                        };
                        let mut p = Payload::new(card::create_and_deliver_body(
                            template,
                            &card::out_track_id(id, 0, r),
                            self.card_route_key.as_deref(),
                            &self.robot_code,
                            space,
                            params.clone(),
                        ));
                        p.recipients = vec![r.clone()];
                        out.push(p);
                    }
                    return Ok(out);
                }
                let params = self.robot_params(msg)?;
                let (groups, users): (Vec<&String>, Vec<&String>) = recipients
                    .iter()
                    .partition(|r| matches!(robot_target(r), RobotTarget::Group(_)));
                for batch in users.chunks(BATCH_SEND_BATCH) {
                    for (key, param) in &params {
                        let mut p = Payload::new(json!({
                            "robotCode": self.robot_code,
                            "userIds": batch,
                            "msgKey": key,
                            // msgParam is a JSON *string*.
                            "msgParam": param.to_string(),
                        }));
                        p.recipients = batch.iter().map(|u| u.to_string()).collect();
                        out.push(p);
                    }
                }
                for group in groups {
                    let RobotTarget::Group(cid) = robot_target(group) else {
                        continue;
                    };
                    for (key, param) in &params {
                        let mut p = Payload::new(json!({
                            "robotCode": self.robot_code,
                            "openConversationId": cid,
                            "msgKey": key,
                            "msgParam": param.to_string(),
                        }));
                        p.recipients = vec![group.clone()];
                        out.push(p);
                    }
                }
            }
        }
        Ok(out)
    }

    async fn send(&self, payload: &Payload) -> Report {
        let call = RobotCall::of(&payload.body);
        let out_track_id = payload.body["outTrackId"].as_str().unwrap_or_default();
        self.exchange(
            |token| self.request(payload, token),
            |resp| match self.mode {
                AppMode::WorkNotice => codes::classify_work_notice(resp),
                AppMode::Robot => match call {
                    RobotCall::BatchSend => codes::classify_batch_send(resp, &payload.recipients),
                    RobotCall::GroupSend => codes::classify_group_send(resp),
                    RobotCall::Card => card::classify_create(resp, out_track_id),
                },
            },
        )
        .await
    }

    fn lifecycle(&self) -> Lifecycle {
        let recall = RecallMode::Within {
            window: recall::RECALL_WINDOW,
        };
        match (self.mode, &self.card_template_id) {
            // Work notices cannot be edited (status_bar/update changes only
            // an OA message's status bar): an update is a new notice.
            (AppMode::WorkNotice, _) => Lifecycle {
                update: UpdateMode::NewMessage,
                recall,
                card_actions: false,
                update_limits: Vec::new(),
                urgent: Vec::new(),
                urgent_scope: UrgentScope::Users,
                urgent_unsupported: Some(
                    "DING is sent by the app's robot: use a `dingtalk_app` with `mode = \"robot\"`"
                        .into(),
                ),
                urgent_limits: Vec::new(),
                urgent_max_users: Vec::new(),
            },
            (AppMode::Robot, None) => Lifecycle {
                update: UpdateMode::NewMessage,
                recall,
                card_actions: false,
                update_limits: Vec::new(),
                ..robot_ding()
            },
            // Card instances update in place; DingTalk documents no window.
            (AppMode::Robot, Some(_)) => Lifecycle {
                update: UpdateMode::InPlace { window: None },
                recall,
                card_actions: true,
                update_limits: Vec::new(),
                ..robot_ding()
            },
        }
    }

    async fn update(&self, sent: &SentPart, msg: &Message) -> Result<Report, Error> {
        let id = sent.platform_message_id.as_str();
        if self.mode != AppMode::Robot || !id.starts_with(card::OUT_TRACK_PREFIX) {
            return Err(Error::operation_unsupported(
                KIND,
                Operation::Update,
                "only interactive cards can be edited on DingTalk; work notices and plain robot messages cannot",
            ));
        }
        Ok(self
            .exchange(
                |token| self.update_request(id, msg, token),
                |resp| card::classify_update(resp, id),
            )
            .await)
    }

    /// A DING from the app's robot carrying `text`: one call whatever was
    /// sent before (`sent` is not needed). Robot mode only.
    async fn urgent(
        &self,
        _sent: &SentPart,
        kind: UrgentKind,
        users: &[String],
        text: &str,
    ) -> Result<Report, Error> {
        if let Err(why) = self.lifecycle().can_urgent(kind) {
            return Err(Error::operation_unsupported(KIND, Operation::Urgent, why));
        }
        Self::ding_users(kind, users)?;
        if text.trim().is_empty() {
            return Err(Error::InvalidMessage(
                "a DING carries text: the content is empty".into(),
            ));
        }
        Ok(self
            .exchange(
                |token| self.ding_request(kind, users, text, token),
                ding::classify,
            )
            .await)
    }

    async fn recall(&self, sent: &SentPart) -> Result<Report, Error> {
        let plan = self.recall_plan(sent)?;
        Ok(self
            .exchange(
                |token| plan.request(self, token),
                |resp| plan.classify(resp),
            )
            .await)
    }

    async fn read_status(
        &self,
        sent: &SentPart,
    ) -> Result<Option<crate::lifecycle::ReadStatus>, Report> {
        App::read_status(self, sent).await.map(Some)
    }
}

/// What a robot-mode app allows of urgent pushes: every DING kind, each a
/// message of its own (the other fields are filled by the caller).
fn robot_ding() -> Lifecycle {
    Lifecycle {
        urgent: UrgentKind::ALL.to_vec(),
        urgent_scope: UrgentScope::Users,
        urgent_unsupported: None,
        urgent_limits: ding::LIMITS.to_vec(),
        urgent_max_users: UrgentKind::ALL
            .iter()
            .map(|k| (*k, ding::max_receivers(*k)))
            .collect(),
        ..Lifecycle::send_only("")
    }
}

/// How one sent part is recalled.
#[derive(Debug)]
enum RecallPlan {
    WorkNotice(Value),
    Robot {
        path: &'static str,
        body: Value,
        key: String,
    },
}

impl RecallPlan {
    fn request(&self, app: &App, token: &Secret) -> HttpRequest {
        match self {
            RecallPlan::WorkNotice(body) => {
                HttpRequest::post_json(app.oapi_url(WORK_NOTICE_RECALL_PATH, token), body)
            }
            RecallPlan::Robot { path, body, .. } => app.v1_post(path, body, token),
        }
    }

    fn classify(&self, resp: &HttpResponse) -> Report {
        match self {
            RecallPlan::WorkNotice(_) => recall::classify_work_notice(resp),
            RecallPlan::Robot { key, .. } => recall::classify_robot(resp, key),
        }
    }
}

/// The prefix that marks a `mode = "robot"` recipient as a group chat the
/// robot is in (`open_conversation_id:cid...`); other recipients are userIds.
pub const GROUP_PREFIX: &str = "open_conversation_id:";

const WORK_NOTICE_SEND_PATH: &str = "/topapi/message/corpconversation/asyncsend_v2";
const WORK_NOTICE_RECALL_PATH: &str = "/topapi/message/corpconversation/recall";
const WORK_NOTICE_SEND_RESULT_PATH: &str = "/topapi/message/corpconversation/getsendresult";
const BATCH_SEND_PATH: &str = "/v1.0/robot/oToMessages/batchSend";
const GROUP_SEND_PATH: &str = "/v1.0/robot/groupMessages/send";
const CARD_CREATE_PATH: &str = "/v1.0/card/instances/createAndDeliver";
const CARD_INSTANCES_PATH: &str = "/v1.0/card/instances";
const OTO_RECALL_PATH: &str = "/v1.0/robot/otoMessages/batchRecall";
const GROUP_RECALL_PATH: &str = "/v1.0/robot/groupMessages/recall";
const ROBOT_READ_STATUS_PATH: &str = "/v1.0/robot/oToMessages/readStatus";
const GROUP_READ_QUERY_PATH: &str = "/v1.0/robot/groupMessages/query";

/// Where an app robot message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RobotTarget<'a> {
    User(&'a str),
    Group(&'a str),
}

fn robot_target(recipient: &str) -> RobotTarget<'_> {
    match recipient.strip_prefix(GROUP_PREFIX) {
        Some(cid) => RobotTarget::Group(cid),
        None => RobotTarget::User(recipient),
    }
}

/// Which robot API a rendered payload goes to, read off its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RobotCall {
    BatchSend,
    GroupSend,
    Card,
}

impl RobotCall {
    fn of(body: &Value) -> Self {
        if body.get("cardTemplateId").is_some() {
            RobotCall::Card
        } else if body.get("openConversationId").is_some() {
            RobotCall::GroupSend
        } else {
            RobotCall::BatchSend
        }
    }

    fn path(self) -> &'static str {
        match self {
            RobotCall::BatchSend => BATCH_SEND_PATH,
            RobotCall::GroupSend => GROUP_SEND_PATH,
            RobotCall::Card => CARD_CREATE_PATH,
        }
    }
}

/// A work notice's `task_id` from its platform message id.
fn task_id(id: &str) -> Result<i64, String> {
    id.trim().parse().map_err(|_| {
        format!("`{id}` is not a work notice task_id (a number); it cannot be recalled or queried")
    })
}

/// The `processQueryKey` that recalls a robot part: the send's own for a
/// plain message, the delivery's `carrierId` (kept as the update token) for a
/// card.
fn robot_message_key(sent: &SentPart) -> Result<&str, String> {
    if sent.platform_message_id.starts_with(card::OUT_TRACK_PREFIX) {
        sent.update_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| "DingTalk named no carrierId for this card's delivery, so it cannot be recalled; update it instead".to_string())
    } else {
        Ok(&sent.platform_message_id)
    }
}

fn non_blank(v: Option<String>, field: &str) -> Result<Option<String>, Error> {
    match v {
        Some(s) if s.trim().is_empty() => Err(config_err(format!(
            "`{field}` is empty; remove it or set a value"
        ))),
        other => Ok(other.map(|s| s.trim().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::OverflowMode;
    use crate::message::{Article, Body};
    use crate::platform::testing::resp;
    use std::collections::BTreeMap;

    fn build(cfg: Value) -> Result<Arc<dyn Destination>, Error> {
        let mut cfg = cfg;
        cfg["type"] = json!("dingtalk_app");
        Client::new().unwrap().build(&cfg)
    }

    fn app(mode: AppMode) -> App {
        let cfg: AppConfig = serde_json::from_value(json!({
            "app_key": "dingkey", "app_secret": "appsecret", "agent_id": 123456,
            "mode": if mode == AppMode::Robot { "robot" } else { "work_notice" },
            "recipients": ["manager1234"],
        }))
        .unwrap();
        App::new(&Client::new().unwrap(), cfg).unwrap()
    }

    fn one(mode: AppMode, msg: &Message) -> Value {
        let p = app(mode).render(msg).unwrap();
        assert_eq!(p.len(), 1);
        p[0].body.clone()
    }

    fn card(n: usize) -> Message {
        Message::new(Body::Card {
            text: "### Incident".into(),
            buttons: (1..=n)
                .map(|i| Button {
                    text: format!("B{i}"),
                    url: format!("https://x.example.com/{i}"),
                })
                .collect(),
            theme: None,
        })
        .with_title("Incident")
    }

    #[test]
    fn requests_carry_the_token_where_each_api_wants_it() {
        let tok = Secret::new("tok-1");
        let wn = app(AppMode::WorkNotice);
        let p = wn.render(&Message::text("hi")).unwrap();
        let req = wn.request(&p[0], &tok);
        assert_eq!(
            req.url.as_str(),
            "https://oapi.dingtalk.com/topapi/message/corpconversation/asyncsend_v2?access_token=tok-1"
        );
        let rb = app(AppMode::Robot);
        let p = rb.render(&Message::text("hi")).unwrap();
        let req = rb.request(&p[0], &tok);
        assert_eq!(
            req.url.as_str(),
            "https://api.dingtalk.com/v1.0/robot/oToMessages/batchSend"
        );
        let h = req
            .headers
            .iter()
            .find(|(k, _)| k == "x-acs-dingtalk-access-token")
            .unwrap();
        assert_eq!(h.1.to_str().unwrap(), "tok-1");
    }

    #[test]
    fn token_requests() {
        let v1 = V1TokenSource {
            api: Url::parse("https://api.dingtalk.com").unwrap(),
            app_key: "dingkey".into(),
            app_secret: "s3cret".into(),
        };
        let req = v1.request();
        assert_eq!(
            req.url.as_str(),
            "https://api.dingtalk.com/v1.0/oauth2/accessToken"
        );
        insta::assert_json_snapshot!(req.json_body().unwrap(), @r#####"
        {
          "appKey": "dingkey",
          "appSecret": "s3cret"
        }
        "#####);
        let legacy = LegacyTokenSource {
            oapi: Url::parse("https://oapi.dingtalk.com").unwrap(),
            app_key: "dingkey".into(),
            app_secret: "s3cret".into(),
        };
        let req = legacy.request();
        assert_eq!(req.method, reqwest::Method::GET);
        assert_eq!(
            req.url.as_str(),
            "https://oapi.dingtalk.com/gettoken?appkey=dingkey&appsecret=s3cret"
        );
        assert_eq!(v1.cache_key(), legacy.cache_key());
        assert!(
            v1.cache_key().starts_with("dingtalk:dingkey:") && !v1.cache_key().contains("s3cret")
        );
    }

    #[test]
    fn a_wrong_legacy_secret_is_explained_not_unknown() {
        let r = parse_legacy_token(&resp(
            200,
            r#"{"errcode":40089,"errmsg":"不合法的corpid或corpsecret"}"#,
        ))
        .unwrap_err();
        assert_eq!(r.outcome, Outcome::Permanent);
        assert_eq!(r.code, Some(crate::Code::Int(40089)));
        let hint = r.hint.unwrap();
        assert!(!hint.contains("unknown"), "{hint}");
        assert!(
            hint.contains("AppSecret") && hint.contains("`app_secret`"),
            "{hint}"
        );
    }

    #[test]
    fn token_answers() {
        let t = parse_v1_token(&resp(200, r#"{"accessToken":"abc","expireIn":7200}"#)).unwrap();
        assert_eq!(
            (t.value.expose(), t.expires_in),
            ("abc", Duration::from_secs(7200))
        );
        let t = parse_legacy_token(&resp(
            200,
            r#"{"errcode":0,"errmsg":"ok","access_token":"def","expires_in":600}"#,
        ))
        .unwrap();
        assert_eq!(
            (t.value.expose(), t.expires_in),
            ("def", Duration::from_secs(600))
        );
        // A rejected credential is permanent, not "refresh the token".
        let r = parse_v1_token(&resp(
            400,
            r#"{"code":"InvalidAuthentication","message":"bad"}"#,
        ))
        .unwrap_err();
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.message.starts_with("fetching the access token"));
        assert!(r.hint.unwrap().contains("`app_secret`"));
        let r = parse_legacy_token(&resp(
            200,
            r#"{"errcode":40089,"errmsg":"不合法的corpid或corpsecret"}"#,
        ))
        .unwrap_err();
        assert_eq!(r.outcome, Outcome::Permanent);
        let r =
            parse_legacy_token(&resp(200, r#"{"errcode":-1,"errmsg":"系统繁忙"}"#)).unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = parse_v1_token(&resp(503, "busy")).unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
        let r = parse_v1_token(&resp(200, r#"{"expireIn":7200}"#)).unwrap_err();
        assert_eq!(r.outcome, Outcome::Retry { after: None });
    }

    #[test]
    fn config_validation() {
        let cases = [
            (json!({"app_secret": "s"}), "missing field `app_key`"),
            (
                json!({"app_key": "", "app_secret": "s", "agent_id": 1}),
                "`app_key` is empty",
            ),
            (
                json!({"app_key": "k", "app_secret": " ", "agent_id": 1}),
                "`app_secret` is empty",
            ),
            (
                json!({"app_key": "k", "app_secret": "s"}),
                "`agent_id` is required",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": "12x"}),
                "`agent_id` must be a number",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "mode": "group"}),
                "unknown variant `group`",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "token_api": "v2"}),
                "unknown variant `v2`",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "mode": "robot", "robot_code": ""}),
                "`robot_code` is empty",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "base_url": "nope"}),
                "`base_url`",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "recipients": ["a,b"]}),
                "`recipients`",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "corp_id": "x"}),
                "unknown field `corp_id`",
            ),
        ];
        for (cfg, needle) in cases {
            let err = build(cfg.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{cfg}: {err}");
            assert!(err.contains("dingtalk_app"), "{err}");
        }
        let ok = build(json!({"app_key": "k", "app_secret": "s", "agent_id": "42"})).unwrap();
        assert_eq!(ok.id(), "dingtalk_app:k:work_notice");
        assert!(ok.dedups_retries());
        let robot = build(json!({"app_key": "k", "app_secret": "s", "mode": "robot"})).unwrap();
        assert_eq!(robot.id(), "dingtalk_app:k:robot");
        assert!(!robot.dedups_retries());
    }

    #[test]
    fn base_url_serves_both_hosts_unless_api_base_url_is_set() {
        let cfg = |extra: Value| {
            let mut c =
                json!({"app_key": "k", "app_secret": "s", "mode": "robot", "recipients": ["u"]});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            App::new(&Client::new().unwrap(), serde_json::from_value(c).unwrap()).unwrap()
        };
        let tok = Secret::new("t");
        let a = cfg(json!({"base_url": "http://127.0.0.1:9000"}));
        let p = a.render(&Message::text("x")).unwrap();
        assert_eq!(
            a.request(&p[0], &tok).url.as_str(),
            "http://127.0.0.1:9000/v1.0/robot/oToMessages/batchSend"
        );
        let b = cfg(
            json!({"base_url": "http://127.0.0.1:9000", "api_base_url": "http://127.0.0.1:9001"}),
        );
        assert_eq!(
            b.request(&p[0], &tok).url.as_str(),
            "http://127.0.0.1:9001/v1.0/robot/oToMessages/batchSend"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let dbg = format!("{:?}", app(AppMode::Robot));
        assert!(!dbg.contains("appsecret"), "{dbg}");
    }

    #[test]
    fn work_notice_text() {
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &Message::text("hello").with_title("Note")), @r#####"
        {
          "agent_id": 123456,
          "userid_list": "manager1234",
          "msg": {
            "msgtype": "text",
            "text": {
              "content": "Note\nhello"
            }
          }
        }
        "#####);
    }

    #[test]
    fn work_notice_markdown_link_and_image() {
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &Message::markdown("T", "**b**"))["msg"], @r#####"
        {
          "msgtype": "markdown",
          "markdown": {
            "title": "T",
            "text": "**b**"
          }
        }
        "#####);
        let link = Message::new(Body::Link {
            text: "t".into(),
            url: "https://u.example.com".into(),
            pic_url: Some("https://p.example.com".into()),
        })
        .with_title("L");
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &link)["msg"], @r#####"
        {
          "msgtype": "link",
          "link": {
            "title": "L",
            "text": "t",
            "picUrl": "https://p.example.com",
            "messageUrl": "https://u.example.com"
          }
        }
        "#####);
        let img = Message::new(Body::Image {
            image: ImageSource::Key("@lADOmedia".into()),
        });
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &img)["msg"], @r#####"
        {
          "msgtype": "image",
          "image": {
            "media_id": "@lADOmedia"
          }
        }
        "#####);
        let bytes = Message::new(Body::Image {
            image: ImageSource::Base64("AAAA".into()),
        });
        assert!(matches!(
            app(AppMode::WorkNotice).render(&bytes),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn work_notice_action_cards() {
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &card(1))["msg"], @r#####"
        {
          "msgtype": "action_card",
          "action_card": {
            "title": "Incident",
            "markdown": "### Incident",
            "single_title": "B1",
            "single_url": "https://x.example.com/1"
          }
        }
        "#####);
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &card(2))["msg"], @r#####"
        {
          "msgtype": "action_card",
          "action_card": {
            "title": "Incident",
            "markdown": "### Incident",
            "btn_orientation": "1",
            "btn_json_list": [
              {
                "title": "B1",
                "action_url": "https://x.example.com/1"
              },
              {
                "title": "B2",
                "action_url": "https://x.example.com/2"
              }
            ]
          }
        }
        "#####);
    }

    #[test]
    fn news_becomes_a_markdown_list() {
        let msg = Message::new(Body::News {
            articles: vec![
                Article {
                    title: "A".into(),
                    url: "https://a.example.com".into(),
                    description: Some("about a".into()),
                    pic_url: None,
                },
                Article {
                    title: "B".into(),
                    url: "https://b.example.com".into(),
                    description: None,
                    pic_url: None,
                },
            ],
        });
        insta::assert_json_snapshot!(one(AppMode::WorkNotice, &msg)["msg"], @r#####"
        {
          "msgtype": "markdown",
          "markdown": {
            "title": "A",
            "text": "- [A](https://a.example.com)  \n  about a\n- [B](https://b.example.com)"
          }
        }
        "#####);
        let b = one(AppMode::Robot, &msg);
        assert_eq!(b["msgKey"], "sampleMarkdown");
    }

    #[test]
    fn robot_text() {
        insta::assert_json_snapshot!(one(AppMode::Robot, &Message::text("hello \"you\"")), @r#####"
        {
          "robotCode": "dingkey",
          "userIds": [
            "manager1234"
          ],
          "msgKey": "sampleText",
          "msgParam": "{\"content\":\"hello \\\"you\\\"\"}"
        }
        "#####);
    }

    fn param(b: &Value) -> Value {
        serde_json::from_str(b["msgParam"].as_str().expect("msgParam is a string")).unwrap()
    }

    #[test]
    fn robot_message_kinds() {
        let b = one(AppMode::Robot, &Message::markdown("T", "**b**"));
        assert_eq!(b["msgKey"], "sampleMarkdown");
        insta::assert_json_snapshot!(param(&b), @r#####"
        {
          "title": "T",
          "text": "**b**"
        }
        "#####);
        let link = Message::new(Body::Link {
            text: "t".into(),
            url: "https://u.example.com".into(),
            pic_url: None,
        })
        .with_title("L");
        let b = one(AppMode::Robot, &link);
        assert_eq!(b["msgKey"], "sampleLink");
        insta::assert_json_snapshot!(param(&b), @r#####"
        {
          "title": "L",
          "text": "t",
          "picUrl": "",
          "messageUrl": "https://u.example.com"
        }
        "#####);
        let b = one(AppMode::Robot, &card(1));
        assert_eq!(b["msgKey"], "sampleActionCard");
        insta::assert_json_snapshot!(param(&b), @r#####"
        {
          "title": "Incident",
          "text": "### Incident",
          "singleTitle": "B1",
          "singleURL": "https://x.example.com/1"
        }
        "#####);
        let b = one(AppMode::Robot, &card(3));
        assert_eq!(b["msgKey"], "sampleActionCard3");
        insta::assert_json_snapshot!(param(&b), @r#####"
        {
          "title": "Incident",
          "text": "### Incident",
          "actionTitle1": "B1",
          "actionURL1": "https://x.example.com/1",
          "actionTitle2": "B2",
          "actionURL2": "https://x.example.com/2",
          "actionTitle3": "B3",
          "actionURL3": "https://x.example.com/3"
        }
        "#####);
        let b = one(AppMode::Robot, &card(6));
        assert_eq!(b["msgKey"], "sampleMarkdown");
        assert!(param(&b)["text"]
            .as_str()
            .unwrap()
            .ends_with("[B6](https://x.example.com/6)"));
        let img = Message::new(Body::Image {
            image: ImageSource::Url("https://i.example.com/a.png".into()),
        });
        let b = one(AppMode::Robot, &img);
        assert_eq!(b["msgKey"], "sampleImageMsg");
        assert_eq!(
            param(&b),
            json!({"photoURL": "https://i.example.com/a.png"})
        );
        let key = Message::new(Body::Image {
            image: ImageSource::Key("k".into()),
        });
        assert!(matches!(
            app(AppMode::Robot).render(&key),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn template_and_raw() {
        let mut data = BTreeMap::new();
        data.insert("host".to_string(), "db-1".to_string());
        let msg = Message::new(Body::Template {
            template_id: "alert".into(),
            data,
            url: None,
        });
        assert_eq!(
            one(AppMode::WorkNotice, &msg)["msg"]["text"]["content"],
            "alert\nhost: db-1"
        );
        assert_eq!(
            param(&one(AppMode::Robot, &msg)),
            json!({"content": "alert\nhost: db-1"})
        );

        let raw = Message::new(Body::Raw {
            platform: None,
            payload: json!({"msgtype": "oa", "oa": {"message_url": "u"}}),
        });
        assert_eq!(
            one(AppMode::WorkNotice, &raw)["msg"],
            json!({"msgtype": "oa", "oa": {"message_url": "u"}})
        );
        let raw = Message::new(Body::Raw {
            platform: None,
            payload: json!({"msgKey": "sampleAudio", "msgParam": {"mediaId": "m", "duration": "3"}}),
        });
        let b = one(AppMode::Robot, &raw);
        assert_eq!(b["msgKey"], "sampleAudio");
        assert_eq!(param(&b), json!({"mediaId": "m", "duration": "3"}));
        let raw = Message::new(Body::Raw {
            platform: None,
            payload: json!({"msgParam": "{}"}),
        });
        assert!(
            matches!(app(AppMode::Robot).render(&raw), Err(Error::InvalidMessage(m)) if m.contains("msgKey"))
        );
        let other = Message::new(Body::Raw {
            platform: Some(Platform::Wecom),
            payload: json!({}),
        });
        assert!(matches!(
            app(AppMode::Robot).render(&other),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn recipients_are_batched_per_api_limits() {
        let users: Vec<String> = (0..250).map(|i| format!("u{i}")).collect();
        let msg = Message::text("x").with_recipients(users.clone());
        let wn = app(AppMode::WorkNotice).render(&msg).unwrap();
        assert_eq!(
            wn.iter().map(|p| p.recipients.len()).collect::<Vec<_>>(),
            vec![100, 100, 50]
        );
        assert_eq!(wn[2].body["userid_list"], users[200..].join(","));
        let rb = app(AppMode::Robot).render(&msg).unwrap();
        assert_eq!(rb.len(), 13);
        assert!(rb
            .iter()
            .all(|p| p.body["userIds"].as_array().unwrap().len() <= 20));
        let all: Vec<String> = rb.iter().flat_map(|p| p.recipients.clone()).collect();
        assert_eq!(all, users);
        // Duplicates and blanks are dropped; the config's default applies when none are given.
        let dup = Message::text("x").with_recipients(vec![
            "a".into(),
            " a ".into(),
            "".into(),
            "b".into(),
        ]);
        assert_eq!(
            app(AppMode::Robot).render(&dup).unwrap()[0].recipients,
            vec!["a", "b"]
        );
        assert_eq!(
            app(AppMode::Robot).render(&Message::text("x")).unwrap()[0].recipients,
            vec!["manager1234"]
        );
        let none = build(json!({"app_key": "k", "app_secret": "s", "mode": "robot"})).unwrap();
        assert!(
            matches!(none.render(&Message::text("x")), Err(Error::InvalidMessage(m)) if m.contains("`recipients`"))
        );
    }

    #[test]
    fn work_notice_msg_stays_within_2048_bytes() {
        let text = "中文告警".repeat(400); // 4,800 bytes
        let parts = app(AppMode::WorkNotice)
            .render(&Message::text(&text))
            .unwrap();
        assert_eq!(parts.len(), 3);
        for p in &parts {
            let len = serde_json::to_vec(&p.body["msg"]).unwrap().len();
            assert!(len <= WORK_NOTICE_MSG_LIMIT, "{len}");
        }
        assert!(parts[2].body["msg"]["text"]["content"]
            .as_str()
            .unwrap()
            .ends_with(" (3/3)"));
        // Split parts go to the same users in order.
        assert!(parts.iter().all(|p| p.recipients == vec!["manager1234"]));

        let mut trunc = app(AppMode::WorkNotice);
        trunc.overflow = Overflow {
            mode: OverflowMode::Truncate,
            ..Overflow::default()
        };
        let parts = trunc.render(&Message::text(&text)).unwrap();
        assert_eq!(parts.len(), 1);
        let len = serde_json::to_vec(&parts[0].body["msg"]).unwrap().len();
        assert!(
            len <= WORK_NOTICE_MSG_LIMIT && len > WORK_NOTICE_MSG_LIMIT - 10,
            "{len}"
        );
    }

    #[test]
    fn robot_msg_param_stays_within_its_limit() {
        let text = "告警\n".repeat(6_000); // 30,000 bytes, escaped newlines count twice
        let parts = app(AppMode::Robot).render(&Message::text(&text)).unwrap();
        assert!(parts.len() >= 3);
        for p in &parts {
            let len = p.body["msgParam"].as_str().unwrap().len();
            assert!(len <= MSG_PARAM_LIMIT, "{len}");
        }
    }

    fn card_app(extra: Value) -> App {
        let mut c = json!({
            "app_key": "dingkey", "app_secret": "s", "mode": "robot",
            "recipients": ["manager1234", "open_conversation_id:cidGroup=="],
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        App::new(&Client::new().unwrap(), serde_json::from_value(c).unwrap()).unwrap()
    }

    fn alert() -> Message {
        Message::markdown("DiskFull", "**disk full**")
            .with_id("m-1")
            .with_actions(vec![crate::lifecycle::Action {
                id: "ack".into(),
                text: "Acknowledge".into(),
                style: Default::default(),
            }])
    }

    #[test]
    fn actions_need_a_card_template() {
        let plain = card_app(json!({}));
        let err = plain.render(&alert()).unwrap_err().to_string();
        assert!(err.contains("`card_template_id`"), "{err}");
        assert!(!plain.lifecycle().card_actions);
        // Without an id a click could not name the message: a plain message.
        let mut no_id = alert();
        no_id.id = None;
        assert_eq!(
            plain.render(&no_id).unwrap()[0].body["msgKey"],
            "sampleMarkdown"
        );
        let cases = [
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "card_template_id": "t"}),
                "needs `mode = \"robot\"`",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "mode": "robot", "card_callback_route_key": "r"}),
                "`card_template_id` is not",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "mode": "robot", "card_template_id": " "}),
                "`card_template_id` is empty",
            ),
            (
                json!({"app_key": "k", "app_secret": "s", "agent_id": 1, "recipients": ["open_conversation_id:cid1"]}),
                "work notices go to users",
            ),
        ];
        for (cfg, needle) in cases {
            let err = build(cfg.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{cfg}: {err}");
        }
    }

    #[test]
    fn messages_with_actions_become_one_card_per_recipient_with_stable_ids() {
        let app = card_app(
            json!({"card_template_id": "tpl.schema", "card_callback_route_key": "imrelay"}),
        );
        assert!(app.lifecycle().card_actions);
        let parts = app.render(&alert()).unwrap();
        assert_eq!(parts.len(), 2);
        let tok = Secret::new("t");
        for p in &parts {
            let req = app.request(p, &tok);
            assert_eq!(
                req.url.as_str(),
                "https://api.dingtalk.com/v1.0/card/instances/createAndDeliver"
            );
            assert_eq!(p.body["cardTemplateId"], "tpl.schema");
            assert_eq!(p.body["callbackType"], "HTTP");
            assert_eq!(p.body["callbackRouteKey"], "imrelay");
        }
        assert_eq!(
            parts[0].body["openSpaceId"],
            "dtv1.card//IM_ROBOT.manager1234"
        );
        assert_eq!(
            parts[1].body["openSpaceId"],
            "dtv1.card//IM_GROUP.cidGroup=="
        );
        assert_eq!(
            parts[1].body["imGroupOpenDeliverModel"]["robotCode"],
            "dingkey"
        );
        // A retry renders the same cards.
        let again = app.render(&alert()).unwrap();
        assert_eq!(parts[0].body["outTrackId"], again[0].body["outTrackId"]);
        assert_ne!(parts[0].body["outTrackId"], parts[1].body["outTrackId"]);
        let params = &parts[0].body["cardData"]["cardParamMap"];
        assert_eq!(params["title"], "DiskFull");
        assert!(params["buttons"]
            .as_str()
            .unwrap()
            .contains("\"imrelay_action\":\"ack\""));
    }

    #[test]
    fn plain_robot_messages_go_to_users_and_groups() {
        let parts = card_app(json!({})).render(&Message::text("hi")).unwrap();
        assert_eq!(parts.len(), 2);
        let tok = Secret::new("t");
        let app = card_app(json!({}));
        assert_eq!(
            app.request(&parts[0], &tok).url.path(),
            "/v1.0/robot/oToMessages/batchSend"
        );
        assert_eq!(
            app.request(&parts[1], &tok).url.path(),
            "/v1.0/robot/groupMessages/send"
        );
        assert_eq!(parts[1].body["openConversationId"], "cidGroup==");
        assert_eq!(parts[1].recipients, vec!["open_conversation_id:cidGroup=="]);
    }

    fn part(id: &str, recipient: &str, token: Option<&str>) -> SentPart {
        SentPart {
            platform_message_id: id.into(),
            update_token: token.map(str::to_string),
            sent_at_ms: 0,
            recipients: vec![recipient.into()],
        }
    }

    #[tokio::test]
    async fn ding_goes_from_the_robot_and_work_notices_say_why_not() {
        let tok = Secret::new("t");
        let app = card_app(json!({}));
        let req = app.ding_request(UrgentKind::Sms, &["manager1234".into()], "disk full", &tok);
        assert_eq!(req.url.path(), "/v1.0/robot/ding/send");
        assert_eq!(
            req.json_body().unwrap(),
            json!({"robotCode": "dingkey", "remindType": 2, "receiverUserIdList": ["manager1234"], "content": "disk full"})
        );
        let l = app.lifecycle();
        assert_eq!(l.urgent, UrgentKind::ALL.to_vec());
        assert_eq!(l.urgent_scope, UrgentScope::Users);
        assert_eq!(l.urgent_max_users(UrgentKind::Phone), Some(20));
        assert_eq!(l.urgent_max_users(UrgentKind::App), Some(200));
        let too_many: Vec<String> = (0..21).map(|i| format!("u{i}")).collect();
        let sent = part("pqk-1", "manager1234", None);
        let err = app
            .urgent(&sent, UrgentKind::Phone, &too_many, "x")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("at most 20"), "{err}");
        let group = app
            .urgent(
                &sent,
                UrgentKind::App,
                &["open_conversation_id:cid".into()],
                "x",
            )
            .await
            .unwrap_err();
        assert!(group.to_string().contains("not to groups"), "{group}");
        let notice = App::new(
            &Client::new().unwrap(),
            serde_json::from_value(json!({"app_key": "k", "app_secret": "s", "agent_id": 1}))
                .unwrap(),
        )
        .unwrap();
        let refused = notice
            .urgent(&sent, UrgentKind::App, &["manager1234".into()], "x")
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::OperationUnsupported { .. }));
        assert!(
            refused.to_string().contains("mode = \"robot\""),
            "{refused}"
        );
    }

    #[test]
    fn recall_requests_per_kind_of_part() {
        let tok = Secret::new("t");
        let app = card_app(json!({"card_template_id": "tpl"}));
        let oto = app
            .recall_request(&part("pqk-1", "manager1234", None), &tok)
            .unwrap();
        assert_eq!(oto.url.path(), "/v1.0/robot/otoMessages/batchRecall");
        assert_eq!(
            oto.json_body().unwrap(),
            json!({"robotCode": "dingkey", "processQueryKeys": ["pqk-1"]})
        );
        let group = app
            .recall_request(&part("pqk-2", "open_conversation_id:cidG", None), &tok)
            .unwrap();
        assert_eq!(group.url.path(), "/v1.0/robot/groupMessages/recall");
        assert_eq!(
            group.json_body().unwrap(),
            json!({"openConversationId": "cidG", "robotCode": "dingkey", "processQueryKeys": ["pqk-2"]})
        );
        // A card is recalled by its delivery's carrierId.
        let card = app
            .recall_request(
                &part(
                    "imrelay_card_abc",
                    "open_conversation_id:cidG",
                    Some("carrier-9"),
                ),
                &tok,
            )
            .unwrap();
        assert_eq!(
            card.json_body().unwrap()["processQueryKeys"],
            json!(["carrier-9"])
        );
        assert!(matches!(
            app.recall_request(&part("imrelay_card_abc", "manager1234", None), &tok),
            Err(Error::OperationUnsupported { .. })
        ));
        let wn = app_with(AppMode::WorkNotice)
            .recall_request(&part("256000000007", "manager1234", None), &tok)
            .unwrap();
        assert_eq!(
            wn.url.as_str(),
            "https://oapi.dingtalk.com/topapi/message/corpconversation/recall?access_token=t"
        );
        assert_eq!(
            wn.json_body().unwrap(),
            json!({"agent_id": 123456, "msg_task_id": 256000000007i64})
        );
    }

    fn app_with(mode: AppMode) -> App {
        app(mode)
    }

    #[tokio::test]
    async fn only_cards_update_in_place() {
        let wn = app(AppMode::WorkNotice);
        assert_eq!(wn.lifecycle().update, UpdateMode::NewMessage);
        assert!(matches!(
            wn.update(&part("1", "u", None), &Message::text("x")).await,
            Err(Error::OperationUnsupported { .. })
        ));
        let rb = card_app(json!({"card_template_id": "tpl"}));
        assert!(matches!(
            rb.update(&part("pqk-1", "u", None), &Message::text("x"))
                .await,
            Err(Error::OperationUnsupported { .. })
        ));
        let req = rb.update_request("imrelay_card_abc", &alert(), &Secret::new("t"));
        assert_eq!(req.method, reqwest::Method::PUT);
        assert_eq!(req.url.path(), "/v1.0/card/instances");
        let body = req.json_body().unwrap();
        assert_eq!(body["outTrackId"], "imrelay_card_abc");
        assert_eq!(body["cardUpdateOptions"]["updateCardDataByKey"], true);
        assert_eq!(body["cardData"]["cardParamMap"]["title"], "DiskFull");
    }
}
