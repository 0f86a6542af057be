//! The Alibaba Cloud and Tencent Cloud phone destinations of the SDK against
//! the running mock: delivery (read back per phone over `/_mock/messages`),
//! signatures refused with the real codes, stale timestamps, a replayed nonce,
//! the per-number limits and refused numbers.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use imrelay_mock::{AppConfig, MockConfig, MockPlatform, MockServer, SignatureCheck};
use imrelay_sdk::clock::FixedClock;
use imrelay_sdk::outcome::{Code, Outcome};
use imrelay_sdk::platform::aliyun::{AliyunSms, AliyunSmsConfig};
use imrelay_sdk::{deliver, Client, ClientOptions, Destination, Message};
use serde_json::{json, Value};

use crate::common::{http, log, send_one, start};

const AK: &str = "LTAI-mock-key";
const AK_SECRET: &str = "aliyun-secret-1";
const SECRET_ID: &str = "AKID-mock-id";
const SECRET_KEY: &str = "tencent-key-1";

async fn server() -> MockServer {
    start(
        MockConfig::default()
            .with_app(AppConfig::new(MockPlatform::Aliyun, AK, AK_SECRET))
            .with_app(AppConfig::new(MockPlatform::Tencent, SECRET_ID, SECRET_KEY)),
    )
    .await
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A client whose clock is `skew` behind the mock's.
fn client_behind(skew: Duration) -> Client {
    Client::with_options(ClientOptions {
        clock: Arc::new(FixedClock::new(now_ms() - skew.as_millis() as i64)),
        ..Default::default()
    })
    .unwrap()
}

fn aliyun_sms(client: &Client, server: &MockServer, secret: &str) -> Arc<dyn Destination> {
    client
        .build(&json!({
            "type": "aliyun_sms", "base_url": server.base_url(),
            "access_key_id": AK, "access_key_secret": secret,
            "sign_name": "告警平台", "template_code": "SMS_100", "template_param": "content"
        }))
        .unwrap()
}

fn tencent_sms(client: &Client, server: &MockServer, key: &str) -> Arc<dyn Destination> {
    client
        .build(&json!({
            "type": "tencent_sms", "base_url": server.base_url(),
            "secret_id": SECRET_ID, "secret_key": key, "sms_sdk_app_id": "1400006666",
            "sign_name": "告警平台", "template_id": "1110"
        }))
        .unwrap()
}

fn to(numbers: &[&str], text: &str) -> Message {
    Message::text(text).with_recipients(numbers.iter().map(|n| n.to_string()).collect())
}

/// What the mock says each phone received, over its HTTP API.
async fn received(server: &MockServer, platform: &str) -> Vec<Value> {
    let v: Value = http()
        .get(format!(
            "{}/_mock/messages?platform={platform}",
            server.base_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["messages"].as_array().unwrap().clone()
}

#[tokio::test]
async fn aliyun_sms_is_delivered_to_every_number() {
    let server = server().await;
    let dest = aliyun_sms(&Client::new().unwrap(), &server, AK_SECRET);
    let msg = to(&["13800000000", "+86 139-0000-0000"], "磁盘使用率 97%").with_title("P1");
    let r = send_one(dest.as_ref(), &msg).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    assert!(r.platform_message_id.as_deref().unwrap().ends_with("^0"));
    let got = received(&server, "aliyun").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["recipients"], json!(["13800000000"]));
    assert_eq!(got[1]["recipients"], json!(["13900000000"]));
    let content = &got[0]["revisions"][0]["content"];
    assert_eq!(content["TemplateCode"], "SMS_100");
    assert_eq!(content["TemplateParam"]["content"], "P1\n磁盘使用率 97%");
    assert_eq!(
        log(&server, "sms.send")[0].signature,
        SignatureCheck::Verified
    );
}

#[tokio::test]
async fn aliyun_wrong_secret_is_refused_with_signature_does_not_match() {
    let server = server().await;
    let dest = aliyun_sms(&Client::new().unwrap(), &server, "not-the-secret");
    let r = send_one(dest.as_ref(), &to(&["13800000000"], "x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.status, Some(400));
    assert_eq!(r.code, Some(Code::Name("SignatureDoesNotMatch".into())));
    assert!(!r.to_string().contains("not-the-secret"));
    assert_eq!(
        log(&server, "sms.send")[0].signature,
        SignatureCheck::Failed
    );
    assert!(received(&server, "aliyun").await.is_empty());
}

#[tokio::test]
async fn aliyun_stale_timestamps_and_replayed_nonces_are_refused() {
    let server = server().await;
    let stale = aliyun_sms(
        &client_behind(Duration::from_secs(20 * 60)),
        &server,
        AK_SECRET,
    );
    let r = send_one(stale.as_ref(), &to(&["13800000000"], "x")).await;
    assert_eq!(r.code, Some(Code::Name("InvalidTimeStamp.Expired".into())));
    assert_eq!(r.outcome, Outcome::Permanent);

    // The same signed request twice: the nonce is spent by the first.
    let client = Client::new().unwrap();
    let dest = AliyunSms::new(
        &client,
        serde_json::from_value::<AliyunSmsConfig>(json!({
            "base_url": server.base_url(), "access_key_id": AK, "access_key_secret": AK_SECRET,
            "sign_name": "告警平台", "template_code": "SMS_100", "template_param": "content"
        }))
        .unwrap(),
    )
    .unwrap();
    let p = &dest.render(&to(&["13800000000"], "x")).unwrap()[0];
    let req = dest.request(p, now_ms(), "fixed-nonce");
    let first = client.shared().http.execute(req.clone()).await.unwrap();
    assert_eq!(first.status, 200);
    let again = client.shared().http.execute(req).await.unwrap();
    let r = imrelay_sdk::platform::aliyun::codes::classify(&again, "BizId");
    assert_eq!(r.code, Some(Code::Name("SignatureNonceUsed".into())));
    assert_eq!(received(&server, "aliyun").await.len(), 1);
}

#[tokio::test]
async fn aliyun_second_sms_within_a_minute_is_rate_limited_for_a_minute() {
    let server = server().await;
    let dest = aliyun_sms(&Client::new().unwrap(), &server, AK_SECRET);
    // Sent directly: `deliver` would pace the second part a minute apart.
    let p = dest.render(&to(&["13800000000"], "x")).unwrap().remove(0);
    assert!(dest.send(&p).await.outcome.is_delivered());
    let r = dest.send(&p).await;
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(60)
        },
        "{r}"
    );
    assert_eq!(
        r.code,
        Some(Code::Name("isv.BUSINESS_LIMIT_CONTROL".into()))
    );
    assert_eq!(received(&server, "aliyun").await.len(), 1);
}

#[tokio::test]
async fn aliyun_number_outside_the_numbering_plan_is_permanent() {
    let server = server().await;
    let dest = aliyun_sms(&Client::new().unwrap(), &server, AK_SECRET);
    // 11 digits starting with 1 pass the SDK; no mainland mobile starts with 10.
    let r = send_one(dest.as_ref(), &to(&["10000000000"], "x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(r.code, Some(Code::Name("isv.MOBILE_NUMBER_ILLEGAL".into())));
    // And a text that is not a number never leaves the SDK.
    assert!(deliver(dest.as_ref(), &to(&["call me"], "x"))
        .await
        .is_err());
}

#[tokio::test]
async fn aliyun_voice_calls_each_number_once() {
    let server = server().await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({
            "type": "aliyun_voice", "base_url": server.base_url(),
            "access_key_id": AK, "access_key_secret": AK_SECRET,
            "tts_code": "TTS_200", "template_param": "text", "play_times": 2
        }))
        .unwrap();
    let reports = deliver(
        dest.as_ref(),
        &to(&["13800000000", "13900000000"], "主库宕机"),
    )
    .await
    .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports.iter().all(|r| r.outcome.is_delivered()));
    let got = received(&server, "aliyun").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["recipients"], json!(["13900000000"]));
    assert_eq!(
        got[1]["revisions"][0]["content"]["TtsParam"]["text"],
        "主库宕机"
    );
    assert_eq!(
        got[0]["message_id"].as_str(),
        reports[0].platform_message_id.as_deref()
    );
}

#[tokio::test]
async fn tencent_sms_is_delivered_and_a_refused_number_is_a_failed_recipient() {
    let server = server().await;
    let dest = tencent_sms(&Client::new().unwrap(), &server, SECRET_KEY);
    let r = send_one(
        dest.as_ref(),
        &to(&["13800000000", "10000000000"], "磁盘满"),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    assert_eq!(r.failed_recipients.len(), 1);
    let f = &r.failed_recipients[0];
    assert_eq!(f.recipient, "+8610000000000");
    assert_eq!(f.outcome, Outcome::Permanent);
    assert!(f
        .reason
        .starts_with("InvalidParameterValue.IncorrectPhoneNumber"));
    let got = received(&server, "tencent").await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["recipients"], json!(["+8613800000000"]));
    assert_eq!(
        got[0]["revisions"][0]["content"]["TemplateParamSet"],
        json!(["磁盘满"])
    );
    assert_eq!(
        log(&server, "sms.send")[0].signature,
        SignatureCheck::Verified
    );
}

#[tokio::test]
async fn tencent_wrong_key_unknown_id_and_skew_are_refused_with_their_codes() {
    let server = server().await;
    let msg = to(&["13800000000"], "x");
    let r = send_one(
        tencent_sms(&Client::new().unwrap(), &server, "not-the-key").as_ref(),
        &msg,
    )
    .await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(
        r.code,
        Some(Code::Name("AuthFailure.SignatureFailure".into()))
    );

    let r = send_one(
        tencent_sms(
            &client_behind(Duration::from_secs(6 * 60)),
            &server,
            SECRET_KEY,
        )
        .as_ref(),
        &msg,
    )
    .await;
    assert_eq!(
        r.code,
        Some(Code::Name("AuthFailure.SignatureExpire".into()))
    );

    let stranger = Client::new()
        .unwrap()
        .build(&json!({
            "type": "tencent_sms", "base_url": server.base_url(), "secret_id": "AKID-nobody",
            "secret_key": "k", "sms_sdk_app_id": "1400006666", "sign_name": "s", "template_id": "1"
        }))
        .unwrap();
    let r = send_one(stranger.as_ref(), &msg).await;
    assert_eq!(
        r.code,
        Some(Code::Name("AuthFailure.SecretIdNotFound".into()))
    );
    assert!(received(&server, "tencent").await.is_empty());
}

#[tokio::test]
async fn tencent_second_sms_within_30_seconds_is_rate_limited_for_30_seconds() {
    let server = server().await;
    let dest = tencent_sms(&Client::new().unwrap(), &server, SECRET_KEY);
    let p = dest.render(&to(&["13800000000"], "x")).unwrap().remove(0);
    assert!(dest.send(&p).await.is_complete_success());
    let r = dest.send(&p).await;
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(30)
        },
        "{r}"
    );
    assert_eq!(
        r.code,
        Some(Code::Name(
            "LimitExceeded.PhoneNumberThirtySecondLimit".into()
        ))
    );
    assert_eq!(r.failed_recipients[0].recipient, "+8613800000000");
}

