//! The vocabulary of configuration errors, shared by every section's owner:
//! an issue names the exact key at fault (`channels.alerts.destinations[1].secret`),
//! and durations are read the same way everywhere.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// One problem in a config file, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `channels.alerts.destinations[1].secret`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// A config that cannot be used: every problem found, each naming its key.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// The file, when the config came from one.
    pub file: Option<PathBuf>,
    pub issues: Vec<ConfigIssue>,
}

impl ConfigError {
    pub fn one(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            issues: vec![ConfigIssue::new(key, message)],
        }
    }

    pub fn with_file(mut self, file: Option<&Path>) -> Self {
        if self.file.is_none() {
            self.file = file.map(Path::to_path_buf);
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self
            .file
            .as_ref()
            .map(|p| format!("{}: ", p.display()))
            .unwrap_or_default();
        match self.issues.as_slice() {
            [one] => write!(f, "{prefix}{one}"),
            many => {
                write!(f, "{prefix}{} problems:", many.len())?;
                for i in many {
                    write!(f, "\n  - {i}")?;
                }
                Ok(())
            }
        }
    }
}

/// Builds dotted key paths for error messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(String);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(String::new())
    }

    /// `self.key`, quoting keys that are not bare TOML keys.
    pub fn key(&self, k: &str) -> Self {
        let bare = !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let seg = if bare {
            k.to_string()
        } else {
            format!("{k:?}")
        };
        if self.0.is_empty() {
            KeyPath(seg)
        } else {
            KeyPath(format!("{}.{seg}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        KeyPath(format!("{}[{i}]", self.0))
    }

    /// Join a path produced by `serde_path_to_error` (`a.b[1].c`, or `.` for none).
    pub fn join(&self, sub: &str) -> Self {
        if sub.is_empty() || sub == "." {
            self.clone()
        } else if self.0.is_empty() {
            KeyPath(sub.to_string())
        } else if sub.starts_with('[') {
            KeyPath(format!("{}{sub}", self.0))
        } else {
            KeyPath(format!("{}.{sub}", self.0))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Deserialize `value` as `T`, naming the exact key at fault under `at`.
pub fn typed<T: DeserializeOwned>(value: Value, at: &KeyPath) -> Result<T, ConfigIssue> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
        let mut key = at.join(&e.path().to_string());
        let msg = e.into_inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(rest) = msg.strip_prefix("missing field `") {
            if let Some(end) = rest.find('`') {
                key = key.key(&rest[..end]);
            }
        }
        ConfigIssue::new(key.to_string(), msg)
    })
}

/// Durations are written `"30s"`, `"5m"`, `"1h 30m"`, `"250ms"`, or a number of seconds.
pub mod duration {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(f64),
        Text(String),
    }

    /// Text that is no duration.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    #[error("`{text}` is not a duration ({why}); write e.g. \"30s\", \"5m\" or \"250ms\"")]
    pub struct NotADuration {
        pub text: String,
        why: String,
    }

    pub fn parse(text: &str) -> Result<Duration, NotADuration> {
        humantime::parse_duration(text.trim()).map_err(|e| NotADuration {
            text: text.to_string(),
            why: e.to_string(),
        })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(s) if (0.0..1e12).contains(&s) => Ok(Duration::from_secs_f64(s)),
            Raw::Secs(s) => Err(de::Error::custom(format!(
                "{s} is not a valid number of seconds"
            ))),
            Raw::Text(t) => parse(&t).map_err(de::Error::custom),
        }
    }

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}
