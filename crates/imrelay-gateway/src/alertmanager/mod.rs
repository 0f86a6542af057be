//! The Alertmanager bridge: `POST /v1/alertmanager/{route}` receives
//! Alertmanager's webhook payload (version 4), routes each alert by its labels
//! to channels and mentions, renders one message per channel and platform with
//! the templates of [`crate::templates`], and enqueues them through the durable
//! store, so retries, rate limits, coalescing and the dead-letter queue apply.
//!
//! Alertmanager retries a notification that got a 5xx and drops one that got a
//! 4xx. So the bridge answers 2xx only once every message is committed, 5xx
//! when the store could not commit (Alertmanager will send it again), and 4xx
//! only for a request that can never succeed (bad payload, unknown route, bad
//! key); a platform refusing a message later is the queue's business, never
//! Alertmanager's.
//!
//! # Routing
//! A route (`[alerting.routes.NAME]`) holds rules tried in order; each alert goes
//! to the first rule whose matchers all hold (and on to the next ones while a
//! matching rule has `continue = true`), or to the route's default channels when
//! none matches. Alerts of one rule become one message per channel (per
//! platform, for channels that mix platforms). Mentions ride on firing messages
//! only: a resolved notification does not page anyone.

pub mod config;
pub mod handler;
pub use crate::domain::matcher;
pub mod payload;
pub mod samples;

use std::collections::BTreeMap;

use imrelay_sdk::message::{Body, Button, Mentions, Platform};
use imrelay_sdk::Message;
use serde_json::{json, Value};

use crate::channels::{Channel, ChannelSet, DestinationEntry, POOL_TARGET};
use crate::domain::ids::Target;
use crate::store::NewMessage;
use crate::templates::{builtin_alert_template, span_between, RenderError, Templates};
pub use matcher::Matcher;
pub use payload::{Alert, Notification};

/// The compiled `[alerting]` and `[templates]` sections, swapped on reload.
#[derive(Debug, Clone, Default)]
pub struct Alerting {
    pub templates: Templates,
    pub routes: BTreeMap<String, Route>,
    /// Overrides the payload's `externalURL` in silence links.
    pub external_url: Option<String>,
}

/// One `POST /v1/alertmanager/{route}` endpoint.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub rules: Vec<Rule>,
    /// Where alerts no rule matches go (`None`: they are dropped, and counted in
    /// the answer).
    pub default: Option<Rule>,
    /// Buttons on its cards and who may press them.
    pub card: RouteCard,
}

/// What a route's cards carry after they are sent (see [`crate::lifecycle`]).
#[derive(Debug, Clone, Default)]
pub struct RouteCard {
    pub actions: Vec<crate::lifecycle::ActionKind>,
    /// Platform user ids who may press them; empty: `[lifecycle] allowed_users`.
    pub allowed_users: Vec<String>,
    /// Alertmanager's base URL for silences; `None`: the notification's.
    pub silence_url: Option<String>,
}

impl RouteCard {
    /// The buttons of a card for alerts that are `firing` (a resolved card
    /// has none left to press).
    pub fn buttons(&self, firing: bool) -> Vec<imrelay_sdk::lifecycle::Action> {
        if !firing {
            return Vec::new();
        }
        self.actions
            .iter()
            .map(|k| imrelay_sdk::lifecycle::Action {
                id: k.id(),
                text: k.label(),
                style: match k {
                    crate::lifecycle::ActionKind::Ack => {
                        imrelay_sdk::lifecycle::ActionStyle::Primary
                    }
                    _ => imrelay_sdk::lifecycle::ActionStyle::Default,
                },
            })
            .collect()
    }
}

/// The source a route's messages record (`alertmanager/prod`), which a click
/// on their card uses to find the route's rules.
pub fn source_of(route: &str) -> String {
    format!("{SOURCE_PREFIX}{route}")
}

/// The route a [`source_of`] names.
pub fn route_of(source: &str) -> Option<&str> {
    source.strip_prefix(SOURCE_PREFIX)
}

const SOURCE_PREFIX: &str = "alertmanager/";

