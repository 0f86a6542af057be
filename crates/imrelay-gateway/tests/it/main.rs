//! The crate's integration tests, one binary (it links once): each module
//! is what was a test file; the support modules are shared.

// First: its `store_cases!` is used by the store modules below.
#[macro_use]
mod store_suite;

mod api_alertmanager;
mod api_lifecycle;
mod api_messages;
mod api_proptest;
mod api_reload;
mod api_render;
mod api_support;
mod callbacks;
mod console;
mod console_store;
mod dispatch_common;
mod dispatch_lease;
mod dispatch_mock;
mod dispatch_order;
mod dispatch_order_cluster;
mod dispatch_outcomes;
mod dispatch_recipients;
mod dispatch_webhook;
mod grouping;
mod message_life;
mod message_life_callbacks;
mod message_life_feishu;
mod message_life_recall;
mod message_life_urgent;
mod module_graph;
mod obs_alerts;
mod obs_deploy;
mod obs_logs;
mod obs_metrics;
mod obs_openapi;
mod obs_otlp;
mod oncall;
mod outbound_proxy;
mod reload_watch;
mod server_limits;
mod silences;
mod sources;
mod store_postgres;
mod store_sqlite;
