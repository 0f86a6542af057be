//! Alibaba Cloud (阿里云) SMS and voice notifications, for escalating an
//! unacknowledged alert: `aliyun_sms` (Dysmsapi `SendSms`) and `aliyun_voice`
//! (Dyvmsapi `SingleCallByTts`, a text-to-speech call). Both are RPC-style
//! APIs: a form POST to `/` with `Action`, `Version` and the common
//! parameters, signed with [`sign`] (HMAC-SHA1, SignatureVersion 1.0). What
//! was confirmed from Alibaba Cloud's documentation, with links, is in
//! docs/platforms/aliyun.md.
//!
//! | body kind | `aliyun_sms` | `aliyun_voice` |
//! |---|---|---|
//! | template | `TemplateCode` = the body's `template_id`, `TemplateParam` = its `data` | `TtsCode` = `template_id`, `TtsParam` = `data` |
//! | everything else with text | the configured `template_code`; title and text joined by a newline in the one variable named by `template_param` | the configured `tts_code`, same rule |
//! | image, raw | refused | refused |
//!
//! Text goes into a template variable, and Alibaba Cloud caps a variable of an
//! SMS notification template at 35 characters: longer text is cut at a whole
//! character (grapheme cluster) and ends with `…` (`text_max_chars` changes
//! the cap for templates approved with longer variables). Voice text is not
//! cut unless `text_max_chars` is set: no TTS variable limit is documented.
//!
//! Recipients are phone numbers: the message's `recipients`, else the
//! configured `phone_numbers`. A mainland number is sent as its 11 digits
//! (`+86` / `0086` / `86` are stripped), any other as country code and number
//! without `+`. SMS goes to up to 1000 numbers per request; a call to one
//! number per request (one payload per number).
//!
//! Limits: SendSms 5000 QPS and SingleCallByTts 1000 QPS per account; per
//! number, SMS 1/minute, 5/hour, 10/day (the default flow control, per
//! signature) and calls 1/minute, 5/hour, 20/day. Beyond them the answer is
//! `isv.BUSINESS_LIMIT_CONTROL`, classified as rate limited for the window its
//! message names.

pub mod codes;
pub mod sign;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use url::Url;

use super::phone::{
    check_defaults, cut_chars, message_text, non_empty, parse_phone, phone_numbers, Phone,
};
use crate::destination::{parse_config, Client, Destination, Payload, Quota, Registration, Shared};
use crate::endpoint;
use crate::http::HttpRequest;
use crate::message::{Body, Message, Platform};
use crate::outcome::Report;
use crate::{Error, Secret};

/// SMS API host.
pub const SMS_BASE_URL: &str = "https://dysmsapi.aliyuncs.com";
/// Voice API host.
pub const VOICE_BASE_URL: &str = "https://dyvmsapi.aliyuncs.com";
/// API version of both Dysmsapi and Dyvmsapi.
pub const VERSION: &str = "2017-05-25";
/// Region sent as `RegionId` unless configured.
pub const DEFAULT_REGION: &str = "cn-hangzhou";
/// Numbers per SendSms request.
pub const MAX_SMS_NUMBERS: usize = 1000;
/// Characters of a notification template variable.
pub const DEFAULT_TEXT_MAX_CHARS: usize = 35;
/// How often a call plays the text: 1 to 3.
pub const MAX_PLAY_TIMES: u8 = 3;

const SMS_KIND: &str = "aliyun_sms";
const VOICE_KIND: &str = "aliyun_voice";

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[
    Registration {
        kind: SMS_KIND,
        platform: Platform::Aliyun,
        summary: "Alibaba Cloud SMS (Dysmsapi SendSms) to phone numbers, from an approved template",
        build: |client, value| {
            Ok(Arc::new(AliyunSms::new(client, parse_config(SMS_KIND, value)?)?))
        },
    },
    Registration {
        kind: VOICE_KIND,
        platform: Platform::Aliyun,
        summary: "Alibaba Cloud voice call (Dyvmsapi SingleCallByTts) reading a TTS template, one number per call",
        build: |client, value| {
            Ok(Arc::new(AliyunVoice::new(client, parse_config(VOICE_KIND, value)?)?))
        },
    },
];