impl Route {
    /// Every channel this route may send to (the caller's key must cover all).
    pub fn channels(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in self.rules.iter().chain(self.default.as_ref()) {
            for c in &r.channels {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        out
    }
}

/// A routing rule (or a route's default).
#[derive(Debug, Clone)]
pub struct Rule {
    /// `rules[2]` or `default`, for answers and logs.
    pub label: String,
    pub matchers: Vec<Matcher>,
    pub channels: Vec<String>,
    pub mentions: Mentions,
    /// References the on-call feature resolves at accept (`oncall:dba`).
    pub mention_refs: Vec<String>,
    /// The escalation policy a firing group starts.
    pub escalation: Option<String>,
    pub send_resolved: bool,
    /// A template for every platform instead of the built-in per platform.
    pub template: Option<String>,
    /// Keep trying later rules after this one matched.
    pub cont: bool,
}

/// One message the bridge will enqueue, with what the answer reports.
#[derive(Debug, Clone)]
pub struct Planned {
    pub message: NewMessage,
    pub rule: String,
    pub platform: Platform,
    pub template: String,
    /// Alerts in this message, and how many of them the text shows.
    pub alerts: usize,
    pub shown: usize,
}

/// What a notification turns into.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub messages: Vec<Planned>,
    /// Resolved alerts not sent because their rule has `send_resolved = false`.
    pub resolved_suppressed: usize,
    /// Alerts that matched no rule on a route without default channels.
    pub unrouted: usize,
}

/// Why a plan could not be made (a config/runtime mismatch: answered with 5xx
/// so Alertmanager retries after the config is fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

/// Route and render a validated notification.
pub fn plan(
    alerting: &Alerting,
    route: &Route,
    n: &Notification,
    set: &ChannelSet,
    now: jiff::Timestamp,
) -> Result<Plan, PlanError> {
    let rules: Vec<&Rule> = route.rules.iter().chain(route.default.as_ref()).collect();
    let mut out = Plan::default();
    let buckets = bucket_by_rule(route, n, &mut out.unrouted);
    let ext = alerting
        .external_url
        .clone()
        .unwrap_or_else(|| n.external_url.clone());
    for (rule, alerts) in rules.into_iter().zip(buckets) {
        let before = alerts.len();
        let alerts = most_urgent_first(
            alerts
                .into_iter()
                .filter(|a| rule.send_resolved || a.is_firing())
                .collect(),
        );
        out.resolved_suppressed += before - alerts.len();
        if alerts.is_empty() {
            continue;
        }
        let ctx = Ctx {
            alerting,
            route,
            rule,
            n,
            ext: &ext,
            now,
        };
        for ch_name in &rule.channels {
            let channel = set.get(ch_name).ok_or_else(|| {
                PlanError(format!(
                    "route `{}` names channel `{ch_name}`, which the running config does not have",
                    route.name
                ))
            })?;
            plan_channel(&ctx, channel, &alerts, &mut out.messages)?;
        }
    }
    Ok(out)
}

/// The alerts of each rule (then the default), in rule order: an alert goes
/// to the first rule it matches, and on while the rule says `continue`. One
/// that matches nothing on a route without default is counted in `unrouted`.
fn bucket_by_rule<'n>(
    route: &Route,
    n: &'n Notification,
    unrouted: &mut usize,
) -> Vec<Vec<&'n Alert>> {
    let default_idx = route.default.as_ref().map(|_| route.rules.len());
    let mut buckets: Vec<Vec<&Alert>> =
        vec![Vec::new(); route.rules.len() + usize::from(default_idx.is_some())];
    for a in &n.alerts {
        let mut hit = false;
        for (i, r) in route.rules.iter().enumerate() {
            if matcher::all_match(&r.matchers, &a.labels) {
                buckets[i].push(a);
                hit = true;
                if !r.cont {
                    break;
                }
            }
        }
        if !hit {
            match default_idx {
                Some(d) => buckets[d].push(a),
                None => *unrouted += 1,
            }
        }
    }
    buckets
}

/// Firing before resolved, then by severity, then oldest first, so
/// truncation hides the least important.
fn most_urgent_first(mut alerts: Vec<&Alert>) -> Vec<&Alert> {
    alerts.sort_by(|a, b| {
        (
            !a.is_firing(),
            std::cmp::Reverse(severity_rank(a.severity())),
        )
            .cmp(&(
                !b.is_firing(),
                std::cmp::Reverse(severity_rank(b.severity())),
            ))
            .then_with(|| a.starts_at.cmp(&b.starts_at))
    });
    alerts
}

