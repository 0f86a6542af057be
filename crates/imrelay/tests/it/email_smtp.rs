//! The `email` destination against a real SMTP server: aiosmtpd, run by
//! tests/python/smtp_sink.py, with STARTTLS or implicit TLS on a CA made for
//! the test, AUTH, and recipients it refuses. The sink decodes each message
//! it takes with Python's own `email` package, so the checks are on what a
//! mail client shows (decoded Chinese subject, both alternative parts).
//!
//! Needs the virtualenv `tests/run` creates (`$IMRELAY_PY_VENV`, default
//! `~/.cache/imrelay/pyvenv`, with aiosmtpd from tests/python/requirements.txt).
//! Without it these tests FAIL, saying how to create it: never skipped.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::outcome::Code;
use imrelay_sdk::{Client, Destination, Message, Outcome, Report};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::serve_support::{free_port, Scratch};

const USER: &str = "oncall-bot";
const PASS: &str = "s3cret-Pa55";

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("IMRELAY_PY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/imrelay/pyvenv")
        });
    let py = venv.join("bin/python");
    if !py.exists() {
        panic!(
            "\n\nthe Python virtualenv for the SMTP test is missing: {} does not exist.\n\
             Create it (as tests/run does):\n  python3 -m venv {v}\n  {v}/bin/pip install -r tests/python/requirements.txt\n\
             or point IMRELAY_PY_VENV at an existing one.\n\n",
            py.display(),
            v = venv.display()
        );
    }
    py
}

/// A running smtp_sink.py; killed on drop.
struct Sink {
    _child: tokio::process::Child,
    port: u16,
    ca: Option<PathBuf>,
    dir: Scratch,
}

impl Sink {
    async fn start(args: &[&str]) -> Sink {
        let dir = Scratch::new("smtp-sink");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/smtp_sink.py");
        let mut child = tokio::process::Command::new(venv_python())
            .arg(&script)
            .arg("--out")
            .arg(&dir.0)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("cannot run the venv's python");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(60),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("smtp_sink.py did not report ready within 60 s")
        .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("smtp_sink.py said {line:?}, not its ready line: {e}"));
        Sink {
            _child: child,
            port: ready["port"].as_u64().unwrap() as u16,
            ca: ready["ca"].as_str().map(PathBuf::from),
            dir,
        }
    }

    /// Every message the server took, in order. The sink writes each before
    /// it answers DATA, so a delivered send's message is already here.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with("msg-") && name.ends_with(".json")
            })
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }

    fn ca(&self) -> String {
        self.ca.as_ref().unwrap().display().to_string()
    }
}

fn email(cfg: Value) -> Arc<dyn Destination> {
    let mut cfg = cfg;
    cfg["type"] = json!("email");
    Client::new().unwrap().build(&cfg).unwrap()
}

async fn send_one(dest: &dyn Destination, msg: &Message) -> Report {
    let payloads = dest.render(msg).unwrap();
    assert_eq!(payloads.len(), 1);
    dest.send(&payloads[0]).await
}

