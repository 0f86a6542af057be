//! `[[callbacks]]`: platform callback endpoints (see `docs/callbacks.md`).
//!
//! ```toml
//! [[callbacks]]
//! name = "feishu-main"                 # URL: POST /v1/callbacks/feishu-main (cards: .../card)
//! platform = "feishu"                  # feishu | dingtalk | wecom | wechat
//! encrypt_key = "${FEISHU_ENCRYPT_KEY}"
//! verification_token = "${FEISHU_VERIFICATION_TOKEN}"
//! replay_window = "5m"                 # default 5m
//! retry = { base = "1s", max_attempts = 20 }
//! [[callbacks.forward]]
//! url = "https://events.internal/feishu"
//! secret = "${FORWARD_SECRET}"         # whsec_<base64>, Standard Webhooks
//!
//! [[callbacks]]
//! name = "wecom-ops"
//! platform = "wecom"
//! token = "${WECOM_CB_TOKEN}"
//! encoding_aes_key = "${WECOM_CB_AES_KEY}"
//! receive_id = "ww0123456789abcdef"    # corp id (WeCom), appid (WeChat), app key (DingTalk)
//! forward = [{ url = "https://events.internal/wecom", secret_file = "/run/secrets/fwd" }]
//! ```
//!
//! Each app gets a forward channel named `callback:{name}` (a name producers
//! cannot use, since channel names have no `:`), built like any channel, so
//! forwarding goes through the durable queue with retries and the DLQ.

use std::time::Duration;

use base64::Engine;
use imrelay_sdk::crypto::feishu::FeishuCipher;
use imrelay_sdk::crypto::wxbiz::WxBizMsgCrypt;
use imrelay_sdk::Secret;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::channels::build::{build_destination, retry_policy, BuildContext};
use crate::channels::config::{BreakerSettings, RetryConfig};
use crate::domain::config::{duration, ConfigIssue, KeyPath};
use crate::outbound::config::OutboundConfig;

/// The platform a callback endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackPlatform {
    Feishu,
    Dingtalk,
    Wecom,
    Wechat,
}

impl CallbackPlatform {
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackPlatform::Feishu => "feishu",
            CallbackPlatform::Dingtalk => "dingtalk",
            CallbackPlatform::Wecom => "wecom",
            CallbackPlatform::Wechat => "wechat",
        }
    }
}

/// One `[[callbacks]]` entry as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackConfig {
    /// Names the endpoint (`/v1/callbacks/{name}`) and the forward channel.
    pub name: String,
    pub platform: CallbackPlatform,
    /// WeCom / WeChat / DingTalk: the callback Token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// WeCom / WeChat (safe mode) / DingTalk: the 43-character EncodingAESKey.
    #[serde(default)]
    pub encoding_aes_key: Option<Secret>,
    /// WeCom: corp id. WeChat: appid. DingTalk: app key (or corp id / suite key).
    #[serde(default)]
    pub receive_id: Option<String>,
    /// Feishu: the Encrypt Key (optional; without it bodies are plaintext and unsigned).
    #[serde(default)]
    pub encrypt_key: Option<Secret>,
    /// Feishu: the Verification Token (checked in every event, and signs legacy card actions).
    #[serde(default)]
    pub verification_token: Option<Secret>,
    /// DingTalk: the secret in the card callback URL registered with DingTalk
    /// (`.../v1/callbacks/{name}/card?token=...`). DingTalk's HTTP card
    /// callbacks carry no signature imrelay can check (docs/lifecycle.md), so
    /// an unguessable token in the URL is what authenticates them.
    #[serde(default)]
    pub card_token: Option<Secret>,
    /// Callbacks whose timestamp is further than this from now are refused.
    #[serde(default = "default_window", with = "duration")]
    pub replay_window: Duration,
    /// Retry policy of the forward channel.
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Where each event is forwarded (every target gets every event). None:
    /// events are verified, stored for deduplication and, for clicks on
    /// imrelay's card buttons, acted on; nothing is forwarded.
    #[serde(default)]
    pub forward: Vec<ForwardConfig>,
}

fn default_window() -> Duration {
    Duration::from_secs(300)
}

/// One forward target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    pub url: String,
    /// Standard Webhooks secret, `whsec_` + base64 (e.g. `whsec_$(openssl rand -base64 32)`).
    pub secret: Secret,
    /// Allow a private / loopback address (off by default: SSRF).
    #[serde(default)]
    pub allow_private: bool,
    /// Extra headers for the receiver.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
    /// Overrides for the forward destination (as on channel destinations).
    #[serde(default)]
    pub rate_limit: Option<Vec<crate::channels::config::QuotaConfig>>,
    #[serde(default)]
    pub timeouts: Option<crate::outbound::config::TimeoutsConfig>,
}

/// The forward channel's name for a callback app.
pub fn forward_channel(name: &str) -> String {
    format!("callback:{name}")
}

