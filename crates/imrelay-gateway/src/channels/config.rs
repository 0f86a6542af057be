//! `[channels.NAME]`: a channel as written in the config, and its checks.
//! Destinations stay raw tables until the SDK builds them ([`super::build`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::domain::config::{duration, typed, ConfigIssue, KeyPath};
use crate::outbound::config::{check_no_proxy, check_timeouts, ProxyUrl, TimeoutsConfig};

/// Retry policy as written in the config (all fields optional; unset ones fall
/// back to the channel's, then to the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// First backoff ceiling; the n-th retry waits a random time in [0, min(cap, base * 2^n)].
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub base: Option<Duration>,
    /// Largest backoff.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cap: Option<Duration>,
    /// Attempts before the message is dead-lettered (rate-limit waits do not count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Age after which a message still failing is dead-lettered.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_age: Option<Duration>,
}

impl RetryConfig {
    /// `self` with unset fields taken from `other`.
    pub fn or(self, other: RetryConfig) -> RetryConfig {
        RetryConfig {
            base: self.base.or(other.base),
            cap: self.cap.or(other.cap),
            max_attempts: self.max_attempts.or(other.max_attempts),
            max_age: self.max_age.or(other.max_age),
        }
    }
}

/// Coalescing (opt-in): merge a backlog that cannot drain within `max_delay`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoalesceConfig {
    /// The longest a message may wait behind the rate limit before pending
    /// messages are merged into a digest.
    #[serde(with = "duration")]
    pub max_delay: Duration,
    /// Text budget of one digest in bytes (default 3500, so a digest fits the
    /// strictest platform's single request).
    #[serde(default = "default_coalesce_bytes")]
    pub max_bytes: usize,
}

fn default_coalesce_bytes() -> usize {
    super::Coalesce::default().max_bytes
}

/// Fallback: where a message goes when this channel dead-letters it or its
/// destination stays unavailable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    pub channel: String,
    /// Also fall back when a message is still undelivered this long after it was
    /// accepted (destination down, breaker open). Unset: only on dead-letter.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub after: Option<Duration>,
}

/// One rate-limit rule: at most `count` per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaConfig {
    pub count: u32,
    #[serde(with = "duration")]
    pub per: Duration,
}

/// Circuit breaker settings (unset fields: the channel's, then the defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open the breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<u32>,
    /// How long it stays open before one probe send (half-open).
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub open_for: Option<Duration>,
    /// Upper bound of `open_for`, which doubles while probes fail.
    #[serde(
        default,
        with = "duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_open_for: Option<Duration>,
}

impl BreakerSettings {
    /// `self` with unset fields taken from `other`.
    pub fn or(self, other: BreakerSettings) -> BreakerSettings {
        BreakerSettings {
            failure_threshold: self.failure_threshold.or(other.failure_threshold),
            open_for: self.open_for.or(other.open_for),
            max_open_for: self.max_open_for.or(other.max_open_for),
        }
    }
}

/// A channel as written in the config; destinations are kept as raw tables
/// until they are built (see [`build_channels`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Robot pool: the destinations are robots in one group, used in turn; each
    /// message goes out once, through whichever robot's turn it is.
    #[serde(default)]
    pub pool: bool,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub coalesce: Option<CoalesceConfig>,
    #[serde(default)]
    pub fallback: Option<FallbackConfig>,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Deliver in accept order per destination (default `true`). `false`
    /// sends to one destination concurrently, for throughput.
    #[serde(default)]
    pub ordered: Option<bool>,
    /// Ordered channels: how long a message being retried holds the ones
    /// behind it (default 30s).
    #[serde(default, with = "duration::option")]
    pub order_hold: Option<Duration>,
    /// Hold messages below a severity during these hours; they go out as
    /// one digest when the quiet hours end (see `crate::grouping`).
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursConfig>,
    /// When a silence holding this channel's messages is ended early without
    /// saying (`DELETE /v1/silences/{id}` with no `release`), send what it
    /// held (default: keep it held).
    #[serde(default)]
    pub silence_release: bool,
    /// Group and dedup messages by labels, as Alertmanager does; kept raw
    /// here, read and checked by the grouping feature.
    #[serde(default)]
    pub group: Option<Map<String, Value>>,
    pub destinations: Vec<Map<String, Value>>,
}

/// `quiet_hours = { from = "22:00", to = "08:00", time_zone = "Asia/Shanghai", hold_below = "critical" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursConfig {
    #[serde(flatten)]
    pub span: crate::domain::window::SpanConfig,
    /// Default Asia/Shanghai.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Messages whose `severity` label is below this are held (`info` <
    /// `warning` < `error` < `critical`; a message without one counts as
    /// `info`). Default `critical`: only critical ones pass.
    #[serde(default = "critical")]
    pub hold_below: String,
}

fn critical() -> String {
    "critical".into()
}

