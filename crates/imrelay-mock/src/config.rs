//! The mock's configuration: which robots and apps exist, with their secrets.
//! Loaded from TOML (`imrelay mock --config FILE`) or built in code; more can be
//! registered at run time over `POST /_mock/robots` and `POST /_mock/apps`.

use serde::{Deserialize, Serialize};

/// A platform family the mock serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MockPlatform {
    Dingtalk,
    Feishu,
    Wecom,
    Wechat,
    /// Alibaba Cloud SMS and voice: apps are AccessKeys (`app_id` = AccessKeyId).
    Aliyun,
    /// Tencent Cloud SMS and voice: apps are API keys (`app_id` = SecretId).
    Tencent,
}

impl MockPlatform {
    pub fn as_str(&self) -> &'static str {
        match self {
            MockPlatform::Dingtalk => "dingtalk",
            MockPlatform::Feishu => "feishu",
            MockPlatform::Wecom => "wecom",
            MockPlatform::Wechat => "wechat",
            MockPlatform::Aliyun => "aliyun",
            MockPlatform::Tencent => "tencent",
        }
    }
}

/// Mock configuration.
///
/// ```
/// let cfg: imrelay_mock::MockConfig = toml::from_str(r#"
///     token_lifetime_secs = 7200
///     [[robots]]
///     platform = "dingtalk"
///     token = "demo"
///     secret = "SECdemo"
/// "#).unwrap();
/// assert_eq!(cfg.robots.len(), 1);
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// Lifetime of issued access tokens (the platforms use 7200 s; tests shorten it).
    #[serde(default = "default_lifetime")]
    pub token_lifetime_secs: u64,
    /// Accept robots and apps that were never declared (no signature or secret
    /// check): handy as a benchmark sink. Declared ones are always checked.
    #[serde(default)]
    pub accept_unknown: bool,
    /// Multiplies every rate-limit window and block period (0.01 turns DingTalk's
    /// 60 s window into 600 ms), so rate-limit tests run fast.
    #[serde(default = "default_scale")]
    pub window_scale: f64,
    /// Keep at most this many entries in the request log (oldest dropped first;
    /// counters keep counting).
    #[serde(default = "default_log_capacity")]
    pub log_capacity: usize,
    /// Do not keep request bodies in the log (benchmarks).
    #[serde(default)]
    pub log_bodies_off: bool,
    #[serde(default)]
    pub robots: Vec<RobotConfig>,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
}

fn default_lifetime() -> u64 {
    7200
}
fn default_scale() -> f64 {
    1.0
}
fn default_log_capacity() -> usize {
    200_000
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            token_lifetime_secs: default_lifetime(),
            accept_unknown: false,
            window_scale: default_scale(),
            log_capacity: default_log_capacity(),
            log_bodies_off: false,
            robots: Vec::new(),
            apps: Vec::new(),
        }
    }
}

impl MockConfig {
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn with_robot(mut self, robot: RobotConfig) -> Self {
        self.robots.push(robot);
        self
    }

    pub fn with_app(mut self, app: AppConfig) -> Self {
        self.apps.push(app);
        self
    }
}

/// A webhook robot: DingTalk custom robot (token = access_token), Feishu/Lark
/// custom bot (token = hook id), WeCom group robot (token = key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RobotConfig {
    pub platform: MockPlatform,
    pub token: String,
    /// Signing secret; when set, unsigned or wrongly signed requests are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Security keywords; when set, a message must contain one of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

impl RobotConfig {
    pub fn new(platform: MockPlatform, token: &str) -> Self {
        RobotConfig {
            platform,
            token: token.to_string(),
            secret: None,
            keywords: Vec::new(),
        }
    }

    pub fn with_secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_string());
        self
    }
}

/// An app credential: DingTalk appKey/appSecret, Feishu app_id/app_secret,
/// WeCom corpid/corpsecret, WeChat appid/secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub platform: MockPlatform,
    pub app_id: String,
    pub app_secret: String,
    /// Overrides `token_lifetime_secs` for this app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_lifetime_secs: Option<u64>,
    /// Where the platform sends this app's callbacks (card clicks fired with
    /// `POST /_mock/messages/{id}/click`), with the secrets to encrypt and
    /// sign them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<AppCallback>,
    /// Paid urgent pushes (Feishu SMS/phone 加急, DingTalk SMS/phone DING)
    /// the app's tenant may still make, one per user pushed; unlimited when
    /// unset. At 0 the platform answers its quota-exhausted code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent_quota: Option<u64>,
}

impl AppConfig {
    pub fn new(platform: MockPlatform, app_id: &str, app_secret: &str) -> Self {
        AppConfig {
            platform,
            app_id: app_id.to_string(),
            app_secret: app_secret.to_string(),
            token_lifetime_secs: None,
            callback: None,
            urgent_quota: None,
        }
    }

    pub fn with_callback(mut self, callback: AppCallback) -> Self {
        self.callback = Some(callback);
        self
    }
}

/// An app's callback URL and secrets, as set in the platform's developer
/// console.
///
/// ```
/// let app: imrelay_mock::AppConfig = toml::from_str(r#"
///     platform = "feishu"
///     app_id = "cli_demo"
///     app_secret = "s"
///     [callback]
///     url = "http://127.0.0.1:8080/v1/callbacks/feishu-main"
///     token = "verification-token"
///     encrypt_key = "encrypt-key"
/// "#).unwrap();
/// assert!(app.callback.is_some());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCallback {
    pub url: String,
    /// WeCom: the callback Token. Feishu: the Verification Token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// WeCom: the 43-character EncodingAESKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding_aes_key: Option<String>,
    /// Feishu: the Encrypt Key (without it, callbacks go in plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_key: Option<String>,
    /// WeCom: the app's AgentId in the envelope (default: the agentid the
    /// message was sent with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

impl AppCallback {
    pub fn new(url: impl Into<String>) -> Self {
        AppCallback {
            url: url.into(),
            token: None,
            encoding_aes_key: None,
            encrypt_key: None,
            agent_id: None,
        }
    }
}
