//! `feishu_webhook`: a group's custom bot (自定义机器人),
//! `POST {base}/open-apis/bot/v2/hook/{hook}`.
//!
//! Signed bots get `timestamp` (seconds) and `sign` in the JSON body, recomputed
//! on every send so a retry an hour later still verifies. There is no
//! idempotency key: a retry after an unknown outcome may post twice.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::render::{self, Ctx, Native};
use super::{base, check_raw, codes, Region};
use crate::destination::{Client, Destination, Payload, Quota, Shared};
use crate::endpoint;
use crate::http::HttpRequest;
use crate::limits::Overflow;
use crate::message::{Body, Message, Platform};
use crate::outcome::Report;
use crate::{sign, Error, Secret};

/// The hook path; the token follows it.
pub const HOOK_PATH: &str = "/open-apis/bot/v2/hook/";

/// Request body limit ("20 KB" in Feishu's docs; kept a little under 20 KiB).
pub const BODY_LIMIT: usize = 20_000;

/// `,"timestamp":"1599360473","sign":"<44 base64 chars>"` takes 79 bytes.
const SIGN_RESERVE: usize = 80;

const KIND: &str = "feishu_webhook";

/// Config of a Feishu/Lark custom bot.
///
/// ```toml
/// type = "feishu_webhook"
/// webhook = "https://open.feishu.cn/open-apis/bot/v2/hook/2d6c...e1"   # or: hook = "2d6c...e1"
/// secret = "${FEISHU_BOT_SECRET}"    # when the bot has 签名校验 on
/// region = "lark"                    # optional; inferred from a Lark webhook URL
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuWebhookConfig {
    /// The hook token (the last segment of the webhook URL).
    #[serde(default)]
    pub hook: Option<Secret>,
    /// The full webhook URL, as Feishu shows it; the token is taken from it.
    #[serde(default)]
    pub webhook: Option<Secret>,
    /// `feishu` (default) or `lark`.
    #[serde(default)]
    pub region: Option<Region>,
    /// Overrides the region's host (a proxy, the mock).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Signing secret, when the bot has signature verification on.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// What to do with text over the size limit.
    #[serde(default)]
    pub overflow: Overflow,
}

/// A Feishu/Lark custom bot.
#[derive(Debug)]
pub struct FeishuWebhook {
    shared: Arc<Shared>,
    id: String,
    base: Url,
    hook: Secret,
    secret: Option<Secret>,
    overflow: Overflow,
}

