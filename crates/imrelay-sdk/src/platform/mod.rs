//! One folder per platform. Adding a platform means adding a folder that
//! implements [`crate::Destination`] and exports its `REGISTRATIONS`, plus one
//! line in [`REGISTRY`].

pub mod aliyun;
pub mod dingtalk;
pub mod email;
mod errcode;
pub mod feishu;
mod phone;
pub mod tencent;
#[cfg(test)]
mod testing;
pub mod webhook;
pub mod wechat;
pub mod wecom;

use crate::destination::Registration;
use crate::message::Platform;
use crate::Error;

/// Every destination type, by platform.
pub static REGISTRY: &[&[Registration]] = &[
    dingtalk::REGISTRATIONS,
    feishu::REGISTRATIONS,
    wecom::REGISTRATIONS,
    wechat::REGISTRATIONS,
    webhook::REGISTRATIONS,
    email::REGISTRATIONS,
    aliyun::REGISTRATIONS,
    tencent::REGISTRATIONS,
];

/// Refuse a raw payload marked for another platform than `own`.
pub(crate) fn check_raw(
    marked: Option<Platform>,
    own: Platform,
    kind: &'static str,
) -> Result<(), Error> {
    match marked {
        Some(p) if p != own => Err(Error::unsupported(
            kind,
            "raw",
            format!("the raw payload is marked for {p}; send it to a {p} destination"),
        )),
        _ => Ok(()),
    }
}
