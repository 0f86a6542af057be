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
//! # Order
//! An ordered channel (the default) delivers in accept order per
//! conversation: a target has at most one task sending (a *lane*), which takes
//! the claimed deliveries in the store's order (oldest due first) one after
//! the other per conversation. A robot or webhook target is one conversation
//! (its group); an app destination has one per recipient set, sent to side by
//! side. A
//! delivery that must wait keeps its claim and its place: a rate-limit,
//! breaker or cluster wait holds the lane (the others could not go either),
//! and a retry holds it for at most the channel's `order_hold`; past that the
//! delivery goes back to the queue, the ones behind it go on, and when it is
//! sent at last it is recorded as out of order (an `out_of_order` entry in
//! its history and `imrelay_deliveries_out_of_order_total`). Across
//! instances on PostgreSQL the store sequences the claims of an ordered
//! target (its `order_hold` goes with the claim): one instance at a time, in
//! accept order, and it says when a later delivery went out first.
//! `ordered = false` sends to a target concurrently.
//!
//! # Leases
//! A claim is a lease of `lease` (default 15 s), so another dispatcher takes a
//! dead one's work over soon. While a send runs, a heartbeat extends the
//! leases of the claims in flight every third of the lease, however long the
//! platform takes to answer; a claim whose task ended (even without recording
//! its outcome) is no longer extended and returns when its lease runs out.
//!
//! # Store errors
//! None is dropped: each is logged with what happens next and counted
//! (`imrelay_dispatch_store_errors_total`, `store_errors` in the status). A
//! lost lease leaves the delivery to the dispatcher that holds it now; any
//! other failed write leaves it claimed until its lease ends, and it is sent
//! again then (at least once).
//!
//! # Submodules
//! One job each; a delivery goes admit → send → decide → apply.
//! - `admission`: whether a destination takes a request now (limiter,
//!   breaker, cluster permit), and their bookkeeping.
//! - `deliver`: sends one claimed delivery, part by part.
//! - [`decide`]: what follows an answer (pure).
//! - `executor`: carries a decision out (counters, telemetry, the store).
//! - [`coalesce`]: digests of a backlog.
//! - [`fallback`]: copies for the fallback channel.
//! - [`retry`]: the backoff function.
//! - [`breaker`]: circuit breaker.
//! - [`limits`]: multi-quota rate limiter.
//! - [`recipients`]: the quotas of each recipient (user, chat, number).

mod admission;
pub mod breaker;
pub mod coalesce;
pub mod decide;
mod deliver;
mod executor;
pub mod fallback;
pub mod limits;
mod ops;
pub mod recipients;
pub mod retry;

pub use fallback::fallback_message;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::clock::Clock;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::channels::{Channel, ChannelSet, ChannelSource, DestinationEntry, Resolved};
use crate::store::{
    ClaimRequest, Claimed, DeliveryId, QueueStats, Store, StoreError, Target, TargetBacklog,
};
use admission::Admission;
use breaker::BreakerState;
use executor::log_join;

/// Shortest lease: the heartbeat extends leases every third of it, and a
/// store write must fit in what is left.
const MIN_LEASE: Duration = Duration::from_secs(1);

/// The most conversations per target whose last sent delivery is kept (an
/// app may have a recipient set per message); past it they are forgotten,
/// and a late delivery among them goes unmarked.
const MAX_CONVERSATIONS: usize = 10_000;

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
    /// How long a claim is held before another dispatcher may take it over
    /// (when this one died). Extended by a heartbeat while its send runs, so
    /// it need not cover the send timeout.
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
    /// The zone times on updated cards are shown in (`[lifecycle] time_zone`).
    pub card_time_zone: jiff::tz::TimeZone,
}

