//! `POST /v1/alertmanager/{route}` over HTTP, config-load errors for routes and
//! templates, template reload, and `POST /v1/messages` with a template.

use crate::api_support::*;
use imrelay_gateway::config::Config;
use serde_json::{json, Value};

const ROUTES: &str = r#"
[alerting]
time_zone = "Asia/Shanghai"

[alerting.routes.hooks]
channels = ["alerts"]

[alerting.routes.both]
channels = ["alerts"]
[[alerting.routes.both.rules]]
matchers = ['severity="critical"']
channels = ["other"]
"#;

fn payload(status: &str) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"DiskFull\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "imrelay",
        "groupLabels": {"alertname": "DiskFull"},
        "commonLabels": {"alertname": "DiskFull", "severity": "warning"},
        "commonAnnotations": {},
        "externalURL": "http://am.example.com:9093",
        "alerts": [{
            "status": status,
            "labels": {"alertname": "DiskFull", "severity": "warning", "instance": "db-1"},
            "annotations": {"summary": "disk 95% full"},
            "startsAt": "2026-11-24T08:00:00Z",
            "endsAt": if status == "firing" { "0001-01-01T00:00:00Z" } else { "2026-11-24T08:10:00Z" },
            "generatorURL": "http://prom.example.com/graph",
            "fingerprint": "abc123"
        }]
    })
}

async fn gateway(sink: &Sink, extra: &str) -> TestGateway {
    TestGateway::start(&config_text(sink, extra)).await
}

#[tokio::test]
async fn accepted_notifications_are_rendered_and_delivered() {
    let sink = Sink::start().await;
    let gw = gateway(&sink, ROUTES).await;
    let r = gw
        .post(
            "/v1/alertmanager/hooks",
            Some(ADMIN_KEY),
            &payload("firing").to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["route"], "hooks");
    let msgs = r.body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["channel"], "alerts");
    assert_eq!(msgs[0]["template"], "alert.text");
    let id = msgs[0]["id"].as_str().unwrap();
    gw.wait_state(id, "delivered").await;
    sink.wait_for("the alert", |b| !b.is_empty()).await;
    let text = sink.bodies()[0]["body"]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with("[FIRING:1] DiskFull"), "{text}");
    // Times in the configured zone.
    assert!(text.contains("Started: 2026-11-24 16:00:00 CST"), "{text}");
}

#[tokio::test]
async fn invalid_payloads_get_4xx_naming_the_problem() {
    let sink = Sink::start().await;
    let gw = gateway(&sink, ROUTES).await;
    let post = |body: String| {
        let gw = &gw;
        async move {
            gw.post("/v1/alertmanager/hooks", Some(ADMIN_KEY), &body, &[])
                .await
        }
    };
    let r = post("{not json".into()).await;
    r.assert_problem(400, None);

    let mut p = payload("firing");
    p["version"] = json!("3");
    post(p.to_string())
        .await
        .assert_problem(422, Some("version"));

    let mut p = payload("firing");
    p["alerts"] = json!([]);
    post(p.to_string())
        .await
        .assert_problem(422, Some("alerts"));

    let mut p = payload("firing");
    p.as_object_mut().unwrap().remove("status");
    post(p.to_string())
        .await
        .assert_problem(422, Some("status"));

    let mut p = payload("firing");
    p["alerts"][0]["startsAt"] = json!("yesterday");
    let r = post(p.to_string()).await;
    r.assert_problem(422, Some("alerts[0].startsAt"));
    assert!(r.body["detail"].as_str().unwrap().contains("RFC 3339"));

    let mut p = payload("firing");
    p["alerts"][0]["labels"] = json!({"severity": 5});
    post(p.to_string())
        .await
        .assert_problem(422, Some("alerts[0].labels.severity"));

    let mut p = payload("resolved");
    p["alerts"][0]["endsAt"] = json!("0001-01-01T00:00:00Z");
    post(p.to_string())
        .await
        .assert_problem(422, Some("alerts[0].endsAt"));

    let mut p = payload("firing");
    p["alerts"][0]["status"] = json!("pending");
    post(p.to_string())
        .await
        .assert_problem(422, Some("alerts[0].status"));

    // Fields Alertmanager may add later are accepted.
    let mut p = payload("firing");
    p["someFutureField"] = json!(1);
    assert_eq!(post(p.to_string()).await.status, 200);
    assert_eq!(gw.stored_messages().await, 1, "only the valid one stored");
}

#[tokio::test]
async fn route_and_key_errors() {
    let sink = Sink::start().await;
    let gw = gateway(&sink, ROUTES).await;
    let body = payload("firing").to_string();
    let r = gw
        .post("/v1/alertmanager/nope", Some(ADMIN_KEY), &body, &[])
        .await;
    r.assert_problem(404, Some("route"));
    assert!(r.body["detail"].as_str().unwrap().contains("both, hooks"));
    gw.post("/v1/alertmanager/hooks", None, &body, &[])
        .await
        .assert_problem(401, Some("Authorization"));
    // `ops` may use `alerts` but route `both` can also send to `other`.
    let r = gw
        .post("/v1/alertmanager/both", Some(OPS_KEY), &body, &[])
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        gw.post("/v1/alertmanager/hooks", Some(OPS_KEY), &body, &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_store_that_cannot_commit_gets_5xx_never_4xx() {
    let sink = Sink::start().await;
    let gw = gateway(&sink, ROUTES).await;
    gw.gw.store().close().await;
    let r = gw
        .post(
            "/v1/alertmanager/hooks",
            Some(ADMIN_KEY),
            &payload("firing").to_string(),
            &[],
        )
        .await;
    assert!(r.status >= 500, "{} {}", r.status, r.text);
}

fn issues(text: &str) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.j2"),
        "{% for a in alerts %}{{ a.name }",
    )
    .unwrap();
    match Config::parse(text, dir.path()) {
        Ok(_) => Vec::new(),
        Err(e) => e.issues.into_iter().map(|i| (i.key, i.message)).collect(),
    }
}

