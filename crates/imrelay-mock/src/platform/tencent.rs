//! Tencent Cloud SMS (`SendSms`, 2021-01-11) and voice messages
//! (`SendTtsVoice`, 2020-09-02), the API 3.0 calls the `tencent_sms` and
//! `tencent_voice` destinations make.
//!
//! | method | path | behaviour |
//! |---|---|---|
//! | POST | `/` with `X-TC-Action: SendSms` | TC3-HMAC-SHA256 checked with an app's `app_secret` (`app_id` = SecretId): malformed `Authorization` → `AuthFailure.InvalidAuthorization`, unknown SecretId → `AuthFailure.SecretIdNotFound`, `X-TC-Timestamp` more than 5 minutes off → `AuthFailure.SignatureExpire`, wrong signature, date or service → `AuthFailure.SignatureFailure`; then more than 200 numbers → `LimitExceeded.PhoneNumberCountLimit`, a non-numeric `TemplateId` → `FailedOperation.TemplateIncorrectOrUnapproved`, a mainland number without `SignName` → `FailedOperation.MissingSignature`, a parameter over 6 characters → `InvalidParameterValue.TemplateParameterLengthLimit`; each number is answered in `SendStatusSet`: outside the numbering plan (`+861[3-9]` + 9 digits, or `+` and 8–15 digits) → `InvalidParameterValue.IncorrectPhoneNumber`, a second SMS within 30 s → `LimitExceeded.PhoneNumberThirtySecondLimit`, an 11th in a day → `LimitExceeded.PhoneNumberDailyLimit`, else `Ok` |
//! | POST | `/` with `X-TC-Action: SendTtsVoice` | the same signature checks; a `CalledNumber` outside the numbering plan → `InvalidParameterValue.CalledNumberVerifyFail`, `PlayTimes` over 3 → `InvalidParameter`; answers `SendStatus.CallId` |
//!
//! Every answer is HTTP 200 `{"Response": {..., "RequestId"}}`, errors in
//! `Response.Error`. Every number taken is kept in [`MockState::sent`] (id =
//! `SerialNo` / `CallId`, content `{TemplateId, TemplateParamSet, SignName}`),
//! so a test reads what each phone got from `/_mock/messages?platform=tencent`.
//!
//! Targets: `tencent:sms:{SecretId}`, `tencent:voice:{SecretId}`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use imrelay_sdk::platform::tencent::sign;
use serde_json::{json, Value};

use crate::config::MockPlatform;
use crate::faults::{inject, Injected};
use crate::log::{LogEntry, SignatureCheck};
use crate::platform::injected_status;
use crate::sent::SentMessage;
use crate::state::MockState;

const PLATFORM: &str = "tencent";
const MAX_SKEW_SECS: i64 = 300;
const MAX_NUMBERS: usize = 200;
const PARAM_MAX_CHARS: usize = 6;

static SEQ: AtomicU64 = AtomicU64::new(1_045_710_669_157_053_657);

fn next_id() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

struct Call<'a> {
    s: &'a MockState,
    entry: Option<LogEntry>,
}

impl Call<'_> {
    fn log(&mut self, f: impl FnOnce(LogEntry) -> LogEntry) {
        if let Some(e) = self.entry.take() {
            self.s.record(f(e));
        }
    }

    fn signature(&mut self, check: SignatureCheck) {
        if let Some(e) = self.entry.as_mut() {
            e.signature = check;
        }
    }

    fn error(mut self, code: &str, msg: &str) -> Response {
        self.log(|e| e.rejected(code, msg));
        Json(json!({"Response": {"Error": {"Code": code, "Message": msg}, "RequestId": request_id()}}))
            .into_response()
    }

    fn injected(mut self, inj: Injected) -> Response {
        match inj {
            Injected::Code { code, msg } => {
                self.error(&code.to_string(), &format!("injected: {msg}"))
            }
            Injected::Http(status) => {
                self.log(|e| e.rejected(format!("http {status}"), "injected HTTP error"));
                (injected_status(status), "injected HTTP error").into_response()
            }
            Injected::Answer(a) => {
                self.log(|e| e.rejected(a.log_code(), a.reason()));
                a.response()
            }
        }
    }
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> &'h str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// A number Tencent Cloud would text or dial: `+86` and a mainland mobile
/// number (`1[3-9]` + 9 digits), or `+` and 8 to 15 digits elsewhere.
fn valid_number(n: &str) -> bool {
    let Some(d) = n.strip_prefix('+') else {
        return false;
    };
    let b = d.as_bytes();
    if !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if let Some(m) = d.strip_prefix("86") {
        let m = m.as_bytes();
        return m.len() == 11 && m[0] == b'1' && (b'3'..=b'9').contains(&m[1]);
    }
    (8..=15).contains(&b.len()) && b[0] != b'0'
}

