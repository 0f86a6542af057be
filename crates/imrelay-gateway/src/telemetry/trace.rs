//! Trace ids. Each API request gets one: the trace id of an incoming W3C
//! `traceparent` header, else the `X-Request-Id` header, else a new random
//! one. It is returned in `X-Trace-Id`, put on the request's log span, and
//! stored with the messages the request creates, so every log line of a
//! message's life carries it.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The response header carrying the request's trace id.
pub const TRACE_ID_HEADER: &str = "x-trace-id";
/// Set by [`middleware`] on the request, for handlers to read with
/// [`request_trace_id`]; an incoming header of that name is replaced.
pub const INTERNAL_HEADER: &str = "x-imrelay-trace-id";

/// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), if it
/// is well formed and not all zeros.
pub fn from_traceparent(v: &str) -> Option<String> {
    let mut parts = v.trim().split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    // Version ff is invalid; version 00 has exactly four fields.
    if !hex(version, 2) || version.eq_ignore_ascii_case("ff") || !hex(trace, 32) {
        return None;
    }
    if !hex(parent, 16) || !hex(flags, 2) || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(trace.to_ascii_lowercase())
}

/// A usable `X-Request-Id`: 1-128 visible ASCII characters.
fn from_request_id(v: &str) -> Option<String> {
    let ok = !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_string())
}

/// A new trace id (W3C format: 32 lowercase hex digits).
pub fn generate() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The trace id a request's headers give, if any.
pub fn from_headers(headers: &HeaderMap) -> Option<String> {
    let tp = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(from_traceparent);
    tp.or_else(|| {
        headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .and_then(from_request_id)
    })
}

/// The trace id [`middleware`] gave this request (handlers), falling back to
/// the headers when the middleware is not installed (unit tests of handlers).
pub fn request_trace_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(INTERNAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| from_headers(headers))
}

/// Axum middleware: resolve the trace id, run the request in a span carrying
/// it, and return it in `X-Trace-Id`.
pub async fn middleware(mut req: Request, next: Next) -> Response {
    let id = from_headers(req.headers()).unwrap_or_else(generate);
    let value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        req.headers_mut()
            .insert(HeaderName::from_static(INTERNAL_HEADER), v.clone());
    }
    // ERROR level so no log filter drops the span (and the trace id with it).
    let span = tracing::error_span!("request", trace_id = %id, method = %req.method(), path = %req.uri().path());
    #[cfg(feature = "otlp")]
    super::otlp::join_trace(&span, &id);
    let mut resp = next.run(req).instrument(span).await;
    if let Some(v) = value {
        resp.headers_mut()
            .insert(HeaderName::from_static(TRACE_ID_HEADER), v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_gives_its_trace_id() {
        assert_eq!(
            from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Malformed, all-zero, or version ff: ignored.
        assert_eq!(from_traceparent("00-4bf92f35-00f067aa0ba902b7-01"), None);
        assert_eq!(
            from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
        assert_eq!(
            from_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            None
        );
    }

    #[test]
    fn traceparent_wins_over_request_id_and_bad_ids_are_ignored() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("req-1"));
        assert_eq!(from_headers(&h).as_deref(), Some("req-1"));
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        assert_eq!(
            from_headers(&h).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_eq!(from_headers(&h), None);
        assert_eq!(generate().len(), 32);
    }
}
