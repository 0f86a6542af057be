//! Rendering shared by the custom bot webhook and the app bot. Both speak the
//! same message types with the same content shapes; only the envelope differs
//! (webhook: `content` is an object, a post sits under `post`, a card under
//! `card`; app: `content` is a JSON *string* and a post has no `post` key). So the
//! renderer produces [`Native`] contents and sizes them with the destination's
//! own `measure` of the finished request.

use serde_json::{json, Value};

use crate::error::Error;
use crate::lifecycle::{Action, ActionStyle, ACTION_VALUE_ACTION, ACTION_VALUE_MESSAGE};
use crate::limits::{self, Counting, Overflow};
use crate::message::{Body, Button, ImageSource, Message};

/// One message's native type and content, before the envelope.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Native {
    /// `text`, `post`, `image`, `interactive`.
    pub msg_type: &'static str,
    /// The content: for `post`, the `{"zh_cn":{..}}` object; for `interactive`,
    /// the card object.
    pub content: Value,
}

/// What rendering needs to know about the destination.
pub(crate) struct Ctx<'a> {
    /// The destination type, for errors.
    pub dest: &'static str,
    pub overflow: &'a Overflow,
    /// Bytes the request carrying this content takes on the wire.
    pub measure: &'a dyn Fn(&Native) -> usize,
    /// The byte limit for a message type's request.
    pub limit: fn(&str) -> usize,
    /// Why this destination cannot send an image that is not an `image_key`.
    pub image_refusal: &'static str,
    /// Whether cards are drawn to be updated later and to carry callback
    /// buttons (the app bot); the webhook bot can do neither.
    pub interactive: bool,
}

/// What a card needs to be updatable and clickable: the `update_multi`
/// config Feishu requires before and after a PATCH, and the callback buttons
/// of `msg.actions`, each naming the message and the action in its `value`.
struct Callbacks<'a> {
    update_multi: bool,
    message_id: Option<&'a str>,
    actions: &'a [Action],
}

impl<'a> Callbacks<'a> {
    fn of(msg: &'a Message, ctx: &Ctx) -> Self {
        match (ctx.interactive, msg.id.as_deref()) {
            (true, Some(id)) => Callbacks {
                update_multi: true,
                message_id: Some(id),
                actions: &msg.actions,
            },
            _ => Callbacks {
                update_multi: ctx.interactive,
                message_id: None,
                actions: &[],
            },
        }
    }
}

/// Refuse actions Feishu would draw as empty buttons.
fn check_actions(actions: &[Action]) -> Result<(), Error> {
    for (i, a) in actions.iter().enumerate() {
        if a.id.trim().is_empty() {
            return Err(Error::InvalidMessage(format!("`actions[{i}].id` is empty")));
        }
        if a.text.trim().is_empty() {
            return Err(Error::InvalidMessage(format!(
                "`actions[{i}].text` is empty"
            )));
        }
    }
    Ok(())
}

/// The card header colours Feishu knows (`header.template`).
pub const CARD_TEMPLATES: &[&str] = &[
    "blue",
    "wathet",
    "turquoise",
    "green",
    "yellow",
    "orange",
    "red",
    "carmine",
    "violet",
    "purple",
    "indigo",
    "grey",
    "default",
];

