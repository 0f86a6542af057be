//! Sources: `POST /v1/sources/{name}` receives another system's own webhook
//! payload (Grafana, Zabbix, Alibaba Cloud CloudMonitor, Tencent Cloud
//! Observability, GitLab, GitHub, or any JSON through configured pointers),
//! turns it into [`Event`]s, and enqueues one message per event and channel.
//!
//! Each event carries a thread key, so a later state of the same alert or
//! pipeline (resolved, recovered, success) updates the message of its first
//! state instead of arriving as an unrelated one; its labels are stored with
//! the message (routes, silences and searches use them).
//!
//! One file per source parses its payload; [`config`] reads `[sources.NAME]`
//! and [`handler`] serves the endpoint.

pub mod aliyun;
pub mod config;
pub mod github;
pub mod gitlab;
pub mod grafana;
pub mod handler;
pub mod json;
pub mod tencent;
pub mod zabbix;

use std::collections::BTreeMap;

use imrelay_sdk::message::{Body, Button};
use imrelay_sdk::Message;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::alertmanager::RouteCard;
use crate::channels::ChannelSet;
use crate::store::{Labels, NewMessage};
use crate::templates::Templates;

/// The compiled `[sources]` section, swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub sources: BTreeMap<String, Source>,
}

/// One `POST /v1/sources/{name}` endpoint.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub kind: Kind,
    pub channels: Vec<String>,
    /// A `[templates.X]` rendered with the event instead of the built-in card.
    pub template: Option<String>,
    /// Buttons on the cards of open events, and who may press them.
    pub card: RouteCard,
    /// Where events go when no rule matches (`channels`).
    pub default: SourceRoute,
    /// Rules by the event's labels, tried in order.
    pub rules: Vec<SourceRoute>,
}

/// Where a source's events go, whom they @ and what escalation they start.
#[derive(Debug, Clone)]
pub struct SourceRoute {
    pub matchers: Vec<crate::domain::matcher::Matcher>,
    pub channels: Vec<String>,
    pub mentions: crate::domain::mentions::MentionsSpec,
    pub escalation: Option<String>,
    pub cont: bool,
}

impl Source {
    /// Every channel the source may send to (the API key must may use them all).
    pub fn all_channels(&self) -> impl Iterator<Item = &String> {
        self.channels
            .iter()
            .chain(self.rules.iter().flat_map(|r| r.channels.iter()))
    }

    /// The routes an event with `labels` takes: the matching rules (up to the
    /// first without `continue`), else the default.
    fn routes(&self, labels: &crate::store::Labels) -> Vec<&SourceRoute> {
        let mut out = Vec::new();
        for r in &self.rules {
            if crate::domain::matcher::all_match(&r.matchers, labels) {
                out.push(r);
                if !r.cont {
                    break;
                }
            }
        }
        if out.is_empty() {
            out.push(&self.default);
        }
        out
    }
}

/// What a source receives, with the settings of its type.
#[derive(Debug, Clone)]
pub enum Kind {
    Grafana,
    Zabbix,
    AliyunCloudMonitor,
    TencentCloud,
    Gitlab(gitlab::Settings),
    Github(github::Settings),
    Json(json::Mapping),
}

impl Kind {
    /// The `type` in the config.
    pub fn source_type(&self) -> config::SourceType {
        use config::SourceType as T;
        match self {
            Kind::Grafana => T::Grafana,
            Kind::Zabbix => T::Zabbix,
            Kind::AliyunCloudMonitor => T::AliyunCloudmonitor,
            Kind::TencentCloud => T::TencentCloud,
            Kind::Gitlab(_) => T::Gitlab,
            Kind::Github(_) => T::Github,
            Kind::Json(_) => T::Json,
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.source_type().as_str()
    }
}

/// Where an event stands. Alerts fire and resolve; pipelines and deployments
/// run and then succeed, fail or are canceled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Firing,
    Resolved,
    Running,
    Succeeded,
    Failed,
    Canceled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
            Status::Running => "running",
            Status::Succeeded => "success",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    fn badge(self) -> &'static str {
        match self {
            Status::Firing => "🔥 FIRING",
            Status::Resolved => "✅ RESOLVED",
            Status::Running => "⏳ RUNNING",
            Status::Succeeded => "✅ SUCCESS",
            Status::Failed => "❌ FAILED",
            Status::Canceled => "⏹ CANCELED",
        }
    }

    /// The card header colour (the names the built-in alert cards use).
    fn theme(self, severity: Option<&str>) -> &'static str {
        match self {
            Status::Resolved | Status::Succeeded => "green",
            Status::Failed => "red",
            Status::Running | Status::Canceled => "blue",
            Status::Firing => match severity.map(crate::alertmanager::severity_rank) {
                Some(r) if r >= 4 => "red",
                Some(0) => "blue",
                _ => "orange",
            },
        }
    }
}

