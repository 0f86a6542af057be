//! The gateway's TOML configuration.
//!
//! Loading runs in stages so that every error names the key at fault
//! (`channels.alerts.destinations[1].secret`):
//! 1. TOML syntax (the toml crate reports line and column);
//! 2. `${ENV}` / `${ENV:-default}` / `${mock.url}` interpolation of every string
//!    and `X_file = "path"` secrets read into `X` ([`interp`]);
//! 3. typed sections, deserialized with the path of any bad key;
//! 4. each destination built by the SDK (`imrelay_sdk::Client::build`), plus
//!    cross checks (API key channels exist, fallbacks exist, robot pools share a type).
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [[api_keys]]
//! name = "ci"
//! key = "${IMRELAY_API_KEY}"
//! channels = ["alerts"]          # or ["*"]
//!
//! [channels.alerts]
//! retry = { base = "1s", cap = "5m", max_attempts = 12, max_age = "24h" }
//! fallback = { channel = "oncall", after = "10m" }
//! [[channels.alerts.destinations]]
//! type = "dingtalk_robot"
//! access_token = "${DT_TOKEN}"
//! secret_file = "/run/secrets/dingtalk"
//! rate_limit = [{ count = 20, per = "60s" }]   # optional override
//! timeouts = { connect = "3s", total = "10s" }  # optional override
//! ```

pub mod interp;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use crate::channels::build::BuildContext;
pub use crate::channels::config::{
    split_destination, valid_channel_name, BreakerSettings, ChannelConfig, CoalesceConfig,
    DestinationOverrides, FallbackConfig, QuotaConfig, RetryConfig, OVERRIDE_KEYS,
};
pub use crate::domain::config::{duration, typed, ConfigError, ConfigIssue, KeyPath};
pub use crate::http::auth::ApiKeyConfig;
pub use crate::outbound::config::{OutboundConfig, TimeoutsConfig};
pub use interp::Vars;

use crate::alertmanager::config::{AlertingConfig, TemplateConfig};
use crate::callbacks::config::CallbackConfig;
use crate::channels::config::validate_channels;

/// `[server]`: the HTTP listener and API limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Largest request body accepted, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Most messages in one `POST /v1/messages/batch`.
    pub max_batch: usize,
    /// How long a SIGTERM/SIGINT waits for in-flight sends before releasing them.
    #[serde(with = "duration")]
    pub shutdown_grace: Duration,
    /// Reload when the config file changes (SIGHUP always reloads).
    pub watch: bool,
    /// Longest a client may take to send a request's header, from its first
    /// byte; slower ones are disconnected.
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request (and a
    /// new one for its first) before it is closed; also how long a request may
    /// go without a byte sent or received (a body that stops coming).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Connections open at once; one more is answered 503 and closed. Keep it
    /// below the process's file descriptor limit (`ulimit -n`), with room for
    /// the store and outbound connections.
    pub max_connections: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 1024 * 1024,
            max_batch: 1000,
            shutdown_grace: Duration::from_secs(10),
            watch: true,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// `[store]`: where the queue lives.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite database file, relative to the config file's folder.
    pub path: PathBuf,
    /// `full` (default) fsyncs every commit, so an acknowledged message survives
    /// power loss. `normal` is WEAKER: it survives a process crash, but a power
    /// loss or OS crash may lose the last acknowledged messages.
    pub sqlite_synchronous: crate::store::Synchronous,
    /// `postgres://user:password@host:5432/db[?schema=name]`: a PostgreSQL
    /// queue that several instances share (rate limits and tokens too). When
    /// set, `path` is unused. Default: none (SQLite at `path`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Longest a write waits for a database connection (PostgreSQL) or for
    /// the SQLite writer, so an accept answers 503 quickly when the store is
    /// down.
    #[serde(with = "duration")]
    pub acquire_timeout: Duration,
    /// How long delivered messages are kept (then deleted with their
    /// attempts).
    #[serde(with = "duration")]
    pub keep_delivered: Duration,
    /// How long dead letters are kept (a message with any dead delivery is
    /// kept this long after it died).
    #[serde(with = "duration")]
    pub keep_dead: Duration,
}

