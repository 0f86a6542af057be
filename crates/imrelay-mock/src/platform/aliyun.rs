//! Alibaba Cloud SMS (Dysmsapi) and voice (Dyvmsapi), the RPC-style APIs the
//! `aliyun_sms` and `aliyun_voice` destinations call.
//!
//! | method | path | behaviour |
//! |---|---|---|
//! | GET, POST | `/` with `Action=SendSms` | parameters in the query or the form body; signed (HMAC-SHA1 RPC signature) with an app's `app_secret` (`app_id` = AccessKeyId): unknown key → 404 `InvalidAccessKeyId.NotFound`, bad signature → 400 `SignatureDoesNotMatch`, timestamp more than 15 minutes off → 400 `InvalidTimeStamp.Expired`, a nonce seen within 15 minutes → 400 `SignatureNonceUsed`; then more than 1000 numbers → `isv.MOBILE_COUNT_OVER_LIMIT`, a number outside the numbering plan (mainland `1[3-9]` + 9 digits, elsewhere 8–15 digits) → `isv.MOBILE_NUMBER_ILLEGAL`, empty `SignName` → `isv.SMS_SIGNATURE_ILLEGAL`, a `TemplateCode` not `SMS_…` → `isv.SMS_TEMPLATE_ILLEGAL`, `TemplateParam` not a JSON object of strings → `isv.INVALID_JSON_PARAM`, a value over 35 characters → `isv.PARAM_LENGTH_LIMIT`; per number 1 a minute, 5 an hour, 10 a day → `isv.BUSINESS_LIMIT_CONTROL` (`触发分钟级流控Permits:1`, `触发小时级流控Permits:5`, `触发天级流控Permits:10`) |
//! | GET, POST | `/` with `Action=SingleCallByTts` | the same signature checks; a `CalledNumber` outside the numbering plan or `PlayTimes` not 1–3 → `isv.INVALID_PARAMETERS`, a `TtsCode` not `TTS_…` → `isv.TTS_TEMPLATE_ILLEGAL`; per number 1 a minute, 5 an hour, 20 a day → `isv.BUSINESS_LIMIT_CONTROL` |
//!
//! Signature, key and timestamp errors answer HTTP 4xx with
//! `{"RequestId","HostId","Code","Message","Recommend"}`; business errors HTTP
//! 200 with `{"Code","Message","RequestId"}`; success
//! `{"Code":"OK","Message":"OK","BizId"|"CallId",...}`. Every SMS taken is kept
//! in [`MockState::sent`] once per number (id `{BizId}:{number}`, content
//! `{SignName, TemplateCode, TemplateParam}`), every call once (id = `CallId`,
//! content `{TtsCode, TtsParam, PlayTimes}`), so a test reads what each phone
//! got from `/_mock/messages?platform=aliyun`.
//!
//! Targets: `aliyun:sms:{AccessKeyId}`, `aliyun:voice:{AccessKeyId}`. The
//! `/` route is shared with Tencent Cloud (see [`super::api_root`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use imrelay_sdk::platform::aliyun::sign;
use serde_json::{json, Map, Value};

use crate::config::MockPlatform;
use crate::faults::{inject, Injected};
use crate::log::{LogEntry, SignatureCheck};
use crate::platform::injected_status;
use crate::sent::SentMessage;
use crate::state::MockState;

const PLATFORM: &str = "aliyun";
const VERSION: &str = "2017-05-25";
/// Timestamps and nonces are judged within 15 minutes.
const WINDOW_MS: i64 = 15 * 60 * 1000;
const MAX_NUMBERS: usize = 1000;
const PARAM_MAX_CHARS: usize = 35;

static SEQ: AtomicU64 = AtomicU64::new(900_619_746_936_498_440);

fn next_id() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string().to_uppercase()
}

/// One request being handled: logs exactly once, on the way out.
struct Call<'a> {
    s: &'a MockState,
    entry: Option<LogEntry>,
    host: &'static str,
}

