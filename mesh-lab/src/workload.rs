//! The workload: threads POSTing increments at a steady rate to nodes chosen at random
//! among those the lab can reach, counting every acknowledged one per node.
//!
//! An increment is *acknowledged* when its node answered `incr => N`: from then on it
//! must never be lost. One that failed before its request could arrive (connection
//! refused) is *refused*. Any other failure is *unsure*: the node may or may not have
//! counted it. So the final counter must lie in `acked ..= acked + unsure`, and equal
//! `acked` when nothing was unsure. Before a fault makes a node unreachable, the lab
//! withdraws it from the workload and waits for its requests in flight, so faults
//! themselves leave nothing unsure.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// How long one increment may take before it counts as unsure.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One node's share of the workload, shared by the threads.
#[derive(Default)]
struct Slot {
    reachable: AtomicBool,
    inflight: AtomicU32,
    /// Bumped when the node restarts: the threads drop their keep-alive connections to it.
    epoch: AtomicU32,
    acked: AtomicU64,
    refused: AtomicU64,
    unsure: AtomicU64,
}

struct Shared {
    urls: Vec<String>,
    slots: Vec<Slot>,
    stop: AtomicBool,
}

/// What the workload did, per node and in all.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Acknowledged increments, per node.
    pub acked: Vec<u64>,
    /// Refused before they could arrive, per node.
    pub refused: Vec<u64>,
    /// Failed after they may have arrived, per node.
    pub unsure: Vec<u64>,
}

impl Tally {
    /// Acknowledged increments in all.
    pub fn acked_total(&self) -> u64 {
        self.acked.iter().sum()
    }
    /// Unsure increments in all.
    pub fn unsure_total(&self) -> u64 {
        self.unsure.iter().sum()
    }
    /// Refused increments in all.
    pub fn refused_total(&self) -> u64 {
        self.refused.iter().sum()
    }
}

/// The running workload.
pub struct Workload {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Workload {
    /// Starts `workers` threads sending `rate` increments a second in all to `urls`
    /// (every node reachable), choosing nodes from a generator seeded with `seed`.
    pub fn start(urls: Vec<String>, rate: u32, workers: usize, seed: u64) -> Workload {
        let slots =
            urls.iter().map(|_| Slot { reachable: AtomicBool::new(true), ..Slot::default() }).collect();
        let shared = Arc::new(Shared { urls, slots, stop: AtomicBool::new(false) });
        let interval = Duration::from_secs_f64(workers as f64 / f64::from(rate.max(1)));
        let threads = (0..workers)
            .map(|w| {
                let shared = shared.clone();
                std::thread::spawn(move || worker(&shared, interval, seed.wrapping_add(w as u64)))
            })
            .collect();
        Workload { shared, threads }
    }

    /// Sends nothing more to node `i` and waits (at most `timeout`) for what is in flight
    /// to it; false if something still was.
    pub fn withdraw(&self, i: usize, timeout: Duration) -> bool {
        let slot = &self.shared.slots[i];
        slot.reachable.store(false, SeqCst);
        let deadline = Instant::now() + timeout;
        while slot.inflight.load(SeqCst) > 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Sends to node `i` again; `restarted` drops the connections to its old process.
    pub fn restore(&self, i: usize, restarted: bool) {
        let slot = &self.shared.slots[i];
        if restarted {
            slot.epoch.fetch_add(1, SeqCst);
        }
        slot.reachable.store(true, SeqCst);
    }

    /// What was sent so far.
    pub fn tally(&self) -> Tally {
        let s = &self.shared.slots;
        Tally {
            acked: s.iter().map(|x| x.acked.load(SeqCst)).collect(),
            refused: s.iter().map(|x| x.refused.load(SeqCst)).collect(),
            unsure: s.iter().map(|x| x.unsure.load(SeqCst)).collect(),
        }
    }

    /// Stops the threads, waits for their last requests, and tallies.
    pub fn stop(mut self) -> Tally {
        self.halt();
        self.tally()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.halt();
    }
}

/// An HTTP client whose requests give up after `timeout`.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder().timeout_global(Some(timeout)).http_status_as_error(true).build().into()
}

fn worker(shared: &Shared, interval: Duration, seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = shared.urls.len();
    // One client per node, so a restarted node's stale connections go with its client.
    let mut clients: Vec<(u32, ureq::Agent)> = (0..n).map(|_| (0, agent(REQUEST_TIMEOUT))).collect();
    let mut next = Instant::now();
    while !shared.stop.load(SeqCst) {
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_secs(1) {
            // Far behind (a slow node held us): do not catch up in a burst.
            next = now;
        }
        next += interval;
        let Some(i) = claim(shared, &mut rng) else { continue };
        let slot = &shared.slots[i];
        let epoch = slot.epoch.load(SeqCst);
        if clients[i].0 != epoch {
            clients[i] = (epoch, agent(REQUEST_TIMEOUT));
        }
        let counter = match clients[i].1.post(&shared.urls[i]).send_empty() {
            Ok(mut r) => match r.body_mut().read_to_string() {
                Ok(body) if body.starts_with("incr => ") => &slot.acked,
                _ => &slot.unsure,
            },
            Err(e) if refused(&e) => &slot.refused,
            Err(_) => &slot.unsure,
        };
        counter.fetch_add(1, SeqCst);
        slot.inflight.fetch_sub(1, SeqCst);
    }
}

/// Picks a reachable node and counts a request in flight to it. In flight first, then
/// reachable: with [`Workload::withdraw`] storing the other way round, either it sees
/// our request or we see it withdrew.
fn claim(shared: &Shared, rng: &mut fastrand::Rng) -> Option<usize> {
    for _ in 0..shared.urls.len() * 2 {
        let i = rng.usize(..shared.urls.len());
        let slot = &shared.slots[i];
        slot.inflight.fetch_add(1, SeqCst);
        if slot.reachable.load(SeqCst) {
            return Some(i);
        }
        slot.inflight.fetch_sub(1, SeqCst);
    }
    None
}

/// Whether the request cannot have reached the node: no connection was made.
fn refused(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A one-thread HTTP server that acknowledges every request on a keep-alive
    /// connection, counting them.
    fn server() -> (String, Arc<AtomicU64>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut s = s.unwrap();
                    let mut buf = [0u8; 4096];
                    while let Ok(k) = s.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        // Requests have no body: one read per request is enough here.
                        let v = c.fetch_add(1, SeqCst) + 1;
                        let body = format!("incr => {v}\n");
                        let _ = write!(s, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
                    }
                });
            }
        });
        (url, count)
    }

    #[test]
    fn every_acknowledged_increment_is_counted_and_a_withdrawn_node_gets_none() {
        let (a, ca) = server();
        let (b, cb) = server();
        // Nothing listens on port 9 of loopback: refused.
        let w = Workload::start(vec![a, b, "http://127.0.0.1:9/".into()], 400, 2, 7);
        std::thread::sleep(Duration::from_millis(300));
        assert!(w.withdraw(1, Duration::from_secs(5)));
        let before = cb.load(SeqCst);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(cb.load(SeqCst), before, "nothing is sent to a withdrawn node");
        w.restore(1, true);
        std::thread::sleep(Duration::from_millis(300));
        let t = w.stop();
        assert_eq!(t.acked[0], ca.load(SeqCst));
        assert_eq!(t.acked[1], cb.load(SeqCst));
        assert!(cb.load(SeqCst) > before, "a restored node is sent to again");
        assert_eq!(t.acked[2], 0);
        assert!(t.refused[2] > 0, "{t:?}");
        assert_eq!(t.unsure_total(), 0, "{t:?}");
    }
}
