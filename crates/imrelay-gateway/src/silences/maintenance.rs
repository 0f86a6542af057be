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
//!
//! [[maintenance]]
//! name = "db-cron"
//! matchers = ['host=~"db-.*"']
//! cron = "0 22 * * SAT"               # when it opens (POSIX cron, in time_zone)
//! duration = "8h"                     # how long it stays open
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
    /// Weekly spans; or `cron` and `duration`.
    #[serde(default)]
    pub weekly: Vec<SpanConfig>,
    /// When the window opens: a cron expression (`minute hour day-of-month
    /// month day-of-week`, names like `SAT` allowed) in `time_zone`.
    #[serde(default)]
    pub cron: Option<String>,
    /// How long a window `cron` opens stays open.
    #[serde(default, with = "crate::domain::config::duration::option")]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, Clone)]
struct Window {
    name: String,
    matchers: Vec<Matcher>,
    tz: TimeZone,
    spans: Vec<Span>,
    cron: Option<CronWindow>,
}

/// A window that opens when a cron expression fires, for a duration.
#[derive(Debug, Clone)]
struct CronWindow {
    cron: croner::Cron,
    duration_ms: i64,
}

impl CronWindow {
    /// Whether a window is open at `now_ms`: the latest time the expression
    /// fired, at or before now on the wall clock of `tz`, began less than
    /// `duration` ago. (All windows last as long, so an earlier one ended
    /// earlier.)
    fn open_at(&self, tz: &TimeZone, now_ms: i64) -> bool {
        use chrono::{Datelike as _, Timelike as _};
        let Ok(now) = jiff::Timestamp::from_millisecond(now_ms) else {
            return false;
        };
        // The expression reads the wall clock of `tz`: evaluated on a UTC
        // clock showing that wall time, then turned back into an instant.
        let wall = now.to_zoned_datetime(tz.clone()).datetime();
        let Some(naive) = chrono::NaiveDate::from_ymd_opt(
            i32::from(wall.year()),
            wall.month() as u32,
            wall.day() as u32,
        )
        .and_then(|d| {
            d.and_hms_opt(
                wall.hour() as u32,
                wall.minute() as u32,
                wall.second() as u32,
            )
        }) else {
            return false;
        };
        let Ok(start) = self.cron.find_previous_occurrence(&naive.and_utc(), true) else {
            return false;
        };
        let Ok(civil) = jiff::civil::DateTime::new(
            start.year() as i16,
            start.month() as i8,
            start.day() as i8,
            start.hour() as i8,
            start.minute() as i8,
            start.second() as i8,
            0,
        ) else {
            return false;
        };
        let Ok(start) = civil.to_zoned_datetime(tz.clone()) else {
            return false;
        };
        let start_ms = start.timestamp().as_millisecond();
        start_ms <= now_ms && now_ms < start_ms + self.duration_ms
    }
}

