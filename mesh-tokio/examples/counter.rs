//! The increment-only counter, a port of weaveworks/mesh's example app that works in the
//! same cluster as Go copies of it.
//!
//! ```text
//! cargo run -p mesh-tokio --example counter -- --hwaddr 00:00:00:00:00:01 \
//!     --mesh 127.0.0.1:6001 --http 127.0.0.1:8001
//! cargo run -p mesh-tokio --example counter -- --hwaddr 00:00:00:00:00:02 \
//!     --mesh 127.0.0.1:6002 --http 127.0.0.1:8002 --peer 127.0.0.1:6001
//! curl -X POST 127.0.0.1:8001     # incr => 1
//! curl 127.0.0.1:8002             # get => 1
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use mesh_proto::counter::{Counter, Counts};
use mesh_tokio::{Channel, MeshBuilder, PeerName};
use tracing::{error, info, warn};

/// An increment-only counter shared by every peer of a mesh.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Peer name, MAC style (default: the MAC of the first network interface that has one).
    #[arg(long)]
    hwaddr: Option<String>,
    /// Nickname shown to other peers (default: the host name).
    #[arg(long)]
    nickname: Option<String>,
    /// Address to listen on for mesh connections.
    #[arg(long, default_value = "0.0.0.0:6783")]
    mesh: String,
    /// Address to serve HTTP on; `:8080` means every interface.
    #[arg(long, default_value = ":8080")]
    http: String,
    /// Shared password. Absent: connections are not encrypted. `--password ''` encrypts
    /// with an empty password, which is what the Go app does when started without
    /// -password: encrypted, but it authenticates nothing.
    #[arg(long)]
    password: Option<String>,
    /// Gossip channel name.
    #[arg(long, default_value = "default")]
    channel: String,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer")]
    peers: Vec<String>,
}

/// `:8080` → `0.0.0.0:8080`, as Go's listeners read it.
fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|_| format!("bad address {s:?}: expected host:port or :port"))
}

/// The MAC address of the first interface that has a non-zero one.
fn default_hwaddr() -> Option<String> {
    let mut ifaces: Vec<_> = std::fs::read_dir("/sys/class/net").ok()?.flatten().map(|e| e.path()).collect();
    ifaces.sort();
    ifaces
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(p.join("address")).ok())
        .map(|a| a.trim().to_owned())
        .find(|a| a.len() == 17 && a != "00:00:00:00:00:00")
}

fn default_nickname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "counter".into())
}

async fn serve(
    req: Request<Incoming>,
    counter: Counter,
    channel: Channel<Counts>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match *req.method() {
        Method::GET => format!("get => {}\n", counter.value()),
        Method::POST => {
            let state = counter.increment();
            let value = state.value();
            if let Err(e) = channel.broadcast(state).await {
                error!(error = %e, "broadcast failed");
            }
            format!("incr => {value}\n")
        }
        _ => String::new(),
    };
    Ok(Response::new(Full::new(Bytes::from(body))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let hwaddr = match args.hwaddr.or_else(default_hwaddr) {
        Some(h) => h,
        None => return Err("no network interface has a MAC address: pass --hwaddr".into()),
    };
    let name: PeerName = hwaddr.parse()?;
    let nickname = args.nickname.unwrap_or_else(default_nickname);
    let mesh_addr = listen_addr(&args.mesh)?;
    let http_addr = listen_addr(&args.http)?;

    let mut builder = MeshBuilder::new(name)
        .nickname(nickname.clone())
        .listen(mesh_addr)
        .connection_limit(64)
        .peer_discovery(true);
    match &args.password {
        None => {}
        Some(p) if p.is_empty() => {
            warn!("empty password: connections are encrypted but anyone can join and read them");
            builder = builder.password(Bytes::new());
        }
        Some(p) => builder = builder.password(Bytes::from(p.clone())),
    }
    let counter = Counter::new(name);
    let channel = builder.channel(args.channel.clone(), counter.gossiper());
    let mesh = builder.start().await?;
    let mut peers = args.peers.clone();
    peers.sort();
    for e in mesh.initiate_connections(peers, true).await? {
        warn!(error = %e, "ignoring peer");
    }
    info!(%name, %nickname, mesh = %mesh.local_addr(), http = %http_addr, "counter started");

    let listener = tokio::net::TcpListener::bind(http_addr).await?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "http accept failed");
                        continue;
                    }
                };
                let (counter, channel) = (counter.clone(), channel.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(req, counter.clone(), channel.clone()));
                    if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await {
                        warn!(error = %e, "http connection failed");
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    info!("stopping");
    mesh.shutdown().await?;
    Ok(())
}
