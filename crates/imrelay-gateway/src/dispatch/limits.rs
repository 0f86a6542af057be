//! Per-destination rate limiter honouring several quotas at once (Feishu bots:
//! 5/s and 100/min), so imrelay itself never draws a platform penalty.
//!
//! # Why a sliding log of *end* times
//! The platform counts requests by arrival time, which lies somewhere between
//! when we start a request and when its answer comes back. The limiter
//! therefore counts a request as occupying its window from its start until one
//! window after its *end*, and counts requests still in flight as occupying the
//! window now. Then no window of length `per` at the platform can hold more than
//! `count` arrivals: of any `count + 1` arrivals in such a window, the last to
//! start would have seen the other `count` either in flight or ended less than
//! `per` earlier, and would not have been allowed. A small margin covers clock
//! granularity.

use std::collections::VecDeque;
use std::time::Duration;

use imrelay_sdk::Quota;

pub use crate::domain::cluster::{window_ms, SharedAdmit, SharedLimiter, SharedPermit};

/// The limiter of one destination. Times are ms from the dispatcher's clock.
#[derive(Debug, Clone)]
pub struct Limiter {
    quotas: Vec<Quota>,
    /// End times of finished requests within the longest window, ascending.
    ends: VecDeque<i64>,
    in_flight: u32,
    /// Set when the platform said "rate limited, wait": nothing goes before.
    blocked_until: i64,
    /// Requests started, ever.
    pub started_total: u64,
}

impl Limiter {
    pub fn new(quotas: Vec<Quota>) -> Self {
        Limiter {
            quotas: quotas
                .into_iter()
                .filter(|q| q.count > 0 && !q.per.is_zero())
                .collect(),
            ends: VecDeque::new(),
            in_flight: 0,
            blocked_until: i64::MIN,
            started_total: 0,
        }
    }

    pub fn quotas(&self) -> &[Quota] {
        &self.quotas
    }

