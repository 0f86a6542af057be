//! Tencent Cloud (腾讯云) SMS and voice messages, for escalating an
//! unacknowledged alert: `tencent_sms` (`SendSms`, sms.tencentcloudapi.com,
//! version 2021-01-11) and `tencent_voice` (`SendTtsVoice`,
//! vms.tencentcloudapi.com, version 2020-09-02). Both are API 3.0 calls: a
//! JSON POST to `/` with the action, version, region and timestamp in
//! `X-TC-*` headers, signed with [`sign`] (TC3-HMAC-SHA256). What was
//! confirmed from Tencent Cloud's documentation, with links, is in
//! docs/platforms/tencent.md.
//!
//! | body kind | `tencent_sms` | `tencent_voice` |
//! |---|---|---|
//! | template | `TemplateId` = the body's `template_id`, `TemplateParamSet` = its `data` values, in the order of their keys (`"1"`, `"2"`, ... numerically) | same |
//! | everything else with text | the configured `template_id` with title and text joined by a newline as its one parameter | same |
//! | image, raw | refused | refused |
//!
//! Tencent caps each SMS template variable at 6 characters (non-verification
//! templates, per its template FAQ): longer text is cut at a whole character
//! and ends with `…`. `text_max_chars` changes the cap (for templates approved
//! with longer variables); voice text is not cut unless it is set, as no
//! voice limit is documented.
//!
//! Recipients are phone numbers in E.164 (`+8613800000000`); a bare 11-digit
//! mainland number (or `86…` / `0086…`) is sent as `+86…`. SMS goes to up to
//! 200 numbers per request, mainland and other numbers in separate requests
//! (Tencent refuses a mix), and each number is answered on its own: numbers
//! refused inside a request that others passed are the report's
//! `failed_recipients`. A call goes to one number per request.
//!
//! Limits: SendSms 3000 requests a second; per number by default 1 SMS per
//! 30 seconds and 10 a day. SendTtsVoice: 20 requests a second (the voice
//! API's documented default); no per-number limit is documented.

pub mod codes;
pub mod sign;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::json;
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
pub const SMS_BASE_URL: &str = "https://sms.tencentcloudapi.com";
/// Voice message API host.
pub const VOICE_BASE_URL: &str = "https://vms.tencentcloudapi.com";
/// SendSms version.
pub const SMS_VERSION: &str = "2021-01-11";
/// SendTtsVoice version.
pub const VOICE_VERSION: &str = "2020-09-02";
/// `X-TC-Region` unless configured.
pub const DEFAULT_REGION: &str = "ap-guangzhou";
/// Numbers per SendSms request.
pub const MAX_SMS_NUMBERS: usize = 200;
/// Characters of a non-verification SMS template variable.
pub const DEFAULT_SMS_TEXT_MAX_CHARS: usize = 6;
/// How often a call plays the text: at most 3.
pub const MAX_PLAY_TIMES: u8 = 3;

const SMS_KIND: &str = "tencent_sms";
const VOICE_KIND: &str = "tencent_voice";

/// The destination types of this platform.
pub static REGISTRATIONS: &[Registration] = &[
    Registration {
        kind: SMS_KIND,
        platform: Platform::Tencent,
        summary:
            "Tencent Cloud SMS (SendSms 2021-01-11) to phone numbers, from an approved template",
        build: |client, value| {
            Ok(Arc::new(TencentSms::new(
                client,
                parse_config(SMS_KIND, value)?,
            )?))
        },
    },
    Registration {
        kind: VOICE_KIND,
        platform: Platform::Tencent,
        summary:
            "Tencent Cloud voice message (SendTtsVoice) reading a template, one number per call",
        build: |client, value| {
            Ok(Arc::new(TencentVoice::new(
                client,
                parse_config(VOICE_KIND, value)?,
            )?))
        },
    },
];

/// An SdkAppId, written as a number or a string.
fn id_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IntOrString {
        Int(u64),
        Str(String),
    }
    Ok(match IntOrString::deserialize(d)? {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::Str(s) => s.trim().to_string(),
    })
}

