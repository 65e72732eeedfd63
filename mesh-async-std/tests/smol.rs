//! Three meshes on async-io under smol: counters converge.

use std::time::{Duration, Instant};

use mesh_async_std::{MeshBuilder, PeerName};
use mesh_proto::counter::Counter;

#[test]
fn three_meshes_converge_under_smol() {
    smol::block_on(async {
        let mut peers = Vec::new();
        for i in 1..=3u64 {
            let name = PeerName::from_u64(0x0f00 + i).unwrap();
            let mut b = MeshBuilder::new(name).listen("127.0.0.1:0".parse().unwrap()).password("smol");
            if let Some((first, _, _)) = peers.first() {
                let first: &mesh_async_std::Mesh = first;
                b = b.peers([first.local_addr().to_string()]);
            }
            let counter = Counter::new(name);
            let channel = b.channel("default", counter.gossiper());
            peers.push((b.start().await.unwrap(), counter, channel));
        }
        for (_, counter, channel) in &peers {
            channel.broadcast(counter.increment()).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !peers.iter().all(|(_, c, _)| c.value() == 3) {
            assert!(
                Instant::now() < deadline,
                "{:?}",
                peers.iter().map(|(_, c, _)| c.value()).collect::<Vec<_>>()
            );
            async_io::Timer::after(Duration::from_millis(50)).await;
        }
        for (mesh, _, _) in peers {
            mesh.shutdown().await.unwrap();
        }
    });
}
