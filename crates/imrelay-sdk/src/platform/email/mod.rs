//! Email over SMTP (RFC 5321), for escalation: an unacknowledged alert goes to
//! the on-call person's mailbox.
//!
//! Rendering is pure: a [`Message`] becomes one [`Payload`] per batch of
//! recipients whose body is the email as JSON (`from`, `to`, `subject`,
//! `text`, `html`...), so it is snapshot-testable and durable like every other
//! platform's payload. Sending builds a `multipart/alternative` MIME message
//! from it with [lettre](https://docs.rs/lettre/0.11) (which encodes non-ASCII
//! headers per RFC 2047 and bodies as quoted-printable or base64) and sends it
//! over one pooled SMTP transport per destination, with rustls for TLS.
//!
//! Security modes: `starttls` (default; port 587; the connection must upgrade
//! or the send fails, RFC 3207), `tls` (implicit TLS, port 465, RFC 8314) and
//! `none` (plain text, port 25; for local test servers only: anyone on the path
//! reads the mail, so credentials are refused in this mode).
//!
//! See docs/platforms/email.md for the config keys and how SMTP answers are
//! classified.

mod render;
mod send;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use serde::Deserialize;

use crate::destination::{parse_config, Client, Destination, Payload, Quota, Registration};
use crate::message::{Message, Platform};
use crate::outcome::Report;
use crate::{Error, Secret};

pub use render::EmailBody;
pub use send::classify;

const KIND: &str = "email";

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[Registration {
    kind: KIND,
    platform: Platform::Email,
    summary: "Email over SMTP (STARTTLS, implicit TLS), e.g. to escalate to the on-call person",
    build: |client, value| Ok(Arc::new(Email::new(client, parse_config(KIND, value)?)?)),
}];

/// Default sends a minute: under what mail providers let one account submit
/// (Exchange Online: 30 messages a minute per mailbox,
/// https://learn.microsoft.com/office365/servicedescriptions/exchange-online-service-description/exchange-online-limits#sending-limits-1),
/// so a burst of alerts does not get the sending account throttled or flagged.
pub const DEFAULT_MAX_PER_MINUTE: u32 = 20;
/// Default recipients per SMTP transaction. RFC 5321 §4.5.3.1.8 only asks
/// servers to take 100; many take fewer.
pub const DEFAULT_MAX_RECIPIENTS: usize = 50;
/// Default limit on one SMTP command's answer (and on connecting).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit on one whole send (connect, TLS, AUTH, envelope, data).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(120);

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (RFC 3207), which is required:
    /// a server that does not offer it fails the send. Port 587 by default.
    #[default]
    Starttls,
    /// TLS from the first byte (implicit TLS, RFC 8314 §3.3). Port 465 by default.
    Tls,
    /// No encryption at all. Only for a local test server or a relay on the
    /// same host: anyone on the path can read and change the mail. Port 25 by
    /// default; `username`/`password` are refused in this mode.
    None,
}

// By hand, so a wrong value names the key (serde's enum error does not).
impl<'de> Deserialize<'de> for Security {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "starttls" => Ok(Security::Starttls),
            "tls" => Ok(Security::Tls),
            "none" => Ok(Security::None),
            other => Err(serde::de::Error::custom(format_args!(
                "`security` must be \"starttls\", \"tls\" or \"none\", not {other:?}"
            ))),
        }
    }
}

impl Security {
    pub fn default_port(self) -> u16 {
        match self {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        }
    }
}

/// Config of an email destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host name (also the name its TLS certificate must carry).
    pub host: String,
    /// Default by `security`: 587, 465 or 25.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    /// SMTP AUTH user (PLAIN or LOGIN); with `password`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    /// Sender mailbox, `alerts@example.com` or `Alerts <alerts@example.com>`.
    pub from: String,
    /// Default recipients; a message's `recipients` replace them.
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Put in front of every subject, e.g. `[imrelay] `.
    #[serde(default)]
    pub subject_prefix: Option<String>,
    /// PEM file of extra CA certificates to trust (a private CA, or a test
    /// server's self-signed CA), on top of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name sent in EHLO (default `[127.0.0.1]`, an address literal as
    /// RFC 5321 §4.1.4 allows); some servers want the sender's real host name.
    #[serde(default)]
    pub hello_name: Option<String>,
    /// Seconds to wait for a connection or one SMTP answer (default 30).
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    /// Seconds one whole send may take (default 120).
    #[serde(default)]
    pub send_timeout_secs: Option<f64>,
    /// Emails sent a minute at most (default 20).
    #[serde(default)]
    pub max_per_minute: Option<u32>,
    /// Recipients per email (default 50); more are split over several emails.
    #[serde(default)]
    pub max_recipients: Option<usize>,
}

/// An email destination: one SMTP server and sender.
pub struct Email {
    id: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    reply_to: Option<Mailbox>,
    subject_prefix: String,
    max_per_minute: u32,
    max_recipients: usize,
    send_timeout: Duration,
    /// Checked when the destination is built; the transport is made from it
    /// once, at the first send.
    builder: AsyncSmtpTransportBuilder,
    /// lettre keeps a pool of authenticated connections in it. Its pool
    /// starts a tokio task, so it is made inside the runtime (at the first
    /// send) rather than in [`Email::new`], which may run outside one.
    transport: OnceLock<AsyncSmtpTransport<Tokio1Executor>>,
}

impl Email {
    pub(super) fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport.get_or_init(|| self.builder.clone().build())
    }
}

