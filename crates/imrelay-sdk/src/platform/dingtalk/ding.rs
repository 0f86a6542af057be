//! DING (钉一下): the app's robot pushes an urgent notification in the app,
//! by SMS or by phone. `POST {api}/v1.0/robot/ding/send` with header
//! `x-acs-dingtalk-access-token` and
//! `{"robotCode", "remindType": 1|2|3, "receiverUserIdList", "content"}`;
//! the answer is `{"openDingId", "failedList": {"reason": [userId, ..]}}`.
//!
//! A DING is a message of its own carrying `content`: it does not point at
//! the message sent before, so one call serves a whole push.
//!
//! Confirmed from the official documentation (docs/platforms/urgent.md has
//! the URLs): internal apps only, permission `Premium.Ding.Write`
//! (企业机器人发送撤回DING消息), DingTalk Professional/Exclusive editions only;
//! SMS and phone DINGs need a purchased quota (`ding.serverquota.insufficient`
//! without it); at most 200 receivers in the app, 20 by SMS or phone
//! (`ding.receivercount.limit`); under 6,000 a minute per robot
//! (`toomuch.msg`).

use std::time::Duration;

use serde_json::{json, Value};

use super::codes::{self, NamedCode};
use crate::destination::Quota;
use crate::http::HttpResponse;
use crate::lifecycle::UrgentKind;
use crate::outcome::{Code, CodeClass, Outcome, RecipientFailure, Report};

pub const DING_PATH: &str = "/v1.0/robot/ding/send";

/// Per robot: fewer than 6,000 DINGs a minute.
pub const LIMITS: [Quota; 1] = [Quota::per_minute(5_999)];

/// How long to wait after `toomuch.msg`.
const TOO_FAST_WAIT: Duration = Duration::from_secs(10);

/// DingTalk's `remindType`.
pub fn remind_type(kind: UrgentKind) -> u8 {
    match kind {
        UrgentKind::App => 1,
        UrgentKind::Sms => 2,
        UrgentKind::Phone => 3,
    }
}

/// The most receivers of one DING of `kind`.
pub fn max_receivers(kind: UrgentKind) -> usize {
    match kind {
        UrgentKind::App => 200,
        UrgentKind::Sms | UrgentKind::Phone => 20,
    }
}

/// The request body.
pub fn body(robot_code: &str, kind: UrgentKind, users: &[String], content: &str) -> Value {
    json!({
        "robotCode": robot_code,
        "remindType": remind_type(kind),
        "receiverUserIdList": users,
        "content": content,
    })
}

/// The codes the DING API documents.
pub static CODES: &[NamedCode] = &[
    NamedCode {
        code: "ding.serverquota.insufficient",
        class: CodeClass::Permanent,
        meaning: "the organisation's DING quota is exhausted (SMS and phone DINGs are bought separately)",
        action: "buy DING quota in the admin console (增值服务 > 产品专区), or push by app",
    },
    NamedCode {
        code: "ding.receivercount.limit",
        class: CodeClass::Permanent,
        meaning: "too many receivers: at most 200 in the app, 20 by SMS or phone",
        action: "push fewer users at once",
    },
    NamedCode {
        code: "toomuch.msg",
        class: CodeClass::RateLimited(TOO_FAST_WAIT),
        meaning: "the robot sent too fast (under 6,000 a minute)",
        action: "send more slowly",
    },
    NamedCode {
        code: "invalid.chatbotId",
        class: CodeClass::Permanent,
        meaning: "the robotCode is not a robot of this organisation",
        action: "set `robot_code` to the app robot's code (its app key for an internal app's robot)",
    },
    NamedCode {
        code: "miss.staffId",
        class: CodeClass::Permanent,
        meaning: "no valid receiver userId",
        action: "push users of the organisation, by userId",
    },
    NamedCode {
        code: "send.ding.exception",
        class: CodeClass::Permanent,
        meaning: "DingTalk could not send the DING (the edition lacks DING, or the app the Premium.Ding.Write permission)",
        action: "check the organisation is on DingTalk Professional/Exclusive and the app has the DING permission",
    },
    NamedCode {
        code: "invalidParameter.param.invalid",
        class: CodeClass::Permanent,
        meaning: "a parameter is invalid",
        action: "check the users and the content",
    },
];

