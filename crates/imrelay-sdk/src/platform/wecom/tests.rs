use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;

use super::app::{WecomApp, WecomAppConfig};
use super::codes::{classify, CODES};
use super::robot::{WecomRobot, WecomRobotConfig};
use crate::destination::{Client, Destination};
use crate::limits::{cost, Counting};
use crate::message::{Article, Body, Button, ImageSource, Mentions, Message, Platform};
use crate::outcome::Outcome;
use crate::platform::testing::{assert_table_classifies, resp};
use crate::Error;

const KEY: &str = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa";

fn client() -> Client {
    Client::new().unwrap()
}

fn robot(cfg: serde_json::Value) -> Result<std::sync::Arc<dyn Destination>, Error> {
    let mut cfg = cfg;
    cfg["type"] = "wecom_robot".into();
    client().build(&cfg)
}

fn robot_v(markdown: &str) -> WecomRobot {
    let cfg: WecomRobotConfig =
        serde_json::from_value(json!({"key": KEY, "markdown": markdown})).unwrap();
    WecomRobot::new(&client(), cfg).unwrap()
}

fn app(extra: serde_json::Value) -> WecomApp {
    let mut cfg = json!({"corp_id": "ww1234567890abcdef", "corp_secret": "s3cr3t-app", "agent_id": 1000002,
        "recipients": ["zhangsan", "lisi"]});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg: WecomAppConfig = serde_json::from_value(cfg).unwrap();
    WecomApp::new(&client(), cfg).unwrap()
}

fn bodies(dest: &dyn Destination, msg: &Message) -> Vec<serde_json::Value> {
    dest.render(msg)
        .unwrap()
        .into_iter()
        .map(|p| p.body)
        .collect()
}

fn config_err(r: Result<std::sync::Arc<dyn Destination>, Error>) -> String {
    match r {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    }
}

// ---- robot config ----

#[test]
fn robot_accepts_bare_key_or_full_url_in_either_field() {
    let url = format!("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}");
    let a = robot(json!({"key": KEY})).unwrap();
    let b = robot(json!({"key": url})).unwrap();
    let c = robot(json!({"webhook": url})).unwrap();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.id(), c.id());
    assert!(a.id().starts_with("wecom_robot:") && !a.id().contains(KEY));
    // The key never shows in Debug.
    assert!(!format!("{a:?}").contains(KEY));
}

#[test]
fn robot_config_errors_name_the_field() {
    let m = config_err(robot(json!({})));
    assert!(m.contains("`key`") && m.contains("`webhook`"), "{m}");
    let m = config_err(robot(json!({"key": "  "})));
    assert!(m.contains("`key` is empty"), "{m}");
    let m = config_err(robot(json!({"key": KEY, "webhook": "x"})));
    assert!(m.contains("either `key` or `webhook`"), "{m}");
    let m = config_err(robot(json!({"webhook": KEY})));
    assert!(m.contains("`webhook` must be the full URL"), "{m}");
    let m = config_err(robot(
        json!({"webhook": format!("http://169.254.169.254/cgi-bin/webhook/send?key={KEY}")}),
    ));
    assert!(
        m.contains("`webhook`") && m.contains("169.254.169.254"),
        "{m}"
    );
    assert!(!m.contains(KEY), "the key leaked into the error: {m}");
    let m = config_err(robot(
        json!({"webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?x=1"}),
    ));
    assert!(m.contains("no `key=`"), "{m}");
    let m = config_err(robot(json!({"key": "abc def"})));
    assert!(m.contains("letters, digits"), "{m}");
    let m = config_err(robot(json!({"key": KEY, "markdown": "v3"})));
    assert!(m.contains("v3"), "{m}");
    let m = config_err(robot(json!({"key": KEY, "secret": "x"})));
    assert!(m.contains("unknown field `secret`"), "{m}");
}

#[test]
fn robot_with_a_mock_base_url_takes_a_mock_webhook_url() {
    let cfg: WecomRobotConfig = serde_json::from_value(
        json!({"base_url": "http://127.0.0.1:9000", "webhook": "http://127.0.0.1:9000/cgi-bin/webhook/send?key=k1"}),
    )
    .unwrap();
    let w = WecomRobot::new(&client(), cfg).unwrap();
    let p = w.render(&Message::text("x")).unwrap().remove(0);
    assert_eq!(
        w.request(&p).url.as_str(),
        "http://127.0.0.1:9000/cgi-bin/webhook/send?key=k1"
    );
}

