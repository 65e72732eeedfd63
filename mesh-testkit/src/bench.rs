//! The adapters' benchmark, written once against [`Runtime`] (each adapter's `bench`
//! example runs it under its executor):
//! - unicast throughput between two meshes on loopback: 1 KiB messages plaintext and
//!   encrypted, 64 KiB messages encrypted, each under protocol version 2 (as with Go
//!   peers: XSalsa20-Poly1305) and version 3 (between Rust peers: ChaCha20-Poly1305);
//! - idle CPU and resident memory of a 16-peer cluster in one process.
//!
//! Arguments: `[MESSAGES [IDLE_SECONDS [ROW]]]` (`MESSAGES` 0: only the idle cluster,
//! whose memory is then measured cleanly; `ROW`: only the throughput rows whose label
//! contains it, e.g. `"64 KiB encrypted (v3)"`, for profiling).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mesh_proto::counter::Counter;
use mesh_proto::{Context, GossipData, GossipError, Gossiper, NodeError, PeerName};

use mesh_driver::{Error, Mesh, MeshBuilder, Runtime};

/// Counts unicasts; carries no state.
struct Sink(Arc<AtomicU64>);

#[derive(Clone)]
struct Nothing;

impl GossipData for Nothing {
    fn encode(&self) -> Vec<Bytes> {
        Vec::new()
    }
    fn merge(&mut self, _: Self) {}
}

impl Gossiper for Sink {
    type Data = Nothing;
    fn on_unicast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _: PeerName,
        _: &[u8],
    ) -> Result<(), GossipError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Sleeps for `d` on the runtime.
async fn sleep<R: Runtime>(rt: &R, d: Duration) {
    rt.sleep_until(Instant::now() + d).await;
}

/// Lets other tasks run once.
async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

/// Sends `messages` unicasts of `size` bytes from one mesh to another and returns the
/// rate in messages per second, from the first send to the last delivery.
pub async fn throughput<R: Runtime>(
    rt: &R,
    messages: u64,
    size: usize,
    password: Option<&str>,
    max_version: u8,
) -> Result<f64, Error> {
    let received = Arc::new(AtomicU64::new(0));
    let (a_name, b_name) = (PeerName::from_u64(0xa1).unwrap(), PeerName::from_u64(0xb1).unwrap());
    let mut b = MeshBuilder::with_runtime(rt.clone(), b_name)
        .listen("127.0.0.1:0".parse().unwrap())
        .max_protocol_version(max_version);
    let mut a = MeshBuilder::with_runtime(rt.clone(), a_name)
        .listen("127.0.0.1:0".parse().unwrap())
        .max_protocol_version(max_version);
    if let Some(p) = password {
        a = a.password(p.to_owned());
        b = b.password(p.to_owned());
    }
    b.channel("bench", Sink(received.clone()));
    let channel = a.channel("bench", Sink(Arc::new(AtomicU64::new(0))));
    let b = b.start().await?;
    let a = a.peers([b.local_addr().to_string()]).start().await?;
    while !a.status().await?.unicast_routes.iter().any(|(d, _)| *d == b_name) {
        sleep(rt, Duration::from_millis(20)).await;
    }
    let payload = Bytes::from(vec![0x5a; size]);
    let start = Instant::now();
    // The sender is a task of the runtime, as an application's would be: the future
    // `block_on` runs is on a thread of its own, a third one on two cores.
    let failed = Arc::new(std::sync::Mutex::new(None));
    let failure = failed.clone();
    rt.spawn(async move {
        if let Err(e) = send_all(channel, b_name, payload, messages).await {
            *failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
        }
    });
    while received.load(Ordering::Relaxed) < messages {
        if let Some(e) = failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(e);
        }
        // Late by at most a millisecond in runs of seconds; finer polling wakes a
        // third thread thousands of times a second on two cores.
        sleep(rt, Duration::from_millis(1)).await;
    }
    let rate = messages as f64 / start.elapsed().as_secs_f64();
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(rate)
}

/// Sends `messages` unicasts of `payload` to `dest`, many in flight; each still reports
/// its own result.
async fn send_all<R: Runtime>(
    channel: mesh_driver::Channel<Nothing, R>,
    dest: PeerName,
    payload: Bytes,
    messages: u64,
) -> Result<(), Error> {
    let mut in_flight = FuturesUnordered::new();
    let mut issued = 0;
    let mut sent = 0;
    while sent < messages {
        while issued < messages && in_flight.len() < 256 {
            let (ch, p) = (channel.clone(), payload.clone());
            in_flight.push(async move { ch.unicast_bytes(dest, p).await });
            issued += 1;
        }
        match in_flight.next().await {
            Some(Ok(())) => sent += 1,
            // The connection has 16 MiB queued: let it drain, then send again.
            Some(Err(Error::Node(NodeError::Congested(_)))) => {
                issued -= 1;
                yield_now().await;
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok(())
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

/// Starts an encrypted cluster of `peers` meshes, waits until each knows all, then
/// prints the process's CPU use and resident memory over `idle`.
pub async fn idle_cluster<R: Runtime>(rt: &R, peers: u64, idle: Duration) -> Result<(), Error> {
    let rss_before = rss_kib();
    let mut meshes = Vec::new();
    for i in 1..=peers {
        let name = PeerName::from_u64(0x1600 + i).unwrap();
        let mut b = MeshBuilder::with_runtime(rt.clone(), name)
            .listen("127.0.0.1:0".parse().unwrap())
            .password("idle");
        if let Some(first) = meshes.first() {
            let first: &Mesh<R> = first;
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
        sleep(rt, Duration::from_millis(50)).await;
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    sleep(rt, idle).await;
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

/// Runs every measurement with the command line's arguments and prints the figures.
pub async fn run<R: Runtime>(rt: R) -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let messages: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let idle: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(60);
    let row = args.next().unwrap_or_default();
    // MESSAGES = 0 measures the idle cluster alone, in a fresh process.
    if messages > 0 {
        let big = (messages / 40).max(1);
        let pw = Some("bench password");
        for (label, count, size, pw, version) in [
            ("1 KiB plaintext (v2)", messages, 1024, None, 2),
            ("1 KiB encrypted (v2)", messages, 1024, pw, 2),
            ("64 KiB encrypted (v2)", big, 64 * 1024, pw, 2),
            ("1 KiB encrypted (v3)", messages, 1024, pw, 3),
            ("64 KiB encrypted (v3)", big, 64 * 1024, pw, 3),
        ] {
            if !label.contains(row.as_str()) {
                continue;
            }
            let rate = throughput(&rt, count, size, pw, version).await?;
            println!("unicast {label}: {rate:.0} msgs/s ({:.1} MB/s)", rate * size as f64 / 1e6);
        }
    }
    idle_cluster(&rt, 16, Duration::from_secs(idle)).await?;
    Ok(())
}