/// Classify a DING answer: sent (with its `openDingId` in the message) except
/// to the users listed under a reason in `failedList`.
pub fn classify(resp: &HttpResponse) -> Report {
    if !(200..300).contains(&resp.status) && resp.classify_transport_status().is_none() {
        let v: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let code = v.get("code").and_then(Value::as_str).unwrap_or("");
        if let Some(info) = CODES.iter().find(|c| c.code == code) {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or(code)
                .to_string();
            return Report::new(info.class.outcome(), message)
                .with_status(resp.status)
                .with_code(Code::Name(code.to_string()))
                .with_hint(format!("{}; {}", info.meaning, info.action));
        }
    }
    let v = match codes::classify_v1(resp) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let id = v.get("openDingId").and_then(Value::as_str).unwrap_or("");
    let mut r = Report::delivered().with_status(resp.status);
    r.message = if id.is_empty() {
        "DING sent".into()
    } else {
        format!("DING sent (openDingId {id})")
    };
    if let Some(Value::Object(failed)) = v.get("failedList") {
        for (reason, users) in failed {
            for u in users
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                r.failed_recipients.push(RecipientFailure {
                    recipient: u.to_string(),
                    outcome: Outcome::Permanent,
                    reason: format!("DingTalk did not DING this user: {reason}"),
                });
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn body_names_the_remind_type() {
        assert_eq!(
            body(
                "dingkey",
                UrgentKind::Phone,
                &["manager7675".into()],
                "disk full"
            ),
            json!({"robotCode": "dingkey", "remindType": 3, "receiverUserIdList": ["manager7675"], "content": "disk full"})
        );
        assert_eq!(remind_type(UrgentKind::App), 1);
        assert_eq!(remind_type(UrgentKind::Sms), 2);
        assert_eq!(max_receivers(UrgentKind::App), 200);
        assert_eq!(max_receivers(UrgentKind::Sms), 20);
    }

    #[test]
    fn failed_users_are_listed_with_their_reason() {
        // The documented answer: `{"openDingId": .., "failedList": {"reason": [users]}}`.
        let r = classify(&resp(
            200,
            r#"{"openDingId":"54165xxx","failedList":{"userid not found":["u9","u8"]}}"#,
        ));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert!(r.message.contains("54165xxx"));
        let failed: Vec<_> = r
            .failed_recipients
            .iter()
            .map(|f| f.recipient.as_str())
            .collect();
        assert_eq!(failed, ["u9", "u8"]);
        assert!(r.failed_recipients[0].reason.contains("userid not found"));
    }

    #[test]
    fn documented_codes_classify() {
        let quota = classify(&resp(
            400,
            r#"{"code":"ding.serverquota.insufficient","message":"ding server quota insufficient","requestid":"r"}"#,
        ));
        assert_eq!(quota.outcome, Outcome::Permanent);
        assert_eq!(
            quota.code,
            Some(Code::Name("ding.serverquota.insufficient".into()))
        );
        assert!(quota.hint.as_deref().unwrap().contains("quota"));
        let fast = classify(&resp(
            400,
            r#"{"code":"toomuch.msg","message":"send too fast"}"#,
        ));
        assert!(matches!(fast.outcome, Outcome::RateLimited { .. }));
        let token = classify(&resp(
            401,
            r#"{"code":"InvalidAuthentication","message":"x"}"#,
        ));
        assert_eq!(token.outcome, Outcome::RefreshToken);
        let down = classify(&resp(
            500,
            r#"{"code":"system.error","message":"system.error"}"#,
        ));
        assert!(matches!(down.outcome, Outcome::Retry { .. }));
    }
}
