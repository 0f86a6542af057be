//! The messages the mock's platforms took, as the platforms keep them: each
//! with its platform id, its content and every revision, whether and when it
//! was recalled, and who read it. Updates and recalls act on these; tests
//! read them over `/_mock/messages`.

use std::collections::HashMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::MockPlatform;

/// One content a message had, from `at_ms` on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    pub at_ms: i64,
    pub content: Value,
}

/// A message a platform took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    pub platform: MockPlatform,
    /// The platform's id for it (`om_...`, a WeCom `msgid`, a DingTalk
    /// `processQueryKey` or card `outTrackId`).
    pub message_id: String,
    /// The sender, as the request log names it (`feishu:app:{app_id}`).
    pub target: String,
    /// Who it went to (open ids, chat ids, user ids), as the request named them.
    pub recipients: Vec<String>,
    pub sent_at_ms: i64,
    /// The first content, then each update's, oldest first; never empty.
    pub revisions: Vec<Revision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recalled_at_ms: Option<i64>,
    /// Users who read it (platforms with read receipts), with when.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_by: Vec<(String, i64)>,
    /// Platform-specific facts an update or a click needs (WeCom's
    /// `response_code`s still unused, a DingTalk card's callback route key).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub extra: HashMap<String, Value>,
}

impl SentMessage {
    pub fn new(
        platform: MockPlatform,
        message_id: impl Into<String>,
        target: impl Into<String>,
        recipients: Vec<String>,
        content: Value,
        at_ms: i64,
    ) -> Self {
        SentMessage {
            platform,
            message_id: message_id.into(),
            target: target.into(),
            recipients,
            sent_at_ms: at_ms,
            revisions: vec![Revision { at_ms, content }],
            recalled_at_ms: None,
            read_by: Vec::new(),
            extra: HashMap::new(),
        }
    }

    /// The content people see now.
    pub fn current(&self) -> &Value {
        &self.revisions.last().expect("never empty").content
    }
}

/// Why an update or recall was refused, for the platform handler to turn into
/// its own error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentError {
    /// No such message (or another app's).
    NotFound,
    /// Already recalled.
    Recalled,
    /// Older than the platform's window for the operation.
    PastWindow,
}

/// Every message taken, by platform id; reset clears it.
#[derive(Debug, Default)]
pub struct SentStore {
    by_id: Mutex<HashMap<String, SentMessage>>,
    order: Mutex<Vec<String>>,
}

impl SentStore {
    pub fn insert(&self, msg: SentMessage) {
        let id = msg.message_id.clone();
        if self.by_id.lock().insert(id.clone(), msg).is_none() {
            self.order.lock().push(id);
        }
    }

    pub fn get(&self, message_id: &str) -> Option<SentMessage> {
        self.by_id.lock().get(message_id).cloned()
    }

    /// Every message, oldest first, optionally only one platform's or one
    /// sender's.
    pub fn list(&self, platform: Option<MockPlatform>, target: Option<&str>) -> Vec<SentMessage> {
        let by_id = self.by_id.lock();
        self.order
            .lock()
            .iter()
            .filter_map(|id| by_id.get(id))
            .filter(|m| platform.is_none_or(|p| m.platform == p))
            .filter(|m| target.is_none_or(|t| m.target == t))
            .cloned()
            .collect()
    }

    /// Apply `f` to a live message of `target` sent within `window_ms` of `now_ms`.
    pub fn modify<R>(
        &self,
        message_id: &str,
        target: &str,
        now_ms: i64,
        window_ms: Option<i64>,
        f: impl FnOnce(&mut SentMessage) -> R,
    ) -> Result<R, SentError> {
        let mut by_id = self.by_id.lock();
        let m = by_id
            .get_mut(message_id)
            .filter(|m| m.target == target)
            .ok_or(SentError::NotFound)?;
        if m.recalled_at_ms.is_some() {
            return Err(SentError::Recalled);
        }
        if window_ms.is_some_and(|w| now_ms - m.sent_at_ms > w) {
            return Err(SentError::PastWindow);
        }
        Ok(f(m))
    }

    /// Replace the content (an update), within the window.
    pub fn update(
        &self,
        message_id: &str,
        target: &str,
        content: Value,
        now_ms: i64,
        window_ms: Option<i64>,
    ) -> Result<(), SentError> {
        self.modify(message_id, target, now_ms, window_ms, |m| {
            m.revisions.push(Revision {
                at_ms: now_ms,
                content,
            })
        })
    }

    /// Mark it recalled, within the window.
    pub fn recall(
        &self,
        message_id: &str,
        target: &str,
        now_ms: i64,
        window_ms: Option<i64>,
    ) -> Result<(), SentError> {
        self.modify(message_id, target, now_ms, window_ms, |m| {
            m.recalled_at_ms = Some(now_ms)
        })
    }

    /// Record that `user` read it (once per user).
    pub fn mark_read(&self, message_id: &str, user: &str, now_ms: i64) -> bool {
        let mut by_id = self.by_id.lock();
        let Some(m) = by_id.get_mut(message_id) else {
            return false;
        };
        if !m.read_by.iter().any(|(u, _)| u == user) {
            m.read_by.push((user.to_string(), now_ms));
        }
        true
    }

    pub fn clear(&self) {
        self.by_id.lock().clear();
        self.order.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store_with_one() -> SentStore {
        let s = SentStore::default();
        s.insert(SentMessage::new(
            MockPlatform::Feishu,
            "om_1",
            "feishu:app:a",
            vec!["ou_1".into()],
            json!({"v": 1}),
            1_000,
        ));
        s
    }

    #[test]
    fn updates_keep_every_revision_and_respect_the_window() {
        let s = store_with_one();
        s.update("om_1", "feishu:app:a", json!({"v": 2}), 2_000, Some(5_000))
            .unwrap();
        assert_eq!(
            s.update("om_1", "feishu:app:a", json!({"v": 3}), 6_001, Some(5_000)),
            Err(SentError::PastWindow)
        );
        let m = s.get("om_1").unwrap();
        assert_eq!(m.revisions.len(), 2);
        assert_eq!(m.current(), &json!({"v": 2}));
    }

    #[test]
    fn another_senders_message_is_not_found_and_a_recalled_one_stays_recalled() {
        let s = store_with_one();
        assert_eq!(
            s.recall("om_1", "feishu:app:b", 1_000, None),
            Err(SentError::NotFound)
        );
        s.recall("om_1", "feishu:app:a", 1_500, None).unwrap();
        assert_eq!(
            s.update("om_1", "feishu:app:a", json!({}), 1_600, None),
            Err(SentError::Recalled)
        );
        assert_eq!(s.get("om_1").unwrap().recalled_at_ms, Some(1_500));
    }
}
