//! The increment-only counter app, a port of weaveworks/mesh's example, written once for
//! every adapter. Each adapter's `counter` example parses [`Args`], calls [`start`], and
//! hands each accepted HTTP connection to [`App::serve_connection`] under its runtime;
//! only that accept loop differs between them. For the examples only.
//!
//! The flags and the HTTP interface are the Go app's: `GET` answers `get => N`, `POST`
//! increments and answers `incr => N`, so Go, tokio and smol copies run in one cluster.
//! Additions for scripts (`mesh-testkit/scripts/cluster_rss.sh`) and `mesh-lab`:
//! - `GET /status` answers `peers K\nestablished C\nown N\n`: the peers known besides
//!   ourselves, our established connections and our own entry of the counter;
//! - `GET /topology` answers one line per record of the peers table, `name uid version`,
//!   by name: two peers whose answers are equal hold the same topology;
//! - `--state FILE` keeps our own entry in FILE, written before an increment is
//!   acknowledged and read at start, so an acknowledged increment survives a crash and a
//!   restart under the same name (the counter merges by maximum: without it, a restarted
//!   peer counts from zero again and its first increments vanish under its old entry).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use mesh_proto::PeerName;
use mesh_proto::counter::{Counter, Counts};
use tracing::{error, info, warn};

use mesh_driver::{Channel, Mesh, MeshBuilder, Runtime};

/// The command line: the Go app's flags, spelled `--flag value` or `--flag=value`.
///
/// Parsed by hand rather than with clap: clap was a tenth of the example's code, and code
/// pages count in the resident memory of every process of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// Peer name, MAC style (default: the MAC of the first network interface that has one).
    pub hwaddr: Option<String>,
    /// Nickname shown to other peers (default: the host name).
    pub nickname: Option<String>,
    /// Address to listen on for mesh connections.
    pub mesh: String,
    /// Address to serve HTTP on; `:8080` means every interface.
    pub http: String,
    /// Shared password. Absent: connections with Go peers (protocol version 2) are not
    /// encrypted, and those between Rust peers (version 3) are encrypted without
    /// authentication. `--password ''` encrypts with an empty password, which is what the
    /// Go app does when started without -password: encrypted, but it authenticates
    /// nothing.
    pub password: Option<String>,
    /// Lowest protocol version to accept: 2 (Go's, the default) or 3, which refuses Go
    /// peers and version-2-only peers, so no one in the middle can force version 2.
    pub min_protocol: u8,
    /// Highest protocol version to offer: 3 (the default) or 2, to act as a
    /// version-2-only peer.
    pub max_protocol: u8,
    /// Gossip channel name.
    pub channel: String,
    /// A peer to connect to (repeatable).
    pub peers: Vec<String>,
    /// Where to keep our own count across restarts (none: in memory only).
    pub state: Option<String>,
}

const USAGE: &str = "\
An increment-only counter shared by every peer of a mesh

Usage: counter [OPTIONS]

Options:
      --hwaddr <HWADDR>              Peer name, MAC style (default: the MAC of the first
                                     network interface that has one)
      --nickname <NICKNAME>          Nickname shown to other peers (default: the host name)
      --mesh <MESH>                  Address to listen on for mesh connections
                                     [default: 0.0.0.0:6783]
      --http <HTTP>                  Address to serve HTTP on; `:8080` means every
                                     interface [default: :8080]
      --password <PASSWORD>          Shared password; absent: plaintext with Go peers,
                                     unauthenticated encryption between Rust peers; '':
                                     encrypted with an empty password, as the Go app
      --min-protocol <MIN_PROTOCOL>  Lowest protocol version to accept, 2 or 3 [default: 2]
      --max-protocol <MAX_PROTOCOL>  Highest protocol version to offer, 2 or 3 [default: 3]
      --channel <CHANNEL>            Gossip channel name [default: default]
      --peer <PEERS>                 A peer to connect to (repeatable)
      --state <FILE>                 Keep our own count in FILE, written before each
                                     increment is acknowledged, read at start
  -h, --help                         Print help
  -V, --version                      Print version
";

impl Default for Args {
    fn default() -> Self {
        Args {
            hwaddr: None,
            nickname: None,
            mesh: "0.0.0.0:6783".into(),
            http: ":8080".into(),
            password: None,
            min_protocol: 2,
            max_protocol: 3,
            channel: "default".into(),
            peers: Vec::new(),
            state: None,
        }
    }
}

/// What a command line asks for besides running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// `--help`: the usage text.
    Help(String),
    /// `--version`.
    Version(String),
    /// A bad command line, with what is wrong.
    Bad(String),
}

