//! Tencent Cloud SMS and voice message (VMS) codes, and the classification of
//! their answers.
//!
//! API 3.0 answers HTTP 200 with `{"Response": {..., "RequestId": "..."}}`; a
//! refused request has `Response.Error = {"Code", "Message"}`. SendSms
//! answers each number in `Response.SendStatusSet[]` with its own `Code`
//! (`"Ok"` when taken), so one request can succeed for some numbers and fail
//! for others. SendTtsVoice answers `Response.SendStatus.CallId`. The codes
//! and their sources are listed in docs/platforms/tencent.md.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpResponse;
use crate::outcome::{Code, CodeClass, Outcome, RecipientFailure, Report};
use crate::platform::errcode::{self, str_field};

/// One entry of the table: a named code and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedCode {
    pub code: &'static str,
    pub class: CodeClass,
    pub meaning: &'static str,
    pub action: &'static str,
}

/// A number's success code in `SendStatusSet`.
pub const OK: &str = "Ok";

const THIRTY_SECONDS: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Every code docs/platforms/tencent.md lists, with its class.
pub static CODES: &[NamedCode] = &[
    NamedCode {
        code: "LimitExceeded.PhoneNumberThirtySecondLimit",
        class: CodeClass::RateLimited(THIRTY_SECONDS),
        meaning: "the number got a message within the last 30 seconds (default: 1 per 30 s)",
        action: "wait 30 seconds before sending to this number again",
    },
    NamedCode {
        code: "LimitExceeded.PhoneNumberOneHourLimit",
        class: CodeClass::RateLimited(HOUR),
        meaning: "the number reached its hourly limit",
        action: "wait an hour, or raise the limit in the SMS console",
    },
    NamedCode {
        code: "LimitExceeded.PhoneNumberDailyLimit",
        class: CodeClass::RateLimited(DAY),
        meaning: "the number reached its daily limit",
        action: "wait for the next day, or raise the limit in the SMS console",
    },
    NamedCode {
        code: "LimitExceeded.PhoneNumberSameContentDailyLimit",
        class: CodeClass::RateLimited(DAY),
        meaning: "the number got the same content too often today",
        action: "wait for the next day or vary the content",
    },
    NamedCode {
        code: "LimitExceeded.DeliveryFrequencyLimit",
        class: CodeClass::RateLimited(THIRTY_SECONDS),
        meaning: "sending frequency limit for the number",
        action: "send to this number less often",
    },
    NamedCode {
        code: "LimitExceeded.PhoneNumberCountLimit",
        class: CodeClass::Permanent,
        meaning: "more than 200 numbers in one request",
        action: "send at most 200 numbers per request",
    },
    NamedCode {
        code: "LimitExceeded.DailyLimit",
        class: CodeClass::RateLimited(DAY),
        meaning: "the account's daily sending limit was reached",
        action: "wait for the next day or raise the limit in the console",
    },
    NamedCode {
        code: "RequestLimitExceeded",
        class: CodeClass::Transient,
        meaning: "the account called the API above its frequency limit",
        action: "retry with backoff and send more slowly",
    },
    NamedCode {
        code: "InternalError",
        class: CodeClass::Transient,
        meaning: "Tencent Cloud internal error",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError.Timeout",
        class: CodeClass::Transient,
        meaning: "the request timed out inside Tencent Cloud",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError.SendAndRecvFail",
        class: CodeClass::Transient,
        meaning: "the upstream call failed",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError.OtherError",
        class: CodeClass::Transient,
        meaning: "other internal error",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError.RequestTimeException",
        class: CodeClass::Transient,
        meaning: "the request time is off",
        action: "synchronise this host's clock and retry",
    },
    NamedCode {
        code: "AuthFailure.SignatureFailure",
        class: CodeClass::Permanent,
        meaning: "the request signature did not verify",
        action: "check `secret_key`",
    },
    NamedCode {
        code: "AuthFailure.SecretIdNotFound",
        class: CodeClass::Permanent,
        meaning: "the SecretId does not exist or is disabled",
        action: "check `secret_id`",
    },
    NamedCode {
        code: "AuthFailure.SignatureExpire",
        class: CodeClass::Permanent,
        meaning: "the request timestamp is more than 5 minutes off",
        action: "synchronise this host's clock (NTP)",
    },
    NamedCode {
        code: "AuthFailure.InvalidAuthorization",
        class: CodeClass::Permanent,
        meaning: "the Authorization header is malformed",
        action: "report a bug: the SDK builds this header",
    },
    NamedCode {
        code: "AuthFailure.UnauthorizedOperation",
        class: CodeClass::Permanent,
        meaning: "the key may not call this API",
        action: "grant the sub-user QcloudSMSFullAccess / QcloudVMSFullAccess",
    },
    NamedCode {
        code: "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
        class: CodeClass::Permanent,
        meaning: "the SdkAppId does not belong to this account",
        action: "check `sms_sdk_app_id` / `voice_sdk_app_id`",
    },
    NamedCode {
        code: "FailedOperation.InsufficientBalanceInSmsPackage",
        class: CodeClass::Permanent,
        meaning: "the SMS package is used up",
        action: "buy an SMS package",
    },
    NamedCode {
        code: "FailedOperation.SignatureIncorrectOrUnapproved",
        class: CodeClass::Permanent,
        meaning: "the signature is wrong or not approved",
        action: "check `sign_name` in the SMS console",
    },
    NamedCode {
        code: "FailedOperation.TemplateIncorrectOrUnapproved",
        class: CodeClass::Permanent,
        meaning: "the template is wrong or not approved",
        action: "check `template_id` (or the message's template id) in the console",
    },
    NamedCode {
        code: "FailedOperation.PhoneNumberInBlacklist",
        class: CodeClass::Permanent,
        meaning: "the number is on the blacklist (it unsubscribed or complained)",
        action: "remove the number or reach the person another way",
    },
    NamedCode {
        code: "FailedOperation.ContainSensitiveWord",
        class: CodeClass::Permanent,
        meaning: "the content contains a sensitive word",
        action: "change the text",
    },
    NamedCode {
        code: "FailedOperation.MissingSignature",
        class: CodeClass::Permanent,
        meaning: "a mainland SMS needs a signature",
        action: "set `sign_name`",
    },
    NamedCode {
        code: "InvalidParameterValue.IncorrectPhoneNumber",
        class: CodeClass::Permanent,
        meaning: "the number is not a valid phone number",
        action: "fix the number (E.164, e.g. +8613800000000)",
    },
    NamedCode {
        code: "InvalidParameterValue.TemplateParameterLengthLimit",
        class: CodeClass::Permanent,
        meaning: "a template variable is longer than allowed (6 characters for SMS by default)",
        action: "shorten the value or lower `text_max_chars`",
    },
    NamedCode {
        code: "InvalidParameterValue.TemplateParameterFormatError",
        class: CodeClass::Permanent,
        meaning: "a template variable does not have the format the template declares",
        action: "send values that fit the template's variable types",
    },
    NamedCode {
        code: "InvalidParameterValue.ProhibitedUseUrlInTemplateParameter",
        class: CodeClass::Permanent,
        meaning: "template variables may not carry URLs",
        action: "put the link in the template itself",
    },
    NamedCode {
        code: "InvalidParameterValue.SdkAppIdNotExist",
        class: CodeClass::Permanent,
        meaning: "the SdkAppId does not exist",
        action: "check `sms_sdk_app_id` / `voice_sdk_app_id`",
    },
    NamedCode {
        code: "InvalidParameterValue.TemplateWithDirtyWords",
        class: CodeClass::Permanent,
        meaning: "the content contains a forbidden word",
        action: "change the text",
    },
    NamedCode {
        code: "InvalidParameter",
        class: CodeClass::Permanent,
        meaning: "a parameter is not valid",
        action: "read the message: it names the parameter",
    },
    NamedCode {
        code: "MissingParameter",
        class: CodeClass::Permanent,
        meaning: "a required parameter is missing",
        action: "read the message: it names the parameter",
    },
    NamedCode {
        code: "MissingParameter.EmptyPhoneNumberSet",
        class: CodeClass::Permanent,
        meaning: "the number list is empty",
        action: "give at least one phone number",
    },
    // Voice messages (VMS), from the vms/v20200902 error list.
    NamedCode {
        code: "InvalidParameterValue.CalledNumberVerifyFail",
        class: CodeClass::Permanent,
        meaning: "the called number failed validation",
        action: "fix the number (E.164, e.g. +8613800000000)",
    },
    NamedCode {
        code: "InvalidParameterValue.ContentLengthLimit",
        class: CodeClass::Permanent,
        meaning: "a template variable (voice) or the content (SMS) is too long",
        action: "shorten the text or set `text_max_chars`",
    },
    NamedCode {
        code: "InvalidParameterValue.SdkAppidNotExist",
        class: CodeClass::Permanent,
        meaning: "the voice SdkAppid does not exist",
        action: "check `voice_sdk_app_id`",
    },
    NamedCode {
        code: "UnauthorizedOperation.VoiceSdkAppidVerifyFail",
        class: CodeClass::Permanent,
        meaning: "the voice SdkAppid did not verify",
        action: "check `voice_sdk_app_id` belongs to this account",
    },
    NamedCode {
        code: "UnauthorizedOperation.SdkAppidIsDisabled",
        class: CodeClass::Permanent,
        meaning: "the SdkAppid may not send voice messages",
        action: "contact Tencent Cloud to enable it",
    },
    NamedCode {
        code: "UnauthorizedOperation.ServiceSuspendDueToArrears",
        class: CodeClass::Permanent,
        meaning: "the service is suspended for arrears",
        action: "pay the Tencent Cloud account's arrears",
    },
    NamedCode {
        code: "FailedOperation.InsufficientBalanceInVoicePackage",
        class: CodeClass::Permanent,
        meaning: "the voice package is used up",
        action: "buy a voice package",
    },
    NamedCode {
        code: "FailedOperation.PhonenumberUnappliedOrExpired",
        class: CodeClass::Permanent,
        meaning: "no caller number was bought, or it expired",
        action: "buy or renew the voice number in the console",
    },
    NamedCode {
        code: "InternalError.AccessUpstreamTimeout",
        class: CodeClass::Transient,
        meaning: "the upstream network timed out",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError.UpstreamError",
        class: CodeClass::Transient,
        meaning: "upstream (carrier) error",
        action: "retry with backoff",
    },
    NamedCode {
        code: "UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber",
        class: CodeClass::Permanent,
        meaning: "one request mixed mainland and international numbers",
        action: "send mainland and international numbers in separate destinations",
    },
];