/// The per-number limit `number` is over, counting what the mock took for
/// `target` (windows scaled by `window_scale`).
fn over_limit(s: &MockState, target: &str, number: &str) -> Option<(&'static str, &'static str)> {
    let now = s.now_ms();
    let scale = s.config().window_scale;
    let sent: Vec<i64> = s
        .sent
        .list(Some(MockPlatform::Tencent), Some(target))
        .into_iter()
        .filter(|m| m.recipients.iter().any(|r| r == number))
        .map(|m| m.sent_at_ms)
        .collect();
    for (window_ms, permits, code, msg) in [
        (
            30_000_i64,
            1_usize,
            "LimitExceeded.PhoneNumberThirtySecondLimit",
            "单个手机号30秒内下发短信条数超过设定的上限",
        ),
        (
            86_400_000,
            10,
            "LimitExceeded.PhoneNumberDailyLimit",
            "单个手机号日下发短信条数超过设定的上限",
        ),
    ] {
        let w = ((window_ms as f64) * scale).max(1.0) as i64;
        if sent.iter().filter(|&&t| t > now - w).count() >= permits {
            return Some((code, msg));
        }
    }
    None
}

/// Handle one API 3.0 request (`/` with `X-TC-Action`).
pub(crate) async fn handle(s: Arc<MockState>, headers: &HeaderMap, body: &[u8]) -> Response {
    let action = header(headers, "x-tc-action").to_string();
    let (endpoint, kind, service, version) = match action.as_str() {
        "SendTtsVoice" => ("voice.call", "voice", "vms", "2020-09-02"),
        _ => ("sms.send", "sms", "sms", "2021-01-11"),
    };
    let auth = sign::parse_authorization(header(headers, "authorization"));
    let secret_id = auth
        .as_ref()
        .map(|a| a.secret_id.clone())
        .unwrap_or_default();
    let target = format!("tencent:{kind}:{secret_id}");
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let mut entry = LogEntry::new(PLATFORM, endpoint, target.clone());
    entry.body = parsed.clone();
    let mut call = Call {
        s: &s,
        entry: Some(entry),
    };
    if let Some(inj) = inject(&s, &target).await {
        return call.injected(inj);
    }
    if !matches!(action.as_str(), "SendSms" | "SendTtsVoice") {
        return call.error(
            "InvalidAction",
            &format!("The action `{action}` is not supported."),
        );
    }
    let Some(auth) = auth else {
        return call.error(
            "AuthFailure.InvalidAuthorization",
            "Authorization 请求头格式错误，请参考签名方法 v3。",
        );
    };
    let Ok(ts) = header(headers, "x-tc-timestamp").parse::<i64>() else {
        return call.error(
            "MissingParameter",
            "The request is missing a required parameter `X-TC-Timestamp`.",
        );
    };
    if header(headers, "x-tc-version") != version {
        return call.error(
            "InvalidParameterValue",
            &format!(
                "The version `{}` of `{action}` is not supported.",
                header(headers, "x-tc-version")
            ),
        );
    }
    let secret = match s.app(MockPlatform::Tencent, &secret_id) {
        Some(app) => Some(app.app_secret),
        None if s.accept_unknown() => None,
        None => {
            return call.error(
                "AuthFailure.SecretIdNotFound",
                "密钥不存在，请在控制台检查密钥是否已被删除或者禁用。",
            )
        }
    };
    if (s.now_ms().div_euclid(1000) - ts).abs() > MAX_SKEW_SECS {
        call.signature(SignatureCheck::Failed);
        return call.error(
            "AuthFailure.SignatureExpire",
            "签名过期。Timestamp 和服务器时间相差不得超过五分钟，请检查本地时间是否和标准时间同步。",
        );
    }
    if let Some(secret) = secret {
        let cr = sign::canonical_request(
            header(headers, "content-type"),
            header(headers, "host"),
            body,
        );
        let sts = sign::string_to_sign(ts, service, &cr);
        let expected = sign::signature(&secret, ts, service, &sts);
        let ok = auth.signed_headers == sign::SIGNED_HEADERS
            && auth.date == sign::utc_date(ts)
            && auth.service == service
            && imrelay_sdk::sign::constant_time_eq(expected.as_bytes(), auth.signature.as_bytes());
        if !ok {
            call.signature(SignatureCheck::Failed);
            return call.error(
                "AuthFailure.SignatureFailure",
                "请求签名验证失败，请检查您的签名计算是否正确。",
            );
        }
        call.signature(SignatureCheck::Verified);
    } else {
        call.signature(SignatureCheck::NotRequired);
    }
    let Some(v) = parsed.filter(Value::is_object) else {
        return call.error(
            "InvalidParameter",
            "The request body must be a JSON object.",
        );
    };
    if action == "SendSms" {
        send_sms(call, &s, &target, &v)
    } else {
        send_tts_voice(call, &s, &target, &v)
    }
}

fn strings(v: &Value, key: &str) -> Option<Vec<String>> {
    match v.get(key) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(a)) => a.iter().map(|x| x.as_str().map(String::from)).collect(),
        Some(_) => None,
    }
}

