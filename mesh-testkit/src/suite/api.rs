//! The application API's promises, under each runtime: callbacks that re-enter their
//! mesh fail at once instead of freezing it, membership and its watch, events with a
//! snapshot and honest lag reports, and a mesh that ends with its last handle.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mesh_proto::counter::Counts;
use mesh_proto::{Context, Event, GossipError, Gossiper, PeerName};

use super::{STEP_SECS, eventually, name, shutdown, start, status, three, within};
use mesh_driver::{Channel, Error, EventItem, Mesh, MeshBuilder, Runtime};

/// Polls `fut` once, as a callback that blocked on it would: `Pending` means it would
/// wait for the node that is running the callback, for ever.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::pin::pin!(fut).poll(&mut cx)
}

/// What each re-entrant call returned, per callback.
type Outcomes = Arc<Mutex<Vec<(&'static str, &'static str, bool)>>>;

/// A gossiper that calls back into its own mesh from every callback, and answers
/// unicasts through its context.
struct Reentrant<R: Runtime> {
    mesh: Arc<Mutex<Option<Mesh<R>>>>,
    channel: Channel<Counts, R>,
    outcomes: Outcomes,
}

impl<R: Runtime> Reentrant<R> {
    fn reenter(&self, callback: &'static str) {
        let Some(mesh) = self.mesh.lock().unwrap().clone() else { return };
        let dest = name(2);
        let refused = |p: Poll<Result<(), Error>>| matches!(p, Poll::Ready(Err(Error::InCallback)));
        let mut o = self.outcomes.lock().unwrap();
        o.push((callback, "status", matches!(poll_once(mesh.status()), Poll::Ready(Err(Error::InCallback)))));
        o.push((callback, "broadcast", refused(poll_once(self.channel.broadcast(Counts::default())))));
        o.push((callback, "gossip", refused(poll_once(self.channel.gossip(Counts::default())))));
        o.push((callback, "unicast", refused(poll_once(self.channel.unicast_bytes(dest, &b"x"[..])))));
        o.push((
            callback,
            "members",
            matches!(poll_once(mesh.members()), Poll::Ready(Err(Error::InCallback))),
        ));
        o.push((callback, "shutdown", refused(poll_once(mesh.clone().shutdown()))));
    }
}

impl<R: Runtime> Gossiper for Reentrant<R> {
    type Data = Counts;
    fn on_gossip(&mut self, _: &mut Context<'_, Counts>, _: &[u8]) -> Result<Option<Counts>, GossipError> {
        self.reenter("on_gossip");
        Ok(None)
    }
    fn on_broadcast(
        &mut self,
        _: &mut Context<'_, Counts>,
        _: PeerName,
        _: &[u8],
    ) -> Result<Option<Counts>, GossipError> {
        self.reenter("on_broadcast");
        Ok(None)
    }
    fn on_unicast(
        &mut self,
        ctx: &mut Context<'_, Counts>,
        source: PeerName,
        p: &[u8],
    ) -> Result<(), GossipError> {
        self.reenter("on_unicast");
        if p == b"ping" {
            ctx.unicast_bytes(source, Bytes::from_static(b"pong")).map_err(GossipError::new)?;
        }
        Ok(())
    }
}

/// Records the unicasts it gets.
struct Inbox(Arc<Mutex<Vec<Vec<u8>>>>);

impl Gossiper for Inbox {
    type Data = Counts;
    fn on_unicast(&mut self, _: &mut Context<'_, Counts>, _: PeerName, p: &[u8]) -> Result<(), GossipError> {
        self.0.lock().unwrap().push(p.to_vec());
        Ok(())
    }
}

fn builder<R: Runtime>(rt: &R, i: u64, peers: &[SocketAddr]) -> MeshBuilder<R> {
    MeshBuilder::with_runtime(rt.clone(), name(i))
        .nickname(format!("peer{i}"))
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .peers(peers.iter().map(|a| a.to_string()))
}

