//! WeCom (企业微信): the group robot webhook and app messages (platforms.md §3).
//!
//! | method | path | behaviour |
//! |---|---|---|
//! | POST | `/cgi-bin/webhook/send?key=KEY` | unknown key → 93000; 21st message within a minute → 45009; bad msgtype → 40008; empty content → 44004; over-size content (text > 2048 B, markdown > 4096 B, image > 2 MB, news > 8 articles) and missing fields → 40058; image md5 mismatch → 301019 |
//! | GET | `/cgi-bin/gettoken?corpid=&corpsecret=` | unknown corp → 40013; wrong secret → 40001; the same token while it is valid |
//! | POST | `/cgi-bin/message/send?access_token=` | missing token → 41001, unknown → 40014, expired → 42001; users, parties and tags whose id starts with `invalid` come back in `invaliduser`/`invalidparty`/`invalidtag` (users starting with `unlicensed` in `unlicenseduser`), all invalid → 81013; per member 30/minute and 1000/hour → 45009; with `enable_duplicate_check`, the same content to the same recipients within `duplicate_check_interval` is answered ok but not delivered (logged as a duplicate) |
//!
//! | POST | `/cgi-bin/message/update_template_card?access_token=` | `response_code` of a send (button, vote and multiple-choice cards answer one) or of a click: one use, 72 h, this app's only, else 60140; the whole `template_card` replaces the card (a new revision), or `button.replace_name` greys its buttons |
//! | POST | `/cgi-bin/message/recall?access_token=` | `msgid` of this app's message within 24 h; unknown, another app's, recalled or older → 40058 (the real codes are not documented) |
//!
//! Every app message taken is kept in [`MockState::sent`] as
//! `{"msgtype", <msgtype>: content}`, with its `agentid` and unused response
//! codes in `extra`. A click (`POST /_mock/messages/{id}/click`) fires a
//! `template_card_event` at the app's `callback.url`, encrypted with
//! `callback.token` / `callback.encoding_aes_key`, with a fresh `ResponseCode`.
//! A passive reply to the click is judged (decrypted) but not applied: WeCom
//! shows it to the clicking user only.
//!
//! Targets: `wecom:robot:{key}`, `wecom:app:{corpid}`. Errors answer HTTP 200
//! with `{"errcode":N,"errmsg":"..., hint: [...], more info at ...?e=N"}` like
//! the real service.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use axum::http::StatusCode;
use imrelay_sdk::Secret;

use crate::callback::{fire, wecom_card_action_event, CallbackKind, CallbackSpec, WecomCardClick};
use crate::config::MockPlatform;
use crate::faults::{inject, inject_token};
use crate::limiter::{LimitCheck, Window};
use crate::log::SignatureCheck;
use crate::platform::{app_callback, query_param, Call, ClickError, ErrcodePlatform};
use crate::sent::{Revision, SentError, SentMessage};
use crate::state::MockState;
use crate::tokens::TokenCheck;

const PLATFORM: &str = "wecom";
/// Robot content limits, UTF-8 bytes.
const ROBOT_TEXT_LIMIT: usize = 2048;
const ROBOT_MARKDOWN_LIMIT: usize = 4096;
/// App text/markdown limit, UTF-8 bytes.
const APP_TEXT_LIMIT: usize = 2048;
const IMAGE_LIMIT: usize = 2 * 1024 * 1024;
const MAX_ARTICLES: usize = 8;
const MAX_USERS: usize = 1000;
const MAX_PARTIES: usize = 100;
const DEFAULT_DUP_INTERVAL_S: i64 = 1800;
const MAX_DUP_INTERVAL_S: i64 = 4 * 3600;

/// The WeCom routes.
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/cgi-bin/webhook/send", post(robot_send))
        .route("/cgi-bin/gettoken", get(gettoken))
        .route("/cgi-bin/message/send", post(app_send))
        .route("/cgi-bin/message/update_template_card", post(update_card))
        .route("/cgi-bin/message/recall", post(recall))
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// WeCom's error body: the message, a request hint and the doc link.
fn error_body(state: &MockState, code: i64, msg: &str) -> Value {
    json!({
        "errcode": code,
        "errmsg": format!(
            "{msg}, hint: [{}_{}], more info at https://open.work.weixin.qq.com/devtool/query?e={code}",
            state.now_ms() / 1000,
            next_seq()
        ),
    })
}