/// Render every body kind except `raw` (the destinations pass raw payloads
/// through themselves, each into its own envelope).
pub(crate) fn render(msg: &Message, ctx: &Ctx) -> Result<Vec<Native>, Error> {
    let at = At::of(msg)?;
    let callbacks = Callbacks::of(msg, ctx);
    check_actions(callbacks.actions)?;
    let title = msg
        .title
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    match &msg.body {
        Body::Text { text } => {
            if text.trim().is_empty() && at.is_empty() {
                return Err(Error::InvalidMessage("`body.text` is empty".into()));
            }
            // Feishu text has no title field: the title becomes the first line.
            let full = match title {
                Some(t) => format!("{t}\n{text}"),
                None => text.clone(),
            };
            let suffix = at.text_tags();
            fitted(ctx, "text", &full, "body.text", &|p, first, _| {
                let text = if first && !suffix.is_empty() {
                    format!("{p} {suffix}")
                } else {
                    p.to_string()
                };
                json!({ "text": text })
            })
        }
        Body::Markdown { text } => {
            if text.trim().is_empty() {
                return Err(Error::InvalidMessage("`body.text` is empty".into()));
            }
            let header = card_header(title, None);
            card_parts(ctx, &lark_md(text), header, &[], &callbacks, &at)
        }
        Body::Card {
            text,
            buttons,
            theme,
        } => {
            if text.trim().is_empty() {
                return Err(Error::InvalidMessage("`body.text` is empty".into()));
            }
            for (i, b) in buttons.iter().enumerate() {
                check_url(&b.url, &format!("body.buttons[{i}].url"))?;
                if b.text.trim().is_empty() {
                    return Err(Error::InvalidMessage(format!(
                        "`body.buttons[{i}].text` is empty"
                    )));
                }
            }
            // A colour needs a header, and a header needs a title.
            let header = match theme {
                Some(theme) => {
                    let title = title.map_or_else(|| msg.title_or_default(), str::to_string);
                    card_header(Some(&title), Some(card_template(theme)?))
                }
                None => card_header(title, None),
            };
            card_parts(ctx, &lark_md(text), header, buttons, &callbacks, &at)
        }
        Body::Link { text, url, .. } => {
            // `pic_url` is dropped: a post image needs an uploaded image_key.
            check_url(url, "body.url")?;
            let post_title = msg.title_or_default();
            fitted(ctx, "post", text, "body.text", &|p, first, last| {
                let mut paras: Vec<Value> = text_paragraphs(p).collect();
                if last {
                    paras.push(json!([{ "tag": "a", "text": url, "href": url }]));
                }
                if first {
                    paras.extend(at.post_paragraph());
                }
                post(&post_title, paras)
            })
        }
        Body::News { articles } => {
            if articles.is_empty() {
                return Err(Error::InvalidMessage("`body.articles` is empty".into()));
            }
            let mut paras = Vec::new();
            for (i, a) in articles.iter().enumerate() {
                check_url(&a.url, &format!("body.articles[{i}].url"))?;
                paras.push(json!([{ "tag": "a", "text": a.title, "href": a.url }]));
                if let Some(d) = a.description.as_deref().filter(|d| !d.trim().is_empty()) {
                    paras.extend(text_paragraphs(d));
                }
            }
            paras.extend(at.post_paragraph());
            let native = Native {
                msg_type: "post",
                content: post(&msg.title_or_default(), paras),
            };
            let (size, limit) = ((ctx.measure)(&native), (ctx.limit)("post"));
            if size > limit {
                return Err(Error::InvalidMessage(format!(
                    "`body.articles`: {} articles take {size} bytes, over {}'s limit of {limit}; send fewer or shorter articles",
                    articles.len(),
                    ctx.dest
                )));
            }
            Ok(vec![native])
        }
        Body::Image { image } => match image {
            ImageSource::Key(key) if !key.trim().is_empty() => Ok(vec![Native {
                msg_type: "image",
                content: json!({ "image_key": key }),
            }]),
            ImageSource::Key(_) => Err(Error::InvalidMessage("`body.image.key` is empty".into())),
            ImageSource::Base64(_) | ImageSource::Url(_) => {
                Err(Error::unsupported(ctx.dest, "image", ctx.image_refusal))
            }
        },
        Body::Template { data, url, .. } => {
            if data.is_empty() {
                return Err(Error::InvalidMessage("`body.data` is empty".into()));
            }
            if let Some(u) = url {
                check_url(u, "body.url")?;
            }
            // No templates on Feishu: the fields become `key: value` lines of a post.
            let lines = data
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n");
            let post_title = msg.title_or_default();
            fitted(ctx, "post", &lines, "body.data", &|p, first, last| {
                let mut paras: Vec<Value> = text_paragraphs(p).collect();
                if let (true, Some(u)) = (last, url) {
                    paras.push(json!([{ "tag": "a", "text": u, "href": u }]));
                }
                if first {
                    paras.extend(at.post_paragraph());
                }
                post(&post_title, paras)
            })
        }
        Body::Raw { .. } => Err(Error::unsupported(
            ctx.dest,
            "raw",
            "raw payloads are passed through by the destination, not rendered",
        )),
    }
}

/// Mentions, validated once.
struct At<'a> {
    all: bool,
    ids: &'a [String],
}

