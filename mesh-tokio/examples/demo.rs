//! Five peers on loopback, bootstrapped from the first; each increments a shared counter;
//! every view converges; the final topology is printed. Exits 0.
//!
//! `cargo run -p mesh-tokio --example demo`

use std::time::{Duration, Instant};

use mesh_tokio::counter::{Counter, Counts};
use mesh_tokio::{Channel, Mesh, MeshBuilder, PeerName};

struct Peer {
    mesh: Mesh,
    counter: Counter,
    channel: Channel<Counts>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const PEERS: u64 = 5;
    let started = Instant::now();
    let mut peers: Vec<Peer> = Vec::new();
    for i in 1..=PEERS {
        let name = PeerName::from_u64(i)?;
        let mut builder = MeshBuilder::new(name)
            .nickname(format!("peer-{i}"))
            .listen("127.0.0.1:0".parse()?)
            .password("demo password");
        if let Some(first) = peers.first() {
            builder = builder.peers([first.mesh.local_addr().to_string()]);
        }
        let counter = Counter::new(name);
        let channel = builder.channel("default", counter.gossiper());
        let mesh = builder.start().await?;
        println!("started {name} (peer-{i}) on {}", mesh.local_addr());
        peers.push(Peer { mesh, counter, channel });
    }
    for p in &peers {
        p.channel.broadcast(p.counter.increment()).await?;
    }
    println!("each peer incremented the counter once; waiting for every view to reach {PEERS}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<i64> = peers.iter().map(|p| p.counter.value()).collect();
        let known: Vec<usize> = {
            let mut v = Vec::new();
            for p in &peers {
                v.push(p.mesh.status().await?.peers.len());
            }
            v
        };
        println!(
            "  t={:>5.0} ms  counters {views:?}  peers known {known:?}",
            started.elapsed().as_secs_f64() * 1000.0
        );
        if views.iter().all(|v| *v == PEERS as i64) && known.iter().all(|k| *k == PEERS as usize) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the demo did not converge within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = peers[0].mesh.status().await?;
    println!("\nfinal topology, as peer-1 sees it:");
    for p in &status.peers {
        let links: Vec<String> =
            p.connections.iter().map(|c| format!("{}({})", c.name, c.nickname)).collect();
        println!("  {}({}) -> {}", p.name, p.nickname, links.join(", "));
    }
    println!("\nroutes from peer-1:");
    for (dest, via) in &status.unicast_routes {
        if via.is_unknown() {
            println!("  {dest}: ourselves");
        } else {
            println!("  {dest}: via {via}");
        }
    }
    for p in peers {
        p.mesh.shutdown().await?;
    }
    println!("\nall five peers shut down cleanly");
    Ok(())
}
