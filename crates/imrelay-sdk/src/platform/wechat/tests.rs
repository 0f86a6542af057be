use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::codes::{classify, token_error, CODES};
use super::template::{WechatTemplate, WechatTemplateConfig};
use crate::destination::{dedup_key, Client, Destination};
use crate::message::{Body, Message, Platform};
use crate::outcome::Outcome;
use crate::platform::testing::{assert_table_classifies, resp};
use crate::token::TokenSource;
use crate::Error;

fn dest(extra: serde_json::Value) -> WechatTemplate {
    let mut cfg = json!({"app_id": "wx0123456789abcdef", "app_secret": "appsecret-xyz",
        "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY", "recipients": ["oOPENID1", "oOPENID2"]});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let cfg: WechatTemplateConfig = serde_json::from_value(cfg).unwrap();
    WechatTemplate::new(&Client::new().unwrap(), cfg).unwrap()
}

fn template(template_id: &str, url: Option<&str>) -> Message {
    let mut data = BTreeMap::new();
    data.insert("keyword1".to_string(), "巧克力".to_string());
    data.insert("keyword2".to_string(), "39.8元".to_string());
    Message::new(Body::Template {
        template_id: template_id.into(),
        data,
        url: url.map(String::from),
    })
}

#[test]
fn template_message_one_request_per_openid_with_client_msg_id() {
    let d = dest(json!({"url": "http://weixin.qq.com/download",
        "miniprogram": {"appid": "xiaochengxuappid12345", "pagepath": "index?foo=bar"}}));
    let msg = template("", None).with_id("alert-42");
    let p = d.render(&msg).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0].recipients, vec!["oOPENID1"]);
    assert_eq!(p[1].recipients, vec!["oOPENID2"]);
    let k1 = dedup_key(Some("alert-42"), 0, "oOPENID1").unwrap();
    assert_eq!(p[0].dedup_key.as_deref(), Some(k1.as_str()));
    assert_eq!(p[0].body["client_msg_id"], k1.as_str());
    assert_ne!(p[0].dedup_key, p[1].dedup_key);
    // The same message renders the same keys on a retry.
    assert_eq!(d.render(&msg).unwrap(), p);
    insta::assert_json_snapshot!(p[0].body, @r#"
    {
      "touser": "oOPENID1",
      "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
      "url": "http://weixin.qq.com/download",
      "miniprogram": {
        "appid": "xiaochengxuappid12345",
        "pagepath": "index?foo=bar"
      },
      "data": {
        "keyword1": {
          "value": "巧克力"
        },
        "keyword2": {
          "value": "39.8元"
        }
      },
      "client_msg_id": "d29abf07-864b-5f5d-b859-3e7c0fc88ac4"
    }
    "#);
    let req = d.request(&p[0], "ACCESS_TOKEN");
    assert_eq!(
        req.url.as_str(),
        "https://api.weixin.qq.com/cgi-bin/message/template/send?access_token=ACCESS_TOKEN"
    );
    assert!(d.dedups_retries());
}

#[test]
fn message_fields_win_over_config_defaults_and_no_id_means_no_dedup() {
    let d = dest(json!({"url": "https://default"}));
    let msg =
        template("OTHER_TEMPLATE", Some("https://override")).with_recipients(vec!["oX".into()]);
    let p = d.render(&msg).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].body["template_id"], "OTHER_TEMPLATE");
    assert_eq!(p[0].body["url"], "https://override");
    assert_eq!(p[0].body["touser"], "oX");
    assert!(p[0].body.get("client_msg_id").is_none());
    assert_eq!(p[0].dedup_key, None);
}

