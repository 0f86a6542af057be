//! A click on a card button, from a verified card callback: who may press it,
//! what it does, and the few words the platform shows the clicker.

use imrelay_sdk::CardClick;

use super::act::{act, ActContext, ActError, Actor};
use super::card::{ack_line, ActionKind};
use crate::store::AckAction;
use crate::telemetry::events;

/// What the clicker is told (the platform's toast), and whether it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickAnswer {
    pub ok: bool,
    pub text: String,
}

impl ClickAnswer {
    fn refused(reason: &'static str, text: impl Into<String>) -> Self {
        events::click_refused(reason);
        ClickAnswer {
            ok: false,
            text: text.into(),
        }
    }
}

/// Act on `click`, made on `platform`. `allowed` lists who may press the
/// buttons of a message from `source` (empty: anyone who sees the card).
pub async fn on_click(
    cx: &ActContext<'_>,
    platform: &str,
    click: &CardClick,
    allowed: impl Fn(Option<&str>) -> Vec<String>,
) -> ClickAnswer {
    let view = match cx.store.get_message(&click.message_id).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            return ClickAnswer::refused(
                "unknown_message",
                "这条消息已不存在 This message is no longer known to imrelay",
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot read the clicked message");
            return ClickAnswer {
                ok: false,
                text: "暂时无法处理，请重试 Could not record it; try again".into(),
            };
        }
    };
    let who_may = allowed(view.source.as_deref());
    if !who_may.is_empty() && !who_may.contains(&click.user_id) {
        tracing::warn!(message_id = %view.id, user = %click.user_id, platform,
            "card click refused: the user is not on the route's allowed list");
        return ClickAnswer::refused(
            "not_allowed",
            "你无权处理这条告警 You may not act on this alert",
        );
    }
    let Some(kind) = ActionKind::of(&click.action) else {
        return ClickAnswer::refused(
            "unknown_action",
            format!("未知操作 Unknown action `{}`", click.action),
        );
    };
    // A fresh update token (WeCom's ResponseCode) is what the card update
    // this click queues must use.
    if let (Some(id), Some(token)) = (&click.platform_message_id, &click.update_token) {
        if let Err(e) = cx.store.set_update_token(id, token).await {
            tracing::warn!(error = %e, "cannot keep the card's new update token");
        }
    }
    let actor = Actor {
        user_id: click.user_id.clone(),
        user_name: None,
        source: platform.to_string(),
    };
    match act(cx, &view, kind, actor).await {
        Ok(done) if done.already => ClickAnswer {
            ok: true,
            text: match done.ack.action {
                AckAction::Resolve => format!("已由 {} 标记解决 Already resolved", done.ack.who()),
                _ => format!("已由 {} 认领 Already acknowledged", done.ack.who()),
            },
        },
        Ok(done) => ClickAnswer {
            ok: true,
            text: ack_line(&done.ack, &cx.settings.time_zone),
        },
        Err(ActError::Silence(why)) => {
            ClickAnswer::refused("silence_failed", format!("静默失败 Silence failed: {why}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a card click");
            ClickAnswer {
                ok: false,
                text: "暂时无法处理，请重试 Could not record it; try again".into(),
            }
        }
    }
}
