//! A tiny HTTP/1.1 server over loopback whose answers a test chooses, counting
//! the connections and requests it sees: for what the mock cannot do (redirect,
//! answer without end, hold requests until a burst is complete).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the server answers to one request.
pub enum Answer {
    /// A complete answer with these extra headers.
    Fixed {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// HTTP 200 and a body of spaces that never ends (until the client goes
    /// away), or of `announced` bytes, announced in `Content-Length`.
    Endless { announced: Option<u64> },
}

impl Answer {
    pub fn json(status: u16, body: &str) -> Self {
        Answer::Fixed {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Answer::Fixed {
            status,
            headers: vec![("location", location.into())],
            body: Vec::new(),
        }
    }
}

pub type Handler = Arc<dyn Fn() -> BoxFuture<'static, Answer> + Send + Sync>;

pub struct Server {
    pub addr: SocketAddr,
    /// TCP connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Requests read.
    pub requests: Arc<AtomicUsize>,
    /// Body bytes written by endless answers before the client went away.
    pub endless_written: Arc<AtomicU64>,
    /// Endless answers that ended because the client closed the connection.
    pub endless_closed: Arc<AtomicUsize>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            addr: listener.local_addr().unwrap(),
            connections: Arc::default(),
            requests: Arc::default(),
            endless_written: Arc::default(),
            endless_closed: Arc::default(),
        };
        let counters = (
            server.connections.clone(),
            server.requests.clone(),
            server.endless_written.clone(),
            server.endless_closed.clone(),
        );
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counters.0.fetch_add(1, Ordering::SeqCst);
                let (requests, written, closed) =
                    (counters.1.clone(), counters.2.clone(), counters.3.clone());
                let handler = handler.clone();
                tokio::spawn(async move {
                    let _ = connection(stream, handler, requests, written, closed).await;
                });
            }
        });
        server
    }

    /// A server that answers every request the same way.
    pub async fn always(make: impl Fn() -> Answer + Send + Sync + 'static) -> Server {
        Server::start(Arc::new(move || {
            let a = make();
            Box::pin(async move { a })
        }))
        .await
    }
}

async fn connection(
    stream: TcpStream,
    handler: Handler,
    requests: Arc<AtomicUsize>,
    written: Arc<AtomicU64>,
    closed: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut content_length = 0usize;
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            read.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; content_length];
        read.read_exact(&mut body).await?;
        requests.fetch_add(1, Ordering::SeqCst);
        match handler().await {
            Answer::Fixed {
                status,
                headers,
                body,
            } => {
                let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                write.write_all(head.as_bytes()).await?;
                write.write_all(&body).await?;
            }
            Answer::Endless { announced } => {
                let length = announced
                    .map(|n| format!("content-length: {n}\r\n"))
                    .unwrap_or_default();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n"
                );
                write.write_all(head.as_bytes()).await?;
                let chunk = vec![b' '; 64 * 1024];
                let mut left = announced.unwrap_or(u64::MAX);
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    if write.write_all(&chunk[..n]).await.is_err() {
                        closed.fetch_add(1, Ordering::SeqCst);
                        return Ok(());
                    }
                    written.fetch_add(n as u64, Ordering::SeqCst);
                    left -= n as u64;
                }
                return Ok(());
            }
        }
    }
}
