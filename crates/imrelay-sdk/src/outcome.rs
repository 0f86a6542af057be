//! What a platform's answer means, as types. Callers match on [`Outcome`]; they
//! never parse an error string.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The class of an answer: what the caller should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "class", rename_all = "snake_case")]
pub enum Outcome {
    /// The platform accepted the message (for every recipient not listed in
    /// [`Report::failed_recipients`]).
    Delivered,
    /// Transient failure (system busy, 5xx, timeout, connection error): retry with
    /// backoff. `after` is the platform's hint (Retry-After), if any.
    Retry {
        #[serde(default, with = "opt_secs", skip_serializing_if = "Option::is_none")]
        after: Option<Duration>,
    },
    /// The access token was rejected. The SDK already refreshed it and retried once
    /// before reporting this, so seeing it means the fresh token failed too.
    RefreshToken,
    /// The platform's rate limit was hit: wait at least `wait`, and do not count it
    /// as a failed attempt.
    RateLimited {
        #[serde(with = "secs")]
        wait: Duration,
    },
    /// Will never succeed as sent (bad credentials, robot gone, content refused,
    /// message too large): dead-letter it.
    Permanent,
}

impl Outcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Outcome::Delivered)
    }

    /// Short label for metrics and logs: delivered, retry, refresh_token,
    /// rate_limited, permanent.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::RefreshToken => "refresh_token",
            Outcome::RateLimited { .. } => "rate_limited",
            Outcome::Permanent => "permanent",
        }
    }
}

/// A platform error code: most platforms use integers, DingTalk's v1.0 API and
/// some gateways use names (`InvalidAuthentication`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    Int(i64),
    Name(String),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Int(n) => write!(f, "{n}"),
            Code::Name(s) => f.write_str(s),
        }
    }
}

/// One entry of a platform's error-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    pub code: i64,
    pub class: CodeClass,
    /// What the code means, in a few words.
    pub meaning: &'static str,
    /// What the operator should do about it.
    pub action: &'static str,
}

/// The class column of the tables in platforms.md (R, T, W, P).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// R: retry with backoff.
    Transient,
    /// T: refresh the token and retry once.
    TokenInvalid,
    /// W: rate limited; wait this long at least.
    RateLimited(Duration),
    /// P: permanent.
    Permanent,
}

impl CodeClass {
    pub fn outcome(self) -> Outcome {
        match self {
            CodeClass::Transient => Outcome::Retry { after: None },
            CodeClass::TokenInvalid => Outcome::RefreshToken,
            CodeClass::RateLimited(wait) => Outcome::RateLimited { wait },
            CodeClass::Permanent => Outcome::Permanent,
        }
    }
}

/// Look a code up in a table.
pub fn lookup(table: &'static [CodeInfo], code: i64) -> Option<&'static CodeInfo> {
    table.iter().find(|c| c.code == code)
}

/// The result of sending one payload once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub outcome: Outcome,
    /// HTTP status, when an answer arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The platform's error code (`errcode`, `code`), when it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    /// The platform's own message (`errmsg`, `msg`), or the transport error.
    /// Never contains a secret or token.
    pub message: String,
    /// What the code means and what to do about it, when the code is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// The platform's id for the sent message (Feishu `message_id`, WeChat
    /// `msgid`, DingTalk `task_id` / `processQueryKey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// What a later update of this message needs besides its id, when the
    /// platform hands out more (WeCom's one-shot `response_code`). Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_token: Option<String>,
    /// Recipients the platform did not take although the request as a whole
    /// succeeded (partial failure), each with its own outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_recipients: Vec<RecipientFailure>,
}

impl Report {
    pub fn delivered() -> Self {
        Report {
            outcome: Outcome::Delivered,
            status: Some(200),
            code: None,
            message: "ok".into(),
            hint: None,
            platform_message_id: None,
            update_token: None,
            failed_recipients: Vec::new(),
        }
    }

    pub fn new(outcome: Outcome, message: impl Into<String>) -> Self {
        Report {
            outcome,
            status: None,
            code: None,
            message: message.into(),
            hint: None,
            platform_message_id: None,
            update_token: None,
            failed_recipients: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_code(mut self, code: Code) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Build a report from a known-code table entry, or from `unknown` when the
    /// code is not in the table.
    pub fn from_code(
        table: &'static [CodeInfo],
        code: i64,
        message: &str,
        status: u16,
        unknown: CodeClass,
    ) -> Self {
        let (class, hint) = match lookup(table, code) {
            Some(info) => (
                info.class,
                Some(format!("{}; {}", info.meaning, info.action)),
            ),
            None => (unknown, None),
        };
        let mut r = Report::new(class.outcome(), message)
            .with_status(status)
            .with_code(Code::Int(code));
        r.hint = hint;
        r
    }

    /// Whether the request succeeded for everyone.
    pub fn is_complete_success(&self) -> bool {
        self.outcome.is_delivered() && self.failed_recipients.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome.label())?;
        if let Some(s) = self.status {
            write!(f, " (HTTP {s}")?;
            if let Some(c) = &self.code {
                write!(f, ", code {c}")?;
            }
            write!(f, ")")?;
        } else if let Some(c) = &self.code {
            write!(f, " (code {c})")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, " -- {h}")?;
        }
        Ok(())
    }
}

/// A recipient that failed inside a partly successful request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecipientFailure {
    pub recipient: String,
    pub outcome: Outcome,
    pub reason: String,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64(v.max(0.0)))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let v = Option::<f64>::deserialize(d)?;
        Ok(v.map(|v| Duration::from_secs_f64(v.max(0.0))))
    }
}
