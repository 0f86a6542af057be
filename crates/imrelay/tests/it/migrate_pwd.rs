//! Moving from prometheus-webhook-dingtalk (PWD): `imrelay import pwd` on a
//! PWD config written after its documented format (tests/fixtures/pwd), then
//! - `imrelay config check` passes on the output, with the env vars it names;
//! - `imrelay serve` on it (destinations pointed at the in-process mock, the
//!   only edit) answers PWD's `/dingtalk/{target}/send` and delivers what
//!   Go's own text/template renders from the same template file;
//! - the real Alertmanager, configured as for PWD (only host and port
//!   differ), delivers through that path.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::alertmanager_e2e::alertmanager_bin;
use crate::serve_support::{free_port, Scratch, Serve};

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub(crate) fn fixture(path: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(path)
}

/// The fixture's secrets, as the user exports them after the import.
const PWD_ENV: &[(&str, &str)] = &[
    ("PWD_WEBHOOK1_ACCESS_TOKEN", "webhook1-token"),
    ("PWD_WEBHOOK1_SECRET", "SECwebhook1secret"),
    ("PWD_WEBHOOK_LEGACY_ACCESS_TOKEN", "legacy-token"),
    ("PWD_WEBHOOK_MENTION_ALL_ACCESS_TOKEN", "all-token"),
    ("PWD_WEBHOOK_PROXY_ACCESS_TOKEN", "proxy-token"),
    (
        "IMRELAY_ALERTMANAGER_KEY",
        "migrate-test-key-0123456789abcdef",
    ),
];

