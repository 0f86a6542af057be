//! `[console]`: the web console's users and sessions, as written, and what
//! they compile into ([`Users`]).
//!
//! ```toml
//! [console]
//! enabled = true
//! session_lifetime = "12h"
//! audit_keep = "90d"             # the audit trail's rows, then retention deletes them
//!
//! [[console.users]]
//! name = "alice"
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$..."   # `imrelay user hash`
//! channels = ["alerts"]          # or ["*"]; the same meaning as [[api_keys]]
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Deserialize;

use crate::domain::config::{duration, ConfigIssue, KeyPath};
use crate::http::auth::{Caller, Scope};

/// `[console]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Serve the console at `/ui/` (off unless set).
    pub enabled: bool,
    /// How long a login lasts.
    #[serde(with = "duration")]
    pub session_lifetime: Duration,
    /// How long the audit trail keeps a row.
    #[serde(with = "duration")]
    pub audit_keep: Duration,
    /// A demo user for every channel whose random password is printed at
    /// start (the quickstart); never in production.
    pub demo_user: Option<String>,
    pub users: Vec<ConsoleUserConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: false,
            session_lifetime: Duration::from_secs(12 * 3600),
            audit_keep: Duration::from_secs(90 * 86_400),
            demo_user: None,
            users: Vec::new(),
        }
    }
}

/// `[[console.users]]`.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUserConfig {
    pub name: String,
    /// An argon2 PHC string (`imrelay user hash`).
    pub password_hash: String,
    /// Channels this user sees and acts on; `["*"]` for all.
    pub channels: Vec<String>,
}

impl std::fmt::Debug for ConsoleUserConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleUserConfig")
            .field("name", &self.name)
            .field("password_hash", &"***")
            .field("channels", &self.channels)
            .finish()
    }
}

