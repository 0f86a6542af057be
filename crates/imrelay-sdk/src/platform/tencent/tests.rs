//! Rendering, validation and request signing of the Tencent Cloud
//! destinations (the signer's published vector is in `sign`).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;
use crate::message::{Body, Message};

fn client() -> Client {
    Client::new().unwrap()
}

fn sms() -> Arc<dyn Destination> {
    client()
        .build(&json!({
            "type": "tencent_sms", "secret_id": "AKID-test", "secret_key": "k3y",
            "sms_sdk_app_id": 1400006666, "sign_name": "告警平台", "template_id": "1110",
            "phone_numbers": ["13800000000"]
        }))
        .unwrap()
}

#[test]
fn text_is_the_one_parameter_cut_to_6_characters_with_the_ellipsis() {
    let p = &sms()
        .render(&Message::text("CPU 95%").with_title("告警"))
        .unwrap()[0];
    assert_eq!(p.body["TemplateId"], "1110");
    assert_eq!(p.body["SmsSdkAppId"], "1400006666");
    assert_eq!(p.body["SignName"], "告警平台");
    assert_eq!(p.body["TemplateParamSet"], json!(["告警\nCP…"]));
    assert_eq!(p.body["PhoneNumberSet"], json!(["+8613800000000"]));
}

#[test]
fn template_values_follow_their_numeric_keys() {
    let mut data = BTreeMap::new();
    for (k, v) in [("10", "ten"), ("2", "two"), ("1", "one")] {
        data.insert(k.to_string(), v.to_string());
    }
    let msg = Message::new(Body::Template {
        template_id: "2220".into(),
        data,
        url: None,
    });
    let p = &sms().render(&msg).unwrap()[0];
    assert_eq!(p.body["TemplateId"], "2220");
    // Numerically, not as strings ("10" < "2").
    assert_eq!(p.body["TemplateParamSet"], json!(["one", "two", "ten"]));
}

#[test]
fn numbers_are_e164_and_split_by_200() {
    assert_eq!(
        normalize_phone("13800000000").as_deref(),
        Some("+8613800000000")
    );
    assert_eq!(
        normalize_phone("8613800000000").as_deref(),
        Some("+8613800000000")
    );
    assert_eq!(
        normalize_phone("+85212345678").as_deref(),
        Some("+85212345678")
    );
    assert_eq!(normalize_phone("12345"), None);
    let numbers: Vec<String> = (0..450).map(|i| format!("1390000{i:04}")).collect();
    let parts = sms()
        .render(&Message::text("x").with_recipients(numbers))
        .unwrap();
    assert_eq!(
        parts.iter().map(|p| p.recipients.len()).collect::<Vec<_>>(),
        vec![200, 200, 50]
    );
    assert_eq!(
        parts[2].body["PhoneNumberSet"].as_array().unwrap().len(),
        50
    );
}

#[test]
fn mainland_and_other_numbers_go_in_separate_requests() {
    let msg = Message::text("x").with_recipients(vec![
        "+85212345678".into(),
        "13800000000".into(),
        "+14155550100".into(),
    ]);
    let parts = sms().render(&msg).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].recipients, vec!["+8613800000000".to_string()]);
    assert_eq!(
        parts[1].body["PhoneNumberSet"],
        json!(["+85212345678", "+14155550100"])
    );
}

#[test]
fn mainland_numbers_need_a_sign_name() {
    let d = client()
        .build(&json!({
            "type": "tencent_sms", "secret_id": "a", "secret_key": "b",
            "sms_sdk_app_id": "1400006666", "template_id": "1110"
        }))
        .unwrap();
    let err = d
        .render(&Message::text("x").with_recipients(vec!["13800000000".into()]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`sign_name`"), "{err}");
    // Abroad, a signature is optional.
    assert!(d
        .render(&Message::text("x").with_recipients(vec!["+85212345678".into()]))
        .is_ok());
}

#[test]
fn a_bad_number_is_an_error_naming_it() {
    let msg = Message::text("x").with_recipients(vec!["+86138".into()]);
    let err = sms().render(&msg).unwrap_err().to_string();
    assert!(
        err.contains("`+86138`") && err.contains("`recipients`"),
        "{err}"
    );
}

#[test]
fn a_call_goes_to_one_number_per_payload() {
    let d = client()
        .build(&json!({
            "type": "tencent_voice", "secret_id": "AKID-test", "secret_key": "k3y",
            "voice_sdk_app_id": "1400001111", "template_id": "3330", "play_times": 2
        }))
        .unwrap();
    let msg = Message::text("数据库主库宕机，请立即处理")
        .with_recipients(vec!["13800000000".into(), "+8613900000000".into()]);
    let parts = d.render(&msg).unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1].recipients, vec!["+8613900000000".to_string()]);
    assert_eq!(parts[1].body["CalledNumber"], "+8613900000000");
    assert_eq!(parts[0].body["VoiceSdkAppid"], "1400001111");
    assert_eq!(parts[0].body["PlayTimes"], 2);
    // No documented voice variable limit: the text is whole.
    assert_eq!(
        parts[0].body["TemplateParamSet"],
        json!(["数据库主库宕机，请立即处理"])
    );
    let err = client()
        .build(&json!({
            "type": "tencent_voice", "secret_id": "a", "secret_key": "b",
            "voice_sdk_app_id": "1", "template_id": "3", "play_times": 4
        }))
        .unwrap_err()
        .to_string();
    assert!(err.contains("`play_times`"), "{err}");
}

#[test]
fn the_request_carries_the_tc3_headers_the_signer_agrees_with() {
    let client = client();
    let d = TencentSms::new(
        &client,
        serde_json::from_value(json!({
            "secret_id": "AKID-test", "secret_key": "k3y", "sms_sdk_app_id": "1400006666",
            "sign_name": "告警平台", "template_id": "1110", "base_url": "http://127.0.0.1:9000"
        }))
        .unwrap(),
    )
    .unwrap();
    let p = &d
        .render(&Message::text("hi").with_recipients(vec!["13800000000".into()]))
        .unwrap()[0];
    let req = d.request(p, 1_551_113_065_123);
    let header = |n: &str| {
        req.headers
            .iter()
            .find(|(k, _)| k.as_str() == n)
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(header("x-tc-action"), "SendSms");
    assert_eq!(header("x-tc-version"), "2021-01-11");
    assert_eq!(header("x-tc-timestamp"), "1551113065");
    assert_eq!(header("x-tc-region"), "ap-guangzhou");
    assert_eq!(header("content-type"), sign::CONTENT_TYPE);
    let body = req.body.clone().unwrap();
    assert_eq!(
        header("authorization"),
        sign::authorization(
            "AKID-test",
            "k3y",
            "sms",
            "127.0.0.1:9000",
            1_551_113_065,
            &body
        )
    );
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(sent, p.body);
    assert!(!format!("{d:?}").contains("k3y"));
}

#[test]
fn limits_are_declared() {
    let d = sms();
    assert_eq!(d.rate_limits(), vec![Quota::per_second(3000)]);
    assert_eq!(
        d.recipient_rate_limits()
            .iter()
            .map(|q| (q.count, q.per.as_secs()))
            .collect::<Vec<_>>(),
        vec![(1, 30), (10, 86_400)]
    );
}