/// The messages one rule's alerts become on one channel: one per platform
/// group, plus the WeCom mention ping.
fn plan_channel(
    ctx: &Ctx,
    channel: &Channel,
    alerts: &[&Alert],
    out: &mut Vec<Planned>,
) -> Result<(), PlanError> {
    let rule = ctx.rule;
    for (platform, targets, dests) in platform_groups(channel) {
        let (msg, template, shown) = render_fitted(ctx, alerts, platform, &dests)?;
        let mut messages = vec![msg];
        if platform == Platform::Wecom {
            messages.extend(wecom_mention_ping(rule, alerts));
        }
        let firing = alerts.iter().any(|a| a.is_firing());
        for (i, m) in messages.into_iter().enumerate() {
            let mut nm = NewMessage::new(channel.name.clone(), m, targets.clone());
            nm.message.id = Some(nm.id.to_string());
            // The card (not the WeCom ping after it) is the group's
            // thread: later notifications of the group update it.
            if i == 0 {
                make_group_thread(&mut nm, ctx, platform, firing);
            }
            // Quiet hours read the message's severity: the most urgent of
            // its alerts' (the labels stay the group's: a silence from the
            // card matches what Alertmanager grouped by).
            nm.severity = alerts
                .iter()
                .map(|a| a.severity())
                .max_by_key(|s| severity_rank(s))
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            out.push(Planned {
                message: nm,
                rule: rule.label.clone(),
                platform,
                template: template.clone(),
                alerts: alerts.len(),
                shown,
            });
        }
    }
    Ok(())
}

/// Make `nm` the thread of its alert group on this rule and platform, with
/// the route's card buttons, the group's labels and a silence link.
fn make_group_thread(nm: &mut NewMessage, ctx: &Ctx, platform: Platform, firing: bool) {
    let (route, n) = (ctx.route, ctx.n);
    nm.thread = Some(format!("{}#{}#{platform}", n.group_key, ctx.rule.label));
    nm.message.actions = route.card.buttons(firing);
    nm.labels = n.group_labels.clone().into_iter().collect();
    nm.silence_url = Some(
        route
            .card
            .silence_url
            .clone()
            .unwrap_or_else(|| ctx.ext.to_string()),
    );
    nm.source = Some(source_of(&route.name));
    nm.oncall.mentions = ctx.rule.mention_refs.clone();
    nm.oncall.labels = n.common_labels.clone().into_iter().collect();
    nm.oncall.annotations = n.common_annotations.clone().into_iter().collect();
    if firing {
        nm.oncall.escalation = ctx.rule.escalation.clone();
    } else {
        // Every alert of the group resolved: its escalation ends.
        nm.resolved = true;
    }
}

/// WeCom markdown cannot @all or @ phone numbers; a short text message right
/// after carries them (only while something fires).
fn wecom_mention_ping(rule: &Rule, alerts: &[&Alert]) -> Option<Message> {
    let firing = alerts.iter().any(|a| a.is_firing());
    let pings = rule.mentions.all || !rule.mentions.mobiles.is_empty();
    (firing && pings).then(|| {
        Message::new(Body::Text {
            text: format!(
                "🔥 {} firing: {}",
                count_firing(alerts),
                alert_names(alerts)
            ),
        })
        .with_mentions(Mentions {
            all: rule.mentions.all,
            mobiles: rule.mentions.mobiles.clone(),
            user_ids: Vec::new(),
            ..Default::default()
        })
    })
}

/// A channel's targets grouped by platform (a pool is one target).
fn platform_groups(ch: &Channel) -> Vec<(Platform, Vec<Target>, Vec<&DestinationEntry>)> {
    if ch.pool {
        let Some(first) = ch.destinations.first() else {
            return Vec::new();
        };
        return vec![(
            first.dest.platform(),
            vec![Target::new(&ch.name, POOL_TARGET)],
            vec![first],
        )];
    }
    let mut groups: Vec<(Platform, Vec<Target>, Vec<&DestinationEntry>)> = Vec::new();
    for d in &ch.destinations {
        let t = Target::new(&ch.name, d.key.as_str());
        let p = d.dest.platform();
        match groups.iter_mut().find(|g| g.0 == p) {
            Some(g) => {
                if !g.1.contains(&t) {
                    g.1.push(t);
                    g.2.push(d);
                }
            }
            None => groups.push((p, vec![t], vec![d])),
        }
    }
    groups
}

struct Ctx<'a> {
    alerting: &'a Alerting,
    route: &'a Route,
    rule: &'a Rule,
    n: &'a Notification,
    ext: &'a str,
    now: jiff::Timestamp,
}

