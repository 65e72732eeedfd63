//! The increment-only counter on smol: the same app, flags and HTTP interface as the
//! tokio example and weaveworks/mesh's Go app, so all three run in one cluster. The app
//! is `mesh_testkit::counter_app`; this file is its smol accept loop, with hyper over
//! async-io's sockets.
//!
//! ```text
//! cargo run -p mesh-async-std --example counter-smol -- --hwaddr 00:00:00:00:00:03 \
//!     --mesh 127.0.0.1:6003 --http 127.0.0.1:8003 --peer 127.0.0.1:6001
//! curl -X POST 127.0.0.1:8003     # incr => N
//! ```

use async_signal::{Signal, Signals};
use futures_lite::{FutureExt, StreamExt};
use mesh_async_std::AsyncIo;
use mesh_testkit::counter_app::{self, Args};
use smol_hyper::rt::FuturesIo;
use tracing::warn;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    counter_app::init_logging();
    let args = Args::parse();
    smol::block_on(async {
        let app = counter_app::start(AsyncIo::default(), args).await?;
        let listener = async_net::TcpListener::bind(app.http).await?;
        let mut signals = Signals::new([Signal::Int, Signal::Term])?;
        let serve = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let app = app.clone();
                        smol::spawn(async move { app.serve_connection(FuturesIo::new(stream)).await })
                            .detach();
                    }
                    Err(e) => warn!(error = %e, "http accept failed"),
                }
            }
        };
        serve.or(async { signals.next().await.map(|_| ()).unwrap_or(()) }).await;
        app.stop().await?;
        Ok(())
    })
}
