//! Go's `time.Time` as templates see it: `String()`, `Format(layout)` with
//! Go's reference-time layouts, RFC 3339 parsing with Go's choice of zone.

use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Seconds from 0001-01-01 to 1970-01-01, for Go's zero time.
pub const ZERO_UNIX: i64 = -62_135_596_800;

#[derive(Clone, Debug)]
pub struct GoTime {
    pub secs: i64,
    pub nanos: u32,
    pub zone: Zone,
}

#[derive(Clone, Debug)]
pub enum Zone {
    Utc,
    /// A named location (`time.Local`, `time.LoadLocation`).
    Tz(TimeZone),
    /// `time.FixedZone(name, offset)`; Go parses `+08:00` into one with an empty name.
    Fixed(Arc<str>, i32),
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Civil date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Broken-down local time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    min: u32,
    sec: u32,
    weekday: usize,
    yday: i64,
}

impl GoTime {
    pub fn zero() -> GoTime {
        GoTime {
            secs: ZERO_UNIX,
            nanos: 0,
            zone: Zone::Utc,
        }
    }

    pub fn is_zero(&self) -> bool {
        self.secs == ZERO_UNIX && self.nanos == 0
    }

    pub fn in_zone(&self, zone: Zone) -> GoTime {
        GoTime {
            zone,
            ..self.clone()
        }
    }

    /// Offset in seconds east of UTC and the zone abbreviation at this instant.
    pub fn offset_name(&self) -> (i32, String) {
        match &self.zone {
            Zone::Utc => (0, "UTC".into()),
            Zone::Fixed(name, off) => (*off, name.to_string()),
            Zone::Tz(tz) => match Timestamp::new(self.secs, 0) {
                Ok(ts) => {
                    let info = tz.to_offset_info(ts);
                    (info.offset().seconds(), info.abbreviation().to_string())
                }
                Err(_) => (0, "UTC".into()),
            },
        }
    }

