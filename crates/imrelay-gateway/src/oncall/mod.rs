//! On call: the directory of people (`[[people]]`), who is on call
//! (`[[schedules]]`, overrides over the API) and escalation until someone
//! acknowledges (`[[escalation_policies]]`).
//!
//! At accept, [`OnCall::apply`] turns a message's references (`mentions =
//! ["oncall:dba", "label:owner"]`) into the platform ids of its channel and
//! starts the escalation its route or request names. The escalation runs in
//! [`escalate`]: each step is fired once, in the transaction that queues its
//! notifications, so a restart or a second instance neither skips nor
//! repeats one. An acknowledgement or a resolve ends it.

pub mod escalate;
pub mod handler;
pub mod people;
pub mod policy;
pub mod schedule;
pub mod who;

use std::collections::BTreeMap;
use std::sync::Arc;

use imrelay_sdk::message::{Body, Platform};
use parking_lot::RwLock;

use crate::channels::{Channel, ChannelSet};
use crate::domain::config::ConfigIssue;
use crate::store::{EscalationStart, NewMessage, Override, Store};

use people::{Address, Directory, PersonConfig};
use policy::{Policy, PolicyConfig};
use schedule::{Schedule, ScheduleConfig};
use who::{Context, Who};

/// The sections this feature owns, as written.
#[derive(Debug, Clone, Default)]
pub struct OnCallConfig {
    pub people: Vec<PersonConfig>,
    pub schedules: Vec<ScheduleConfig>,
    pub policies: Vec<PolicyConfig>,
}

/// The compiled directory, schedules and policies of one config.
#[derive(Debug, Clone, Default)]
pub struct OnCall {
    pub people: Directory,
    pub schedules: Vec<Schedule>,
    pub policies: BTreeMap<String, Policy>,
}

