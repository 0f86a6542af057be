//! Bearer API keys, each allowed a set of channels.
//!
//! 401 means "who are you?" (no key, malformed header, unknown key); 403 means
//! "you may not" (a valid key used on a channel it is not given). Keys are kept
//! only as SHA-256 digests and compared in constant time.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::ApiContext;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::channels::config::{known, ChannelConfig};
use crate::domain::config::{ConfigIssue, KeyPath};

/// What a key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every channel (`channels = ["*"]`).
    All,
    Channels(BTreeSet<String>),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's configured name (never the key).
    pub name: String,
    pub scope: Scope,
}

impl Caller {
    pub fn may_use(&self, channel: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Channels(c) => c.contains(channel),
        }
    }

    /// 403 unless the key may use `channel`.
    pub fn require(&self, channel: &str) -> Result<(), Problem> {
        if self.may_use(channel) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "API key `{}` may not use channel `{channel}`; add it to the key's `channels` in the config",
                self.name
            )))
        }
    }

    /// The only channel this key may use, if it has exactly one.
    pub fn sole_channel(&self) -> Option<&str> {
        match &self.scope {
            Scope::Channels(c) if c.len() == 1 => c.iter().next().map(String::as_str),
            _ => None,
        }
    }
}

struct KeyEntry {
    digest: [u8; 32],
    caller: Arc<Caller>,
}

/// The configured keys.
#[derive(Default)]
pub struct ApiKeys {
    entries: Vec<KeyEntry>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| &e.caller.name))
            .finish()
    }
}

fn digest(s: &[u8]) -> [u8; 32] {
    Sha256::digest(s).into()
}

impl ApiKeys {
    pub fn from_config(keys: &[ApiKeyConfig]) -> Self {
        ApiKeys {
            entries: keys
                .iter()
                .map(|k| KeyEntry {
                    digest: digest(k.key.as_bytes()),
                    caller: Arc::new(Caller {
                        name: k.name.clone(),
                        scope: if k.channels.iter().any(|c| c == "*") {
                            Scope::All
                        } else {
                            Scope::Channels(k.channels.iter().cloned().collect())
                        },
                    }),
                })
                .collect(),
        }
    }

    /// Authenticate the `Authorization` header.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, Problem> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let value = values.next().ok_or_else(|| {
            Problem::unauthorized("missing `Authorization: Bearer <API key>` header")
                .field("Authorization")
        })?;
        if values.next().is_some() {
            return Err(
                Problem::unauthorized("send one `Authorization` header, not several")
                    .field("Authorization"),
            );
        }
        let value = value.to_str().map_err(|_| {
            Problem::unauthorized("the `Authorization` header is not ASCII").field("Authorization")
        })?;
        let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(
                Problem::unauthorized("use `Authorization: Bearer <API key>`")
                    .field("Authorization"),
            );
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(Problem::unauthorized("the bearer token is empty").field("Authorization"));
        }
        let d = digest(token.as_bytes());
        // Compare against every key, so timing does not reveal which one matched.
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&d)) {
                found = Some(e.caller.clone());
            }
        }
        found.ok_or_else(|| Problem::unauthorized("unknown API key").field("Authorization"))
    }
}

impl ApiKeys {
    /// The caller of the key whose SHA-256 is `d` (a console session made
    /// with a key keeps only its digest), compared like [`ApiKeys::authenticate`].
    pub fn by_digest(&self, d: &[u8; 32]) -> Option<Arc<Caller>> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(d)) {
                found = Some(e.caller.clone());
            }
        }
        found
    }
}

/// Extractor: the authenticated caller, or a 401 problem.
pub struct Auth(pub Arc<Caller>);

impl<S: ApiContext> FromRequestParts<S> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        state.api_keys().authenticate(&parts.headers).map(Auth)
    }
}