impl DispatchConfig {
    /// Defaults with the given clock.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        DispatchConfig {
            owner: format!("dispatcher-{}", uuid::Uuid::now_v7().simple()),
            lease: Duration::from_secs(15),
            max_in_flight: 256,
            claim_batch: 64,
            idle_poll: Duration::from_secs(1),
            drain_deadline: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            card_time_zone: crate::lifecycle::LifecycleSettings::default().time_zone,
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
    store_errors: AtomicU64,
    cycles: AtomicU64,
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
    /// Store operations that failed (each logged with what happens next).
    pub store_errors: u64,
    /// Dispatch cycles run (each reads the backlog); on a quiet gateway
    /// about one per message.
    pub cycles: u64,
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

#[derive(Default)]
struct TargetState {
    last_coalesce: i64,
    /// The last coalescing round merged nothing: back off.
    coalesce_idle: bool,
    /// Ordered channels: the highest delivery id sent so far per
    /// conversation; a delivery below it is sent out of order.
    last_sent: HashMap<String, DeliveryId>,
    /// How far the backlog of this target must be counted for the coalescing
    /// decision (its destinations' capacity within `max_delay`, plus one).
    count_need: u64,
    warned_unknown: bool,
}

#[derive(Default)]
struct State {
    targets: HashMap<Target, TargetState>,
    next_fallback_scan: i64,
    cycles: usize,
}

struct Inner {
    store: Arc<dyn Store>,
    channels: Arc<dyn ChannelSource>,
    cfg: DispatchConfig,
    admission: Admission,
    state: Mutex<State>,
    counters: Counters,
    running: AtomicBool,
    /// Woken when `running` turns false: sends waiting in place give their
    /// claims back instead of holding up the drain.
    stopping: tokio::sync::Notify,
    in_flight: std::sync::atomic::AtomicUsize,
    /// Claims whose send task runs: the heartbeat extends their leases.
    held: Mutex<HashSet<DeliveryId>>,
    /// Targets of ordered channels with a lane sending.
    lanes: Mutex<HashSet<Target>>,
    /// When each thread's card at each target was last updated (ms), to
    /// keep to the platform's update limits (Feishu: 5 a second per message).
    update_pace: Mutex<HashMap<String, i64>>,
    alerts: std::sync::OnceLock<crate::self_alerts::Alerts>,
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

/// A claimed delivery to send.
struct Job {
    claimed: Claimed,
    channel: Channel,
    members: Vec<DestinationEntry>,
    /// The member whose local permit the dispatch loop took; `None`: the
    /// permit is taken when the job's turn comes (a lane's later jobs).
    member: Option<usize>,
    /// A delivery accepted after this one was sent before it.
    out_of_order: bool,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        channels: Arc<dyn ChannelSource>,
        mut cfg: DispatchConfig,
    ) -> Self {
        // The heartbeat keeps a lease alive however long the send takes, but
        // it needs the time for a store write within each lease.
        if cfg.lease < MIN_LEASE {
            tracing::warn!(
                lease_ms = cfg.lease.as_millis() as u64,
                raised_to_ms = MIN_LEASE.as_millis() as u64,
                "the claim lease is too short for its heartbeat; raising it"
            );
            cfg.lease = MIN_LEASE;
        }
        Dispatcher {
            inner: Arc::new(Inner {
                store,
                channels,
                admission: Admission::new(
                    cfg.clock.clone(),
                    cfg.shared_limits.clone(),
                    cfg.send_timeout,
                ),
                cfg,
                state: Mutex::new(State::default()),
                counters: Counters::default(),
                running: AtomicBool::new(false),
                stopping: tokio::sync::Notify::new(),
                in_flight: Default::default(),
                held: Mutex::default(),
                lanes: Mutex::default(),
                update_pace: Mutex::default(),
                alerts: Default::default(),
            }),
        }
    }

    /// Send self-alerts (breaker opened, token refresh failing, permanent
    /// errors, DLQ size) through `alerts`. Set once, before [`Dispatcher::run`].
    pub fn set_alerts(&self, alerts: crate::self_alerts::Alerts) {
        let _ = self.inner.alerts.set(alerts);
    }

    /// The lease owner id.
    pub fn owner(&self) -> &str {
        &self.inner.cfg.owner
    }

