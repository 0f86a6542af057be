//! The runtime channel model: what the dispatcher needs to know about each
//! channel, built by `config` from the TOML file and swapped atomically on
//! reload (`Arc<ArcSwap<ChannelSet>>`).
//!
//! # Targets
//! Every queued delivery names a *target*, a stable string stored in the
//! database: `"{channel}/{destination key}"` for an ordinary destination and
//! `"{channel}/pool"` for a robot pool (one delivery, sent by any member in
//! turn). Destination keys are the SDK's secret-free [`Destination::id`], so
//! reordering destinations in the file, or a reload, keeps queued work pointed at
//! the same robot. Rate limiters and circuit breakers are keyed by the
//! destination key alone, so two channels sharing one robot share its limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::{Destination, Quota};

use crate::domain::ids::{ChannelName, Target};

pub mod build;
pub mod config;

/// How long, by default, a message being retried holds the messages behind
/// it to the same destination (ordered channels).
pub const DEFAULT_ORDER_HOLD: Duration = Duration::from_secs(30);

/// The suffix of a robot pool's target.
pub const POOL_TARGET: &str = "pool";

/// Every configured channel, by name.
#[derive(Debug, Clone, Default)]
pub struct ChannelSet {
    pub channels: BTreeMap<ChannelName, Channel>,
}

/// Where the dispatcher and self-alerts read the channel set in force now (the
/// live runtime in the gateway; a fixed set or an `ArcSwap` in tests).
pub trait ChannelSource: Send + Sync {
    fn current(&self) -> Arc<ChannelSet>;
}

impl ChannelSource for arc_swap::ArcSwap<ChannelSet> {
    fn current(&self) -> Arc<ChannelSet> {
        self.load_full()
    }
}

impl ChannelSet {
    /// A set from channels (keyed by their names).
    pub fn new(channels: impl IntoIterator<Item = Channel>) -> Self {
        ChannelSet {
            channels: channels.into_iter().map(|c| (c.name.clone(), c)).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Channel> {
        self.channels.get(name)
    }

    /// The channel and destinations a stored target refers to, or `None` when the
    /// current config no longer has it (the deliveries then wait, they are not
    /// failed: a later reload may bring the destination back).
    pub fn resolve(&self, target: &str) -> Option<Resolved<'_>> {
        let target: Target = target.parse().ok()?;
        let (channel, key) = (target.channel(), target.key());
        let channel = self.channels.get(channel)?;
        if channel.pool {
            if key != POOL_TARGET || channel.destinations.is_empty() {
                return None;
            }
            return Some(Resolved {
                channel,
                members: channel.destinations.iter().collect(),
            });
        }
        let entry = channel.destinations.iter().find(|d| d.key == key)?;
        Some(Resolved {
            channel,
            members: vec![entry],
        })
    }
}

/// A stored target resolved against the current config.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    pub channel: &'a Channel,
    /// One destination, or every member of a robot pool.
    pub members: Vec<&'a DestinationEntry>,
}

/// One channel: a name producers send to, and where its messages go.
#[derive(Debug, Clone)]
pub struct Channel {
    pub name: ChannelName,
    /// Every destination receives each message (fan-out), unless `pool` is set.
    pub destinations: Vec<DestinationEntry>,
    /// Robot pool: the destinations are robots in the same group; each message is
    /// sent once, by whichever member's rate limit allows it next, in turn, so the
    /// group gets N times one robot's rate.
    pub pool: bool,
    pub retry: RetryPolicy,
    /// Merge a backlog into digests instead of waiting (opt-in).
    pub coalesce: Option<Coalesce>,
    /// Where a message goes when this channel dead-letters it or stays
    /// unavailable too long.
    pub fallback: Option<Fallback>,
    /// Deliver in accept order per target: one send at a time per target, a
    /// retry waiting in place. `false`: sends to one target run concurrently.
    pub ordered: bool,
    /// In an ordered channel, how long a message being retried holds the ones
    /// behind it; then they go on, and it is sent later, out of order.
    pub order_hold: Duration,
    /// Hours in which messages below a severity wait.
    pub quiet: Option<QuietHours>,
    /// Send what a silence held when it ends early (unless told otherwise).
    pub silence_release: bool,
}

/// A channel's quiet hours, compiled.
#[derive(Debug, Clone)]
pub struct QuietHours {
    pub tz: jiff::tz::TimeZone,
    pub span: crate::domain::window::Span,
    /// Severities below this rank are held.
    pub hold_below: u8,
}

