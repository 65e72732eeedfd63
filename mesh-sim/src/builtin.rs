//! Built-in scenarios: the multi-node suite as named runs, and the benchmark workloads.

use crate::scenario::{Fault, FaultKind, Link, Scenario, Topology, Workload};

/// Names of the built-in scenarios, with a line each.
pub const BUILTINS: [(&str, &str); 13] = [
    ("line", "5 peers in a line, no discovery: unicasts and broadcasts relayed through the middle"),
    ("bootstrap", "10 peers joining through one"),
    ("partition-heal", "8 peers split in two halves for a minute, then healed"),
    ("restart", "a peer crashes and restarts (new UID), another restarts at once"),
    ("slow-reader", "a peer stops reading for 200 s and is disconnected"),
    ("wrong-password", "a wrong-password peer and a name-colliding peer try to join"),
    ("simultaneous-dials", "8 peers all dialling each other at once"),
    (
        "mixed-versions",
        "12 peers: version-2-only ones (as Go), ones requiring version 3 that refuse them, and ones offering both",
    ),
    ("maelstrom-3d", "25 peers, 100 ms links, a steady stream of broadcasts (Maelstrom challenge 3d)"),
    ("steady-25", "25 peers form, then 10 minutes of steady state with periodic gossip"),
    ("steady-100", "100 peers form, then 10 minutes of steady state with periodic gossip"),
    ("lockout", "120 peers joining through one with a connection limit of 8 (weaveworks/weave#426)"),
    ("bootstrap-1000", "1,000 peers joining through one with a connection limit of 64"),
];

fn fault(at_ms: u64, until_ms: Option<u64>, kind: FaultKind) -> Fault {
    Fault { at_ms, until_ms, kind }
}

/// The built-in scenario called `name`.
pub fn builtin(name: &str) -> Option<Scenario> {
    let base = Scenario { name: name.to_owned(), ..Scenario::default() };
    let some_traffic = Workload { increments: 10, broadcasts: 10, unicasts: 10, ..Workload::default() };
    Some(match name {
        "line" => Scenario {
            nodes: 5,
            topology: Topology::Line,
            discovery: false,
            workload: Workload { start_ms: 5_000, ..some_traffic },
            duration_ms: 30_000,
            quiet_ms: 60_000,
            ..base
        },
        "bootstrap" => Scenario {
            nodes: 10,
            topology: Topology::Star,
            expect_formed: true,
            workload: some_traffic,
            duration_ms: 30_000,
            quiet_ms: 60_000,
            ..base
        },
        "partition-heal" => Scenario {
            nodes: 8,
            password: Some("partition".into()),
            workload: Workload { increments: 40, broadcasts: 20, unicasts: 20, ..Workload::default() },
            faults: vec![fault(
                20_000,
                Some(80_000),
                FaultKind::Partition { left: (0..4).collect(), right: (4..8).collect() },
            )],
            duration_ms: 120_000,
            ..base
        },
        "restart" => Scenario {
            nodes: 6,
            workload: Workload { increments: 30, ..some_traffic },
            faults: vec![
                fault(20_000, Some(40_000), FaultKind::Crash { node: 3 }),
                fault(30_000, Some(30_001), FaultKind::Crash { node: 5 }),
            ],
            duration_ms: 60_000,
            ..base
        },
        "slow-reader" => Scenario {
            nodes: 5,
            workload: Workload { increments: 20, broadcasts: 20, ..Workload::default() },
            faults: vec![fault(10_000, Some(210_000), FaultKind::StopReading { node: 2 })],
            duration_ms: 240_000,
            ..base
        },
        "wrong-password" => Scenario {
            nodes: 5,
            password: Some("right".into()),
            workload: some_traffic,
            faults: vec![
                fault(10_000, Some(40_000), FaultKind::Intruder { via: 0, collides_with: None }),
                fault(15_000, Some(45_000), FaultKind::Intruder { via: 1, collides_with: Some(1) }),
            ],
            duration_ms: 60_000,
            ..base
        },
        "simultaneous-dials" => Scenario {
            nodes: 8,
            topology: Topology::Full,
            workload: some_traffic,
            duration_ms: 30_000,
            quiet_ms: 60_000,
            ..base
        },
        // Peers 0, 3, 6 and 9 offer [2, 3]; 1, 4, 7 and 10 only version 2; 2, 5, 8 and 11
        // require 3. The version-2-only and the strict peers learn of each other, dial,
        // and refuse each other for good; everyone still meets through the others.
        "mixed-versions" => Scenario {
            nodes: 12,
            topology: Topology::Random { degree: 2 },
            password: Some("mixed".into()),
            v2_only: vec![1, 4, 7, 10],
            v3_only: vec![2, 5, 8, 11],
            workload: some_traffic,
            faults: vec![fault(20_000, Some(40_000), FaultKind::Crash { node: 3 })],
            duration_ms: 60_000,
            expect_formed: true,
            ..base
        },
        "maelstrom-3d" => Scenario {
            nodes: 25,
            topology: Topology::Star,
            link: Link { latency_ms: 100.0, ..Link::default() },
            workload: Workload {
                broadcasts: 1000,
                broadcast_every_ms: Some(50),
                start_ms: 30_000,
                ..Workload::default()
            },
            duration_ms: 80_000,
            quiet_ms: 30_000,
            ..base
        },
        "steady-25" | "steady-100" => Scenario {
            nodes: if name == "steady-25" { 25 } else { 100 },
            topology: Topology::Star,
            // Measured from 60 s on, once the cluster has formed.
            workload: Workload { increments: 100, start_ms: 60_000, ..Workload::default() },
            duration_ms: 660_000,
            quiet_ms: 60_000,
            ..base
        },
        // Go locks out every peer after the limit: the hub refuses them and they learn
        // no other address. Ours refers them, keeps room for newcomers, and never
        // wastes accept tokens on diallers that gave up.
        "lockout" => Scenario {
            nodes: 120,
            topology: Topology::Star,
            connection_limit: 8,
            duration_ms: 10_000,
            quiet_ms: 60_000,
            probes: 2,
            expect_formed: true,
            ..base
        },
        "bootstrap-1000" => Scenario {
            nodes: 1000,
            topology: Topology::Star,
            connection_limit: 64,
            duration_ms: 10_000,
            quiet_ms: 300_000,
            probes: 2,
            expect_formed: true,
            ..base
        },
        _ => return None,
    })
}
