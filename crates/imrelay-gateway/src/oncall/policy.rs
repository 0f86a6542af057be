//! `[[escalation_policies]]`: the steps an unacknowledged message walks.
//!
//! ```toml
//! [[escalation_policies]]
//! name = "critical"
//! repeat = 1                             # walk the steps once more after the last (default 0)
//! [[escalation_policies.steps]]
//! after = "5m"                           # wait after the previous step (the first: after the message)
//! notify = [
//!   { urgent = "app", to = ["oncall:dba"] },     # the platform's urgent push on the alert itself
//!   { channel = "sms", to = ["oncall:dba"] },    # a message to a channel, addressed to them
//! ]
//! # stop_when_read = true              # a read receipt (DingTalk app messages) acknowledges
//! [[escalation_policies.steps]]
//! after = "10m"
//! notify = [{ channel = "voice", to = ["oncall:dba", "label:owner"] }]
//! ```
//!
//! A step's `channel` message @s the people in IM groups and is sent to
//! their phone numbers or email addresses on SMS, voice and email channels.

use std::time::Duration;

use imrelay_sdk::UrgentKind;
use serde::Deserialize;

use super::people::Directory;
use super::schedule::Schedule;
use super::who::{parse_all, Who};
use crate::domain::config::{duration, ConfigIssue};

/// `[[escalation_policies]]` as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    #[serde(default)]
    pub repeat: u32,
    /// End the escalation when someone has read the alert, where its
    /// platform reports reads (DingTalk app messages), as an acknowledgement.
    #[serde(default)]
    pub stop_when_read: bool,
    pub steps: Vec<StepConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepConfig {
    #[serde(with = "duration")]
    pub after: Duration,
    pub notify: Vec<NotifyConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub urgent: Option<UrgentKind>,
    pub to: Vec<String>,
}

/// Where one notification of a step goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Channel(String),
    /// The platform's own urgent push on the alert (Feishu urgent_app,
    /// urgent_sms, urgent_phone; DingTalk DING).
    Urgent(UrgentKind),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub via: Via,
    pub to: Vec<Who>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub after: Duration,
    pub notify: Vec<Notify>,
}

/// A compiled policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub steps: Vec<Step>,
    pub repeat: u32,
    pub stop_when_read: bool,
}

