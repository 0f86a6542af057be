//! # imrelay-sdk
//!
//! Clients for the enterprise IM platforms used in China (DingTalk, Feishu/Lark,
//! WeCom, WeChat Official Accounts) and for plain signed webhooks. It renders one
//! platform-neutral [`Message`] to each platform's native types, signs and sends
//! the request, and classifies the answer into a typed [`Outcome`]. No database,
//! no server, no global state: usable on its own.
//!
//! # Layout
//! - [`message`]: the neutral message (text, markdown, link, card with buttons,
//!   news, image, template, mentions, raw native JSON).
//! - [`destination`]: the [`Destination`] trait, the [`Client`] that builds
//!   destinations from config, and the registry of destination types.
//! - [`platform`]: one folder per platform: payload types, rendering, signing,
//!   error-code table.
//! - [`outcome`]: [`Report`] and [`Outcome`], what an answer means.
//! - [`token`]: the access-token cache (refresh ahead, single-flight, invalidation).
//! - [`sign`]: HMAC and SHA signatures, checked against published vectors.
//! - [`crypto`]: callback decryption, encryption and signature checks (WeCom,
//!   WeChat, DingTalk, Feishu), checked against published vectors.
//! - [`limits`]: byte limits and the overflow rule (split or truncate).
//! - [`pace`]: pacing the parts of one message within the destination's quotas.
//! - [`http`]: the shared HTTP client and transport classification.
//! - [`endpoint`]: base URLs and the outbound-host rule.
//! - [`secret`]: [`Secret`], which never prints.
//!
//! The SDK sends once and reports. Retrying, rate limiting and queueing are the
//! caller's (the imrelay gateway's) business; the exceptions are the access
//! token, which is refreshed and the request retried once when the platform
//! rejects the token, and the parts of one split message, which [`deliver`]
//! paces within the destination's quotas.

// `Report` is the error half of send-path results: one per HTTP request, so boxing
// it would add an allocation to every failure for no gain.
#![allow(clippy::result_large_err)]

pub mod clock;
pub mod crypto;
pub mod destination;
pub mod endpoint;
pub mod error;
pub mod http;
pub mod lifecycle;
pub mod limits;
pub mod message;
pub mod outcome;
pub mod pace;
pub mod platform;
pub mod secret;
pub mod sign;
pub mod token;

pub use destination::{deliver, Client, ClientOptions, Destination, Payload, Quota};
pub use error::Error;
pub use lifecycle::{Action, CardClick, Lifecycle, SentPart, UrgentKind};
pub use message::{Body, Mentions, Message, Platform};
pub use outcome::{Code, Outcome, Report};
pub use secret::Secret;

// The README's Rust examples compile and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