    fn civil(&self, offset: i32) -> Civil {
        let local = self.secs + i64::from(offset);
        let days = local.div_euclid(86_400);
        let sod = local.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            min: sod % 3600 / 60,
            sec: sod % 60,
            weekday: (days + 4).rem_euclid(7) as usize,
            yday: days - days_from_civil(year, 1, 1) + 1,
        }
    }

    pub fn year(&self) -> i64 {
        self.civil(self.offset_name().0).year
    }

    pub fn day(&self) -> i64 {
        i64::from(self.civil(self.offset_name().0).day)
    }

    pub fn hour(&self) -> i64 {
        i64::from(self.civil(self.offset_name().0).hour)
    }

    pub fn minute(&self) -> i64 {
        i64::from(self.civil(self.offset_name().0).min)
    }

    pub fn second(&self) -> i64 {
        i64::from(self.civil(self.offset_name().0).sec)
    }

    /// Go's `Time.String()`.
    pub fn go_string(&self) -> String {
        self.format("2006-01-02 15:04:05.999999999 -0700 MST")
    }

    /// Go's `Time.Format(layout)`.
    pub fn format(&self, layout: &str) -> String {
        let (offset, name) = self.offset_name();
        let c = self.civil(offset);
        let mut out = String::new();
        let mut rest = layout;
        while !rest.is_empty() {
            let (prefix, chunk, suffix) = next_chunk(rest);
            out.push_str(prefix);
            let Some(chunk) = chunk else { break };
            self.write_chunk(&mut out, chunk, &c, offset, &name);
            rest = suffix;
        }
        out
    }

    fn write_chunk(&self, out: &mut String, chunk: Chunk, c: &Civil, offset: i32, name: &str) {
        use std::fmt::Write;
        let hour12 = match c.hour % 12 {
            0 => 12,
            h => h,
        };
        match chunk {
            Chunk::LongMonth => out.push_str(MONTHS[c.month as usize - 1]),
            Chunk::Month => out.push_str(&MONTHS[c.month as usize - 1][..3]),
            Chunk::NumMonth => write!(out, "{}", c.month).unwrap(),
            Chunk::ZeroMonth => write!(out, "{:02}", c.month).unwrap(),
            Chunk::LongWeekDay => out.push_str(DAYS[c.weekday]),
            Chunk::WeekDay => out.push_str(&DAYS[c.weekday][..3]),
            Chunk::Day => write!(out, "{}", c.day).unwrap(),
            Chunk::UnderDay => write!(out, "{:>2}", c.day).unwrap(),
            Chunk::ZeroDay => write!(out, "{:02}", c.day).unwrap(),
            Chunk::Hour => write!(out, "{:02}", c.hour).unwrap(),
            Chunk::Hour12 => write!(out, "{hour12}").unwrap(),
            Chunk::ZeroHour12 => write!(out, "{hour12:02}").unwrap(),
            Chunk::Minute => write!(out, "{}", c.min).unwrap(),
            Chunk::ZeroMinute => write!(out, "{:02}", c.min).unwrap(),
            Chunk::Second => write!(out, "{}", c.sec).unwrap(),
            Chunk::ZeroSecond => write!(out, "{:02}", c.sec).unwrap(),
            Chunk::UnderYearDay => write!(out, "{:>3}", c.yday).unwrap(),
            Chunk::ZeroYearDay => write!(out, "{:03}", c.yday).unwrap(),
            Chunk::LongYear => {
                if c.year < 0 {
                    write!(out, "-{:04}", -c.year).unwrap()
                } else {
                    write!(out, "{:04}", c.year).unwrap()
                }
            }
            Chunk::Year => write!(out, "{:02}", c.year.rem_euclid(100)).unwrap(),
            Chunk::PM => out.push_str(if c.hour >= 12 { "PM" } else { "AM" }),
            Chunk::Pm => out.push_str(if c.hour >= 12 { "pm" } else { "am" }),
            Chunk::Tz => {
                if !name.is_empty() {
                    out.push_str(name);
                } else {
                    // No abbreviation known: Go prints the -0700 form.
                    let m = offset / 60;
                    out.push(if m < 0 { '-' } else { '+' });
                    write!(out, "{:02}{:02}", m.abs() / 60, m.abs() % 60).unwrap();
                }
            }
            Chunk::Offset {
                z,
                colons,
                seconds,
                hours_only,
            } => {
                if z && offset == 0 {
                    out.push('Z');
                    return;
                }
                let abs = offset.abs();
                out.push(if offset < 0 { '-' } else { '+' });
                write!(out, "{:02}", abs / 3600).unwrap();
                if !hours_only {
                    if colons {
                        out.push(':');
                    }
                    write!(out, "{:02}", abs / 60 % 60).unwrap();
                }
                if seconds {
                    if colons {
                        out.push(':');
                    }
                    write!(out, "{:02}", abs % 60).unwrap();
                }
            }
            Chunk::Frac { sep, digits, trim } => {
                let all = format!("{:09}", self.nanos);
                let mut d = &all[..digits.min(9)];
                if trim {
                    d = d.trim_end_matches('0');
                    if d.is_empty() {
                        return;
                    }
                }
                out.push(sep);
                out.push_str(d);
            }
        }
    }

    /// Go's `time.Parse(time.RFC3339, s)` with `local` as `time.Local`:
    /// `Z` gives UTC; an offset gives Local if Local has that offset then,
    /// else a fixed zone without a name.
    pub fn parse_rfc3339(s: &str, local: &TimeZone) -> Option<GoTime> {
        parse_layout("2006-01-02T15:04:05Z07:00", s, local).ok()
    }
}

