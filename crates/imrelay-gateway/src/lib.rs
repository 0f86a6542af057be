//! # imrelay-gateway
//!
//! The imrelay service as a library: a durable queue in front of the SDK's
//! platform destinations, with an HTTP API, retries, rate limits, circuit
//! breakers, idempotency and a dead-letter queue. The `imrelay` binary (`imrelay
//! serve`) adds signals, logging set-up, hot reload and the in-process mock;
//! tests call [`run`] or [`Gateway::start`] on a listener bound to port 0.
//!
//! # Layout
//! Each feature is one folder that owns its config section, its runtime and
//! its HTTP handler; the modules form layers with no dependency cycle
//! (`tests/module_graph.rs` checks it), from the bottom:
//! - [`domain`]: what everything shares: the config error vocabulary, the
//!   cluster limiter trait, [`domain::attempt::AttemptOutcome`].
//! - [`store`]: the `Store` trait, the queue state machine (a pure planner)
//!   and its SQLite and PostgreSQL backends; [`telemetry`]: metrics and logs.
//! - [`outbound`] (`[outbound]`, the SSRF guard), [`templates`], [`channels`]
//!   (`[channels.*]` and the runtime channel model), [`http`] (problem+json,
//!   `[[api_keys]]`, extractors).
//! - Features: [`lifecycle`] (`[lifecycle]`: threads, updates in place,
//!   recalls, acknowledgements), [`alertmanager`] (`[alerting]`,
//!   `[templates]`, the receiver), [`callbacks`] (`[[callbacks]]`, the
//!   endpoints), [`compat`] (`[compat]`: the URLs prometheus-webhook-dingtalk
//!   and PrometheusAlert answered on, through the receiver), [`self_alerts`].
//! - [`config`]: the TOML file as plain data (`${ENV}`, `*_file` secrets,
//!   validation naming the key).
//! - [`runtime`]: what a config compiles into, one `Runtime` behind one
//!   `ArcSwap`, swapped whole on reload (SIGHUP, file change).
//! - [`dispatch`]: the claim loop; a pure delivery decision, admission
//!   (limiters, breakers, cluster permits), coalescing, fallback, ordering.
//! - [`api`]: the `/v1` API and `/metrics`, merging the features' routers;
//!   [`server`]: the serving loop (header and idle timeouts, connection cap).
//! - [`client`]: a small client for a running gateway (`imrelay send --server`).
//!
//! # Lifecycle
//! Start: open the store (SQLite with `synchronous=FULL`, or PostgreSQL), start
//! the dispatcher, serve HTTP.
//! Stop (SIGTERM/SIGINT or the `shutdown` future): refuse new messages (503),
//! finish in-flight HTTP requests, let in-flight sends finish or release them
//! within `server.shutdown_grace`, close the store. Nothing acknowledged is
//! lost: a crash leaves claimed deliveries to come back when their lease ends.

pub mod alertmanager;
pub mod api;
pub mod callbacks;
pub mod channels;
pub mod client;
pub mod compat;
pub mod config;
pub mod console;
pub mod dispatch;
pub mod domain;
pub mod grouping;
pub mod http;
pub mod lifecycle;
pub mod oncall;
pub mod outbound;
pub mod runtime;
pub mod self_alerts;
pub mod server;
pub mod silences;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod templates;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{ApiLimits, AppState};
use crate::channels::build::BuildContext;
use crate::config::Config;
use crate::runtime::Live;
use crate::store::{Store, StoreOptions};

pub use runtime::check_file;

