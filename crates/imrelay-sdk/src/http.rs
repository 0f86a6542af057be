//! The one HTTP client all destinations share: rustls with certificate
//! verification always on, connect and total timeouts, and transport errors turned
//! into [`Report`]s without the URL (which may carry an access token).
//!
//! Redirects are never followed: a destination's host is checked when it is
//! built (and, for generic webhooks, by the caller's address guard), and a
//! redirect would send the signed body somewhere else. Answers are read up to
//! [`MAX_ANSWER_BYTES`] and no further, so a hostile or broken endpoint cannot
//! make the client buffer an unbounded body.
//!
//! Requests go through an outbound [`Proxy`] when one is configured (except to
//! the hosts its `no_proxy` list names); without one, reqwest's usual
//! `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY` environment variables apply. Proxy
//! credentials never appear in `Debug` output or in transport errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, Report};

/// The resolver hook ([`HttpOptions::resolver`]) and its types, so callers need
/// not name reqwest themselves.
pub use reqwest::dns;

/// The most bytes read of one answer by default. Platform answers are a few
/// hundred bytes; anything near this is not a platform answer.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Idle connections kept per host by default: as many as the gateway's default
/// number of concurrent sends, so a burst to one platform host reuses its
/// connections instead of opening (and TLS-handshaking) new ones.
pub const DEFAULT_POOL_MAX_IDLE_PER_HOST: usize = 256;

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

/// How the HTTP client connects and reads.
#[derive(Clone)]
pub struct HttpOptions {
    pub timeouts: Timeouts,
    /// Idle connections kept open per host for reuse. Set it to the number of
    /// requests that may run at once against one host (the gateway's
    /// `dispatch.concurrency`); fewer means a burst opens new connections.
    pub pool_max_idle_per_host: usize,
    /// The most bytes read of one answer; the rest is never read.
    pub max_answer_bytes: usize,
    /// Resolves host names to the addresses to connect to; the system resolver
    /// when `None`. A resolver that filters addresses is how a caller makes sure
    /// the address it checked is the one connected to.
    pub resolver: Option<Arc<dyn dns::Resolve>>,
    /// Send requests through this proxy; `None` leaves the environment's
    /// (`HTTPS_PROXY` and friends) in charge.
    pub proxy: Option<Proxy>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeouts: Timeouts::default(),
            pool_max_idle_per_host: DEFAULT_POOL_MAX_IDLE_PER_HOST,
            max_answer_bytes: MAX_ANSWER_BYTES,
            resolver: None,
            proxy: None,
        }
    }
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("timeouts", &self.timeouts)
            .field("pool_max_idle_per_host", &self.pool_max_idle_per_host)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("resolver", &self.resolver.as_ref().map(|_| "custom"))
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// An outbound proxy: every request goes through `url` except those to a
/// host the `no_proxy` list names. `http://` and `https://` proxies tunnel
/// HTTPS with `CONNECT`; `socks5://` resolves the destination's name locally
/// (through [`HttpOptions::resolver`]), `socks5h://` lets the proxy resolve
/// it. Credentials go in the URL (`http://user:pass@proxy:3128`) and are
/// shown as `***` everywhere.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    url: url::Url,
    no_proxy: Vec<String>,
}

