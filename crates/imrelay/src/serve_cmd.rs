//! `imrelay serve` and `imrelay config check`: what the process adds around the
//! gateway library: logging set-up is done by `main`; here are signals, hot
//! reload and the in-process mock platform server that `[mock]` asks for.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use imrelay_gateway::config::{typed, Config, ConfigError, KeyPath, MockSection};
use imrelay_gateway::Gateway;
use imrelay_mock::{MockConfig, MockServer};
use tokio::net::TcpListener;

/// The mock's settings from `[mock]`, with errors naming the key at fault
/// (`mock.robots[0].token`).
pub fn mock_config(section: &MockSection) -> Result<MockConfig, ConfigError> {
    typed::<MockConfig>(
        serde_json::Value::Object(section.settings.clone()),
        &KeyPath::root().key("mock"),
    )
    .map_err(|issue| ConfigError {
        file: None,
        issues: vec![issue],
    })
}

/// `imrelay config check FILE`: everything the gateway checks, plus `[mock]`.
pub fn check(file: &Path) -> ExitCode {
    let summary = match imrelay_gateway::check_file(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(section) = Config::load(file).ok().and_then(|c| c.mock) {
        if let Err(e) = mock_config(&section) {
            eprintln!("error: {}", e.with_file(Some(file)));
            return ExitCode::from(2);
        }
    }
    print!("{summary}");
    ExitCode::SUCCESS
}

/// `imrelay serve --config FILE`: load, bind, serve; reload on SIGHUP and file
/// change; drain on SIGTERM/SIGINT and return (exit 0).
pub async fn run(config_path: PathBuf) -> ExitCode {
    match serve(config_path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(config_path: PathBuf) -> anyhow::Result<()> {
    let cfg = Config::load(&config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mock = match &cfg.mock {
        Some(section) => Some(start_mock(section, &config_path).await?),
        None => None,
    };
    let listen = cfg.server.listen;
    let watch = cfg.server.watch;
    let demo = imrelay_gateway::console::demo_login(&cfg.console);
    let console = cfg.console.enabled;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("`server.listen`: cannot listen on {listen}"))?;
    let gw = Gateway::start(cfg, listener).await?;
    // Said on stderr whatever the log filter, so the quickstart shows where to go.
    eprintln!("imrelay: serving the API on http://{}", gw.addr());
    if console {
        eprintln!("imrelay: web console on http://{}/ui/", gw.addr());
    }
    if let Some((user, password)) = demo {
        eprintln!(
            "imrelay: console demo login: user `{user}`, password `{password}` (new at each start)"
        );
    }
    if let Some(m) = &mock {
        eprintln!(
            "imrelay: in-process mock platform server on {} (see /_mock/requests)",
            m.base_url()
        );
    }
    let _reload = imrelay_gateway::runtime::reload::spawn(gw.live().clone(), config_path, watch);
    let why = shutdown_signal().await;
    tracing::info!(signal = why, "stop requested");
    let result = gw.shutdown().await;
    if let Some(m) = mock {
        m.stop().await;
    }
    #[cfg(feature = "otlp")]
    imrelay_gateway::telemetry::otlp::flush();
    result
}

/// The mock starts before the gateway, so the first deliveries find it.
async fn start_mock(section: &MockSection, file: &Path) -> anyhow::Result<MockServer> {
    let config =
        mock_config(section).map_err(|e| anyhow::anyhow!("{}", e.with_file(Some(file))))?;
    let server = MockServer::start(config, section.listen)
        .await
        .with_context(|| format!("`mock.listen`: cannot start the mock on {}", section.listen))?;
    tracing::info!(url = %server.base_url(), "in-process mock platform server started");
    Ok(server)
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => "SIGTERM",
            _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[[api_keys]]\nname = \"ci\"\nkey = \"test-key-0123456789abcdef\"\nchannels = [\"*\"]\n{extra}"
        );
        Config::parse(&text, Path::new("."))
    }

    #[test]
    fn the_mock_section_provides_mock_url() {
        let cfg = parse(
            r#"
[mock]
listen = "127.0.0.1:9555"
accept_unknown = true
window_scale = 0.01
[[channels.a.destinations]]
type = "webhook"
url = "${mock.url}/hook"
allow_private = true
"#,
        )
        .unwrap();
        let mock = cfg.mock.as_ref().unwrap();
        assert_eq!(mock.listen.port(), 9555);
        assert!(mock_config(mock).unwrap().accept_unknown);
        assert_eq!(
            cfg.channels["a"].destinations[0]["url"],
            "http://127.0.0.1:9555/hook"
        );
        let cfg = parse(
            r#"
[mock]
robotz = []
[[channels.a.destinations]]
type = "webhook"
url = "https://x.example.com"
"#,
        )
        .unwrap();
        let err = mock_config(cfg.mock.as_ref().unwrap()).unwrap_err();
        let keys: Vec<&str> = err.issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(keys, ["mock.robotz"]);
    }
}
