//! Weekly time windows in a time zone (`days`, `from`, `to` as `HH:MM`; a
//! `to` at or before `from` ends the next day), shared by maintenance windows
//! and quiet hours.

use jiff::tz::TimeZone;
use serde::Deserialize;

use super::config::ConfigIssue;

/// One span as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanConfig {
    /// `mon` ... `sun` (default: every day).
    #[serde(default)]
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

/// A compiled span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Monday first.
    days: [bool; 7],
    from: u32,
    to: u32,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn minutes(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

impl Span {
    /// Compile; problems are pushed to `issues` under `at` (`...weekly[0]`).
    pub fn compile(c: &SpanConfig, at: &str, issues: &mut Vec<ConfigIssue>) -> Option<Span> {
        let mut days = [c.days.is_empty(); 7];
        for d in &c.days {
            match DAYS.iter().position(|x| x.eq_ignore_ascii_case(d.trim())) {
                Some(p) => days[p] = true,
                None => issues.push(ConfigIssue::new(
                    format!("{at}.days"),
                    format!("`{d}` is not a day; use mon, tue, wed, thu, fri, sat, sun"),
                )),
            }
        }
        let (from, to) = (minutes(&c.from), minutes(&c.to));
        if from.is_none() {
            issues.push(ConfigIssue::new(
                format!("{at}.from"),
                "a time of day as HH:MM",
            ));
        }
        if to.is_none() {
            issues.push(ConfigIssue::new(
                format!("{at}.to"),
                "a time of day as HH:MM",
            ));
        }
        Some(Span {
            days,
            from: from?,
            to: to?,
        })
    }

    /// Whether minute `m` of weekday `wd` (Monday 0) is inside.
    fn contains(&self, wd: usize, m: u32) -> bool {
        if self.from < self.to {
            self.days[wd] && self.from <= m && m < self.to
        } else {
            (self.days[wd] && m >= self.from) || (self.days[(wd + 6) % 7] && m < self.to)
        }
    }

    /// Whether instant `ms` is inside the span in `tz`.
    pub fn contains_at(&self, tz: &TimeZone, ms: i64) -> bool {
        self.open_until(tz, ms).is_some()
    }

    /// The first instant after `after_ms` at which the span opens or closes
    /// in `tz` (within eight days).
    pub fn next_edge(&self, tz: &TimeZone, after_ms: i64) -> Option<i64> {
        let start = jiff::Timestamp::from_millisecond(after_ms)
            .ok()?
            .to_zoned_datetime(tz.clone())
            .date();
        (0..=8)
            .filter_map(|d| start.checked_add(jiff::Span::new().days(d)).ok())
            .flat_map(|date| {
                [self.from, self.to].map(|m| {
                    date.at((m / 60) as i8, (m % 60) as i8, 0, 0)
                        .to_zoned_datetime(tz.clone())
                        .ok()
                        .map(|z| z.timestamp().as_millisecond())
                })
            })
            .flatten()
            .filter(|&ms| ms > after_ms)
            .min()
    }

    /// When the span containing `now_ms` in `tz` ends (ms), or `None` when
    /// `now_ms` is outside it.
    pub fn open_until(&self, tz: &TimeZone, now_ms: i64) -> Option<i64> {
        let z = jiff::Timestamp::from_millisecond(now_ms)
            .ok()?
            .to_zoned_datetime(tz.clone());
        let wd = z.weekday().to_monday_zero_offset() as usize;
        let m = z.hour() as u32 * 60 + z.minute() as u32;
        if !self.contains(wd, m) {
            return None;
        }
        // Minutes to the end: today's `to`, or tomorrow's when past it.
        let to_go = if m < self.to {
            self.to - m
        } else {
            24 * 60 - m + self.to
        };
        let start_of_minute = now_ms - (z.second() as i64 * 1000) - (z.millisecond() as i64);
        Some(start_of_minute + i64::from(to_go) * 60_000)
    }
}

/// A time zone name the bundled tz database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a known time zone ({why}); use an IANA name such as \"Asia/Shanghai\"")]
pub struct UnknownZone {
    pub name: String,
    why: String,
}

/// A time zone by IANA name; the error says what to write.
pub fn zone(name: &str) -> Result<TimeZone, UnknownZone> {
    TimeZone::get(name).map_err(|e| UnknownZone {
        name: name.to_string(),
        why: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(days: &[&str], from: &str, to: &str) -> Span {
        let c = SpanConfig {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        };
        let mut issues = Vec::new();
        let s = Span::compile(&c, "w", &mut issues).unwrap();
        assert!(issues.is_empty(), "{issues:?}");
        s
    }

    fn utc(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_span_across_midnight_ends_the_next_morning() {
        let tz = TimeZone::UTC;
        let nights = span(&[], "22:00", "08:00");
        assert_eq!(nights.open_until(&tz, utc("2026-12-01T21:59:00Z")), None);
        assert_eq!(
            nights.open_until(&tz, utc("2026-12-01T23:30:15Z")),
            Some(utc("2026-12-02T08:00:00Z"))
        );
        assert_eq!(
            nights.open_until(&tz, utc("2026-12-02T07:59:00Z")),
            Some(utc("2026-12-02T08:00:00Z"))
        );
        assert_eq!(nights.open_until(&tz, utc("2026-12-02T08:00:00Z")), None);
        // Only on the days named: Tuesday's night, not Wednesday's.
        let tue = span(&["tue"], "22:00", "08:00");
        assert!(tue.open_until(&tz, utc("2026-12-01T23:00:00Z")).is_some());
        assert!(tue.open_until(&tz, utc("2026-12-02T23:00:00Z")).is_none());
    }
}
