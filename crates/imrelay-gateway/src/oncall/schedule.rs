//! `[[schedules]]`: who is on call, from rotations in layers and temporary
//! overrides.
//!
//! ```toml
//! [[schedules]]
//! name = "dba"
//! time_zone = "Asia/Shanghai"            # default Asia/Shanghai
//! [[schedules.layers]]
//! rotation = "weekly"                    # or "daily"
//! handoff = "10:00"                      # the time of day turns change
//! handoff_day = "mon"                    # weekly: the day turns change
//! start = "2026-11-30"                   # the first person's first turn starts at the first handoff from this date
//! people = ["zhangsan", "lisi", "wangwu"]
//! [[schedules.layers]]                   # a later layer wins while it has someone on
//! rotation = "daily"
//! handoff = "09:00"
//! start = "2026-11-30"
//! people = ["zhaoliu"]
//! restrict = [{ days = ["sat", "sun"], from = "09:00", to = "21:00" }]
//! ```
//!
//! Overrides (made over the API, kept in the store) win over every layer;
//! the newest wins among overlapping ones. All of it is pure: the caller
//! passes the instant and the overrides.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use super::people::Directory;
use crate::domain::config::ConfigIssue;
use crate::domain::window::{zone, Span, SpanConfig};
use crate::store::Override;

/// `[[schedules]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    pub name: String,
    #[serde(default)]
    pub time_zone: Option<String>,
    pub layers: Vec<LayerConfig>,
}

/// One layer of a schedule as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    pub rotation: Rotation,
    /// `HH:MM` (default 10:00).
    #[serde(default)]
    pub handoff: Option<String>,
    /// Weekly rotations: `mon` ... `sun` (default mon).
    #[serde(default)]
    pub handoff_day: Option<String>,
    /// `YYYY-MM-DD`: the first turn starts at the first handoff on or after it.
    pub start: String,
    pub people: Vec<String>,
    /// When the layer applies (default: always).
    #[serde(default)]
    pub restrict: Vec<SpanConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rotation {
    Daily,
    Weekly,
}

impl Rotation {
    fn days(self) -> i64 {
        match self {
            Rotation::Daily => 1,
            Rotation::Weekly => 7,
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    rotation: Rotation,
    /// The first handoff, in the schedule's zone.
    anchor: DateTime,
    people: Vec<String>,
    restrict: Vec<Span>,
}

/// A compiled schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    tz: TimeZone,
    layers: Vec<Layer>,
}

/// Who is on call over a stretch of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Shift {
    /// A person of `[[people]]`.
    pub person: String,
    /// From (ms); the instant asked about for the current shift.
    pub from: i64,
    /// Until (ms), when known within the next 60 days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// An override's id, when one puts them on call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub override_id: Option<String>,
}

/// How far ahead the next change is looked for.
const HORIZON_MS: i64 = 60 * 86_400_000;
const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn weekday(text: &str) -> Option<Weekday> {
    let i = DAYS
        .iter()
        .position(|d| d.eq_ignore_ascii_case(text.trim()))?;
    Some(Weekday::from_monday_zero_offset(i as i8).expect("0..7"))
}

fn civil_ms(dt: DateTime, tz: &TimeZone) -> Option<i64> {
    Some(
        dt.to_zoned_datetime(tz.clone())
            .ok()?
            .timestamp()
            .as_millisecond(),
    )
}

/// Days from 1970-01-01 to `d`.
fn day_number(d: Date) -> i64 {
    d.at(0, 0, 0, 0)
        .to_zoned_datetime(TimeZone::UTC)
        .map(|z| z.timestamp().as_second().div_euclid(86_400))
        .unwrap_or(0)
}

