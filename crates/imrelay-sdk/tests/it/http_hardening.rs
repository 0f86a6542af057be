//! The shared HTTP client against endpoints that misbehave: redirects are not
//! followed (for platforms and webhooks alike), answers are read up to a cap,
//! and a burst reuses as many idle connections as the pool is sized for.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use imrelay_sdk::http::{Timeouts, MAX_ANSWER_BYTES};
use imrelay_sdk::{Client, ClientOptions, Destination, Message, Outcome};
use serde_json::json;
use tokio::sync::Barrier;

use crate::support::{Answer, Server};

fn webhook(client: &Client, url: &str) -> Arc<dyn Destination> {
    client
        .build(&json!({"type": "webhook", "url": url}))
        .unwrap()
}

fn dingtalk(client: &Client, base: &str) -> Arc<dyn Destination> {
    client
        .build(&json!({"type": "dingtalk_robot", "access_token": "tok", "base_url": base}))
        .unwrap()
}

fn short_timeouts() -> Client {
    Client::with_options(ClientOptions {
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(10),
            total: Duration::from_secs(10),
        },
        ..Default::default()
    })
    .unwrap()
}

async fn send_one(dest: &dyn Destination) -> imrelay_sdk::Report {
    let mut reports = imrelay_sdk::deliver(dest, &Message::text("hello"))
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    reports.remove(0)
}

#[tokio::test]
async fn redirects_are_refused_and_the_other_host_hears_nothing() {
    let other = Server::always(|| Answer::json(200, r#"{"errcode":0,"errmsg":"ok"}"#)).await;
    let client = Client::new().unwrap();
    for status in [307, 302, 301, 308, 303] {
        let target = other.url("/robot/send?access_token=tok");
        let location = target.clone();
        let redirecting = Server::always(move || Answer::redirect(status, &location)).await;

        let hook = webhook(&client, &redirecting.url("/in"));
        let robot = dingtalk(&client, &redirecting.url(""));
        for (kind, dest) in [("webhook", hook), ("dingtalk_robot", robot)] {
            let r = send_one(&*dest).await;
            assert_eq!(r.outcome, Outcome::Permanent, "{kind} {status}: {r}");
            assert_eq!(r.status, Some(status), "{kind}: {r}");
            assert!(r.message.contains(&target), "{kind} {status}: {r}");
            assert!(r.hint.as_deref().unwrap().contains("redirect"), "{r}");
        }
        assert_eq!(redirecting.requests.load(Ordering::SeqCst), 2);
    }
    assert_eq!(
        other.connections.load(Ordering::SeqCst),
        0,
        "the redirect target must receive nothing"
    );
}

#[tokio::test]
async fn an_endless_platform_answer_is_cut_at_the_cap() {
    let server = Server::always(|| Answer::Endless { announced: None }).await;
    let client = short_timeouts();
    let r = send_one(&*dingtalk(&client, &server.url(""))).await;
    assert_eq!(r.outcome, Outcome::Retry { after: None }, "{r}");
    assert_eq!(r.status, Some(200));
    assert!(r.message.contains("answer larger than 256 KiB"), "{r}");
    // The client stopped reading and closed the connection: the server's
    // writes failed after the cap plus what the sockets buffer, not 10 s of
    // loopback traffic (gigabytes).
    let closed = async {
        while server.endless_closed.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the client closed the connection");
    let written = server.endless_written.load(Ordering::SeqCst);
    assert!(written < 64 << 20, "{written} bytes written");
    assert!(written >= MAX_ANSWER_BYTES as u64);
}

#[tokio::test]
async fn an_announced_oversize_answer_is_not_read() {
    let server = Server::always(|| Answer::Endless {
        announced: Some(10 << 20),
    })
    .await;
    let client = short_timeouts();
    let r = send_one(&*dingtalk(&client, &server.url(""))).await;
    assert_eq!(r.outcome, Outcome::Retry { after: None }, "{r}");
    assert!(r.message.contains("answer larger than 256 KiB"), "{r}");
}

#[tokio::test]
async fn a_smaller_cap_is_honoured() {
    let body = format!(r#"{{"errcode":0,"errmsg":"{}"}}"#, "x".repeat(2000));
    let server = Server::always(move || Answer::json(200, &body)).await;
    let client = Client::with_options(ClientOptions {
        max_answer_bytes: 1024,
        ..Default::default()
    })
    .unwrap();
    let r = send_one(&*dingtalk(&client, &server.url(""))).await;
    assert!(r.message.contains("answer larger than 1 KiB"), "{r}");
    let client = Client::new().unwrap();
    let r = send_one(&*dingtalk(&client, &server.url(""))).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
}

#[tokio::test]
async fn a_webhook_receiver_is_judged_by_its_status_whatever_its_body() {
    // The generic webhook ignores the body, so a long one does not matter; it
    // is still read only up to the cap.
    let server = Server::always(|| Answer::Endless { announced: None }).await;
    let client = short_timeouts();
    let r = send_one(&*webhook(&client, &server.url("/in"))).await;
    assert_eq!(r.outcome, Outcome::Delivered, "{r}");
}

/// Sends `n` requests at once; the server holds each until all `n` have
/// arrived, so they need `n` connections.
async fn burst(dest: &Arc<dyn Destination>, n: usize) {
    let sends = (0..n).map(|_| {
        let d = dest.clone();
        async move { send_one(&*d).await }
    });
    for r in futures::future::join_all(sends).await {
        assert_eq!(r.outcome, Outcome::Delivered, "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reuses_the_connections_of_the_last_one() {
    const N: usize = 100;
    let barrier = Arc::new(Barrier::new(N));
    let server = Server::start(Arc::new(move || {
        let b = barrier.clone();
        Box::pin(async move {
            b.wait().await;
            Answer::json(200, "{}")
        })
    }))
    .await;
    assert_eq!(
        ClientOptions::default().pool_max_idle_per_host,
        imrelay_sdk::http::DEFAULT_POOL_MAX_IDLE_PER_HOST
    );
    let dest = webhook(&Client::new().unwrap(), &server.url("/in"));
    burst(&dest, N).await;
    assert_eq!(server.connections.load(Ordering::SeqCst), N);
    burst(&dest, N).await;
    let opened = server.connections.load(Ordering::SeqCst) - N;
    assert!(
        opened < N - 64,
        "the second burst opened {opened} new connections"
    );

    // A pool sized below the burst keeps only that many.
    let small = Client::with_options(ClientOptions {
        pool_max_idle_per_host: 10,
        ..Default::default()
    })
    .unwrap();
    let dest = webhook(&small, &server.url("/in"));
    let before = server.connections.load(Ordering::SeqCst);
    burst(&dest, N).await;
    burst(&dest, N).await;
    let opened = server.connections.load(Ordering::SeqCst) - before;
    assert!(opened >= 2 * N - 10, "{opened}");
}
