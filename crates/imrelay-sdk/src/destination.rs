//! The [`Destination`] trait every platform implements, the [`Client`] that
//! builds destinations and shares one HTTP client and token cache among them,
//! and the registry that maps a config `type` to a platform module.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::http::{
    dns, HttpClient, HttpOptions, Proxy, Timeouts, DEFAULT_POOL_MAX_IDLE_PER_HOST, MAX_ANSWER_BYTES,
};
use crate::lifecycle::{Lifecycle, Operation, RecallMode, SentPart, UrgentKind};
use crate::message::{Message, Platform};
use crate::outcome::Report;
use crate::pace::Pacer;
use crate::token::TokenManager;
use crate::Error;

/// One request's worth of rendered, platform-native content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The platform's JSON body, before signing (signatures and tokens are added
    /// at send time, because they depend on the time and the current token).
    pub body: serde_json::Value,
    /// The recipients this request addresses (app destinations), for
    /// per-recipient results. Empty for robots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// The platform dedup key carried in the body (Feishu `uuid`, WeChat
    /// `client_msg_id`), identical on every retry of the same message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
}

impl Payload {
    pub fn new(body: serde_json::Value) -> Self {
        Payload {
            body,
            recipients: Vec::new(),
            dedup_key: None,
        }
    }
}

/// One rate-limit rule: at most `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub count: u32,
    #[serde(with = "secs")]
    pub per: Duration,
}

impl Quota {
    pub const fn per_minute(count: u32) -> Self {
        Quota {
            count,
            per: Duration::from_secs(60),
        }
    }
    pub const fn per_second(count: u32) -> Self {
        Quota {
            count,
            per: Duration::from_secs(1),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}

/// A place messages go: one robot, one app, one webhook.
///
/// Rendering is pure (snapshot-testable); `send` sends one payload once,
/// refreshing the access token once if the platform rejects it, and classifies
/// the answer. Retry policy belongs to the caller.
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    /// The registry name of the destination type, e.g. `dingtalk_robot`.
    fn kind(&self) -> &'static str;

    fn platform(&self) -> Platform;

    /// A stable identity without secrets (`dingtalk_robot:1a2b3c4d`), for rate
    /// limiters, breakers, metrics and logs.
    fn id(&self) -> &str;

    /// The platform's documented limits for this destination. Sending faster
    /// than this draws a penalty from the platform.
    fn rate_limits(&self) -> Vec<Quota>;

    /// Limits the platform keeps for each recipient (user or chat) of this
    /// destination on top of [`rate_limits`](Destination::rate_limits), e.g.
    /// Feishu's 5 messages a second to one user. None by default.
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        Vec::new()
    }

    /// The platform-wide name of `recipient`'s quota when every destination
    /// sending to it shares that quota (a Feishu group's 5 a second is
    /// shared by all the bots in it), the same from each destination; `None`
    /// (the default): each destination has a quota of its own for it.
    fn shared_recipient_quota(&self, recipient: &str) -> Option<String> {
        let _ = recipient;
        None
    }

    /// Whether the platform deduplicates a retried payload (so a retry after an
    /// unknown outcome cannot deliver twice).
    fn dedups_retries(&self) -> bool {
        false
    }

    /// Render a message into one or more requests (several when the text is
    /// split, or when recipients are spread over several requests).
    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error>;

    /// Send one payload once and classify the answer.
    async fn send(&self, payload: &Payload) -> Report;

    /// What is cached of the destination's access token (by this process,
    /// else by the shared cache of several instances), for one that uses one
    /// (app destinations); `None` for the others.
    async fn token_state(&self) -> Option<crate::token::TokenState> {
        None
    }

    /// What the platform allows after a send: update in place, recall,
    /// clickable actions. Send and forget unless the destination says more.
    fn lifecycle(&self) -> Lifecycle {
        Lifecycle::send_only(format!("{} has no recall API", self.kind()))
    }

    /// Replace the content of one sent part with `msg`, in place, once.
    /// `Err(Error::OperationUnsupported)` when the platform cannot (the caller
    /// then sends `msg` as a new message); a platform refusal (past its
    /// window, message gone) is a [`Report`] like any send's.
    async fn update(&self, sent: &SentPart, msg: &Message) -> Result<Report, Error> {
        let _ = (sent, msg);
        Err(Error::operation_unsupported(
            self.kind(),
            Operation::Update,
            "the platform cannot edit a sent message",
        ))
    }