/// How WeCom answers errors and logs duplicates.
static WECOM: ErrcodePlatform = ErrcodePlatform {
    name: PLATFORM,
    error_body,
    duplicate_reason: "duplicate within duplicate_check_interval: not delivered again",
};

/// Parse the body into the call (logged with it); the parse error, if any.
fn take_body(call: &mut Call, body: &[u8]) -> Option<(i64, String)> {
    match parse_body(body) {
        Ok(v) => {
            call.body = Some(v);
            None
        }
        Err(e) => Some(e),
    }
}

fn parse_body(body: &[u8]) -> Result<Value, (i64, String)> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) if v.is_object() => Ok(v),
        _ => Err((
            40058,
            "invalid json request, the body must be a JSON object".into(),
        )),
    }
}

type Check = Result<(), (i64, String)>;

fn content_check(v: &Value, msgtype: &str, limit: usize) -> Check {
    let content = v
        .get(msgtype)
        .and_then(|t| t.get("content"))
        .and_then(|c| c.as_str())
        .unwrap_or("");
    if content.trim().is_empty() {
        return Err((44004, "empty content".into()));
    }
    if content.len() > limit {
        return Err((
            40058,
            format!("{msgtype}.content exceed max length {limit}. invalid Request Parameter"),
        ));
    }
    Ok(())
}

fn str_field<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn require(v: &Value, path: &[&str]) -> Check {
    match str_field(v, path) {
        Some(_) => Ok(()),
        None => Err((
            40058,
            format!("missing {}. invalid Request Parameter", path.join(".")),
        )),
    }
}

fn news_check(v: &Value) -> Check {
    let articles = v
        .get("news")
        .and_then(|n| n.get("articles"))
        .and_then(|a| a.as_array())
        .ok_or((
            40058,
            "missing news.articles. invalid Request Parameter".to_string(),
        ))?;
    if articles.is_empty() || articles.len() > MAX_ARTICLES {
        return Err((
            40058,
            format!(
                "news.articles size must be 1 to {MAX_ARTICLES}, got {}. invalid Request Parameter",
                articles.len()
            ),
        ));
    }
    for a in articles {
        require(a, &["title"])?;
        require(a, &["url"])?;
    }
    Ok(())
}

fn template_card_check(v: &Value) -> Check {
    let card = v.get("template_card").ok_or((
        40058,
        "missing template_card. invalid Request Parameter".to_string(),
    ))?;
    match str_field(card, &["card_type"]) {
        Some("text_notice") => {
            if str_field(card, &["main_title", "title"]).is_none()
                && str_field(card, &["sub_title_text"]).is_none()
            {
                return Err((
                    40058,
                    "template_card.main_title.title or sub_title_text required".into(),
                ));
            }
        }
        Some("news_notice")
        | Some("button_interaction")
        | Some("vote_interaction")
        | Some("multiple_interaction") => {}
        _ => {
            return Err((
                40058,
                "invalid template_card.card_type. invalid Request Parameter".into(),
            ))
        }
    }
    // A url card action needs its url.
    if let Some(action) = card.get("card_action") {
        if action.get("type").and_then(|t| t.as_i64()) == Some(1) {
            require(action, &["url"])
                .map_err(|_| (40058, "missing template_card.card_action.url".to_string()))?;
        }
    }
    Ok(())
}

fn image_check(v: &Value) -> Check {
    let b64 = str_field(v, &["image", "base64"]).ok_or((
        40058,
        "missing image.base64. invalid Request Parameter".to_string(),
    ))?;
    let md5 = str_field(v, &["image", "md5"]).ok_or((
        40058,
        "missing image.md5. invalid Request Parameter".to_string(),
    ))?;
    let raw = B64.decode(b64).map_err(|_| {
        (
            40058,
            "image.base64 is not valid base64. invalid Request Parameter".to_string(),
        )
    })?;
    if raw.len() > IMAGE_LIMIT {
        return Err((
            40058,
            format!("image size exceed max {IMAGE_LIMIT} bytes. invalid Request Parameter"),
        ));
    }
    if !hex::encode(Md5::digest(&raw)).eq_ignore_ascii_case(md5) {
        return Err((301019, "media md5 not match".into()));
    }
    Ok(())
}