impl CallbackConfig {
    /// The forward channel as a channel config (webhook destinations).
    pub(crate) fn channel_config(&self) -> crate::channels::config::ChannelConfig {
        let destinations = self
            .forward
            .iter()
            .map(|f| {
                let mut t = Map::new();
                t.insert("type".into(), json!("webhook"));
                t.insert("url".into(), json!(f.url));
                t.insert("secret".into(), json!(f.secret.expose()));
                if !f.headers.is_empty() {
                    let h: Map<String, Value> = f
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), json!(v.expose())))
                        .collect();
                    t.insert("headers".into(), Value::Object(h));
                }
                if f.allow_private {
                    t.insert("allow_private".into(), json!(true));
                }
                if let Some(q) = &f.rate_limit {
                    let q: Vec<Value> = q
                        .iter()
                        .map(|q| json!({"count": q.count, "per": format!("{}ms", q.per.as_millis())}))
                        .collect();
                    t.insert("rate_limit".into(), Value::Array(q));
                }
                if let Some(to) = &f.timeouts {
                    t.insert(
                        "timeouts".into(),
                        json!({"connect": format!("{}ms", to.connect.as_millis()), "total": format!("{}ms", to.total.as_millis())}),
                    );
                }
                t
            })
            .collect();
        crate::channels::config::ChannelConfig {
            pool: false,
            retry: self.retry,
            coalesce: None,
            fallback: None,
            breaker: self.breaker,
            ordered: None,
            order_hold: None,
            quiet_hours: None,
            silence_release: false,
            group: None,
            destinations,
        }
    }
}

/// Check every `[[callbacks]]` entry; problems name the key.
pub fn validate(cbs: &[CallbackConfig], issues: &mut Vec<ConfigIssue>) {
    let mut names = std::collections::BTreeSet::new();
    for (i, cb) in cbs.iter().enumerate() {
        let mut entry = EntryCheck {
            cb,
            at: KeyPath::root().key("callbacks").index(i),
            issues: &mut *issues,
        };
        entry.name(&mut names);
        entry.replay_and_forward();
        match cb.platform {
            CallbackPlatform::Feishu => entry.feishu_keys(),
            CallbackPlatform::Dingtalk | CallbackPlatform::Wecom | CallbackPlatform::Wechat => {
                entry.wxbiz_keys()
            }
        }
    }
}

/// The checks of one `[[callbacks]]` entry, each pushing its problems.
struct EntryCheck<'a> {
    cb: &'a CallbackConfig,
    at: KeyPath,
    issues: &'a mut Vec<ConfigIssue>,
}

impl EntryCheck<'_> {
    fn push(&mut self, k: &str, why: impl Into<String>) {
        let key = self.at.key(k).to_string();
        self.issues.push(ConfigIssue::new(key, why));
    }

    /// A URL-safe name, unique among the callbacks.
    fn name(&mut self, names: &mut std::collections::BTreeSet<String>) {
        let name = &self.cb.name;
        if !crate::channels::config::valid_channel_name(name) {
            self.push(
                "name",
                "callback names are 1-64 characters of letters, digits, `_` and `-` (they appear in the URL)",
            );
        } else if !names.insert(name.clone()) {
            self.push(
                "name",
                format!("`{name}` is used by another callback; names must be unique"),
            );
        }
    }

    /// A replay window of at least 1s, and a Standard Webhooks secret for
    /// each forward target.
    fn replay_and_forward(&mut self) {
        if self.cb.replay_window < Duration::from_secs(1) {
            self.push("replay_window", "must be at least 1s");
        }
        for (j, f) in self.cb.forward.iter().enumerate() {
            if !valid_whsec(f.secret.expose()) {
                let key = self.at.key("forward").index(j).key("secret").to_string();
                self.issues.push(ConfigIssue::new(
                    key,
                    "must be a Standard Webhooks secret: `whsec_` followed by base64 of 24-64 random bytes (e.g. `whsec_$(openssl rand -base64 32)`)",
                ));
            }
        }
    }

    /// `k` must be set for this platform; `what` says what to put there.
    fn need(&mut self, set: bool, k: &str, what: &str) {
        if !set {
            let why = format!(
                "is required for platform `{}`: {what}",
                self.cb.platform.as_str()
            );
            self.push(k, why);
        }
    }

    /// `k` means nothing for this platform.
    fn forbid(&mut self, set: bool, k: &str) {
        if set {
            let why = format!(
                "is not used by platform `{}`; remove it",
                self.cb.platform.as_str()
            );
            self.push(k, why);
        }
    }

    /// Feishu: a verification token, an optional valid Encrypt Key, and none
    /// of the WXBizMsgCrypt keys.
    fn feishu_keys(&mut self) {
        let cb = self.cb;
        self.need(
            cb.verification_token.is_some(),
            "verification_token",
            "the Verification Token from the console (Events and callbacks)",
        );
        self.forbid(cb.token.is_some(), "token");
        self.forbid(cb.encoding_aes_key.is_some(), "encoding_aes_key");
        self.forbid(cb.receive_id.is_some(), "receive_id");
        if let Some(k) = &cb.encrypt_key {
            if let Err(e) = FeishuCipher::new(k.expose()) {
                self.push("encrypt_key", e.to_string());
            }
        }
    }

    /// DingTalk, WeCom and WeChat (WXBizMsgCrypt): a token, an EncodingAESKey
    /// with the id it is bound to, and none of Feishu's keys.
    fn wxbiz_keys(&mut self) {
        let cb = self.cb;
        self.forbid(cb.encrypt_key.is_some(), "encrypt_key");
        self.forbid(cb.verification_token.is_some(), "verification_token");
        self.need(cb.token.is_some(), "token", "the callback Token");
        // WeChat in plaintext mode needs no key; every other needs it.
        if cb.platform != CallbackPlatform::Wechat {
            self.need(
                cb.encoding_aes_key.is_some(),
                "encoding_aes_key",
                "the 43-character EncodingAESKey",
            );
        }
        let what = match cb.platform {
            CallbackPlatform::Wecom => "the corp id (ww...)",
            CallbackPlatform::Wechat => "the appid (wx...)",
            _ => "the app key (or corp id / suite key) the events are encrypted for",
        };
        if cb.encoding_aes_key.is_some() {
            self.need(cb.receive_id.is_some(), "receive_id", what);
        }
        if let (Some(t), Some(k)) = (&cb.token, &cb.encoding_aes_key) {
            if let Err(e) = WxBizMsgCrypt::new(t.clone(), k.expose(), "") {
                self.push("encoding_aes_key", e.to_string());
            }
        }
    }
}

