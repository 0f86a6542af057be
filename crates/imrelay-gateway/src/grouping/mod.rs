//! Grouping and dedup for every source, as Alertmanager groups alerts: a
//! channel's `group = { by = ["alertname", "host"], wait = "30s", interval =
//! "5m", repeat = "4h" }` puts the messages with the same values of the `by`
//! labels on that channel (their fingerprint) into one group.
//!
//! A message of a group is accepted and stored like any other, but its
//! deliveries are `merged` with the group's id instead of sent (visible in
//! `GET /v1/messages/{id}`, counted, never lost). The group is sent as one
//! notification (its newest message, with "×12 since 10:02 (重复 12 次)" when
//! it folded more than one): `wait` after it opened; then new content at
//! most every `interval`; the same content again at most every `repeat`.
//! The folded deliveries settle with the notification.
//!
//! State lives in the store (`message_groups`), so groups survive restarts
//! and are shared by instances; [`runner`] sends due groups with a
//! compare-and-set, so no group goes twice.
//!
//! Not grouped: messages held by a silence or a window (they stay
//! `silenced`), messages of a thread (their card is updated in place, which
//! dedups already), messages that start an escalation, and anything but
//! producers' messages.

pub mod handler;
pub mod notify;
pub mod runner;

use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;

use std::collections::BTreeMap;

use crate::channels::config::ChannelConfig;
use crate::domain::config::{duration, typed, ConfigIssue, KeyPath};
use crate::store::{GroupSpec, Labels, MessageKind, NewMessage};

/// Every channel's grouping, by channel name.
#[derive(Debug, Clone, Default)]
pub struct Groups {
    by_channel: BTreeMap<String, Grouping>,
}

impl Groups {
    /// Read and check the `group` of every channel; problems go to
    /// `issues`, each naming its key (`channels.NAME.group.repeat`).
    pub fn compile(
        channels: &BTreeMap<String, ChannelConfig>,
        issues: &mut Vec<ConfigIssue>,
    ) -> Groups {
        let mut by_channel = BTreeMap::new();
        for (name, ch) in channels {
            let Some(raw) = &ch.group else { continue };
            let at = KeyPath::root().key("channels").key(name).key("group");
            let cfg: GroupConfig = match typed(serde_json::Value::Object(raw.clone()), &at) {
                Ok(c) => c,
                Err(issue) => {
                    issues.push(issue);
                    continue;
                }
            };
            if let Some(g) = Grouping::compile(&cfg, &at, issues) {
                by_channel.insert(name.clone(), g);
            }
        }
        Groups { by_channel }
    }

    /// The grouping of `channel`, if it groups.
    pub fn get(&self, channel: &str) -> Option<&Grouping> {
        self.by_channel.get(channel)
    }

    /// Put each of `msgs` that its channel groups into its group, and each
    /// that its channel's quiet hours hold into the night's digest. Runs
    /// after the silences, windows and quiet hours decided (see
    /// `crate::silences::Holds::apply`); a message grouped by labels waits
    /// for its group, not for the quiet hours (its notification does).
    pub fn apply(&self, msgs: &mut [NewMessage], now: i64) {
        for m in msgs {
            if m.silenced_by.is_some()
                || m.thread.is_some()
                || m.escalation.is_some()
                || m.kind != MessageKind::Normal
                || m.targets.is_empty()
            {
                continue;
            }
            match (self.get(&m.channel), m.not_before) {
                (Some(g), _) => m.group = Some(g.spec(m)),
                (None, Some(until)) if until > now => m.group = Some(quiet_spec(m, until, now)),
                _ => continue,
            }
            m.not_before = None;
        }
    }
}

/// `group = { ... }` of a channel, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Labels whose values make the fingerprint (with the channel). Empty:
    /// every message of the channel is one group.
    #[serde(default)]
    pub by: Vec<String>,
    /// How long a new group waits for more before it is sent (default 30s).
    #[serde(default = "default_wait", with = "duration")]
    pub wait: Duration,
    /// Least time between two notifications of a group whose content
    /// changed (default 5m).
    #[serde(default = "default_interval", with = "duration")]
    pub interval: Duration,
    /// Least time between two notifications of the same content (default 4h).
    #[serde(default = "default_repeat", with = "duration")]
    pub repeat: Duration,
    /// Time zone of the "since" time in notifications (default Asia/Shanghai).
    #[serde(default)]
    pub time_zone: Option<String>,
}

fn default_wait() -> Duration {
    Duration::from_secs(30)
}
fn default_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_repeat() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// A channel's grouping, compiled.
#[derive(Debug, Clone)]
pub struct Grouping {
    pub by: Vec<String>,
    pub wait: Duration,
    pub interval: Duration,
    pub repeat: Duration,
    pub tz: TimeZone,
}

