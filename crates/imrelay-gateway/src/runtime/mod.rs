//! What a config compiles into, and how it stays current.
//!
//! [`Runtime`] is everything the API and the dispatcher read per request or
//! per claim cycle: channels with their built destinations, callback apps,
//! API keys, Alertmanager routes and templates. [`Live`] holds one `Runtime`
//! behind one `ArcSwap`, so a reload replaces all of it in one step and a
//! reader never sees new keys with old channels. [`reload`] watches the file
//! and SIGHUP.

mod check;
mod live;
pub mod reload;

use std::sync::Arc;

pub use check::{check_file, Summary};
pub use live::{Live, ReloadStatus};

use crate::alertmanager::Alerting;
use crate::callbacks::CallbackSet;
use crate::channels::build::build_channel;
use crate::channels::ChannelSet;
use crate::config::{BuildContext, Config, ConfigError};
use crate::http::auth::ApiKeys;
use crate::lifecycle::LifecycleSettings;

/// The compiled, immutable state of one config.
#[derive(Debug, Default)]
pub struct Runtime {
    pub channels: Arc<ChannelSet>,
    pub callbacks: Arc<CallbackSet>,
    pub keys: Arc<ApiKeys>,
    /// Alertmanager routes and templates (`[alerting]`, `[templates]`).
    pub alerting: Arc<Alerting>,
    /// `[lifecycle]`: who may act on cards, names, the time zone of cards.
    pub lifecycle: Arc<LifecycleSettings>,
    /// `[sources]`: other systems' webhook receivers.
    pub sources: Arc<crate::sources::Sources>,
    /// `[compat]`: the old tools' endpoints.
    pub compat: Arc<crate::compat::CompatConfig>,
    /// `[[maintenance]]`: the windows that hold messages.
    pub maintenance: Arc<crate::silences::maintenance::Windows>,
    /// `[[people]]`, `[[schedules]]`, `[[escalation_policies]]`.
    pub oncall: Arc<crate::oncall::OnCall>,
    /// `[console]`: who may log in to the web console.
    pub console: Arc<crate::console::Users>,
    /// The channels' `group`: how their messages are grouped.
    pub groups: Arc<crate::grouping::Groups>,
}

impl Runtime {
    /// Build every destination, callback app, key and template of `cfg`; all
    /// problems are reported at once, naming the file.
    pub fn build(cfg: &Config, ctx: &BuildContext) -> Result<Runtime, ConfigError> {
        let (channels, callbacks) = build_channels_and_callbacks(cfg, ctx).map_err(|mut e| {
            e.file = cfg.source.clone();
            e
        })?;
        let alerting = cfg.compile_alerting()?;
        Ok(Runtime {
            channels: Arc::new(channels),
            callbacks: Arc::new(callbacks),
            keys: Arc::new(ApiKeys::from_config(&cfg.api_keys)),
            // Validated when the config loaded.
            sources: Arc::new(crate::sources::config::compile(
                &cfg.sources,
                &alerting.templates,
                &cfg.channels,
                &mut Vec::new(),
            )),
            alerting,
            // Validated when the config loaded.
            lifecycle: Arc::new(cfg.lifecycle.compile(&mut Vec::new())),
            compat: Arc::new(cfg.compat.open_warned()),
            // Validated when the config loaded.
            maintenance: Arc::new(crate::silences::maintenance::Windows::compile(
                &cfg.maintenance,
                &mut Vec::new(),
            )),
            // Validated when the config loaded.
            oncall: Arc::new(cfg.compile_oncall(&mut Vec::new())),
            console: Arc::new(crate::console::Users::compile(&cfg.console)),
            // Validated when the config loaded.
            groups: Arc::new(crate::grouping::Groups::compile(
                &cfg.channels,
                &mut Vec::new(),
            )),
        })
    }
}

/// The channels of `cfg` and its callback apps, each app with its forward
/// channel.
pub fn build_channels_and_callbacks(
    cfg: &Config,
    ctx: &BuildContext,
) -> Result<(ChannelSet, CallbackSet), ConfigError> {
    let mut issues = Vec::new();
    let mut out: Vec<_> = cfg
        .channels
        .iter()
        .map(|(name, ch)| build_channel(name, ch, &cfg.outbound, ctx, &mut issues))
        .collect();
    let callbacks =
        crate::callbacks::config::build(&cfg.callbacks, &cfg.outbound, ctx, &mut out, &mut issues);
    if issues.is_empty() {
        Ok((ChannelSet::new(out), callbacks))
    } else {
        Err(ConfigError { file: None, issues })
    }
}

/// The channels of `cfg` alone (tests, `config check`).
pub fn build_channels(cfg: &Config, ctx: &BuildContext) -> Result<ChannelSet, ConfigError> {
    build_channels_and_callbacks(cfg, ctx).map(|(channels, _)| channels)
}
