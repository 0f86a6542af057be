//! Every metric imrelay exports, defined next to the log event emitted at the
//! same moment. The API and the dispatcher call these functions (one line
//! each); nothing else names a metric.
//!
//! Naming follows Prometheus conventions: an `imrelay_` prefix, the unit in
//! the name (`_seconds`), `_total` on counters, and bounded labels only.

use std::time::Duration;

use imrelay_sdk::{Outcome, Report};
use metrics::{counter, gauge, histogram};

use crate::domain::attempt::AttemptOutcome;
use crate::store::{AttemptRecord, Claimed, DeadReason};

/// Messages accepted by the API. Labels: `channel`.
pub const MESSAGES_ACCEPTED: &str = "imrelay_messages_accepted_total";
/// Deliveries settled or rescheduled. Labels: `channel`, `platform`,
/// `destination` (the configured destination's secret-free key, the SDK's
/// `Destination::id`; for a robot pool, the member that sent), `outcome`
/// (delivered, retried, rate_limited, dead), `class` (none, transient,
/// token_invalid, rate_limited, permanent, gateway), `code`.
pub const DELIVERIES: &str = "imrelay_deliveries_total";
/// Deliveries of ordered channels sent after messages accepted later (their
/// retry outlasted `order_hold`). Labels: `channel`, `destination`.
pub const OUT_OF_ORDER: &str = "imrelay_deliveries_out_of_order_total";
/// Accept to delivered. Labels: `channel`, `platform`.
pub const DELIVERY_LATENCY: &str = "imrelay_delivery_latency_seconds";
/// Attempts a delivery took when it settled (delivered or dead). Labels: `channel`.
pub const DELIVERY_ATTEMPTS: &str = "imrelay_delivery_attempts";
/// Requests to platforms. Labels: `platform`, `outcome` (the SDK's label).
pub const PLATFORM_REQUESTS: &str = "imrelay_platform_requests_total";
/// One platform request's duration. Labels: `platform`.
pub const PLATFORM_REQUEST_DURATION: &str = "imrelay_platform_request_duration_seconds";
/// Waits for a rate window. Labels: `platform`, `source` (platform: the
/// platform said so; limiter: imrelay's own quota of the destination;
/// recipient: its quota of one user or chat).
pub const RATE_LIMIT_WAITS: &str = "imrelay_rate_limit_waits_total";
/// How long those waits were. Labels as [`RATE_LIMIT_WAITS`].
pub const RATE_LIMIT_WAIT_SECONDS: &str = "imrelay_rate_limit_wait_seconds";
/// Breaker state per destination: 0 closed, 1 half-open, 2 open. Labels:
/// `destination`, `platform`.
pub const BREAKER_STATE: &str = "imrelay_breaker_state";
/// Times a breaker opened. Labels: `destination`, `platform`.
pub const BREAKER_OPENED: &str = "imrelay_breaker_opened_total";
/// Deliveries by queue state (pending, in_flight, dead, merged, done).
/// Labels: `state`.
pub const QUEUE_DEPTH: &str = "imrelay_queue_deliveries";
/// Age of the oldest pending or in-flight delivery's message.
pub const OLDEST_PENDING_AGE: &str = "imrelay_queue_oldest_pending_age_seconds";
/// Dead-lettered deliveries currently kept.
pub const DLQ_SIZE: &str = "imrelay_dlq_deliveries";
/// Access-token fetches. Labels: `outcome` (ok, failed).
pub const TOKEN_REFRESHES: &str = "imrelay_token_refreshes_total";
/// Config reloads. Labels: `outcome` (applied, refused).
pub const CONFIG_RELOADS: &str = "imrelay_config_reloads_total";
/// Digests created by coalescing.
pub const DIGESTS: &str = "imrelay_coalesced_digests_total";
/// Deliveries merged into digests.
pub const DIGEST_MEMBERS: &str = "imrelay_coalesced_deliveries_total";
/// Self-alerts. Labels: `kind`, `severity`, `result` (sent, deduplicated,
/// rate_limited, loop_suppressed, below_threshold, failed).
pub const ALERTS: &str = "imrelay_alerts_total";
/// 1 while the gateway is ready (store reachable, config loaded, not draining).
pub const READY: &str = "imrelay_ready";
/// Store operations of the dispatcher that failed. Labels: `op` (finish,
/// progress, give_back, cycle, ...), `error` (lease_lost, database, closed,
/// not_found, invalid).
pub const DISPATCH_STORE_ERRORS: &str = "imrelay_dispatch_store_errors_total";