/// Config of `aliyun_sms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunSmsConfig {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// The approved signature (签名), shown as 【sign_name】.
    pub sign_name: String,
    /// The approved template (`SMS_...`) for messages that are not templates.
    pub template_code: String,
    /// The template variable that takes a non-template message's text, e.g.
    /// `content` for a template `告警：${content}`. Without it only template
    /// messages can be sent.
    #[serde(default)]
    pub template_param: Option<String>,
    /// Default recipients.
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// Characters the text variable takes (default 35).
    #[serde(default)]
    pub text_max_chars: Option<usize>,
    /// `RegionId` (default `cn-hangzhou`).
    #[serde(default)]
    pub region: Option<String>,
    /// API host; default `https://dysmsapi.aliyuncs.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Config of `aliyun_voice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliyunVoiceConfig {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// The approved text-to-speech template (`TTS_...`).
    pub tts_code: String,
    /// The TTS template variable that takes a non-template message's text.
    #[serde(default)]
    pub template_param: Option<String>,
    /// The caller number shown (专属模式); leave out for the public pool.
    #[serde(default)]
    pub called_show_number: Option<String>,
    /// Default recipients.
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// How often the text is read, 1 to 3 (Alibaba Cloud's default: 3).
    #[serde(default)]
    pub play_times: Option<u8>,
    /// 0 to 100 (default 100).
    #[serde(default)]
    pub volume: Option<u8>,
    /// -500 to 500.
    #[serde(default)]
    pub speed: Option<i32>,
    /// Characters the text variable takes (default: not cut; no limit for
    /// TTS variables is documented).
    #[serde(default)]
    pub text_max_chars: Option<usize>,
    /// `RegionId` (default `cn-hangzhou`).
    #[serde(default)]
    pub region: Option<String>,
    /// API host; default `https://dyvmsapi.aliyuncs.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// What both destinations share: credentials, host, clock.
struct Api {
    kind: &'static str,
    action: &'static str,
    shared: Arc<Shared>,
    base: Url,
    region: String,
    access_key_id: String,
    secret: Secret,
}

impl Api {
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &'static str,
        action: &'static str,
        client: &Client,
        default_base: &str,
        base_url: Option<&str>,
        region: Option<String>,
        access_key_id: &str,
        secret: &Secret,
    ) -> Result<Self, Error> {
        let base = endpoint::base_url(base_url, default_base, "base_url")
            .map_err(|e| Error::Config(format!("{kind}: {e}")))?;
        let access_key_id = access_key_id.trim().to_string();
        if access_key_id.is_empty() {
            return Err(Error::Config(format!(
                "{kind}: `access_key_id` is empty; copy the AccessKey ID (RAM console)"
            )));
        }
        if secret.expose().trim().is_empty() {
            return Err(Error::Config(format!(
                "{kind}: `access_key_secret` is empty; copy the AccessKey secret"
            )));
        }
        Ok(Api {
            kind,
            action,
            shared: client.shared().clone(),
            base,
            region: region.unwrap_or_else(|| DEFAULT_REGION.to_string()),
            access_key_id,
            secret: Secret::new(secret.expose().trim()),
        })
    }

    fn id(&self) -> String {
        format!("{}:{}", self.kind, self.access_key_id)
    }

    /// The signed form POST for `payload` at `now_ms` with `nonce` (pure; for
    /// tests). Every action parameter of the payload and the common
    /// parameters are signed together.
    fn request(&self, payload: &Payload, now_ms: i64, nonce: &str) -> HttpRequest {
        let mut params: BTreeMap<String, String> = BTreeMap::new();
        if let Some(o) = payload.body.as_object() {
            for (k, v) in o {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                params.insert(k.clone(), v);
            }
        }
        for (k, v) in [
            ("AccessKeyId", self.access_key_id.as_str()),
            ("Action", self.action),
            ("Format", "JSON"),
            ("RegionId", self.region.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", nonce),
            ("SignatureVersion", "1.0"),
            ("Version", VERSION),
        ] {
            params.insert(k.into(), v.into());
        }
        params.insert("Timestamp".into(), sign::iso8601(now_ms.div_euclid(1000)));
        let signature = sign::signature(self.secret.expose(), "POST", &params);
        let form = format!(
            "{}&Signature={}",
            sign::canonicalized_query(&params),
            sign::percent_encode(&signature)
        );
        HttpRequest {
            method: http::Method::POST,
            url: endpoint::join(&self.base, "/"),
            headers: Vec::new(),
            body: Some(form.into_bytes()),
        }
        .header(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
    }

    async fn send(&self, payload: &Payload, id_field: &str) -> Report {
        // A fresh nonce per request: Alibaba Cloud refuses a reused one
        // (SignatureNonceUsed), so a retry is a new signed request.
        let nonce = uuid::Uuid::new_v4().to_string();
        let req = self.request(payload, self.shared.now_ms(), &nonce);
        match self.shared.http.execute(req).await {
            Ok(resp) => codes::classify(&resp, id_field),
            Err(r) => r,
        }
    }
}

/// The recipients of `msg` (else `defaults`), normalised for this cloud.
fn numbers(kind: &str, msg: &Message, defaults: &[String]) -> Result<Vec<String>, Error> {
    phone_numbers(
        kind,
        msg,
        defaults,
        normalize_phone,
        "mainland: 11 digits starting with 1; elsewhere: +country code and number",
    )
}

/// A phone number as Alibaba Cloud takes it: a mainland number as its 11
/// digits, any other as country code and number (no `+`, no `00`). `None`
/// when it is not a phone number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    parse_phone(raw).map(|p| match p {
        Phone::Mainland(d) | Phone::International(d) => d,
    })
}