/// Config of `tencent_sms`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentSmsConfig {
    pub secret_id: String,
    pub secret_key: Secret,
    /// The SMS application's SdkAppId (`1400...`).
    #[serde(deserialize_with = "id_string")]
    pub sms_sdk_app_id: String,
    /// The approved signature; required for mainland numbers.
    #[serde(default)]
    pub sign_name: Option<String>,
    /// The approved template for messages that are not templates; it must
    /// have exactly one variable (`{1}`), which takes the text.
    pub template_id: String,
    /// Default recipients.
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// Characters the text variable takes (default 6).
    #[serde(default)]
    pub text_max_chars: Option<usize>,
    /// `X-TC-Region` (default `ap-guangzhou`).
    #[serde(default)]
    pub region: Option<String>,
    /// API host; default `https://sms.tencentcloudapi.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// Config of `tencent_voice`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TencentVoiceConfig {
    pub secret_id: String,
    pub secret_key: Secret,
    /// The voice application's SdkAppId (`1400...`).
    #[serde(deserialize_with = "id_string")]
    pub voice_sdk_app_id: String,
    /// The approved voice template; for text messages it must have exactly
    /// one variable.
    pub template_id: String,
    /// Default recipients.
    #[serde(default)]
    pub phone_numbers: Vec<String>,
    /// How often the text is read, 1 to 3 (Tencent's default: 2).
    #[serde(default)]
    pub play_times: Option<u8>,
    /// Characters the text variable takes (default: not cut).
    #[serde(default)]
    pub text_max_chars: Option<usize>,
    /// `X-TC-Region` (default `ap-guangzhou`).
    #[serde(default)]
    pub region: Option<String>,
    /// API host; default `https://vms.tencentcloudapi.com`.
    #[serde(default)]
    pub base_url: Option<String>,
}

/// What both destinations share: credentials, host, clock.
struct Api {
    kind: &'static str,
    action: &'static str,
    version: &'static str,
    /// The service in the credential scope: the product's host prefix.
    service: &'static str,
    shared: Arc<Shared>,
    base: Url,
    region: String,
    secret_id: String,
    secret_key: Secret,
}

impl Api {
    #[allow(clippy::too_many_arguments)]
    fn new(
        kind: &'static str,
        action: &'static str,
        version: &'static str,
        service: &'static str,
        client: &Client,
        default_base: &str,
        base_url: Option<&str>,
        region: Option<String>,
        secret_id: &str,
        secret_key: &Secret,
    ) -> Result<Self, Error> {
        let base = endpoint::base_url(base_url, default_base, "base_url")
            .map_err(|e| Error::Config(format!("{kind}: {e}")))?;
        let secret_id = secret_id.trim().to_string();
        if secret_id.is_empty() {
            return Err(Error::Config(format!(
                "{kind}: `secret_id` is empty; copy the SecretId (API key console)"
            )));
        }
        if secret_key.expose().trim().is_empty() {
            return Err(Error::Config(format!(
                "{kind}: `secret_key` is empty; copy the SecretKey"
            )));
        }
        Ok(Api {
            kind,
            action,
            version,
            service,
            shared: client.shared().clone(),
            base,
            region: region
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| DEFAULT_REGION.to_string()),
            secret_id,
            secret_key: Secret::new(secret_key.expose().trim()),
        })
    }

    /// `host[:port]`, as the HTTP client sends it in `Host`.
    fn host(&self) -> String {
        let host = self.base.host_str().unwrap_or("");
        match self.base.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        }
    }

    /// The signed request of `payload` at `now_ms` (pure; for tests).
    fn request(&self, payload: &Payload, now_ms: i64) -> HttpRequest {
        let ts = now_ms.div_euclid(1000);
        let mut req = HttpRequest::post_json(endpoint::join(&self.base, "/"), &payload.body);
        let body = req.body.clone().unwrap_or_default();
        let auth = sign::authorization(
            &self.secret_id,
            self.secret_key.expose(),
            self.service,
            &self.host(),
            ts,
            &body,
        );
        req = req
            .header("x-tc-action", self.action)
            .header("x-tc-timestamp", &ts.to_string())
            .header("x-tc-version", self.version)
            .header("x-tc-region", &self.region)
            .header("authorization", &auth);
        req
    }

    async fn send(
        &self,
        payload: &Payload,
        classify: fn(&crate::http::HttpResponse) -> Report,
    ) -> Report {
        let req = self.request(payload, self.shared.now_ms());
        match self.shared.http.execute(req).await {
            Ok(resp) => classify(&resp),
            Err(r) => r,
        }
    }

    fn id(&self) -> String {
        format!("{}:{}", self.kind, self.secret_id)
    }
}

