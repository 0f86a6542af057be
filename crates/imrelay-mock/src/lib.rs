//! # imrelay-mock
//!
//! A mock DingTalk / Feishu-Lark / WeCom / WeChat server that behaves like the
//! real platforms: it verifies signatures and their time windows, enforces each
//! platform's rate limits with its real codes, issues tokens that expire, checks
//! message shapes and size limits, and answers in each platform's own response
//! shapes. It logs every request and takes fault-injection orders over HTTP
//! (see [`control`]). All platforms share one port; their paths do not collide.
//!
//! # Layout
//! - [`config`]: robots and apps (TOML or code).
//! - [`state`]: shared state, the mock clock, limits.
//! - [`log`], [`faults`], [`limiter`], [`tokens`]: the pieces handlers use.
//! - [`control`]: the `/_mock/` API.
//! - [`callback`]: fire encrypted, signed platform callbacks at a URL, as the platforms do.
//! - [`platform`]: one file per platform.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use imrelay_mock::{MockConfig, MockServer};
//! let server = MockServer::start(MockConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("point destinations' base_url at {}", server.base_url());
//! server.stop().await;
//! # Ok(()) }
//! ```

pub mod callback;
pub mod config;
pub mod control;
pub mod dedup;
pub mod faults;
pub mod limiter;
pub mod log;
pub mod platform;
pub mod sent;
pub mod state;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use config::{AppCallback, AppConfig, MockConfig, MockPlatform, RobotConfig};
pub use faults::{inject, inject_token, FaultAction, FaultRule, Injected};
pub use log::{LogEntry, SignatureCheck};
pub use state::MockState;

/// The whole mock as an axum router.
pub fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .merge(control::routes())
        .merge(platform::routes())
        .with_state(state)
}

/// A running mock.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Bind `addr` (port 0 for any) and serve in the background.
    pub async fn start(config: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        Self::serve(config, listener).await
    }

    /// Serve on an already bound listener.
    pub async fn serve(
        config: MockConfig,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<MockServer> {
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState::new(config));
        let app = router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(MockServer {
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the base URL to give destinations.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> &Arc<MockState> {
        &self.state
    }

    /// Stop serving and wait for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }

    /// Wait until the server task ends (used by `imrelay mock`).
    pub async fn wait(mut self) {
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