#[test]
fn subscribe_message() {
    let d = dest(json!({"kind": "subscribe", "page": "mp.weixin.qq.com",
        "miniprogram": {"appid": "APPID", "pagepath": "index?foo=bar"}}));
    let p = d
        .render(
            &template("TEMPLATE_ID", None)
                .with_id("m1")
                .with_recipients(vec!["OPENID".into()]),
        )
        .unwrap();
    insta::assert_json_snapshot!(p[0].body, @r#"
    {
      "touser": "OPENID",
      "template_id": "TEMPLATE_ID",
      "page": "mp.weixin.qq.com",
      "miniprogram": {
        "appid": "APPID",
        "pagepath": "index?foo=bar"
      },
      "data": {
        "keyword1": {
          "value": "巧克力"
        },
        "keyword2": {
          "value": "39.8元"
        }
      }
    }
    "#);
    assert_eq!(p[0].dedup_key, None);
    assert!(!d.dedups_retries());
    assert_eq!(
        d.request(&p[0], "T").url.as_str(),
        "https://api.weixin.qq.com/cgi-bin/message/subscribe/bizsend?access_token=T"
    );
}

#[test]
fn free_text_is_refused_with_an_explanation() {
    let d = dest(json!({}));
    for msg in [Message::text("hi"), Message::markdown("t", "**hi**")] {
        match d.render(&msg) {
            Err(e @ Error::Unsupported { .. }) => {
                let s = e.to_string();
                assert!(s.contains("template_id") && s.contains("fields"), "{s}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn template_errors_name_the_field() {
    let no_default = {
        let cfg: WechatTemplateConfig = serde_json::from_value(
            json!({"app_id": "wx1", "app_secret": "s", "recipients": ["o1"]}),
        )
        .unwrap();
        WechatTemplate::new(&Client::new().unwrap(), cfg).unwrap()
    };
    let e = no_default
        .render(&template("", None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`body.template_id`") && e.contains("`template_id`"),
        "{e}"
    );
    let empty = Message::new(Body::Template {
        template_id: "T".into(),
        data: BTreeMap::new(),
        url: None,
    });
    assert!(no_default
        .render(&empty)
        .unwrap_err()
        .to_string()
        .contains("`body.data` is empty"));
    let d = dest(json!({"recipients": []}));
    assert!(d
        .render(&template("T", None))
        .unwrap_err()
        .to_string()
        .contains("no recipients"));
}

#[test]
fn raw_gets_touser_template_and_client_msg_id() {
    let d = dest(json!({}));
    let msg = Message::new(Body::Raw {
        platform: Some(Platform::Wechat),
        payload: json!({"data": {"thing1": {"value": "x"}}}),
    })
    .with_id("r1");
    let p = d.render(&msg).unwrap();
    assert_eq!(p.len(), 2);
    assert_eq!(p[1].body["touser"], "oOPENID2");
    assert_eq!(
        p[1].body["template_id"],
        "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY"
    );
    assert_eq!(
        p[1].body["client_msg_id"],
        dedup_key(Some("r1"), 0, "oOPENID2").unwrap().as_str()
    );
    let addressed = Message::new(Body::Raw {
        platform: None,
        payload: json!({"touser": "oZ", "template_id": "T", "client_msg_id": "mine", "data": {}}),
    });
    let p = d.render(&addressed).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].recipients, vec!["oZ"]);
    assert_eq!(p[0].dedup_key.as_deref(), Some("mine"));
    let other = Message::new(Body::Raw {
        platform: Some(Platform::Feishu),
        payload: json!({}),
    });
    assert!(matches!(d.render(&other), Err(Error::Unsupported { .. })));
}

#[test]
fn config_errors_name_the_field() {
    let build = |v: serde_json::Value| {
        let mut v = v;
        v["type"] = "wechat_template".into();
        Client::new().unwrap().build(&v)
    };
    let err = |v| match build(v) {
        Err(Error::Config(m)) => m,
        other => panic!("expected a config error, got {other:?}"),
    };
    assert!(err(json!({"app_secret": "s"})).contains("missing field `app_id`"));
    assert!(err(json!({"app_id": "", "app_secret": "s"})).contains("`app_id` is empty"));
    assert!(err(json!({"app_id": "wx1", "app_secret": " "})).contains("`app_secret` is empty"));
    assert!(
        err(json!({"app_id": "wx1", "app_secret": "s", "kind": "template", "page": "p"}))
            .contains("`page`")
    );
    assert!(
        err(json!({"app_id": "wx1", "app_secret": "s", "kind": "subscribe", "url": "u"}))
            .contains("`url`")
    );
    assert!(err(json!({"app_id": "wx1", "app_secret": "s", "kind": "custom"})).contains("custom"));
    let d = build(json!({"app_id": "wx1", "app_secret": "topsecret"})).unwrap();
    assert_eq!(d.id(), "wechat_template:wx1:template");
    assert!(!format!("{d:?}").contains("topsecret"));
}

#[test]
fn stable_token_request() {
    let d = dest(json!({}));
    let req = d.token_source().request(false);
    assert_eq!(
        req.url.as_str(),
        "https://api.weixin.qq.com/cgi-bin/stable_token"
    );
    insta::assert_json_snapshot!(req.json_body().unwrap(), @r#"
    {
      "grant_type": "client_credential",
      "appid": "wx0123456789abcdef",
      "secret": "appsecret-xyz",
      "force_refresh": false
    }
    "#);
    assert_eq!(
        d.token_source().request(true).json_body().unwrap()["force_refresh"],
        true
    );
    let key = d.token_source().cache_key();
    assert!(key.starts_with("wechat:wx0123456789abcdef:") && !key.contains("appsecret"));
}

#[test]
fn every_code_in_the_table_classifies_as_its_class() {
    assert_table_classifies(CODES, classify);
    let r = classify(&resp(
        200,
        r#"{"errcode":45009,"errmsg":"reach max api daily quota limit"}"#,
    ));
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(3600)
        }
    );
    let r = classify(&resp(
        200,
        r#"{"errcode":42001,"errmsg":"access_token expired rid: 6512"}"#,
    ));
    assert_eq!(r.outcome, Outcome::RefreshToken);
}

#[test]
fn answers_outside_the_table() {
    let r = classify(&resp(
        200,
        r#"{"errcode":0,"errmsg":"ok","msgid":200228332}"#,
    ));
    assert!(r.is_complete_success());
    assert_eq!(r.platform_message_id.as_deref(), Some("200228332"));
    let r = classify(&resp(200, r#"{"errcode":88888,"errmsg":"?"}"#));
    assert_eq!(r.outcome, Outcome::Permanent);
    assert!(matches!(
        classify(&resp(429, "")).outcome,
        Outcome::RateLimited { .. }
    ));
    assert_eq!(
        classify(&resp(503, "busy")).outcome,
        Outcome::Retry { after: None }
    );
    assert_eq!(
        classify(&resp(200, "<html>")).outcome,
        Outcome::Retry { after: None }
    );
    assert_eq!(
        classify(&resp(200, "[1]")).outcome,
        Outcome::Retry { after: None }
    );
    assert_eq!(
        classify(&resp(403, "<html>forbidden</html>")).outcome,
        Outcome::Permanent
    );
}

#[test]
fn token_errors_are_permanent_not_refresh() {
    // 40001 at the token endpoint means a wrong secret: refreshing cannot help.
    let r = token_error(
        40001,
        &json!({"errcode": 40001, "errmsg": "invalid credential"}),
        200,
    );
    assert_eq!(r.outcome, Outcome::Permanent);
    assert!(r.hint.unwrap().contains("`app_secret`"));
    let r = token_error(
        40125,
        &json!({"errcode": 40125, "errmsg": "invalid appsecret"}),
        200,
    );
    assert_eq!(r.outcome, Outcome::Permanent);
    let r = token_error(-1, &json!({"errcode": -1, "errmsg": "system error"}), 200);
    assert_eq!(r.outcome, Outcome::Retry { after: None });
}

#[test]
fn a_non_2xx_json_object_without_errcode_is_not_a_delivery() {
    let r = classify(&resp(403, r#"{"message":"forbidden by proxy"}"#));
    assert_eq!(r.outcome, Outcome::Permanent);
    assert!(
        r.hint.as_deref().unwrap_or("").contains("base_url"),
        "{r:?}"
    );
    let ok = classify(&resp(200, r#"{"errcode":0,"errmsg":"ok","msgid":7}"#));
    assert!(ok.outcome.is_delivered());
}