#[tokio::test]
async fn tencent_voice_calls_each_number_once() {
    let server = server().await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({
            "type": "tencent_voice", "base_url": server.base_url(),
            "secret_id": SECRET_ID, "secret_key": SECRET_KEY,
            "voice_sdk_app_id": "1400001111", "template_id": "3330", "play_times": 2
        }))
        .unwrap();
    let reports = deliver(
        dest.as_ref(),
        &to(&["13800000000", "+85212345678"], "主库宕机"),
    )
    .await
    .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports.iter().all(|r| r.outcome.is_delivered()),
        "{reports:?}"
    );
    let got = received(&server, "tencent").await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1]["recipients"], json!(["+85212345678"]));
    assert_eq!(
        got[1]["message_id"].as_str(),
        reports[1].platform_message_id.as_deref()
    );
    assert_eq!(
        log(&server, "voice.call")[0].signature,
        SignatureCheck::Verified
    );
}

/// A client on a clock the test moves, with the mock's clock moved alike (so
/// the signatures' time windows still hold while the limit windows pass).
fn client_on(clock: &Arc<FixedClock>) -> Client {
    Client::with_options(ClientOptions {
        clock: clock.clone(),
        ..Default::default()
    })
    .unwrap()
}

fn advance(server: &MockServer, clock: &FixedClock, by: Duration) {
    let ms = by.as_millis() as i64;
    server.state().advance_clock(ms);
    clock.set_ms(imrelay_sdk::clock::Clock::now_ms(clock) + ms);
}

