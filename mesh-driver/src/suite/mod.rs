//! The integration suite every adapter runs, written once against [`Runtime`]: real
//! meshes over TCP on 127.0.0.1 with ephemeral ports. Each adapter's tests call these
//! functions under its executor (enabled by the `suite` feature; for tests only).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mesh_proto::counter::{Counter, Counts};
use mesh_proto::handshake::HandshakeError;
use mesh_proto::{CloseReason, Event, PeerName};

use crate::{Channel, Mesh, MeshBuilder, Runtime};

pub mod processes;

/// One counter peer.
pub struct Peer<R: Runtime> {
    /// The mesh.
    pub mesh: Mesh<R>,
    /// Its counter.
    pub counter: Counter,
    /// The counter's channel.
    pub channel: Channel<Counts, R>,
}

/// The name of suite peer `i`.
pub fn name(i: u64) -> PeerName {
    PeerName::from_u64(0x0d00_0000_0000 + i).expect("48-bit name")
}

/// Starts suite peer `i` on 127.0.0.1:0 with a counter on channel `default`.
pub async fn start<R: Runtime>(rt: &R, i: u64, password: Option<&str>, peers: &[SocketAddr]) -> Peer<R> {
    let mut b = MeshBuilder::with_runtime(rt.clone(), name(i))
        .nickname(format!("peer{i}"))
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .peers(peers.iter().map(|a| a.to_string()));
    if let Some(p) = password {
        b = b.password(p.to_owned());
    }
    let counter = Counter::new(name(i));
    let channel = b.channel("default", counter.gossiper());
    let mesh = b.start().await.expect("mesh starts");
    Peer { mesh, counter, channel }
}

/// Increments a peer's counter and broadcasts it.
pub async fn increment<R: Runtime>(p: &Peer<R>) {
    p.channel.broadcast(p.counter.increment()).await.expect("broadcast");
}

/// Waits until `f` holds, polling every 50 ms, for at most `secs` seconds.
pub async fn eventually<R: Runtime>(rt: &R, secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        rt.sleep_until(Instant::now() + Duration::from_millis(50)).await;
    }
    f()
}

/// Three peers, the second and third bootstrapped from the first.
pub async fn three<R: Runtime>(rt: &R, password: Option<&str>) -> Vec<Peer<R>> {
    let a = start(rt, 1, password, &[]).await;
    let first = a.mesh.local_addr();
    let b = start(rt, 2, password, &[first]).await;
    let c = start(rt, 3, password, &[first]).await;
    vec![a, b, c]
}

/// Counters incremented at three meshes converge everywhere.
pub async fn counters_converge<R: Runtime>(rt: R, password: Option<&str>) {
    let peers = three(&rt, password).await;
    for (k, p) in peers.iter().enumerate() {
        for _ in 0..=k {
            increment(p).await;
        }
    }
    let ok = eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 6)).await;
    assert!(ok, "counters: {:?}", peers.iter().map(|p| p.counter.value()).collect::<Vec<_>>());
    let st = peers[1].mesh.status().await.expect("status");
    assert_eq!(st.encryption, password.is_some());
    assert_eq!(st.peers.len(), 3, "{:?}", st.peers);
    for p in peers {
        p.mesh.shutdown().await.expect("shutdown");
    }
}

/// A peer shut down and started again with the same name rejoins and converges.
pub async fn restart_rejoins<R: Runtime>(rt: R) {
    let mut peers = three(&rt, None).await;
    for p in &peers {
        increment(p).await;
    }
    assert!(eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 3)).await);
    let first = peers[0].mesh.local_addr();
    let old = peers.remove(2);
    let old_uid = old.mesh.status().await.expect("status").uid;
    old.mesh.shutdown().await.expect("shutdown");
    // Same name, new process: a new UID, a new port.
    let again = start(&rt, 3, None, &[first]).await;
    let new_uid = again.mesh.status().await.expect("status").uid;
    assert_ne!(old_uid, new_uid);
    // It learns the counter (including its old incarnation's increment) and is re-learnt.
    assert!(eventually(&rt, 20, || again.counter.value() == 3).await, "{}", again.counter.value());
    increment(&again).await;
    peers.push(again);
    assert!(eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 4)).await);
    let first_status = peers[0].mesh.status().await.expect("status");
    let seen = first_status.peers.iter().find(|p| p.name == name(3)).expect("peer 3 known");
    assert_eq!(seen.uid, new_uid);
    for p in peers {
        p.mesh.shutdown().await.expect("shutdown");
    }
}

