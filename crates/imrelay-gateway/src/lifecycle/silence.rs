//! Silences in the Alertmanager that sent an alert, through its v2 API
//! (`POST /api/v2/silences`), for the card's "silence" buttons.

use std::time::Duration;

use imrelay_sdk::http::{HttpClient, HttpRequest};
use serde_json::json;

use crate::store::Labels;

/// Why no silence was created; the text never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("the alert has no labels to silence by")]
    NoLabels,
    #[error("the Alertmanager URL `{url}` is not valid: {why}")]
    BadUrl { url: String, why: String },
    #[error("Alertmanager did not answer: {0}")]
    Unreachable(String),
    #[error("Alertmanager refused the silence (HTTP {status}): {body}")]
    Refused { status: u16, body: String },
    #[error("Alertmanager's answer has no silence id: {0}")]
    BadAnswer(String),
}

/// A silence Alertmanager created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    pub id: String,
    pub ends_at_ms: i64,
}

/// The v2 silence body: every label an equality matcher, from `now_ms` for
/// `duration`.
pub fn silence_body(
    labels: &Labels,
    now_ms: i64,
    duration: Duration,
    created_by: &str,
    comment: &str,
) -> serde_json::Value {
    let matchers: Vec<_> = labels
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value, "isRegex": false, "isEqual": true}))
        .collect();
    let rfc3339 = |ms: i64| {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    json!({
        "matchers": matchers,
        "startsAt": rfc3339(now_ms),
        "endsAt": rfc3339(now_ms + duration.as_millis() as i64),
        "createdBy": created_by,
        "comment": comment,
    })
}

/// Create a silence at the Alertmanager at `base_url` matching `labels`.
pub async fn create(
    http: &HttpClient,
    base_url: &str,
    labels: &Labels,
    now_ms: i64,
    duration: Duration,
    created_by: &str,
    comment: &str,
) -> Result<Silence, String> {
    if labels.is_empty() {
        return Err("the alert has no labels to silence by".into());
    }
    let url = url::Url::parse(base_url.trim_end_matches('/'))
        .and_then(|u| {
            u.join(&format!(
                "{}/api/v2/silences",
                u.path().trim_end_matches('/')
            ))
        })
        .map_err(|e| format!("the Alertmanager URL `{base_url}` is not valid: {e}"))?;
    let body = silence_body(labels, now_ms, duration, created_by, comment);
    let resp = http
        .execute(HttpRequest::post_json(url, &body))
        .await
        .map_err(|r| format!("Alertmanager did not answer: {}", r.message))?;
    if resp.status != 200 {
        return Err(format!(
            "Alertmanager refused the silence (HTTP {}): {}",
            resp.status,
            resp.body_snippet()
        ));
    }
    let v = resp
        .json()
        .map_err(|r| format!("Alertmanager's answer is not JSON: {}", r.message))?;
    let id = v
        .get("silenceID")
        .and_then(serde_json::Value::as_str)
        .ok_or("Alertmanager's answer has no silenceID")?;
    Ok(Silence {
        id: id.to_string(),
        ends_at_ms: now_ms + duration.as_millis() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_matches_every_label_exactly_for_the_duration() {
        let labels: Labels = [("alertname".to_string(), "CPUHigh".to_string())].into();
        let b = silence_body(
            &labels,
            0,
            Duration::from_secs(3600),
            "张三",
            "from the card",
        );
        assert_eq!(
            b["matchers"],
            json!([{"name": "alertname", "value": "CPUHigh", "isRegex": false, "isEqual": true}])
        );
        assert_eq!(b["startsAt"], "1970-01-01T00:00:00Z");
        assert_eq!(b["endsAt"], "1970-01-01T01:00:00Z");
        assert_eq!(b["createdBy"], "张三");
    }
}