#[tokio::test]
async fn aliyun_sixth_sms_within_an_hour_waits_for_the_hour() {
    let server = server().await;
    let clock = Arc::new(FixedClock::new(now_ms()));
    let dest = aliyun_sms(&client_on(&clock), &server, AK_SECRET);
    let p = dest.render(&to(&["13800000000"], "x")).unwrap().remove(0);
    for i in 0..5 {
        let r = dest.send(&p).await;
        assert!(r.outcome.is_delivered(), "send {i}: {r}");
        advance(&server, &clock, Duration::from_secs(61));
    }
    let r = dest.send(&p).await;
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(3600)
        },
        "{r}"
    );
    assert!(r.message.contains("小时级"), "{r}");
}

#[tokio::test]
async fn tencent_eleventh_sms_in_a_day_waits_for_the_day() {
    let server = server().await;
    let clock = Arc::new(FixedClock::new(now_ms()));
    let dest = tencent_sms(&client_on(&clock), &server, SECRET_KEY);
    let p = dest.render(&to(&["13800000000"], "x")).unwrap().remove(0);
    for i in 0..10 {
        let r = dest.send(&p).await;
        assert!(r.is_complete_success(), "send {i}: {r}");
        advance(&server, &clock, Duration::from_secs(31));
    }
    let r = dest.send(&p).await;
    assert_eq!(
        r.outcome,
        Outcome::RateLimited {
            wait: Duration::from_secs(86_400)
        },
        "{r}"
    );
    assert_eq!(
        r.code,
        Some(Code::Name("LimitExceeded.PhoneNumberDailyLimit".into()))
    );
    assert_eq!(received(&server, "tencent").await.len(), 10);
}

#[tokio::test]
async fn tencent_voice_to_a_number_outside_the_plan_is_permanent() {
    let server = server().await;
    let dest = Client::new()
        .unwrap()
        .build(&json!({
            "type": "tencent_voice", "base_url": server.base_url(),
            "secret_id": SECRET_ID, "secret_key": SECRET_KEY,
            "voice_sdk_app_id": "1400001111", "template_id": "3330"
        }))
        .unwrap();
    let r = send_one(dest.as_ref(), &to(&["10000000000"], "x")).await;
    assert_eq!(r.outcome, Outcome::Permanent);
    assert_eq!(
        r.code,
        Some(Code::Name(
            "InvalidParameterValue.CalledNumberVerifyFail".into()
        ))
    );
    assert!(received(&server, "tencent").await.is_empty());
}
