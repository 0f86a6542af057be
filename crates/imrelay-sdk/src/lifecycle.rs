//! What can happen to a message after it is sent: an update in place, a
//! recall, an urgent push about it, and the buttons people click on it.
//!
//! A destination says what its platform allows ([`Lifecycle`]); the caller
//! keeps what the platform answered for each delivered part ([`SentPart`]) and
//! hands it back to [`Destination::update`](crate::Destination::update) or
//! [`Destination::recall`](crate::Destination::recall). A click on an
//! [`Action`] button comes back as the platform's card callback, which the
//! platform module turns into a [`CardClick`].

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::destination::Quota;

/// Who has read a sent message (platforms with read receipts), and who has
/// not yet (where the platform lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadStatus {
    pub read: Vec<String>,
    pub unread: Vec<String>,
}

/// An operation on a message already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Update,
    Recall,
    /// An urgent push about a sent message ([`UrgentKind`]).
    Urgent,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Update => "update",
            Operation::Recall => "recall",
            Operation::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a destination changes a message it already sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum UpdateMode {
    /// The platform edits the sent message in place, within `window` of the
    /// send when it has one.
    InPlace {
        #[serde(default, with = "opt_secs", skip_serializing_if = "Option::is_none")]
        window: Option<Duration>,
    },
    /// The platform cannot edit it: an update goes out as a new message.
    NewMessage,
}

/// Whether and for how long a destination can take a sent message back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RecallMode {
    /// Within `window` of the send.
    Within {
        #[serde(with = "secs")]
        window: Duration,
    },
    /// Never; `reason` says why (custom robots have no recall API).
    Unsupported { reason: String },
}

/// How the platform itself pushes an urgent notification about a message
/// already sent (Feishu 加急, DingTalk DING).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgentKind {
    /// In the app: a pop-up and sound that stays until read. Free.
    App,
    /// In the app and by SMS. Draws on the tenant's paid quota.
    Sms,
    /// In the app and by a phone call. Draws on the tenant's paid quota.
    Phone,
}

impl UrgentKind {
    pub const ALL: [UrgentKind; 3] = [UrgentKind::App, UrgentKind::Sms, UrgentKind::Phone];

    pub fn as_str(self) -> &'static str {
        match self {
            UrgentKind::App => "app",
            UrgentKind::Sms => "sms",
            UrgentKind::Phone => "phone",
        }
    }

    /// The kind named `s` (`app`, `sms`, `phone`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for UrgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an urgent push points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UrgentScope {
    /// At one sent message: once per [`SentPart`] (Feishu), and only to
    /// users who can see that message.
    #[default]
    SentMessage,
    /// A message of its own that carries the text (DingTalk DING): one call
    /// per push, whatever was sent before.
    Users,
}

/// What a destination's platform allows after a send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub update: UpdateMode,
    pub recall: RecallMode,
    /// Whether its messages can carry [`Action`] buttons whose clicks come
    /// back as card callbacks.
    pub card_actions: bool,
    /// The platform's limits on updates, when they differ from sends'
    /// (Feishu: 5 updates a second per message).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub update_limits: Vec<Quota>,
    /// The urgent pushes the platform makes for this destination; none by
    /// default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urgent: Vec<UrgentKind>,
    /// Where those pushes point.
    #[serde(default)]
    pub urgent_scope: UrgentScope,
    /// Why a kind is missing from `urgent` (the platform has no such API,
    /// or this destination type cannot call it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgent_unsupported: Option<String>,
    /// The platform's limits on urgent pushes, when they differ from sends'.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urgent_limits: Vec<Quota>,
    /// The most users one push of a kind may name (DingTalk: 200 in the
    /// app, 20 by SMS or phone); a caller splits larger pushes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urgent_max_users: Vec<(UrgentKind, usize)>,
}

impl Lifecycle {
    /// Send and forget: the default for destinations whose platform has no
    /// update, recall or callback API.
    pub fn send_only(reason: impl Into<String>) -> Self {
        Lifecycle {
            update: UpdateMode::NewMessage,
            recall: RecallMode::Unsupported {
                reason: reason.into(),
            },
            card_actions: false,
            update_limits: Vec::new(),
            urgent: Vec::new(),
            urgent_scope: UrgentScope::SentMessage,
            urgent_unsupported: None,
            urgent_limits: Vec::new(),
            urgent_max_users: Vec::new(),
        }
    }

    /// The most users one push of `kind` may name, when the platform says.
    pub fn urgent_max_users(&self, kind: UrgentKind) -> Option<usize> {
        self.urgent_max_users
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
    }

