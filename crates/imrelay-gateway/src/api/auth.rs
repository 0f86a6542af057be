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
use super::AppState;
use crate::config::ApiKeyConfig;

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

/// Extractor: the authenticated caller, or a 401 problem.
pub struct Auth(pub Arc<Caller>);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state
            .live
            .runtime()
            .keys
            .authenticate(&parts.headers)
            .map(Auth)
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
