//! Circuit breaker per destination: closed (sending), open (paused after
//! repeated transient failures; messages wait, they are not failed) and
//! half-open (one probe decides). Times are milliseconds from the dispatcher's
//! clock.

use serde::Serialize;

use crate::channels::BreakerConfig;

/// The breaker's state, as shown in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    /// Paused until `until` (ms).
    Open {
        until: i64,
    },
    /// One probe may go (or is in flight).
    HalfOpen {
        probing: bool,
    },
}

impl BreakerState {
    pub fn label(&self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen { .. } => "half_open",
        }
    }
}

/// A circuit breaker.
#[derive(Debug, Clone)]
pub struct Breaker {
    cfg: BreakerConfig,
    state: BreakerState,
    consecutive_failures: u32,
    /// Consecutive openings without a success in between (each doubles the
    /// open time).
    reopenings: u32,
    /// Times it opened, ever.
    pub opened_total: u64,
    /// Recent share of failed requests (exponentially weighted), for widening
    /// retry delays.
    pub error_rate: f64,
}

impl Breaker {
    pub fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: BreakerState::Closed,
            consecutive_failures: 0,
            reopenings: 0,
            opened_total: 0,
            error_rate: 0.0,
        }
    }

    /// Apply a reloaded config (state is kept).
    pub fn set_config(&mut self, cfg: BreakerConfig) {
        self.cfg = cfg;
    }

    /// The state at `now` (an open breaker whose time is up reads half-open).
    pub fn state(&self, now: i64) -> BreakerState {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                BreakerState::HalfOpen { probing: false }
            }
            s => s,
        }
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How many requests may start now: unlimited when closed, one probe when
    /// half-open and none in flight, else none.
    pub fn available(&self, now: i64) -> u32 {
        match self.state(now) {
            BreakerState::Closed => u32::MAX,
            BreakerState::HalfOpen { probing: false } => 1,
            _ => 0,
        }
    }

    /// When sending may resume, if it is paused.
    pub fn paused_until(&self, now: i64) -> Option<i64> {
        match self.state(now) {
            BreakerState::Open { until } => Some(until),
            _ => None,
        }
    }

    /// A request is starting (call only when [`Breaker::available`] > 0).
    pub fn on_start(&mut self, now: i64) {
        if let BreakerState::HalfOpen { probing: false } = self.state(now) {
            self.state = BreakerState::HalfOpen { probing: true };
        }
    }

    /// The destination answered (delivered, or refused the message itself,
    /// or rate limited): it is up.
    pub fn on_success(&mut self) {
        self.error_rate *= 0.8;
        self.consecutive_failures = 0;
        self.reopenings = 0;
        if self.state != BreakerState::Closed {
            tracing::info!("circuit breaker closed");
        }
        self.state = BreakerState::Closed;
    }

    /// A transient failure (5xx, timeout, connection error, "system busy").
    pub fn on_failure(&mut self, now: i64) {
        self.error_rate = self.error_rate * 0.8 + 0.2;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let trip = match self.state(now) {
            BreakerState::HalfOpen { .. } => true,
            BreakerState::Closed => self.consecutive_failures >= self.cfg.failure_threshold.max(1),
            BreakerState::Open { .. } => false,
        };
        if trip {
            let factor = 2u32.saturating_pow(self.reopenings.min(16));
            let open_for = self
                .cfg
                .open_for
                .saturating_mul(factor)
                .min(self.cfg.max_open_for.max(self.cfg.open_for));
            self.state = BreakerState::Open {
                until: now + open_for.as_millis() as i64,
            };
            self.reopenings = self.reopenings.saturating_add(1);
            self.opened_total += 1;
            tracing::warn!(
                open_for_ms = open_for.as_millis() as u64,
                "circuit breaker opened"
            );
        }
    }

    /// A request ended without telling anything about the destination (it was
    /// cancelled): a probe slot is given back.
    pub fn on_abandon(&mut self) {
        if let BreakerState::HalfOpen { probing: true } = self.state {
            self.state = BreakerState::HalfOpen { probing: false };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            failure_threshold: 3,
            open_for: Duration::from_millis(100),
            max_open_for: Duration::from_millis(350),
        }
    }

    #[test]
    fn opens_after_threshold_and_probes_once() {
        let mut b = Breaker::new(cfg());
        b.on_failure(0);
        b.on_failure(1);
        assert_eq!(b.state(1), BreakerState::Closed);
        b.on_failure(2);
        assert_eq!(b.state(2), BreakerState::Open { until: 102 });
        assert_eq!(b.available(50), 0);
        assert_eq!(b.paused_until(50), Some(102));
        // Time up: one probe.
        assert_eq!(b.available(102), 1);
        b.on_start(102);
        assert_eq!(b.available(103), 0, "only one probe at a time");
        b.on_success();
        assert_eq!(b.state(103), BreakerState::Closed);
        assert_eq!(b.available(103), u32::MAX);
        assert_eq!(b.opened_total, 1);
    }

    #[test]
    fn failed_probe_reopens_for_longer_up_to_max() {
        let mut b = Breaker::new(cfg());
        for t in 0..3 {
            b.on_failure(t);
        }
        b.on_start(200);
        b.on_failure(200);
        assert_eq!(b.state(200), BreakerState::Open { until: 400 });
        b.on_start(400);
        b.on_failure(400);
        assert_eq!(
            b.state(400),
            BreakerState::Open { until: 750 },
            "400ms capped at 350"
        );
        b.on_start(750);
        b.on_success();
        for t in 0..3 {
            b.on_failure(1000 + t);
        }
        assert_eq!(
            b.state(1002),
            BreakerState::Open { until: 1102 },
            "a success resets the doubling"
        );
    }

    #[test]
    fn successes_reset_the_count_and_error_rate_decays() {
        let mut b = Breaker::new(cfg());
        b.on_failure(0);
        b.on_failure(0);
        b.on_success();
        b.on_failure(0);
        b.on_failure(0);
        assert_eq!(b.state(0), BreakerState::Closed);
        assert!(b.error_rate > 0.3);
        for _ in 0..20 {
            b.on_success();
        }
        assert!(b.error_rate < 0.01);
    }

    #[test]
    fn abandoned_probe_frees_the_slot() {
        let mut b = Breaker::new(cfg());
        for t in 0..3 {
            b.on_failure(t);
        }
        b.on_start(500);
        b.on_abandon();
        assert_eq!(b.available(500), 1);
    }
}
