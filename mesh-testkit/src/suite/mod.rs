//! The integration suite every adapter runs, written once against [`Runtime`]: real
//! meshes over TCP on 127.0.0.1 with ephemeral ports. Each adapter's tests call these
//! functions under its executor (for tests only).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_util::future::{Either, select};
use mesh_proto::counter::{Counter, Counts};
use mesh_proto::wire::header::HeaderError;
use mesh_proto::{CloseReason, Event, PeerName};
use mesh_proto::{HandshakeError, Security};

use mesh_driver::{Channel, EventItem, Events, Mesh, MeshBuilder, Runtime};

pub mod api;
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

/// The most one step (a start, a broadcast, a status, a shutdown) may take before the
/// suite fails instead of hanging: each takes milliseconds on a healthy mesh.
pub const STEP_SECS: u64 = 20;

/// Awaits `fut` until `deadline`, timed by `rt`; past it the test fails, saying that it
/// was waiting for `what`.
pub async fn within_until<T: Runtime, F: Future>(rt: &T, deadline: Instant, what: &str, fut: F) -> F::Output {
    match select(pin!(fut), pin!(rt.sleep_until(deadline))).await {
        Either::Left((out, _)) => out,
        Either::Right(((), _)) => panic!("timed out waiting for {what}"),
    }
}

/// Awaits `fut` for at most `secs` seconds (see [`within_until`]).
pub async fn within<T: Runtime, F: Future>(rt: &T, secs: u64, what: &str, fut: F) -> F::Output {
    within_until(rt, Instant::now() + Duration::from_secs(secs), what, fut).await
}

/// Waits at most `secs` seconds in all for an event that `wanted` accepts, skipping the
/// others; fails saying it waited for `what` if none comes or the stream ends.
pub async fn wait_for_event<T: Runtime>(
    rt: &T,
    events: &mut Events,
    secs: u64,
    what: &str,
    mut wanted: impl FnMut(&Event) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match within_until(rt, deadline, what, events.next()).await {
            Some(EventItem::Event(e)) if wanted(&e) => return,
            // The snapshot and lag reports are other tests' business.
            Some(_) => {}
            None => panic!("the event stream ended while waiting for {what}"),
        }
    }
}

/// The name of suite peer `i`.
pub fn name(i: u64) -> PeerName {
    PeerName::from_u64(0x0d00_0000_0000 + i).expect("48-bit name")
}

/// Starts suite peer `i` on 127.0.0.1:0 with a counter on channel `default`, offering
/// the default protocol versions [2, 3].
pub async fn start<R: Runtime>(rt: &R, i: u64, password: Option<&str>, peers: &[SocketAddr]) -> Peer<R> {
    start_with(rt, i, password, peers, (2, 3)).await
}

/// [`start`] with the protocol versions `(min, max)`.
pub async fn start_with<R: Runtime>(
    rt: &R,
    i: u64,
    password: Option<&str>,
    peers: &[SocketAddr],
    versions: (u8, u8),
) -> Peer<R> {
    let mut b = MeshBuilder::with_runtime(rt.clone(), name(i))
        .nickname(format!("peer{i}"))
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .min_protocol_version(versions.0)
        .max_protocol_version(versions.1)
        .peers(peers.iter().map(|a| a.to_string()));
    if let Some(p) = password {
        b = b.password(p.to_owned());
    }
    let counter = Counter::new(name(i));
    let channel = b.channel("default", counter.gossiper());
    let mesh = within(rt, STEP_SECS, &format!("peer {i} to start"), b.start()).await.expect("mesh starts");
    Peer { mesh, counter, channel }
}

/// Increments a peer's counter and broadcasts it; `rt` times the wait (any runtime will
/// do, the peer's or the caller's).
pub async fn increment<T: Runtime, R: Runtime>(rt: &T, p: &Peer<R>) {
    let what = format!("{} to take a broadcast", p.mesh.name());
    within(rt, STEP_SECS, &what, p.channel.broadcast(p.counter.increment())).await.expect("broadcast");
}

/// A peer's status, waited for at most [`STEP_SECS`].
pub async fn status<T: Runtime, R: Runtime>(rt: &T, mesh: &Mesh<R>) -> mesh_proto::Status {
    within(rt, STEP_SECS, &format!("the status of {}", mesh.name()), mesh.status()).await.expect("status")
}

