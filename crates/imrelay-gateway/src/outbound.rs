//! Outbound safety for generic webhooks: a user-supplied URL must not let the
//! gateway reach private, loopback or link-local addresses (cloud metadata at
//! 169.254.169.254, admin ports on localhost, the internal network) unless the
//! config allows it explicitly.
//!
//! The check runs on the addresses a hostname resolves to, right before each
//! send, so a public-looking name cannot smuggle in an internal address; and
//! the connection itself goes through [`GuardResolver`], which resolves the
//! name again and hands the HTTP client only the addresses that pass, so a
//! name that answers a public address to the check and a private one to the
//! connect (DNS rebinding) reaches nothing. TLS SNI and `Host` stay the URL's
//! name. IP literals are refused already when the config is loaded. (Platform
//! destinations are held to their platform's host or configured `base_url` by
//! the SDK itself.)
//!
//! Through an outbound proxy (`[outbound] proxy`, or a destination's own) the
//! gateway never learns the address the proxy connects to: an `http://`,
//! `https://` or `socks5h://` proxy resolves the webhook's name itself. The
//! webhook's host is then only judged statically (IP literals, `localhost`),
//! and the per-send lookup is skipped (many networks that need a proxy cannot
//! resolve outside names at all); what the proxy lets through is the proxy
//! operator's policy. With `socks5://` names are still resolved here, through
//! the [`GuardResolver`], so the full guard applies. The proxy's own address
//! is trusted config, never judged: it is usually on the internal network.

pub mod config;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use imrelay_sdk::http::dns::{Addrs, Name, Resolve, Resolving};
use imrelay_sdk::message::Platform;
use imrelay_sdk::outcome::{Outcome, Report};
use imrelay_sdk::{Client, ClientOptions, Destination, Message, Payload, Quota};
use url::{Host, Url};

/// Why `ip` may not be reached without an explicit allowance, or `None` when it
/// is a public address.
pub fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => {
            // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible forms reach the v4 address.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4_reason(v4);
            }
            v6_reason(v6)
        }
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() || o[0] == 0 {
        // 0.0.0.0 connects to the local host on most systems.
        Some("unspecified (this host)")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("carrier-grade NAT (shared)")
    } else if ip.is_broadcast() || ip.is_multicast() || o[0] >= 240 {
        Some("broadcast, multicast or reserved")
    } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        Some("IETF protocol assignment")
    } else if o[0] == 198 && (o[1] & 0xfe) == 18 {
        Some("benchmarking")
    } else {
        None
    }
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified (this host)")
    } else if (seg[0] & 0xfe00) == 0xfc00 {
        Some("unique local (private)")
    } else if (seg[0] & 0xffc0) == 0xfe80 {
        Some("link-local")
    } else if (seg[0] & 0xffc0) == 0xfec0 {
        Some("site-local (private)")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if seg[0] == 0 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0 && seg[4] == 0 && seg[5] == 0
    {
        // IPv4-compatible ::a.b.c.d (deprecated) may still route to the v4 address.
        v4_reason(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ))
        .or(Some("IPv4-compatible"))
    } else if seg[0] == 0x64 && seg[1] == 0xff9b {
        // NAT64 maps the embedded v4 address.
        v4_reason(Ipv4Addr::new(
            (seg[6] >> 8) as u8,
            seg[6] as u8,
            (seg[7] >> 8) as u8,
            seg[7] as u8,
        ))
    } else {
        None
    }
}

/// Why a webhook destination was not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRefused {
    #[error("the URL has no host")]
    NoHost,
    /// A private, loopback or link-local address (the text says which and
    /// how to allow it).
    #[error("{0}")]
    Private(String),
    /// The destination itself could not be built.
    #[error("{0}")]
    Build(String),
}

