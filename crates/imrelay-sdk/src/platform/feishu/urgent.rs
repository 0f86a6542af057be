//! Urgent pushes (加急) about a message the app's bot sent:
//! `PATCH {base}/open-apis/im/v1/messages/{message_id}/urgent_app|urgent_sms|urgent_phone?user_id_type=..`
//! with `{"user_id_list": [...]}` and the tenant token.
//!
//! Confirmed from the official documentation (docs/platforms/urgent.md has
//! the URLs): the bot pushes only messages it sent itself, to users in the
//! message's chat; users outside it come back in `data.invalid_user_id_list`
//! and the others are pushed, and when none is valid the answer is code
//! 230001. At most 200 users a call; 50 calls a second and 1,000 a minute
//! per app; a user with 200 unread urgent messages cannot get more (230023);
//! SMS and phone pushes draw on the tenant's paid quota (230024 when it is
//! exhausted). Permissions: `im:message.urgent` (app),
//! `im:message.urgent:sms`, `im:message.urgent:phone`.

use serde_json::{json, Value};

use crate::destination::Quota;
use crate::http::HttpResponse;
use crate::lifecycle::UrgentKind;
use crate::outcome::{CodeClass, CodeInfo, Outcome, RecipientFailure, Report};

use super::codes;

/// Users per call.
pub const MAX_USERS: usize = 200;

/// The urgent endpoints' documented limits, per app.
pub const LIMITS: [Quota; 2] = [
    Quota::per_second(50),
    Quota {
        count: 1_000,
        per: std::time::Duration::from_secs(60),
    },
];

/// The last path segment for `kind`.
pub fn path_segment(kind: UrgentKind) -> &'static str {
    match kind {
        UrgentKind::App => "urgent_app",
        UrgentKind::Sms => "urgent_sms",
        UrgentKind::Phone => "urgent_phone",
    }
}

/// The request body.
pub fn body(users: &[String]) -> Value {
    json!({ "user_id_list": users })
}

/// The codes the urgent endpoints document, where they mean more than the
/// general table says (230027 is "not in external groups" here).
pub static CODES: &[CodeInfo] = &[
    CodeInfo {
        code: 230001,
        class: CodeClass::Permanent,
        meaning: "invalid parameter; for an urgent push also: none of the users is in the message's chat",
        action: "push users who received the message (the members of its chat)",
    },
    CodeInfo {
        code: 230002,
        class: CodeClass::Permanent,
        meaning: "the bot is not in the message's chat",
        action: "add the app's bot to the group",
    },
    CodeInfo {
        code: 230006,
        class: CodeClass::Permanent,
        meaning: "bot ability not enabled for the app",
        action: "enable the bot feature in the app's settings and publish a version",
    },
    CodeInfo {
        code: 230012,
        class: CodeClass::Permanent,
        meaning: "the bot is not the sender of the message: it pushes only its own messages",
        action: "check the message id and the app",
    },
    CodeInfo {
        code: 230013,
        class: CodeClass::Permanent,
        meaning: "the user is outside the app's availability (or has left the company)",
        action: "add the user to the app's availability range and publish a version",
    },
    CodeInfo {
        code: 230023,
        class: CodeClass::Permanent,
        meaning: "the user has 200 unread urgent messages",
        action: "the user must read some urgent messages in their chats before more can be pushed",
    },
    CodeInfo {
        code: 230024,
        class: CodeClass::Permanent,
        meaning: "the tenant's urgent (SMS/phone) quota is exhausted",
        action: "ask the tenant administrator to add urgent quota (admin console: cost center, SMS/phone urgent); app pushes stay free",
    },
    CodeInfo {
        code: 230027,
        class: CodeClass::Permanent,
        meaning: "urgent pushes are not allowed in external groups (or the app lacks the urgent permission)",
        action: "grant im:message.urgent / im:message.urgent:sms / im:message.urgent:phone; external groups cannot be pushed",
    },
    CodeInfo {
        code: 230052,
        class: CodeClass::Permanent,
        meaning: "no right to push this message urgently, or judged a risky operation",
        action: "let all members push in the group's settings (or make the bot an administrator), or ask the tenant administrator",
    },
    CodeInfo {
        code: 230098,
        class: CodeClass::Permanent,
        meaning: "the message is folded into an aggregate and cannot be pushed",
        action: "push a message that is not folded",
    },
    CodeInfo {
        code: 230110,
        class: CodeClass::Permanent,
        meaning: "the message was deleted",
        action: "send a new message and push that one",
    },
    CodeInfo {
        code: 232009,
        class: CodeClass::Permanent,
        meaning: "the chat was dissolved",
        action: "send to a chat that exists",
    },
];

