//! The compatibility endpoints over HTTP, against a gateway on port 0 and
//! the mock platform: delivered and rendered, authenticated, refused with
//! problem+json naming the field.

use std::time::Duration;

use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};
use serde_json::{json, Value};

use crate::config::Config;
use crate::Gateway;

const KEY: &str = "compat-key-0123456789abcdef";

const PWD_TMPL: &str = r#"{{ define "ding.link.title" }}[{{ .Status | toUpper }}:{{ .Alerts.Firing | len }}] {{ .CommonLabels.alertname }}{{ end }}
{{ define "ding.link.content" }}{{ range .Alerts }}- {{ .Labels.alertname }} {{ .Annotations.summary | markdown }} at {{ .StartsAt.Local.Format "15:04" }}
{{ end }}{{ end }}"#;

const PA_TMPL: &str = r#"{{ range $k, $v := .alerts }}{{ if eq $v.status "firing" }}## [PA firing]({{ $v.generatorURL }})
{{ $v.labels.alertname }} {{ $v.annotations.summary }} since {{ GetCSTtime $v.startsAt }}
{{ end }}{{ end }}"#;

struct Setup {
    gw: Gateway,
    mock: MockServer,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn setup(compat: &str) -> Setup {
    let mcfg = MockConfig {
        robots: vec![
            RobotConfig::new(MockPlatform::Dingtalk, "team-token"),
            RobotConfig::new(MockPlatform::Dingtalk, "other-token"),
        ],
        ..MockConfig::default()
    };
    let mock = MockServer::start(mcfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = mock.base_url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pwd.tmpl"), PWD_TMPL).unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch = false
[dispatch]
poll_interval = "20ms"
[[api_keys]]
name = "am"
key = "{KEY}"
channels = ["team"]

[channels.team]
[[channels.team.destinations]]
type = "dingtalk_robot"
access_token = "team-token"
base_url = "{url}"

[channels.other]
[[channels.other.destinations]]
type = "dingtalk_robot"
access_token = "other-token"
base_url = "{url}"

[alerting]
time_zone = "Asia/Shanghai"
[alerting.routes.webhook1]
channels = ["team"]
template = "pwd.webhook1"
mentions = {{ mobiles = ["13800000000"] }}

[templates."pwd.webhook1"]
file = "pwd.tmpl"
format = "markdown"
source = '{{{{ template "ding.link.content" . }}}}'
title = '{{{{ template "ding.link.title" . }}}}'

[templates.prometheus-dd]
engine = "go-prometheusalert"
format = "markdown"
title = "PrometheusAlert"
source = '''{PA_TMPL}'''

{compat}
"#
    );
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = Gateway::start(cfg, listener).await.unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    Setup {
        base: format!("http://{}", gw.addr()),
        gw,
        mock,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

fn notification() -> Value {
    json!({
        "version": "4", "status": "firing", "receiver": "dingtalk",
        "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull"}, "commonAnnotations": {},
        "externalURL": "http://am:9093",
        "alerts": [{"status": "firing",
                    "labels": {"alertname": "DiskFull", "severity": "critical"},
                    "annotations": {"summary": "disk_95%"},
                    "startsAt": "2026-11-24T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prom/g", "fingerprint": "f1"}]
    })
}

impl Setup {
    async fn post(&self, path_and_query: &str, bearer: Option<&str>) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path_and_query}", self.base))
            .json(&notification());
        if let Some(k) = bearer {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let body: Value = r.json().await.unwrap();
        if status >= 400 {
            assert_eq!(ct.as_deref(), Some("application/problem+json"), "{body}");
        }
        (status, body)
    }

    /// The markdown bodies the mock accepted for `token`, waiting for `n`.
    async fn delivered(&self, token: &str, n: usize) -> Vec<Value> {
        let target = format!("dingtalk:robot:{token}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got: Vec<Value> = self
                .mock
                .state()
                .log
                .all()
                .into_iter()
                .filter(|e| e.target == target && e.accepted)
                .filter_map(|e| e.body)
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{token} never got {n} messages"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.gw.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pwd_path_delivers_with_the_targets_template_and_mentions() {
    let s = setup("[compat]\npwd = true").await;
    // The key in the URL, for Alertmanager setups that cannot send headers.
    let (status, body) = s
        .post(&format!("/dingtalk/webhook1/send?key={KEY}"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["template"], "pwd.webhook1");
    let got = s.delivered("team-token", 1).await;
    assert_eq!(got[0]["msgtype"], "markdown");
    assert_eq!(got[0]["markdown"]["title"], "[FIRING:1] DiskFull");
    let text = got[0]["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("- DiskFull disk\\_95% at 16:00"), "{text}");
    assert_eq!(got[0]["at"]["atMobiles"], json!(["13800000000"]));
    // The same with the header.
    let (status, _) = s.post("/dingtalk/webhook1/send", Some(KEY)).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pwd_path_refusals_name_the_field() {
    let s = setup("[compat]\npwd = true").await;
    let (status, body) = s.post("/dingtalk/webhook1/send", None).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (401, Some("Authorization"))
    );
    let (status, body) = s.post("/dingtalk/webhook1/send?key=wrong", None).await;
    assert_eq!((status, body["field"].as_str()), (401, Some("key")));
    let (status, body) = s.post("/dingtalk/nope/send", Some(KEY)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (404, Some("target")),
        "{body}"
    );
    // The PA endpoint is off: 404, saying which switch turns it on.
    let (status, body) = s
        .post("/prometheusalert?type=dd&tpl=prometheus-dd", Some(KEY))
        .await;
    assert_eq!(status, 404);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("prometheusalert = true"),
        "{body}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_only_when_the_config_says_so() {
    let s = setup("[compat]\npwd = true\nallow_unauthenticated = true").await;
    let (status, body) = s.post("/dingtalk/webhook1/send", None).await;
    assert_eq!(status, 200, "{body}");
    s.delivered("team-token", 1).await;
    // A key that is sent is still checked.
    let (status, _) = s.post("/dingtalk/webhook1/send", Some("wrong")).await;
    assert_eq!(status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheusalert_path_renders_pa_templates_to_configured_robots_only() {
    let s = setup("[compat]\nprometheusalert = true\nallow_unauthenticated = true").await;
    let dd = "https://oapi.dingtalk.com/robot/send?access_token=team-token";
    let (status, body) = s
        .post(
            &format!("/prometheusalert?type=dd&tpl=prometheus-dd&ddurl={dd}&at=13900000000"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let got = s.delivered("team-token", 1).await;
    assert_eq!(got[0]["markdown"]["title"], "PrometheusAlert");
    assert_eq!(
        got[0]["markdown"]["text"],
        // DingTalk shows a mention only when the text names it.
        "## [PA firing](http://prom/g)\nDiskFull disk_95% since 2026-11-24 16:00:00\n\n@13900000000"
    );
    assert_eq!(got[0]["at"]["atMobiles"], json!(["13900000000"]));

    // No open relay: a robot no channel has is refused.
    let stranger = "https://oapi.dingtalk.com/robot/send?access_token=someone-elses";
    let (status, body) = s
        .post(
            &format!("/prometheusalert?type=dd&tpl=prometheus-dd&ddurl={stranger}"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (403, Some("ddurl")),
        "{body}"
    );
    for (query, field) in [
        ("type=sms&tpl=prometheus-dd", "type"),
        ("type=dd&ddurl=x", "tpl"),
        (
            "type=dd&tpl=nope&ddurl=https://oapi.dingtalk.com/robot/send?access_token=team-token",
            "tpl",
        ),
        // No URL and no default channel for dd.
        ("type=dd&tpl=prometheus-dd", "ddurl"),
    ] {
        let (status, body) = s.post(&format!("/prometheusalert?{query}"), None).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some(field)),
            "{query}: {body}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheusalert_keys_cover_the_channels_and_defaults_apply() {
    let s = setup(
        "[compat]\nprometheusalert = true\n[compat.prometheusalert_defaults]\ndd = \"other\"",
    )
    .await;
    // The key covers `team`, not `other` (the default robot).
    let (status, body) = s
        .post("/prometheusalert?type=dd&tpl=prometheus-dd", Some(KEY))
        .await;
    assert_eq!(status, 403, "{body}");
    let dd = "https://oapi.dingtalk.com/robot/send?access_token=team-token";
    let (status, body) = s
        .post(
            &format!("/prometheusalert?type=dd&tpl=prometheus-dd&ddurl={dd}&token={KEY}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    s.delivered("team-token", 1).await;
    s.stop().await;
}

#[test]
fn config_names_missing_default_channels_and_a_pointless_open_switch() {
    let err = Config::parse(
        "[compat]\nallow_unauthenticated = true\n[compat.prometheusalert_defaults]\nwx = \"nope\"\n",
        std::path::Path::new("."),
    )
    .unwrap_err();
    let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
    for key in [
        "compat.prometheusalert_defaults.wx",
        "compat.allow_unauthenticated",
    ] {
        assert!(keys.contains(&key), "{keys:?}");
    }
}
