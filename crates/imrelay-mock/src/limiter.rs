//! Sliding-window rate limits with the platforms' penalty blocks (a DingTalk robot
//! that sends a 21st message within a minute is blocked for 10 minutes).

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// At most `count` accepted requests in any `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub count: u32,
    pub window_ms: i64,
}

impl Window {
    pub const fn per_minute(count: u32) -> Self {
        Window {
            count,
            window_ms: 60_000,
        }
    }
    pub const fn per_second(count: u32) -> Self {
        Window {
            count,
            window_ms: 1_000,
        }
    }
}

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitCheck {
    Ok,
    /// Over a window's limit now (and, if the platform penalises it, blocked from now).
    Exceeded,
    /// Still serving a penalty block.
    Blocked {
        until_ms: i64,
    },
}

#[derive(Debug, Default)]
struct KeyState {
    accepted: VecDeque<i64>,
    blocked_until: i64,
}

#[derive(Debug, Default)]
pub struct Limiter {
    keys: Mutex<HashMap<String, KeyState>>,
}

impl Limiter {
    /// Check and, if allowed, count one request for `key` at `now_ms`. Windows
    /// and `block_ms` are already scaled by the caller ([`crate::MockState::limit`]
    /// does it).
    pub fn check(&self, key: &str, now_ms: i64, windows: &[Window], block_ms: i64) -> LimitCheck {
        let mut keys = self.keys.lock();
        let st = keys.entry(key.to_string()).or_default();
        if now_ms < st.blocked_until {
            return LimitCheck::Blocked {
                until_ms: st.blocked_until,
            };
        }
        let longest = windows.iter().map(|w| w.window_ms).max().unwrap_or(0);
        while st.accepted.front().is_some_and(|&t| t <= now_ms - longest) {
            st.accepted.pop_front();
        }
        for w in windows {
            let in_window = st
                .accepted
                .iter()
                .rev()
                .take_while(|&&t| t > now_ms - w.window_ms)
                .count();
            if in_window >= w.count as usize {
                if block_ms > 0 {
                    st.blocked_until = now_ms + block_ms;
                }
                return LimitCheck::Exceeded;
            }
        }
        st.accepted.push_back(now_ms);
        LimitCheck::Ok
    }

    pub fn clear(&self) {
        self.keys.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_per_minute_then_blocked_ten_minutes() {
        let l = Limiter::default();
        let w = [Window::per_minute(20)];
        for i in 0..20 {
            assert_eq!(l.check("r", i * 1000, &w, 600_000), LimitCheck::Ok);
        }
        assert_eq!(l.check("r", 20_000, &w, 600_000), LimitCheck::Exceeded);
        // A minute later the window is clear, but the penalty still holds.
        assert!(matches!(
            l.check("r", 90_000, &w, 600_000),
            LimitCheck::Blocked { .. }
        ));
        assert_eq!(l.check("r", 620_001, &w, 600_000), LimitCheck::Ok);
    }

    #[test]
    fn sliding_not_fixed_window() {
        let l = Limiter::default();
        let w = [Window::per_second(5)];
        for t in [0, 100, 200, 900, 950] {
            assert_eq!(l.check("b", t, &w, 0), LimitCheck::Ok);
        }
        // A fixed one-second bucket would reset at 1000; the sliding window waits
        // until the request at 0 is a full second old.
        assert_eq!(l.check("b", 999, &w, 0), LimitCheck::Exceeded);
        assert_eq!(l.check("b", 1001, &w, 0), LimitCheck::Ok);
        assert_eq!(l.check("b", 1050, &w, 0), LimitCheck::Exceeded);
    }
}
