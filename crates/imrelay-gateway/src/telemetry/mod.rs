//! Observability: what imrelay tells operators about itself.
//!
//! - [`events`]: every metric's name and labels, next to the log event emitted
//!   at the same moment, so a dashboard query and a log search name the same
//!   thing. Callers (API, dispatcher) make one-line calls into it.
//! - [`exporter`]: the process-wide Prometheus recorder (the API serves its
//!   text at `GET /metrics`).
//! - [`logging`]: `tracing` set-up, JSON or human format.
//! - [`trace`]: the trace id of a request: W3C `traceparent`, else
//!   `X-Request-Id`, else generated; returned as `X-Trace-Id` and stored with
//!   the message.
//! - [`redact`]: scrubbing secrets out of text that reaches logs.
//! - `otlp` (cargo feature `otlp`): OTLP/HTTP trace export.
//!
//! Label sets are bounded: channel names, destination keys and platform kinds
//! come from the config; outcomes and classes are fixed lists; platform codes
//! come from the platforms' documented code tables. Message ids, user ids and
//! trace ids never become labels (they are log fields).

pub mod events;
pub mod exporter;
pub mod logging;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod redact;
pub mod trace;

pub use logging::{init_logs, LogFormat};
