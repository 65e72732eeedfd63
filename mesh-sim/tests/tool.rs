//! The simulator as a tool: random schedules with every invariant checked, the built-in
//! scenarios, exact replay, and shrinking.

use mesh_sim::builtin::builtin;
use mesh_sim::explore::{self, GenOptions};
use mesh_sim::runner::{self, RunOptions};
use mesh_sim::scenario::{Fault, FaultKind, Planted, Scenario};

#[test]
fn two_hundred_random_schedules_hold_every_invariant() {
    let outcomes = explore::explore(1, 200, 2, &GenOptions::default(), &|_| {});
    assert_eq!(outcomes.len(), 200);
    let failed: Vec<String> =
        outcomes.iter().filter_map(|o| o.violation.as_ref().map(|v| v.to_string())).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    // The schedules exercised every fault class and the protocol's recovery paths.
    let total = |k: &str| {
        outcomes.iter().flat_map(|o| &o.counts).filter(|(n, _)| n == k).map(|(_, v)| v).sum::<u64>()
    };
    for class in FaultKind::CLASSES {
        assert!(total(class) > 0, "no schedule applied {class}");
    }
    for event in [
        "handshakes",
        "tie_breaks",
        "restarts_detected",
        "gc_removed",
        "backoffs",
        "handshakes_refused",
        "relay_channels_evicted",
    ] {
        assert!(total(event) > 0, "no schedule produced {event}");
    }
    // Every invariant examined something in most schedules (the planted check is only
    // for the shrinker's tests), and the bounds were pushed to at least half their limit
    // in some.
    let coverage = explore::coverage(&outcomes);
    assert_eq!(coverage.len(), mesh_sim::runner::INVARIANTS.len());
    for (name, c) in &coverage {
        if name == "planted" {
            assert_eq!(c.applied, 0);
        } else {
            assert!(
                c.applied * 2 > outcomes.len() as u64,
                "{name} applied in only {} of 200 schedules",
                c.applied
            );
        }
    }
    for bound in ["queue_bound", "relay_channel_bound"] {
        assert!(coverage[bound].half_loaded > 0, "no schedule took {bound} to half its limit");
    }
}

fn run_builtin(name: &str) -> runner::Report {
    let sc = builtin(name).expect("built-in");
    let report = runner::run(&sc, &RunOptions::default());
    assert!(report.passed(), "{name}: {:#?}", report.violations);
    report
}

#[test]
fn the_built_in_suite_passes() {
    let r = run_builtin("line");
    assert!(r.broadcasts >= 10 && r.broadcast_latency_ms.is_some());
    let r = run_builtin("bootstrap");
    // No fault: convergence is the bootstrap itself, of one mesh.
    assert_eq!((r.final_heal_ms, r.convergence_as_one_mesh), (0, true));
    assert_eq!(r.convergence_ms.map(|c| c > 0 && c < 5_000), Some(true), "{:?}", r.convergence_ms);
    let r = run_builtin("partition-heal");
    assert_eq!(r.faults["partition"], 1);
    assert!(r.events["backoffs"] > 0);
    // Measured from the partition's end, to one agreeing mesh: the halves reconnect only
    // when their back-off lets them.
    assert_eq!((r.final_heal_ms, r.convergence_as_one_mesh), (80_000, true));
    assert_eq!(r.convergence_ms.map(|c| c > 2_000 && c < 120_000), Some(true), "{:?}", r.convergence_ms);
    let r = run_builtin("restart");
    assert!(r.events["restarts_detected"] > 0);
    let r = run_builtin("slow-reader");
    assert_eq!(r.faults["stop_reading"], 1);
    assert_eq!(r.invariants["slow_reader"].examined, 1);
    let r = run_builtin("wrong-password");
    assert!(r.events["handshakes_refused"] > 0);
    assert!(r.events["name_collisions_refused"] > 0);
    let r = run_builtin("simultaneous-dials");
    assert!(r.events["tie_breaks"] > 0);
}