impl ConsoleConfig {
    /// Every problem, naming its key.
    pub fn validate<'a>(
        &self,
        channels: impl Iterator<Item = &'a String> + Clone,
        issues: &mut Vec<ConfigIssue>,
    ) {
        if self.session_lifetime < Duration::from_secs(60)
            || self.session_lifetime > Duration::from_secs(30 * 86_400)
        {
            issues.push(ConfigIssue::new(
                "console.session_lifetime",
                "must be between 1m and 30d",
            ));
        }
        if self.audit_keep < Duration::from_secs(3600) {
            issues.push(ConfigIssue::new(
                "console.audit_keep",
                "must be at least 1h",
            ));
        }
        let mut names = BTreeSet::new();
        if let Some(d) = &self.demo_user {
            if !valid_name(d) {
                issues.push(ConfigIssue::new(
                    "console.demo_user",
                    "must be 1-64 letters, digits, `.`, `_` or `-`",
                ));
            }
            names.insert(d.clone());
        }
        for (i, u) in self.users.iter().enumerate() {
            let at = KeyPath::root().key("console").key("users").index(i);
            if !valid_name(&u.name) {
                issues.push(ConfigIssue::new(
                    at.key("name").to_string(),
                    "must be 1-64 letters, digits, `.`, `_` or `-`",
                ));
            } else if !names.insert(u.name.clone()) {
                issues.push(ConfigIssue::new(
                    at.key("name").to_string(),
                    format!("`{}` is used by another user; names must be unique", u.name),
                ));
            }
            if let Err(why) = super::auth::check_phc(&u.password_hash) {
                issues.push(ConfigIssue::new(
                    at.key("password_hash").to_string(),
                    why.to_string(),
                ));
            }
            if u.channels.is_empty() {
                issues.push(ConfigIssue::new(
                    at.key("channels").to_string(),
                    "lists no channel; name the channels this user may use, or [\"*\"] for all",
                ));
            }
            for (j, c) in u.channels.iter().enumerate() {
                if c != "*" && !channels.clone().any(|k| k == c) {
                    issues.push(ConfigIssue::new(
                        at.key("channels").index(j).to_string(),
                        format!("no channel `{c}` is defined"),
                    ));
                }
            }
        }
        if self.enabled && self.users.is_empty() && self.demo_user.is_none() {
            issues.push(ConfigIssue::new(
                "console.users",
                "the console is enabled but has no user; add [[console.users]] (`imrelay user hash` makes a password_hash) or log in with an API key",
            ));
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A user the console knows.
#[derive(Clone)]
pub struct User {
    pub caller: Arc<Caller>,
    pub password_hash: String,
}

/// `[console]` compiled: who may log in, with which scope.
#[derive(Clone, Default)]
pub struct Users {
    pub enabled: bool,
    pub session_lifetime: Duration,
    pub users: BTreeMap<String, User>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("enabled", &self.enabled)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Users {
    /// The users of a validated `[console]`.
    pub fn compile(cfg: &ConsoleConfig) -> Users {
        let mut users = BTreeMap::new();
        if let Some(name) = &cfg.demo_user {
            if let Some(demo) = demo_credentials() {
                users.insert(
                    name.clone(),
                    User {
                        caller: Arc::new(Caller {
                            name: name.clone(),
                            scope: Scope::All,
                        }),
                        password_hash: demo.1.clone(),
                    },
                );
            }
        }
        for u in &cfg.users {
            let scope = if u.channels.iter().any(|c| c == "*") {
                Scope::All
            } else {
                Scope::Channels(u.channels.iter().cloned().collect())
            };
            users.insert(
                u.name.clone(),
                User {
                    caller: Arc::new(Caller {
                        name: u.name.clone(),
                        scope,
                    }),
                    password_hash: u.password_hash.clone(),
                },
            );
        }
        Users {
            enabled: cfg.enabled,
            session_lifetime: cfg.session_lifetime,
            users,
        }
    }
}

/// The demo user's password and its hash: made once per process, so a reload
/// keeps the password that was printed.
pub fn demo_credentials() -> Option<&'static (String, String)> {
    static DEMO: OnceLock<Option<(String, String)>> = OnceLock::new();
    DEMO.get_or_init(|| {
        let password = super::auth::random_token(12);
        let hash = super::auth::hash_password(&password).ok()?;
        Some((password, hash))
    })
    .as_ref()
}

/// What `imrelay serve` prints at start for `[console] demo_user`.
pub fn demo_login(cfg: &ConsoleConfig) -> Option<(String, String)> {
    let name = cfg.demo_user.as_ref().filter(|_| cfg.enabled)?;
    demo_credentials().map(|(p, _)| (name.clone(), p.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> ConsoleConfig {
        let v: toml::Value = toml::from_str(toml).unwrap();
        serde_json::from_value(serde_json::to_value(v).unwrap()).unwrap()
    }

    #[test]
    fn errors_name_the_key() {
        let cfg = parse(
            r#"
            enabled = true
            session_lifetime = "1s"
            audit_keep = "10m"
            [[users]]
            name = "a b"
            password_hash = "plain"
            channels = ["nope"]
            [[users]]
            name = "ok"
            password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            channels = []
            "#,
        );
        let chans = ["alerts".to_string()];
        let mut issues = Vec::new();
        cfg.validate(chans.iter(), &mut issues);
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "console.session_lifetime",
                "console.audit_keep",
                "console.users[0].name",
                "console.users[0].password_hash",
                "console.users[0].channels[0]",
                "console.users[1].channels",
            ],
            "{issues:?}"
        );
    }

    #[test]
    fn scopes_are_those_of_api_keys() {
        let hash = crate::console::auth::hash_password("pw").unwrap();
        let cfg = ConsoleConfig {
            enabled: true,
            users: vec![ConsoleUserConfig {
                name: "ops".into(),
                password_hash: hash,
                channels: vec!["alerts".into()],
            }],
            ..Default::default()
        };
        let u = Users::compile(&cfg);
        let ops = &u.users["ops"].caller;
        assert!(ops.may_use("alerts") && !ops.may_use("deploys"));
        assert!(!format!("{u:?}").contains("argon2"));
    }

    #[test]
    fn the_audit_trail_is_kept_ninety_days_unless_set() {
        assert_eq!(
            ConsoleConfig::default().audit_keep,
            Duration::from_secs(90 * 86_400)
        );
        let cfg = parse(r#"audit_keep = "30d""#);
        assert_eq!(cfg.audit_keep, Duration::from_secs(30 * 86_400));
    }
}