/// Messages kept in the store. Labels: `state` (open: a delivery not settled
/// yet; settled: delivered or dead, deleted after `[store] keep_delivered` /
/// `keep_dead`).
pub const STORE_MESSAGES: &str = "imrelay_store_messages";
/// The store's database size in bytes (SQLite: its pages; PostgreSQL: the
/// queue's tables with their indexes).
pub const STORE_BYTES: &str = "imrelay_store_bytes";
/// Messages deleted by retention.
pub const STORE_PRUNED: &str = "imrelay_store_pruned_messages_total";

/// Every metric name this module defines (for the dashboard test and docs).
/// Acknowledgements, silences and resolutions taken (`action`, `source`:
/// `api` or the platform whose card was clicked).
pub const ACKS: &str = "imrelay_acks_total";
/// Card clicks refused (`reason`: `not_allowed`, `unknown_message`,
/// `unknown_action`, `silence_failed`).
pub const CLICKS_REFUSED: &str = "imrelay_card_clicks_refused_total";
/// Escalation steps fired (`policy`), each exactly once.
pub const ESCALATION_STEPS: &str = "imrelay_escalation_steps_total";

/// Urgent pushes asked of platforms (Feishu 加急, DingTalk DING). Labels:
/// `platform`, `kind` (app, sms, phone), `outcome` (the SDK's label).
pub const URGENT_PUSHES: &str = "imrelay_urgent_pushes_total";

/// Notifications of message groups sent (`channel`).
pub const GROUP_NOTIFICATIONS: &str = "imrelay_group_notifications_total";
/// Messages folded into a group's notification instead of sent on their own (`channel`).
pub const GROUPED_MESSAGES: &str = "imrelay_grouped_messages_total";

pub const ALL: &[&str] = &[
    STORE_MESSAGES,
    STORE_BYTES,
    STORE_PRUNED,
    MESSAGES_ACCEPTED,
    DELIVERIES,
    OUT_OF_ORDER,
    DELIVERY_LATENCY,
    DELIVERY_ATTEMPTS,
    PLATFORM_REQUESTS,
    PLATFORM_REQUEST_DURATION,
    RATE_LIMIT_WAITS,
    RATE_LIMIT_WAIT_SECONDS,
    BREAKER_STATE,
    BREAKER_OPENED,
    QUEUE_DEPTH,
    OLDEST_PENDING_AGE,
    DLQ_SIZE,
    TOKEN_REFRESHES,
    CONFIG_RELOADS,
    DIGESTS,
    DIGEST_MEMBERS,
    ALERTS,
    READY,
    DISPATCH_STORE_ERRORS,
    ACKS,
    CLICKS_REFUSED,
    ESCALATION_STEPS,
    URGENT_PUSHES,
    GROUP_NOTIFICATIONS,
    GROUPED_MESSAGES,
];

/// The platform kind of a destination key (`dingtalk_robot:1a2b` ->
/// `dingtalk_robot`): bounded, unlike the key's suffix.
pub fn platform_of(key: &str) -> &str {
    key.split(':').next().unwrap_or(key)
}

/// Error class label of an SDK outcome.
pub fn class_of(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "none",
        Outcome::Retry { .. } => "transient",
        Outcome::RefreshToken => "token_invalid",
        Outcome::RateLimited { .. } => "rate_limited",
        Outcome::Permanent => "permanent",
    }
}

/// Error class label of a stored attempt's outcome.
fn class_of_attempt(outcome: AttemptOutcome) -> &'static str {
    match outcome {
        AttemptOutcome::Delivered => "none",
        AttemptOutcome::Retry => "transient",
        AttemptOutcome::RefreshToken => "token_invalid",
        AttemptOutcome::RateLimited => "rate_limited",
        AttemptOutcome::Permanent => "permanent",
        AttemptOutcome::OutOfOrder | AttemptOutcome::Superseded => "none",
    }
}

/// Codes are label values: keep them short and printable.
fn code_label(code: Option<&str>) -> String {
    code.map(|c| {
        c.chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect()
    })
    .unwrap_or_default()
}