/// The table entry of `code`; a prefix class (`InternalError.*`,
/// `FailedOperation.*`, `InvalidParameterValue.*`, `LimitExceeded.*`) when the
/// exact code is not listed.
pub fn class_of(code: &str) -> (CodeClass, Option<&'static NamedCode>) {
    if let Some(info) = CODES.iter().find(|c| c.code == code) {
        return (info.class, Some(info));
    }
    let class = match code.split('.').next().unwrap_or("") {
        "InternalError" => CodeClass::Transient,
        // An unlisted limit is at least a per-number one; 30 s is its shortest window.
        "LimitExceeded" => CodeClass::RateLimited(THIRTY_SECONDS),
        _ => CodeClass::Permanent,
    };
    (class, None)
}

fn report(code: &str, message: &str, status: u16) -> Report {
    let (class, info) = class_of(code);
    let mut r = Report::new(class.outcome(), message)
        .with_status(status)
        .with_code(Code::Name(code.to_string()));
    r.hint = info.map(|i| format!("{}; {}", i.meaning, i.action));
    r
}

/// The `Response` object, or the report for an answer without one (or with
/// `Response.Error`).
fn response(resp: &HttpResponse) -> Result<Value, Report> {
    let v = errcode::json_body(resp, "Tencent Cloud")?;
    let r = v.get("Response").cloned().ok_or_else(|| {
        Report::new(
            Outcome::Retry { after: None },
            format!("answer without Response: {}", resp.body_snippet()),
        )
        .with_status(resp.status)
    })?;
    if let Some(e) = r.get("Error") {
        return Err(report(
            str_field(e, "Code"),
            str_field(e, "Message"),
            resp.status,
        ));
    }
    Ok(r)
}