fn part<'a>(msg: &'a Value, content_type: &str) -> &'a Value {
    msg["parsed"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == content_type)
        .unwrap_or_else(|| panic!("no {content_type} part in {msg:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_with_auth_delivers_a_chinese_multipart_email() {
    let sink = Sink::start(&["--starttls", "--auth", &format!("{USER}:{PASS}")]).await;
    let dest = email(json!({
        "host": "127.0.0.1",
        "port": sink.port,
        "username": USER,
        "password": PASS,
        "ca_file": sink.ca(),
        "from": "告警机器人 <alerts@example.com>",
        "to": ["oncall@example.com", "张三 <zhangsan@example.com>"],
        "reply_to": "sre@example.com",
        "subject_prefix": "[imrelay] ",
    }));
    let msg = Message::markdown(
        "磁盘告警：/data 使用率 95%",
        "## 磁盘告警\n\n主机 **db-01** 的 `/data` 已用 95%。\n\n- 请尽快清理\n- [查看面板](https://grafana.example.com/d/disk)\n\n<script>alert(1)</script>",
    )
    .with_id("alert-42");

    let report = send_one(dest.as_ref(), &msg).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report}");
    assert_eq!(report.code, Some(Code::Int(250)));
    assert!(report.failed_recipients.is_empty());

    let got = sink.messages();
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(
        m["tls"], true,
        "STARTTLS must have happened before the mail"
    );
    assert_eq!(m["auth_user"], USER);
    assert_eq!(m["mail_from"], "alerts@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["oncall@example.com", "zhangsan@example.com"])
    );
    // Headers as a mail client decodes them (RFC 2047 encoded words).
    let p = &m["parsed"];
    assert_eq!(p["subject"], "[imrelay] 磁盘告警：/data 使用率 95%");
    assert_eq!(p["from"], "告警机器人 <alerts@example.com>");
    assert_eq!(
        p["to"],
        json!(["oncall@example.com", "张三 <zhangsan@example.com>"])
    );
    assert_eq!(p["reply_to"], "sre@example.com");
    assert_eq!(
        p["message_id"].as_str(),
        report.platform_message_id.as_deref()
    );
    assert_eq!(p["content_type"], "multipart/alternative");
    // On the wire the message is 7-bit: the Chinese is encoded, not raw.
    let raw = m["data"].as_str().unwrap();
    assert!(raw.is_ascii(), "raw message is not ASCII:\n{raw}");

    let text = part(m, "text/plain");
    assert_eq!(text["charset"], "utf-8");
    assert!(text["content"]
        .as_str()
        .unwrap()
        .contains("主机 **db-01** 的 `/data` 已用 95%。"));
    let html = part(m, "text/html");
    let html = html["content"].as_str().unwrap();
    assert!(html.contains("<h2>磁盘告警</h2>"), "{html}");
    assert!(html.contains("<strong>db-01</strong>"), "{html}");
    assert!(html.contains("<code>/data</code>"), "{html}");
    assert!(
        html.contains("<li><a href=\"https://grafana.example.com/d/disk\">查看面板</a></li>"),
        "{html}"
    );
    // Raw HTML in the markdown arrives as text, not as a script.
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );

    // A retry of the same message carries the same Message-ID.
    let again = send_one(dest.as_ref(), &msg).await;
    assert_eq!(again.platform_message_id, report.platform_message_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn implicit_tls_delivers_and_card_buttons_become_links() {
    let sink = Sink::start(&["--tls", "--auth", &format!("{USER}:{PASS}")]).await;
    let dest = email(json!({
        "host": "127.0.0.1",
        "port": sink.port,
        "security": "tls",
        "username": USER,
        "password": PASS,
        "ca_file": sink.ca(),
        "from": "alerts@example.com",
        "to": ["oncall@example.com"],
    }));
    let msg: Message = serde_json::from_value(json!({
        "title": "API 5xx",
        "body": {"type": "card", "text": "错误率 **12%**", "buttons": [
            {"text": "Runbook", "url": "https://wiki.example.com/runbook"}
        ]}
    }))
    .unwrap();
    let report = send_one(dest.as_ref(), &msg).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report}");
    let got = sink.messages();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["tls"], true);
    assert_eq!(got[0]["parsed"]["subject"], "API 5xx");
    let text = part(&got[0], "text/plain")["content"].as_str().unwrap();
    assert!(
        text.contains("Runbook: https://wiki.example.com/runbook"),
        "{text}"
    );
    let html = part(&got[0], "text/html")["content"].as_str().unwrap();
    assert!(
        html.contains("<a href=\"https://wiki.example.com/runbook\">Runbook</a>"),
        "{html}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_smtp_reports_a_refused_recipient_and_delivers_to_the_others() {
    let sink = Sink::start(&["--reject", "gone@example.com"]).await;
    let dest = email(json!({
        "host": "127.0.0.1",
        "port": sink.port,
        "security": "none",
        "from": "alerts@example.com",
        "to": ["a@example.com"],
    }));
    // The message's recipients replace the configured `to`.
    let msg = Message::text("值班请确认 / please acknowledge").with_recipients(vec![
        "first@example.com".into(),
        "gone@example.com".into(),
        "last@example.com".into(),
    ]);
    let report = send_one(dest.as_ref(), &msg).await;
    assert_eq!(report.outcome, Outcome::Delivered, "{report}");
    assert_eq!(report.failed_recipients.len(), 1, "{report:?}");
    let f = &report.failed_recipients[0];
    assert_eq!(f.recipient, "gone@example.com");
    assert_eq!(f.outcome, Outcome::Permanent);
    assert!(f.reason.contains("550"), "{}", f.reason);
    assert!(f.reason.contains("User unknown"), "{}", f.reason);

    let got = sink.messages();
    let rcpts: Vec<&Value> = got
        .iter()
        .flat_map(|m| m["rcpt_tos"].as_array().unwrap())
        .collect();
    assert_eq!(
        rcpts,
        [&json!("first@example.com"), &json!("last@example.com")]
    );
    assert!(got.iter().all(|m| m["tls"] == false));
    // Each copy shows the full recipient list, and plain text as both parts.
    let m = &got[0];
    assert_eq!(m["parsed"]["to"].as_array().unwrap().len(), 3);
    assert_eq!(
        part(m, "text/plain")["content"]
            .as_str()
            .unwrap()
            .trim_end(),
        "值班请确认 / please acknowledge"
    );
    assert!(part(m, "text/html")["content"]
        .as_str()
        .unwrap()
        .contains("<p>值班请确认 / please acknowledge</p>"));

    // Alone, a refused address is the answer: permanent, with the SMTP code.
    let alone = send_one(
        dest.as_ref(),
        &Message::text("x").with_recipients(vec!["gone@example.com".into()]),
    )
    .await;
    assert_eq!(alone.outcome, Outcome::Permanent, "{alone}");
    assert_eq!(alone.code, Some(Code::Int(550)));
    assert!(alone.message.contains("User unknown"), "{alone}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_mailbox_is_retried() {
    let sink = Sink::start(&["--tempfail", "busy@example.com"]).await;
    let dest = email(json!({
        "host": "127.0.0.1", "port": sink.port, "security": "none",
        "from": "alerts@example.com", "to": ["busy@example.com"],
    }));
    let report = send_one(dest.as_ref(), &Message::text("x")).await;
    assert_eq!(report.outcome, Outcome::Retry { after: None }, "{report}");
    assert_eq!(report.code, Some(Code::Int(450)));
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_permanent_and_names_the_keys() {
    let sink = Sink::start(&["--starttls", "--auth", &format!("{USER}:{PASS}")]).await;
    let dest = email(json!({
        "host": "127.0.0.1",
        "port": sink.port,
        "username": USER,
        "password": "not-the-password",
        "ca_file": sink.ca(),
        "from": "alerts@example.com",
        "to": ["oncall@example.com", "deputy@example.com"],
    }));
    let report = send_one(dest.as_ref(), &Message::text("x")).await;
    assert_eq!(report.outcome, Outcome::Permanent, "{report}");
    assert_eq!(report.code, Some(Code::Int(535)));
    let shown = format!("{report} {report:?} {dest:?}");
    assert!(
        shown.contains("`username`") && shown.contains("`password`"),
        "{shown}"
    );
    assert!(!shown.contains("not-the-password"), "{shown}");
    assert!(sink.messages().is_empty());
    // One attempt only: a refused login is not tried again per recipient
    // (repeated failures can lock the account).
    let attempts = std::fs::read_to_string(sink.dir.path("auth.log")).unwrap();
    assert_eq!(attempts.lines().count(), 1, "{attempts}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_or_a_closed_port_is_retried() {
    let sink = Sink::start(&["--starttls"]).await;
    // Without `ca_file` the test CA is unknown: the TLS handshake fails and
    // nothing is sent in clear text instead.
    let dest = email(json!({
        "host": "127.0.0.1", "port": sink.port,
        "from": "alerts@example.com", "to": ["oncall@example.com"],
    }));
    let report = send_one(dest.as_ref(), &Message::text("x")).await;
    assert_eq!(report.outcome, Outcome::Retry { after: None }, "{report}");
    assert!(report.code.is_none());
    assert!(
        report.hint.as_deref().unwrap_or("").contains("ca_file"),
        "{report}"
    );
    assert!(sink.messages().is_empty());

    let closed = email(json!({
        "host": "127.0.0.1", "port": free_port(), "security": "none",
        "from": "alerts@example.com", "to": ["oncall@example.com"],
    }));
    let report = send_one(closed.as_ref(), &Message::text("x")).await;
    assert_eq!(report.outcome, Outcome::Retry { after: None }, "{report}");
}