/// The recipients of `msg` (else `defaults`), normalised for this cloud.
fn numbers(kind: &str, msg: &Message, defaults: &[String]) -> Result<Vec<String>, Error> {
    phone_numbers(
        kind,
        msg,
        defaults,
        normalize_phone,
        "E.164 such as +8613800000000, or 11 mainland digits",
    )
}

/// A phone number in E.164 as Tencent Cloud takes it; a bare 11-digit
/// mainland number (or `86…`, `0086…`) becomes `+86…`. `None` when it is not
/// a phone number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    parse_phone(raw).map(|p| match p {
        Phone::Mainland(d) => format!("+86{d}"),
        Phone::International(d) => format!("+{d}"),
    })
}

/// `(template id, template parameters)` of `msg`: a template body's own (its
/// values ordered by key, numerically when the keys are `1`, `2`, ...), or
/// `configured` with the title and text as its one parameter.
fn template(
    kind: &'static str,
    msg: &Message,
    configured: &str,
    max_chars: Option<usize>,
) -> Result<(String, Vec<String>), Error> {
    match &msg.body {
        Body::Template {
            template_id, data, ..
        } => {
            let id = if template_id.trim().is_empty() {
                configured.to_string()
            } else {
                template_id.trim().to_string()
            };
            let numeric: Option<BTreeMap<u32, &String>> = data
                .iter()
                .map(|(k, v)| k.trim().parse::<u32>().ok().map(|n| (n, v)))
                .collect();
            let values = match numeric {
                Some(m) => m.into_values().cloned().collect(),
                None => data.values().cloned().collect(),
            };
            Ok((id, values))
        }
        Body::Raw { .. } | Body::Image { .. } => Err(Error::unsupported(
            kind,
            msg.body.kind(),
            "phones take an approved template and its parameters: send a template or text",
        )),
        _ => {
            let joined = message_text(kind, msg)?;
            let text = match max_chars {
                Some(max) => cut_chars(&joined, max),
                None => joined,
            };
            Ok((configured.to_string(), vec![text]))
        }
    }
}

/// Tencent Cloud SMS.
pub struct TencentSms {
    api: Api,
    id: String,
    sdk_app_id: String,
    sign_name: Option<String>,
    template_id: String,
    phone_numbers: Vec<String>,
    text_max_chars: usize,
}

impl std::fmt::Debug for TencentSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentSms")
            .field("id", &self.id)
            .field("base", &self.api.base.as_str())
            .finish()
    }
}

impl TencentSms {
    pub fn new(client: &Client, cfg: TencentSmsConfig) -> Result<Self, Error> {
        let api = Api::new(
            SMS_KIND,
            "SendSms",
            SMS_VERSION,
            "sms",
            client,
            SMS_BASE_URL,
            cfg.base_url.as_deref(),
            cfg.region,
            &cfg.secret_id,
            &cfg.secret_key,
        )?;
        check_defaults(SMS_KIND, &cfg.phone_numbers, normalize_phone)?;
        let sdk_app_id = non_empty(
            SMS_KIND,
            "sms_sdk_app_id",
            &cfg.sms_sdk_app_id,
            "copy the SMS application's SdkAppId",
        )?;
        Ok(TencentSms {
            id: format!("{}:{sdk_app_id}", api.id()),
            api,
            sdk_app_id,
            sign_name: cfg
                .sign_name
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            template_id: non_empty(
                SMS_KIND,
                "template_id",
                &cfg.template_id,
                "copy an approved template id",
            )?,
            phone_numbers: cfg.phone_numbers,
            text_max_chars: cfg.text_max_chars.unwrap_or(DEFAULT_SMS_TEXT_MAX_CHARS),
        })
    }

    /// The signed request of `payload` at `now_ms` (pure; for tests).
    pub fn request(&self, payload: &Payload, now_ms: i64) -> HttpRequest {
        self.api.request(payload, now_ms)
    }
}

