//! One file per platform, each serving that platform's real paths.

pub mod dingtalk;
pub mod feishu;
pub mod wechat;
pub mod wecom;

use std::sync::Arc;

use axum::Router;

use crate::state::MockState;

/// Every platform's routes on one router (their paths do not collide).
pub fn routes() -> Router<Arc<MockState>> {
    Router::new()
        .merge(dingtalk::routes())
        .merge(feishu::routes())
        .merge(wecom::routes())
        .merge(wechat::routes())
}
