//! The crate's integration tests, one binary (it links once): each module
//! is what was a test file; the support modules are shared.

mod alertmanager_e2e;
mod callback_cli;
mod callbacks_python;
mod cli_send;
mod cluster_pg;
mod console_browser;
mod email_smtp;
mod lifecycle_e2e;
mod message_cli;
mod migrate_guides;
mod migrate_pa;
mod migrate_pwd;
mod oncall_crash;
mod packaging;
mod readme;
mod render_cli;
mod send_server;
mod serve_crash;
mod serve_signals;
mod serve_support;
