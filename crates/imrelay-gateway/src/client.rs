//! A small client for a running gateway, used by `imrelay send --server URL`
//! and `imrelay message recall|ack|update` (the API key comes from the
//! environment in the CLI).

use std::time::Duration;

use imrelay_sdk::Message;
use serde_json::{json, Value};

/// Why a submission failed.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The gateway could not be reached or did not answer in time.
    #[error("cannot reach the gateway at {server}: {detail}")]
    Transport { server: String, detail: String },
    /// The gateway answered with an error (its problem+json `detail`, and the
    /// field at fault when it named one).
    #[error("the gateway refused the message (HTTP {status}): {detail}{}", field.as_ref().map(|f| format!(" [field: {f}]")).unwrap_or_default())]
    Refused {
        status: u16,
        detail: String,
        field: Option<String>,
        problem: Option<Value>,
    },
    /// The server URL is not usable.
    #[error("`--server`: {0}")]
    BadServer(String),
}

/// Options for [`submit_with`].
#[derive(Debug, Clone, Default)]
pub struct SubmitOptions {
    /// Sent as `Idempotency-Key`: resubmitting with the same key returns the
    /// first message's id instead of sending twice.
    pub idempotency_key: Option<String>,
    /// Request timeout (default 30 s).
    pub timeout: Option<Duration>,
}

/// Submit one message to `channel` through the gateway at `server`
/// (`http://127.0.0.1:8080`). Returns the message id once the gateway has
/// durably accepted it.
pub async fn submit(
    server: &str,
    api_key: &str,
    channel: &str,
    message: &Message,
) -> Result<String, SubmitError> {
    submit_with(server, api_key, channel, message, &SubmitOptions::default()).await
}

/// [`submit`] with options.
pub async fn submit_with(
    server: &str,
    api_key: &str,
    channel: &str,
    message: &Message,
    opts: &SubmitOptions,
) -> Result<String, SubmitError> {
    let body = request_body(channel, message);
    let (status, value, text) = call(
        server,
        api_key,
        reqwest::Method::POST,
        &[],
        Some(&body),
        opts,
    )
    .await?;
    if status == 202 {
        if let Some(id) = value
            .as_ref()
            .and_then(|v| v.get("id"))
            .and_then(Value::as_str)
        {
            return Ok(id.to_string());
        }
    }
    Err(refused(status, value, &text))
}

