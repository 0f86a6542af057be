//! A generic HTTP webhook for users' own endpoints, signed per the Standard
//! Webhooks spec: `webhook-id`, `webhook-timestamp` (seconds) and
//! `webhook-signature: v1,<base64 HMAC-SHA256>`.
//!
//! The body is the neutral [`Message`] as JSON (or, for a raw body, the raw
//! payload as is). Answers: 2xx delivered; 429 rate limited (honouring
//! `Retry-After`); 408 and 5xx transient; 410 Gone and other 4xx permanent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use url::Url;

use crate::destination::{
    dedup_key, parse_config, Client, Destination, Payload, Quota, Registration, Shared,
};
use crate::http::HttpRequest;
use crate::message::{Body, Message, Platform};
use crate::outcome::{Outcome, Report};
use crate::{sign, Error, Secret};

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[Registration {
    kind: "webhook",
    platform: Platform::Webhook,
    summary: "Any HTTP endpoint, signed per the Standard Webhooks spec",
    build: |client, value| {
        Ok(Arc::new(Webhook::new(
            client,
            parse_config("webhook", value)?,
        )?))
    },
}];

/// Config of a generic webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The endpoint.
    pub url: String,
    /// Signing secret (`whsec_` + base64, as the spec's libraries generate). No
    /// signature headers are sent without one.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Extra headers (e.g. an `authorization` the receiver wants).
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// Requests per second the receiver accepts (default 50).
    #[serde(default)]
    pub rate_per_second: Option<u32>,
}

#[derive(Debug)]
pub struct Webhook {
    shared: Arc<Shared>,
    id: String,
    url: Url,
    secret: Option<Secret>,
    headers: Vec<(http::HeaderName, Secret)>,
    rate: u32,
}

impl Webhook {
    pub fn new(client: &Client, cfg: WebhookConfig) -> Result<Self, Error> {
        let url =
            Url::parse(&cfg.url).map_err(|e| Error::Config(format!("webhook: `url`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config("webhook: `url` must be http or https".into()));
        }
        let mut headers = Vec::new();
        for (k, v) in cfg.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                Error::Config(format!("webhook: `headers.{k}` is not a valid header name"))
            })?;
            headers.push((name, v));
        }
        let id = format!("webhook:{}", Secret::new(url.as_str()).fingerprint());
        Ok(Webhook {
            shared: client.shared().clone(),
            id,
            url,
            secret: cfg.secret,
            headers,
            rate: cfg.rate_per_second.unwrap_or(50),
        })
    }

    /// Build the signed request for `payload` at `now_secs` (pure; used by tests).
    pub fn request(&self, payload: &Payload, now_secs: i64) -> HttpRequest {
        let mut req = HttpRequest::post_json(self.url.clone(), &payload.body);
        let msg_id = payload
            .dedup_key
            .clone()
            .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple()));
        if let Some(secret) = &self.secret {
            let body = req.body.as_deref().unwrap_or_default();
            let sig = sign::standard_webhook(secret.expose(), &msg_id, now_secs, body);
            req = req
                .header("webhook-id", &msg_id)
                .header("webhook-timestamp", &now_secs.to_string())
                .header("webhook-signature", &sig);
        } else {
            req = req.header("webhook-id", &msg_id);
        }
        for (k, v) in &self.headers {
            if let Ok(v) = http::HeaderValue::from_str(v.expose()) {
                req.headers.push((k.clone(), v));
            }
        }
        req
    }
}

/// Classify a webhook receiver's answer.
pub fn classify(resp: &crate::http::HttpResponse) -> Report {
    if (200..300).contains(&resp.status) {
        return Report::delivered().with_status(resp.status);
    }
    if let Some(r) = resp.classify_transport_status() {
        return r;
    }
    Report::new(
        Outcome::Permanent,
        format!("HTTP {}: {}", resp.status, resp.body_snippet()),
    )
    .with_status(resp.status)
    .with_hint("the receiver refused the request; check its URL, auth headers and signing secret")
}

#[async_trait]
impl Destination for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }
    fn platform(&self) -> Platform {
        Platform::Webhook
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota {
            count: self.rate,
            per: Duration::from_secs(1),
        }]
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let body = match &msg.body {
            Body::Raw { platform, payload } => {
                if platform.is_some_and(|p| p != Platform::Webhook) {
                    return Err(Error::unsupported(
                        "webhook",
                        "raw",
                        format!(
                            "the raw payload is marked for {}",
                            platform.map(|p| p.as_str()).unwrap_or("")
                        ),
                    ));
                }
                payload.clone()
            }
            _ => serde_json::to_value(msg).map_err(|e| Error::InvalidMessage(e.to_string()))?,
        };
        let mut p = Payload::new(body);
        p.dedup_key = dedup_key(msg.id.as_deref(), 0, "").map(|k| format!("msg_{k}"));
        Ok(vec![p])
    }

    async fn send(&self, payload: &Payload) -> Report {
        let req = self.request(payload, self.shared.now_ms().div_euclid(1000));
        match self.shared.http.execute(req).await {
            Ok(resp) => classify(&resp),
            Err(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::ClientOptions;

    fn hook(secret: Option<&str>) -> Webhook {
        let client = Client::with_options(ClientOptions {
            clock: Arc::new(FixedClock::new(1_614_265_330_000)),
            ..Default::default()
        })
        .unwrap();
        Webhook::new(
            &client,
            WebhookConfig {
                url: "https://hooks.example.com/in".into(),
                secret: secret.map(Secret::new),
                headers: BTreeMap::new(),
                rate_per_second: None,
            },
        )
        .unwrap()
    }

    #[test]
    fn signed_request_verifies_and_id_is_stable_across_retries() {
        let h = hook(Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let msg = Message::text("hi").with_id("m1");
        let p1 = h.render(&msg).unwrap().remove(0);
        let p2 = h.render(&msg).unwrap().remove(0);
        assert_eq!(p1.dedup_key, p2.dedup_key);
        let req = h.request(&p1, 1_614_265_330);
        let get = |n: &str| {
            req.headers
                .iter()
                .find(|(k, _)| k == n)
                .unwrap()
                .1
                .to_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(get("webhook-timestamp"), "1614265330");
        assert!(sign::verify_standard_webhook(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &get("webhook-id"),
            1_614_265_330,
            req.body.as_deref().unwrap(),
            &get("webhook-signature"),
        ));
        insta::assert_json_snapshot!(req.json_body().unwrap(), @r#"
        {
          "id": "m1",
          "body": {
            "type": "text",
            "text": "hi"
          }
        }
        "#);
    }

    #[test]
    fn raw_for_another_platform_is_refused() {
        let h = hook(None);
        let msg = Message::new(Body::Raw {
            platform: Some(Platform::Dingtalk),
            payload: serde_json::json!({"msgtype": "text"}),
        });
        assert!(matches!(h.render(&msg), Err(Error::Unsupported { .. })));
    }
}