/// Render with as many alerts as fit one request on every destination of the
/// group; the rest become an "… and N more alerts" line.
fn render_fitted(
    ctx: &Ctx,
    alerts: &[&Alert],
    platform: Platform,
    dests: &[&DestinationEntry],
) -> Result<(Message, String, usize), PlanError> {
    let builtin = builtin_alert_template(platform);
    let mut names: Vec<&str> = Vec::new();
    if let Some(t) = &ctx.rule.template {
        names.push(t);
    }
    names.push(builtin);
    if builtin != "alert.text" {
        names.push("alert.text");
    }
    let mut last_err = String::new();
    for name in names {
        let build = |k: usize| build_message(ctx, alerts, k, name);
        let full = match build(alerts.len()) {
            Ok(m) => m,
            Err(e) => {
                // A user template failing on this data must not lose the alert:
                // fall back to the built-in, loudly.
                tracing::error!(template = name, route = %ctx.route.name, error = %e, "alert template failed; falling back");
                last_err = e.to_string();
                continue;
            }
        };
        if fits(&full, dests) {
            return Ok((full, name.to_string(), alerts.len()));
        }
        // Largest k in [1, n) that fits; at least one alert is always shown (the
        // SDK's own overflow rule then splits or truncates it).
        let (mut lo, mut hi) = (1usize, alerts.len() - 1);
        let mut best: Option<(Message, usize)> = None;
        while lo <= hi {
            let mid = (lo + hi) / 2;
            match build(mid) {
                Ok(m) if fits(&m, dests) => {
                    best = Some((m, mid));
                    lo = mid + 1;
                }
                _ => {
                    if mid == 0 {
                        break;
                    }
                    hi = mid - 1;
                }
            }
        }
        let (m, k) = match best {
            Some(b) => b,
            None => (
                build(1.min(alerts.len())).map_err(|e| PlanError(e.to_string()))?,
                1.min(alerts.len()),
            ),
        };
        return Ok((m, name.to_string(), k));
    }
    Err(PlanError(format!(
        "no alert template could render this notification: {last_err}"
    )))
}

/// Whether every destination renders `msg` as a single request.
fn fits(msg: &Message, dests: &[&DestinationEntry]) -> bool {
    dests
        .iter()
        .all(|d| matches!(d.dest.render(msg), Ok(p) if p.len() == 1))
}

fn build_message(
    ctx: &Ctx,
    alerts: &[&Alert],
    shown: usize,
    template: &str,
) -> Result<Message, RenderError> {
    let value = context(ctx, alerts, shown);
    let firing = alerts.iter().any(|a| a.is_firing());
    let buttons = buttons(ctx, alerts, firing);
    let r = ctx.alerting.templates.render(
        template,
        &minijinja::Value::from(minijinja::value::Serde(&value)),
        buttons,
    )?;
    let mut m = Message::new(r.body);
    m.title = r.title;
    if firing {
        m.mentions = ctx.rule.mentions.clone();
    }
    Ok(m)
}

/// Card buttons: the first alert's source, and a silence for the group.
fn buttons(ctx: &Ctx, alerts: &[&Alert], firing: bool) -> Vec<Button> {
    let mut b = Vec::new();
    if let Some(src) = alerts
        .iter()
        .map(|a| a.generator_url.as_str())
        .find(|u| is_http(u))
    {
        b.push(Button {
            text: "Source".into(),
            url: src.to_string(),
        });
    }
    if firing {
        let labels = if ctx.n.group_labels.is_empty() {
            &ctx.n.common_labels
        } else {
            &ctx.n.group_labels
        };
        if let Some(u) = silence_url(ctx.ext, labels) {
            b.push(Button {
                text: "Silence".into(),
                url: u,
            });
        }
    }
    b
}

fn is_http(u: &str) -> bool {
    u.starts_with("http://") || u.starts_with("https://")
}