/// Shuts a peer down, waiting at most [`STEP_SECS`].
pub async fn shutdown<T: Runtime, R: Runtime>(rt: &T, mesh: Mesh<R>) {
    let what = format!("{} to shut down", mesh.name());
    within(rt, STEP_SECS, &what, mesh.shutdown()).await.expect("shutdown");
}

/// A peer's event stream, subscribed to within [`STEP_SECS`].
pub async fn events<T: Runtime, R: Runtime>(rt: &T, mesh: &Mesh<R>) -> Events {
    within(rt, STEP_SECS, &format!("the events of {}", mesh.name()), mesh.events()).await.expect("events")
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
            increment(&rt, p).await;
        }
    }
    let ok = eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 6)).await;
    assert!(
        ok,
        "counters never all reached 6: {:?}",
        peers.iter().map(|p| p.counter.value()).collect::<Vec<_>>()
    );
    // The counters can converge before every record has: broadcasts from a peer reach
    // the others before its record does (version 3 offers records by digest, and sends
    // them when asked). Each peer must come to know both others.
    for p in &peers {
        let known = p.mesh.wait_for_peers(2, Duration::from_secs(STEP_SECS)).await;
        known.unwrap_or_else(|e| panic!("{} never knew both other peers: {e}", p.mesh.name()));
    }
    let st = status(&rt, &peers[1].mesh).await;
    assert_eq!(st.encryption, password.is_some());
    assert_eq!(st.peers.len(), 3, "{:?}", st.peers);
    // Rust peers speak version 3 to each other, encrypted even without a password.
    let security = if password.is_some() { Security::V3Password } else { Security::V3Unauthenticated };
    for p in &peers {
        assert_versions(&status(&rt, &p.mesh).await, &[], 3, security);
    }
    for p in peers {
        shutdown(&rt, p.mesh).await;
    }
}

/// Every established connection of `st` (except to the peers in `except`) negotiated
/// `version` with `security`, and there is at least one.
pub fn assert_versions(st: &mesh_proto::Status, except: &[PeerName], version: u8, security: Security) {
    let established: Vec<_> = st
        .connections
        .iter()
        .filter(|c| c.state == mesh_proto::ConnectionState::Established)
        .filter(|c| c.remote_name.is_none_or(|r| !except.contains(&r)))
        .collect();
    assert!(!established.is_empty(), "{}: no established connection: {:?}", st.name, st.connections);
    for c in established {
        assert_eq!((c.protocol_version, c.security), (Some(version), Some(security)), "{}: {c:?}", st.name);
    }
}

/// A peer offering [2, 3], a version-2-only peer and a peer requiring version 3: the
/// first speaks version 2 to the second and 3 to the third, the third refuses the second
/// with a typed reason, and the counters converge through the first.
pub async fn mixed_versions<R: Runtime>(rt: R) {
    let both = start_with(&rt, 1, Some("mixed"), &[], (2, 3)).await;
    let first = both.mesh.local_addr();
    let old = start_with(&rt, 2, Some("mixed"), &[first], (2, 2)).await;
    let strict = start_with(&rt, 3, Some("mixed"), &[first], (3, 3)).await;
    let mut strict_events = events(&rt, &strict.mesh).await;
    // The strict peer meets the old one directly too, and refuses it.
    strict.mesh.initiate_connections([old.mesh.local_addr().to_string()], false).await.expect("dial");
    wait_for_event(&rt, &mut strict_events, 10, "peer 3 to refuse the version-2-only peer", |e| {
        matches!(
            e,
            Event::ConnectionClosed {
                reason: CloseReason::Handshake(HandshakeError::Header(HeaderError::BelowMinimum {
                    remote_max: 2,
                    our_min: 3
                })),
                ..
            }
        )
    })
    .await;
    let peers = [both, old, strict];
    for p in &peers {
        increment(&rt, p).await;
    }
    let ok = eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 3)).await;
    assert!(
        ok,
        "counters never converged: {:?}",
        peers.iter().map(|p| p.counter.value()).collect::<Vec<_>>()
    );
    let st = status(&rt, &peers[0].mesh).await;
    assert_eq!(st.protocol_versions, (2, 3));
    assert_versions(&st, &[name(3)], 2, Security::V2Password);
    assert_versions(&st, &[name(2)], 3, Security::V3Password);
    assert_versions(&status(&rt, &peers[1].mesh).await, &[], 2, Security::V2Password);
    assert_versions(&status(&rt, &peers[2].mesh).await, &[], 3, Security::V3Password);
    for p in peers {
        shutdown(&rt, p.mesh).await;
    }
}

