//! The adapters' benchmark (`mesh_testkit::bench`) on tokio: unicast throughput between
//! two meshes on loopback and the idle cost of a 16-peer cluster.
//!
//! `cargo run --release -p mesh-tokio --example bench [-- MESSAGES [IDLE_SECONDS]]`

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    mesh_testkit::bench::run(mesh_tokio::Tokio).await
}
