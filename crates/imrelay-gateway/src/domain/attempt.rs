//! What one request to a platform came to, as the store records it.
//!
//! The labels are those of [`imrelay_sdk::Outcome::label`], plus the
//! gateway's own `out_of_order` mark, stored as that text (`attempts.outcome`,
//! `deliveries.last_outcome`); unknown text read back is an error, never a
//! silent default.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The outcome of one recorded attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Delivered,
    Retry,
    RefreshToken,
    RateLimited,
    Permanent,
    /// Not a request: the delivery went out after later ones (ordered
    /// channels), recorded in its history.
    OutOfOrder,
    /// Not a request: an update that gave way to a newer one of its thread.
    Superseded,
}

impl AttemptOutcome {
    /// Every outcome, in declaration order.
    pub const ALL: [AttemptOutcome; 7] = [
        AttemptOutcome::Delivered,
        AttemptOutcome::Retry,
        AttemptOutcome::RefreshToken,
        AttemptOutcome::RateLimited,
        AttemptOutcome::Permanent,
        AttemptOutcome::OutOfOrder,
        AttemptOutcome::Superseded,
    ];

    /// The stored label (the SDK's [`imrelay_sdk::Outcome::label`]).
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Delivered => "delivered",
            AttemptOutcome::Retry => "retry",
            AttemptOutcome::RefreshToken => "refresh_token",
            AttemptOutcome::RateLimited => "rate_limited",
            AttemptOutcome::Permanent => "permanent",
            AttemptOutcome::OutOfOrder => "out_of_order",
            AttemptOutcome::Superseded => "superseded",
        }
    }
}

impl From<&imrelay_sdk::Outcome> for AttemptOutcome {
    fn from(o: &imrelay_sdk::Outcome) -> Self {
        use imrelay_sdk::Outcome;
        match o {
            Outcome::Delivered => AttemptOutcome::Delivered,
            Outcome::Retry { .. } => AttemptOutcome::Retry,
            Outcome::RefreshToken => AttemptOutcome::RefreshToken,
            Outcome::RateLimited { .. } => AttemptOutcome::RateLimited,
            Outcome::Permanent => AttemptOutcome::Permanent,
        }
    }
}

/// Text that is no [`AttemptOutcome`] label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attempt outcome `{0}`")]
pub struct UnknownOutcome(pub String);

impl FromStr for AttemptOutcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AttemptOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| UnknownOutcome(s.to_string()))
    }
}

/// Compares with a stored label (`outcome == "delivered"`, in tests).
impl PartialEq<&str> for AttemptOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imrelay_sdk::Outcome;
    use std::time::Duration;

    #[test]
    fn labels_are_the_sdk_labels_and_round_trip() {
        let sdk = [
            Outcome::Delivered,
            Outcome::Retry {
                after: Some(Duration::from_secs(1)),
            },
            Outcome::RefreshToken,
            Outcome::RateLimited {
                wait: Duration::from_secs(2),
            },
            Outcome::Permanent,
        ];
        for o in &sdk {
            let a = AttemptOutcome::from(o);
            assert_eq!(a.as_str(), o.label());
            assert_eq!(a.as_str().parse::<AttemptOutcome>(), Ok(a));
            assert_eq!(
                serde_json::to_value(a).unwrap(),
                serde_json::Value::String(o.label().into())
            );
        }
    }

    #[test]
    fn unknown_text_is_an_error() {
        assert_eq!(
            "timeout".parse::<AttemptOutcome>(),
            Err(UnknownOutcome("timeout".into()))
        );
        assert!("".parse::<AttemptOutcome>().is_err());
        assert!("Delivered".parse::<AttemptOutcome>().is_err());
        assert!(AttemptOutcome::Permanent == "permanent");
        assert!(AttemptOutcome::Permanent != "retry");
    }
}
