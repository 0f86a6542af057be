//! `imrelay send --server`: through a running gateway, with the API key from the
//! environment; refusals exit non-zero with the gateway's reason.

use std::time::Duration;

use crate::serve_support::*;
use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};

async fn send(server: &str, key: &str, channel: &str, text: &str) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(["send", "--server", server, "--channel", channel, text])
        .env("IMRELAY_API_KEY", key)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_through_the_gateway_is_durable_and_refusals_are_explained() {
    let mock = MockServer::start(
        MockConfig::default().with_robot(RobotConfig::new(MockPlatform::Wecom, "key-s")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = Scratch::new("send-server");
    let cfg = dir.path("imrelay.toml");
    let port = free_port();
    std::fs::write(
        &cfg,
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
channels = ["ops"]
[channels.ops]
[[channels.ops.destinations]]
type = "wecom_robot"
key = "key-s"
base_url = "{}"
[channels.other]
[[channels.other.destinations]]
type = "wecom_robot"
key = "key-s"
base_url = "{}"
"#,
            mock.base_url(),
            mock.base_url()
        ),
    )
    .unwrap();
    let mut serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    let server = serve.server();

    let out = send(&server, KEY, "ops", "via-gateway-marker").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted by the gateway"));
    let mut delivered = false;
    for _ in 0..200 {
        if deliveries_of(&mock, "via-gateway-marker").0 == 1 {
            delivered = true;
            break;
        }
        // Delivery happens in the child process; poll the mock's log.
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(delivered, "the message never reached the mock");

    let out = send(&server, "wrong-key", "ops", "nope").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    let out = send(&server, KEY, "other", "nope").await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));

    serve.signal("TERM");
    assert_eq!(serve.wait_exit(20).await, Some(0));
}