    /// Whether the destination pushes `kind` urgently; `Err` says why not.
    pub fn can_urgent(&self, kind: UrgentKind) -> Result<(), String> {
        if self.urgent.contains(&kind) {
            return Ok(());
        }
        Err(match (&self.urgent_unsupported, self.urgent.is_empty()) {
            (Some(why), _) => why.clone(),
            (None, true) => "the platform has no urgent push for a sent message".into(),
            (None, false) => format!(
                "the platform pushes urgently by {} only, not by {kind}",
                self.urgent
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Whether a recall of a part sent at `sent_at_ms` is still allowed at
    /// `now_ms`; `Err` says why not.
    pub fn can_recall(&self, sent_at_ms: i64, now_ms: i64) -> Result<(), String> {
        match &self.recall {
            RecallMode::Unsupported { reason } => Err(reason.clone()),
            RecallMode::Within { window } => {
                let age = Duration::from_millis(now_ms.saturating_sub(sent_at_ms).max(0) as u64);
                if age > *window {
                    Err(format!(
                        "the platform recalls messages only within {} of sending; this one is {} old",
                        humanize(*window),
                        humanize(age)
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether an update of a part sent at `sent_at_ms` can edit it in place
    /// at `now_ms` (otherwise it goes out as a new message).
    pub fn updates_in_place(&self, sent_at_ms: i64, now_ms: i64) -> bool {
        match &self.update {
            UpdateMode::NewMessage => false,
            UpdateMode::InPlace { window: None } => true,
            UpdateMode::InPlace { window: Some(w) } => {
                Duration::from_millis(now_ms.saturating_sub(sent_at_ms).max(0) as u64) <= *w
            }
        }
    }
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86_400 && s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h{}m", s / 3_600, s % 3_600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// One delivered part of a message, as the caller keeps it to update or
/// recall that part later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentPart {
    /// The platform's id for the part (Feishu `message_id`, WeCom `msgid`,
    /// DingTalk `processQueryKey`, `task_id` or card `outTrackId`).
    pub platform_message_id: String,
    /// [`Report::update_token`](crate::Report::update_token) of the send, or
    /// the newest one a card callback handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_token: Option<String>,
    /// When the platform took it (ms since the Unix epoch), for windows.
    pub sent_at_ms: i64,
    /// The recipients this part addressed (app destinations), as rendered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
}

/// How a button is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStyle {
    #[default]
    Default,
    Primary,
    Danger,
}

/// A button that calls back rather than opening a URL. Its click reaches the
/// app's callback URL as the platform's card callback, carrying the message's
/// [`id`](crate::Message::id) and this action's `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// What the click means to the receiver (`ack`, `silence:1h`, `resolve`).
    pub id: String,
    /// The button's label.
    pub text: String,
    #[serde(default, skip_serializing_if = "is_default_style")]
    pub style: ActionStyle,
}

fn is_default_style(s: &ActionStyle) -> bool {
    *s == ActionStyle::Default
}

/// The key under which imrelay's rendering puts the message id and action id
/// in a button's callback value, so a click can be traced back.
pub const ACTION_VALUE_MESSAGE: &str = "imrelay_message";
/// See [`ACTION_VALUE_MESSAGE`].
pub const ACTION_VALUE_ACTION: &str = "imrelay_action";

/// A click on an [`Action`] button, read from a verified, decrypted card
/// callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardClick {
    /// The [`Message::id`](crate::Message::id) the card was sent with.
    pub message_id: String,
    /// The [`Action::id`] clicked.
    pub action: String,
    /// Who clicked: the platform's user id (Feishu `open_id`, DingTalk
    /// `userId`, WeCom `FromUserName`).
    pub user_id: String,
    /// The platform's id of the clicked message, when the callback names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_message_id: Option<String>,
    /// A fresh [`SentPart::update_token`] the callback handed out (WeCom's
    /// `ResponseCode`), to keep for the next update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_token: Option<String>,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_secs_f64(f64::deserialize(d)?.max(0.0)))
    }
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(|v| Duration::from_secs_f64(v.max(0.0))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_window_is_inclusive_and_explains_refusals() {
        let l = Lifecycle {
            recall: RecallMode::Within {
                window: Duration::from_secs(86_400),
            },
            ..Lifecycle::send_only("")
        };
        assert!(l.can_recall(0, 86_400_000).is_ok());
        let err = l.can_recall(0, 86_400_001).unwrap_err();
        assert!(err.contains("within 1d"), "{err}");
        let robot = Lifecycle::send_only("custom robots have no recall API");
        assert_eq!(
            robot.can_recall(0, 0).unwrap_err(),
            "custom robots have no recall API"
        );
    }

    #[test]
    fn urgent_kinds_are_named_in_snake_case_and_refusals_say_why() {
        assert_eq!(
            serde_json::to_string(&UrgentKind::ALL).unwrap(),
            r#"["app","sms","phone"]"#
        );
        for k in UrgentKind::ALL {
            assert_eq!(UrgentKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::from_value::<UrgentKind>(serde_json::json!(k.as_str())).unwrap(),
                k
            );
        }
        assert_eq!(UrgentKind::parse("voice"), None);
        let none = Lifecycle::send_only("");
        assert!(none
            .can_urgent(UrgentKind::App)
            .unwrap_err()
            .contains("no urgent push"));
        let app_only = Lifecycle {
            urgent: vec![UrgentKind::App],
            ..Lifecycle::send_only("")
        };
        assert!(app_only.can_urgent(UrgentKind::App).is_ok());
        let err = app_only.can_urgent(UrgentKind::Phone).unwrap_err();
        assert!(err.contains("app only, not by phone"), "{err}");
        let said = Lifecycle {
            urgent_unsupported: Some("WeCom has none".into()),
            ..Lifecycle::send_only("")
        };
        assert_eq!(
            said.can_urgent(UrgentKind::Sms).unwrap_err(),
            "WeCom has none"
        );
    }

    #[test]
    fn updates_fall_back_to_a_new_message_past_the_window() {
        let l = Lifecycle {
            update: UpdateMode::InPlace {
                window: Some(Duration::from_secs(60)),
            },
            ..Lifecycle::send_only("")
        };
        assert!(l.updates_in_place(0, 60_000));
        assert!(!l.updates_in_place(0, 60_001));
        assert!(!Lifecycle::send_only("").updates_in_place(0, 0));
    }
}