impl Drop for Email {
    // Dropping lettre's pool spawns a task that closes its connections;
    // outside a runtime (a destination dropped after its runtime ended) that
    // spawn would panic, so give it a short-lived runtime to run on.
    fn drop(&mut self) {
        let Some(transport) = self.transport.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(transport);
        } else if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            let _guard = rt.enter();
            drop(transport);
        } else {
            // No runtime can be made: leak the idle connections rather than
            // panic in a destructor.
            std::mem::forget(transport);
        }
    }
}

impl fmt::Debug for Email {
    // The transport holds the credentials; only what identifies the
    // destination is printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Email")
            .field("id", &self.id)
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

fn config_err(msg: impl fmt::Display) -> Error {
    Error::Config(format!("{KIND}: {msg}"))
}

/// Parse a mailbox from config key `key`.
fn mailbox(key: &str, value: &str) -> Result<Mailbox, Error> {
    value
        .trim()
        .parse::<Mailbox>()
        .map_err(|e| config_err(format_args!("`{key}`: `{value}` is not a mailbox ({e})")))
}

fn secs(key: &str, value: Option<f64>, default: Duration) -> Result<Duration, Error> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && s > 0.0 && s <= 3600.0 => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(config_err(format_args!(
            "`{key}` must be a number of seconds in (0, 3600], got {s}"
        ))),
    }
}

impl Email {
    /// Check `cfg` and prepare the transport. `_client` is not needed: SMTP
    /// shares neither the HTTP client nor the token cache.
    pub fn new(_client: &Client, cfg: EmailConfig) -> Result<Self, Error> {
        // lettre's rustls uses the process default provider when one is set;
        // install ring like the HTTP client does (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();

        let host = cfg.host.trim();
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(config_err("`host` must be a host name or IP address"));
        }
        let port = cfg.port.unwrap_or(cfg.security.default_port());
        if port == 0 {
            return Err(config_err("`port` must not be 0"));
        }
        let from = mailbox("from", &cfg.from)?;
        let to = cfg
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| mailbox(&format!("to[{i}]"), t))
            .collect::<Result<Vec<_>, _>>()?;
        let reply_to = cfg
            .reply_to
            .as_deref()
            .map(|r| mailbox("reply_to", r))
            .transpose()?;
        let subject_prefix = cfg.subject_prefix.unwrap_or_default();
        if subject_prefix.contains(['\r', '\n']) {
            return Err(config_err("`subject_prefix` must be one line"));
        }
        let max_per_minute = cfg.max_per_minute.unwrap_or(DEFAULT_MAX_PER_MINUTE);
        if max_per_minute == 0 {
            return Err(config_err("`max_per_minute` must be at least 1"));
        }
        let max_recipients = cfg.max_recipients.unwrap_or(DEFAULT_MAX_RECIPIENTS);
        if max_recipients == 0 {
            return Err(config_err("`max_recipients` must be at least 1"));
        }
        let timeout = secs("timeout_secs", cfg.timeout_secs, DEFAULT_TIMEOUT)?;
        let send_timeout = secs(
            "send_timeout_secs",
            cfg.send_timeout_secs,
            DEFAULT_SEND_TIMEOUT,
        )?;

        let credentials = match (cfg.username, cfg.password) {
            (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                if cfg.security == Security::None {
                    return Err(config_err(
                        "`username`/`password` need `security` \"starttls\" or \"tls\": \
                         with \"none\" the password would cross the network in clear text",
                    ));
                }
                Some(Credentials::new(u, p.expose().to_string()))
            }
            (None, None) => None,
            _ => {
                return Err(config_err(
                    "`username` and `password` go together: set both (non-empty) or neither",
                ))
            }
        };

        let tls = match cfg.security {
            Security::None => {
                if cfg.ca_file.is_some() {
                    return Err(config_err(
                        "`ca_file` needs `security` \"starttls\" or \"tls\"",
                    ));
                }
                Tls::None
            }
            Security::Starttls => Tls::Required(tls_parameters(host, cfg.ca_file.as_ref())?),
            Security::Tls => Tls::Wrapper(tls_parameters(host, cfg.ca_file.as_ref())?),
        };

        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(4));
        if let Some(name) = cfg.hello_name.as_deref().map(str::trim) {
            if name.is_empty() || name.contains(|c: char| c.is_whitespace() || c.is_control()) {
                return Err(config_err("`hello_name` must be a host name"));
            }
            builder = builder.hello_name(ClientId::Domain(name.to_string()));
        }
        if let Some(c) = credentials {
            builder = builder.credentials(c);
        }

        let id = format!(
            "{KIND}:{}",
            Secret::new(format!("{host}:{port}/{}", from.email)).fingerprint()
        );
        Ok(Email {
            id,
            from,
            to,
            reply_to,
            subject_prefix,
            max_per_minute,
            max_recipients,
            send_timeout,
            builder,
            transport: OnceLock::new(),
        })
    }
}

/// TLS parameters for `host`, trusting the system's roots plus `ca_file`.
fn tls_parameters(host: &str, ca_file: Option<&PathBuf>) -> Result<TlsParameters, Error> {
    let mut b = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| {
            config_err(format_args!(
                "`ca_file`: cannot read {}: {e}",
                path.display()
            ))
        })?;
        if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
            return Err(config_err(format_args!(
                "`ca_file`: {} holds no PEM certificate",
                path.display()
            )));
        }
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| config_err(format_args!("`ca_file`: {}: {e}", path.display())))?;
        b = b.add_root_certificate(cert);
    }
    b.build_rustls()
        .map_err(|e| config_err(format_args!("TLS setup for `host` {host}: {e}")))
}

#[async_trait]
impl Destination for Email {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn platform(&self) -> Platform {
        Platform::Email
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_minute(self.max_per_minute)]
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        render::render(self, msg)
    }

    async fn send(&self, payload: &Payload) -> Report {
        send::send(self, payload).await
    }
}
