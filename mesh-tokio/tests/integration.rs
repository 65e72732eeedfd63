//! Three real meshes on 127.0.0.1 with ephemeral ports.

mod common;

use std::time::Duration;

use common::{Peer, eventually, increment, name, start};
use mesh_proto::handshake::HandshakeError;
use mesh_tokio::{CloseReason, Event};

async fn three(password: Option<&str>) -> Vec<Peer> {
    let a = start(1, password, &[]).await;
    let first = a.mesh.local_addr();
    let b = start(2, password, &[first]).await;
    let c = start(3, password, &[first]).await;
    vec![a, b, c]
}

async fn counters_converge(password: Option<&str>) {
    let peers = three(password).await;
    for (k, p) in peers.iter().enumerate() {
        for _ in 0..=k {
            increment(p).await;
        }
    }
    let ok = eventually(20, || peers.iter().all(|p| p.counter.value() == 6)).await;
    assert!(ok, "counters: {:?}", peers.iter().map(|p| p.counter.value()).collect::<Vec<_>>());
    let st = peers[1].mesh.status().await.unwrap();
    assert_eq!(st.encryption, password.is_some());
    assert_eq!(st.peers.len(), 3, "{:?}", st.peers);
    for p in peers {
        p.mesh.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_converge_plaintext() {
    counters_converge(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_converge_with_password() {
    counters_converge(Some("s3cret")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_with_the_same_name_rejoins() {
    let mut peers = three(None).await;
    for p in &peers {
        increment(p).await;
    }
    assert!(eventually(20, || peers.iter().all(|p| p.counter.value() == 3)).await);
    let first = peers[0].mesh.local_addr();
    let old = peers.remove(2);
    let old_uid = old.mesh.status().await.unwrap().uid;
    old.mesh.shutdown().await.unwrap();
    // Same name, new process: a new UID, a new port.
    let again = start(3, None, &[first]).await;
    let new_uid = again.mesh.status().await.unwrap().uid;
    assert_ne!(old_uid, new_uid);
    // It learns the counter (including its old incarnation's increment) and is re-learnt.
    assert!(eventually(20, || again.counter.value() == 3).await, "{}", again.counter.value());
    increment(&again).await;
    peers.push(again);
    assert!(eventually(20, || peers.iter().all(|p| p.counter.value() == 4)).await);
    let first_status = peers[0].mesh.status().await.unwrap();
    let seen = first_status.peers.iter().find(|p| p.name == name(3)).unwrap();
    assert_eq!(seen.uid, new_uid);
    for p in peers {
        p.mesh.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_reported() {
    let peers = three(Some("right")).await;
    let mut events = peers[0].mesh.events().await.unwrap();
    let intruder = start(9, Some("wrong"), &[peers[0].mesh.local_addr()]).await;
    // The first peer reports why in its events...
    let reported = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(e) = events.next().await {
            if let Event::ConnectionClosed {
                reason: CloseReason::Handshake(HandshakeError::WrongPassword),
                ..
            } = e
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(reported.ok(), Some(true));
    // ... and the intruder in its status.
    let mut reported = false;
    for _ in 0..200 {
        let st = intruder.mesh.status().await.unwrap();
        if st.connections.iter().any(|c| c.info.contains("wrong password")) {
            reported = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reported, "{:?}", intruder.mesh.status().await.unwrap().connections);
    let st = peers[0].mesh.status().await.unwrap();
    assert!(st.peers.iter().all(|p| p.name != name(9)), "intruder joined: {:?}", st.peers);
    intruder.mesh.shutdown().await.unwrap();
    for p in peers {
        p.mesh.shutdown().await.unwrap();
    }
}
