//! Everything here comes from `mesh_tokio`: the crate has no other mesh dependency.

use std::time::Duration;

use mesh_tokio::counter::Counter;
use mesh_tokio::{ConnectionState, Event, EventItem, Mesh, MeshBuilder, PeerName, Security, Status};

fn name(i: u64) -> PeerName {
    PeerName::from_u64(0x0a00_0000_0000 + i).expect("48-bit name")
}

async fn start(
    i: u64,
    peers: &[String],
) -> (Mesh, Counter, mesh_tokio::Channel<mesh_tokio::counter::Counts>) {
    let mut b = MeshBuilder::new(name(i))
        .nickname(format!("app{i}"))
        .listen("127.0.0.1:0".parse().unwrap())
        .password("app secret")
        .peers(peers.iter().cloned());
    let counter = Counter::new(name(i));
    let channel = b.channel("default", counter.gossiper());
    (b.start().await.expect("start"), counter, channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_on_mesh_tokio_alone() {
    let (a, counter_a, channel_a) = start(1, &[]).await;
    let first = vec![a.local_addr().to_string()];
    let (b, counter_b, _cb) = start(2, &first).await;
    let (c, counter_c, _cc) = start(3, &first).await;
    let members = a.wait_for_peers(2, Duration::from_secs(20)).await.expect("two peers");
    assert_eq!(members.iter().map(|m| m.name).collect::<Vec<_>>(), [name(2), name(3)]);
    assert_eq!(members[1].nickname, "app3");
    let mut watch = a.watch_members().await.expect("watch");
    assert_eq!(watch.next().await.expect("current members"), members);
    // The snapshot comes first, then events, which print in words.
    let mut events = a.events().await.expect("events");
    match events.next().await {
        Some(EventItem::Snapshot(s)) => assert_eq!(s.members.len(), 2),
        other => panic!("expected the snapshot, got {other:?}"),
    }
    channel_a.broadcast(counter_a.increment()).await.expect("broadcast");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while counter_b.value() != 1 || counter_c.value() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the increment did not spread");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Status fields, typed, and as JSON.
    let st: Status = a.status().await.expect("status");
    let est: Vec<_> = st.connections.iter().filter(|c| c.state == ConnectionState::Established).collect();
    assert_eq!(est.len(), 2, "{:?}", st.connections);
    assert!(est.iter().all(|c| c.protocol_version == Some(3) && c.security == Some(Security::V3Password)));
    c.shutdown().await.expect("shutdown");
    let closed = async {
        loop {
            if let Some(EventItem::Event(e @ Event::ConnectionClosed { .. })) = events.next().await {
                assert!(e.to_string().contains(&name(3).to_string()), "{e}");
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), closed).await.expect("peer 3's connection closed");
    b.shutdown().await.expect("shutdown");
    a.shutdown().await.expect("shutdown");
}
