//! `imrelay health`: probe a running gateway's `/healthz` (or `/readyz`) and
//! answer with the exit code, so a container's `HEALTHCHECK` needs nothing
//! but the binary already in the image.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Arguments of `imrelay health`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  imrelay health                       # GET http://127.0.0.1:8080/healthz
  imrelay health --ready --server http://imrelay.internal:8080")]
pub struct HealthArgs {
    /// The gateway's base URL.
    #[arg(long, env = "IMRELAY_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Probe `/readyz` (store commits, not draining) instead of `/healthz`.
    #[arg(long)]
    ready: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// Run `imrelay health`: 0 when the gateway answered 2xx, 1 otherwise.
pub async fn run(args: HealthArgs) -> ExitCode {
    let path = if args.ready { "readyz" } else { "healthz" };
    let url = format!("{}/{path}", args.server.trim_end_matches('/'));
    match probe(&url, Duration::from_secs(args.timeout)).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn probe(url: &str, timeout: Duration) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(timeout)
        // A probe of the gateway itself never goes through HTTP(S)_PROXY.
        .no_proxy()
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered HTTP {}", status.as_u16()))
    }
}
