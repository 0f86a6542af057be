//! Alertmanager's webhook payload, version 4, and its validation. Errors name
//! the field at fault (`alerts[2].startsAt`) so a broken sender can be fixed.
//!
//! Unknown fields are accepted: Alertmanager adds fields within version 4
//! (`truncatedAlerts` came in 0.22), and refusing them would drop alerts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The only payload version this bridge reads.
pub const VERSION: &str = "4";

/// One notification: a group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    /// Alerts Alertmanager left out because of the receiver's `max_alerts`.
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: String,
    /// Go's zero time (`0001-01-01T00:00:00Z`) while firing.
    #[serde(default)]
    pub ends_at: String,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    #[serde(default)]
    pub fingerprint: String,
}

impl Alert {
    pub fn is_firing(&self) -> bool {
        self.status == "firing"
    }

    /// The `alertname` label (or `alert` when it has none).
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("alert")
    }

    /// The `severity` label, or "".
    pub fn severity(&self) -> &str {
        self.labels
            .get("severity")
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The first non-empty annotation among `keys`.
    pub fn annotation(&self, keys: &[&str]) -> &str {
        keys.iter()
            .filter_map(|k| self.annotations.get(*k))
            .find(|v| !v.trim().is_empty())
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A notification Alertmanager would not send: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InvalidPayload {
    /// The JSON path of the field (`alerts[2].startsAt`).
    pub field: String,
    pub message: String,
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> InvalidPayload {
    InvalidPayload {
        field: field.into(),
        message: message.into(),
    }
}

fn status_ok(s: &str) -> bool {
    s == "firing" || s == "resolved"
}

/// Semantic checks serde cannot express.
pub fn validate(n: &Notification) -> Result<(), InvalidPayload> {
    if n.version != VERSION {
        return Err(invalid(
            "version",
            format!(
                "payload version `{}` is not supported; imrelay reads Alertmanager's webhook version \"4\" (Alertmanager 0.7 and later)",
                n.version
            ),
        ));
    }
    if !status_ok(&n.status) {
        return Err(invalid(
            "status",
            format!("`{}` is not `firing` or `resolved`", n.status),
        ));
    }
    if n.alerts.is_empty() {
        return Err(invalid(
            "alerts",
            "holds no alert; a notification carries at least one",
        ));
    }
    for (i, a) in n.alerts.iter().enumerate() {
        let f = |name: &str| format!("alerts[{i}].{name}");
        if !status_ok(&a.status) {
            return Err(invalid(
                f("status"),
                format!("`{}` is not `firing` or `resolved`", a.status),
            ));
        }
        if a.starts_at.parse::<jiff::Timestamp>().is_err() {
            return Err(invalid(
                f("startsAt"),
                format!("`{}` is not an RFC 3339 time", a.starts_at),
            ));
        }
        if !a.ends_at.is_empty() && a.ends_at.parse::<jiff::Timestamp>().is_err() {
            return Err(invalid(
                f("endsAt"),
                format!("`{}` is not an RFC 3339 time", a.ends_at),
            ));
        }
        if !a.is_firing() && crate::templates::is_zero_time(&a.ends_at) {
            return Err(invalid(
                f("endsAt"),
                "a resolved alert needs the time it ended",
            ));
        }
        for k in a.labels.keys() {
            if k.is_empty() {
                return Err(invalid(f("labels"), "a label name is empty"));
            }
        }
    }
    Ok(())
}

/// A small notification with one firing and one resolved alert (config-load
/// checks of templates).
pub fn sample() -> Notification {
    let alert = |status: &str, name: &str, sev: &str, ends: &str| Alert {
        status: status.into(),
        labels: [
            ("alertname", name),
            ("severity", sev),
            ("instance", "db-1:9100"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: [
            ("summary", "Sample summary"),
            ("description", "Sample description"),
            ("runbook_url", "https://runbooks.example.com/sample"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        starts_at: "2026-01-01T00:00:00Z".into(),
        ends_at: ends.into(),
        generator_url: "http://prometheus.example.com/graph".into(),
        fingerprint: "0123456789abcdef".into(),
    };
    Notification {
        version: VERSION.into(),
        group_key: "{}:{alertname=\"Sample\"}".into(),
        truncated_alerts: 0,
        status: "firing".into(),
        receiver: "imrelay".into(),
        group_labels: BTreeMap::new(),
        common_labels: BTreeMap::new(),
        common_annotations: BTreeMap::new(),
        external_url: "http://alertmanager.example.com".into(),
        alerts: vec![
            alert("firing", "SampleFiring", "critical", "0001-01-01T00:00:00Z"),
            alert(
                "resolved",
                "SampleResolved",
                "warning",
                "2026-01-01T00:05:00Z",
            ),
        ],
    }
}