/// Compile `cron` and `duration` of window `i`.
fn cron_window(
    c: &MaintenanceConfig,
    i: usize,
    issues: &mut Vec<ConfigIssue>,
) -> Option<CronWindow> {
    let at = |k: &str| format!("maintenance[{i}].{k}");
    let expr = c.cron.as_deref()?;
    let cron = expr
        .parse::<croner::Cron>()
        .map_err(|e| {
            issues.push(ConfigIssue::new(
                at("cron"),
                format!("`{expr}` is not a cron expression ({e}); write e.g. \"0 22 * * SAT\""),
            ))
        })
        .ok();
    let duration = match c.duration {
        Some(d) if !d.is_zero() => Some(d),
        Some(_) => {
            issues.push(ConfigIssue::new(at("duration"), "must be more than 0"));
            None
        }
        None => {
            issues.push(ConfigIssue::new(
                at("duration"),
                "a cron window needs how long it stays open, e.g. duration = \"8h\"",
            ));
            None
        }
    };
    Some(CronWindow {
        cron: cron?,
        duration_ms: duration?.as_millis() as i64,
    })
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
                issues.push(ConfigIssue::new(at("time_zone"), e.to_string()));
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
            let cron = cron_window(c, i, issues);
            match (c.weekly.is_empty(), c.cron.is_some()) {
                (true, false) => issues.push(ConfigIssue::new(
                    at("weekly"),
                    "give at least one weekly span, or `cron` and `duration`",
                )),
                (false, true) => issues.push(ConfigIssue::new(
                    at("cron"),
                    "give either `weekly` or `cron`, not both",
                )),
                _ => {}
            }
            if c.cron.is_none() && c.duration.is_some() {
                issues.push(ConfigIssue::new(
                    at("duration"),
                    "applies to `cron` windows only",
                ));
            }
            if issues.len() == before {
                list.push(Window {
                    name: c.name.clone(),
                    matchers,
                    tz,
                    spans,
                    cron,
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
            ((w.spans
                .iter()
                .any(|s| s.open_until(&w.tz, now_ms).is_some())
                || w.cron.as_ref().is_some_and(|c| c.open_at(&w.tz, now_ms)))
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
    fn a_cron_window_across_midnight_in_shanghai() {
        let w = windows(
            r#"
[[maintenance]]
name = "db-cron"
matchers = ['host=~"db-.*"']
time_zone = "Asia/Shanghai"
cron = "0 22 * * SAT"
duration = "8h"
"#,
        );
        let db: Labels = [("host".to_string(), "db-1".to_string())].into();
        // 2026-12-05 is a Saturday.
        assert_eq!(w.holding(&db, "ops", at("2026-12-05T21:59")), None);
        assert_eq!(
            w.holding(&db, "ops", at("2026-12-05T22:00")).as_deref(),
            Some("maintenance:db-cron")
        );
        assert!(w.holding(&db, "ops", at("2026-12-06T05:59")).is_some());
        assert_eq!(w.holding(&db, "ops", at("2026-12-06T06:00")), None);
        assert_eq!(w.holding(&db, "ops", at("2026-12-06T23:00")), None);
        assert_eq!(
            w.holding(&db, "ops", at("2026-12-12T23:00")).as_deref(),
            Some("maintenance:db-cron")
        );
        // 22:30 Saturday in Shanghai is 14:30 UTC: the expression reads
        // Shanghai's wall clock, not UTC's.
        let utc = |t: &str| t.parse::<jiff::Timestamp>().unwrap().as_millisecond();
        assert!(w.holding(&db, "ops", utc("2026-12-05T14:30:00Z")).is_some());
        assert!(w.holding(&db, "ops", utc("2026-12-05T22:30:00Z")).is_none());
    }

    #[test]
    fn cron_mistakes_name_their_key() {
        let text = r#"
[[maintenance]]
name = "a"
matchers = ['host="x"']
cron = "0 25 * * SAT"
duration = "8h"
[[maintenance]]
name = "b"
matchers = ['host="x"']
cron = "0 22 * * SAT"
[[maintenance]]
name = "c"
matchers = ['host="x"']
weekly = [{ from = "01:00", to = "02:00" }]
cron = "0 22 * * SAT"
duration = "1h"
[[maintenance]]
name = "d"
matchers = ['host="x"']
"#;
        #[derive(Deserialize)]
        struct Doc {
            maintenance: Vec<MaintenanceConfig>,
        }
        let doc: Doc = toml::from_str(text).unwrap();
        let mut issues = Vec::new();
        let w = Windows::compile(&doc.maintenance, &mut issues);
        assert!(w.is_empty());
        let keys: Vec<String> = issues.iter().map(|i| i.key.clone()).collect();
        assert_eq!(
            keys,
            [
                "maintenance[0].cron",
                "maintenance[1].duration",
                "maintenance[2].cron",
                "maintenance[3].weekly"
            ],
            "{issues:?}"
        );
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
            cron: None,
            duration: None,
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