impl Policy {
    /// Compile; problems are pushed to `issues`, each naming its key.
    /// `channel_exists` checks a step's channel.
    pub fn compile(
        c: &PolicyConfig,
        i: usize,
        people: &Directory,
        schedules: &[Schedule],
        channel_exists: &dyn Fn(&str) -> bool,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Policy> {
        let before = issues.len();
        let at = format!("escalation_policies[{i}]");
        if c.name.trim().is_empty() {
            issues.push(ConfigIssue::new(format!("{at}.name"), "name the policy"));
        }
        if c.steps.is_empty() {
            issues.push(ConfigIssue::new(
                format!("{at}.steps"),
                "give at least one step: [[escalation_policies.steps]] with after and notify",
            ));
        }
        if c.repeat > 10 {
            issues.push(ConfigIssue::new(
                format!("{at}.repeat"),
                "repeat at most 10 times; nobody answers the eleventh call either",
            ));
        }
        let mut steps = Vec::new();
        for (j, s) in c.steps.iter().enumerate() {
            let at = format!("{at}.steps[{j}]");
            if s.notify.is_empty() {
                issues.push(ConfigIssue::new(
                    format!("{at}.notify"),
                    "say whom to notify how, e.g. [{ channel = \"sms\", to = [\"oncall:dba\"] }]",
                ));
            }
            let mut notify = Vec::new();
            for (k, n) in s.notify.iter().enumerate() {
                let at = format!("{at}.notify[{k}]");
                let via = match (&n.channel, n.urgent) {
                    (Some(ch), None) => {
                        if !channel_exists(ch) {
                            issues.push(ConfigIssue::new(
                                format!("{at}.channel"),
                                format!("there is no channel `{ch}`"),
                            ));
                        }
                        Via::Channel(ch.clone())
                    }
                    (None, Some(u)) => Via::Urgent(u),
                    _ => {
                        issues.push(ConfigIssue::new(
                            at.clone(),
                            "give either `channel` (a message to a channel) or `urgent` (app, sms or phone: the platform's urgent push on the alert)",
                        ));
                        continue;
                    }
                };
                if n.to.is_empty() {
                    issues.push(ConfigIssue::new(
                        format!("{at}.to"),
                        "name whom to notify: [\"oncall:SCHEDULE\"], [\"label:owner\"] or people's names",
                    ));
                }
                let to = parse_all(&n.to, &format!("{at}.to"), issues);
                for (m, w) in to.iter().enumerate() {
                    w.check(&format!("{at}.to[{m}]"), people, schedules, issues);
                }
                notify.push(Notify { via, to });
            }
            steps.push(Step {
                after: s.after,
                notify,
            });
        }
        (issues.len() == before).then(|| Policy {
            name: c.name.clone(),
            steps,
            repeat: c.repeat,
            stop_when_read: c.stop_when_read,
        })
    }

    /// How many steps it fires in all, counting repeats.
    pub fn total_steps(&self) -> i64 {
        self.steps.len() as i64 * (i64::from(self.repeat) + 1)
    }

    /// Fired step `n` (counting repeats): the policy's step and the round.
    pub fn step(&self, n: i64) -> Option<(usize, u32, &Step)> {
        if n < 0 || n >= self.total_steps() {
            return None;
        }
        let len = self.steps.len() as i64;
        let idx = (n % len) as usize;
        Some((idx, (n / len) as u32, &self.steps[idx]))
    }

    /// The wait before the first step.
    pub fn first_delay(&self) -> Duration {
        self.steps.first().map_or(Duration::ZERO, |s| s.after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(text: &str) -> (Option<Policy>, Vec<ConfigIssue>) {
        let c: PolicyConfig = toml::from_str(text).unwrap();
        let people: Vec<super::super::people::PersonConfig> =
            vec![toml::from_str("name = \"zhangsan\"").unwrap()];
        let dir = Directory::compile(&people, &mut Vec::new());
        let mut issues = Vec::new();
        let p = Policy::compile(&c, 0, &dir, &[], &|c| c == "sms", &mut issues);
        (p, issues)
    }

    #[test]
    fn steps_repeat_in_rounds() {
        let (p, issues) = compile(
            r#"
            name = "critical"
            repeat = 1
            [[steps]]
            after = "5m"
            notify = [{ urgent = "app", to = ["zhangsan"] }]
            [[steps]]
            after = "10m"
            notify = [{ channel = "sms", to = ["zhangsan", "label:owner"] }]
        "#,
        );
        assert!(issues.is_empty(), "{issues:?}");
        let p = p.unwrap();
        assert_eq!(p.total_steps(), 4);
        assert_eq!(p.first_delay(), Duration::from_secs(300));
        let (idx, round, s) = p.step(3).unwrap();
        assert_eq!((idx, round), (1, 1));
        assert_eq!(s.notify[0].via, Via::Channel("sms".into()));
        assert!(p.step(4).is_none());
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let (p, issues) = compile(
            r#"
            name = "critical"
            [[steps]]
            after = "5m"
            notify = [
              { channel = "pager", to = ["oncall:dba"] },
              { channel = "sms", urgent = "app", to = ["zhangsan"] },
              { urgent = "phone", to = ["ghost"] },
            ]
        "#,
        );
        assert!(p.is_none());
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "escalation_policies[0].steps[0].notify[0].channel",
                "escalation_policies[0].steps[0].notify[0].to[0]",
                "escalation_policies[0].steps[0].notify[1]",
                "escalation_policies[0].steps[0].notify[2].to[0]",
            ]
        );
    }
}
