//! Hot reload. The running channel set and API keys sit behind `ArcSwap`s that
//! the API and the dispatcher read on every request / claim cycle, so a reload
//! swaps them without dropping in-flight work (a send in progress keeps the
//! `Arc` it started with).
//!
//! Triggers: SIGHUP, and changes to the config file (watched through its folder,
//! since editors replace files by renaming). A file that does not load or build
//! is refused as a whole: the running config stays, and the reason is logged
//! and kept in [`ReloadStatus::last_error`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::api::ApiKeys;
use crate::channels::ChannelSet;
use crate::config::{build_channels, BuildContext, Config, ConfigError};

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

/// The live, swappable part of the configuration.
pub struct Live {
    pub channels: Arc<ArcSwap<ChannelSet>>,
    pub keys: Arc<ArcSwap<ApiKeys>>,
    /// Alertmanager routes and templates (`[alerting]`, `[templates]`).
    pub alerting: Arc<ArcSwap<crate::alertmanager::Alerting>>,
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
    /// Build the initial live state; fails if any destination does not build.
    pub fn new(cfg: Config) -> Result<Live, ConfigError> {
        Self::with_shared_tokens(cfg, None)
    }

    /// [`Live::new`], sharing access tokens through `tokens` (the store's).
    pub fn with_shared_tokens(
        cfg: Config,
        tokens: Option<Arc<dyn imrelay_sdk::token::SharedTokenCache>>,
    ) -> Result<Live, ConfigError> {
        let ctx = BuildContext::new(&cfg)?.with_shared_tokens(tokens);
        let set = build_channels(&cfg, &ctx).map_err(|mut e| {
            e.file = cfg.source.clone();
            e
        })?;
        Ok(Live {
            channels: Arc::new(ArcSwap::from_pointee(set)),
            keys: Arc::new(ArcSwap::from_pointee(ApiKeys::from_config(&cfg.api_keys))),
            alerting: Arc::new(ArcSwap::new(cfg.alerting.clone())),
            config: Mutex::new(cfg),
            ctx,
            status: watch::channel(ReloadStatus::default()).0,
        })
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
        let result = build_channels(&new, &self.ctx).map_err(|mut e| {
            e.file = new.source.clone();
            e
        });
        match result {
            Ok(set) => {
                let mut cur = self.config.lock();
                warn_restart_only(&cur, &new);
                // Keys first: a channel that appears is usable by the keys that
                // name it as soon as it exists.
                self.keys
                    .store(Arc::new(ApiKeys::from_config(&new.api_keys)));
                self.channels.store(Arc::new(set));
                self.alerting.store(new.alerting.clone());
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

/// Reload on SIGHUP and (when `watch_file`) on changes to `path`, until the
/// returned handle is dropped.
pub fn spawn(live: Arc<Live>, path: PathBuf, watch_file: bool) -> ReloadTask {
    let (tx, mut rx) = mpsc::channel::<&'static str>(16);
    let watcher = if watch_file {
        match file_watcher(&path, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, file = %path.display(), "cannot watch the config file; reload with SIGHUP");
                None
            }
        }
    } else {
        None
    };
    #[cfg(unix)]
    let sighup = {
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot listen for SIGHUP");
                return;
            };
            while hup.recv().await.is_some() {
                if tx.send("SIGHUP").await.is_err() {
                    break;
                }
            }
        })
    };
    let task = tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            // Editors write in several steps; let them finish, then fold the burst.
            if why == "file change" {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            while rx.try_recv().is_ok() {}
            tracing::info!(trigger = why, file = %path.display(), "reloading config");
            let _ = live.reload_file(&path);
        }
    });
    ReloadTask {
        _watcher: watcher,
        task,
        #[cfg(unix)]
        sighup,
    }
}

/// Background reload machinery; dropping it stops reloading.
pub struct ReloadTask {
    _watcher: Option<notify::RecommendedWatcher>,
    task: tokio::task::JoinHandle<()>,
    #[cfg(unix)]
    sighup: tokio::task::JoinHandle<()>,
}

impl Drop for ReloadTask {
    fn drop(&mut self) {
        self.task.abort();
        #[cfg(unix)]
        self.sighup.abort();
    }
}

fn file_watcher(
    path: &Path,
    tx: mpsc::Sender<&'static str>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_os_string());
    let mut w = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        if ev
            .paths
            .iter()
            .any(|p| p.file_name().map(|n| n.to_os_string()) == name)
        {
            let _ = tx.try_send("file change");
        }
    })?;
    w.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(w)
}
