//! The one HTTP client all destinations share: rustls with certificate
//! verification always on, connect and total timeouts, and transport errors turned
//! into [`Report`]s without the URL (which may carry an access token).

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, Report};

/// Timeouts for outbound requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timeouts {
    /// TCP + TLS connect.
    #[serde(with = "ms")]
    pub connect: Duration,
    /// Longest silence while waiting for (more of) the answer.
    #[serde(with = "ms")]
    pub read: Duration,
    /// The whole request, from start to the last byte of the answer.
    #[serde(with = "ms")]
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(10),
            total: Duration::from_secs(15),
        }
    }
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A request ready to go on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: url::Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A POST with a JSON body (`application/json; charset=utf-8`, as every
    /// platform here requires UTF-8).
    pub fn post_json(url: url::Url, body: &serde_json::Value) -> Self {
        HttpRequest {
            method: Method::POST,
            url,
            headers: vec![(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            )],
            body: Some(serde_json::to_vec(body).unwrap_or_default()),
        }
    }

    pub fn get(url: url::Url) -> Self {
        HttpRequest {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Add a header. Values that are not valid header text are dropped, which
    /// cannot happen for the ASCII tokens and signatures the platforms use.
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.push((HeaderName::from_static(name), v));
        }
        self
    }

    /// The body as JSON, for tests and snapshots.
    pub fn json_body(&self) -> Option<serde_json::Value> {
        self.body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok())
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// `Retry-After` in seconds, if present and numeric.
    pub fn retry_after(&self) -> Option<Duration> {
        self.headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs)
    }

    /// The classification every platform shares for answers that are not a
    /// business answer: 429 is rate limiting, 5xx and 408 are transient.
    /// Returns `None` when the platform's own body should decide.
    pub fn classify_transport_status(&self) -> Option<Report> {
        let snippet = self.body_snippet();
        match self.status {
            429 => Some(
                Report::new(
                    Outcome::RateLimited {
                        wait: self.retry_after().unwrap_or(Duration::from_secs(1)),
                    },
                    format!("HTTP 429 Too Many Requests: {snippet}"),
                )
                .with_status(429),
            ),
            408 | 500..=599 => Some(
                Report::new(
                    Outcome::Retry {
                        after: self.retry_after(),
                    },
                    format!("HTTP {}: {snippet}", self.status),
                )
                .with_status(self.status),
            ),
            _ => None,
        }
    }

    /// The first 200 bytes of the body, lossy, for error messages.
    pub fn body_snippet(&self) -> String {
        let end = self.body.len().min(200);
        String::from_utf8_lossy(&self.body[..end]).into_owned()
    }

    /// Parse the body as JSON, or report a transient failure for a garbled answer
    /// (a proxy's HTML error page, a truncated body).
    pub fn json(&self) -> Result<serde_json::Value, Report> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Report::new(
                Outcome::Retry { after: None },
                format!(
                    "HTTP {} with a body that is not JSON ({e}): {}",
                    self.status,
                    self.body_snippet()
                ),
            )
            .with_status(self.status)
        })
    }
}

/// Shared HTTP client.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    timeouts: Timeouts,
}

impl HttpClient {
    pub fn new(timeouts: Timeouts) -> Result<Self, crate::Error> {
        // reqwest is built without a default crypto provider (to avoid aws-lc's C
        // build); install ring once. A second install is a harmless no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let inner = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .timeout(timeouts.total)
            .pool_max_idle_per_host(64)
            .user_agent(concat!("imrelay/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient { inner, timeouts })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Send once. Transport failures come back as a `Retry` report whose message
    /// names the failure but never the URL.
    pub async fn execute(&self, req: HttpRequest) -> Result<HttpResponse, Report> {
        let mut builder = self.inner.request(req.method, req.url);
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let resp = builder.send().await.map_err(transport_report)?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(transport_report)?.to_vec();
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn transport_report(e: reqwest::Error) -> Report {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    // `without_url` because platform URLs carry access tokens and robot keys.
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    Report::new(Outcome::Retry { after: None }, format!("{kind}: {detail}"))
}
