//! `imrelay send --server`: through a running gateway, with the API key from the
//! environment; refusals exit non-zero with the gateway's reason.

use std::time::Duration;

use crate::serve_support::*;

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
    let (mock, _dir, mut serve) = two_channel_gateway("send-server", "key-s").await;
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