/// A gossiper that re-enters its mesh from every callback never freezes it: each call
/// returns [`Error::InCallback`] at once, status and shutdown still answer within a
/// second, and what the callback sends through its context arrives.
pub async fn reentrant_callbacks_do_not_deadlock<R: Runtime>(rt: R) {
    let outcomes = Outcomes::default();
    let slot = Arc::new(Mutex::new(None));
    let mut a = builder(&rt, 1, &[]);
    let a_channel =
        a.channel_with("ch", |channel| Reentrant { mesh: slot.clone(), channel, outcomes: outcomes.clone() });
    let a = within(&rt, STEP_SECS, "peer 1 to start", a.start()).await.expect("start");
    *slot.lock().unwrap() = Some(a.clone());
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let mut b = builder(&rt, 2, &[a.local_addr()]);
    let b_channel = b.channel("ch", Inbox(inbox.clone()));
    let b = within(&rt, STEP_SECS, "peer 2 to start", b.start()).await.expect("start");
    within(&rt, 10, "the two peers to meet", a.wait_for_peers(1, Duration::from_secs(10)))
        .await
        .expect("joined");
    within(&rt, 10, "the two peers to meet", b.wait_for_peers(1, Duration::from_secs(10)))
        .await
        .expect("joined");
    // Every callback of peer 1's gossiper runs: a unicast, a broadcast, gossip.
    within(&rt, STEP_SECS, "a unicast", b_channel.unicast_bytes(name(1), &b"ping"[..]))
        .await
        .expect("unicast");
    within(&rt, STEP_SECS, "a broadcast", b_channel.broadcast(Counts::default())).await.expect("broadcast");
    within(&rt, STEP_SECS, "gossip", b_channel.gossip(Counts::default())).await.expect("gossip");
    let all = ["on_unicast", "on_broadcast", "on_gossip"];
    let seen = |o: &Outcomes| all.iter().all(|c| o.lock().unwrap().iter().any(|(cb, _, _)| cb == c));
    assert!(eventually(&rt, 10, || seen(&outcomes)).await, "callbacks ran: {:?}", outcomes.lock().unwrap());
    for (callback, call, refused) in outcomes.lock().unwrap().iter() {
        assert!(refused, "{call} from {callback} did not return InCallback at once");
    }
    // The reply sent through the context arrived.
    assert!(eventually(&rt, 10, || inbox.lock().unwrap().iter().any(|p| p == b"pong")).await, "no pong");
    // The node still answers, and stops, within a second.
    let st = within(&rt, 1, "status after re-entrant calls", a.status()).await.expect("status");
    assert_eq!(st.name, name(1));
    drop(a_channel);
    slot.lock().unwrap().take();
    within(&rt, 1, "shutdown after re-entrant calls", a.shutdown()).await.expect("shutdown");
    shutdown(&rt, b).await;
}

/// Members, the membership watch and `wait_for_peers`.
pub async fn membership<R: Runtime>(rt: R) {
    let peers = three(&rt, None).await;
    let a = &peers[0].mesh;
    let members =
        within(&rt, 20, "two peers", a.wait_for_peers(2, Duration::from_secs(20))).await.expect("peers");
    let names: Vec<PeerName> = members.iter().map(|m| m.name).collect();
    assert_eq!(names, [name(2), name(3)]);
    assert!(members.iter().all(|m| m.reachable && m.next_hop == Some(m.name)), "{members:?}");
    assert_eq!(members[0].nickname, "peer2");
    let listed = within(&rt, STEP_SECS, "members", a.members()).await.expect("members");
    assert_eq!(listed, members);
    // Go's Descriptions and FetchByShortID: every record, ourselves marked, and each
    // short id naming the lowest-named peer that claims it (usually the only one).
    let described =
        within(&rt, STEP_SECS, "descriptions", a.peer_descriptions()).await.expect("descriptions");
    let names: Vec<PeerName> = described.iter().map(|d| d.name).collect();
    assert_eq!(names, [name(1), name(2), name(3)]);
    assert_eq!(described.iter().filter(|d| d.is_self).map(|d| d.name).collect::<Vec<_>>(), [name(1)]);
    assert!(described.iter().all(|d| d.uid != 0 && d.connections >= 1), "{described:?}");
    for d in &described {
        let id = d.short_id.expect("every peer has a short id");
        let principal = within(&rt, STEP_SECS, "a short id", a.peer_by_short_id(id)).await.expect("lookup");
        let p = principal.expect("a claimed id names a peer");
        assert!(p <= d.name && described.iter().any(|o| o.name == p && o.short_id == Some(id)), "{id}: {p}");
    }
    // A watch yields the current members first.
    let mut watch = within(&rt, STEP_SECS, "a watch", a.watch_members()).await.expect("watch");
    let first = within(&rt, STEP_SECS, "the first members", watch.next()).await.expect("members");
    assert_eq!(first, members);
    // A peer that leaves becomes unreachable, then is forgotten: the watch sees it.
    let mut rest = peers.into_iter();
    let (a, b, c) = (rest.next().unwrap(), rest.next().unwrap(), rest.next().unwrap());
    shutdown(&rt, c.mesh).await;
    let gone = |m: &[mesh_proto::Member]| !m.iter().any(|m| m.name == name(3) && m.reachable);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let next = super::within_until(&rt, deadline, "peer 3 to go", watch.next()).await.expect("members");
        if gone(&next) {
            break;
        }
    }
    // Waiting for more than there are times out with a typed error.
    match a.mesh.wait_for_peers(5, Duration::from_millis(300)).await {
        Err(Error::Timeout { wanted: 5, reachable: 1, .. }) => {}
        other => panic!("expected a timeout with 1 reachable, got {other:?}"),
    }
    shutdown(&rt, b.mesh).await;
    shutdown(&rt, a.mesh).await;
}

