//! The reference `bench/run` measures imrelay's accepts against: a bare axum
//! server that parses the same JSON as `POST /v1/messages` (and `/batch`)
//! into the gateway's own request types and answers 202, storing nothing.
//! What imrelay does beyond this (authentication, validation, rendering, the
//! durable commit) is what the ratio to it measures.
//!
//! `cargo build --release -p imrelay-gateway --features bench-reference --bin bare_axum`,
//! then `bare_axum 127.0.0.1:18482`.

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use imrelay_gateway::api::messages::{BatchRequest, SubmitRequest};
use serde_json::{json, Value};

/// A message id made as the gateway makes it, so the answers are alike.
fn next_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn submit(Json(req): Json<SubmitRequest>) -> (StatusCode, Json<Value>) {
    // Keep the parsed request alive until here, as the gateway does.
    std::hint::black_box(&req);
    (StatusCode::ACCEPTED, Json(json!({ "id": next_id() })))
}

async fn batch(Json(b): Json<BatchRequest>) -> (StatusCode, Json<Value>) {
    let n = b.messages.len();
    let mut results = Vec::with_capacity(n);
    for (index, item) in b.messages.into_iter().enumerate() {
        match serde_json::from_value::<SubmitRequest>(item) {
            Ok(req) => {
                std::hint::black_box(&req);
                results.push(json!({"index": index, "status": 202, "id": next_id()}));
            }
            Err(e) => results.push(json!({"index": index, "status": 422, "detail": e.to_string()})),
        }
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({"accepted": n, "rejected": 0, "results": results})),
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18482".into());
    let app = Router::new()
        .route("/v1/messages", post(submit))
        .route("/v1/messages/batch", post(batch))
        .route("/healthz", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("bare axum reference listening on {addr}");
    axum::serve(listener, app).await
}