impl Layer {
    fn compile(
        c: &LayerConfig,
        at: &str,
        people: &Directory,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Layer> {
        let before = issues.len();
        let handoff = match c.handoff.as_deref().unwrap_or("10:00").parse::<Time>() {
            Ok(t) => t,
            Err(_) => {
                issues.push(ConfigIssue::new(
                    format!("{at}.handoff"),
                    "a time of day as HH:MM, e.g. \"10:00\"",
                ));
                Time::midnight()
            }
        };
        let day = match (&c.handoff_day, c.rotation) {
            (Some(d), Rotation::Weekly) => weekday(d).or_else(|| {
                issues.push(ConfigIssue::new(
                    format!("{at}.handoff_day"),
                    format!("`{d}` is not a day; use mon, tue, wed, thu, fri, sat, sun"),
                ));
                None
            }),
            (Some(_), Rotation::Daily) => {
                issues.push(ConfigIssue::new(
                    format!("{at}.handoff_day"),
                    "a daily rotation hands off every day; remove handoff_day or use rotation = \"weekly\"",
                ));
                None
            }
            (None, Rotation::Weekly) => Some(Weekday::Monday),
            (None, Rotation::Daily) => None,
        };
        let start = c.start.parse::<Date>().map_err(|_| {
            issues.push(ConfigIssue::new(
                format!("{at}.start"),
                format!("`{}` is not a date; write YYYY-MM-DD", c.start),
            ))
        });
        if c.people.is_empty() {
            issues.push(ConfigIssue::new(
                format!("{at}.people"),
                "list who takes turns, by their [[people]] names",
            ));
        }
        for (j, p) in c.people.iter().enumerate() {
            if !people.contains(p) {
                issues.push(ConfigIssue::new(
                    format!("{at}.people[{j}]"),
                    format!("`{p}` is not in [[people]]; add them there first"),
                ));
            }
        }
        let restrict: Vec<Span> = c
            .restrict
            .iter()
            .enumerate()
            .filter_map(|(j, s)| Span::compile(s, &format!("{at}.restrict[{j}]"), issues))
            .collect();
        let mut first = start.ok()?;
        if let Some(day) = day {
            // Weekly: the first handoff day on or after the start date.
            let ahead = (day.to_monday_zero_offset() - first.weekday().to_monday_zero_offset())
                .rem_euclid(7);
            first = first
                .checked_add(jiff::Span::new().days(i64::from(ahead)))
                .ok()?;
        }
        (issues.len() == before).then(|| Layer {
            rotation: c.rotation,
            anchor: first.to_datetime(handoff),
            people: c.people.clone(),
            restrict,
        })
    }

    /// The turn at `ms`: its number and when it started and ends.
    fn turn(&self, tz: &TimeZone, ms: i64) -> Option<(i64, i64, i64)> {
        let local = jiff::Timestamp::from_millisecond(ms)
            .ok()?
            .to_zoned_datetime(tz.clone())
            .datetime();
        if local < self.anchor {
            return None;
        }
        let mut days = day_number(local.date()) - day_number(self.anchor.date());
        if local.time() < self.anchor.time() {
            days -= 1;
        }
        let n = days.div_euclid(self.rotation.days());
        let at = |k: i64| {
            self.anchor
                .checked_add(jiff::Span::new().days(k * self.rotation.days()))
                .ok()
                .and_then(|dt| civil_ms(dt, tz))
        };
        Some((n, at(n)?, at(n + 1)?))
    }

    fn person_at(&self, tz: &TimeZone, ms: i64) -> Option<&str> {
        if !self.restrict.is_empty() && !self.restrict.iter().any(|s| s.contains_at(tz, ms)) {
            return None;
        }
        let (n, _, _) = self.turn(tz, ms)?;
        let len = self.people.len() as i64;
        self.people
            .get(n.rem_euclid(len) as usize)
            .map(String::as_str)
    }

    /// The next instant after `ms` when this layer may change hands.
    fn next_edge(&self, tz: &TimeZone, ms: i64) -> Option<i64> {
        let handoff = match self.turn(tz, ms) {
            Some((_, _, end)) => Some(end),
            None => civil_ms(self.anchor, tz).filter(|&a| a > ms),
        };
        let edges = self.restrict.iter().filter_map(|s| s.next_edge(tz, ms));
        handoff.into_iter().chain(edges).min()
    }
}

impl Schedule {
    /// Compile; problems are pushed to `issues`, each naming its key.
    pub fn compile(
        c: &ScheduleConfig,
        i: usize,
        people: &Directory,
        issues: &mut Vec<ConfigIssue>,
    ) -> Option<Schedule> {
        let before = issues.len();
        if c.name.trim().is_empty() || c.name.contains([':', ' ', '/']) {
            issues.push(ConfigIssue::new(
                format!("schedules[{i}].name"),
                "name the schedule with a word without spaces, slashes or colons, e.g. \"dba\"",
            ));
        }
        let tz = zone(c.time_zone.as_deref().unwrap_or("Asia/Shanghai")).unwrap_or_else(|e| {
            issues.push(ConfigIssue::new(
                format!("schedules[{i}].time_zone"),
                e.to_string(),
            ));
            TimeZone::UTC
        });
        if c.layers.is_empty() {
            issues.push(ConfigIssue::new(
                format!("schedules[{i}].layers"),
                "give at least one layer: [[schedules.layers]] with rotation, start and people",
            ));
        }
        let layers: Vec<Layer> = c
            .layers
            .iter()
            .enumerate()
            .filter_map(|(j, l)| {
                Layer::compile(l, &format!("schedules[{i}].layers[{j}]"), people, issues)
            })
            .collect();
        (issues.len() == before).then(|| Schedule {
            name: c.name.clone(),
            tz,
            layers,
        })
    }

