//! `kafdo-gateway --listen ADDR --url URL`: Kafka clients on ADDR, Kafdo at URL.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use kafdo_client::{Client, ClientConfig, Format};
use kafdo_gateway::api::{Gateway, Node};
use kafdo_gateway::server;

#[global_allocator]
static ALLOCATOR: kafdo_gateway::alloc::Allocator = kafdo_gateway::alloc::Allocator;

/// Speaks the Kafka protocol on a TCP address and forwards every request to a Kafdo
/// deployment's HTTP API. Holds no state: stop or restart it at any moment.
#[derive(Parser, Debug)]
#[command(name = "kafdo-gateway", version)]
struct Args {
    /// The address Kafka clients connect to.
    #[arg(long, env = "KAFDO_GATEWAY_LISTEN", default_value = "127.0.0.1:9092")]
    listen: SocketAddr,
    /// The Kafdo deployment (its HTTP API).
    #[arg(long, env = "KAFDO_URL", default_value = "http://127.0.0.1:8787")]
    url: String,
    /// The host clients are told to connect to (default: the listen address's host).
    #[arg(long, env = "KAFDO_GATEWAY_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// The port clients are told to connect to (default: the listen port).
    #[arg(long, env = "KAFDO_GATEWAY_ADVERTISED_PORT")]
    advertised_port: Option<u16>,
    /// The largest request frame a connection may send, in bytes.
    #[arg(long, default_value_t = server::DEFAULT_MAX_FRAME_BYTES)]
    max_frame_bytes: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let config = ClientConfig {
        format: Format::Cbor,
        ..ClientConfig::default()
    };
    let kafdo = Client::connect_with(&args.url, config)
        .map_err(|e| anyhow::anyhow!("Kafdo at {}: {e}", args.url))?;
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let local = listener.local_addr()?;
    let host = args.advertised_host.unwrap_or_else(|| match local.ip() {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip => ip.to_string(),
    });
    let port = i32::from(args.advertised_port.unwrap_or(local.port()));
    tracing::info!(listen = %local, advertised = %format!("{host}:{port}"), kafdo = %args.url, "kafdo-gateway listening");
    let gateway = Arc::new(Gateway {
        kafdo,
        node: Node { id: 0, host, port },
    });
    tokio::select! {
        () = server::serve(listener, gateway, args.max_frame_bytes) => {}
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: stopping"),
    }
    Ok(())
}
