//! Figures for the tokio adapter:
//! - unicast throughput between two meshes on loopback, 1 KiB messages, plaintext and
//!   encrypted;
//! - idle CPU and resident memory of a 16-peer cluster in one process.
//!
//! `cargo run --release -p mesh-tokio --example bench [-- MESSAGES [IDLE_SECONDS]]`
//! (`MESSAGES` 0: only the idle cluster, whose memory is then measured cleanly)

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mesh_proto::counter::Counter;
use mesh_tokio::{Error, GossipError, Gossiper, MeshBuilder, PeerName};

/// Counts unicasts; carries no state.
struct Sink(Arc<AtomicU64>);

#[derive(Clone)]
struct Nothing;

impl mesh_tokio::GossipData for Nothing {
    fn encode(&self) -> Vec<Bytes> {
        Vec::new()
    }
    fn merge(&mut self, _: Self) {}
}

impl Gossiper for Sink {
    type Data = Nothing;
    fn gossip(&mut self) -> Option<Nothing> {
        None
    }
    fn on_gossip(&mut self, _: &[u8]) -> Result<Option<Nothing>, GossipError> {
        Ok(None)
    }
    fn on_broadcast(&mut self, _: PeerName, _: &[u8]) -> Result<Option<Nothing>, GossipError> {
        Ok(None)
    }
    fn on_unicast(&mut self, _: PeerName, _: &[u8]) -> Result<(), GossipError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

async fn throughput(messages: u64, password: Option<&str>) -> Result<f64, Error> {
    let received = Arc::new(AtomicU64::new(0));
    let (a_name, b_name) = (PeerName::from_u64(0xa1).unwrap(), PeerName::from_u64(0xb1).unwrap());
    let mut b = MeshBuilder::new(b_name).listen("127.0.0.1:0".parse().unwrap());
    let mut a = MeshBuilder::new(a_name).listen("127.0.0.1:0".parse().unwrap());
    if let Some(p) = password {
        a = a.password(p.to_owned());
        b = b.password(p.to_owned());
    }
    b.channel("bench", Sink(received.clone()));
    let channel = a.channel("bench", Sink(Arc::new(AtomicU64::new(0))));
    let b = b.start().await?;
    let a = a.peers([b.local_addr().to_string()]).start().await?;
    while !a.status().await?.unicast_routes.iter().any(|(d, _)| *d == b_name) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let payload = Bytes::from(vec![0x5a; 1024]);
    let start = Instant::now();
    // Keep many unicasts in flight; each still reports its own result.
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0;
    let mut sent = 0;
    while sent < messages {
        while issued < messages && in_flight.len() < 256 {
            let (ch, p) = (channel.clone(), payload.clone());
            in_flight.push(async move { ch.unicast(b_name, p).await });
            issued += 1;
        }
        match in_flight.next().await {
            Some(Ok(())) => sent += 1,
            // The connection has 16 MiB queued: let it drain, then send again.
            Some(Err(Error::Node(mesh_proto::NodeError::Congested(_)))) => {
                issued -= 1;
                tokio::task::yield_now().await;
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    while received.load(Ordering::Relaxed) < messages {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(rate)
}

fn cpu_seconds() -> f64 {
    // utime and stime, fields 14 and 15 of /proc/self/stat, in clock ticks (100 Hz).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn idle_cluster(peers: u64, idle: Duration) -> Result<(), Error> {
    let rss_before = rss_kib();
    let mut meshes = Vec::new();
    for i in 1..=peers {
        let name = PeerName::from_u64(0x1600 + i).unwrap();
        let mut b = MeshBuilder::new(name).listen("127.0.0.1:0".parse().unwrap()).password("idle");
        if let Some(first) = meshes.first() {
            let first: &mesh_tokio::Mesh = first;
            b = b.peers([first.local_addr().to_string()]);
        }
        b.channel("default", Counter::new(name).gossiper());
        meshes.push(b.start().await?);
    }
    loop {
        let mut done = true;
        for m in &meshes {
            done &= m.status().await?.peers.len() == peers as usize;
        }
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(idle).await;
    let cpu = cpu_seconds() - cpu0;
    let secs = t0.elapsed().as_secs_f64();
    let rss = rss_kib();
    println!(
        "idle {peers}-peer cluster over {secs:.0} s: CPU {:.2} % of one core, RSS {:.1} MiB in all ({:.0} KiB per peer over the baseline)",
        100.0 * cpu / secs,
        rss as f64 / 1024.0,
        rss.saturating_sub(rss_before) as f64 / peers as f64
    );
    for m in meshes {
        m.shutdown().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let idle: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    // MESSAGES = 0 measures the idle cluster alone, in a fresh process.
    for (label, pw) in [("plaintext", None), ("encrypted", Some("bench password"))] {
        if messages == 0 {
            break;
        }
        let rate = throughput(messages, pw).await?;
        println!("unicast 1 KiB {label}: {rate:.0} msgs/s ({:.1} MB/s)", rate * 1024.0 / 1e6);
    }
    idle_cluster(16, Duration::from_secs(idle)).await?;
    Ok(())
}