    /// Apply reloaded quotas (the request log is kept, so a reload cannot
    /// burst).
    pub fn set_quotas(&mut self, quotas: Vec<Quota>) {
        let q: Vec<Quota> = quotas
            .into_iter()
            .filter(|q| q.count > 0 && !q.per.is_zero())
            .collect();
        if q != self.quotas {
            self.quotas = q;
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    pub fn blocked_until(&self) -> Option<i64> {
        (self.blocked_until > i64::MIN).then_some(self.blocked_until)
    }

    fn prune(&mut self, now: i64) {
        let longest = self.quotas.iter().map(window_ms).max().unwrap_or(0);
        while let Some(&e) = self.ends.front() {
            if e + longest < now {
                self.ends.pop_front();
            } else {
                break;
            }
        }
    }

    /// Index in `ends` of the first end still inside the window of `q`.
    /// A binary search: at thousands of requests a second a window holds
    /// thousands of ends, and this runs for every request.
    fn window_start(&self, q: &Quota, now: i64) -> usize {
        let from = now - window_ms(q);
        self.ends.partition_point(|&e| e < from)
    }

    /// Requests in the window of `q` at `now`.
    fn used(&self, q: &Quota, now: i64) -> u32 {
        let recent = (self.ends.len() - self.window_start(q, now)) as u32;
        recent + self.in_flight
    }

    /// How many requests may start now.
    pub fn available(&self, now: i64) -> u32 {
        if now < self.blocked_until {
            return 0;
        }
        self.quotas
            .iter()
            .map(|q| q.count.saturating_sub(self.used(q, now)))
            .min()
            .unwrap_or(u32::MAX)
    }

    /// The earliest time a request may start, if not now. `None` when waiting
    /// depends on in-flight requests finishing (the caller is woken then).
    pub fn next_free(&self, now: i64) -> Option<i64> {
        if now < self.blocked_until {
            return Some(self.blocked_until);
        }
        let mut at = now;
        for q in &self.quotas {
            let used = self.used(q, now);
            if used < q.count {
                continue;
            }
            // The oldest counted end must leave the window: it is the
            // (used - count + 1)-th oldest of the recent ends.
            let excess = (used - q.count) as usize;
            match self.ends.get(self.window_start(q, now) + excess) {
                Some(&e) => at = at.max(e + window_ms(q) + 1),
                None => return None,
            }
        }
        (at > now).then_some(at)
    }

    /// Nothing in flight, no platform wait, and every request past its
    /// window: a fresh limiter would decide the same.
    pub fn is_idle(&self, now: i64) -> bool {
        let longest = self.quotas.iter().map(window_ms).max().unwrap_or(0);
        self.in_flight == 0
            && now >= self.blocked_until
            && self.ends.back().is_none_or(|&e| e + longest < now)
    }

    /// Start a request if allowed now.
    pub fn try_acquire(&mut self, now: i64) -> bool {
        self.prune(now);
        if self.available(now) == 0 {
            return false;
        }
        self.in_flight += 1;
        self.started_total += 1;
        true
    }

    /// A request started with [`Limiter::try_acquire`] ended at `end`.
    pub fn release(&mut self, end: i64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        // Keep ascending order (ends arrive almost in order).
        let pos = self
            .ends
            .iter()
            .rposition(|&e| e <= end)
            .map_or(0, |p| p + 1);
        self.ends.insert(pos, end);
    }

    /// A request was acquired but never sent: forget it.
    pub fn cancel(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// The platform said to wait: nothing starts before `until`.
    pub fn block_until(&mut self, until: i64) {
        self.blocked_until = self.blocked_until.max(until);
    }

    /// Requests that can go out within `span` from an empty start, per the
    /// tightest quota (for coalescing decisions).
    pub fn capacity_within(&self, span: Duration) -> f64 {
        self.quotas
            .iter()
            .map(|q| {
                // A burst of `count` at once, then `count` more each window that
                // starts within the span.
                let windows = (span.as_secs_f64() / q.per.as_secs_f64()).ceil().max(1.0);
                q.count as f64 * windows
            })
            .fold(f64::INFINITY, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dingtalk() -> Limiter {
        Limiter::new(vec![Quota::per_minute(20)])
    }

    #[test]
    fn twenty_per_minute_then_wait_for_the_oldest_to_leave() {
        let mut l = dingtalk();
        for i in 0..20 {
            assert!(l.try_acquire(i * 10), "request {i}");
            l.release(i * 10 + 5);
        }
        assert!(!l.try_acquire(1_000));
        assert_eq!(l.available(1_000), 0);
        // The first ended at 5; the window (60 s + 0.5% margin) must pass it.
        let free = l.next_free(1_000).unwrap();
        assert_eq!(free, 5 + 60_300 + 1);
        assert!(!l.try_acquire(free - 2));
        assert!(l.try_acquire(free));
    }

    #[test]
    fn in_flight_requests_count_and_block_until_they_end() {
        let mut l = Limiter::new(vec![Quota::per_second(2)]);
        assert!(l.try_acquire(0));
        assert!(l.try_acquire(0));
        assert!(
            !l.try_acquire(5_000),
            "still in flight, so still occupying the window"
        );
        assert_eq!(l.next_free(5_000), None);
        l.release(5_000);
        l.release(5_001);
        assert!(!l.try_acquire(5_500));
        assert!(l.try_acquire(6_010));
    }

    #[test]
    fn every_quota_is_honoured() {
        // Feishu bot: 5/s and 100/min.
        let mut l = Limiter::new(vec![Quota::per_second(5), Quota::per_minute(100)]);
        let mut t = 0;
        let mut sent = 0;
        while t < 60_000 {
            while l.try_acquire(t) {
                l.release(t);
                sent += 1;
            }
            t += 10;
        }
        assert_eq!(
            sent, 100,
            "the per-minute quota binds within the first minute"
        );
    }

    #[test]
    fn block_until_stops_everything() {
        let mut l = dingtalk();
        l.block_until(10_000);
        assert_eq!(l.available(9_999), 0);
        assert_eq!(l.next_free(0), Some(10_000));
        assert!(l.try_acquire(10_000));
    }

    #[test]
    fn capacity_within_a_delay() {
        let l = dingtalk();
        assert_eq!(l.capacity_within(Duration::from_secs(60)), 20.0);
        assert_eq!(l.capacity_within(Duration::from_secs(90)), 40.0);
        assert_eq!(l.capacity_within(Duration::from_secs(30)), 20.0);
        let f = Limiter::new(vec![Quota::per_second(5), Quota::per_minute(100)]);
        assert_eq!(f.capacity_within(Duration::from_secs(10)), 50.0);
    }

    proptest! {
        /// Whatever the timing of starts and ends, arrivals (anywhere between a
        /// request's start and end) never put more than `count` in any window.
        #[test]
        fn no_window_ever_exceeds_the_quota(
            steps in prop::collection::vec((0i64..400, 0i64..300, 0.0f64..1.0), 1..300),
            count in 1u32..6,
            per in 50u64..1_000,
        ) {
            let q = Quota { count, per: Duration::from_millis(per) };
            let mut l = Limiter::new(vec![q]);
            let mut now = 0i64;
            let mut open: Vec<(i64, i64)> = Vec::new(); // (start, end)
            let mut arrivals = Vec::new();
            for (gap, dur, frac) in steps {
                now += gap;
                // Finish requests whose end has come.
                open.sort_by_key(|r| r.1);
                while let Some(&(s, e)) = open.first() {
                    if e > now { break; }
                    open.remove(0);
                    l.release(e);
                    arrivals.push(s + ((e - s) as f64 * frac) as i64);
                }
                if l.try_acquire(now) {
                    open.push((now, now + dur));
                }
            }
            arrivals.sort();
            let per = per as i64;
            for i in 0..arrivals.len() {
                let in_window = arrivals[i..].iter().take_while(|&&a| a < arrivals[i] + per).count();
                prop_assert!(in_window as u32 <= count, "{} arrivals within {} ms from {}", in_window, per, arrivals[i]);
            }
        }
    }
}