fn robot_check(v: &Value) -> Check {
    match v.get("msgtype").and_then(|m| m.as_str()).unwrap_or("") {
        "text" => content_check(v, "text", ROBOT_TEXT_LIMIT),
        "markdown" => content_check(v, "markdown", ROBOT_MARKDOWN_LIMIT),
        "markdown_v2" => content_check(v, "markdown_v2", ROBOT_MARKDOWN_LIMIT),
        "image" => image_check(v),
        "news" => news_check(v),
        "file" => require(v, &["file", "media_id"]),
        "voice" => require(v, &["voice", "media_id"]),
        "template_card" => template_card_check(v),
        _ => Err((40008, "invalid message type".into())),
    }
}

async fn robot_send(
    State(s): State<Arc<MockState>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let key = query_param(q.as_deref(), "key").unwrap_or_default();
    let mut call = Call::new(&s, &WECOM, "robot.send", format!("wecom:robot:{key}"));
    call.signature = SignatureCheck::NotRequired;
    let parse_err = take_body(&mut call, &body);
    if let Some(inj) = inject(&s, &call.target).await {
        return call.injected(inj);
    }
    if key.is_empty() || (s.robot(MockPlatform::Wecom, &key).is_none() && !s.accept_unknown()) {
        return call.reject(93000, "invalid webhook url");
    }
    if let Some((code, msg)) = parse_err {
        return call.reject(code, &msg);
    }
    if let Err((code, msg)) = robot_check(call.parsed()) {
        return call.reject(code, &msg);
    }
    // Only well-formed messages count against the robot's 20 a minute.
    let limiter_key = format!("wecom:robot:{key}");
    if s.limit(&limiter_key, &[Window::per_minute(20)], 0) != LimitCheck::Ok {
        return call.reject(45009, "api freq out of limit");
    }
    call.accept(false, json!({"errcode": 0, "errmsg": "ok"}))
}

async fn gettoken(State(s): State<Arc<MockState>>, RawQuery(q): RawQuery) -> Response {
    let corpid = query_param(q.as_deref(), "corpid").unwrap_or_default();
    let secret = query_param(q.as_deref(), "corpsecret").unwrap_or_default();
    let mut call = Call::new(&s, &WECOM, "token", format!("wecom:app:{corpid}"));
    // Never the secret in the log.
    call.body = Some(json!({"corpid": corpid}));
    if let Some(inj) = inject_token(&s, &call.target).await {
        return call.injected(inj);
    }
    let lifetime = match s.app(MockPlatform::Wecom, &corpid) {
        Some(app) if app.app_secret == secret => s.token_lifetime(&app),
        Some(_) => return call.reject(40001, "invalid credential"),
        None if s.accept_unknown() && !corpid.is_empty() => s.config().token_lifetime_secs,
        None => return call.reject(40013, "invalid corpid"),
    };
    let now = s.now_ms();
    // WeCom hands out the same token while it is valid.
    let (token, expires_in) = s
        .tokens
        .current(MockPlatform::Wecom, &corpid, now)
        .unwrap_or_else(|| s.tokens.issue(MockPlatform::Wecom, &corpid, now, lifetime));
    call.accept(
        false,
        json!({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in}),
    )
}

fn app_check(v: &Value) -> Check {
    match v.get("msgtype").and_then(|m| m.as_str()).unwrap_or("") {
        "text" => content_check(v, "text", APP_TEXT_LIMIT),
        "markdown" => content_check(v, "markdown", APP_TEXT_LIMIT),
        "textcard" => {
            require(v, &["textcard", "title"])?;
            require(v, &["textcard", "description"])?;
            require(v, &["textcard", "url"])
        }
        "news" => news_check(v),
        "image" => require(v, &["image", "media_id"]),
        "voice" => require(v, &["voice", "media_id"]),
        "video" => require(v, &["video", "media_id"]),
        "file" => require(v, &["file", "media_id"]),
        "mpnews" => Ok(()),
        "miniprogram_notice" => require(v, &["miniprogram_notice", "appid"]),
        "template_card" => template_card_check(v),
        _ => Err((40008, "invalid message type".into())),
    }
}