    /// Who has read one sent part, where the platform tells (DingTalk app
    /// messages); `Ok(None)` where it does not.
    async fn read_status(
        &self,
        sent: &SentPart,
    ) -> Result<Option<crate::lifecycle::ReadStatus>, Report> {
        let _ = sent;
        Ok(None)
    }

    /// Take one sent part back, once. `Err(Error::OperationUnsupported)` when
    /// the platform has no recall for this destination.
    async fn recall(&self, sent: &SentPart) -> Result<Report, Error> {
        let _ = sent;
        let reason = match self.lifecycle().recall {
            RecallMode::Unsupported { reason } => reason,
            RecallMode::Within { .. } => "recall is not implemented for this destination".into(),
        };
        Err(Error::operation_unsupported(
            self.kind(),
            Operation::Recall,
            reason,
        ))
    }

    /// Ask the platform to push `kind` urgently to `users` about one sent
    /// part, once (`text` is what platforms whose push is a message of its
    /// own, DingTalk's DING, show). Users the platform would not reach come
    /// back in [`Report::failed_recipients`].
    /// `Err(Error::OperationUnsupported)` when the destination has no such
    /// push ([`Lifecycle::can_urgent`] says why).
    async fn urgent(
        &self,
        sent: &SentPart,
        kind: UrgentKind,
        users: &[String],
        text: &str,
    ) -> Result<Report, Error> {
        let _ = (sent, users, text);
        let reason = self
            .lifecycle()
            .can_urgent(kind)
            .err()
            .unwrap_or_else(|| "urgent pushes are not implemented for this destination".into());
        Err(Error::operation_unsupported(
            self.kind(),
            Operation::Urgent,
            reason,
        ))
    }
}

/// Render and send every part of `msg`, stopping at the first part that is not
/// delivered. Returns the reports of the parts sent.
///
/// The parts are paced within the destination's quotas ([`Pacer`]): eight
/// parts to a bot that takes five a second go out over a second rather than
/// drawing a rate-limit refusal on the sixth. Earlier messages are not
/// counted; pacing across messages is the caller's (the gateway's) business.
pub async fn deliver(dest: &dyn Destination, msg: &Message) -> Result<Vec<Report>, Error> {
    let mut msg = msg.clone();
    msg.mentions = msg.mentions.for_platform(dest.platform());
    let payloads = dest.render(&msg)?;
    let mut reports = Vec::with_capacity(payloads.len());
    let mut pacer = Pacer::new(dest.rate_limits(), dest.recipient_rate_limits());
    for p in &payloads {
        pacer.ready(&p.recipients).await;
        let r = dest.send(p).await;
        pacer.record(&p.recipients, tokio::time::Instant::now());
        let stop = !r.outcome.is_delivered();
        reports.push(r);
        if stop {
            break;
        }
    }
    Ok(reports)
}

/// Options for a [`Client`].
#[derive(Clone)]
pub struct ClientOptions {
    pub timeouts: Timeouts,
    /// Wall clock for request signatures.
    pub clock: Arc<dyn Clock>,
    /// Idle connections kept open per host (default
    /// [`DEFAULT_POOL_MAX_IDLE_PER_HOST`]). Match it to the number of sends
    /// that run at once against one host, or a burst opens a new connection
    /// (and TLS handshake) for the sends beyond it.
    pub pool_max_idle_per_host: usize,
    /// The most bytes read of one answer (default [`MAX_ANSWER_BYTES`]); a
    /// longer answer is not read further and a platform's is reported as a
    /// transient failure.
    pub max_answer_bytes: usize,
    /// Resolves host names to the addresses connected to (the system resolver
    /// when `None`); see [`HttpOptions::resolver`].
    pub resolver: Option<Arc<dyn dns::Resolve>>,
    /// Send requests through this proxy; see [`HttpOptions::proxy`].
    pub proxy: Option<Proxy>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeouts: Timeouts::default(),
            clock: Arc::new(SystemClock),
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            max_answer_bytes: MAX_ANSWER_BYTES,
            resolver: None,
            proxy: None,
        }
    }
}

