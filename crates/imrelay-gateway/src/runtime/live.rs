//! The live runtime: one [`Runtime`] behind one `ArcSwap`, read by the API and
//! the dispatcher on every request / claim cycle, so a reload is one atomic
//! swap that drops no in-flight work (a send in progress keeps the `Arc` it
//! started with).
//!
//! Triggers: SIGHUP, and changes to the config file (the file itself is
//! watched, armed again after an editor replaces it by renaming). A file that does not load or build
//! is refused as a whole: the running config stays, and the reason is logged
//! and kept in [`ReloadStatus::last_error`].

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;

use super::Runtime;
use crate::channels::{ChannelSet, ChannelSource};
use crate::config::{BuildContext, Config, ConfigError};

/// The outcome of reloads so far (observable by tests and `/v1/status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads tried (the initial load not counted).
    pub attempts: u64,
    /// Reloads applied.
    pub applied: u64,
    /// Why the last refused reload was refused (cleared by a good one).
    pub last_error: Option<String>,
}

/// The running configuration: the compiled [`Runtime`], swapped as a whole.
pub struct Live {
    runtime: ArcSwap<Runtime>,
    config: Mutex<Config>,
    ctx: BuildContext,
    status: watch::Sender<ReloadStatus>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl Live {
    /// Build the initial runtime; fails if any destination does not build.
    pub fn new(cfg: Config) -> Result<Live, ConfigError> {
        Self::with_shared_tokens(cfg, None)
    }

    /// [`Live::new`], sharing access tokens through `tokens` (the store's
    /// [`crate::store::Store::shared_tokens`], when several instances share one).
    pub fn with_shared_tokens(
        cfg: Config,
        tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>,
    ) -> Result<Live, ConfigError> {
        let ctx = BuildContext::new(tokens).with_pool_max_idle_per_host(cfg.dispatch.concurrency);
        Self::with_context(cfg, ctx)
    }

    /// [`Live::new`] with destinations built in `ctx`.
    pub fn with_context(cfg: Config, ctx: BuildContext) -> Result<Live, ConfigError> {
        let runtime = Runtime::build(&cfg, &ctx)?;
        Ok(Live {
            runtime: ArcSwap::from_pointee(runtime),
            config: Mutex::new(cfg),
            ctx,
            status: watch::channel(ReloadStatus::default()).0,
        })
    }

    /// The runtime in force now.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// The config currently applied.
    pub fn config(&self) -> Config {
        self.config.lock().clone()
    }

    /// Watch reload outcomes.
    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// Access-token fetches so far: (succeeded, failed) (for `/metrics`).
    pub fn token_fetches(&self) -> (u64, u64) {
        self.ctx.token_fetches()
    }

    /// Apply a new config: all or nothing.
    pub fn apply(&self, new: Config) -> Result<(), ConfigError> {
        match Runtime::build(&new, &self.ctx) {
            Ok(mut runtime) => {
                // Callbacks already accepted stay refused as replays.
                if let Some(cbs) = Arc::get_mut(&mut runtime.callbacks) {
                    cbs.keep_replays(&self.runtime.load().callbacks);
                }
                let mut cur = self.config.lock();
                warn_restart_only(&cur, &new);
                self.runtime.store(Arc::new(runtime));
                tracing::info!(
                    channels = new.channels.len(),
                    api_keys = new.api_keys.len(),
                    "config reloaded"
                );
                *cur = new;
                self.status.send_modify(|s| {
                    s.attempts += 1;
                    s.applied += 1;
                    s.last_error = None;
                });
                Ok(())
            }
            Err(e) => {
                self.refused(&e);
                Err(e)
            }
        }
    }

    /// Load `path` and apply it; a bad file keeps the running config.
    pub fn reload_file(&self, path: &Path) -> Result<(), ConfigError> {
        match Config::load(path) {
            Ok(cfg) => self.apply(cfg),
            Err(e) => {
                self.refused(&e);
                Err(e)
            }
        }
    }

    fn refused(&self, e: &ConfigError) {
        tracing::error!(error = %e, "config reload refused; the running config stays in force");
        let text = e.to_string();
        self.status.send_modify(|s| {
            s.attempts += 1;
            s.last_error = Some(text);
        });
    }
}

/// Settings that only take effect at start.
fn warn_restart_only(cur: &Config, new: &Config) {
    let mut changed = Vec::new();
    if cur.server != new.server {
        changed.push("[server]");
    }
    if cur.store != new.store {
        changed.push("[store]");
    }
    if cur.dispatch != new.dispatch {
        changed.push("[dispatch]");
    }
    if cur.mock.as_ref().map(|m| m.listen) != new.mock.as_ref().map(|m| m.listen) {
        changed.push("[mock]");
    }
    if !changed.is_empty() {
        tracing::warn!(
            sections = %changed.join(", "),
            "these settings changed but apply only at start; restart to use them"
        );
    }
}

impl ChannelSource for Live {
    fn current(&self) -> Arc<ChannelSet> {
        self.runtime.load().channels.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_keep_an_idle_pool_the_size_of_the_dispatch_concurrency() {
        let cfg = Config::parse(
            r#"
[dispatch]
concurrency = 37

[[api_keys]]
name = "k"
key = "key-0123456789abcdef0123"
channels = ["*"]

[channels.hook]
[[channels.hook.destinations]]
type = "webhook"
url = "https://example.com/hook"
"#,
            Path::new("."),
        )
        .unwrap();
        let timeouts = cfg.outbound.timeouts;
        let live = Live::new(cfg).unwrap();
        // The client the channel was built with (one per timeout setting).
        let client = live.ctx.client(timeouts, None).unwrap();
        assert_eq!(client.shared().options.pool_max_idle_per_host, 37);
        let default = BuildContext::default().client(timeouts, None).unwrap();
        assert_eq!(
            default.shared().options.pool_max_idle_per_host,
            imrelay_sdk::http::DEFAULT_POOL_MAX_IDLE_PER_HOST
        );
    }
}
