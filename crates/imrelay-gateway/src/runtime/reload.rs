//! Reload on SIGHUP and on changes to the config file: a file that does not
//! load or build is refused as a whole and the running config stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Live;

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
