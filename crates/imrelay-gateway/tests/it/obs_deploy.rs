//! The deploy files match what imrelay exports: the Grafana dashboard is valid
//! JSON and every panel's query names metrics imrelay defines; the Prometheus
//! rules use only those metrics; the Kubernetes probes hit real endpoints.

use std::path::PathBuf;

use imrelay_gateway::telemetry::events;

fn deploy(path: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `imrelay_...` identifier in `text`, histogram suffixes removed.
fn metric_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("imrelay_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            let name = &tail[..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|b| events::ALL.contains(b))
                .unwrap_or(name);
            out.push(base.to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn dashboard_queries_name_exported_metrics() {
    let d: serde_json::Value = serde_json::from_str(&deploy("grafana/imrelay-dashboard.json"))
        .expect("the dashboard is valid JSON");
    assert_eq!(d["uid"], "imrelay-overview");
    let panels = d["panels"].as_array().expect("panels");
    assert!(panels.len() >= 6);
    let mut titles = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("every panel has a title");
        titles.push(title.to_lowercase());
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no queries");
        for t in targets {
            let expr = t["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{title}: a target without expr"));
            let names = metric_names(expr);
            assert!(
                !names.is_empty(),
                "{title}: `{expr}` names no imrelay metric"
            );
            for n in names {
                assert!(
                    events::ALL.contains(&n.as_str()),
                    "{title}: `{n}` is not a metric imrelay exports"
                );
                used.insert(n);
            }
        }
    }
    // The panels the issue asks for.
    for want in [
        "success rate",
        "latency",
        "queue depth",
        "dead-letter",
        "breakers",
        "rate-limit waits",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "no `{want}` panel in {titles:?}"
        );
    }
    assert!(used.contains(events::DELIVERY_LATENCY) && used.contains(events::BREAKER_STATE));
}

#[test]
fn alert_rules_use_exported_metrics() {
    let rules = deploy("prometheus/imrelay-rules.yml");
    let names = metric_names(&rules);
    assert!(names.len() >= 8);
    for n in names {
        assert!(
            events::ALL.contains(&n.as_str()),
            "rules use `{n}`, which imrelay does not export"
        );
    }
    for alert in [
        "ImrelayDeadLettersGrowing",
        "ImrelayBreakerOpen",
        "ImrelayTokenRefreshFailing",
    ] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
}

#[test]
fn probes_and_units_point_at_real_endpoints() {
    let k8s = deploy("kubernetes/imrelay.yaml");
    let doc = imrelay_gateway::api::openapi::document();
    for path in ["/healthz", "/readyz"] {
        assert!(k8s.contains(&format!("path: {path}")), "k8s probe {path}");
        assert!(doc["paths"][path]["get"].is_object(), "{path} is served");
    }
    assert!(k8s.contains("prometheus.io/path: /metrics"));
    let unit = deploy("systemd/imrelay.service");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/imrelay serve --config /etc/imrelay/imrelay.toml")
    );
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // The Dockerfile (at the root) is checked by imrelay's packaging tests.
    // The example config in the manifest parses as imrelay config.
    let start = k8s.find("imrelay.toml: |\n").unwrap() + "imrelay.toml: |\n".len();
    let toml_text: String = k8s[start..]
        .lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    std::env::set_var("IMRELAY_API_KEY", "k8s-test-key-0123456789");
    std::env::set_var("DINGTALK_TOKEN", "t");
    std::env::set_var("DINGTALK_SECRET", "SECs");
    imrelay_gateway::config::Config::parse(&toml_text, std::path::Path::new("/tmp"))
        .unwrap_or_else(|e| panic!("the manifest's config does not parse: {e}\n{toml_text}"));
}