#[tokio::test]
async fn config_errors_name_the_key_at_load() {
    let sink = Sink::start().await;
    let base = config_text(&sink, "");
    let got = issues(&format!(
        r#"{base}
[alerting]
time_zone = "Mars/Olympus"
[alerting.routes.prod]
channels = ["nope"]
[[alerting.routes.prod.rules]]
matchers = ['severity=~"("']
channels = ["alerts"]
template = "missing"

[templates.bad]
file = "bad.j2"
[templates.runtime]
source = "{{{{ total.x.y }}}}"
[templates.both]
source = "x"
file = "x.j2"
"#
    ));
    let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "templates.both.source",
            "alerting.time_zone",
            "templates.bad.file",
            "alerting.routes.prod.channels[0]",
            "alerting.routes.prod.rules[0].template",
            "alerting.routes.prod.rules[0].matchers[0]",
        ],
        "{got:#?}"
    );
    // A template that compiles but fails on alert data is caught at load too
    // when a route uses it.
    let got = issues(&format!(
        r#"{base}
[alerting.routes.prod]
channels = ["alerts"]
template = "runtime"
[templates.runtime]
source = "{{{{ total.x.y }}}}"
"#
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "templates.runtime.source");
    assert!(got[0].1.contains("sample alert"), "{}", got[0].1);
}

#[tokio::test]
async fn template_files_reload_with_the_config() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.j2"), "v1 {{ names }}").unwrap();
    let extra = r#"
[alerting.routes.hooks]
channels = ["alerts"]
template = "mine"
[templates.mine]
format = "text"
file = "t.j2"
"#;
    let gw = TestGateway::start_in(dir, &config_text(&sink, extra)).await;
    let send = || async {
        let r = gw
            .post(
                "/v1/alertmanager/hooks",
                Some(ADMIN_KEY),
                &payload("firing").to_string(),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.body["messages"][0]["id"].as_str().unwrap().to_string();
        gw.wait_state(&id, "delivered").await
    };
    let m = send().await;
    assert_eq!(m["message"]["body"]["text"], "v1 DiskFull");
    std::fs::write(gw.dir.path().join("t.j2"), "v2 {{ names }}").unwrap();
    gw.gw.live().reload_file(&gw.config_path()).unwrap();
    let m = send().await;
    assert_eq!(m["message"]["body"]["text"], "v2 DiskFull");
    // A broken template is refused as a whole; the old one keeps working.
    std::fs::write(gw.dir.path().join("t.j2"), "{{ broken").unwrap();
    let e = gw.gw.live().reload_file(&gw.config_path()).unwrap_err();
    assert_eq!(e.issues[0].key, "templates.mine.file");
    let m = send().await;
    assert_eq!(m["message"]["body"]["text"], "v2 DiskFull");
}

#[tokio::test]
async fn messages_accept_a_template_and_data() {
    let sink = Sink::start().await;
    let extra = r#"
[templates.deploy]
format = "markdown"
source = "**{{ service }}** {{ version }} is live\n{% for h in hosts %}\n- {{ h }}\n{% endfor %}"
title = "Deploy {{ service }}"
"#;
    let gw = gateway(&sink, extra).await;
    let body = json!({
        "channel": "alerts",
        "template": "deploy",
        "data": {"service": "api", "version": "v1.2", "hosts": ["a", "b"]}
    });
    let r = gw
        .post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let m = gw
        .wait_state(r.body["id"].as_str().unwrap(), "delivered")
        .await;
    assert_eq!(m["message"]["title"], "Deploy api");
    assert_eq!(
        m["message"]["body"],
        json!({"type": "markdown", "text": "**api** v1.2 is live\n- a\n- b"})
    );

    for (body, field) in [
        (json!({"channel": "alerts", "template": "nope"}), "template"),
        (
            json!({"channel": "alerts", "template": "deploy", "text": "x"}),
            "template",
        ),
        (
            json!({"channel": "alerts", "template": "deploy", "data": [1]}),
            "data",
        ),
        (
            json!({"channel": "alerts", "text": "x", "data": {}}),
            "data",
        ),
    ] {
        gw.post("/v1/messages", Some(ADMIN_KEY), &body.to_string(), &[])
            .await
            .assert_problem(422, Some(field));
    }
    // In a batch, the field is prefixed with the item.
    let batch = json!({"messages": [
        {"channel": "alerts", "template": "deploy", "data": {"service": "x", "hosts": []}},
        {"channel": "alerts", "template": "nope"}
    ]});
    let r = gw
        .post(
            "/v1/messages/batch",
            Some(ADMIN_KEY),
            &batch.to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 207, "{}", r.text);
    assert_eq!(
        r.body["results"][1]["problem"]["field"], "messages[1].template",
        "{}",
        r.text
    );
}

/// The migration guide's example is a valid config (every destination built).
#[test]
fn the_migration_guide_example_is_valid() {
    let doc = include_str!("../../../../docs/migration.md");
    let start = doc.find("```toml\n").expect("a toml example") + 8;
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, block).unwrap();
    let summary = imrelay_gateway::check_file(&path).unwrap_or_else(|e| panic!("{e}\n{block}"));
    assert_eq!(summary.channels.len(), 2);
}
