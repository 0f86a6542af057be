//! Error grading and self-alerts.
//!
//! Every error class and platform code maps to a [`Severity`]: critical
//! (credentials or permissions broken, destination gone, DLQ growing),
//! warning (rate limits, transient bursts, breaker open) or info. The mapping
//! is configurable under `[self_alerts.severity]`, most specific key first:
//! `"<platform>:<code>"` (e.g. `"dingtalk_robot:310000"`), then the class
//! (`permanent`, `token_invalid`, `transient`, `rate_limited`) or the alert
//! kind (`breaker_opened`, `token_refresh_failing`, `dlq_over_threshold`,
//! `destination_permanent_errors`).
//!
//! With `[self_alerts] channel = "..."`, imrelay pushes alerts about itself to that
//! channel, through its own queue: a breaker opened, token refresh failing,
//! the DLQ over `dlq_threshold`, a destination answering with permanent
//! errors. Alerts are deduplicated (one per kind and subject per
//! `dedup_window`) and rate limited (`max_per_window` per `rate_window`), and
//! never raised about the alert channel's own destinations or messages, so a
//! broken alert channel cannot feed itself.
//!
//! ```toml
//! [self_alerts]
//! channel = "ops-alerts"
//! min_severity = "warning"
//! dedup_window = "10m"
//! dlq_threshold = 100
//! [self_alerts.severity]
//! "dingtalk_robot:400101" = "info"   # message content errors: not an outage
//! ```
//!
//! Alert settings take effect at start.

mod config;

pub use config::{AlertKind, AlertsConfig, Severity};

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use imrelay_sdk::message::Body;
use imrelay_sdk::Message;
use parking_lot::Mutex;

use crate::channels::ChannelSource;
use crate::store::{NewMessage, Store};
use crate::telemetry::events;

#[derive(Default)]
struct AlertState {
    /// (kind, subject) -> when last sent.
    last: HashMap<(AlertKind, String), i64>,
    /// Send times within the rate window.
    sent: VecDeque<i64>,
    /// Last DLQ check (they are throttled).
    dlq_checked_at: Option<i64>,
    /// Failed token fetches already alerted about.
    token_failures_seen: u64,
}

/// Access-token fetches so far: (succeeded, failed).
pub type TokenFetches = Arc<dyn Fn() -> (u64, u64) + Send + Sync>;

struct Inner {
    cfg: AlertsConfig,
    store: Arc<dyn Store>,
    channels: Arc<dyn ChannelSource>,
    state: Mutex<AlertState>,
    token_fetches: Option<TokenFetches>,
}

/// The self-alerter. Cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("channel", &self.inner.cfg.channel)
            .finish()
    }
}

/// What became of one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Send,
    BelowThreshold,
    LoopSuppressed,
    Deduplicated,
    RateLimited,
}

impl Alerts {
    pub fn new(cfg: AlertsConfig, store: Arc<dyn Store>, channels: Arc<dyn ChannelSource>) -> Self {
        Alerts {
            inner: Arc::new(Inner {
                cfg,
                store,
                channels,
                state: Mutex::new(AlertState::default()),
                token_fetches: None,
            }),
        }
    }

