//! WeChat Official Account (公众号): access tokens and template/subscribe
//! messages (platforms.md §4).
//!
//! | method | path | behaviour |
//! |---|---|---|
//! | POST | `/cgi-bin/stable_token` | `{"grant_type","appid","secret","force_refresh"}`: the same token while it is valid unless `force_refresh`; unknown appid → 40013, wrong secret → 40125, bad grant_type → 40002 |
//! | GET | `/cgi-bin/token?grant_type=client_credential&appid=&secret=` | a new token on every call, invalidating the previous `/cgi-bin/token` token (the real 5-minute overlap is not modelled); `stable_token` tokens are independent; wrong secret → 40001 |
//! | POST | `/cgi-bin/message/template/send?access_token=` | missing token → 41001, unknown → 40001, expired → 42001 (`access_token expired rid: ...`); openid starting with `invalid` → 40003; missing or `invalid…` template_id → 40037; malformed `data` → 47003; the same `touser` + `client_msg_id` again within 10 minutes is answered ok but not delivered (logged as a duplicate) |
//! | POST | `/cgi-bin/message/subscribe/bizsend?access_token=` | as template/send, without `client_msg_id`; openid starting with `refused` → 43101 |
//!
//! Target: `wechat:app:{appid}`. Errors answer HTTP 200 with
//! `{"errcode":N,"errmsg":"... rid: ..."}`; token answers carry no `errcode`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::config::MockPlatform;
use crate::faults::{inject, inject_token};
use crate::platform::{query_param, Call, ErrcodePlatform};
use crate::state::MockState;
use crate::tokens::TokenCheck;

const PLATFORM: &str = "wechat";
/// How long WeChat remembers a `client_msg_id` (UNSURE in platforms.md: 10 min).
const CLIENT_MSG_ID_WINDOW_MS: i64 = 10 * 60 * 1000;
/// `/cgi-bin/token` tokens are kept under `{appid}#token` in the token store so
/// that they neither replace nor revoke the `stable_token` token.
const PLAIN_TOKEN_SUFFIX: &str = "#token";

/// The WeChat routes.
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/token", get(plain_token))
        .route("/cgi-bin/message/template/send", post(template_send))
        .route("/cgi-bin/message/subscribe/bizsend", post(subscribe_send))
}

static SEQ: AtomicU64 = AtomicU64::new(1);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn error_body(_: &MockState, code: i64, msg: &str) -> Value {
    json!({"errcode": code, "errmsg": format!("{msg} rid: {:08x}-{:08x}", std::process::id(), next_seq())})
}

/// How WeChat answers errors and logs duplicates.
static WECHAT: ErrcodePlatform = ErrcodePlatform {
    name: PLATFORM,
    error_body,
    duplicate_reason: "same touser and client_msg_id as an earlier message: not delivered again",
};

