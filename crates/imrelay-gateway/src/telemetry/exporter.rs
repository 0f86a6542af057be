//! The process-wide Prometheus recorder behind the `metrics` facade
//! (`metrics-exporter-prometheus`, without its own HTTP server: the API serves
//! the text at `GET /metrics`, see `api::metrics`), with bucket lists and
//! descriptions.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::events::*;

/// Latency buckets (seconds): platform calls take tens of ms; accept to
/// delivered can take minutes under retries.
const SECONDS_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. The
/// `metrics` facade has one global recorder; a process runs one gateway (tests
/// that start several share it and use distinct label values).
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(DELIVERY_ATTEMPTS.into()), ATTEMPT_BUCKETS)
            })
            .expect("bucket lists are non-empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics shows only what imrelay records itself");
        }
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(MESSAGES_ACCEPTED, "Messages accepted by the API.");
    describe_counter!(
        ACKS,
        "Acknowledgements, silences and resolutions taken, by action and source."
    );
    describe_counter!(CLICKS_REFUSED, "Card clicks refused, by reason.");
    describe_counter!(
        ESCALATION_STEPS,
        "Escalation steps fired (each exactly once), by policy."
    );
    describe_counter!(
        GROUP_NOTIFICATIONS,
        "Notifications of message groups sent (each group send exactly once), by channel."
    );
    describe_counter!(
        GROUPED_MESSAGES,
        "Messages folded into a group's notification instead of sent on their own, by channel."
    );
    describe_counter!(
        URGENT_PUSHES,
        "Urgent pushes asked of platforms, by platform, kind (app, sms, phone) and outcome."
    );
    describe_counter!(
        DELIVERIES,
        "Deliveries by outcome (delivered, retried, rate_limited, dead) and error class/code."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from accept to delivered."
    );
    describe_histogram!(
        DELIVERY_ATTEMPTS,
        Unit::Count,
        "Attempts a delivery took when it settled."
    );
    describe_counter!(PLATFORM_REQUESTS, "Requests to platforms by outcome.");
    describe_histogram!(
        PLATFORM_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of one platform request."
    );
    describe_counter!(RATE_LIMIT_WAITS, "Waits for a rate window.");
    describe_histogram!(
        RATE_LIMIT_WAIT_SECONDS,
        Unit::Seconds,
        "Length of rate-window waits."
    );
    describe_gauge!(
        BREAKER_STATE,
        "Circuit breaker state: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(BREAKER_OPENED, "Times a circuit breaker opened.");
    describe_gauge!(QUEUE_DEPTH, "Deliveries by queue state.");
    describe_gauge!(
        OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest undelivered message."
    );
    describe_gauge!(DLQ_SIZE, "Dead-lettered deliveries kept.");
    describe_counter!(TOKEN_REFRESHES, "Access-token fetches by outcome.");
    describe_counter!(CONFIG_RELOADS, "Config reloads by outcome.");
    describe_counter!(DIGESTS, "Digests created by coalescing.");
    describe_counter!(
        OUT_OF_ORDER,
        "Deliveries sent after later messages to the same destination (ordered channels)."
    );
    describe_gauge!(
        STORE_MESSAGES,
        "Messages kept in the store: open (a delivery still pending) or settled."
    );
    describe_gauge!(STORE_BYTES, Unit::Bytes, "Size of the store's database.");
    describe_counter!(
        STORE_PRUNED,
        "Settled messages deleted by retention (keep_delivered, keep_dead)."
    );
    describe_counter!(DIGEST_MEMBERS, "Deliveries merged into digests.");
    describe_counter!(ALERTS, "Self-alerts by kind, severity and result.");
    describe_counter!(
        DISPATCH_STORE_ERRORS,
        "Store operations of the dispatcher that failed, by operation and error."
    );
    describe_gauge!(
        READY,
        "1 when ready: store reachable, config loaded, not draining."
    );
}
