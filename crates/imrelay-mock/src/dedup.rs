//! The platforms' idempotency memories (Feishu `uuid`, WeChat `client_msg_id`,
//! WeCom `enable_duplicate_check`, DingTalk work-notice dedup), kept on
//! [`crate::MockState`] so `POST /_mock/reset` forgets them with everything else.

use std::collections::HashMap;

use parking_lot::Mutex;

/// Keys the mock has seen, each with the value first recorded for it and until
/// when it counts. Windows are the platforms' own, never scaled like rate limits.
#[derive(Debug, Default)]
pub struct DedupStore {
    keys: Mutex<HashMap<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    value: String,
    at_ms: i64,
    until_ms: i64,
}

impl DedupStore {
    /// The value recorded for `key` less than `window_ms` before `now_ms`, or
    /// `None` after recording `value` for it now. A repeat does not extend the
    /// window: it runs from the first sighting.
    pub fn first(&self, key: &str, value: &str, window_ms: i64, now_ms: i64) -> Option<String> {
        let mut keys = self.keys.lock();
        if let Some(e) = keys.get(key) {
            if now_ms - e.at_ms < window_ms {
                return Some(e.value.clone());
            }
        }
        // Forget expired keys now and then so a long benchmark does not grow
        // the map without bound.
        if keys.len() >= 4096 && keys.len().is_power_of_two() {
            keys.retain(|_, e| e.until_ms > now_ms);
        }
        keys.insert(
            key.to_string(),
            Entry {
                value: value.to_string(),
                at_ms: now_ms,
                until_ms: now_ms + window_ms,
            },
        );
        None
    }

    /// Whether `key` was seen less than `window_ms` before `now_ms`; if not, it
    /// is recorded now.
    pub fn seen(&self, key: &str, window_ms: i64, now_ms: i64) -> bool {
        self.first(key, "", window_ms, now_ms).is_some()
    }

    /// Forget every key.
    pub fn clear(&self) {
        self.keys.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_within_the_window_only() {
        let d = DedupStore::default();
        assert_eq!(d.first("a:u", "om_1", 1000, 0), None);
        assert_eq!(d.first("a:u", "om_2", 1000, 999).as_deref(), Some("om_1"));
        assert_eq!(d.first("b:u", "om_3", 1000, 999), None);
        // The window runs from the first sighting, not the last repeat.
        assert_eq!(d.first("a:u", "om_4", 1000, 1000), None);
        assert_eq!(d.first("a:u", "om_5", 1000, 1500).as_deref(), Some("om_4"));
    }

    #[test]
    fn seen_then_cleared() {
        let d = DedupStore::default();
        assert!(!d.seen("k", 60_000, 0));
        assert!(d.seen("k", 60_000, 59_999));
        d.clear();
        assert!(!d.seen("k", 60_000, 59_999));
    }
}