/// Which lifetime a credential gets, or the error for a bad one.
fn credential(
    s: &MockState,
    appid: &str,
    secret: &str,
    wrong_secret: (i64, &'static str),
) -> Result<u64, (i64, &'static str)> {
    match s.app(MockPlatform::Wechat, appid) {
        Some(app) if app.app_secret == secret => Ok(s.token_lifetime(&app)),
        Some(_) => Err(wrong_secret),
        None if s.accept_unknown() && !appid.is_empty() => Ok(s.config().token_lifetime_secs),
        None => Err((40013, "invalid appid")),
    }
}

async fn stable_token(State(s): State<Arc<MockState>>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    let (appid, secret) = (field("appid"), field("secret"));
    let force = v
        .get("force_refresh")
        .and_then(|f| f.as_bool())
        .unwrap_or(false);
    let mut call = Call::new(&s, &WECHAT, "stable_token", format!("wechat:app:{appid}"));
    // Log the request without its secret.
    call.body =
        Some(json!({"grant_type": field("grant_type"), "appid": appid, "force_refresh": force}));
    if let Some(inj) = inject_token(&s, &call.target).await {
        return call.injected(inj);
    }
    if field("grant_type") != "client_credential" {
        return call.reject(40002, "invalid grant_type");
    }
    let lifetime = match credential(&s, &appid, &secret, (40125, "invalid appsecret")) {
        Ok(l) => l,
        Err((code, msg)) => return call.reject(code, msg),
    };
    let now = s.now_ms();
    let current = if force {
        None
    } else {
        s.tokens.current(MockPlatform::Wechat, &appid, now)
    };
    let (token, expires_in) =
        current.unwrap_or_else(|| s.tokens.issue(MockPlatform::Wechat, &appid, now, lifetime));
    call.accept(
        false,
        json!({"access_token": token, "expires_in": expires_in}),
    )
}

async fn plain_token(State(s): State<Arc<MockState>>, RawQuery(q): RawQuery) -> Response {
    let appid = query_param(q.as_deref(), "appid").unwrap_or_default();
    let secret = query_param(q.as_deref(), "secret").unwrap_or_default();
    let grant = query_param(q.as_deref(), "grant_type").unwrap_or_default();
    let mut call = Call::new(&s, &WECHAT, "token", format!("wechat:app:{appid}"));
    call.body = Some(json!({"grant_type": grant, "appid": appid}));
    if let Some(inj) = inject_token(&s, &call.target).await {
        return call.injected(inj);
    }
    if grant != "client_credential" {
        return call.reject(40002, "invalid grant_type");
    }
    let lifetime = match credential(
        &s,
        &appid,
        &secret,
        (
            40001,
            "invalid credential, access_token is invalid or not latest",
        ),
    ) {
        Ok(l) => l,
        Err((code, msg)) => return call.reject(code, msg),
    };
    let key = format!("{appid}{PLAIN_TOKEN_SUFFIX}");
    let (token, expires_in) = s
        .tokens
        .issue(MockPlatform::Wechat, &key, s.now_ms(), lifetime);
    s.tokens.revoke_others(MockPlatform::Wechat, &key, &token);
    call.accept(
        false,
        json!({"access_token": token, "expires_in": expires_in}),
    )
}

/// Check `data`: an object of `{"value": "..."}` objects.
fn data_check(v: &Value) -> Result<(), (i64, String)> {
    let data = v.get("data").and_then(|d| d.as_object()).ok_or((
        47003,
        "argument invalid! data is missing or not an object".to_string(),
    ))?;
    for (k, field) in data {
        if field.get("value").and_then(|x| x.as_str()).is_none() {
            return Err((47003, format!("argument invalid! data.{k}.value empty")));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Template,
    Subscribe,
}

async fn template_send(
    State(s): State<Arc<MockState>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    send(s, q, body, Kind::Template).await
}

async fn subscribe_send(
    State(s): State<Arc<MockState>>,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    send(s, q, body, Kind::Subscribe).await
}

async fn send(s: Arc<MockState>, q: Option<String>, body: Bytes, kind: Kind) -> Response {
    let token = query_param(q.as_deref(), "access_token").unwrap_or_default();
    let now = s.now_ms();
    let check = (!token.is_empty()).then(|| s.tokens.check(MockPlatform::Wechat, &token, now));
    let appid = match &check {
        Some(TokenCheck::Valid { app_id }) => {
            app_id.trim_end_matches(PLAIN_TOKEN_SUFFIX).to_string()
        }
        _ => "?".to_string(),
    };
    let endpoint = match kind {
        Kind::Template => "template.send",
        Kind::Subscribe => "subscribe.send",
    };
    let mut call = Call::new(&s, &WECHAT, endpoint, format!("wechat:app:{appid}"));
    let parsed = serde_json::from_slice::<Value>(&body)
        .ok()
        .filter(|v| v.is_object());
    let bad_json = parsed.is_none();
    call.body = parsed;
    match check {
        None => return call.reject(41001, "access_token missing"),
        Some(TokenCheck::Unknown) => {
            return call.reject(
                40001,
                "invalid credential, access_token is invalid or not latest",
            )
        }
        Some(TokenCheck::Expired) => return call.reject(42001, "access_token expired"),
        Some(TokenCheck::Valid { .. }) => {}
    }
    if let Some(inj) = inject(&s, &call.target).await {
        return call.injected(inj);
    }
    if bad_json {
        return call.reject(47001, "data format error");
    }
    static NULL: Value = Value::Null;
    let v = call.body.as_ref().unwrap_or(&NULL);
    let touser = v
        .get("touser")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    if touser.is_empty() || touser.starts_with("invalid") {
        return call.reject(40003, "invalid openid");
    }
    if kind == Kind::Subscribe && touser.starts_with("refused") {
        return call.reject(43101, "user refuse to accept the msg");
    }
    let template_id = v.get("template_id").and_then(|t| t.as_str()).unwrap_or("");
    if template_id.is_empty() || template_id.starts_with("invalid") {
        return call.reject(40037, "invalid template_id");
    }
    if let Err((code, msg)) = data_check(v) {
        return call.reject(code, &msg);
    }
    if v.get("miniprogram").is_some_and(|m| {
        m.get("appid")
            .and_then(|a| a.as_str())
            .is_none_or(str::is_empty)
    }) {
        return call.reject(47003, "argument invalid! miniprogram.appid empty");
    }
    let client_msg_id = v
        .get("client_msg_id")
        .and_then(|c| c.as_str())
        .filter(|c| !c.is_empty());
    let duplicate = match (kind, client_msg_id) {
        (Kind::Template, Some(id)) => {
            let key = format!("wechat:dup:{appid}:{touser}:{id}");
            s.dedup.seen(&key, CLIENT_MSG_ID_WINDOW_MS, now)
        }
        _ => false,
    };
    let answer = match kind {
        Kind::Template => json!({"errcode": 0, "errmsg": "ok", "msgid": 200_000_000 + next_seq()}),
        Kind::Subscribe => json!({"errcode": 0, "errmsg": "ok"}),
    };
    call.accept(duplicate, answer)
}