fn id_list(v: &Value, field: &str) -> Vec<String> {
    v.get(field)
        .and_then(|x| x.as_str())
        .unwrap_or("")
        .split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

async fn app_send(State(s): State<Arc<MockState>>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let token = query_param(q.as_deref(), "access_token").unwrap_or_default();
    let now = s.now_ms();
    let check = if token.is_empty() {
        None
    } else {
        Some(s.tokens.check(MockPlatform::Wecom, &token, now))
    };
    let corpid = match &check {
        Some(TokenCheck::Valid { app_id }) => app_id.clone(),
        _ => "?".to_string(),
    };
    let mut call = Call::new(&s, &WECOM, "message.send", format!("wecom:app:{corpid}"));
    let parse_err = take_body(&mut call, &body);
    match check {
        None => return call.reject(41001, "access_token missing"),
        Some(TokenCheck::Unknown) => return call.reject(40014, "invalid access_token"),
        Some(TokenCheck::Expired) => return call.reject(42001, "access_token expired"),
        Some(TokenCheck::Valid { .. }) => {}
    }
    if let Some(inj) = inject(&s, &call.target).await {
        return call.injected(inj);
    }
    if let Some((code, msg)) = parse_err {
        return call.reject(code, &msg);
    }
    let v = call.parsed();
    let Some(agentid) = v
        .get("agentid")
        .and_then(|a| a.as_i64().or_else(|| a.as_str()?.parse().ok()))
    else {
        return call.reject(40056, "invalid agentid");
    };
    if let Err((code, msg)) = app_check(v) {
        return call.reject(code, &msg);
    }
    let (users, parties, tags) = (
        id_list(v, "touser"),
        id_list(v, "toparty"),
        id_list(v, "totag"),
    );
    if users.is_empty() && parties.is_empty() && tags.is_empty() {
        return call.reject(
            40058,
            "touser, toparty and totag are all empty. invalid Request Parameter",
        );
    }
    if users.len() > MAX_USERS || parties.len() > MAX_PARTIES || tags.len() > MAX_PARTIES {
        return call.reject(
            40058,
            "too many recipients: touser <= 1000, toparty <= 100, totag <= 100. invalid Request Parameter",
        );
    }
    let is_invalid = |id: &String| id.starts_with("invalid");
    let invaliduser: Vec<&String> = users.iter().filter(|u| is_invalid(u)).collect();
    let unlicensed: Vec<&String> = users
        .iter()
        .filter(|u| u.starts_with("unlicensed"))
        .collect();
    let invalidparty: Vec<&String> = parties.iter().filter(|p| is_invalid(p)).collect();
    let invalidtag: Vec<&String> = tags.iter().filter(|t| is_invalid(t)).collect();
    let total = users.len() + parties.len() + tags.len();
    if invaliduser.len() + unlicensed.len() + invalidparty.len() + invalidtag.len() == total {
        return call.reject(81013, "user & party & tag all invalid");
    }

    // Duplicate check: identical content to identical recipients within the
    // interval is answered ok and not delivered again.
    let duplicate = v.get("enable_duplicate_check").and_then(|d| d.as_i64()) == Some(1) && {
        let interval = v
            .get("duplicate_check_interval")
            .and_then(|d| d.as_i64())
            .unwrap_or(DEFAULT_DUP_INTERVAL_S)
            .clamp(1, MAX_DUP_INTERVAL_S);
        let msgtype = v.get("msgtype").and_then(|m| m.as_str()).unwrap_or("");
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (agentid, &users, &parties, &tags, msgtype).hash(&mut h);
        v.get(msgtype).map(|c| c.to_string()).hash(&mut h);
        let key = format!("wecom:dup:{corpid}:{:016x}", h.finish());
        s.dedup.seen(&key, interval * 1000, now)
    };
    if !duplicate {
        // Per member: 30 a minute and 1000 an hour from one app.
        let windows = [
            Window::per_minute(30),
            Window {
                count: 1000,
                window_ms: 3_600_000,
            },
        ];
        for u in users.iter().filter(|u| *u != "@all" && !is_invalid(u)) {
            if s.limit(&format!("wecom:app:{corpid}:{agentid}:{u}"), &windows, 0) != LimitCheck::Ok
            {
                return call.reject(45009, "api freq out of limit");
            }
        }
    }
    let mut answer = Map::new();
    answer.insert("errcode".into(), 0.into());
    answer.insert("errmsg".into(), "ok".into());
    for (field, ids) in [
        ("invaliduser", &invaliduser),
        ("invalidparty", &invalidparty),
        ("invalidtag", &invalidtag),
        ("unlicenseduser", &unlicensed),
    ] {
        if !ids.is_empty() {
            let joined: Vec<&str> = ids.iter().map(|s| s.as_str()).collect();
            answer.insert(field.into(), joined.join("|").into());
        }
    }
    let msgid = format!("mock_{:016x}", next_seq());
    answer.insert("msgid".into(), msgid.clone().into());
    if !duplicate {
        let msgtype = v.get("msgtype").and_then(|m| m.as_str()).unwrap_or("");
        let content = json!({ "msgtype": msgtype, msgtype: v.get(msgtype).cloned() });
        let mut recipients = users.clone();
        recipients.extend(parties.iter().map(|p| format!("party:{p}")));
        recipients.extend(tags.iter().map(|t| format!("tag:{t}")));
        let mut m = SentMessage::new(
            MockPlatform::Wecom,
            msgid,
            call.target.clone(),
            recipients,
            content,
            now,
        );
        m.extra.insert("agentid".into(), agentid.into());
        let card_type = str_field(v, &["template_card", "card_type"]).unwrap_or("");
        if msgtype == "template_card" && CARDS_WITH_RESPONSE_CODE.contains(&card_type) {
            let code = issue_response_code(&mut m, now);
            answer.insert("response_code".into(), code.into());
        }
        s.sent.insert(m);
    }
    call.accept(duplicate, Value::Object(answer))
}

// ---------------------------------------------------------------------------
// After the send: update_template_card, recall, card clicks

/// Template cards whose send answers a `response_code`.
const CARDS_WITH_RESPONSE_CODE: &[&str] = &[
    "button_interaction",
    "vote_interaction",
    "multiple_interaction",
];
/// A `response_code` is good for one update within 72 hours.
pub const RESPONSE_CODE_TTL_MS: i64 = 72 * 3_600_000;
/// App messages are recalled within 24 hours.
pub const RECALL_WINDOW_MS: i64 = 24 * 3_600_000;
/// The `extra` key of the unused response codes of a message.
const RESPONSE_CODES: &str = "response_codes";

/// Hand out a fresh `response_code` for `m`, remembered until used.
fn issue_response_code(m: &mut SentMessage, now: i64) -> String {
    let code = imrelay_sdk::crypto::random_alnum(64);
    let codes = m
        .extra
        .entry(RESPONSE_CODES.into())
        .or_insert_with(|| json!([]));
    if let Some(a) = codes.as_array_mut() {
        a.push(json!({ "code": code, "issued_at_ms": now }));
    }
    code
}

/// The message of this app holding `code`, unused.
fn holder_of(s: &MockState, target: &str, code: &str) -> Option<(SentMessage, i64)> {
    s.sent
        .list(Some(MockPlatform::Wecom), Some(target))
        .into_iter()
        .find_map(|m| {
            let issued = m
                .extra
                .get(RESPONSE_CODES)?
                .as_array()?
                .iter()
                .find_map(|c| {
                    (c["code"] == code).then(|| c["issued_at_ms"].as_i64().unwrap_or_default())
                })?;
            Some((m, issued))
        })
}

/// The app behind a token, or the refusal (41001, 40014, 42001).
fn app_of(s: &MockState, q: Option<&str>) -> Result<String, (i64, &'static str)> {
    let token = query_param(q, "access_token").unwrap_or_default();
    if token.is_empty() {
        return Err((41001, "access_token missing"));
    }
    match s.tokens.check(MockPlatform::Wecom, &token, s.now_ms()) {
        TokenCheck::Valid { app_id } => Ok(app_id),
        TokenCheck::Unknown => Err((40014, "invalid access_token")),
        TokenCheck::Expired => Err((42001, "access_token expired")),
    }
}

const MSG_60140: &str = "response_code expired or used";

async fn update_card(
    State(s): State<Arc<MockState>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let app = app_of(&s, q.as_deref());
    let corpid = app.clone().unwrap_or_else(|_| "?".into());
    let mut call = Call::new(
        &s,
        &WECOM,
        "message.update_template_card",
        format!("wecom:app:{corpid}"),
    );
    let parse_err = take_body(&mut call, &body);
    if let Err((code, msg)) = app {
        return call.reject(code, msg);
    }
    if let Some(inj) = inject(&s, &call.target).await {
        return call.injected(inj);
    }
    if let Some((code, msg)) = parse_err {
        return call.reject(code, &msg);
    }
    let v = call.parsed().clone();
    if v.get("agentid")
        .and_then(|a| a.as_i64().or_else(|| a.as_str()?.parse().ok()))
        .is_none()
    {
        return call.reject(40056, "invalid agentid");
    }
    let Some(code) = str_field(&v, &["response_code"]).map(str::to_string) else {
        return call.reject(40058, "missing response_code. invalid Request Parameter");
    };
    let replace_name = str_field(&v, &["button", "replace_name"]).map(str::to_string);
    if replace_name.is_none() {
        if let Err((c, msg)) = template_card_check(&v) {
            return call.reject(c, &msg);
        }
    }
    let now = s.now_ms();
    // Codes are the app's own: another app's code is not found, like a used one.
    let Some((m, issued)) = holder_of(&s, &call.target, &code) else {
        return call.reject(60140, MSG_60140);
    };
    if now - issued > RESPONSE_CODE_TTL_MS {
        return call.reject(60140, MSG_60140);
    }
    let applied = s.sent.modify(&m.message_id, &call.target, now, None, |m| {
        if let Some(a) = m
            .extra
            .get_mut(RESPONSE_CODES)
            .and_then(|c| c.as_array_mut())
        {
            a.retain(|c| c["code"] != code.as_str());
        }
        let content = match &replace_name {
            // Only the buttons change: they show the replacement text.
            Some(name) => {
                let mut c = m.current().clone();
                c["template_card"]["replace_text"] = json!(name);
                c
            }
            None => json!({ "msgtype": "template_card", "template_card": v["template_card"] }),
        };
        m.revisions.push(Revision {
            at_ms: now,
            content,
        });
    });
    match applied {
        Ok(()) => call.accept(false, json!({"errcode": 0, "errmsg": "ok"})),
        Err(_) => call.reject(60140, MSG_60140),
    }
}

async fn recall(State(s): State<Arc<MockState>>, RawQuery(q): RawQuery, body: Bytes) -> Response {
    let app = app_of(&s, q.as_deref());
    let corpid = app.clone().unwrap_or_else(|_| "?".into());
    let mut call = Call::new(&s, &WECOM, "message.recall", format!("wecom:app:{corpid}"));
    let parse_err = take_body(&mut call, &body);
    if let Err((code, msg)) = app {
        return call.reject(code, msg);
    }
    if let Some(inj) = inject(&s, &call.target).await {
        return call.injected(inj);
    }
    if let Some((code, msg)) = parse_err {
        return call.reject(code, &msg);
    }
    let Some(msgid) = str_field(call.parsed(), &["msgid"]).map(str::to_string) else {
        return call.reject(40058, "missing msgid. invalid Request Parameter");
    };
    let outcome = s
        .sent
        .recall(&msgid, &call.target, s.now_ms(), Some(RECALL_WINDOW_MS));
    match outcome {
        Ok(()) => call.accept(false, json!({"errcode": 0, "errmsg": "ok"})),
        Err(SentError::NotFound) => call.reject(
            40058,
            "invalid msgid: not a message of this app. invalid Request Parameter",
        ),
        Err(SentError::Recalled) => call.reject(40058, "msgid already recalled"),
        Err(SentError::PastWindow) => call.reject(
            40058,
            "msgid expired: app messages are recalled within 24 hours",
        ),
    }
}

/// The key of the button of `action` on a template card (a button imrelay
/// drew names its action in its JSON key; any other key matches verbatim).
fn find_button(card: &Value, action: &str) -> Option<String> {
    card.get("button_list")?
        .as_array()?
        .iter()
        .filter_map(|b| b.get("key")?.as_str())
        .find(|key| {
            serde_json::from_str::<Value>(key)
                .ok()
                .and_then(|k| {
                    k.get(imrelay_sdk::lifecycle::ACTION_VALUE_ACTION)
                        .and_then(Value::as_str)
                        .map(|a| a == action)
                })
                .unwrap_or(*key == action)
        })
        .map(str::to_string)
}

/// Fire a `template_card_event` for a click by `user` on the `action` button
/// of `m`, encrypted with the app's callback secrets (WXBizMsgCrypt), with a
/// fresh `ResponseCode` the mock then accepts for one update.
pub(crate) async fn click(
    s: &MockState,
    m: &SentMessage,
    action: &str,
    user: &str,
) -> Result<Value, ClickError> {
    let corpid = m
        .target
        .strip_prefix("wecom:app:")
        .ok_or_else(|| ClickError::new(StatusCode::BAD_REQUEST, "not an app's message"))?;
    let cb = app_callback(s, MockPlatform::Wecom, corpid)?;
    let card = m
        .current()
        .get("template_card")
        .cloned()
        .unwrap_or_default();
    let key = find_button(&card, action).ok_or_else(|| {
        ClickError::new(
            StatusCode::NOT_FOUND,
            format!(
                "the current card of {} has no button with action `{action}`",
                m.message_id
            ),
        )
    })?;
    let now = s.now_ms();
    let code = s
        .sent
        .modify(&m.message_id, &m.target, now, None, |m| {
            issue_response_code(m, now)
        })
        .map_err(|e| ClickError::new(StatusCode::CONFLICT, format!("{e:?}")))?;
    let agent = cb.agent_id.clone().unwrap_or_else(|| {
        m.extra
            .get("agentid")
            .map(|a| a.to_string().trim_matches('"').to_string())
            .unwrap_or_else(|| "1000002".into())
    });
    let xml = wecom_card_action_event(&WecomCardClick {
        corp_id: corpid,
        user,
        event_key: &key,
        task_id: card
            .get("task_id")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        card_type: card
            .get("card_type")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        response_code: &code,
        agent_id: &agent,
        create_time: now / 1000,
    });
    let mut spec = CallbackSpec::new(CallbackKind::WecomCardAction, cb.url);
    // Signed at the platform's time (the mock's clock, which tests move).
    spec.timestamp = Some(now / 1000);
    spec.token = cb.token.map(Secret::new);
    spec.encoding_aes_key = cb.encoding_aes_key.map(Secret::new);
    spec.receive_id = Some(corpid.to_string());
    spec.agent_id = Some(agent);
    spec.payload = Some(xml.clone());
    // WeCom waits 5 seconds for an answer.
    spec.timeout_ms = Some(5000);
    let result = fire(spec)
        .await
        .map_err(|e| ClickError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(json!({
        "platform": "wecom",
        "message_id": m.message_id,
        "event": xml,
        "response_code": code,
        "callback": result,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buttons_are_found_by_the_action_in_their_key() {
        let card = json!({"button_list": [
            {"text": "认领", "key": r#"{"imrelay_message":"m","imrelay_action":"ack"}"#},
            {"text": "other", "key": "approve"},
        ]});
        assert_eq!(
            find_button(&card, "ack").as_deref(),
            Some(r#"{"imrelay_message":"m","imrelay_action":"ack"}"#)
        );
        assert_eq!(find_button(&card, "approve").as_deref(), Some("approve"));
        assert_eq!(find_button(&card, "resolve"), None);
        assert_eq!(find_button(&json!({}), "ack"), None);
    }

    #[test]
    fn response_codes_are_issued_once_each_and_found_by_their_holder() {
        let s = MockState::new(crate::config::MockConfig::default());
        let mut m = SentMessage::new(
            MockPlatform::Wecom,
            "mid",
            "wecom:app:c",
            vec![],
            json!({}),
            0,
        );
        let a = issue_response_code(&mut m, 0);
        let b = issue_response_code(&mut m, 5);
        assert_ne!(a, b);
        s.sent.insert(m);
        assert_eq!(
            holder_of(&s, "wecom:app:c", &b).map(|(m, at)| (m.message_id, at)),
            Some(("mid".into(), 5))
        );
        assert!(holder_of(&s, "wecom:app:other", &a).is_none());
    }
}
