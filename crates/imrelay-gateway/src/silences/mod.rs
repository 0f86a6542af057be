//! Silences for every message imrelay takes, in the shape of Alertmanager's
//! v2 silences API (`matchers` of `name`, `value`, `isRegex`, `isEqual`;
//! `startsAt`, `endsAt`, `createdBy`, `comment`), so people and scripts that
//! know amtool's API know this one.
//!
//! A matcher names a label of the message; the message's channel is the label
//! `channel` unless the message has its own. A message accepted while an
//! active silence matches it is stored with its deliveries `silenced` (and
//! the silence's id): visible, countable, never lost. Deleting a silence
//! early with `?release=true` sends what it held.
//!
//! Every instance keeps the silences in memory (refreshed from the store
//! every [`REFRESH`] and at once when this instance changes one), so the
//! accept path reads no table.

pub mod handler;
pub mod maintenance;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use regex::Regex;

use crate::store::{Labels, NewMessage, Silence, SilenceMatcher, Store, StoreError};

/// How often every instance reloads the silences from the store.
pub const REFRESH: Duration = Duration::from_secs(2);

/// A matcher ready to test.
#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    test: Test,
    is_equal: bool,
}

#[derive(Debug, Clone)]
enum Test {
    Equal(String),
    Regex(Regex),
}

impl Compiled {
    fn new(m: &SilenceMatcher) -> Result<Compiled, regex::Error> {
        let test = if m.is_regex {
            // Anchored, as Alertmanager anchors them.
            Test::Regex(Regex::new(&format!("^(?:{})$", m.value))?)
        } else {
            Test::Equal(m.value.clone())
        };
        Ok(Compiled {
            name: m.name.clone(),
            test,
            is_equal: m.is_equal,
        })
    }

    fn holds(&self, value: &str) -> bool {
        let hit = match &self.test {
            Test::Equal(v) => v == value,
            Test::Regex(r) => r.is_match(value),
        };
        hit == self.is_equal
    }
}

/// A silence of the messages like one: its labels and its channel, each an
/// equality matcher, from `now_ms` for `duration`. `None` when the message
/// has no labels (its channel alone would silence the whole channel).
pub fn like_message(
    labels: &Labels,
    channel: &str,
    now_ms: i64,
    duration: Duration,
    created_by: &str,
    comment: &str,
) -> Option<Silence> {
    if labels.is_empty() {
        return None;
    }
    let eq = |name: &str, value: &str| SilenceMatcher {
        name: name.to_string(),
        value: value.to_string(),
        is_regex: false,
        is_equal: true,
    };
    let mut matchers: Vec<SilenceMatcher> = labels.iter().map(|(k, v)| eq(k, v)).collect();
    if !labels.contains_key("channel") {
        matchers.push(eq("channel", channel));
    }
    Some(Silence {
        id: uuid::Uuid::now_v7().to_string(),
        matchers,
        starts_at: now_ms,
        ends_at: now_ms + duration.as_millis() as i64,
        created_by: created_by.to_string(),
        comment: comment.to_string(),
        updated_at: now_ms,
    })
}

/// Compile a silence's matchers; the error names the matcher at fault.
pub fn compile(matchers: &[SilenceMatcher]) -> Result<(), (usize, String)> {
    for (i, m) in matchers.iter().enumerate() {
        Compiled::new(m).map_err(|e| {
            (
                i,
                format!("`{}` is not a valid regular expression: {e}", m.value),
            )
        })?;
    }
    Ok(())
}

/// Whether `matchers` select the empty label set (such a silence would hold
/// everything; Alertmanager refuses it too).
pub fn matches_everything(matchers: &[SilenceMatcher]) -> bool {
    matchers
        .iter()
        .filter_map(|m| Compiled::new(m).ok())
        .all(|c| c.holds(""))
}

#[derive(Debug, Clone)]
struct Active {
    id: String,
    starts_at: i64,
    ends_at: i64,
    matchers: Vec<Compiled>,
}

impl Active {
    fn holds(&self, labels: &Labels, channel: &str, now: i64) -> bool {
        if now < self.starts_at || now >= self.ends_at {
            return false;
        }
        self.matchers.iter().all(|m| {
            let value = match labels.get(&m.name) {
                Some(v) => v.as_str(),
                None if m.name == "channel" => channel,
                None => "",
            };
            m.holds(value)
        })
    }
}

/// The silences every accept checks, swapped whole on refresh.
#[derive(Debug, Default)]
pub struct SilenceCache {
    active: ArcSwap<Vec<Active>>,
}

impl SilenceCache {
    /// Replace the cached silences (those not over yet at `now`).
    pub fn replace(&self, silences: &[Silence], now: i64) {
        let active = silences
            .iter()
            .filter(|s| s.ends_at > now)
            .filter_map(|s| {
                Some(Active {
                    id: s.id.clone(),
                    starts_at: s.starts_at,
                    ends_at: s.ends_at,
                    matchers: s
                        .matchers
                        .iter()
                        .map(Compiled::new)
                        .collect::<Result<_, _>>()
                        .ok()?,
                })
            })
            .collect();
        self.active.store(Arc::new(active));
    }

    /// The silence holding a message with `labels` on `channel` at `now`.
    pub fn holding(&self, labels: &Labels, channel: &str, now: i64) -> Option<String> {
        self.active
            .load()
            .iter()
            .find(|s| s.holds(labels, channel, now))
            .map(|s| s.id.clone())
    }

