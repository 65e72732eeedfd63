//! Two peers in one process; once they are connected, the first one's status is printed
//! as pretty JSON (the `serde` feature), and both shut down.
//!
//! `cargo run -p mesh-tokio --example status_json`

use std::time::Duration;

use mesh_tokio::{ConnectionState, MeshBuilder, PeerName};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = MeshBuilder::new(PeerName::from_u64(1)?)
        .nickname("first")
        .listen("127.0.0.1:0".parse()?)
        .start()
        .await?;
    let b = MeshBuilder::new(PeerName::from_u64(2)?)
        .nickname("second")
        .listen("127.0.0.1:0".parse()?)
        .peers([a.local_addr().to_string()])
        .start()
        .await?;
    let status = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let status = a.status().await?;
            if status.connections.iter().any(|c| c.state == ConnectionState::Established) {
                return Ok::<_, mesh_tokio::Error>(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await??;
    println!("{}", serde_json::to_string_pretty(&status)?);
    b.shutdown().await?;
    a.shutdown().await?;
    Ok(())
}