    /// Breakers, limiters and counters (no store access).
    pub fn snapshot(&self) -> DispatchStatus {
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
                store_errors: g(&c.store_errors),
                cycles: g(&c.cycles),
            },
            destinations: self.inner.admission.statuses(),
            queue: None,
        }
    }

    /// [`Dispatcher::snapshot`] plus the store's queue statistics.
    pub async fn status(&self) -> DispatchStatus {
        let mut s = self.snapshot();
        match self.inner.store.stats().await {
            Ok(q) => s.queue = Some(q),
            Err(e) => self.inner.store_failed(
                "stats",
                None,
                &e,
                "the status shows no queue statistics this time",
            ),
        }
        s
    }

    /// The breaker state of one destination (by key), if it has been used.
    pub fn breaker(&self, key: &str) -> Option<BreakerState> {
        self.inner.admission.breaker(key)
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
        // Aborted when `run` ends or is dropped, so it never outlives the sends.
        let _heartbeat = AbortOnDrop(tokio::spawn(inner.clone().heartbeat()));
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
            let (wake, blocked) = match inner.cycle(&mut tasks).await {
                Ok(w) => w,
                Err(e) => {
                    inner.store_failed("cycle", None, &e, "the dispatch cycle is retried in 1 s");
                    (now + 1_000, true)
                }
            };
            let sleep_ms = (wake - inner.now()).clamp(0, inner.cfg.idle_poll.as_millis() as i64);
            let until = tokio::time::Instant::now() + Duration::from_millis(sleep_ms as u64);
            // A send that ends frees nothing another cycle could use unless
            // due work waited for it: then the next cycle waits for an
            // enqueue or a retry (both notify) or the deadline. A quiet
            // gateway so runs one cycle per message, not two.
            let stop = loop {
                tokio::select! {
                    _ = &mut shutdown => break true,
                    _ = notify.notified() => break false,
                    _ = tokio::time::sleep_until(until) => break false,
                    Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                        log_join(r);
                        if blocked {
                            break false;
                        }
                    }
                }
            };
            if stop {
                break;
            }
            while let Some(r) = tasks.try_join_next() {
                log_join(r);
            }
        }
        inner.running.store(false, Ordering::Relaxed);
        inner.stopping.notify_waiters();
        inner.drain(tasks).await;
        tracing::info!("dispatcher stopped");
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A claim in [`Inner::held`] for as long as its send task lives.
struct Held {
    inner: Arc<Inner>,
    id: DeliveryId,
}

impl Held {
    fn new(inner: Arc<Inner>, id: DeliveryId) -> Self {
        inner.held.lock().insert(id);
        Held { inner, id }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.inner.held.lock().remove(&self.id);
    }
}

/// Whether a destination kind addresses people one by one (apps: each
/// recipient set is a conversation of its own) rather than posting to one
/// group (robots, webhooks: they ignore recipients).
fn addresses_recipients(kind: &str) -> bool {
    kind.ends_with("_app") || kind.starts_with("wechat")
}

/// The conversation of `c` within its target: its recipients on an app
/// destination, the whole target otherwise.
fn conversation(c: &Claimed, addressed: bool) -> String {
    if !addressed {
        return String::new();
    }
    let r = if c.recipients.is_empty() {
        &c.message.recipients
    } else {
        &c.recipients
    };
    r.join("\n")
}

/// An ordered target's lane in [`Inner::lanes`] for as long as its task
/// lives.
struct Lane {
    inner: Arc<Inner>,
    target: Target,
}

impl Lane {
    fn new(inner: Arc<Inner>, target: Target) -> Self {
        inner.lanes.lock().insert(target.clone());
        Lane { inner, target }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.inner.lanes.lock().remove(&self.target);
    }
}

/// What a cycle does next after looking at one target.
enum Flow {
    /// Go on with the next target.
    Next,
    /// Go on; this target has due work that waits for something in this
    /// process (its lane), which a finishing send may free.
    Blocked,
    /// Go on; this target may move again at this time.
    WakeAt(Option<i64>),
    /// `max_in_flight` sends are running: no more this cycle.
    Full,
}

