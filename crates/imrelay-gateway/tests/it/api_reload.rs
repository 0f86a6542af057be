//! Hot reload: a channel added to the watched file is usable without restart;
//! a broken file is refused and the running config keeps working.

use std::time::Duration;

use crate::api_support::*;
use imrelay_gateway::runtime::ReloadStatus;
use tokio::sync::watch;

async fn wait_status(
    rx: &mut watch::Receiver<ReloadStatus>,
    what: &str,
    pred: impl Fn(&ReloadStatus) -> bool,
) -> ReloadStatus {
    let got = match tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| pred(s))).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    got.unwrap_or_else(|| panic!("timed out waiting for {what}; status: {:?}", *rx.borrow()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_changes_reload_and_a_broken_file_keeps_the_old_config() {
    let sink = Sink::start().await;
    let text = config_text(&sink, "");
    let t = TestGateway::start(&text).await;
    let path = t.config_path();
    let _reload = imrelay_gateway::runtime::reload::spawn(t.gw.live().clone(), path.clone(), true);
    let mut rx = t.gw.live().subscribe();

    let body = r#"{"channel": "late", "text": "hello late"}"#;
    t.post("/v1/messages", Some(ADMIN_KEY), body, &[])
        .await
        .assert_problem(422, Some("channel"));

    // Add a channel `late` to the file.
    let added = config_text(
        &sink,
        &format!(
            r#"
[channels.late]
[[channels.late.destinations]]
type = "webhook"
url = "{}?late"
allow_private = true
"#,
            sink.url
        ),
    );
    std::fs::write(&path, &added).unwrap();
    wait_status(&mut rx, "the reload", |s| s.applied >= 1).await;
    let r = t.post("/v1/messages", Some(ADMIN_KEY), body, &[]).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    t.wait_state(&id, "delivered").await;
    assert!(sink
        .bodies()
        .iter()
        .any(|b| b["body"]["text"] == "hello late"));

    // A broken file (unknown destination type) is refused as a whole.
    let broken = added.replace("[channels.late]", "[channels.late]\nbogus_setting = 1");
    std::fs::write(&path, &broken).unwrap();
    let s = wait_status(&mut rx, "the refused reload", |s| s.last_error.is_some()).await;
    assert_eq!(s.applied, 1);
    let err = s.last_error.unwrap();
    assert!(err.contains("channels.late.bogus_setting"), "{err}");
    // ... and the running config still works, `late` included.
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            r#"{"channel": "late", "text": "still here"}"#,
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    t.wait_state(r.body["id"].as_str().unwrap(), "delivered")
        .await;

    // Invalid TOML too.
    std::fs::write(&path, "[channels.late\n").unwrap();
    let before = rx.borrow().attempts;
    let s = wait_status(&mut rx, "the second refused reload", |s| {
        s.attempts > before
    })
    .await;
    assert!(s.last_error.unwrap().contains("not valid TOML"));
    assert_eq!(
        t.post("/v1/messages", Some(ADMIN_KEY), body, &[])
            .await
            .status,
        202
    );
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_rotates_keys_and_a_file_that_does_not_build_changes_nothing() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let live = t.gw.live().clone();
    // Rotate the ops key.
    let rotated = config_text(&sink, "").replace(OPS_KEY, "ops-key-rotated-0123456789");
    std::fs::write(t.config_path(), &rotated).unwrap();
    live.reload_file(&t.config_path()).unwrap();
    let body = r#"{"channel": "alerts", "text": "x"}"#;
    t.post("/v1/messages", Some(OPS_KEY), body, &[])
        .await
        .assert_problem(401, Some("Authorization"));
    assert_eq!(
        t.post(
            "/v1/messages",
            Some("ops-key-rotated-0123456789"),
            body,
            &[]
        )
        .await
        .status,
        202
    );
    // A file that fails to build leaves keys and channels as they were.
    std::fs::write(
        t.config_path(),
        rotated.replace("type = \"webhook\"", "type = \"carrier_pigeon\""),
    )
    .unwrap();
    let err = live.reload_file(&t.config_path()).unwrap_err();
    assert!(
        err.to_string()
            .contains("channels.alerts.destinations[0].type"),
        "{err}"
    );
    assert_eq!(
        t.post(
            "/v1/messages",
            Some("ops-key-rotated-0123456789"),
            body,
            &[]
        )
        .await
        .status,
        202
    );
    t.gw.shutdown().await.unwrap();
}
