//! One folder per platform. Adding a platform means adding a folder that
//! implements [`crate::Destination`] and one line to [`REGISTRY`].

pub mod webhook;

use crate::destination::Registration;

/// Every destination type, by config `type`.
pub static REGISTRY: &[Registration] = &[
    webhook::REGISTRATION,
];
