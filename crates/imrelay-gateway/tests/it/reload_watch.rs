//! The config watcher watches the config file, not its folder: a log file
//! next to the config (written on every log line) neither reloads nor makes
//! the watcher log, even at trace level, so `--log trace` cannot feed itself;
//! editing the file, in place or by renaming a new file over it, reloads once
//! per save.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use imrelay_gateway::config::Config;
use imrelay_gateway::runtime::{Live, ReloadStatus};
use imrelay_gateway::telemetry::{logging::init_with_writer, LogFormat};
use parking_lot::Mutex;

/// Every log line of the process (the global subscriber, at trace level, with
/// the `log` records of dependencies such as notify bridged in).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn len(&self) -> usize {
        self.0.lock().len()
    }
    fn since(&self, from: usize) -> String {
        String::from_utf8_lossy(&self.0.lock()[from..]).into_owned()
    }
}

fn config_text(channel: &str) -> String {
    format!(
        r#"
[[api_keys]]
name = "admin"
key = "admin-key-0123456789abcdef"
channels = ["*"]

[channels.{channel}]
[[channels.{channel}.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
allow_private = true
"#
    )
}

async fn wait_attempts(live: &Live, n: u64, what: &str) -> ReloadStatus {
    let mut rx = live.subscribe();
    let got = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.attempts >= n))
        .await
        .map(|r| r.map(|s| s.clone()));
    match got {
        Ok(Ok(s)) => s,
        _ => panic!("timed out waiting for {what}: {:?}", live.status()),
    }
}

/// Write `n` lines to `log`, one write each, as a logger would.
fn write_log(log: &Path, n: usize) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    for i in 0..n {
        writeln!(f, "log line {i}").unwrap();
        f.flush().unwrap();
    }
}

fn assert_watcher_quiet(logs: &Captured, from: usize, what: &str) {
    let text = logs.since(from);
    let noisy: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("inotify") || l.contains("notify") || l.contains("reload"))
        .collect();
    assert!(
        noisy.is_empty(),
        "{what}: the watcher logged {} lines, e.g. {:?}",
        noisy.len(),
        &noisy[..noisy.len().min(3)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_next_to_the_config_are_ignored_silently_and_each_save_reloads_once() {
    let logs = Captured::default();
    let sink = logs.clone();
    init_with_writer("trace", LogFormat::Human, move || sink.clone());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    let log = dir.path().join("imrelay.log");
    std::fs::write(&path, config_text("a")).unwrap();
    let live = Arc::new(Live::new(Config::load(&path).unwrap()).unwrap());
    let _reload = imrelay_gateway::runtime::reload::spawn(live.clone(), path.clone(), true);
    // Let the watch settle.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // 1,000 log lines next to the config: no reload, and nothing logged about them.
    let from = logs.len();
    write_log(&log, 1000);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(live.status().attempts, 0, "{:?}", live.status());
    assert_watcher_quiet(&logs, from, "1,000 writes to another file");

    // Saving in place reloads once.
    std::fs::write(&path, config_text("b")).unwrap();
    let s = wait_attempts(&live, 1, "the in-place save").await;
    assert_eq!(s.applied, 1, "{s:?}");
    assert!(live.config().channels.contains_key("b"));

    // An editor's save: a new file renamed over the config. The watch follows
    // the new file, so the next in-place save reloads too.
    let tmp = dir.path().join(".imrelay.toml.swp");
    std::fs::write(&tmp, config_text("c")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let s = wait_attempts(&live, 2, "the rename-replace save").await;
    assert_eq!(s.applied, 2, "{s:?}");
    assert!(live.config().channels.contains_key("c"));
    std::fs::write(&path, config_text("d")).unwrap();
    let s = wait_attempts(&live, 3, "the save after the rename").await;
    assert_eq!(s.applied, 3, "{s:?}");
    assert!(live.config().channels.contains_key("d"));
    std::fs::write(&tmp, config_text("e")).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_attempts(&live, 4, "the second rename-replace save").await;
    assert!(live.config().channels.contains_key("e"));

    // Exactly one reload per save, and still deaf to the log file.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let from = logs.len();
    write_log(&log, 1000);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let s = live.status();
    assert_eq!((s.attempts, s.applied), (4, 4), "{s:?}");
    assert_watcher_quiet(&logs, from, "1,000 writes after the saves");
}
