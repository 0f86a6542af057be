//! The DingTalk custom group robot (自定义机器人): a webhook with an
//! `access_token`, optionally signed with the robot's `SEC...` secret.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::{codes, fit_text, json_len, shape, truncating, Shape, OAPI_BASE};
use crate::destination::{Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::HttpRequest;
use crate::lifecycle::Lifecycle;
use crate::limits::{cost, Counting, Overflow};
use crate::message::{Button, ImageSource, Mentions, Message, Platform};
use crate::outcome::Report;
use crate::{sign, Error, Secret};

const KIND: &str = "dingtalk_robot";

/// DingTalk refuses request bodies over 20,000 bytes with errcode 460101.
pub const BODY_LIMIT: usize = 20_000;

/// Config of a `dingtalk_robot` destination.
///
/// ```toml
/// type = "dingtalk_robot"
/// webhook = "https://oapi.dingtalk.com/robot/send?access_token=..."   # or access_token = "..."
/// secret = "SEC..."   # when the robot uses 加签 signing
/// keywords = ["告警"]  # when the robot uses 自定义关键词: every message carries one
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    /// The robot's token: the value after `access_token=` (a whole webhook URL
    /// pasted here is accepted too).
    #[serde(default)]
    pub access_token: Option<Secret>,
    /// The robot's full webhook URL, as DingTalk shows it; the token is taken
    /// from it. Set this or `access_token`.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// The signing secret (`SEC...`) when the robot's security setting is
    /// "additional signature" (加签).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Base URL (default `https://oapi.dingtalk.com`); point it at a mock or proxy.
    #[serde(default)]
    pub base_url: Option<String>,
    /// What to do with text over the 20,000-byte body limit.
    #[serde(default)]
    pub overflow: Overflow,
    /// The robot's security keywords (自定义关键词). DingTalk refuses a message
    /// containing none of them (errcode 310000 `keywords not in content`), so
    /// every message gets the first one appended where it has none.
    #[serde(default)]
    pub keywords: Vec<String>,
}

/// DingTalk lets a robot have at most 10 keywords.
const MAX_KEYWORDS: usize = 10;

/// A DingTalk custom group robot.
#[derive(Debug)]
pub struct Robot {
    shared: Arc<Shared>,
    id: String,
    base: Url,
    token: Secret,
    secret: Option<Secret>,
    overflow: Overflow,
    keywords: Vec<String>,
}

fn config_err(msg: impl std::fmt::Display) -> Error {
    Error::Config(format!("{KIND}: {msg}"))
}

fn looks_like_url(s: &str) -> bool {
    let s = s.trim_start().to_ascii_lowercase();
    s.starts_with("http://") || s.starts_with("https://")
}

/// Take the token from a pasted webhook URL, which must point at `base`.
fn token_from_url(raw: &str, base: &Url, field: &str) -> Result<Secret, Error> {
    // The url crate's parse errors do not echo the input, so the token cannot leak here.
    let url = Url::parse(raw.trim())
        .map_err(|e| config_err(format!("`{field}` is not a valid URL ({e}); paste the robot's webhook URL or just its token as `access_token`")))?;
    endpoint::check_same_origin(&url, base, field).map_err(|e| {
        config_err(
            e.to_string()
                .trim_start_matches("invalid destination config: "),
        )
    })?;
    if !url.path().ends_with("/robot/send") {
        return Err(config_err(format!(
            "`{field}` should be a robot webhook ending in /robot/send?access_token=..., got path `{}`",
            url.path()
        )));
    }
    endpoint::query_param(&url, "access_token")
        .filter(|t| !t.trim().is_empty())
        .map(|t| Secret::new(t.trim()))
        .ok_or_else(|| config_err(format!("`{field}` has no `access_token=` parameter; copy the whole webhook URL from the robot's settings")))
}

fn check_token(token: &str, field: &str) -> Result<(), Error> {
    if token.trim().is_empty() {
        return Err(config_err(format!(
            "`{field}` is empty; set the robot's access_token"
        )));
    }
    if token
        .chars()
        .any(|c| c.is_whitespace() || c == '&' || c == '?' || c == '=')
    {
        return Err(config_err(format!(
            "`{field}` contains spaces or URL characters; set only the value after `access_token=`, or the whole URL as `webhook`"
        )));
    }
    Ok(())
}