/// Check a webhook URL when the config is loaded: IP literals and `localhost`
/// are judged now; other names when sending.
pub fn check_url_statically(url: &Url) -> Result<(), UrlRefused> {
    let reason = match url.host() {
        Some(Host::Ipv4(ip)) => forbidden_reason(IpAddr::V4(ip)).map(|r| (ip.to_string(), r)),
        Some(Host::Ipv6(ip)) => forbidden_reason(IpAddr::V6(ip)).map(|r| (ip.to_string(), r)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost")).then_some((d, "loopback"))
        }
        None => return Err(UrlRefused::NoHost),
    };
    match reason {
        Some((host, why)) => Err(UrlRefused::Private(refusal(&host, why))),
        None => Ok(()),
    }
}

fn refusal(host: &str, why: &str) -> String {
    format!(
        "`{host}` is a {why} address; webhooks may not reach private, loopback or link-local addresses \
         unless the destination sets `allow_private = true` (or `[outbound] allow_private_networks = true`)"
    )
}

/// Looks a host name up. The system resolver in production; tests put in a
/// stub that answers differently each time.
#[async_trait]
pub trait Lookup: Send + Sync + fmt::Debug {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The system resolver (getaddrinfo, through tokio).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// The HTTP client's resolver for a guarded webhook: looks the webhook's host
/// up and returns only the addresses [`forbidden_reason`] lets through, so the
/// connection goes to an address that passed the guard, whatever the name
/// answered to any earlier lookup. Other names (an HTTP proxy the operator
/// configured, which may well be on the internal network) resolve unfiltered;
/// with redirects off, the webhook's host is the only one a config can name.
#[derive(Debug, Clone)]
pub struct GuardResolver {
    lookup: Arc<dyn Lookup>,
    host: String,
}

impl GuardResolver {
    /// Guard the connections to `host`.
    pub fn new(lookup: Arc<dyn Lookup>, host: &str) -> Self {
        GuardResolver {
            lookup,
            host: normal_host(host),
        }
    }
}

/// Lower case, without a trailing dot: how two spellings of a name compare.
fn normal_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Every address of a name was forbidden.
#[derive(Debug)]
struct Refused {
    host: String,
    refused: Vec<(IpAddr, &'static str)>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused: `{}` resolves only to ", self.host)?;
        for (i, (ip, why)) in self.refused.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{ip} ({why})")?;
        }
        f.write_str(
            "; webhooks may not reach private, loopback or link-local addresses unless the \
             destination sets `allow_private = true`",
        )
    }
}

impl std::error::Error for Refused {}

impl Resolve for GuardResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let lookup = self.lookup.clone();
        let host = name.as_str().to_string();
        let guarded = normal_host(&host) == self.host;
        Box::pin(async move {
            let ips = lookup.lookup(&host).await?;
            if !guarded {
                let addrs: Addrs = Box::new(
                    ips.into_iter()
                        .map(|ip| SocketAddr::new(ip, 0))
                        .collect::<Vec<_>>()
                        .into_iter(),
                );
                return Ok(addrs);
            }
            let (allowed, refused): (Vec<_>, Vec<_>) = ips
                .into_iter()
                .map(|ip| (ip, forbidden_reason(ip)))
                .partition(|(_, why)| why.is_none());
            if allowed.is_empty() {
                let refused = refused
                    .into_iter()
                    .filter_map(|(ip, why)| why.map(|w| (ip, w)))
                    .collect();
                return Err(Box::new(Refused { host, refused }) as _);
            }
            // Port 0: the client puts in the URL's port.
            let addrs: Addrs = Box::new(
                allowed
                    .into_iter()
                    .map(|(ip, _)| SocketAddr::new(ip, 0))
                    .collect::<Vec<_>>()
                    .into_iter(),
            );
            Ok(addrs)
        })
    }
}

/// A generic webhook destination that re-checks the resolved addresses of its
/// host before every send, and connects only through a [`GuardResolver`].
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn Destination>,
    host: String,
    lookup: Arc<dyn Lookup>,
    /// A proxy resolves the host, so there is no local address to check.
    resolved_by_proxy: bool,
}

