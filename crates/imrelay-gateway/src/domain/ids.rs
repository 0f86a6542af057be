//! The identities that flow through the gateway: message and delivery ids,
//! channel names and delivery targets.
//!
//! Each is a newtype so that a delivery id cannot be passed where a count is
//! meant, nor a channel name where a target is. On the wire and in the
//! database they stay what they always were: text and integers
//! (`#[serde(transparent)]`, `#[sqlx(transparent)]`, schema as the inner type).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What both text identities offer: conversions from and to `String`, and
/// reading as `&str` (logs, SDK fields, lookups by text) — only the other
/// direction needs the explicit `From`.
macro_rules! text_id {
    ($name:ident) => {
        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// A message id (UUID v7 as text, so ids sort by creation time).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[schema(value_type = String)]
pub struct MessageId(String);

impl MessageId {
    /// A fresh id: UUID v7.
    pub fn new_v7() -> Self {
        MessageId(uuid::Uuid::now_v7().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_id!(MessageId);

/// A delivery id (the row id of `deliveries`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[schema(value_type = i64)]
pub struct DeliveryId(i64);

impl DeliveryId {
    pub const fn new(id: i64) -> Self {
        DeliveryId(id)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for DeliveryId {
    fn from(id: i64) -> Self {
        DeliveryId(id)
    }
}

impl From<DeliveryId> for i64 {
    fn from(id: DeliveryId) -> Self {
        id.0
    }
}

impl FromStr for DeliveryId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(DeliveryId)
    }
}

impl PartialEq<i64> for DeliveryId {
    fn eq(&self, other: &i64) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A channel's name, as producers address it (`POST /v1/messages` `channel`).
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    sqlx::Type,
    utoipa::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[schema(value_type = String)]
pub struct ChannelName(String);

impl ChannelName {
    pub fn new(name: impl Into<String>) -> Self {
        ChannelName(name.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

text_id!(ChannelName);

/// Where one delivery goes: a channel and one of its destinations (or the
/// pool as a whole), as the text `"{channel}/{key}"` it is stored and shown
/// as, valid by construction: made from its parts or parsed.
///
/// Keys never hold a `/` (they are config keys), channel names may: the text
/// is split at its last `/`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(transparent)]
#[sqlx(transparent)]
#[schema(value_type = String, example = "ops/robot-1")]
pub struct Target(String);

impl Target {
    pub fn new(channel: impl AsRef<str>, key: impl AsRef<str>) -> Self {
        Target(format!("{}/{}", channel.as_ref(), key.as_ref()))
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        self.split().0
    }

    /// The destination's key (or the pool's).
    pub fn key(&self) -> &str {
        self.split().1
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn split(&self) -> (&str, &str) {
        self.0.rsplit_once('/').expect("a target holds a `/`")
    }
}

impl std::ops::Deref for Target {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Target {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Target {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Target {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Target {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Target {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Target> for String {
    fn eq(&self, other: &Target) -> bool {
        *self == other.0
    }
}

impl From<Target> for String {
    fn from(t: Target) -> String {
        t.0
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Text that is not a `"{channel}/{key}"` target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed target {text:?}: expected \"{{channel}}/{{key}}\" with both parts non-empty")]
pub struct MalformedTarget {
    pub text: String,
}

impl FromStr for Target {
    type Err = MalformedTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once('/') {
            Some((channel, key)) if !channel.is_empty() && !key.is_empty() => {
                Ok(Target(s.to_string()))
            }
            _ => Err(MalformedTarget {
                text: s.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_round_trips_through_its_text() {
        for text in ["ops/robot-1", "team/a/pool", "x/y"] {
            let t: Target = text.parse().unwrap();
            assert_eq!(t.to_string(), text);
        }
        let t: Target = "team/a/pool".parse().unwrap();
        assert_eq!(t.channel(), "team/a");
        assert_eq!(t.key(), "pool");
        assert_eq!(Target::new("ops", "r1").to_string(), "ops/r1");
    }

    #[test]
    fn a_malformed_target_is_refused_with_its_text() {
        for text in ["", "no-slash", "/key", "channel/", "/"] {
            let err = text.parse::<Target>().unwrap_err();
            assert_eq!(err.text, text);
            assert!(err.to_string().contains("malformed target"), "{err}");
        }
    }

    #[test]
    fn ids_are_transparent_on_the_wire() {
        let id = MessageId::from("0190-abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0190-abc\"");
        let back: MessageId = serde_json::from_str("\"0190-abc\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(id.to_string(), "0190-abc");

        let d = DeliveryId::new(42);
        assert_eq!(serde_json::to_string(&d).unwrap(), "42");
        assert_eq!(serde_json::from_str::<DeliveryId>("42").unwrap(), d);
        assert_eq!(d.to_string(), "42");

        let c = ChannelName::from("ops");
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"ops\"");
        assert_eq!(c.to_string(), "ops");
    }
}