/// What one payload says, in the source's terms turned into imrelay's.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub status: Status,
    pub title: String,
    /// Markdown.
    pub text: String,
    /// Normalized to imrelay's names (`critical`, `error`, `warning`, `info`)
    /// where the source has its own; also in `labels["severity"]`.
    pub severity: Option<String>,
    pub labels: Labels,
    /// Events with the same key are one thread: the first is sent, later
    /// ones update it.
    pub thread: Option<String>,
    /// Link buttons (dashboard, pipeline, silence page).
    pub links: Vec<Button>,
}

impl Event {
    pub fn new(status: Status, title: impl Into<String>, text: impl Into<String>) -> Self {
        Event {
            status,
            title: title.into(),
            text: text.into(),
            severity: None,
            labels: Labels::new(),
            thread: None,
            links: Vec::new(),
        }
    }

    /// Set the severity and its label.
    pub fn with_severity(mut self, severity: impl Into<String>) -> Self {
        let s: String = severity.into();
        if !s.is_empty() {
            self.labels.insert("severity".into(), s.clone());
            self.severity = Some(s);
        }
        self
    }

    /// Add a label under a valid Prometheus name; empty values are skipped.
    pub fn label(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if !value.is_empty() {
            self.labels.insert(label_name(name), value);
        }
    }

    /// Add a link button when `url` is an http(s) URL.
    pub fn link(&mut self, text: &str, url: &str) {
        if (url.starts_with("http://") || url.starts_with("https://"))
            && !self.links.iter().any(|b| b.url == url)
        {
            self.links.push(Button {
                text: text.to_string(),
                url: url.to_string(),
            });
        }
    }
}

/// What a payload turns into.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Events(Vec<Event>),
    /// A well-formed payload this source does not send (a `ping`, an event
    /// kind not in `events`): answered 200, so the sender does not retry.
    Ignored(String),
}

/// A payload that can never succeed: the field at fault and why (answered 422).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    pub field: String,
    pub message: String,
}

impl PayloadError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        PayloadError {
            field: field.into(),
            message: message.into(),
        }
    }

    fn missing(field: &str) -> Self {
        PayloadError::new(field, "missing or empty")
    }
}

/// The text at JSON pointer `ptr` of `v`: strings as they are, numbers and
/// booleans written out; `None` when absent, null, empty or a container.
pub fn text_at(v: &Value, ptr: &str) -> Option<String> {
    scalar_text(v.pointer(ptr)?)
}

/// A scalar as text (`None` for null, empty strings and containers).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The text at `ptr`, or a [`PayloadError`] naming the field (`ptr` without
/// its leading `/`, dotted).
fn required(v: &Value, ptr: &str) -> Result<String, PayloadError> {
    text_at(v, ptr).ok_or_else(|| PayloadError::missing(&field_of(ptr)))
}

/// `/object_attributes/status` as a field name: `object_attributes.status`.
fn field_of(ptr: &str) -> String {
    ptr.trim_start_matches('/').replace('/', ".")
}