fn days_in(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Chunk {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    /// Day of the year: `__2` (space-padded), `002` (zero-padded).
    UnderYearDay,
    ZeroYearDay,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    Offset {
        z: bool,
        colons: bool,
        seconds: bool,
        hours_only: bool,
    },
    Frac {
        sep: char,
        digits: usize,
        trim: bool,
    },
}

fn starts_lower(s: &str) -> bool {
    s.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
}

/// Go's nextStdChunk: the text before the first layout element, the element, the rest.
fn next_chunk(layout: &str) -> (&str, Option<Chunk>, &str) {
    let b = layout.as_bytes();
    let at = |i: usize, s: &str| layout.get(i..).is_some_and(|r| r.starts_with(s));
    for i in 0..b.len() {
        let hit = |len: usize, c: Chunk| Some((&layout[..i], Some(c), &layout[i + len..]));
        let found = match b[i] {
            b'J' if at(i, "January") => hit(7, Chunk::LongMonth),
            b'J' if at(i, "Jan") && !starts_lower(&layout[i + 3..]) => hit(3, Chunk::Month),
            b'M' if at(i, "Monday") => hit(6, Chunk::LongWeekDay),
            b'M' if at(i, "Mon") && !starts_lower(&layout[i + 3..]) => hit(3, Chunk::WeekDay),
            b'M' if at(i, "MST") => hit(3, Chunk::Tz),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => hit(
                2,
                [
                    Chunk::ZeroMonth,
                    Chunk::ZeroDay,
                    Chunk::ZeroHour12,
                    Chunk::ZeroMinute,
                    Chunk::ZeroSecond,
                    Chunk::Year,
                ][usize::from(b[i + 1] - b'1')],
            ),
            b'0' if at(i, "002") => hit(3, Chunk::ZeroYearDay),
            b'1' if at(i, "15") => hit(2, Chunk::Hour),
            b'1' => hit(1, Chunk::NumMonth),
            b'2' if at(i, "2006") => hit(4, Chunk::LongYear),
            b'2' => hit(1, Chunk::Day),
            // `_2006` is a literal underscore and a year.
            b'_' if at(i, "_2006") => {
                Some((&layout[..i + 1], Some(Chunk::LongYear), &layout[i + 5..]))
            }
            b'_' if at(i, "_2") => hit(2, Chunk::UnderDay),
            b'_' if at(i, "__2") => hit(3, Chunk::UnderYearDay),
            b'3' => hit(1, Chunk::Hour12),
            b'4' => hit(1, Chunk::Minute),
            b'5' => hit(1, Chunk::Second),
            b'P' if at(i, "PM") => hit(2, Chunk::PM),
            b'p' if at(i, "pm") => hit(2, Chunk::Pm),
            b'-' | b'Z' => {
                let z = b[i] == b'Z';
                let forms: [(&str, bool, bool, bool); 5] = [
                    ("070000", false, true, false),
                    ("07:00:00", true, true, false),
                    ("0700", false, false, false),
                    ("07:00", true, false, false),
                    ("07", false, false, true),
                ];
                forms.iter().find(|(f, ..)| at(i + 1, f)).and_then(
                    |(f, colons, seconds, hours_only)| {
                        hit(
                            1 + f.len(),
                            Chunk::Offset {
                                z,
                                colons: *colons,
                                seconds: *seconds,
                                hours_only: *hours_only,
                            },
                        )
                    },
                )
            }
            b'.' | b',' if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let ch = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == ch {
                    j += 1;
                }
                // Only a fraction if the run of digits ends here.
                if j < b.len() && b[j].is_ascii_digit() {
                    None
                } else {
                    let c = Chunk::Frac {
                        sep: b[i] as char,
                        digits: j - i - 1,
                        trim: ch == b'9',
                    };
                    Some((&layout[..i], Some(c), &layout[j..]))
                }
            }
            _ => None,
        };
        if let Some(f) = found {
            return f;
        }
    }
    (layout, None, "")
}

fn quote(s: &str) -> String {
    crate::gofmt::quote(s)
}