impl Grouping {
    /// Compile `group` at `at` (`channels.NAME.group`); problems go to `issues`.
    pub fn compile(
        c: &GroupConfig,
        at: &KeyPath,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Grouping> {
        let before = issues.len();
        for (i, l) in c.by.iter().enumerate() {
            if l.trim().is_empty() {
                issues.push(ConfigIssue::new(
                    at.key("by").index(i).to_string(),
                    "name a label, e.g. \"alertname\"",
                ));
            }
        }
        if c.interval.is_zero() {
            issues.push(ConfigIssue::new(
                at.key("interval").to_string(),
                "must be more than 0",
            ));
        }
        if c.repeat < c.interval {
            issues.push(ConfigIssue::new(
                at.key("repeat").to_string(),
                "must not be less than `interval`",
            ));
        }
        let tz = crate::domain::window::zone(c.time_zone.as_deref().unwrap_or("Asia/Shanghai"))
            .map_err(|e| {
                issues.push(ConfigIssue::new(
                    at.key("time_zone").to_string(),
                    e.to_string(),
                ))
            })
            .ok();
        (issues.len() == before).then(|| Grouping {
            by: c.by.clone(),
            wait: c.wait,
            interval: c.interval,
            repeat: c.repeat,
            tz: tz.unwrap_or(TimeZone::UTC),
        })
    }

    /// The group of message `m` on its channel.
    pub fn spec(&self, m: &NewMessage) -> GroupSpec {
        let labels: Labels = self
            .by
            .iter()
            .map(|k| {
                let v = match m.labels.get(k) {
                    Some(v) => v.clone(),
                    None if k == "channel" => m.channel.clone(),
                    None => String::new(),
                };
                (k.clone(), v)
            })
            .collect();
        GroupSpec {
            id: fingerprint(&m.channel, &labels),
            labels,
            wait_ms: self.wait.as_millis() as i64,
            interval_ms: self.interval.as_millis() as i64,
            repeat_ms: self.repeat.as_millis() as i64,
            content_hash: content_hash(m),
        }
    }
}

/// The group id of `labels` on `channel`: SHA-256 of both, hex, 32 digits.
pub fn fingerprint(channel: &str, labels: &Labels) -> String {
    let key = serde_json::json!([channel, labels]).to_string();
    crate::store::body_hash(key.as_bytes())[..32].to_string()
}

/// What a repeat has in common with the message it repeats: title and body
/// (not the id, time or mentions).
fn content_hash(m: &NewMessage) -> String {
    let key = serde_json::json!([m.message.title, m.message.body]).to_string();
    crate::store::body_hash(key.as_bytes())
}

/// The label of a quiet-hours digest group: when the quiet hours end (ms).
pub const QUIET_UNTIL: &str = "quiet_until";

/// The group of the messages a channel's quiet hours hold until `until`:
/// one per channel and night, sent as one digest of all of them when the
/// quiet hours end.
pub fn quiet_spec(m: &NewMessage, until: i64, now: i64) -> GroupSpec {
    let labels: Labels = [(QUIET_UNTIL.to_string(), until.to_string())].into();
    GroupSpec {
        id: fingerprint(&m.channel, &labels),
        labels,
        wait_ms: (until - now).max(0),
        interval_ms: 0,
        repeat_ms: 0,
        content_hash: content_hash(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imrelay_sdk::Message;

    fn msg(labels: &[(&str, &str)], text: &str) -> NewMessage {
        let mut m = NewMessage::new("ops", Message::text(text), vec!["ops/t".parse().unwrap()]);
        m.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m
    }

    fn grouping(by: &[&str]) -> Grouping {
        Grouping {
            by: by.iter().map(|s| s.to_string()).collect(),
            wait: default_wait(),
            interval: default_interval(),
            repeat: default_repeat(),
            tz: TimeZone::UTC,
        }
    }

    #[test]
    fn the_fingerprint_is_the_by_labels_and_the_channel() {
        let g = grouping(&["alertname", "host"]);
        let a = g.spec(&msg(
            &[("alertname", "Disk"), ("host", "db1"), ("x", "1")],
            "a",
        ));
        let b = g.spec(&msg(
            &[("alertname", "Disk"), ("host", "db1"), ("x", "2")],
            "b",
        ));
        let c = g.spec(&msg(&[("alertname", "Disk"), ("host", "db2")], "a"));
        assert_eq!(a.id, b.id, "other labels do not split a group");
        assert_ne!(a.id, c.id);
        assert_ne!(a.content_hash, b.content_hash);
        let mut other = msg(&[("alertname", "Disk"), ("host", "db1")], "a");
        other.channel = "dev".into();
        assert_ne!(g.spec(&other).id, a.id, "the channel is part of it");
        assert_eq!(a.wait_ms, 30_000);
    }

    #[test]
    fn each_channel_group_is_read_and_unknown_keys_are_named() {
        let channels: BTreeMap<String, ChannelConfig> = toml::from_str(
            r#"
[ops]
group = { by = ["alertname"], wait = "10s" }
destinations = []
[dev]
group = { by = ["host"], intervl = "1m" }
destinations = []
[plain]
destinations = []
"#,
        )
        .unwrap();
        let mut issues = Vec::new();
        let groups = Groups::compile(&channels, &mut issues);
        let ops = groups.get("ops").unwrap();
        assert_eq!(
            (ops.wait, ops.interval),
            (Duration::from_secs(10), default_interval())
        );
        assert!(groups.get("dev").is_none() && groups.get("plain").is_none());
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert!(
            issues[0].key.starts_with("channels.dev.group"),
            "{issues:?}"
        );
        assert!(issues[0].message.contains("intervl"), "{issues:?}");
    }

    #[test]
    fn config_mistakes_name_their_key() {
        let c: GroupConfig = toml::from_str(
            "by = [\"\"]\ninterval = \"10m\"\nrepeat = \"5m\"\ntime_zone = \"Mars/Base\"",
        )
        .unwrap();
        let mut issues = Vec::new();
        let at = KeyPath::root().key("channels").key("ops").key("group");
        assert!(Grouping::compile(&c, &at, &mut issues).is_none());
        let keys: Vec<String> = issues.iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "channels.ops.group.by[0]",
                "channels.ops.group.repeat",
                "channels.ops.group.time_zone"
            ]
        );
    }
}
