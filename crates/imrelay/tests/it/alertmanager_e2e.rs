//! End to end with the real Alertmanager (Debian's `prometheus-alertmanager`):
//! `imrelay serve` with its in-process mock of DingTalk, Feishu and WeCom;
//! Alertmanager with a webhook receiver pointing at
//! `/v1/alertmanager/prod` (bearer key); alerts fired and then resolved through
//! Alertmanager's API. The mock must receive the rendered firing and resolved
//! messages on all three platforms, with mentions on the critical (on-call)
//! route only and only while firing.
//!
//! The Alertmanager binary is found on PATH (`alertmanager` or
//! `prometheus-alertmanager`) or through `ALERTMANAGER_BIN`. When it is missing
//! the test FAILS with an install hint: it is never skipped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::serve_support::{free_port, Scratch, Serve, KEY};
use serde_json::{json, Value};

pub(crate) fn alertmanager_bin() -> PathBuf {
    if let Ok(p) = std::env::var("ALERTMANAGER_BIN") {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["alertmanager", "prometheus-alertmanager"] {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "the Alertmanager binary was not found (looked for `alertmanager` and `prometheus-alertmanager` on PATH, \
         and ALERTMANAGER_BIN). Install it: `apt-get install -y prometheus-alertmanager` (Debian/Ubuntu), \
         or point ALERTMANAGER_BIN at an alertmanager binary. This test is not skipped."
    )
}

struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn imrelay_config(port: u16, mock_port: u16, db: &std::path::Path) -> String {
    let robots: String = ["oncall", "team"]
        .iter()
        .flat_map(|c| {
            ["dingtalk", "feishu", "wecom"]
                .map(|p| format!("[[mock.robots]]\nplatform = \"{p}\"\ntoken = \"am-{p}-{c}\"\n"))
        })
        .collect();
    let channel = |c: &str| {
        format!(
            r#"
[channels.{c}]
retry = {{ base = "100ms", cap = "500ms" }}
[[channels.{c}.destinations]]
type = "dingtalk_robot"
access_token = "am-dingtalk-{c}"
base_url = "${{mock.url}}"
[[channels.{c}.destinations]]
type = "feishu_webhook"
hook = "am-feishu-{c}"
base_url = "${{mock.url}}"
[[channels.{c}.destinations]]
type = "wecom_robot"
key = "am-wecom-{c}"
base_url = "${{mock.url}}"
"#
        )
    };
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false

[store]
path = "{db}"

[dispatch]
poll_interval = "50ms"

[[api_keys]]
name = "alertmanager"
key = "{KEY}"
channels = ["oncall", "team"]

[mock]
listen = "127.0.0.1:{mock_port}"
{robots}
{oncall}
{team}

[alerting]
time_zone = "Asia/Shanghai"

[alerting.routes.prod]
channels = ["team"]

[[alerting.routes.prod.rules]]
matchers = ['severity="critical"']
channels = ["oncall"]
mentions = {{ mobiles = ["13800000000"], user_ids = ["ou_oncall"] }}

[[alerting.routes.prod.rules]]
matchers = ['severity=~"warn.*"']
channels = ["team"]
"#,
        db = db.display(),
        oncall = channel("oncall"),
        team = channel("team"),
    )
}

fn alertmanager_config(imrelay_port: u16) -> String {
    // Tiny waits so the whole run takes seconds: the first notification after
    // 200 ms, changes (the resolution) within 1 s.
    format!(
        r#"
route:
  receiver: imrelay
  group_by: ["alertname", "severity"]
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: imrelay
    webhook_configs:
      - url: http://127.0.0.1:{imrelay_port}/v1/alertmanager/prod
        send_resolved: true
        http_config:
          authorization:
            credentials: {KEY}
"#
    )
}

