//! The HTML of every page (maud: escaped by construction). No inline script
//! or style: behaviour is in the one script file, looks in the one stylesheet.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use imrelay_sdk::message::{Body, Platform};
use imrelay_sdk::outcome::CodeInfo;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::editor::EditorView;
use super::handlers::{AuditQuery, DlqQuery, MessagesQuery, Overview, PreviewForm, TokenView};
use super::i18n::Lang;
use super::svg;
use super::{CSS_PATH, JS_PATH};
use crate::channels::ChannelSet;
use crate::http::problem::Problem;
use crate::store::{AuditEntry, DeadEntry, MessageState, MessageSummary, MessageView};
use std::collections::BTreeMap;

/// What every page's frame needs.
pub(crate) struct Page<'a> {
    pub lang: Lang,
    /// The user's name and their session's CSRF token, once logged in.
    pub user: Option<(&'a str, &'a str)>,
    /// This page's path and query.
    pub here: &'a str,
    /// Whether the user may use every channel (only they see the audit trail).
    pub every_channel: bool,
}

const NAV: [(&str, &str); 8] = [
    ("/ui/", "Overview"),
    ("/ui/messages", "Messages"),
    ("/ui/dlq", "Dead letters"),
    ("/ui/channels", "Channels"),
    ("/ui/silences", "Silences"),
    ("/ui/oncall", "On call"),
    ("/ui/templates", "Templates"),
    ("/ui/audit", "Audit"),
];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn frame(p: &Page<'_>, title: &str, body: Markup) -> Html<String> {
    let t = |s| p.lang.t(s);
    let path = p.here.split('?').next().unwrap_or("");
    let page = html! {
        (DOCTYPE)
        html lang=(p.lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No favicon request (it would be a 404 on every page).
                link rel="icon" href="data:,";
                title { (title) " · imrelay" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(JS_PATH) defer {}
            }
            body {
                a.skip href="#main" { (t("Skip to content")) }
                header.top {
                    a.brand href="/ui/" { "imrelay" }
                    @if p.user.is_some() {
                        nav aria-label=(t("Main navigation")) {
                            ul {
                                @for (href, label) in NAV.into_iter().filter(|(h, _)| p.every_channel || *h != "/ui/audit") {
                                    @let current = if href == "/ui/" { path == "/ui/" } else { path.starts_with(href) };
                                    li { a href=(href) aria-current=[current.then_some("page")] { (t(label)) } }
                                }
                            }
                        }
                    }
                    div.tools {
                        span.lang {
                            a href={"/ui/lang/en?next=" (enc(p.here))} lang="en" hreflang="en" { "English" }
                            " · "
                            a href={"/ui/lang/zh?next=" (enc(p.here))} lang="zh-CN" hreflang="zh-CN" { "中文" }
                        }
                        @if let Some((name, csrf)) = p.user {
                            form.logout method="post" action="/ui/logout" {
                                span.user { (name) }
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { (t("Log out")) }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    Html(page.into_string())
}

fn csrf_field(p: &Page<'_>) -> Markup {
    html! { input type="hidden" name="csrf" value=(p.user.map(|u| u.1).unwrap_or("")); }
}

/// ms since the epoch as `2026-12-01 08:00:05Z`.
pub(crate) fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn age(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// `850ms`, `2.3s`, `4m 5s`.
fn millis(ms: i64) -> String {
    match ms.max(0) {
        ms @ 0..1000 => format!("{ms}ms"),
        ms @ 1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms => age(ms),
    }
}

fn notice_text(lang: Lang, notice: &str) -> Option<&'static str> {
    Some(lang.t(match notice {
        "replayed" => "Replayed",
        "purged" => "Purged",
        "queued" => "Queued",
        "silenced" => "Silence created",
        "expired" => "Silence ended",
        _ => return None,
    }))
}

fn notice(lang: Lang, notice: &str, n: Option<u64>) -> Markup {
    html! {
        @if let Some(text) = notice_text(lang, notice) {
            p.notice role="status" { (text) @if let Some(n) = n { ": " (n) } }
        }
    }
}

fn state_label(lang: Lang, s: MessageState) -> (&'static str, &'static str) {
    let key = match s {
        MessageState::Pending => "pending",
        MessageState::Delivered => "delivered",
        MessageState::Dead => "dead",
        MessageState::Partial => "partial",
        MessageState::Silenced => "silenced",
    };
    (key, lang.t(key))
}

/// A short text for a message in a list.
fn summary(m: &imrelay_sdk::Message) -> String {
    let body = match &m.body {
        Body::Text { text }
        | Body::Markdown { text }
        | Body::Card { text, .. }
        | Body::Link { text, .. } => text.clone(),
        Body::Template { data, .. } => data
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v["type"].as_str().map(|s| format!("({s})")))
            .unwrap_or_default(),
    };
    let text = match &m.title {
        Some(t) if !t.is_empty() => format!("{t} — {body}"),
        _ => body,
    };
    crate::http::truncate(&text, 160)
}

/// What a platform code means and what to do, from the SDK's tables.
pub(crate) fn code_info(
    set: &ChannelSet,
    destination_or_target: &str,
    code: &str,
) -> Option<&'static CodeInfo> {
    let code: i64 = code.trim().parse().ok()?;
    let key = destination_or_target
        .split_once('/')
        .map_or(destination_or_target, |(_, k)| k);
    let platform = set
        .channels
        .values()
        .flat_map(|c| c.destinations.iter())
        .find(|d| d.key == key || d.key == destination_or_target)
        .map(|d| d.dest.platform())
        .or_else(|| {
            let r = set.resolve(destination_or_target)?;
            r.members.first().map(|d| d.dest.platform())
        })?;
    let table: &'static [CodeInfo] = match platform {
        Platform::Dingtalk => imrelay_sdk::platform::dingtalk::codes::CODES,
        Platform::Feishu => imrelay_sdk::platform::feishu::codes::CODES,
        Platform::Wecom => imrelay_sdk::platform::wecom::codes::CODES,
        Platform::Wechat => imrelay_sdk::platform::wechat::codes::CODES,
        _ => &[],
    };
    imrelay_sdk::outcome::lookup(table, code)
}

// ---- pages --------------------------------------------------------------------

pub(crate) fn error_page(p: &Page<'_>, status: StatusCode, detail: &str) -> Response {
    let title = match status {
        StatusCode::NOT_FOUND => p.lang.t("Not found"),
        StatusCode::FORBIDDEN => p.lang.t("Forbidden"),
        _ => p.lang.t("Error"),
    };
    (
        status,
        frame(p, title, html! { p.error role="alert" { (detail) } }),
    )
        .into_response()
}

pub(crate) fn login(p: &Page<'_>, token: &str, next: &str, error: Option<&str>) -> Html<String> {
    let t = |s| p.lang.t(s);
    frame(
        p,
        t("Log in"),
        html! {
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.login method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(token);
                input type="hidden" name="next" value=(next);
                label for="user" { (t("User")) }
                input #user type="text" name="user" autocomplete="username" autocapitalize="none";
                label for="password" { (t("Password")) }
                input #password type="password" name="password" autocomplete="current-password";
                details {
                    summary { (t("or an API key")) }
                    label for="key" { (t("API key")) }
                    input #key type="password" name="key" autocomplete="off";
                }
                button type="submit" { (t("Log in")) }
            }
        },
    )
}

pub(crate) fn overview_numbers(lang: Lang, o: &Overview) -> Value {
    serde_json::json!({
        "accepted": o.accepted,
        "delivered": o.delivered,
        "failed": o.failed,
        "dead_hour": o.dead_hour,
        // Of the deliveries that settled in the hour, the share delivered.
        "success": match o.delivered + o.dead_hour {
            0 => "—".to_string(),
            n => format!("{:.1}%", o.delivered as f64 * 100.0 / n as f64),
        },
        "pending": o.pending,
        "in_flight": o.in_flight,
        "silenced": o.silenced.map_or("—".to_string(), |n| n.to_string()),
        "dlq": o.dlq,
        "oldest": o.oldest_pending_ms.map_or("—".to_string(), age),
        "breakers": o.open_breakers,
        "p50": o.latency.p50_ms.map_or("—".to_string(), millis),
        "p90": o.latency.p90_ms.map_or("—".to_string(), millis),
        "p99": o.latency.p99_ms.map_or("—".to_string(), millis),
        "lang": lang.code(),
    })
}

pub(crate) fn overview_charts(lang: Lang, o: &Overview) -> Markup {
    let t = |s| lang.t(s);
    let col =
        |f: fn(&crate::store::ActivityMinute) -> u64| o.minutes.iter().map(f).collect::<Vec<_>>();
    html! {
        figure { figcaption { (t("Accepted per minute")) } (svg::bars(&col(|m| m.accepted), t("Accepted per minute"), "accepted")) }
        figure { figcaption { (t("Delivered per minute")) } (svg::bars(&col(|m| m.delivered), t("Delivered per minute"), "delivered")) }
        figure { figcaption { (t("Failed attempts per minute")) } (svg::bars(&col(|m| m.failed), t("Failed attempts per minute"), "failed")) }
        figure { figcaption { (t("Dead per minute")) } (svg::bars(&col(|m| m.dead), t("Dead per minute"), "dead")) }
    }
}

pub(crate) fn overview(p: &Page<'_>, o: &Overview) -> Html<String> {
    let t = |s| p.lang.t(s);
    let nums = overview_numbers(p.lang, o);
    let tile = |key: &str, label: &str, href: Option<&str>| {
        let v = match &nums[key] {
            Value::String(s) => s.clone(),
            v => v.to_string(),
        };
        html! {
            div.tile {
                dt { @if let Some(h) = href { a href=(h) { (label) } } @else { (label) } }
                dd data-k=(key) { (v) }
            }
        }
    };
    frame(
        p,
        t("Overview"),
        html! {
            section #overview data-refresh="/ui/overview.json" aria-live="polite" {
                h2 { (t("Per minute, last hour")) }
                dl.tiles {
                    (tile("accepted", t("Accepted"), Some("/ui/messages")))
                    (tile("delivered", t("Delivered"), Some("/ui/messages?state=delivered")))
                    (tile("failed", t("Failed attempts"), None))
                    (tile("dead_hour", t("Dead"), Some("/ui/messages?state=dead")))
                    (tile("success", t("Success rate"), None))
                }
                div.charts #charts { (overview_charts(p.lang, o)) }
                h2 { (t("Accept to delivered, last hour")) }
                dl.tiles {
                    (tile("p50", "p50", None))
                    (tile("p90", "p90", None))
                    (tile("p99", "p99", None))
                }
                h2 { (t("State")) }
                dl.tiles {
                    (tile("pending", t("Pending"), Some("/ui/messages?state=pending")))
                    (tile("in_flight", t("In flight"), None))
                    (tile("silenced", t("Silenced"), Some("/ui/messages?state=silenced")))
                    (tile("oldest", t("Oldest pending"), None))
                    (tile("dlq", t("Dead letters"), Some("/ui/dlq")))
                    (tile("breakers", t("Open breakers"), Some("/ui/channels")))
                }
            }
        },
    )
}

pub(crate) fn messages(
    p: &Page<'_>,
    q: &MessagesQuery,
    channels: &[String],
    found: &[MessageSummary],
) -> Html<String> {
    let t = |s| p.lang.t(s);
    let states = ["pending", "delivered", "dead", "partial", "silenced"];
    frame(
        p,
        t("Messages"),
        html! {
            form.filters method="get" action="/ui/messages" role="search" {
                div { label for="f-channel" { (t("Channel")) }
                    select #f-channel name="channel" {
                        option value="" { (t("Any")) }
                        @for c in channels { option value=(c) selected[q.channel == *c] { (c) } }
                    }
                }
                div { label for="f-state" { (t("State")) }
                    select #f-state name="state" {
                        option value="" { (t("Any")) }
                        @for s in states { option value=(s) selected[q.state == s] { (p.lang.t(s)) } }
                    }
                }
                div { label for="f-text" { (t("Text")) } input #f-text type="search" name="text" value=(q.text); }
                div { label for="f-trace" { (t("Trace id")) } input #f-trace type="text" name="trace_id" value=(q.trace_id); }
                div { label for="f-label" { (t("Label")) " (name=value)" } input #f-label type="text" name="label" value=(q.label) placeholder="host=db-1"; }
                div { label for="f-since" { (t("Since")) " (UTC)" } input #f-since type="datetime-local" name="since" value=(q.since); }
                div { label for="f-until" { (t("Until")) " (UTC)" } input #f-until type="datetime-local" name="until" value=(q.until); }
                div { button type="submit" { (t("Search")) } }
            }
            @if found.is_empty() {
                p.empty { (t("No message matches.")) }
            } @else {
                div.scroll {
                    table.list {
                        thead { tr { th scope="col" { (t("Created")) } th scope="col" { (t("Channel")) } th scope="col" { (t("State")) } th scope="col" { (t("Message")) } } }
                        tbody {
                            @for m in found {
                                @let (cls, label) = state_label(p.lang, m.state);
                                tr {
                                    td { time datetime=(time(m.created_at)) { (time(m.created_at)) } }
                                    td { (m.channel) }
                                    td { span class={"state " (cls)} { (label) } }
                                    td { a href={"/ui/messages/" (enc(m.id.as_str()))} { (summary(&m.message)) } }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One line of a message's timeline.
struct Event {
    at: i64,
    what: Markup,
}

/// A message's timeline, unsorted: its acceptance, each delivery's attempts
/// and end, acknowledgements and escalation steps.
fn timeline(p: &Page<'_>, v: &MessageView, set: &ChannelSet) -> Vec<Event> {
    let t = |s| p.lang.t(s);
    let mut events = vec![Event {
        at: v.created_at,
        what: html! { strong { (t("accepted")) } " · " (v.channel) @if let Some(tr) = &v.trace_id { " · trace " code { (tr) } } },
    }];
    for d in &v.deliveries {
        delivery_events(p, d, set, &mut events);
    }
    for a in &v.acks {
        events.push(Event {
            at: a.at,
            what: html! { strong { (format!("{:?}", a.action).to_lowercase()) } " · " (a.who()) " · " (a.source) },
        });
    }
    if let Some(esc) = &v.escalation {
        escalation_events(p, esc, &mut events);
    }
    events
}

/// Each attempt of one delivery, and where it ended.
fn delivery_events(
    p: &Page<'_>,
    d: &crate::store::DeliveryView,
    set: &ChannelSet,
    events: &mut Vec<Event>,
) {
    let t = |s| p.lang.t(s);
    for (i, a) in d.history.iter().enumerate() {
        let info = a
            .code
            .as_deref()
            .and_then(|c| code_info(set, &a.destination, c));
        events.push(Event {
            at: a.started_at,
            what: html! {
                strong { (d.target) " #" (i + 1) } " · "
                span class={"outcome " (a.outcome.as_str())} { (a.outcome.as_str()) }
                @if let Some(s) = a.status { " · HTTP " (s) }
                @if let Some(c) = &a.code { " · " (t("Platform code")) " " code { (c) } }
                @if let Some(i) = info { " · " (i.meaning) }
                @if !a.message.is_empty() { br; span.detail { (a.message) } }
                @if let Some(i) = info { br; span.hint { (t("What to do")) ": " (i.action) } }
            },
        });
    }
    let (cls, label) = match d.state {
        crate::store::DeliveryState::Done => ("delivered", t("delivered")),
        crate::store::DeliveryState::Dead => ("dead", t("dead")),
        crate::store::DeliveryState::Silenced => ("silenced", t("silenced")),
        _ => ("pending", t("pending")),
    };
    events.push(Event {
        at: d.updated_at,
        what: html! {
            strong { (d.target) } " · " span class={"state " (cls)} { (label) }
            @if let Some(dead) = &d.dead {
                " · " (dead.reason)
                @if let Some(c) = &dead.code { " (" code { (c) } ")" }
                " · " a href={"/ui/dlq/" (d.id.get())} { (t("Dead letters")) " #" (d.id.get()) }
            }
            @if let Some(s) = &d.silenced_by { " · " (t("Silenced")) " " code { (s) } }
            @if let Some(m) = &d.merged_into { " · → " a href={"/ui/messages/" (enc(m.as_str()))} { (m.as_str()) } }
        },
    });
}

/// An escalation's start, its steps and its end.
fn escalation_events(p: &Page<'_>, esc: &crate::store::Escalation, events: &mut Vec<Event>) {
    let t = |s| p.lang.t(s);
    events.push(Event {
        at: esc.started_at,
        what: html! { strong { (t("escalation")) } " · " (esc.policy) },
    });
    for step in &esc.steps {
        events.push(Event {
            at: step.fired_at,
            what: html! {
                strong { (t("escalation step")) " " (step.step + 1) } " · " (esc.policy)
                @for n in &step.record.notified {
                    br; code { (n.via) } " → " (n.people.join(", ")) " · "
                    a href={"/ui/messages/" (enc(n.message_id.as_str()))} { (n.message_id.as_str()) }
                }
                @for note in &step.record.notes { br; span.detail { (note) } }
            },
        });
    }
    if let (Some(at), Some(by)) = (esc.ended_at, &esc.ended_by) {
        events.push(Event {
            at,
            what: html! { strong { (t("escalation ended")) } " · " (esc.state.as_str()) " · " (by) },
        });
    }
}

pub(crate) fn message(
    p: &Page<'_>,
    v: &MessageView,
    set: &ChannelSet,
    notice_key: &str,
) -> Html<String> {
    let t = |s| p.lang.t(s);
    let mut events = timeline(p, v, set);
    events.sort_by_key(|e| e.at);
    let (cls, label) = state_label(p.lang, v.state);
    let dead: Vec<i64> = v
        .deliveries
        .iter()
        .filter(|d| d.state == crate::store::DeliveryState::Dead)
        .map(|d| d.id.get())
        .collect();
    let body = serde_json::to_string_pretty(&v.message).unwrap_or_default();
    frame(
        p,
        t("Message"),
        html! {
            (notice(p.lang, notice_key, None))
            dl.facts {
                dt { "ID" } dd { code { (v.id.as_str()) } }
                dt { (t("Channel")) } dd { (v.channel) }
                dt { (t("State")) } dd { span class={"state " (cls)} { (label) } }
                dt { (t("Created")) } dd { (time(v.created_at)) }
                @if !v.labels.is_empty() {
                    dt { (t("Labels")) }
                    dd { @for (k, val) in v.labels.iter() { span.label { (k) "=" (val) } " " } }
                }
            }
            @if !dead.is_empty() {
                form.inline method="post" action="/ui/dlq/replay" {
                    (csrf_field(p))
                    input type="hidden" name="back" value={"/ui/messages/" (enc(v.id.as_str()))};
                    @for id in &dead { input type="hidden" name="id" value=(id); }
                    button type="submit" { (t("Replay")) }
                }
            }
            h2 { (t("Timeline")) }
            ol.timeline {
                @for e in &events {
                    li { time datetime=(time(e.at)) { (time(e.at)) } div { (e.what) } }
                }
            }
            h2 { (t("Message")) }
            pre.payload { (body) }
            @let sent = sent_payloads(v, set);
            @if !sent.is_empty() {
                h2 { (t("What each destination received")) }
                p.hint { (t("The platform's request bodies, as rendered for each destination (signatures and tokens are added when sent and never shown).")) }
                @for (dest, parts) in &sent {
                    h3 { code { (dest) } }
                    @for part in parts { pre.payload { (part) } }
                }
            }
            @if !v.labels.is_empty() {
                h2 { (t("Silence like this")) }
                form.silence method="post" action={"/ui/messages/" (enc(v.id.as_str())) "/silence"} {
                    (csrf_field(p))
                    label for="s-duration" { (t("Duration")) }
                    select #s-duration name="duration" {
                        @for d in ["30m", "1h", "4h", "24h"] { option value=(d) selected[d == "1h"] { (d) } }
                    }
                    label for="s-comment" { (t("Comment")) }
                    input #s-comment type="text" name="comment";
                    button type="submit" { (t("Create silence")) }
                }
            }
        },
    )
}

/// The request bodies each destination of `v`'s deliveries was sent: the
/// message rendered by the destination itself (rendering is pure, so it is
/// what went out, before signing), as the dispatcher renders it.
fn sent_payloads(v: &MessageView, set: &ChannelSet) -> Vec<(String, Vec<String>)> {
    use crate::store::MessageKind;
    // Updates, recalls and urgent pushes are operations, not renderings.
    let sends = matches!(
        v.kind,
        MessageKind::Normal | MessageKind::Digest | MessageKind::Fallback
    ) && v.thread.as_ref().is_none_or(|t| t.root == v.id);
    let mut out = Vec::new();
    if !sends {
        return out;
    }
    for d in &v.deliveries {
        let Some(resolved) = set.resolve(&d.target) else {
            continue;
        };
        let pool = resolved.members.len() > 1;
        for m in resolved.members {
            // A pool's message went through the member its history names.
            if pool && !d.history.iter().any(|a| a.destination == m.key) {
                continue;
            }
            let mut msg = v.message.clone();
            msg.id = Some(v.id.to_string());
            msg.mentions = msg.mentions.for_platform(m.dest.platform());
            if !d.recipients.is_empty() {
                msg.recipients = d.recipients.clone();
            }
            let parts = match m.dest.render(&msg) {
                Ok(p) => p
                    .iter()
                    .map(|p| serde_json::to_string_pretty(&p.body).unwrap_or_default())
                    .collect(),
                Err(e) => vec![e.to_string()],
            };
            out.push((m.key.clone(), parts));
        }
    }
    out
}

fn dead_row(p: &Page<'_>, e: &DeadEntry, set: &ChannelSet) -> Markup {
    let info = e.code.as_deref().and_then(|c| code_info(set, &e.target, c));
    html! {
        tr {
            td { input type="checkbox" name="id" value=(e.delivery_id.get()) aria-label={(p.lang.t("Select")) " " (e.delivery_id.get())}; }
            td { a href={"/ui/dlq/" (e.delivery_id.get())} { (e.delivery_id.get()) } }
            td { (time(e.dead_at)) }
            td { (e.channel) br; span.detail { (e.target) } }
            td { a href={"/ui/messages/" (enc(e.message_id.as_str()))} { (summary(&e.message)) } }
            td {
                (e.reason)
                @if let Some(c) = &e.code { " " code { (c) } }
                @if let Some(i) = info { br; span.hint { (i.meaning) " — " (i.action) } }
            }
        }
    }
}

pub(crate) fn dead_letters(
    p: &Page<'_>,
    q: &DlqQuery,
    channels: &[String],
    items: &[DeadEntry],
    set: &ChannelSet,
) -> Html<String> {
    let t = |s| p.lang.t(s);
    frame(
        p,
        t("Dead letters"),
        html! {
            (notice(p.lang, &q.notice, q.n))
            form.filters method="get" action="/ui/dlq" {
                div { label for="d-channel" { (t("Channel")) }
                    select #d-channel name="channel" {
                        option value="" { (t("Any")) }
                        @for c in channels { option value=(c) selected[q.channel == *c] { (c) } }
                    }
                }
                div { label for="d-code" { (t("Code")) } input #d-code type="text" name="code" value=(q.code); }
                div { button type="submit" { (t("Filter")) } }
            }
            @if items.is_empty() {
                p.empty { (t("No dead letter.")) }
            } @else {
                form.bulk method="post" action="/ui/dlq/replay" {
                    (csrf_field(p))
                    div.actions {
                        button type="submit" { (t("Replay selected")) }
                        button.danger type="submit" formaction="/ui/dlq/purge" data-confirm="purge" { (t("Purge selected")) }
                    }
                    div.scroll {
                        table.list {
                            thead { tr {
                                th scope="col" { span.sr { (t("Select")) } }
                                th scope="col" { "#" } th scope="col" { (t("Dead since")) } th scope="col" { (t("Channel")) }
                                th scope="col" { (t("Message")) } th scope="col" { (t("Reason")) }
                            } }
                            tbody { @for e in items { (dead_row(p, e, set)) } }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) fn dead_letter(p: &Page<'_>, e: &DeadEntry, set: &ChannelSet) -> Html<String> {
    let t = |s| p.lang.t(s);
    let info = e.code.as_deref().and_then(|c| code_info(set, &e.target, c));
    let body = serde_json::to_string_pretty(&e.message).unwrap_or_default();
    frame(
        p,
        t("Dead letters"),
        html! {
            dl.facts {
                dt { "#" } dd { (e.delivery_id.get()) }
                dt { (t("Message")) } dd { a href={"/ui/messages/" (enc(e.message_id.as_str()))} { code { (e.message_id.as_str()) } } }
                dt { (t("Channel")) } dd { (e.channel) }
                dt { (t("Target")) } dd { (e.target) }
                dt { (t("Attempts")) } dd { (e.attempts) }
                dt { (t("Dead since")) } dd { (time(e.dead_at)) }
                dt { (t("Reason")) } dd.reason { (e.reason) }
                @if let Some(c) = &e.code { dt { (t("Platform code")) } dd { code { (c) } } }
                @if let Some(i) = info {
                    dt { (t("Meaning")) } dd { (i.meaning) }
                    dt { (t("What to do")) } dd { (i.action) }
                }
            }
            form.inline method="post" action="/ui/dlq/replay" {
                (csrf_field(p))
                input type="hidden" name="id" value=(e.delivery_id.get());
                button type="submit" { (t("Replay")) }
                button.danger type="submit" formaction="/ui/dlq/purge" data-confirm="purge" { (t("Purge")) }
            }
            h2 { (t("Message")) }
            pre.payload { (body) }
        },
    )
}

/// A destination's access token: cached until when, the last failed fetch.
fn token_cell(p: &Page<'_>, v: Option<&TokenView>) -> Markup {
    let t = |s| p.lang.t(s);
    html! {
        @match v {
            None => span.muted { (t("not used")) },
            Some(v) => {
                @match v.expires_at {
                    Some(at) => span.token-cached { (t("cached, expires at")) " " time datetime=(time(at)) { (time(at)) } },
                    None => span.token-none.muted { (t("none cached")) },
                }
                @if let Some((why, at)) = &v.last_error {
                    br;
                    span.token-error { (t("Last error")) " (" time datetime=(time(*at)) { (time(*at)) } "): " (why) }
                }
            }
        }
    }
}

/// The audit trail: the newest rows, filtered by user and action.
pub(crate) fn audit(p: &Page<'_>, q: &AuditQuery, rows: &[AuditEntry]) -> Html<String> {
    let t = |s| p.lang.t(s);
    frame(
        p,
        t("Audit trail"),
        html! {
            p.note { (t("Every console action, newest first (logins too). Rows older than [console] audit_keep are deleted.")) }
            form.filters method="get" action="/ui/audit" role="search" {
                div { label for="a-user" { (t("User")) } input #a-user type="text" name="user" value=(q.user); }
                div { label for="a-action" { (t("Action")) } input #a-action type="text" name="action" value=(q.action) placeholder="dlq"; }
                div { button type="submit" { (t("Show")) } }
            }
            @if rows.is_empty() {
                p.empty { (t("No entry.")) }
            } @else {
                div.scroll {
                    table.list {
                        thead { tr {
                            th scope="col" { (t("Time")) } th scope="col" { (t("User")) } th scope="col" { (t("Action")) }
                            th scope="col" { (t("Object")) } th scope="col" { (t("Outcome")) } th scope="col" { (t("Source")) }
                        } }
                        tbody {
                            @for r in rows {
                                tr {
                                    td { time datetime=(time(r.at)) { (time(r.at)) } }
                                    td { (r.user) }
                                    td { code { (r.action) } }
                                    td { (r.object) }
                                    td { (r.outcome) }
                                    td { (r.source.as_deref().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) fn channels(
    p: &Page<'_>,
    status: &Value,
    tokens: &BTreeMap<String, TokenView>,
) -> Html<String> {
    let t = |s| p.lang.t(s);
    let dests = status["dispatch"]["destinations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let state_of = |key: &str| {
        dests
            .iter()
            .find(|d| d["key"].as_str() == Some(key))
            .cloned()
    };
    let empty = Vec::new();
    frame(
        p,
        t("Channels"),
        html! {
            p.note { (t("Secrets are never shown.")) }
            @for c in status["channels"].as_array().unwrap_or(&empty) {
                @let name = c["name"].as_str().unwrap_or("");
                @if !name.starts_with("callback:") {
                    section.channel {
                        h2 { (name) }
                        p {
                            (t("Pool")) ": " (if c["pool"].as_bool() == Some(true) { t("yes") } else { t("no") })
                            @if let Some(f) = c["fallback"].as_str() { " · " (t("Fallback")) ": " (f) }
                        }
                        div.scroll {
                            table.list {
                                thead { tr {
                                    th scope="col" { (t("Destination")) } th scope="col" { (t("Type")) } th scope="col" { (t("Breaker")) }
                                    th scope="col" { (t("Error rate")) } th scope="col" { (t("Available now")) } th scope="col" { (t("Sent")) }
                                    th scope="col" { (t("Access token")) } th scope="col" { "secret" }
                                } }
                                tbody {
                                    @for d in c["destinations"].as_array().unwrap_or(&empty) {
                                        @let key = d["key"].as_str().unwrap_or("");
                                        @let s = state_of(key);
                                        @let breaker = s.as_ref().and_then(|s| s["breaker"]["state"].as_str().map(str::to_string)).unwrap_or_else(|| "closed".into());
                                        tr {
                                            td { code { (key) } }
                                            td { (d["type"].as_str().unwrap_or("")) }
                                            td { span class={"breaker " (breaker)} { (breaker) } }
                                            td { (s.as_ref().and_then(|s| s["error_rate"].as_f64()).map_or("—".into(), |r| format!("{:.0}%", r * 100.0))) }
                                            td { (s.as_ref().map_or("—".into(), |s| s["available_now"].to_string())) }
                                            td { (s.as_ref().map_or("0".into(), |s| s["sent_total"].to_string())) }
                                            td { (token_cell(p, tokens.get(key))) }
                                            td { "*** " span.set { "(" (t("set")) ")" } }
                                        }
                                    }
                                }
                            }
                        }
                        form.inline method="post" action={"/ui/channels/" (enc(name)) "/test"} {
                            (csrf_field(p))
                            label for={"t-" (name)} { (t("Send a test message")) }
                            input id={"t-" (name)} type="text" name="text" value="imrelay console test message";
                            button type="submit" { (t("Send")) }
                        }
                    }
                }
            }
        },
    )
}

pub(crate) fn silences(p: &Page<'_>, list: Option<&[Value]>, notice_key: &str) -> Html<String> {
    let t = |s| p.lang.t(s);
    frame(
        p,
        t("Silences"),
        html! {
            (notice(p.lang, notice_key, None))
            @match list {
                None => p.error role="alert" { (t("Silences hold every channel's messages; only a user of every channel manages them.")) },
                Some([]) => p.empty { (t("No silence.")) },
                Some(list) => div.scroll {
                    table.list {
                        thead { tr {
                            th scope="col" { (t("Matchers")) } th scope="col" { (t("State")) } th scope="col" { (t("Starts")) }
                            th scope="col" { (t("Ends")) } th scope="col" { (t("Created by")) } th scope="col" { (t("Comment")) } th scope="col" { span.sr { (t("Expire")) } }
                        } }
                        tbody {
                            @for s in list {
                                @let id = s["id"].as_str().unwrap_or("");
                                @let state = s["status"]["state"].as_str().unwrap_or("");
                                tr {
                                    td { @for m in s["matchers"].as_array().cloned().unwrap_or_default() {
                                        code { (m["name"].as_str().unwrap_or("")) (if m["isEqual"].as_bool() == Some(false) { "!" } else { "" }) (if m["isRegex"].as_bool() == Some(true) { "=~" } else { "=" }) (m["value"].as_str().unwrap_or("")) } " "
                                    } }
                                    td { span class={"state " (state)} { (state) } }
                                    td { (s["startsAt"].as_str().unwrap_or("")) }
                                    td { (s["endsAt"].as_str().unwrap_or("")) }
                                    td { (s["createdBy"].as_str().unwrap_or("")) }
                                    td { (s["comment"].as_str().unwrap_or("")) }
                                    td { @if state != "expired" {
                                        form.inline method="post" action={"/ui/silences/" (enc(id)) "/expire"} {
                                            (csrf_field(p))
                                            button type="submit" { (t("Expire")) }
                                        }
                                    } }
                                }
                            }
                        }
                    }
                },
            }
        },
    )
}

/// Who is on call on each schedule, now and next (`GET /v1/oncall`).
pub(crate) fn oncall(p: &Page<'_>, list: &[Value]) -> Html<String> {
    let t = |s| p.lang.t(s);
    let who = |s: &Value| {
        let display = s["display"].as_str().unwrap_or("");
        let person = s["person"].as_str().unwrap_or("");
        if display == person || display.is_empty() {
            person.to_string()
        } else {
            format!("{display} ({person})")
        }
    };
    frame(
        p,
        t("On call"),
        html! {
            @if list.is_empty() {
                p.empty { (t("No schedule is configured ([[schedules]]).")) }
            } @else {
                div.scroll {
                    table.list {
                        thead { tr {
                            th scope="col" { (t("Schedule")) } th scope="col" { (t("On call now")) }
                            th scope="col" { (t("Until")) } th scope="col" { (t("Next")) } th scope="col" { (t("From")) }
                        } }
                        tbody {
                            @for s in list {
                                tr {
                                    td { (s["schedule"].as_str().unwrap_or("")) }
                                    @match s.get("now") {
                                        Some(now) => {
                                            td { (who(now)) @if now.get("overrideId").is_some() { " " span.state { (t("override")) } } }
                                            td { (now["until"].as_str().unwrap_or("")) }
                                        }
                                        None => { td { (t("Nobody")) } td {} }
                                    }
                                    @match s.get("next") {
                                        Some(next) => { td { (who(next)) } td { (next["from"].as_str().unwrap_or("")) } }
                                        None => { td {} td {} }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// Text samples for the preview: a line, one long enough to be split, and
/// non-ASCII text (3 bytes a character where platforms count bytes).
const SAMPLES: [(&str, &str); 3] = [
    ("Short", "disk 91% full on db-1"),
    ("Long", ""),
    (
        "Non-ASCII",
        "数据库 db-1 磁盘使用率 91%，请尽快清理。负责人：张三 🚨",
    ),
];

fn long_sample() -> String {
    (1..=400)
        .map(|i| format!("line {i}: [FIRING] disk usage on node-{i} above 90% for 5m"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn preview(lang: Lang, result: &Result<Value, Problem>) -> Markup {
    let t = |s| lang.t(s);
    let empty = Vec::new();
    html! {
        @match result {
            Err(p) => p.error role="alert" { (p.detail) @if let Some(f) = &p.field { " (" code { (f) } ")" } },
            Ok(v) => {
                @for d in v["destinations"].as_array().unwrap_or(&empty) {
                    @let parts = d["parts"].as_array().cloned().unwrap_or_default();
                    @let total: u64 = parts.iter().map(|p| p["bytes"].as_u64().unwrap_or(0)).sum();
                    section.rendered {
                        h2 { code { (d["key"].as_str().unwrap_or("")) } " · " (d["type"].as_str().unwrap_or("")) }
                        p.bytes data-bytes=(total) {
                            (parts.len()) " " (t("part(s)")) " · " (total) " " (t("bytes"))
                        }
                        @for (i, p) in parts.iter().enumerate() {
                            @if parts.len() > 1 { h3 { (t("Part")) " " (i + 1) " · " (p["bytes"]) " " (t("bytes")) } }
                            pre.payload { (serde_json::to_string_pretty(&p["body"]).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn templates(
    p: &Page<'_>,
    channels: &[String],
    names: &[String],
    f: &PreviewForm,
    result: &Result<Value, Problem>,
    editor: &EditorView,
) -> Html<String> {
    let t = |s| p.lang.t(s);
    let long = long_sample();
    frame(
        p,
        t("Templates"),
        html! {
            section #route-editor-section {
                h2 { (t("Alertmanager route templates")) }
                div.editor #route-editor { (route_editor(p, editor)) }
            }
            h2 { (t("Message preview")) }
            p.note { (t("What each destination would receive (POST /v1/render): nothing is sent or stored.")) }
            div.editor {
                form #render-form method="post" action="/ui/templates" {
                    (csrf_field(p))
                    label for="r-channel" { (t("Channel")) }
                    select #r-channel name="channel" {
                        @for c in channels { option value=(c) selected[f.channel == *c] { (c) } }
                    }
                    label for="r-template" { (t("Template")) }
                    select #r-template name="template" {
                        option value="" { (t("None: plain text")) }
                        @for n in names { option value=(n) selected[f.template == *n] { (n) } }
                    }
                    label for="r-title" { (t("Title")) }
                    input #r-title type="text" name="title" value=(f.title);
                    label for="r-text" { (t("Text")) }
                    textarea #r-text name="text" rows="6" { (f.text) }
                    div.samples {
                        @for (label, text) in SAMPLES {
                            @let sample = if text.is_empty() { long.as_str() } else { text };
                            button type="button" data-sample=(sample) data-target="r-text" { (t(label)) }
                        }
                    }
                    label for="r-data" { (t("Template data (JSON)")) }
                    textarea #r-data name="data" rows="6" { (f.data) }
                    button type="submit" { (t("Preview")) }
                }
                div #preview aria-live="polite" { (preview(p.lang, result)) }
            }
        },
    )
}

/// The route template editor: the form and what each destination would
/// receive from the sample.
pub(crate) fn route_editor(p: &Page<'_>, v: &EditorView) -> Markup {
    let t = |s| p.lang.t(s);
    if v.empty {
        return html! { p.empty { (t("No Alertmanager route you may use is configured ([alerting.routes.NAME]).")) } };
    }
    html! {
        form #route-form method="post" action="/ui/templates/route" {
            (csrf_field(p))
            input type="hidden" name="loaded" value={(v.route) "|" (v.template)};
            label for="e-route" { (t("Route")) }
            select #e-route name="route" {
                @for r in &v.routes { option value=(r) selected[v.route == *r] { (r) } }
            }
            label for="e-template" { (t("Template")) }
            select #e-template name="template" {
                @for n in &v.templates { option value=(n) selected[v.template == *n] { (n) } }
            }
            label for="e-sample" { (t("Sample notification")) }
            select #e-sample name="sample" {
                @for s in crate::alertmanager::samples::Sample::ALL {
                    option value=(s.key()) selected[v.sample == s.key()] { (t(s.label())) }
                }
            }
            label for="e-source" {
                (t("Template source")) " (" (v.engine) ")"
                @if v.builtin { " · " (t("built-in")) }
            }
            textarea #e-source name="source" rows="14" spellcheck="false" { (v.source) }
            button type="submit" { (t("Preview")) }
            @if v.can_save {
                button type="submit" formaction="/ui/templates/save" { (t("Save")) }
            }
        }
        div #route-preview aria-live="polite" { (route_preview(p, v)) }
    }
}

/// The editor's result: notices, problems, and each destination's requests
/// (the live preview replaces only this).
pub(crate) fn route_preview(p: &Page<'_>, v: &EditorView) -> Markup {
    let t = |s| p.lang.t(s);
    html! {
        @if v.saved {
            p.notice role="status" data-saved="1" { (t("Saved; the gateway reloaded the config.")) }
        }
        @if let Some((what, text)) = &v.paste {
            div.paste data-paste="1" {
                p.note { (t("The config file cannot be written here; paste this into it:")) " " code { (what) } }
                pre.payload { (text) }
            }
        }
        @for i in &v.issues {
            p.error role="alert" data-issue="1" { code { (i.key) } ": " (i.message) }
        }
        @for d in &v.destinations {
            @let total: usize = d.parts.iter().map(|p| p.bytes).sum();
            section.rendered data-destination=(d.key) {
                h3 { code { (d.channel) "/" (d.key) } " · " (d.kind) " · " (t("template")) " " code { (d.template) } }
                p.bytes data-bytes=(total) data-parts=(d.parts.len()) {
                    (d.parts.len()) " " (t("part(s)")) " · " (total) " " (t("bytes"))
                    @if let Some(l) = d.parts.first().and_then(|p| p.limit) {
                        " · " (t("limit")) " " (l.bytes) " " (t("bytes")) " "
                        (if l.content { t("of content per request") } else { t("per request body") })
                    }
                    " · " (d.shown) "/" (d.alerts) " " (t("alerts shown"))
                }
                @for (i, part) in d.parts.iter().enumerate() {
                    h4 {
                        (t("Part")) " " (i + 1) " · " (part.bytes) " " (t("bytes"))
                        @if let Some(l) = part.limit {
                            @if l.content { " · " (t("content")) " " (part.counted) "/" (l.bytes) }
                            @else { " · " (part.counted) "/" (l.bytes) }
                        }
                    }
                    pre.payload { (serde_json::to_string_pretty(&part.body).unwrap_or_default()) }
                }
            }
        }
    }
}
