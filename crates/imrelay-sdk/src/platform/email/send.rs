//! Payload → MIME message → SMTP, and the SMTP answer → [`Report`].
//!
//! Reply codes follow RFC 5321 §4.2.1: 2yz done, 4yz transient (try again
//! later), 5yz permanent. lettre reports a negative answer to any command
//! (AUTH, MAIL, RCPT, DATA) as an error carrying the code and the server's
//! text; connection, timeout and TLS failures carry no code.

use lettre::address::Envelope;
use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::Error as SmtpError;
use lettre::AsyncTransport;

use super::render::EmailBody;
use super::Email;
use crate::destination::Payload;
use crate::outcome::{Code, Outcome, RecipientFailure, Report};

/// Largest server text kept in a report, in characters.
const MAX_TEXT: usize = 300;

pub(super) async fn send(dest: &Email, payload: &Payload) -> Report {
    let built = match build(payload) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Built {
        from,
        to,
        bytes,
        message_id,
    } = built;
    let all = match Envelope::new(Some(from.clone()), to.clone()) {
        Ok(e) => e,
        Err(e) => return invalid(format!("envelope: {e}")),
    };
    let first = match transact(dest, &all, &bytes).await {
        Ok(r) => return r.with_message_id(message_id),
        Err(e) => e,
    };
    // lettre ends the whole transaction at the first refused RCPT without
    // saying which address it was. When a mailbox refusal (550, 551, 553)
    // hits a several-recipient email, send it to each recipient alone: the
    // addresses the server takes get the mail, the others are reported one
    // by one. Nothing was accepted by the failed transaction (a refusal
    // before the end of DATA delivers nothing), so no one gets it twice.
    // Other refusals (AUTH, size, policy) would only repeat, and repeated
    // AUTH failures can lock the account, so they are reported as they are.
    if to.len() < 2 || !matches!(first, Failure::Smtp(ref e) if is_mailbox_refusal(e)) {
        return first.report();
    }
    let mut delivered = 0usize;
    let mut failed = Vec::new();
    let mut last = None;
    for rcpt in &to {
        let one = match Envelope::new(Some(from.clone()), vec![rcpt.clone()]) {
            Ok(e) => e,
            Err(e) => return invalid(format!("envelope: {e}")),
        };
        match transact(dest, &one, &bytes).await {
            Ok(_) => delivered += 1,
            Err(f) => {
                let r = f.report();
                failed.push(RecipientFailure {
                    recipient: rcpt.to_string(),
                    outcome: r.outcome,
                    reason: r.message.clone(),
                });
                last = Some(r);
            }
        }
    }
    match last {
        // Every address refused on its own: the answer for all is the answer.
        Some(mut r) if delivered == 0 => {
            if failed
                .iter()
                .any(|f| !matches!(f.outcome, Outcome::Permanent))
            {
                r.outcome = Outcome::Retry { after: None };
            }
            r.message = failed
                .iter()
                .map(|f| format!("{}: {}", f.recipient, f.reason))
                .collect::<Vec<_>>()
                .join("; ");
            r
        }
        _ => {
            let mut r = Report::new(Outcome::Delivered, "250 accepted (some recipients refused)")
                .with_code(Code::Int(250))
                .with_message_id(message_id);
            r.failed_recipients = failed;
            r
        }
    }
}

struct Built {
    from: lettre::Address,
    to: Vec<lettre::Address>,
    bytes: Vec<u8>,
    message_id: String,
}

/// A malformed payload (edited in a queue, or built by hand) is not going to
/// get better.
fn invalid(msg: String) -> Report {
    Report::new(
        Outcome::Permanent,
        format!("not a valid email payload: {msg}"),
    )
}

fn mailbox(field: &str, v: &str) -> Result<Mailbox, Report> {
    v.parse::<Mailbox>()
        .map_err(|e| invalid(format!("`{field}`: `{v}`: {e}")))
}

/// The MIME message and its envelope.
fn build(payload: &Payload) -> Result<Built, Report> {
    let body: EmailBody =
        serde_json::from_value(payload.body.clone()).map_err(|e| invalid(e.to_string()))?;
    let from = mailbox("from", &body.from)?;
    let domain = from.email.domain().to_string();
    let message_id = format!(
        "<{}>",
        body.message_id
            .clone()
            .unwrap_or_else(|| format!("{}@{domain}", uuid::Uuid::new_v4()))
    );
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(body.subject.clone())
        .message_id(Some(message_id.clone()))
        .user_agent(concat!("imrelay/", env!("CARGO_PKG_VERSION")).to_string());
    if body.to.is_empty() {
        return Err(invalid("`to` is empty".into()));
    }
    let mut to = Vec::with_capacity(body.to.len());
    for t in &body.to {
        let m = mailbox("to", t)?;
        to.push(m.email.clone());
        b = b.to(m);
    }
    if let Some(r) = &body.reply_to {
        b = b.reply_to(mailbox("reply_to", r)?);
    }
    let parts = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(body.html.clone()),
        );
    let msg = b.multipart(parts).map_err(|e| invalid(e.to_string()))?;
    Ok(Built {
        from: from.email,
        to,
        bytes: msg.formatted(),
        message_id,
    })
}

