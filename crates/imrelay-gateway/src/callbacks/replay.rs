//! Replay guard: a signed callback's (timestamp, nonce) is accepted once.
//!
//! Every platform signs the timestamp and nonce, but WeChat in plaintext mode
//! signs nothing else, so a captured callback URL carries a valid signature
//! for any body: without this guard it could be sent again, within the replay
//! window, with a forged event. Entries expire when their timestamp leaves the
//! window, after which the timestamp check refuses the request anyway.
//!
//! The guard is in memory, per instance: several instances behind a load
//! balancer each accept a given (timestamp, nonce) once. It survives reloads
//! (see [`super::CallbackSet::keep_replays`]), not restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;

/// Entries kept per app. Only requests that passed every other check are
/// recorded, so filling it takes that many genuine callbacks within one
/// window; past it the entry nearest its expiry is dropped.
pub const CAPACITY: usize = 100_000;

type Key = (String, String);

/// The (timestamp, nonce) pairs one callback app has accepted.
pub struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Key -> (expires at, claim number).
    seen: HashMap<Key, (i64, u64)>,
    /// (expires at, claim number) -> key, oldest first.
    by_expiry: BTreeMap<(i64, u64), Key>,
    next: u64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl Default for ReplayCache {
    fn default() -> Self {
        ReplayCache::new(CAPACITY)
    }
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record (timestamp, nonce) until `expires_ms`, or refuse it (`None`)
    /// when it was recorded before and has not expired at `now_ms`. The record
    /// is dropped again unless the claim is kept ([`Claim::keep`]), so a
    /// request that failed (the store was down) can be retried.
    pub fn claim(
        self: &Arc<Self>,
        timestamp: &str,
        nonce: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Option<Claim> {
        let mut g = self.inner.lock();
        while let Some(entry) = g.by_expiry.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let key = entry.remove();
            g.seen.remove(&key);
        }
        let key = (timestamp.to_owned(), nonce.to_owned());
        if g.seen.contains_key(&key) {
            return None;
        }
        if g.seen.len() >= self.capacity {
            if let Some((_, oldest)) = g.by_expiry.pop_first() {
                g.seen.remove(&oldest);
            }
        }
        let n = g.next;
        g.next += 1;
        g.seen.insert(key.clone(), (expires_ms, n));
        g.by_expiry.insert((expires_ms, n), key.clone());
        Some(Claim {
            cache: Some(self.clone()),
            key,
            n,
        })
    }

    fn release(&self, key: &Key, n: u64) {
        let mut g = self.inner.lock();
        if let Some(&(expires, m)) = g.seen.get(key) {
            if m == n {
                g.seen.remove(key);
                g.by_expiry.remove(&(expires, m));
            }
        }
    }
}

/// A recorded (timestamp, nonce); forgotten on drop unless kept.
#[derive(Debug)]
pub struct Claim {
    cache: Option<Arc<ReplayCache>>,
    key: Key,
    n: u64,
}

impl Claim {
    /// Nothing to record (a handshake, or a request without a nonce).
    pub fn none() -> Claim {
        Claim {
            cache: None,
            key: Default::default(),
            n: 0,
        }
    }

    /// The request was handled: refuse the pair from now on.
    pub fn keep(mut self) {
        self.cache = None;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(c) = self.cache.take() {
            c.release(&self.key, self.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_refused_until_it_expires_and_freed_unless_kept() {
        let c = Arc::new(ReplayCache::new(10));
        c.claim("100", "n1", 0, 1_000).unwrap().keep();
        assert!(c.claim("100", "n1", 999, 1_000).is_none());
        // Same timestamp, other nonce; same nonce, other timestamp: new pairs.
        c.claim("100", "n2", 0, 1_000).unwrap().keep();
        c.claim("101", "n1", 0, 1_000).unwrap().keep();
        // Expired: accepted again (the timestamp check refuses it by then).
        assert!(c.claim("100", "n1", 1_000, 2_000).is_some());
        // Not kept: the pair is free again.
        drop(c.claim("200", "x", 0, 5_000).unwrap());
        c.claim("200", "x", 0, 5_000).unwrap().keep();
        assert!(c.claim("200", "x", 0, 5_000).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_entry_nearest_expiry() {
        let c = Arc::new(ReplayCache::new(3));
        c.claim("1", "a", 0, 300).unwrap().keep();
        c.claim("2", "b", 0, 100).unwrap().keep();
        c.claim("3", "c", 0, 200).unwrap().keep();
        c.claim("4", "d", 0, 400).unwrap().keep();
        assert_eq!(c.len(), 3);
        assert!(
            c.claim("2", "b", 0, 100).is_some(),
            "the nearest expiry went"
        );
        assert!(c.claim("1", "a", 0, 300).is_none());
        // Expired entries go first, without evicting live ones.
        let c = Arc::new(ReplayCache::new(2));
        c.claim("1", "a", 0, 10).unwrap().keep();
        c.claim("2", "b", 0, 1_000).unwrap().keep();
        c.claim("3", "c", 50, 1_000).unwrap().keep();
        assert!(c.claim("2", "b", 50, 1_000).is_none());
    }

    #[test]
    fn releasing_a_stale_claim_leaves_a_newer_one() {
        let c = Arc::new(ReplayCache::new(10));
        let old = c.claim("1", "a", 0, 10).unwrap();
        // Expired and claimed again by another request.
        c.claim("1", "a", 20, 1_000).unwrap().keep();
        drop(old);
        assert!(c.claim("1", "a", 30, 1_000).is_none());
    }
}
