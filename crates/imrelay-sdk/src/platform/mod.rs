//! One folder per platform. Adding a platform means adding a folder that
//! implements [`crate::Destination`] and exports its `REGISTRATIONS`, plus one
//! line in [`REGISTRY`].

pub mod dingtalk;
pub mod feishu;
pub mod webhook;
pub mod wechat;
pub mod wecom;

use crate::destination::Registration;

/// Every destination type, by platform.
pub static REGISTRY: &[&[Registration]] = &[
    dingtalk::REGISTRATIONS,
    feishu::REGISTRATIONS,
    wecom::REGISTRATIONS,
    wechat::REGISTRATIONS,
    webhook::REGISTRATIONS,
];
