//! `imrelay mock`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use imrelay_mock::{MockConfig, MockServer};

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # Serve the robots and apps declared in a file:
  imrelay mock --listen 127.0.0.1:9900 --config examples/mock.toml

  # A benchmark sink that accepts any robot token without checks:
  imrelay mock --listen 127.0.0.1:9900 --accept-unknown

  # Then, from another terminal: the request log and fault injection
  curl -s localhost:9900/_mock/requests
  curl -s -XPOST localhost:9900/_mock/faults -d '{\"target\":\"*\",\"http_status\":503,\"count\":3}' \\
       -H 'content-type: application/json'")]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9900", env = "IMRELAY_MOCK_LISTEN")]
    listen: SocketAddr,
    /// TOML file declaring robots and apps (see examples/mock.toml).
    #[arg(long, env = "IMRELAY_MOCK_CONFIG")]
    config: Option<PathBuf>,
    /// Accept robots and apps that were not declared (no signature checks for them).
    #[arg(long)]
    accept_unknown: bool,
    /// Token lifetime in seconds (overrides the file).
    #[arg(long)]
    token_lifetime: Option<u64>,
    /// Do not keep request bodies in the log (for benchmarks).
    #[arg(long)]
    no_bodies: bool,
}

pub async fn run(args: MockArgs) -> ExitCode {
    let mut config = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => match MockConfig::from_toml(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => MockConfig::default(),
    };
    config.accept_unknown |= args.accept_unknown;
    config.log_bodies_off |= args.no_bodies;
    if let Some(t) = args.token_lifetime {
        config.token_lifetime_secs = t;
    }
    let summary = describe(&config);
    let server = match MockServer::start(config, args.listen).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    eprintln!("imrelay mock listening on {}", server.base_url());
    eprintln!("{summary}");
    eprintln!(
        "request log: {}/_mock/requests   (Ctrl-C to stop)",
        server.base_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    ExitCode::SUCCESS
}

fn describe(c: &MockConfig) -> String {
    let mut lines = Vec::new();
    for r in &c.robots {
        lines.push(format!(
            "  robot  {:<9} token={} {}",
            r.platform.as_str(),
            r.token,
            if r.secret.is_some() { "(signed)" } else { "" }
        ));
    }
    for a in &c.apps {
        lines.push(format!(
            "  app    {:<9} id={}",
            a.platform.as_str(),
            a.app_id
        ));
    }
    if lines.is_empty() {
        lines.push(if c.accept_unknown {
            "  no robots declared; accepting any".into()
        } else {
            "  no robots or apps declared (use --config, --accept-unknown or POST /_mock/robots)"
                .into()
        });
    }
    lines.join("\n")
}
