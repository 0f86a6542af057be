//! Methods templates call on Alertmanager's types and on `time.Time`
//! (`.Labels.SortedPairs`, `.Alerts.Firing`, `.StartsAt.Format "..."`).
//! In Go a method shadows a map key of the same name; so here.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::funcs::{arg_str, want_args, FnCtx};
use crate::gotime::{GoTime, Zone};
use crate::value::{ListKind, MapKind, Struct, Value};

pub type Method = fn(&Value, &[Value], &FnCtx) -> Result<Value, String>;

pub fn lookup(recv: &Value, name: &str) -> Option<Method> {
    let m: Method = match (recv, name) {
        (Value::Map(_, MapKind::Kv), "SortedPairs") => |r, a, _| {
            want_args("SortedPairs", a, 0)?;
            Ok(sorted_pairs(r))
        },
        (Value::Map(_, MapKind::Kv), "Names") => |r, a, _| {
            want_args("Names", a, 0)?;
            Ok(pair_column(&sorted_pairs(r), "Name"))
        },
        (Value::Map(_, MapKind::Kv), "Values") => |r, a, _| {
            want_args("Values", a, 0)?;
            Ok(pair_column(&sorted_pairs(r), "Value"))
        },
        (Value::Map(_, MapKind::Kv), "Remove") => remove,
        (Value::List(_, ListKind::Pairs), "Names") => |r, a, _| {
            want_args("Names", a, 0)?;
            Ok(pair_column(r, "Name"))
        },
        (Value::List(_, ListKind::Pairs), "Values") => |r, a, _| {
            want_args("Values", a, 0)?;
            Ok(pair_column(r, "Value"))
        },
        (Value::List(_, ListKind::Alerts), "Firing") => |r, a, _| {
            want_args("Firing", a, 0)?;
            Ok(alerts_with_status(r, "firing"))
        },
        (Value::List(_, ListKind::Alerts), "Resolved") => |r, a, _| {
            want_args("Resolved", a, 0)?;
            Ok(alerts_with_status(r, "resolved"))
        },
        (Value::Time(_), _) => return time_method(name),
        _ => return None,
    };
    Some(m)
}

/// Alertmanager's KV.SortedPairs: by name, but `alertname` first.
fn sorted_pairs(kv: &Value) -> Value {
    let Value::Map(m, _) = kv else {
        unreachable!("only called on KV")
    };
    let pair = |k: &str, v: &Value| {
        Value::Struct(Arc::new(Struct {
            type_name: "template.Pair",
            fields: vec![("Name", Value::str(k)), ("Value", v.clone())],
        }))
    };
    let mut pairs = Vec::with_capacity(m.len());
    if let Some(v) = m.get("alertname") {
        pairs.push(pair("alertname", v));
    }
    pairs.extend(
        m.iter()
            .filter(|(k, _)| *k != "alertname")
            .map(|(k, v)| pair(k, v)),
    );
    Value::List(Arc::new(pairs), ListKind::Pairs)
}

fn pair_column(pairs: &Value, field: &str) -> Value {
    let Value::List(items, _) = pairs else {
        unreachable!("only called on Pairs")
    };
    let col = items
        .iter()
        .map(|p| p.field(field).cloned().unwrap_or(Value::str("")));
    Value::List(Arc::new(col.collect()), ListKind::Str)
}

fn remove(kv: &Value, args: &[Value], _: &FnCtx) -> Result<Value, String> {
    want_args("Remove", args, 1)?;
    let Value::Map(m, kind) = kv else {
        unreachable!("only called on KV")
    };
    let drop: Vec<&str> = match &args[0] {
        Value::List(items, ListKind::Str) => items.iter().filter_map(Value::as_str).collect(),
        Value::Nil => Vec::new(),
        other => {
            return Err(format!(
                "wrong type for value; expected []string; got {}",
                other.type_name()
            ))
        }
    };
    let kept: BTreeMap<String, Value> = m
        .iter()
        .filter(|(k, _)| !drop.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(Value::Map(Arc::new(kept), *kind))
}

fn alerts_with_status(alerts: &Value, status: &str) -> Value {
    let Value::List(items, _) = alerts else {
        unreachable!("only called on Alerts")
    };
    let subset = items
        .iter()
        .filter(|a| a.field("Status").and_then(Value::as_str) == Some(status));
    Value::List(Arc::new(subset.cloned().collect()), ListKind::AlertSlice)
}

fn time_of(v: &Value) -> &GoTime {
    match v {
        Value::Time(t) => t,
        _ => unreachable!("only called on time.Time"),
    }
}

fn time_method(name: &str) -> Option<Method> {
    let m: Method = match name {
        "Format" => |r, a, _| {
            want_args("Format", a, 1)?;
            Ok(Value::str(time_of(r).format(arg_str(&a[0])?)))
        },
        "String" => |r, a, _| {
            want_args("String", a, 0)?;
            Ok(Value::str(time_of(r).go_string()))
        },
        "Local" => |r, a, ctx| {
            want_args("Local", a, 0)?;
            Ok(Value::Time(time_of(r).in_zone(Zone::Tz(ctx.local.clone()))))
        },
        "UTC" => |r, a, _| {
            want_args("UTC", a, 0)?;
            Ok(Value::Time(time_of(r).in_zone(Zone::Utc)))
        },
        "Unix" => |r, a, _| {
            want_args("Unix", a, 0)?;
            Ok(Value::Int(time_of(r).secs))
        },
        "IsZero" => |r, a, _| {
            want_args("IsZero", a, 0)?;
            Ok(Value::Bool(time_of(r).is_zero()))
        },
        "Year" => |r, _, _| Ok(Value::Int(time_of(r).year())),
        "Day" => |r, _, _| Ok(Value::Int(time_of(r).day())),
        "Hour" => |r, _, _| Ok(Value::Int(time_of(r).hour())),
        "Minute" => |r, _, _| Ok(Value::Int(time_of(r).minute())),
        "Second" => |r, _, _| Ok(Value::Int(time_of(r).second())),
        _ => return None,
    };
    Some(m)
}
