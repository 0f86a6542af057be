//! The web console in a real browser: `imrelay serve` (with its in-process
//! mock) driven by tests/browser/console.mjs in Debian's Chromium through
//! playwright-core, with an axe-core check of each page. The scenarios are in
//! the script; this test starts the gateway and hands it the URLs and users.
//!
//! Needs `node`, `chromium` and `npm ci` in tests/browser (tests/run installs
//! them). It FAILS, never skips, when any is missing. On failure the
//! script's screenshots are kept (their paths are printed); on success it
//! refreshes docs/images/console-*.png, which the README shows.

use std::path::PathBuf;
use std::process::Command;

use crate::serve_support::{free_port, Scratch, Serve, KEY};

const ADMIN_PASSWORD: &str = "browser-admin-password";
const TEAM_PASSWORD: &str = "browser-team-password";
const DT_TOKEN: &str = "console-dingtalk";
const DT_SECRET: &str = "SECconsole00000000000000000000000000000000000000000000000000000000";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn config(port: u16, mock_port: u16, db: &std::path::Path) -> String {
    let hash = |p: &str| imrelay_gateway::console::auth::hash_password(p).unwrap();
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
watch = false

[store]
path = "{db}"

[dispatch]
poll_interval = "50ms"

[[api_keys]]
name = "browser-test"
key = "{KEY}"
channels = ["*"]

[console]
enabled = true

[[console.users]]
name = "admin"
password_hash = "{admin}"
channels = ["*"]

[[console.users]]
name = "teamuser"
password_hash = "{team}"
channels = ["team"]

[mock]
listen = "127.0.0.1:{mock_port}"

[[mock.robots]]
platform = "dingtalk"
token = "{DT_TOKEN}"
secret = "{DT_SECRET}"

[[mock.robots]]
platform = "wecom"
token = "console-wecom"

[channels.alerts]
retry = {{ base = "200ms", cap = "1s", max_attempts = 5 }}
[[channels.alerts.destinations]]
type = "dingtalk_robot"
access_token = "{DT_TOKEN}"
secret = "{DT_SECRET}"
base_url = "${{mock.url}}"

[channels.team]
[[channels.team.destinations]]
type = "wecom_robot"
key = "console-wecom"
base_url = "${{mock.url}}"

# The template editor's route (built-in templates per platform).
[alerting.routes.prod]
channels = ["alerts", "team"]
"#,
        db = db.display(),
        admin = hash(ADMIN_PASSWORD),
        team = hash(TEAM_PASSWORD),
    )
}

fn require(cmd: &str, args: &[&str], install: &str) {
    let ok = Command::new(cmd)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "`{cmd}` is missing; {install} (or run tests/run)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_works_in_chromium() {
    let root = repo_root();
    let browser_dir = root.join("tests/browser");
    require(
        "node",
        &["--version"],
        "install Node.js (apt-get install nodejs npm)",
    );
    require("chromium", &["--version"], "apt-get install chromium");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir()
            && browser_dir.join("node_modules/axe-core").is_dir(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (or tests/run)"
    );

    let dir = Scratch::new("console-browser");
    let (port, mock_port) = (free_port(), free_port());
    let cfg = dir.path("imrelay.toml");
    std::fs::write(&cfg, config(port, mock_port, &dir.path("q.db"))).unwrap();
    let serve = Serve::start(&cfg, port, dir.path("serve.log")).await;

    // Screenshots of a failure outlive the scratch folder.
    let shots = std::env::temp_dir().join(format!("imrelay-console-shots-{}", std::process::id()));
    let out = tokio::process::Command::new("node")
        .arg(browser_dir.join("console.mjs"))
        .current_dir(&browser_dir)
        .env("IMRELAY_URL", serve.server())
        .env("IMRELAY_API_KEY", KEY)
        .env("IMRELAY_MOCK_URL", format!("http://127.0.0.1:{mock_port}"))
        .env("FAULT_TARGET", format!("dingtalk:robot:{DT_TOKEN}"))
        .env("MAIN_CHANNEL", "alerts")
        .env("ADMIN_USER", "admin")
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TEAM_USER", "teamuser")
        .env("TEAM_PASSWORD", TEAM_PASSWORD)
        .env("TEAM_CHANNEL", "team")
        .env("SCREENSHOTS", &shots)
        .env("DOCS_IMAGES", root.join("docs/images"))
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser tests failed (screenshots in {}):\n{stderr}\n{stdout}\n--- imrelay log:\n{}",
        shots.display(),
        serve.log_text()
    );
    assert!(
        serve.log_text().contains("imrelay::audit"),
        "console actions are written to the audit log"
    );
}
