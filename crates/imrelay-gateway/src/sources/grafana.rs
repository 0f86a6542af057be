//! Grafana unified alerting's webhook contact point: one notification per
//! alert group (`groupKey`), firing or resolved, with its alerts.
//!
//! One event per notification, threaded by `groupKey`, so the group's
//! resolved notification updates its firing card.

use serde_json::Value;

use super::{required, scalar_text, text_at, Event, Parsed, PayloadError, Status};

/// Alerts listed in the text; the rest are counted.
const MAX_LISTED: usize = 10;

pub fn parse(body: &Value) -> Result<Parsed, PayloadError> {
    let alerts = body
        .get("alerts")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| {
            PayloadError::new(
                "alerts",
                "missing or empty: not a Grafana unified alerting notification (legacy alerting is not supported)",
            )
        })?;
    let group_key = required(body, "/groupKey")?;
    let status = match required(body, "/status")?.as_str() {
        "firing" => Status::Firing,
        "resolved" => Status::Resolved,
        other => {
            return Err(PayloadError::new(
                "status",
                format!("`{other}` is neither `firing` nor `resolved`"),
            ))
        }
    };
    let firing: Vec<&Value> = alerts.iter().filter(|a| is_firing(a)).collect();
    let title = title_of(alerts);
    let text = listing(body, alerts);
    let pool = if firing.is_empty() {
        alerts.iter().collect()
    } else {
        firing.clone()
    };
    let severity = pool
        .iter()
        .filter_map(|a| text_at(a, "/labels/severity"))
        .max_by_key(|s| crate::alertmanager::severity_rank(s))
        .unwrap_or_default();
    let mut event = Event::new(status, title, text).with_severity(severity);
    if let Some(Value::Object(common)) = body.get("commonLabels") {
        for (k, v) in common {
            if let Some(v) = scalar_text(v) {
                event.label(k, v);
            }
        }
    }
    event.thread = Some(group_key);
    let first = pool[0];
    for (text, ptr) in [
        ("Dashboard", "/dashboardURL"),
        ("Panel", "/panelURL"),
        ("Source", "/generatorURL"),
    ] {
        if let Some(u) = text_at(first, ptr) {
            event.link(text, &u);
        }
    }
    if status == Status::Firing {
        if let Some(u) = text_at(first, "/silenceURL") {
            event.link("Silence", &u);
        }
    }
    Ok(Parsed::Events(vec![event]))
}

/// The alert names, up to three, else two and a count.
fn title_of(alerts: &[Value]) -> String {
    let mut names: Vec<String> = Vec::new();
    for a in alerts {
        let n = text_at(a, "/labels/alertname").unwrap_or_else(|| "alert".into());
        if !names.contains(&n) {
            names.push(n);
        }
    }
    match names.len() {
        1..=3 => names.join(", "),
        n => format!("{} and {} more", names[..2].join(", "), n - 2),
    }
}

/// One line per alert, up to [`MAX_LISTED`], and a count of the rest.
fn listing(body: &Value, alerts: &[Value]) -> String {
    let mut text = String::new();
    for a in alerts.iter().take(MAX_LISTED) {
        text.push_str(&alert_line(a));
        text.push('\n');
    }
    // Alerts Grafana itself left out (`maxAlerts`) are hidden too.
    let truncated = body
        .get("truncatedAlerts")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let hidden = alerts.len().saturating_sub(MAX_LISTED) + truncated;
    if hidden > 0 {
        text.push_str(&format!("… and {hidden} more\n"));
    }
    text
}

fn is_firing(a: &Value) -> bool {
    a.get("status").and_then(Value::as_str) == Some("firing")
}

/// `- **High memory usage** (firing) zone=us-1: summary · B=44.24`.
fn alert_line(a: &Value) -> String {
    let name = text_at(a, "/labels/alertname").unwrap_or_else(|| "alert".into());
    let state = text_at(a, "/status").unwrap_or_default();
    let mut line = format!("- **{name}** ({state})");
    if let Some(Value::Object(labels)) = a.get("labels") {
        let other: Vec<String> = labels
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "alertname" | "severity" | "__alert_rule_uid__" | "grafana_folder"
                )
            })
            .filter_map(|(k, v)| scalar_text(v).map(|v| format!("{k}={v}")))
            .collect();
        if !other.is_empty() {
            line.push(' ');
            line.push_str(&other.join(" "));
        }
    }
    let about =
        text_at(a, "/annotations/summary").or_else(|| text_at(a, "/annotations/description"));
    if let Some(s) = about {
        line.push_str(": ");
        line.push_str(&s);
    }
    if let Some(Value::Object(values)) = a.get("values") {
        let vals: Vec<String> = values
            .iter()
            .map(|(k, v)| match v.as_f64() {
                Some(f) => format!("{k}={}", (f * 100.0).round() / 100.0),
                None => format!("{k}={v}"),
            })
            .collect();
        if !vals.is_empty() {
            line.push_str(&format!(" · {}", vals.join(", ")));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(status: &str) -> Value {
        json!({
            "receiver": "imrelay", "status": status, "orgId": 1,
            "alerts": [{
                "status": status,
                "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "severity": "critical"},
                "annotations": {"summary": "This alert was triggered for zone us-1"},
                "startsAt": "2021-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
                "fingerprint": "c6eadffa33fcdf37",
                "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana",
                "dashboardURL": "", "panelURL": "",
                "values": {"B": 44.23943737541908, "C": 1}
            }],
            "groupLabels": {"alertname": "High memory usage"},
            "commonLabels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1", "severity": "critical"},
            "commonAnnotations": {}, "externalURL": "https://play.grafana.org/", "version": "1",
            "groupKey": "{}/{}:{alertname=\"High memory usage\"}", "truncatedAlerts": 0
        })
    }

    #[test]
    fn a_firing_group_is_one_event_threaded_by_group_key() {
        let Parsed::Events(ev) = parse(&notification("firing")).unwrap() else {
            panic!()
        };
        let e = &ev[0];
        assert_eq!(e.status, Status::Firing);
        assert_eq!(e.title, "High memory usage");
        assert_eq!(
            e.thread.as_deref(),
            Some("{}/{}:{alertname=\"High memory usage\"}")
        );
        assert_eq!(e.severity.as_deref(), Some("critical"));
        assert_eq!(e.labels["team"], "blue");
        assert!(e.text.contains("**High memory usage** (firing) team=blue zone=us-1: This alert was triggered for zone us-1 · B=44.24, C=1"), "{}", e.text);
        let links: Vec<&str> = e.links.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(links, ["Source", "Silence"]);
    }

    #[test]
    fn resolved_has_no_silence_link_and_bad_payloads_name_the_field() {
        let Parsed::Events(ev) = parse(&notification("resolved")).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Resolved);
        assert!(ev[0].links.iter().all(|b| b.text != "Silence"));
        assert_eq!(parse(&json!({"alerts": []})).unwrap_err().field, "alerts");
        let mut truncated = notification("firing");
        truncated["truncatedAlerts"] = json!(3);
        let Parsed::Events(ev) = parse(&truncated).unwrap() else {
            panic!()
        };
        assert!(ev[0].text.ends_with("… and 3 more\n"), "{}", ev[0].text);
        let mut no_key = notification("firing");
        no_key.as_object_mut().unwrap().remove("groupKey");
        assert_eq!(parse(&no_key).unwrap_err().field, "groupKey");
    }
}
