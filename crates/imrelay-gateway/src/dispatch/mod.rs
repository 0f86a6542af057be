//! The dispatcher: claims due deliveries and sends them, within each
//! destination's rate limits and circuit breaker, and records what happened.
//!
//! # Loop
//! Each cycle reads the current [`ChannelSet`] (hot reload never drops work),
//! asks the store for the backlog per target, and for each target with due
//! work claims only as many deliveries as its destinations may send *now*
//! (rate limiter and breaker), taking the limiter permit before spawning the
//! send, so waiting for a rate window never holds a lease and never counts as
//! an attempt. It sleeps until the earliest moment something can move: a due
//! time, a limiter window, a breaker probe, a send finishing, or a wake-up from
//! the store (new message, replay).
//!
//! # Outcomes
//! delivered -> done; transient -> retry with backoff and full jitter (dead after
//! the channel's max attempts or max age); token rejected (already refreshed once
//! by the SDK) -> retried at once, once, then permanent; rate limited -> the
//! destination waits the platform's window and the delivery is requeued without
//! counting an attempt; permanent -> dead-lettered with the platform's code and
//! message, and copied to the fallback channel if there is one. Partial failures
//! spawn per-recipient deliveries. Split messages resume at the failed part.
//!
//! # Submodules
//! - [`retry`]: the backoff function.
//! - [`breaker`]: circuit breaker.
//! - [`limits`]: multi-quota rate limiter.
//! - [`coalesce`]: digest planning.

pub mod breaker;
pub mod coalesce;
pub mod limits;
pub mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use imrelay_sdk::clock::Clock;
use imrelay_sdk::message::Body;
use imrelay_sdk::{Message, Outcome, Report};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::channels::{Channel, ChannelSet, CoalesceConfig, DestinationEntry, Fallback};
use crate::store::{
    AttemptRecord, ChildDelivery, ChildState, ClaimRequest, Claimed, DeadReason, Finish,
    FinishAction, MessageKind, NewMessage, QueueStats, Store, StoreError, TargetBacklog,
};
use breaker::{Breaker, BreakerState};
use limits::Limiter;

/// Shortest time between two dispatch cycles.
const MIN_CYCLE_GAP: Duration = Duration::from_millis(5);

/// The most the backlog of one target is counted per cycle. Coalescing a
/// destination that can send more than this within `max_delay` never happens.
const MAX_BACKLOG_COUNT: u64 = 100_000;

/// Dispatcher settings.
#[derive(Clone)]
pub struct DispatchConfig {
    /// Lease owner id; unique per process.
    pub owner: String,
    /// How long a claim is held before another dispatcher may take it over.
    /// Extended after each part of a split message.
    pub lease: Duration,
    /// Sends in flight at once, over all destinations.
    pub max_in_flight: usize,
    /// Most deliveries claimed per target per cycle.
    pub claim_batch: u32,
    /// Longest sleep between cycles when nothing wakes the loop.
    pub idle_poll: Duration,
    /// On shutdown, how long in-flight sends may take before they are cut off
    /// and their deliveries released.
    pub drain_deadline: Duration,
    /// Upper bound on one request (the SDK client has its own connect and total
    /// timeouts; this guards against anything that hangs past them).
    pub send_timeout: Duration,
    /// How often deliveries are checked against their channel's fallback
    /// `after`.
    pub fallback_scan: Duration,
    /// Clock for stored times, limiter windows and breaker timers. Must be the
    /// store's clock.
    pub clock: Arc<dyn Clock>,
    /// Cluster-wide rate limiter (several instances on PostgreSQL); `None`:
    /// the in-process limiter alone decides.
    pub shared_limits: Option<Arc<dyn limits::SharedLimiter>>,
}

impl DispatchConfig {
    /// Defaults with the given clock.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        DispatchConfig {
            owner: format!("dispatcher-{}", uuid::Uuid::now_v7().simple()),
            lease: Duration::from_secs(60),
            max_in_flight: 256,
            claim_batch: 64,
            idle_poll: Duration::from_secs(1),
            drain_deadline: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            fallback_scan: Duration::from_secs(1),
            clock,
            shared_limits: None,
        }
    }
}

impl Default for DispatchConfig {
    fn default() -> Self {
        Self::new(Arc::new(imrelay_sdk::clock::SystemClock))
    }
}

impl std::fmt::Debug for DispatchConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchConfig")
            .field("owner", &self.owner)
            .field("lease", &self.lease)
            .field("max_in_flight", &self.max_in_flight)
            .field("claim_batch", &self.claim_batch)
            .field("drain_deadline", &self.drain_deadline)
            .field("send_timeout", &self.send_timeout)
            .finish()
    }
}

