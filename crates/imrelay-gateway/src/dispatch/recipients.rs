//! Per-recipient quotas: what a platform allows to *one* user or chat of a
//! destination on top of the destination's own quotas
//! ([`imrelay_sdk::Destination::recipient_rate_limits`]; Feishu apps: 5 a
//! second to one user or group, SMS: a few a minute/hour/day per number).
//!
//! Each (destination, recipient) pair has a [`Limiter`] of its own, and on
//! PostgreSQL a cluster-wide key ([`recipient_key`]) in the same shared
//! limiter as the destinations. A request addressing several recipients
//! needs a permit for each; if one of them is out of quota, none is taken
//! and the request waits.

use std::collections::{BTreeSet, HashMap};

use imrelay_sdk::Quota;
use sha2::{Digest, Sha256};

use super::limits::{window_ms, Limiter};

/// Below this many tracked recipients nothing is pruned; past it, recipients
/// whose windows are empty are forgotten (their limiter would admit anyway).
const PRUNE_FLOOR: usize = 4_096;

/// The key of `recipient` of destination `dest`: the destination's key and a
/// hash of the recipient id. Hashed so that phone numbers and user ids never
/// reach the shared limiter's table, logs or status in clear, and so that a
/// long id (an email address, a chat id) makes no long key.
pub fn recipient_key(dest: &str, recipient: &str) -> String {
    let digest = Sha256::digest(recipient.as_bytes());
    format!("{dest}/to:{}", hex::encode(&digest[..8]))
}

/// The scope of a recipient quota every destination shares (see
/// [`imrelay_sdk::Destination::shared_recipient_quota`]), in place of a
/// destination's key.
const SHARED_SCOPE: &str = "*";

/// The distinct keys of `recipients` of destination `dest`, in a stable
/// order (so that two instances ask the shared limiter in the same order).
/// `shared` names a recipient's quota on the platform when all destinations
/// share it (a Feishu group); its key is then the same from each.
pub fn recipient_keys(
    dest: &str,
    recipients: &[String],
    shared: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let set: BTreeSet<String> = recipients
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| match shared(r) {
            Some(name) => recipient_key(SHARED_SCOPE, &name),
            None => recipient_key(dest, r),
        })
        .collect();
    set.into_iter().collect()
}

/// One recipient's limiter, and the turns handed to requests told to wait.
struct Recipient {
    limiter: Limiter,
    /// The latest turn handed out: its time and how many were sent to it.
    /// Requests to one user that wait (a burst on an unordered channel) come
    /// back a window's quota at a time instead of all at once, so each is
    /// put back in the queue about once rather than once per window.
    turn: Option<(i64, u32)>,
}

impl Recipient {
    /// When a request that must wait until `free` should come back.
    fn next_turn(&mut self, free: i64) -> i64 {
        let Some(q) = self.limiter.quotas().iter().min_by_key(|q| window_ms(q)) else {
            return free;
        };
        let (at, given) = match self.turn {
            Some((at, given)) if at >= free && given < q.count => (at, given),
            Some((at, _)) if at >= free => (at + window_ms(q) + 1, 0),
            _ => (free, 0),
        };
        self.turn = Some((at, given + 1));
        at
    }
}

/// The limiters of every recipient addressed recently.
#[derive(Default)]
pub struct RecipientLimits {
    by_key: HashMap<String, Recipient>,
    /// Prune when the map grows past this (doubles with what stays).
    prune_at: usize,
}

impl RecipientLimits {
    /// Take a permit for each of `keys` under `quotas` at `now`, all or none.
    /// `Err(Some(at))`: one is out of quota; come back at `at` (the waiters
    /// of one recipient get successive turns); `Err(None)`: until a request
    /// in flight to one of them ends.
    pub fn acquire(
        &mut self,
        keys: &[String],
        quotas: &[Quota],
        now: i64,
    ) -> Result<(), Option<i64>> {
        self.prune(now);
        let mut at: Option<i64> = None;
        let mut unknown = false;
        for k in keys {
            let r = self.by_key.entry(k.clone()).or_insert_with(|| Recipient {
                limiter: Limiter::new(quotas.to_vec()),
                turn: None,
            });
            r.limiter.set_quotas(quotas.to_vec());
            if r.limiter.available(now) == 0 {
                match r.limiter.next_free(now) {
                    Some(free) => {
                        let t = r.next_turn(free);
                        at = Some(at.map_or(t, |a| a.max(t)));
                    }
                    None => unknown = true,
                }
            }
        }
        if unknown {
            return Err(None);
        }
        if let Some(t) = at {
            return Err(Some(t));
        }
        for k in keys {
            if let Some(r) = self.by_key.get_mut(k) {
                r.limiter.try_acquire(now);
            }
        }
        Ok(())
    }