// ---- robot rendering ----

#[test]
fn robot_text_with_mentions() {
    let msg = Message::text("disk full on db-1").with_mentions(Mentions {
        all: true,
        mobiles: vec!["13800001111".into()],
        user_ids: vec!["wangqing".into()],
        ..Default::default()
    });
    let r = robot_v("v1");
    let b = bodies(&r, &msg);
    insta::assert_json_snapshot!(b, @r#"
    [
      {
        "msgtype": "text",
        "text": {
          "content": "disk full on db-1",
          "mentioned_list": [
            "wangqing",
            "@all"
          ],
          "mentioned_mobile_list": [
            "13800001111"
          ]
        }
      }
    ]
    "#);
    let req = r.request(&r.render(&msg).unwrap()[0]);
    assert_eq!(
        req.url.as_str(),
        format!("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={KEY}")
    );
    assert_eq!(req.method, http::Method::POST);
}

#[test]
fn robot_markdown_v1_appends_user_mentions_and_drops_mobiles() {
    let msg = Message::markdown("ignored", "**CPU** <font color=\"warning\">95%</font>")
        .with_mentions(Mentions {
            all: true,
            mobiles: vec!["13800001111".into()],
            user_ids: vec!["wangqing".into(), "lisi".into()],
            ..Default::default()
        });
    insta::assert_json_snapshot!(bodies(&robot_v("v1"), &msg), @r#"
    [
      {
        "msgtype": "markdown",
        "markdown": {
          "content": "**CPU** <font color=\"warning\">95%</font>\n<@wangqing> <@lisi>"
        }
      }
    ]
    "#);
}

#[test]
fn robot_markdown_v2() {
    let msg = Message::markdown("t", "# title\n| a | b |\n|---|---|").with_mentions(Mentions {
        user_ids: vec!["wangqing".into()],
        ..Default::default()
    });
    insta::assert_json_snapshot!(bodies(&robot_v("v2"), &msg), @r##"
    [
      {
        "msgtype": "markdown_v2",
        "markdown_v2": {
          "content": "# title\n| a | b |\n|---|---|"
        }
      }
    ]
    "##);
}

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn robot_image_carries_base64_and_md5_of_the_raw_bytes() {
    let msg = Message::new(Body::Image {
        image: ImageSource::Base64(b64(PNG)),
    });
    let b = bodies(&robot_v("v1"), &msg);
    // md5 of the raw bytes, computed independently of the code under test.
    use md5::Digest;
    let expected_md5 = hex::encode(md5::Md5::digest(PNG));
    assert_eq!(b[0]["image"]["md5"], expected_md5.as_str());
    insta::assert_json_snapshot!(b, @r#"
    [
      {
        "msgtype": "image",
        "image": {
          "base64": "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAACklEQVR4nGMAAQAABQABDQottAAAAABJRU5ErkJggg==",
          "md5": "93ca32a536da1698ea979f183679af29"
        }
      }
    ]
    "#);
}

#[test]
fn robot_image_refusals() {
    let r = robot_v("v1");
    let img = |s: ImageSource| Message::new(Body::Image { image: s });
    assert!(matches!(
        r.render(&img(ImageSource::Url("https://x/a.png".into()))),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        r.render(&img(ImageSource::Key("media".into()))),
        Err(Error::Unsupported { .. })
    ));
    let e = r
        .render(&img(ImageSource::Base64("not base64!".into())))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`body.image.base64` is not valid base64"), "{e}");
    let e = r
        .render(&img(ImageSource::Base64(b64(b"GIF89a...."))))
        .unwrap_err()
        .to_string();
    assert!(e.contains("neither a JPEG nor a PNG"), "{e}");
    let mut big = vec![0xFF, 0xD8, 0xFF];
    big.resize(2 * 1024 * 1024 + 1, 0);
    let e = r
        .render(&img(ImageSource::Base64(b64(&big))))
        .unwrap_err()
        .to_string();
    assert!(e.contains("2097153 bytes") && e.contains("2 MB"), "{e}");
    // Exactly 2 MB is fine.
    big.truncate(2 * 1024 * 1024);
    assert!(r.render(&img(ImageSource::Base64(b64(&big)))).is_ok());
}

#[test]
fn robot_link_is_one_news_article() {
    let msg = Message::new(Body::Link {
        text: "3 alerts firing".into(),
        url: "https://grafana.example.com/d/1".into(),
        pic_url: Some("https://example.com/p.png".into()),
    })
    .with_title("Alerts");
    insta::assert_json_snapshot!(bodies(&robot_v("v1"), &msg), @r#"
    [
      {
        "msgtype": "news",
        "news": {
          "articles": [
            {
              "title": "Alerts",
              "description": "3 alerts firing",
              "url": "https://grafana.example.com/d/1",
              "picurl": "https://example.com/p.png"
            }
          ]
        }
      }
    ]
    "#);
}

fn articles(n: usize) -> Vec<Article> {
    (1..=n)
        .map(|i| Article {
            title: format!("t{i}"),
            url: format!("https://e.com/{i}"),
            description: None,
            pic_url: None,
        })
        .collect()
}

#[test]
fn robot_news_over_eight_articles_is_split() {
    let r = robot_v("v1");
    let b = bodies(
        &r,
        &Message::new(Body::News {
            articles: articles(10),
        }),
    );
    assert_eq!(b.len(), 2);
    assert_eq!(b[0]["news"]["articles"].as_array().unwrap().len(), 8);
    insta::assert_json_snapshot!(b[1], @r#"
    {
      "msgtype": "news",
      "news": {
        "articles": [
          {
            "title": "t9",
            "url": "https://e.com/9"
          },
          {
            "title": "t10",
            "url": "https://e.com/10"
          }
        ]
      }
    }
    "#);
    let e = r
        .render(&Message::new(Body::News { articles: vec![] }))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidMessage(_)));
    // Truncate mode keeps the first eight.
    let cfg: WecomRobotConfig =
        serde_json::from_value(json!({"key": KEY, "overflow": {"mode": "truncate"}})).unwrap();
    let t = WecomRobot::new(&client(), cfg).unwrap();
    assert_eq!(
        bodies(
            &t,
            &Message::new(Body::News {
                articles: articles(10)
            })
        )
        .len(),
        1
    );
}

fn card(buttons: usize) -> Message {
    Message::new(Body::Card {
        text: "CPU 95% on web-1".into(),
        buttons: (1..=buttons)
            .map(|i| Button {
                text: format!("b{i}"),
                url: format!("https://e.com/b{i}"),
            })
            .collect(),
        theme: Some("red".into()),
    })
    .with_title("High CPU")
}

#[test]
fn robot_card_is_a_text_notice_template_card() {
    insta::assert_json_snapshot!(bodies(&robot_v("v1"), &card(4)), @r#"
    [
      {
        "msgtype": "template_card",
        "template_card": {
          "card_type": "text_notice",
          "main_title": {
            "title": "High CPU"
          },
          "sub_title_text": "CPU 95% on web-1\nb4: https://e.com/b4",
          "jump_list": [
            {
              "type": 1,
              "title": "b1",
              "url": "https://e.com/b1"
            },
            {
              "type": 1,
              "title": "b2",
              "url": "https://e.com/b2"
            },
            {
              "type": 1,
              "title": "b3",
              "url": "https://e.com/b3"
            }
          ],
          "card_action": {
            "type": 1,
            "url": "https://e.com/b1"
          }
        }
      }
    ]
    "#);
}

#[test]
fn robot_card_without_buttons_degrades_to_markdown() {
    insta::assert_json_snapshot!(bodies(&robot_v("v1"), &card(0)), @r#"
    [
      {
        "msgtype": "markdown",
        "markdown": {
          "content": "**High CPU**\nCPU 95% on web-1"
        }
      }
    ]
    "#);
}

fn template_msg() -> Message {
    let mut data = BTreeMap::new();
    data.insert("host".to_string(), "web-1".to_string());
    data.insert("status".to_string(), "firing".to_string());
    Message::new(Body::Template {
        template_id: "tpl".into(),
        data,
        url: Some("https://e.com/a".into()),
    })
    .with_title("Alert")
}

#[test]
fn robot_template_degrades_to_key_value_text() {
    insta::assert_json_snapshot!(bodies(&robot_v("v1"), &template_msg()), @r#"
    [
      {
        "msgtype": "text",
        "text": {
          "content": "Alert\nhost: web-1\nstatus: firing\nhttps://e.com/a"
        }
      }
    ]
    "#);
}

#[test]
fn robot_raw_passes_through_and_refuses_other_platforms() {
    let raw = json!({"msgtype": "file", "file": {"media_id": "3a8asd892asd8asd"}});
    let r = robot_v("v1");
    let msg = Message::new(Body::Raw {
        platform: Some(Platform::Wecom),
        payload: raw.clone(),
    });
    assert_eq!(bodies(&r, &msg), vec![raw.clone()]);
    let msg = Message::new(Body::Raw {
        platform: Some(Platform::Dingtalk),
        payload: raw,
    });
    assert!(matches!(r.render(&msg), Err(Error::Unsupported { .. })));
}

#[test]
fn empty_text_is_refused_before_sending() {
    let e = robot_v("v1")
        .render(&Message::text("  \n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`body.text` is empty"), "{e}");
}

// ---- limits ----

#[test]
fn robot_chinese_text_is_split_at_2048_bytes() {
    let text = "磁盘告警".repeat(300); // 1200 chars, 3600 bytes
    let b = bodies(
        &robot_v("v1"),
        &Message::text(text.clone()).with_mentions(Mentions {
            user_ids: vec!["u1".into()],
            ..Default::default()
        }),
    );
    assert_eq!(b.len(), 2);
    for part in &b {
        let c = part["text"]["content"].as_str().unwrap();
        assert!(cost(c, Counting::Utf8) <= 2048, "{} bytes", c.len());
    }
    assert!(b[0]["text"]["content"]
        .as_str()
        .unwrap()
        .ends_with(" (1/2)"));
    // Mentions on the first part only.
    assert_eq!(b[0]["text"]["mentioned_list"], json!(["u1"]));
    assert!(b[1]["text"].get("mentioned_list").is_none());
    let joined: String = b
        .iter()
        .map(|p| {
            p["text"]["content"]
                .as_str()
                .unwrap()
                .rsplit_once(" (")
                .unwrap()
                .0
                .to_string()
        })
        .collect();
    assert_eq!(joined, text);
}

#[test]
fn robot_chinese_markdown_is_truncated_at_4096_bytes_with_mentions_kept() {
    let cfg: WecomRobotConfig =
        serde_json::from_value(json!({"key": KEY, "overflow": {"mode": "truncate"}})).unwrap();
    let r = WecomRobot::new(&client(), cfg).unwrap();
    let msg = Message::markdown("t", "告".repeat(2000)).with_mentions(Mentions {
        user_ids: vec!["wangqing".into()],
        ..Default::default()
    });
    let b = bodies(&r, &msg);
    assert_eq!(b.len(), 1);
    let c = b[0]["markdown"]["content"].as_str().unwrap();
    assert!(cost(c, Counting::Utf8) <= 4096, "{} bytes", c.len());
    assert!(
        c.ends_with("…(truncated)\n<@wangqing>"),
        "{}",
        &c[c.len() - 40..]
    );
    // 4096 bytes exactly is not cut.
    let exact = "a".repeat(4096);
    let b = bodies(&r, &Message::markdown("t", exact.clone()));
    assert_eq!(b[0]["markdown"]["content"], exact.as_str());
}

// ---- classification ----

#[test]
fn every_code_in_the_table_classifies_as_its_class() {
    assert_table_classifies(CODES, classify);
    // The rate-limit code of robots waits a minute.
    let r = classify(&resp(
        200,
        r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
    ));
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: std::time::Duration::from_secs(60)
        }
    );
    assert_eq!(r.message, "api freq out of limit");
}

#[test]
fn answers_outside_the_table() {
    let r = classify(&resp(200, r#"{"errcode":99999,"errmsg":"new"}"#));
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.hint, None);
    let r = classify(&resp(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    assert!(r.is_complete_success());
    assert_eq!(r.status, Some(200));
    let r = classify(&resp(429, "slow down"));
    assert!(matches!(r.outcome, Outcome::RateLimited { .. }));
    let r = classify(&resp(502, "<html>bad gateway</html>"));
    assert_eq!(r.outcome, Outcome::Retry { after: None });
    let r = classify(&resp(200, "<html>proxy</html>"));
    assert_eq!(r.outcome, Outcome::Retry { after: None });
    let r = classify(&resp(200, r#"{"ok":true}"#));
    assert_eq!(r.outcome, Outcome::Retry { after: None });
    let r = classify(&resp(404, "<html>not found</html>"));
    assert_eq!(r.outcome, Outcome::Permanent);
    assert!(r.hint.unwrap().contains("base_url"));
}

#[test]
fn partial_failures_are_reported_per_recipient() {
    let r = classify(&resp(
        200,
        r#"{"errcode":0,"errmsg":"ok","invaliduser":"invalid1|invalid2","invalidparty":"7","invalidtag":"","unlicenseduser":"u9","msgid":"MSGID1"}"#,
    ));
    assert_eq!(r.outcome, Outcome::Delivered);
    assert!(!r.is_complete_success());
    assert_eq!(r.platform_message_id.as_deref(), Some("MSGID1"));
    let failed: Vec<_> = r
        .failed_recipients
        .iter()
        .map(|f| (f.recipient.as_str(), f.outcome))
        .collect();
    assert_eq!(
        failed,
        vec![
            ("invalid1", Outcome::Permanent),
            ("invalid2", Outcome::Permanent),
            ("party:7", Outcome::Permanent),
            ("u9", Outcome::Permanent),
        ]
    );
}

// ---- app ----

#[test]
fn app_text_envelope() {
    let a = app(json!({"to_party": ["2"], "duplicate_check_interval": 600}));
    let payloads = a.render(&Message::text("hi")).unwrap();
    assert_eq!(payloads[0].recipients, vec!["zhangsan", "lisi", "party:2"]);
    insta::assert_json_snapshot!(payloads[0].body, @r#"
    {
      "touser": "zhangsan|lisi",
      "toparty": "2",
      "msgtype": "text",
      "agentid": 1000002,
      "text": {
        "content": "hi"
      },
      "enable_duplicate_check": 1,
      "duplicate_check_interval": 600
    }
    "#);
    let req = a.request(&payloads[0], "TOKEN/+=");
    assert_eq!(
        req.url.as_str(),
        "https://qyapi.weixin.qq.com/cgi-bin/message/send?access_token=TOKEN%2F%2B%3D"
    );
    assert!(a.dedups_retries());
}

#[test]
fn app_message_types() {
    let a = app(json!({}));
    let one = |m: &Message| {
        let mut b = bodies(&a, m);
        assert_eq!(b.len(), 1);
        let mut b = b.remove(0);
        let o = b.as_object_mut().unwrap();
        for k in [
            "touser",
            "agentid",
            "enable_duplicate_check",
            "duplicate_check_interval",
        ] {
            o.shift_remove(k).unwrap();
        }
        b
    };
    let link = Message::new(Body::Link {
        text: "3 alerts".into(),
        url: "https://e.com/a".into(),
        pic_url: None,
    })
    .with_title("Alerts");
    let image = Message::new(Body::Image {
        image: ImageSource::Key("MEDIA_ID".into()),
    });
    let all = json!({
        "markdown": one(&Message::markdown("t", "**b**")),
        "link": one(&link),
        "card1": one(&card(1)),
        "card2": one(&card(2)),
        "card0": one(&card(0)),
        "news": one(&Message::new(Body::News { articles: articles(2) })),
        "image": one(&image),
        "template": one(&template_msg()),
    });
    insta::assert_json_snapshot!(all, @r#"
    {
      "markdown": {
        "msgtype": "markdown",
        "markdown": {
          "content": "**b**"
        }
      },
      "link": {
        "msgtype": "textcard",
        "textcard": {
          "title": "Alerts",
          "description": "3 alerts",
          "url": "https://e.com/a"
        }
      },
      "card1": {
        "msgtype": "textcard",
        "textcard": {
          "title": "High CPU",
          "description": "CPU 95% on web-1",
          "url": "https://e.com/b1",
          "btntxt": "b1"
        }
      },
      "card2": {
        "msgtype": "template_card",
        "template_card": {
          "card_type": "text_notice",
          "main_title": {
            "title": "High CPU"
          },
          "sub_title_text": "CPU 95% on web-1",
          "jump_list": [
            {
              "type": 1,
              "title": "b1",
              "url": "https://e.com/b1"
            },
            {
              "type": 1,
              "title": "b2",
              "url": "https://e.com/b2"
            }
          ],
          "card_action": {
            "type": 1,
            "url": "https://e.com/b1"
          }
        }
      },
      "card0": {
        "msgtype": "markdown",
        "markdown": {
          "content": "**High CPU**\nCPU 95% on web-1"
        }
      },
      "news": {
        "msgtype": "news",
        "news": {
          "articles": [
            {
              "title": "t1",
              "url": "https://e.com/1"
            },
            {
              "title": "t2",
              "url": "https://e.com/2"
            }
          ]
        }
      },
      "image": {
        "msgtype": "image",
        "image": {
          "media_id": "MEDIA_ID"
        }
      },
      "template": {
        "msgtype": "text",
        "text": {
          "content": "Alert\nhost: web-1\nstatus: firing\nhttps://e.com/a"
        }
      }
    }
    "#);
    let b64img = Message::new(Body::Image {
        image: ImageSource::Base64(b64(PNG)),
    });
    assert!(matches!(a.render(&b64img), Err(Error::Unsupported { .. })));
}

#[test]
fn app_textcard_fields_are_cut_to_their_limits() {
    let a = app(json!({}));
    let msg = Message::new(Body::Link {
        text: "描".repeat(400),
        url: "https://e.com".into(),
        pic_url: None,
    })
    .with_title("标".repeat(100));
    let b = bodies(&a, &msg);
    let card = &b[0]["textcard"];
    assert!(cost(card["title"].as_str().unwrap(), Counting::Utf8) <= 128);
    assert!(cost(card["description"].as_str().unwrap(), Counting::Utf8) <= 512);
    assert!(card["description"].as_str().unwrap().ends_with('…'));
}

#[test]
fn app_text_is_split_at_2048_bytes_for_each_batch() {
    let a = app(json!({}));
    let b = bodies(&a, &Message::text("告".repeat(1000)));
    assert_eq!(b.len(), 2);
    for p in &b {
        assert!(cost(p["text"]["content"].as_str().unwrap(), Counting::Utf8) <= 2048);
    }
}

#[test]
fn app_recipients_are_spread_over_requests() {
    let a = app(json!({}));
    let users: Vec<String> = (0..2500).map(|i| format!("u{i}")).collect();
    let mut recipients = users.clone();
    recipients.extend((0..150).map(|i| format!("party:{i}")));
    recipients.push("tag:9".into());
    recipients.push("u1".into()); // duplicate, sent once
    let p = a
        .render(&Message::text("x").with_recipients(recipients))
        .unwrap();
    assert_eq!(p.len(), 3);
    let count = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(|s| s.as_str())
            .map_or(0, |s| s.split('|').count())
    };
    assert_eq!(
        [
            count(&p[0].body, "touser"),
            count(&p[1].body, "touser"),
            count(&p[2].body, "touser")
        ],
        [1000, 1000, 500]
    );
    assert_eq!(
        [
            count(&p[0].body, "toparty"),
            count(&p[1].body, "toparty"),
            count(&p[2].body, "toparty")
        ],
        [100, 50, 0]
    );
    assert_eq!(p[0].body["totag"], "9");
    assert_eq!(p[0].recipients.len(), 1000 + 100 + 1);
    assert_eq!(p[2].recipients.len(), 500);
    let total: usize = p.iter().map(|x| x.recipients.len()).sum();
    assert_eq!(total, 2500 + 150 + 1);

    // @all covers everyone in one request.
    let p = a
        .render(&Message::text("x").with_recipients(vec![
            "u1".into(),
            "@all".into(),
            "party:1".into(),
        ]))
        .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].body["touser"], "@all");
    assert!(p[0].body.get("toparty").is_none());

    let none = app(json!({"recipients": []}));
    let e = none.render(&Message::text("x")).unwrap_err().to_string();
    assert!(
        e.contains("no recipients") && e.contains("`to_party`"),
        "{e}"
    );
}

#[test]
fn app_raw_is_completed_with_agent_and_recipients() {
    let a = app(json!({}));
    let msg = Message::new(Body::Raw {
        platform: None,
        payload: json!({"msgtype": "file", "file": {"media_id": "1Yv-zXfHjSjU"}}),
    });
    insta::assert_json_snapshot!(bodies(&a, &msg), @r#"
    [
      {
        "touser": "zhangsan|lisi",
        "msgtype": "file",
        "file": {
          "media_id": "1Yv-zXfHjSjU"
        },
        "agentid": 1000002,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 1800
      }
    ]
    "#);
    let addressed = Message::new(Body::Raw {
        platform: None,
        payload: json!({"touser": "a|b", "totag": "3", "msgtype": "text", "agentid": 7, "text": {"content": "x"}}),
    });
    let p = a.render(&addressed).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].recipients, vec!["a", "b", "tag:3"]);
    assert_eq!(p[0].body["agentid"], 7);
}

#[test]
fn app_config_errors_name_the_field() {
    let build = |v: serde_json::Value| {
        let mut v = v;
        v["type"] = "wecom_app".into();
        client().build(&v)
    };
    let m = config_err(build(json!({"corp_secret": "s", "agent_id": 1})));
    assert!(m.contains("missing field `corp_id`"), "{m}");
    let m = config_err(build(
        json!({"corp_id": " ", "corp_secret": "s", "agent_id": 1}),
    ));
    assert!(m.contains("`corp_id` is empty"), "{m}");
    let m = config_err(build(
        json!({"corp_id": "ww1", "corp_secret": "", "agent_id": 1}),
    ));
    assert!(m.contains("`corp_secret` is empty"), "{m}");
    let m = config_err(build(
        json!({"corp_id": "ww1", "corp_secret": "s", "agent_id": "abc"}),
    ));
    assert!(m.contains("agent_id"), "{m}");
    let m = config_err(build(
        json!({"corp_id": "ww1", "corp_secret": "s", "agent_id": 1, "duplicate_check_interval": 0}),
    ));
    assert!(m.contains("`duplicate_check_interval`"), "{m}");
    // A numeric string is accepted for agent_id (env interpolation yields strings).
    let d = build(json!({"corp_id": "ww1", "corp_secret": "topsecret", "agent_id": "1000002"}))
        .unwrap();
    assert_eq!(d.id(), "wecom_app:ww1:1000002");
    assert!(!format!("{d:?}").contains("topsecret"));
}

#[test]
fn app_token_request() {
    let a = app(json!({}));
    let req = a.token_source().request();
    assert_eq!(req.method, http::Method::GET);
    assert_eq!(
        req.url.as_str(),
        "https://qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=ww1234567890abcdef&corpsecret=s3cr3t-app"
    );
    use crate::token::TokenSource;
    let key = a.token_source().cache_key();
    assert!(key.starts_with("wecom:ww1234567890abcdef:") && !key.contains("s3cr3t"));
}

// ---- after the send: button cards, update, recall ----

fn actions() -> Vec<crate::lifecycle::Action> {
    use crate::lifecycle::{Action, ActionStyle};
    vec![
        Action {
            id: "ack".into(),
            text: "认领".into(),
            style: ActionStyle::Primary,
        },
        Action {
            id: "resolve".into(),
            text: "已解决".into(),
            style: ActionStyle::Danger,
        },
    ]
}

fn sent(code: Option<&str>) -> crate::lifecycle::SentPart {
    crate::lifecycle::SentPart {
        platform_message_id: "msgid-1".into(),
        update_token: code.map(str::to_string),
        sent_at_ms: 0,
        recipients: vec!["zhangsan".into(), "lisi".into()],
    }
}

#[test]
fn actions_make_a_button_card_whose_keys_name_message_and_action() {
    let a = app(json!({}));
    let msg = Message::markdown("HighCPU firing", "**web-3** at 97%")
        .with_id("alert-1")
        .with_actions(actions());
    let b = bodies(&a, &msg);
    assert_eq!(b.len(), 1);
    let card = &b[0]["template_card"];
    assert_eq!(b[0]["msgtype"], "template_card");
    assert_eq!(card["card_type"], "button_interaction");
    assert_eq!(card["main_title"]["title"], "HighCPU firing");
    assert_eq!(card["sub_title_text"], "**web-3** at 97%");
    assert_eq!(
        card["task_id"],
        super::task_id("alert-1", &["zhangsan".into(), "lisi".into()])
    );
    assert_eq!(
        card["button_list"],
        json!([
            {"text": "认领", "style": 1, "key": r#"{"imrelay_message":"alert-1","imrelay_action":"ack"}"#},
            {"text": "已解决", "style": 3, "key": r#"{"imrelay_message":"alert-1","imrelay_action":"resolve"}"#},
        ])
    );
    // Without an id a click could not name the message: the usual rendering.
    let plain = bodies(&a, &Message::markdown("t", "x").with_actions(actions()));
    assert_eq!(plain[0]["msgtype"], "markdown");
}

#[test]
fn the_response_code_of_a_send_is_the_update_token() {
    let r = classify(&resp(
        200,
        r#"{"errcode":0,"errmsg":"ok","invaliduser":"","msgid":"vcT8gGc-7dFb4bxT35ONjBDz901sLlXPZw1DAMC_Gc26qRpK-AK5sTJkkb0128t","response_code":"bq3CQ5dJU8WIbe2G6uZ1nqp6t-iBU5r8GW1Q-pOPu4Lo4Qk3dOiKAvDM1RvT8O5MhQjSmxVUHxO1yjVbbsgTKwsY3dmSk8lSpkFUCbaRAlSU"}"#,
    ));
    assert_eq!(r.outcome, Outcome::Delivered);
    assert!(r.update_token.as_deref().unwrap().starts_with("bq3CQ5dJ"));
    assert!(r
        .platform_message_id
        .as_deref()
        .unwrap()
        .starts_with("vcT8gGc"));
}

#[test]
fn an_update_replaces_the_whole_card_for_everyone_with_the_code() {
    let a = app(json!({}));
    let msg = Message::markdown("HighCPU", "acknowledged by 张三")
        .with_id("alert-1")
        .with_actions(actions());
    let body = a.update_body(&sent(Some("rc-1")), &msg).unwrap();
    assert_eq!(body["response_code"], "rc-1");
    assert_eq!(body["atall"], 1);
    assert_eq!(body["agentid"], 1000002);
    assert_eq!(body["template_card"]["card_type"], "button_interaction");
    // The task id of the card sent to the same recipients.
    assert_eq!(
        body["template_card"]["task_id"],
        super::task_id("alert-1", &["zhangsan".into(), "lisi".into()])
    );
    // A card closed without actions shows a grey button with the title.
    let closed = a
        .update_body(
            &sent(Some("rc-2")),
            &Message::markdown("已解决", "ok").with_id("alert-1"),
        )
        .unwrap();
    assert_eq!(closed["template_card"]["replace_text"], "已解决");
    assert!(closed["template_card"].get("button_list").is_none());
    // Without a response_code there is nothing to update with.
    assert!(matches!(
        a.update_body(&sent(None), &msg),
        Err(Error::OperationUnsupported { .. })
    ));
    assert_eq!(
        WecomApp::recall_body(&sent(None)),
        json!({"msgid": "msgid-1"})
    );
}

#[test]
fn lifecycle_of_app_and_robot() {
    let l = app(json!({})).lifecycle();
    assert!(l.card_actions);
    let h = 3_600_000;
    assert!(l.can_recall(0, 24 * h).is_ok());
    assert!(l.can_recall(0, 24 * h + 1).is_err());
    assert!(l.updates_in_place(0, 72 * h));
    assert!(!l.updates_in_place(0, 72 * h + 1));
    let r = robot(json!({"key": KEY})).unwrap().lifecycle();
    assert!(!r.card_actions && !r.updates_in_place(0, 0));
    assert_eq!(
        r.can_recall(0, 0).unwrap_err(),
        "group robots have no recall API"
    );
}
