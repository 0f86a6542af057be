//! Alibaba Cloud CloudMonitor's alert callback (threshold alert rules, "HTTP
//! callback"): a form-encoded (or JSON) POST per state change, `alertState`
//! `ALERT` or `OK`. The rule and the object it fired for (`ruleId`,
//! `dimensions`) are the thread, so the `OK` callback updates the alert's card.

use serde_json::Value;

use super::{key_of, text_at, Event, Parsed, PayloadError, Status};

pub fn parse(body: &Value) -> Result<Parsed, PayloadError> {
    let name = text_at(body, "/alertName").ok_or_else(|| PayloadError::missing("alertName"))?;
    let state = text_at(body, "/alertState").ok_or_else(|| PayloadError::missing("alertState"))?;
    let status = match state.to_ascii_uppercase().as_str() {
        "ALERT" | "ALARM" => Status::Firing,
        "OK" => Status::Resolved,
        "INSUFFICIENT_DATA" => {
            return Ok(Parsed::Ignored(
                "INSUFFICIENT_DATA: CloudMonitor has no data, neither an alert nor a recovery"
                    .into(),
            ))
        }
        other => {
            return Err(PayloadError::new(
                "alertState",
                format!("`{other}` is not ALERT, OK or INSUFFICIENT_DATA"),
            ))
        }
    };
    let get = |k: &str| text_at(body, &format!("/{k}")).unwrap_or_default();
    let (instance, metric, dims) = (get("instanceName"), get("metricName"), get("dimensions"));
    let mut text = String::new();
    for (label, value) in [
        ("Instance", instance.as_str()),
        ("Metric", &format!("{} {}", get("metricProject"), metric)),
        ("Value", &get("curValue")),
        ("Dimensions", &dims),
        ("Region", &get("regionName")),
        ("Time", &timestamp(&get("timestamp"))),
    ] {
        if !value.trim().is_empty() {
            text.push_str(&format!("**{label}:** {}\n\n", value.trim()));
        }
    }
    let mut e =
        Event::new(status, name.clone(), text).with_severity(severity(&get("triggerLevel")));
    e.label("instance", instance);
    e.label("metric", metric);
    e.label("namespace", get("namespace"));
    e.label("region", get("regionId"));
    e.label("rule_id", get("ruleId"));
    let rule = text_at(body, "/ruleId").unwrap_or(name);
    e.thread = Some(key_of(&[("rule", &rule), ("dimensions", &dims)]));
    Ok(Parsed::Events(vec![e]))
}

/// `triggerLevel` in imrelay's terms.
fn severity(level: &str) -> &'static str {
    match level.to_ascii_uppercase().as_str() {
        "CRITICAL" => "critical",
        "WARN" | "WARNING" => "warning",
        "INFO" => "info",
        _ => "",
    }
}

/// CloudMonitor's millisecond timestamp as RFC 3339 (as sent when it is not one).
fn timestamp(ms: &str) -> String {
    ms.parse::<i64>()
        .ok()
        .and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
        .map_or_else(|| ms.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn alert(state: &str) -> Value {
        json!({"alertName": "CPU usage above 90%", "alertState": state, "curValue": "97.8",
            "dimensions": "{userId=1234567890, instanceId=i-bp1xxxx}", "expression": "$Average>=90",
            "instanceName": "web-1", "metricName": "CPUUtilization", "metricProject": "acs_ecs_dashboard",
            "namespace": "acs_ecs_dashboard", "ruleId": "putNewAlarm_user_7e78d765-0e3e-4671-ba6d-7ce39108f8ff",
            "timestamp": "1714557723000", "triggerLevel": "CRITICAL", "userId": "1234567890", "regionId": "cn-hangzhou"})
    }

    #[test]
    fn an_alert_and_its_recovery_share_a_thread() {
        let Parsed::Events(a) = parse(&alert("ALERT")).unwrap() else {
            panic!()
        };
        let Parsed::Events(ok) = parse(&alert("OK")).unwrap() else {
            panic!()
        };
        assert_eq!(
            (a[0].status, ok[0].status),
            (Status::Firing, Status::Resolved)
        );
        assert_eq!(a[0].thread, ok[0].thread);
        assert_eq!(a[0].labels["severity"], "critical");
        assert_eq!(a[0].labels["instance"], "web-1");
        assert!(a[0].text.contains("**Value:** 97.8"), "{}", a[0].text);
        assert!(a[0].text.contains("2024-05-01T10:02:03Z"), "{}", a[0].text);
    }

    #[test]
    fn bad_states_are_named_and_no_data_is_ignored() {
        assert_eq!(parse(&alert("MAYBE")).unwrap_err().field, "alertState");
        assert!(matches!(
            parse(&alert("INSUFFICIENT_DATA")).unwrap(),
            Parsed::Ignored(_)
        ));
        assert_eq!(
            parse(&json!({"alertState": "OK"})).unwrap_err().field,
            "alertName"
        );
    }
}