async fn start_alertmanager(dir: &Scratch, imrelay_port: u16) -> Alertmanager {
    let bin = alertmanager_bin();
    let cfg = dir.path("alertmanager.yml");
    std::fs::write(&cfg, alertmanager_config(imrelay_port)).unwrap();
    let port = free_port();
    let log = dir.path("alertmanager.log");
    let err = std::fs::File::create(&log).unwrap();
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.path("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        // No gossip cluster: a single instance, no extra port.
        .arg("--cluster.listen-address=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let am = Alertmanager {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{}/-/ready", am.url)).send().await {
            if r.status().is_success() {
                return am;
            }
        }
        assert!(
            Instant::now() < deadline,
            "Alertmanager did not become ready; log:\n{}",
            am.log_text()
        );
        // Waiting on another process: nothing to await but time.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn alert(name: &str, severity: &str, ends_at: Option<&str>) -> Value {
    let mut a = json!({
        "labels": {"alertname": name, "severity": severity, "instance": "db-1:9100", "region": "上海-浦东"},
        "annotations": {
            "summary": format!("{name} on db-1"),
            "description": "磁盘使用率超过 90%",
            "runbook_url": "https://runbooks.example.com/disk"
        },
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=disk",
    });
    if let Some(e) = ends_at {
        a["endsAt"] = json!(e);
    }
    a
}

async fn post_alerts(am: &Alertmanager, alerts: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/v2/alerts", am.url))
        .json(&alerts)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "Alertmanager refused the alerts: {} {}",
        r.status(),
        r.text().await.unwrap_or_default()
    );
}

/// Accepted robot sends the mock logged, per target.
async fn mock_sends(mock: &str) -> Vec<(String, Value)> {
    let v: Value = reqwest::Client::new()
        .get(format!("{mock}/_mock/requests?accepted=true&limit=1000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target"].as_str().unwrap_or("").contains(":am-"))
        .map(|e| (e["target"].as_str().unwrap().to_string(), e["body"].clone()))
        .collect()
}