impl Args {
    /// Parses the process's arguments; prints the usage or the version and exits on
    /// `--help` or `--version`, and prints the error and exits with status 2 on a bad
    /// command line.
    pub fn parse() -> Self {
        match Self::try_parse_from(std::env::args_os().skip(1)) {
            Ok(a) => a,
            Err(ArgsError::Help(t) | ArgsError::Version(t)) => {
                print!("{t}");
                std::process::exit(0)
            }
            Err(ArgsError::Bad(e)) => {
                eprintln!("error: {e}\n\n{USAGE}");
                std::process::exit(2)
            }
        }
    }

    /// Parses `args` (without the program name).
    pub fn try_parse_from<I, S>(args: I) -> Result<Self, ArgsError>
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        let mut a = Args::default();
        let mut it = args.into_iter().map(Into::into);
        while let Some(arg) = it.next() {
            let arg =
                arg.into_string().map_err(|s| ArgsError::Bad(format!("argument {s:?} is not UTF-8")))?;
            match arg.as_str() {
                "-h" | "--help" => return Err(ArgsError::Help(USAGE.into())),
                "-V" | "--version" => {
                    return Err(ArgsError::Version(format!("counter {}\n", env!("CARGO_PKG_VERSION"))));
                }
                _ => {}
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = || match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .ok_or_else(|| ArgsError::Bad(format!("{flag} needs a value")))?
                    .into_string()
                    .map_err(|s| ArgsError::Bad(format!("value {s:?} of {flag} is not UTF-8"))),
            };
            let version = |v: String| match v.parse::<u8>() {
                Ok(n @ 2..=3) => Ok(n),
                _ => Err(ArgsError::Bad(format!("{flag}: {v:?} is not 2 or 3"))),
            };
            match flag.as_str() {
                "--hwaddr" => a.hwaddr = Some(value()?),
                "--nickname" => a.nickname = Some(value()?),
                "--mesh" => a.mesh = value()?,
                "--http" => a.http = value()?,
                "--password" => a.password = Some(value()?),
                "--min-protocol" => a.min_protocol = version(value()?)?,
                "--max-protocol" => a.max_protocol = version(value()?)?,
                "--channel" => a.channel = value()?,
                "--peer" => a.peers.push(value()?),
                "--state" => a.state = Some(value()?),
                _ => return Err(ArgsError::Bad(format!("unexpected argument {arg:?}"))),
            }
        }
        Ok(a)
    }
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

/// Logs to stderr, filtered by `RUST_LOG` (default `info`): a level and `target=level`
/// directives, e.g. `warn,mesh_driver=debug`, as tracing-subscriber's `Targets` reads
/// them. (Not its `EnvFilter`: that one's regex engine was a fifth of the example's code,
/// and code pages count in every process's resident memory.)
pub fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let default = || Targets::new().with_default(LevelFilter::INFO);
    let (filter, bad) = match std::env::var("RUST_LOG") {
        Ok(s) if !s.trim().is_empty() => match s.parse::<Targets>() {
            Ok(t) => (t, None),
            Err(e) => (default(), Some((s, e))),
        },
        _ => (default(), None),
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(filter)
        .init();
    if let Some((s, e)) = bad {
        warn!(rust_log = %s, error = %e, "ignoring RUST_LOG: logging at info");
    }
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
    /// Our name.
    pub name: PeerName,
    /// The `--state` file, locked across an increment and its write, so the file never
    /// goes back to a smaller count than one acknowledged.
    state: Arc<Mutex<Option<PathBuf>>>,
}

