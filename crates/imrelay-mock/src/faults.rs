//! Fault injection: tell the mock over HTTP to answer a given platform code, an
//! HTTP error, a redirect or an endless-looking answer, add latency or hang, for
//! the next N requests or a share of them, per destination.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::state::MockState;

/// What to do to a matching request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FaultAction {
    /// Answer with this platform code in the platform's own response shape.
    Code {
        code: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        msg: Option<String>,
    },
    /// Answer with this HTTP status (and a short body).
    Http { http_status: u16 },
    /// Wait this long, then handle the request normally.
    Latency { latency_ms: u64 },
    /// Never answer (until the client gives up).
    Hang { hang: bool },
    /// Answer a redirect (`redirect_status`, default 307) to `redirect_to`.
    Redirect {
        redirect_to: String,
        #[serde(default = "default_redirect_status")]
        redirect_status: u16,
    },
    /// Answer HTTP 200 with a body of `oversize_bytes` (spaces, streamed, so
    /// the mock holds only one chunk at a time).
    Oversize { oversize_bytes: u64 },
}

fn default_redirect_status() -> u16 {
    307
}

/// A fault rule, as posted to `POST /_mock/faults`.
///
/// `{"target": "dingtalk:robot:abc", "code": 130101, "count": 3}`,
/// `{"target": "*", "http_status": 503, "ratio": 0.5}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Exact target, a prefix ending in `:` or `*` ("dingtalk:robot:*", "feishu:"),
    /// or "*" for every destination.
    pub target: String,
    #[serde(flatten)]
    pub action: FaultAction,
    /// Apply to the next `count` matching requests, then expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Apply to this share (0..=1) of matching requests, at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Also fault token endpoints (default: only message endpoints).
    #[serde(default)]
    pub include_token_endpoints: bool,
}

impl FaultRule {
    fn matches(&self, target: &str, token_endpoint: bool) -> bool {
        if token_endpoint && !self.include_token_endpoints {
            return false;
        }
        let t = self.target.as_str();
        t == "*"
            || t == target
            || t.strip_suffix('*').is_some_and(|p| target.starts_with(p))
            || (t.ends_with(':') && target.starts_with(t))
    }
}

/// The set of active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub fn list(&self) -> Vec<FaultRule> {
        self.rules.lock().clone()
    }

    /// The action for a request to `target`, consuming one use of a counted rule.
    pub fn take(&self, target: &str, token_endpoint: bool) -> Option<FaultAction> {
        let mut rules = self.rules.lock();
        if rules.is_empty() {
            return None;
        }
        let idx = rules
            .iter()
            .position(|r| r.matches(target, token_endpoint))?;
        let rule = &mut rules[idx];
        if let Some(ratio) = rule.ratio {
            if rand::random::<f64>() >= ratio {
                return None;
            }
        }
        let action = rule.action.clone();
        if let Some(n) = rule.count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(idx);
            }
        }
        Some(action)
    }
}

/// What a platform handler must answer instead of handling the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    Code {
        code: i64,
        msg: String,
    },
    Http(u16),
    /// An answer that is the same on every platform.
    Answer(RawAnswer),
}

/// An injected answer that is no platform's shape at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawAnswer {
    Redirect { status: u16, location: String },
    Oversize { bytes: u64 },
}

impl RawAnswer {
    /// The code the log shows.
    pub fn log_code(&self) -> String {
        match self {
            RawAnswer::Redirect { status, .. } => format!("http {status}"),
            RawAnswer::Oversize { .. } => "http 200".into(),
        }
    }

    /// Why the log shows it rejected.
    pub fn reason(&self) -> String {
        match self {
            RawAnswer::Redirect { location, .. } => format!("injected redirect to {location}"),
            RawAnswer::Oversize { bytes } => format!("injected answer of {bytes} bytes"),
        }
    }

