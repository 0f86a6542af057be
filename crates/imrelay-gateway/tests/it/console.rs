//! The web console over HTTP: login (password or API key), sessions, CSRF,
//! the security headers, and that a user's channels limit what they see and
//! do exactly as an API key's would. (The browser tests in
//! crates/imrelay/tests/it/console_browser.rs drive the same pages in
//! Chromium.)

use reqwest::header::{HeaderMap, COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;

use crate::api_support::{config_text, Sink, TestGateway, ADMIN_KEY, OPS_KEY};
use imrelay_gateway::console::auth::hash_password;
use imrelay_gateway::console::CSP;

pub(crate) const ADMIN_PW: &str = "admin password 1";
pub(crate) const OPS_PW: &str = "ops password 2";

pub(crate) fn console_config(sink: &Sink) -> String {
    config_text(
        sink,
        &format!(
            r#"
[console]
enabled = true
session_lifetime = "1h"

[[console.users]]
name = "root"
password_hash = "{}"
channels = ["*"]

[[console.users]]
name = "opsuser"
password_hash = "{}"
channels = ["alerts"]
"#,
            hash_password(ADMIN_PW).unwrap(),
            hash_password(OPS_PW).unwrap()
        ),
    )
}

/// A browser-like client of the console: keeps its cookies, never follows
/// redirects (the tests look at them).
pub(crate) struct Browser<'a> {
    t: &'a TestGateway,
    http: reqwest::Client,
    pub cookies: Vec<(String, String)>,
}

pub(crate) struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The first form's CSRF token on the page.
    pub fn csrf(&self) -> String {
        let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
        re.captures(&self.text)
            .unwrap_or_else(|| panic!("no csrf field in {}", self.text))[1]
            .to_string()
    }
}

