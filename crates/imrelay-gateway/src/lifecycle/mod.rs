//! The life of a message after it is sent: one card per thread that later
//! messages update in place, recalls, and acknowledgements from the chat or
//! the API.
//!
//! - A message with a `thread` key (the Alertmanager bridge uses the group
//!   key) joins that thread on its channel. The first is sent; each later one
//!   updates the first one's card where the destination can (Feishu app,
//!   DingTalk app cards, WeCom app cards) and is otherwise sent as a new
//!   message that names the first (robots). An update never overwrites a
//!   newer one: a stale one gives way (`superseded` in its history).
//! - `DELETE /v1/messages/{id}` queues a recall of every part delivered,
//!   where the platform has one and its window is open; the answer says per
//!   destination what will happen.
//! - A click on a card button (`ack`, `silence:1h`, `resolve`) arrives as the
//!   platform's card callback, verified by [`crate::callbacks`]; it is
//!   recorded on the thread with who and when, the card is updated for
//!   everyone (a queued update, durable like a send), and a silence is
//!   created in the Alertmanager that sent the alert. `POST
//!   /v1/messages/{id}/ack` does the same over the API.
//!
//! - `POST /v1/messages/{id}/urgent` queues an urgent push about it where
//!   the platform has one (Feishu 加急, DingTalk DING; [`urgent`]).
//!
//! Updates, recalls and urgent pushes are messages in the queue like any
//! other (a recall is of kind `recall`, a push `urgent_app|sms|phone`), so retries, rate limits, leases and the dead-letter
//! queue apply, and a crash or a second instance neither skips nor repeats
//! one.

pub mod act;
pub mod card;
pub mod click;
pub mod config;
pub mod handler;
pub mod request;
pub mod silence;
pub mod urgent;

pub use card::{annotate, ActionKind};
pub use config::{LifecycleConfig, LifecycleSettings};