/// A permanent refusal that names a mailbox: 550 mailbox unavailable, 551
/// user not local, 553 mailbox name not allowed (RFC 5321 §4.2.2).
fn is_mailbox_refusal(e: &SmtpError) -> bool {
    e.is_permanent()
        && e.status()
            .is_some_and(|c| matches!(u16::from(c), 550 | 551 | 553))
}

/// Why one SMTP transaction did not deliver.
enum Failure {
    Smtp(SmtpError),
    TimedOut(std::time::Duration),
}

impl Failure {
    fn report(&self) -> Report {
        match self {
            Failure::Smtp(e) => classify(e),
            Failure::TimedOut(d) => Report::new(
                Outcome::Retry { after: None },
                format!("the send took longer than {}s", d.as_secs_f64()),
            )
            .with_hint("raise `send_timeout_secs` if the server is merely slow"),
        }
    }
}

async fn transact(dest: &Email, envelope: &Envelope, bytes: &[u8]) -> Result<Report, Failure> {
    match tokio::time::timeout(
        dest.send_timeout,
        dest.transport().send_raw(envelope, bytes),
    )
    .await
    {
        Err(_) => Err(Failure::TimedOut(dest.send_timeout)),
        Ok(Err(e)) => Err(Failure::Smtp(e)),
        Ok(Ok(resp)) => {
            let code = u16::from(resp.code());
            let text = resp.message().collect::<Vec<_>>().join(" ");
            Ok(
                Report::new(Outcome::Delivered, clip(&format!("{code} {text}")))
                    .with_code(Code::Int(i64::from(code))),
            )
        }
    }
}

trait WithMessageId {
    fn with_message_id(self, id: String) -> Self;
}

impl WithMessageId for Report {
    fn with_message_id(mut self, id: String) -> Self {
        self.platform_message_id = Some(id);
        self
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_TEXT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Classify one lettre SMTP error.
///
/// * 535 (credentials invalid, RFC 4954 §6), 534 (mechanism too weak), 530
///   (authentication required): permanent, naming `username`/`password`.
/// * other 5yz: permanent (mailbox unknown 550, not allowed 553, too big
///   552, refused 554, ...).
/// * 4yz: retry (greylisting 450/451, busy 421, too many recipients 452,
///   temporary AUTH failure 454).
/// * connection, timeout, TLS, unparsable answer: retry.
/// * lettre's own refusals before anything is sent (no common AUTH
///   mechanism, STARTTLS not offered, non-ASCII without 8BITMIME): permanent,
///   since sending again changes nothing.
pub fn classify(e: &SmtpError) -> Report {
    let text = clip(&e.to_string());
    if let Some(code) = e.status() {
        let n = u16::from(code);
        let mut r = if e.is_transient() {
            Report::new(Outcome::Retry { after: None }, text)
        } else {
            Report::new(Outcome::Permanent, text)
        }
        .with_code(Code::Int(i64::from(n)));
        let hint = match n {
            535 => Some(
                "the server refused the credentials: check `username` and `password` \
                 (many providers want an app password for SMTP)",
            ),
            534 => Some(
                "the server wants a stronger authentication mechanism or an app password: \
                 check `username`/`password` and the account's SMTP settings",
            ),
            530 => Some(
                "the server requires authentication (or STARTTLS first): set `username` and `password`",
            ),
            550 | 551 | 553 => Some("the server refused an address: check `from` and the recipients"),
            552 => Some("the message or the mailbox exceeds the server's size limit"),
            554 => Some("the server refused the transaction (often spam or policy filtering)"),
            450 | 451 => Some("temporary refusal, often greylisting: a later retry usually passes"),
            _ => None,
        };
        if let Some(h) = hint {
            r = r.with_hint(h);
        }
        return r;
    }
    if e.is_client() {
        return Report::new(Outcome::Permanent, text).with_hint(
            "the SMTP client refused to go on with this server (no common AUTH mechanism, \
             STARTTLS not offered, or 8BITMIME missing): check `host`, `port` and `security`",
        );
    }
    let hint = if e.is_tls() || tls_failure(e) {
        "TLS failed: check `host` (it must match the certificate), `security` and `ca_file`"
    } else if e.is_timeout() {
        "the server did not answer in time (`timeout_secs`)"
    } else {
        "could not talk to the SMTP server: check `host`, `port` and `security`"
    };
    Report::new(Outcome::Retry { after: None }, text).with_hint(hint)
}

/// Whether a connection error came from the TLS layer (lettre files a failed
/// certificate check under "connection error", with rustls's error inside an
/// I/O error).
fn tls_failure(e: &SmtpError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
        }
        cur = err.source();
    }
    false
}
