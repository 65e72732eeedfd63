#![allow(missing_docs)] // criterion_group! generates undocumented items
//! Node throughput: unicasts relayed through a three-node line A - B - C, with an
//! in-memory driver that delivers every transmit at once.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mesh_proto::counter::Counter;
use mesh_proto::{Config, ConnId, Instant, Node, Output, PeerName};

struct Line {
    nodes: Vec<Node>,
    /// (node, conn) -> (node, conn) at the other end.
    links: BTreeMap<(usize, ConnId), (usize, ConnId)>,
    now: Instant,
}

impl Line {
    fn new(password: Option<&str>) -> Line {
        let mut nodes = Vec::new();
        for i in 0..3u64 {
            let mut c = Config::new(PeerName::from_u64(i + 1).unwrap(), format!("n{i}"));
            c.peer_discovery = false;
            c.password = password.map(|p| Bytes::copy_from_slice(p.as_bytes()));
            nodes.push(Node::new(c, Node::seed_from_u64(i), Instant::ZERO).unwrap());
        }
        let mut line = Line { nodes, links: BTreeMap::new(), now: Instant::ZERO };
        for n in &mut line.nodes {
            let counter = Counter::new(n.name());
            n.register_channel("default", counter.gossiper()).unwrap();
        }
        line.dial(0, 1);
        line.dial(1, 2);
        line.pump();
        for _ in 0..20 {
            line.now += Duration::from_millis(200);
            let now = line.now;
            for n in &mut line.nodes {
                n.handle_timeout(now);
            }
            line.pump();
        }
        line
    }

    fn dial(&mut self, a: usize, b: usize) {
        let now = self.now;
        self.nodes[a].initiate_connections(&[format!("10.0.0.{}:6783", b + 1)], false, now);
    }

    /// Delivers every output until all nodes are quiet; returns bytes moved.
    fn pump(&mut self) -> usize {
        let mut moved = 0;
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(o) = self.nodes[i].poll_output() {
                    any = true;
                    let now = self.now;
                    match o {
                        Output::Transmit { conn, data } => {
                            moved += data.len();
                            if let Some(&(j, theirs)) = self.links.get(&(i, conn)) {
                                self.nodes[j].handle_data(theirs, &data, now);
                            }
                            self.nodes[i].handle_written(conn, data.len(), now);
                        }
                        Output::Dial { conn, addr } => {
                            // 10.0.0.N:6783 is node N - 1.
                            let j = addr[7..addr.len() - 5].parse::<usize>().unwrap() - 1;
                            let from = format!("10.0.0.{}:40000", i + 1).parse().unwrap();
                            let theirs = self.nodes[j].handle_accepted(from, now);
                            self.links.insert((i, conn), (j, theirs));
                            self.links.insert((j, theirs), (i, conn));
                            self.nodes[i].handle_dialed(conn, now);
                        }
                        _ => {}
                    }
                }
            }
            if !any {
                return moved;
            }
        }
    }
}

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("node-line-relay");
    const BATCH: u64 = 100;
    g.throughput(Throughput::Elements(BATCH));
    for (label, pw) in [("plaintext-1KiB", None), ("encrypted-1KiB", Some("s3cret"))] {
        let mut line = Line::new(pw);
        let dest = line.nodes[2].name();
        let channel = {
            // A handle for the already registered channel: register a second one for
            // unicasts so the counter's state is untouched.
            let counter = Counter::new(line.nodes[0].name());
            line.nodes[0].register_channel("bench", counter.gossiper()).unwrap()
        };
        let payload = vec![0x5au8; 1024];
        g.bench_function(label, |b| {
            b.iter(|| {
                let now = line.now;
                for _ in 0..BATCH {
                    line.nodes[0].unicast(&channel, dest, &payload, now).unwrap();
                }
                line.pump();
            });
        });
        assert!(line.nodes[1].stats().unicasts_relayed > 0);
    }
    g.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
