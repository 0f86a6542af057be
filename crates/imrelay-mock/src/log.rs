//! The request log: every request the mock accepted or rejected, with the reason,
//! queryable and resettable over `/_mock/requests`.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// How the request's signature fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureCheck {
    /// The destination requires a signature and it verified.
    Verified,
    /// Signature required, and missing, wrong or outside the time window.
    Failed,
    /// The destination has no signing secret.
    NotRequired,
    /// Not applicable (token endpoints, app APIs).
    None,
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Assigned by the log.
    #[serde(default)]
    pub seq: u64,
    /// Stamped by [`crate::MockState::record`] with the mock clock.
    pub at_ms: i64,
    /// "dingtalk", "feishu", ...
    pub platform: String,
    /// A short endpoint name: "robot.send", "token", "im.messages", ...
    pub endpoint: String,
    /// The destination: "dingtalk:robot:{token}", "feishu:app:{app_id}", ...
    pub target: String,
    pub accepted: bool,
    /// True when the platform accepted it as a duplicate of an earlier request
    /// (same Feishu uuid, WeChat client_msg_id, WeCom duplicate check) and did not
    /// deliver it again.
    #[serde(default)]
    pub duplicate: bool,
    /// The platform code answered (0 on success).
    pub code: Option<String>,
    /// Why it was rejected, or what was injected.
    pub reason: Option<String>,
    pub signature: SignatureCheck,
    /// The request body as JSON (absent when bodies are not logged).
    pub body: Option<serde_json::Value>,
}

impl LogEntry {
    /// A new entry; fill the rest with the builder methods.
    pub fn new(platform: &str, endpoint: &str, target: impl Into<String>) -> Self {
        LogEntry {
            seq: 0,
            at_ms: 0,
            platform: platform.to_string(),
            endpoint: endpoint.to_string(),
            target: target.into(),
            accepted: false,
            duplicate: false,
            code: None,
            reason: None,
            signature: SignatureCheck::None,
            body: None,
        }
    }

    pub fn accepted(mut self) -> Self {
        self.accepted = true;
        self.code = Some("0".into());
        self
    }

    pub fn rejected(mut self, code: impl ToString, reason: impl Into<String>) -> Self {
        self.accepted = false;
        self.code = Some(code.to_string());
        self.reason = Some(reason.into());
        self
    }

    pub fn signature(mut self, s: SignatureCheck) -> Self {
        self.signature = s;
        self
    }

    pub fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn duplicate(mut self) -> Self {
        self.duplicate = true;
        self
    }
}

/// Counts per target, kept even when old entries are dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub accepted: u64,
    pub rejected: u64,
    pub duplicates: u64,
}

#[derive(Debug, Default)]
struct Inner {
    next_seq: u64,
    entries: VecDeque<LogEntry>,
    counts: HashMap<String, Counts>,
}

/// The log. Cheap enough to sit on the hot path of a benchmark sink: one short
/// mutex hold per request.
#[derive(Debug)]
pub struct RequestLog {
    inner: Mutex<Inner>,
    capacity: usize,
    keep_bodies: bool,
}

/// Filters for [`RequestLog::query`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Query {
    pub platform: Option<String>,
    pub target: Option<String>,
    /// Prefix match on the target ("dingtalk:robot:").
    pub target_prefix: Option<String>,
    pub endpoint: Option<String>,
    pub accepted: Option<bool>,
    /// Only entries with seq greater than this.
    pub since: Option<u64>,
    pub limit: Option<usize>,
}

impl RequestLog {
    pub fn new(capacity: usize, keep_bodies: bool) -> Self {
        RequestLog {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            keep_bodies,
        }
    }

    /// Record an entry (its `seq` is assigned here); returns the seq.
    pub fn record(&self, mut entry: LogEntry) -> u64 {
        if !self.keep_bodies {
            entry.body = None;
        }
        let mut g = self.inner.lock();
        g.next_seq += 1;
        entry.seq = g.next_seq;
        let c = g.counts.entry(entry.target.clone()).or_default();
        if entry.duplicate {
            c.duplicates += 1;
        } else if entry.accepted {
            c.accepted += 1;
        } else {
            c.rejected += 1;
        }
        if g.entries.len() >= self.capacity {
            g.entries.pop_front();
        }
        let seq = entry.seq;
        g.entries.push_back(entry);
        seq
    }

    pub fn query(&self, q: &Query) -> Vec<LogEntry> {
        let g = self.inner.lock();
        let limit = q.limit.unwrap_or(usize::MAX);
        g.entries
            .iter()
            .filter(|e| q.platform.as_deref().is_none_or(|p| e.platform == p))
            .filter(|e| q.target.as_deref().is_none_or(|t| e.target == t))
            .filter(|e| {
                q.target_prefix
                    .as_deref()
                    .is_none_or(|t| e.target.starts_with(t))
            })
            .filter(|e| q.endpoint.as_deref().is_none_or(|t| e.endpoint == t))
            .filter(|e| q.accepted.is_none_or(|a| e.accepted == a))
            .filter(|e| q.since.is_none_or(|s| e.seq > s))
            .take(limit)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<LogEntry> {
        self.query(&Query::default())
    }

    pub fn counts(&self) -> HashMap<String, Counts> {
        self.inner.lock().counts.clone()
    }

    pub fn clear(&self) {
        let mut g = self.inner.lock();
        g.entries.clear();
        g.counts.clear();
    }
}