/// Regression (found by `bootstrap-1000`): with a connection limit, peers bootstrapping
/// from one peer were locked out for good (weaveworks/weave#426), and a burst of dials
/// that timed out in the accept queue emptied the accept bucket for minutes.
#[test]
fn peers_beyond_the_connection_limit_still_join() {
    let r = run_builtin("lockout");
    assert!(r.held("formation"));
    assert!(r.convergence_ms.is_some(), "never converged");
    assert!(r.events["handshakes"] > 120);
    let full = r.series.full_topology.last().map(|p| p.1);
    assert_eq!(full, Some(1.0));
}

/// Regression (explore seeds 4444 and 7680): a restarted peer dials only its initial
/// peers, so the reconnection check must forget the churn that peer had done.
#[test]
fn a_restart_forgets_the_churned_dials() {
    let scenario = Scenario::parse(
        r#"{"name":"random-4444-shrunk","seed":4444,"nodes":2,"topology":{"kind":"ring"},
        "password":null,"connection_limit":2,"discovery":true,"gossip_interval_ms":30000,
        "link":{"latency_ms":1.0,"jitter_ms":0.0,"bandwidth_kib":null},
        "workload":{"increments":6,"broadcasts":0,"unicasts":16,"churn":3,"broadcast_every_ms":null,"start_ms":0},
        "faults":[{"at_ms":84202,"until_ms":84648,"kind":{"type":"crash","node":0}}],
        "duration_ms":84648,"quiet_ms":18750,"probes":4,"planted":null,"expect_formed":false}"#,
    )
    .expect("valid scenario");
    let r = runner::run(&scenario, &RunOptions::default());
    assert_eq!(r.faults["churn"], 2, "the schedule still churns");
    assert!(r.passed(), "{:?}", r.violations);
}

/// Regression (explore seed 177, shrunk): relay-only channels evicted at their bound
/// forgot the gossip they had relayed, so with more channels in flight than the bound
/// the same gossip circled the ring for ever (8,566 frames per peer per second). The
/// node now remembers relayed gossip across evictions.
#[test]
fn evicted_relay_channels_do_not_make_gossip_circle() {
    let scenario = Scenario::parse(
        r#"{"name":"random-177-shrunk","seed":177,"nodes":7,"topology":{"kind":"ring"},
        "password":null,"connection_limit":64,"discovery":true,"gossip_interval_ms":30000,
        "link":{"latency_ms":1.0,"jitter_ms":0.0,"bandwidth_kib":null},
        "workload":{"increments":0,"broadcasts":0,"unicasts":0,"churn":0,"broadcast_every_ms":null,
        "start_ms":0,"bulk":0,"payload_bytes":0,"sparse_channels":7,"sparse_broadcasts":0},
        "faults":[],"duration_ms":1000,"quiet_ms":37500,"probes":1,"planted":null,
        "expect_formed":false,"max_relay_channels":2,"sabotage":[]}"#,
    )
    .expect("valid scenario");
    let r = runner::run(&scenario, &RunOptions::default());
    assert!(r.passed(), "{:?}", r.violations);
    assert!(r.held("quiet_traffic") && r.held("relay_channel_bound"));
    assert!(r.events["relay_channels_evicted"] > 0, "the bound was reached");
}

/// Regression: a pipe whose two ends closed at about the same time stayed "open" in the
/// simulator for ever, so `slow_reader` counted long-dead duplicate connections from the
/// bootstrap as connections the slow reader kept (the 12 "still open" connections first
/// reported for this scenario, a slow WAN with a black hole and a slow link).
#[test]
fn connections_closed_at_both_ends_are_gone() {
    let scenario = Scenario::parse(
        r#"name = "slow-wan"
        seed = 5
        nodes = 16
        topology = { kind = "random", degree = 2 }
        password = "wan"
        duration_ms = 300000
        quiet_ms = 300000
        expect_formed = true
        link = { latency_ms = 250.0, jitter_ms = 50.0, bandwidth_kib = 64 }
        workload = { increments = 300, broadcasts = 50, unicasts = 50, start_ms = 30000 }
        [[faults]]
        at_ms = 60000
        until_ms = 200000
        kind = { type = "black_hole", a = 0, b = 1 }
        [[faults]]
        at_ms = 100000
        until_ms = 250000
        kind = { type = "stop_reading", node = 5 }
        [[faults]]
        at_ms = 120000
        until_ms = 180000
        kind = { type = "slow_link", a = 2, b = 3, link = { latency_ms = 2000.0, jitter_ms = 500.0, bandwidth_kib = 4 } }"#,
    )
    .expect("valid scenario");
    let r = runner::run(&scenario, &RunOptions::default());
    assert!(r.passed(), "{:?}", r.violations);
    assert_eq!(r.invariants["slow_reader"].examined, 1);
}