impl Inner {
    fn now(&self) -> i64 {
        self.cfg.clock.now_ms()
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

    /// One dispatch cycle: claim and spawn what may be sent now; returns when
    /// the next cycle is due at the latest, and whether due work is waiting
    /// for a send of this process to end (a lane, a slot).
    async fn cycle(self: &Arc<Self>, tasks: &mut JoinSet<()>) -> Result<(i64, bool), StoreError> {
        let now = self.now();
        self.counters.cycles.fetch_add(1, Ordering::Relaxed);
        let set = self.channels.current();
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
        let mut blocked = false;
        for b in backlog {
            match self.dispatch_target(&b, &set, tasks, now).await? {
                Flow::Next => {}
                Flow::Blocked => blocked = true,
                Flow::WakeAt(t) => wake = t.map_or(wake, |t| wake.min(t)),
                Flow::Full => {
                    blocked = true;
                    break;
                }
            }
        }
        Ok((wake, blocked))
    }

    /// Coalesce, claim and spawn the due work of one target.
    async fn dispatch_target(
        self: &Arc<Self>,
        b: &TargetBacklog,
        set: &ChannelSet,
        tasks: &mut JoinSet<()>,
        now: i64,
    ) -> Result<Flow, StoreError> {
        if b.due == 0 {
            return Ok(Flow::WakeAt(b.next_due_at));
        }
        let Some(res) = self.resolve(set, b) else {
            return Ok(Flow::Next);
        };
        self.admission.sync(&res.members);
        if let Some(cc) = res.channel.coalesce {
            if let Err(e) = self
                .maybe_coalesce(b, res.channel, &res.members, cc, now)
                .await
            {
                self.store_failed(
                    "coalesce",
                    None,
                    &e,
                    "no digests this cycle; the backlog is sent individually",
                );
            }
        }
        // One lane per ordered target: the next claim waits for it to end
        // (its end wakes the loop).
        if res.channel.ordered && self.lanes.lock().contains(&b.target) {
            return Ok(Flow::Blocked);
        }
        let free = self.cfg.max_in_flight.saturating_sub(tasks.len());
        if free == 0 {
            return Ok(Flow::Full);
        }
        let cap = self.admission.capacity(&res.members);
        if cap == 0 {
            return Ok(Flow::WakeAt(self.admission.next_free(&res.members)));
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
                order_hold: res.channel.ordered.then_some(res.channel.order_hold),
            })
            .await?;
        // More is due than this claim took (a batch or slot limit): the end
        // of these sends is when the rest may go.
        let flow = if (claimed.len() as u64) < b.due {
            Flow::Blocked
        } else {
            Flow::Next
        };
        let members: Vec<DestinationEntry> = res.members.iter().map(|m| (*m).clone()).collect();
        if res.channel.ordered {
            self.spawn_lane(claimed, res.channel, &members, tasks);
            return Ok(flow);
        }
        for c in claimed {
            self.spawn(c, res.channel, &members, tasks).await;
        }
        Ok(flow)
    }