impl FeishuWebhook {
    /// Validate the config: exactly one of `hook`/`webhook`, a webhook URL on the
    /// configured host, no empty secrets.
    pub fn new(client: &Client, cfg: FeishuWebhookConfig) -> Result<Self, Error> {
        let err = |m: String| Error::Config(format!("{KIND}: {m}"));
        let (hook, url, region) = match (&cfg.hook, &cfg.webhook) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "set either `hook` (the token) or `webhook` (the full URL), not both".into(),
                ))
            }
            (None, None) => {
                return Err(err(
                    "missing `webhook`: paste the bot's webhook URL (or set `hook` to its token)"
                        .into(),
                ))
            }
            (Some(hook), None) => (hook.expose().trim().to_string(), None, cfg.region),
            (None, Some(webhook)) => {
                let (url, token) = hook_from_url(webhook.expose()).map_err(err)?;
                // People paste a Lark URL and forget `region`: take it from the host.
                let region = match (cfg.region, &cfg.base_url) {
                    (None, None) if url.host_str() == Some(super::LARK_HOST) => Some(Region::Lark),
                    (r, _) => r,
                };
                (token, Some(url), region)
            }
        };
        let field = if url.is_some() { "webhook" } else { "hook" };
        if hook.is_empty() {
            return Err(err(format!(
                "`{field}` is empty: set it to the bot's webhook URL or token"
            )));
        }
        if !hook
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(err(format!(
                "`{field}`: the hook token has characters a Feishu token never has; paste the token or the whole webhook URL"
            )));
        }
        let base = base(region, cfg.base_url.as_deref()).map_err(|e| err(e.to_string()))?;
        if let Some(url) = &url {
            endpoint::check_same_origin(url, &base, "webhook").map_err(|e| err(e.to_string()))?;
        }
        if cfg
            .secret
            .as_ref()
            .is_some_and(|s| s.expose().trim().is_empty())
        {
            return Err(err(
                "`secret` is empty: set the bot's signing secret, or remove `secret` if signing is off".into(),
            ));
        }
        let hook = Secret::new(hook);
        Ok(FeishuWebhook {
            shared: client.shared().clone(),
            id: format!("{KIND}:{}", hook.fingerprint()),
            base,
            hook,
            secret: cfg.secret,
            overflow: cfg.overflow,
        })
    }

    /// The body for a native content: `content` is an object; a post sits under
    /// `content.post`, a card under `card`.
    fn envelope(n: &Native) -> Value {
        match n.msg_type {
            "post" => json!({ "msg_type": "post", "content": { "post": n.content } }),
            "interactive" => json!({ "msg_type": "interactive", "card": n.content }),
            t => json!({ "msg_type": t, "content": n.content }),
        }
    }

    /// Build the request for `payload` at `now_secs`: pure, so tests can pin the
    /// signature. With a secret, `timestamp` and `sign` lead the body.
    pub fn request(&self, payload: &Payload, now_secs: i64) -> HttpRequest {
        let url = endpoint::join(&self.base, &format!("{HOOK_PATH}{}", self.hook.expose()));
        let body = match (&self.secret, &payload.body) {
            (Some(secret), Value::Object(fields)) => {
                let mut signed = Map::with_capacity(fields.len() + 2);
                signed.insert("timestamp".into(), json!(now_secs.to_string()));
                signed.insert(
                    "sign".into(),
                    json!(sign::feishu_webhook(secret.expose(), now_secs)),
                );
                for (k, v) in fields {
                    if k != "timestamp" && k != "sign" {
                        signed.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(signed)
            }
            _ => payload.body.clone(),
        };
        HttpRequest::post_json(url, &body)
    }
}

/// Take the token from a pasted webhook URL.
fn hook_from_url(raw: &str) -> Result<(Url, String), String> {
    let shape = "`webhook` must look like https://open.feishu.cn/open-apis/bot/v2/hook/<token>";
    // The URL holds the token: name neither in the error.
    let url = Url::parse(raw.trim()).map_err(|e| format!("{shape} (it is not a URL: {e})"))?;
    let token = url
        .path()
        .split_once(HOOK_PATH)
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .filter(|t| !t.is_empty() && !t.contains('/'))
        .ok_or_else(|| shape.to_string())?;
    Ok((url.clone(), token.to_string()))
}

#[async_trait]
impl Destination for FeishuWebhook {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn platform(&self) -> Platform {
        Platform::Feishu
    }

    fn id(&self) -> &str {
        &self.id
    }

    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(5), Quota::per_minute(100)]
    }

    fn lifecycle(&self) -> crate::lifecycle::Lifecycle {
        crate::lifecycle::Lifecycle::send_only("custom bots have no recall API")
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        if let Body::Raw { platform, payload } = &msg.body {
            check_raw(*platform, KIND)?;
            if !payload.is_object() {
                return Err(Error::InvalidMessage(
                    "`body.payload` must be a JSON object such as {\"msg_type\":\"share_chat\",\"content\":{..}}".into(),
                ));
            }
            return Ok(vec![Payload::new(payload.clone())]);
        }
        let reserve = if self.secret.is_some() {
            SIGN_RESERVE
        } else {
            0
        };
        let measure = |n: &Native| {
            serde_json::to_vec(&Self::envelope(n)).map_or(usize::MAX, |b| b.len()) + reserve
        };
        let ctx = Ctx {
            dest: KIND,
            overflow: &self.overflow,
            measure: &measure,
            limit: |_| BODY_LIMIT,
            image_refusal: "webhook bots cannot upload images; upload it with an app (im/v1/images) and send its `image_key` as `{\"key\": ..}`",
            interactive: false,
        };
        Ok(render::render(msg, &ctx)?
            .iter()
            .map(|n| Payload::new(Self::envelope(n)))
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        let req = self.request(payload, self.shared.now_ms().div_euclid(1000));
        match self.shared.http.execute(req).await {
            Ok(resp) => codes::classify_webhook(&resp),
            Err(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::limits::OverflowMode;
    use crate::message::{Article, Button, ImageSource, Mentions};
    use crate::ClientOptions;
    use std::collections::BTreeMap;

    const VECTOR_TS: i64 = 1_599_360_473;

    fn client() -> Client {
        Client::with_options(ClientOptions {
            clock: Arc::new(FixedClock::new(VECTOR_TS * 1000 + 250)),
            ..Default::default()
        })
        .unwrap()
    }

    fn build(cfg: Value) -> Result<Arc<dyn Destination>, Error> {
        let mut cfg = cfg;
        cfg["type"] = json!("feishu_webhook");
        client().build(&cfg)
    }

    fn bot(secret: Option<&str>) -> FeishuWebhook {
        FeishuWebhook::new(
            &client(),
            FeishuWebhookConfig {
                hook: Some(Secret::new("2d6c3f2e-hook")),
                webhook: None,
                region: None,
                base_url: None,
                secret: secret.map(Secret::new),
                overflow: Overflow::default(),
            },
        )
        .unwrap()
    }

    fn one(bot: &FeishuWebhook, msg: &Message) -> Value {
        let mut p = bot.render(msg).unwrap();
        assert_eq!(p.len(), 1);
        p.remove(0).body
    }

    fn mentions() -> Mentions {
        Mentions {
            all: true,
            mobiles: vec!["13800000000".into()],
            user_ids: vec!["ou_7d8a6e6df7621556ce0d21922b676706ccs".into()],
            ..Default::default()
        }
    }

    #[test]
    fn webhook_url_is_accepted_and_token_extracted() {
        let b = FeishuWebhook::new(
            &client(),
            FeishuWebhookConfig {
                hook: None,
                webhook: Some(Secret::new(
                    "https://open.feishu.cn/open-apis/bot/v2/hook/2d6c3f2e-hook",
                )),
                region: None,
                base_url: None,
                secret: None,
                overflow: Overflow::default(),
            },
        )
        .unwrap();
        assert_eq!(b.hook.expose(), "2d6c3f2e-hook");
        assert_eq!(b.id, bot(None).id);
        let req = b.request(&Payload::new(json!({})), 0);
        assert_eq!(
            req.url.as_str(),
            "https://open.feishu.cn/open-apis/bot/v2/hook/2d6c3f2e-hook"
        );
    }

    #[test]
    fn lark_webhook_url_sets_the_region() {
        let d = build(json!({"webhook": "https://open.larksuite.com/open-apis/bot/v2/hook/abc"}))
            .unwrap();
        assert!(format!("{d:?}").contains("open.larksuite.com"));
        let d = build(json!({"hook": "abc", "region": "lark"})).unwrap();
        assert!(format!("{d:?}").contains("open.larksuite.com"));
        // A Feishu URL with region = lark is another host: refused.
        let e = build(json!({"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/abc", "region": "lark"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`webhook`") && e.contains("open.larksuite.com"),
            "{e}"
        );
    }

    #[test]
    fn base_url_lets_a_mock_url_through() {
        let d = build(json!({
            "webhook": "http://127.0.0.1:9999/open-apis/bot/v2/hook/abc",
            "base_url": "http://127.0.0.1:9999",
        }));
        assert!(d.is_ok());
    }

    #[test]
    fn config_errors_name_the_field_and_never_the_token() {
        let cases = [
            (json!({}), "missing `webhook`"),
            (
                json!({"hook": "a", "webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/a"}),
                "not both",
            ),
            (json!({"hook": " "}), "`hook` is empty"),
            (json!({"hook": "a/b?c"}), "`hook`"),
            (
                json!({"webhook": "not a url sekrit-token"}),
                "`webhook` must look like",
            ),
            (
                json!({"webhook": "https://open.feishu.cn/open-apis/bot/v2/hook/"}),
                "`webhook` must look like",
            ),
            (
                json!({"webhook": "http://169.254.169.254/open-apis/bot/v2/hook/sekrit-token"}),
                "`webhook` points at",
            ),
            (json!({"hook": "a", "secret": ""}), "`secret` is empty"),
            (json!({"hook": "a", "base_url": "ftp://x"}), "`base_url`"),
            (
                json!({"hook": "a", "region": "mars"}),
                "unknown variant `mars`",
            ),
            (
                json!({"hook": "a", "sekret": "x"}),
                "unknown field `sekret`",
            ),
        ];
        for (cfg, want) in cases {
            let e = build(cfg.clone()).unwrap_err();
            let text = e.to_string();
            assert!(matches!(e, Error::Config(_)), "{cfg}");
            assert!(text.contains(want), "{cfg}: {text}");
            assert!(!text.contains("sekrit-token"), "{text}");
        }
    }

    #[test]
    fn debug_hides_hook_and_secret() {
        let b = bot(Some("this is secret"));
        let dbg = format!("{b:?}");
        assert!(
            !dbg.contains("2d6c3f2e-hook") && !dbg.contains("this is secret"),
            "{dbg}"
        );
    }

    #[test]
    fn signed_request_matches_the_vector_and_is_fresh_per_send() {
        let b = bot(Some("this is secret"));
        let p = b.render(&Message::text("hi")).unwrap().remove(0);
        let req = b.request(&p, VECTOR_TS);
        assert_eq!(
            req.url.as_str(),
            "https://open.feishu.cn/open-apis/bot/v2/hook/2d6c3f2e-hook"
        );
        insta::assert_json_snapshot!(req.json_body().unwrap(), @r#"
        {
          "timestamp": "1599360473",
          "sign": "/eYKrXQBzTjUZJ3s6NX16VxGbTwmK7AEs8/FnvC1CSw=",
          "msg_type": "text",
          "content": {
            "text": "hi"
          }
        }
        "#);
        // Pinned by platforms.md §6.5.
        assert_eq!(
            req.json_body().unwrap()["sign"],
            "/eYKrXQBzTjUZJ3s6NX16VxGbTwmK7AEs8/FnvC1CSw="
        );
        // A retry an hour later is signed anew.
        let later = b.request(&p, VECTOR_TS + 3600).json_body().unwrap();
        assert_eq!(later["timestamp"], (VECTOR_TS + 3600).to_string());
        assert_eq!(
            later["sign"],
            sign::feishu_webhook("this is secret", VECTOR_TS + 3600)
        );
    }

    #[test]
    fn send_time_comes_from_the_client_clock() {
        // The clock reads VECTOR_TS s + 250 ms: seconds, rounded down.
        let b = bot(Some("this is secret"));
        let now = b.shared.now_ms().div_euclid(1000);
        assert_eq!(now, VECTOR_TS);
    }

    #[test]
    fn unsigned_request_is_the_payload() {
        let b = bot(None);
        let p = b.render(&Message::text("hi")).unwrap().remove(0);
        assert_eq!(b.request(&p, VECTOR_TS).json_body().unwrap(), p.body);
    }

    #[test]
    fn text_with_title_and_mentions() {
        let msg = Message::text("disk 91% on db-1")
            .with_title("告警")
            .with_mentions(mentions());
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "text",
          "content": {
            "text": "告警\ndisk 91% on db-1 <at user_id=\"all\">所有人</at> <at user_id=\"ou_7d8a6e6df7621556ce0d21922b676706ccs\"></at>"
          }
        }
        "#);
    }

    #[test]
    fn markdown_is_a_lark_md_card() {
        let msg = Message::markdown("Deploy", "# v1.2\n**live** on [prod](https://example.com)")
            .with_mentions(Mentions {
                user_ids: vec!["ou_1".into()],
                ..Default::default()
            });
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "interactive",
          "card": {
            "config": {
              "wide_screen_mode": true
            },
            "header": {
              "title": {
                "tag": "plain_text",
                "content": "Deploy"
              }
            },
            "elements": [
              {
                "tag": "div",
                "text": {
                  "tag": "lark_md",
                  "content": "**v1.2**\n**live** on [prod](https://example.com)\n<at id=ou_1></at>"
                }
              }
            ]
          }
        }
        "#);
    }

    #[test]
    fn markdown_without_title_has_no_header() {
        let body = one(
            &bot(None),
            &Message::new(Body::Markdown { text: "x".into() }),
        );
        assert!(body["card"].get("header").is_none());
    }

    #[test]
    fn card_with_theme_and_buttons() {
        let msg = Message::new(Body::Card {
            text: "CPU high on **web-3**".into(),
            buttons: vec![
                Button {
                    text: "Grafana".into(),
                    url: "https://grafana.example.com/d/1".into(),
                },
                Button {
                    text: "Silence".into(),
                    url: "https://am.example.com/#/silences/new".into(),
                },
            ],
            theme: Some("critical".into()),
        })
        .with_title("[FIRING] HighCPU")
        .with_mentions(Mentions {
            all: true,
            ..Default::default()
        });
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "interactive",
          "card": {
            "config": {
              "wide_screen_mode": true
            },
            "header": {
              "title": {
                "tag": "plain_text",
                "content": "[FIRING] HighCPU"
              },
              "template": "red"
            },
            "elements": [
              {
                "tag": "div",
                "text": {
                  "tag": "lark_md",
                  "content": "CPU high on **web-3**\n<at id=all></at>"
                }
              },
              {
                "tag": "action",
                "actions": [
                  {
                    "tag": "button",
                    "text": {
                      "tag": "plain_text",
                      "content": "Grafana"
                    },
                    "url": "https://grafana.example.com/d/1",
                    "type": "primary"
                  },
                  {
                    "tag": "button",
                    "text": {
                      "tag": "plain_text",
                      "content": "Silence"
                    },
                    "url": "https://am.example.com/#/silences/new",
                    "type": "default"
                  }
                ]
              }
            ]
          }
        }
        "#);
    }

    #[test]
    fn card_theme_without_title_gets_a_default_title() {
        let msg = Message::new(Body::Card {
            text: "hello there".into(),
            buttons: vec![],
            theme: Some("green".into()),
        });
        let body = one(&bot(None), &msg);
        assert_eq!(body["card"]["header"]["title"]["content"], "hello there");
        assert_eq!(body["card"]["header"]["template"], "green");
    }

    #[test]
    fn link_is_a_post() {
        let msg = Message::new(Body::Link {
            text: "Release notes\nfor v1.2".into(),
            url: "https://example.com/r/1.2".into(),
            pic_url: Some("https://example.com/p.png".into()),
        })
        .with_title("v1.2 released")
        .with_mentions(mentions());
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "post",
          "content": {
            "post": {
              "zh_cn": {
                "title": "v1.2 released",
                "content": [
                  [
                    {
                      "tag": "text",
                      "text": "Release notes"
                    }
                  ],
                  [
                    {
                      "tag": "text",
                      "text": "for v1.2"
                    }
                  ],
                  [
                    {
                      "tag": "a",
                      "text": "https://example.com/r/1.2",
                      "href": "https://example.com/r/1.2"
                    }
                  ],
                  [
                    {
                      "tag": "at",
                      "user_id": "all"
                    },
                    {
                      "tag": "at",
                      "user_id": "ou_7d8a6e6df7621556ce0d21922b676706ccs"
                    }
                  ]
                ]
              }
            }
          }
        }
        "#);
    }

    #[test]
    fn news_is_a_post_of_links() {
        let msg = Message::new(Body::News {
            articles: vec![
                Article {
                    title: "Outage report".into(),
                    url: "https://example.com/a".into(),
                    description: Some("What happened".into()),
                    pic_url: None,
                },
                Article {
                    title: "Postmortem".into(),
                    url: "https://example.com/b".into(),
                    description: None,
                    pic_url: None,
                },
            ],
        });
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "post",
          "content": {
            "post": {
              "zh_cn": {
                "title": "Outage report",
                "content": [
                  [
                    {
                      "tag": "a",
                      "text": "Outage report",
                      "href": "https://example.com/a"
                    }
                  ],
                  [
                    {
                      "tag": "text",
                      "text": "What happened"
                    }
                  ],
                  [
                    {
                      "tag": "a",
                      "text": "Postmortem",
                      "href": "https://example.com/b"
                    }
                  ]
                ]
              }
            }
          }
        }
        "#);
    }

    #[test]
    fn template_is_a_post_of_key_value_lines() {
        let mut data = BTreeMap::new();
        data.insert("host".to_string(), "db-1".to_string());
        data.insert("status".to_string(), "firing".to_string());
        let msg = Message::new(Body::Template {
            template_id: "tpl_1".into(),
            data,
            url: Some("https://example.com/alert/1".into()),
        })
        .with_title("Alert");
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "post",
          "content": {
            "post": {
              "zh_cn": {
                "title": "Alert",
                "content": [
                  [
                    {
                      "tag": "text",
                      "text": "host: db-1"
                    }
                  ],
                  [
                    {
                      "tag": "text",
                      "text": "status: firing"
                    }
                  ],
                  [
                    {
                      "tag": "a",
                      "text": "https://example.com/alert/1",
                      "href": "https://example.com/alert/1"
                    }
                  ]
                ]
              }
            }
          }
        }
        "#);
    }

    #[test]
    fn image_key_only() {
        let msg = Message::new(Body::Image {
            image: ImageSource::Key("img_ecffc3b9-8f14-400f-a014-05eca1a4310g".into()),
        });
        insta::assert_json_snapshot!(one(&bot(None), &msg), @r#"
        {
          "msg_type": "image",
          "content": {
            "image_key": "img_ecffc3b9-8f14-400f-a014-05eca1a4310g"
          }
        }
        "#);
        for image in [
            ImageSource::Url("https://x/y.png".into()),
            ImageSource::Base64("aGk=".into()),
        ] {
            let e = bot(None)
                .render(&Message::new(Body::Image { image }))
                .unwrap_err();
            assert!(matches!(e, Error::Unsupported { .. }));
            assert!(
                e.to_string().contains("webhook bots cannot upload images"),
                "{e}"
            );
        }
    }

    #[test]
    fn raw_share_chat_passes_through_and_gets_signed() {
        let raw = json!({"msg_type": "share_chat", "content": {"share_chat_id": "oc_f5b1a7eb27ae2c7b6adc2a74faf339ff"}});
        let msg = Message::new(Body::Raw {
            platform: Some(Platform::Feishu),
            payload: raw.clone(),
        });
        let b = bot(Some("s"));
        let p = b.render(&msg).unwrap().remove(0);
        assert_eq!(p.body, raw);
        let body = b.request(&p, VECTOR_TS).json_body().unwrap();
        assert_eq!(body["msg_type"], "share_chat");
        assert_eq!(body["timestamp"], VECTOR_TS.to_string());

        let other = Message::new(Body::Raw {
            platform: Some(Platform::Dingtalk),
            payload: raw,
        });
        assert!(matches!(b.render(&other), Err(Error::Unsupported { .. })));
        let not_obj = Message::new(Body::Raw {
            platform: None,
            payload: json!("x"),
        });
        assert!(matches!(b.render(&not_obj), Err(Error::InvalidMessage(_))));
    }

    #[test]
    fn bad_mentions_and_urls_are_refused_naming_the_field() {
        let msg = Message::text("x").with_mentions(Mentions {
            user_ids: vec!["ou\"><x".into()],
            ..Default::default()
        });
        let e = bot(None).render(&msg).unwrap_err().to_string();
        assert!(e.contains("`mentions.user_ids[0]`"), "{e}");
        let msg = Message::new(Body::Card {
            text: "x".into(),
            buttons: vec![Button {
                text: "b".into(),
                url: "/relative".into(),
            }],
            theme: None,
        });
        let e = bot(None).render(&msg).unwrap_err().to_string();
        assert!(e.contains("`body.buttons[0].url`"), "{e}");
        let e = bot(None)
            .render(&Message::text(" "))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`body.text` is empty"), "{e}");
    }

    fn big_chinese() -> String {
        // 10,000 × 3 bytes plus newlines: well over the 20 KB body limit.
        "磁盘告警：数据库主机使用率超过阈值\n".repeat(560)
    }

    #[test]
    fn long_chinese_text_is_split_within_the_body_limit() {
        let b = bot(Some("this is secret"));
        let text = big_chinese();
        let msg = Message::text(text.clone()).with_mentions(mentions());
        let parts = b.render(&msg).unwrap();
        assert_eq!(parts.len(), 2);
        let mut joined = String::new();
        for (i, p) in parts.iter().enumerate() {
            let req = b.request(p, VECTOR_TS);
            let len = req.body.as_ref().unwrap().len();
            assert!(len <= BODY_LIMIT, "part {i}: {len} bytes");
            let t = p.body["content"]["text"].as_str().unwrap();
            // Mentions on the first part only.
            assert_eq!(t.contains("<at user_id=\"all\">所有人</at>"), i == 0);
            let t = t.split(" <at").next().unwrap();
            joined.push_str(t.rsplit_once(" (").unwrap().0);
        }
        // The first part is nearly full: the budget is used, not wasted.
        assert!(b.request(&parts[0], VECTOR_TS).body.unwrap().len() > BODY_LIMIT - 200);
        assert_eq!(joined, text);
    }

    #[test]
    fn long_chinese_text_is_truncated_when_configured() {
        let mut b = bot(None);
        b.overflow = Overflow {
            mode: OverflowMode::Truncate,
            ..Overflow::default()
        };
        let parts = b.render(&Message::text(big_chinese())).unwrap();
        assert_eq!(parts.len(), 1);
        let len = serde_json::to_vec(&parts[0].body).unwrap().len();
        assert!(len <= BODY_LIMIT && len > BODY_LIMIT - 100, "{len}");
        assert!(parts[0].body["content"]["text"]
            .as_str()
            .unwrap()
            .ends_with("…(truncated)"));
    }

    #[test]
    fn long_card_splits_with_buttons_on_the_last_part() {
        let msg = Message::new(Body::Card {
            text: big_chinese(),
            buttons: vec![Button {
                text: "Open".into(),
                url: "https://example.com".into(),
            }],
            theme: Some("red".into()),
        })
        .with_title("告警");
        let parts = bot(None).render(&msg).unwrap();
        assert_eq!(parts.len(), 2);
        for (i, p) in parts.iter().enumerate() {
            assert!(serde_json::to_vec(&p.body).unwrap().len() <= BODY_LIMIT);
            assert_eq!(p.body["card"]["header"]["template"], "red");
            assert_eq!(
                p.body["card"]["elements"].as_array().unwrap().len(),
                if i == 1 { 2 } else { 1 }
            );
        }
    }

    #[test]
    fn declared_rate_limits() {
        assert_eq!(
            bot(None).rate_limits(),
            vec![Quota::per_second(5), Quota::per_minute(100)]
        );
    }
}