impl<'a> At<'a> {
    /// Feishu mentions by open_id (or user_id/union_id); phone numbers are a
    /// DingTalk/WeCom notion and are ignored here.
    fn of(msg: &'a Message) -> Result<Self, Error> {
        for (i, id) in msg.mentions.user_ids.iter().enumerate() {
            // The id is spliced into `<at user_id="..">` and `<at id=..>` tags.
            let bad = id.is_empty()
                || id
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '='));
            if bad {
                return Err(Error::InvalidMessage(format!(
                    "`mentions.user_ids[{i}]` (`{id}`) is not a Feishu open_id/user_id"
                )));
            }
        }
        Ok(At {
            all: msg.mentions.all,
            ids: &msg.mentions.user_ids,
        })
    }

    fn is_empty(&self) -> bool {
        !self.all && self.ids.is_empty()
    }

    /// Text messages: `<at user_id="all">所有人</at> <at user_id="ou_x"></at>`.
    fn text_tags(&self) -> String {
        let mut tags = Vec::new();
        if self.all {
            tags.push(r#"<at user_id="all">所有人</at>"#.to_string());
        }
        tags.extend(
            self.ids
                .iter()
                .map(|id| format!(r#"<at user_id="{id}"></at>"#)),
        );
        tags.join(" ")
    }

    /// Card lark_md: `<at id=all></at> <at id=ou_x></at>`.
    fn card_tags(&self) -> String {
        let mut tags = Vec::new();
        if self.all {
            tags.push("<at id=all></at>".to_string());
        }
        tags.extend(self.ids.iter().map(|id| format!("<at id={id}></at>")));
        tags.join(" ")
    }

    /// Posts: one paragraph of `at` elements.
    fn post_paragraph(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        let mut tags = Vec::new();
        if self.all {
            tags.push(json!({ "tag": "at", "user_id": "all" }));
        }
        tags.extend(
            self.ids
                .iter()
                .map(|id| json!({ "tag": "at", "user_id": id })),
        );
        Some(Value::Array(tags))
    }
}

/// Fit `text` into as many messages of `msg_type` as the overflow rule allows,
/// each within the destination's limit. `make(piece, first, last)` builds the
/// content: mentions go on the first part, links and buttons on the last.
fn fitted(
    ctx: &Ctx,
    msg_type: &'static str,
    text: &str,
    field: &str,
    make: &dyn Fn(&str, bool, bool) -> Value,
) -> Result<Vec<Native>, Error> {
    let limit = (ctx.limit)(msg_type);
    // Measured with every extra on, so each part fits whichever extras it gets.
    let size = |p: &str| {
        (ctx.measure)(&Native {
            msg_type,
            content: make(p, true, true),
        })
    };
    let overhead = size("");
    let too_big = || {
        Error::InvalidMessage(format!(
            "`{field}`: without its text the message already takes {overhead} bytes of {}'s {limit}-byte limit; shorten the title, buttons or mentions",
            ctx.dest
        ))
    };
    if overhead >= limit {
        return Err(too_big());
    }
    let mut budget = limit - overhead;
    loop {
        let parts = limits::fit(text, budget, Counting::Json, ctx.overflow);
        let worst = parts.iter().map(|p| size(p)).max().unwrap_or(overhead);
        if worst <= limit {
            let n = parts.len();
            return Ok(parts
                .iter()
                .enumerate()
                .map(|(i, p)| Native {
                    msg_type,
                    content: make(p, i == 0, i + 1 == n),
                })
                .collect());
        }
        // An envelope that escapes the text twice (the app's stringified
        // `content`) or adds per-line structure (posts) costs more than the JSON
        // count; shrink the budget until every part fits.
        let shrink = (worst - limit).max(budget / 16).max(1);
        if shrink >= budget {
            return Err(too_big());
        }
        budget -= shrink;
    }
}

fn card_parts(
    ctx: &Ctx,
    text: &str,
    header: Option<Value>,
    buttons: &[Button],
    callbacks: &Callbacks,
    at: &At,
) -> Result<Vec<Native>, Error> {
    let tags = at.card_tags();
    fitted(ctx, "interactive", text, "body.text", &|p, first, last| {
        let content = if first && !tags.is_empty() {
            format!("{p}\n{tags}")
        } else {
            p.to_string()
        };
        // Links and callback buttons go on the last part, where a reader ends.
        let (links, actions) = if last {
            (buttons, callbacks.actions)
        } else {
            (&[][..], &[][..])
        };
        card(
            header.as_ref(),
            content,
            links,
            actions,
            callbacks.message_id,
            callbacks.update_multi,
        )
    })
}

/// An interactive card: an optional header, one lark_md div, and an `action`
/// row of URL buttons (the first one primary) followed by the callback
/// buttons of `actions`.
fn card(
    header: Option<&Value>,
    content: String,
    buttons: &[Button],
    actions: &[Action],
    message_id: Option<&str>,
    update_multi: bool,
) -> Value {
    let mut elements =
        vec![json!({ "tag": "div", "text": { "tag": "lark_md", "content": content } })];
    let mut row: Vec<Value> = buttons
        .iter()
        .enumerate()
        .map(|(i, b)| {
            json!({
                "tag": "button",
                "text": { "tag": "plain_text", "content": b.text },
                "url": b.url,
                "type": if i == 0 { "primary" } else { "default" },
            })
        })
        .collect();
    if let Some(id) = message_id {
        row.extend(actions.iter().map(|a| action_button(a, id)));
    }
    if !row.is_empty() {
        elements.push(json!({ "tag": "action", "actions": row }));
    }
    let mut config = json!({ "wide_screen_mode": true });
    if update_multi {
        // A shared card: the only kind PATCH updates, for everyone who sees it.
        config["update_multi"] = json!(true);
    }
    let mut card = serde_json::Map::new();
    card.insert("config".into(), config);
    if let Some(h) = header {
        card.insert("header".into(), h.clone());
    }
    card.insert("elements".into(), Value::Array(elements));
    Value::Object(card)
}

/// A button that calls back: its `value` comes back in the card callback's
/// `action.value`, naming the message and the action.
fn action_button(a: &Action, message_id: &str) -> Value {
    let kind = match a.style {
        ActionStyle::Default => "default",
        ActionStyle::Primary => "primary",
        ActionStyle::Danger => "danger",
    };
    json!({
        "tag": "button",
        "text": { "tag": "plain_text", "content": a.text },
        "type": kind,
        "value": { ACTION_VALUE_MESSAGE: message_id, ACTION_VALUE_ACTION: a.id },
    })
}

/// The card header, when there is a title or a colour to show.
fn card_header(title: Option<&str>, template: Option<&'static str>) -> Option<Value> {
    title.map(|t| {
        let mut h = json!({ "title": { "tag": "plain_text", "content": t } });
        if let Some(tpl) = template {
            h["template"] = json!(tpl);
        }
        h
    })
}

/// Map `Card.theme` to a header template, accepting alert-ish aliases.
pub(crate) fn card_template(theme: &str) -> Result<&'static str, Error> {
    let lower = theme.trim().to_ascii_lowercase();
    let name = match lower.as_str() {
        "info" => "blue",
        "success" | "ok" | "resolved" => "green",
        "warning" | "warn" => "orange",
        "error" | "danger" | "critical" | "firing" => "red",
        "gray" => "grey",
        other => other,
    };
    CARD_TEMPLATES
        .iter()
        .find(|t| **t == name)
        .copied()
        .ok_or_else(|| {
            Error::InvalidMessage(format!(
                "`body.theme` `{theme}` is not a Feishu card colour; use one of {} (or info, success, warning, error)",
                CARD_TEMPLATES.join(", ")
            ))
        })
}

/// Post content (no envelope): `{"zh_cn":{"title":..,"content":[[..],..]}}`.
fn post(title: &str, paragraphs: Vec<Value>) -> Value {
    json!({ "zh_cn": { "title": title, "content": paragraphs } })
}

/// One post paragraph per line of text.
fn text_paragraphs(text: &str) -> impl Iterator<Item = Value> + '_ {
    text.split('\n')
        .map(|line| json!([{ "tag": "text", "text": line }]))
}

