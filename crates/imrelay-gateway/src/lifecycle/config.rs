//! `[lifecycle]`: how cards show what people did, and who may do it.
//!
//! ```toml
//! [lifecycle]
//! time_zone = "Asia/Shanghai"       # times on cards (acknowledged at, silenced until)
//! allowed_users = ["ou_7d8a6e6df7621556ce0d21922b676706ccs"]  # who may press card buttons; empty: anyone who sees the card
//!
//! [lifecycle.names]                 # platform user ids shown as names
//! ou_7d8a6e6df7621556ce0d21922b676706ccs = "张三"
//! ```
//!
//! An Alertmanager route puts buttons on its cards with `actions` and may
//! narrow `allowed_users` for its own cards (see [`crate::alertmanager`]).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::domain::config::ConfigIssue;

/// The zone card times are shown in unless `[lifecycle] time_zone` says otherwise.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

/// `[lifecycle]` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// IANA time zone for times on cards (default Asia/Shanghai).
    pub time_zone: Option<String>,
    /// Platform user ids allowed to press card buttons; empty: anyone who
    /// sees the card.
    pub allowed_users: Vec<String>,
    /// Names shown on cards for platform user ids.
    pub names: BTreeMap<String, String>,
}

/// `[lifecycle]` compiled.
#[derive(Debug, Clone)]
pub struct LifecycleSettings {
    pub time_zone: jiff::tz::TimeZone,
    pub allowed_users: BTreeSet<String>,
    pub names: BTreeMap<String, String>,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        LifecycleSettings {
            time_zone: zone(DEFAULT_TIME_ZONE).expect("the bundled tz database has Asia/Shanghai"),
            allowed_users: BTreeSet::new(),
            names: BTreeMap::new(),
        }
    }
}

fn zone(name: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::TimeZone::get(name).map_err(|e| {
        format!("`{name}` is not a known time zone ({e}); use an IANA name such as \"Asia/Shanghai\" or \"UTC\"")
    })
}

impl LifecycleConfig {
    /// Compile; problems are pushed to `issues`, each naming its key.
    pub fn compile(&self, issues: &mut Vec<ConfigIssue>) -> LifecycleSettings {
        let mut out = LifecycleSettings::default();
        if let Some(name) = &self.time_zone {
            match zone(name) {
                Ok(tz) => out.time_zone = tz,
                Err(e) => issues.push(ConfigIssue::new("lifecycle.time_zone", e)),
            }
        }
        for (i, u) in self.allowed_users.iter().enumerate() {
            if u.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    format!("lifecycle.allowed_users[{i}]"),
                    "is empty; list platform user ids (Feishu open_id, DingTalk userId, WeCom userid)",
                ));
            }
        }
        out.allowed_users = self.allowed_users.iter().cloned().collect();
        out.names = self.names.clone();
        out
    }
}

impl LifecycleSettings {
    /// The name shown for `user_id`, where configured.
    pub fn name_of(&self, user_id: &str) -> Option<String> {
        self.names.get(user_id).cloned()
    }
}
