//! Rendering, validation and request signing of the Alibaba Cloud
//! destinations (the signer's published vector is in `sign`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::message::{Body, Message};

fn client() -> Client {
    Client::new().unwrap()
}

fn sms(extra: Value) -> Arc<dyn Destination> {
    let mut cfg = json!({
        "type": "aliyun_sms", "access_key_id": "LTAI-test", "access_key_secret": "s3cret",
        "sign_name": "告警平台", "template_code": "SMS_100", "template_param": "content",
        "phone_numbers": ["13800000000"]
    });
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    client().build(&cfg).unwrap()
}

fn voice() -> Arc<dyn Destination> {
    client()
        .build(&json!({
            "type": "aliyun_voice", "access_key_id": "LTAI-test", "access_key_secret": "s3cret",
            "tts_code": "TTS_200", "template_param": "text", "play_times": 2,
            "phone_numbers": ["13800000000", "+8613900000000"]
        }))
        .unwrap()
}

fn param(p: &Payload, key: &str, name: &str) -> String {
    let raw = p.body[key].as_str().unwrap();
    serde_json::from_str::<Value>(raw).unwrap()[name]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn text_goes_into_the_configured_variable_cut_to_35_characters() {
    let msg = Message::text(
        "CPU 使用率超过 95%，持续 10 分钟，主机 web-01 已自动摘除流量，请尽快处理并确认",
    )
    .with_title("严重告警");
    let p = &sms(json!({})).render(&msg).unwrap()[0];
    assert_eq!(p.body["TemplateCode"], "SMS_100");
    assert_eq!(p.body["SignName"], "告警平台");
    let text = param(p, "TemplateParam", "content");
    assert_eq!(text.chars().count(), 35);
    assert!(text.starts_with("严重告警\nCPU 使用率超过"), "{text}");
    assert!(text.ends_with('…'));
    // Short text is sent whole.
    let p = &sms(json!({})).render(&Message::text("磁盘满")).unwrap()[0];
    assert_eq!(param(p, "TemplateParam", "content"), "磁盘满");
}

#[test]
fn cutting_keeps_whole_characters() {
    let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
    let text = format!("ab{family}cdef");
    // Room for "ab" and the ellipsis only: the family emoji is not split.
    assert_eq!(cut_chars(&text, 4), "ab…");
    assert_eq!(cut_chars("abc", 3), "abc");
}

#[test]
fn a_template_message_uses_its_own_template_and_values() {
    let mut data = BTreeMap::new();
    data.insert("host".to_string(), "web-01".to_string());
    data.insert("level".to_string(), "P1".to_string());
    let msg = Message::new(Body::Template {
        template_id: "SMS_999".into(),
        data,
        url: None,
    });
    let p = &sms(json!({})).render(&msg).unwrap()[0];
    assert_eq!(p.body["TemplateCode"], "SMS_999");
    let v: Value = serde_json::from_str(p.body["TemplateParam"].as_str().unwrap()).unwrap();
    assert_eq!(v, json!({"host": "web-01", "level": "P1"}));
}

#[test]
fn text_without_a_template_param_is_refused_naming_the_key() {
    let d = sms(json!({"template_param": null}));
    let err = d.render(&Message::text("x")).unwrap_err().to_string();
    assert!(err.contains("`template_param`"), "{err}");
}

#[test]
fn numbers_are_normalised_deduplicated_and_split_by_1000() {
    let mut numbers: Vec<String> = (0..1500).map(|i| format!("1380000{i:04}")).collect();
    numbers.push("+86 138-0000-0000".into()); // the first one again
    let msg = Message::text("x").with_recipients(numbers);
    let parts = sms(json!({})).render(&msg).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].recipients.len(), 1000);
    assert_eq!(parts[1].recipients.len(), 500);
    assert_eq!(
        parts[0].body["PhoneNumbers"]
            .as_str()
            .unwrap()
            .split(',')
            .count(),
        1000
    );
    assert!(parts[0].recipients[0] == "13800000000");
    assert_eq!(
        normalize_phone("+85212345678").as_deref(),
        Some("85212345678")
    );
    assert_eq!(
        normalize_phone("008613800000000").as_deref(),
        Some("13800000000")
    );
}

