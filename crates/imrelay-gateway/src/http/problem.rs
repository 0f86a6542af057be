//! `application/problem+json` errors (RFC 9457). Every error the API returns is
//! one of these: a stable `type`, a short `title`, a `detail` that says what to
//! do, and for input errors the `field` at fault (a JSON path such as
//! `messages[2].body.text`, or a header name such as `Idempotency-Key`).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

/// The media type of problem documents.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Serialized as `type`: `urn:imrelay:problem:<slug>`.
    pub slug: &'static str,
    pub title: &'static str,
    pub status: StatusCode,
    pub detail: String,
    /// The input at fault.
    pub field: Option<String>,
    /// Extra members (e.g. `limit_bytes`, `existing_id`); boxed to keep
    /// `Result<_, Problem>` small.
    pub extra: Option<Box<Map<String, Value>>>,
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("type", &format!("urn:imrelay:problem:{}", self.slug))?;
        m.serialize_entry("title", self.title)?;
        m.serialize_entry("status", &self.status.as_u16())?;
        m.serialize_entry("detail", &self.detail)?;
        if let Some(f) = &self.field {
            m.serialize_entry("field", f)?;
        }
        for (k, v) in self.extra.iter().flat_map(|e| e.iter()) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            slug,
            title,
            status,
            detail: detail.into(),
            field: None,
            extra: None,
        }
    }

    /// Name the input at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Add an extra member.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value.into());
        self
    }

    /// 400: the request cannot be parsed at all (malformed JSON, bad header bytes).
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            detail,
        )
    }

    /// 422: well-formed, but a field is invalid.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        let p = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            detail,
        );
        if field.is_empty() {
            p
        } else {
            p.field(field)
        }
    }

    /// 401: no key, or an unknown key.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    /// 403: a valid key that may not do this.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 405.
    pub fn method_not_allowed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            detail,
        )
    }

    /// 415: the body is not declared as JSON.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            detail,
        )
        .field("Content-Type")
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Request body too large",
            format!("the request body is larger than {limit} bytes; send less (or raise `server.max_body_bytes`)"),
        )
        .with("limit_bytes", limit)
    }

    /// 503: the gateway cannot take the request now (store failing, shutting
    /// down). Nothing was accepted; the client should retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
    }

    /// 500: a bug. Nothing was accepted.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal error",
            detail,
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"imrelay\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = |d: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(d))
        };
        ObjectBuilder::new()
            .description(Some(
                "RFC 9457 problem details. Some problems carry extra members \
                 (`limit_bytes`, `existing_id`, and for a rejected batch `accepted`, `rejected`, `results`).",
            ))
            .property(
                "type",
                string("`urn:imrelay:problem:<slug>`, stable across versions")
                    .pattern(Some("^urn:imrelay:problem:[a-z-]+$")),
            )
            .property("title", string("A short summary of the problem type"))
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599))
                    .description(Some("The HTTP status code")),
            )
            .property("detail", string("What went wrong and what to do"))
            .property(
                "field",
                string("The input at fault: a JSON path (`messages[2].body.text`) or a header name"),
            )
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .into()
    }
}

impl utoipa::ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        "Problem".into()
    }
}

/// Middleware: an error answer in plain text or without a body type (a
/// rejection from an extractor outside this module, a router default) becomes
/// problem+json with the same status and headers, its text as `detail`, so
/// clients parse one error shape. JSON answers (problems, `/readyz`'s 503
/// report) pass untouched.
pub async fn problem_for_bare_errors(resp: Response) -> Response {
    let status = resp.status();
    let bare = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !bare {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    // These bodies are short texts; a longer one is cut, not buffered whole.
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let reason = status.canonical_reason().unwrap_or("Error");
    let (slug, title) = match status {
        StatusCode::BAD_REQUEST => ("malformed-request", "Malformed request"),
        StatusCode::NOT_FOUND => ("not-found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "Unsupported media type"),
        StatusCode::UNPROCESSABLE_ENTITY => ("invalid-field", "Invalid field"),
        s if s.is_server_error() => ("internal", "Internal error"),
        _ => ("error", "Error"),
    };
    let detail = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let fresh = Problem::new(status, slug, title, detail).into_response();
    let (fresh_parts, fresh_body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &fresh_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, fresh_body)
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::NotFound(what) => Problem::not_found(format!("{what} not found")),
            E::Invalid(why) => Problem::invalid("", why),
            E::Closed => Problem::unavailable(
                "the gateway is shutting down; nothing was accepted, retry elsewhere or later",
            ),
            E::Database(_)
            | E::Connect { .. }
            | E::Migrate(_)
            | E::Corrupt { .. }
            | E::Internal(_)
            | E::LeaseLost(_) => {
                // The text may name tables and paths; log it, answer generically.
                tracing::error!(error = %e, "store error while serving the API");
                Problem::unavailable("the queue database failed; nothing was accepted, retry later")
            }
        }
    }
}

