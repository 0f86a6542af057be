//! Sample notifications for the console's template editor: one place for the
//! alerts a template is tried on (firing, resolved, many, non-ASCII), and a
//! render of a template against one of them that reports the error the
//! bridge would only log before falling back to a built-in.

use std::collections::BTreeMap;

use imrelay_sdk::message::Mentions;

use super::payload::{Alert, Notification, VERSION};
use super::{build_message, Alerting, Ctx, Route, RouteCard, Rule};
use crate::templates::RenderError;

/// A sample notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sample {
    /// One firing alert.
    Firing,
    /// The same alert, resolved.
    Resolved,
    /// Many firing alerts in one group ([`MANY`]).
    Many,
    /// A firing alert with Chinese labels, summary and description.
    NonAscii,
}

/// How many alerts the "many" sample holds.
pub const MANY: usize = 25;

impl Sample {
    pub const ALL: [Sample; 4] = [
        Sample::Firing,
        Sample::Resolved,
        Sample::Many,
        Sample::NonAscii,
    ];

    /// The form value.
    pub fn key(self) -> &'static str {
        match self {
            Sample::Firing => "firing",
            Sample::Resolved => "resolved",
            Sample::Many => "many",
            Sample::NonAscii => "non_ascii",
        }
    }

    /// An English label (the console translates it).
    pub fn label(self) -> &'static str {
        match self {
            Sample::Firing => "Firing (one alert)",
            Sample::Resolved => "Resolved",
            Sample::Many => "Many alerts (25)",
            Sample::NonAscii => "Non-ASCII labels",
        }
    }

    pub fn parse(key: &str) -> Option<Sample> {
        Sample::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The notification, as Alertmanager would post it.
    pub fn notification(self) -> Notification {
        let alerts = match self {
            Sample::Firing => vec![alert(
                "firing",
                "DiskFull",
                "critical",
                "db-1:9100",
                "Disk 91% full on db-1",
                "Less than 9% of /var/lib/postgresql is free.",
            )],
            Sample::Resolved => {
                let mut a = alert(
                    "resolved",
                    "DiskFull",
                    "critical",
                    "db-1:9100",
                    "Disk 91% full on db-1",
                    "Less than 9% of /var/lib/postgresql is free.",
                );
                a.ends_at = "2026-01-01T00:25:00Z".into();
                vec![a]
            }
            Sample::Many => (1..=MANY)
                .map(|i| {
                    alert(
                        "firing",
                        "NodeDown",
                        if i % 5 == 0 { "critical" } else { "warning" },
                        &format!("node-{i:02}.prod.example.com:9100"),
                        &format!("node-{i:02} has not answered scrapes for 5 minutes"),
                        &format!(
                            "Prometheus could not scrape node-{i:02}.prod.example.com:9100 \
                             (context deadline exceeded); check the host, its network and node_exporter."
                        ),
                    )
                })
                .collect(),
            Sample::NonAscii => {
                let mut a = alert(
                    "firing",
                    "磁盘空间不足",
                    "critical",
                    "数据库-1:9100",
                    "数据库 db-1 磁盘使用率 91%，请尽快清理",
                    "/var/lib/postgresql 剩余空间不足 9%。负责人：张三 🚨",
                );
                a.labels.insert("机房".into(), "上海-一区".into());
                vec![a]
            }
        };
        let status = if alerts.iter().any(Alert::is_firing) {
            "firing"
        } else {
            "resolved"
        };
        let name = alerts
            .first()
            .map(|a| a.name().to_string())
            .unwrap_or_default();
        let group_labels: BTreeMap<String, String> =
            [("alertname".to_string(), name.clone())].into();
        Notification {
            version: VERSION.into(),
            group_key: format!("{{}}:{{alertname=\"{name}\"}}"),
            truncated_alerts: 0,
            status: status.into(),
            receiver: "imrelay".into(),
            common_labels: group_labels.clone(),
            group_labels,
            common_annotations: BTreeMap::new(),
            external_url: "http://alertmanager.example.com:9093".into(),
            alerts,
        }
    }
}

fn alert(status: &str, name: &str, sev: &str, instance: &str, summary: &str, desc: &str) -> Alert {
    Alert {
        status: status.into(),
        labels: [
            ("alertname", name),
            ("severity", sev),
            ("instance", instance),
            ("job", "node"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        annotations: [
            ("summary", summary),
            ("description", desc),
            ("runbook_url", "https://runbooks.example.com/disk"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        starts_at: "2026-01-01T00:00:00Z".into(),
        ends_at: "0001-01-01T00:00:00Z".into(),
        generator_url: "http://prometheus.example.com:9090/graph".into(),
        fingerprint: "0123456789abcdef".into(),
    }
}

/// Render `template` against every alert of `n` as `route`'s default rule
/// would. The bridge falls back to a built-in when a template fails; the
/// editor shows why instead.
pub fn try_render(
    alerting: &Alerting,
    route: &Route,
    n: &Notification,
    template: &str,
) -> Result<(), RenderError> {
    let rule = Rule {
        label: "default".into(),
        matchers: Vec::new(),
        channels: Vec::new(),
        mentions: Mentions::default(),
        mention_refs: Vec::new(),
        escalation: None,
        send_resolved: true,
        template: None,
        cont: false,
    };
    let route = Route {
        name: route.name.clone(),
        rules: Vec::new(),
        default: None,
        card: RouteCard::default(),
    };
    let ctx = Ctx {
        alerting,
        route: &route,
        rule: &rule,
        n,
        ext: &n.external_url,
        now: sample_now(),
    };
    let alerts: Vec<&Alert> = n.alerts.iter().collect();
    build_message(&ctx, &alerts, alerts.len(), template).map(|_| ())
}

/// The time samples are rendered at (ten minutes after they started), so
/// durations in a preview do not change between two renders.
pub fn sample_now() -> jiff::Timestamp {
    jiff::Timestamp::from_second(1_767_225_600 + 600).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_valid_notifications() {
        for s in Sample::ALL {
            let n = s.notification();
            super::super::payload::validate(&n).unwrap();
            assert_eq!(Sample::parse(s.key()), Some(s));
        }
        assert_eq!(Sample::Many.notification().alerts.len(), MANY);
        assert_eq!(Sample::Resolved.notification().status, "resolved");
        assert!(Sample::NonAscii.notification().alerts[0].annotations["summary"].contains("磁盘"));
    }
}