    /// Who is on call at `ms`: the newest override covering it, else the
    /// last layer that has someone on.
    fn who(&self, ms: i64, overrides: &[Override]) -> Option<(String, Option<String>)> {
        let o = overrides
            .iter()
            .filter(|o| o.schedule == self.name && o.starts_at <= ms && ms < o.ends_at)
            .max_by_key(|o| (o.created_at, o.id.clone()));
        if let Some(o) = o {
            return Some((o.person.clone(), Some(o.id.clone())));
        }
        self.layers
            .iter()
            .rev()
            .find_map(|l| l.person_at(&self.tz, ms))
            .map(|p| (p.to_string(), None))
    }

    /// The first instant after `ms` (within the horizon) at which someone
    /// else is on call.
    fn next_change(&self, ms: i64, overrides: &[Override]) -> Option<i64> {
        let now = self.who(ms, overrides).map(|(p, _)| p);
        let mut at = ms;
        while at < ms + HORIZON_MS {
            let edges = self.layers.iter().filter_map(|l| l.next_edge(&self.tz, at));
            let bounds = overrides
                .iter()
                .filter(|o| o.schedule == self.name)
                .flat_map(|o| [o.starts_at, o.ends_at])
                .filter(|&b| b > at);
            at = edges.chain(bounds).min()?;
            if self.who(at, overrides).map(|(p, _)| p) != now {
                return Some(at);
            }
        }
        None
    }

    /// Who is on call at `ms`, and until when.
    pub fn on_call(&self, ms: i64, overrides: &[Override]) -> Option<Shift> {
        let (person, override_id) = self.who(ms, overrides)?;
        Some(Shift {
            person,
            from: ms,
            until: self.next_change(ms, overrides),
            override_id,
        })
    }

