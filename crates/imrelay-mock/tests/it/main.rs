//! The crate's integration tests, one binary (it links once): each module
//! is what was a test file; the support modules are shared.

mod callback;
mod common;
mod dingtalk;
mod dingtalk_lifecycle;
mod feishu;
mod lifecycle_feishu;
mod lifecycle_wecom;
mod sms;
mod urgent;
mod wechat;
mod wecom;
