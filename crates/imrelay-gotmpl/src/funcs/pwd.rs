//! prometheus-webhook-dingtalk's template functions: Alertmanager's
//! defaults, PWD's `markdown`, and the sprig functions its users reach for.

use jiff::tz::TimeZone;

use super::text::{query_unescape, regex, title, to_lower, to_upper, trim_space};
use super::{arg_str, want_args, FuncMap};
use crate::gofmt;
use crate::gotime::Zone;
use crate::value::{ListKind, Value};

fn s1(name: &str, a: &[Value]) -> Result<String, String> {
    want_args(name, a, 1)?;
    Ok(arg_str(&a[0])?.to_string())
}

/// The string functions both flavours share.
pub fn common(m: &mut FuncMap) {
    m.insert("toUpper", |_, a| {
        Ok(Value::str(to_upper(&s1("toUpper", a)?)))
    });
    m.insert("toLower", |_, a| {
        Ok(Value::str(to_lower(&s1("toLower", a)?)))
    });
    m.insert("title", |_, a| Ok(Value::str(title(&s1("title", a)?))));
    m.insert("match", |_, a| {
        want_args("match", a, 2)?;
        Ok(Value::Bool(
            regex(arg_str(&a[0])?)?.is_match(arg_str(&a[1])?),
        ))
    });
    m.insert("safeHtml", |_, a| Ok(Value::str(s1("safeHtml", a)?)));
    m.insert("reReplaceAll", |_, a| {
        want_args("reReplaceAll", a, 3)?;
        let re = regex(arg_str(&a[0])?)?;
        Ok(Value::str(
            re.replace_all(arg_str(&a[2])?, arg_str(&a[1])?)
                .into_owned(),
        ))
    });
    m.insert("stringSlice", |_, a| {
        let items = a
            .iter()
            .map(|v| arg_str(v).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Value::strings(items))
    });
}

/// sprig's `strslice`: what its `join` accepts.
fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(items, ListKind::Str) => items
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Value::List(items, _) => items
            .iter()
            .filter(|i| !i.is_nil())
            .map(gofmt::to_v)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![gofmt::to_v(other)],
    }
}

/// sprig's notion of empty, for `default`.
fn empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Struct(_) | Value::Time(_) => false,
        other => !other.truth(),
    }
}

pub fn load_location(name: &str, local: &TimeZone) -> Result<Zone, String> {
    match name {
        "" | "UTC" => Ok(Zone::Utc),
        "Local" => Ok(Zone::Tz(local.clone())),
        n => TimeZone::get(n)
            .map(Zone::Tz)
            .map_err(|_| format!("unknown time zone {n}")),
    }
}

pub fn all() -> FuncMap {
    let mut m = super::builtins();
    common(&mut m);
    m.insert("trimSpace", |_, a| {
        Ok(Value::str(trim_space(&s1("trimSpace", a)?)))
    });
    m.insert("join", |_, a| {
        want_args("join", a, 2)?;
        Ok(Value::str(strslice(&a[1]).join(arg_str(&a[0])?)))
    });
    m.insert("urlUnescape", |_, a| {
        Ok(Value::str(query_unescape(&s1("urlUnescape", a)?)?))
    });
    m.insert("tz", |ctx, a| {
        want_args("tz", a, 2)?;
        let zone = load_location(arg_str(&a[0])?, ctx.local)?;
        match &a[1] {
            Value::Time(t) => Ok(Value::Time(t.in_zone(zone))),
            other => Err(format!(
                "wrong type for value; expected time.Time; got {}",
                other.type_name()
            )),
        }
    });
    m.insert("markdown", |_, a| {
        let s = s1("markdown", a)?;
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if matches!(c, '_' | '*' | '`') {
                out.push('\\');
            }
            out.push(c);
        }
        Ok(Value::str(out))
    });
    // sprig.
    m.insert("upper", |_, a| Ok(Value::str(to_upper(&s1("upper", a)?))));
    m.insert("lower", |_, a| Ok(Value::str(to_lower(&s1("lower", a)?))));
    m.insert("trim", |_, a| Ok(Value::str(trim_space(&s1("trim", a)?))));
    m.insert("trimPrefix", |_, a| {
        want_args("trimPrefix", a, 2)?;
        let (p, s) = (arg_str(&a[0])?, arg_str(&a[1])?);
        Ok(Value::str(s.strip_prefix(p).unwrap_or(s)))
    });
    m.insert("trimSuffix", |_, a| {
        want_args("trimSuffix", a, 2)?;
        let (p, s) = (arg_str(&a[0])?, arg_str(&a[1])?);
        Ok(Value::str(s.strip_suffix(p).unwrap_or(s)))
    });
    m.insert("contains", |_, a| {
        want_args("contains", a, 2)?;
        Ok(Value::Bool(arg_str(&a[1])?.contains(arg_str(&a[0])?)))
    });
    m.insert("hasPrefix", |_, a| {
        want_args("hasPrefix", a, 2)?;
        Ok(Value::Bool(arg_str(&a[1])?.starts_with(arg_str(&a[0])?)))
    });
    m.insert("hasSuffix", |_, a| {
        want_args("hasSuffix", a, 2)?;
        Ok(Value::Bool(arg_str(&a[1])?.ends_with(arg_str(&a[0])?)))
    });
    m.insert("replace", |_, a| {
        want_args("replace", a, 3)?;
        let (old, new, src) = (arg_str(&a[0])?, arg_str(&a[1])?, arg_str(&a[2])?);
        Ok(Value::str(go_replace_all(src, old, new)))
    });
    m.insert("default", |_, a| {
        let Some((d, given)) = a.split_first() else {
            return Err("wrong number of args for default: want at least 1 got 0".into());
        };
        match given.first() {
            Some(g) if !empty(g) => Ok(g.clone()),
            _ => Ok(d.clone()),
        }
    });
    m.insert("date", |ctx, a| {
        want_args("date", a, 2)?;
        let t = match &a[1] {
            Value::Time(t) => t.clone(),
            Value::Int(secs) => crate::gotime::GoTime {
                secs: *secs,
                nanos: 0,
                zone: Zone::Utc,
            },
            other => {
                return Err(format!(
                    "date of {} (sprig would use the current time) is not supported",
                    other.type_name()
                ))
            }
        };
        Ok(Value::str(
            t.in_zone(Zone::Tz(ctx.local.clone()))
                .format(arg_str(&a[0])?),
        ))
    });
    m
}

/// strings.Replace(s, old, new, -1): an empty `old` matches between every rune.
fn go_replace_all(src: &str, old: &str, new: &str) -> String {
    if !old.is_empty() {
        return src.replace(old, new);
    }
    let mut out = String::from(new);
    for c in src.chars() {
        out.push(c);
        out.push_str(new);
    }
    out
}
