//! `[outbound] proxy`: destinations built from config send through a proxy
//! (a tiny forward proxy here, plain HTTP and `CONNECT`, that counts what it
//! relays; and a SOCKS5 one), `no_proxy` hosts bypass it, a destination's
//! own keys replace the global ones, and the proxy's credentials reach the
//! proxy but no log or config dump.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use imrelay_gateway::channels::build::BuildContext;
use imrelay_gateway::channels::ChannelSet;
use imrelay_gateway::config::Config;
use imrelay_mock::{MockConfig, MockPlatform, MockServer, RobotConfig};
use imrelay_sdk::Message;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "proxy-test-key-0123456789";

/// What the proxy saw: one entry per relayed request head (the first on
/// each connection; reqwest reuses a connection only for the same target).
#[derive(Debug, Clone)]
struct Seen {
    /// `POST http://host/path` or `CONNECT host:port`.
    request_line: String,
    proxy_authorization: Option<String>,
}

/// A forward proxy that relays every request to `upstream`, whatever host it
/// names, so destinations can use names that do not resolve here.
struct CountingProxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(relay(conn, upstream, log.clone()));
            }
        });
        CountingProxy { addr, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, log: Arc<Mutex<Vec<Seen>>>) {
    // Read the request head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or_default().to_string();
    let proxy_authorization = text.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("proxy-authorization")
            .then(|| value.trim().to_string())
    });
    log.lock().push(Seen {
        request_line: request_line.clone(),
        proxy_authorization,
    });
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    if request_line.starts_with("CONNECT ") {
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await;
    } else {
        // Absolute-form request line (`POST http://host/path HTTP/1.1`): the
        // upstream (hyper) takes it as it is.
        if server.write_all(&head).await.is_err() {
            return;
        }
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// A SOCKS5 proxy (no authentication, CONNECT only) relaying every
/// connection to `upstream`, recording the host each one asked for.
async fn socks5_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                // Greeting: version 5, n methods; answer "no authentication".
                let mut head = [0u8; 2];
                conn.read_exact(&mut head).await.ok()?;
                let mut methods = vec![0u8; usize::from(head[1])];
                conn.read_exact(&mut methods).await.ok()?;
                conn.write_all(&[5, 0]).await.ok()?;
                // Request: version, CONNECT, reserved, address type.
                let mut req = [0u8; 4];
                conn.read_exact(&mut req).await.ok()?;
                let host = match req[3] {
                    3 => {
                        let len = conn.read_u8().await.ok()?;
                        let mut name = vec![0u8; usize::from(len)];
                        conn.read_exact(&mut name).await.ok()?;
                        String::from_utf8(name).ok()?
                    }
                    1 => {
                        let mut ip = [0u8; 4];
                        conn.read_exact(&mut ip).await.ok()?;
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    _ => return None,
                };
                let _port = conn.read_u16().await.ok()?;
                log.lock().push(host);
                let mut server = TcpStream::connect(upstream).await.ok()?;
                conn.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.ok()?;
                tokio::io::copy_bidirectional(&mut conn, &mut server)
                    .await
                    .ok()
            });
        }
    });
    (addr, asked)
}

