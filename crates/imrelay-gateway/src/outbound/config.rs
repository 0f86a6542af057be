//! `[outbound]`: what the gateway may connect to, how (directly or through a
//! proxy), and how long it waits.

use std::fmt;
use std::time::Duration;

use imrelay_sdk::http::Proxy;
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
    /// Send every request through this proxy (`http://`, `https://`,
    /// `socks5://`, `socks5h://`; credentials in the URL). A destination's own
    /// `proxy` replaces it. Unset: the `HTTPS_PROXY` family of environment
    /// variables applies, as for any HTTP client.
    pub proxy: Option<ProxyUrl>,
    /// Hosts reached directly, not through `proxy`: names (a leading dot or
    /// none both match subdomains), IP addresses, CIDR ranges, `*`. A
    /// destination's own `no_proxy` replaces the list.
    pub no_proxy: Vec<String>,
}

impl OutboundConfig {
    /// The proxy a destination uses: its own `proxy` and `no_proxy` where set,
    /// else these.
    pub fn proxy_for(
        &self,
        proxy: Option<&ProxyUrl>,
        no_proxy: Option<&[String]>,
    ) -> Result<Option<Proxy>, String> {
        let Some(url) = proxy.or(self.proxy.as_ref()) else {
            return Ok(None);
        };
        let no_proxy = no_proxy.unwrap_or(&self.no_proxy).to_vec();
        Proxy::new(url.expose(), no_proxy).map(Some)
    }
}

/// A proxy URL from the config: checked when loaded, and shown (in `Debug`,
/// serialized config, errors) with its password as `***`. The proxy is
/// trusted config: the SSRF guard does not judge its address.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ProxyUrl(String);

impl ProxyUrl {
    /// The URL with its credentials, for the HTTP client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ProxyUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Proxy::new(&s, Vec::new())?;
        Ok(ProxyUrl(s))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Proxy::new(&self.0, Vec::new()) {
            Ok(p) => f.write_str(&p.redacted()),
            Err(_) => f.write_str("***"),
        }
    }
}

impl Serialize for ProxyUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
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
        let at = KeyPath::root().key("outbound");
        check_timeouts(&self.timeouts, &at.key("timeouts"), issues);
        check_no_proxy(&self.no_proxy, &at.key("no_proxy"), issues);
    }
}

/// Each `no_proxy` entry is one host, address or range.
pub fn check_no_proxy(list: &[String], at: &KeyPath, issues: &mut Vec<ConfigIssue>) {
    for (i, e) in list.iter().enumerate() {
        if e.is_empty() || e.contains(|c: char| c == ',' || c.is_whitespace()) {
            issues.push(ConfigIssue::new(
                at.index(i).to_string(),
                format!("`{e}` must be one host name, IP address or CIDR range (e.g. `10.0.0.0/8`, `.internal.example.com`)"),
            ));
        }
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
