//! Routing and the built-in templates, rendered all the way to each platform's
//! request body (snapshots in `snapshots/`).

use std::collections::BTreeMap;

use imrelay_sdk::Client;
use serde_json::json;

use super::*;
use crate::channels::{Channel, ChannelSet, DestinationEntry};

const EXT: &str = "http://alertmanager.example.com:9093";

fn now() -> jiff::Timestamp {
    "2026-11-24T08:30:00Z".parse().unwrap()
}

fn dest(cfg: serde_json::Value) -> DestinationEntry {
    let client = Client::new().unwrap();
    DestinationEntry::new(client.build(&cfg).unwrap())
}

/// One channel per platform, plus an on-call channel with all three.
fn channels() -> ChannelSet {
    let dt = || dest(json!({"type": "dingtalk_robot", "access_token": "dt-token"}));
    let fs = || dest(json!({"type": "feishu_webhook", "hook": "fs-hook"}));
    let wc = || dest(json!({"type": "wecom_robot", "key": "wc-key"}));
    ChannelSet::new([
        Channel::new("dingtalk", vec![dt()]),
        Channel::new("feishu", vec![fs()]),
        Channel::new("wecom", vec![wc()]),
        Channel::new("oncall", vec![dt(), fs(), wc()]),
    ])
}