async fn mock() -> MockServer {
    let cfg = MockConfig {
        robots: ["via-proxy", "direct", "own-proxy", "hook"]
            .iter()
            .map(|t| RobotConfig::new(MockPlatform::Dingtalk, t))
            .collect(),
        ..MockConfig::default()
    };
    MockServer::start(cfg, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn config(text: &str) -> Config {
    let text = format!("[[api_keys]]\nname = \"ci\"\nkey = \"{KEY}\"\nchannels = [\"*\"]\n{text}");
    Config::parse(&text, Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn build(cfg: &Config) -> ChannelSet {
    imrelay_gateway::runtime::build_channels(cfg, &BuildContext::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Send `text` to every destination of `channel` and check each delivered.
async fn send_all(set: &ChannelSet, channel: &str, text: &str) {
    let ch = set.get(channel).unwrap();
    for entry in &ch.destinations {
        for payload in entry.dest.render(&Message::text(text)).unwrap() {
            let r = entry.dest.send(&payload).await;
            assert!(r.outcome.is_delivered(), "{channel}/{}: {r}", entry.key);
        }
    }
}

fn delivered_to(mock: &MockServer, token: &str) -> usize {
    let target = format!("dingtalk:robot:{token}");
    mock.state()
        .log
        .all()
        .into_iter()
        .filter(|e| e.target == target && e.accepted)
        .count()
}

#[tokio::test]
async fn destinations_send_through_the_proxy_unless_no_proxy_names_their_host() {
    let mock = mock().await;
    let mock_addr: SocketAddr = mock
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = CountingProxy::start(mock_addr).await;
    let mock_port = mock_addr.port();
    let cfg = config(&format!(
        r#"
[outbound]
proxy = "http://relay:s3cret@{proxy}"
no_proxy = ["10.0.0.0/8", ".internal.example.com", "127.0.0.1"]

# A name nothing resolves here: only the proxy can reach it.
[[channels.proxied.destinations]]
type = "dingtalk_robot"
access_token = "via-proxy"
base_url = "http://dingtalk.proxied.invalid:{mock_port}"

# 127.0.0.1 is in no_proxy: straight to the mock.
[[channels.direct.destinations]]
type = "dingtalk_robot"
access_token = "direct"
base_url = "{mock}"
"#,
        proxy = proxy.addr,
        mock = mock.base_url(),
    ));
    let set = build(&cfg);

    send_all(&set, "proxied", "through the proxy").await;
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0]
            .request_line
            .starts_with("POST http://dingtalk.proxied.invalid:"),
        "{seen:?}"
    );
    // `relay:s3cret`, as the proxy needs it.
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic cmVsYXk6czNjcmV0")
    );
    assert_eq!(delivered_to(&mock, "via-proxy"), 1);

    send_all(&set, "direct", "around the proxy").await;
    assert_eq!(
        proxy.seen().len(),
        1,
        "no_proxy host went through the proxy"
    );
    assert_eq!(delivered_to(&mock, "direct"), 1);

    // The password shows in no config dump.
    for dump in [
        format!("{cfg:?}"),
        serde_json::to_string(&cfg.outbound).unwrap(),
        format!("{set:?}"),
    ] {
        assert!(!dump.contains("s3cret"), "{dump}");
    }
    assert!(format!("{:?}", cfg.outbound).contains("http://relay:***@"));
}

#[tokio::test]
async fn a_destinations_own_proxy_keys_replace_the_global_ones() {
    let mock = mock().await;
    let mock_addr: SocketAddr = mock
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let global = CountingProxy::start(mock_addr).await;
    let own = CountingProxy::start(mock_addr).await;
    let cfg = config(&format!(
        r#"
[outbound]
proxy = "http://{global}"

[[channels.a.destinations]]
type = "dingtalk_robot"
access_token = "own-proxy"
base_url = "http://own.proxied.invalid:{port}"
proxy = "http://{own}"

# Straight to the mock, whatever the global proxy.
[[channels.a.destinations]]
type = "dingtalk_robot"
access_token = "direct"
base_url = "{mock}"
no_proxy = ["*"]
"#,
        global = global.addr,
        own = own.addr,
        port = mock_addr.port(),
        mock = mock.base_url(),
    ));
    send_all(&build(&cfg), "a", "per destination").await;
    assert_eq!(own.seen().len(), 1, "{:?}", own.seen());
    assert_eq!(global.seen().len(), 0, "{:?}", global.seen());
    assert_eq!(delivered_to(&mock, "own-proxy"), 1);
    assert_eq!(delivered_to(&mock, "direct"), 1);
}

#[tokio::test]
async fn a_guarded_webhook_through_the_proxy_is_not_resolved_here() {
    // The SSRF guard cannot see the address a proxy connects to: it judges
    // the host statically and leaves name resolution to the proxy (without a
    // proxy, `hooks.proxied.invalid` fails the per-send DNS check).
    let mock = mock().await;
    let mock_addr: SocketAddr = mock
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = CountingProxy::start(mock_addr).await;
    let hook = format!(
        "http://hooks.proxied.invalid:{}/robot/send?access_token=hook",
        mock_addr.port()
    );
    let cfg = config(&format!(
        r#"
[outbound]
proxy = "http://{proxy}"

[[channels.hooks.destinations]]
type = "webhook"
url = "{hook}"
"#,
        proxy = proxy.addr,
    ));
    send_all(&build(&cfg), "hooks", "guarded").await;
    assert_eq!(proxy.seen().len(), 1, "{:?}", proxy.seen());

    // An IP literal on the internal network is still refused when loading,
    // proxy or not.
    let text = format!(
        "[[api_keys]]\nname = \"ci\"\nkey = \"{KEY}\"\nchannels = [\"*\"]\n\
         [outbound]\nproxy = \"http://{}\"\n\
         [[channels.hooks.destinations]]\ntype = \"webhook\"\nurl = \"http://10.1.2.3/x\"\n",
        proxy.addr
    );
    let cfg = Config::parse(&text, Path::new(".")).unwrap();
    let err = imrelay_gateway::runtime::build_channels(&cfg, &BuildContext::default())
        .expect_err("a private literal is refused");
    assert!(err.to_string().contains("private"), "{err}");
}

#[tokio::test]
async fn a_socks5h_proxy_gets_the_name_to_resolve() {
    let mock = mock().await;
    let mock_addr: SocketAddr = mock
        .base_url()
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let (socks, asked) = socks5_proxy(mock_addr).await;
    let cfg = config(&format!(
        r#"
[[channels.a.destinations]]
type = "dingtalk_robot"
access_token = "via-proxy"
base_url = "http://dingtalk.socks.invalid:{port}"
proxy = "socks5h://{socks}"
"#,
        port = mock_addr.port(),
    ));
    send_all(&build(&cfg), "a", "over socks").await;
    assert_eq!(*asked.lock(), ["dingtalk.socks.invalid"]);
    assert_eq!(delivered_to(&mock, "via-proxy"), 1);
}

#[test]
fn bad_proxy_settings_name_their_key_and_hide_the_password() {
    let parse = |text: &str| {
        let text =
            format!("[[api_keys]]\nname = \"ci\"\nkey = \"{KEY}\"\nchannels = [\"*\"]\n{text}");
        Config::parse(&text, Path::new(".")).map(|_| ())
    };
    let err = parse("[outbound]\nproxy = \"ftp://u:hunter2@proxy:21\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("outbound.proxy"), "{err}");
    assert!(err.contains("http, https, socks5, socks5h"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let err =
        parse("[outbound]\nproxy = \"http://proxy:3128\"\nno_proxy = [\"a.example, b.example\"]\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("outbound.no_proxy[0]"), "{err}");

    let err = parse(
        "[[channels.a.destinations]]\ntype = \"webhook\"\nurl = \"https://hooks.example.com/x\"\n\
         proxy = \"socks4://proxy:1080\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("channels.a.destinations[0]"), "{err}");
    assert!(err.contains("proxy"), "{err}");
}