/// A valid Prometheus label name for `name`: other characters become `_`.
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The label names and values a thread keys on, as one stable string.
fn key_of(parts: &[(&str, &str)]) -> String {
    parts
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Longest thread key stored as is; longer ones are hashed (the store takes 256).
const MAX_THREAD_KEY: usize = 200;

/// The stored thread of `event` from source `source`: namespaced by source,
/// so two sources' ids cannot collide.
fn thread_key(source: &str, key: &str) -> String {
    let full = format!("source/{source}#{key}");
    if full.len() <= MAX_THREAD_KEY {
        full
    } else {
        format!(
            "source/{source}#sha256:{}",
            hex::encode(Sha256::digest(key.as_bytes()))
        )
    }
}

/// The `source` recorded on a source's messages (`source/grafana`).
pub fn source_of(name: &str) -> String {
    format!("source/{name}")
}

/// Why messages could not be planned (a config/runtime mismatch: 500).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

/// One message per event and channel.
pub fn plan(
    source: &Source,
    events: &[Event],
    templates: &Templates,
    set: &ChannelSet,
) -> Result<Vec<NewMessage>, PlanError> {
    let mut out = Vec::new();
    for event in events {
        let message = render(source, event, templates);
        let open = matches!(event.status, Status::Firing | Status::Running);
        for route in source.routes(&event.labels) {
            for ch in &route.channels {
                let channel = set.get(ch).ok_or_else(|| {
                    PlanError(format!(
                        "source `{}` names channel `{ch}`, which the running config does not have",
                        source.name
                    ))
                })?;
                let mut nm = NewMessage::new(ch.clone(), message.clone(), channel.targets());
                nm.message.id = Some(nm.id.to_string());
                nm.message.actions = if open {
                    source.card.buttons(true)
                } else {
                    Vec::new()
                };
                nm.message.mentions = route.mentions.direct();
                nm.oncall.mentions = route.mentions.refs();
                nm.thread = event.thread.as_deref().map(|k| thread_key(&source.name, k));
                if open {
                    nm.oncall.escalation = route.escalation.clone();
                } else if matches!(event.status, Status::Resolved) {
                    // The event resolved: its thread's escalation ends.
                    nm.resolved = true;
                }
                nm.labels = event.labels.clone();
                nm.source = Some(source_of(&source.name));
                out.push(nm);
            }
        }
    }
    Ok(out)
}

/// The event's message: the source's template when it has one and it
/// renders, else the built-in card.
fn render(source: &Source, event: &Event, templates: &Templates) -> Message {
    if let Some(name) = &source.template {
        let ctx = minijinja::Value::from(minijinja::value::Serde(&context(source, event)));
        match templates.render(name, &ctx, event.links.clone()) {
            Ok(r) => {
                let mut m = Message::new(r.body);
                m.title = r.title.or_else(|| Some(title_line(event)));
                return m;
            }
            // A template failing on this event must not lose it.
            Err(e) => {
                tracing::error!(source = %source.name, template = %name, error = %e, "source template failed; sending the built-in card")
            }
        }
    }
    builtin(event)
}

/// `🔥 FIRING · High memory usage`.
fn title_line(event: &Event) -> String {
    format!("{} · {}", event.status.badge(), event.title)
}

/// The built-in card: a heading, the event's text, its labels, its links.
fn builtin(event: &Event) -> Message {
    let mut text = format!("#### {}\n\n{}", title_line(event), event.text.trim());
    let shown: Vec<String> = event
        .labels
        .iter()
        .map(|(k, v)| format!("`{k}={v}`"))
        .collect();
    if !shown.is_empty() {
        text.push_str("\n\n");
        text.push_str(&shown.join(" "));
    }
    let mut m = Message::new(Body::Card {
        text,
        buttons: event.links.clone(),
        theme: Some(event.status.theme(event.severity.as_deref()).to_string()),
    });
    m.title = Some(title_line(event));
    m
}

/// What a source template sees.
fn context(source: &Source, event: &Event) -> Value {
    json!({
        "source": source.name,
        "type": source.kind.as_str(),
        "status": event.status.as_str(),
        "severity": event.severity.clone().unwrap_or_default(),
        "title": event.title,
        "text": event.text,
        "labels": event.labels,
        "links": event.links.iter().map(|b| json!({"text": b.text, "url": b.url})).collect::<Vec<_>>(),
    })
}

/// A sample event, rendered with every template a source uses at config load.
pub fn sample_render(
    templates: &Templates,
    name: &str,
) -> Result<(), crate::templates::RenderError> {
    let source = Source {
        name: "sample".into(),
        kind: Kind::Zabbix,
        channels: Vec::new(),
        template: Some(name.to_string()),
        card: RouteCard::default(),
        default: SourceRoute {
            matchers: Vec::new(),
            channels: Vec::new(),
            mentions: Default::default(),
            escalation: None,
            cont: false,
        },
        rules: Vec::new(),
    };
    let mut event = Event::new(Status::Firing, "Sample", "A sample event").with_severity("warning");
    event.label("host", "db-1");
    let ctx = minijinja::Value::from(minijinja::value::Serde(&context(&source, &event)));
    templates.render(name, &ctx, Vec::new()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_made_valid() {
        assert_eq!(label_name("host.name"), "host_name");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name(""), "_");
        assert_eq!(label_name("severity"), "severity");
    }

    #[test]
    fn long_thread_keys_are_hashed_and_stable() {
        let short = thread_key("g", "abc");
        assert_eq!(short, "source/g#abc");
        let long = "k".repeat(400);
        let a = thread_key("g", &long);
        assert!(a.len() <= MAX_THREAD_KEY && a.starts_with("source/g#sha256:"));
        assert_eq!(a, thread_key("g", &long));
    }

    #[test]
    fn the_builtin_card_shows_status_title_and_labels() {
        let mut e =
            Event::new(Status::Firing, "Disk full", "/var at 99%").with_severity("critical");
        e.label("host", "db-1");
        let m = builtin(&e);
        let Body::Card { text, theme, .. } = &m.body else {
            panic!("{:?}", m.body)
        };
        assert!(
            text.starts_with("#### 🔥 FIRING · Disk full\n\n/var at 99%"),
            "{text}"
        );
        assert!(text.contains("`host=db-1`") && text.contains("`severity=critical`"));
        assert_eq!(theme.as_deref(), Some("red"));
        let r = builtin(&Event::new(Status::Resolved, "Disk full", "ok"));
        assert!(matches!(r.body, Body::Card { theme: Some(ref t), .. } if t == "green"));
    }
}