/// lark_md has no headings: `# Title` lines become `**Title**`.
pub(crate) fn lark_md(markdown: &str) -> String {
    let mut out = String::with_capacity(markdown.len());
    for (i, line) in markdown.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let hashes = line.chars().take_while(|c| *c == '#').count();
        match line[hashes..].strip_prefix(' ') {
            Some(rest) if (1..=6).contains(&hashes) && !rest.trim().is_empty() => {
                out.push_str("**");
                out.push_str(rest.trim());
                out.push_str("**");
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// A link target must be an absolute URL (http(s) or an applink scheme).
fn check_url(u: &str, field: &str) -> Result<(), Error> {
    url::Url::parse(u.trim()).map(|_| ()).map_err(|e| {
        Error::InvalidMessage(format!("`{field}` (`{u}`) is not an absolute URL: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lark_md_turns_headings_bold_and_leaves_the_rest() {
        assert_eq!(
            lark_md("# 告警\n## Disk\n#hashtag\n####### seven\ntext **b**"),
            "**告警**\n**Disk**\n#hashtag\n####### seven\ntext **b**"
        );
    }

    #[test]
    fn theme_aliases_and_refusal() {
        assert_eq!(card_template("Critical").unwrap(), "red");
        assert_eq!(card_template("green").unwrap(), "green");
        assert_eq!(card_template("warning").unwrap(), "orange");
        let e = card_template("chartreuse").unwrap_err().to_string();
        assert!(e.contains("`body.theme`") && e.contains("carmine"), "{e}");
    }
}