#[async_trait]
impl Destination for TencentSms {
    fn kind(&self) -> &'static str {
        SMS_KIND
    }

    fn platform(&self) -> Platform {
        Platform::Tencent
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// SendSms: 3000 requests a second.
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(3000)]
    }

    /// The default per-number limits: 1 per 30 seconds, 10 a day.
    fn recipient_rate_limits(&self) -> Vec<Quota> {
        vec![
            Quota {
                count: 1,
                per: Duration::from_secs(30),
            },
            Quota {
                count: 10,
                per: Duration::from_secs(86_400),
            },
        ]
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let numbers = numbers(SMS_KIND, msg, &self.phone_numbers)?;
        let (template_id, params) =
            template(SMS_KIND, msg, &self.template_id, Some(self.text_max_chars))?;
        // One request may not mix mainland and other numbers
        // (UnsupportedOperation.ContainDomesticAndInternationalPhoneNumber).
        let (mainland, abroad): (Vec<String>, Vec<String>) =
            numbers.into_iter().partition(|n| n.starts_with("+86"));
        if !mainland.is_empty() && self.sign_name.is_none() {
            return Err(Error::Config(format!(
                "{SMS_KIND}: `sign_name` is required to text mainland numbers (`{}`)",
                mainland[0]
            )));
        }
        Ok(mainland
            .chunks(MAX_SMS_NUMBERS)
            .chain(abroad.chunks(MAX_SMS_NUMBERS))
            .map(|chunk| {
                let mut body = json!({
                    "PhoneNumberSet": chunk,
                    "SmsSdkAppId": self.sdk_app_id,
                    "TemplateId": template_id,
                    "TemplateParamSet": params,
                });
                if let Some(sign) = &self.sign_name {
                    body["SignName"] = sign.clone().into();
                }
                let mut p = Payload::new(body);
                p.recipients = chunk.to_vec();
                p
            })
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        self.api.send(payload, codes::classify_sms).await
    }
}

/// Tencent Cloud voice message (text-to-speech call).
pub struct TencentVoice {
    api: Api,
    id: String,
    sdk_app_id: String,
    template_id: String,
    phone_numbers: Vec<String>,
    play_times: Option<u8>,
    text_max_chars: Option<usize>,
}

impl std::fmt::Debug for TencentVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentVoice")
            .field("id", &self.id)
            .field("base", &self.api.base.as_str())
            .finish()
    }
}

impl TencentVoice {
    pub fn new(client: &Client, cfg: TencentVoiceConfig) -> Result<Self, Error> {
        let api = Api::new(
            VOICE_KIND,
            "SendTtsVoice",
            VOICE_VERSION,
            "vms",
            client,
            VOICE_BASE_URL,
            cfg.base_url.as_deref(),
            cfg.region,
            &cfg.secret_id,
            &cfg.secret_key,
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
        let sdk_app_id = non_empty(
            VOICE_KIND,
            "voice_sdk_app_id",
            &cfg.voice_sdk_app_id,
            "copy the voice application's SdkAppId",
        )?;
        Ok(TencentVoice {
            id: format!("{}:{sdk_app_id}", api.id()),
            api,
            sdk_app_id,
            template_id: non_empty(
                VOICE_KIND,
                "template_id",
                &cfg.template_id,
                "copy an approved voice template id",
            )?,
            phone_numbers: cfg.phone_numbers,
            play_times: cfg.play_times,
            text_max_chars: cfg.text_max_chars,
        })
    }

    /// The signed request of `payload` at `now_ms` (pure; for tests).
    pub fn request(&self, payload: &Payload, now_ms: i64) -> HttpRequest {
        self.api.request(payload, now_ms)
    }
}

#[async_trait]
impl Destination for TencentVoice {
    fn kind(&self) -> &'static str {
        VOICE_KIND
    }

    fn platform(&self) -> Platform {
        Platform::Tencent
    }

    fn id(&self) -> &str {
        &self.id
    }

    /// The voice API's default: 20 requests a second.
    fn rate_limits(&self) -> Vec<Quota> {
        vec![Quota::per_second(20)]
    }

    fn render(&self, msg: &Message) -> Result<Vec<Payload>, Error> {
        let numbers = numbers(VOICE_KIND, msg, &self.phone_numbers)?;
        let (template_id, params) =
            template(VOICE_KIND, msg, &self.template_id, self.text_max_chars)?;
        Ok(numbers
            .into_iter()
            .map(|n| {
                let mut body = json!({
                    "TemplateId": template_id,
                    "TemplateParamSet": params,
                    "CalledNumber": n,
                    "VoiceSdkAppid": self.sdk_app_id,
                });
                if let Some(t) = self.play_times {
                    body["PlayTimes"] = t.into();
                }
                let mut p = Payload::new(body);
                p.recipients = vec![n];
                p
            })
            .collect())
    }

    async fn send(&self, payload: &Payload) -> Report {
        self.api.send(payload, codes::classify_voice).await
    }
}