impl<R: Runtime> Clone for App<R> {
    fn clone(&self) -> Self {
        App {
            mesh: self.mesh.clone(),
            counter: self.counter.clone(),
            channel: self.channel.clone(),
            http: self.http,
            name: self.name,
            state: self.state.clone(),
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
    let state = args.state.map(PathBuf::from);
    let counter = match &state {
        Some(path) => {
            let own = read_state(path)?;
            info!(own, path = %path.display(), "own count restored");
            Counter::with_state(name, Counts([(name, own)].into()))
        }
        None => Counter::new(name),
    };
    let channel = builder.channel(args.channel, counter.gossiper());
    let mesh = builder.start().await?;
    let mut peers = args.peers;
    peers.sort();
    for e in mesh.initiate_connections(peers, true).await? {
        warn!(error = %e, "ignoring peer");
    }
    info!(%name, %nickname, mesh = %mesh.local_addr(), %http, "counter started");
    Ok(App { mesh, counter, channel, http, name, state: Arc::new(Mutex::new(state)) })
}

/// Our own count from a `--state` file: 0 if it does not exist yet.
fn read_state(path: &Path) -> Result<i64, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse().map_err(|_| format!("{}: {s:?} is not a count", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Writes our own count to a `--state` file through a temporary file and a rename, so a
/// crash leaves the old count or the new one, never a torn file. No fsync: the file must
/// survive the process, not the machine.
fn write_state(path: &Path, own: i64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{own}\n"))?;
    std::fs::rename(&tmp, path)
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
            Method::GET if req.uri().path() == "/status" => match self.mesh.status().await {
                Ok(st) => {
                    let established = st
                        .connections
                        .iter()
                        .filter(|c| c.state == mesh_proto::ConnectionState::Established)
                        .count();
                    let own = self.counter.snapshot().0.get(&self.name).copied().unwrap_or(0);
                    let known = st.peers.len().saturating_sub(1);
                    format!("peers {known}\nestablished {established}\nown {own}\n")
                }
                Err(e) => format!("error {e}\n"),
            },
            Method::GET if req.uri().path() == "/topology" => match self.mesh.status().await {
                Ok(st) => {
                    let mut peers: Vec<_> = st.peers.iter().map(|p| (p.name, p.uid, p.version)).collect();
                    peers.sort();
                    peers.iter().map(|(n, u, v)| format!("{n} {u} {v}\n")).collect()
                }
                Err(e) => format!("error {e}\n"),
            },
            Method::GET => format!("get => {}\n", self.counter.value()),
            Method::POST => match self.increment() {
                Ok(state) => {
                    let value = state.value();
                    if let Err(e) = self.channel.broadcast(state).await {
                        error!(error = %e, "broadcast failed");
                    }
                    format!("incr => {value}\n")
                }
                Err(e) => {
                    error!(error = %e, "writing the state file failed");
                    let mut r = Response::new(Full::new(Bytes::from(format!("error {e}\n"))));
                    *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
                    return Ok(r);
                }
            },
            _ => String::new(),
        };
        Ok(Response::new(Full::new(Bytes::from(body))))
    }

    /// Increments our entry and, with `--state`, writes it before anyone is told.
    fn increment(&self) -> std::io::Result<Counts> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let counts = self.counter.increment();
        if let Some(path) = state.as_ref() {
            write_state(path, counts.0.get(&self.name).copied().unwrap_or(0))?;
        }
        Ok(counts)
    }

    /// Leaves the mesh.
    pub async fn stop(self) -> Result<(), mesh_driver::Error> {
        info!("stopping");
        self.mesh.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_as_clap_read_them() {
        let a = Args::try_parse_from([
            "--hwaddr",
            "00:00:00:00:00:02",
            "--mesh=127.0.0.1:6002",
            "--http",
            ":8002",
            "--password",
            "",
            "--peer",
            "127.0.0.1:6001",
            "--peer=127.0.0.1:6003",
            "--min-protocol",
            "3",
            "--channel=c",
            "--state",
            "/tmp/c.state",
        ])
        .unwrap();
        assert_eq!(a.hwaddr.as_deref(), Some("00:00:00:00:00:02"));
        assert_eq!((a.mesh.as_str(), a.http.as_str()), ("127.0.0.1:6002", ":8002"));
        assert_eq!(a.password.as_deref(), Some(""));
        assert_eq!(a.peers, ["127.0.0.1:6001", "127.0.0.1:6003"]);
        assert_eq!((a.min_protocol, a.max_protocol, a.channel.as_str()), (3, 3, "c"));
        assert_eq!(a.nickname, None);
        assert_eq!(a.state.as_deref(), Some("/tmp/c.state"));
        assert_eq!(Args::try_parse_from(Vec::<String>::new()).unwrap(), Args::default());
        assert_eq!(Args::default().mesh, "0.0.0.0:6783");
    }

    #[test]
    fn the_state_file_keeps_the_last_count_written() {
        let dir = std::env::temp_dir().join(format!("counter-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("own");
        assert_eq!(read_state(&path), Ok(0), "a missing file is a count of zero");
        write_state(&path, 41).unwrap();
        write_state(&path, 42).unwrap();
        assert_eq!(read_state(&path), Ok(42));
        assert!(!path.with_extension("tmp").exists(), "the temporary file is renamed away");
        std::fs::write(&path, "forty-two").unwrap();
        assert!(read_state(&path).unwrap_err().contains("is not a count"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for bad in [&["--max-protocol", "4"][..], &["--min-protocol=1"], &["--mesh"], &["--bogus"], &["x"]] {
            assert!(matches!(Args::try_parse_from(bad), Err(ArgsError::Bad(_))), "{bad:?}");
        }
        assert!(matches!(Args::try_parse_from(["--help"]), Err(ArgsError::Help(_))));
        assert!(matches!(Args::try_parse_from(["-V"]), Err(ArgsError::Version(_))));
    }
}