    /// Give back permits taken with [`RecipientLimits::acquire`] and not used.
    pub fn cancel(&mut self, keys: &[String]) {
        for k in keys {
            if let Some(r) = self.by_key.get_mut(k) {
                r.limiter.cancel();
            }
        }
    }

    /// The request to `keys` ended at `end`; `blocked_until`: the platform
    /// said to wait until then.
    pub fn release(&mut self, keys: &[String], end: i64, blocked_until: Option<i64>) {
        for k in keys {
            if let Some(r) = self.by_key.get_mut(k) {
                r.limiter.release(end);
                if let Some(t) = blocked_until {
                    r.limiter.block_until(t);
                }
            }
        }
    }

    /// Forget recipients whose limiter holds nothing any more, once there are
    /// many: the map stays as large as the recipients of the longest window.
    /// (A forgotten recipient's turns only spread waiters out.)
    fn prune(&mut self, now: i64) {
        if self.by_key.len() < self.prune_at.max(PRUNE_FLOOR) {
            return;
        }
        self.by_key.retain(|_, r| !r.limiter.is_idle(now));
        self.prune_at = self.by_key.len() * 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn keys(dest: &str, rs: &[&str]) -> Vec<String> {
        recipient_keys(dest, &strings(rs), |_| None)
    }

    fn strings(rs: &[&str]) -> Vec<String> {
        rs.iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn a_key_names_the_destination_and_hides_the_recipient() {
        let k = recipient_key("aliyun_sms:1a2b", "+8613800138000");
        assert!(k.starts_with("aliyun_sms:1a2b/to:"), "{k}");
        assert!(!k.contains("13800138000"), "no number in clear: {k}");
        assert_eq!(k.len(), "aliyun_sms:1a2b/to:".len() + 16);
        assert_eq!(
            k,
            recipient_key("aliyun_sms:1a2b", "+8613800138000"),
            "stable"
        );
        assert_ne!(k, recipient_key("aliyun_sms:1a2b", "+8613800138001"));
        assert_ne!(
            k,
            recipient_key("aliyun_sms:9f9f", "+8613800138000"),
            "per destination"
        );
        let long = "x".repeat(10_000);
        assert_eq!(
            recipient_key("d", &long).len(),
            "d/to:".len() + 16,
            "bounded"
        );
    }

    #[test]
    fn keys_are_distinct_and_in_a_stable_order() {
        let a = keys("d", &["ou_b", "ou_a", "ou_b", ""]);
        let b = keys("d", &["ou_a", "ou_b"]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 2, "a repeated recipient needs one permit");
    }

    #[test]
    fn a_quota_the_destinations_share_has_one_key_for_all() {
        let chat = |r: &str| {
            r.strip_prefix("chat_id:")
                .map(|c| format!("feishu:chat:{c}"))
        };
        let a = recipient_keys("feishu_app:a", &strings(&["chat_id:oc_ops", "ou_x"]), chat);
        let b = recipient_keys("feishu_app:b", &strings(&["chat_id:oc_ops", "ou_x"]), chat);
        let shared = recipient_key(SHARED_SCOPE, "feishu:chat:oc_ops");
        assert!(a.contains(&shared) && b.contains(&shared), "{a:?} {b:?}");
        assert!(a.contains(&recipient_key("feishu_app:a", "ou_x")));
        assert!(
            b.contains(&recipient_key("feishu_app:b", "ou_x")),
            "a user's is per app"
        );
        assert!(!shared.contains("oc_ops"));
    }

    #[test]
    fn five_a_second_to_one_user_then_wait_while_others_go() {
        let q = [Quota::per_second(5)];
        let mut r = RecipientLimits::default();
        let zhang = keys("feishu_app:x", &["ou_zhang"]);
        let li = keys("feishu_app:x", &["ou_li"]);
        for i in 0..5 {
            assert_eq!(r.acquire(&zhang, &q, i), Ok(()), "request {i}");
            r.release(&zhang, i + 10, None);
        }
        let at = r
            .acquire(&zhang, &q, 100)
            .expect_err("a sixth within the second");
        // The first ended at 10; its window (1 s plus margin) must pass.
        assert_eq!(at, Some(10 + 1_005 + 1));
        assert_eq!(
            r.acquire(&li, &q, 100),
            Ok(()),
            "another user is not held up"
        );
        assert_eq!(r.acquire(&zhang, &q, 10 + 1_005 + 1), Ok(()));
    }

    #[test]
    fn waiters_for_one_user_get_turns_a_windows_quota_at_a_time() {
        let q = [Quota::per_second(5)];
        let mut r = RecipientLimits::default();
        let zhang = keys("d", &["ou_zhang"]);
        for _ in 0..5 {
            r.acquire(&zhang, &q, 0).unwrap();
            r.release(&zhang, 0, None);
        }
        let turns: Vec<_> = (0..12)
            .map(|_| r.acquire(&zhang, &q, 10).unwrap_err().unwrap())
            .collect();
        let (a, b, c) = (1_006, 1_006 + 1_006, 1_006 + 2 * 1_006);
        assert_eq!(turns, [a, a, a, a, a, b, b, b, b, b, c, c]);
        // The first turn comes and five go; one more queues behind the
        // turns handed out.
        for _ in 0..5 {
            assert_eq!(r.acquire(&zhang, &q, a), Ok(()));
            r.release(&zhang, a, None);
        }
        assert_eq!(r.acquire(&zhang, &q, a).unwrap_err(), Some(c));
        // Turns past are forgotten: a wait starts at the next free time.
        let li = keys("d", &["ou_li"]);
        for t in [0, 10_000] {
            for _ in 0..5 {
                r.acquire(&li, &q, t).unwrap();
                r.release(&li, t, None);
            }
            assert_eq!(r.acquire(&li, &q, t).unwrap_err(), Some(t + 1_006));
        }
    }

    #[test]
    fn several_recipients_need_a_permit_each_or_none_is_taken() {
        let q = [Quota {
            count: 1,
            per: Duration::from_secs(60),
        }];
        let mut r = RecipientLimits::default();
        let a = keys("sms", &["+8613800000001"]);
        let both = keys("sms", &["+8613800000001", "+8613800000002"]);
        let b = keys("sms", &["+8613800000002"]);
        assert_eq!(r.acquire(&a, &q, 0), Ok(()));
        r.release(&a, 0, None);
        assert!(
            r.acquire(&both, &q, 1_000).is_err(),
            "one of two is out of quota"
        );
        assert_eq!(r.acquire(&b, &q, 1_000), Ok(()), "the other took no permit");
        // In flight: when it ends is unknown.
        assert_eq!(r.acquire(&both, &q, 2_000), Err(None));
        r.cancel(&b);
        assert!(r.acquire(&b, &q, 2_000).is_ok());
    }

    #[test]
    fn a_platform_wait_holds_the_recipient() {
        let q = [Quota::per_second(5)];
        let mut r = RecipientLimits::default();
        let k = keys("d", &["ou_a"]);
        r.acquire(&k, &q, 0).unwrap();
        r.release(&k, 10, Some(5_000));
        assert_eq!(r.acquire(&k, &q, 100), Err(Some(5_000)));
    }

    /// `PRUNE_FLOOR` recipients: one still in flight, the rest answered at 0.
    fn crowded(q: &[Quota]) -> RecipientLimits {
        let mut r = RecipientLimits::default();
        r.acquire(&keys("d", &["ou_busy"]), q, 0).unwrap();
        for i in 1..PRUNE_FLOOR {
            let k = keys("d", &[&format!("ou_{i}")]);
            r.acquire(&k, q, 0).unwrap();
            r.release(&k, 0, None);
        }
        r
    }

    #[test]
    fn idle_recipients_are_forgotten_once_there_are_many() {
        let q = [Quota::per_second(5)];
        let mut r = crowded(&q);
        assert_eq!(r.by_key.len(), PRUNE_FLOOR);
        r.acquire(&keys("d", &["ou_new"]), &q, 500).unwrap();
        assert_eq!(
            r.by_key.len(),
            PRUNE_FLOOR + 1,
            "their windows still count at 500 ms"
        );

        let mut r = crowded(&q);
        r.acquire(&keys("d", &["ou_new"]), &q, 10_000).unwrap();
        assert_eq!(
            r.by_key.len(),
            2,
            "only the one in flight and the new one stay"
        );
    }
}
