use std::path::Path;
use std::time::Duration;

use super::*;
use crate::runtime::{build_channels, check_file};

const KEY: &str = "test-key-0123456789abcdef";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("."))
}

fn build(text: &str) -> Result<crate::channels::ChannelSet, ConfigError> {
    let cfg = parse(text)?;
    build_channels(&cfg, &BuildContext::default())
}

fn keys(err: &ConfigError) -> Vec<&str> {
    err.issues.iter().map(|i| i.key.as_str()).collect()
}

fn base(channels: &str) -> String {
    format!(
        r#"
[[api_keys]]
name = "ci"
key = "{KEY}"
channels = ["*"]
{channels}
"#
    )
}

#[test]
fn a_full_config_builds_channels_with_overrides() {
    let text = base(
        r#"
[server]
listen = "127.0.0.1:0"
shutdown_grace = "3s"

[channels.alerts]
retry = { base = "2s", cap = "1m", max_attempts = 4, max_age = "1h" }
fallback = { channel = "oncall", after = "10m" }
breaker = { failure_threshold = 3, open_for = "5s" }
coalesce = { max_delay = "2m" }

[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
rate_limit = [{ count = 3, per = "1s" }, { count = 100, per = "1m" }]
timeouts = { connect = "1s", total = "2s" }

[[channels.alerts.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/b"
allow_private = true

[channels.oncall]
pool = true
[[channels.oncall.destinations]]
type = "webhook"
url = "https://hooks.example.com/p1"
[[channels.oncall.destinations]]
type = "webhook"
url = "https://hooks.example.com/p2"
"#,
    );
    let cfg = parse(&text).unwrap();
    assert_eq!(cfg.server.shutdown_grace, Duration::from_secs(3));
    let set = build_channels(&cfg, &BuildContext::default()).unwrap();
    let alerts = set.get("alerts").unwrap();
    assert_eq!(alerts.retry.base, Duration::from_secs(2));
    assert_eq!(alerts.retry.cap, Duration::from_secs(60));
    assert_eq!(alerts.retry.max_attempts, 4);
    assert_eq!(alerts.retry.max_age, Duration::from_secs(3600));
    assert_eq!(
        alerts.fallback,
        Some(crate::channels::Fallback {
            channel: "oncall".into(),
            after: Some(Duration::from_secs(600))
        })
    );
    assert_eq!(alerts.coalesce.unwrap().max_delay, Duration::from_secs(120));
    let d0 = &alerts.destinations[0];
    assert_eq!(
        d0.quotas,
        vec![
            imrelay_sdk::Quota::per_second(3),
            imrelay_sdk::Quota::per_minute(100)
        ]
    );
    assert_eq!(d0.breaker.failure_threshold, 3);
    assert_eq!(d0.breaker.open_for, Duration::from_secs(5));
    // Defaults come from the SDK when not overridden.
    assert_eq!(
        alerts.destinations[1].quotas,
        vec![imrelay_sdk::Quota::per_second(50)]
    );
    let oncall = set.get("oncall").unwrap();
    assert!(oncall.pool);
    assert_eq!(oncall.targets(), vec!["oncall/pool".to_string()]);
}

#[test]
fn env_and_file_secrets_resolve() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.txt"), format!("{KEY}\n")).unwrap();
    std::env::set_var("IMRELAY_CFG_TEST_URL", "https://hooks.example.com/env");
    let text = r#"
[[api_keys]]
name = "ci"
key_file = "key.txt"
channels = ["a"]
[[channels.a.destinations]]
type = "webhook"
url = "${IMRELAY_CFG_TEST_URL}"
"#;
    let path = dir.path().join("imrelay.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = Config::load(&path).unwrap();
    assert_eq!(cfg.api_keys[0].key, KEY);
    assert_eq!(
        cfg.channels["a"].destinations[0]["url"],
        "https://hooks.example.com/env"
    );
    assert_eq!(cfg.store.path, dir.path().join("imrelay.db"));
    let summary = check_file(&path).unwrap();
    assert_eq!(summary.channels["a"].len(), 1);
    assert!(summary.to_string().contains("config OK"));
}

#[test]
fn errors_name_the_key_at_fault() {
    let text = base(
        r#"
[channels.alerts]
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/b"
secret = "${IMRELAY_CFG_TEST_SURELY_UNSET}"
"#,
    );
    let err = parse(&text).unwrap_err();
    assert_eq!(keys(&err), ["channels.alerts.destinations[1].secret"]);
    assert!(
        err.to_string()
            .contains("IMRELAY_CFG_TEST_SURELY_UNSET` is not set"),
        "{err}"
    );

    let err = parse(&base(
        r#"
[channels.alerts]
retri = { base = "1s" }
destinations = []
"#,
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["channels.alerts.retri"]);
    assert!(err.issues[0].message.contains("unknown field"), "{err}");

    let err = parse(&base(
        r#"
[channels.alerts]
retry = { base = "soon" }
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
"#,
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["channels.alerts.retry.base"]);
    assert!(err.issues[0].message.contains("not a duration"), "{err}");

    let err = parse(&base(
        r#"
[channels.alerts]
[[channels.alerts.destinations]]
url = "https://hooks.example.com/a"
"#,
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["channels.alerts.destinations[0].type"]);
}

#[test]
fn cross_references_are_checked() {
    let text = r#"
[[api_keys]]
name = "ci"
key = "short"
channels = ["alerts", "nope"]
[[api_keys]]
name = "ci"
key = "test-key-0123456789abcdef"
channels = []

[channels.alerts]
fallback = { channel = "missing" }
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"

[channels.b]
fallback = { channel = "c" }
[[channels.b.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
[channels.c]
fallback = { channel = "b" }
pool = true
[[channels.c.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
[[channels.c.destinations]]
type = "dingtalk_robot"
access_token = "x"
"#;
    let err = parse(text).unwrap_err();
    insta::assert_snapshot!(err.to_string(), @r#"
    8 problems:
      - api_keys[0].key: must be at least 16 characters (e.g. `openssl rand -hex 24`)
      - api_keys[0].channels[1]: no channel `nope` is defined; defined: alerts, b, c
      - api_keys[1].name: `ci` is used by another key; names must be unique
      - api_keys[1].channels: lists no channel; name the channels this key may use, or ["*"] for all
      - channels.alerts.fallback.channel: no channel `missing` is defined; defined: alerts, b, c
      - channels.c.destinations[1].type: a robot pool's members must share one type (`webhook`), found `dingtalk_robot`
      - channels.b.fallback.channel: fallbacks form a loop: b -> c -> b
      - channels.c.fallback.channel: fallbacks form a loop: c -> b -> c
    "#);
}

#[test]
fn sdk_errors_are_placed_under_the_destination() {
    let err = build(&base(
        r#"
[[channels.a.destinations]]
type = "no_such_type"
[[channels.a.destinations]]
type = "webhook"
url = "not a url"
[[channels.a.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
bogus = 1
"#,
    ))
    .unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "channels.a.destinations[0].type",
            "channels.a.destinations[1].url",
            "channels.a.destinations[2].bogus"
        ],
        "{err}"
    );
}

#[test]
fn webhooks_to_internal_addresses_are_refused_unless_allowed() {
    let err = build(&base(
        r#"
[[channels.a.destinations]]
type = "webhook"
url = "http://169.254.169.254/latest/meta-data"
"#,
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["channels.a.destinations[0].url"]);
    assert!(err.issues[0].message.contains("link-local"), "{err}");
    let ok = base(
        r#"
[outbound]
allow_private_networks = true
[[channels.a.destinations]]
type = "webhook"
url = "http://127.0.0.1:9/x"
"#,
    );
    assert!(build(&ok).is_ok());
}

#[test]
fn toml_syntax_errors_say_where() {
    let err = parse("[server\nlisten = 1").unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
}

#[test]
fn per_destination_retry_points_to_the_channel() {
    let err = parse(&base(
        r#"
[[channels.a.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
retry = { max_attempts = 3 }
"#,
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["channels.a.destinations[0].retry"]);
    assert!(err.issues[0].message.contains("channels.a.retry"), "{err}");
}

#[test]
fn connection_limits_default_and_are_checked_by_key() {
    let cfg = parse(&base("")).unwrap();
    assert_eq!(cfg.server.header_timeout, Duration::from_secs(10));
    assert_eq!(cfg.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(cfg.server.max_connections, 10_000);

    let cfg = parse(&format!(
        "[server]\nheader_timeout = \"5s\"\nidle_timeout = \"2m\"\nmax_connections = 50\n{}",
        base("")
    ))
    .unwrap();
    assert_eq!(
        (
            cfg.server.header_timeout,
            cfg.server.idle_timeout,
            cfg.server.max_connections
        ),
        (Duration::from_secs(5), Duration::from_secs(120), 50)
    );

    let err = parse(&format!(
        "[server]\nheader_timeout = \"0s\"\nidle_timeout = \"10ms\"\nmax_connections = 0\n{}",
        base("")
    ))
    .unwrap_err();
    assert_eq!(
        keys(&err),
        [
            "server.header_timeout",
            "server.idle_timeout",
            "server.max_connections"
        ]
    );
    let err = parse(&format!(
        "[server]\nheader_timeout = \"soon\"\n{}",
        base("")
    ))
    .unwrap_err();
    assert_eq!(keys(&err), ["server.header_timeout"]);
}

#[test]
fn store_and_cluster_timing_keys_default_and_are_checked() {
    let channels = r#"
[channels.alerts]
[[channels.alerts.destinations]]
type = "webhook"
url = "https://hooks.example.com/a"
"#;
    let cfg = parse(&base(channels)).unwrap();
    assert_eq!(cfg.store.acquire_timeout, Duration::from_secs(1));
    assert_eq!(cfg.store.keep_delivered, Duration::from_secs(7 * 86_400));
    assert_eq!(cfg.store.keep_dead, Duration::from_secs(30 * 86_400));
    assert_eq!(cfg.dispatch.cluster_rate_margin, Duration::from_secs(1));

    let cfg = parse(&format!(
        "[store]\nacquire_timeout = \"250ms\"\nkeep_delivered = \"2d\"\nkeep_dead = \"90d\"\n\
         [dispatch]\ncluster_rate_margin = \"2s\"\n{}",
        base(channels)
    ))
    .unwrap();
    assert_eq!(cfg.store.acquire_timeout, Duration::from_millis(250));
    assert_eq!(cfg.store.keep_delivered, Duration::from_secs(2 * 86_400));
    assert_eq!(cfg.store.keep_dead, Duration::from_secs(90 * 86_400));
    assert_eq!(cfg.dispatch.cluster_rate_margin, Duration::from_secs(2));

    let err = parse(&format!(
        "[store]\nacquire_timeout = \"0s\"\nkeep_delivered = \"10s\"\nkeep_dead = \"59s\"\n\
         [dispatch]\ncluster_rate_margin = \"2m\"\n{}",
        base(channels)
    ))
    .unwrap_err();
    let mut got = keys(&err);
    got.sort();
    assert_eq!(
        got,
        [
            "dispatch.cluster_rate_margin",
            "store.acquire_timeout",
            "store.keep_dead",
            "store.keep_delivered"
        ],
        "{err}"
    );
}
