//! `POST /v1/render`: what `POST /v1/messages` would send, per destination,
//! with nothing stored; the same checks as an accept.

use serde_json::json;

use crate::api_support::{config_text, Sink, TestGateway, ADMIN_KEY, OPS_KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn render_shows_each_destinations_body_and_stores_nothing() {
    let sink = Sink::start().await;
    let t = TestGateway::start(&config_text(&sink, "")).await;
    let r = t
        .post(
            "/v1/render",
            Some(OPS_KEY),
            &json!({"channel": "alerts", "title": "磁盘", "text": "disk 91% full on db-1"})
                .to_string(),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["channel"], "alerts");
    assert_eq!(r.body["body"]["text"], "disk 91% full on db-1");
    let d = &r.body["destinations"][0];
    assert_eq!(d["type"], "webhook");
    assert!(
        !d.to_string().contains(&sink.url),
        "no URL (it may hold a secret): {d}"
    );
    let part = &d["parts"][0];
    let compact = serde_json::to_vec(&part["body"]).unwrap();
    assert_eq!(part["bytes"], compact.len(), "{part}");
    assert!(part["body"].to_string().contains("disk 91% full"), "{part}");
    assert_eq!(t.stored_messages().await, 0, "a render stores nothing");
    assert!(sink.bodies().is_empty(), "and sends nothing");

    // The accept's checks: scope, channel, fields.
    let r = t
        .post(
            "/v1/render",
            Some(OPS_KEY),
            &json!({"channel": "other", "text": "x"}).to_string(),
            &[],
        )
        .await;
    r.assert_problem(403, None);
    let r = t
        .post(
            "/v1/render",
            Some(ADMIN_KEY),
            &json!({"channel": "nope", "text": "x"}).to_string(),
            &[],
        )
        .await;
    r.assert_problem(422, Some("channel"));
    let r = t
        .post(
            "/v1/render",
            Some(ADMIN_KEY),
            &json!({"channel": "alerts"}).to_string(),
            &[],
        )
        .await;
    r.assert_problem(422, Some("body"));
    let r = t
        .post(
            "/v1/render",
            None,
            &json!({"channel": "alerts", "text": "x"}).to_string(),
            &[],
        )
        .await;
    r.assert_problem(401, Some("Authorization"));
    t.gw.shutdown().await.unwrap();
}