/// A subscription after peers joined starts with them in its snapshot; a subscriber
/// that stops reading is told exactly how many events it missed.
pub async fn events_snapshot_and_lag<R: Runtime>(rt: R) {
    let peers = three(&rt, None).await;
    let a = &peers[0].mesh;
    within(&rt, 20, "two peers", a.wait_for_peers(2, Duration::from_secs(20))).await.expect("peers");
    let mut events = super::events(&rt, a).await;
    match within(&rt, STEP_SECS, "the snapshot", events.next()).await {
        Some(EventItem::Snapshot(s)) => {
            let names: Vec<PeerName> = s.members.iter().map(|m| m.name).collect();
            assert_eq!(names, [name(2), name(3)]);
            assert_eq!(s.connections.iter().filter(|c| c.conn.is_some()).count(), 2, "{:?}", s.connections);
        }
        other => panic!("expected a snapshot first, got {other:?}"),
    }
    // A subscriber with room for 3 items that reads nothing while a peer comes and goes
    // three times, against one that reads everything.
    let mut laggard =
        within(&rt, STEP_SECS, "a subscription", a.events_with_buffer(3)).await.expect("events");
    let mut reader = super::events(&rt, a).await;
    let mut seen = 0u64;
    for _ in 0..3 {
        let d = start(&rt, 4, None, &[a.local_addr()]).await;
        within(&rt, 10, "peer 4 to join", d.mesh.wait_for_peers(3, Duration::from_secs(10)))
            .await
            .expect("joined");
        shutdown(&rt, d.mesh).await;
        while let Some(item) = reader.try_next() {
            seen += matches!(item, EventItem::Event(_)) as u64;
        }
    }
    // Quiet for a moment: everything the rounds caused has been reported.
    rt.sleep_until(Instant::now() + Duration::from_secs(1)).await;
    while let Some(item) = reader.try_next() {
        match item {
            EventItem::Event(_) => seen += 1,
            EventItem::Lagged(n) => panic!("the reader lagged by {n}"),
            _ => {}
        }
    }
    let (mut got, mut lagged, mut lag_reports) = (0u64, 0u64, 0);
    while let Some(item) = laggard.try_next() {
        match item {
            EventItem::Event(_) => got += 1,
            EventItem::Lagged(n) => {
                lagged += n;
                lag_reports += 1;
            }
            EventItem::Snapshot(_) => assert_eq!((got, lagged), (0, 0), "the snapshot comes first"),
            other => panic!("unexpected item {other:?}"),
        }
    }
    assert!(seen > 3, "the rounds made only {seen} events");
    assert_eq!(got, 2, "room for 3 items: the snapshot and two events");
    assert_eq!(lag_reports, 1, "one gap, one report");
    assert_eq!(got + lagged, seen, "Lagged tells the true count");
    shutdown_all(&rt, peers).await;
}

async fn shutdown_all<R: Runtime>(rt: &R, peers: Vec<super::Peer<R>>) {
    for p in peers {
        shutdown(rt, p.mesh).await;
    }
}

/// Dropping the last handle shuts the mesh down: the listener refuses connections and
/// the other peer sees the connection close, within a second.
pub async fn dropping_the_last_handle_shuts_down<R: Runtime>(rt: R) {
    let a = start(&rt, 1, None, &[]).await;
    let b = start(&rt, 2, None, &[a.mesh.local_addr()]).await;
    within(&rt, 10, "the peers to meet", b.mesh.wait_for_peers(1, Duration::from_secs(10)))
        .await
        .expect("joined");
    let mut events = super::events(&rt, &b.mesh).await;
    let addr = a.mesh.local_addr();
    let second = a.mesh.clone();
    drop(a.mesh);
    // One handle left: still running.
    assert!(within(&rt, STEP_SECS, "status", second.status()).await.is_ok());
    drop(second);
    let closed = async {
        loop {
            match events.next().await {
                Some(EventItem::Event(Event::ConnectionClosed { peer: Some(p), .. })) if p == name(1) => {
                    break;
                }
                Some(_) => {}
                None => panic!("events ended"),
            }
        }
    };
    within(&rt, 1, "peer 2 to see the connection close", closed).await;
    let refused = eventually(&rt, 1, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
    })
    .await;
    assert!(refused, "the listener of a dropped mesh still accepts connections");
    // The channel handle outlived the mesh: its calls say so.
    assert!(matches!(a.channel.broadcast(Counts::default()).await, Err(Error::Stopped)));
    shutdown(&rt, b.mesh).await;
}