fn rule(label: &str, matchers: &[&str], channels: &[&str], mentions: Mentions) -> Rule {
    Rule {
        label: label.into(),
        matchers: matchers
            .iter()
            .map(|m| Matcher::parse(m).unwrap())
            .collect(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        mentions,
        mention_refs: Vec::new(),
        escalation: None,
        send_resolved: true,
        template: None,
        cont: false,
    }
}

fn alerting(routes: Vec<Route>) -> Alerting {
    Alerting {
        templates: Templates::new("Asia/Shanghai", BTreeMap::new()).unwrap(),
        routes: routes.into_iter().map(|r| (r.name.clone(), r)).collect(),
        external_url: None,
    }
}

/// Everything to one platform channel.
fn simple(channel: &str) -> (Alerting, Route) {
    let route = Route {
        name: "prod".into(),
        rules: Vec::new(),
        default: Some(rule("default", &[], &[channel], Mentions::default())),
        card: RouteCard::default(),
    };
    (alerting(vec![route.clone()]), route)
}

fn alert(status: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Alert {
    let map = |p: &[(&str, &str)]| -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let resolved = status == "resolved";
    Alert {
        status: status.into(),
        labels: map(labels),
        annotations: map(annotations),
        starts_at: "2026-11-24T08:00:00.123456789Z".into(),
        ends_at: if resolved {
            "2026-11-24T08:25:30Z".into()
        } else {
            "0001-01-01T00:00:00Z".into()
        },
        generator_url: "http://prometheus.example.com:9090/graph?g0.expr=up%3D%3D0".into(),
        fingerprint: "a1b2c3d4e5f60718".into(),
    }
}

fn notification(alerts: Vec<Alert>) -> Notification {
    let status = if alerts.iter().any(Alert::is_firing) {
        "firing"
    } else {
        "resolved"
    };
    Notification {
        version: "4".into(),
        group_key: "{}:{alertname=\"HighCPU\"}".into(),
        truncated_alerts: 0,
        status: status.into(),
        receiver: "imrelay".into(),
        group_labels: [("alertname".to_string(), "HighCPU".to_string())].into(),
        common_labels: BTreeMap::new(),
        common_annotations: BTreeMap::new(),
        external_url: EXT.into(),
        alerts,
    }
}

fn high_cpu(status: &str) -> Alert {
    alert(
        status,
        &[
            ("alertname", "HighCPU"),
            ("severity", "critical"),
            ("instance", "db-1:9100"),
            ("job", "node"),
        ],
        &[
            ("summary", "CPU above 95% for 10 minutes"),
            (
                "description",
                "db-1 is at 97% CPU; queries are slowing down.",
            ),
            ("runbook_url", "https://runbooks.example.com/high-cpu"),
        ],
    )
}

/// The single platform body each planned message renders to.
fn bodies(plan: &Plan, set: &ChannelSet) -> Vec<serde_json::Value> {
    plan.messages
        .iter()
        .map(|p| {
            let ch = set.get(&p.message.channel).unwrap();
            let d = ch
                .destinations
                .iter()
                .find(|d| d.dest.platform() == p.platform)
                .unwrap();
            let payloads = d.dest.render(&p.message.message).unwrap();
            assert_eq!(payloads.len(), 1, "one request per message");
            payloads[0].body.clone()
        })
        .collect()
}

fn render_one(channel: &str, alerts: Vec<Alert>) -> (Plan, serde_json::Value) {
    let (a, route) = simple(channel);
    let set = channels();
    let plan = plan(&a, &route, &notification(alerts), &set, now()).unwrap();
    assert_eq!(plan.messages.len(), 1);
    let body = bodies(&plan, &set).remove(0);
    (plan, body)
}

#[test]
fn dingtalk_firing() {
    let (_, body) = render_one("dingtalk", vec![high_cpu("firing")]);
    insta::assert_json_snapshot!(body);
}

#[test]
fn dingtalk_resolved() {
    let (_, body) = render_one("dingtalk", vec![high_cpu("resolved")]);
    insta::assert_json_snapshot!(body);
}

#[test]
fn feishu_firing() {
    let (_, body) = render_one("feishu", vec![high_cpu("firing")]);
    assert_eq!(body["card"]["header"]["template"], "red");
    insta::assert_json_snapshot!(body);
}

#[test]
fn feishu_resolved() {
    let (_, body) = render_one("feishu", vec![high_cpu("resolved")]);
    assert_eq!(body["card"]["header"]["template"], "green");
    insta::assert_json_snapshot!(body);
}

#[test]
fn feishu_header_colour_follows_severity() {
    for (sev, colour) in [
        ("critical", "red"),
        ("warning", "orange"),
        ("info", "blue"),
        ("", "orange"),
    ] {
        let a = alert(
            "firing",
            &[("alertname", "X"), ("severity", sev)],
            &[("summary", "s")],
        );
        let (_, body) = render_one("feishu", vec![a]);
        assert_eq!(body["card"]["header"]["template"], colour, "{sev}");
    }
}

#[test]
fn wecom_firing() {
    let (_, body) = render_one("wecom", vec![high_cpu("firing")]);
    insta::assert_json_snapshot!(body);
}

#[test]
fn wecom_resolved() {
    let (_, body) = render_one("wecom", vec![high_cpu("resolved")]);
    insta::assert_json_snapshot!(body);
}

fn chinese() -> Alert {
    alert(
        "firing",
        &[
            ("alertname", "磁盘空间不足"),
            ("severity", "warning"),
            ("机房", "上海-浦东"),
            ("instance", "数据库-01"),
        ],
        &[
            ("summary", "磁盘使用率超过 90%"),
            ("description", "“/data” 分区剩余 8%，请尽快清理。"),
        ],
    )
}

#[test]
fn non_ascii_labels_dingtalk() {
    let (_, body) = render_one("dingtalk", vec![chinese()]);
    insta::assert_json_snapshot!(body);
}

#[test]
fn non_ascii_labels_feishu() {
    let (_, body) = render_one("feishu", vec![chinese()]);
    insta::assert_json_snapshot!(body);
}

#[test]
fn non_ascii_labels_wecom() {
    let (_, body) = render_one("wecom", vec![chinese()]);
    insta::assert_json_snapshot!(body);
}

/// 300 alerts never fit: the text shows as many as one request holds and ends
/// with "… and N more alerts" (never split, never refused).
fn many(channel: &str) -> (Plan, String) {
    let alerts: Vec<Alert> = (0..300)
        .map(|i| {
            alert(
                "firing",
                &[
                    ("alertname", "InstanceDown"),
                    ("severity", if i % 3 == 0 { "critical" } else { "warning" }),
                    ("instance", &format!("节点-{i:03}:9100")),
                ],
                &[("summary", &format!("实例 {i} 已宕机超过 5 分钟"))],
            )
        })
        .collect();
    let (plan, body) = render_one(channel, alerts);
    let text = match channel {
        "dingtalk" => body["markdown"]["text"].as_str().unwrap().to_string(),
        "feishu" => body["card"]["elements"][0]["text"]["content"]
            .as_str()
            .unwrap()
            .to_string(),
        _ => body["markdown"]["content"].as_str().unwrap().to_string(),
    };
    let p = &plan.messages[0];
    assert_eq!(p.alerts, 300);
    assert!(p.shown > 1 && p.shown < 300, "shown {}", p.shown);
    let more = 300 - p.shown;
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .contains(&format!("… and {more} more alerts")),
        "{text}"
    );
    assert!(
        !text.contains("(truncated)"),
        "cut by the template, not the SDK"
    );
    // Critical alerts come first.
    let sev = |s: &str| match channel {
        "dingtalk" => format!("[{s}]"),
        "feishu" => format!("· {s}"),
        _ => format!(">{s}<"),
    };
    let first = text.find(&sev("critical")).unwrap();
    assert!(text.find(&sev("warning")).is_none_or(|w| w > first));
    (plan, text)
}

#[test]
fn many_alerts_dingtalk_truncate_cleanly() {
    let (plan, text) = many("dingtalk");
    let tail: String = text.lines().rev().take(3).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!(format!("shown {}\n{tail}", plan.messages[0].shown));
}

#[test]
fn many_alerts_feishu_truncate_cleanly() {
    let (plan, text) = many("feishu");
    let tail: String = text.lines().rev().take(2).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!(format!("shown {}\n{tail}", plan.messages[0].shown));
}

#[test]
fn many_alerts_wecom_truncate_cleanly() {
    let (plan, text) = many("wecom");
    // WeCom counts UTF-8 bytes of the content: 4096.
    assert!(text.len() <= 4096, "{}", text.len());
    let tail: String = text.lines().rev().take(2).collect::<Vec<_>>().join("\n");
    insta::assert_snapshot!(format!("shown {}\n{tail}", plan.messages[0].shown));
}

fn severity_route() -> Route {
    Route {
        name: "prod".into(),
        rules: vec![
            rule(
                "rules[0]",
                &[r#"severity="critical""#],
                &["oncall"],
                Mentions {
                    all: true,
                    mobiles: vec!["13800000000".into()],
                    user_ids: vec!["ou_oncall".into()],
                    ..Default::default()
                },
            ),
            Rule {
                send_resolved: false,
                ..rule(
                    "rules[1]",
                    &[r#"severity=~"warn.*""#],
                    &["dingtalk"],
                    Mentions::default(),
                )
            },
        ],
        default: Some(rule("default", &[], &["feishu"], Mentions::default())),
        card: RouteCard::default(),
    }
}

#[test]
fn routes_by_severity_with_mentions_per_route() {
    let route = severity_route();
    let a = alerting(vec![route.clone()]);
    let set = channels();
    let warn = alert(
        "firing",
        &[("alertname", "SlowQueries"), ("severity", "warning")],
        &[],
    );
    let other = alert("firing", &[("alertname", "Odd"), ("severity", "x")], &[]);
    let n = notification(vec![high_cpu("firing"), warn.clone(), other]);
    let p = plan(&a, &route, &n, &set, now()).unwrap();
    let summary: Vec<(String, String, &str, usize, bool)> = p
        .messages
        .iter()
        .map(|m| {
            (
                m.rule.clone(),
                m.message.channel.clone(),
                m.platform.as_str(),
                m.alerts,
                m.message.message.mentions.all,
            )
        })
        .collect();
    // Critical: on-call on all three platforms with mentions (plus the WeCom
    // text ping, since WeCom markdown cannot @all); warning: team DingTalk,
    // no mention; anything else: the default.
    assert_eq!(
        summary,
        vec![
            ("rules[0]".into(), "oncall".into(), "dingtalk", 1, true),
            ("rules[0]".into(), "oncall".into(), "feishu", 1, true),
            ("rules[0]".into(), "oncall".into(), "wecom", 1, true),
            ("rules[0]".into(), "oncall".into(), "wecom", 1, true),
            ("rules[1]".into(), "dingtalk".into(), "dingtalk", 1, false),
            ("default".into(), "feishu".into(), "feishu", 1, false),
        ]
    );
    let b = bodies(&p, &set);
    assert_eq!(b[0]["at"]["isAtAll"], true);
    assert_eq!(b[0]["at"]["atMobiles"], json!(["13800000000"]));
    assert!(b[1]["card"]["elements"][0]["text"]["content"]
        .as_str()
        .unwrap()
        .contains("<at id=all></at>"));
    assert!(b[2]["markdown"]["content"]
        .as_str()
        .unwrap()
        .ends_with("<@ou_oncall>"));
    insta::assert_json_snapshot!(b[3], @r#"
    {
      "msgtype": "text",
      "text": {
        "content": "🔥 1 firing: HighCPU",
        "mentioned_list": [
          "@all"
        ],
        "mentioned_mobile_list": [
          "13800000000"
        ]
      }
    }
    "#);
    assert!(b[4].get("at").is_none());

    // Resolved: no mentions anywhere, and the warning route does not send
    // resolved notifications.
    let n = notification(vec![high_cpu("resolved"), {
        let mut w = warn;
        w.status = "resolved".into();
        w.ends_at = "2026-11-24T08:20:00Z".into();
        w
    }]);
    let p = plan(&a, &route, &n, &set, now()).unwrap();
    assert_eq!(p.resolved_suppressed, 1);
    assert_eq!(p.messages.len(), 3, "no WeCom ping when resolved");
    assert!(p
        .messages
        .iter()
        .all(|m| m.message.message.mentions.is_empty() && m.message.channel == "oncall"));
}

#[test]
fn continue_sends_to_later_rules_too_and_unrouted_is_counted() {
    let mut route = severity_route();
    route.rules[0].cont = true;
    route.rules[0].mentions = Mentions::default();
    route.rules.push(rule(
        "rules[2]",
        &["team=db"],
        &["wecom"],
        Mentions::default(),
    ));
    route.default = None;
    let a = alerting(vec![route.clone()]);
    let set = channels();
    let mut crit = high_cpu("firing");
    crit.labels.insert("team".into(), "db".into());
    let stray = alert("firing", &[("alertname", "Stray")], &[]);
    let p = plan(&a, &route, &notification(vec![crit, stray]), &set, now()).unwrap();
    let rules: Vec<&str> = p.messages.iter().map(|m| m.rule.as_str()).collect();
    assert_eq!(rules, vec!["rules[0]", "rules[0]", "rules[0]", "rules[2]"]);
    assert_eq!(p.unrouted, 1);
}

#[test]
fn silence_links_are_prefilled_and_encoded() {
    let labels: BTreeMap<String, String> = [
        ("alertname".to_string(), "High CPU".to_string()),
        ("q".to_string(), "a\"b".to_string()),
    ]
    .into();
    assert_eq!(
        silence_url("http://am:9093/", &labels).unwrap(),
        "http://am:9093/#/silences/new?filter=%7Balertname%3D%22High%20CPU%22%2C%20q%3D%22a%5C%22b%22%7D"
    );
    assert_eq!(silence_url("", &labels), None);
}

#[test]
fn a_failing_user_template_falls_back_to_the_builtin() {
    let mut user = BTreeMap::new();
    user.insert(
        "strict".to_string(),
        crate::templates::TemplateSource {
            format: crate::templates::Format::Markdown,
            // Fails at render: a number has no attribute.
            body: "{{ total.nope.deeper }}".into(),
            title: None,
            theme: None,
        },
    );
    let (mut a, mut route) = simple("dingtalk");
    a.templates = Templates::new("UTC", user).unwrap();
    route.default.as_mut().unwrap().template = Some("strict".into());
    let set = channels();
    let p = plan(
        &a,
        &route,
        &notification(vec![high_cpu("firing")]),
        &set,
        now(),
    )
    .unwrap();
    assert_eq!(p.messages[0].template, "alert.dingtalk");
    assert!(sample_render(&a, "strict").is_err());
    assert!(sample_render(&a, "alert.feishu").is_ok());
}

#[test]
fn alerts_alertmanager_left_out_are_counted_as_more() {
    let mut n = notification(vec![high_cpu("firing")]);
    n.truncated_alerts = 7;
    let (a, route) = simple("wecom");
    let set = channels();
    let p = plan(&a, &route, &n, &set, now()).unwrap();
    let body = bodies(&p, &set).remove(0);
    let text = body["markdown"]["content"].as_str().unwrap();
    assert!(
        text.ends_with("**… and 7 more alerts** (8 in total)"),
        "{text}"
    );
}
