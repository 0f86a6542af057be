//! Pacing the requests of one message (the parts of a split text, the batches
//! of a recipient list) within the destination's quotas, so that [`deliver`]
//! does not draw the platform's rate-limit penalty on its own parts.
//!
//! The windows slide: a request may start once fewer than `count` requests
//! have completed within the last `per`. Completion times are used because
//! the platform counted each request at some moment before it answered, so
//! starting `per` after an answer is never too early however long the
//! request took. Time is tokio's, so tests can pause it.
//!
//! [`deliver`]: crate::destination::deliver

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::destination::Quota;

/// Sliding windows over the completion times of past requests.
#[derive(Debug, Clone, Default)]
struct Windows {
    quotas: Vec<Quota>,
    done: VecDeque<Instant>,
}

impl Windows {
    fn new(quotas: Vec<Quota>) -> Self {
        Windows {
            quotas,
            done: VecDeque::new(),
        }
    }

    /// The earliest instant the next request may start.
    fn next_start(&self, now: Instant) -> Instant {
        let mut at = now;
        for q in &self.quotas {
            let count = q.count.max(1) as usize;
            if self.done.len() >= count {
                at = at.max(self.done[self.done.len() - count] + q.per);
            }
        }
        at
    }

    fn record(&mut self, at: Instant) {
        self.done.push_back(at);
        // Keep only what the largest window can still count.
        let keep = self
            .quotas
            .iter()
            .map(|q| q.count.max(1) as usize)
            .max()
            .unwrap_or(0);
        while self.done.len() > keep {
            self.done.pop_front();
        }
    }
}

/// Paces the requests of one message: the destination's quotas apply to all
/// of them, per-recipient quotas to the requests addressing that recipient.
#[derive(Debug, Clone, Default)]
pub struct Pacer {
    all: Windows,
    per_recipient: Vec<Quota>,
    recipients: HashMap<String, Windows>,
}

impl Pacer {
    /// `quotas` hold for every request, `per_recipient` for each recipient.
    pub fn new(quotas: Vec<Quota>, per_recipient: Vec<Quota>) -> Self {
        Pacer {
            all: Windows::new(quotas),
            per_recipient,
            recipients: HashMap::new(),
        }
    }

    /// How long a request to `recipients` must wait from `now`.
    pub fn delay(&self, recipients: &[String], now: Instant) -> Duration {
        let mut at = self.all.next_start(now);
        for r in recipients {
            if let Some(w) = self.recipients.get(r) {
                at = at.max(w.next_start(now));
            }
        }
        at - now
    }

    /// Wait until a request to `recipients` may start.
    pub async fn ready(&self, recipients: &[String]) {
        let wait = self.delay(recipients, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Count a request to `recipients` that completed at `at`.
    pub fn record(&mut self, recipients: &[String], at: Instant) {
        self.all.record(at);
        if self.per_recipient.is_empty() {
            return;
        }
        for r in recipients {
            self.recipients
                .entry(r.clone())
                .or_insert_with(|| Windows::new(self.per_recipient.clone()))
                .record(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_slides_from_completion_times() {
        let t0 = Instant::now();
        let mut p = Pacer::new(vec![Quota::per_second(2)], Vec::new());
        assert_eq!(p.delay(&[], t0), Duration::ZERO);
        p.record(&[], t0);
        assert_eq!(p.delay(&[], t0), Duration::ZERO);
        p.record(&[], t0 + Duration::from_millis(300));
        // Third request: one second after the first completed.
        assert_eq!(
            p.delay(&[], t0 + Duration::from_millis(400)),
            Duration::from_millis(600)
        );
        p.record(&[], t0 + Duration::from_millis(1000));
        // Fourth: one second after the second.
        assert_eq!(
            p.delay(&[], t0 + Duration::from_millis(1000)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn every_quota_holds_and_recipients_count_apart() {
        let t0 = Instant::now();
        let mut p = Pacer::new(
            vec![Quota::per_second(10), Quota::per_minute(3)],
            vec![Quota::per_second(1)],
        );
        let (a, b) = (vec!["a".to_string()], vec!["b".to_string()]);
        p.record(&a, t0);
        assert_eq!(p.delay(&a, t0), Duration::from_secs(1));
        assert_eq!(p.delay(&b, t0), Duration::ZERO);
        p.record(&b, t0);
        p.record(&b, t0 + Duration::from_secs(1));
        // Three in the minute: the per-minute quota rules.
        assert_eq!(
            p.delay(&a, t0 + Duration::from_secs(2)),
            Duration::from_secs(58)
        );
    }
}
