//! Admission: whether a destination may take a request now, and the
//! bookkeeping of each destination's rate limiter and circuit breaker, plus
//! the cluster-wide permit when several instances share a destination.
//!
//! A request is admitted by the destination's breaker and its own limiter
//! first (synchronously, so the dispatch loop can take the permit before it
//! spawns a send), then by the limiters of the recipients it addresses (see
//! [`super::recipients`]), then by the shared limiter (a store round trip,
//! for the destination and each recipient) right before it is sent. Every
//! admitted request ends in exactly one of [`Admission::cancel`] (never
//! sent) or [`Admission::settle`] (answered).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::clock::Clock;
use imrelay_sdk::{Outcome, Quota, Report};
use parking_lot::Mutex;

use super::breaker::{Breaker, BreakerState};
use super::decide::Wait;
use super::limits::{Limiter, SharedAdmit, SharedLimiter, SharedPermit};
use super::recipients::{recipient_keys, RecipientLimits};
use super::DestinationStatus;
use crate::channels::DestinationEntry;

/// How long to wait before asking again when the limiter cannot say when a
/// request may start (it depends on requests in flight finishing).
const UNKNOWN_WAIT_MS: i64 = 100;

/// How long to wait when the shared limiter cannot be reached: sending
/// without it could exceed a platform quota, which is worse than waiting.
const SHARED_UNREACHABLE_WAIT_MS: i64 = 1_000;

struct DestState {
    limiter: Limiter,
    breaker: Breaker,
}

#[derive(Default)]
struct Dests {
    by_key: HashMap<String, DestState>,
    /// Round-robin position per target (robot pools).
    rr: HashMap<String, usize>,
}

/// A request admitted to pool member `member` of a target.
#[derive(Debug)]
pub struct Permit {
    pub member: usize,
    shared: Option<SharedPermit>,
    /// The keys of the recipients this request holds a permit of.
    recipients: Vec<String>,
    shared_recipients: Vec<SharedPermit>,
}

/// The answer of [`Admission::admit`].
#[derive(Debug)]
pub enum Admit {
    Go(Permit),
    /// Not now: try again at `at` (not an attempt).
    Wait {
        at: i64,
        why: Wait,
    },
}

/// What a finished request changed on its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// The breaker opened with this request, after this many consecutive
    /// failures.
    pub breaker_opened: Option<u32>,
}

/// Limiters and breakers of every destination used so far.
pub struct Admission {
    clock: Arc<dyn Clock>,
    shared: Option<Arc<dyn SharedLimiter>>,
    /// Longest a shared permit is held (a crashed instance's permits expire).
    hold_max: Duration,
    dests: Mutex<Dests>,
    recipients: Mutex<RecipientLimits>,
}