impl Robot {
    /// Validate the config and build the destination.
    pub fn new(client: &Client, cfg: RobotConfig) -> Result<Self, Error> {
        let base =
            endpoint::base_url(cfg.base_url.as_deref(), OAPI_BASE, "base_url").map_err(|e| {
                config_err(
                    e.to_string()
                        .trim_start_matches("invalid destination config: "),
                )
            })?;
        let token = match (&cfg.access_token, &cfg.webhook) {
            (Some(_), Some(_)) => {
                return Err(config_err(
                    "set either `access_token` or `webhook`, not both",
                ));
            }
            (None, None) => {
                return Err(config_err(
                    "missing `access_token` (the robot's token) or `webhook` (its full URL)",
                ))
            }
            (Some(t), None) if looks_like_url(t.expose()) => {
                token_from_url(t.expose(), &base, "access_token")?
            }
            (Some(t), None) => Secret::new(t.expose().trim()),
            (None, Some(w)) => token_from_url(w.expose(), &base, "webhook")?,
        };
        check_token(
            token.expose(),
            if cfg.webhook.is_some() {
                "webhook"
            } else {
                "access_token"
            },
        )?;
        let secret = match cfg.secret {
            Some(s) if s.expose().trim().is_empty() => {
                return Err(config_err("`secret` is empty; remove it or set the robot's SEC... signing secret"))
            }
            Some(s) if !s.expose().trim().starts_with("SEC") => {
                return Err(config_err(
                    "`secret` must be the robot's signing secret, which starts with `SEC` (robot settings -> Security -> Additional signature)",
                ))
            }
            Some(s) => Some(Secret::new(s.expose().trim())),
            None => None,
        };
        check_keywords(&cfg.keywords)?;
        Ok(Robot {
            shared: client.shared().clone(),
            id: format!("{KIND}:{}", token.fingerprint()),
            base,
            token,
            secret,
            overflow: cfg.overflow,
            keywords: cfg.keywords,
        })
    }

    /// The request for `payload` signed at `now_ms` (pure; the signature is
    /// recomputed on every send, so a retry carries a fresh timestamp).
    pub fn request(&self, payload: &Payload, now_ms: i64) -> HttpRequest {
        let mut url = endpoint::join(&self.base, "/robot/send");
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("access_token", self.token.expose());
            if let Some(secret) = &self.secret {
                // Form encoding turns base64's `+`, `/`, `=` into %2B, %2F, %3D,
                // the single URL-encoding DingTalk expects.
                q.append_pair("timestamp", &now_ms.to_string());
                q.append_pair("sign", &sign::dingtalk_robot(secret.expose(), now_ms));
            }
        }
        HttpRequest::post_json(url, &payload.body)
    }

    /// Text or markdown bodies (the kinds that can mention), fitted to the body
    /// limit; the first part carries the mentions.
    fn mentionable(
        &self,
        msgtype: &str,
        title: Option<&str>,
        text: &str,
        mentions: &Mentions,
    ) -> Result<Vec<Value>, Error> {
        let tokens = mention_tokens(mentions);
        let sep = if msgtype == "markdown" { "\n\n" } else { " " };
        let reserve = self.keyword_reserve()
            + if tokens.is_empty() {
                0
            } else {
                cost(sep, Counting::Json) + cost(&tokens.join(" "), Counting::Json)
            };
        let at = at_json(mentions);
        let make = |t: &str, at: Option<&Value>| {
            let mut body = Map::new();
            body.insert("msgtype".into(), json!(msgtype));
            let inner = match title {
                Some(title) => json!({"title": title, "text": t}),
                None => json!({"content": t}),
            };
            body.insert(msgtype.into(), inner);
            if let Some(at) = at {
                body.insert("at".into(), at.clone());
            }
            Value::Object(body)
        };
        let parts = fit_text(
            text,
            BODY_LIMIT,
            reserve,
            &self.overflow,
            |t| make(t, at.as_ref()),
            msgtype,
        )?;
        Ok(parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if i == 0 {
                    make(&append_mentions(p, &tokens, sep), at.as_ref())
                } else {
                    make(p, None)
                }
            })
            .collect())
    }
}

impl Robot {
    /// Room kept free in each part's text for the keyword appended later.
    fn keyword_reserve(&self) -> usize {
        self.keywords.first().map_or(0, |k| {
            cost(KEYWORD_SEP_WIDEST, Counting::Json) + cost(k, Counting::Json)
        })
    }
}