/// Settings that work but leave a callback open to forgery: WeChat in
/// plaintext mode (the signature covers token, timestamp and nonce, not the
/// body) and Feishu without an Encrypt Key (nothing is signed). Logged at
/// every load and listed by `imrelay config check`.
pub fn warnings(cbs: &[CallbackConfig]) -> Vec<ConfigIssue> {
    let mut out = Vec::new();
    for (i, cb) in cbs.iter().enumerate() {
        let at = KeyPath::root().key("callbacks").index(i);
        match cb.platform {
            CallbackPlatform::Wechat if cb.encoding_aes_key.is_none() => out.push(ConfigIssue::new(
                at.key("encoding_aes_key").to_string(),
                format!(
                    "is not set, so `{}` runs in WeChat plaintext mode: the signature does not cover the body, and anyone who sees one callback URL can post a forged event with it. This instance refuses a timestamp and nonce used before, but only its own and only within replay_window; set the EncodingAESKey (safe mode)",
                    cb.name
                ),
            )),
            CallbackPlatform::Feishu if cb.encrypt_key.is_none() => out.push(ConfigIssue::new(
                at.key("encrypt_key").to_string(),
                format!(
                    "is not set, so Feishu sends `{}`'s events in plaintext and unsigned: anyone who knows the verification token can post a forged event; set the Encrypt Key",
                    cb.name
                ),
            )),
            _ => {}
        }
    }
    out
}

fn valid_whsec(s: &str) -> bool {
    let Some(b64) = s.strip_prefix("whsec_") else {
        return false;
    };
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .is_ok_and(|k| (16..=64).contains(&k.len()))
}

/// Build the runtime callback apps and push one forward channel per app into
/// `out` (built with the channels, so a reload rebuilds both).
pub fn build(
    callbacks: &[CallbackConfig],
    outbound: &OutboundConfig,
    ctx: &BuildContext,
    out: &mut Vec<crate::channels::Channel>,
    issues: &mut Vec<ConfigIssue>,
) -> super::CallbackSet {
    for w in warnings(callbacks) {
        tracing::warn!(key = %w.key, "callback config: `{}` {}", w.key, w.message);
    }
    let mut apps = Vec::new();
    for (i, cb) in callbacks.iter().enumerate() {
        let at = KeyPath::root().key("callbacks").index(i);
        let ch = cb.channel_config();
        let mut entries = Vec::new();
        for (j, table) in ch.destinations.iter().enumerate() {
            match build_destination(outbound, ctx, &ch, table, &at.key("forward").index(j)) {
                Ok(e) => entries.push(e),
                Err(issue) => issues.push(issue),
            }
        }
        let mut channel = crate::channels::Channel::new(forward_channel(&cb.name), entries);
        channel.retry = retry_policy(cb.retry);
        out.push(channel);
        match super::CallbackApp::from_config(cb) {
            Ok(app) => apps.push(app),
            Err((k, msg)) => issues.push(ConfigIssue::new(at.key(k).to_string(), msg)),
        }
    }
    super::CallbackSet::new(apps)
}