impl Admission {
    pub fn new(
        clock: Arc<dyn Clock>,
        shared: Option<Arc<dyn SharedLimiter>>,
        hold_max: Duration,
    ) -> Self {
        Admission {
            clock,
            shared,
            hold_max,
            dests: Mutex::default(),
            recipients: Mutex::default(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Make sure every member has limiter and breaker state with the current
    /// config's quotas (a reload keeps the request log, so it cannot burst).
    pub fn sync<M: Borrow<DestinationEntry>>(&self, members: &[M]) {
        let mut d = self.dests.lock();
        for m in members.iter().map(Borrow::borrow) {
            match d.by_key.get_mut(&m.key) {
                Some(s) => {
                    s.limiter.set_quotas(m.quotas.clone());
                    s.breaker.set_config(m.breaker);
                }
                None => {
                    d.by_key.insert(
                        m.key.clone(),
                        DestState {
                            limiter: Limiter::new(m.quotas.clone()),
                            breaker: Breaker::new(m.breaker),
                        },
                    );
                }
            }
        }
    }

    /// Requests the members may start now.
    pub fn capacity<M: Borrow<DestinationEntry>>(&self, members: &[M]) -> u32 {
        let now = self.now();
        let d = self.dests.lock();
        members
            .iter()
            .filter_map(|m| d.by_key.get(&m.borrow().key))
            .map(|s| s.breaker.available(now).min(s.limiter.available(now)))
            .fold(0u32, |a, b| a.saturating_add(b))
    }

    /// Requests the members can send within `span` from an empty start, per
    /// their tightest quotas (for coalescing).
    pub fn capacity_within<M: Borrow<DestinationEntry>>(
        &self,
        members: &[M],
        span: Duration,
    ) -> f64 {
        let d = self.dests.lock();
        members
            .iter()
            .filter_map(|m| d.by_key.get(&m.borrow().key))
            .map(|s| s.limiter.capacity_within(span))
            .sum()
    }

    /// When some member may start a request again, if known.
    pub fn next_free<M: Borrow<DestinationEntry>>(&self, members: &[M]) -> Option<i64> {
        let now = self.now();
        let d = self.dests.lock();
        members
            .iter()
            .filter_map(|m| d.by_key.get(&m.borrow().key))
            .filter_map(|s| match s.breaker.paused_until(now) {
                Some(t) => Some(t.max(s.limiter.next_free(now).unwrap_or(t))),
                None => s.limiter.next_free(now),
            })
            .min()
    }

    /// The member of `target`'s `n` whose turn it is (pools take turns).
    pub fn turn(&self, target: &str, n: usize) -> usize {
        self.dests.lock().rr.get(target).copied().unwrap_or(0) % n.max(1)
    }

    /// Pick a member of `target` (in turn, for pools; `prefer` first) whose
    /// breaker and limiter allow a request now, and take its local permit.
    pub fn acquire(
        &self,
        target: &str,
        members: &[DestinationEntry],
        prefer: Option<usize>,
    ) -> Option<usize> {
        let now = self.now();
        let mut d = self.dests.lock();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = prefer.unwrap_or_else(|| d.rr.get(target).copied().unwrap_or(0));
        for k in 0..n {
            let i = (start + k) % n;
            let Some(s) = d.by_key.get_mut(&members[i].key) else {
                continue;
            };
            if s.breaker.available(now) == 0 || !s.limiter.try_acquire(now) {
                continue;
            }
            s.breaker.on_start(now);
            d.rr.insert(target.to_string(), (i + 1) % n);
            return Some(i);
        }
        None
    }

    /// Admit the next request of a delivery to `target`, preferring `member`,
    /// addressing `recipients` (empty: none the platform counts apart).
    /// `held`: the local permit of `member` was already taken (by the dispatch
    /// loop, for a delivery's first request).
    pub async fn admit(
        &self,
        target: &str,
        members: &[DestinationEntry],
        member: usize,
        held: bool,
        recipients: &[String],
    ) -> Admit {
        let member = if held {
            member
        } else {
            match self.acquire(target, members, Some(member)) {
                Some(i) => i,
                None => return self.local_wait(&members[member], members),
            }
        };
        let entry = &members[member];
        let per_recipient = entry.dest.recipient_rate_limits();
        let keys = if per_recipient.is_empty() {
            Vec::new()
        } else {
            recipient_keys(&entry.key, recipients, |r| {
                entry.dest.shared_recipient_quota(r)
            })
        };
        let now = self.now();
        let local = self.recipients.lock().acquire(&keys, &per_recipient, now);
        if let Err(at) = local {
            self.cancel(&entry.key);
            return Admit::Wait {
                at: at.unwrap_or(now + UNKNOWN_WAIT_MS),
                why: Wait::Recipient,
            };
        }
        let refused = |at| {
            self.cancel(&entry.key);
            self.recipients.lock().cancel(&keys);
            Admit::Wait {
                at,
                why: Wait::Cluster,
            }
        };
        let shared = match self.shared_admit(&entry.key, &entry.quotas).await {
            Ok(p) => p,
            Err(at) => return refused(at),
        };
        // In the same (sorted) order on every instance.
        let mut shared_recipients = Vec::with_capacity(keys.len());
        for k in &keys {
            match self.shared_admit(k, &per_recipient).await {
                Ok(p) => shared_recipients.extend(p),
                Err(at) => {
                    self.shared_cancel(shared.into_iter().chain(shared_recipients))
                        .await;
                    return refused(at);
                }
            }
        }
        Admit::Go(Permit {
            member,
            shared,
            recipients: keys,
            shared_recipients,
        })
    }

    /// Give back shared permits that were not used.
    async fn shared_cancel(&self, permits: impl IntoIterator<Item = SharedPermit>) {
        if let Some(shared) = &self.shared {
            for p in permits {
                shared.cancel(p).await;
            }
        }
    }

    /// Why and until when no member takes a request now.
    fn local_wait(&self, preferred: &DestinationEntry, members: &[DestinationEntry]) -> Admit {
        let now = self.now();
        let at = self.next_free(members).unwrap_or(now + UNKNOWN_WAIT_MS);
        let breaker_open = self
            .dests
            .lock()
            .by_key
            .get(&preferred.key)
            .is_some_and(|s| s.breaker.available(now) == 0);
        let why = if breaker_open {
            Wait::Breaker
        } else {
            Wait::Limiter
        };
        Admit::Wait { at, why }
    }

    /// A cluster permit for `key` when a shared limiter is configured.
    /// `Ok(None)`: none needed. `Err(at)`: not now; ask again at `at`.
    async fn shared_admit(&self, key: &str, quotas: &[Quota]) -> Result<Option<SharedPermit>, i64> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        if quotas.is_empty() {
            return Ok(None);
        }
        let answer = shared.acquire(key, quotas, self.hold_max).await;
        let now = self.now();
        match answer {
            Ok(SharedAdmit::Granted(p)) => Ok(Some(p)),
            Ok(SharedAdmit::Wait(d)) => Err(now + (d.as_millis() as i64).max(1)),
            Err(e) => {
                tracing::warn!(destination = %key, error = %e,
                    "the shared rate limiter is unavailable; the delivery waits instead of risking the platform's quota");
                Err(now + SHARED_UNREACHABLE_WAIT_MS)
            }
        }
    }

    /// Give back a local permit that was not used.
    pub fn cancel(&self, key: &str) {
        if let Some(s) = self.dests.lock().by_key.get_mut(key) {
            s.limiter.cancel();
            s.breaker.on_abandon();
        }
    }

    /// Account a request to `key` that was answered at `end` with `report`,
    /// and release its permits.
    pub async fn settle(&self, key: &str, permit: Permit, report: &Report, end: i64) -> Settled {
        let settled = self.settle_local(key, report, end);
        let blocked = match report.outcome {
            Outcome::RateLimited { wait } => Some(wait),
            _ => None,
        };
        // A platform wait holds the recipients too: Feishu's 230020 is about
        // one user or chat.
        self.recipients.lock().release(
            &permit.recipients,
            end,
            blocked.map(|w| end + w.as_millis() as i64),
        );
        if let Some(shared) = &self.shared {
            for p in permit.shared.into_iter().chain(permit.shared_recipients) {
                shared.release(p, blocked).await;
            }
        }
        settled
    }

    fn settle_local(&self, key: &str, report: &Report, end: i64) -> Settled {
        let mut d = self.dests.lock();
        let Some(s) = d.by_key.get_mut(key) else {
            return Settled {
                breaker_opened: None,
            };
        };
        s.limiter.release(end);
        let mut breaker_opened = None;
        match report.outcome {
            Outcome::Retry { .. } => {
                let opened = s.breaker.opened_total;
                s.breaker.on_failure(end);
                if s.breaker.opened_total > opened {
                    breaker_opened = Some(s.breaker.consecutive_failures());
                }
            }
            Outcome::RateLimited { wait } => {
                s.limiter.block_until(end + wait.as_millis() as i64);
                s.breaker.on_success();
            }
            // Delivered, refused or a token problem: the destination is up.
            _ => s.breaker.on_success(),
        }
        Settled { breaker_opened }
    }

    /// The destination's recent share of failed requests (0..1).
    pub fn error_rate(&self, key: &str) -> f64 {
        self.dests
            .lock()
            .by_key
            .get(key)
            .map_or(0.0, |s| s.breaker.error_rate)
    }

    /// The breaker state of one destination, if it has been used.
    pub fn breaker(&self, key: &str) -> Option<BreakerState> {
        let now = self.now();
        self.dests
            .lock()
            .by_key
            .get(key)
            .map(|s| s.breaker.state(now))
    }

    /// Every destination's limiter and breaker, by key.
    pub fn statuses(&self) -> Vec<DestinationStatus> {
        let now = self.now();
        let d = self.dests.lock();
        let mut out: Vec<DestinationStatus> = d
            .by_key
            .iter()
            .map(|(k, s)| DestinationStatus {
                key: k.clone(),
                breaker: s.breaker.state(now),
                consecutive_failures: s.breaker.consecutive_failures(),
                breaker_opened_total: s.breaker.opened_total,
                error_rate: s.breaker.error_rate,
                in_flight: s.limiter.in_flight(),
                available_now: s.limiter.available(now),
                blocked_until: s.limiter.blocked_until().filter(|&t| t > now),
                sent_total: s.limiter.started_total,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::BreakerConfig;
    use crate::store::TokioClock;
    use async_trait::async_trait;
    use imrelay_sdk::clock::FixedClock;
    use imrelay_sdk::message::Platform;
    use imrelay_sdk::{Destination, Message, Payload};

    #[derive(Debug)]
    struct Null(String);

    #[async_trait]
    impl Destination for Null {
        fn kind(&self) -> &'static str {
            "null"
        }
        fn platform(&self) -> Platform {
            Platform::Webhook
        }
        fn id(&self) -> &str {
            &self.0
        }
        fn rate_limits(&self) -> Vec<Quota> {
            vec![]
        }
        fn render(&self, _: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
            Ok(vec![])
        }
        async fn send(&self, _: &Payload) -> Report {
            Report::delivered()
        }
    }

    fn entry(key: &str, quotas: Vec<Quota>) -> DestinationEntry {
        DestinationEntry::new(Arc::new(Null(key.into())))
            .with_quotas(quotas)
            .with_breaker(BreakerConfig {
                failure_threshold: 2,
                open_for: Duration::from_millis(1_000),
                max_open_for: Duration::from_millis(8_000),
            })
    }

    fn fixed(ms: i64) -> (Arc<FixedClock>, Admission) {
        let clock = Arc::new(FixedClock::new(ms));
        let a = Admission::new(clock.clone(), None, Duration::from_secs(30));
        (clock, a)
    }

    fn transient() -> Report {
        Report::new(Outcome::Retry { after: None }, "busy")
    }

    fn go(a: Admit) -> Permit {
        match a {
            Admit::Go(p) => p,
            Admit::Wait { at, why } => panic!("expected a permit, got a wait until {at} ({why:?})"),
        }
    }

    #[tokio::test]
    async fn the_limiter_admits_its_quota_and_says_when_the_next_may_go() {
        let (clock, a) = fixed(10_000);
        let m = vec![entry("d", vec![Quota::per_second(2)])];
        a.sync(&m);
        assert_eq!(a.capacity(&m), 2);
        assert_eq!(a.acquire("t", &m, None), Some(0));
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        assert_eq!(a.capacity(&m), 0);
        assert!(
            matches!(
                a.admit("t", &m, 0, false, &[]).await,
                Admit::Wait {
                    at: 10_100,
                    why: Wait::Limiter
                }
            ),
            "both in flight: when they end is unknown, ask again shortly"
        );
        a.cancel("d");
        assert_eq!(a.capacity(&m), 1, "a cancelled permit is given back");
        clock.set_ms(10_050);
        a.settle("d", p, &Report::delivered(), 10_050).await;
        assert_eq!(
            a.capacity(&m),
            1,
            "the answered request occupies its window"
        );
        let statuses = a.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(statuses[0].sent_total, 2);
        assert_eq!(statuses[0].in_flight, 0);
    }

    #[tokio::test]
    async fn transient_failures_open_the_breaker_and_a_probe_closes_it() {
        let (clock, a) = fixed(0);
        let m = vec![entry("d", vec![])];
        a.sync(&m);
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        assert_eq!(
            a.settle("d", p, &transient(), 10).await.breaker_opened,
            None
        );
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        assert_eq!(
            a.settle("d", p, &transient(), 20).await.breaker_opened,
            Some(2)
        );
        assert_eq!(a.breaker("d"), Some(BreakerState::Open { until: 1_020 }));
        assert_eq!(a.capacity(&m), 0);
        assert!(a.error_rate("d") > 0.3);
        match a.admit("t", &m, 0, false, &[]).await {
            Admit::Wait { at, why } => assert_eq!((at, why), (1_020, Wait::Breaker)),
            Admit::Go(_) => panic!("an open breaker admits nothing"),
        }
        clock.set_ms(1_020);
        assert_eq!(a.capacity(&m), 1, "one probe");
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        assert_eq!(a.capacity(&m), 0, "only one probe at a time");
        a.settle("d", p, &Report::delivered(), 1_030).await;
        assert_eq!(a.breaker("d"), Some(BreakerState::Closed));
    }

    #[tokio::test]
    async fn a_platform_rate_limit_blocks_the_destination_without_tripping_the_breaker() {
        let (clock, a) = fixed(0);
        let m = vec![entry("d", vec![Quota::per_second(100)])];
        a.sync(&m);
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        let limited = Report::new(
            Outcome::RateLimited {
                wait: Duration::from_secs(5),
            },
            "slow down",
        );
        a.settle("d", p, &limited, 100).await;
        assert_eq!(a.breaker("d"), Some(BreakerState::Closed));
        assert_eq!(a.next_free(&m), Some(5_100));
        assert!(matches!(
            a.admit("t", &m, 0, false, &[]).await,
            Admit::Wait {
                at: 5_100,
                why: Wait::Limiter
            }
        ));
        clock.set_ms(5_100);
        go(a.admit("t", &m, 0, false, &[]).await);
    }

    #[tokio::test]
    async fn a_pool_takes_turns_and_skips_members_without_capacity() {
        let (_, a) = fixed(0);
        let m = vec![
            entry("a", vec![Quota::per_second(1)]),
            entry("b", vec![Quota::per_second(2)]),
        ];
        a.sync(&m);
        assert_eq!(a.capacity(&m), 3);
        let order: Vec<Option<usize>> = (0..4).map(|_| a.acquire("pool", &m, None)).collect();
        assert_eq!(order, [Some(0), Some(1), Some(1), None]);
    }

    #[tokio::test]
    async fn reloaded_quotas_apply_and_keep_the_request_log() {
        let (_, a) = fixed(0);
        let m = vec![entry("d", vec![Quota::per_minute(3)])];
        a.sync(&m);
        for _ in 0..2 {
            let p = go(a.admit("t", &m, 0, false, &[]).await);
            a.settle("d", p, &Report::delivered(), 0).await;
        }
        let tighter = vec![entry("d", vec![Quota::per_minute(2)])];
        a.sync(&tighter);
        assert_eq!(a.capacity(&tighter), 0, "the two sent still count");
    }

    /// A shared limiter that answers from a script and records releases.
    #[derive(Default)]
    struct Scripted {
        answers: Mutex<Vec<Result<SharedAdmit, String>>>,
        released: Mutex<Vec<(i64, Option<Duration>)>>,
    }

    #[async_trait]
    impl SharedLimiter for Scripted {
        async fn acquire(
            &self,
            key: &str,
            _: &[Quota],
            _: Duration,
        ) -> Result<SharedAdmit, String> {
            self.answers
                .lock()
                .pop()
                .unwrap_or(Ok(SharedAdmit::Granted(SharedPermit {
                    id: 7,
                    key: key.into(),
                })))
        }
        async fn release(&self, permit: SharedPermit, blocked_for: Option<Duration>) {
            self.released.lock().push((permit.id, blocked_for));
        }
    }

    #[tokio::test]
    async fn the_cluster_limiter_admits_as_well_and_a_refusal_gives_the_local_permit_back() {
        let clock = Arc::new(FixedClock::new(0));
        let shared = Arc::new(Scripted::default());
        shared.answers.lock().extend([
            Err("connection refused".to_string()),
            Ok(SharedAdmit::Wait(Duration::from_millis(250))),
        ]);
        let a = Admission::new(clock.clone(), Some(shared.clone()), Duration::from_secs(30));
        let m = vec![entry("d", vec![Quota::per_second(5)])];
        a.sync(&m);
        assert!(matches!(
            a.admit("t", &m, 0, false, &[]).await,
            Admit::Wait {
                at: 250,
                why: Wait::Cluster
            }
        ));
        assert!(
            matches!(
                a.admit("t", &m, 0, false, &[]).await,
                Admit::Wait {
                    at: 1_000,
                    why: Wait::Cluster
                }
            ),
            "an unreachable cluster limiter waits"
        );
        assert_eq!(a.capacity(&m), 5, "refused requests hold no local permit");
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        let limited = Report::new(
            Outcome::RateLimited {
                wait: Duration::from_secs(2),
            },
            "slow",
        );
        a.settle("d", p, &limited, 10).await;
        assert_eq!(*shared.released.lock(), [(7, Some(Duration::from_secs(2)))]);
    }

    #[tokio::test]
    async fn a_destination_without_quotas_skips_the_cluster_limiter() {
        let clock = Arc::new(FixedClock::new(0));
        let shared = Arc::new(Scripted::default());
        shared
            .answers
            .lock()
            .push(Ok(SharedAdmit::Wait(Duration::from_secs(1))));
        let a = Admission::new(clock, Some(shared.clone()), Duration::from_secs(30));
        let m = vec![entry("d", vec![])];
        a.sync(&m);
        let p = go(a.admit("t", &m, 0, false, &[]).await);
        a.settle("d", p, &Report::delivered(), 0).await;
        assert!(shared.released.lock().is_empty());
    }

    /// An app that takes 2 requests a second per user; `chat:` recipients
    /// are chats whose quota every destination shares.
    #[derive(Debug)]
    struct PerUser(String);

    #[async_trait]
    impl Destination for PerUser {
        fn kind(&self) -> &'static str {
            "test_app"
        }
        fn platform(&self) -> Platform {
            Platform::Webhook
        }
        fn id(&self) -> &str {
            &self.0
        }
        fn rate_limits(&self) -> Vec<Quota> {
            vec![Quota::per_second(100)]
        }
        fn recipient_rate_limits(&self) -> Vec<Quota> {
            vec![Quota::per_second(2)]
        }
        fn shared_recipient_quota(&self, recipient: &str) -> Option<String> {
            recipient.strip_prefix("chat:").map(|c| format!("test:{c}"))
        }
        fn render(&self, _: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
            Ok(vec![])
        }
        async fn send(&self, _: &Payload) -> Report {
            Report::delivered()
        }
    }

    fn app(key: &str) -> Vec<DestinationEntry> {
        let d = DestinationEntry::new(Arc::new(PerUser(key.into())));
        let quotas = d.dest.rate_limits();
        vec![d.with_quotas(quotas)]
    }

    fn to(rs: &[&str]) -> Vec<String> {
        rs.iter().map(|r| r.to_string()).collect()
    }

    #[tokio::test]
    async fn a_recipient_out_of_quota_waits_and_the_destination_permit_is_given_back() {
        let (clock, a) = fixed(0);
        let m = app("d");
        a.sync(&m);
        for t in [0, 10] {
            let p = go(a.admit("t", &m, 0, false, &to(&["ou_a"])).await);
            a.settle("d", p, &Report::delivered(), t).await;
        }
        assert_eq!(a.capacity(&m), 98);
        clock.set_ms(20);
        match a.admit("t", &m, 0, false, &to(&["ou_a"])).await {
            Admit::Wait { at, why } => assert_eq!((at, why), (1_006, Wait::Recipient)),
            Admit::Go(_) => panic!("a third request to ou_a within the second"),
        }
        assert_eq!(
            a.capacity(&m),
            98,
            "the destination's permit was given back"
        );
        assert!(
            matches!(
                a.admit("t", &m, 0, false, &to(&["ou_b", "ou_a"])).await,
                Admit::Wait {
                    why: Wait::Recipient,
                    ..
                }
            ),
            "a request to ou_a and ou_b waits for ou_a"
        );
        let p = go(a.admit("t", &m, 0, false, &to(&["ou_b"])).await);
        let q = go(a.admit("t", &m, 0, false, &to(&["ou_b"])).await);
        assert!(
            matches!(
                a.admit("t", &m, 0, false, &to(&["ou_b"])).await,
                Admit::Wait {
                    at: 120,
                    why: Wait::Recipient
                }
            ),
            "the waiting request took none of ou_b's permits; two in flight now"
        );
        let limited = Report::new(
            Outcome::RateLimited {
                wait: Duration::from_secs(5),
            },
            "230020",
        );
        a.settle("d", p, &limited, 30).await;
        a.settle("d", q, &Report::delivered(), 30).await;
        clock.set_ms(2_000);
        assert!(
            matches!(
                a.admit("t", &m, 0, false, &to(&["ou_b"])).await,
                Admit::Wait { at: 5_030, .. }
            ),
            "the platform's wait holds the destination and the recipient"
        );
        let held = a.recipients.lock().acquire(
            &recipient_keys("d", &to(&["ou_b"]), |_| None),
            &[Quota::per_second(2)],
            2_000,
        );
        assert_eq!(held, Err(Some(5_030)));
    }

    #[tokio::test]
    async fn a_shared_chat_counts_for_every_destination() {
        let (_, a) = fixed(0);
        let (x, y) = (app("x"), app("y"));
        a.sync(&x);
        a.sync(&y);
        go(a.admit("tx", &x, 0, false, &to(&["chat:ops"])).await);
        go(a.admit("ty", &y, 0, false, &to(&["chat:ops"])).await);
        assert!(matches!(
            a.admit("tx", &x, 0, false, &to(&["chat:ops"])).await,
            Admit::Wait {
                why: Wait::Recipient,
                ..
            }
        ));
        go(a.admit("tx", &x, 0, false, &to(&["ou_a"])).await);
        go(a.admit("ty", &y, 0, false, &to(&["ou_a"])).await);
        go(a.admit("ty", &y, 0, false, &to(&["ou_a"])).await);
        go(a.admit("tx", &x, 0, false, &to(&["ou_a"])).await);
    }

    /// A shared limiter that refuses one key and records what it was asked.
    #[derive(Default)]
    struct Keyed {
        refuse: Mutex<Option<String>>,
        asked: Mutex<Vec<String>>,
        cancelled: Mutex<Vec<String>>,
        released: Mutex<Vec<(String, Option<Duration>)>>,
    }

    #[async_trait]
    impl SharedLimiter for Keyed {
        async fn acquire(
            &self,
            key: &str,
            _: &[Quota],
            _: Duration,
        ) -> Result<SharedAdmit, String> {
            self.asked.lock().push(key.into());
            if self.refuse.lock().as_deref() == Some(key) {
                return Ok(SharedAdmit::Wait(Duration::from_millis(300)));
            }
            Ok(SharedAdmit::Granted(SharedPermit {
                id: 1,
                key: key.into(),
            }))
        }
        async fn release(&self, permit: SharedPermit, blocked_for: Option<Duration>) {
            self.released.lock().push((permit.key, blocked_for));
        }
        async fn cancel(&self, permit: SharedPermit) {
            self.cancelled.lock().push(permit.key);
        }
    }

    #[tokio::test]
    async fn the_cluster_limiter_admits_each_recipient_and_a_refusal_cancels_the_rest() {
        use super::super::recipients::recipient_key;
        let clock = Arc::new(FixedClock::new(0));
        let shared = Arc::new(Keyed::default());
        let a = Admission::new(clock, Some(shared.clone()), Duration::from_secs(30));
        let m = app("d");
        a.sync(&m);
        let mut keys = [recipient_key("d", "ou_a"), recipient_key("d", "ou_b")];
        keys.sort();
        *shared.refuse.lock() = Some(keys[1].clone());
        assert!(matches!(
            a.admit("t", &m, 0, false, &to(&["ou_b", "ou_a"])).await,
            Admit::Wait {
                at: 300,
                why: Wait::Cluster
            }
        ));
        assert_eq!(*shared.asked.lock(), ["d", &keys[0], &keys[1]]);
        assert_eq!(
            *shared.cancelled.lock(),
            ["d", &keys[0]],
            "what was granted is given back"
        );
        assert_eq!(a.capacity(&m), 100, "and the local permits too");
        *shared.refuse.lock() = None;
        let p = go(a.admit("t", &m, 0, false, &to(&["ou_b", "ou_a"])).await);
        let limited = Report::new(
            Outcome::RateLimited {
                wait: Duration::from_secs(1),
            },
            "slow",
        );
        a.settle("d", p, &limited, 10).await;
        let released = shared.released.lock().clone();
        assert_eq!(released.len(), 3, "{released:?}");
        assert!(released
            .iter()
            .all(|(_, b)| *b == Some(Duration::from_secs(1))));
        assert!(!released.iter().any(|(k, _)| k.contains("ou_")), "hashed");
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_reopens_for_longer_on_a_paused_tokio_clock() {
        let a = Admission::new(Arc::new(TokioClock::new()), None, Duration::from_secs(30));
        let m = vec![entry("d", vec![])];
        a.sync(&m);
        let fail = |a: &Admission| {
            let p = a.acquire("t", &m, None).map(|member| Permit {
                member,
                shared: None,
                recipients: Vec::new(),
                shared_recipients: Vec::new(),
            });
            (p, a.clock.now_ms())
        };
        for _ in 0..2 {
            let (p, now) = fail(&a);
            a.settle("d", p.expect("closed"), &transient(), now).await;
        }
        assert!(matches!(a.breaker("d"), Some(BreakerState::Open { .. })));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(a.capacity(&m), 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        let (p, now) = fail(&a);
        a.settle("d", p.expect("a probe"), &transient(), now).await;
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert_eq!(a.capacity(&m), 0, "a failed probe doubles the open time");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(a.capacity(&m), 1);
    }
}