/// Recall what message `id` (any message of its thread) delivered:
/// `DELETE /v1/messages/{id}`. The answer (202) names the queued recall and
/// says per destination whether it is recalled and why not. When no
/// destination can recall it the gateway answers 409: [`SubmitError::Refused`]
/// whose `problem` has the same `destinations`.
pub async fn recall(
    server: &str,
    api_key: &str,
    id: &str,
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let (status, value, text) =
        call(server, api_key, reqwest::Method::DELETE, &[id], None, opts).await?;
    match value {
        Some(v) if status == 202 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// Have the platform push message `id` urgently to `users`: `POST
/// /v1/messages/{id}/urgent` with `kind` (`app`, `sms`, `phone`) and, for a
/// DING, `text`. The answer names the queued push and, per destination,
/// whether it pushes and why not.
pub async fn urgent(
    server: &str,
    api_key: &str,
    id: &str,
    kind: &str,
    users: &[String],
    text: Option<&str>,
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let mut body = json!({ "kind": kind, "users": users });
    if let Some(t) = text {
        body["text"] = json!(t);
    }
    let (status, value, text) = call(
        server,
        api_key,
        reqwest::Method::POST,
        &[id, "urgent"],
        Some(&body),
        opts,
    )
    .await?;
    match value {
        Some(v) if status == 202 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// Acknowledge message `id` as `by`: `POST /v1/messages/{id}/ack` with
/// `action` (`ack` when `None`, `resolve`, `silence:1h`). The answer has the
/// recorded `ack` and `already` (the same action was taken before: nothing
/// changed).
pub async fn acknowledge(
    server: &str,
    api_key: &str,
    id: &str,
    by: &str,
    action: Option<&str>,
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let mut body = json!({ "by": by });
    if let Some(a) = action {
        body["action"] = json!(a);
    }
    let (status, value, text) = call(
        server,
        api_key,
        reqwest::Method::POST,
        &[id, "ack"],
        Some(&body),
        opts,
    )
    .await?;
    match value {
        Some(v) if status == 200 || status == 202 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// Update message `id` (its thread's card) with `fields`, the fields of
/// `POST /v1/messages` without `channel`: `PATCH /v1/messages/{id}`. The
/// answer names the queued update (`id`) and the message it updates (`of`).
pub async fn update(
    server: &str,
    api_key: &str,
    id: &str,
    fields: &Value,
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let (status, value, text) = call(
        server,
        api_key,
        reqwest::Method::PATCH,
        &[id],
        Some(fields),
        opts,
    )
    .await?;
    match value {
        Some(v) if status == 202 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// One request to `/v1/messages[/segments...]`: the status, the answer as
/// JSON when it is JSON, and its text.
async fn call(
    server: &str,
    api_key: &str,
    method: reqwest::Method,
    segments: &[&str],
    body: Option<&Value>,
    opts: &SubmitOptions,
) -> Result<(u16, Option<Value>, String), SubmitError> {
    let mut path = vec!["v1", "messages"];
    path.extend_from_slice(segments);
    call_api(server, api_key, method, &path, body, opts).await
}

/// Who is on call: `GET /v1/oncall` (every schedule) or
/// `GET /v1/oncall/{schedule}`.
pub async fn oncall(
    server: &str,
    api_key: &str,
    schedule: Option<&str>,
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let mut path = vec!["v1", "oncall"];
    path.extend(schedule);
    let (status, value, text) =
        call_api(server, api_key, reqwest::Method::GET, &path, None, opts).await?;
    match value {
        Some(v) if status == 200 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// Put `person` on call on `schedule` from `starts_at` to `ends_at` (RFC
/// 3339): `POST /v1/oncall/{schedule}/overrides`.
pub async fn add_override(
    server: &str,
    api_key: &str,
    schedule: &str,
    person: &str,
    (starts_at, ends_at): (&str, &str),
    opts: &SubmitOptions,
) -> Result<Value, SubmitError> {
    let body = json!({"person": person, "startsAt": starts_at, "endsAt": ends_at});
    let path = ["v1", "oncall", schedule, "overrides"];
    let (status, value, text) = call_api(
        server,
        api_key,
        reqwest::Method::POST,
        &path,
        Some(&body),
        opts,
    )
    .await?;
    match value {
        Some(v) if status == 201 => Ok(v),
        v => Err(refused(status, v, &text)),
    }
}

/// Delete override `id` of `schedule`.
pub async fn delete_override(
    server: &str,
    api_key: &str,
    schedule: &str,
    id: &str,
    opts: &SubmitOptions,
) -> Result<(), SubmitError> {
    let path = ["v1", "oncall", schedule, "overrides", id];
    let (status, value, text) =
        call_api(server, api_key, reqwest::Method::DELETE, &path, None, opts).await?;
    if status == 204 {
        Ok(())
    } else {
        Err(refused(status, value, &text))
    }
}

/// One request to `/{path...}` of the gateway.
async fn call_api(
    server: &str,
    api_key: &str,
    method: reqwest::Method,
    path: &[&str],
    body: Option<&Value>,
    opts: &SubmitOptions,
) -> Result<(u16, Option<Value>, String), SubmitError> {
    let mut url = url::Url::parse(server)
        .map_err(|e| SubmitError::BadServer(format!("`{server}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(SubmitError::BadServer(format!(
            "`{server}` must be an http(s) URL"
        )));
    }
    url.path_segments_mut()
        .map_err(|()| SubmitError::BadServer(format!("`{server}` cannot be a base URL")))?
        .pop_if_empty()
        // Escaped: an id is one path segment whatever it holds.
        .extend(path);

    // reqwest is built without a default crypto provider; install ring once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(opts.timeout.unwrap_or(Duration::from_secs(30)))
        .user_agent(concat!("imrelay/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SubmitError::Transport {
            server: server.to_string(),
            detail: e.to_string(),
        })?;
    let mut req = client.request(method, url).bearer_auth(api_key);
    if let Some(b) = body {
        req = req.json(b);
    }
    if let Some(k) = &opts.idempotency_key {
        req = req.header("idempotency-key", k);
    }
    let resp = req.send().await.map_err(|e| SubmitError::Transport {
        server: server.to_string(),
        detail: e.without_url().to_string(),
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let value = serde_json::from_str(&text).ok();
    Ok((status, value, text))
}

/// The error for an answer that is not the expected success: the problem's
/// `detail` and `field`, or the start of the body.
fn refused(status: u16, value: Option<Value>, text: &str) -> SubmitError {
    let detail = value
        .as_ref()
        .and_then(|v| v.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(300).collect());
    let field = value
        .as_ref()
        .and_then(|v| v.get("field"))
        .and_then(Value::as_str)
        .map(str::to_string);
    SubmitError::Refused {
        status,
        detail,
        field,
        problem: value,
    }
}

/// The `POST /v1/messages` body for `message` (its `id` is the gateway's to assign).
pub fn request_body(channel: &str, message: &Message) -> Value {
    let mut body = json!({ "channel": channel, "body": message.body });
    if let Some(t) = &message.title {
        body["title"] = json!(t);
    }
    if !message.mentions.is_empty() {
        body["mentions"] = json!(message.mentions);
    }
    if !message.recipients.is_empty() {
        body["recipients"] = json!(message.recipients);
    }
    body
}
