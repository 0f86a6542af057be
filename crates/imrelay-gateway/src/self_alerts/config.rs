//! `[self_alerts]`: what imrelay alerts about itself, and how severe each error is.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::config::{duration, ConfigIssue};

/// How bad something is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a self-alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    BreakerOpened,
    TokenRefreshFailing,
    DlqOverThreshold,
    DestinationPermanentErrors,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::BreakerOpened => "breaker_opened",
            AlertKind::TokenRefreshFailing => "token_refresh_failing",
            AlertKind::DlqOverThreshold => "dlq_over_threshold",
            AlertKind::DestinationPermanentErrors => "destination_permanent_errors",
        }
    }
}

/// `[self_alerts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// The channel self-alerts go to; none: alerts are only logged and counted.
    pub channel: Option<String>,
    /// Alerts below this severity are not sent.
    pub min_severity: Severity,
    /// One alert per kind and subject within this window.
    #[serde(with = "duration")]
    pub dedup_window: Duration,
    /// At most this many alerts per `rate_window`, all kinds together.
    pub max_per_window: u32,
    #[serde(with = "duration")]
    pub rate_window: Duration,
    /// Alert when more deliveries than this are dead-lettered.
    pub dlq_threshold: u64,
    /// Severity overrides: `"<platform>:<code>"`, a class, or an alert kind.
    pub severity: BTreeMap<String, Severity>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            channel: None,
            min_severity: Severity::Warning,
            dedup_window: Duration::from_secs(600),
            max_per_window: 10,
            rate_window: Duration::from_secs(600),
            dlq_threshold: 100,
            severity: BTreeMap::new(),
        }
    }
}

impl AlertsConfig {
    /// Check against the configured channel names.
    pub fn validate<'a>(
        &self,
        channels: impl IntoIterator<Item = &'a String>,
        issues: &mut Vec<ConfigIssue>,
    ) {
        if let Some(c) = &self.channel {
            if !channels.into_iter().any(|n| n == c) {
                issues.push(ConfigIssue::new(
                    "self_alerts.channel",
                    format!("no channel `{c}` is configured; name one of [channels.*] or remove `self_alerts.channel`"),
                ));
            }
        }
        if self.max_per_window == 0 {
            issues.push(ConfigIssue::new(
                "self_alerts.max_per_window",
                "must be at least 1",
            ));
        }
    }

    /// The severity of an error: class `class` (`permanent`, `token_invalid`,
    /// `transient`, `rate_limited`, `none`) with platform `code` from a
    /// destination of kind `platform`.
    pub fn grade(&self, platform: &str, class: &str, code: Option<&str>) -> Severity {
        if let Some(code) = code {
            if let Some(s) = self.severity.get(&format!("{platform}:{code}")) {
                return *s;
            }
        }
        if let Some(s) = self.severity.get(class) {
            return *s;
        }
        match class {
            "permanent" | "token_invalid" => Severity::Critical,
            "transient" | "rate_limited" => Severity::Warning,
            _ => Severity::Info,
        }
    }

    /// The severity of a self-alert kind.
    pub fn kind_severity(&self, kind: AlertKind) -> Severity {
        if let Some(s) = self.severity.get(kind.as_str()) {
            return *s;
        }
        match kind {
            AlertKind::BreakerOpened => Severity::Warning,
            AlertKind::TokenRefreshFailing | AlertKind::DlqOverThreshold => Severity::Critical,
            AlertKind::DestinationPermanentErrors => Severity::Critical,
        }
    }
}