impl ClientOptions {
    /// The HTTP client's share of these options.
    pub fn http(&self) -> HttpOptions {
        HttpOptions {
            timeouts: self.timeouts,
            pool_max_idle_per_host: self.pool_max_idle_per_host,
            max_answer_bytes: self.max_answer_bytes,
            resolver: self.resolver.clone(),
            proxy: self.proxy.clone(),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("timeouts", &self.timeouts)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// State shared by every destination built from one [`Client`].
#[derive(Debug)]
pub struct Shared {
    pub http: HttpClient,
    pub tokens: TokenManager,
    pub options: ClientOptions,
}

impl Shared {
    pub fn now_ms(&self) -> i64 {
        self.options.clock.now_ms()
    }
}

/// Entry point of the SDK: builds destinations that share one HTTP connection
/// pool and one token cache.
///
/// ```
/// # fn main() -> Result<(), imrelay_sdk::Error> {
/// use imrelay_sdk::{Client, Message};
/// let client = Client::new()?;
/// let robot = client.build(&serde_json::json!({
///     "type": "dingtalk_robot",
///     "access_token": "abc123",
///     "secret": "SECxyz",
/// }))?;
/// let payloads = robot.render(&Message::text("deploy finished"))?;
/// assert_eq!(payloads[0].body["msgtype"], "text");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

impl Client {
    pub fn new() -> Result<Self, Error> {
        Self::with_options(ClientOptions::default())
    }

    pub fn with_options(options: ClientOptions) -> Result<Self, Error> {
        Ok(Client {
            shared: Arc::new(Shared {
                http: HttpClient::with_options(options.http())?,
                tokens: TokenManager::new(),
                options,
            }),
        })
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.shared.tokens
    }

    /// Build a destination from its config: a JSON object whose `type` names a
    /// registered destination type and whose other fields are that type's config.
    pub fn build(&self, config: &serde_json::Value) -> Result<Arc<dyn Destination>, Error> {
        let obj = config.as_object().ok_or_else(|| {
            Error::Config("a destination must be a table/object with a `type`".into())
        })?;
        let kind = obj.get("type").and_then(|v| v.as_str()).ok_or_else(|| {
            Error::Config(format!(
                "missing `type`; expected one of: {}",
                kinds().join(", ")
            ))
        })?;
        let reg = lookup(kind).ok_or_else(|| {
            Error::Config(format!(
                "unknown `type` `{kind}`; expected one of: {}",
                kinds().join(", ")
            ))
        })?;
        let mut rest = obj.clone();
        rest.remove("type");
        (reg.build)(self, serde_json::Value::Object(rest))
    }
}

/// Builds a destination of one type from its config (without the `type` key).
pub type BuildFn = fn(&Client, serde_json::Value) -> Result<Arc<dyn Destination>, Error>;

/// How a destination type is registered.
pub struct Registration {
    /// The config `type`, e.g. `dingtalk_robot`.
    pub kind: &'static str,
    pub platform: Platform,
    /// One line for `--help` and docs.
    pub summary: &'static str,
    pub build: BuildFn,
}

/// Every registered destination type.
pub fn registry() -> impl Iterator<Item = &'static Registration> {
    crate::platform::REGISTRY.iter().flat_map(|p| p.iter())
}

pub fn lookup(kind: &str) -> Option<&'static Registration> {
    registry().find(|r| r.kind == kind)
}

pub fn kinds() -> Vec<&'static str> {
    registry().map(|r| r.kind).collect()
}

/// Deserialize a platform config, turning serde's message into a config error
/// (serde names the unknown or missing field).
pub fn parse_config<T: serde::de::DeserializeOwned>(
    kind: &str,
    value: serde_json::Value,
) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|e| Error::Config(format!("{kind}: {e}")))
}

/// A deterministic platform dedup key for part `part` of message `id` to
/// `recipient`: a UUID (v5) so it fits Feishu's `uuid` (≤ 50 chars) and WeChat's
/// `client_msg_id`. `None` when the message has no id.
pub fn dedup_key(id: Option<&str>, part: usize, recipient: &str) -> Option<String> {
    const NS: uuid::Uuid = uuid::Uuid::from_u128(0x6f1d_2c7e_8a4b_4f0e_9d3a_1b2c_3d4e_5f60);
    id.map(|id| uuid::Uuid::new_v5(&NS, format!("{id}/{part}/{recipient}").as_bytes()).to_string())
}
