//! `imrelay render`: what a running gateway would send, per destination,
//! printed as JSON; nothing is sent. Refusals exit 1 with the gateway's reason.

use crate::serve_support::*;
use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};

async fn render(server: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .arg("render")
        .args(["--server", server])
        .args(args)
        .env("IMRELAY_API_KEY", KEY)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_prints_each_destinations_body_and_sends_nothing() {
    let mock = MockServer::start(
        MockConfig::default().with_robot(RobotConfig::new(MockPlatform::Wecom, "key-r")),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let dir = Scratch::new("render-cli");
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
key = "key-r"
base_url = "{}"
[channels.other]
[[channels.other.destinations]]
type = "wecom_robot"
key = "key-r"
base_url = "{}"
"#,
            mock.base_url(),
            mock.base_url()
        ),
    )
    .unwrap();
    let serve = Serve::start(&cfg, port, dir.path("serve.log")).await;
    let server = serve.server();

    let out = render(
        &server,
        &["--channel", "ops", "--title", "Disk", "disk 91% 满了"],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["destinations"][0];
    assert_eq!(d["type"], "wecom_robot");
    let part = &d["parts"][0];
    assert!(part["body"].to_string().contains("disk 91% 满了"), "{v:#}");
    assert_eq!(
        part["bytes"],
        serde_json::to_vec(&part["body"]).unwrap().len()
    );
    assert!(mock.state().log.all().is_empty(), "nothing was sent");

    let out = render(&server, &["--channel", "other", "x"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("(403)") && err.contains("other"), "{err}");
    let out = render(&server, &["--channel", "ops"]).await;
    assert_eq!(out.status.code(), Some(2), "neither text nor template");
}
