//! `[outbound]`: what the gateway may connect to, and how long it waits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::config::{duration, ConfigIssue, KeyPath};

/// `[outbound]`: what the gateway may connect to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Let generic `webhook` destinations reach private, loopback and link-local
    /// addresses. Off by default (SSRF); prefer `allow_private` per destination.
    pub allow_private_networks: bool,
    /// Default timeouts for every destination.
    pub timeouts: TimeoutsConfig,
}

/// Outbound timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// TCP + TLS connect.
    #[serde(with = "duration")]
    pub connect: Duration,
    /// Longest silence while waiting for (more of) the answer.
    #[serde(with = "duration")]
    pub read: Duration,
    /// The whole request, including reading the answer.
    #[serde(with = "duration")]
    pub total: Duration,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        let t = imrelay_sdk::http::Timeouts::default();
        TimeoutsConfig {
            connect: t.connect,
            read: t.read,
            total: t.total,
        }
    }
}

impl From<TimeoutsConfig> for imrelay_sdk::http::Timeouts {
    fn from(t: TimeoutsConfig) -> Self {
        imrelay_sdk::http::Timeouts {
            connect: t.connect,
            read: t.read,
            total: t.total,
        }
    }
}

impl OutboundConfig {
    pub fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        check_timeouts(
            &self.timeouts,
            &KeyPath::root().key("outbound").key("timeouts"),
            issues,
        );
    }
}

pub fn check_timeouts(t: &TimeoutsConfig, at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    if t.connect.is_zero() {
        issues.push(ConfigIssue::new(
            at.key("connect").to_string(),
            "must be more than 0",
        ));
    }
    if t.total.is_zero() {
        issues.push(ConfigIssue::new(
            at.key("total").to_string(),
            "must be more than 0",
        ));
    }
}