/// The log span of one delivery's processing: every line logged while it is
/// sent (by the dispatcher, breaker or SDK) carries the message and trace ids.
/// Its level is ERROR only so that no filter drops it: a span filtered out
/// would leave `warn` lines (failed attempts) without their ids.
pub fn delivery_span(c: &Claimed) -> tracing::Span {
    let span = tracing::error_span!(
        "delivery",
        message_id = %c.message_id,
        trace_id = c.trace_id.as_deref().unwrap_or(""),
        channel = %c.channel,
        target = %c.target,
        delivery = c.delivery_id.get(),
        attempt = c.attempts + 1,
    );
    #[cfg(feature = "otlp")]
    if let Some(t) = &c.trace_id {
        super::otlp::join_trace(&span, t);
    }
    span
}

/// The span of one request to a platform (exported over OTLP when enabled).
pub fn platform_call_span(key: &str) -> tracing::Span {
    tracing::error_span!(
        "platform_call",
        destination = key,
        platform = platform_of(key)
    )
}

/// The API committed a message.
pub fn accepted(channel: &str, message_id: &str, trace_id: Option<&str>) {
    counter!(MESSAGES_ACCEPTED, "channel" => channel.to_string()).increment(1);
    tracing::info!(
        message_id,
        trace_id = trace_id.unwrap_or(""),
        channel,
        "message accepted"
    );
}

/// One request to a platform finished.
pub fn attempt(key: &str, report: &Report, started_ms: i64, ended_ms: i64) {
    let platform = platform_of(key).to_string();
    let secs = (ended_ms - started_ms).max(0) as f64 / 1000.0;
    counter!(PLATFORM_REQUESTS, "platform" => platform.clone(), "outcome" => report.outcome.label())
        .increment(1);
    histogram!(PLATFORM_REQUEST_DURATION, "platform" => platform).record(secs);
    let text = super::redact::redact(&report.to_string());
    if report.outcome.is_delivered() {
        tracing::info!(
            destination = key,
            duration_ms = ended_ms - started_ms,
            "attempt delivered"
        );
    } else {
        tracing::warn!(destination = key, duration_ms = ended_ms - started_ms, outcome = report.outcome.label(),
            code = %code_label(report.code.as_ref().map(|c| c.to_string()).as_deref()), report = %text, "attempt failed");
    }
}

/// One urgent push request finished (its attempt is logged by [`attempt`]).
pub fn urgent_push(key: &str, kind: imrelay_sdk::UrgentKind, report: &Report) {
    counter!(URGENT_PUSHES, "platform" => platform_of(key).to_string(),
        "kind" => kind.as_str(), "outcome" => report.outcome.label())
    .increment(1);
}

fn delivery(channel: &str, key: &str, outcome: &'static str, class: &'static str, code: String) {
    // `key` is a configured destination's id, never its URL: as bounded as
    // the config, and free of secrets.
    counter!(DELIVERIES, "channel" => channel.to_string(), "platform" => platform_of(key).to_string(),
        "destination" => key.to_string(), "outcome" => outcome, "class" => class, "code" => code)
    .increment(1);
}

/// Delivered to everyone (or the rest of a split): settled.
pub fn delivered(c: &Claimed, key: &str, now_ms: i64) {
    delivery(&c.channel, key, "delivered", "none", String::new());
    let secs = (now_ms - c.created_at).max(0) as f64 / 1000.0;
    histogram!(DELIVERY_LATENCY, "channel" => c.channel.clone(), "platform" => platform_of(key).to_string())
        .record(secs);
    histogram!(DELIVERY_ATTEMPTS, "channel" => c.channel.clone()).record((c.attempts + 1) as f64);
    tracing::info!(
        destination = key,
        attempts = c.attempts + 1,
        latency_ms = now_ms - c.created_at,
        "delivered"
    );
}

/// An ordered channel's delivery goes out after messages accepted later.
pub fn out_of_order(c: &Claimed, key: &str) {
    counter!(OUT_OF_ORDER, "channel" => c.channel.clone(), "destination" => key.to_string())
        .increment(1);
}