    /// Who is on call next after the current shift (nobody counts as a
    /// shift: the next one with a person).
    pub fn next(&self, ms: i64, overrides: &[Override]) -> Option<Shift> {
        let mut at = self.next_change(ms, overrides)?;
        loop {
            if let Some((person, override_id)) = self.who(at, overrides) {
                return Some(Shift {
                    person,
                    from: at,
                    until: self.next_change(at, overrides),
                    override_id,
                });
            }
            at = self.next_change(at, overrides)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oncall::people::PersonConfig;

    fn directory() -> Directory {
        let people: Vec<PersonConfig> = ["zhangsan", "lisi", "wangwu", "zhaoliu"]
            .iter()
            .map(|n| toml::from_str(&format!("name = \"{n}\"")).unwrap())
            .collect();
        Directory::compile(&people, &mut Vec::new())
    }

    fn schedule(text: &str) -> Schedule {
        let c: ScheduleConfig = toml::from_str(text).unwrap();
        let mut issues = Vec::new();
        let s = Schedule::compile(&c, 0, &directory(), &mut issues);
        assert!(issues.is_empty(), "{issues:?}");
        s.unwrap()
    }

    /// An instant given in Shanghai time (UTC+8, no DST).
    fn sh(text: &str) -> i64 {
        text.parse::<DateTime>()
            .unwrap()
            .to_zoned_datetime(TimeZone::get("Asia/Shanghai").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn who(s: &Schedule, at: &str, o: &[Override]) -> Option<String> {
        s.on_call(sh(at), o).map(|x| x.person)
    }

    const WEEKLY: &str = r#"
        name = "dba"
        [[layers]]
        rotation = "weekly"
        handoff = "10:00"
        handoff_day = "mon"
        start = "2026-11-26"
        people = ["zhangsan", "lisi", "wangwu"]
    "#;

    #[test]
    fn weekly_turns_change_at_the_handoff_in_the_schedules_zone() {
        let s = schedule(WEEKLY);
        // 2026-11-26 is a Thursday: the first turn starts Monday 11-30 10:00.
        assert_eq!(who(&s, "2026-11-30T09:59", &[]), None);
        assert_eq!(
            who(&s, "2026-11-30T10:00", &[]).as_deref(),
            Some("zhangsan")
        );
        assert_eq!(
            who(&s, "2026-12-07T09:59", &[]).as_deref(),
            Some("zhangsan")
        );
        assert_eq!(who(&s, "2026-12-07T10:00", &[]).as_deref(), Some("lisi"));
        assert_eq!(who(&s, "2026-12-14T10:00", &[]).as_deref(), Some("wangwu"));
        // Round and round.
        assert_eq!(
            who(&s, "2026-12-21T10:00", &[]).as_deref(),
            Some("zhangsan")
        );
        let now = s.on_call(sh("2026-12-01T03:00"), &[]).unwrap();
        assert_eq!(now.until, Some(sh("2026-12-07T10:00")));
        let next = s.next(sh("2026-12-01T03:00"), &[]).unwrap();
        assert_eq!(
            (next.person.as_str(), next.from),
            ("lisi", sh("2026-12-07T10:00"))
        );
        assert_eq!(next.until, Some(sh("2026-12-14T10:00")));
    }

    #[test]
    fn daily_turns_and_a_zone_other_than_shanghai() {
        let s = schedule(
            r#"
            name = "web"
            time_zone = "America/New_York"
            [[layers]]
            rotation = "daily"
            handoff = "09:00"
            start = "2026-03-07"
            people = ["zhangsan", "lisi"]
        "#,
        );
        let ny = |t: &str| {
            t.parse::<DateTime>()
                .unwrap()
                .to_zoned_datetime(TimeZone::get("America/New_York").unwrap())
                .unwrap()
                .timestamp()
                .as_millisecond()
        };
        let at = |t: &str| s.on_call(ny(t), &[]).map(|x| x.person);
        assert_eq!(at("2026-03-07T09:00").as_deref(), Some("zhangsan"));
        assert_eq!(at("2026-03-08T08:59").as_deref(), Some("zhangsan"));
        // Across the DST change of 2026-03-08 the handoff stays at 09:00 local.
        assert_eq!(at("2026-03-08T09:00").as_deref(), Some("lisi"));
        assert_eq!(
            s.on_call(ny("2026-03-08T12:00"), &[]).unwrap().until,
            Some(ny("2026-03-09T09:00"))
        );
        // The turn across the change (02:00 on the 8th) is 23 hours long.
        assert_eq!(
            ny("2026-03-08T09:00") - ny("2026-03-07T09:00"),
            23 * 3_600_000
        );
    }

    #[test]
    fn a_restricted_upper_layer_wins_only_inside_its_hours() {
        let s = schedule(&format!(
            "{WEEKLY}
            [[layers]]
            rotation = \"daily\"
            handoff = \"09:00\"
            start = \"2026-11-30\"
            people = [\"zhaoliu\"]
            restrict = [{{ days = [\"sat\", \"sun\"], from = \"09:00\", to = \"21:00\" }}]
        "
        ));
        // Saturday 2026-12-05.
        assert_eq!(
            who(&s, "2026-12-05T08:59", &[]).as_deref(),
            Some("zhangsan")
        );
        assert_eq!(who(&s, "2026-12-05T09:00", &[]).as_deref(), Some("zhaoliu"));
        assert_eq!(
            who(&s, "2026-12-05T21:00", &[]).as_deref(),
            Some("zhangsan")
        );
        let sat = s.on_call(sh("2026-12-05T12:00"), &[]).unwrap();
        assert_eq!(sat.until, Some(sh("2026-12-05T21:00")));
        let next = s.next(sh("2026-12-04T12:00"), &[]).unwrap();
        assert_eq!(
            (next.person.as_str(), next.from),
            ("zhaoliu", sh("2026-12-05T09:00"))
        );
    }

    fn over(id: &str, person: &str, from: &str, to: &str, created: i64) -> Override {
        Override {
            id: id.into(),
            schedule: "dba".into(),
            person: person.into(),
            starts_at: sh(from),
            ends_at: sh(to),
            created_by: "test".into(),
            created_at: created,
        }
    }

    #[test]
    fn overrides_win_while_they_last_and_the_newest_wins() {
        let s = schedule(WEEKLY);
        let o = vec![
            over("o1", "wangwu", "2026-12-02T20:00", "2026-12-03T08:00", 1),
            over("o2", "zhaoliu", "2026-12-03T00:00", "2026-12-03T02:00", 2),
        ];
        assert_eq!(who(&s, "2026-12-02T19:59", &o).as_deref(), Some("zhangsan"));
        let w = s.on_call(sh("2026-12-02T20:00"), &o).unwrap();
        assert_eq!(w.person, "wangwu");
        assert_eq!(w.override_id.as_deref(), Some("o1"));
        assert_eq!(w.until, Some(sh("2026-12-03T00:00")));
        assert_eq!(who(&s, "2026-12-03T01:00", &o).as_deref(), Some("zhaoliu"));
        assert_eq!(who(&s, "2026-12-03T03:00", &o).as_deref(), Some("wangwu"));
        assert_eq!(who(&s, "2026-12-03T08:00", &o).as_deref(), Some("zhangsan"));
        // Another schedule's override changes nothing here.
        let mut other = over("o3", "lisi", "2026-12-02T00:00", "2026-12-09T00:00", 3);
        other.schedule = "web".into();
        assert_eq!(
            who(&s, "2026-12-04T00:00", &[other]).as_deref(),
            Some("zhangsan")
        );
    }

    #[test]
    fn mistakes_are_named_by_key() {
        let c: ScheduleConfig = toml::from_str(
            r#"
            name = "dba"
            time_zone = "Mars/Olympus"
            [[layers]]
            rotation = "daily"
            handoff = "25:00"
            handoff_day = "mon"
            start = "tomorrow"
            people = ["nobody"]
        "#,
        )
        .unwrap();
        let mut issues = Vec::new();
        assert!(Schedule::compile(&c, 2, &directory(), &mut issues).is_none());
        let keys: Vec<_> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "schedules[2].time_zone",
                "schedules[2].layers[0].handoff",
                "schedules[2].layers[0].handoff_day",
                "schedules[2].layers[0].start",
                "schedules[2].layers[0].people[0]",
            ]
        );
    }
}
