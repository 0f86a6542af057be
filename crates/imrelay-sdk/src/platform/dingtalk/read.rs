//! Who read a `dingtalk_app` message.
//!
//! | sent as | request | answer |
//! |---|---|---|
//! | work notice | `POST {oapi}/topapi/message/corpconversation/getsendresult?access_token=` `{agent_id, task_id}` | `send_result.{read_user_id_list, unread_user_id_list, ...}` |
//! | robot 1:1 | `GET {api}/v1.0/robot/oToMessages/readStatus?processQueryKey=&robotCode=` | `messageReadInfoList[{userId, readStatus, readTimestamp}]` |
//! | robot in a group | `POST {api}/v1.0/robot/groupMessages/query` `{openConversationId, processQueryKey, robotCode, maxResults, nextToken}` | `readUserIds`, paged by `hasMore`/`nextToken`; no unread list |
//!
//! Sources: `robot_1_0` `BatchOTOQueryRequest` (GET, query parameters),
//! `OrgGroupQueryRequest` and their response models (aliyun/dingtalk-sdk); `getsendresult` as DingTalk's
//! legacy SDKs model it (`send_result` with the five lists). DingTalk keeps a
//! work notice's send result for 24 hours and answers it only for tasks of at
//! most 100 recipients, which imrelay's batching keeps to. UNSURE: the
//! `readStatus` values (`READ` taken as read, anything else as unread); the
//! largest `maxResults` a group query takes (100 asked).

use serde_json::{json, Value};

use super::codes;
use crate::http::HttpResponse;
use crate::outcome::Report;

pub use crate::lifecycle::ReadStatus;

/// The `getsendresult` body.
pub fn send_result_body(agent_id: i64, task_id: i64) -> Value {
    json!({"agent_id": agent_id, "task_id": task_id})
}

fn ids(v: &Value, name: &str) -> Vec<String> {
    v.get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Users asked for per group query page.
pub const GROUP_PAGE: u32 = 100;

/// A group message read query, from `next_token` when paging on.
pub fn group_query_body(
    robot_code: &str,
    open_conversation_id: &str,
    key: &str,
    next_token: Option<&str>,
) -> Value {
    let mut b = json!({
        "robotCode": robot_code,
        "openConversationId": open_conversation_id,
        "processQueryKey": key,
        "maxResults": GROUP_PAGE,
    });
    if let Some(t) = next_token {
        b["nextToken"] = json!(t);
    }
    b
}

/// One page of a group read query: who read it, and the token of the next
/// page when there is one.
pub fn parse_group_query(resp: &HttpResponse) -> Result<(Vec<String>, Option<String>), Report> {
    let v = codes::classify_v1(resp)?;
    let more = v.get("hasMore").and_then(Value::as_bool) == Some(true);
    let next = v
        .get("nextToken")
        .and_then(Value::as_str)
        .filter(|t| more && !t.is_empty())
        .map(str::to_string);
    Ok((ids(&v, "readUserIds"), next))
}

/// Parse a `getsendresult` answer.
pub fn parse_send_result(resp: &HttpResponse) -> Result<ReadStatus, Report> {
    let v = codes::classify_oapi(resp)?;
    let r = v.get("send_result").unwrap_or(&Value::Null);
    Ok(ReadStatus {
        read: ids(r, "read_user_id_list"),
        unread: ids(r, "unread_user_id_list"),
    })
}

/// Parse a robot `readStatus` answer.
pub fn parse_robot_read_status(resp: &HttpResponse) -> Result<ReadStatus, Report> {
    let v = codes::classify_v1(resp)?;
    let mut s = ReadStatus::default();
    for info in v
        .get("messageReadInfoList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(user) = info.get("userId").and_then(Value::as_str) else {
            continue;
        };
        if info.get("readStatus").and_then(Value::as_str) == Some("READ") {
            s.read.push(user.to_string());
        } else {
            s.unread.push(user.to_string());
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testing::resp;

    #[test]
    fn work_notice_lists() {
        let s = parse_send_result(&resp(
            200,
            r#"{"errcode":0,"errmsg":"ok","send_result":{"read_user_id_list":["u1"],"unread_user_id_list":["u2","u3"],"invalid_user_id_list":[]}}"#,
        ))
        .unwrap();
        assert_eq!(s.read, vec!["u1"]);
        assert_eq!(s.unread, vec!["u2", "u3"]);
        let err =
            parse_send_result(&resp(200, r#"{"errcode":40014,"errmsg":"bad token"}"#)).unwrap_err();
        assert_eq!(err.outcome, crate::Outcome::RefreshToken);
    }

    #[test]
    fn group_pages() {
        let (read, next) = parse_group_query(&resp(
            200,
            r#"{"readUserIds":["u1","u2"],"hasMore":true,"nextToken":"t2","sendStatus":"SUCCESS"}"#,
        ))
        .unwrap();
        assert_eq!(
            (read, next.as_deref()),
            (vec!["u1".to_string(), "u2".to_string()], Some("t2"))
        );
        let (_, last) = parse_group_query(&resp(
            200,
            r#"{"readUserIds":[],"hasMore":false,"nextToken":"x"}"#,
        ))
        .unwrap();
        assert_eq!(last, None);
        assert_eq!(
            group_query_body("k", "cid1", "pqk", Some("t2")),
            json!({"robotCode": "k", "openConversationId": "cid1", "processQueryKey": "pqk", "maxResults": 100, "nextToken": "t2"})
        );
    }

    #[test]
    fn robot_read_infos() {
        let s = parse_robot_read_status(&resp(
            200,
            r#"{"sendStatus":"SUCCESS","messageReadInfoList":[{"name":"A","userId":"u1","readStatus":"READ","readTimestamp":1},{"name":"B","userId":"u2","readStatus":"UNREAD","readTimestamp":0}]}"#,
        ))
        .unwrap();
        assert_eq!(s.read, vec!["u1"]);
        assert_eq!(s.unread, vec!["u2"]);
    }
}