/// Alertmanager's "new silence" page, prefilled with `labels`.
pub fn silence_url(external: &str, labels: &BTreeMap<String, String>) -> Option<String> {
    if !is_http(external) || labels.is_empty() {
        return None;
    }
    let filter = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let enc: String = url::form_urlencoded::byte_serialize(format!("{{{filter}}}").as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    Some(format!(
        "{}/#/silences/new?filter={enc}",
        external.trim_end_matches('/')
    ))
}

/// The template context (documented in docs/alerting.md and the module docs of
/// [`crate::templates`]).
fn context(ctx: &Ctx, alerts: &[&Alert], shown: usize) -> Value {
    let tpl = &ctx.alerting.templates;
    let firing = count_firing(alerts);
    let truncated = usize::try_from(ctx.n.truncated_alerts).unwrap_or(usize::MAX / 2);
    let items: Vec<Value> = alerts
        .iter()
        .take(shown)
        .map(|a| {
            let mut other = a.labels.clone();
            other.remove("alertname");
            other.remove("severity");
            let resolved = !a.is_firing();
            let ends_at = if resolved {
                tpl.format_time(&a.ends_at).unwrap_or_default()
            } else {
                String::new()
            };
            let duration = if resolved {
                a.ends_at
                    .parse::<jiff::Timestamp>()
                    .map(|end| span_between(&a.starts_at, end))
                    .unwrap_or_default()
            } else {
                span_between(&a.starts_at, ctx.now)
            };
            json!({
                "status": a.status,
                "name": a.name(),
                "severity": a.severity(),
                "labels": a.labels,
                "other_labels": other,
                "annotations": a.annotations,
                "summary": a.annotation(&["summary"]),
                "description": a.annotation(&["description", "message"]),
                "runbook_url": a.annotation(&["runbook_url", "runbook"]),
                "starts_at": tpl.format_time(&a.starts_at).unwrap_or_default(),
                "ends_at": ends_at,
                "starts_at_rfc3339": a.starts_at,
                "ends_at_rfc3339": if resolved { a.ends_at.as_str() } else { "" },
                "duration": duration,
                "generator_url": a.generator_url,
                "fingerprint": a.fingerprint,
                "silence_url": silence_url(ctx.ext, &a.labels),
            })
        })
        .collect();
    json!({
        "status": if firing > 0 { "firing" } else { "resolved" },
        "route": ctx.route.name,
        "rule": ctx.rule.label,
        "receiver": ctx.n.receiver,
        "group_key": ctx.n.group_key,
        "group_labels": ctx.n.group_labels,
        "common_labels": ctx.n.common_labels,
        "common_annotations": ctx.n.common_annotations,
        "external_url": ctx.ext,
        "names": alert_names(alerts),
        "severity": top_severity(alerts),
        "firing": firing,
        "resolved": alerts.len() - firing,
        // Alerts Alertmanager itself left out (`max_alerts`) count as hidden too.
        "total": alerts.len() + truncated,
        "more": alerts.len() - shown.min(alerts.len()) + truncated,
        "alerts": items,
        "time_zone": tpl.time_zone(),
    })
}

fn count_firing(alerts: &[&Alert]) -> usize {
    alerts.iter().filter(|a| a.is_firing()).count()
}

/// `HighCPU`, `HighCPU, DiskFull`, `HighCPU, DiskFull and 3 more`.
fn alert_names(alerts: &[&Alert]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for a in alerts {
        let n = a.name();
        if !names.contains(&n) {
            names.push(n);
        }
    }
    match names.len() {
        0 => "alert".to_string(),
        1..=3 => names.join(", "),
        n => format!("{} and {} more", names[..2].join(", "), n - 2),
    }
}

/// The most severe `severity` label among the firing alerts (all, when none fires).
fn top_severity(alerts: &[&Alert]) -> String {
    let firing: Vec<&&Alert> = alerts.iter().filter(|a| a.is_firing()).collect();
    let pool: Vec<&&Alert> = if firing.is_empty() {
        alerts.iter().collect()
    } else {
        firing
    };
    pool.iter()
        .map(|a| a.severity())
        .filter(|s| !s.is_empty())
        .max_by_key(|s| severity_rank(s))
        .unwrap_or("")
        .to_string()
}

/// Render `template` against a sample firing and a sample resolved
/// notification, so config load reports templates that fail on real data.
pub fn sample_render(alerting: &Alerting, template: &str) -> Result<(), RenderError> {
    let route = Route {
        name: "sample".into(),
        rules: Vec::new(),
        default: None,
        card: RouteCard::default(),
    };
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
    let n = payload::sample();
    let now = jiff::Timestamp::UNIX_EPOCH;
    let ctx = Ctx {
        alerting,
        route: &route,
        rule: &rule,
        n: &n,
        ext: &n.external_url,
        now,
    };
    let alerts: Vec<&Alert> = n.alerts.iter().collect();
    build_message(&ctx, &alerts, 1, template)?;
    let resolved: Vec<&Alert> = n.alerts.iter().filter(|a| !a.is_firing()).collect();
    build_message(&ctx, &resolved, 1, template)?;
    Ok(())
}

/// Higher is more urgent; unknown severities sit between warning and info.
pub fn severity_rank(s: &str) -> u8 {
    match s.to_ascii_lowercase().as_str() {
        "emergency" | "disaster" | "fatal" | "page" | "p0" => 6,
        "critical" | "crit" | "p1" => 5,
        "error" | "major" | "high" | "p2" => 4,
        "warning" | "warn" | "minor" | "medium" | "p3" => 3,
        "" => 1,
        "info" | "informational" | "notice" | "low" | "p4" | "p5" | "none" => 0,
        _ => 2,
    }
}

#[cfg(test)]
mod tests;