/// Go's `time.Parse(layout, value)` for numeric layouts (years, months and
/// days as digits, 24h or 12h clocks, fractions, numeric zones), with Go's
/// error messages, which PrometheusAlert prints into messages.
pub fn parse_layout(layout: &str, value: &str, local: &TimeZone) -> Result<GoTime, String> {
    let elem_err = |elem: &str, rest: &str| {
        format!(
            "parsing time {} as {}: cannot parse {} as {}",
            quote(value),
            quote(layout),
            quote(rest),
            quote(elem)
        )
    };
    let range_err = |what: &str| format!("parsing time {}: {what} out of range", quote(value));
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut min, mut sec, mut nanos) = (0u32, 0u32, 0u32, 0u32);
    let (mut pm, mut pm_set) = (false, false);
    let mut zone: Option<Option<i32>> = None; // Some(None) = Z, Some(Some(off)) = offset
    let mut rest_layout = layout;
    let mut v = value;
    loop {
        let (prefix, chunk, suffix) = next_chunk(rest_layout);
        let elem = &rest_layout[prefix.len()..rest_layout.len() - suffix.len()];
        v = skip(v, prefix).map_err(|r| elem_err(prefix, r))?;
        let Some(chunk) = chunk else {
            if !v.is_empty() {
                return Err(format!(
                    "parsing time {}: extra text: {}",
                    quote(value),
                    quote(v)
                ));
            }
            break;
        };
        rest_layout = suffix;
        let here = v;
        let bad = || elem_err(elem, here);
        match chunk {
            Chunk::LongYear => {
                if v.len() < 4 || !v.as_bytes()[0].is_ascii_digit() {
                    return Err(bad());
                }
                year = v[..4].parse().map_err(|_| bad())?;
                v = &v[4..];
            }
            Chunk::ZeroMonth | Chunk::NumMonth => {
                let (n, r) = getnum(v, chunk == Chunk::ZeroMonth).ok_or_else(bad)?;
                if !(1..=12).contains(&n) {
                    return Err(range_err("month"));
                }
                month = n;
                v = r;
            }
            Chunk::ZeroDay | Chunk::Day => {
                let (n, r) = getnum(v, chunk == Chunk::ZeroDay).ok_or_else(bad)?;
                day = n;
                v = r;
            }
            Chunk::Hour | Chunk::Hour12 | Chunk::ZeroHour12 => {
                let (n, r) = getnum(v, chunk == Chunk::ZeroHour12).ok_or_else(bad)?;
                if (chunk == Chunk::Hour && n > 23) || (chunk != Chunk::Hour && n > 12) {
                    return Err(range_err("hour"));
                }
                hour = n;
                v = r;
            }
            Chunk::Minute | Chunk::ZeroMinute => {
                let (n, r) = getnum(v, chunk == Chunk::ZeroMinute).ok_or_else(bad)?;
                if n > 59 {
                    return Err(range_err("minute"));
                }
                min = n;
                v = r;
            }
            Chunk::Second | Chunk::ZeroSecond => {
                let (n, r) = getnum(v, chunk == Chunk::ZeroSecond).ok_or_else(bad)?;
                if n > 59 {
                    return Err(range_err("second"));
                }
                sec = n;
                v = r;
                // A fraction in the value though the layout has none.
                let b = v.as_bytes();
                let layout_has_frac =
                    matches!(next_chunk(rest_layout), ("", Some(Chunk::Frac { .. }), _));
                if !layout_has_frac
                    && b.len() >= 2
                    && matches!(b[0], b'.' | b',')
                    && b[1].is_ascii_digit()
                {
                    let n = 1 + b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
                    nanos = frac_nanos(&v[1..n]);
                    v = &v[n..];
                }
            }
            Chunk::Frac { digits, trim, .. } => {
                let b = v.as_bytes();
                if trim {
                    if b.len() < 2 || !matches!(b[0], b'.' | b',') || !b[1].is_ascii_digit() {
                        continue;
                    }
                    // Go 1.19 takes at most nine digits here.
                    let n = 1 + b[1..]
                        .iter()
                        .take(9)
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                    nanos = frac_nanos(&v[1..n]);
                    v = &v[n..];
                } else {
                    let n = digits + 1;
                    if b.len() < n
                        || !matches!(b[0], b'.' | b',')
                        || !b[1..n].iter().all(u8::is_ascii_digit)
                    {
                        return Err(bad());
                    }
                    nanos = frac_nanos(&v[1..n]);
                    v = &v[n..];
                }
            }
            Chunk::PM | Chunk::Pm => {
                let p = v.get(..2).ok_or_else(bad)?;
                pm = match p.to_ascii_uppercase().as_str() {
                    "PM" => true,
                    "AM" => false,
                    _ => return Err(bad()),
                };
                pm_set = true;
                v = &v[2..];
            }
            Chunk::Offset {
                z,
                colons,
                seconds,
                hours_only,
            } => {
                if z && v.starts_with('Z') {
                    v = &v[1..];
                    zone = Some(None);
                    continue;
                }
                let b = v.as_bytes();
                let need =
                    3 + if hours_only {
                        0
                    } else {
                        2 + usize::from(colons)
                    } + if seconds { 2 + usize::from(colons) } else { 0 };
                if b.len() < need || !matches!(b[0], b'+' | b'-') {
                    return Err(bad());
                }
                let part = &v[..need];
                let digits: String = part[1..].chars().filter(|c| *c != ':').collect();
                if !digits.bytes().all(|c| c.is_ascii_digit())
                    || (colons && !hours_only && b[3] != b':')
                {
                    return Err(bad());
                }
                let num = |r: std::ops::Range<usize>| {
                    digits
                        .get(r)
                        .and_then(|d| d.parse::<i32>().ok())
                        .unwrap_or(0)
                };
                let off = num(0..2) * 3600 + num(2..4) * 60 + num(4..6);
                zone = Some(Some(if b[0] == b'-' { -off } else { off }));
                v = &v[need..];
            }
            _ => {
                return Err(format!(
                    "layout element {} is not supported here",
                    quote(elem)
                ))
            }
        }
    }
    if pm_set && pm && hour < 12 {
        hour += 12;
    } else if pm_set && !pm && hour == 12 {
        hour = 0;
    }
    if day < 1 || day > days_in(year, month) {
        return Err(format!("parsing time {}: day out of range", quote(value)));
    }
    let civil =
        days_from_civil(year, month, day) * 86_400 + i64::from(hour * 3600 + min * 60 + sec);
    Ok(match zone {
        None | Some(None) => GoTime {
            secs: civil,
            nanos,
            zone: Zone::Utc,
        },
        Some(Some(off)) => {
            let secs = civil - i64::from(off);
            let t = GoTime {
                secs,
                nanos,
                zone: Zone::Tz(local.clone()),
            };
            if t.offset_name().0 == off {
                t
            } else {
                GoTime {
                    secs,
                    nanos,
                    zone: Zone::Fixed("".into(), off),
                }
            }
        }
    })
}