#[test]
fn a_seed_replays_exactly() {
    let sc = explore::generate(4242, &GenOptions::default());
    let a = runner::run(&sc, &RunOptions::default());
    let b = runner::run(&sc, &RunOptions::default());
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.series.full_topology, b.series.full_topology);
    let json = |mut r: runner::Report| {
        r.wall = None;
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(json(a), json(b));
    let other = runner::run(&explore::generate(4243, &GenOptions::default()), &RunOptions::default());
    assert_ne!(other.digest, runner::run(&sc, &RunOptions::default()).digest);
}

#[test]
fn shrinking_finds_the_one_fault_that_matters() {
    // A busy schedule with a planted failure: one-way partitions longer than 20 s fail.
    let mut sc = explore::generate(77, &GenOptions { max_faults: 0, ..GenOptions::default() });
    sc.nodes = 6;
    sc.duration_ms = 120_000;
    sc.planted = Some(Planted { one_way_longer_than_ms: 20_000 });
    sc.faults = vec![
        Fault { at_ms: 5_000, until_ms: Some(25_000), kind: FaultKind::Crash { node: 1 } },
        Fault {
            at_ms: 10_000,
            until_ms: Some(20_000),
            kind: FaultKind::OneWay { from: vec![0], to: vec![2] },
        },
        Fault {
            at_ms: 30_000,
            until_ms: Some(90_000),
            kind: FaultKind::OneWay { from: vec![3, 4], to: vec![5] },
        },
        Fault { at_ms: 40_000, until_ms: Some(60_000), kind: FaultKind::StopReading { node: 2 } },
        Fault {
            at_ms: 50_000,
            until_ms: Some(70_000),
            kind: FaultKind::Partition { left: vec![0, 1], right: vec![2, 3] },
        },
    ];
    let report = runner::run(&sc, &RunOptions::default());
    assert_eq!(report.first_violation().map(|v| v.invariant.as_str()), Some("planted"));
    let (small, v) = explore::shrink(&sc, &|_| {}).expect("it fails");
    assert_eq!(v.invariant, "planted");
    assert_eq!(small.faults.len(), 1, "{:#?}", small.faults);
    let f = &small.faults[0];
    assert!(matches!(f.kind, FaultKind::OneWay { .. }));
    assert!(f.until_ms.unwrap_or(small.duration_ms) - f.at_ms > 20_000);
    assert!(small.nodes < sc.nodes, "nodes not reduced: {}", small.nodes);
    // The printed test is a scenario that parses back to the same thing.
    let test = explore::as_test(&small, &v);
    let json = test.split("r#\"").nth(1).and_then(|t| t.split("\"#").next()).unwrap();
    assert_eq!(Scenario::parse(json).unwrap(), small);
}

#[test]
fn a_skewed_clock_does_not_break_the_mesh() {
    let mut sc = builtin("partition-heal").unwrap();
    sc.faults.push(Fault {
        at_ms: 1_000,
        until_ms: Some(100_000),
        kind: FaultKind::ClockSkew { node: 1, offset_ms: 5_000, rate_ppm: 50_000 },
    });
    sc.faults.push(Fault {
        at_ms: 2_000,
        until_ms: Some(100_000),
        kind: FaultKind::ClockSkew { node: 6, offset_ms: 0, rate_ppm: -50_000 },
    });
    let r = runner::run(&sc, &RunOptions::default());
    assert!(r.passed(), "{:#?}", r.violations);
    assert_eq!(r.faults["clock_skew"], 2);
}

