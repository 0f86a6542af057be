//! Any JSON payload, mapped by JSON pointers (RFC 6901) configured per
//! source: title, text, labels, status and thread.
//!
//! ```toml
//! [sources.billing]
//! type = "json"
//! channels = ["team"]
//! title = "/alert/name"
//! text = "/alert/description"
//! labels = { severity = "/level", host = "/host" }
//! status = "/state"
//! resolved_values = ["OK", "resolved"]
//! thread = "/id"
//! ```

use std::collections::BTreeMap;

use serde_json::Value;

use super::{text_at, Event, Parsed, PayloadError, Status};

/// The pointers of a `type = "json"` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub title: String,
    pub text: Option<String>,
    /// Label name → pointer.
    pub labels: BTreeMap<String, String>,
    pub status: Option<String>,
    /// Values of `status` that mean resolved (compared ignoring case); any
    /// other value fires.
    pub resolved_values: Vec<String>,
    pub thread: Option<String>,
}

/// Whether `p` is a JSON pointer (empty, or starting with `/`).
pub fn valid_pointer(p: &str) -> bool {
    p.starts_with('/')
}

pub fn parse(m: &Mapping, body: &Value) -> Result<Parsed, PayloadError> {
    let title = text_at(body, &m.title).ok_or_else(|| missing(&m.title, "title"))?;
    let text = match &m.text {
        Some(p) => text_at(body, p).ok_or_else(|| missing(p, "text"))?,
        None => String::new(),
    };
    let status = match &m.status {
        Some(p) => {
            let v = text_at(body, p).ok_or_else(|| missing(p, "status"))?;
            if m.resolved_values.iter().any(|r| r.eq_ignore_ascii_case(&v)) {
                Status::Resolved
            } else {
                Status::Firing
            }
        }
        None => Status::Firing,
    };
    let mut event = Event::new(status, title, text);
    for (name, p) in &m.labels {
        if let Some(v) = text_at(body, p) {
            if name == "severity" {
                event = event.with_severity(v);
            } else {
                event.label(name, v);
            }
        }
    }
    if let Some(p) = &m.thread {
        event.thread = Some(text_at(body, p).ok_or_else(|| missing(p, "thread"))?);
    }
    Ok(Parsed::Events(vec![event]))
}

/// The payload lacks what the mapping points at: the field is the pointer.
fn missing(pointer: &str, key: &str) -> PayloadError {
    PayloadError::new(
        pointer,
        format!("nothing at `{pointer}` (the source's `{key}` points there); send it or change the mapping"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping() -> Mapping {
        Mapping {
            title: "/alert/name".into(),
            text: Some("/alert/description".into()),
            labels: [("severity", "/level"), ("host", "/host")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status: Some("/state".into()),
            resolved_values: vec!["OK".into(), "resolved".into()],
            thread: Some("/id".into()),
        }
    }

    #[test]
    fn pointers_map_title_text_labels_status_and_thread() {
        let body = json!({"id": 42, "state": "ALARM", "level": "critical", "host": "pay-1",
            "alert": {"name": "Payment errors", "description": "5xx above 2%"}});
        let Parsed::Events(ev) = parse(&mapping(), &body).unwrap() else {
            panic!()
        };
        let e = &ev[0];
        assert_eq!(
            (e.status, e.title.as_str(), e.text.as_str()),
            (Status::Firing, "Payment errors", "5xx above 2%")
        );
        assert_eq!(e.thread.as_deref(), Some("42"));
        assert_eq!(e.severity.as_deref(), Some("critical"));
        assert_eq!(e.labels["host"], "pay-1");
        let ok = json!({"id": 42, "state": "ok", "alert": {"name": "Payment errors", "description": "back"}});
        let Parsed::Events(ev) = parse(&mapping(), &ok).unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].status, Status::Resolved);
        assert!(!ev[0].labels.contains_key("host"));
    }

    #[test]
    fn a_missing_field_is_named_by_its_pointer() {
        let e = parse(&mapping(), &json!({"alert": {"description": "x"}})).unwrap_err();
        assert_eq!(e.field, "/alert/name");
        assert!(e.message.contains("`title`"), "{}", e.message);
    }
}