#[test]
fn a_bad_number_is_an_error_naming_it() {
    for bad in ["12345", "abc", "+86123", "1380000000x", ""] {
        let msg = Message::text("x").with_recipients(vec!["13800000000".into(), bad.into()]);
        let err = sms(json!({})).render(&msg).unwrap_err().to_string();
        assert!(
            err.contains(&format!("`{bad}`")) && err.contains("`recipients`"),
            "{err}"
        );
    }
    let err = client()
        .build(&json!({
            "type": "aliyun_sms", "access_key_id": "a", "access_key_secret": "b",
            "sign_name": "s", "template_code": "SMS_1", "phone_numbers": ["999"]
        }))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`phone_numbers`") && err.contains("`999`"),
        "{err}"
    );
}

#[test]
fn unknown_config_keys_and_empty_secrets_are_refused() {
    let err = client()
        .build(&json!({
            "type": "aliyun_sms", "access_key_id": "a", "access_key_secret": " ",
            "sign_name": "s", "template_code": "SMS_1"
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`access_key_secret`"), "{err}");
    let err = client()
        .build(&json!({
            "type": "aliyun_sms", "access_key_id": "a", "access_key_secret": "b",
            "sign_name": "s", "template_code": "SMS_1", "templatecode": "x"
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("templatecode"), "{err}");
}

#[test]
fn a_call_goes_to_one_number_per_payload() {
    let parts = voice().render(&Message::text("数据库主库宕机")).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].recipients, vec!["13800000000".to_string()]);
    assert_eq!(parts[1].recipients, vec!["13900000000".to_string()]);
    assert_eq!(parts[1].body["CalledNumber"], "13900000000");
    assert_eq!(parts[0].body["TtsCode"], "TTS_200");
    assert_eq!(parts[0].body["PlayTimes"], "2");
    assert_eq!(param(&parts[0], "TtsParam", "text"), "数据库主库宕机");
    assert_eq!(voice().recipient_rate_limits()[2].count, 20);
}

#[test]
fn images_and_raw_payloads_are_refused() {
    let img = Message::new(Body::Image {
        image: crate::message::ImageSource::Url("https://x/y.png".into()),
    });
    assert!(matches!(
        sms(json!({})).render(&img),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn the_request_is_a_signed_form_post_the_signer_agrees_with() {
    let client = client();
    let d = AliyunSms::new(
        &client,
        serde_json::from_value(json!({
            "access_key_id": "LTAI-test", "access_key_secret": "s3cret",
            "sign_name": "告警平台", "template_code": "SMS_100", "template_param": "content"
        }))
        .unwrap(),
    )
    .unwrap();
    let p = &d
        .render(&Message::text("hi").with_recipients(vec!["13800000000".into()]))
        .unwrap()[0];
    let req = d.request(p, 1_499_827_339_000, "nonce-1");
    assert_eq!(req.method, http::Method::POST);
    assert_eq!(req.url.as_str(), "https://dysmsapi.aliyuncs.com/");
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(req.body.as_deref().unwrap())
        .into_owned()
        .collect();
    assert_eq!(form["Action"], "SendSms");
    assert_eq!(form["Version"], "2017-05-25");
    assert_eq!(form["Timestamp"], "2017-07-12T02:42:19Z");
    assert_eq!(form["SignatureNonce"], "nonce-1");
    assert_eq!(form["PhoneNumbers"], "13800000000");
    assert_eq!(form["SignName"], "告警平台");
    assert_eq!(form["Signature"], sign::signature("s3cret", "POST", &form));
    // The secret itself never travels.
    assert!(!String::from_utf8_lossy(req.body.as_deref().unwrap()).contains("s3cret"));
    assert!(!format!("{d:?}").contains("s3cret"));
}

#[test]
fn limits_are_declared() {
    let d = sms(json!({}));
    assert_eq!(d.rate_limits(), vec![Quota::per_second(5000)]);
    let per = d.recipient_rate_limits();
    assert_eq!(
        per.iter()
            .map(|q| (q.count, q.per.as_secs()))
            .collect::<Vec<_>>(),
        vec![(1, 60), (5, 3600), (10, 86_400)]
    );
}
