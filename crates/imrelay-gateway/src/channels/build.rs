//! From config tables to runtime [`Channel`]s: each destination is built by
//! the SDK, wrapped in the outbound guard when it is a generic webhook, and given
//! its quotas, breaker settings and retry policy.

use std::collections::HashMap;
use std::sync::Arc;

use imrelay_sdk::http::Proxy;
use imrelay_sdk::{Client, ClientOptions, Destination, Quota};
use parking_lot::Mutex;
use serde_json::Value;

use super::config::{split_destination, ChannelConfig, RetryConfig};
use super::{BreakerConfig, Channel, Coalesce, DestinationEntry, Fallback, RetryPolicy};
use crate::domain::config::{ConfigIssue, KeyPath};
use crate::outbound;
use crate::outbound::config::{OutboundConfig, TimeoutsConfig};

/// SDK clients reused across reloads, one per distinct timeout and proxy
/// setting, so access tokens and connection pools survive a reload.
#[derive(Debug)]
pub struct BuildContext {
    clients: Mutex<HashMap<ClientKey, Client>>,
    /// Several instances on PostgreSQL share access tokens.
    shared_tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>,
    /// Idle connections each client keeps per host.
    pool_max_idle_per_host: usize,
    /// The clock request signatures read (the gateway's, so a test that moves
    /// it moves the platforms' view of imrelay's time too).
    base: ClientOptions,
}

/// What makes two destinations need different HTTP clients.
type ClientKey = (u128, u128, Option<Proxy>);

impl Default for BuildContext {
    fn default() -> Self {
        BuildContext {
            clients: Mutex::default(),
            shared_tokens: None,
            pool_max_idle_per_host: ClientOptions::default().pool_max_idle_per_host,
            base: ClientOptions::default(),
        }
    }
}

impl BuildContext {
    /// `shared_tokens`: the cluster token cache of a shared store, if any.
    pub fn new(shared_tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>) -> Self {
        BuildContext {
            shared_tokens,
            ..BuildContext::default()
        }
    }

    /// Keep `n` idle connections per host: `dispatch.concurrency`, since that
    /// many sends may run against one host at once, and a smaller pool makes
    /// every burst open (and TLS-handshake) new connections for the rest.
    pub fn with_pool_max_idle_per_host(mut self, n: usize) -> Self {
        self.pool_max_idle_per_host = n;
        self
    }

    /// Sign requests at `clock`'s time.
    pub fn with_clock(mut self, clock: Arc<dyn imrelay_sdk::clock::Clock>) -> Self {
        self.base.clock = clock;
        self
    }

    pub(crate) fn client(&self, t: TimeoutsConfig, proxy: Option<Proxy>) -> Result<Client, String> {
        let key = (t.connect.as_millis(), t.total.as_millis(), proxy.clone());
        let mut clients = self.clients.lock();
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = Client::with_options(ClientOptions {
            timeouts: t.into(),
            pool_max_idle_per_host: self.pool_max_idle_per_host,
            proxy,
            ..self.base.clone()
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

/// Build one channel; problems with its destinations go to `issues`.
pub fn build_channel(
    name: &str,
    ch: &ChannelConfig,
    outbound: &OutboundConfig,
    ctx: &BuildContext,
    issues: &mut Vec<ConfigIssue>,
) -> Channel {
    let at = KeyPath::root().key("channels").key(name);
    let mut entries = Vec::new();
    for (i, table) in ch.destinations.iter().enumerate() {
        let dat = at.key("destinations").index(i);
        match build_destination(outbound, ctx, ch, table, &dat) {
            Ok(e) => entries.push(e),
            Err(issue) => issues.push(issue),
        }
    }
    let mut channel = Channel::new(name.to_string(), entries);
    channel.pool = ch.pool;
    channel.retry = retry_policy(ch.retry);
    channel.coalesce = ch.coalesce.map(|c| Coalesce {
        max_delay: c.max_delay,
        max_bytes: c.max_bytes,
    });
    channel.fallback = ch.fallback.as_ref().map(|f| Fallback {
        channel: f.channel.clone(),
        after: f.after,
    });
    channel.ordered = ch.ordered.unwrap_or(true);
    channel.order_hold = ch.order_hold.unwrap_or(super::DEFAULT_ORDER_HOLD);
    channel.silence_release = ch.silence_release;
    channel.quiet = ch
        .quiet_hours
        .as_ref()
        .and_then(|q| quiet_hours(q, &at.key("quiet_hours"), issues));
    channel
}

pub fn retry_policy(r: RetryConfig) -> RetryPolicy {
    let d = RetryPolicy::default();
    RetryPolicy {
        base: r.base.unwrap_or(d.base),
        cap: r.cap.unwrap_or(d.cap).max(r.base.unwrap_or(d.base)),
        max_attempts: r.max_attempts.unwrap_or(d.max_attempts),
        max_age: r.max_age.unwrap_or(d.max_age),
    }
}

pub fn build_destination(
    outbound: &OutboundConfig,
    ctx: &BuildContext,
    ch: &ChannelConfig,
    table: &serde_json::Map<String, Value>,
    at: &KeyPath,
) -> Result<DestinationEntry, ConfigIssue> {
    let (ov, sdk_cfg) = split_destination(table, at)?;
    let timeouts = ov.timeouts.unwrap_or(outbound.timeouts);
    let proxy = outbound
        .proxy_for(ov.proxy.as_ref(), ov.no_proxy.as_deref())
        .map_err(|e| ConfigIssue::new(at.key("proxy").to_string(), e))?;
    let client = ctx
        .client(timeouts, proxy)
        .map_err(|e| ConfigIssue::new(at.to_string(), e))?;
    let mut dest: Arc<dyn Destination> = client
        .build(&sdk_cfg)
        .map_err(|e| sdk_issue(e, &sdk_cfg, at))?;

    if dest.kind() == "webhook" && !(ov.allow_private || outbound.allow_private_networks) {
        let url = sdk_cfg
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
            .ok_or_else(|| ConfigIssue::new(at.key("url").to_string(), "must be an http(s) URL"))?;
        dest = Arc::new(
            outbound::Guarded::new(&client, &sdk_cfg, &url)
                .map_err(|e| ConfigIssue::new(at.key("url").to_string(), e.to_string()))?,
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

/// Compile `quiet_hours`; problems are pushed to `issues`.
fn quiet_hours(
    q: &super::config::QuietHoursConfig,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) -> Option<super::QuietHours> {
    let tz = match crate::domain::window::zone(q.time_zone.as_deref().unwrap_or("Asia/Shanghai")) {
        Ok(tz) => tz,
        Err(e) => {
            issues.push(ConfigIssue::new(
                at.key("time_zone").to_string(),
                e.to_string(),
            ));
            return None;
        }
    };
    let hold_below = match q.hold_below.to_ascii_lowercase().as_str() {
        "info" => 0,
        "warning" => 1,
        "error" => 2,
        "critical" => 3,
        other => {
            issues.push(ConfigIssue::new(
                at.key("hold_below").to_string(),
                format!("`{other}` is not a severity; use info, warning, error or critical"),
            ));
            return None;
        }
    };
    let span = crate::domain::window::Span::compile(&q.span, &at.to_string(), issues)?;
    Some(super::QuietHours {
        tz,
        span,
        hold_below,
    })
}
