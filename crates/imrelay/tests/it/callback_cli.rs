//! `imrelay callback fire` against an in-process gateway with a WeCom callback app.

use std::process::Output;

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

async fn fire(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_imrelay"))
        .args(["callback", "fire"])
        .args(args)
        .output()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_fire_reports_the_platforms_verdict() {
    let dir = tempfile_dir();
    let path = dir.join("imrelay.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
watch = false
[[api_keys]]
name = "admin"
key = "admin-key-0123456789abcdef"
channels = ["*"]
[[callbacks]]
name = "wc"
platform = "wecom"
token = "QDG6eK"
encoding_aes_key = "{KEY}"
receive_id = "ww1"
forward = [{{ url = "http://127.0.0.1:9/never", secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", allow_private = true }}]
"#
        ),
    )
    .unwrap();
    let cfg = imrelay_gateway::config::Config::load(&path).unwrap();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = imrelay_gateway::Gateway::start(cfg, l).await.unwrap();
    let url = format!("http://{}/v1/callbacks/wc", gw.addr());

    let spec = format!(
        r#"{{"kind":"wecom_message","token":"QDG6eK","encoding_aes_key":"{KEY}","receive_id":"ww1"}}"#
    );
    let out = fire(&[&url, "--spec", &spec]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("HTTP 200") && stdout.contains("ok: the platform would count"),
        "{stdout}"
    );

    // From a file, with an hour-old timestamp: refused, exit 1, JSON output.
    let file = dir.join("stale.json");
    let stale = spec.replace('}', r#","timestamp":1700000000}"#);
    std::fs::write(&file, stale).unwrap();
    let out = fire(&[&url, "--spec", &format!("@{}", file.display()), "--json"]).await;
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], 401);
    assert_eq!(v["ok"], false);

    // An unusable spec: exit 2 naming the field.
    let out = fire(&[&url, "--spec", r#"{"kind":"wecom_message"}"#]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`token`"));
    gw.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "imrelay-callback-cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
