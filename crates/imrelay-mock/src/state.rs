//! Shared state of a running mock.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::config::{AppConfig, MockConfig, MockPlatform, RobotConfig};
use crate::dedup::DedupStore;
use crate::faults::Faults;
use crate::limiter::{LimitCheck, Limiter, Window};
use crate::log::{LogEntry, RequestLog};
use crate::sent::SentStore;
use crate::tokens::TokenStore;

/// Everything the platform handlers share.
#[derive(Debug)]
pub struct MockState {
    config: RwLock<MockConfig>,
    pub log: RequestLog,
    pub faults: Faults,
    pub tokens: TokenStore,
    pub limiter: Limiter,
    /// Per-platform idempotency memories (uuid, client_msg_id, ...); reset clears them.
    pub dedup: DedupStore,
    /// The messages the platforms took, for updates, recalls and clicks.
    pub sent: SentStore,
    /// DingTalk card callback URLs by app and `callbackRouteKey`.
    pub dingtalk_card_routes: crate::platform::dingtalk_card::CardRoutes,
    // Added to the wall clock: `POST /_mock/clock {"advance_ms": N}` moves the
    // mock's time forward (token expiry, rate windows) without waiting.
    clock_offset_ms: AtomicI64,
}

impl MockState {
    pub fn new(config: MockConfig) -> Self {
        MockState {
            log: RequestLog::new(config.log_capacity, !config.log_bodies_off),
            config: RwLock::new(config),
            faults: Faults::default(),
            tokens: TokenStore::default(),
            limiter: Limiter::default(),
            dedup: DedupStore::default(),
            sent: SentStore::default(),
            dingtalk_card_routes: Default::default(),
            clock_offset_ms: AtomicI64::new(0),
        }
    }

    /// The mock's notion of now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        wall + self.clock_offset_ms.load(Ordering::Relaxed)
    }

    /// Log a request, stamped with the mock's clock (which `/_mock/clock` moves).
    pub fn record(&self, mut entry: LogEntry) -> u64 {
        entry.at_ms = self.now_ms();
        self.log.record(entry)
    }

    pub fn advance_clock(&self, ms: i64) {
        self.clock_offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub fn config(&self) -> MockConfig {
        self.config.read().clone()
    }

    pub fn accept_unknown(&self) -> bool {
        self.config.read().accept_unknown
    }

    pub fn robot(&self, platform: MockPlatform, token: &str) -> Option<RobotConfig> {
        self.config
            .read()
            .robots
            .iter()
            .find(|r| r.platform == platform && r.token == token)
            .cloned()
    }

    pub fn app(&self, platform: MockPlatform, app_id: &str) -> Option<AppConfig> {
        self.config
            .read()
            .apps
            .iter()
            .find(|a| a.platform == platform && a.app_id == app_id)
            .cloned()
    }

    /// Add or replace a robot (same platform and token).
    pub fn add_robot(&self, robot: RobotConfig) {
        let mut c = self.config.write();
        c.robots
            .retain(|r| !(r.platform == robot.platform && r.token == robot.token));
        c.robots.push(robot);
    }

    /// Add or replace an app (same platform and app id).
    pub fn add_app(&self, app: AppConfig) {
        let mut c = self.config.write();
        c.apps
            .retain(|a| !(a.platform == app.platform && a.app_id == app.app_id));
        c.apps.push(app);
    }

    /// Token lifetime for an app (its own setting, else the global one).
    pub fn token_lifetime(&self, app: &AppConfig) -> u64 {
        app.token_lifetime_secs
            .unwrap_or_else(|| self.config.read().token_lifetime_secs)
    }

    /// Apply rate-limit windows (scaled by `window_scale`) to `key` now.
    pub fn limit(&self, key: &str, windows: &[Window], block_ms: i64) -> LimitCheck {
        let scale = self.config.read().window_scale;
        let scaled: Vec<Window> = windows
            .iter()
            .map(|w| Window {
                count: w.count,
                window_ms: ((w.window_ms as f64) * scale).max(1.0) as i64,
            })
            .collect();
        let block = ((block_ms as f64) * scale) as i64;
        self.limiter.check(key, self.now_ms(), &scaled, block)
    }

    /// Forget the log, faults, tokens, limiter, dedup state and sent messages (not the robots
    /// and apps).
    pub fn reset(&self) {
        self.log.clear();
        self.faults.clear();
        self.tokens.clear();
        self.limiter.clear();
        self.dedup.clear();
        self.sent.clear();
        self.clock_offset_ms.store(0, Ordering::Relaxed);
    }
}
