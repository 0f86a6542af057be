//! Connection limits: a client that sends half a header is disconnected after
//! `server.header_timeout`, an idle keep-alive connection (or one whose
//! request body stops coming) after `server.idle_timeout`, and past `server.max_connections` a new connection is
//! answered 503 at once instead of hanging. Real time (hyper's connections and
//! the timers run on the real clock), so the timeouts are short.

use std::time::{Duration, Instant};

use crate::api_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway(server: &str) -> TestGateway {
    let sink = Sink::start().await;
    let text = config_text(&sink, "").replace("watch = false", &format!("watch = false\n{server}"));
    TestGateway::start(&text).await
}

async fn connect(t: &TestGateway) -> TcpStream {
    TcpStream::connect(t.gw.addr()).await.unwrap()
}

/// Read one response (header and `content-length` body); None when the
/// server closed the connection first.
async fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&buf[..end + 4 + len]).into_owned());
            }
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// How long until the server closes `s` (reading and discarding), at most `max`.
async fn closed_after(s: &mut TcpStream, max: Duration) -> Duration {
    let start = Instant::now();
    let mut chunk = [0u8; 1024];
    let r = tokio::time::timeout(max, async {
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the server kept the connection open for {max:?}");
    start.elapsed()
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: imrelay\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_cut_off_after_the_header_timeout() {
    let t = gateway("header_timeout = \"200ms\"\nidle_timeout = \"30s\"").await;

    // Half a header, then nothing.
    let mut s = connect(&t).await;
    s.write_all(b"POST /v1/messages HTTP/1.1\r\nhost: imrelay\r\ncontent-ty")
        .await
        .unwrap();
    let took = closed_after(&mut s, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(150), "{took:?}");

    // A header trickled a byte at a time does not reset the clock.
    let mut s = connect(&t).await;
    let start = Instant::now();
    let mut cut = false;
    for b in b"GET /healthz HTTP/1.1\r\nhost: imrelay\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if s.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if start.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    if !cut {
        closed_after(&mut s, Duration::from_secs(1)).await;
    }
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "a trickled header was not cut off: {:?}",
        start.elapsed()
    );

    // Whole requests are served as before.
    let mut s = connect(&t).await;
    s.write_all(HEALTHZ).await.unwrap();
    let r = read_response(&mut s).await.expect("an answer");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let t = gateway("header_timeout = \"200ms\"\nidle_timeout = \"800ms\"").await;

    let mut s = connect(&t).await;
    s.write_all(HEALTHZ).await.unwrap();
    let r = read_response(&mut s).await.expect("an answer");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Idle longer than the header timeout: still open (that one counts from
    // a request's first byte), and the next request is served.
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.write_all(HEALTHZ).await.unwrap();
    let r = read_response(&mut s)
        .await
        .expect("kept alive past header_timeout");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Then idle past the idle timeout: closed.
    let took = closed_after(&mut s, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(600), "{took:?}");

    // A connection that never sends anything is closed the same way.
    let mut s = connect(&t).await;
    let took = closed_after(&mut s, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(600), "{took:?}");

    // So is a request whose body stops coming.
    let mut s = connect(&t).await;
    s.write_all(
        format!(
            "POST /v1/messages HTTP/1.1\r\nhost: imrelay\r\nauthorization: Bearer {ADMIN_KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"chan"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let took = closed_after(&mut s, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(600), "{took:?}");
    t.gw.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_connections_a_new_connection_gets_503_at_once() {
    let t = gateway("max_connections = 2").await;

    // Two connections held open (served once, so surely accepted).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(&t).await;
        s.write_all(HEALTHZ).await.unwrap();
        let r = read_response(&mut s).await.expect("an answer");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        held.push(s);
    }

    // A third: 503 problem+json, promptly.
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(3), t.http.get(t.url("/healthz")).send())
        .await
        .expect("the third connection hung")
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers()["content-type"],
        "application/problem+json",
        "{:?}",
        r.headers()
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 503, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("server.max_connections"),
        "{body}"
    );
    // A raw client gets the whole answer too.
    let mut s = connect(&t).await;
    let _ = s.write_all(HEALTHZ).await;
    let r = read_response(&mut s).await.expect("a 503 answer");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");

    // Closing one frees its place.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut s = connect(&t).await;
        s.write_all(HEALTHZ).await.unwrap();
        let r = read_response(&mut s).await.unwrap_or_default();
        if r.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no place freed: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.gw.shutdown().await.unwrap();
}
