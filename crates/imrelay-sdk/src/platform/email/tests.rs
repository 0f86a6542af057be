//! Config checks and rendering. Sending and classification are tested against
//! a real SMTP server in crates/imrelay/tests/it/email_smtp.rs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::render::markdown_html;
use super::Security;
use crate::destination::{Client, Destination, Quota};
use crate::message::{Article, Body, Button, ImageSource, Message, Platform};
use crate::Error;

fn build(cfg: serde_json::Value) -> Result<Arc<dyn Destination>, Error> {
    let mut cfg = cfg;
    cfg["type"] = "email".into();
    Client::new().unwrap().build(&cfg)
}

fn dest(extra: serde_json::Value) -> Arc<dyn Destination> {
    let mut cfg = json!({
        "host": "smtp.example.com",
        "from": "Alerts <alerts@example.com>",
        "to": ["oncall@example.com"],
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    build(cfg).unwrap()
}

fn config_err(cfg: serde_json::Value) -> String {
    match build(cfg) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn body(d: &dyn Destination, msg: &Message) -> serde_json::Value {
    let mut p = d.render(msg).unwrap();
    assert_eq!(p.len(), 1);
    p.remove(0).body
}

// ---- config ----

#[test]
fn config_errors_name_the_key() {
    let base = json!({"host": "smtp.example.com", "from": "alerts@example.com"});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    assert!(config_err(with("from", json!("not an address"))).contains("`from`"));
    assert!(config_err(with("to", json!(["ok@example.com", "nope"]))).contains("`to[1]`"));
    assert!(config_err(with("reply_to", json!("@@"))).contains("`reply_to`"));
    assert!(config_err(with("host", json!(" "))).contains("`host`"));
    assert!(config_err(with("port", json!(0))).contains("`port`"));
    assert!(config_err(with("max_per_minute", json!(0))).contains("`max_per_minute`"));
    assert!(config_err(with("max_recipients", json!(0))).contains("`max_recipients`"));
    assert!(config_err(with("timeout_secs", json!(-1))).contains("`timeout_secs`"));
    assert!(config_err(with("security", json!("ssl"))).contains("`security` must be"));
    assert!(config_err(with("subject_prefix", json!("a\nb"))).contains("`subject_prefix`"));
    assert!(config_err(with("ca_file", json!("/nonexistent/ca.pem"))).contains("`ca_file`"));
    let unknown = config_err(with("smtp_host", json!("x")));
    assert!(unknown.contains("smtp_host"), "{unknown}");
    let missing = config_err(json!({"host": "smtp.example.com"}));
    assert!(missing.contains("from"), "{missing}");
    // A user without a password (or the other way round) is a mistake.
    assert!(config_err(with("username", json!("bot"))).contains("`password`"));
}

#[test]
fn credentials_are_refused_without_tls_and_never_printed() {
    let err = config_err(json!({
        "host": "localhost", "security": "none", "from": "a@example.com",
        "username": "bot", "password": "hunter2-secret",
    }));
    assert!(err.contains("`security`"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let d = dest(json!({"username": "bot", "password": "hunter2-secret"}));
    let shown = format!("{d:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let path = std::env::temp_dir().join(format!("imrelay-email-ca-{}.pem", std::process::id()));
    std::fs::write(&path, "not a certificate").unwrap();
    let err = config_err(json!({
        "host": "smtp.example.com", "from": "a@example.com", "ca_file": path,
    }));
    let _ = std::fs::remove_file(&path);
    assert!(err.contains("`ca_file`"), "{err}");
}

#[test]
fn ports_default_by_security_mode_and_limits_are_configurable() {
    assert_eq!(Security::Starttls.default_port(), 587);
    assert_eq!(Security::Tls.default_port(), 465);
    assert_eq!(Security::None.default_port(), 25);
    let d = dest(json!({}));
    assert_eq!(d.kind(), "email");
    assert_eq!(d.platform(), Platform::Email);
    assert_eq!(d.rate_limits(), vec![Quota::per_minute(20)]);
    assert!(d.id().starts_with("email:"));
    assert_eq!(
        dest(json!({"max_per_minute": 5})).rate_limits(),
        vec![Quota::per_minute(5)]
    );
}

// ---- rendering ----

#[test]
fn markdown_renders_to_a_multipart_json_body() {
    let d = dest(json!({"subject_prefix": "[prod] ", "reply_to": "sre@example.com"}));
    let msg = Message::markdown(
        "磁盘告警",
        "## 磁盘告警\n\n主机 **db-01** 已用 95%\n\n- [面板](https://grafana.example.com)\n- `df -h`",
    )
    .with_id("alert-1");
    let p = d.render(&msg).unwrap().remove(0);
    assert_eq!(p.recipients, vec!["oncall@example.com".to_string()]);
    // The same message id gives the same Message-ID on every render (retry).
    assert_eq!(p.dedup_key, d.render(&msg).unwrap()[0].dedup_key);
    let key = p.dedup_key.clone().unwrap();
    assert_eq!(p.body["message_id"], format!("{key}@example.com"));
    insta::assert_json_snapshot!(p.body, @r###"
    {
      "from": "Alerts <alerts@example.com>",
      "to": [
        "oncall@example.com"
      ],
      "reply_to": "sre@example.com",
      "subject": "[prod] 磁盘告警",
      "text": "## 磁盘告警\n\n主机 **db-01** 已用 95%\n\n- [面板](https://grafana.example.com)\n- `df -h`",
      "html": "<h2>磁盘告警</h2>\n<p>主机 <strong>db-01</strong> 已用 95%</p>\n<ul>\n<li><a href=\"https://grafana.example.com\">面板</a></li>\n<li><code>df -h</code></li>\n</ul>\n",
      "message_id": "af4aa5b8-9b24-508a-bdfe-822e8c984901@example.com"
    }
    "###);
}

#[test]
fn raw_html_and_script_links_are_escaped() {
    let html = markdown_html(
        "<b onclick=x>hi</b>\n\n<div>block</div>\n\n[x](javascript:alert(1)) ![img](data:image/png;base64,AA) [ok](https://ok.example.com \"t\")",
    );
    assert!(!html.contains("<b "), "{html}");
    assert!(!html.contains("<div>"), "{html}");
    assert!(html.contains("&lt;b onclick=x&gt;hi&lt;/b&gt;"), "{html}");
    assert!(html.contains("&lt;div&gt;block&lt;/div&gt;"), "{html}");
    assert!(!html.contains("javascript:"), "{html}");
    assert!(!html.contains("data:image"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("<a href=\"https://ok.example.com\" title=\"t\">ok</a>"),
        "{html}"
    );
}

#[test]
fn text_is_escaped_and_a_title_defaults_from_the_body() {
    let d = dest(json!({}));
    let b = body(d.as_ref(), &Message::text("a < b & c\nline 2\n\nnext"));
    assert_eq!(b["subject"], "a < b & c");
    assert_eq!(b["text"], "a < b & c\nline 2\n\nnext");
    assert_eq!(
        b["html"],
        "<p>a &lt; b &amp; c<br>\nline 2</p>\n<p>next</p>\n"
    );
    // A newline in a title cannot start a new header.
    let b = body(
        d.as_ref(),
        &Message::text("x").with_title("one\r\nBcc: evil@example.com"),
    );
    assert_eq!(b["subject"], "one Bcc: evil@example.com");
}

#[test]
fn cards_templates_links_news_and_images_degrade_to_text_and_links() {
    let d = dest(json!({}));
    let card = Message::new(Body::Card {
        text: "**CPU** 98%".into(),
        buttons: vec![
            Button {
                text: "Ack".into(),
                url: "https://ack.example.com/1".into(),
            },
            Button {
                text: "Bad".into(),
                url: "javascript:void(0)".into(),
            },
        ],
        theme: Some("red".into()),
    });
    let b = body(d.as_ref(), &card);
    assert_eq!(
        b["text"],
        "**CPU** 98%\n\nAck: https://ack.example.com/1\nBad: javascript:void(0)"
    );
    assert_eq!(
        b["html"],
        "<p><strong>CPU</strong> 98%</p>\n<p><a href=\"https://ack.example.com/1\">Ack</a> | Bad (javascript:void(0))</p>\n"
    );

    let mut data = BTreeMap::new();
    data.insert("host".to_string(), "db-01".to_string());
    data.insert("状态".to_string(), "<firing>".to_string());
    let tpl = Message::new(Body::Template {
        template_id: "t1".into(),
        data,
        url: Some("https://example.com/a".into()),
    })
    .with_title("Alert");
    let b = body(d.as_ref(), &tpl);
    assert_eq!(
        b["text"],
        "host: db-01\n状态: <firing>\n\nhttps://example.com/a"
    );
    assert!(b["html"]
        .as_str()
        .unwrap()
        .contains("<tr><th align=\"left\">状态</th><td>&lt;firing&gt;</td></tr>"));

    let link = Message::new(Body::Link {
        text: "Release notes".into(),
        url: "https://example.com/r".into(),
        pic_url: None,
    });
    let b = body(d.as_ref(), &link);
    assert_eq!(b["text"], "Release notes\n\nhttps://example.com/r");

    let news = Message::new(Body::News {
        articles: vec![Article {
            title: "Incident #7".into(),
            url: "https://status.example.com/7".into(),
            description: Some("resolved".into()),
            pic_url: None,
        }],
    });
    let b = body(d.as_ref(), &news);
    assert_eq!(b["subject"], "Incident #7");
    assert_eq!(
        b["html"],
        "<ul>\n<li><a href=\"https://status.example.com/7\">Incident #7</a><br>\nresolved</li>\n</ul>\n"
    );

    let img = Message::new(Body::Image {
        image: ImageSource::Url("https://example.com/a.png".into()),
    });
    assert_eq!(body(d.as_ref(), &img)["text"], "https://example.com/a.png");
    let bytes = Message::new(Body::Image {
        image: ImageSource::Base64("AA==".into()),
    });
    assert!(matches!(d.render(&bytes), Err(Error::Unsupported { .. })));
}

#[test]
fn raw_bodies_are_email_content_or_refused() {
    let d = dest(json!({"subject_prefix": "[x] "}));
    let raw = Message::new(Body::Raw {
        platform: Some(Platform::Email),
        payload: json!({"subject": "S", "text": "T", "html": "<i>H</i>"}),
    });
    let b = body(d.as_ref(), &raw);
    assert_eq!(
        (
            b["subject"].as_str(),
            b["text"].as_str(),
            b["html"].as_str()
        ),
        (Some("[x] S"), Some("T"), Some("<i>H</i>"))
    );
    let other = Message::new(Body::Raw {
        platform: Some(Platform::Feishu),
        payload: json!({"subject": "S", "text": "T"}),
    });
    assert!(matches!(d.render(&other), Err(Error::Unsupported { .. })));
    let bad = Message::new(Body::Raw {
        platform: None,
        payload: json!({"msgtype": "text"}),
    });
    assert!(matches!(d.render(&bad), Err(Error::InvalidMessage(_))));
}

#[test]
fn recipients_override_dedupe_split_and_are_validated() {
    let d = dest(json!({"max_recipients": 2}));
    let msg = Message::text("x").with_recipients(vec![
        "a@example.com".into(),
        "B <b@example.com>".into(),
        "A@EXAMPLE.COM".into(),
        "c@example.com".into(),
    ]);
    let parts = d.render(&msg).unwrap();
    let to: Vec<_> = parts.iter().map(|p| p.recipients.clone()).collect();
    assert_eq!(
        to,
        vec![
            vec!["a@example.com".to_string(), "B <b@example.com>".to_string()],
            vec!["c@example.com".to_string()],
        ]
    );
    assert_eq!(parts[1].body["to"], json!(["c@example.com"]));

    let bad = Message::text("x").with_recipients(vec!["ok@example.com".into(), "nope".into()]);
    match d.render(&bad) {
        Err(Error::InvalidMessage(m)) => assert!(m.contains("`recipients[1]`"), "{m}"),
        other => panic!("{other:?}"),
    }
    let none = build(json!({"host": "h.example.com", "from": "a@example.com"})).unwrap();
    match none.render(&Message::text("x")) {
        Err(Error::InvalidMessage(m)) => assert!(m.contains("`to`"), "{m}"),
        other => panic!("{other:?}"),
    }
}
