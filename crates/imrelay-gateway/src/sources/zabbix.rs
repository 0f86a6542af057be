//! Zabbix, through the webhook media type in `deploy/zabbix/` (its script
//! posts the event's macros as JSON): a problem fires, its recovery resolves
//! it. Both carry the problem's `event_id` (Zabbix's `{EVENT.ID}` is the
//! problem event in recovery messages too), which is the thread, so the
//! recovery updates the problem's card.
//!
//! ```json
//! {"event_id": "1234", "event_value": "1", "event_status": "PROBLEM",
//!  "event_severity": "High", "event_name": "High CPU on db-1", "trigger_id": "13491",
//!  "host": "db-1", "host_ip": "10.0.0.5", "event_time": "2024.05.01 10:02:03",
//!  "recovery_time": "", "event_tags": "service:db, env:prod", "event_opdata": "CPU: 97 %",
//!  "message": "...", "zabbix_url": "https://zabbix.example.com"}
//! ```

use serde_json::Value;

use super::{Event, Parsed, PayloadError, Status};

pub fn parse(body: &Value) -> Result<Parsed, PayloadError> {
    let event_id = required_field(body, "event_id")?;
    let status = status(body)?;
    let name = field(body, "event_name")
        .or_else(|| field(body, "trigger_name"))
        .ok_or_else(|| {
            PayloadError::new(
                "event_name",
                "missing or empty (give `event_name` or `trigger_name`)",
            )
        })?;
    let zabbix_severity = field(body, "event_severity").unwrap_or_default();
    let host = field(body, "host").unwrap_or_default();
    let mut text = String::new();
    if !host.is_empty() {
        let ip = field(body, "host_ip")
            .map(|ip| format!(" ({ip})"))
            .unwrap_or_default();
        text.push_str(&format!("**Host:** {host}{ip}\n\n"));
    }
    if !zabbix_severity.is_empty() {
        text.push_str(&format!("**Severity:** {zabbix_severity}\n\n"));
    }
    if let Some(d) = field(body, "event_opdata") {
        text.push_str(&format!("**Data:** {d}\n\n"));
    }
    if let Some(t) = field(body, "event_time") {
        text.push_str(&format!("**Started:** {t}\n\n"));
    }
    if status == Status::Resolved {
        if let Some(t) = field(body, "recovery_time") {
            text.push_str(&format!("**Recovered:** {t}\n\n"));
        }
    }
    if let Some(m) = field(body, "message") {
        text.push_str(&m);
    }
    let mut event = Event::new(status, name, text).with_severity(severity(&zabbix_severity));
    event.label("host", host);
    event.label("zabbix_severity", zabbix_severity);
    event.label("event_id", event_id.clone());
    if let Some(t) = field(body, "trigger_id") {
        event.label("trigger_id", t.clone());
        if let Some(base) = field(body, "zabbix_url") {
            event.link(
                "Zabbix",
                &format!(
                    "{}/tr_events.php?triggerid={t}&eventid={event_id}",
                    base.trim_end_matches('/')
                ),
            );
        }
    }
    for (k, v) in tags(&field(body, "event_tags").unwrap_or_default()) {
        if !event.labels.contains_key(&super::label_name(&k)) {
            event.label(&k, v);
        }
    }
    event.thread = Some(event_id);
    Ok(Parsed::Events(vec![event]))
}

/// A field's text; a macro Zabbix left unexpanded (`{EVENT.RECOVERY.TIME}`
/// in a problem message) counts as absent.
fn field(body: &Value, name: &str) -> Option<String> {
    super::text_at(body, &format!("/{name}")).filter(|s| !(s.starts_with('{') && s.ends_with('}')))
}

fn required_field(body: &Value, name: &str) -> Result<String, PayloadError> {
    field(body, name).ok_or_else(|| PayloadError::missing(name))
}

/// `event_value` 1/0 (or `event_status` PROBLEM/RESOLVED when the value is absent).
fn status(body: &Value) -> Result<Status, PayloadError> {
    match field(body, "event_value").as_deref() {
        Some("1") => return Ok(Status::Firing),
        Some("0") => return Ok(Status::Resolved),
        Some(other) => {
            return Err(PayloadError::new(
                "event_value",
                format!("`{other}` is neither 1 (problem) nor 0 (recovery)"),
            ))
        }
        None => {}
    }
    match field(body, "event_status").map(|s| s.to_ascii_uppercase()).as_deref() {
        Some("PROBLEM") => Ok(Status::Firing),
        Some("RESOLVED" | "OK") => Ok(Status::Resolved),
        _ => Err(PayloadError::new(
            "event_value",
            "missing: give `event_value` ({EVENT.VALUE}: 1 or 0) or `event_status` (PROBLEM or RESOLVED)",
        )),
    }
}

