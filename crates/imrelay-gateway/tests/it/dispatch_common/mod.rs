//! Helpers for dispatcher tests: a store in a temp dir, a dispatcher running on
//! a channel set, and a tiny scriptable HTTP receiver for `webhook`
//! destinations.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use imrelay_gateway::channels::{
    BreakerConfig, Channel, ChannelSet, DestinationEntry, RetryPolicy,
};
use imrelay_gateway::dispatch::{DispatchConfig, Dispatcher};
use imrelay_gateway::store::sqlite::SqliteStore;
use imrelay_gateway::store::{
    EnqueueOutcome, MessageState, MessageView, NewMessage, Store, StoreOptions,
};
use imrelay_sdk::clock::{Clock, SystemClock};
use imrelay_sdk::{Client, Message, Quota};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<u64>,
    /// Wait before answering (a slow or hung receiver).
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            body: String::new(),
            retry_after: None,
            delay: Duration::ZERO,
        }
    }
    pub fn body(mut self, b: &str) -> Self {
        self.body = b.into();
        self
    }
}

/// A request the receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub at_ms: i64,
    pub body: serde_json::Value,
    pub status: u16,
}

#[derive(Default)]
pub struct ReceiverState {
    /// Per path: answers to give, in order; when empty, `default`.
    pub script: Mutex<std::collections::HashMap<String, VecDeque<Answer>>>,
    pub default: Mutex<Option<Answer>>,
    pub seen: Mutex<Vec<Seen>>,
}

/// A scriptable receiver on 127.0.0.1.
pub struct Receiver {
    pub addr: SocketAddr,
    pub state: Arc<ReceiverState>,
    stop: Option<oneshot::Sender<()>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let state = Arc::new(ReceiverState::default());
        let app = Router::new()
            .route("/{path}", post(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        Receiver {
            addr,
            state,
            stop: Some(tx),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// Queue answers for `path`.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        self.state
            .script
            .lock()
            .entry(path.to_string())
            .or_default()
            .extend(answers);
    }

    /// Answer every unscripted request with this (None: 200).
    pub fn set_default(&self, a: Option<Answer>) {
        *self.state.default.lock() = a;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().clone()
    }

    pub fn seen_at(&self, path: &str) -> Vec<Seen> {
        self.seen().into_iter().filter(|s| s.path == path).collect()
    }

    /// Bodies accepted (2xx) at `path`.
    pub fn delivered(&self, path: &str) -> Vec<serde_json::Value> {
        self.seen_at(path)
            .into_iter()
            .filter(|s| (200..300).contains(&s.status))
            .map(|s| s.body)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

async fn handle(
    State(st): State<Arc<ReceiverState>>,
    Path(path): Path<String>,
    body: axum::body::Bytes,
) -> impl IntoResponse {
    let answer = {
        let mut script = st.script.lock();
        script.get_mut(&path).and_then(|q| q.pop_front())
    }
    .or_else(|| st.default.lock().clone())
    .unwrap_or_else(|| Answer::status(200));
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    st.seen.lock().push(Seen {
        path,
        at_ms: SystemClock.now_ms(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        status: answer.status,
    });
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), answer.body).into_response();
    if let Some(s) = answer.retry_after {
        resp.headers_mut()
            .insert("retry-after", s.to_string().parse().unwrap());
    }
    resp
}

/// A `webhook` destination to `url`, allowed `per_second` requests a second.
pub fn webhook(client: &Client, url: &str, quotas: Vec<Quota>) -> DestinationEntry {
    let d = client
        .build(&serde_json::json!({"type": "webhook", "url": url}))
        .unwrap();
    DestinationEntry::new(d)
        .with_quotas(quotas)
        .with_breaker(fast_breaker())
}

pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
        max_attempts: 8,
        max_age: Duration::from_secs(600),
    }
}

pub fn fast_breaker() -> BreakerConfig {
    BreakerConfig {
        failure_threshold: 3,
        open_for: Duration::from_millis(150),
        max_open_for: Duration::from_millis(600),
    }
}

pub fn channel(name: &str, dests: Vec<DestinationEntry>) -> Channel {
    let mut c = Channel::new(name, dests);
    c.retry = fast_retry();
    c
}

pub fn test_dispatch_config() -> DispatchConfig {
    DispatchConfig {
        idle_poll: Duration::from_millis(50),
        lease: Duration::from_secs(10),
        send_timeout: Duration::from_secs(5),
        drain_deadline: Duration::from_millis(300),
        fallback_scan: Duration::from_millis(50),
        ..DispatchConfig::default()
    }
}

/// A store, channel set and a running dispatcher.
pub struct Harness {
    pub dir: tempfile::TempDir,
    pub store: Arc<dyn Store>,
    pub channels: Arc<ArcSwap<ChannelSet>>,
    pub dispatcher: Dispatcher,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Harness {
    pub async fn start(set: ChannelSet) -> Harness {
        Self::start_with(set, test_dispatch_config()).await
    }

    pub async fn start_with(set: ChannelSet, cfg: DispatchConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(&dir).await;
        Self::start_on(dir, store, set, cfg)
    }

    pub fn start_on(
        dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        set: ChannelSet,
        cfg: DispatchConfig,
    ) -> Harness {
        let channels = Arc::new(ArcSwap::from_pointee(set));
        let dispatcher = Dispatcher::new(store.clone(), channels.clone(), cfg);
        let (tx, rx) = oneshot::channel::<()>();
        let d = dispatcher.clone();
        let task = tokio::spawn(async move {
            d.run(async move {
                let _ = rx.await;
            })
            .await
        });
        Harness {
            dir,
            store,
            channels,
            dispatcher,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Enqueue `msg` to every target of `channel` in the current set.
    pub async fn send(&self, channel: &str, msg: Message) -> String {
        let set = self.channels.load();
        let targets = set.get(channel).expect("channel").targets();
        let m = NewMessage::new(channel, msg, targets);
        match self.store.enqueue(vec![m]).await.unwrap().remove(0) {
            EnqueueOutcome::Created { id } => id.to_string(),
            other => panic!("{other:?}"),
        }
    }

    pub async fn view(&self, id: &str) -> MessageView {
        self.store.get_message(id).await.unwrap().expect("message")
    }

    /// Wait (up to `limit`) until every id is settled (delivered or dead).
    pub async fn wait_settled(&self, ids: &[String], limit: Duration) {
        let store = self.store.clone();
        let ids = ids.to_vec();
        wait_for(limit, "messages to settle", move || {
            let store = store.clone();
            let ids = ids.clone();
            async move {
                for id in &ids {
                    let v = store.get_message(id).await.unwrap().unwrap();
                    if v.state == MessageState::Pending {
                        return false;
                    }
                }
                true
            }
        })
        .await;
    }

    /// Stop the dispatcher gracefully (drain, release).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }

    /// Kill the dispatcher without any cleanup, as a crash would.
    pub async fn kill(&mut self) {
        self.stop.take();
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

pub async fn open_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    Arc::new(
        SqliteStore::open(StoreOptions::new(url).with_clock(Arc::new(SystemClock)))
            .await
            .unwrap(),
    )
}

/// Poll `cond` every 10 ms until it holds, failing after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