/// Go's skip: matches literal layout text; a space matches any run of spaces.
fn skip<'v>(mut value: &'v str, mut prefix: &str) -> Result<&'v str, &'v str> {
    while let Some(p) = prefix.chars().next() {
        if p == ' ' {
            if !value.is_empty() && !value.starts_with(' ') {
                return Err(value);
            }
            prefix = prefix.trim_start_matches(' ');
            value = value.trim_start_matches(' ');
            continue;
        }
        if !value.starts_with(p) {
            return Err(value);
        }
        prefix = &prefix[p.len_utf8()..];
        value = &value[p.len_utf8()..];
    }
    Ok(value)
}

/// One or two digits; `fixed` requires two.
fn getnum(s: &str, fixed: bool) -> Option<(u32, &str)> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_digit() {
        return None;
    }
    if !b.get(1).is_some_and(u8::is_ascii_digit) {
        return (!fixed).then(|| (u32::from(b[0] - b'0'), &s[1..]));
    }
    Some((
        u32::from(b[0] - b'0') * 10 + u32::from(b[1] - b'0'),
        &s[2..],
    ))
}

fn frac_nanos(digits: &str) -> u32 {
    let mut d: String = digits.chars().take(9).collect();
    while d.len() < 9 {
        d.push('0');
    }
    d.parse().unwrap_or(0)
}