    /// The channel and destinations of `b.target` in the current config;
    /// `None` (warned once) when they are not configured.
    fn resolve<'a>(&self, set: &'a ChannelSet, b: &TargetBacklog) -> Option<Resolved<'a>> {
        let res = set.resolve(&b.target);
        let mut st = self.state.lock();
        let t = st.targets.entry(b.target.clone()).or_default();
        if res.is_none() && !t.warned_unknown {
            tracing::warn!(target_key = %b.target, waiting = b.pending,
                "deliveries wait: their channel or destination is not in the current config");
        }
        t.warned_unknown = res.is_none();
        res
    }

    /// Take a destination permit for claimed `c` and spawn its send; give the
    /// claim back when the permit is gone (capacity changed since the claim).
    async fn spawn(
        self: &Arc<Self>,
        c: Claimed,
        channel: &Channel,
        members: &[DestinationEntry],
        tasks: &mut JoinSet<()>,
    ) {
        let Some(member) = self.admission.acquire(&c.target, members, None) else {
            self.give_back(&c, self.now()).await;
            return;
        };
        let job = Job {
            claimed: c,
            channel: channel.clone(),
            members: members.to_vec(),
            member: Some(member),
            out_of_order: false,
        };
        let me = self.clone();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let span = crate::telemetry::events::delivery_span(&job.claimed);
        let held = Held::new(self.clone(), job.claimed.delivery_id);
        tasks.spawn(tracing::Instrument::instrument(
            async move {
                // Dropped with the task, even when it is aborted (drain).
                let _held = held;
                me.deliver(job).await;
                me.in_flight.fetch_sub(1, Ordering::Relaxed);
            },
            span,
        ));
    }

    /// Spawn the lane of an ordered target: one task sending `claimed` (in
    /// the store's order, oldest due first) one after the other. Claims a
    /// permit cannot be had for now stay in the lane and wait their turn:
    /// given back, they would queue behind later messages.
    fn spawn_lane(
        self: &Arc<Self>,
        claimed: Vec<Claimed>,
        channel: &Channel,
        members: &[DestinationEntry],
        tasks: &mut JoinSet<()>,
    ) {
        let Some(first) = claimed.first() else {
            return;
        };
        let lane = Lane::new(self.clone(), first.target.clone());
        let first_member = self.admission.acquire(&first.target, members, None);
        let addressed = members
            .first()
            .is_some_and(|m| addresses_recipients(m.dest.kind()));
        // Conversations in order of their first claim, each in claim order.
        let mut convs: Vec<(String, Vec<(Job, Held)>)> = Vec::new();
        for (i, c) in claimed.into_iter().enumerate() {
            let key = conversation(&c, addressed);
            let held = Held::new(self.clone(), c.delivery_id);
            // Another instance sent a later one (robots, webhooks: one
            // conversation per target).
            let overtaken = !addressed && c.overtaken;
            let job = Job {
                claimed: c,
                channel: channel.clone(),
                members: members.to_vec(),
                member: if i == 0 { first_member } else { None },
                out_of_order: overtaken,
            };
            match convs.iter_mut().find(|(k, _)| *k == key) {
                Some((_, jobs)) => jobs.push((job, held)),
                None => convs.push((key, vec![(job, held)])),
            }
        }
        let me = self.clone();
        tasks.spawn(async move {
            let _lane = lane;
            let runs = convs
                .into_iter()
                .map(|(key, jobs)| me.clone().run_conversation(key, jobs));
            futures::future::join_all(runs).await;
        });
    }

    /// Send the jobs of one conversation of a lane, one after the other.
    async fn run_conversation(self: Arc<Self>, key: String, jobs: Vec<(Job, Held)>) {
        for (mut job, held) in jobs {
            // Draining: what was not started is released, in its place (the
            // one with a permit taken is sent).
            if job.member.is_none() && !self.running.load(Ordering::Relaxed) {
                break;
            }
            let _held = held;
            job.out_of_order |= self.sequence(&job.claimed, &key);
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            let span = crate::telemetry::events::delivery_span(&job.claimed);
            tracing::Instrument::instrument(self.deliver(job), span).await;
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Note that `c` goes out now in conversation `key` of its (ordered)
    /// target; `true` when a delivery accepted after it went out before.
    fn sequence(&self, c: &Claimed, key: &str) -> bool {
        let mut st = self.state.lock();
        let t = st.targets.entry(c.target.clone()).or_default();
        if t.last_sent.len() >= MAX_CONVERSATIONS && !t.last_sent.contains_key(key) {
            t.last_sent.clear();
        }
        let last = t.last_sent.entry(key.to_string()).or_insert(c.delivery_id);
        let late = c.delivery_id < *last;
        *last = (*last).max(c.delivery_id);
        late
    }

    /// Extend the leases of the claims in flight, every third of the lease,
    /// until aborted.
    async fn heartbeat(self: Arc<Self>) {
        let every = self.cfg.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<DeliveryId> = self.held.lock().iter().copied().collect();
            if ids.is_empty() {
                continue;
            }
            let until = self.now() + self.cfg.lease.as_millis() as i64;
            if let Err(e) = self.store.extend_leases(&self.cfg.owner, ids, until).await {
                self.store_failed(
                    "extend_leases",
                    None,
                    &e,
                    "tried again at the next heartbeat; a lease that runs out first lets another dispatcher send the delivery again",
                );
            }
        }
    }

    /// After shutdown: let in-flight sends finish within the drain deadline,
    /// cut off the rest and release every delivery still claimed.
    async fn drain(&self, mut tasks: JoinSet<()>) {
        tracing::info!(
            in_flight = tasks.len(),
            "dispatcher stopping: draining in-flight sends"
        );
        let deadline = tokio::time::sleep(self.cfg.drain_deadline);
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
        match self.store.release(&self.cfg.owner).await {
            Ok(n) if n > 0 => tracing::info!(released = n, "released claimed deliveries"),
            Ok(_) => {}
            Err(e) => self.store_failed(
                "release",
                None,
                &e,
                "deliveries still claimed return when their leases expire",
            ),
        }
    }
}