/// Classify a SendSms answer: per-number failures go to
/// [`Report::failed_recipients`]; when no number was taken, the report takes
/// the first failure's class and code.
pub fn classify_sms(resp: &HttpResponse) -> Report {
    let r = match response(resp) {
        Ok(r) => r,
        Err(report) => return report,
    };
    let set = r
        .get("SendStatusSet")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if set.is_empty() {
        return Report::new(
            Outcome::Retry { after: None },
            "SendSms answered without SendStatusSet",
        )
        .with_status(resp.status);
    }
    let mut first_ok: Option<String> = None;
    let mut failures: Vec<(RecipientFailure, Report)> = Vec::new();
    for s in &set {
        let code = str_field(s, "Code");
        if code == OK {
            first_ok.get_or_insert_with(|| str_field(s, "SerialNo").to_string());
            continue;
        }
        let one = report(code, str_field(s, "Message"), resp.status);
        failures.push((
            RecipientFailure {
                recipient: str_field(s, "PhoneNumber").to_string(),
                outcome: one.outcome,
                reason: format!("{code}: {}", str_field(s, "Message")),
            },
            one,
        ));
    }
    let mut out = match (&first_ok, failures.first()) {
        (Some(serial), _) => {
            let mut d = Report::delivered().with_status(resp.status);
            d.platform_message_id = Some(serial.clone()).filter(|s| !s.is_empty());
            d
        }
        (None, Some((_, first))) => first.clone(),
        (None, None) => unreachable!("the set is not empty"),
    };
    out.failed_recipients = failures.into_iter().map(|(f, _)| f).collect();
    out
}