impl Proxy {
    /// The proxy URL schemes understood.
    pub const SCHEMES: &'static [&'static str] = &["http", "https", "socks5", "socks5h"];

    /// A proxy at `url`, bypassed for the `no_proxy` entries: host names
    /// (`example.com` and `.example.com` both match the name and its
    /// subdomains), IP addresses, CIDR ranges (`10.0.0.0/8`), or `*` for every
    /// host. `Err` says what is wrong without repeating any credentials.
    pub fn new(url: &str, no_proxy: Vec<String>) -> Result<Self, String> {
        let url = url::Url::parse(url.trim())
            .map_err(|e| format!("`{}` is not a URL: {e}", redact_userinfo(url)))?;
        if !Self::SCHEMES.contains(&url.scheme()) {
            // Not echoed: `user:pass@host` parses as the scheme `user`.
            return Err(format!(
                "the proxy URL's scheme `{}` is not one of {} (e.g. `http://proxy:3128`)",
                url.scheme(),
                Self::SCHEMES.join(", ")
            ));
        }
        let shown = redacted_url(&url);
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{shown}`: the proxy URL has no host"));
        }
        if (url.path() != "/" && !url.path().is_empty()) || url.query().is_some() {
            return Err(format!("`{shown}`: a proxy URL has no path or query"));
        }
        if let Some(bad) = no_proxy
            .iter()
            .find(|e| e.is_empty() || e.contains(|c: char| c == ',' || c.is_whitespace()))
        {
            return Err(format!(
                "no_proxy entry `{bad}` must be one host name, IP address or CIDR range"
            ));
        }
        Ok(Proxy { url, no_proxy })
    }

    /// The proxy URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        redacted_url(&self.url)
    }

    /// The hosts reached directly.
    pub fn no_proxy(&self) -> &[String] {
        &self.no_proxy
    }

    /// Whether a request to `url` goes through the proxy (its host is not in
    /// `no_proxy`). Same matcher as the HTTP client's, so the answer is what
    /// the client does.
    pub fn intercepts(&self, url: &url::Url) -> bool {
        let Ok(uri) = url.as_str().parse::<http::Uri>() else {
            return true;
        };
        hyper_util::client::proxy::matcher::Matcher::builder()
            .all(self.url.as_str().to_string())
            .no(self.no_proxy_list())
            .build()
            .intercept(&uri)
            .is_some()
    }

    /// Whether the proxy looks destination names up itself (`http`, `https`,
    /// `socks5h`); with `socks5` the client resolves them locally.
    pub fn resolves_names(&self) -> bool {
        self.url.scheme() != "socks5"
    }

    fn to_reqwest(&self) -> Result<reqwest::Proxy, String> {
        let p = reqwest::Proxy::all(self.url.as_str())
            .map_err(|e| format!("proxy `{}`: {}", self.redacted(), e.without_url()))?;
        Ok(p.no_proxy(reqwest::NoProxy::from_string(&self.no_proxy_list())))
    }

    /// The list as the matcher takes it. Its `*` matches names only, so `*`
    /// also brings in every address, for "no proxy for anything" to hold.
    fn no_proxy_list(&self) -> String {
        let mut list = self.no_proxy.join(",");
        if self.no_proxy.iter().any(|e| e == "*") {
            list.push_str(",0.0.0.0/0,::/0");
        }
        list
    }

    /// The password as the client sends it, to scrub from error text.
    fn secret(&self) -> Option<String> {
        let p = self.url.password()?;
        let decoded = percent_encoding::percent_decode_str(p).decode_utf8_lossy();
        Some(decoded.into_owned())
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("url", &self.redacted())
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

impl fmt::Display for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

fn redacted_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    if url.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// `scheme://user:***@host...` for text that did not even parse as a URL.
fn redact_userinfo(text: &str) -> String {
    let (Some(scheme_end), Some(at)) = (text.find("://"), text.rfind('@')) else {
        return text.to_string();
    };
    if at < scheme_end {
        return text.to_string();
    }
    let userinfo = &text[scheme_end + 3..at];
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &text[..scheme_end + 3], &text[at..]),
        None => text.to_string(),
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
    /// The body, or as much of it as was read when `oversize`.
    pub body: Vec<u8>,
    /// `Some(cap)` when the answer was longer than the `cap` bytes the client
    /// reads; `body` is then cut (or empty when the length was announced).
    pub oversize: Option<usize>,
}

impl HttpResponse {
    /// A complete answer.
    pub fn new(status: u16, headers: HeaderMap, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            headers,
            body,
            oversize: None,
        }
    }

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
    /// (a proxy's HTML error page, a truncated body, one too large to be a
    /// platform's answer).
    pub fn json(&self) -> Result<serde_json::Value, Report> {
        if let Some(cap) = self.oversize {
            return Err(Report::new(
                Outcome::Retry { after: None },
                format!(
                    "HTTP {}: answer larger than {}; stopped reading it (not a platform answer: is the URL a proxy or another service?): {}",
                    self.status,
                    size_text(cap),
                    self.body_snippet()
                ),
            )
            .with_status(self.status));
        }
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
    max_answer_bytes: usize,
    /// The proxy password, scrubbed from transport errors.
    proxy_secret: Option<crate::secret::Secret>,
}

impl HttpClient {
    /// A client with `timeouts` and the other options at their defaults.
    pub fn new(timeouts: Timeouts) -> Result<Self, crate::Error> {
        Self::with_options(HttpOptions {
            timeouts,
            ..HttpOptions::default()
        })
    }

