//! The status snapshot as JSON (the `serde` feature, enabled for these tests by the
//! crate's dev-dependency on itself): three meshes in one process, each one's status
//! serialized with serde_json and parsed back.

use std::time::Duration;

use mesh_tokio::{ConnectionState, Mesh, MeshBuilder, PeerName, Status};

/// Whether `mesh` holds two established connections and knows every peer's two.
async fn settled(mesh: &Mesh) -> bool {
    let st = mesh.status().await.expect("status");
    st.connections.iter().filter(|c| c.state == ConnectionState::Established).count() == 2
        && st.peers.len() == 3
        && st.peers.iter().all(|p| p.connections.iter().filter(|c| c.established).count() == 2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_status_round_trips_through_json() {
    let names: Vec<PeerName> = (1..=3).map(|i| PeerName::from_u64(i).unwrap()).collect();
    let mut meshes: Vec<Mesh> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut builder = MeshBuilder::new(*name)
            .nickname(format!("json-{}", i + 1))
            .listen("127.0.0.1:0".parse().unwrap())
            .password("status as json");
        // A full mesh: each peer dials the ones started before it.
        builder = builder.peers(meshes.iter().map(|m| m.local_addr().to_string()).collect::<Vec<_>>());
        meshes.push(builder.start().await.expect("start"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut all = true;
        for m in &meshes {
            all &= settled(m).await;
        }
        if all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the three peers did not connect and converge in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for (i, m) in meshes.iter().enumerate() {
        let status = m.status().await.expect("status");
        let json = serde_json::to_string(&status).expect("serialize");
        let back: Status = serde_json::from_str(&json).expect("parse back");
        assert_eq!(back, status, "{json}");

        // Names are text, nicknames are text, and the connections are typed.
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["name"], names[i].to_string());
        assert_eq!(value["nickname"], format!("json-{}", i + 1));
        assert_eq!(back.protocol, "weave");
        let mut peers: Vec<PeerName> = back.peers.iter().map(|p| p.name).collect();
        peers.sort();
        assert_eq!(peers, names, "{json}");
        for p in &back.peers {
            assert_eq!(p.connections.len(), 2, "{json}");
            assert!(p.connections.iter().all(|c| c.established), "{json}");
        }
        let connections: Vec<_> =
            back.connections.iter().filter(|c| c.state == ConnectionState::Established).collect();
        assert_eq!(connections.len(), 2, "{json}");
        for c in connections {
            let remote = c.remote_name.expect("an established connection names its remote");
            assert!(remote != names[i] && names.contains(&remote), "{json}");
            let nickname = c.remote_nickname.as_deref().expect("and its nickname");
            assert!(nickname.starts_with("json-"), "{json}");
            assert_eq!(c.protocol_version, Some(3), "{json}");
            assert_eq!(c.security, Some(mesh_tokio::Security::V3Password), "{json}");
            assert!(c.go_info().starts_with("encrypted v3 none "), "{}", c.go_info());
        }
    }
    for m in meshes {
        m.shutdown().await.expect("shutdown");
    }
}