fn check_keywords(keywords: &[String]) -> Result<(), Error> {
    if keywords.len() > MAX_KEYWORDS {
        return Err(config_err(format!(
            "`keywords` has {} entries; a DingTalk robot takes at most {MAX_KEYWORDS}",
            keywords.len()
        )));
    }
    if keywords.iter().any(|k| k.trim().is_empty()) {
        return Err(config_err(
            "`keywords` has an empty entry; list the robot's keywords exactly as set in its security settings",
        ));
    }
    Ok(())
}

/// The widest separator [`carry_keyword`] puts before a keyword.
const KEYWORD_SEP_WIDEST: &str = "\n\n";

/// Make sure `body` carries one of `keywords` in the field DingTalk's keyword
/// check reads for its msgtype, appending the first keyword where none is:
/// after the text (text, link), as a paragraph of its own (markdown,
/// actionCard), after the first article's title (feedCard). Only that field
/// counts as carrying one, so a keyword that is only in a title still gets
/// the text one too: the platform's check is not documented per field.
fn carry_keyword(body: &mut Value, keywords: &[String]) {
    let Some(first) = keywords.first() else {
        return;
    };
    let (pointer, sep) = match body.get("msgtype").and_then(Value::as_str) {
        Some("text") => ("/text/content", " "),
        Some("markdown") => ("/markdown/text", "\n\n"),
        Some("actionCard") => ("/actionCard/text", "\n\n"),
        Some("link") => ("/link/text", " "),
        Some("feedCard") => ("/feedCard/links/0/title", " "),
        _ => return,
    };
    let Some(Value::String(field)) = body.pointer_mut(pointer) else {
        return;
    };
    if keywords.iter().any(|k| field.contains(k.as_str())) {
        return;
    }
    if !field.is_empty() && !field.ends_with(char::is_whitespace) {
        field.push_str(sep);
    }
    field.push_str(first);
}

/// `@mobile` and `@userId` for everyone mentioned by name.
fn mention_tokens(m: &Mentions) -> Vec<String> {
    m.mobiles
        .iter()
        .chain(&m.user_ids)
        .map(|x| format!("@{x}"))
        .collect()
}

/// Whether `text` contains `token` not followed by more of an id
/// (`@138` is not in `@1380000`).
fn contains_mention(text: &str, token: &str) -> bool {
    text.match_indices(token).any(|(i, _)| {
        text[i + token.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    })
}

/// Append the `@` tokens the text lacks, because DingTalk pings only people
/// whose `@` appears in the content.
fn append_mentions(text: &str, tokens: &[String], sep: &str) -> String {
    let missing: Vec<&str> = tokens
        .iter()
        .filter(|t| !contains_mention(text, t))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return text.to_string();
    }
    let sep = if text.is_empty() || text.ends_with(char::is_whitespace) && sep == " " {
        ""
    } else {
        sep
    };
    format!("{text}{sep}{}", missing.join(" "))
}

fn at_json(m: &Mentions) -> Option<Value> {
    if m.is_empty() {
        return None;
    }
    let mut at = Map::new();
    if !m.mobiles.is_empty() {
        at.insert("atMobiles".into(), json!(m.mobiles));
    }
    if !m.user_ids.is_empty() {
        at.insert("atUserIds".into(), json!(m.user_ids));
    }
    at.insert("isAtAll".into(), json!(m.all));
    Some(Value::Object(at))
}

fn action_card(title: &str, text: &str, buttons: &[Button]) -> Value {
    if let [only] = buttons {
        json!({"msgtype": "actionCard", "actionCard": {
            "title": title, "text": text, "btnOrientation": "0",
            "singleTitle": only.text, "singleURL": only.url,
        }})
    } else {
        // Two buttons sit side by side; more are easier to read stacked.
        let orientation = if buttons.len() == 2 { "1" } else { "0" };
        let btns: Vec<Value> = buttons
            .iter()
            .map(|b| json!({"title": b.text, "actionURL": b.url}))
            .collect();
        json!({"msgtype": "actionCard", "actionCard": {
            "title": title, "text": text, "btnOrientation": orientation, "btns": btns,
        }})
    }
}