    pub fn response(&self) -> Response {
        match self {
            RawAnswer::Redirect { status, location } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::TEMPORARY_REDIRECT),
                [(header::LOCATION, location.clone())],
            )
                .into_response(),
            RawAnswer::Oversize { bytes } => {
                const CHUNK: u64 = 64 * 1024;
                let chunk = Bytes::from(vec![b' '; CHUNK as usize]);
                let total = *bytes;
                let chunks = (0..total.div_ceil(CHUNK)).map(move |i| {
                    let n = (total - i * CHUNK).min(CHUNK) as usize;
                    Ok::<_, Infallible>(chunk.slice(..n))
                });
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    Body::from_stream(futures::stream::iter(chunks)),
                )
                    .into_response()
            }
        }
    }
}

/// Apply any fault for `target`: latency and hangs are served here (by waiting);
/// codes and HTTP errors come back for the platform module to render in its own
/// response shape. Call it at the top of every message endpoint.
pub async fn inject(state: &MockState, target: &str) -> Option<Injected> {
    inject_for(state, target, false).await
}

/// Like [`inject`], for token endpoints (only rules that opted in apply).
pub async fn inject_token(state: &MockState, target: &str) -> Option<Injected> {
    inject_for(state, target, true).await
}

async fn inject_for(state: &MockState, target: &str, token_endpoint: bool) -> Option<Injected> {
    match state.faults.take(target, token_endpoint)? {
        FaultAction::Code { code, msg } => Some(Injected::Code {
            code,
            msg: msg.unwrap_or_else(|| format!("injected fault {code}")),
        }),
        FaultAction::Http { http_status } => Some(Injected::Http(http_status)),
        FaultAction::Latency { latency_ms } => {
            tokio::time::sleep(Duration::from_millis(latency_ms)).await;
            None
        }
        FaultAction::Hang { .. } => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            None
        }
        FaultAction::Redirect {
            redirect_to,
            redirect_status,
        } => Some(Injected::Answer(RawAnswer::Redirect {
            status: redirect_status,
            location: redirect_to,
        })),
        FaultAction::Oversize { oversize_bytes } => Some(Injected::Answer(RawAnswer::Oversize {
            bytes: oversize_bytes,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_and_oversize_rules_parse_from_the_control_api() {
        let r: FaultRule =
            serde_json::from_str(r#"{"target":"*","redirect_to":"http://10.0.0.1/x","count":1}"#)
                .unwrap();
        assert_eq!(
            r.action,
            FaultAction::Redirect {
                redirect_to: "http://10.0.0.1/x".into(),
                redirect_status: 307
            }
        );
        let r: FaultRule =
            serde_json::from_str(r#"{"target":"feishu:","oversize_bytes":1073741824}"#).unwrap();
        assert_eq!(
            r.action,
            FaultAction::Oversize {
                oversize_bytes: 1 << 30
            }
        );
    }

    #[test]
    fn counted_rules_expire_and_prefixes_match() {
        let f = Faults::default();
        f.add(FaultRule {
            target: "dingtalk:robot:*".into(),
            action: FaultAction::Code {
                code: 130101,
                msg: None,
            },
            count: Some(2),
            ratio: None,
            include_token_endpoints: false,
        });
        assert!(f.take("feishu:webhook:x", false).is_none());
        assert!(f.take("dingtalk:robot:a", false).is_some());
        assert!(f.take("dingtalk:robot:b", false).is_some());
        assert!(f.take("dingtalk:robot:a", false).is_none());
    }

    #[test]
    fn rule_json_shapes() {
        let r: FaultRule =
            serde_json::from_str(r#"{"target":"*","http_status":503,"count":1}"#).unwrap();
        assert_eq!(r.action, FaultAction::Http { http_status: 503 });
        let r: FaultRule = serde_json::from_str(r#"{"target":"*","code":42001}"#).unwrap();
        assert_eq!(
            r.action,
            FaultAction::Code {
                code: 42001,
                msg: None
            }
        );
    }
}