    pub fn with_options(options: HttpOptions) -> Result<Self, crate::Error> {
        // reqwest is built without a default crypto provider (to avoid aws-lc's C
        // build); install ring once. A second install is a harmless no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeouts = options.timeouts;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .timeout(timeouts.total)
            .pool_max_idle_per_host(options.pool_max_idle_per_host)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("imrelay/", env!("CARGO_PKG_VERSION")));
        if let Some(resolver) = options.resolver {
            builder = builder.dns_resolver(resolver);
        }
        if let Some(proxy) = &options.proxy {
            builder = builder.proxy(proxy.to_reqwest().map_err(crate::Error::Config)?);
        }
        let inner = builder.build().map_err(|e| {
            crate::Error::Config(format!("cannot build the HTTP client: {}", e.without_url()))
        })?;
        Ok(HttpClient {
            inner,
            timeouts,
            max_answer_bytes: options.max_answer_bytes,
            proxy_secret: options
                .proxy
                .as_ref()
                .and_then(Proxy::secret)
                .map(crate::secret::Secret::new),
        })
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Send once. Transport failures come back as a `Retry` report whose message
    /// names the failure but never the URL; a redirect comes back as a
    /// `Permanent` report naming where it pointed. The answer is read up to the
    /// configured cap ([`HttpResponse::oversize`] says when it was longer).
    pub async fn execute(&self, req: HttpRequest) -> Result<HttpResponse, Report> {
        let mut builder = self.inner.request(req.method, req.url);
        for (k, v) in req.headers {
            builder = builder.header(k, v);
        }
        if let Some(body) = req.body {
            builder = builder.body(body);
        }
        let mut resp = builder
            .send()
            .await
            .map_err(|e| self.scrubbed(transport_report(e)))?;
        let status = resp.status().as_u16();
        if (300..400).contains(&status) {
            return Err(redirect_report(status, resp.headers()));
        }
        let headers = resp.headers().clone();
        let cap = self.max_answer_bytes;
        let (body, oversize) = if resp.content_length().is_some_and(|n| n > cap as u64) {
            // Announced too long: read nothing, the length says enough.
            (Vec::new(), Some(cap))
        } else {
            let (body, cut) = read_capped(&mut resp, cap)
                .await
                .map_err(|e| self.scrubbed(transport_report(e)))?;
            (body, cut.then_some(cap))
        };
        Ok(HttpResponse {
            status,
            headers,
            body,
            oversize,
        })
    }
}

impl HttpClient {
    /// `report` without the proxy password, should an error quote the
    /// proxy URL.
    fn scrubbed(&self, mut report: Report) -> Report {
        if let Some(secret) = &self.proxy_secret {
            let secret = secret.expose();
            if !secret.is_empty() {
                report.message = report.message.replace(secret, "***");
            }
        }
        report
    }
}

/// Where the answer's bytes come from, so the capped read can be tested
/// without a socket.
trait Chunks {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error>;
}

impl Chunks for reqwest::Response {
    async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error> {
        self.chunk().await
    }
}

