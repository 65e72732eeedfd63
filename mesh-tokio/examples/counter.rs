//! The increment-only counter, a port of weaveworks/mesh's example app that works in the
//! same cluster as Go copies of it and as the smol copy (`mesh-async-std`'s example).
//! The app is `mesh_testkit::counter_app`; this file is its tokio accept loop.
//!
//! ```text
//! cargo run -p mesh-tokio --example counter -- --hwaddr 00:00:00:00:00:01 \
//!     --mesh 127.0.0.1:6001 --http 127.0.0.1:8001
//! cargo run -p mesh-tokio --example counter -- --hwaddr 00:00:00:00:00:02 \
//!     --mesh 127.0.0.1:6002 --http 127.0.0.1:8002 --peer 127.0.0.1:6001
//! curl -X POST 127.0.0.1:8001     # incr => 1
//! curl 127.0.0.1:8002             # get => 1
//! ```

use hyper_util::rt::TokioIo;
use mesh_testkit::counter_app::{self, Args};
use mesh_tokio::Tokio;
use tracing::warn;

// One thread: an idle counter does not need a worker per core, and each thread costs a
// stack and a malloc arena in every process of a cluster.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    counter_app::init_logging();
    let app = counter_app::start(Tokio, Args::parse()).await?;
    let listener = tokio::net::TcpListener::bind(app.http).await?;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = app.clone();
                    tokio::spawn(async move { app.serve_connection(TokioIo::new(stream)).await });
                }
                Err(e) => warn!(error = %e, "http accept failed"),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    app.stop().await?;
    Ok(())
}