/// The rank of a severity label: `info` 0, `warning` 1, `error` 2,
/// `critical` 3 (Prometheus' usual names and a few synonyms); unknown or
/// missing counts as `info`.
pub fn severity_rank(severity: Option<&str>) -> u8 {
    match severity.map(str::to_ascii_lowercase).as_deref() {
        Some("critical" | "crit" | "page" | "p1" | "fatal" | "disaster") => 3,
        Some("error" | "err" | "high" | "major" | "p2") => 2,
        Some("warning" | "warn" | "average" | "medium" | "minor" | "p3") => 1,
        _ => 0,
    }
}

impl QuietHours {
    /// Until when a message of `severity` waits at `now_ms` (`None`: it goes now).
    pub fn hold_until(&self, severity: Option<&str>, now_ms: i64) -> Option<i64> {
        if severity_rank(severity) >= self.hold_below {
            return None;
        }
        self.span.open_until(&self.tz, now_ms)
    }
}

impl Channel {
    /// A channel with default retry policy and no coalescing or fallback.
    pub fn new(name: impl Into<ChannelName>, destinations: Vec<DestinationEntry>) -> Self {
        Channel {
            name: name.into(),
            destinations,
            pool: false,
            retry: RetryPolicy::default(),
            coalesce: None,
            fallback: None,
            ordered: true,
            order_hold: DEFAULT_ORDER_HOLD,
            quiet: None,
            silence_release: false,
        }
    }

    /// The targets a new message to this channel gets one delivery row each for:
    /// one per destination, or a single one for a pool. Duplicate destination keys
    /// (the same robot listed twice) collapse into one.
    pub fn targets(&self) -> Vec<Target> {
        if self.pool {
            return vec![Target::new(&self.name, POOL_TARGET)];
        }
        let mut out: Vec<Target> = Vec::with_capacity(self.destinations.len());
        for d in &self.destinations {
            let t = Target::new(&self.name, d.key.as_str());
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }
}

/// One destination within a channel.
#[derive(Debug, Clone)]
pub struct DestinationEntry {
    /// Stable, secret-free key (the SDK's [`Destination::id`]); names the rate
    /// limiter and the circuit breaker.
    pub key: String,
    pub dest: Arc<dyn Destination>,
    /// Rate limits imrelay keeps to: the platform's documented ones by default,
    /// or the config's override. Every quota is honoured at once (Feishu bots:
    /// 5/s and 100/min).
    pub quotas: Vec<Quota>,
    pub breaker: BreakerConfig,
}

impl DestinationEntry {
    /// An entry with the destination's own key and documented quotas.
    pub fn new(dest: Arc<dyn Destination>) -> Self {
        DestinationEntry {
            key: dest.id().to_string(),
            quotas: dest.rate_limits(),
            dest,
            breaker: BreakerConfig::default(),
        }
    }

    pub fn with_quotas(mut self, quotas: Vec<Quota>) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn with_breaker(mut self, breaker: BreakerConfig) -> Self {
        self.breaker = breaker;
        self
    }
}

/// Retry policy for transient failures: exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Ceiling of the first retry's delay; doubles each attempt.
    pub base: Duration,
    /// Upper bound of the ceiling.
    pub cap: Duration,
    /// Failed attempts after which the delivery is dead-lettered.
    pub max_attempts: u32,
    /// Age (since the message was accepted) after which a failing delivery is
    /// dead-lettered instead of retried.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
            max_attempts: 15,
            max_age: Duration::from_secs(24 * 3600),
        }
    }
}

/// Circuit breaker settings for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive transient failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open before letting one probe through
    /// (half-open). Doubles each time a probe fails, up to `max_open_for`.
    pub open_for: Duration,
    pub max_open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            max_open_for: Duration::from_secs(300),
        }
    }
}

/// Coalescing under rate limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesce {
    /// When the backlog cannot drain within this delay at the destination's rate,
    /// pending messages are merged into digests.
    pub max_delay: Duration,
    /// Text budget of one digest in bytes, so a digest stays one request on the
    /// strictest platform (WeCom robot markdown: 4096 bytes).
    pub max_bytes: usize,
}

impl Default for Coalesce {
    fn default() -> Self {
        Coalesce {
            max_delay: Duration::from_secs(60),
            max_bytes: 3500,
        }
    }
}

/// A fallback channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fallback {
    /// The channel that receives the message (marked as a fallback).
    pub channel: String,
    /// Also fall back when a message is still undelivered this long after it was
    /// accepted (the primary is down or its breaker open). `None`: only on
    /// dead-letter.
    pub after: Option<Duration>,
}