pub(crate) fn imrelay(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(args)
        .envs(env.iter().copied())
        .env_remove("IMRELAY_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run imrelay")
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `imrelay config check FILE` must pass.
pub(crate) fn assert_config_check(file: &Path, env: &[(&str, &str)]) {
    let out = imrelay(&["config", "check", file.to_str().unwrap()], env);
    assert!(
        out.status.success(),
        "config check failed on {}:\n{}\n{}\n--- the file:\n{}",
        file.display(),
        text(&out.stdout),
        text(&out.stderr),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

/// The imported config made to run here: listening on `port`, its robots
/// answered by the in-process mock. Nothing else changes.
pub(crate) fn pointed_at_mock(
    toml: &str,
    port: u16,
    mock_port: u16,
    db: &Path,
    robots: &[(&str, &str, Option<&str>)],
) -> String {
    let mut out = String::new();
    if !toml.lines().any(|l| l.starts_with("listen = ")) {
        out.push_str(&format!("[server]\nlisten = \"127.0.0.1:{port}\"\n\n"));
    }
    for line in toml.lines() {
        if line.starts_with("listen = ") {
            out.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
        let platform_types = [
            "dingtalk_robot",
            "wecom_robot",
            "feishu_webhook",
            "wecom_app",
        ];
        if platform_types
            .iter()
            .any(|t| line == format!("type = \"{t}\""))
        {
            out.push_str("base_url = \"${mock.url}\"\n");
        }
    }
    out.push_str(&format!(
        "\n[store]\npath = \"{}\"\n\n[dispatch]\npoll_interval = \"50ms\"\n\n[mock]\nlisten = \"127.0.0.1:{mock_port}\"\n",
        db.display()
    ));
    if robots.is_empty() {
        // Robots and apps the test did not declare are accepted as they come.
        out.push_str("accept_unknown = true\n");
    }
    for (platform, token, secret) in robots {
        out.push_str(&format!(
            "[[mock.robots]]\nplatform = \"{platform}\"\ntoken = \"{token}\"\n"
        ));
        if let Some(s) = secret {
            out.push_str(&format!("secret = \"{s}\"\n"));
        }
    }
    out
}

/// `imrelay serve` with `env` (the imported config's `${...}`).
pub(crate) async fn serve_with_env(
    config: &Path,
    port: u16,
    log: PathBuf,
    env: &[(&str, &str)],
) -> Serve {
    let err = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(["serve", "--config"])
        .arg(config)
        .envs(env.iter().copied())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn imrelay serve");
    let mut serve = Serve { child, port, log };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            panic!("imrelay serve exited with {status}:\n{}", serve.log_text());
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return serve;
        }
        assert!(
            Instant::now() < deadline,
            "imrelay serve never listened:\n{}",
            serve.log_text()
        );
        // Waiting on another process to bind.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Accepted sends the mock logged to `target` (`dingtalk:robot:TOKEN`), waiting for `n`.
pub(crate) async fn mock_sends(mock: &str, target: &str, n: usize, serve: &Serve) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = reqwest::Client::new()
            .get(format!("{mock}/_mock/requests?accepted=true&limit=1000"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got: Vec<Value> = v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["target"] == target)
            .map(|e| e["body"].clone())
            .collect();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{target} never got {n} messages: {v:#}\n--- imrelay log:\n{}",
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Go's own rendering of `name` in `file` over `data` (tests/gotemplate/render.go).
pub(crate) fn go_render(
    mode: &str,
    file: &Path,
    data: &Path,
    name: Option<&str>,
    tz: &str,
) -> String {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("migrate-gotemplate");
    std::fs::create_dir_all(&tmp).unwrap();
    let bin = tmp.join("render");
    if !bin.exists() {
        let go = std::env::var("GO").unwrap_or_else(|_| "go".into());
        let out = Command::new(&go)
            .args(["build", "-o"])
            .arg(&bin)
            .arg("render.go")
            .current_dir(repo_root().join("tests/gotemplate"))
            .env("GOCACHE", tmp.join("gocache"))
            .env("GOPATH", tmp.join("gopath"))
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "")
            .env("GO111MODULE", "off")
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{go}` (install Debian's golang-go; this test compares with Go): {e}"));
        assert!(
            out.status.success(),
            "go build render.go: {}",
            text(&out.stderr)
        );
    }
    let mut cmd = Command::new(&bin);
    cmd.arg(mode).arg(file).arg(data).env("TZ", tz);
    if let Some(n) = name {
        cmd.arg(n);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "Go render failed: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

pub(crate) fn notification() -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "dingtalk",
        "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
        "commonAnnotations": {"summary": "disk_full on db-1"},
        "externalURL": "http://alertmanager.example.com:9093",
        "alerts": [
            {"status": "firing",
             "labels": {"alertname": "DiskFull", "instance": "db-1:9100", "severity": "critical"},
             "annotations": {"summary": "disk_full on db-1", "description": "磁盘使用率超过 90%"},
             "startsAt": "2026-11-24T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus.example.com:9090/graph", "fingerprint": "f1"},
            {"status": "resolved",
             "labels": {"alertname": "DiskFull", "instance": "db-2:9100", "severity": "warning"},
             "annotations": {"summary": "disk_full on db-2", "description": "恢复"},
             "startsAt": "2026-11-24T07:00:00Z", "endsAt": "2026-11-24T07:30:00Z",
             "generatorURL": "http://prometheus.example.com:9090/graph", "fingerprint": "f2"}
        ]
    })
}

/// Import the PWD fixture into `dir`; returns the output file and stderr.
fn import_pwd(dir: &Scratch, extra: &[&str]) -> (PathBuf, String) {
    let out_file = dir.path("imrelay.toml");
    let fixture = fixture("pwd/config.yml");
    let mut args = vec![
        "import",
        "pwd",
        fixture.to_str().unwrap(),
        "-o",
        out_file.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = imrelay(&args, &[]);
    assert!(out.status.success(), "import failed: {}", text(&out.stderr));
    (out_file, text(&out.stderr))
}

#[test]
fn pwd_import_keeps_secrets_out_and_lists_what_it_cannot_map() {
    let dir = Scratch::new("import-pwd");
    let (file, stderr) = import_pwd(&dir, &[]);
    let toml = std::fs::read_to_string(&file).unwrap();
    for secret in ["webhook1-token", "SECwebhook1secret", "legacy-token"] {
        assert!(!toml.contains(secret), "{secret} inlined:\n{toml}");
    }
    // The target's `proxy:` has no equivalent: named with its line.
    assert!(
        stderr.contains("config.yml:34: targets.webhook_proxy.proxy"),
        "{stderr}"
    );
    for (var, _) in PWD_ENV {
        assert!(stderr.contains(var), "{var} not named:\n{stderr}");
    }
    // One route per target, with its mentions and template.
    let v: toml::Table = toml::from_str(&toml).unwrap();
    let routes = v["alerting"]["routes"].as_table().unwrap();
    assert_eq!(
        routes.keys().collect::<Vec<_>>(),
        [
            "webhook1",
            "webhook_legacy",
            "webhook_mention_all",
            "webhook_proxy"
        ]
    );
    assert_eq!(
        routes["webhook1"]["mentions"]["mobiles"][1].as_str(),
        Some("13800000002")
    );
    assert_eq!(
        routes["webhook_mention_all"]["mentions"]["all"].as_bool(),
        Some(true)
    );
    assert_eq!(v["templates"]["pwd"]["engine"].as_str(), Some("go"));
    // Checked with the variables it asked for; without them it fails, naming one.
    assert_config_check(&file, PWD_ENV);
    let out = imrelay(&["config", "check", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("PWD_WEBHOOK1_ACCESS_TOKEN")
            || text(&out.stdout).contains("PWD_WEBHOOK1_ACCESS_TOKEN")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pwd_path_delivers_what_go_renders_from_the_same_template() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("import-pwd-serve");
    let (file, _) = import_pwd(&dir, &[]);
    assert_config_check(&file, PWD_ENV);
    let (port, mock_port) = (free_port(), free_port());
    let runnable = dir.path("run.toml");
    std::fs::write(
        &runnable,
        pointed_at_mock(
            &std::fs::read_to_string(&file).unwrap(),
            port,
            mock_port,
            &dir.path("q.db"),
            &[("dingtalk", "webhook1-token", Some("SECwebhook1secret"))],
        ),
    )
    .unwrap();
    let serve = serve_with_env(&runnable, port, dir.path("imrelay.log"), PWD_ENV).await;
    let key = PWD_ENV.last().unwrap().1;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/dingtalk/webhook1/send?key={key}",
            serve.server()
        ))
        .json(&notification())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let mock = format!("http://127.0.0.1:{mock_port}");
    let got = mock_sends(&mock, "dingtalk:robot:webhook1-token", 1, &serve).await;

    let data = dir.path("notification.json");
    std::fs::write(&data, notification().to_string()).unwrap();
    let tmpl = fixture("pwd/templates/ops.tmpl");
    let text = go_render("pwd", &tmpl, &data, Some("ops.content"), "UTC");
    let title = go_render("pwd", &tmpl, &data, Some("ops.title"), "UTC");
    assert_eq!(got[0]["markdown"]["title"].as_str(), Some(title.trim()));
    // DingTalk shows mentions only when the text names them: PWD appended them too.
    assert_eq!(
        got[0]["markdown"]["text"].as_str().unwrap(),
        format!("{}\n\n@13800000001 @13800000002", text.trim())
    );
    assert_eq!(
        got[0]["at"]["atMobiles"],
        json!(["13800000001", "13800000002"])
    );
}

/// Alertmanager's config for PWD, as its README shows it; only host and port are ours.
fn pwd_alertmanager_config(port: u16) -> String {
    format!(
        r#"
route:
  receiver: dingtalk
  group_by: ["alertname"]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: dingtalk
    webhook_configs:
      - url: http://127.0.0.1:{port}/dingtalk/webhook1/send
        send_resolved: true
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_posts_to_the_pwd_path_unchanged() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("am-pwd");
    // As PWD: no key, so alertmanager.yml needs no change at all.
    let (file, _) = import_pwd(&dir, &["--allow-unauthenticated"]);
    let env = PWD_ENV;
    assert_config_check(&file, env);
    let (port, mock_port) = (free_port(), free_port());
    let runnable = dir.path("run.toml");
    std::fs::write(
        &runnable,
        pointed_at_mock(
            &std::fs::read_to_string(&file).unwrap(),
            port,
            mock_port,
            &dir.path("q.db"),
            &[("dingtalk", "webhook1-token", Some("SECwebhook1secret"))],
        ),
    )
    .unwrap();
    let serve = serve_with_env(&runnable, port, dir.path("imrelay.log"), env).await;
    serve.wait_log("allow_unauthenticated = true", 10).await;

    let am_cfg = dir.path("alertmanager.yml");
    std::fs::write(&am_cfg, pwd_alertmanager_config(port)).unwrap();
    let am_port = free_port();
    let am_log = dir.path("alertmanager.log");
    let mut am = Command::new(alertmanager_bin())
        .arg(format!("--config.file={}", am_cfg.display()))
        .arg(format!("--storage.path={}", dir.path("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&am_log).unwrap())
        .spawn()
        .expect("start alertmanager");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _guard = Kill(&mut am);
    let am_url = format!("http://127.0.0.1:{am_port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Poll until Alertmanager takes alerts (waiting on another process).
        let r = http
            .post(format!("{am_url}/api/v2/alerts"))
            .json(&json!([{
                "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1:9100"},
                "annotations": {"summary": "disk_full on db-1"},
                "generatorURL": "http://prometheus.example.com:9090/graph"
            }]))
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager never took the alert:\n{}",
            std::fs::read_to_string(&am_log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mock = format!("http://127.0.0.1:{mock_port}");
    let got = mock_sends(&mock, "dingtalk:robot:webhook1-token", 1, &serve).await;
    // Rendered by the imported PWD template (ops.title / ops.content).
    assert_eq!(got[0]["markdown"]["title"], "[FIRING:1] DiskFull");
    let shown = got[0]["markdown"]["text"].as_str().unwrap();
    assert!(
        shown.starts_with(
            "#### [FIRING:1] DiskFull\n**Firing**\n- **DiskFull** (CRITICAL) disk\\_full on db-1"
        ),
        "{shown}"
    );
    assert!(shown.contains("[Alertmanager](http://"), "{shown}");
    assert_eq!(
        got[0]["at"]["atMobiles"],
        json!(["13800000001", "13800000002"])
    );
}