/// Counters since start.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    delivered: AtomicU64,
    retried: AtomicU64,
    rate_limited: AtomicU64,
    dead: AtomicU64,
    split: AtomicU64,
    merged: AtomicU64,
    digests: AtomicU64,
    fallbacks: AtomicU64,
}

/// A snapshot of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CounterSnapshot {
    /// Requests sent.
    pub sent: u64,
    /// Deliveries completed.
    pub delivered: u64,
    /// Transient failures scheduled for retry.
    pub retried: u64,
    /// Requests the platform rate limited (should stay 0).
    pub rate_limited: u64,
    /// Deliveries dead-lettered.
    pub dead: u64,
    /// Deliveries split per recipient.
    pub split: u64,
    /// Deliveries merged into digests.
    pub merged: u64,
    /// Digests created.
    pub digests: u64,
    /// Fallback copies enqueued.
    pub fallbacks: u64,
}

/// One destination's limiter and breaker, as shown in status.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DestinationStatus {
    pub key: String,
    pub breaker: BreakerState,
    pub consecutive_failures: u32,
    /// Times the breaker opened.
    pub breaker_opened_total: u64,
    /// Recent share of failed requests (0..1).
    pub error_rate: f64,
    pub in_flight: u32,
    /// Requests the limiter would allow now.
    pub available_now: u32,
    /// The platform asked us to wait until then (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<i64>,
    /// Requests started.
    pub sent_total: u64,
}

/// What the dispatcher is doing.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DispatchStatus {
    pub owner: String,
    pub running: bool,
    pub in_flight: usize,
    pub counters: CounterSnapshot,
    pub destinations: Vec<DestinationStatus>,
    /// Queue counts from the store (absent if the store could not answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<QueueStats>,
}

struct DestState {
    limiter: Limiter,
    breaker: Breaker,
}

#[derive(Default)]
struct TargetState {
    /// Round-robin position in a robot pool.
    rr: usize,
    last_coalesce: i64,
    /// The last coalescing round merged nothing: back off.
    coalesce_idle: bool,
    /// How far the backlog of this target must be counted for the coalescing
    /// decision (its destinations' capacity within `max_delay`, plus one).
    count_need: u64,
    warned_unknown: bool,
}

#[derive(Default)]
struct State {
    dests: HashMap<String, DestState>,
    targets: HashMap<String, TargetState>,
    next_fallback_scan: i64,
    cycles: usize,
}

struct Inner {
    store: Arc<dyn Store>,
    channels: Arc<ArcSwap<ChannelSet>>,
    cfg: DispatchConfig,
    state: Mutex<State>,
    counters: Counters,
    running: AtomicBool,
    in_flight: std::sync::atomic::AtomicUsize,
    alerts: std::sync::OnceLock<crate::alerts::Alerts>,
}

/// The dispatcher. Cheap to clone; [`Dispatcher::run`] drives it.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("cfg", &self.inner.cfg)
            .finish()
    }
}

