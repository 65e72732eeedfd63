//! Three peers on loopback; two run the liveness overlay, which proves each of their
//! connections with its own pings over overlay control messages, the third runs none.
//! Prints what status shows of the overlay: each connection's line (the overlay's name
//! in place of Go's `none`) and attributes, and the overlay's diagnostics. Exits 0.
//!
//! `cargo run -p mesh-tokio --example overlay`

use std::time::Duration;

use mesh_tokio::overlay::{Liveness, LivenessConfig};
use mesh_tokio::{Mesh, MeshBuilder, PeerName};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut meshes: Vec<Mesh> = Vec::new();
    for i in 1..=3 {
        let name = PeerName::from_u64(i)?;
        let mut builder = MeshBuilder::new(name)
            .nickname(format!("peer-{i}"))
            .listen("127.0.0.1:0".parse()?)
            .password("overlay demo")
            .peers(meshes.iter().map(|m| m.local_addr().to_string()));
        if i <= 2 {
            let config =
                LivenessConfig { interval: Duration::from_millis(500), timeout: Duration::from_secs(5) };
            builder = builder.overlay(Liveness::new(config));
        }
        meshes.push(builder.start().await?);
    }
    for m in &meshes {
        m.wait_for_peers(2, Duration::from_secs(20)).await?;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let status = meshes[0].status().await?;
    println!("peer-1's connections:");
    for c in &status.connections {
        println!("  {:<16} {:?} {}", c.addr, c.state, c.go_info());
        for (k, v) in &c.overlay {
            println!("      {k}: {v}");
        }
    }
    println!("peer-1's overlay: {:?}", status.overlay.unwrap_or_default());
    for m in meshes {
        m.shutdown().await?;
    }
    Ok(())
}
