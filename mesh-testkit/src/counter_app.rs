//! The increment-only counter app, a port of weaveworks/mesh's example, written once for
//! every adapter. Each adapter's `counter` example parses [`Args`], calls [`start`], and
//! hands each accepted HTTP connection to [`App::serve_connection`] under its runtime;
//! only that accept loop differs between them. For the examples only.
//!
//! The flags and the HTTP interface are the Go app's: `GET` answers `get => N`, `POST`
//! increments and answers `incr => N`, so Go, tokio and smol copies run in one cluster.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use mesh_proto::PeerName;
use mesh_proto::counter::{Counter, Counts};
use tracing::{error, info, warn};

use mesh_driver::{Channel, Mesh, MeshBuilder, Runtime};

/// An increment-only counter shared by every peer of a mesh.
#[derive(Parser, Debug, Clone)]
#[command(version, about)]
pub struct Args {
    /// Peer name, MAC style (default: the MAC of the first network interface that has one).
    #[arg(long)]
    pub hwaddr: Option<String>,
    /// Nickname shown to other peers (default: the host name).
    #[arg(long)]
    pub nickname: Option<String>,
    /// Address to listen on for mesh connections.
    #[arg(long, default_value = "0.0.0.0:6783")]
    pub mesh: String,
    /// Address to serve HTTP on; `:8080` means every interface.
    #[arg(long, default_value = ":8080")]
    pub http: String,
    /// Shared password. Absent: connections with Go peers (protocol version 2) are not
    /// encrypted, and those between Rust peers (version 3) are encrypted without
    /// authentication. `--password ''` encrypts with an empty password, which is what the
    /// Go app does when started without -password: encrypted, but it authenticates
    /// nothing.
    #[arg(long)]
    pub password: Option<String>,
    /// Lowest protocol version to accept: 2 (Go's, the default) or 3, which refuses Go
    /// peers and version-2-only peers, so no one in the middle can force version 2.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub min_protocol: u8,
    /// Highest protocol version to offer: 3 (the default) or 2, to act as a
    /// version-2-only peer.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    pub max_protocol: u8,
    /// Gossip channel name.
    #[arg(long, default_value = "default")]
    pub channel: String,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer")]
    pub peers: Vec<String>,
}

/// `:8080` → `0.0.0.0:8080`, as Go's listeners read it.
pub fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_owned() };
    full.parse().map_err(|_| format!("bad address {s:?}: expected host:port or :port"))
}

/// The MAC address of the first network interface, by name, that has a non-zero one
/// (loopback has none), in the lower-case `xx:xx:xx:xx:xx:xx` form; `None` if there is
/// none or the system will not say.
fn default_hwaddr() -> Option<String> {
    let mut found: Vec<(Option<String>, [u8; 6])> = mac_address::MacAddressIterator::new()
        .ok()?
        .map(|mac| mac.bytes())
        .filter(|b| *b != [0; 6])
        .map(|b| (mac_address::name_by_mac_address(&mac_address::MacAddress::new(b)).ok().flatten(), b))
        .collect();
    // Interfaces in name order, so the choice does not depend on the order the system
    // lists them in; any whose name the system will not give come last.
    found.sort_by(|(a, x), (b, y)| (a.is_none(), a, x).cmp(&(b.is_none(), b, y)));
    let (_, b) = found.into_iter().next()?;
    Some(format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5]))
}

/// The host name, or `counter` if it is empty or not valid UTF-8.
fn default_nickname() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "counter".into())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// A started counter peer: the mesh, the counter and the address to serve HTTP on.
pub struct App<R: Runtime> {
    /// The mesh.
    pub mesh: Mesh<R>,
    /// The counter.
    pub counter: Counter,
    /// The counter's gossip channel.
    pub channel: Channel<Counts, R>,
    /// Where the HTTP interface should listen.
    pub http: SocketAddr,
}

impl<R: Runtime> Clone for App<R> {
    fn clone(&self) -> Self {
        App {
            mesh: self.mesh.clone(),
            counter: self.counter.clone(),
            channel: self.channel.clone(),
            http: self.http,
        }
    }
}

/// Starts the mesh described by `args` on `rt` and connects to its `--peer`s.
pub async fn start<R: Runtime>(rt: R, args: Args) -> Result<App<R>, Box<dyn std::error::Error>> {
    let hwaddr = match args.hwaddr.or_else(default_hwaddr) {
        Some(h) => h,
        None => return Err("no network interface has a MAC address: pass --hwaddr".into()),
    };
    let name: PeerName = hwaddr.parse()?;
    let nickname = args.nickname.unwrap_or_else(default_nickname);
    let mesh_addr = listen_addr(&args.mesh)?;
    let http = listen_addr(&args.http)?;

    let mut builder = MeshBuilder::with_runtime(rt, name)
        .nickname(nickname.clone())
        .listen(mesh_addr)
        .connection_limit(64)
        .peer_discovery(true)
        .min_protocol_version(args.min_protocol)
        .max_protocol_version(args.max_protocol);
    match args.password {
        None => {}
        Some(p) if p.is_empty() => {
            warn!("empty password: connections are encrypted but anyone can join and read them");
            builder = builder.password(Bytes::new());
        }
        Some(p) => builder = builder.password(Bytes::from(p)),
    }
    let counter = Counter::new(name);
    let channel = builder.channel(args.channel, counter.gossiper());
    let mesh = builder.start().await?;
    let mut peers = args.peers;
    peers.sort();
    for e in mesh.initiate_connections(peers, true).await? {
        warn!(error = %e, "ignoring peer");
    }
    info!(%name, %nickname, mesh = %mesh.local_addr(), %http, "counter started");
    Ok(App { mesh, counter, channel, http })
}

impl<R: Runtime> App<R> {
    /// Serves one HTTP/1 connection (`io` wrapped for hyper by the adapter's runtime).
    pub async fn serve_connection<I>(&self, io: I)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin,
    {
        let app = self.clone();
        let svc = service_fn(move |req| {
            let app = app.clone();
            async move { app.respond(req).await }
        });
        if let Err(e) = http1::Builder::new().serve_connection(io, svc).await {
            warn!(error = %e, "http connection failed");
        }
    }

    async fn respond(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
        let body = match *req.method() {
            Method::GET => format!("get => {}\n", self.counter.value()),
            Method::POST => {
                let state = self.counter.increment();
                let value = state.value();
                if let Err(e) = self.channel.broadcast(state).await {
                    error!(error = %e, "broadcast failed");
                }
                format!("incr => {value}\n")
            }
            _ => String::new(),
        };
        Ok(Response::new(Full::new(Bytes::from(body))))
    }

    /// Leaves the mesh.
    pub async fn stop(self) -> Result<(), mesh_driver::Error> {
        info!("stopping");
        self.mesh.shutdown().await
    }
}
