//! Access tokens the mock issues, with lifetimes, so clients see them expire.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::config::MockPlatform;

#[derive(Debug, Clone)]
struct Issued {
    platform: MockPlatform,
    app_id: String,
    expires_at_ms: i64,
}

/// The verdict on a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid { app_id: String },
    Expired,
    Unknown,
}

#[derive(Debug, Default)]
pub struct TokenStore {
    tokens: Mutex<HashMap<String, Issued>>,
    // The newest token per (platform, app), for platforms that hand out the same
    // token while it is valid (WeChat stable_token, Feishu, DingTalk).
    current: Mutex<HashMap<(MockPlatform, String), String>>,
}

impl TokenStore {
    /// Issue a new token valid for `lifetime_secs` from `now_ms`.
    pub fn issue(
        &self,
        platform: MockPlatform,
        app_id: &str,
        now_ms: i64,
        lifetime_secs: u64,
    ) -> (String, u64) {
        let token = format!("{}-{}", platform.as_str(), uuid::Uuid::new_v4().simple());
        self.tokens.lock().insert(
            token.clone(),
            Issued {
                platform,
                app_id: app_id.to_string(),
                expires_at_ms: now_ms + (lifetime_secs as i64) * 1000,
            },
        );
        self.current
            .lock()
            .insert((platform, app_id.to_string()), token.clone());
        (token, lifetime_secs)
    }

    /// The current token of an app and its remaining seconds, if still valid.
    pub fn current(
        &self,
        platform: MockPlatform,
        app_id: &str,
        now_ms: i64,
    ) -> Option<(String, u64)> {
        let token = self
            .current
            .lock()
            .get(&(platform, app_id.to_string()))
            .cloned()?;
        let issued = self.tokens.lock().get(&token).cloned()?;
        (issued.expires_at_ms > now_ms).then(|| {
            (
                token,
                ((issued.expires_at_ms - now_ms) / 1000).max(1) as u64,
            )
        })
    }

    /// Invalidate every token of an app but `keep` (WeChat `/cgi-bin/token` semantics).
    pub fn revoke_others(&self, platform: MockPlatform, app_id: &str, keep: &str) {
        self.tokens
            .lock()
            .retain(|t, i| t == keep || i.platform != platform || i.app_id != app_id);
    }

    pub fn check(&self, platform: MockPlatform, token: &str, now_ms: i64) -> TokenCheck {
        match self.tokens.lock().get(token) {
            Some(i) if i.platform != platform => TokenCheck::Unknown,
            Some(i) if i.expires_at_ms <= now_ms => TokenCheck::Expired,
            Some(i) => TokenCheck::Valid {
                app_id: i.app_id.clone(),
            },
            None => TokenCheck::Unknown,
        }
    }

    /// Make every issued token (optionally of one platform) expired now.
    pub fn expire_all(&self, platform: Option<MockPlatform>, now_ms: i64) -> usize {
        let mut n = 0;
        for i in self.tokens.lock().values_mut() {
            if platform.is_none_or(|p| p == i.platform) && i.expires_at_ms > now_ms {
                i.expires_at_ms = now_ms;
                n += 1;
            }
        }
        n
    }

    pub fn clear(&self) {
        self.tokens.lock().clear();
        self.current.lock().clear();
    }
}
