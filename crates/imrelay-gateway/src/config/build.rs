//! From config tables to the runtime [`ChannelSet`]: each destination is built by
//! the SDK, wrapped in the outbound guard when it is a generic webhook, and given
//! its quotas, breaker settings and retry policy.

use std::collections::HashMap;
use std::sync::Arc;

use imrelay_sdk::{Client, ClientOptions, Destination, Quota};
use parking_lot::Mutex;
use serde_json::Value;

use super::{
    split_destination, Config, ConfigError, ConfigIssue, KeyPath, RetryConfig, TimeoutsConfig,
};
use crate::channels::{
    self, BreakerConfig, Channel, ChannelSet, DestinationEntry, Fallback, RetryPolicy,
};
use crate::outbound;

/// SDK clients reused across reloads, one per distinct timeout setting, so
/// access tokens and connection pools survive a reload.
#[derive(Debug, Default)]
pub struct BuildContext {
    clients: Mutex<HashMap<(u128, u128), Client>>,
    /// Several instances on PostgreSQL share access tokens.
    shared_tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>,
}

impl BuildContext {
    pub fn new(_cfg: &Config) -> Result<Self, ConfigError> {
        Ok(BuildContext::default())
    }

    /// Share access tokens through `tokens` (the store's
    /// [`crate::store::Store::shared_tokens`]).
    pub fn with_shared_tokens(
        mut self,
        tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>,
    ) -> Self {
        self.shared_tokens = tokens;
        self
    }

    fn client(&self, t: TimeoutsConfig) -> Result<Client, String> {
        let key = (t.connect.as_millis(), t.total.as_millis());
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = Client::with_options(ClientOptions {
            timeouts: t.into(),
            ..Default::default()
        })
        .map_err(|e| e.to_string())?;
        c.tokens().set_shared(self.shared_tokens.clone());
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// Access-token fetches over every client: (succeeded, failed).
    pub fn token_fetches(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.clients
            .lock()
            .values()
            .fold((0, 0), |(ok, failed), c| {
                let s = c.tokens().stats();
                (
                    ok + s.fetches_ok.load(Relaxed),
                    failed + s.fetches_failed.load(Relaxed),
                )
            })
    }
}

/// Build every channel of `cfg`. All problems are reported at once.
pub fn build_channels(cfg: &Config, ctx: &BuildContext) -> Result<ChannelSet, ConfigError> {
    let mut issues = Vec::new();
    let mut out = Vec::new();
    for (name, ch) in &cfg.channels {
        let at = KeyPath::root().key("channels").key(name);
        let mut entries = Vec::new();
        for (i, table) in ch.destinations.iter().enumerate() {
            let dat = at.key("destinations").index(i);
            match build_destination(cfg, ctx, ch, table, &dat) {
                Ok(e) => entries.push(e),
                Err(issue) => issues.push(issue),
            }
        }
        let mut channel = Channel::new(name.clone(), entries);
        channel.pool = ch.pool;
        channel.retry = retry_policy(ch.retry);
        channel.coalesce = ch.coalesce.map(|c| channels::CoalesceConfig {
            max_delay: c.max_delay,
            max_bytes: c.max_bytes,
        });
        channel.fallback = ch.fallback.as_ref().map(|f| Fallback {
            channel: f.channel.clone(),
            after: f.after,
        });
        out.push(channel);
    }
    // Callback apps: their crypto settings and one forward channel each.
    let callbacks = super::callbacks::build(cfg, ctx, &mut out, &mut issues);
    if issues.is_empty() {
        Ok(ChannelSet::new(out).with_callbacks(callbacks))
    } else {
        Err(ConfigError { file: None, issues })
    }
}

pub(super) fn retry_policy(r: RetryConfig) -> RetryPolicy {
    let d = RetryPolicy::default();
    RetryPolicy {
        base: r.base.unwrap_or(d.base),
        cap: r.cap.unwrap_or(d.cap).max(r.base.unwrap_or(d.base)),
        max_attempts: r.max_attempts.unwrap_or(d.max_attempts),
        max_age: r.max_age.unwrap_or(d.max_age),
    }
}

pub(super) fn build_destination(
    cfg: &Config,
    ctx: &BuildContext,
    ch: &super::ChannelConfig,
    table: &serde_json::Map<String, Value>,
    at: &KeyPath,
) -> Result<DestinationEntry, ConfigIssue> {
    let (ov, sdk_cfg) = split_destination(table, at)?;
    let timeouts = ov.timeouts.unwrap_or(cfg.outbound.timeouts);
    let client = ctx
        .client(timeouts)
        .map_err(|e| ConfigIssue::new(at.to_string(), e))?;
    let mut dest: Arc<dyn Destination> = client
        .build(&sdk_cfg)
        .map_err(|e| sdk_issue(e, &sdk_cfg, at))?;

    if dest.kind() == "webhook" && !(ov.allow_private || cfg.outbound.allow_private_networks) {
        let url = sdk_cfg
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| ConfigIssue::new(at.key("url").to_string(), "must be an http(s) URL"))?;
        dest = Arc::new(
            outbound::Guarded::new(dest, &url)
                .map_err(|e| ConfigIssue::new(at.key("url").to_string(), e))?,
        );
    }

    let quotas = match &ov.rate_limit {
        Some(q) => q
            .iter()
            .map(|q| Quota {
                count: q.count,
                per: q.per,
            })
            .collect(),
        None => dest.rate_limits(),
    };
    let b = ov.breaker.or(ch.breaker);
    let d = BreakerConfig::default();
    let breaker = BreakerConfig {
        failure_threshold: b.failure_threshold.unwrap_or(d.failure_threshold).max(1),
        open_for: b.open_for.unwrap_or(d.open_for),
        max_open_for: b
            .max_open_for
            .unwrap_or(d.max_open_for)
            .max(b.open_for.unwrap_or(d.open_for)),
    };
    Ok(DestinationEntry::new(dest)
        .with_quotas(quotas)
        .with_breaker(breaker))
}

/// Turn an SDK build error into an issue at the key it names. SDK messages put
/// the field in backticks (serde's `missing field `x``, the platforms'
/// `` `webhook`: ... ``); the first backticked word that is a key of the table,
/// or that serde reports missing/unknown, becomes part of the path.
fn sdk_issue(e: imrelay_sdk::Error, table: &Value, at: &KeyPath) -> ConfigIssue {
    let msg = match e {
        imrelay_sdk::Error::Config(m) => m,
        other => other.to_string(),
    };
    let keys = table.as_object();
    let mut field = None;
    for (i, part) in msg.split('`').enumerate() {
        if i % 2 == 0 || part.is_empty() {
            continue;
        }
        let ident = part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        if !ident {
            continue;
        }
        let in_table = keys.is_some_and(|k| k.contains_key(part));
        let named = msg.contains(&format!("missing field `{part}`"))
            || msg.contains(&format!("unknown field `{part}`"))
            || msg.contains(&format!("`{part}`:"))
            || part == "type";
        if in_table || named {
            field = Some(part.to_string());
            break;
        }
    }
    let key = match field {
        Some(f) => at.key(&f),
        None => at.clone(),
    };
    ConfigIssue::new(key.to_string(), msg)
}
