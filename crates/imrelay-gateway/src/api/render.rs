//! `POST /v1/render`: what `POST /v1/messages` with the same body would send
//! to each destination of the channel, without storing or sending anything.
//! The same checks as an accept (scope, fields, templates, whether every
//! destination can express the message), then each destination's own
//! rendering: the JSON body before signing, its size, and the parts a long
//! text is split into. `imrelay render` and the console's template preview
//! call it.

use axum::extract::State;
use axum::Json;
use imrelay_sdk::message::Body;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::auth::Auth;
use super::extract::ApiJson;
use super::messages::{apply_template, prepare, SubmitRequest};
use super::problem::Problem;
use super::AppState;
use crate::http::responses::{BodyProblems, KeyProblem};

/// What the message would be and what each destination would receive.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rendered {
    pub channel: String,
    /// The title after templating.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The body after templating (imrelay's message model).
    #[schema(value_type = Object)]
    pub body: Body,
    /// One per destination (for a robot pool, the members share one type and
    /// one message goes to one of them).
    pub destinations: Vec<RenderedDestination>,
}

/// One destination's requests.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedDestination {
    /// The destination's key (never its credentials).
    pub key: String,
    /// Its type (`dingtalk_robot`, `feishu_app`, ...).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The requests it would make, in order: more than one when a long text
    /// is split.
    pub parts: Vec<RenderedPart>,
}

/// One request body.
#[derive(Debug, Serialize, ToSchema)]
pub struct RenderedPart {
    /// The platform's JSON body before signing (signatures, tokens and
    /// timestamps are added when it is sent).
    #[schema(value_type = Object)]
    pub body: Value,
    /// The size of `body` as sent (compact JSON, UTF-8 bytes).
    pub bytes: usize,
    /// The recipients this request addresses (app destinations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// `POST /v1/render`.
#[utoipa::path(post, path = "/v1/render", tag = "messages",
    request_body(content = SubmitRequest, content_type = "application/json",
        description = "The body `POST /v1/messages` would take; nothing is stored or sent"),
    responses(
        (status = 200, description = "What each destination would receive", body = Rendered),
        KeyProblem,
        BodyProblems,
        (status = 403, description = "The key may not use this channel", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid (named in `field`), or a destination cannot express the message", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])))]
pub async fn render(
    State(st): State<AppState>,
    Auth(caller): Auth,
    ApiJson { value: req, .. }: ApiJson<SubmitRequest>,
) -> Result<Json<Rendered>, Problem> {
    render_request(&st, &caller, req).map(Json)
}

/// The rendering of `req` as `caller` (the handler and the console's preview).
pub fn render_request(
    st: &AppState,
    caller: &super::Caller,
    mut req: SubmitRequest,
) -> Result<Rendered, Problem> {
    apply_template(st, &mut req, "")?;
    let rt = st.live.runtime();
    let nm = prepare(caller, req, &rt, "")?;
    let channel = rt
        .channels
        .get(&nm.channel)
        .ok_or_else(|| Problem::invalid("channel", "the channel went away in a reload"))?;
    let mut destinations = Vec::new();
    for d in &channel.destinations {
        // `prepare` rendered every destination already; an error here is one
        // it accepted, reported the same way.
        let payloads = d.dest.render(&nm.message).map_err(|e| {
            Problem::invalid(
                "body",
                format!(
                    "channel `{}` cannot send this message to `{}`: {e}",
                    channel.name, d.key
                ),
            )
        })?;
        destinations.push(RenderedDestination {
            key: d.key.clone(),
            kind: d.dest.kind(),
            parts: payloads
                .into_iter()
                .map(|p| RenderedPart {
                    bytes: serde_json::to_vec(&p.body).map_or(0, |b| b.len()),
                    body: p.body,
                    recipients: p.recipients,
                })
                .collect(),
        });
    }
    Ok(Rendered {
        channel: nm.channel.clone(),
        title: nm.message.title.clone(),
        body: nm.message.body.clone(),
        destinations,
    })
}
