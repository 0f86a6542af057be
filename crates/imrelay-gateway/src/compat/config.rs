//! `[compat]`: the URL paths prometheus-webhook-dingtalk and PrometheusAlert
//! answered on, so a migration can start by pointing Alertmanager at imrelay
//! with its config unchanged.
//!
//! ```toml
//! [compat]
//! pwd = true              # POST /dingtalk/{target}/send → [alerting.routes.{target}]
//! prometheusalert = true  # POST /prometheusalert?type=dd&tpl=NAME&ddurl=...
//! # Those tools had no authentication. Without this, requests need an API key:
//! # `Authorization: Bearer KEY`, or `?key=KEY` / `?token=KEY` in the URL.
//! allow_unauthenticated = false
//!
//! # PrometheusAlert requests without ddurl/wxurl/fsurl went to app.conf's robots.
//! [compat.prometheusalert_defaults]
//! dd = "pa-dingtalk"
//! ```

use serde::Deserialize;

use crate::domain::config::ConfigIssue;

/// `[compat]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompatConfig {
    /// `POST /dingtalk/{target}/send`: the target is a route of `[alerting.routes]`.
    pub pwd: bool,
    /// `POST /prometheusalert?type=dd|wx|fs&tpl=NAME&ddurl=...`.
    pub prometheusalert: bool,
    /// Accept these endpoints without an API key, as the old tools did.
    pub allow_unauthenticated: bool,
    /// The channel for a PrometheusAlert request that names no robot URL, per type.
    pub prometheusalert_defaults: PaDefaults,
}

/// `[compat.prometheusalert_defaults]`: app.conf's `ddurl`, `wxurl`, `fsurl`, as channels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaDefaults {
    pub dd: Option<String>,
    pub wx: Option<String>,
    pub fs: Option<String>,
}

impl PaDefaults {
    pub fn for_type(&self, t: super::pa::PaType) -> Option<&str> {
        use super::pa::PaType;
        match t {
            PaType::Dd => self.dd.as_deref(),
            PaType::Wx => self.wx.as_deref(),
            PaType::Fs => self.fs.as_deref(),
        }
    }
}

impl CompatConfig {
    /// Default channels must exist.
    pub fn validate<'a>(
        &self,
        channels: impl Iterator<Item = &'a String> + Clone,
        issues: &mut Vec<ConfigIssue>,
    ) {
        let d = &self.prometheusalert_defaults;
        for (key, ch) in [("dd", &d.dd), ("wx", &d.wx), ("fs", &d.fs)] {
            if let Some(ch) = ch {
                if !channels.clone().any(|c| c == ch) {
                    issues.push(ConfigIssue::new(
                        format!("compat.prometheusalert_defaults.{key}"),
                        format!("no channel `{ch}`; name one of [channels]"),
                    ));
                }
            }
        }
        if self.allow_unauthenticated && !self.pwd && !self.prometheusalert {
            issues.push(ConfigIssue::new(
                "compat.allow_unauthenticated",
                "turns off authentication for no endpoint; set `pwd` or `prometheusalert` too, or remove it",
            ));
        }
    }

    /// A copy for the runtime, warning loudly (at start and on each reload)
    /// when anyone who reaches the port can send.
    pub fn open_warned(&self) -> CompatConfig {
        if self.allow_unauthenticated && (self.pwd || self.prometheusalert) {
            tracing::warn!(
                pwd = self.pwd,
                prometheusalert = self.prometheusalert,
                "[compat] allow_unauthenticated = true: ANYONE WHO CAN REACH THIS PORT CAN SEND \
                 to the configured groups through the compatibility endpoints; give Alertmanager \
                 an API key (Bearer, or ?key= in the URL) and remove it"
            );
        }
        self.clone()
    }
}
