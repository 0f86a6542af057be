//! Message → email, as JSON: the subject, a plain-text part and an HTML part
//! rendered from the markdown with every piece of raw HTML escaped.

use lettre::message::Mailbox;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use serde::{Deserialize, Serialize};

use super::{Email, KIND};
use crate::destination::{dedup_key, Payload};
use crate::message::{Body, ImageSource, Message, Platform};
use crate::Error;

/// The payload body of an email destination: everything the MIME message is
/// built from at send time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailBody {
    pub from: String,
    pub to: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `Message-ID` (without the angle brackets), the same on every retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// A raw email body: the content only; sender and recipients still come from
/// the destination and the message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmail {
    subject: String,
    text: String,
    #[serde(default)]
    html: Option<String>,
}

pub(super) fn render(dest: &Email, msg: &Message) -> Result<Vec<Payload>, Error> {
    let (subject, text, html) = content(msg)?;
    let subject = one_line(&format!("{}{subject}", dest.subject_prefix));
    let recipients = recipients(dest, msg)?;
    let domain = dest.from.email.domain().to_string();
    let payloads = recipients
        .chunks(dest.max_recipients)
        .enumerate()
        .map(|(part, batch)| {
            let to: Vec<String> = batch.iter().map(ToString::to_string).collect();
            let key = dedup_key(msg.id.as_deref(), part, "");
            let body = EmailBody {
                from: dest.from.to_string(),
                to: to.clone(),
                reply_to: dest.reply_to.as_ref().map(ToString::to_string),
                subject: subject.clone(),
                text: text.clone(),
                html: html.clone(),
                message_id: key.as_ref().map(|k| format!("{k}@{domain}")),
            };
            let mut p = Payload::new(serde_json::to_value(body).unwrap_or_default());
            p.recipients = to;
            p.dedup_key = key;
            p
        })
        .collect();
    Ok(payloads)
}