/// A running gateway.
pub struct Gateway {
    addr: SocketAddr,
    live: Arc<Live>,
    state: AppState,
    store: Arc<dyn Store>,
    http: Option<JoinHandle<std::io::Result<()>>>,
    stop_http: Option<oneshot::Sender<()>>,
    dispatcher: dispatch::Dispatcher,
    dispatch_task: Option<JoinHandle<()>>,
    stop_dispatch: Option<oneshot::Sender<()>>,
    retention_task: Option<JoinHandle<()>>,
    /// Reloads the silences from the store (several instances share them).
    silences_task: Option<JoinHandle<()>>,
    /// The escalation runner and the on-call overrides' refresh.
    oncall_tasks: [Option<JoinHandle<()>>; 2],
    grouping_task: Option<JoinHandle<()>>,
    grace: Duration,
}

/// Options for [`Gateway::start_with`] (tests).
#[derive(Clone, Default)]
pub struct StartOptions {
    /// Clock for the store and the dispatcher (e.g. `store::TokioClock` under
    /// `tokio::time::pause`). Default: the system clock.
    pub clock: Option<Arc<dyn imrelay_sdk::clock::Clock>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("addr", &self.addr).finish()
    }
}

impl Gateway {
    /// Start everything on `listener`. Fails (with the reason) when the store
    /// cannot be opened or a destination does not build.
    pub async fn start(config: Config, listener: TcpListener) -> anyhow::Result<Gateway> {
        Self::start_with(config, listener, StartOptions::default()).await
    }

    /// [`Gateway::start`] with options.
    pub async fn start_with(
        config: Config,
        listener: TcpListener,
        options: StartOptions,
    ) -> anyhow::Result<Gateway> {
        let clock: Arc<dyn imrelay_sdk::clock::Clock> = options
            .clock
            .unwrap_or_else(|| Arc::new(imrelay_sdk::clock::SystemClock));
        let addr = listener
            .local_addr()
            .context("the listener has no local address")?;
        let limits = ApiLimits {
            max_body_bytes: config.server.max_body_bytes,
            max_batch: config.server.max_batch,
        };
        let grace = config.server.shutdown_grace;
        let server_limits = server::Limits::from_config(&config.server);
        let mut dcfg = dispatch_config(&config, clock.clone());
        let store = open_configured_store(&config, clock.clone()).await?;
        let pool = config.dispatch.concurrency;
        // Several instances on PostgreSQL share the platform rate limits.
        dcfg.shared_limits = store.shared_limiter();
        let retention = retention_policy(&config);
        let alerts_cfg = config.self_alerts.clone();
        let live = Arc::new(
            Live::with_context(
                config,
                BuildContext::new(store.shared_tokens())
                    .with_pool_max_idle_per_host(pool)
                    .with_clock(clock.clone()),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        );

        let dispatcher = new_dispatcher(&store, &live, dcfg, alerts_cfg);
        let (dtx, drx) = oneshot::channel::<()>();
        let dispatch_task = tokio::spawn(dispatcher.clone().run(async move {
            let _ = drx.await;
        }));
        let d = dispatcher.clone();
        let state = AppState::new(store.clone(), live.clone())
            .with_limits(limits)
            .with_status(Arc::new(move || {
                serde_json::to_value(d.snapshot()).unwrap_or_default()
            }));
        load_shared_state(&state, &*store).await;
        let oncall_tasks = spawn_oncall(&store, &live, &state).map(Some);
        let grouping_task = spawn_grouping(&store, &live);
        let silences_task = tokio::spawn(silences::keep_fresh(
            state.silences.clone(),
            store.clone(),
            std::future::pending(),
        ));
        let app = http_app(&state, &store, &dispatcher, &live);
        let (tx, rx) = oneshot::channel::<()>();
        let http = tokio::spawn(server::serve(listener, app, server_limits, async move {
            let _ = rx.await;
        }));
        let retention_task =
            store::retention::spawn(store.clone(), retention, telemetry::events::pruned);
        tracing::info!(%addr, "imrelay gateway listening");
        Ok(Gateway {
            addr,
            live,
            state,
            store,
            http: Some(http),
            stop_http: Some(tx),
            dispatcher,
            dispatch_task: Some(dispatch_task),
            stop_dispatch: Some(dtx),
            retention_task: Some(retention_task),
            silences_task: Some(silences_task),
            oncall_tasks,
            grouping_task: Some(grouping_task),
            grace,
        })
    }

    /// The address the API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The live config (apply a new one with [`Live::apply`]).
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The silences this instance holds messages with (refreshed from the
    /// store every [`silences::REFRESH`]).
    pub fn silences(&self) -> &Arc<silences::SilenceCache> {
        &self.state.silences
    }

    /// The dispatcher (status, breaker states).
    pub fn dispatcher(&self) -> &dispatch::Dispatcher {
        &self.dispatcher
    }

    /// Drain and stop: refuse new messages, finish in-flight HTTP requests, let
    /// in-flight sends finish or release them within the grace period, close
    /// the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        tracing::info!(grace = ?self.grace, "shutting down: no new messages accepted");
        self.state.accepting.store(false, Ordering::Release);
        if let Some(tx) = self.stop_http.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.http.take() {
            match tokio::time::timeout(self.grace, h).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "HTTP server ended with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "HTTP server task failed"),
                Err(_) => {
                    tracing::warn!("HTTP requests still open after the grace period; closing")
                }
            }
        }
        // The dispatcher drains within `grace` itself (finish or release).
        if let Some(tx) = self.stop_dispatch.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.dispatch_task.take() {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "the dispatcher task failed; unfinished deliveries return when their leases end");
            }
        }
        let [runner, refresh] = &mut self.oncall_tasks;
        for t in [
            self.retention_task.take(),
            self.silences_task.take(),
            runner.take(),
            refresh.take(),
            self.grouping_task.take(),
        ]
        .into_iter()
        .flatten()
        {
            t.abort();
        }
        self.store.close().await;
        tracing::info!("imrelay gateway stopped");
        Ok(())
    }
}