/// Poll the mock until `pred` holds (up to 30 s).
async fn wait_sends(
    mock: &str,
    what: &str,
    am: &Alertmanager,
    serve: &Serve,
    pred: impl Fn(&[(String, Value)]) -> bool,
) -> Vec<(String, Value)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sends = mock_sends(mock).await;
        if pred(&sends) {
            return sends;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the mock has {sends:#?}\n--- alertmanager log:\n{}\n--- imrelay log:\n{}",
            am.log_text(),
            serve.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text a platform body shows (markdown, card, or text).
fn shown(body: &Value) -> String {
    for p in [
        "/markdown/text",
        "/markdown/content",
        "/card/elements/0/text/content",
        "/text/content",
    ] {
        if let Some(s) = body.pointer(p).and_then(Value::as_str) {
            return s.to_string();
        }
    }
    String::new()
}

fn of<'a>(sends: &'a [(String, Value)], target: &str, status: &str) -> Vec<&'a Value> {
    sends
        .iter()
        .filter(|(t, b)| t == target && shown(b).contains(status))
        .map(|(_, b)| b)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_to_dingtalk_feishu_and_wecom() {
    let started = Instant::now();
    // reqwest is built without a default TLS provider (plain HTTP here anyway).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = Scratch::new("am-e2e");
    let (port, mock_port) = (free_port(), free_port());
    let cfg = dir.path("imrelay.toml");
    std::fs::write(&cfg, imrelay_config(port, mock_port, &dir.path("q.db"))).unwrap();
    let serve = Serve::start(&cfg, port, dir.path("imrelay.log")).await;
    let mock = format!("http://127.0.0.1:{mock_port}");
    let am = start_alertmanager(&dir, port).await;

    // Fire a critical and a warning alert.
    post_alerts(
        &am,
        json!([
            alert("DiskFull", "critical", None),
            alert("SlowQueries", "warning", None)
        ]),
    )
    .await;
    let firing = wait_sends(&mock, "the firing messages", &am, &serve, |s| {
        // 3 on-call + 1 WeCom mention ping + 3 team.
        s.iter()
            .filter(|(_, b)| b.to_string().contains("FIRING") || b["msgtype"] == "text")
            .count()
            >= 7
    })
    .await;

    // On-call (critical): rendered, with mentions on every platform.
    let dt = of(&firing, "dingtalk:robot:am-dingtalk-oncall", "FIRING");
    assert_eq!(dt.len(), 1, "{firing:#?}");
    assert_eq!(dt[0]["msgtype"], "markdown");
    assert_eq!(dt[0]["markdown"]["title"], "🔥 [FIRING:1] DiskFull");
    let text = shown(dt[0]);
    assert!(text.contains("DiskFull [critical]"), "{text}");
    assert!(text.contains("> DiskFull on db-1"), "{text}");
    assert!(text.contains("region=上海-浦东"), "{text}");
    assert!(text.contains("CST"), "times in Asia/Shanghai: {text}");
    assert!(text.contains("[Silence](http"), "{text}");
    assert!(text.contains("@13800000000"), "{text}");
    assert_eq!(dt[0]["at"]["atMobiles"], json!(["13800000000"]));

    let fs = of(&firing, "feishu:webhook:am-feishu-oncall", "DiskFull");
    assert_eq!(fs.len(), 1, "{firing:#?}");
    assert_eq!(fs[0]["msg_type"], "interactive");
    assert_eq!(fs[0]["card"]["header"]["template"], "red");
    assert!(
        shown(fs[0]).contains("<at id=ou_oncall></at>"),
        "{}",
        shown(fs[0])
    );

    let wc = of(&firing, "wecom:robot:am-wecom-oncall", "FIRING");
    assert_eq!(wc.len(), 1, "{firing:#?}");
    assert!(shown(wc[0]).ends_with("<@ou_oncall>"), "{}", shown(wc[0]));
    let ping: Vec<&Value> = firing
        .iter()
        .filter(|(t, b)| t == "wecom:robot:am-wecom-oncall" && b["msgtype"] == "text")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ping.len(), 1, "{firing:#?}");
    assert_eq!(
        ping[0]["text"]["mentioned_mobile_list"],
        json!(["13800000000"])
    );

    // Team (warning): rendered, no mentions.
    let dt = of(&firing, "dingtalk:robot:am-dingtalk-team", "FIRING");
    assert_eq!(dt.len(), 1, "{firing:#?}");
    assert!(shown(dt[0]).contains("SlowQueries [warning]"));
    assert!(dt[0].get("at").is_none(), "{:#}", dt[0]);
    let fs = of(&firing, "feishu:webhook:am-feishu-team", "SlowQueries");
    assert_eq!(fs.len(), 1, "{firing:#?}");
    assert_eq!(fs[0]["card"]["header"]["template"], "orange");
    assert!(!shown(fs[0]).contains("<at "));
    let wc = of(&firing, "wecom:robot:am-wecom-team", "FIRING");
    assert_eq!(wc.len(), 1, "{firing:#?}");
    assert!(!shown(wc[0]).contains("<@"));
    assert_eq!(
        firing
            .iter()
            .filter(|(t, _)| t == "wecom:robot:am-wecom-team")
            .count(),
        1,
        "no ping on the team route"
    );

    // Resolve both: endsAt now.
    let now = jiff_now();
    post_alerts(
        &am,
        json!([
            alert("DiskFull", "critical", Some(&now)),
            alert("SlowQueries", "warning", Some(&now))
        ]),
    )
    .await;
    let all = wait_sends(&mock, "the resolved messages", &am, &serve, |s| {
        s.iter()
            .filter(|(_, b)| b.to_string().contains("RESOLVED"))
            .count()
            >= 6
    })
    .await;
    for target in [
        "dingtalk:robot:am-dingtalk-oncall",
        "wecom:robot:am-wecom-oncall",
        "dingtalk:robot:am-dingtalk-team",
        "wecom:robot:am-wecom-team",
    ] {
        let r = of(&all, target, "RESOLVED");
        assert_eq!(r.len(), 1, "{target}: {all:#?}");
        let text = shown(r[0]);
        assert!(text.contains("Resolved: "), "{target}: {text}");
        // Nobody is paged for a resolution.
        assert!(
            !text.contains("@13800000000") && !text.contains("<@"),
            "{target}: {text}"
        );
        assert!(r[0].get("at").is_none(), "{target}");
    }
    for target in [
        "feishu:webhook:am-feishu-oncall",
        "feishu:webhook:am-feishu-team",
    ] {
        let r: Vec<&Value> = all
            .iter()
            .filter(|(t, b)| t == target && b["card"]["header"]["template"] == "green")
            .map(|(_, b)| b)
            .collect();
        assert_eq!(r.len(), 1, "{target}: {all:#?}");
        assert!(r[0]["card"]["header"]["title"]["content"]
            .as_str()
            .unwrap()
            .starts_with("✅ [RESOLVED]"));
        assert!(!shown(r[0]).contains("<at "));
    }
    // No WeCom ping for the resolution.
    assert_eq!(
        all.iter()
            .filter(|(t, b)| t == "wecom:robot:am-wecom-oncall" && b["msgtype"] == "text")
            .count(),
        1
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    drop(am);
}

/// Now as RFC 3339 (UTC), without a date crate in this test crate.
pub(crate) fn jiff_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .expect("run date");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