fn str_field<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn send_sms(mut call: Call, s: &MockState, target: &str, v: &Value) -> Response {
    let Some(numbers) = strings(v, "PhoneNumberSet").filter(|n| !n.is_empty()) else {
        return call.error(
            "MissingParameter",
            "The request is missing a required parameter `PhoneNumberSet`.",
        );
    };
    if numbers.len() > MAX_NUMBERS {
        return call.error(
            "LimitExceeded.PhoneNumberCountLimit",
            "调用接口单次提交的手机号个数超过200个。",
        );
    }
    let app_id = str_field(v, "SmsSdkAppId");
    if app_id.is_empty() || !app_id.bytes().all(|b| b.is_ascii_digit()) {
        return call.error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId不存在。");
    }
    let template_id = str_field(v, "TemplateId");
    if template_id.is_empty() || !template_id.bytes().all(|b| b.is_ascii_digit()) {
        return call.error(
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "模板未审批或请求的内容与审核通过的模板内容不匹配。",
        );
    }
    let sign_name = str_field(v, "SignName");
    if sign_name.trim().is_empty() && numbers.iter().any(|n| n.starts_with("+86")) {
        return call.error(
            "FailedOperation.MissingSignature",
            "国内短信需要携带短信签名。",
        );
    }
    let Some(params) = strings(v, "TemplateParamSet") else {
        return call.error(
            "InvalidParameter",
            "TemplateParamSet must be an array of strings.",
        );
    };
    if params.iter().any(|p| p.chars().count() > PARAM_MAX_CHARS) {
        return call.error(
            "InvalidParameterValue.TemplateParameterLengthLimit",
            "单个模板变量字符数超过限制。",
        );
    }
    let now = s.now_ms();
    let mut statuses = Vec::with_capacity(numbers.len());
    let mut failures = Vec::new();
    for n in &numbers {
        let refused = if !valid_number(n) {
            Some((
                "InvalidParameterValue.IncorrectPhoneNumber",
                "手机号格式错误。",
            ))
        } else {
            over_limit(s, target, n)
        };
        match refused {
            Some((code, msg)) => {
                failures.push(format!("{n}: {code}"));
                statuses.push(json!({"SerialNo": "", "PhoneNumber": n, "Fee": 0, "SessionContext": "", "Code": code, "Message": msg, "IsoCode": ""}));
            }
            None => {
                let serial = format!("5000:{}", next_id());
                s.sent.insert(SentMessage::new(
                    MockPlatform::Tencent,
                    serial.clone(),
                    target,
                    vec![n.clone()],
                    json!({"TemplateId": template_id, "TemplateParamSet": params, "SignName": sign_name}),
                    now,
                ));
                statuses.push(json!({"SerialNo": serial, "PhoneNumber": n, "Fee": 1, "SessionContext": "", "Code": "Ok", "Message": "send success", "IsoCode": if n.starts_with("+86") { "CN" } else { "" }}));
            }
        }
    }
    let taken = statuses.len() - failures.len();
    call.log(|e| {
        let mut e = if taken > 0 {
            let mut e = e.accepted();
            e.code = Some("Ok".into());
            e
        } else {
            e.rejected("SendStatusSet", "no number taken")
        };
        if !failures.is_empty() {
            e.reason = Some(failures.join("; "));
        }
        e
    });
    Json(json!({"Response": {"SendStatusSet": statuses, "RequestId": request_id()}}))
        .into_response()
}

fn send_tts_voice(mut call: Call, s: &MockState, target: &str, v: &Value) -> Response {
    let number = str_field(v, "CalledNumber");
    if !valid_number(number) {
        return call.error(
            "InvalidParameterValue.CalledNumberVerifyFail",
            "被叫手机号码格式校验失败。",
        );
    }
    if str_field(v, "VoiceSdkAppid").is_empty() {
        return call.error(
            "MissingParameter",
            "The request is missing a required parameter `VoiceSdkAppid`.",
        );
    }
    let template_id = str_field(v, "TemplateId");
    if template_id.is_empty() || !template_id.bytes().all(|b| b.is_ascii_digit()) {
        return call.error(
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "模板未审批或内容不匹配。",
        );
    }
    if v.get("PlayTimes")
        .and_then(Value::as_u64)
        .is_some_and(|n| !(1..=3).contains(&n))
    {
        return call.error("InvalidParameter", "PlayTimes must be 1 to 3.");
    }
    let Some(params) = strings(v, "TemplateParamSet") else {
        return call.error(
            "InvalidParameter",
            "TemplateParamSet must be an array of strings.",
        );
    };
    let call_id = format!("{}", uuid::Uuid::new_v4());
    s.sent.insert(SentMessage::new(
        MockPlatform::Tencent,
        call_id.clone(),
        target,
        vec![number.to_string()],
        json!({"TemplateId": template_id, "TemplateParamSet": params}),
        s.now_ms(),
    ));
    let session = str_field(v, "SessionContext").to_string();
    call.log(|e| {
        let mut e = e.accepted();
        e.code = Some("Ok".into());
        e
    });
    Json(json!({"Response": {"SendStatus": {"CallId": call_id, "SessionContext": session}, "RequestId": request_id()}}))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_plan() {
        assert!(valid_number("+8613800000000"));
        assert!(valid_number("+85212345678"));
        assert!(!valid_number("+8610000000000"));
        assert!(!valid_number("13800000000"));
        assert!(!valid_number("+86138"));
    }
}