/// A peer with the wrong password is refused, and both sides report why.
pub async fn wrong_password_refused<R: Runtime>(rt: R) {
    let peers = three(&rt, Some("right")).await;
    let mut events = peers[0].mesh.events().await.expect("events");
    let intruder = start(&rt, 9, Some("wrong"), &[peers[0].mesh.local_addr()]).await;
    // The first peer reports why in its events...
    let mut reported = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reported && Instant::now() < deadline {
        match events.next().await {
            Some(Event::ConnectionClosed {
                reason: CloseReason::Handshake(HandshakeError::WrongPassword),
                ..
            }) => {
                reported = true;
            }
            Some(_) => {}
            None => break,
        }
    }
    assert!(reported, "no wrong-password event");
    // ... and the intruder in its status.
    let mut in_status = false;
    for _ in 0..200 {
        let st = intruder.mesh.status().await.expect("status");
        if st.connections.iter().any(|c| c.info.contains("wrong password")) {
            in_status = true;
            break;
        }
        rt.sleep_until(Instant::now() + Duration::from_millis(50)).await;
    }
    assert!(in_status, "{:?}", intruder.mesh.status().await.expect("status").connections);
    let st = peers[0].mesh.status().await.expect("status");
    assert!(st.peers.iter().all(|p| p.name != name(9)), "intruder joined: {:?}", st.peers);
    intruder.mesh.shutdown().await.expect("shutdown");
    for p in peers {
        p.mesh.shutdown().await.expect("shutdown");
    }
}

/// Open sockets of this process (the runtime's own descriptors, such as the reactor's
/// epoll, are not sockets).
fn open_sockets() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return 0 };
    dir.flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")))
        .count()
}

/// `shutdown()` closes every connection and the listener, peers see it, and every
/// socket is gone afterwards (every task has ended by the time `shutdown` returns: each
/// holds a guard it waits for). Run alone in its test binary: it counts the process's
/// sockets.
pub async fn shutdown_leaves_nothing<R: Runtime>(rt: R) {
    let sockets_before = open_sockets();
    let a = start(&rt, 1, Some("pw"), &[]).await;
    let first = a.mesh.local_addr();
    let b = start(&rt, 2, Some("pw"), &[first]).await;
    let c = start(&rt, 3, Some("pw"), &[first]).await;
    increment(&a).await;
    assert!(eventually(&rt, 20, || b.counter.value() == 1 && c.counter.value() == 1).await);
    let mut events = b.mesh.events().await.expect("events");
    assert!(open_sockets() > sockets_before);

    a.mesh.shutdown().await.expect("shutdown");
    let mut closed = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !closed && Instant::now() < deadline {
        match events.next().await {
            Some(Event::ConnectionClosed { peer: Some(p), .. }) if p == name(1) => closed = true,
            Some(_) => {}
            None => break,
        }
    }
    assert!(closed, "peers see the connection close");
    assert!(std::net::TcpStream::connect(first).is_err(), "the listener is closed");
    b.mesh.shutdown().await.expect("shutdown");
    c.mesh.shutdown().await.expect("shutdown");
    drop(events);
    let settled = eventually(&rt, 5, || open_sockets() == sockets_before).await;
    assert!(settled, "sockets {} (before {sockets_before})", open_sockets());
}