/// Turn a JSON body error into a problem naming the field: syntax errors are
/// 400, type/shape errors 422 with the path (`messages[1].body.text`).
pub fn from_json_error(e: serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> Problem {
    use serde_json::error::Category;
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => Problem::malformed(format!(
            "the body is not valid JSON: {inner}; send a JSON object (Content-Type: application/json)"
        )),
        Category::Data => {
            let msg = strip_position(&inner.to_string());
            let mut field = join_path(prefix, if path == "." { "" } else { &path });
            // serde reports a missing field at its parent; name the field itself.
            if let Some(rest) = msg.strip_prefix("missing field `") {
                if let Some(end) = rest.find('`') {
                    field = join_path(&field, &rest[..end]);
                }
            }
            let detail = if msg.starts_with("unknown field") {
                format!("{msg}; remove it")
            } else {
                msg
            };
            if field.is_empty() {
                Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", "Invalid field", format!("{detail}; send a JSON object"))
            } else {
                Problem::invalid(field, detail)
            }
        }
    }
}

/// Join JSON paths: `a` + `b` = `a.b`, `a` + `[1]` = `a[1]`.
pub fn join_path(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

/// serde_json appends " at line 1 column 42" to data errors; the field path is
/// more useful and the position is noise for a one-line body.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        a: u32,
        b: Vec<Inner>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        x: String,
    }

    fn parse(s: &str) -> Problem {
        let de = &mut serde_json::Deserializer::from_str(s);
        from_json_error(
            serde_path_to_error::deserialize::<_, T>(de).unwrap_err(),
            "",
        )
    }

    #[test]
    fn json_errors_name_the_field() {
        let ok: T = serde_json::from_str(r#"{"a": 1, "b": [{"x": "ok"}]}"#).unwrap();
        assert_eq!((ok.a, ok.b[0].x.as_str()), (1, "ok"));
        let p = parse(r#"{"a": 1, "b": [{"x": "ok"}, {"x": 5}]}"#);
        assert_eq!(
            (p.status.as_u16(), p.field.as_deref()),
            (422, Some("b[1].x"))
        );
        let p = parse(r#"{"a": 1, "b": [{}]}"#);
        assert_eq!(p.field.as_deref(), Some("b[0].x"));
        assert_eq!(p.detail, "missing field `x`");
        let p = parse(r#"{"a": 1, "b": [], "zz": 1}"#);
        assert_eq!(p.field.as_deref(), Some("zz"));
        let p = parse(r#"{"a": 1,"#);
        assert_eq!((p.status.as_u16(), p.field), (400, None));
    }

    #[tokio::test]
    async fn bare_error_answers_become_problems_and_json_ones_stay() {
        let text = (StatusCode::BAD_REQUEST, "Invalid URL: bad utf-8").into_response();
        let r = problem_for_bare_errors(text).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["detail"], "Invalid URL: bad utf-8");
        assert_eq!(v["status"], 400);

        let empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        let r = problem_for_bare_errors(empty).await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);

        let report = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not_ready"})),
        )
            .into_response();
        let r = problem_for_bare_errors(report).await;
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        assert_eq!(&body[..], br#"{"status":"not_ready"}"#);
    }

    #[test]
    fn renders_as_problem_json() {
        let p = Problem::invalid("channel", "no channel `x`");
        insta::assert_json_snapshot!(p, @r#"
        {
          "type": "urn:imrelay:problem:invalid-field",
          "title": "Invalid field",
          "status": 422,
          "detail": "no channel `x`",
          "field": "channel"
        }
        "#);
        let r = Problem::unauthorized("no key").into_response();
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