// By hand: `url` may hold a password.
impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("path", &self.path)
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field(
                "url",
                &self.url.as_deref().map(crate::store::postgres::redact_url),
            )
            .field("acquire_timeout", &self.acquire_timeout)
            .field("keep_delivered", &self.keep_delivered)
            .field("keep_dead", &self.keep_dead)
            .finish()
    }
}

impl StoreConfig {
    /// What to open: `url` when set, else the SQLite `path`.
    pub fn location(&self) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => self.path.to_string_lossy().into_owned(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            path: PathBuf::from("imrelay.db"),
            sqlite_synchronous: crate::store::Synchronous::Full,
            url: None,
            acquire_timeout: crate::store::DEFAULT_ACQUIRE_TIMEOUT,
            keep_delivered: crate::store::Retention::DEFAULT.keep_delivered,
            keep_dead: crate::store::Retention::DEFAULT.keep_dead,
        }
    }
}

/// `[dispatch]`: the delivery loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DispatchConfig {
    /// Sends in flight at once, over all destinations. A send holds its slot
    /// until its outcome is committed, so this, divided by the time from
    /// claim to committed outcome (a few ms: two fsyncs and the platform's
    /// answer), bounds throughput; 256 measured about 2x the deliveries per
    /// second of 64 against a fast platform (BENCHMARKS.md).
    pub concurrency: usize,
    /// Deliveries claimed per cycle.
    pub claim_batch: usize,
    /// How long a claim is held before another worker (or this one, after a
    /// crash) may take the delivery again. A heartbeat extends it while the
    /// send runs, so it bounds how long a dead instance's work waits, not how
    /// long a send may take.
    #[serde(with = "duration")]
    pub lease: Duration,
    /// How often the claimer looks for due work when nothing wakes it.
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Several instances on PostgreSQL: added to every rate window of the
    /// shared limiter, against latency and the platform's clock.
    #[serde(with = "duration")]
    pub cluster_rate_margin: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            concurrency: 256,
            claim_batch: 256,
            lease: Duration::from_secs(15),
            poll_interval: Duration::from_millis(200),
            cluster_rate_margin: crate::store::postgres::cluster::DEFAULT_MARGIN,
        }
    }
}

/// `[mock]`: start the in-process mock platform server (quickstart, demos).
///
/// The gateway library only reads where the mock listens (for `${mock.url}`);
/// the `imrelay` binary starts the mock and checks its settings, so the test
/// double stays out of the library's dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MockSection {
    /// Where the mock listens; destinations reach it through `${mock.url}`.
    pub listen: SocketAddr,
    /// The mock's own settings (robots, apps, `accept_unknown`, `window_scale`...),
    /// as written under `[mock]`.
    pub settings: Map<String, Value>,
}

