//! `imrelay`: the one binary users run.
//!
//! - `imrelay send`: send one message straight to one destination (CI/CD jobs,
//!   scripts), or through a running gateway with `--server`.
//! - `imrelay mock`: the mock platform server, for tests, benchmarks and demos.
//! - `imrelay serve`: the gateway (durable queue, HTTP API, delivery).
//! - `imrelay config check`: validate a gateway config file.
//! - `imrelay import`: a prometheus-webhook-dingtalk or PrometheusAlert config as imrelay TOML.
//! - `imrelay message recall|ack|update|urgent`: act on a message a gateway sent.
//! - `imrelay health`: probe a running gateway (a container's health check).
//! - `imrelay user hash`: a password hash for the web console's users.
//! - `imrelay render`: what a running gateway would send for a message (`POST /v1/render`).

mod callback_cmd;
mod health_cmd;
mod import_cmd;
mod message_cmd;
mod mock_cmd;
mod oncall_cmd;
mod render_cmd;
mod send_cmd;
mod serve_cmd;
mod status_cmd;
mod user_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `imrelay --version`: what was built, from what, with what (see build.rs).
const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit: ",
    env!("IMRELAY_BUILD_COMMIT"),
    "\nbuilt:  ",
    env!("IMRELAY_BUILD_DATE"),
    "\nrustc:  ",
    env!("IMRELAY_BUILD_RUSTC"),
);

#[derive(Debug, Parser)]
#[command(
    name = "imrelay",
    version,
    long_version = LONG_VERSION,
    about = "A push gateway for DingTalk, Feishu/Lark, WeCom and WeChat",
    long_about = "imrelay delivers messages to DingTalk, Feishu/Lark, WeCom and WeChat reliably: \
                  signed, rate limited, retried, and never lost.",
    after_help = "Run `imrelay <command> --help` for examples."
)]
struct Cli {
    /// Log filter (e.g. `info`, `imrelay=debug`); also RUST_LOG.
    #[arg(long, global = true, env = "IMRELAY_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: HTTP API, durable queue, delivery with retries and rate limits.
    #[command(after_help = "\
Examples:
  # The quickstart: SQLite in examples/imrelay-quickstart.db (paths are relative to the
  # config file) and an in-process mock platform
  imrelay serve --config examples/quickstart.toml

Signals: SIGTERM/SIGINT stop accepting, drain in-flight sends and exit 0;
SIGHUP (or saving the file) reloads the config; a bad file keeps the old one.")]
    Serve {
        /// The gateway config file (TOML).
        #[arg(long, short, env = "IMRELAY_CONFIG", default_value = "imrelay.toml")]
        config: PathBuf,
    },
    /// Config file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Send one message to one destination and report the platform's answer.
    Send(Box<send_cmd::SendArgs>),
    /// Run the mock platform server (DingTalk, Feishu/Lark, WeCom, WeChat on one port).
    Mock(mock_cmd::MockArgs),
    /// Show a running gateway's channels, breakers, queue depths and dead letters.
    Status(status_cmd::StatusArgs),
    /// Platform callbacks: fire an encrypted, signed callback at a URL as the platform would.
    #[command(subcommand)]
    Callback(callback_cmd::CallbackCommand),
    /// Import another tool's config (prometheus-webhook-dingtalk, PrometheusAlert) as imrelay TOML.
    #[command(subcommand)]
    Import(import_cmd::ImportCommand),
    /// A message a running gateway sent: recall it, acknowledge it, update it,
    /// push it urgently.
    #[command(subcommand)]
    Message(message_cmd::MessageCommand),
    /// Probe a running gateway's /healthz (or /readyz): exit 0 when healthy.
    Health(health_cmd::HealthArgs),
    /// Who is on call on a running gateway's schedules; temporary overrides.
    Oncall(oncall_cmd::OncallArgs),
    /// Show what a running gateway would send for a message or template, per destination (nothing is sent).
    Render(Box<render_cmd::RenderArgs>),
    /// Web console users: hash a password for `[[console.users]]`.
    #[command(subcommand)]
    User(user_cmd::UserCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a gateway config file completely (every destination is built) without starting anything.
    #[command(after_help = "Example:\n  imrelay config check examples/quickstart.toml")]
    Check {
        /// The config file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log, matches!(cli.command, Command::Serve { .. }));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(70);
        }
    };
    rt.block_on(async move {
        match cli.command {
            Command::Send(args) => send_cmd::run(*args).await,
            Command::Mock(args) => mock_cmd::run(args).await,
            Command::Status(args) => status_cmd::run(args).await,
            Command::Callback(cmd) => callback_cmd::run(cmd).await,
            Command::Import(cmd) => import_cmd::run(cmd),
            Command::Message(cmd) => message_cmd::run(cmd).await,
            Command::Health(args) => health_cmd::run(args).await,
            Command::Oncall(args) => oncall_cmd::run(args).await,
            Command::User(cmd) => user_cmd::run(cmd),
            Command::Render(args) => render_cmd::run(*args).await,
            Command::Serve { config } => serve_cmd::run(config).await,
            Command::Config(ConfigCommand::Check { file }) => serve_cmd::check(&file),
        }
    })
}

/// JSON lines for `serve` when stderr is not a terminal (or per
/// `IMRELAY_LOG_FORMAT`), human text otherwise.
fn init_logs(filter: &str, server: bool) {
    use imrelay_gateway::telemetry::{init_logs, LogFormat};
    init_logs(filter, LogFormat::from_env(server));
}
