//! What the console keeps in the store: sessions every instance on one
//! PostgreSQL database shares (log in on one, act and log out on another),
//! the audit trail and its page (only for a user of every channel), and the
//! access-token state on the channels page (never the token).

use imrelay_mock::{MockConfig, MockServer};
use serde_json::json;

use crate::api_support::{Sink, TestGateway, ADMIN_KEY};
use crate::console::{console_config, post_message, Browser, ADMIN_PW, OPS_PW};

fn pg_url() -> String {
    std::env::var("IMRELAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// The rows of the audit page: (user, action, object, outcome, source).
fn audit_rows(html: &str) -> Vec<Vec<String>> {
    let body = html.split("<tbody>").nth(1).unwrap_or("");
    let body = body.split("</tbody>").next().unwrap_or("");
    let cell = regex::Regex::new(r"<td>(.*?)</td>").unwrap();
    let tags = regex::Regex::new(r"<[^>]+>").unwrap();
    body.split("</tr>")
        .filter(|r| r.contains("<td>"))
        .map(|r| {
            cell.captures_iter(r)
                .skip(1) // the time
                .map(|c| tags.replace_all(&c[1], "").to_string())
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_on_one_instance_works_on_another_and_a_logout_there_ends_it_on_both() {
    let schema = format!(
        "console_{}_{}",
        std::process::id(),
        imrelay_sdk::clock::Clock::now_ms(&imrelay_sdk::clock::SystemClock) % 1_000_000
    );
    let sink = Sink::start().await;
    let text = format!(
        "{}\n[store]\nurl = \"{}?schema={schema}\"\n",
        console_config(&sink),
        pg_url()
    );
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;

    let mut on_a = Browser::new(&a);
    let p = on_a
        .login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    let csrf = on_a.get("/ui/").await.csrf();

    // Instance B knows the session A opened, and its CSRF token.
    let mut on_b = Browser::new(&b);
    on_b.cookies = on_a.cookies.clone();
    let p = on_b.get("/ui/channels").await;
    assert_eq!(p.status, 200, "B refused A's session: {}", p.location());
    assert_eq!(p.csrf(), csrf);
    let p = on_b
        .post(
            "/ui/channels/alerts/test",
            &[("csrf", &csrf), ("text", "from B")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    assert!(
        p.location().starts_with("/ui/messages/"),
        "{}",
        p.location()
    );
    let p = on_b
        .post("/ui/channels/alerts/test", &[("csrf", "forged")])
        .await;
    assert_eq!(p.status, 403);

    // Logged out on B: A refuses the cookie too.
    let p = on_b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((p.status, p.location()), (303, "/ui/login"));
    let p = on_a.get("/ui/").await;
    assert_eq!(p.status, 303, "A still took the session B ended");
    assert!(p.location().starts_with("/ui/login"));

    // Both instances wrote to one audit trail.
    let mut again = Browser::new(&a);
    again
        .login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    let p = again.get("/ui/audit?user=root").await;
    assert_eq!(p.status, 200, "{}", p.text);
    let actions: Vec<String> = audit_rows(&p.text)
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert_eq!(
        actions,
        ["login", "logout", "message.test", "login"],
        "{}",
        p.text
    );
    a.gw.shutdown().await.unwrap();
    b.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_trail_records_console_actions_for_users_of_every_channel() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&console_config(&sink)).await;
    sink.set_status(400); // dead at once
    let dead = post_message(&t, "alerts", "disk full").await;
    t.wait_state(&dead, "dead").await;
    sink.set_status(200);

    let mut intruder = Browser::new(&t);
    let p = intruder
        .login(&[("user", "root"), ("password", "a wrong password")])
        .await;
    assert_eq!(p.status, 401);
    let mut ops = Browser::new(&t);
    ops.login(&[("user", "opsuser"), ("password", OPS_PW)])
        .await;
    let csrf = ops.get("/ui/dlq").await.csrf();
    let entry = t
        .get(&format!("/v1/messages/{dead}"), Some(ADMIN_KEY))
        .await
        .body["deliveries"][0]["id"]
        .clone();
    let id = entry.to_string();
    let p = ops
        .post("/ui/dlq/replay", &[("csrf", &csrf), ("id", &id)])
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    t.wait_state(&dead, "delivered").await;

    // A user of some channels: no audit page, no link to it.
    let p = ops.get("/ui/audit").await;
    assert_eq!(p.status, 404, "{}", p.text);
    assert!(!ops.get("/ui/").await.text.contains("href=\"/ui/audit\""));

    let mut root = Browser::new(&t);
    root.login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    let p = root.get("/ui/").await;
    assert!(p.text.contains("href=\"/ui/audit\""), "{}", p.text);
    let p = root.get("/ui/audit").await;
    assert_eq!(p.status, 200, "{}", p.text);
    let rows = audit_rows(&p.text);
    let row = |user: &str, action: &str| {
        rows.iter()
            .find(|r| r[0] == user && r[1] == action)
            .unwrap_or_else(|| panic!("no {user} {action} in {rows:?}"))
            .clone()
    };
    let refused = ["root", "login", "", "refused", "127.0.0.1"].map(String::from);
    assert!(rows.contains(&refused.to_vec()), "{rows:?}");
    assert_eq!(row("opsuser", "login")[3], "ok");
    let replay = row("opsuser", "dlq.replay");
    assert_eq!(replay[2], id);
    assert_eq!(replay[3], "1 done");
    assert_eq!(replay[4], "127.0.0.1", "the client's address");
    // Newest first: root's own login is the first row.
    assert_eq!(rows[0][..2], ["root".to_string(), "login".to_string()]);
    assert!(!p.text.contains(ADMIN_PW) && !p.text.contains("a wrong password"));

    // The filters.
    let p = root.get("/ui/audit?user=opsuser&action=dlq").await;
    let rows = audit_rows(&p.text);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], "dlq.replay");
    let p = root.get("/ui/audit?action=logout").await;
    assert!(audit_rows(&p.text).is_empty());
    assert!(p.text.contains("No entry."));

    // Chinese.
    let p = root.get("/ui/lang/zh?next=/ui/audit").await;
    assert_eq!(p.status, 303);
    let p = root.get("/ui/audit").await;
    assert!(
        p.text.contains("审计记录") && p.text.contains(">审计<"),
        "{}",
        p.text
    );
    t.gw.shutdown().await.unwrap();
}

const APP: &str = "cli_console";
const SECRET: &str = "console-app-secret-1";
const BAD_APP: &str = "cli_console_bad";
const BAD_SECRET: &str = "console-wrong-secret-2";

/// The expiries the channels page shows for cached tokens.
fn token_expiries(html: &str) -> Vec<jiff::Timestamp> {
    let re = regex::Regex::new(r#"cached, expires at <time datetime="([^"]+)">"#).unwrap();
    re.captures_iter(html)
        .map(|c| c[1].replace(' ', "T").parse().unwrap())
        .collect()
}

/// The mock with two Feishu apps: one the gateway has the right secret of,
/// one it has a wrong secret of.
async fn feishu_mock() -> MockServer {
    let mock = MockServer::start(MockConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // Before the first client (TestGateway::start installs it too, later).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    for (app, secret) in [(APP, SECRET), (BAD_APP, "the-right-one")] {
        let r = http
            .post(format!("{}/_mock/apps", mock.base_url()))
            .json(&json!({"platform": "feishu", "app_id": app, "app_secret": secret}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    }
    mock
}

/// The console config with channel `feishu`: both apps of [`feishu_mock`].
fn feishu_config(sink: &Sink, mock: &MockServer) -> String {
    let app = |id: &str, secret: &str| {
        format!(
            r#"
[[channels.feishu.destinations]]
type = "feishu_app"
app_id = "{id}"
app_secret = "{secret}"
base_url = "{url}"
recipients = ["chat_id:oc_ops"]
"#,
            url = mock.base_url()
        )
    };
    format!(
        "{}\n[channels.feishu]\n{}{}",
        console_config(sink),
        app(APP, SECRET),
        app(BAD_APP, BAD_SECRET)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_channels_page_shows_each_apps_token_state_never_the_token() {
    let mock = feishu_mock().await;
    let sink = Sink::start().await;
    let text = feishu_config(&sink, &mock);
    let t = TestGateway::start(&text).await;
    let mut root = Browser::new(&t);
    root.login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;

    // Nothing sent yet: nothing cached; a webhook uses no token.
    let p = root.get("/ui/channels").await;
    assert_eq!(p.text.matches("none cached").count(), 2, "{}", p.text);
    assert!(p.text.contains("not used"));
    assert!(!p.text.contains("cached, expires at"));

    // Sent through the good app; the bad one's token fetch is refused
    // (permanent: dead at once).
    let id = post_message(&t, "feishu", "disk full").await;
    let v = t.wait_state(&id, "partial").await;
    assert_eq!(v["deliveries"].as_array().unwrap().len(), 2, "{v:#}");

    let p = root.get("/ui/channels").await;
    assert_eq!(p.status, 200);
    let shown = token_expiries(&p.text);
    assert_eq!(shown.len(), 1, "only the good app has a token: {}", p.text);
    let shown = shown[0];
    let now = imrelay_sdk::clock::Clock::now_ms(&imrelay_sdk::clock::SystemClock);
    let (token, left_s) = mock
        .state()
        .tokens
        .current(
            imrelay_mock::MockPlatform::Feishu,
            APP,
            mock.state().now_ms(),
        )
        .expect("the mock issued a token");
    let expected = now + left_s as i64 * 1000;
    assert!(
        (shown.as_millisecond() - expected).abs() < 120_000,
        "expires at {shown}, the mock says in {left_s}s"
    );
    // The bad app's fetch failed: what the platform said, never a secret.
    assert!(p.text.contains("Last error"), "{}", p.text);
    assert!(p.text.contains("app secret invalid"), "{}", p.text);
    for secret in [token.as_str(), SECRET, BAD_SECRET] {
        assert!(!p.text.contains(secret), "{secret} shown: {}", p.text);
    }
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgresql_every_instance_shows_the_token_one_of_them_fetched() {
    let schema = format!(
        "console_tok_{}_{}",
        std::process::id(),
        imrelay_sdk::clock::Clock::now_ms(&imrelay_sdk::clock::SystemClock) % 1_000_000
    );
    let mock = feishu_mock().await;
    let sink = Sink::start().await;
    let text = format!(
        "{}\n[store]\nurl = \"{}?schema={schema}\"\n",
        feishu_config(&sink, &mock),
        pg_url()
    );
    let a = TestGateway::start(&text).await;
    let b = TestGateway::start(&text).await;
    let id = post_message(&a, "feishu", "disk full").await;
    a.wait_state(&id, "partial").await;

    // One instance sent it (and fetched the token for the cluster); both
    // show it cached, with the same expiry.
    let mut shown = Vec::new();
    for t in [&a, &b] {
        let mut root = Browser::new(t);
        root.login(&[("user", "root"), ("password", ADMIN_PW)])
            .await;
        let p = root.get("/ui/channels").await;
        let at = token_expiries(&p.text);
        assert_eq!(at.len(), 1, "{}", p.text);
        shown.push(at[0]);
    }
    let apart = (shown[0].as_millisecond() - shown[1].as_millisecond()).abs();
    assert!(apart < 5_000, "{shown:?}");
    a.gw.shutdown().await.unwrap();
    b.gw.shutdown().await.unwrap();
}