/// The whole configuration, validated: plain data, compiled into the running
/// gateway's state by [`crate::runtime::Live`].
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub dispatch: DispatchConfig,
    pub outbound: OutboundConfig,
    pub mock: Option<MockSection>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub channels: BTreeMap<String, ChannelConfig>,
    /// `[self_alerts]`: error grading and alerts about imrelay itself (see
    /// [`crate::alerts`]).
    pub self_alerts: crate::self_alerts::AlertsConfig,
    /// `[alerting]`: Alertmanager routes (see [`crate::alertmanager`]).
    pub alerting: AlertingConfig,
    /// `[templates]`: message templates, by name.
    pub templates: BTreeMap<String, TemplateConfig>,
    /// `[[callbacks]]`: platform callback endpoints (see [`crate::callbacks`]).
    pub callbacks: Vec<CallbackConfig>,
    /// `[lifecycle]`: cards after they are sent (see [`crate::lifecycle`]).
    pub lifecycle: crate::lifecycle::LifecycleConfig,
    /// `[sources]`: other systems' webhooks (see [`crate::sources`]).
    pub sources: BTreeMap<String, crate::sources::config::SourceConfig>,
    /// `[compat]`: the old tools' endpoints (see [`crate::compat`]).
    pub compat: crate::compat::CompatConfig,
    /// `[[maintenance]]`: recurring windows that hold messages.
    pub maintenance: Vec<crate::silences::maintenance::MaintenanceConfig>,
    /// `[[people]]`, `[[schedules]]`, `[[escalation_policies]]` (see [`crate::oncall`]).
    pub oncall: crate::oncall::OnCallConfig,
    /// `[console]`: the web console (see [`crate::console`]).
    pub console: crate::console::ConsoleConfig,
    /// The folder relative paths are resolved against.
    pub base_dir: PathBuf,
    /// The file this came from, if any.
    pub source: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    store: StoreConfig,
    #[serde(default)]
    dispatch: DispatchConfig,
    #[serde(default)]
    outbound: OutboundConfig,
    #[serde(default)]
    mock: Option<Value>,
    #[serde(default)]
    api_keys: Vec<ApiKeyConfig>,
    #[serde(default)]
    channels: BTreeMap<String, ChannelConfig>,
    #[serde(default)]
    self_alerts: crate::self_alerts::AlertsConfig,
    #[serde(default)]
    alerting: AlertingConfig,
    #[serde(default)]
    templates: BTreeMap<String, TemplateConfig>,
    #[serde(default)]
    callbacks: Vec<CallbackConfig>,
    #[serde(default)]
    lifecycle: crate::lifecycle::LifecycleConfig,
    #[serde(default)]
    sources: BTreeMap<String, crate::sources::config::SourceConfig>,
    #[serde(default)]
    compat: crate::compat::CompatConfig,
    #[serde(default)]
    maintenance: Vec<crate::silences::maintenance::MaintenanceConfig>,
    #[serde(default)]
    people: Vec<crate::oncall::people::PersonConfig>,
    #[serde(default)]
    schedules: Vec<crate::oncall::schedule::ScheduleConfig>,
    #[serde(default)]
    escalation_policies: Vec<crate::oncall::policy::PolicyConfig>,
    #[serde(default)]
    console: crate::console::ConsoleConfig,
}

const DEFAULT_MOCK_LISTEN: &str = "127.0.0.1:9100";