impl Call<'_> {
    fn log(&mut self, f: impl FnOnce(LogEntry) -> LogEntry) {
        if let Some(e) = self.entry.take() {
            self.s.record(f(e));
        }
    }

    /// A gateway refusal: HTTP 4xx with the POP error shape.
    fn gateway(mut self, status: StatusCode, code: &str, msg: &str) -> Response {
        self.log(|e| e.rejected(code, msg));
        let body = json!({
            "RequestId": request_id(),
            "HostId": self.host,
            "Code": code,
            "Message": msg,
            "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}"),
        });
        (status, Json(body)).into_response()
    }

    /// A business refusal: HTTP 200 with the code.
    fn business(mut self, code: &str, msg: &str) -> Response {
        self.log(|e| e.rejected(code, msg));
        Json(json!({"Code": code, "Message": msg, "RequestId": request_id()})).into_response()
    }

    fn accept(mut self, answer: Value) -> Response {
        self.log(|e| {
            let mut e = e.accepted();
            e.code = Some("OK".into());
            e
        });
        Json(answer).into_response()
    }

    fn injected(mut self, inj: Injected) -> Response {
        match inj {
            Injected::Code { code, msg } => {
                let code = code.to_string();
                self.log(|e| e.rejected(&code, format!("injected: {msg}")));
                Json(json!({"Code": code, "Message": msg, "RequestId": request_id()}))
                    .into_response()
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

/// A number Alibaba Cloud would dial or text: a mainland mobile number
/// (`1[3-9]` and 9 digits) or an international one (8 to 15 digits, country
/// code first).
fn valid_number(n: &str) -> bool {
    let b = n.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    if b[0] == b'1' && b.len() == 11 {
        return (b'3'..=b'9').contains(&b[1]);
    }
    (8..=15).contains(&b.len()) && b[0] != b'0' && b[0] != b'1' && !n.starts_with("86")
}

/// The first per-number window `number` is over, as the message the real
/// service sends: it counts what the mock took for `target` in the last
/// minute, hour and day (scaled by `window_scale`).
fn over_limit(s: &MockState, target: &str, number: &str, per_day: usize) -> Option<String> {
    let now = s.now_ms();
    let scale = s.config().window_scale;
    let sent: Vec<i64> = s
        .sent
        .list(Some(MockPlatform::Aliyun), Some(target))
        .into_iter()
        .filter(|m| m.recipients.iter().any(|r| r == number))
        .map(|m| m.sent_at_ms)
        .collect();
    for (window_ms, permits, name) in [
        (60_000_i64, 1_usize, "分钟级"),
        (3_600_000, 5, "小时级"),
        (86_400_000, per_day, "天级"),
    ] {
        let w = ((window_ms as f64) * scale).max(1.0) as i64;
        if sent.iter().filter(|&&t| t > now - w).count() >= permits {
            return Some(format!("触发{name}流控Permits:{permits}"));
        }
    }
    None
}

/// Handle one RPC request (`/` without `X-TC-Action`).
pub(crate) async fn handle(
    s: Arc<MockState>,
    method: Method,
    query: Option<String>,
    body: &[u8],
) -> Response {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    if let Some(q) = query.as_deref() {
        params.extend(url::form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    if method == Method::POST {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let action = get("Action");
    let (endpoint, kind, host) = match action.as_str() {
        "SingleCallByTts" => ("voice.call", "voice", "dyvmsapi.aliyuncs.com"),
        _ => ("sms.send", "sms", "dysmsapi.aliyuncs.com"),
    };
    let ak = get("AccessKeyId");
    let target = format!("aliyun:{kind}:{ak}");
    let mut logged: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    logged.remove("Signature");
    let mut call = Call {
        s: &s,
        entry: Some(LogEntry::new(PLATFORM, endpoint, target.clone()).body(Value::Object(logged))),
        host,
    };
    if let Some(inj) = inject(&s, &target).await {
        return call.injected(inj);
    }
    if !matches!(action.as_str(), "SendSms" | "SingleCallByTts") {
        return call.gateway(
            StatusCode::NOT_FOUND,
            "InvalidApi.NotFound",
            "Specified api is not found, please check your url and method.",
        );
    }
    for p in [
        "AccessKeyId",
        "Signature",
        "SignatureNonce",
        "Timestamp",
        "SignatureMethod",
        "SignatureVersion",
        "Version",
    ] {
        if get(p).is_empty() {
            return call.gateway(
                StatusCode::BAD_REQUEST,
                &format!("Missing{p}"),
                &format!("{p} is mandatory for this action."),
            );
        }
    }
    if get("Version") != VERSION {
        return call.gateway(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        );
    }
    if get("SignatureMethod") != "HMAC-SHA1" {
        return call.gateway(
            StatusCode::BAD_REQUEST,
            "InvalidSignatureMethod",
            "Specified signature method is not valid.",
        );
    }
    let secret = match s.app(MockPlatform::Aliyun, &ak) {
        Some(app) => Some(app.app_secret),
        None if s.accept_unknown() => None,
        None => {
            return call.gateway(
                StatusCode::NOT_FOUND,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            )
        }
    };
    let now = s.now_ms();
    let Some(ts) = sign::parse_iso8601(&get("Timestamp")) else {
        return call.gateway(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        );
    };
    if (now - ts * 1000).abs() > WINDOW_MS {
        return call.gateway(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        );
    }
    let check = match &secret {
        Some(secret) => {
            let expected = sign::signature(secret, method.as_str(), &params);
            let ok = imrelay_sdk::sign::constant_time_eq(
                expected.as_bytes(),
                get("Signature").as_bytes(),
            );
            if !ok {
                if let Some(e) = call.entry.as_mut() {
                    e.signature = SignatureCheck::Failed;
                }
                let sts = sign::string_to_sign(method.as_str(), &params);
                return call.gateway(
                    StatusCode::BAD_REQUEST,
                    "SignatureDoesNotMatch",
                    &format!("Specified signature is not matched with our calculation. server string to sign is:{sts}"),
                );
            }
            SignatureCheck::Verified
        }
        None => SignatureCheck::NotRequired,
    };
    if let Some(e) = call.entry.as_mut() {
        e.signature = check;
    }
    let nonce_key = format!("aliyun:nonce:{ak}:{}", get("SignatureNonce"));
    if s.dedup.seen(&nonce_key, WINDOW_MS, now) {
        return call.gateway(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    if action == "SendSms" {
        send_sms(call, &s, &target, &params)
    } else {
        single_call(call, &s, &target, &params)
    }
}

fn send_sms(call: Call, s: &MockState, target: &str, p: &BTreeMap<String, String>) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let numbers: Vec<&str> = get("PhoneNumbers")
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if numbers.len() > MAX_NUMBERS {
        return call.business(
            "isv.MOBILE_COUNT_OVER_LIMIT",
            &format!("手机号码数量超过限制 ({} > {MAX_NUMBERS})", numbers.len()),
        );
    }
    if numbers.is_empty() {
        return call.business("isv.MOBILE_NUMBER_ILLEGAL", "PhoneNumbers is empty");
    }
    if let Some(bad) = numbers.iter().find(|n| !valid_number(n)) {
        return call.business(
            "isv.MOBILE_NUMBER_ILLEGAL",
            &format!("invalid mobile number {bad}"),
        );
    }
    if get("SignName").trim().is_empty() {
        return call.business("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名");
    }
    if !get("TemplateCode").starts_with("SMS_") {
        return call.business("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板");
    }
    let params = match template_param(get("TemplateParam")) {
        Ok(v) => v,
        Err((code, msg)) => return call.business(code, msg),
    };
    for n in &numbers {
        if let Some(msg) = over_limit(s, target, n, 10) {
            return call.business("isv.BUSINESS_LIMIT_CONTROL", &msg);
        }
    }
    let biz_id = format!("{}^0", next_id());
    let now = s.now_ms();
    for n in &numbers {
        s.sent.insert(SentMessage::new(
            MockPlatform::Aliyun,
            format!("{biz_id}:{n}"),
            target,
            vec![n.to_string()],
            json!({
                "SignName": get("SignName"),
                "TemplateCode": get("TemplateCode"),
                "TemplateParam": params,
            }),
            now,
        ));
    }
    call.accept(json!({"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id()}))
}

/// The parsed `TemplateParam` (null when absent), or the refusal.
fn template_param(raw: &str) -> Result<Value, (&'static str, &'static str)> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    let v: Value = serde_json::from_str(raw)
        .map_err(|_| ("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"))?;
    let o = v
        .as_object()
        .ok_or(("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"))?;
    for value in o.values() {
        let s = value
            .as_str()
            .ok_or(("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值"))?;
        if s.chars().count() > PARAM_MAX_CHARS {
            return Err(("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制"));
        }
    }
    Ok(v)
}

fn single_call(call: Call, s: &MockState, target: &str, p: &BTreeMap<String, String>) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
    let number = get("CalledNumber").trim();
    if !valid_number(number) {
        return call.business(
            "isv.INVALID_PARAMETERS",
            &format!("CalledNumber {number} is invalid"),
        );
    }
    if !get("TtsCode").starts_with("TTS_") {
        return call.business("isv.TTS_TEMPLATE_ILLEGAL", "TTS模板不合法");
    }
    let play_times = get("PlayTimes");
    if !play_times.is_empty() && !matches!(play_times, "1" | "2" | "3") {
        return call.business("isv.INVALID_PARAMETERS", "PlayTimes must be 1 to 3");
    }
    let params = match template_param_any(get("TtsParam")) {
        Ok(v) => v,
        Err(msg) => return call.business("isv.INVALID_PARAMETERS", msg),
    };
    if let Some(msg) = over_limit(s, target, number, 20) {
        return call.business("isv.BUSINESS_LIMIT_CONTROL", &msg);
    }
    let call_id = format!("{}^{}", next_id(), next_id() % 1_000_000);
    s.sent.insert(SentMessage::new(
        MockPlatform::Aliyun,
        call_id.clone(),
        target,
        vec![number.to_string()],
        json!({"TtsCode": get("TtsCode"), "TtsParam": params, "PlayTimes": play_times}),
        s.now_ms(),
    ));
    call.accept(
        json!({"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": request_id()}),
    )
}

/// TtsParam: a JSON object (no documented length cap for its values).
fn template_param_any(raw: &str) -> Result<Value, &'static str> {
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err("TtsParam must be a JSON object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbering_plan() {
        assert!(valid_number("13800000000"));
        assert!(valid_number("85212345678"));
        assert!(!valid_number("10000000000"));
        assert!(!valid_number("8613800000000"));
        assert!(!valid_number("1380000000a"));
    }

    #[test]
    fn template_values_are_strings_within_35_characters() {
        assert!(template_param(r#"{"a":"x"}"#).is_ok());
        assert_eq!(
            template_param(r#"{"a":1}"#).unwrap_err().0,
            "isv.INVALID_JSON_PARAM"
        );
        let long = format!(r#"{{"a":"{}"}}"#, "字".repeat(36));
        assert_eq!(
            template_param(&long).unwrap_err().0,
            "isv.PARAM_LENGTH_LIMIT"
        );
    }
}