/// `(template code, template parameters)` of `msg`: a template body's own,
/// or `configured` with the text in the `param` variable.
fn template(
    kind: &'static str,
    msg: &Message,
    configured: &str,
    param: Option<&str>,
    max_chars: Option<usize>,
) -> Result<(String, Option<String>), Error> {
    match &msg.body {
        Body::Template {
            template_id, data, ..
        } => {
            let code = if template_id.trim().is_empty() {
                configured.to_string()
            } else {
                template_id.trim().to_string()
            };
            let params = (!data.is_empty()).then(|| {
                let o: Map<String, Value> = data
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                Value::Object(o).to_string()
            });
            Ok((code, params))
        }
        Body::Raw { .. } | Body::Image { .. } => Err(Error::unsupported(
            kind,
            msg.body.kind(),
            "phones take an approved template and its variables: send a template or text",
        )),
        _ => {
            let name = param.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
                Error::unsupported(
                    kind,
                    msg.body.kind(),
                    "set `template_param` to the template variable that takes the text, or send a template",
                )
            })?;
            let text = message_text(kind, msg)?;
            let text = match max_chars {
                Some(max) => cut_chars(&text, max),
                None => text,
            };
            Ok((
                configured.to_string(),
                Some(json!({ name: text }).to_string()),
            ))
        }
    }
}

/// Alibaba Cloud SMS.
pub struct AliyunSms {
    api: Api,
    id: String,
    sign_name: String,
    template_code: String,
    template_param: Option<String>,
    phone_numbers: Vec<String>,
    text_max_chars: usize,
}

impl std::fmt::Debug for AliyunSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunSms")
            .field("id", &self.id)
            .field("base", &self.api.base.as_str())
            .finish()
    }
}

impl AliyunSms {
    pub fn new(client: &Client, cfg: AliyunSmsConfig) -> Result<Self, Error> {
        let api = Api::new(
            SMS_KIND,
            "SendSms",
            client,
            SMS_BASE_URL,
            cfg.base_url.as_deref(),
            cfg.region,
            &cfg.access_key_id,
            &cfg.access_key_secret,
        )?;
        check_defaults(SMS_KIND, &cfg.phone_numbers, normalize_phone)?;
        Ok(AliyunSms {
            id: api.id(),
            api,
            sign_name: non_empty(
                SMS_KIND,
                "sign_name",
                &cfg.sign_name,
                "copy the approved signature",
            )?,
            template_code: non_empty(
                SMS_KIND,
                "template_code",
                &cfg.template_code,
                "copy an approved template code (SMS_...)",
            )?,
            template_param: cfg.template_param,
            phone_numbers: cfg.phone_numbers,
            text_max_chars: cfg.text_max_chars.unwrap_or(DEFAULT_TEXT_MAX_CHARS),
        })
    }

    /// The signed request of `payload` (pure; for tests).
    pub fn request(&self, payload: &Payload, now_ms: i64, nonce: &str) -> HttpRequest {
        self.api.request(payload, now_ms, nonce)
    }
}

#[async_trait]
impl Destination for AliyunSms {
    fn kind(&self) -> &'static str {
        SMS_KIND
    }

    fn platform(&self) -> Platform {
        Platform::Aliyun
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// SendSms: 5000 calls a second per account.
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(5000)]
    }

    /// The default per-number flow control: 1 a minute, 5 an hour, 10 a day.
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        per_number(10)
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let numbers = numbers(SMS_KIND, msg, &self.phone_numbers)?;
        let (code, params) = template(
            SMS_KIND,
            msg,
            &self.template_code,
            self.template_param.as_deref(),
            Some(self.text_max_chars),
        )?;
        Ok(numbers
            .chunks(MAX_SMS_NUMBERS)
            .map(|chunk| {
                let mut o = Map::new();
                o.insert("PhoneNumbers".into(), chunk.join(",").into());
                o.insert("SignName".into(), self.sign_name.clone().into());
                o.insert("TemplateCode".into(), code.clone().into());
                if let Some(p) = &params {
                    o.insert("TemplateParam".into(), p.clone().into());
                }
                let mut p = Payload::new(Value::Object(o));
                p.recipients = chunk.to_vec();
                p
            })
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        self.api.send(payload, "BizId").await
    }
}