impl<'a> Browser<'a> {
    pub fn new(t: &'a TestGateway) -> Self {
        Browser {
            t,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn keep(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.is_empty() {
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        Page {
            status,
            headers,
            text: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(self.t.url(path))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(self.t.url(path))
            .header(COOKIE, self.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        self.keep(r).await
    }

    pub async fn login(&mut self, form: &[(&str, &str)]) -> Page {
        let page = self.get("/ui/login").await;
        let token = page.csrf();
        let mut f = form.to_vec();
        f.push(("csrf", &token));
        self.post("/ui/login", &f).await
    }
}

pub(crate) async fn post_message(t: &TestGateway, channel: &str, text: &str) -> String {
    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            &json!({"channel": channel, "text": text, "labels": {"host": "db-1"}}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_sessions_csrf_and_headers() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&console_config(&sink)).await;
    let mut b = Browser::new(&t);

    // Not logged in: to the login page, with the security headers.
    let p = b.get("/ui/dlq").await;
    assert_eq!(p.status, 303);
    assert_eq!(p.location(), "/ui/login?next=%2Fui%2Fdlq");
    assert_eq!(p.headers["content-security-policy"], CSP);
    assert_eq!(p.headers["x-content-type-options"], "nosniff");
    assert_eq!(p.headers["referrer-policy"], "same-origin");

    // The login form needs its own token back.
    let p = b
        .post(
            "/ui/login",
            &[("user", "root"), ("password", ADMIN_PW), ("csrf", "0")],
        )
        .await;
    assert_eq!(p.status, 403, "{}", p.text);
    let p = b.login(&[("user", "root"), ("password", "wrong")]).await;
    assert_eq!(p.status, 401);
    assert!(!b.cookies.iter().any(|(k, _)| k == "imrelay_session"));
    let p = b.login(&[("user", "nobody"), ("password", ADMIN_PW)]).await;
    assert_eq!(p.status, 401);

    let p = b
        .login(&[
            ("user", "root"),
            ("password", ADMIN_PW),
            ("next", "/ui/dlq"),
        ])
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    assert_eq!(p.location(), "/ui/dlq");
    let set = p
        .headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect::<Vec<_>>();
    let session = set
        .iter()
        .find(|c| c.starts_with("imrelay_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP on loopback: {session}"
    );
    let id = &b
        .cookies
        .iter()
        .find(|(k, _)| k == "imrelay_session")
        .unwrap()
        .1;
    assert_eq!(id.len(), 64, "256 random bits");

    let p = b.get("/ui/").await;
    assert_eq!(p.status, 200);
    assert_eq!(p.headers["content-security-policy"], CSP);
    assert!(
        !p.text.contains("<script>") && !p.text.contains("style="),
        "no inline script or style"
    );
    assert!(p.text.contains("data-refresh=\"/ui/overview.json\""));
    let css = p
        .text
        .split("href=\"/ui/static/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let s = b.get(&format!("/ui/static/{css}")).await;
    assert_eq!(s.status, 200);
    assert!(s.headers["cache-control"]
        .to_str()
        .unwrap()
        .contains("max-age=31536000"));
    assert_eq!(b.get("/ui/static/other.js").await.status, 404);

    // Every form needs the session's token: a forged one is refused.
    let csrf = p.csrf();
    let p = b.post("/ui/logout", &[("csrf", "forged")]).await;
    assert_eq!(p.status, 403);
    assert_eq!(b.get("/ui/").await.status, 200, "still logged in");
    let p = b.post("/ui/logout", &[("csrf", &csrf)]).await;
    assert_eq!((p.status, p.location()), (303, "/ui/login"));
    assert_eq!(b.get("/ui/").await.status, 303, "logged out");

    // An API key logs in with its own scope.
    let mut k = Browser::new(&t);
    let p = k.login(&[("key", OPS_KEY)]).await;
    assert_eq!(p.status, 303, "{}", p.text);
    let p = k.get("/ui/messages?channel=other").await;
    assert_eq!(p.status, 403, "{}", p.text);

    // Secrets are never rendered.
    let p = k.get("/ui/channels").await;
    assert_eq!(p.status, 200);
    assert!(!p.text.contains(&sink.url), "{}", p.text);

    // Language: the browser's, or the switch's cookie.
    let r = reqwest::Client::new()
        .get(t.url("/ui/login"))
        .header("accept-language", "zh-CN,zh;q=0.9")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.contains("lang=\"zh-CN\"") && r.contains("登录"), "{r}");
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_are_rate_limited() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&console_config(&sink)).await;
    let mut b = Browser::new(&t);
    for _ in 0..5 {
        assert_eq!(
            b.login(&[("user", "root"), ("password", "x")]).await.status,
            401
        );
    }
    // Now even the right password waits.
    let p = b.login(&[("user", "root"), ("password", ADMIN_PW)]).await;
    assert_eq!(p.status, 429, "{}", p.text);
    // Another user is not locked out.
    let p = b.login(&[("user", "opsuser"), ("password", OPS_PW)]).await;
    assert_eq!(p.status, 303);
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn find_replay_and_silence_through_the_console_within_the_users_channels() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&console_config(&sink)).await;
    sink.set_status(400); // permanent for a generic webhook: dead at once
    let mine = post_message(&t, "alerts", "disk full on db-1 zq7").await;
    let theirs = post_message(&t, "other", "secret other thing zq7").await;
    t.wait_state(&mine, "dead").await;
    t.wait_state(&theirs, "dead").await;
    sink.set_status(200);

    let mut ops = Browser::new(&t);
    assert_eq!(
        ops.login(&[("user", "opsuser"), ("password", OPS_PW)])
            .await
            .status,
        303
    );

    // Search finds only the user's channel's message.
    let p = ops.get("/ui/messages?text=ZQ7").await;
    assert_eq!(p.status, 200);
    assert!(p.text.contains(&mine), "{}", p.text);
    assert!(!p.text.contains(&theirs), "{}", p.text);
    let p = ops.get("/ui/messages?label=host%3Ddb-1").await;
    assert!(
        p.text.contains(&mine) && !p.text.contains(&theirs),
        "{}",
        p.text
    );
    assert!(!ops
        .get("/ui/messages?label=host%3Ddb-2")
        .await
        .text
        .contains(&mine));
    assert_eq!(ops.get("/ui/messages?label=nonsense").await.status, 422);
    let p = ops.get("/ui/messages?state=dead").await;
    assert!(p.text.contains(&mine) && !p.text.contains(&theirs));
    // Another channel's message answers like a missing one, also by URL.
    assert_eq!(ops.get(&format!("/ui/messages/{theirs}")).await.status, 404);

    // The message page: its timeline with the receiver's answer.
    let p = ops.get(&format!("/ui/messages/{mine}")).await;
    assert_eq!(p.status, 200);
    assert!(p.text.contains("HTTP 400"), "{}", p.text);
    let csrf = p.csrf();

    // The dead letters: only the user's; another's id is skipped on replay.
    let dlq = t.get("/v1/dlq", Some(ADMIN_KEY)).await;
    let id_of = |m: &str| {
        dlq.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["message_id"] == m)
            .unwrap()["delivery_id"]
            .to_string()
    };
    let (my_dead, their_dead) = (id_of(&mine), id_of(&theirs));
    let p = ops.get("/ui/dlq").await;
    assert!(p.text.contains(&format!("/ui/dlq/{my_dead}")));
    assert!(!p.text.contains(&format!("/ui/dlq/{their_dead}")));
    assert_eq!(ops.get(&format!("/ui/dlq/{their_dead}")).await.status, 404);
    let p = ops
        .post("/ui/dlq/replay", &[("csrf", &csrf), ("id", &their_dead)])
        .await;
    assert_eq!(
        (p.status, p.location()),
        (303, "/ui/dlq?notice=replayed&n=0")
    );
    let p = ops
        .post("/ui/dlq/purge", &[("csrf", &csrf), ("id", &their_dead)])
        .await;
    assert_eq!(p.location(), "/ui/dlq?notice=purged&n=0");
    assert_eq!(
        t.gw.store()
            .list_dead(&Default::default())
            .await
            .unwrap()
            .len(),
        2
    );

    // Replay without the token: refused, nothing replayed.
    let p = ops.post("/ui/dlq/replay", &[("id", &my_dead)]).await;
    assert_eq!(p.status, 403);
    // With it: delivered this time.
    let p = ops
        .post("/ui/dlq/replay", &[("csrf", &csrf), ("id", &my_dead)])
        .await;
    assert_eq!(
        (p.status, p.location()),
        (303, "/ui/dlq?notice=replayed&n=1")
    );
    t.wait_state(&mine, "delivered").await;

    // Silences hold every channel: a user of one channel may not list them...
    assert_eq!(ops.get("/ui/silences").await.status, 403);
    // ...but may silence messages like one of theirs (the API's rule).
    let p = ops
        .post(
            &format!("/ui/messages/{mine}/silence"),
            &[("csrf", &csrf), ("duration", "1h")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    let silences = t.get("/v1/silences", Some(ADMIN_KEY)).await;
    let s = &silences.body[0];
    assert_eq!(s["createdBy"], "opsuser");
    assert!(s["matchers"].to_string().contains("db-1"), "{s}");

    // The admin user sees it and ends it.
    let mut root = Browser::new(&t);
    assert_eq!(
        root.login(&[("user", "root"), ("password", ADMIN_PW)])
            .await
            .status,
        303
    );
    let p = root.get("/ui/silences").await;
    assert!(p.text.contains("db-1"), "{}", p.text);
    let csrf = p.csrf();
    let sid = s["id"].as_str().unwrap();
    let p = root
        .post(&format!("/ui/silences/{sid}/expire"), &[("csrf", &csrf)])
        .await;
    assert_eq!(p.location(), "/ui/silences?notice=expired");
    let silences = t.get("/v1/silences", Some(ADMIN_KEY)).await;
    assert_eq!(silences.body[0]["status"]["state"], "expired");

    // A test message from the channels page goes through the API's accept.
    let csrf = csrf_of(&mut ops).await;
    let p = ops
        .post("/ui/channels/other/test", &[("csrf", &csrf)])
        .await;
    assert_eq!(p.status, 403, "not the user's channel: {}", p.text);
    let p = ops
        .post(
            "/ui/channels/alerts/test",
            &[("csrf", &csrf), ("text", "hello from the console")],
        )
        .await;
    assert_eq!(p.status, 303, "{}", p.text);
    let id = p
        .location()
        .trim_start_matches("/ui/messages/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let v = t.wait_state(&id, "delivered").await;
    assert_eq!(v["message"]["body"]["text"], "hello from the console");

    // The overview counts the user's channel only.
    let o = ops.get("/ui/overview.json").await;
    let o: serde_json::Value = serde_json::from_str(&o.text).unwrap();
    assert_eq!(o["numbers"]["accepted"], 2, "{o}");
    assert_eq!(o["numbers"]["dlq"], 0, "{o}");
    assert_eq!(o["numbers"]["failed"], 1, "the refused first attempt: {o}");
    let o = root.get("/ui/overview.json").await;
    let o: serde_json::Value = serde_json::from_str(&o.text).unwrap();
    assert_eq!(o["numbers"]["accepted"], 3, "{o}");
    assert_eq!(o["numbers"]["dlq"], 1, "{o}");
    assert_eq!(o["numbers"]["failed"], 2, "{o}");
    // Delivered: the replayed message and the test message; dead: the other
    // channel's. A replayed delivery counts once, as what it ended as.
    assert_eq!(o["numbers"]["success"], "66.7%", "{o}");
    assert!(o["charts"].as_str().unwrap().contains("<svg"), "{o}");
    // Accept-to-delivered percentiles of the two delivered messages.
    assert_eq!(o["latency"]["count"], 2, "{o}");
    let (p50, p99) = (
        o["latency"]["p50_ms"].as_i64().unwrap(),
        o["latency"]["p99_ms"].as_i64().unwrap(),
    );
    assert!(0 <= p50 && p50 <= p99, "{o}");
    assert!(o["numbers"]["p99"].as_str().unwrap().ends_with('s'), "{o}");
    let o = ops.get("/ui/overview.json").await;
    let o: serde_json::Value = serde_json::from_str(&o.text).unwrap();
    assert_eq!(
        o["latency"]["count"], 2,
        "both delivered were the user's channel: {o}"
    );
    let p = root.get("/ui/").await;
    assert!(p.text.contains(r#"data-k="p99""#), "{}", p.text);
    t.gw.shutdown().await.unwrap();
}

async fn csrf_of(b: &mut Browser<'_>) -> String {
    b.get("/ui/channels").await.csrf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_template_preview_renders_through_the_api_within_the_users_channels() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&console_config(&sink)).await;
    let mut ops = Browser::new(&t);
    assert_eq!(
        ops.login(&[("user", "opsuser"), ("password", OPS_PW)])
            .await
            .status,
        303
    );
    let p = ops.get("/ui/templates").await;
    assert_eq!(p.status, 200);
    assert!(p.text.contains("data-bytes="), "{}", p.text);
    let csrf = p.csrf();
    let fragment = |text: &str| {
        let b = &ops;
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("csrf", csrf.as_str()),
                ("channel", "alerts"),
                ("text", text),
            ])
            .finish();
        let req = b
            .http
            .post(t.url("/ui/templates"))
            .header(COOKIE, b.cookie_header())
            .header("x-preview", "1")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let bytes = |html: &str| -> u64 {
        let re = regex::Regex::new(r#"data-bytes="(\d+)""#).unwrap();
        re.captures(html).unwrap_or_else(|| panic!("{html}"))[1]
            .parse()
            .unwrap()
    };
    let short = fragment("hi").await;
    let long = fragment("hello, a longer text").await;
    assert!(!short.contains("<html"), "only the preview: {short}");
    assert_eq!(
        bytes(&long) - bytes(&short),
        "hello, a longer text".len() as u64 - 2
    );
    // The same checks as an accept: another channel is refused.
    let p = ops
        .post(
            "/ui/templates",
            &[("csrf", &csrf), ("channel", "other"), ("text", "x")],
        )
        .await;
    assert!(p.text.contains("may not use channel"), "{}", p.text);
    assert_eq!(t.stored_messages().await, 0, "previews store nothing");
    assert!(sink.bodies().is_empty());
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_console_is_off_unless_enabled() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let r = t.get("/ui/login", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.headers["content-security-policy"], CSP);
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_on_call_page_and_a_messages_escalation_steps() {
    let sink = Sink::start().await;
    let text = format!(
        r#"{}
[[people]]
name = "zhangsan"
display = "张三"

[[schedules]]
name = "dba"
[[schedules.layers]]
rotation = "daily"
start = "2020-01-01"
people = ["zhangsan"]

[[escalation_policies]]
name = "now"
[[escalation_policies.steps]]
after = "0s"
notify = [{{ channel = "alerts", to = ["oncall:dba"] }}]
"#,
        console_config(&sink)
    );
    let t = TestGateway::start(&text).await;
    let mut b = Browser::new(&t);
    b.login(&[("user", "root"), ("password", ADMIN_PW)]).await;

    let page = b.get("/ui/oncall").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("dba") && page.text.contains("张三 (zhangsan)"),
        "{}",
        page.text
    );

    let r = t
        .post(
            "/v1/messages",
            Some(ADMIN_KEY),
            &json!({"channel": "alerts", "text": "db down", "escalation": "now"}).to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_string();
    // The runner fires the step on its next pass (every second).
    for _ in 0..150 {
        if t.get(&format!("/v1/messages/{id}"), Some(ADMIN_KEY))
            .await
            .body["escalation"]["state"]
            == "completed"
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let page = b.get(&format!("/ui/messages/{id}")).await;
    assert!(page.text.contains("escalation step 1"), "{}", page.text);
    // What the webhook destination was sent, as it rendered it.
    assert!(
        page.text.contains("What each destination received"),
        "{}",
        page.text
    );
    assert!(page.text.contains("db down"), "{}", page.text);
    assert!(page.text.contains("channel:alerts"), "{}", page.text);
    t.gw.shutdown().await.unwrap();
}

/// `[console]` plus a WeCom robot channel and an Alertmanager route whose
/// template the editor changes.
fn editor_config(sink: &Sink) -> String {
    format!(
        "{}{}",
        console_config(sink),
        r#"
[channels.wc]
[[channels.wc.destinations]]
type = "wecom_robot"
key = "k"

[alerting.routes.prod]
channels = ["alerts", "wc"]
template = "short"

[templates.short]
format = "markdown"
source = "{% for a in alerts %}- {{ a.name }} on {{ a.labels.instance }}: {{ a.summary }}\n{% endfor %}"
"#
    )
}

/// Each destination's section of the editor's preview, by key.
fn destinations(html: &str) -> Vec<(String, String)> {
    html.split("data-destination=\"")
        .skip(1)
        .map(|s| {
            let (key, rest) = s.split_once('"').unwrap();
            (key.to_string(), rest.to_string())
        })
        .collect()
}

fn attr(html: &str, name: &str) -> u64 {
    let re = regex::Regex::new(&format!(r#"{name}="(\d+)""#)).unwrap();
    re.captures(html)
        .unwrap_or_else(|| panic!("no {name} in {html}"))[1]
        .parse()
        .unwrap()
}

fn shown(html: &str) -> (u64, u64) {
    let re = regex::Regex::new(r"(\d+)/(\d+) alerts shown").unwrap();
    let c = re.captures(html).unwrap_or_else(|| panic!("{html}"));
    (c[1].parse().unwrap(), c[2].parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_route_template_editor_renders_each_destination_from_sample_alerts() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&editor_config(&sink)).await;
    let mut root = Browser::new(&t);
    root.login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    let p = root.get("/ui/templates").await;
    assert_eq!(p.status, 200);
    assert!(p.text.contains(r#"id="route-form""#), "{}", p.text);
    // The template in force is in the editor, rendered for both channels.
    assert!(p.text.contains("{{ a.summary }}"), "{}", p.text);
    let keys: Vec<String> = destinations(&p.text).into_iter().map(|d| d.0).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let csrf = p.csrf();
    let mut preview = async |sample: &str, source: &str| -> Page {
        root.post(
            "/ui/templates/route",
            &[
                ("csrf", &csrf),
                ("route", "prod"),
                ("template", "short"),
                ("loaded", "prod|short"),
                ("sample", sample),
                ("source", source),
            ],
        )
        .await
    };

    // Changing the text changes the preview and its byte count.
    let a = preview("firing", "{{ alerts[0].name }}").await;
    let b = preview("firing", "{{ alerts[0].name }} EXTRA-MARKER").await;
    assert_eq!(a.status, 200);
    let (da, db) = (destinations(&a.text), destinations(&b.text));
    assert_eq!(da.len(), 2, "{}", a.text);
    for (x, y) in da.iter().zip(&db) {
        assert!(!x.1.contains("EXTRA-MARKER") && y.1.contains("EXTRA-MARKER"));
        assert!(
            attr(&y.1, "data-bytes") > attr(&x.1, "data-bytes"),
            "{}",
            y.1
        );
    }

    // Many alerts: the webhook shows all 25; WeCom's 4096-byte markdown
    // limit makes the bridge show fewer, in one request within the limit.
    let line = "{% for a in alerts %}- {{ a.name }} on {{ a.labels.instance }}: {{ a.description }}\n{% endfor %}";
    let many = preview("many", line).await;
    let d = destinations(&many.text);
    let hook = d.iter().find(|d| !d.0.contains("wecom")).unwrap();
    let wc = d.iter().find(|d| d.0.contains("wecom")).unwrap();
    assert_eq!(shown(&hook.1), (25, 25), "{}", hook.1);
    let (n, total) = shown(&wc.1);
    assert!(n < 25 && total == 25, "{}", wc.1);
    assert_eq!(attr(&wc.1, "data-parts"), 1);
    // One alert longer than the limit: the SDK splits it into parts.
    let long = "{% for i in range(100) %}{{ alerts[0].description }}\n{% endfor %}";
    let split = preview("firing", long).await;
    let d = destinations(&split.text);
    let wc = d.iter().find(|d| d.0.contains("wecom")).unwrap();
    assert!(attr(&wc.1, "data-parts") > 1, "{}", wc.1);
    // Each part within WeCom's markdown limit (4096 bytes of content).
    let re = regex::Regex::new(r"content (\d+)/4096").unwrap();
    let counted: Vec<u64> = re
        .captures_iter(&wc.1)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert_eq!(counted.len() as u64, attr(&wc.1, "data-parts"));
    assert!(counted.iter().all(|&n| n <= 4096), "{counted:?}");
    let hook = d.iter().find(|d| !d.0.contains("wecom")).unwrap();
    assert_eq!(attr(&hook.1, "data-parts"), 1, "{}", hook.1);

    // Non-ASCII labels reach the destinations as they are.
    let zh = preview("non_ascii", line).await;
    assert!(zh.text.contains("磁盘空间不足"), "{}", zh.text);

    // A syntax error is shown with its line, not a 500.
    let bad = preview("firing", "ok\n{{ alerts[0].name }").await;
    assert_eq!(bad.status, 200);
    assert!(bad.text.contains("data-issue"), "{}", bad.text);
    assert!(bad.text.contains("line 2"), "{}", bad.text);
    assert!(destinations(&bad.text).is_empty());

    // The script's live preview gets only the result, not the form (the
    // text being typed stays as it is).
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("csrf", csrf.as_str()),
            ("route", "prod"),
            ("template", "short"),
            ("loaded", "prod|short"),
            ("sample", "firing"),
            ("source", "LIVE {{ alerts[0].name }}"),
        ])
        .finish();
    let fragment = root
        .http
        .post(t.url("/ui/templates/route"))
        .header(COOKIE, root.cookie_header())
        .header("x-preview", "1")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !fragment.contains("<textarea") && !fragment.contains("<html"),
        "{fragment}"
    );
    assert_eq!(destinations(&fragment).len(), 2, "{fragment}");
    assert!(fragment.contains("LIVE DiskFull"), "{fragment}");

    // Without the form's token nothing is rendered.
    let p = root
        .post(
            "/ui/templates/route",
            &[("route", "prod"), ("template", "short"), ("source", "x")],
        )
        .await;
    assert_eq!(p.status, 403);

    // A user of one channel does not see a route that sends to another.
    let mut ops = Browser::new(&t);
    ops.login(&[("user", "opsuser"), ("password", OPS_PW)])
        .await;
    let p = ops.get("/ui/templates").await;
    assert!(!p.text.contains(r#"id="route-form""#), "{}", p.text);
    assert!(destinations(&p.text).is_empty());
    assert_eq!(t.stored_messages().await, 0, "previews store nothing");
    assert!(sink.bodies().is_empty());
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saving_a_template_writes_the_config_and_reloads_it() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&editor_config(&sink)).await;
    let path = t.dir.path().join("imrelay.toml");
    let mut root = Browser::new(&t);
    root.login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    let csrf = root.get("/ui/templates").await.csrf();
    let save = |source: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("route", "prod".to_string()),
            ("template", "short".to_string()),
            ("loaded", "prod|short".to_string()),
            ("sample", "firing".to_string()),
            ("source", source.to_string()),
        ]
    };
    let pairs = |f: &[(&'static str, String); 6]| -> Vec<(&'static str, String)> { f.to_vec() };

    // A template that does not compile is not written.
    let before = std::fs::read_to_string(&path).unwrap();
    let f = pairs(&save("{{ alerts[0].name }"));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = root.post("/ui/templates/save", &f).await;
    assert_eq!(p.status, 422, "{}", p.text);
    assert!(p.text.contains("line 1"), "{}", p.text);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // A user of one channel may not save.
    let mut ops = Browser::new(&t);
    ops.login(&[("user", "opsuser"), ("password", OPS_PW)])
        .await;
    let ops_csrf = ops.get("/ui/templates").await.csrf();
    let f = pairs(&save("SAVED-BY-OPS {{ alerts[0].name }}"));
    let mut f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    f[0].1 = &ops_csrf;
    let p = ops.post("/ui/templates/save", &f).await;
    assert_eq!(p.status, 403, "{}", p.text);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);

    // Saved: the file holds the new source, the rest of it is unchanged,
    // and the reloaded gateway renders it.
    let f = pairs(&save("SAVED-TEMPLATE {{ alerts[0].name }}"));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = root.post("/ui/templates/save", &f).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert!(p.text.contains("data-saved"), "{}", p.text);
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(
        after.contains("SAVED-TEMPLATE {{ alerts[0].name }}"),
        "{after}"
    );
    assert!(after.contains("[channels.wc]") && after.contains("[[console.users]]"));
    assert_eq!(t.gw.live().status().applied, 1);
    let p = root.get("/ui/templates").await;
    assert!(
        p.text.contains("SAVED-TEMPLATE {{ alerts[0].name }}"),
        "{}",
        p.text
    );
    let d = destinations(&p.text);
    assert_eq!(d.len(), 2);
    assert!(
        d.iter().all(|d| d.1.contains("SAVED-TEMPLATE DiskFull")),
        "{}",
        p.text
    );

    // A read-only config: the TOML to paste instead, the file untouched.
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let f = pairs(&save("READ-ONLY {{ alerts[0].name }}"));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = root.post("/ui/templates/save", &f).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert!(p.text.contains("data-paste"), "{}", p.text);
    assert!(p.text.contains("[templates.short]"), "{}", p.text);
    assert!(
        p.text.contains("READ-ONLY {{ alerts[0].name }}"),
        "{}",
        p.text
    );
    // Only the template's table: no key or secret of the config.
    assert!(!p.text.contains(ADMIN_KEY), "{}", p.text);
    assert!(!p.text.contains("data-saved"));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_template_in_its_own_file_is_saved_to_that_file() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("short.md.j2");
    std::fs::write(&tpl, "FROM-FILE {{ names }}").unwrap();
    let text = format!(
        "{}{}",
        console_config(&sink),
        r#"
[alerting.routes.prod]
channels = ["alerts"]
template = "short"

[templates.short]
format = "markdown"
file = "short.md.j2"
"#
    );
    let t = TestGateway::start_in(dir, &text).await;
    let config = t.dir.path().join("imrelay.toml");
    let mut root = Browser::new(&t);
    root.login(&[("user", "root"), ("password", ADMIN_PW)])
        .await;
    let p = root.get("/ui/templates").await;
    assert!(p.text.contains("FROM-FILE {{ names }}"), "{}", p.text);
    let csrf = p.csrf();
    let f = [
        ("csrf", csrf.as_str()),
        ("route", "prod"),
        ("template", "short"),
        ("loaded", "prod|short"),
        ("sample", "resolved"),
        ("source", "EDITED-FILE {{ names }} {{ status }}"),
    ];
    let p = root.post("/ui/templates/save", &f).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert!(p.text.contains("data-saved"), "{}", p.text);
    assert_eq!(
        std::fs::read_to_string(&tpl).unwrap(),
        "EDITED-FILE {{ names }} {{ status }}"
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        text,
        "the config is untouched"
    );
    // The reloaded gateway renders the file's new text.
    assert!(
        p.text.contains("EDITED-FILE DiskFull resolved"),
        "{}",
        p.text
    );

    // A read-only template file: its content to paste instead.
    let mut perms = std::fs::metadata(&tpl).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&tpl, perms).unwrap();
    let f = [
        ("csrf", csrf.as_str()),
        ("route", "prod"),
        ("template", "short"),
        ("loaded", "prod|short"),
        ("sample", "firing"),
        ("source", "NOT-WRITTEN {{ names }}"),
    ];
    let p = root.post("/ui/templates/save", &f).await;
    assert!(p.text.contains("data-paste"), "{}", p.text);
    assert!(p.text.contains("short.md.j2"), "{}", p.text);
    assert_eq!(
        std::fs::read_to_string(&tpl).unwrap(),
        "EDITED-FILE {{ names }} {{ status }}"
    );
    t.gw.shutdown().await.unwrap();
}
