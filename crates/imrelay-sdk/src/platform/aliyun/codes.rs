//! Alibaba Cloud SMS (Dysmsapi) and voice (Dyvmsapi) answer codes, and the
//! classification of their answers.
//!
//! Both answer JSON `{"Code":"OK","Message":"OK","BizId":"...","RequestId":"..."}`
//! (voice: `CallId` instead of `BizId`). A business refusal (`isv.*`) comes
//! with HTTP 200 and its code; a gateway refusal (signature, AccessKey,
//! throttling) with HTTP 4xx/5xx and
//! `{"Code":"SignatureDoesNotMatch","Message":"...","RequestId":"...","HostId":"...","Recommend":"..."}`.
//! The codes and their sources are listed in docs/platforms/aliyun.md.

use std::time::Duration;

use serde_json::Value;

use crate::http::HttpResponse;
use crate::outcome::{Code, CodeClass, Outcome, Report};
use crate::platform::errcode::{self, str_field};

/// One entry of the table: a named code and what it means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedCode {
    pub code: &'static str,
    pub class: CodeClass,
    pub meaning: &'static str,
    pub action: &'static str,
}

/// The success code.
pub const OK: &str = "OK";
/// Per-number flow control; the message says which window was hit.
pub const BUSINESS_LIMIT_CONTROL: &str = "isv.BUSINESS_LIMIT_CONTROL";

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Every code docs/platforms/aliyun.md lists, with its class.
pub static CODES: &[NamedCode] = &[
    NamedCode {
        code: BUSINESS_LIMIT_CONTROL,
        class: CodeClass::RateLimited(MINUTE),
        meaning: "per-number flow control (by default 1 a minute, 5 an hour, 10 a day per number and signature; voice 1/minute, 5/hour, 20/day per called number)",
        action: "wait for the window the message names (minute, hour or day) before sending to this number again",
    },
    NamedCode {
        code: "isv.DAY_LIMIT_CONTROL",
        class: CodeClass::RateLimited(DAY),
        meaning: "the daily sending limit set in the console was reached",
        action: "wait for the next day or raise the limit in the SMS console",
    },
    NamedCode {
        code: "Throttling.User",
        class: CodeClass::Transient,
        meaning: "the account called the API above its QPS limit",
        action: "retry with backoff and send more slowly",
    },
    NamedCode {
        code: "isp.SYSTEM_ERROR",
        class: CodeClass::Transient,
        meaning: "Alibaba Cloud system error",
        action: "retry with backoff",
    },
    NamedCode {
        code: "ServiceUnavailable",
        class: CodeClass::Transient,
        meaning: "the service is temporarily unavailable",
        action: "retry with backoff",
    },
    NamedCode {
        code: "InternalError",
        class: CodeClass::Transient,
        meaning: "Alibaba Cloud internal error",
        action: "retry with backoff",
    },
    NamedCode {
        code: "isv.MOBILE_NUMBER_ILLEGAL",
        class: CodeClass::Permanent,
        meaning: "a phone number is not valid",
        action: "fix the number (mainland: 11 digits; elsewhere: country code + number)",
    },
    NamedCode {
        code: "isv.MOBILE_COUNT_OVER_LIMIT",
        class: CodeClass::Permanent,
        meaning: "too many numbers in one request (SendSms takes 1000)",
        action: "send fewer numbers per request",
    },
    NamedCode {
        code: "isv.SMS_TEMPLATE_ILLEGAL",
        class: CodeClass::Permanent,
        meaning: "the template does not exist, is not approved or is not this account's",
        action: "check `template_code` (or the message's template id) in the SMS console",
    },
    NamedCode {
        code: "isv.SMS_SIGNATURE_ILLEGAL",
        class: CodeClass::Permanent,
        meaning: "the signature does not exist, is not approved or is not this account's",
        action: "check `sign_name` in the SMS console",
    },
    NamedCode {
        code: "isv.TEMPLATE_MISSING_PARAMETERS",
        class: CodeClass::Permanent,
        meaning: "the template's variables were not all given",
        action: "give every variable of the template (or set `template_param` to the template's one variable)",
    },
    NamedCode {
        code: "isv.INVALID_JSON_PARAM",
        class: CodeClass::Permanent,
        meaning: "TemplateParam is not a JSON object of strings",
        action: "send template values as strings",
    },
    NamedCode {
        code: "isv.PARAM_LENGTH_LIMIT",
        class: CodeClass::Permanent,
        meaning: "a template variable is longer than allowed (35 characters for notification templates)",
        action: "shorten the value or lower `text_max_chars`",
    },
    NamedCode {
        code: "isv.INVALID_PARAMETERS",
        class: CodeClass::Permanent,
        meaning: "a parameter is not valid",
        action: "read the message: it names the parameter",
    },
    NamedCode {
        code: "isv.BLACK_KEY_CONTROL_LIMIT",
        class: CodeClass::Permanent,
        meaning: "a template variable contains a blacklisted keyword",
        action: "change the text; put fixed wording in the template instead",
    },
    NamedCode {
        code: "isv.PARAM_NOT_SUPPORT_URL",
        class: CodeClass::Permanent,
        meaning: "template variables may not carry URLs",
        action: "put the link in the template itself",
    },
    NamedCode {
        code: "isv.AMOUNT_NOT_ENOUGH",
        class: CodeClass::Permanent,
        meaning: "the account balance is not enough",
        action: "top up the Alibaba Cloud account",
    },
    NamedCode {
        code: "isv.OUT_OF_SERVICE",
        class: CodeClass::Permanent,
        meaning: "the service is suspended (account in arrears)",
        action: "top up the account; the service resumes by itself",
    },
    NamedCode {
        code: "isv.PRODUCT_UN_SUBSCRIPT",
        class: CodeClass::Permanent,
        meaning: "the product is not activated for this account",
        action: "activate SMS / voice service in the console",
    },
    NamedCode {
        code: "isv.ACCOUNT_NOT_EXISTS",
        class: CodeClass::Permanent,
        meaning: "the account does not exist",
        action: "check the AccessKey belongs to the right account",
    },
    NamedCode {
        code: "isv.ACCOUNT_ABNORMAL",
        class: CodeClass::Permanent,
        meaning: "the account is abnormal",
        action: "contact Alibaba Cloud support",
    },
    NamedCode {
        code: "isv.TTS_TEMPLATE_ILLEGAL",
        class: CodeClass::Permanent,
        meaning: "the TTS template does not exist or is not approved",
        action: "check `tts_code` in the voice console",
    },
    NamedCode {
        code: "isv.DISPLAY_NUMBER_ILLEGAL",
        class: CodeClass::Permanent,
        meaning: "the caller number (CalledShowNumber) is not one of this account's",
        action: "check `called_show_number`, or leave it out for the public number pool",
    },
    NamedCode {
        code: "isp.RAM_PERMISSION_DENY",
        class: CodeClass::Permanent,
        meaning: "the RAM user may not call this API",
        action: "grant the RAM user AliyunDysmsFullAccess / AliyunDyvmsFullAccess",
    },
    NamedCode {
        code: "SignatureDoesNotMatch",
        class: CodeClass::Permanent,
        meaning: "the request signature did not verify",
        action: "check `access_key_secret`",
    },
    NamedCode {
        code: "InvalidAccessKeyId.NotFound",
        class: CodeClass::Permanent,
        meaning: "the AccessKey ID does not exist",
        action: "check `access_key_id`",
    },
    NamedCode {
        code: "InvalidAccessKeyId.Inactive",
        class: CodeClass::Permanent,
        meaning: "the AccessKey is disabled",
        action: "enable the AccessKey or configure another one",
    },
    NamedCode {
        code: "InvalidTimeStamp.Expired",
        class: CodeClass::Permanent,
        meaning: "the request timestamp is more than 15 minutes off",
        action: "synchronise this host's clock (NTP)",
    },
    NamedCode {
        code: "InvalidTimeStamp.Format",
        class: CodeClass::Permanent,
        meaning: "the request timestamp is not well formatted",
        action: "report a bug: the SDK formats the timestamp",
    },
    NamedCode {
        code: "InvalidSignatureMethod",
        class: CodeClass::Permanent,
        meaning: "the signature method is not supported",
        action: "report a bug: the SDK signs with HMAC-SHA1",
    },
    NamedCode {
        code: "InvalidApi.NotFound",
        class: CodeClass::Permanent,
        meaning: "the API (Action) was not found at this host",
        action: "check `base_url` points at dysmsapi / dyvmsapi",
    },
    NamedCode {
        code: "SignatureNonceUsed",
        class: CodeClass::Transient,
        meaning: "the SignatureNonce was used already (a replay, or a retried request)",
        action: "retry: every request carries a fresh nonce",
    },
    NamedCode {
        code: "MissingParameter",
        class: CodeClass::Permanent,
        meaning: "a required parameter is missing",
        action: "read the message: it names the parameter",
    },
];