/// Gateway-side settings a destination table may carry next to the SDK's keys.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationOverrides {
    /// Replace the platform's documented limits (all rules apply at once).
    #[serde(default)]
    pub rate_limit: Option<Vec<QuotaConfig>>,
    #[serde(default)]
    pub timeouts: Option<TimeoutsConfig>,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// Generic webhooks: allow private/loopback/link-local targets.
    #[serde(default)]
    pub allow_private: bool,
    /// This destination's proxy, replacing `[outbound] proxy`.
    #[serde(default)]
    pub proxy: Option<ProxyUrl>,
    /// This destination's no-proxy list, replacing `[outbound] no_proxy`
    /// (`["*"]`: straight to the host, whatever the global proxy).
    #[serde(default)]
    pub no_proxy: Option<Vec<String>>,
    /// Not supported here: retries are per channel. Kept so the error says so.
    #[serde(default)]
    retry: Option<Value>,
}

/// The keys of [`DestinationOverrides`], split off before the table goes to the SDK.
pub const OVERRIDE_KEYS: &[&str] = &[
    "rate_limit",
    "retry",
    "timeouts",
    "breaker",
    "allow_private",
    "proxy",
    "no_proxy",
];

pub fn known(channels: &BTreeMap<String, ChannelConfig>) -> String {
    if channels.is_empty() {
        " (the config defines no channels)".to_string()
    } else {
        format!(
            "; defined: {}",
            channels
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// Channel names appear in URLs and logs.
pub fn valid_channel_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_retry(r: &RetryConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    if r.max_attempts == Some(0) {
        issues.push(ConfigIssue::new(
            at.key("max_attempts").to_string(),
            "must be at least 1",
        ));
    }
    if let (Some(b), Some(c)) = (r.base, r.cap) {
        if c < b {
            issues.push(ConfigIssue::new(
                at.key("cap").to_string(),
                format!(
                    "must not be less than `base` ({})",
                    humantime::format_duration(b)
                ),
            ));
        }
    }
    if r.base.is_some_and(|b| b.is_zero()) {
        issues.push(ConfigIssue::new(
            at.key("base").to_string(),
            "must be more than 0",
        ));
    }
}

/// Split a destination table into gateway overrides and the SDK's config.
pub fn split_destination(
    table: &Map<String, Value>,
    at: &KeyPath,
) -> Result<(DestinationOverrides, Value), ConfigIssue> {
    let mut sdk = table.clone();
    let mut ours = Map::new();
    for k in OVERRIDE_KEYS {
        if let Some(v) = sdk.remove(*k) {
            ours.insert((*k).to_string(), v);
        }
    }
    let ov: DestinationOverrides = typed(Value::Object(ours), at)?;
    Ok((ov, Value::Object(sdk)))
}

/// Check every channel, and that fallback chains end.
pub fn validate_channels(
    channels: &BTreeMap<String, ChannelConfig>,
    issues: &mut Vec<ConfigIssue>,
) {
    for (name, ch) in channels {
        let at = KeyPath::root().key("channels").key(name);
        validate_channel(name, ch, channels, &at, issues);
        for (i, d) in ch.destinations.iter().enumerate() {
            validate_destination(d, &at, &at.key("destinations").index(i), issues);
        }
        if ch.pool {
            validate_pool(ch, &at, issues);
        }
    }
    check_fallback_loops(channels, issues);
}

fn validate_channel(
    name: &str,
    ch: &ChannelConfig,
    channels: &BTreeMap<String, ChannelConfig>,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) {
    if !valid_channel_name(name) {
        issues.push(ConfigIssue::new(
            at.to_string(),
            "channel names are 1-64 characters of letters, digits, `_` and `-`",
        ));
    }
    if ch.destinations.is_empty() {
        issues.push(ConfigIssue::new(
            at.key("destinations").to_string(),
            "a channel needs at least one destination ([[channels.NAME.destinations]] with a `type`)",
        ));
    }
    check_retry(&ch.retry, &at.key("retry"), issues);
    if ch.ordered == Some(false) && ch.order_hold.is_some() {
        issues.push(ConfigIssue::new(
            at.key("order_hold").to_string(),
            "applies only to ordered channels; remove it or `ordered = false`",
        ));
    }
    if let Some(c) = &ch.coalesce {
        if c.max_delay.is_zero() {
            issues.push(ConfigIssue::new(
                at.key("coalesce").key("max_delay").to_string(),
                "must be more than 0",
            ));
        }
        if c.max_bytes < 256 {
            issues.push(ConfigIssue::new(
                at.key("coalesce").key("max_bytes").to_string(),
                "must be at least 256",
            ));
        }
    }
    if let Some(f) = &ch.fallback {
        if f.channel == name {
            issues.push(ConfigIssue::new(
                at.key("fallback").key("channel").to_string(),
                "a channel cannot be its own fallback",
            ));
        } else if !channels.contains_key(&f.channel) {
            issues.push(ConfigIssue::new(
                at.key("fallback").key("channel").to_string(),
                format!("no channel `{}` is defined{}", f.channel, known(channels)),
            ));
        }
    }
}

fn validate_destination(
    d: &Map<String, Value>,
    channel_at: &KeyPath,
    at: &KeyPath,
    issues: &mut Vec<ConfigIssue>,
) {
    if !d.contains_key("type") {
        issues.push(ConfigIssue::new(
            at.key("type").to_string(),
            format!(
                "missing; every destination names its type, one of: {}",
                imrelay_sdk::destination::kinds().join(", ")
            ),
        ));
    }
    let ov = match split_destination(d, at) {
        Ok((ov, _)) => ov,
        Err(issue) => {
            issues.push(issue);
            return;
        }
    };
    if ov.retry.is_some() {
        issues.push(ConfigIssue::new(
            at.key("retry").to_string(),
            format!(
                "retry policies are set per channel: move it to `{}`",
                channel_at.key("retry")
            ),
        ));
    }
    if let Some(t) = &ov.timeouts {
        check_timeouts(t, &at.key("timeouts"), issues);
    }
    if let Some(list) = &ov.no_proxy {
        check_no_proxy(list, &at.key("no_proxy"), issues);
    }
    for (j, q) in ov.rate_limit.iter().flatten().enumerate() {
        if q.count == 0 || q.per.is_zero() {
            issues.push(ConfigIssue::new(
                at.key("rate_limit").index(j).to_string(),
                "`count` and `per` must both be more than 0",
            ));
        }
    }
}

/// A robot pool's members are interchangeable, so they share one type.
fn validate_pool(ch: &ChannelConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    let types: Vec<Option<&str>> = ch
        .destinations
        .iter()
        .map(|d| d.get("type").and_then(Value::as_str))
        .collect();
    let Some(Some(first)) = types.first() else {
        return;
    };
    for (i, t) in types.iter().enumerate().skip(1) {
        if let Some(t) = t {
            if t != first {
                issues.push(ConfigIssue::new(
                    at.key("destinations").index(i).key("type").to_string(),
                    format!("a robot pool's members must share one type (`{first}`), found `{t}`"),
                ));
            }
        }
    }
}

/// Fallback chains must end: a -> b -> a would bounce a message forever.
fn check_fallback_loops(channels: &BTreeMap<String, ChannelConfig>, issues: &mut Vec<ConfigIssue>) {
    for name in channels.keys() {
        let mut seen = vec![name.as_str()];
        let mut cur = name.as_str();
        while let Some(next) = channels
            .get(cur)
            .and_then(|c| c.fallback.as_ref())
            .map(|f| f.channel.as_str())
        {
            if seen.contains(&next) {
                if next == name {
                    issues.push(ConfigIssue::new(
                        KeyPath::root()
                            .key("channels")
                            .key(name)
                            .key("fallback")
                            .key("channel")
                            .to_string(),
                        format!("fallbacks form a loop: {} -> {next}", seen.join(" -> ")),
                    ));
                }
                break;
            }
            seen.push(next);
            cur = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::build::{build_channel, BuildContext};
    use crate::outbound::config::OutboundConfig;

    fn channel(extra: Value) -> ChannelConfig {
        let mut v = serde_json::json!({
            "destinations": [{"type": "webhook", "url": "https://hooks.example.com/a"}],
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    fn issues(ch: ChannelConfig) -> Vec<String> {
        let mut issues = Vec::new();
        validate_channels(&BTreeMap::from([("ops".to_string(), ch)]), &mut issues);
        issues.into_iter().map(|i| i.key).collect()
    }

    fn built(ch: &ChannelConfig) -> super::super::Channel {
        let mut issues = Vec::new();
        let c = build_channel(
            "ops",
            ch,
            &OutboundConfig::default(),
            &BuildContext::default(),
            &mut issues,
        );
        assert!(issues.is_empty(), "{issues:?}");
        c
    }

    #[test]
    fn channels_are_ordered_by_default_with_a_thirty_second_hold() {
        let c = built(&channel(serde_json::json!({})));
        assert!(c.ordered);
        assert_eq!(c.order_hold, Duration::from_secs(30));
        let c = built(&channel(serde_json::json!({"order_hold": "5s"})));
        assert_eq!((c.ordered, c.order_hold), (true, Duration::from_secs(5)));
        let c = built(&channel(serde_json::json!({"ordered": false})));
        assert!(!c.ordered);
    }

    #[test]
    fn an_order_hold_on_an_unordered_channel_is_refused_naming_the_key() {
        let ch = channel(serde_json::json!({"ordered": false, "order_hold": "5s"}));
        assert_eq!(issues(ch), ["channels.ops.order_hold"]);
        assert!(issues(channel(serde_json::json!({"order_hold": "0s"}))).is_empty());
    }
}