/// Zabbix severities in imrelay's terms (the original stays in `zabbix_severity`).
fn severity(zabbix: &str) -> &'static str {
    match zabbix.to_ascii_lowercase().as_str() {
        "disaster" => "critical",
        "high" => "error",
        "average" | "warning" => "warning",
        "information" | "not classified" => "info",
        _ => "",
    }
}

/// `{EVENT.TAGS}`: `service:db, env:prod` (a tag without a value is skipped).
fn tags(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|t| t.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problem() -> Value {
        json!({"event_id": "1234", "event_value": "1", "event_status": "PROBLEM",
            "event_severity": "High", "event_name": "High CPU on db-1", "trigger_id": "13491",
            "host": "db-1", "host_ip": "10.0.0.5", "event_time": "2024.05.01 10:02:03",
            "recovery_time": "{EVENT.RECOVERY.DATE} {EVENT.RECOVERY.TIME}",
            "event_tags": "service:db, env:prod", "zabbix_url": "https://zabbix.example.com/"})
    }

    #[test]
    fn a_problem_fires_threaded_by_event_id() {
        let Parsed::Events(ev) = parse(&problem()).unwrap() else {
            panic!()
        };
        let e = &ev[0];
        assert_eq!(
            (e.status, e.title.as_str()),
            (Status::Firing, "High CPU on db-1")
        );
        assert_eq!(e.thread.as_deref(), Some("1234"));
        assert_eq!(e.labels["severity"], "error");
        assert_eq!(e.labels["zabbix_severity"], "High");
        assert_eq!(e.labels["service"], "db");
        assert_eq!(e.labels["host"], "db-1");
        assert!(e.text.contains("**Host:** db-1 (10.0.0.5)"), "{}", e.text);
        assert!(!e.text.contains("Recovered"), "{}", e.text);
        assert_eq!(
            e.links[0].url,
            "https://zabbix.example.com/tr_events.php?triggerid=13491&eventid=1234"
        );
    }

    #[test]
    fn a_recovery_resolves_and_bad_payloads_name_the_field() {
        let mut r = problem();
        r["event_value"] = json!("0");
        r["event_status"] = json!("RESOLVED");
        r["recovery_time"] = json!("2024.05.01 10:12:03");
        let Parsed::Events(ev) = parse(&r).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Resolved);
        assert!(ev[0].text.contains("**Recovered:** 2024.05.01 10:12:03"));
        let mut bad = problem();
        bad["event_value"] = json!("7");
        assert_eq!(parse(&bad).unwrap_err().field, "event_value");
        assert_eq!(
            parse(&json!({"event_value": "1"})).unwrap_err().field,
            "event_id"
        );
        let mut unexpanded = problem();
        unexpanded["event_id"] = json!("{EVENT.ID}");
        assert_eq!(parse(&unexpanded).unwrap_err().field, "event_id");
    }

    /// The media type to import embeds `imrelay.js` as it is, and passes
    /// every field this parser reads.
    #[test]
    fn the_media_type_embeds_the_script_and_sends_every_field() {
        let yaml = include_str!("../../../../deploy/zabbix/media_imrelay.yaml");
        let js = include_str!("../../../../deploy/zabbix/imrelay.js");
        let embedded: String = yaml
            .split("      script: |\n")
            .nth(1)
            .and_then(|rest| rest.split("      timeout:").next())
            .unwrap()
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("        ").unwrap_or(l)))
            .collect();
        assert_eq!(embedded, js);
        for field in [
            "event_id",
            "event_value",
            "event_status",
            "event_severity",
            "event_name",
            "trigger_name",
            "trigger_id",
            "host",
            "host_ip",
            "event_time",
            "recovery_time",
            "event_tags",
            "event_opdata",
            "message",
            "zabbix_url",
        ] {
            assert!(yaml.contains(&format!("- name: {field}\n")), "{field}");
        }
    }
}