    /// Mark each of `msgs` held by a silence as such.
    pub fn apply(&self, msgs: &mut [NewMessage], now: i64) {
        if self.active.load().is_empty() {
            return;
        }
        for m in msgs {
            m.silenced_by = self.holding(&m.labels, &m.channel, now);
        }
    }

    /// Reload from `store`.
    pub async fn refresh(&self, store: &dyn Store) -> Result<(), StoreError> {
        let all = store.silences().await?;
        self.replace(&all, store.now_ms());
        Ok(())
    }
}

/// A step of the accept path that runs before the holds.
pub type AcceptStep<'a> = Box<dyn Fn(&mut [NewMessage], i64) + Send + Sync + 'a>;

/// What holds messages at accept: the silences, then the maintenance windows
/// of the config in force, then the channels' quiet hours.
pub struct Holds<'a> {
    /// What runs first at accept (the on-call feature resolves mentions and
    /// starts escalations); a held message then starts no escalation.
    pub before: Option<AcceptStep<'a>>,
    pub silences: &'a SilenceCache,
    pub windows: Arc<maintenance::Windows>,
    pub channels: Arc<crate::channels::ChannelSet>,
    /// The channels' grouping.
    pub groups: Arc<crate::grouping::Groups>,
}

impl Holds<'_> {
    /// Mark each of `msgs` held by a silence or an open window as such.
    pub fn apply(&self, msgs: &mut [NewMessage], now: i64) {
        if let Some(step) = &self.before {
            step(msgs, now);
        }
        self.silences.apply(msgs, now);
        for m in msgs.iter_mut().filter(|m| m.silenced_by.is_some()) {
            m.escalation = None;
        }
        for m in msgs.iter_mut().filter(|m| m.silenced_by.is_none()) {
            if !self.windows.is_empty() {
                m.silenced_by = self.windows.holding(&m.labels, &m.channel, now);
            }
            let quiet = self.channels.get(&m.channel).and_then(|c| c.quiet.as_ref());
            if let (None, Some(q)) = (&m.silenced_by, quiet) {
                let severity = m.labels.get("severity").or(m.severity.as_ref());
                m.not_before = q.hold_until(severity.map(String::as_str), now);
            }
        }
        self.groups.apply(msgs, now);
    }
}

/// Keep `cache` fresh from `store` until `stop` resolves.
pub async fn keep_fresh(
    cache: Arc<SilenceCache>,
    store: Arc<dyn Store>,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = cache.refresh(&*store).await {
            tracing::warn!(error = %e, "cannot reload the silences; the last ones stay in force");
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = &mut stop => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, value: &str, is_regex: bool, is_equal: bool) -> SilenceMatcher {
        SilenceMatcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        }
    }

    fn silence(matchers: Vec<SilenceMatcher>) -> Silence {
        Silence {
            id: "s1".into(),
            matchers,
            starts_at: 1_000,
            ends_at: 2_000,
            created_by: "t".into(),
            comment: "c".into(),
            updated_at: 0,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn held(matchers: Vec<SilenceMatcher>, l: &Labels, now: i64) -> bool {
        let c = SilenceCache::default();
        c.replace(&[silence(matchers)], 0);
        c.holding(l, "ops", now).is_some()
    }

    #[test]
    fn each_matcher_type_as_alertmanager_reads_it() {
        let l = labels(&[("alertname", "DiskFull"), ("severity", "critical")]);
        assert!(held(
            vec![m("alertname", "DiskFull", false, true)],
            &l,
            1_500
        ));
        assert!(!held(vec![m("alertname", "Disk", false, true)], &l, 1_500));
        assert!(held(
            vec![m("severity", "warning", false, false)],
            &l,
            1_500
        ));
        assert!(!held(
            vec![m("severity", "critical", false, false)],
            &l,
            1_500
        ));
        // Regexes are anchored.
        assert!(held(vec![m("alertname", "Disk.*", true, true)], &l, 1_500));
        assert!(!held(vec![m("alertname", "isk", true, true)], &l, 1_500));
        assert!(held(
            vec![m("severity", "info|warning", true, false)],
            &l,
            1_500
        ));
        // A missing label is the empty string; the channel is a label.
        assert!(held(vec![m("team", "", false, true)], &l, 1_500));
        assert!(held(vec![m("channel", "ops", false, true)], &l, 1_500));
        // Every matcher must hold.
        assert!(!held(
            vec![
                m("alertname", "DiskFull", false, true),
                m("channel", "dev", false, true)
            ],
            &l,
            1_500
        ));
    }

    #[test]
    fn a_silence_holds_only_between_its_start_and_end() {
        let l = labels(&[("alertname", "DiskFull")]);
        let ms = || vec![m("alertname", "DiskFull", false, true)];
        assert!(!held(ms(), &l, 999));
        assert!(held(ms(), &l, 1_000));
        assert!(!held(ms(), &l, 2_000));
    }

    #[test]
    fn matchers_that_match_everything_are_told_apart() {
        assert!(matches_everything(&[m("team", "", false, true)]));
        assert!(matches_everything(&[m("a", ".*", true, true)]));
        assert!(!matches_everything(&[m(
            "alertname",
            "DiskFull",
            false,
            true
        )]));
        assert_eq!(compile(&[m("a", "(", true, true)]).unwrap_err().0, 0);
    }
}
