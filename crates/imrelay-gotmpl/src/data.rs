//! Alertmanager's webhook payload as prometheus-webhook-dingtalk hands it to
//! templates: typed `Data`/`Alert` structs, `KV` maps, `time.Time` fields.
//! Like encoding/json, keys match case-insensitively and absent fields are
//! zero values.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde_json::Value as Json;

use crate::gotime::GoTime;
use crate::value::{ListKind, MapKind, Struct, Value};

fn get<'a>(obj: &'a Json, key: &str) -> Option<&'a Json> {
    let o = obj.as_object()?;
    o.get(key).or_else(|| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn string(obj: &Json, key: &str) -> Result<Value, String> {
    match get(obj, key) {
        None | Some(Json::Null) => Ok(Value::str("")),
        Some(Json::String(s)) => Ok(Value::str(s.as_str())),
        Some(other) => Err(format!("{key}: expected a string, got {other}")),
    }
}

fn kv(obj: &Json, key: &str) -> Result<Value, String> {
    let mut m = BTreeMap::new();
    match get(obj, key) {
        None | Some(Json::Null) => {}
        Some(Json::Object(o)) => {
            for (k, v) in o {
                let Json::String(s) = v else {
                    return Err(format!("{key}.{k}: expected a string, got {v}"));
                };
                m.insert(k.clone(), Value::str(s.as_str()));
            }
        }
        Some(other) => return Err(format!("{key}: expected an object, got {other}")),
    }
    Ok(Value::Map(Arc::new(m), MapKind::Kv))
}

fn time(obj: &Json, key: &str, local: &TimeZone) -> Result<Value, String> {
    match get(obj, key) {
        None | Some(Json::Null) => Ok(Value::Time(GoTime::zero())),
        Some(Json::String(s)) => GoTime::parse_rfc3339(s, local)
            .map(Value::Time)
            .ok_or_else(|| format!("{key}: {s:?} is not an RFC 3339 time")),
        Some(other) => Err(format!("{key}: expected a time string, got {other}")),
    }
}

fn alert(a: &Json, local: &TimeZone) -> Result<Value, String> {
    Ok(Value::Struct(Arc::new(Struct {
        type_name: "template.Alert",
        fields: vec![
            ("Status", string(a, "status")?),
            ("Labels", kv(a, "labels")?),
            ("Annotations", kv(a, "annotations")?),
            ("StartsAt", time(a, "startsAt", local)?),
            ("EndsAt", time(a, "endsAt", local)?),
            ("GeneratorURL", string(a, "generatorURL")?),
            ("Fingerprint", string(a, "fingerprint")?),
        ],
    })))
}

/// Alertmanager's `template.Data` from its webhook JSON. `local` is what Go
/// would have as `time.Local` (it decides the zone of parsed offsets).
pub fn alertmanager(payload: &Json, local: &TimeZone) -> Result<Value, String> {
    let alerts = match get(payload, "alerts") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|a| alert(a, local))
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("alerts: expected an array, got {other}")),
    };
    Ok(Value::Struct(Arc::new(Struct {
        type_name: "template.Data",
        fields: vec![
            ("Receiver", string(payload, "receiver")?),
            ("Status", string(payload, "status")?),
            ("Alerts", Value::List(Arc::new(alerts), ListKind::Alerts)),
            ("GroupLabels", kv(payload, "groupLabels")?),
            ("CommonLabels", kv(payload, "commonLabels")?),
            ("CommonAnnotations", kv(payload, "commonAnnotations")?),
            ("ExternalURL", string(payload, "externalURL")?),
        ],
    })))
}