#[async_trait]
impl Destination for Robot {
    fn kind(&self) -> &'static str {
        KIND
    }
    fn platform(&self) -> Platform {
        Platform::Dingtalk
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn rate_limits(&self) -> Vec<Quota> {
        // 20 a minute per robot; DingTalk blocks the robot for 10 minutes beyond that.
        vec![Quota::per_minute(20)]
    }
    fn lifecycle(&self) -> Lifecycle {
        // The webhook answers no message id; an update is a new message.
        Lifecycle::send_only(
            "custom robots have no recall API: the webhook returns no message id to recall",
        )
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let bodies = match shape(msg, KIND)? {
            Shape::Text(text) => self.mentionable("text", None, &text, &msg.mentions)?,
            Shape::Markdown { title, text } => {
                self.mentionable("markdown", Some(&title), &text, &msg.mentions)?
            }
            Shape::Link {
                title,
                text,
                url,
                pic,
            } => {
                let make = |t: &str| {
                    json!({"msgtype": "link", "link": {
                        "title": title, "text": t, "picUrl": pic.unwrap_or(""), "messageUrl": url,
                    }})
                };
                let t = fit_text(
                    text,
                    BODY_LIMIT,
                    self.keyword_reserve(),
                    &truncating(&self.overflow),
                    make,
                    "link",
                )?;
                vec![make(&t[0])]
            }
            Shape::Card {
                title,
                text,
                buttons,
            } => {
                let make = |t: &str| action_card(&title, t, buttons);
                let t = fit_text(
                    text,
                    BODY_LIMIT,
                    self.keyword_reserve(),
                    &truncating(&self.overflow),
                    make,
                    "card",
                )?;
                vec![make(&t[0])]
            }
            Shape::News(articles) => {
                let links: Vec<Value> = articles
                    .iter()
                    .map(|a| json!({"title": a.title, "messageURL": a.url, "picURL": a.pic_url.as_deref().unwrap_or("")}))
                    .collect();
                let mut body = json!({"msgtype": "feedCard", "feedCard": {"links": links}});
                carry_keyword(&mut body, &self.keywords);
                let len = json_len(&body);
                if len > BODY_LIMIT {
                    return Err(Error::InvalidMessage(format!(
                        "`body.articles`: the feedCard takes {len} bytes, over DingTalk's {BODY_LIMIT}; send fewer articles"
                    )));
                }
                vec![body]
            }
            Shape::Image { title, source } => match source {
                ImageSource::Url(u) => self.mentionable(
                    "markdown",
                    Some(&title),
                    &format!("![image]({u})"),
                    &msg.mentions,
                )?,
                ImageSource::Key(_) | ImageSource::Base64(_) => return Err(Error::unsupported(
                    KIND,
                    "image",
                    "DingTalk robots show images only from a public URL; use `image: {url: ...}`",
                )),
            },
            Shape::Raw(v) => vec![v.clone()],
        };
        Ok(bodies
            .into_iter()
            .map(|mut body| {
                carry_keyword(&mut body, &self.keywords);
                Payload::new(body)
            })
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        let req = self.request(payload, self.shared.now_ms());
        match self.shared.http.execute(req).await {
            Ok(resp) => codes::classify_robot(&resp),
            Err(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::limits::OverflowMode;
    use crate::message::{Article, Body};
    use crate::ClientOptions;
    use std::collections::BTreeMap;

    const TS: i64 = 1_577_000_000_000;

    fn client() -> Client {
        Client::with_options(ClientOptions {
            clock: Arc::new(FixedClock::new(TS)),
            ..Default::default()
        })
        .unwrap()
    }

    fn robot(cfg: Value) -> Result<Arc<dyn Destination>, Error> {
        let mut cfg = cfg;
        cfg["type"] = json!("dingtalk_robot");
        client().build(&cfg)
    }

    fn plain() -> Robot {
        Robot::new(
            &client(),
            RobotConfig {
                access_token: Some("tok123".into()),
                webhook: None,
                secret: Some("SEC_this_is_secret".into()),
                base_url: None,
                overflow: Overflow::default(),
                keywords: Vec::new(),
            },
        )
        .unwrap()
    }

    fn body(msg: &Message) -> Value {
        let p = plain().render(msg).unwrap();
        assert_eq!(p.len(), 1);
        p[0].body.clone()
    }

    #[test]
    fn signed_request_matches_the_vector() {
        let r = plain();
        let p = r.render(&Message::text("hi")).unwrap();
        let req = r.request(&p[0], TS);
        // platforms.md §6.5: base64 9nj3Vql0XE92d3DA3bb2X5oIV/jCn5uoYXVqz0cKTlA=, URL-encoded once.
        assert_eq!(
            req.url.as_str(),
            "https://oapi.dingtalk.com/robot/send?access_token=tok123&timestamp=1577000000000&sign=9nj3Vql0XE92d3DA3bb2X5oIV%2FjCn5uoYXVqz0cKTlA%3D"
        );
        assert_eq!(req.method, reqwest::Method::POST);
        let ct = req
            .headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .unwrap()
            .1
            .to_str()
            .unwrap();
        assert_eq!(ct, "application/json; charset=utf-8");
        // A later send signs with its own time.
        let later = r.request(&p[0], TS + 1000);
        assert!(later.url.as_str().contains("timestamp=1577000001000"));
        assert_ne!(
            endpoint::query_param(&later.url, "sign"),
            endpoint::query_param(&req.url, "sign")
        );
    }

    #[test]
    fn unsigned_robot_sends_only_the_token() {
        let r =
            robot(json!({"access_token": "abc", "base_url": "http://127.0.0.1:9/prefix"})).unwrap();
        let p = r.render(&Message::text("x")).unwrap();
        let r = Robot::new(
            &client(),
            RobotConfig {
                access_token: Some("abc".into()),
                webhook: None,
                secret: None,
                base_url: Some("http://127.0.0.1:9/prefix".into()),
                overflow: Overflow::default(),
                keywords: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(
            r.request(&p[0], TS).url.as_str(),
            "http://127.0.0.1:9/prefix/robot/send?access_token=abc"
        );
    }

    #[test]
    fn webhook_url_or_bare_token_give_the_same_destination() {
        let a = robot(json!({"access_token": "abc123"})).unwrap();
        let b =
            robot(json!({"webhook": "https://oapi.dingtalk.com/robot/send?access_token=abc123"}))
                .unwrap();
        let c = robot(
            json!({"access_token": "https://oapi.dingtalk.com/robot/send?access_token=abc123"}),
        )
        .unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.id(), c.id());
        assert_eq!(
            a.id(),
            format!("dingtalk_robot:{}", Secret::new("abc123").fingerprint())
        );
        assert!(!a.id().contains("abc123"));
        assert_eq!(a.rate_limits(), vec![Quota::per_minute(20)]);
    }

    #[test]
    fn config_errors_name_the_field_and_never_the_token() {
        let cases = [
            (json!({}), "`access_token`"),
            (json!({"access_token": ""}), "`access_token` is empty"),
            (
                json!({"access_token": "a", "webhook": "https://oapi.dingtalk.com/robot/send?access_token=a"}),
                "not both",
            ),
            (
                json!({"webhook": "https://evil.example.com/robot/send?access_token=topsecret"}),
                "`webhook` points at",
            ),
            (
                json!({"webhook": "https://oapi.dingtalk.com/robot/send?foo=topsecret"}),
                "no `access_token=`",
            ),
            (
                json!({"webhook": "not a url topsecret"}),
                "`webhook` is not a valid URL",
            ),
            (
                json!({"access_token": "a", "secret": "topsecret"}),
                "starts with `SEC`",
            ),
            (
                json!({"access_token": "a", "secret": ""}),
                "`secret` is empty",
            ),
            (
                json!({"access_token": "a", "base_url": "ftp://x"}),
                "`base_url`",
            ),
            (
                json!({"access_token": "a", "keyword": "x"}),
                "unknown field `keyword`",
            ),
        ];
        for (cfg, needle) in cases {
            let err = robot(cfg.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{cfg}: {err}");
            assert!(err.contains("dingtalk_robot"), "{err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
        // The pasted URL may point at the configured base (a mock).
        robot(json!({"base_url": "http://127.0.0.1:8080", "webhook": "http://127.0.0.1:8080/robot/send?access_token=a"})).unwrap();
    }

    #[test]
    fn debug_hides_token_and_secret() {
        let dbg = format!("{:?}", plain());
        assert!(
            !dbg.contains("tok123") && !dbg.contains("SEC_this"),
            "{dbg}"
        );
    }

    #[test]
    fn text_with_mentions() {
        let msg = Message::text("disk full on db-1")
            .with_title("ALERT")
            .with_mentions(Mentions {
                all: false,
                mobiles: vec!["13800000000".into()],
                user_ids: vec!["user123".into()],
                ..Default::default()
            });
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "text",
          "text": {
            "content": "ALERT\ndisk full on db-1 @13800000000 @user123"
          },
          "at": {
            "atMobiles": [
              "13800000000"
            ],
            "atUserIds": [
              "user123"
            ],
            "isAtAll": false
          }
        }
        "#####);
    }

    #[test]
    fn mentions_already_in_the_text_are_not_repeated() {
        let msg = Message::text("@13800000000 please look").with_mentions(Mentions {
            all: true,
            mobiles: vec!["13800000000".into(), "1380000".into()],
            user_ids: vec![],
            ..Default::default()
        });
        let b = body(&msg);
        // "@1380000" is a prefix of the other mention, not a mention of its own.
        assert_eq!(b["text"]["content"], "@13800000000 please look @1380000");
        assert_eq!(b["at"]["isAtAll"], true);
        let none = body(&Message::text("x"));
        assert!(none.get("at").is_none());
    }

    #[test]
    fn markdown_with_mentions() {
        let msg = Message::markdown("Deploy", "#### v1.2\n> live").with_mentions(Mentions {
            all: false,
            mobiles: vec!["13800000000".into()],
            user_ids: vec![],
            ..Default::default()
        });
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "markdown",
          "markdown": {
            "title": "Deploy",
            "text": "#### v1.2\n> live\n\n@13800000000"
          },
          "at": {
            "atMobiles": [
              "13800000000"
            ],
            "isAtAll": false
          }
        }
        "#####);
    }

    #[test]
    fn link() {
        let msg = Message::new(Body::Link {
            text: "build #42 passed".into(),
            url: "https://ci.example.com/42".into(),
            pic_url: None,
        })
        .with_title("CI");
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "link",
          "link": {
            "title": "CI",
            "text": "build #42 passed",
            "picUrl": "",
            "messageUrl": "https://ci.example.com/42"
          }
        }
        "#####);
    }

    fn card(n: usize) -> Message {
        Message::new(Body::Card {
            text: "### Incident".into(),
            buttons: (1..=n)
                .map(|i| Button {
                    text: format!("B{i}"),
                    url: format!("https://x.example.com/{i}"),
                })
                .collect(),
            theme: Some("red".into()),
        })
        .with_title("Incident")
    }

    #[test]
    fn action_card_single_button() {
        insta::assert_json_snapshot!(body(&card(1)), @r#####"
        {
          "msgtype": "actionCard",
          "actionCard": {
            "title": "Incident",
            "text": "### Incident",
            "btnOrientation": "0",
            "singleTitle": "B1",
            "singleURL": "https://x.example.com/1"
          }
        }
        "#####);
    }

    #[test]
    fn action_card_several_buttons() {
        insta::assert_json_snapshot!(body(&card(2)), @r#####"
        {
          "msgtype": "actionCard",
          "actionCard": {
            "title": "Incident",
            "text": "### Incident",
            "btnOrientation": "1",
            "btns": [
              {
                "title": "B1",
                "actionURL": "https://x.example.com/1"
              },
              {
                "title": "B2",
                "actionURL": "https://x.example.com/2"
              }
            ]
          }
        }
        "#####);
        assert_eq!(body(&card(3))["actionCard"]["btnOrientation"], "0");
        // A card without buttons is markdown.
        assert_eq!(body(&card(0))["msgtype"], "markdown");
    }

    #[test]
    fn feed_card() {
        let msg = Message::new(Body::News {
            articles: vec![
                Article {
                    title: "A".into(),
                    url: "https://a.example.com".into(),
                    description: Some("dropped".into()),
                    pic_url: Some("https://a.example.com/p.png".into()),
                },
                Article {
                    title: "B".into(),
                    url: "https://b.example.com".into(),
                    description: None,
                    pic_url: None,
                },
            ],
        });
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "feedCard",
          "feedCard": {
            "links": [
              {
                "title": "A",
                "messageURL": "https://a.example.com",
                "picURL": "https://a.example.com/p.png"
              },
              {
                "title": "B",
                "messageURL": "https://b.example.com",
                "picURL": ""
              }
            ]
          }
        }
        "#####);
        let empty = Message::new(Body::News { articles: vec![] });
        assert!(
            matches!(plain().render(&empty), Err(Error::InvalidMessage(m)) if m.contains("`body.articles`"))
        );
    }

    #[test]
    fn image_url_becomes_markdown_and_other_images_are_refused() {
        let msg = Message::new(Body::Image {
            image: ImageSource::Url("https://x.example.com/i.png".into()),
        });
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "markdown",
          "markdown": {
            "title": "[image]",
            "text": "![image](https://x.example.com/i.png)"
          }
        }
        "#####);
        let key = Message::new(Body::Image {
            image: ImageSource::Key("@lADO".into()),
        });
        assert!(matches!(
            plain().render(&key),
            Err(Error::Unsupported { body: "image", .. })
        ));
    }

    #[test]
    fn template_becomes_text_lines() {
        let mut data = BTreeMap::new();
        data.insert("host".to_string(), "db-1".to_string());
        data.insert("status".to_string(), "firing".to_string());
        let msg = Message::new(Body::Template {
            template_id: "alert".into(),
            data,
            url: Some("https://grafana.example.com".into()),
        });
        insta::assert_json_snapshot!(body(&msg), @r#####"
        {
          "msgtype": "text",
          "text": {
            "content": "alert\nhost: db-1\nstatus: firing\nhttps://grafana.example.com"
          }
        }
        "#####);
    }

    #[test]
    fn raw_passes_through_unless_marked_for_another_platform() {
        let payload = json!({"msgtype": "text", "text": {"content": "raw"}});
        let msg = Message::new(Body::Raw {
            platform: Some(Platform::Dingtalk),
            payload: payload.clone(),
        });
        assert_eq!(body(&msg), payload);
        let other = Message::new(Body::Raw {
            platform: Some(Platform::Feishu),
            payload,
        });
        assert!(matches!(
            plain().render(&other),
            Err(Error::Unsupported { body: "raw", .. })
        ));
    }

    fn with_overflow(mode: OverflowMode) -> Robot {
        Robot::new(
            &client(),
            RobotConfig {
                access_token: Some("tok".into()),
                webhook: None,
                secret: None,
                base_url: None,
                overflow: Overflow {
                    mode,
                    ..Overflow::default()
                },
                keywords: Vec::new(),
            },
        )
        .unwrap()
    }

    /// A robot secured by the keywords `告警` and `alert`.
    fn keyworded() -> Arc<dyn Destination> {
        robot(json!({"access_token": "kw", "keywords": ["告警", "alert"]})).unwrap()
    }

    fn keyworded_body(msg: &Message) -> Value {
        let p = keyworded().render(msg).unwrap();
        assert_eq!(p.len(), 1);
        p[0].body.clone()
    }

    #[test]
    fn keywords_are_appended_to_text_where_missing() {
        let b = keyworded_body(&Message::text("disk full on db-1").with_mentions(Mentions {
            mobiles: vec!["13800000000".into()],
            ..Default::default()
        }));
        assert_eq!(b["text"]["content"], "disk full on db-1 @13800000000 告警");
        // Any one of the keywords is enough, wherever it is.
        let b = keyworded_body(&Message::text("[alert] disk full"));
        assert_eq!(b["text"]["content"], "[alert] disk full");
        // Without keywords nothing changes.
        assert_eq!(
            body(&Message::text("disk full"))["text"]["content"],
            "disk full"
        );
    }

    #[test]
    fn keywords_are_appended_to_markdown_as_a_paragraph() {
        let b = keyworded_body(&Message::markdown("Deploy", "#### v1.2\n> live"));
        assert_eq!(b["markdown"]["text"], "#### v1.2\n> live\n\n告警");
        assert_eq!(b["markdown"]["title"], "Deploy");
        // An image is markdown too.
        let b = keyworded_body(&Message::new(Body::Image {
            image: ImageSource::Url("https://x.example.com/a.png".into()),
        }));
        assert!(
            b["markdown"]["text"]
                .as_str()
                .unwrap()
                .ends_with(")\n\n告警"),
            "{b}"
        );
    }

    #[test]
    fn keywords_are_appended_to_link_card_and_feed_bodies() {
        let link = keyworded_body(
            &Message::new(Body::Link {
                text: "build #42 passed".into(),
                url: "https://ci.example.com/42".into(),
                pic_url: None,
            })
            .with_title("CI"),
        );
        assert_eq!(link["link"]["text"], "build #42 passed 告警");
        for n in [1, 2] {
            let card = keyworded().render(&card(n)).unwrap()[0].body.clone();
            assert_eq!(
                card["actionCard"]["text"], "### Incident\n\n告警",
                "{n} buttons"
            );
        }
        let feed = keyworded_body(&Message::new(Body::News {
            articles: vec![
                Article {
                    title: "A".into(),
                    url: "https://a.example.com".into(),
                    description: None,
                    pic_url: None,
                },
                Article {
                    title: "B".into(),
                    url: "https://b.example.com".into(),
                    description: None,
                    pic_url: None,
                },
            ],
        }));
        assert_eq!(feed["feedCard"]["links"][0]["title"], "A 告警");
        assert_eq!(feed["feedCard"]["links"][1]["title"], "B");
    }

    #[test]
    fn every_split_part_carries_a_keyword_and_still_fits() {
        let text = "磁盘".repeat(5_000);
        let r = robot(json!({
            "access_token": "kw", "keywords": ["告警"], "overflow": {"mode": "split"},
        }))
        .unwrap();
        let parts = r.render(&Message::text(&text)).unwrap();
        assert_eq!(parts.len(), 2);
        for p in &parts {
            assert!(p.body["text"]["content"]
                .as_str()
                .unwrap()
                .ends_with(" 告警"));
            let len = serde_json::to_vec(&p.body).unwrap().len();
            assert!(len <= BODY_LIMIT, "{len}");
        }
    }

    #[test]
    fn keyword_settings_are_checked() {
        let err = robot(json!({"access_token": "kw", "keywords": ["告警", " "]})).unwrap_err();
        assert!(
            err.to_string().contains("`keywords` has an empty entry"),
            "{err}"
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
        let err = robot(json!({"access_token": "kw", "keywords": eleven})).unwrap_err();
        assert!(err.to_string().contains("at most 10"), "{err}");
    }

    #[test]
    fn chinese_text_is_split_by_bytes_and_every_body_fits() {
        // 10,000 chars × 3 bytes: about 30 KB, over the 20,000-byte body limit.
        let text = "告警".repeat(5_000);
        let msg = Message::text(&text).with_mentions(Mentions {
            mobiles: vec!["13800000000".into()],
            ..Default::default()
        });
        let parts = with_overflow(OverflowMode::Split).render(&msg).unwrap();
        assert_eq!(parts.len(), 2);
        for p in &parts {
            let len = serde_json::to_vec(&p.body).unwrap().len();
            assert!(len <= BODY_LIMIT, "{len}");
        }
        // Nothing is lost: the parts without their counters are the text again.
        let first = parts[0].body["text"]["content"].as_str().unwrap();
        assert!(
            first.ends_with(" (1/2) @13800000000"),
            "{}",
            &first[first.len() - 40..]
        );
        assert!(parts[0].body.get("at").is_some());
        assert!(parts[1].body.get("at").is_none());
        let joined: String = parts
            .iter()
            .map(|p| {
                let c = p.body["text"]["content"].as_str().unwrap();
                let c = c.trim_end_matches(" @13800000000");
                c.rsplit_once(" (").unwrap().0.to_string()
            })
            .collect();
        assert_eq!(joined, text);
        // Close to the limit: the split does not waste half the budget.
        assert!(serde_json::to_vec(&parts[0].body).unwrap().len() > BODY_LIMIT - 100);
    }

    #[test]
    fn chinese_text_is_truncated_when_configured() {
        let text = "告警\"引号\"\n".repeat(3_000);
        let parts = with_overflow(OverflowMode::Truncate)
            .render(&Message::markdown("T", &text))
            .unwrap();
        assert_eq!(parts.len(), 1);
        let len = serde_json::to_vec(&parts[0].body).unwrap().len();
        assert!(len <= BODY_LIMIT && len > BODY_LIMIT - 20, "{len}");
        assert!(parts[0].body["markdown"]["text"]
            .as_str()
            .unwrap()
            .ends_with("…(truncated)"));
        // Text just under the limit is sent whole.
        let fits = "告".repeat(6_000);
        let parts = with_overflow(OverflowMode::Truncate)
            .render(&Message::text(&fits))
            .unwrap();
        assert_eq!(parts[0].body["text"]["content"], fits.as_str());
    }

    #[test]
    fn oversized_card_text_is_truncated_not_split() {
        let msg = Message::new(Body::Card {
            text: "字".repeat(10_000),
            buttons: vec![Button {
                text: "Open".into(),
                url: "https://x.example.com".into(),
            }],
            theme: None,
        });
        let parts = plain().render(&msg).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(serde_json::to_vec(&parts[0].body).unwrap().len() <= BODY_LIMIT);
    }

    #[test]
    fn a_title_that_fills_the_body_is_an_error() {
        let msg = Message::markdown("t".repeat(BODY_LIMIT), "x");
        assert!(
            matches!(plain().render(&msg), Err(Error::InvalidMessage(m)) if m.contains("`title`"))
        );
    }
}
