//! `imrelay serve` as users run it: SIGHUP reloads (a channel added to the
//! file becomes usable; a broken file is refused and the old config keeps
//! working), `imrelay config check` reports the key at fault, and SIGTERM
//! drains and exits 0.

use std::time::Duration;

use crate::serve_support::*;
use imrelay_gateway::client::{submit, SubmitError};
use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};
use imrelay_sdk::Message;

fn config(port: u16, mock_url: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false

[store]
path = "queue.db"

[[api_keys]]
name = "t"
key = "{KEY}"
channels = ["*"]

[channels.a]
[[channels.a.destinations]]
type = "feishu_webhook"
hook = "hook-a"
base_url = "{mock_url}"
{extra}
"#
    )
}

fn robot(token: &str) -> RobotConfig {
    RobotConfig {
        platform: MockPlatform::Feishu,
        token: token.into(),
        secret: None,
        keywords: Vec::new(),
    }
}

async fn wait_delivered(mock: &MockServer, marker: &str) {
    for _ in 0..400 {
        if deliveries_of(mock, marker).0 > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("`{marker}` never reached the mock");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sighup_reloads_a_bad_file_is_refused_and_sigterm_exits_zero() {
    let mock = MockServer::start(
        MockConfig::default()
            .with_robot(robot("hook-a"))
            .with_robot(robot("hook-b")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = Scratch::new("signals");
    let cfg = dir.path("imrelay.toml");
    let port = free_port();
    let url = mock.base_url();
    std::fs::write(&cfg, config(port, &url, "")).unwrap();
    let mut serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    let server = serve.server();

    let id = submit(&server, KEY, "a", &Message::text("first-marker"))
        .await
        .unwrap();
    assert!(!id.is_empty());
    wait_delivered(&mock, "first-marker").await;
    match submit(&server, KEY, "b", &Message::text("x")).await {
        Err(SubmitError::Refused {
            status: 422, field, ..
        }) => assert_eq!(field.as_deref(), Some("channel")),
        other => panic!("expected 422 for an unknown channel, got {other:?}"),
    }

    // Add channel b and send SIGHUP.
    let with_b = config(
        port,
        &url,
        &format!("[[channels.b.destinations]]\ntype = \"feishu_webhook\"\nhook = \"hook-b\"\nbase_url = \"{url}\"\n"),
    );
    std::fs::write(&cfg, &with_b).unwrap();
    serve.signal("HUP");
    serve.wait_log("config reloaded", 10).await;
    submit(&server, KEY, "b", &Message::text("second-marker"))
        .await
        .unwrap();
    wait_delivered(&mock, "second-marker").await;

    // A broken file: refused, logged with the key at fault; b still works.
    std::fs::write(
        &cfg,
        with_b.replace("hook = \"hook-b\"", "hook = \"hook-b\"\nhook_colour = 1"),
    )
    .unwrap();
    serve.signal("HUP");
    serve.wait_log("config reload refused", 10).await;
    assert!(
        serve
            .log_text()
            .contains("channels.b.destinations[0].hook_colour"),
        "{}",
        serve.log_text()
    );
    submit(&server, KEY, "b", &Message::text("third-marker"))
        .await
        .unwrap();
    wait_delivered(&mock, "third-marker").await;

    // `imrelay config check` says the same, with exit code 2.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("channels.b.destinations[0].hook_colour"),
        "{stderr}"
    );

    serve.signal("TERM");
    assert_eq!(
        serve.wait_exit(20).await,
        Some(0),
        "log:\n{}",
        serve.log_text()
    );
    mock.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_config_at_start_exits_nonzero_naming_the_key() {
    let dir = Scratch::new("badstart");
    let cfg = dir.path("imrelay.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[api_keys]]
name = "t"
key = "{KEY}"
channels = ["a"]
[[channels.a.destinations]]
type = "dingtalk_robot"
access_token = "${{IMRELAY_TEST_SURELY_UNSET_TOKEN}}"
"#
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("channels.a.destinations[0].access_token")
            && stderr.contains("IMRELAY_TEST_SURELY_UNSET_TOKEN"),
        "{stderr}"
    );
}