/// A claimed delivery with the destination permit already taken.
struct Job {
    claimed: Claimed,
    channel: Channel,
    members: Vec<DestinationEntry>,
    member: usize,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        channels: Arc<ArcSwap<ChannelSet>>,
        mut cfg: DispatchConfig,
    ) -> Self {
        // A lease shorter than a send would let this very dispatcher claim the
        // delivery again while the first send is still running.
        let floor = cfg.send_timeout + Duration::from_secs(5);
        if cfg.lease < floor {
            tracing::warn!(
                lease_ms = cfg.lease.as_millis() as u64,
                raised_to_ms = floor.as_millis() as u64,
                "the claim lease is shorter than the send timeout; raising it"
            );
            cfg.lease = floor;
        }
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                channels,
                cfg,
                state: Mutex::new(State::default()),
                counters: Counters::default(),
                running: AtomicBool::new(false),
                in_flight: Default::default(),
                alerts: Default::default(),
            }),
        }
    }

    /// Send self-alerts (breaker opened, token refresh failing, permanent
    /// errors, DLQ size) through `alerts`. Set once, before [`Dispatcher::run`].
    pub fn set_alerts(&self, alerts: crate::alerts::Alerts) {
        let _ = self.inner.alerts.set(alerts);
    }

    /// The lease owner id.
    pub fn owner(&self) -> &str {
        &self.inner.cfg.owner
    }

    /// Breakers, limiters and counters (no store access).
    pub fn snapshot(&self) -> DispatchStatus {
        let now = self.inner.now();
        let st = self.inner.state.lock();
        let mut destinations: Vec<DestinationStatus> = st
            .dests
            .iter()
            .map(|(k, d)| DestinationStatus {
                key: k.clone(),
                breaker: d.breaker.state(now),
                consecutive_failures: d.breaker.consecutive_failures(),
                breaker_opened_total: d.breaker.opened_total,
                error_rate: d.breaker.error_rate,
                in_flight: d.limiter.in_flight(),
                available_now: d.limiter.available(now),
                blocked_until: d.limiter.blocked_until().filter(|&t| t > now),
                sent_total: d.limiter.started_total,
            })
            .collect();
        destinations.sort_by(|a, b| a.key.cmp(&b.key));
        let c = &self.inner.counters;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DispatchStatus {
            owner: self.inner.cfg.owner.clone(),
            running: self.inner.running.load(Ordering::Relaxed),
            in_flight: self.inner.in_flight.load(Ordering::Relaxed),
            counters: CounterSnapshot {
                sent: g(&c.sent),
                delivered: g(&c.delivered),
                retried: g(&c.retried),
                rate_limited: g(&c.rate_limited),
                dead: g(&c.dead),
                split: g(&c.split),
                merged: g(&c.merged),
                digests: g(&c.digests),
                fallbacks: g(&c.fallbacks),
            },
            destinations,
            queue: None,
        }
    }

    /// [`Dispatcher::snapshot`] plus the store's queue statistics.
    pub async fn status(&self) -> DispatchStatus {
        let mut s = self.snapshot();
        match self.inner.store.stats().await {
            Ok(q) => s.queue = Some(q),
            Err(e) => tracing::warn!(error = %e, "queue statistics unavailable"),
        }
        s
    }

    /// The breaker state of one destination (by key), if it has been used.
    pub fn breaker(&self, key: &str) -> Option<BreakerState> {
        let now = self.inner.now();
        self.inner
            .state
            .lock()
            .dests
            .get(key)
            .map(|d| d.breaker.state(now))
    }

    /// Run until `shutdown` resolves; then stop claiming, let in-flight sends
    /// finish within the drain deadline, cut off the rest and release their
    /// deliveries (they are sent again later, at least once).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let inner = self.inner.clone();
        inner.running.store(true, Ordering::Relaxed);
        tokio::pin!(shutdown);
        let notify = inner.store.notifier();
        let mut tasks: JoinSet<()> = JoinSet::new();
        tracing::info!(owner = %inner.cfg.owner, "dispatcher started");
        let mut last_cycle: Option<tokio::time::Instant> = None;
        loop {
            // Wake-ups come per enqueue and per finished send; under load, batch
            // them into at most one cycle per MIN_CYCLE_GAP.
            if let Some(gap) = last_cycle.and_then(|t| MIN_CYCLE_GAP.checked_sub(t.elapsed())) {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(gap) => {}
                }
            }
            last_cycle = Some(tokio::time::Instant::now());
            let now = inner.now();
            let wake = match inner.cycle(&mut tasks).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "dispatch cycle failed; retrying shortly");
                    now + 1_000
                }
            };
            let sleep_ms = (wake - inner.now()).clamp(0, inner.cfg.idle_poll.as_millis() as i64);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = notify.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
                Some(r) = tasks.join_next(), if !tasks.is_empty() => log_join(r),
            }
            while let Some(r) = tasks.try_join_next() {
                log_join(r);
            }
        }
        inner.running.store(false, Ordering::Relaxed);
        tracing::info!(
            in_flight = tasks.len(),
            "dispatcher stopping: draining in-flight sends"
        );
        let deadline = tokio::time::sleep(inner.cfg.drain_deadline);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    Some(r) => log_join(r),
                    None => break,
                },
                _ = &mut deadline => {
                    tracing::warn!(cut_off = tasks.len(), "drain deadline passed; releasing unfinished deliveries");
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        match inner.store.release(&inner.cfg.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released claimed deliveries"),
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "could not release claimed deliveries; their leases will expire")
            }
        }
        tracing::info!("dispatcher stopped");
    }
}

fn log_join(r: Result<(), tokio::task::JoinError>) {
    if let Err(e) = r {
        if e.is_panic() {
            tracing::error!(error = %e, "a send task panicked; its delivery returns when the lease expires");
        }
    }
}

impl Inner {
    fn now(&self) -> i64 {
        self.cfg.clock.now_ms()
    }

