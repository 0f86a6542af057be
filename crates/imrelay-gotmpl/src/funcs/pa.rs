//! PrometheusAlert's template functions (controllers/prometheusalert.go and
//! public.go), with its behaviour kept: errors printed into the text,
//! byte slicing in SplitString, CST as a fixed +08:00 zone.

use jiff::tz::TimeZone;

use super::{arg_int, arg_str, arg_strings, want_args, FnCtx, FuncMap};
use crate::gotime::{parse_layout, GoTime, Zone};
use crate::value::Value;

fn cst() -> Zone {
    Zone::Fixed("CST".into(), 8 * 3600)
}

fn get_cst_time(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    want_args("GetCSTtime", a, 1)?;
    let date = arg_str(&a[0])?;
    if date.is_empty() {
        // The current time: not reproducible, but PA does it.
        let now = jiff::Timestamp::now();
        let t = GoTime {
            secs: now.as_second(),
            nanos: 0,
            zone: cst(),
        };
        return Ok(Value::str(t.format("2006-01-02 15:04:05")));
    }
    let parsed = parse_layout("2006-01-02T15:04:05Z07:00", date, &TimeZone::UTC)
        .or_else(|_| parse_layout("2006-01-02 15:04:05", date, &TimeZone::UTC));
    Ok(Value::str(match parsed {
        Ok(t) => t.in_zone(cst()).format("2006-01-02 15:04:05"),
        Err(_) => String::new(),
    }))
}

/// TimeFormat parses with layouts whose `Z` and `+08:00` are literal text,
/// so the result is always read as UTC; a failure prints Go's parse error.
fn time_format(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    want_args("TimeFormat", a, 2)?;
    let (s, layout) = (arg_str(&a[0])?, arg_str(&a[1])?);
    let parsed = parse_layout("2006-01-02T15:04:05.999999999Z", s, &TimeZone::UTC)
        .or_else(|_| parse_layout("2006-01-02T15:04:05.999999999+08:00", s, &TimeZone::UTC));
    Ok(Value::str(match parsed {
        Ok(t) => t.format(layout),
        Err(e) => e,
    }))
}

fn get_time(ctx: &FnCtx, a: &[Value]) -> Result<Value, String> {
    let Some((v, rest)) = a.split_first() else {
        return Err("wrong number of args for GetTime: want at least 1 got 0".into());
    };
    let layout = match rest.first() {
        Some(l) => arg_str(l)?,
        None => "2006-01-02T15:04:05",
    };
    let secs = match v {
        Value::Str(s) => {
            let n: i64 = s.parse().unwrap_or(0);
            if s.len() == 13 {
                n / 1000
            } else {
                n
            }
        }
        Value::Float(f) => *f as i64,
        _ => return Ok(Value::str("")),
    };
    let t = GoTime {
        secs,
        nanos: 0,
        zone: Zone::Tz(ctx.local.clone()),
    };
    Ok(Value::str(t.format(layout)))
}

fn get_time_duration(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    want_args("GetTimeDuration", a, 2)?;
    let (start, end) = (arg_str(&a[0])?, arg_str(&a[1])?);
    if start.is_empty() || end.is_empty() {
        return Ok(Value::str("N/A"));
    }
    // PA slices [0:10] and [11:19]; Go panics on shorter strings.
    let plain = |s: &str| -> Result<Option<GoTime>, String> {
        match (s.get(0..10), s.get(11..19)) {
            (Some(d), Some(t)) => {
                Ok(parse_layout("2006-01-02 15:04:05", &format!("{d} {t}"), &TimeZone::UTC).ok())
            }
            _ => Err("runtime error: slice bounds out of range".into()),
        }
    };
    let (Some(s), Some(e)) = (plain(start)?, plain(end)?) else {
        return Ok(Value::str("N/A"));
    };
    // Go's Time.Sub saturates at the int64 nanosecond range (±292 years):
    // a firing alert's zero EndsAt gives the minimum Duration.
    let ns = (i128::from(e.secs) - i128::from(s.secs)) * 1_000_000_000 + i128::from(e.nanos)
        - i128::from(s.nanos);
    let t = (ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) / 1_000_000_000) as i64;
    let (h, m, sec) = (t / 3600, (t % 3600) / 60, t % 60);
    Ok(Value::str(if t >= 86400 {
        format!("{}d{}h", t / 86400, (t % 86400) / 3600)
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m == 0 {
        format!("{sec}s")
    } else {
        format!("{m}m{sec}s")
    }))
}

fn split_string(_: &FnCtx, a: &[Value]) -> Result<Value, String> {
    want_args("SplitString", a, 3)?;
    let (s, start, stop) = (arg_str(&a[0])?, arg_int(&a[1])?, arg_int(&a[2])?);
    let len = s.len() as i64;
    let end = if stop < 0 { len + stop } else { stop };
    if start < 0 || end < start || end > len {
        return Err(format!(
            "runtime error: slice bounds out of range [{start}:{end}]"
        ));
    }
    s.get(start as usize..end as usize)
        .map(Value::str)
        .ok_or_else(|| "SplitString splits a UTF-8 character (unsupported)".into())
}

pub fn all() -> FuncMap {
    let mut m = super::builtins();
    super::pwd::common(&mut m);
    m.insert("GetCSTtime", get_cst_time);
    m.insert("TimeFormat", time_format);
    m.insert("GetTime", get_time);
    m.insert("GetTimeDuration", get_time_duration);
    m.insert("SplitString", split_string);
    m.insert("join", |_, a| {
        want_args("join", a, 2)?;
        Ok(Value::str(arg_strings(&a[1])?.join(arg_str(&a[0])?)))
    });
    m
}