impl Config {
    /// Read and validate a config file (everything but building destinations,
    /// which needs the mock's address: see [`crate::runtime::Runtime::build`]).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::one("", format!("cannot read the config file: {e}")).with_file(Some(path))
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let mut cfg = Config::parse(&text, &base_dir).map_err(|e| e.with_file(Some(path)))?;
        cfg.source = Some(path.to_path_buf());
        Ok(cfg)
    }

    /// Parse config text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            file: None,
            issues: vec![ConfigIssue::new(
                "",
                format!("not valid TOML: {}", e.to_string().trim_end()),
            )],
        })?;
        let mut tree = serde_json::to_value(&table)
            .map_err(|e| ConfigError::one("", format!("cannot read the TOML values: {e}")))?;

        // `${mock.url}` needs the mock's address before interpolation.
        let mut issues = Vec::new();
        let mock_listen = mock_listen(&tree, &mut issues);
        let vars = Vars {
            mock_url: mock_listen.map(|a| format!("http://{a}")),
        };
        interp::resolve(&mut tree, &KeyPath::root(), base_dir, &vars, &mut issues);
        if !issues.is_empty() {
            return Err(ConfigError { file: None, issues });
        }

        let raw: RawConfig = typed(tree, &KeyPath::root()).map_err(|i| ConfigError {
            file: None,
            issues: vec![i],
        })?;
        let mock = match raw.mock {
            None => None,
            Some(v) => parse_mock(v, &mut issues),
        };
        let mut store = raw.store;
        if store.path.is_relative() {
            store.path = base_dir.join(&store.path);
        }
        if let Some(msg) = store
            .url
            .as_deref()
            .and_then(crate::store::postgres::check_url)
        {
            issues.push(ConfigIssue::new("store.url", msg));
        }
        // Compiled here only to report template and route errors at load;
        // the runtime compiles its own copy.
        let alerting = crate::alertmanager::config::compile(
            &raw.alerting,
            &raw.templates,
            base_dir,
            &raw.channels,
            &mut issues,
        );
        crate::sources::config::compile(
            &raw.sources,
            &alerting.templates,
            &raw.channels,
            &mut issues,
        );
        let cfg = Config {
            server: raw.server,
            store,
            dispatch: raw.dispatch,
            outbound: raw.outbound,
            mock,
            api_keys: raw.api_keys,
            channels: raw.channels,
            self_alerts: raw.self_alerts,
            alerting: raw.alerting,
            templates: raw.templates,
            callbacks: raw.callbacks,
            lifecycle: raw.lifecycle,
            sources: raw.sources,
            compat: raw.compat,
            maintenance: raw.maintenance,
            oncall: crate::oncall::OnCallConfig {
                people: raw.people,
                schedules: raw.schedules,
                policies: raw.escalation_policies,
            },
            console: raw.console,
            base_dir: base_dir.to_path_buf(),
            source: None,
        };
        cfg.validate(&mut issues);
        if issues.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError { file: None, issues })
        }
    }

    /// `[[people]]`, `[[schedules]]` and `[[escalation_policies]]`,
    /// compiled; problems are pushed to `issues`.
    pub fn compile_oncall(&self, issues: &mut Vec<ConfigIssue>) -> crate::oncall::OnCall {
        crate::oncall::OnCall::compile(&self.oncall, &|c| self.channels.contains_key(c), issues)
    }

    /// The mock's base URL as destinations see it (`${mock.url}`).
    pub fn mock_url(&self) -> Option<String> {
        self.mock.as_ref().map(|m| format!("http://{}", m.listen))
    }

    fn validate(&self, issues: &mut Vec<ConfigIssue>) {
        self.self_alerts.validate(self.channels.keys(), issues);
        crate::callbacks::config::validate(&self.callbacks, issues);
        self.lifecycle.compile(issues);
        self.compat.validate(self.channels.keys(), issues);
        crate::silences::maintenance::Windows::compile(&self.maintenance, issues);
        let oncall = self.compile_oncall(issues);
        for (name, src) in &self.sources {
            let at = KeyPath::root().key("sources").key(name);
            oncall.check_refs(&src.mentions.refs(), src.escalation.as_deref(), &at, issues);
            for (i, rule) in src.rules.iter().enumerate() {
                let at = at.key("rules").index(i);
                oncall.check_refs(
                    &rule.mentions.refs(),
                    rule.escalation.as_deref(),
                    &at,
                    issues,
                );
            }
        }
        for (name, r) in &self.alerting.routes {
            let at = KeyPath::root().key("alerting").key("routes").key(name);
            oncall.check_refs(&r.mentions.refs(), r.escalation.as_deref(), &at, issues);
            for (i, rule) in r.rules.iter().enumerate() {
                let at = at.key("rules").index(i);
                oncall.check_refs(
                    &rule.mentions.refs(),
                    rule.escalation.as_deref(),
                    &at,
                    issues,
                );
            }
        }
        self.console.validate(self.channels.keys(), issues);
        if self.server.max_body_bytes < 1024 {
            issues.push(ConfigIssue::new(
                "server.max_body_bytes",
                "must be at least 1024 bytes",
            ));
        }
        if self.server.max_batch == 0 {
            issues.push(ConfigIssue::new("server.max_batch", "must be at least 1"));
        }
        for (key, d) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.idle_timeout", self.server.idle_timeout),
        ] {
            if d < Duration::from_millis(100) {
                issues.push(ConfigIssue::new(key, "must be at least 100ms"));
            }
        }
        if self.server.max_connections == 0 {
            issues.push(ConfigIssue::new(
                "server.max_connections",
                "must be at least 1",
            ));
        }
        if self.dispatch.concurrency == 0 {
            issues.push(ConfigIssue::new(
                "dispatch.concurrency",
                "must be at least 1",
            ));
        }
        if self.dispatch.claim_batch == 0 {
            issues.push(ConfigIssue::new(
                "dispatch.claim_batch",
                "must be at least 1",
            ));
        }
        if self.dispatch.lease < Duration::from_secs(1) {
            issues.push(ConfigIssue::new("dispatch.lease", "must be at least 1s"));
        }
        if self.store.acquire_timeout < Duration::from_millis(10)
            || self.store.acquire_timeout > Duration::from_secs(60)
        {
            issues.push(ConfigIssue::new(
                "store.acquire_timeout",
                "must be between 10ms and 1m",
            ));
        }
        for (key, age) in [
            ("store.keep_delivered", self.store.keep_delivered),
            ("store.keep_dead", self.store.keep_dead),
        ] {
            if age < Duration::from_secs(60) {
                issues.push(ConfigIssue::new(
                    key,
                    "must be at least 1m (producers read a message's outcome after it settles)",
                ));
            }
        }
        if self.dispatch.cluster_rate_margin > Duration::from_secs(60) {
            issues.push(ConfigIssue::new(
                "dispatch.cluster_rate_margin",
                "must be at most 1m (it lengthens every rate window)",
            ));
        }
        self.outbound.validate(issues);

        crate::http::auth::validate_api_keys(&self.api_keys, &self.channels, issues);
        validate_channels(&self.channels, issues);
        crate::grouping::Groups::compile(&self.channels, issues);
    }
}