/// The message's recipients (validated mailboxes, duplicates dropped), or the
/// destination's `to`.
fn recipients(dest: &Email, msg: &Message) -> Result<Vec<Mailbox>, Error> {
    let list = if msg.recipients.is_empty() {
        dest.to.clone()
    } else {
        msg.recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.trim().parse::<Mailbox>().map_err(|e| {
                    Error::InvalidMessage(format!(
                        "{KIND}: `recipients[{i}]`: `{r}` is not an email address ({e})"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut seen = std::collections::HashSet::new();
    let list: Vec<Mailbox> = list
        .into_iter()
        .filter(|m| seen.insert(m.email.to_string().to_ascii_lowercase()))
        .collect();
    if list.is_empty() {
        return Err(Error::InvalidMessage(format!(
            "{KIND}: no recipients: set `to` in the destination or `recipients` in the message"
        )));
    }
    Ok(list)
}

/// Subject, text part and HTML part of a message.
fn content(msg: &Message) -> Result<(String, String, String), Error> {
    let subject = msg.title_or_default();
    let (text, html) = match &msg.body {
        Body::Text { text } => (text.clone(), text_html(text)),
        Body::Markdown { text } => (text.clone(), markdown_html(text)),
        Body::Link { text, url, .. } => (
            format!("{text}\n\n{url}"),
            format!("{}{}", markdown_html(text), links_html(&[(url, url)])),
        ),
        Body::Card { text, buttons, .. } => {
            let mut plain = text.clone();
            if !buttons.is_empty() {
                plain.push_str("\n\n");
                for b in buttons {
                    plain.push_str(&format!("{}: {}\n", b.text, b.url));
                }
            }
            let links: Vec<(&String, &String)> =
                buttons.iter().map(|b| (&b.text, &b.url)).collect();
            (
                plain.trim_end().to_string(),
                format!("{}{}", markdown_html(text), links_html(&links)),
            )
        }
        Body::News { articles } => {
            if articles.is_empty() {
                return Err(Error::InvalidMessage(format!(
                    "{KIND}: a news body needs at least one article"
                )));
            }
            let mut plain = String::new();
            let mut html = String::from("<ul>\n");
            for a in articles {
                plain.push_str(&format!("{}\n{}\n", a.title, a.url));
                html.push_str(&format!("<li>{}", link(&a.title, &a.url)));
                if let Some(d) = a.description.as_deref().filter(|d| !d.is_empty()) {
                    plain.push_str(&format!("{d}\n"));
                    html.push_str(&format!("<br>\n{}", escape(d)));
                }
                plain.push('\n');
                html.push_str("</li>\n");
            }
            html.push_str("</ul>\n");
            (plain.trim_end().to_string(), html)
        }
        Body::Image { image } => match image {
            ImageSource::Url(url) => (url.clone(), links_html(&[(url, url)])),
            _ => {
                return Err(Error::unsupported(
                    KIND,
                    "image",
                    "email takes an image by `url` only (attachments are not supported)",
                ))
            }
        },
        Body::Template { data, url, .. } => {
            let mut plain: String = data.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            let mut html = String::from("<table>\n");
            for (k, v) in data {
                html.push_str(&format!(
                    "<tr><th align=\"left\">{}</th><td>{}</td></tr>\n",
                    escape(k),
                    escape(v)
                ));
            }
            html.push_str("</table>\n");
            if let Some(url) = url {
                plain.push_str(&format!("\n{url}\n"));
                html.push_str(&links_html(&[(url, url)]));
            }
            (plain.trim_end().to_string(), html)
        }
        Body::Raw { platform, payload } => {
            super::super::check_raw(*platform, Platform::Email, KIND)?;
            let raw: RawEmail = serde_json::from_value(payload.clone()).map_err(|e| {
                Error::InvalidMessage(format!(
                    "{KIND}: a raw email payload is {{\"subject\", \"text\", \"html\"?}}: {e}"
                ))
            })?;
            let html = raw.html.unwrap_or_else(|| text_html(&raw.text));
            return Ok((raw.subject, raw.text, html));
        }
    };
    Ok((subject, text, html))
}

/// A header value on one line (a newline in a title must not end the header).
fn one_line(s: &str) -> String {
    s.split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// HTML-escape text (the five characters that matter in text and attributes).
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether a link target is safe to put in an `href` (no `javascript:`,
/// `data:` and the like).
fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    ["http://", "https://", "mailto:"]
        .iter()
        .any(|s| lower.starts_with(s))
}

/// One link, or the escaped text alone when the target is not safe.
fn link(text: &str, url: &str) -> String {
    if safe_url(url) {
        format!("<a href=\"{}\">{}</a>", escape(url.trim()), escape(text))
    } else {
        format!("{} ({})", escape(text), escape(url))
    }
}

fn links_html(links: &[(&String, &String)]) -> String {
    if links.is_empty() {
        return String::new();
    }
    let items: Vec<String> = links.iter().map(|(t, u)| link(t, u)).collect();
    format!("<p>{}</p>\n", items.join(" | "))
}

/// Plain text as HTML: paragraphs at blank lines, line breaks kept.
fn text_html(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let lines: Vec<String> = para.lines().map(escape).collect();
        out.push_str(&format!("<p>{}</p>\n", lines.join("<br>\n")));
    }
    out
}

/// Markdown as HTML with pulldown-cmark (CommonMark plus tables and
/// strikethrough). Raw HTML in the source is shown as text, never passed
/// through, and links or images to anything but http(s)/mailto lose their
/// target: the mail client must not run or fetch what a message smuggles in.
pub(super) fn markdown_html(md: &str) -> String {
    let mut opts = Options::empty();
    opts.insert(Options::ENABLE_TABLES);
    opts.insert(Options::ENABLE_STRIKETHROUGH);
    // Whether each open link/image was kept, to drop the matching end tag.
    let mut kept: Vec<bool> = Vec::new();
    let events = Parser::new_ext(md, opts).filter_map(|ev| match ev {
        Event::Html(s) | Event::InlineHtml(s) => Some(Event::Text(s)),
        Event::Start(Tag::HtmlBlock) | Event::End(TagEnd::HtmlBlock) => None,
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        // An image becomes a link to it: remote images in mail are tracking
        // pixels to many readers, and blocked by most clients anyway.
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => {
            let ok = safe_url(&dest_url);
            kept.push(ok);
            ok.then(|| {
                Event::Start(Tag::Link {
                    link_type,
                    dest_url: CowStr::from(dest_url.trim().to_string()),
                    title,
                    id,
                })
            })
        }
        Event::End(TagEnd::Link) | Event::End(TagEnd::Image) => {
            kept.pop().unwrap_or(false).then_some(Event::End(TagEnd::Link))
        }
        other => Some(other),
    });
    let mut out = String::new();
    pulldown_cmark::html::push_html(&mut out, events);
    out
}
