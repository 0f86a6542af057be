//! `imrelay render`: what a running gateway would send, per destination,
//! printed as JSON; nothing is sent. Refusals exit 1 with the gateway's reason.

use crate::serve_support::*;

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
    let (mock, _dir, serve) = two_channel_gateway("render-cli", "key-r").await;
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
