//! Problem responses that several operations share, declared once for the
//! OpenAPI document (`responses(KeyProblem, BodyProblems, ...)` in a path).

use std::collections::BTreeMap;

use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::IntoResponses;

use super::problem::PROBLEM_JSON;

/// A response with a problem+json body.
pub(crate) fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
        )
        .build()
}

fn problems(list: &[(u16, &str)]) -> BTreeMap<String, RefOr<Response>> {
    list.iter()
        .map(|(status, description)| (status.to_string(), RefOr::T(problem(description))))
        .collect()
}

/// 401: every operation behind an API key.
pub struct KeyProblem;

impl IntoResponses for KeyProblem {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[(401, "Missing or unknown API key")])
    }
}

/// 400, 413, 415: a JSON request body refused before the handler reads it.
pub struct BodyProblems;

impl IntoResponses for BodyProblems {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[
            (400, "The body is not JSON"),
            (413, "Body larger than `server.max_body_bytes`"),
            (415, "The body is not declared as `application/json`"),
        ])
    }
}

/// 503: the queue database failed (reads and DLQ changes).
pub struct StoreProblem;

impl IntoResponses for StoreProblem {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[(503, "The queue database failed")])
    }
}

/// 503: a submission the queue could not take.
pub struct NotAccepting;

impl IntoResponses for NotAccepting {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[(
            503,
            "The queue cannot commit now, or the gateway is draining; nothing was accepted",
        )])
    }
}

/// 404: the DLQ operations on one dead letter.
pub struct DeadLetterNotFound;

impl IntoResponses for DeadLetterNotFound {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        problems(&[(
            404,
            "No such dead letter, or one of a channel the key may not use (answered alike)",
        )])
    }
}