/// Classify an urgent answer: `code == 0` is pushed, except to the users in
/// `data.invalid_user_id_list`, each a permanent failed recipient.
pub fn classify(resp: &HttpResponse) -> Report {
    if resp.classify_transport_status().is_some() {
        return codes::classify_api(resp);
    }
    let v = match resp.json() {
        Ok(v) => v,
        Err(r) => return r,
    };
    match v.get("code").and_then(Value::as_i64) {
        Some(0) => {
            let mut r = Report::delivered().with_status(resp.status);
            r.failed_recipients = v
                .pointer("/data/invalid_user_id_list")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|u| RecipientFailure {
                    recipient: u.to_string(),
                    outcome: Outcome::Permanent,
                    reason: "Feishu did not push this user: not in the message's chat (invalid_user_id_list)"
                        .into(),
                })
                .collect();
            r
        }
        Some(code) if crate::outcome::lookup(CODES, code).is_some() => Report::from_code(
            CODES,
            code,
            v.get("msg").and_then(Value::as_str).unwrap_or(""),
            resp.status,
            CodeClass::Permanent,
        ),
        _ => codes::classify_api(resp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Code;
    use crate::platform::testing::resp;

    #[test]
    fn paths_and_body() {
        assert_eq!(path_segment(UrgentKind::App), "urgent_app");
        assert_eq!(path_segment(UrgentKind::Sms), "urgent_sms");
        assert_eq!(path_segment(UrgentKind::Phone), "urgent_phone");
        assert_eq!(
            body(&["ou_1".into(), "ou_2".into()]),
            json!({"user_id_list": ["ou_1", "ou_2"]})
        );
    }

    #[test]
    fn invalid_users_are_failed_recipients_of_a_pushed_answer() {
        // The documented answer shape (urgent_app/urgent_sms/urgent_phone).
        let r = classify(&resp(
            200,
            r#"{"code":0,"msg":"success","data":{"invalid_user_id_list":["ou_gone"]}}"#,
        ));
        assert_eq!(r.outcome, Outcome::Delivered);
        assert_eq!(r.failed_recipients.len(), 1);
        assert_eq!(r.failed_recipients[0].recipient, "ou_gone");
        assert_eq!(r.failed_recipients[0].outcome, Outcome::Permanent);
        let all = classify(&resp(
            200,
            r#"{"code":0,"msg":"success","data":{"invalid_user_id_list":[]}}"#,
        ));
        assert!(all.outcome.is_delivered() && all.failed_recipients.is_empty());
    }

    #[test]
    fn refusals_keep_their_code_and_say_what_to_do() {
        let quota = classify(&resp(
            400,
            r#"{"code":230024,"msg":"Reach the upper limit of urgent message.","data":{}}"#,
        ));
        assert_eq!(quota.outcome, Outcome::Permanent);
        assert_eq!(quota.code, Some(Code::Int(230024)));
        assert!(quota.hint.as_deref().unwrap().contains("quota"));
        let external = classify(&resp(
            400,
            r#"{"code":230027,"msg":"Lack of necessary permissions."}"#,
        ));
        assert!(external.hint.as_deref().unwrap().contains("external"));
        let not_ours = classify(&resp(
            400,
            r#"{"code":230012,"msg":"Bot is NOT the sender of the message."}"#,
        ));
        assert_eq!(not_ours.outcome, Outcome::Permanent);
        assert_eq!(not_ours.code, Some(Code::Int(230012)));
        // General codes still come from the general table.
        let token = classify(&resp(400, r#"{"code":99991663,"msg":"invalid token"}"#));
        assert_eq!(token.outcome, Outcome::RefreshToken);
        let busy = classify(&resp(429, r#"{"code":99991400,"msg":"frequency limit"}"#));
        assert!(matches!(busy.outcome, Outcome::RateLimited { .. }));
    }
}
