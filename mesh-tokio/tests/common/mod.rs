//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use mesh_proto::counter::{Counter, Counts};
use mesh_tokio::{Channel, Mesh, MeshBuilder, PeerName};

pub(crate) struct Peer {
    pub(crate) mesh: Mesh,
    pub(crate) counter: Counter,
    pub(crate) channel: Channel<Counts>,
}

pub(crate) fn name(i: u64) -> PeerName {
    PeerName::from_u64(0x0d00_0000_0000 + i).unwrap()
}

pub(crate) async fn start(i: u64, password: Option<&str>, peers: &[SocketAddr]) -> Peer {
    let mut b = MeshBuilder::new(name(i))
        .nickname(format!("peer{i}"))
        .listen("127.0.0.1:0".parse().unwrap())
        .peers(peers.iter().map(|a| a.to_string()));
    if let Some(p) = password {
        b = b.password(p.to_owned());
    }
    let counter = Counter::new(name(i));
    let channel = b.channel("default", counter.gossiper());
    let mesh = b.start().await.expect("mesh starts");
    Peer { mesh, counter, channel }
}

pub(crate) async fn increment(p: &Peer) {
    p.channel.broadcast(p.counter.increment()).await.unwrap();
}

/// Waits until `f` holds, polling every 50 ms, for at most `secs` seconds.
pub(crate) async fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}