/// Read at most `cap` bytes; `true` when more were on the way. Stops pulling
/// chunks at the cap, so at most one chunk beyond it is ever received.
async fn read_capped(src: &mut impl Chunks, cap: usize) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = src.next_chunk().await? {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// `256 KiB`, `1 MiB`, or bytes.
fn size_text(n: usize) -> String {
    if n >= 1 << 20 && n & ((1 << 20) - 1) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n & ((1 << 10) - 1) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

/// A 3xx: the configured URL is not where the service lives (or something
/// wants the signed body elsewhere). Following it could reach any host.
fn redirect_report(status: u16, headers: &HeaderMap) -> Report {
    let location = headers.get(reqwest::header::LOCATION).map(|v| {
        String::from_utf8_lossy(v.as_bytes())
            .chars()
            .take(300)
            .collect::<String>()
    });
    let message = match &location {
        Some(l) => format!("HTTP {status} redirect to `{l}`; redirects are not followed"),
        None => format!("HTTP {status} redirect without a Location; redirects are not followed"),
    };
    Report::new(Outcome::Permanent, message)
        .with_status(status)
        .with_hint("the configured URL redirects elsewhere: configure the final URL if it is trusted, or find out why the endpoint redirects")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `total` bytes in chunks of `size`, counting what is pulled.
    struct Counted {
        left: usize,
        size: usize,
        pulled: usize,
    }

    impl Chunks for Counted {
        async fn next_chunk(&mut self) -> Result<Option<bytes::Bytes>, reqwest::Error> {
            if self.left == 0 {
                return Ok(None);
            }
            let n = self.left.min(self.size);
            self.left -= n;
            self.pulled += n;
            Ok(Some(bytes::Bytes::from(vec![b'x'; n])))
        }
    }

    #[tokio::test]
    async fn reading_stops_at_the_cap() {
        let mut src = Counted {
            left: 10 << 20,
            size: 16 * 1024,
            pulled: 0,
        };
        let (body, cut) = read_capped(&mut src, MAX_ANSWER_BYTES).await.unwrap();
        assert!(cut);
        assert_eq!(body.len(), MAX_ANSWER_BYTES);
        assert!(body.capacity() < 2 * MAX_ANSWER_BYTES);
        // One chunk past the cap at most: the next 9.7 MiB are never pulled.
        assert!(src.pulled <= MAX_ANSWER_BYTES + 16 * 1024, "{}", src.pulled);

        let mut exact = Counted {
            left: MAX_ANSWER_BYTES,
            size: 1000,
            pulled: 0,
        };
        let (body, cut) = read_capped(&mut exact, MAX_ANSWER_BYTES).await.unwrap();
        assert!(!cut);
        assert_eq!(body.len(), MAX_ANSWER_BYTES);
    }

    #[test]
    fn an_oversize_answer_is_a_transient_failure_with_the_cap_named() {
        let mut r = HttpResponse::new(200, HeaderMap::new(), b"{\"errcode\":0".to_vec());
        r.oversize = Some(MAX_ANSWER_BYTES);
        let e = r.json().unwrap_err();
        assert_eq!(e.outcome, Outcome::Retry { after: None });
        assert!(e.message.contains("answer larger than 256 KiB"), "{e}");
        assert_eq!(size_text(1 << 20), "1 MiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }

    #[test]
    fn a_proxy_url_is_checked_and_its_password_never_shown() {
        let p = Proxy::new("http://ops:pa%40ss@proxy.internal:3128", vec![]).unwrap();
        assert_eq!(p.redacted(), "http://ops:***@proxy.internal:3128/");
        assert!(!format!("{p:?} {p}").contains("pa%40ss"));
        assert_eq!(p.secret().as_deref(), Some("pa@ss"));
        for scheme in ["https", "socks5", "socks5h"] {
            assert!(Proxy::new(&format!("{scheme}://proxy:1080"), vec![]).is_ok());
        }
        let err = Proxy::new("ftp://ops:hunter2@proxy:21", vec![]).unwrap_err();
        assert!(
            err.contains("http, https, socks5, socks5h") && !err.contains("hunter2"),
            "{err}"
        );
        let err = Proxy::new("ops:hunter2@proxy:3128", vec![]).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        let err = Proxy::new("http://proxy:3128/path", vec![]).unwrap_err();
        assert!(err.contains("no path"), "{err}");
        let err = Proxy::new("http://proxy:3128", vec!["a.example b.example".into()]).unwrap_err();
        assert!(err.contains("`a.example b.example`"), "{err}");
    }

    #[test]
    fn no_proxy_takes_names_ranges_and_a_star() {
        let p = Proxy::new(
            "http://proxy:3128",
            vec![
                "10.0.0.0/8".into(),
                ".internal.example.com".into(),
                "192.0.2.7".into(),
            ],
        )
        .unwrap();
        let via = |u: &str| p.intercepts(&url::Url::parse(u).unwrap());
        assert!(!via("http://10.2.3.4:8080/x"));
        assert!(!via("https://hooks.internal.example.com/x"));
        assert!(!via("https://internal.example.com/x"));
        assert!(!via("http://192.0.2.7/x"));
        assert!(via("https://oapi.dingtalk.com/robot/send"));
        assert!(via("http://11.0.0.1/x"));
        assert!(via("https://notinternal.example.com/x"));
        let all = Proxy::new("http://proxy:3128", vec!["*".into()]).unwrap();
        for u in [
            "https://oapi.dingtalk.com/",
            "http://127.0.0.1:9/",
            "http://[::1]:9/",
        ] {
            assert!(!all.intercepts(&url::Url::parse(u).unwrap()), "{u}");
        }
        assert!(p.resolves_names());
        assert!(!Proxy::new("socks5://proxy:1080", vec![])
            .unwrap()
            .resolves_names());
    }

    #[test]
    fn a_redirect_names_its_target() {
        let mut h = HeaderMap::new();
        h.insert(
            reqwest::header::LOCATION,
            HeaderValue::from_static("http://10.0.0.1/x"),
        );
        let r = redirect_report(307, &h);
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(r.message.contains("`http://10.0.0.1/x`"), "{r}");
        let r = redirect_report(302, &HeaderMap::new());
        assert!(r.message.contains("without a Location"), "{r}");
    }
}