/// Silences and on-call overrides as the store has them now; a failure is
/// retried by their refresh tasks.
async fn load_shared_state(state: &AppState, store: &dyn Store) {
    if let Err(e) = state.silences.refresh(store).await {
        tracing::warn!(error = %e, "cannot load the silences; retrying in the background");
    }
    if let Err(e) = state.overrides.refresh(store).await {
        tracing::warn!(error = %e, "cannot load the on-call overrides; retrying in the background");
    }
}

/// The grouping runner, reading each channel's group settings from the live
/// runtime at every pass.
fn spawn_grouping(store: &Arc<dyn Store>, live: &Arc<Live>) -> tokio::task::JoinHandle<()> {
    let l = live.clone();
    grouping::runner::spawn(
        store.clone(),
        move || {
            let rt = l.runtime();
            grouping::runner::Snapshot {
                channels: rt.channels.clone(),
                groups: rt.groups.clone(),
            }
        },
        Duration::from_secs(1),
    )
}

/// The escalation runner (every second) and the refresh of the on-call
/// overrides other instances make (every five).
fn spawn_oncall(store: &Arc<dyn Store>, live: &Arc<Live>, state: &AppState) -> [JoinHandle<()>; 2] {
    let l = live.clone();
    let runner = oncall::escalate::spawn(
        store.clone(),
        move || {
            let rt = l.runtime();
            oncall::escalate::Snapshot {
                oncall: rt.oncall.clone(),
                channels: rt.channels.clone(),
            }
        },
        Duration::from_secs(1),
    );
    let (store, cache) = (store.clone(), state.overrides.clone());
    let refresh = store::every(Duration::from_secs(5), "on-call overrides", move || {
        let (store, cache) = (store.clone(), cache.clone());
        async move { cache.refresh(&*store).await.map(|()| 0) }
    });
    [runner, refresh]
}