impl OnCall {
    /// Compile; problems are pushed to `issues`, each naming its key.
    pub fn compile(
        cfg: &OnCallConfig,
        channel_exists: &dyn Fn(&str) -> bool,
        issues: &mut Vec<ConfigIssue>,
    ) -> OnCall {
        let people = Directory::compile(&cfg.people, issues);
        let mut schedules: Vec<Schedule> = Vec::new();
        for (i, s) in cfg.schedules.iter().enumerate() {
            if cfg.schedules[..i].iter().any(|x| x.name == s.name) {
                issues.push(ConfigIssue::new(
                    format!("schedules[{i}].name"),
                    format!("`{}` is defined twice", s.name),
                ));
            }
            schedules.extend(Schedule::compile(s, i, &people, issues));
        }
        let mut policies = BTreeMap::new();
        for (i, p) in cfg.policies.iter().enumerate() {
            if let Some(p) = Policy::compile(p, i, &people, &schedules, channel_exists, issues) {
                if policies.insert(p.name.clone(), p).is_some() {
                    issues.push(ConfigIssue::new(
                        format!("escalation_policies[{i}].name"),
                        "defined twice",
                    ));
                }
            }
        }
        OnCall {
            people,
            schedules,
            policies,
        }
    }

    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }

    /// Check references written in other sections (routes' `mentions` and
    /// `escalation`) under `at`.
    pub fn check_refs(
        &self,
        mentions: &[String],
        escalation: Option<&str>,
        at: &crate::domain::config::KeyPath,
        issues: &mut Vec<ConfigIssue>,
    ) {
        let key = at.key("mentions").to_string();
        for (i, w) in who::parse_all(mentions, &key, issues).iter().enumerate() {
            w.check(
                &format!("{key}[{i}]"),
                &self.people,
                &self.schedules,
                issues,
            );
        }
        if let Some(p) = escalation {
            if !self.policies.contains_key(p) {
                issues.push(ConfigIssue::new(
                    at.key("escalation").to_string(),
                    format!(
                        "there is no escalation policy `{p}`; define it in [[escalation_policies]]"
                    ),
                ));
            }
        }
    }

    /// At accept: resolve each message's references into mentions for its
    /// channel (unresolvable ones become a visible note in the text) and
    /// start the escalation it asks for.
    pub fn apply(
        &self,
        msgs: &mut [NewMessage],
        channels: &ChannelSet,
        overrides: &[Override],
        now: i64,
    ) {
        for m in msgs.iter_mut() {
            let refs = std::mem::take(&mut m.oncall.mentions);
            if !refs.is_empty() {
                let refs: Vec<Who> = refs.iter().filter_map(|r| Who::parse(r).ok()).collect();
                let mut labels = std::mem::take(&mut m.oncall.labels);
                for (k, v) in &m.labels {
                    labels.insert(k.clone(), v.clone());
                }
                let cx = Context {
                    people: &self.people,
                    schedules: &self.schedules,
                    overrides,
                    labels: &labels,
                    annotations: &m.oncall.annotations,
                    now_ms: now,
                };
                let r = cx.resolve(&refs);
                if let Some(ch) = channels.get(&m.channel) {
                    self.mention(&mut m.message, ch, &r.people, false);
                }
                note(&mut m.message.body, &r.notes);
            }
            if let Some(name) = m.oncall.escalation.take() {
                match self.policies.get(&name) {
                    Some(p) if !m.resolved => {
                        m.escalation = Some(EscalationStart {
                            policy: name,
                            first_due: now + p.first_delay().as_millis() as i64,
                        })
                    }
                    Some(_) => {}
                    None => note(
                        &mut m.message.body,
                        &[format!("escalation policy `{name}` does not exist")],
                    ),
                }
            }
        }
    }

    /// Add `people` to `msg` as `channel`'s platforms know them: IM
    /// platforms @ them (a DingTalk robot by their phone number, else their
    /// userid; Feishu by open_id; WeCom by userid), SMS and voice channels
    /// send to their phone numbers, email channels to their addresses. With
    /// `direct`, app destinations also send to them personally (an
    /// escalation step reaches people, not a chat).
    pub fn mention(
        &self,
        msg: &mut imrelay_sdk::Message,
        channel: &Channel,
        people: &[String],
        direct: bool,
    ) {
        fn push(list: &mut Vec<String>, id: String) {
            if !list.contains(&id) {
                list.push(id);
            }
        }
        let dir = &self.people;
        for p in people {
            for platform in platforms(channel) {
                let user = dir.address(p, Address::UserId(platform));
                let by_user = |u: String, msg: &mut imrelay_sdk::Message| {
                    push(
                        msg.mentions.per_platform.entry(platform).or_default(),
                        u.clone(),
                    );
                    if direct {
                        push(&mut msg.recipients, u);
                    }
                };
                match platform {
                    // A group robot @s by phone number; a direct message
                    // needs the userid.
                    Platform::Dingtalk => {
                        let mobile = dir.address(p, Address::DingtalkMobile);
                        match (user, mobile) {
                            (Some(u), m) if direct || m.is_none() => by_user(u, msg),
                            (_, Some(m)) => push(&mut msg.mentions.mobiles, m),
                            (_, None) => {}
                        }
                    }
                    Platform::Feishu | Platform::Wecom => {
                        if let Some(u) = user {
                            by_user(u, msg);
                        }
                    }
                    Platform::Aliyun | Platform::Tencent => {
                        if let Some(m) = dir.address(p, Address::Phone) {
                            push(&mut msg.recipients, m);
                        }
                    }
                    Platform::Email => {
                        if let Some(e) = dir.address(p, Address::Email) {
                            push(&mut msg.recipients, e);
                        }
                    }
                    Platform::Wechat | Platform::Webhook => {}
                }
            }
        }
    }
}

/// The platforms of `channel`'s destinations, each once.
fn platforms(channel: &Channel) -> Vec<Platform> {
    let mut out: Vec<Platform> = Vec::new();
    for d in &channel.destinations {
        let p = d.dest.platform();
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Append notes to a message's text, so a reference that resolved to nobody
/// is seen where the message is read.
fn note(body: &mut Body, notes: &[String]) {
    if notes.is_empty() {
        return;
    }
    let line = format!("\n\n⚠ {}", notes.join("; "));
    match body {
        Body::Text { text } | Body::Markdown { text } | Body::Card { text, .. } => {
            text.push_str(&line)
        }
        _ => {}
    }
}

/// The overrides in force, kept fresh from the store for the accept path
/// (which must not wait on a read per message).
#[derive(Debug, Default)]
pub struct OverrideCache {
    list: RwLock<Arc<Vec<Override>>>,
}

impl OverrideCache {
    pub fn get(&self) -> Arc<Vec<Override>> {
        self.list.read().clone()
    }

    pub async fn refresh(&self, store: &dyn Store) -> crate::store::Result<()> {
        let list = store.overrides(None).await?;
        *self.list.write() = Arc::new(list);
        Ok(())
    }
}