#[test]
fn malformed_scenarios_are_refused_with_a_reason() {
    assert!(Scenario::parse("{ \"nodes\": 0 }").unwrap_err().to_string().contains("nodes"));
    assert!(Scenario::parse("{ \"nodez\": 3 }").unwrap_err().to_string().contains("nodez"));
    assert!(
        Scenario::parse("nodes = 3\n[[faults]]\nat_ms = 1\nkind = { type = \"crash\", node = 9 }").is_err()
    );
    let ok = Scenario::parse("name = \"t\"\nnodes = 3\n[[faults]]\nat_ms = 1000\nuntil_ms = 2000\nkind = { type = \"crash\", node = 2 }").unwrap();
    assert_eq!(ok.faults.len(), 1);
}

#[test]
fn the_readme_scenario_file_parses_and_runs() {
    let readme = include_str!("../../README.md");
    let toml = readme.split("```toml\n").nth(1).and_then(|t| t.split("```").next()).expect("a TOML block");
    let sc = Scenario::parse(toml).expect("the README's scenario parses");
    assert_eq!(sc.faults.len(), 1);
    let r = runner::run(&sc, &RunOptions::default());
    assert!(r.passed(), "{:#?}", r.violations);
    assert_eq!(r.faults["one_way"], 1);
}

/// Version 3's digest-based topology exchange against version 2's whole-table gossip, on
/// the same 25-peer steady state: every invariant holds under both, and in steady state
/// version 3 sends less than a fiftieth of version 2's bytes per gossip interval.
#[test]
fn version_3_steady_state_costs_a_fiftieth_of_version_2() {
    let v3 = run_builtin("steady-25");
    let mut sc = builtin("steady-25").expect("built-in");
    sc.v2_only = (0..sc.nodes).collect();
    let v2 = runner::run(&sc, &RunOptions::default());
    assert!(v2.passed(), "{:#?}", v2.violations);
    assert_eq!(v2.events["handshakes_v3"], 0);
    assert_eq!(v3.events["handshakes_v3"], v3.events["handshakes"]);
    let steady = |r: &runner::Report| r.steady_bytes_per_peer_per_interval.expect("a steady interval");
    let (b2, b3) = (steady(&v2), steady(&v3));
    assert!(b3 * 50.0 <= b2, "steady bytes per peer per interval: v2 {b2:.0}, v3 {b3:.0}");
    assert!(v3.bytes_per_peer * 5.0 <= v2.bytes_per_peer, "{} vs {}", v3.bytes_per_peer, v2.bytes_per_peer);
}

/// A peer that stops reading and puts up with hearing nothing (a long receive timeout,
/// as a hostile or stuck peer would) on quiet links: version 3's heartbeat
/// acknowledgements close its connections within the slow-reader bound; version 2 has
/// no way to tell, and the invariant catches it keeping them.
#[test]
fn a_patient_peer_that_stops_reading_is_found_only_by_version_3() {
    let scenario = Scenario::parse(
        r#"name = "deaf-reader"
        seed = 3
        nodes = 8
        topology = { kind = "random", degree = 2 }
        password = "deaf"
        duration_ms = 300000
        quiet_ms = 120000
        receive_timeout_ms = 600000
        [[faults]]
        at_ms = 30000
        until_ms = 250000
        kind = { type = "stop_reading", node = 3 }"#,
    )
    .expect("valid scenario");
    let v3 = runner::run(&scenario, &RunOptions::default());
    assert!(v3.passed(), "{:#?}", v3.violations);
    assert_eq!(v3.invariants["slow_reader"].examined, 1);
    assert!(v3.events["slow_reader_closes"] > 0, "{:?}", v3.events);
    let mut v2 = scenario.clone();
    v2.v2_only = (0..v2.nodes).collect();
    let v2 = runner::run(&v2, &RunOptions::default());
    assert!(
        v2.violations.iter().any(|v| v.invariant == "slow_reader"),
        "version 2 was expected to keep the stopped reader's connections: {:#?}",
        v2.violations
    );
}
