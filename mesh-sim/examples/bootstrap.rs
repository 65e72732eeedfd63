//! Simulator report: N peers bootstrapping from one.
//!
//! `cargo run --release -p mesh-sim --example bootstrap -- [PEERS] [SEED] [CONN_LIMIT]`
//! prints the virtual time to full convergence (every peer holds the same topology and
//! a route to every other), the wall time, and the bytes each peer sent.

use std::time::{Duration, Instant as Wall};

use mesh_proto::{Config, PeerName};
use mesh_sim::Sim;
use mesh_sim::apps::counter_setup;

fn main() {
    let mut args = std::env::args().skip(1);
    let peers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let limit: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let wall = Wall::now();
    let mut sim = Sim::new(seed);
    let ids: Vec<_> = (0..peers)
        .map(|i| {
            let mut c =
                Config::new(PeerName::from_u64(0x0e00_0000_0000 + i as u64 + 1).unwrap(), format!("p{i}"));
            c.conn_limit = limit;
            let bootstrap = if i == 0 { vec![] } else { vec![Sim::address_of(0)] };
            sim.add_node(c, counter_setup(bootstrap))
        })
        .collect();
    let took = sim.run_until_true(Duration::from_secs(3600), Duration::from_millis(100), |s| {
        s.topology_converged(&ids) && s.routes_complete(&ids)
    });
    let elapsed = wall.elapsed();
    let total: u64 = sim.bytes_sent.iter().sum();
    let max = sim.bytes_sent.iter().max().copied().unwrap_or(0);
    let conns: usize = ids.iter().map(|i| sim.node(*i).map_or(0, |n| n.connected_peers().len())).sum();
    println!("peers                     {peers}");
    println!("seed                      {seed}");
    println!("connection limit          {}", if limit == 0 { "none".to_owned() } else { limit.to_string() });
    match took {
        Some(t) => println!("virtual time to converge  {:.1} s", t.as_secs_f64()),
        None => println!("virtual time to converge  did not converge within 1 h"),
    }
    println!("wall time                 {:.2} s", elapsed.as_secs_f64());
    println!("connections (per peer)    {:.1}", conns as f64 / peers as f64);
    println!("bytes sent per peer       {:.0} (max {max})", total as f64 / peers as f64);
}
