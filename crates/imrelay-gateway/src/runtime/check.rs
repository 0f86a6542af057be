//! `imrelay config check`: load and build everything, start nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::build_channels;
use crate::config::{BuildContext, Config, ConfigError};

/// What `imrelay config check` prints for a valid file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub listen: SocketAddr,
    pub store: PathBuf,
    pub mock: Option<SocketAddr>,
    pub api_keys: usize,
    /// Channel name -> destination ids.
    pub channels: BTreeMap<String, Vec<String>>,
    /// Settings that work but are unsafe: the key, then why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "config OK")?;
        writeln!(f, "  listen: {}", self.listen)?;
        writeln!(f, "  store: {}", self.store.display())?;
        if let Some(m) = self.mock {
            writeln!(f, "  mock: {m} (in-process mock platform server)")?;
        }
        writeln!(f, "  api keys: {}", self.api_keys)?;
        writeln!(f, "  channels: {}", self.channels.len())?;
        for (name, dests) in &self.channels {
            writeln!(f, "    {name}: {}", dests.join(", "))?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        Ok(())
    }
}

/// Validate a config file completely (including building every destination)
/// without starting anything: `imrelay config check FILE`.
pub fn check_file(path: impl AsRef<Path>) -> Result<Summary, ConfigError> {
    let path = path.as_ref();
    let cfg = Config::load(path)?;
    let ctx = BuildContext::new(None).with_pool_max_idle_per_host(cfg.dispatch.concurrency);
    let set = build_channels(&cfg, &ctx).map_err(|e| e.with_file(Some(path)))?;
    Ok(Summary {
        listen: cfg.server.listen,
        store: match &cfg.store.url {
            Some(u) => PathBuf::from(crate::store::postgres::redact_url(u)),
            None => cfg.store.path.clone(),
        },
        mock: cfg.mock.as_ref().map(|m| m.listen),
        api_keys: cfg.api_keys.len(),
        channels: set
            .channels
            .iter()
            .map(|(name, ch)| {
                (
                    name.to_string(),
                    ch.destinations.iter().map(|d| d.key.clone()).collect(),
                )
            })
            .collect(),
        warnings: crate::callbacks::config::warnings(&cfg.callbacks)
            .into_iter()
            .map(|w| format!("`{}` {}", w.key, w.message))
            .collect(),
    })
}
