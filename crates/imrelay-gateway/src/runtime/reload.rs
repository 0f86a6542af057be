//! Reload on SIGHUP and on changes to the config file: a file that does not
//! load or build is refused as a whole and the running config stays.
//!
//! Only the config file itself is watched, never its folder: with the log file
//! in the same folder, a folder watch wakes on every log line, and at trace
//! level the watcher's own log of that event (notify logs each inotify event)
//! is another log line, so the log fed itself. Editors that save by writing a
//! new file and renaming it over the old one leave the watch on the old inode,
//! so the watch is armed again on the path after every change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Live;

/// Editors write in several steps; a change is acted on after this quiet time.
const SETTLE: Duration = Duration::from_millis(150);
/// How long a replaced file may be missing (between an editor's unlink and its
/// rename) before the watch gives up until the next SIGHUP.
const REARM_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Sighup,
    FileChange,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Trigger::Sighup => "SIGHUP",
            Trigger::FileChange => "file change",
        }
    }
}

/// Reload on SIGHUP and (when `watch_file`) on changes to `path`, until the
/// returned handle is dropped.
pub fn spawn(live: Arc<Live>, path: PathBuf, watch_file: bool) -> ReloadTask {
    let (tx, mut rx) = mpsc::channel::<Trigger>(16);
    let mut watch = if watch_file {
        match FileWatch::new(&path, tx.clone()) {
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
                if tx.send(Trigger::Sighup).await.is_err() {
                    break;
                }
            }
        })
    };
    drop(tx);
    let task = tokio::spawn(async move {
        while let Some(why) = rx.recv().await {
            if why == Trigger::FileChange {
                tokio::time::sleep(SETTLE).await;
            }
            // Fold the burst into one reload.
            while rx.try_recv().is_ok() {}
            // Arm again before reading, so a change made while loading is
            // not missed.
            if let Some(w) = watch.as_mut() {
                w.rearm().await;
            }
            tracing::info!(trigger = why.as_str(), file = %path.display(), "reloading config");
            let _ = live.reload_file(&path);
        }
    });
    ReloadTask {
        task,
        #[cfg(unix)]
        sighup,
    }
}

/// Background reload machinery; dropping it stops reloading.
pub struct ReloadTask {
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

/// A watch on the config file alone (not its folder).
struct FileWatch {
    watcher: notify::RecommendedWatcher,
    path: PathBuf,
    /// Whether the path is watched now (false after a failed re-arm).
    armed: bool,
}

impl FileWatch {
    fn new(path: &Path, tx: mpsc::Sender<Trigger>) -> notify::Result<FileWatch> {
        use notify::{EventKind, RecursiveMode, Watcher};
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                // Runs on notify's thread for events on the config file only;
                // nothing is logged here. Reading the file (opens, closes) is not
                // a change.
                let Ok(ev) = res else { return };
                if !matches!(ev.kind, EventKind::Access(_)) {
                    let _ = tx.try_send(Trigger::FileChange);
                }
            })?;
        watcher.watch(path, RecursiveMode::NonRecursive)?;
        Ok(FileWatch {
            watcher,
            path: path.to_path_buf(),
            armed: true,
        })
    }

    /// Watch the path again: after a rename-replace it names another inode.
    /// A missing file (mid-save) is waited for up to [`REARM_FOR`].
    async fn rearm(&mut self) {
        use notify::{RecursiveMode, Watcher};
        // Errors: the old watch ended with its inode; nothing to remove.
        let _ = self.watcher.unwatch(&self.path);
        let deadline = tokio::time::Instant::now() + REARM_FOR;
        loop {
            match self.watcher.watch(&self.path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    self.armed = true;
                    return;
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    if self.armed {
                        tracing::warn!(error = %e, file = %self.path.display(), "cannot watch the config file again; reload with SIGHUP");
                    }
                    self.armed = false;
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}