/// The dispatcher's settings from `[dispatch]`, `[outbound]` and the
/// shutdown grace.
fn dispatch_config(
    config: &Config,
    clock: Arc<dyn imrelay_sdk::clock::Clock>,
) -> dispatch::DispatchConfig {
    let mut dcfg = dispatch::DispatchConfig::new(clock);
    dcfg.lease = config.dispatch.lease;
    dcfg.max_in_flight = config.dispatch.concurrency;
    dcfg.claim_batch = config.dispatch.claim_batch.min(u32::MAX as usize) as u32;
    dcfg.idle_poll = config.dispatch.poll_interval;
    dcfg.drain_deadline = config.server.shutdown_grace;
    // Above the SDK's own total timeout, as a last guard against a hang.
    dcfg.send_timeout = config.outbound.timeouts.total + Duration::from_secs(5);
    // Validated when the config loaded.
    dcfg.card_time_zone = config.lifecycle.compile(&mut Vec::new()).time_zone;
    dcfg
}

/// Open the store `[store]` names; the error says which setting to look at.
async fn open_configured_store(
    config: &Config,
    clock: Arc<dyn imrelay_sdk::clock::Clock>,
) -> anyhow::Result<Arc<dyn Store>> {
    let mut opts = StoreOptions::new(config.store.location()).with_clock(clock);
    opts.synchronous = config.store.sqlite_synchronous;
    opts.cluster_rate_margin = config.dispatch.cluster_rate_margin;
    opts.acquire_timeout = config.store.acquire_timeout;
    open_store(opts)
        .await
        .with_context(|| match &config.store.url {
            Some(_) => "`store.url`: cannot open the PostgreSQL store".to_string(),
            None => format!("`store.path`: cannot open {}", config.store.path.display()),
        })
}

/// How long finished messages are kept (`store.keep_delivered`, `keep_dead`).
fn retention_policy(config: &Config) -> store::Retention {
    store::Retention {
        keep_delivered: config.store.keep_delivered,
        keep_dead: config.store.keep_dead,
        keep_audit: config.console.audit_keep,
        ..store::Retention::DEFAULT
    }
}

/// The dispatcher, with self-alerts that also watch token fetches.
fn new_dispatcher(
    store: &Arc<dyn Store>,
    live: &Arc<Live>,
    dcfg: dispatch::DispatchConfig,
    alerts_cfg: self_alerts::AlertsConfig,
) -> dispatch::Dispatcher {
    let dispatcher = dispatch::Dispatcher::new(store.clone(), live.clone(), dcfg);
    let token_fetches: self_alerts::TokenFetches = {
        let live = live.clone();
        Arc::new(move || live.token_fetches())
    };
    dispatcher.set_alerts(
        self_alerts::Alerts::new(alerts_cfg, store.clone(), live.clone())
            .with_token_fetches(token_fetches),
    );
    dispatcher
}

/// The HTTP application: the API, `/metrics`, and the trace middleware.
fn http_app(
    state: &AppState,
    store: &Arc<dyn Store>,
    dispatcher: &dispatch::Dispatcher,
    live: &Arc<Live>,
) -> axum::Router {
    let obs = api::metrics::ObsState {
        store: store.clone(),
        dispatcher: dispatcher.clone(),
        live: live.clone(),
        accepting: state.accepting.clone(),
    };
    api::router(state.clone())
        .merge(api::metrics::router(obs))
        .layer(axum::middleware::from_fn(telemetry::trace::middleware))
}

/// Open the store on a blocking thread: `store::open`'s future is not `Send`
/// (sqlx's migrator borrows the connection in a way the compiler cannot prove
/// `Send`), and awaiting it here would make [`run`] and [`Gateway::start`]
/// impossible to `tokio::spawn`.
async fn open_store(opts: StoreOptions) -> Result<Arc<dyn Store>, store::StoreError> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || handle.block_on(store::open(opts)))
        .await
        .map_err(|e| store::StoreError::Internal(format!("opening the store failed: {e}")))?
}

/// Run the gateway on `listener` until `shutdown` completes, then drain.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let gw = Gateway::start(config, listener).await?;
    shutdown.await;
    gw.shutdown().await
}
