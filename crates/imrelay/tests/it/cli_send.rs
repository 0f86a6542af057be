//! `imrelay send` tried as a new user would: against the mock, a signed DingTalk
//! markdown message with an @mention and a Feishu interactive card are accepted
//! with their signatures verified; a wrong secret exits non-zero and says the
//! signature is the problem.

use std::process::Output;

use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig, SignatureCheck};

const BIN: &str = env!("CARGO_BIN_EXE_imrelay");

async fn mock() -> MockServer {
    let config = MockConfig::default()
        .with_robot(RobotConfig::new(MockPlatform::Dingtalk, "tok-ding").with_secret("SECcli-test"))
        .with_robot(RobotConfig::new(MockPlatform::Feishu, "hook-fs").with_secret("fs-secret"));
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

async fn imrelay(args: Vec<String>) -> Output {
    tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("IMRELAY_WEBHOOK")
        .env_remove("IMRELAY_SECRET")
        .env_remove("IMRELAY_BASE_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run imrelay")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[tokio::test]
async fn signed_dingtalk_markdown_with_mention_and_feishu_card_are_accepted() {
    let server = mock().await;
    let base = server.base_url();

    let out = imrelay(s(&[
        "send",
        "--webhook",
        &format!("{base}/robot/send?access_token=tok-ding"),
        "--base-url",
        &base,
        "--secret",
        "SECcli-test",
        "--markdown",
        "--title",
        "Deploy",
        "--at",
        "13800000000",
        "**v1.2** is live",
    ]))
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = imrelay(s(&[
        "send",
        "--webhook",
        &format!("{base}/open-apis/bot/v2/hook/hook-fs"),
        "--base-url",
        &base,
        "--secret",
        "fs-secret",
        "--title",
        "Release",
        "--button",
        "Changelog=https://example.com/cl",
        "notes here",
    ]))
    .await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = server.state().log.all();
    let ding = log
        .iter()
        .find(|e| e.target == "dingtalk:robot:tok-ding")
        .expect("dingtalk request logged");
    assert!(ding.accepted, "{ding:?}");
    assert_eq!(ding.signature, SignatureCheck::Verified);
    let body = ding.body.as_ref().unwrap();
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["at"]["atMobiles"][0], "13800000000");
    assert!(body["markdown"]["text"]
        .as_str()
        .unwrap()
        .contains("@13800000000"));

    let fs = log
        .iter()
        .find(|e| e.target == "feishu:webhook:hook-fs")
        .expect("feishu request logged");
    assert!(fs.accepted, "{fs:?}");
    assert_eq!(fs.signature, SignatureCheck::Verified);
    assert_eq!(fs.body.as_ref().unwrap()["msg_type"], "interactive");
}

#[tokio::test]
async fn wrong_secret_fails_and_names_the_signature() {
    let server = mock().await;
    let base = server.base_url();
    let out = imrelay(s(&[
        "send",
        "--webhook",
        &format!("{base}/robot/send?access_token=tok-ding"),
        "--base-url",
        &base,
        "--secret",
        "SECwrong",
        "hello",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("310000"), "{stderr}");
    assert!(stderr.to_lowercase().contains("sign"), "{stderr}");
    assert!(!stderr.contains("SECwrong"), "the secret leaked: {stderr}");
}

#[tokio::test]
async fn foreign_host_is_refused_without_base_url() {
    let out = imrelay(s(&[
        "send",
        "--webhook",
        "http://169.254.169.254/robot/send?access_token=x",
        "hello",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("base_url"), "{stderr}");
}

#[tokio::test]
async fn help_has_examples() {
    let out = imrelay(s(&["send", "--help"])).await;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Examples:") && text.contains("Exit codes"));
}

#[tokio::test]
async fn a_message_in_eight_parts_is_paced_within_the_bots_limit() {
    // A Feishu bot takes 5 messages a second; parts 6-8 must wait, not be refused.
    let server = mock().await;
    let base = server.base_url();
    let dir = std::env::temp_dir().join(format!("imrelay-cli-parts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dest = dir.join("dest.toml");
    std::fs::write(&dest, "[overflow]\nmax_parts = 8\n").unwrap();
    let text = dir.join("report.txt");
    let line = "a line of the long report, repeated\n";
    std::fs::write(&text, line.repeat(8 * 19_000 / line.len() - 8)).unwrap();

    let out = imrelay(s(&[
        "send",
        "--webhook",
        &format!("{base}/open-apis/bot/v2/hook/hook-fs"),
        "--base-url",
        &base,
        "--secret",
        "fs-secret",
        "--dest-config",
        dest.to_str().unwrap(),
        "--file",
        text.to_str().unwrap(),
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(stderr.contains("in 8 parts"), "{stderr}");
    let log = server.state().log.all();
    let parts: Vec<_> = log
        .iter()
        .filter(|e| e.target == "feishu:webhook:hook-fs")
        .collect();
    assert_eq!(parts.len(), 8);
    assert!(parts.iter().all(|e| e.accepted), "{parts:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}
