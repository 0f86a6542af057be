//! `imrelay`: the one binary users run.
//!
//! - `imrelay send`: send one message straight to one destination (CI/CD jobs,
//!   scripts), or through a running gateway with `--server`.
//! - `imrelay mock`: the mock platform server, for tests, benchmarks and demos.

mod mock_cmd;
mod send_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "imrelay",
    version,
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
    /// Send one message to one destination and report the platform's answer.
    Send(Box<send_cmd::SendArgs>),
    /// Run the mock platform server (DingTalk, Feishu/Lark, WeCom, WeChat on one port).
    Mock(mock_cmd::MockArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log);
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
        }
    })
}

fn init_logs(filter: &str) {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| filter.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}
