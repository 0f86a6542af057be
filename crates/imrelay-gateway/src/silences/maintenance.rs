//! Recurring maintenance windows, `[[maintenance]]`: while a window is open,
//! the messages its matchers select are held as by a silence (stored
//! `silenced`, `silenced_by = "maintenance:NAME"`).
//!
//! ```toml
//! [[maintenance]]
//! name = "db-weekly"
//! matchers = ['host=~"db-.*"']        # Alertmanager matchers; `channel` is the message's channel
//! time_zone = "Asia/Shanghai"         # default Asia/Shanghai
//! weekly = [{ days = ["sat"], from = "22:00", to = "06:00" }]   # to before from: across midnight
//! ```

use jiff::tz::TimeZone;
use serde::Deserialize;

use crate::domain::config::ConfigIssue;
use crate::domain::matcher::Matcher;
use crate::domain::window::{zone, Span, SpanConfig};
use crate::store::Labels;

/// `[[maintenance]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    pub name: String,
    /// Alertmanager-style matchers, all of which must hold (`channel` is the
    /// message's channel unless it has a label of that name).
    pub matchers: Vec<String>,
    /// IANA time zone of `from` and `to` (default Asia/Shanghai).
    #[serde(default)]
    pub time_zone: Option<String>,
    pub weekly: Vec<SpanConfig>,
}

#[derive(Debug, Clone)]
struct Window {
    name: String,
    matchers: Vec<Matcher>,
    tz: TimeZone,
    spans: Vec<Span>,
}

/// The compiled windows.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    list: Vec<Window>,
}

impl Windows {
    /// Compile; problems are pushed to `issues`, each naming its key.
    pub fn compile(cfgs: &[MaintenanceConfig], issues: &mut Vec<ConfigIssue>) -> Windows {
        let mut list = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let at = |k: &str| format!("maintenance[{i}].{k}");
            let before = issues.len();
            if c.name.trim().is_empty() {
                issues.push(ConfigIssue::new(at("name"), "name the window"));
            }
            let mut matchers = Vec::new();
            for (j, m) in c.matchers.iter().enumerate() {
                match Matcher::parse(m) {
                    Ok(m) => matchers.push(m),
                    Err(e) => issues.push(ConfigIssue::new(
                        format!("maintenance[{i}].matchers[{j}]"),
                        e.to_string(),
                    )),
                }
            }
            if c.matchers.is_empty() {
                issues.push(ConfigIssue::new(
                    at("matchers"),
                    "select the messages it holds, e.g. ['host=~\"db-.*\"']",
                ));
            }
            let tz_name = c.time_zone.as_deref().unwrap_or("Asia/Shanghai");
            let tz = zone(tz_name).unwrap_or_else(|e| {
                issues.push(ConfigIssue::new(at("time_zone"), e));
                TimeZone::UTC
            });
            let spans: Vec<Span> = c
                .weekly
                .iter()
                .enumerate()
                .filter_map(|(j, w)| {
                    Span::compile(w, &format!("maintenance[{i}].weekly[{j}]"), issues)
                })
                .collect();
            if c.weekly.is_empty() {
                issues.push(ConfigIssue::new(
                    at("weekly"),
                    "give at least one weekly span",
                ));
            }
            if issues.len() == before {
                list.push(Window {
                    name: c.name.clone(),
                    matchers,
                    tz,
                    spans,
                });
            }
        }
        Windows { list }
    }

    /// The window holding a message with `labels` on `channel` at `now_ms`,
    /// as `maintenance:NAME`.
    pub fn holding(&self, labels: &Labels, channel: &str, now_ms: i64) -> Option<String> {
        let with_channel;
        let labels = if labels.contains_key("channel") {
            labels
        } else {
            let mut l = labels.clone();
            l.insert("channel".into(), channel.into());
            with_channel = l;
            &with_channel
        };
        self.list.iter().find_map(|w| {
            (w.spans
                .iter()
                .any(|s| s.open_until(&w.tz, now_ms).is_some())
                && w.matchers.iter().all(|x| x.matches(labels)))
            .then(|| format!("maintenance:{}", w.name))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(text: &str) -> Windows {
        #[derive(Deserialize)]
        struct Doc {
            maintenance: Vec<MaintenanceConfig>,
        }
        let doc: Doc = toml::from_str(text).unwrap();
        let mut issues = Vec::new();
        let w = Windows::compile(&doc.maintenance, &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        w
    }

    /// ms of a civil time in Asia/Shanghai.
    fn at(civil: &str) -> i64 {
        civil
            .parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned_datetime(TimeZone::get("Asia/Shanghai").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn a_weekly_window_across_midnight_in_shanghai() {
        let w = windows(
            r#"
[[maintenance]]
name = "db-weekly"
matchers = ['host=~"db-.*"']
weekly = [{ days = ["sat"], from = "22:00", to = "06:00" }]
"#,
        );
        let db: Labels = [("host".to_string(), "db-1".to_string())].into();
        let web: Labels = [("host".to_string(), "web-1".to_string())].into();
        // 2026-12-05 is a Saturday.
        assert_eq!(w.holding(&db, "ops", at("2026-12-05T21:59")), None);
        assert_eq!(
            w.holding(&db, "ops", at("2026-12-05T22:00")).as_deref(),
            Some("maintenance:db-weekly")
        );
        assert!(
            w.holding(&db, "ops", at("2026-12-06T05:59")).is_some(),
            "Sunday morning, still Saturday's window"
        );
        assert_eq!(w.holding(&db, "ops", at("2026-12-06T06:00")), None);
        assert_eq!(
            w.holding(&db, "ops", at("2026-12-06T23:00")),
            None,
            "not on Sunday night"
        );
        assert_eq!(w.holding(&web, "ops", at("2026-12-05T23:00")), None);
        // UTC 14:30 on Saturday is 22:30 in Shanghai.
        let utc = "2026-12-05T14:30:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        assert!(w.holding(&db, "ops", utc).is_some());
    }

    #[test]
    fn the_channel_is_a_label_and_bad_windows_name_their_key() {
        let w = windows(
            r#"
[[maintenance]]
name = "ops-nights"
matchers = ['channel="ops"']
time_zone = "UTC"
weekly = [{ days = ["mon", "tue", "wed", "thu", "fri"], from = "01:00", to = "02:00" }]
"#,
        );
        // 2026-12-01 is a Tuesday.
        let t = "2026-12-01T01:30:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        assert!(w.holding(&Labels::new(), "ops", t).is_some());
        assert!(w.holding(&Labels::new(), "dev", t).is_none());
        let bad: Vec<MaintenanceConfig> = vec![MaintenanceConfig {
            name: "x".into(),
            matchers: vec!["host=~\"(\"".into()],
            time_zone: Some("Mars/Base".into()),
            weekly: vec![SpanConfig {
                days: vec!["sunday".into()],
                from: "25:00".into(),
                to: "1".into(),
            }],
        }];
        let mut issues = Vec::new();
        Windows::compile(&bad, &mut issues);
        let keys: Vec<String> = issues.iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "maintenance[0].matchers[0]",
                "maintenance[0].time_zone",
                "maintenance[0].weekly[0].days",
                "maintenance[0].weekly[0].from",
                "maintenance[0].weekly[0].to"
            ]
        );
    }
}