    /// Watch access-token fetches: a failed attempt after new fetch failures
    /// raises `token_refresh_failing`. Call before cloning.
    pub fn with_token_fetches(mut self, f: TokenFetches) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            let (_, failed) = f();
            inner.state.get_mut().token_failures_seen = failed;
            inner.token_fetches = Some(f);
        }
        self
    }

    /// An attempt to `key` failed: when token fetches failed since the last
    /// check, the token is the likely cause; alert about it.
    pub fn attempt_failed(&self, channel: &str, key: &str, detail: &str) -> Option<Decision> {
        let (_, failed) = (self.inner.token_fetches.as_ref()?)();
        {
            let mut st = self.inner.state.lock();
            if failed <= st.token_failures_seen {
                return None;
            }
            st.token_failures_seen = failed;
        }
        Some(self.token_refresh_failing(channel, key, detail))
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.inner.cfg
    }

    /// A destination's circuit breaker opened.
    pub fn breaker_opened(&self, key: &str, failures: u32) -> Decision {
        let text = format!(
            "circuit breaker opened for destination {key} after {failures} consecutive transient failures; its messages wait and are retried when it recovers"
        );
        self.raise(AlertKind::BreakerOpened, key, None, Some(key), None, text)
    }

    /// The platform rejected a freshly refreshed access token, or fetching one
    /// failed.
    pub fn token_refresh_failing(&self, channel: &str, key: &str, detail: &str) -> Decision {
        let text = format!(
            "access token for destination {key} cannot be fetched or is rejected after a refresh: {detail}; check the app credentials, permissions and IP allow-list"
        );
        self.raise(
            AlertKind::TokenRefreshFailing,
            key,
            Some(channel),
            Some(key),
            None,
            text,
        )
    }

    /// A destination answered a delivery with a permanent error.
    pub fn permanent_error(
        &self,
        channel: &str,
        key: &str,
        code: Option<&str>,
        reason: &str,
    ) -> Decision {
        let severity = self
            .inner
            .cfg
            .severity
            .get(AlertKind::DestinationPermanentErrors.as_str())
            .copied()
            .unwrap_or_else(|| {
                self.inner
                    .cfg
                    .grade(events::platform_of(key), "permanent", code)
            });
        let text = format!(
            "destination {key} (channel {channel}) refused a message permanently{}: {reason}",
            code.map(|c| format!(" with code {c}")).unwrap_or_default()
        );
        self.raise(
            AlertKind::DestinationPermanentErrors,
            key,
            Some(channel),
            Some(key),
            Some(severity),
            text,
        )
    }

    /// Check the DLQ size against the threshold (at most every 5 s; runs in
    /// the background).
    pub fn check_dlq(&self) {
        let now = self.inner.store.now_ms();
        {
            let mut st = self.inner.state.lock();
            if st.dlq_checked_at.is_some_and(|t| now - t < 5_000) {
                return;
            }
            st.dlq_checked_at = Some(now);
        }
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(stats) = me.inner.store.stats().await else {
                return;
            };
            let threshold = me.inner.cfg.dlq_threshold;
            if stats.dead > threshold {
                let text = format!(
                    "{} deliveries are dead-lettered (threshold {threshold}); inspect them with GET /v1/dlq and replay or purge",
                    stats.dead
                );
                me.raise(AlertKind::DlqOverThreshold, "dlq", None, None, None, text);
            }
        });
    }

    /// Decide about an alert and, when it goes out, enqueue it to the alert
    /// channel (in the background). Returns the decision (tests).
    pub fn raise(
        &self,
        kind: AlertKind,
        subject: &str,
        channel: Option<&str>,
        destination: Option<&str>,
        severity: Option<Severity>,
        text: String,
    ) -> Decision {
        let cfg = &self.inner.cfg;
        let severity = severity.unwrap_or_else(|| cfg.kind_severity(kind));
        let decision = self.decide(kind, subject, channel, destination, severity);
        let result = match decision {
            Decision::Send => "sent",
            Decision::BelowThreshold => "below_threshold",
            Decision::LoopSuppressed => "loop_suppressed",
            Decision::Deduplicated => "deduplicated",
            Decision::RateLimited => "rate_limited",
        };
        events::alert(kind.as_str(), severity.as_str(), result);
        tracing::warn!(
            alert = kind.as_str(),
            severity = severity.as_str(),
            subject,
            decision = result,
            "{text}"
        );
        if decision != Decision::Send {
            return decision;
        }
        let Some(alert_channel) = cfg.channel.clone() else {
            return decision;
        };
        let set = self.inner.channels.current();
        let Some(ch) = set.get(&alert_channel) else {
            tracing::error!(channel = %alert_channel, "the alert channel is not in the current config; alert not sent");
            return decision;
        };
        let mut msg = Message::new(Body::Text {
            text: format!("[imrelay {}] {text}", severity.as_str().to_uppercase()),
        });
        msg.title = Some(format!(
            "[imrelay {}] {}",
            severity.as_str().to_uppercase(),
            kind.as_str().replace('_', " ")
        ));
        let mut nm = NewMessage::new(alert_channel, msg, ch.targets());
        nm.message.id = Some(nm.id.to_string());
        nm.trace_id = Some(crate::telemetry::trace::generate());
        drop(set);
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.enqueue(vec![nm]).await {
                tracing::error!(error = %e, "could not enqueue a self-alert");
            }
        });
        decision
    }

    fn decide(
        &self,
        kind: AlertKind,
        subject: &str,
        channel: Option<&str>,
        destination: Option<&str>,
        severity: Severity,
    ) -> Decision {
        let cfg = &self.inner.cfg;
        if severity < cfg.min_severity {
            return Decision::BelowThreshold;
        }
        if let Some(ac) = &cfg.channel {
            // Never alert about the alert channel itself: its failures would
            // raise alerts into the same failing channel.
            if channel == Some(ac.as_str()) {
                return Decision::LoopSuppressed;
            }
            if let Some(key) = destination {
                let set = self.inner.channels.current();
                if set
                    .get(ac)
                    .is_some_and(|c| c.destinations.iter().any(|d| d.key == key))
                {
                    return Decision::LoopSuppressed;
                }
            }
        }
        let now = self.inner.store.now_ms();
        let mut st = self.inner.state.lock();
        let dk = (kind, subject.to_string());
        let window = cfg.dedup_window.as_millis() as i64;
        if st.last.get(&dk).is_some_and(|&t| now - t < window) {
            return Decision::Deduplicated;
        }
        let rate_window = cfg.rate_window.as_millis() as i64;
        while st.sent.front().is_some_and(|&t| now - t >= rate_window) {
            st.sent.pop_front();
        }
        if st.sent.len() >= cfg.max_per_window as usize {
            return Decision::RateLimited;
        }
        st.sent.push_back(now);
        st.last.insert(dk, now);
        // Forget old dedup entries so the map stays small.
        st.last.retain(|_, t| now - *t < window);
        Decision::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn grading_uses_the_most_specific_key() {
        let mut cfg = AlertsConfig::default();
        assert_eq!(
            cfg.grade("dingtalk_robot", "permanent", Some("310000")),
            Severity::Critical
        );
        assert_eq!(
            cfg.grade("dingtalk_robot", "rate_limited", None),
            Severity::Warning
        );
        assert_eq!(cfg.grade("dingtalk_robot", "none", None), Severity::Info);
        cfg.severity
            .insert("dingtalk_robot:400101".into(), Severity::Info);
        cfg.severity.insert("transient".into(), Severity::Info);
        assert_eq!(
            cfg.grade("dingtalk_robot", "permanent", Some("400101")),
            Severity::Info
        );
        assert_eq!(
            cfg.grade("feishu_webhook", "permanent", Some("400101")),
            Severity::Critical
        );
        assert_eq!(
            cfg.grade("feishu_webhook", "transient", None),
            Severity::Info
        );
        assert_eq!(
            cfg.kind_severity(AlertKind::BreakerOpened),
            Severity::Warning
        );
        assert_eq!(
            cfg.kind_severity(AlertKind::DlqOverThreshold),
            Severity::Critical
        );
    }

    #[test]
    fn config_parses_from_toml() {
        let cfg: AlertsConfig = toml::from_str(
            "channel = \"ops\"\nmin_severity = \"critical\"\ndedup_window = \"5m\"\n[severity]\n\"wecom_robot:45009\" = \"warning\"\n",
        )
        .unwrap();
        assert_eq!(cfg.channel.as_deref(), Some("ops"));
        assert_eq!(cfg.min_severity, Severity::Critical);
        assert_eq!(cfg.dedup_window, Duration::from_secs(300));
        assert_eq!(cfg.severity["wecom_robot:45009"], Severity::Warning);
        let mut issues = Vec::new();
        cfg.validate(&["other".to_string()], &mut issues);
        assert_eq!(issues[0].key, "self_alerts.channel");
    }
}
