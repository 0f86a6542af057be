//! Outbound safety for generic webhooks: a user-supplied URL must not let the
//! gateway reach private, loopback or link-local addresses (cloud metadata at
//! 169.254.169.254, admin ports on localhost, the internal network) unless the
//! config allows it explicitly.
//!
//! The check runs on the addresses a hostname resolves to, right before each
//! send, so a public-looking name cannot smuggle in an internal address. IP
//! literals are refused already when the config is loaded. (Platform
//! destinations are held to their platform's host or configured `base_url` by
//! the SDK itself.)

pub mod config;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use async_trait::async_trait;
use imrelay_sdk::message::Platform;
use imrelay_sdk::outcome::{Outcome, Report};
use imrelay_sdk::{Destination, Message, Payload, Quota};
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

/// Check a webhook URL when the config is loaded: IP literals and `localhost`
/// are judged now; other names when sending. `Err` names the problem.
pub fn check_url_statically(url: &Url) -> Result<(), String> {
    let reason = match url.host() {
        Some(Host::Ipv4(ip)) => forbidden_reason(IpAddr::V4(ip)).map(|r| (ip.to_string(), r)),
        Some(Host::Ipv6(ip)) => forbidden_reason(IpAddr::V6(ip)).map(|r| (ip.to_string(), r)),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            (d == "localhost" || d.ends_with(".localhost")).then_some((d, "loopback"))
        }
        None => return Err("the URL has no host".into()),
    };
    match reason {
        Some((host, why)) => Err(refusal(&host, why)),
        None => Ok(()),
    }
}

fn refusal(host: &str, why: &str) -> String {
    format!(
        "`{host}` is a {why} address; webhooks may not reach private, loopback or link-local addresses \
         unless the destination sets `allow_private = true` (or `[outbound] allow_private_networks = true`)"
    )
}

/// A generic webhook destination that re-checks the resolved addresses of its
/// host before every send.
#[derive(Debug)]
pub struct Guarded {
    inner: Arc<dyn Destination>,
    host: String,
    port: u16,
}

impl Guarded {
    /// Wrap `inner`, whose requests go to `url`.
    pub fn new(inner: Arc<dyn Destination>, url: &Url) -> Result<Self, String> {
        check_url_statically(url)?;
        let host = url.host_str().ok_or("the URL has no host")?.to_string();
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        Ok(Guarded { inner, host, port })
    }

    async fn check_resolved(&self) -> Result<(), Report> {
        // Brackets come with IPv6 literals in host_str(); lookup_host wants them off.
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs = tokio::net::lookup_host((host, self.port))
            .await
            .map_err(|e| {
                Report::new(
                    Outcome::Retry { after: None },
                    format!("DNS lookup of `{host}` failed: {e}"),
                )
            })?;
        let mut any = false;
        for a in addrs {
            any = true;
            if let Some(why) = forbidden_reason(a.ip()) {
                return Err(Report::new(
                    Outcome::Permanent,
                    format!(
                        "refused: `{host}` resolves to {}, {}",
                        a.ip(),
                        refusal(&a.ip().to_string(), why)
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
    fn dedups_retries(&self) -> bool {
        self.inner.dedups_retries()
    }
    fn render(&self, msg: &Message) -> Result<Vec<Payload>, imrelay_sdk::Error> {
        self.inner.render(msg)
    }
    async fn send(&self, payload: &Payload) -> Report {
        if let Err(r) = self.check_resolved().await {
            return r;
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
            assert!(err.contains("allow_private"), "{u}: {err}");
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
            port: 9,
        };
        let r = g.send(&Payload::new(serde_json::json!({}))).await;
        assert_eq!(r.outcome, Outcome::Permanent);
        assert!(
            r.message.contains("resolves to 127.0.0.1") || r.message.contains("resolves to ::1"),
            "{}",
            r.message
        );
    }
}