impl Guarded {
    /// Build the webhook `config` (whose requests go to `url`) on a client like
    /// `client` whose connections go through a [`GuardResolver`]. The guarded
    /// webhook has a connection pool of its own.
    pub fn new(client: &Client, config: &serde_json::Value, url: &Url) -> Result<Self, UrlRefused> {
        Self::with_lookup(client, config, url, Arc::new(SystemLookup))
    }

    fn with_lookup(
        client: &Client,
        config: &serde_json::Value,
        url: &Url,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, UrlRefused> {
        check_url_statically(url)?;
        let host = url.host_str().ok_or(UrlRefused::NoHost)?.to_string();
        let options = &client.shared().options;
        let resolved_by_proxy = options
            .proxy
            .as_ref()
            .is_some_and(|p| p.resolves_names() && p.intercepts(url));
        let guarded = Client::with_options(ClientOptions {
            resolver: Some(Arc::new(GuardResolver::new(lookup.clone(), &host))),
            ..options.clone()
        })
        .map_err(|e| UrlRefused::Build(e.to_string()))?;
        let inner = guarded
            .build(config)
            .map_err(|e| UrlRefused::Build(e.to_string()))?;
        Ok(Guarded {
            inner,
            host,
            lookup,
            resolved_by_proxy,
        })
    }

    async fn check_resolved(&self) -> Result<(), Report> {
        // Brackets come with IPv6 literals in host_str(); lookups want them off.
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs = self.lookup.lookup(host).await.map_err(|e| {
            Report::new(
                Outcome::Retry { after: None },
                format!("DNS lookup of `{host}` failed: {e}"),
            )
        })?;
        let mut any = false;
        for ip in addrs {
            any = true;
            if let Some(why) = forbidden_reason(ip) {
                return Err(Report::new(
                    Outcome::Permanent,
                    format!(
                        "refused: `{host}` resolves to {ip}, {}",
                        refusal(&ip.to_string(), why)
                    ),
                )
                .with_hint(
                    "allow private targets for this destination only if the receiver is trusted",
                ));
            }
        }
        if !any {
            return Err(Report::new(
                Outcome::Retry { after: None },
                format!("DNS lookup of `{host}` returned no address"),
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Destination for Guarded {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn platform(&self) -> Platform {
        self.inner.platform()
    }
    fn id(&self) -> &str {
        self.inner.id()
    }
    fn rate_limits(&self) -> Vec<Quota> {
        self.inner.rate_limits()
    }
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        self.inner.recipient_rate_limits()
    }
    fn shared_recipient_quota(&self, recipient: &str) -> Option<String> {
        self.inner.shared_recipient_quota(recipient)
    }
    fn dedups_retries(&self) -> bool {
        self.inner.dedups_retries()
    }
    fn render(&self, msg: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
        self.inner.render(msg)
    }
    async fn send(&self, payload: &Payload) -> Report {
        if !self.resolved_by_proxy {
            if let Err(r) = self.check_resolved().await {
                return r;
            }
        }
        self.inner.send(payload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(s: &str) -> Option<&'static str> {
        forbidden_reason(s.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(reason(ip).is_some(), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "100.128.0.1",
        ] {
            assert_eq!(reason(ip), None, "{ip} is public");
        }
    }

    #[test]
    fn literal_hosts_are_judged_when_loading() {
        let bad = [
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost/x",
            "http://api.LOCALHOST./x",
            "http://169.254.169.254/latest/meta-data",
        ];
        for u in bad {
            let err = check_url_statically(&Url::parse(u).unwrap()).unwrap_err();
            assert!(err.to_string().contains("allow_private"), "{u}: {err}");
        }
        assert!(check_url_statically(&Url::parse("https://hooks.example.com/in").unwrap()).is_ok());
        assert!(check_url_statically(&Url::parse("https://8.8.8.8/in").unwrap()).is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_send_time() {
        let client = imrelay_sdk::Client::new().unwrap();
        let inner = client
            .build(&serde_json::json!({"type": "webhook", "url": "http://localtest.invalid:9/x"}))
            .unwrap();
        // `localhost` is refused statically, so build the guard by hand for a name
        // the resolver maps to 127.0.0.1.
        let g = Guarded {
            inner,
            host: "localhost".into(),
            lookup: Arc::new(SystemLookup),
            resolved_by_proxy: false,
        };
        let r = g.send(&Payload::new(serde_json::json!({}))).await;
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(
            r.message.contains("resolves to 127.0.0.1") || r.message.contains("resolves to ::1"),
            "{}",
            r.message
        );
    }

    /// Answers each lookup with the next list of `answers` (the last one
    /// repeating), counting the lookups.
    #[derive(Debug)]
    struct Rebinding {
        answers: Vec<Vec<IpAddr>>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl Rebinding {
        fn new(answers: &[&[&str]]) -> Arc<Self> {
            Arc::new(Rebinding {
                answers: answers
                    .iter()
                    .map(|a| a.iter().map(|ip| ip.parse().unwrap()).collect())
                    .collect(),
                calls: Default::default(),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Lookup for Rebinding {
        async fn lookup(&self, _: &str) -> std::io::Result<Vec<IpAddr>> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.answers[n.min(self.answers.len() - 1)].clone())
        }
    }

    #[tokio::test]
    async fn a_name_that_rebinds_to_loopback_after_the_check_reaches_nothing() {
        // The receiver the attacker wants to reach: a loopback port that counts
        // connections.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let server = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });

        // Public for the guard's check, loopback when the client connects.
        let dns = Rebinding::new(&[&["93.184.216.34"], &["127.0.0.1"]]);
        let url = format!("http://rebind.example:{port}/hook");
        let g = Guarded::with_lookup(
            &Client::new().unwrap(),
            &serde_json::json!({"type": "webhook", "url": url}),
            &Url::parse(&url).unwrap(),
            dns.clone(),
        )
        .unwrap();
        let r = g.send(&Payload::new(serde_json::json!({"x": 1}))).await;
        assert!(!r.outcome.is_delivered(), "{r}");
        assert!(r.message.contains("127.0.0.1 (loopback)"), "{r}");
        assert_eq!(
            dns.calls(),
            2,
            "the connection must resolve through the guard"
        );
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "nothing may connect to the rebound address"
        );
        server.abort();
    }

    #[tokio::test]
    async fn the_resolver_hands_on_only_allowed_addresses() {
        let resolver = GuardResolver::new(
            Rebinding::new(&[
                &["10.0.0.7", "93.184.216.34", "::1", "2606:4700:4700::1111"],
                &["169.254.169.254", "fd00::1"],
            ]),
            "A.example.",
        );
        let name = |s: &str| s.parse::<Name>().unwrap();
        let addrs: Vec<SocketAddr> = resolver.resolve(name("a.example")).await.unwrap().collect();
        assert_eq!(
            addrs,
            vec![
                "93.184.216.34:0".parse().unwrap(),
                "[2606:4700:4700::1111]:0".parse().unwrap()
            ]
        );
        let err = resolver
            .resolve(name("a.example"))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("169.254.169.254 (link-local)") && err.contains("allow_private"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn names_other_than_the_webhooks_host_resolve_unfiltered() {
        // A proxy on the internal network stays reachable.
        let resolver = GuardResolver::new(Rebinding::new(&[&["10.0.0.3"]]), "hooks.example");
        let addrs: Vec<SocketAddr> = resolver
            .resolve("proxy.internal".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addrs, vec!["10.0.0.3:0".parse().unwrap()]);
        assert!(resolver
            .resolve("hooks.example".parse().unwrap())
            .await
            .is_err());
    }
}