/// Go's `GossiperMaker` and `GetGossip` over real connections: a peer that never
/// registered channel `made-1` gets a counter made for it by its maker when the first
/// broadcast arrives, counts that broadcast, and finds the channel by name.
pub async fn gossipers_made_on_demand<R: Runtime>(rt: R) {
    use mesh_proto::MadeChannel;
    use mesh_proto::counter::Counter;
    let a = start(&rt, 1, None, &[]).await;
    let made = Counter::new(name(2));
    let counter = made.clone();
    let mut b = MeshBuilder::with_runtime(rt.clone(), name(2))
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .peers([a.mesh.local_addr().to_string()])
        .gossiper_maker(move |channel: &[u8]| {
            (channel == b"made-1").then(|| MadeChannel::new(counter.gossiper()))
        });
    let _default = b.channel("default", Counter::new(name(2)).gossiper());
    let b = within(&rt, STEP_SECS, "peer 2 to start", b.start()).await.expect("mesh starts");
    within(&rt, 20, "peer 2", a.mesh.wait_for_peers(1, Duration::from_secs(20))).await.expect("peers");
    let sender = Counter::new(name(1));
    let ch = within(&rt, STEP_SECS, "a channel", a.mesh.register_channel("made-1", sender.gossiper()))
        .await
        .expect("registered");
    within(&rt, STEP_SECS, "a broadcast", ch.broadcast(sender.increment())).await.expect("broadcast");
    assert!(eventually(&rt, 10, || made.value() == 1).await, "the made counter took the first broadcast");
    let found = within(&rt, STEP_SECS, "a lookup", b.channel::<Counts>("made-1")).await.expect("lookup");
    assert_eq!(found.map(|c| c.name().to_vec()), Some(b"made-1".to_vec()));
    let none = within(&rt, STEP_SECS, "a lookup", b.channel::<Counts>("never")).await.expect("lookup");
    assert!(none.is_none());
    shutdown(&rt, b).await;
    shutdown(&rt, a.mesh).await;
}

/// The overlay extension point over real connections: two peers running the liveness
/// overlay prove their connection with pings over control messages and show the round
/// trips in status; a third without it is established at confirmation.
pub async fn liveness_overlay<R: Runtime>(rt: R) {
    use mesh_proto::overlay::{Liveness, LivenessConfig};
    let liveness = || {
        Liveness::new(LivenessConfig {
            interval: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        })
    };
    let plain = start(&rt, 3, None, &[]).await;
    let mut meshes = Vec::new();
    for i in 1..=2u64 {
        let peers: Vec<String> = std::iter::once(plain.mesh.local_addr().to_string())
            .chain(meshes.iter().map(|m: &Mesh<R>| m.local_addr().to_string()))
            .collect();
        let mut b = MeshBuilder::with_runtime(rt.clone(), name(i))
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
            .peers(peers)
            .overlay(liveness());
        let _default = b.channel("default", mesh_proto::counter::Counter::new(name(i)).gossiper());
        meshes.push(within(&rt, STEP_SECS, "a peer to start", b.start()).await.expect("mesh starts"));
    }
    for m in &meshes {
        within(&rt, 20, "two peers", m.wait_for_peers(2, Duration::from_secs(20))).await.expect("peers");
    }
    let mut answered = false;
    for _ in 0..100 {
        let st = status(&rt, &meshes[0]).await;
        let to = |i: u64| {
            st.connections.iter().find(|c| c.remote_name == Some(name(i))).map(|c| c.overlay.clone())
        };
        if let (Some(two), Some(three)) = (to(2), to(3)) {
            let pongs = two.get("pongs").and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
            if pongs >= 3 {
                assert!(two.contains_key("rtt_us"), "{two:?}");
                assert!(three.get("remote").is_some_and(|r| r.contains("no liveness overlay")), "{three:?}");
                assert_eq!(st.overlay.as_ref().map(|d| d["overlay"].as_str()), Some("liveness"));
                let c = st.connections.iter().find(|c| c.remote_name == Some(name(2))).expect("a connection");
                assert!(c.go_info().contains("liveness "), "{}", c.go_info());
                answered = true;
                break;
            }
        }
        rt.sleep_until(Instant::now() + Duration::from_millis(100)).await;
    }
    assert!(answered, "the liveness overlay's pings were answered");
    for m in meshes {
        shutdown(&rt, m).await;
    }
    shutdown(&rt, plain.mesh).await;
}
