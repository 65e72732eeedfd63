//! The adapters' benchmark (`mesh_testkit::bench`) on async-io: unicast throughput between
//! two meshes on loopback and the idle cost of a 16-peer cluster.
//!
//! The mesh's tasks run on a smol `Executor` with one thread per core, as tokio's
//! multi-threaded runtime does by default, so the two adapters are compared on equal
//! threads. (smol's global executor, the adapter's default, has one thread unless
//! `SMOL_THREADS` says otherwise.)
//!
//! `cargo run --release -p mesh-async-std --example bench-smol [-- MESSAGES [IDLE_SECONDS]]`

use std::sync::LazyLock;

use mesh_async_std::AsyncIo;
use smol::Executor;

static EXECUTOR: LazyLock<Executor<'static>> = LazyLock::new(Executor::new);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..threads {
        std::thread::spawn(|| smol::block_on(EXECUTOR.run(std::future::pending::<()>())));
    }
    let rt = AsyncIo::with_spawner(|task| EXECUTOR.spawn(task).detach());
    smol::block_on(mesh_testkit::bench::run(rt))
}