/// A transient failure; the delivery is retried at `at_ms`.
pub fn retry_scheduled(c: &Claimed, key: &str, report: &Report, delay: Duration) {
    let code = code_label(report.code.as_ref().map(|c| c.to_string()).as_deref());
    delivery(&c.channel, key, "retried", class_of(&report.outcome), code);
    tracing::info!(
        destination = key,
        retry_in_ms = delay.as_millis() as u64,
        failed_attempts = c.attempts + 1,
        "retry scheduled"
    );
}

/// The platform rate limited a request; the destination waits `wait`.
pub fn rate_limited(c: &Claimed, key: &str, wait: Duration) {
    delivery(
        &c.channel,
        key,
        "rate_limited",
        "rate_limited",
        String::new(),
    );
    rate_limit_wait(key, "platform", wait);
}

/// A wait for a rate window (the platform's or imrelay's own quota).
pub fn rate_limit_wait(key: &str, source: &'static str, wait: Duration) {
    let platform = platform_of(key).to_string();
    counter!(RATE_LIMIT_WAITS, "platform" => platform.clone(), "source" => source).increment(1);
    histogram!(RATE_LIMIT_WAIT_SECONDS, "platform" => platform, "source" => source)
        .record(wait.as_secs_f64());
}

/// Dead-lettered at destination `key` (the pool member of the last request).
/// `last` is the last attempt of this claim, if any.
pub fn dead(c: &Claimed, key: &str, reason: &DeadReason, last: Option<&AttemptRecord>) {
    let class = last.map_or("gateway", |a| class_of_attempt(a.outcome));
    delivery(
        &c.channel,
        key,
        "dead",
        class,
        code_label(reason.code.as_deref()),
    );
    histogram!(DELIVERY_ATTEMPTS, "channel" => c.channel.clone()).record((c.attempts + 1) as f64);
}

/// A breaker opened.
pub fn breaker_opened(key: &str, failures: u32) {
    counter!(BREAKER_OPENED, "destination" => key.to_string(), "platform" => platform_of(key).to_string())
        .increment(1);
    tracing::warn!(
        destination = key,
        consecutive_failures = failures,
        "circuit breaker opened: sending to this destination pauses; messages wait"
    );
}

/// Breaker state gauge (set at scrape time).
pub fn breaker_state(key: &str, state: &str) {
    let v = match state {
        "closed" => 0.0,
        "half_open" => 1.0,
        _ => 2.0,
    };
    gauge!(BREAKER_STATE, "destination" => key.to_string(), "platform" => platform_of(key).to_string())
        .set(v);
}

/// A store operation of the dispatcher failed (the dispatcher logs what
/// happens next).
pub fn dispatch_store_error(op: &'static str, error: &'static str) {
    counter!(DISPATCH_STORE_ERRORS, "op" => op, "error" => error).increment(1);
}

/// Someone acknowledged, silenced or resolved a message.
pub fn acked(action: &'static str, source: &str) {
    counter!(ACKS, "action" => action, "source" => source.to_string()).increment(1);
}

/// An escalation step was fired.
pub fn escalation_step(policy: &str) {
    counter!(ESCALATION_STEPS, "policy" => policy.to_string()).increment(1);
}

/// A message group was sent, standing for `folded` messages.
pub fn group_sent(channel: &str, folded: i64) {
    counter!(GROUP_NOTIFICATIONS, "channel" => channel.to_string()).increment(1);
    counter!(GROUPED_MESSAGES, "channel" => channel.to_string()).increment(folded.max(0) as u64);
}

/// A card click was refused.
pub fn click_refused(reason: &'static str) {
    counter!(CLICKS_REFUSED, "reason" => reason).increment(1);
}

/// A self-alert was handled (`result` says how).
pub fn alert(kind: &'static str, severity: &'static str, result: &'static str) {
    counter!(ALERTS, "kind" => kind, "severity" => severity, "result" => result).increment(1);
}

/// How much the store holds (set at each scrape).
pub fn store_size(size: &crate::store::StoreSize) {
    gauge!(STORE_MESSAGES, "state" => "open").set(size.open as f64);
    gauge!(STORE_MESSAGES, "state" => "settled").set(size.settled as f64);
    if let Some(b) = size.bytes {
        gauge!(STORE_BYTES).set(b as f64);
    }
}

/// A retention pass deleted `n` messages.
pub fn pruned(n: u64) {
    counter!(STORE_PRUNED).increment(n);
    if n > 0 {
        tracing::info!(messages = n, "retention: expired messages deleted");
    }
}