/// A peer shut down and started again with the same name rejoins and converges.
pub async fn restart_rejoins<R: Runtime>(rt: R) {
    let mut peers = three(&rt, None).await;
    for p in &peers {
        increment(&rt, p).await;
    }
    let values = |peers: &[Peer<R>]| peers.iter().map(|p| p.counter.value()).collect::<Vec<_>>();
    let ok = eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 3)).await;
    assert!(ok, "counters never all reached 3: {:?}", values(&peers));
    let first = peers[0].mesh.local_addr();
    let old = peers.remove(2);
    let old_uid = status(&rt, &old.mesh).await.uid;
    shutdown(&rt, old.mesh).await;
    // Same name, new process: a new UID, a new port.
    let again = start(&rt, 3, None, &[first]).await;
    let new_uid = status(&rt, &again.mesh).await.uid;
    assert_ne!(old_uid, new_uid);
    // It learns the counter (including its old incarnation's increment) and is re-learnt.
    let ok = eventually(&rt, 20, || again.counter.value() == 3).await;
    assert!(ok, "the restarted peer's counter never reached 3: {}", again.counter.value());
    increment(&rt, &again).await;
    peers.push(again);
    let ok = eventually(&rt, 20, || peers.iter().all(|p| p.counter.value() == 4)).await;
    assert!(ok, "counters never all reached 4: {:?}", values(&peers));
    let first_status = status(&rt, &peers[0].mesh).await;
    let seen = first_status.peers.iter().find(|p| p.name == name(3)).expect("peer 3 known");
    assert_eq!(seen.uid, new_uid);
    for p in peers {
        shutdown(&rt, p.mesh).await;
    }
}

/// A peer with the wrong password is refused, and both sides report why.
pub async fn wrong_password_refused<R: Runtime>(rt: R) {
    let peers = three(&rt, Some("right")).await;
    let mut events = events(&rt, &peers[0].mesh).await;
    let intruder = start(&rt, 9, Some("wrong"), &[peers[0].mesh.local_addr()]).await;
    // The first peer reports why in its events...
    let what = "peer 1 to report the intruder's connection closed for a wrong password";
    wait_for_event(&rt, &mut events, 10, what, |e| {
        matches!(
            e,
            Event::ConnectionClosed { reason: CloseReason::Handshake(HandshakeError::WrongPassword), .. }
        )
    })
    .await;
    // ... and the intruder in its status.
    let mut in_status = false;
    for _ in 0..200 {
        let st = status(&rt, &intruder.mesh).await;
        if st
            .connections
            .iter()
            .any(|c| c.last_error.as_deref().is_some_and(|e| e.contains("wrong password")))
        {
            in_status = true;
            break;
        }
        rt.sleep_until(Instant::now() + Duration::from_millis(50)).await;
    }
    assert!(
        in_status,
        "the intruder's status never said wrong password: {:?}",
        status(&rt, &intruder.mesh).await.connections
    );
    let st = status(&rt, &peers[0].mesh).await;
    assert!(st.peers.iter().all(|p| p.name != name(9)), "intruder joined: {:?}", st.peers);
    shutdown(&rt, intruder.mesh).await;
    for p in peers {
        shutdown(&rt, p.mesh).await;
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
    increment(&rt, &a).await;
    let ok = eventually(&rt, 20, || b.counter.value() == 1 && c.counter.value() == 1).await;
    assert!(ok, "peers 2 and 3 never saw the increment: {} {}", b.counter.value(), c.counter.value());
    let mut events = events(&rt, &b.mesh).await;
    assert!(open_sockets() > sockets_before);

    shutdown(&rt, a.mesh).await;
    let what = "peer 2 to see its connection to the shut-down peer 1 close";
    wait_for_event(
        &rt,
        &mut events,
        5,
        what,
        |e| matches!(e, Event::ConnectionClosed { peer: Some(p), .. } if *p == name(1)),
    )
    .await;
    assert!(std::net::TcpStream::connect(first).is_err(), "the listener is closed");
    shutdown(&rt, b.mesh).await;
    shutdown(&rt, c.mesh).await;
    drop(events);
    let settled = eventually(&rt, 5, || open_sockets() == sockets_before).await;
    assert!(settled, "sockets {} (before {sockets_before})", open_sockets());
}