    /// Make sure every member has limiter and breaker state with the current
    /// config's quotas.
    fn sync_members(&self, members: &[&DestinationEntry]) {
        let mut st = self.state.lock();
        for m in members {
            match st.dests.get_mut(&m.key) {
                Some(d) => {
                    d.limiter.set_quotas(m.quotas.clone());
                    d.breaker.set_config(m.breaker);
                }
                None => {
                    st.dests.insert(
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
    fn capacity(&self, members: &[&DestinationEntry], now: i64) -> u32 {
        let st = self.state.lock();
        members
            .iter()
            .filter_map(|m| st.dests.get(&m.key))
            .map(|d| d.breaker.available(now).min(d.limiter.available(now)))
            .fold(0u32, |a, b| a.saturating_add(b))
    }

    /// When some member may start a request again, if known.
    fn next_free(&self, members: &[&DestinationEntry], now: i64) -> Option<i64> {
        let st = self.state.lock();
        members
            .iter()
            .filter_map(|m| st.dests.get(&m.key))
            .filter_map(|d| match d.breaker.paused_until(now) {
                Some(t) => Some(t.max(d.limiter.next_free(now).unwrap_or(t))),
                None => d.limiter.next_free(now),
            })
            .min()
    }

    /// Pick a member (in turn, for pools) whose breaker and limiter allow a
    /// request now, and take its permit.
    fn acquire(
        &self,
        target: &str,
        members: &[DestinationEntry],
        prefer: Option<usize>,
        now: i64,
    ) -> Option<usize> {
        let mut st = self.state.lock();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = match prefer {
            Some(p) => p,
            None => st.targets.get(target).map_or(0, |t| t.rr),
        };
        for k in 0..n {
            let i = (start + k) % n;
            let Some(d) = st.dests.get_mut(&members[i].key) else {
                continue;
            };
            if d.breaker.available(now) == 0 || !d.limiter.try_acquire(now) {
                continue;
            }
            d.breaker.on_start(now);
            st.targets.entry(target.to_string()).or_default().rr = (i + 1) % n;
            return Some(i);
        }
        None
    }

    /// Give back a permit that was not used.
    fn cancel(&self, key: &str) {
        if let Some(d) = self.state.lock().dests.get_mut(key) {
            d.limiter.cancel();
            d.breaker.on_abandon();
        }
    }

    /// Account a finished request on its destination.
    fn settle(&self, key: &str, report: &Report, end: i64) {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let mut st = self.state.lock();
        let Some(d) = st.dests.get_mut(key) else {
            return;
        };
        d.limiter.release(end);
        match report.outcome {
            Outcome::Retry { .. } => {
                let opened = d.breaker.opened_total;
                d.breaker.on_failure(end);
                if d.breaker.opened_total > opened {
                    let n = d.breaker.consecutive_failures();
                    crate::telemetry::events::breaker_opened(key, n);
                    if let Some(a) = self.alerts.get() {
                        a.breaker_opened(key, n);
                    }
                }
            }
            Outcome::RateLimited { wait } => {
                d.limiter.block_until(end + wait.as_millis() as i64);
                d.breaker.on_success();
            }
            _ => d.breaker.on_success(),
        }
    }

    fn error_rate(&self, key: &str) -> f64 {
        self.state
            .lock()
            .dests
            .get(key)
            .map_or(0.0, |d| d.breaker.error_rate)
    }

    /// How far to count each target's backlog: enough for a full claim, and
    /// for what the coalescing decisions of the last cycles needed.
    fn backlog_count_cap(&self) -> u64 {
        let st = self.state.lock();
        let need = st.targets.values().map(|t| t.count_need).max().unwrap_or(0);
        need.max(self.cfg.claim_batch as u64)
            .max(self.cfg.max_in_flight as u64)
            .min(MAX_BACKLOG_COUNT)
    }

    async fn cycle(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> Result<i64, StoreError> {
        let now = self.now();
        let set = self.channels.load_full();
        let mut wake = now + self.cfg.idle_poll.as_millis() as i64;
        self.scan_fallbacks(&set, now).await;
        let mut backlog = self.store.backlog(self.backlog_count_cap()).await?;
        // Start each cycle at another target, so when `max_in_flight` runs out
        // the same targets are not always the ones left waiting.
        if !backlog.is_empty() {
            let mut st = self.state.lock();
            st.cycles = st.cycles.wrapping_add(1);
            let k = st.cycles % backlog.len();
            backlog.rotate_left(k);
        }
        for b in backlog {
            if b.due == 0 {
                if let Some(t) = b.next_due_at {
                    wake = wake.min(t);
                }
                continue;
            }
            let Some(res) = set.resolve(&b.target) else {
                let mut st = self.state.lock();
                let t = st.targets.entry(b.target.clone()).or_default();
                if !t.warned_unknown {
                    t.warned_unknown = true;
                    tracing::warn!(target_key = %b.target, waiting = b.pending,
                        "deliveries wait: their channel or destination is not in the current config");
                }
                continue;
            };
            if let Some(t) = self.state.lock().targets.get_mut(&b.target) {
                t.warned_unknown = false;
            }
            self.sync_members(&res.members);
            if let Some(cc) = res.channel.coalesce {
                if let Err(e) = self
                    .maybe_coalesce(&b, res.channel, &res.members, cc, now)
                    .await
                {
                    tracing::warn!(error = %e, target_key = %b.target, "coalescing failed; sending individually");
                }
            }
            let free = self.cfg.max_in_flight.saturating_sub(tasks.len());
            if free == 0 {
                break;
            }
            let cap = self.capacity(&res.members, now);
            if cap == 0 {
                if let Some(t) = self.next_free(&res.members, now) {
                    wake = wake.min(t);
                }
                continue;
            }
            let n = (cap as u64)
                .min(b.due.max(1))
                .min(free as u64)
                .min(self.cfg.claim_batch as u64) as u32;
            let claimed = self
                .store
                .claim(ClaimRequest {
                    target: Some(b.target.clone()),
                    limit: n,
                    lease: self.cfg.lease,
                    owner: self.cfg.owner.clone(),
                })
                .await?;
            let members: Vec<DestinationEntry> = res.members.iter().map(|m| (*m).clone()).collect();
            for c in claimed {
                let now = self.now();
                match self.acquire(&b.target, &members, None, now) {
                    Some(member) => {
                        let job = Job {
                            claimed: c,
                            channel: res.channel.clone(),
                            members: members.clone(),
                            member,
                        };
                        let me = self.clone();
                        self.in_flight.fetch_add(1, Ordering::Relaxed);
                        let span = crate::telemetry::events::delivery_span(&job.claimed);
                        tasks.spawn(tracing::Instrument::instrument(
                            async move {
                                me.deliver(job).await;
                                me.in_flight.fetch_sub(1, Ordering::Relaxed);
                            },
                            span,
                        ));
                    }
                    None => {
                        // The claim raced with capacity changes: give it back unchanged.
                        let _ = self
                            .store
                            .requeue_without_attempt(
                                c.delivery_id,
                                &self.cfg.owner,
                                now,
                                vec![],
                                c.parts_done,
                            )
                            .await;
                    }
                }
            }
        }
        Ok(wake)
    }

    /// Send one claimed delivery and record the outcome.
    async fn deliver(self: &Arc<Self>, job: Job) {
        let Job {
            claimed: c,
            channel,
            members,
            mut member,
        } = job;
        let owner = self.cfg.owner.clone();
        let mut msg = c.message.clone();
        // Platform dedup keys (Feishu `uuid`, WeChat `client_msg_id`, webhook ids)
        // derive from the message id: the gateway's id, unique per accepted
        // message and identical on every retry.
        msg.id = Some(c.message_id.clone());
        if !c.recipients.is_empty() {
            msg.recipients = c.recipients.clone();
        }
        let payloads = match members[member].dest.render(&msg) {
            Ok(p) if !p.is_empty() => p,
            Ok(_) => {
                self.cancel(&members[member].key);
                let _ = self
                    .store
                    .complete(c.delivery_id, &owner, vec![], c.parts_done)
                    .await;
                return;
            }
            Err(e) => {
                self.cancel(&members[member].key);
                let reason = DeadReason {
                    code: None,
                    reason: format!(
                        "cannot render the message for {}: {e}",
                        members[member].dest.kind()
                    ),
                };
                self.dead(&c, &channel, reason, vec![], c.parts_done as usize)
                    .await;
                return;
            }
        };
        let mut attempts: Vec<AttemptRecord> = Vec::new();
        let mut part = c.parts_done as usize;
        // Recipients that failed, with the first part they missed.
        let mut failed: Vec<(imrelay_sdk::outcome::RecipientFailure, usize)> = Vec::new();
        let mut have_permit = true;
        while part < payloads.len() {
            if !have_permit {
                let now = self.now();
                match self.acquire(&c.target, &members, Some(member), now) {
                    Some(i) => member = i,
                    None => {
                        // The next part must wait for the rate window: requeue
                        // with progress kept, not an attempt.
                        let refs: Vec<&DestinationEntry> = members.iter().collect();
                        let at = self.next_free(&refs, now).unwrap_or(now + 100);
                        let wait = Duration::from_millis((at - now).max(0) as u64);
                        crate::telemetry::events::rate_limit_wait(
                            &members[member].key,
                            "limiter",
                            wait,
                        );
                        self.finish(&c, attempts, part, FinishAction::Requeue { at })
                            .await;
                        return;
                    }
                }
            }
            have_permit = false;
            let key = members[member].key.clone();
            let shared = self.cfg.shared_limits.as_ref();
            let hold = self.cfg.send_timeout;
            let quotas = &members[member].quotas;
            let permit = match limits::shared_admit(shared, &key, quotas, hold, self.now()).await {
                Ok(p) => p,
                Err(at) => {
                    // Over the cluster's quota: not an attempt, progress kept.
                    self.cancel(&key);
                    self.finish(&c, attempts, part, FinishAction::Requeue { at })
                        .await;
                    return;
                }
            };
            let started = self.now();
            let report = match tokio::time::timeout(
                self.cfg.send_timeout,
                tracing::Instrument::instrument(
                    members[member].dest.send(&payloads[part]),
                    crate::telemetry::events::platform_call_span(&key),
                ),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Report::new(
                    Outcome::Retry { after: None },
                    format!("no answer within {} s", self.cfg.send_timeout.as_secs_f64()),
                ),
            };
            let ended = self.now();
            self.settle(&key, &report, ended);
            limits::shared_release(shared, permit, &report).await;
            crate::telemetry::events::attempt(&key, &report, started, ended);
            if let (Some(a), false) = (self.alerts.get(), report.outcome.is_delivered()) {
                a.attempt_failed(&channel.name, &key, &report.message);
            }
            attempts.push(AttemptRecord::from_report(
                &report,
                &key,
                part as u32,
                started,
                ended,
            ));
            match report.outcome {
                Outcome::Delivered => {
                    for f in report.failed_recipients {
                        if !failed.iter().any(|(x, _)| x.recipient == f.recipient) {
                            failed.push((f, part));
                        }
                    }
                    part += 1;
                    if part < payloads.len() {
                        let until = self.now() + self.cfg.lease.as_millis() as i64;
                        let batch = std::mem::take(&mut attempts);
                        if let Err(e) = self
                            .store
                            .progress(c.delivery_id, &owner, batch, part as u32, until)
                            .await
                        {
                            tracing::warn!(delivery = c.delivery_id, error = %e, "stopping: progress could not be recorded");
                            return;
                        }
                    }
                }
                Outcome::Retry { after } => {
                    self.retry_or_dead(&c, &channel, &key, &report, after, attempts, part)
                        .await;
                    return;
                }
                Outcome::RefreshToken => {
                    if let Some(a) = self.alerts.get() {
                        a.token_refresh_failing(&channel.name, &key, &report.message);
                    }
                    let again = c.last_outcome.as_deref() == Some("refresh_token");
                    if again {
                        let reason = reason_of(&report);
                        self.dead(&c, &channel, reason, attempts, part).await;
                    } else {
                        // The SDK refreshed the token once already; one more
                        // immediate try, then it is permanent.
                        self.counters.retried.fetch_add(1, Ordering::Relaxed);
                        crate::telemetry::events::retry_scheduled(
                            &c,
                            &key,
                            &report,
                            Duration::ZERO,
                        );
                        let at = self.now();
                        self.finish(&c, attempts, part, FinishAction::Retry { at })
                            .await;
                    }
                    return;
                }
                Outcome::RateLimited { wait } => {
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::events::rate_limited(&c, &key, wait);
                    tracing::warn!(destination = %key, wait_ms = wait.as_millis() as u64,
                        "the platform rate limited a request; the destination waits and the delivery is requeued");
                    let at = ended + wait.as_millis() as i64;
                    self.finish(&c, attempts, part, FinishAction::Requeue { at })
                        .await;
                    return;
                }
                Outcome::Permanent => {
                    let reason = reason_of(&report);
                    self.dead(&c, &channel, reason, attempts, part).await;
                    return;
                }
            }
        }
        if failed.is_empty() {
            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::events::delivered(&c, &members[member].key, self.now());
            self.finish(&c, attempts, part, FinishAction::Done).await;
            return;
        }
        // Partial success: this delivery is done for everyone else; each failed
        // recipient gets a delivery of its own.
        let now = self.now();
        let rate = self.error_rate(&members[member].key);
        let children = failed
            .into_iter()
            .map(|(f, first_missed)| ChildDelivery {
                recipients: vec![f.recipient],
                parts_done: first_missed as u32,
                state: match f.outcome {
                    Outcome::RateLimited { wait } => ChildState::Pending {
                        due_at: now + wait.as_millis() as i64,
                    },
                    Outcome::Retry { after } => ChildState::Retry {
                        due_at: now
                            + retry::delay_random(1, &channel.retry, after, rate).as_millis()
                                as i64,
                    },
                    Outcome::RefreshToken | Outcome::Delivered => ChildState::Retry { due_at: now },
                    Outcome::Permanent => ChildState::Dead(DeadReason {
                        code: None,
                        reason: f.reason,
                    }),
                },
            })
            .collect();
        self.counters.split.fetch_add(1, Ordering::Relaxed);
        self.finish(&c, attempts, part, FinishAction::Split { children })
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn retry_or_dead(
        self: &Arc<Self>,
        c: &Claimed,
        channel: &Channel,
        key: &str,
        report: &Report,
        hint: Option<Duration>,
        attempts: Vec<AttemptRecord>,
        part: usize,
    ) {
        let now = self.now();
        let failed = c.attempts + 1;
        let policy = &channel.retry;
        let age = Duration::from_millis((now - c.created_at).max(0) as u64);
        if failed >= policy.max_attempts.max(1) || age >= policy.max_age {
            let why = if failed >= policy.max_attempts.max(1) {
                format!("gave up after {failed} attempts")
            } else {
                format!(
                    "gave up: the message is older than max_age ({} s)",
                    policy.max_age.as_secs()
                )
            };
            let reason = DeadReason {
                code: report.code.as_ref().map(|c| c.to_string()),
                reason: format!("{why}; last answer: {}", report.message),
            };
            self.dead(c, channel, reason, attempts, part).await;
            return;
        }
        let delay = retry::delay_random(failed, policy, hint, self.error_rate(key));
        self.counters.retried.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::events::retry_scheduled(c, key, report, delay);
        self.finish(
            c,
            attempts,
            part,
            FinishAction::Retry {
                at: now + delay.as_millis() as i64,
            },
        )
        .await;
    }

    /// Dead-letter, with a fallback copy when the channel has one.
    async fn dead(
        self: &Arc<Self>,
        c: &Claimed,
        channel: &Channel,
        reason: DeadReason,
        attempts: Vec<AttemptRecord>,
        part: usize,
    ) {
        self.counters.dead.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::events::dead(c, &reason, attempts.last());
        if let Some(a) = self.alerts.get() {
            if let Some(last) = attempts.last().filter(|a| a.outcome == "permanent") {
                a.permanent_error(
                    &channel.name,
                    &last.destination,
                    reason.code.as_deref(),
                    &reason.reason,
                );
            }
            a.check_dlq();
        }
        tracing::warn!(message_id = %c.message_id, target_key = %c.target, code = ?reason.code, reason = %reason.reason,
            "delivery dead-lettered");
        let fallback = match (&channel.fallback, c.kind) {
            (Some(fb), kind) if kind != MessageKind::Fallback => {
                let set = self.channels.load();
                let m = fallback_message(
                    &set,
                    &channel.name,
                    fb,
                    &c.message_id,
                    &c.message,
                    &reason.reason,
                );
                if m.is_some() {
                    self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                }
                m
            }
            _ => None,
        };
        self.finish(
            c,
            attempts,
            part,
            FinishAction::Dead {
                reason,
                fallback: fallback.map(Box::new),
            },
        )
        .await;
    }

    async fn finish(
        &self,
        c: &Claimed,
        attempts: Vec<AttemptRecord>,
        part: usize,
        action: FinishAction,
    ) {
        let f = Finish {
            attempts,
            parts_done: part as u32,
            action,
        };
        if let Err(e) = self.store.finish(c.delivery_id, &self.cfg.owner, f).await {
            tracing::warn!(delivery = c.delivery_id, error = %e, "could not record a delivery's outcome");
        }
    }

    /// Merge the backlog of `b.target` into digests when it cannot drain within
    /// `max_delay` at the destinations' rate.
    async fn maybe_coalesce(
        &self,
        b: &TargetBacklog,
        channel: &Channel,
        members: &[&DestinationEntry],
        cc: CoalesceConfig,
        now: i64,
    ) -> Result<(), StoreError> {
        let capacity: f64 = {
            let st = self.state.lock();
            members
                .iter()
                .filter_map(|m| st.dests.get(&m.key))
                .map(|d| d.limiter.capacity_within(cc.max_delay))
                .sum()
        };
        {
            // The next cycles count the backlog this far; until then `pending`
            // may stop short of `capacity`, which only delays coalescing.
            let mut st = self.state.lock();
            let t = st.targets.entry(b.target.clone()).or_default();
            t.count_need = (capacity.ceil() as u64).saturating_add(1);
        }
        if (b.pending as f64) <= capacity || b.due < 2 {
            return Ok(());
        }
        {
            let mut st = self.state.lock();
            let t = st.targets.entry(b.target.clone()).or_default();
            let pause = if t.coalesce_idle {
                (cc.max_delay.as_millis() as i64 / 2).max(1_000)
            } else {
                (cc.max_delay.as_millis() as i64 / 4).min(1_000)
            };
            if t.last_coalesce != 0 && now - t.last_coalesce < pause {
                return Ok(());
            }
            t.last_coalesce = now;
        }
        let claimed = self
            .store
            .claim(ClaimRequest {
                target: Some(b.target.clone()),
                limit: 1_000,
                lease: self.cfg.lease,
                owner: self.cfg.owner.clone(),
            })
            .await?;
        let mut candidates = Vec::new();
        let mut keep = Vec::new();
        for c in claimed {
            if c.kind == MessageKind::Digest || c.parts_done > 0 || !c.recipients.is_empty() {
                keep.push(c);
            } else {
                candidates.push(c);
            }
        }
        let by_id: HashMap<i64, Claimed> = candidates
            .iter()
            .map(|c| (c.delivery_id, c.clone()))
            .collect();
        let (digests, left) = coalesce::plan(
            candidates
                .into_iter()
                .map(|c| coalesce::Candidate {
                    delivery_id: c.delivery_id,
                    message_id: c.message_id,
                    message: c.message,
                })
                .collect(),
            cc.max_bytes,
        );
        let mut merged = 0u64;
        for d in digests {
            let n = d.members.len() as u64;
            let mut m = NewMessage::new(channel.name.clone(), d.message, vec![b.target.clone()]);
            m.message.id = Some(m.id.clone());
            m.kind = MessageKind::Digest;
            match self
                .store
                .coalesce(&self.cfg.owner, d.members.clone(), m)
                .await
            {
                Ok(id) => {
                    merged += n;
                    self.counters.digests.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(digest = %id, merged = n, target_key = %b.target, "backlog merged into a digest");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not create a digest; its members are sent individually");
                    for id in d.members {
                        if let Some(c) = by_id.get(&id) {
                            keep.push(c.clone());
                        }
                    }
                }
            }
        }
        self.counters.merged.fetch_add(merged, Ordering::Relaxed);
        if let Some(t) = self.state.lock().targets.get_mut(&b.target) {
            t.coalesce_idle = merged == 0;
        }
        for id in left.iter().map(|c| c.delivery_id) {
            if let Some(c) = by_id.get(&id) {
                keep.push(c.clone());
            }
        }
        // Give back what was not merged, unchanged and due now, in one go (the
        // store group-commits concurrent writes).
        let now = self.now();
        let owner = self.cfg.owner.clone();
        let requeues = keep.iter().map(|c| {
            self.store.finish(
                c.delivery_id,
                &owner,
                Finish {
                    attempts: vec![],
                    parts_done: c.parts_done,
                    action: FinishAction::Requeue { at: now },
                },
            )
        });
        for r in futures::future::join_all(requeues).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "could not give back a delivery after coalescing");
            }
        }
        Ok(())
    }

    /// Copy deliveries that stayed undelivered past their channel's fallback
    /// `after` to the fallback channel (once each).
    async fn scan_fallbacks(&self, set: &ChannelSet, now: i64) {
        {
            let mut st = self.state.lock();
            if now < st.next_fallback_scan {
                return;
            }
            st.next_fallback_scan = now + self.cfg.fallback_scan.as_millis() as i64;
        }
        for ch in set.channels.values() {
            let Some(fb) = &ch.fallback else { continue };
            let Some(after) = fb.after else { continue };
            let before = now - after.as_millis() as i64;
            let overdue = match self.store.overdue(&ch.name, before, 100).await {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "fallback scan failed");
                    return;
                }
            };
            for o in overdue {
                let Ok(Some(view)) = self.store.get_message(&o.message_id).await else {
                    continue;
                };
                let why = format!("still undelivered after {} s", after.as_secs());
                let Some(m) =
                    fallback_message(set, &ch.name, fb, &o.message_id, &view.message, &why)
                else {
                    continue;
                };
                match self.store.fall_back(o.delivery_id, m).await {
                    Ok(true) => {
                        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(message_id = %o.message_id, target_key = %o.target, fallback = %fb.channel,
                            "message copied to the fallback channel: primary unavailable too long");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not enqueue a fallback copy"),
                }
            }
        }
    }
}

fn reason_of(report: &Report) -> DeadReason {
    let mut reason = report.message.clone();
    if let Some(h) = &report.hint {
        reason.push_str(" -- ");
        reason.push_str(h);
    }
    DeadReason {
        code: report.code.as_ref().map(|c| c.to_string()),
        reason,
    }
}

/// The copy of a message for a fallback channel, marked as such. `None` when the
/// fallback channel does not exist in the current config (logged).
pub fn fallback_message(
    set: &ChannelSet,
    from_channel: &str,
    fb: &Fallback,
    message_id: &str,
    msg: &Message,
    why: &str,
) -> Option<NewMessage> {
    let Some(target) = set.get(&fb.channel) else {
        tracing::warn!(channel = %from_channel, fallback = %fb.channel, "fallback channel is not configured; no copy sent");
        return None;
    };
    let mut m = msg.clone();
    m.id = None;
    m.title = Some(format!(
        "[fallback from {from_channel}] {}",
        msg.title_or_default()
    ));
    let note = format!("[fallback from channel {from_channel}, message {message_id}: {why}]");
    match &mut m.body {
        Body::Text { text } | Body::Markdown { text } => *text = format!("{note}\n{text}"),
        Body::Card { text, .. } | Body::Link { text, .. } => *text = format!("{note}\n{text}"),
        _ => {}
    }
    let mut nm = NewMessage::new(fb.channel.clone(), m, target.targets());
    nm.kind = MessageKind::Fallback;
    nm.origin = Some(message_id.to_string());
    Some(nm)
}
