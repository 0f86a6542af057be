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
    /// Urgent pushes about it (Feishu 加急) or that it is (a DingTalk DING),
    /// oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urgent: Vec<UrgentPush>,
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
            urgent: Vec::new(),
            extra: HashMap::new(),
        }
    }

    /// The content people see now.
    pub fn current(&self) -> &Value {
        &self.revisions.last().expect("never empty").content
    }
}

/// One urgent push the platform made: `users` got a `kind` (`app`, `sms`,
/// `phone`) push at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrgentPush {
    pub kind: String,
    pub users: Vec<String>,
    pub at_ms: i64,
}

impl UrgentPush {
    /// Whether it draws on the paid quota (SMS and phone do).
    pub fn paid(&self) -> bool {
        self.kind != "app"
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

    /// Record an urgent push about a live message of `target`.
    pub fn push_urgent(
        &self,
        message_id: &str,
        target: &str,
        push: UrgentPush,
    ) -> Result<(), SentError> {
        let at = push.at_ms;
        self.modify(message_id, target, at, None, |m| m.urgent.push(push))
    }

    /// The paid (SMS, phone) pushes `target` made so far, counted per user.
    pub fn paid_pushes(&self, target: &str) -> u64 {
        self.by_id
            .lock()
            .values()
            .filter(|m| m.target == target)
            .flat_map(|m| m.urgent.iter())
            .filter(|p| p.paid())
            .map(|p| p.users.len() as u64)
            .sum()
    }

    /// Urgent pushes `user` got about messages they have not read.
    pub fn unread_urgent(&self, user: &str) -> usize {
        self.by_id
            .lock()
            .values()
            .filter(|m| !m.read_by.iter().any(|(u, _)| u == user))
            .flat_map(|m| m.urgent.iter())
            .filter(|p| p.users.iter().any(|u| u == user))
            .count()
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
    fn urgent_pushes_are_kept_counted_and_refused_on_a_recalled_message() {
        let s = store_with_one();
        let push = |kind: &str, users: &[&str], at_ms| UrgentPush {
            kind: kind.into(),
            users: users.iter().map(|u| u.to_string()).collect(),
            at_ms,
        };
        s.push_urgent("om_1", "feishu:app:a", push("phone", &["ou_1"], 1_100))
            .unwrap();
        s.push_urgent(
            "om_1",
            "feishu:app:a",
            push("app", &["ou_1", "ou_2"], 1_200),
        )
        .unwrap();
        assert_eq!(s.paid_pushes("feishu:app:a"), 1);
        assert_eq!(s.paid_pushes("feishu:app:b"), 0);
        assert_eq!(s.unread_urgent("ou_1"), 2);
        s.mark_read("om_1", "ou_1", 1_300);
        assert_eq!(s.unread_urgent("ou_1"), 0);
        assert_eq!(s.get("om_1").unwrap().urgent[0].kind, "phone");
        s.recall("om_1", "feishu:app:a", 1_400, None).unwrap();
        assert_eq!(
            s.push_urgent("om_1", "feishu:app:a", push("app", &["ou_1"], 1_500)),
            Err(SentError::Recalled)
        );
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
