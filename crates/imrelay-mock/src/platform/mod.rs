//! One file per platform, each serving that platform's real paths, plus the
//! pieces they share: query parsing, the injected-HTTP-error answer and, for
//! the `{"errcode","errmsg"}` platforms (WeChat, WeCom), a request handler that
//! logs exactly once.

pub mod aliyun;
pub mod dingtalk;
pub mod dingtalk_card;
pub mod dingtalk_ding;
pub mod dingtalk_recall;
pub mod feishu;
pub mod tencent;
pub mod wechat;
pub mod wecom;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::config::MockPlatform;
use crate::faults::Injected;
use crate::log::{LogEntry, SignatureCheck};
use crate::sent::SentMessage;
use crate::state::MockState;

/// Every platform's routes on one router (their paths do not collide).
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .merge(dingtalk::routes())
        .merge(feishu::routes())
        .merge(wecom::routes())
        .merge(wechat::routes())
        .route("/", axum::routing::get(api_root).post(api_root))
}

/// `/`, where Alibaba Cloud's RPC APIs and Tencent Cloud's API 3.0 both
/// live: a request with `X-TC-Action` is Tencent's, any other Alibaba's.
async fn api_root(
    axum::extract::State(s): axum::extract::State<Arc<MockState>>,
    method: axum::http::Method,
    axum::extract::RawQuery(q): axum::extract::RawQuery,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
) -> Response {
    if headers.contains_key("x-tc-action") {
        tencent::handle(s, &headers, &body).await
    } else {
        aliyun::handle(s, method, q, &body).await
    }
}

/// Why a click could not be fired (the receiver's answer, good or bad, is in
/// the click's result instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClickError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
}

impl ClickError {
    pub(crate) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ClickError {
            status,
            error: error.into(),
        }
    }
}

impl IntoResponse for ClickError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

/// Click the button of `action` on `message` as `user`: build the platform's
/// card callback as the platform would, fire it at the app's callback URL and
/// apply what the answer asks for. Answers what happened.
pub async fn click(
    state: &MockState,
    message: &SentMessage,
    action: &str,
    user: &str,
) -> Result<Value, ClickError> {
    if message.recalled_at_ms.is_some() {
        return Err(ClickError::new(
            StatusCode::CONFLICT,
            format!("{} was recalled: nobody can click it", message.message_id),
        ));
    }
    match message.platform {
        MockPlatform::Feishu => feishu::click(state, message, action, user).await,
        MockPlatform::Wecom => wecom::click(state, message, action, user).await,
        MockPlatform::Dingtalk => dingtalk_card::click(state, message, action, user)
            .await
            .map_err(|e| ClickError::new(StatusCode::BAD_REQUEST, e)),
        MockPlatform::Wechat => Err(ClickError::new(
            StatusCode::BAD_REQUEST,
            "WeChat messages have no buttons that call back",
        )),
        MockPlatform::Aliyun | MockPlatform::Tencent => Err(ClickError::new(
            StatusCode::BAD_REQUEST,
            "SMS and phone calls have no buttons",
        )),
    }
}

/// The app's callback section, or why a click cannot be fired for it.
pub(crate) fn app_callback(
    state: &MockState,
    platform: MockPlatform,
    app_id: &str,
) -> Result<crate::config::AppCallback, ClickError> {
    let app = state.app(platform, app_id).ok_or_else(|| {
        ClickError::new(
            StatusCode::BAD_REQUEST,
            format!("no {} app `{app_id}` is registered", platform.as_str()),
        )
    })?;
    app.callback.ok_or_else(|| {
        ClickError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "app `{app_id}` has no `callback`: register it (POST /_mock/apps) with callback = {{url, token, ...}}"
            ),
        )
    })
}

/// The value of query parameter `name`.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The status of an injected HTTP fault (500 when it is not a valid status).
pub(crate) fn injected_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A platform's error body `{"errcode": code, "errmsg": ...}` in its own
/// wording (WeChat appends a `rid`, WeCom a hint and a doc link).
pub(crate) type ErrorBody = fn(&MockState, i64, &str) -> Value;

/// How one `{"errcode","errmsg"}` platform answers and logs.
pub(crate) struct ErrcodePlatform {
    /// The `platform` of its log entries.
    pub name: &'static str,
    pub error_body: ErrorBody,
    /// The log reason of a request answered ok but not delivered again.
    pub duplicate_reason: &'static str,
}

/// One request to an `{"errcode","errmsg"}` platform being handled: it logs
/// exactly once, on the way out (reject, injected or accept).
pub(crate) struct Call<'a> {
    pub state: &'a MockState,
    platform: &'static ErrcodePlatform,
    endpoint: &'static str,
    pub target: String,
    pub signature: SignatureCheck,
    /// What the log shows of the request (never a secret).
    pub body: Option<Value>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        state: &'a MockState,
        platform: &'static ErrcodePlatform,
        endpoint: &'static str,
        target: String,
    ) -> Self {
        Call {
            state,
            platform,
            endpoint,
            target,
            signature: SignatureCheck::None,
            body: None,
        }
    }

    fn entry(&mut self) -> LogEntry {
        let mut e = LogEntry::new(
            self.platform.name,
            self.endpoint,
            std::mem::take(&mut self.target),
        );
        e.signature = self.signature;
        e.body = self.body.take();
        e
    }

    fn error(&self, code: i64, msg: &str) -> Response {
        Json((self.platform.error_body)(self.state, code, msg)).into_response()
    }

    /// The parsed body (`null` when there is none).
    pub(crate) fn parsed(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.body.as_ref().unwrap_or(&NULL)
    }

    /// Refuse with `code`: logged as rejected, answered HTTP 200 with the
    /// platform's error body.
    pub(crate) fn reject(mut self, code: i64, msg: &str) -> Response {
        let e = self.entry().rejected(code, msg);
        self.state.record(e);
        self.error(code, msg)
    }

    /// Answer an injected fault.
    pub(crate) fn injected(mut self, inj: Injected) -> Response {
        match inj {
            Injected::Code { code, msg } => {
                let e = self.entry().rejected(code, format!("injected: {msg}"));
                self.state.record(e);
                self.error(code, &msg)
            }
            Injected::Http(status) => {
                let e = self
                    .entry()
                    .rejected(format!("http {status}"), "injected HTTP error");
                self.state.record(e);
                (injected_status(status), "injected HTTP error").into_response()
            }
            Injected::Answer(a) => {
                let e = self.entry().rejected(a.log_code(), a.reason());
                self.state.record(e);
                a.response()
            }
        }
    }

    /// Answer `answer`; a `duplicate` is logged as accepted but not delivered.
    pub(crate) fn accept(mut self, duplicate: bool, answer: Value) -> Response {
        let mut e = self.entry().accepted();
        if duplicate {
            e = e.duplicate();
            e.reason = Some(self.platform.duplicate_reason.into());
        }
        self.state.record(e);
        Json(answer).into_response()
    }
}