/// The table entry of `code`.
pub fn lookup(code: &str) -> Option<&'static NamedCode> {
    CODES.iter().find(|c| c.code == code)
}

/// The flow-control window a BUSINESS_LIMIT_CONTROL message names: the real
/// service says `触发分钟级流控Permits:1`, `触发小时级流控Permits:5` or
/// `触发天级流控Permits:10`. A minute when it says nothing recognisable.
pub fn limit_wait(message: &str) -> Duration {
    let m = message.to_ascii_lowercase();
    if message.contains("天级") || m.contains("day") {
        DAY
    } else if message.contains("小时级") || m.contains("hour") {
        HOUR
    } else {
        MINUTE
    }
}

/// Classify an answer; `id` is the success answer's id field (`BizId`, `CallId`).
pub fn classify(resp: &HttpResponse, id: &str) -> Report {
    // Aliyun's gateway errors are JSON with a code even on 4xx/5xx: keep the
    // code when there is one, else fall back to the transport classification.
    let v: Value = match serde_json::from_slice::<Value>(&resp.body) {
        Ok(v) if v.get("Code").and_then(Value::as_str).is_some() && resp.oversize.is_none() => v,
        _ => match errcode::json_body(resp, "Alibaba Cloud") {
            Ok(v) => v,
            Err(r) => return r,
        },
    };
    let code = str_field(&v, "Code");
    let message = str_field(&v, "Message");
    if code == OK && errcode::is_2xx(resp) {
        let mut r = Report::delivered().with_status(resp.status);
        r.platform_message_id = errcode::id_field(&v, id);
        return r;
    }
    if code.is_empty() {
        return Report::new(
            Outcome::Retry { after: None },
            format!("answer without Code: {}", resp.body_snippet()),
        )
        .with_status(resp.status);
    }
    let (class, hint) = match lookup(code) {
        Some(info) => {
            let class = if info.code == BUSINESS_LIMIT_CONTROL {
                CodeClass::RateLimited(limit_wait(message))
            } else {
                info.class
            };
            (class, Some(format!("{}; {}", info.meaning, info.action)))
        }
        // An unknown code: a 5xx is the service's trouble, anything else ours.
        None if resp.status >= 500 => (CodeClass::Transient, None),
        None => (CodeClass::Permanent, None),
    };
    let mut r = Report::new(class.outcome(), message)
        .with_status(resp.status)
        .with_code(Code::Name(code.to_string()));
    r.hint = hint;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn every_code_classifies_as_its_table_class() {
        for info in CODES {
            let body = serde_json::json!({"Code": info.code, "Message": "x", "RequestId": "r"});
            let r = classify(&resp(200, &body.to_string()), "BizId");
            assert_eq!(r.outcome, info.class.outcome(), "{}", info.code);
            assert_eq!(r.code, Some(Code::Name(info.code.into())));
            assert!(
                r.hint.as_deref().unwrap().contains(info.action),
                "{}",
                info.code
            );
        }
    }

    #[test]
    fn flow_control_waits_for_the_window_it_names() {
        for (msg, secs) in [
            ("触发分钟级流控Permits:1", 60),
            ("触发小时级流控Permits:5", 3600),
            ("触发天级流控Permits:10", 86_400),
        ] {
            let body = serde_json::json!({"Code": BUSINESS_LIMIT_CONTROL, "Message": msg});
            let r = classify(&resp(200, &body.to_string()), "BizId");
            assert_eq!(
                r.outcome,
                Outcome::RateLimited {
                    wait: Duration::from_secs(secs)
                },
                "{msg}"
            );
        }
    }

    #[test]
    fn ok_carries_the_id_and_gateway_errors_keep_their_code() {
        let ok = r#"{"Code":"OK","Message":"OK","BizId":"900619746936498440^0","RequestId":"r"}"#;
        let r = classify(&resp(200, ok), "BizId");
        assert!(r.outcome.is_delivered());
        assert_eq!(
            r.platform_message_id.as_deref(),
            Some("900619746936498440^0")
        );

        let bad = r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation.","RequestId":"r","HostId":"dysmsapi.aliyuncs.com"}"#;
        let r = classify(&resp(400, bad), "BizId");
        assert_eq!(r.outcome, Outcome::Permanent);
        assert_eq!(r.code, Some(Code::Name("SignatureDoesNotMatch".into())));

        let busy = r#"{"Code":"ServiceUnavailable","Message":"busy","RequestId":"r"}"#;
        assert_eq!(
            classify(&resp(503, busy), "BizId").outcome,
            Outcome::Retry { after: None }
        );
        // A proxy's HTML page is not an Aliyun answer.
        assert_eq!(
            classify(&resp(404, "<html>"), "BizId").outcome,
            Outcome::Permanent
        );
    }
}