/// `[[api_keys]]`: a bearer key and the channels it may use.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// A label for logs (the key itself is never logged).
    pub name: String,
    /// The bearer token (use `${ENV}` or `key_file`).
    #[serde(skip_serializing)]
    pub key: String,
    /// Channels this key may send to and read; `["*"]` for all.
    pub channels: Vec<String>,
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("name", &self.name)
            .field("key", &"***")
            .field("channels", &self.channels)
            .finish()
    }
}

/// Check `[[api_keys]]` against the configured channels.
pub fn validate_api_keys(
    keys: &[ApiKeyConfig],
    channels: &BTreeMap<String, ChannelConfig>,
    issues: &mut Vec<ConfigIssue>,
) {
    if keys.is_empty() {
        issues.push(ConfigIssue::new(
            "api_keys",
            "no API key is defined, so the API would refuse every request; add [[api_keys]] with name, key and channels",
        ));
    }
    let mut seen_names = BTreeSet::new();
    let mut seen_keys = BTreeSet::new();
    for (i, k) in keys.iter().enumerate() {
        let at = KeyPath::root().key("api_keys").index(i);
        if k.name.trim().is_empty() {
            issues.push(ConfigIssue::new(
                at.key("name").to_string(),
                "must not be empty",
            ));
        } else if !seen_names.insert(k.name.clone()) {
            issues.push(ConfigIssue::new(
                at.key("name").to_string(),
                format!("`{}` is used by another key; names must be unique", k.name),
            ));
        }
        if k.key.len() < 16 {
            issues.push(ConfigIssue::new(
                at.key("key").to_string(),
                "must be at least 16 characters (e.g. `openssl rand -hex 24`)",
            ));
        } else if !seen_keys.insert(k.key.clone()) {
            issues.push(ConfigIssue::new(
                at.key("key").to_string(),
                "is the same as another key's",
            ));
        }
        if k.key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            issues.push(ConfigIssue::new(
                at.key("key").to_string(),
                "must not contain whitespace or control characters",
            ));
        }
        if k.channels.is_empty() {
            issues.push(ConfigIssue::new(
                at.key("channels").to_string(),
                "lists no channel; name the channels this key may use, or [\"*\"] for all",
            ));
        }
        for (j, c) in k.channels.iter().enumerate() {
            if c != "*" && !channels.contains_key(c) {
                issues.push(ConfigIssue::new(
                    at.key("channels").index(j).to_string(),
                    format!("no channel `{c}` is defined{}", known(channels)),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ApiKeys {
        ApiKeys::from_config(&[
            ApiKeyConfig {
                name: "ops".into(),
                key: "ops-key-0123456789abcdef".into(),
                channels: vec!["alerts".into()],
            },
            ApiKeyConfig {
                name: "admin".into(),
                key: "admin-key-0123456789abcdef".into(),
                channels: vec!["*".into()],
            },
        ])
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_keys_authenticate_and_scope() {
        let k = keys();
        let ops = k
            .authenticate(&headers("Bearer ops-key-0123456789abcdef"))
            .unwrap();
        assert_eq!(ops.name, "ops");
        assert!(ops.may_use("alerts") && !ops.may_use("deploys"));
        assert_eq!(ops.require("deploys").unwrap_err().status.as_u16(), 403);
        assert_eq!(ops.sole_channel(), Some("alerts"));
        let admin = k
            .authenticate(&headers("bearer  admin-key-0123456789abcdef "))
            .unwrap();
        assert!(admin.may_use("anything"));
        for bad in [
            "Bearer nope",
            "Basic b3BzOmtleQ==",
            "Bearer",
            "ops-key-0123456789abcdef",
        ] {
            assert_eq!(
                k.authenticate(&headers(bad)).unwrap_err().status.as_u16(),
                401,
                "{bad}"
            );
        }
        assert_eq!(
            k.authenticate(&HeaderMap::new())
                .unwrap_err()
                .status
                .as_u16(),
            401
        );
    }

    #[test]
    fn debug_never_shows_keys() {
        let k = keys();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("0123456789"), "{dbg}");
    }
}