/// Classify a SendTtsVoice answer.
pub fn classify_voice(resp: &HttpResponse) -> Report {
    let r = match response(resp) {
        Ok(r) => r,
        Err(report) => return report,
    };
    let mut d = Report::delivered().with_status(resp.status);
    d.platform_message_id = r
        .get("SendStatus")
        .and_then(|s| errcode::id_field(s, "CallId"));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;
    use serde_json::json;

    #[test]
    fn every_code_classifies_as_its_table_class_at_request_level() {
        for info in CODES {
            let body = json!({"Response": {"Error": {"Code": info.code, "Message": "x"}, "RequestId": "r"}});
            for r in [
                classify_sms(&resp(200, &body.to_string())),
                classify_voice(&resp(200, &body.to_string())),
            ] {
                assert_eq!(r.outcome, info.class.outcome(), "{}", info.code);
                assert_eq!(r.code, Some(Code::Name(info.code.into())));
                assert!(r.hint.as_deref().unwrap().contains(info.action));
            }
        }
    }

    #[test]
    fn per_number_failures_are_failed_recipients() {
        let body = json!({"Response": {"RequestId": "r", "SendStatusSet": [
            {"SerialNo": "5000:1", "PhoneNumber": "+8613800000000", "Fee": 1, "Code": "Ok", "Message": "send success"},
            {"SerialNo": "", "PhoneNumber": "+8613800000001", "Fee": 0, "Code": "LimitExceeded.PhoneNumberThirtySecondLimit", "Message": "30s limit"},
            {"SerialNo": "", "PhoneNumber": "+8613800000002", "Fee": 0, "Code": "InvalidParameterValue.IncorrectPhoneNumber", "Message": "bad"}
        ]}});
        let r = classify_sms(&resp(200, &body.to_string()));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(r.platform_message_id.as_deref(), Some("5000:1"));
        assert_eq!(r.failed_recipients.len(), 2);
        assert_eq!(r.failed_recipients[0].recipient, "+8613800000001");
        assert_eq!(
            r.failed_recipients[0].outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(30)
            }
        );
        assert_eq!(r.failed_recipients[1].outcome, Outcome::Permanent);
    }

    #[test]
    fn no_number_taken_takes_the_first_failure() {
        let body = json!({"Response": {"RequestId": "r", "SendStatusSet": [
            {"PhoneNumber": "+8613800000001", "Code": "LimitExceeded.PhoneNumberDailyLimit", "Message": "daily"}
        ]}});
        let r = classify_sms(&resp(200, &body.to_string()));
        assert_eq!(
            r.outcome,
            Outcome::RateLimited {
                wait: Duration::from_secs(86_400)
            }
        );
        assert_eq!(
            r.code,
            Some(Code::Name("LimitExceeded.PhoneNumberDailyLimit".into()))
        );
        assert_eq!(r.failed_recipients.len(), 1);
    }

    #[test]
    fn unlisted_codes_fall_back_on_their_prefix() {
        assert_eq!(class_of("InternalError.New").0, CodeClass::Transient);
        assert_eq!(class_of("FailedOperation.New").0, CodeClass::Permanent);
        assert_eq!(
            class_of("InvalidParameterValue.New").0,
            CodeClass::Permanent
        );
        let voice = json!({"Response": {"SendStatus": {"CallId": "call-1", "SessionContext": ""}, "RequestId": "r"}});
        let r = classify_voice(&resp(200, &voice.to_string()));
        assert_eq!(r.platform_message_id.as_deref(), Some("call-1"));
    }
}