/// 1 a minute, 5 an hour and `per_day` a day.
fn per_number(per_day: u32) -> Vec<Quota> {
    vec![
        Quota::per_minute(1),
        Quota {
            count: 5,
            per: Duration::from_secs(3600),
        },
        Quota {
            count: per_day,
            per: Duration::from_secs(86_400),
        },
    ]
}

/// Alibaba Cloud text-to-speech call.
pub struct AliyunVoice {
    api: Api,
    id: String,
    tts_code: String,
    template_param: Option<String>,
    called_show_number: Option<String>,
    phone_numbers: Vec<String>,
    play_times: Option<u8>,
    volume: Option<u8>,
    speed: Option<i32>,
    text_max_chars: Option<usize>,
}

impl std::fmt::Debug for AliyunVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunVoice")
            .field("id", &self.id)
            .field("base", &self.api.base.as_str())
            .finish()
    }
}

impl AliyunVoice {
    pub fn new(client: &Client, cfg: AliyunVoiceConfig) -> Result<Self, Error> {
        let api = Api::new(
            VOICE_KIND,
            "SingleCallByTts",
            client,
            VOICE_BASE_URL,
            cfg.base_url.as_deref(),
            cfg.region,
            &cfg.access_key_id,
            &cfg.access_key_secret,
        )?;
        check_defaults(VOICE_KIND, &cfg.phone_numbers, normalize_phone)?;
        if cfg
            .play_times
            .is_some_and(|n| !(1..=MAX_PLAY_TIMES).contains(&n))
        {
            return Err(Error::Config(format!(
                "{VOICE_KIND}: `play_times` must be 1 to {MAX_PLAY_TIMES}"
            )));
        }
        if cfg.volume.is_some_and(|v| v > 100) {
            return Err(Error::Config(format!(
                "{VOICE_KIND}: `volume` must be 0 to 100"
            )));
        }
        if cfg.speed.is_some_and(|s| !(-500..=500).contains(&s)) {
            return Err(Error::Config(format!(
                "{VOICE_KIND}: `speed` must be -500 to 500"
            )));
        }
        Ok(AliyunVoice {
            id: api.id(),
            api,
            tts_code: non_empty(
                VOICE_KIND,
                "tts_code",
                &cfg.tts_code,
                "copy an approved TTS template code (TTS_...)",
            )?,
            template_param: cfg.template_param,
            called_show_number: cfg
                .called_show_number
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty()),
            phone_numbers: cfg.phone_numbers,
            play_times: cfg.play_times,
            volume: cfg.volume,
            speed: cfg.speed,
            text_max_chars: cfg.text_max_chars,
        })
    }

    /// The signed request of `payload` (pure; for tests).
    pub fn request(&self, payload: &Payload, now_ms: i64, nonce: &str) -> HttpRequest {
        self.api.request(payload, now_ms, nonce)
    }
}

#[async_trait]
impl Destination for AliyunVoice {
    fn kind(&self) -> &'static str {
        VOICE_KIND
    }

    fn platform(&self) -> Platform {
        Platform::Aliyun
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// SingleCallByTts: 1000 calls a second per account.
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(1000)]
    }

    /// Per called number: 1 a minute, 5 an hour, 20 a day.
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        per_number(20)
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let numbers = numbers(VOICE_KIND, msg, &self.phone_numbers)?;
        let (code, params) = template(
            VOICE_KIND,
            msg,
            &self.tts_code,
            self.template_param.as_deref(),
            self.text_max_chars,
        )?;
        Ok(numbers
            .into_iter()
            .map(|n| {
                let mut o = Map::new();
                o.insert("CalledNumber".into(), n.clone().into());
                o.insert("TtsCode".into(), code.clone().into());
                if let Some(p) = &params {
                    o.insert("TtsParam".into(), p.clone().into());
                }
                if let Some(show) = &self.called_show_number {
                    o.insert("CalledShowNumber".into(), show.clone().into());
                }
                if let Some(t) = self.play_times {
                    o.insert("PlayTimes".into(), t.to_string().into());
                }
                if let Some(v) = self.volume {
                    o.insert("Volume".into(), v.to_string().into());
                }
                if let Some(s) = self.speed {
                    o.insert("Speed".into(), s.to_string().into());
                }
                let mut p = Payload::new(Value::Object(o));
                p.recipients = vec![n];
                p
            })
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        self.api.send(payload, "CallId").await
    }
}