fn mock_listen(tree: &Value, issues: &mut Vec<ConfigIssue>) -> Option<SocketAddr> {
    let mock = tree.get("mock")?;
    if mock.get("enabled").and_then(Value::as_bool) == Some(false) {
        return None;
    }
    let raw = mock
        .get("listen")
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_MOCK_LISTEN);
    match raw.parse() {
        Ok(a) => Some(a),
        Err(e) => {
            issues.push(ConfigIssue::new(
                "mock.listen",
                format!("`{raw}` is not an address like 127.0.0.1:9100 ({e})"),
            ));
            None
        }
    }
}

fn parse_mock(v: Value, issues: &mut Vec<ConfigIssue>) -> Option<MockSection> {
    let Value::Object(mut map) = v else {
        issues.push(ConfigIssue::new("mock", "must be a table"));
        return None;
    };
    let enabled = match map.remove("enabled") {
        None => true,
        Some(Value::Bool(b)) => b,
        Some(_) => {
            issues.push(ConfigIssue::new("mock.enabled", "must be true or false"));
            return None;
        }
    };
    let listen = match map.remove("listen") {
        None => DEFAULT_MOCK_LISTEN.parse().ok()?,
        Some(Value::String(s)) => s.parse().ok()?, // reported by mock_listen
        Some(_) => {
            issues.push(ConfigIssue::new(
                "mock.listen",
                "must be a string like \"127.0.0.1:9100\"",
            ));
            return None;
        }
    };
    if !enabled {
        return None;
    }
    Some(MockSection {
        listen,
        settings: map,
    })
}

impl Config {
    /// `[alerting]` and `[templates]` compiled (routes and templates).
    pub fn compile_alerting(
        &self,
    ) -> Result<std::sync::Arc<crate::alertmanager::Alerting>, ConfigError> {
        let mut issues = Vec::new();
        let alerting = crate::alertmanager::config::compile(
            &self.alerting,
            &self.templates,
            &self.base_dir,
            &self.channels,
            &mut issues,
        );
        if issues.is_empty() {
            Ok(alerting)
        } else {
            Err(ConfigError {
                file: self.source.clone(),
                issues,
            })
        }
    }
}
