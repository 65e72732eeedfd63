//! Every invariant can fail: each test breaks one mechanism of the core on purpose
//! (mesh-proto's `sabotage` feature), shows that a scenario catches the break with the
//! invariant that guards it while the same scenario holds without the break, and that
//! the shrinker reduces the failing scenario to a smaller one that still fails.

use mesh_sim::explore::{self, GenOptions};
use mesh_sim::runner::{RunOptions, Verdict};
use mesh_sim::scenario::Scenario;

/// How big a scenario is, for "the shrinker made it smaller": peers, faults, workload
/// operations, seconds of virtual time.
fn size(sc: &Scenario) -> (usize, usize, usize, u64) {
    let w = sc.workload;
    let work =
        w.increments + w.broadcasts + w.unicasts + w.churn + w.bulk + w.sparse_broadcasts + w.sparse_channels;
    (sc.nodes, sc.faults.len(), work, (sc.duration_ms + sc.quiet_ms) / 1000)
}

fn smaller(a: &Scenario, b: &Scenario) -> bool {
    let (x, y) = (size(a), size(b));
    x != y && x.0 <= y.0 && x.1 <= y.1 && x.2 <= y.2 && x.3 <= y.3
}

/// `json` with `sabotage` fails `invariant`; without it, `invariant` examined something
/// and held; and the shrinker reduces it to a smaller scenario that still fails.
fn caught_and_shrunk(json: &str, sabotage: &str, invariant: &str) {
    let clean = Scenario::parse(json).expect("valid scenario");
    let broken = Scenario { sabotage: vec![sabotage.to_owned()], ..clean.clone() };

    let r = explore::run_guarded(&clean, &RunOptions::default());
    assert!(r.passed(), "{sabotage}: fails without the sabotage: {:#?}", r.violations);
    let v = &r.invariants[invariant];
    assert_eq!(v.verdict, Verdict::Held, "{sabotage}: {invariant} without the sabotage: {v:?}");

    let r = explore::run_guarded(&broken, &RunOptions::default());
    assert!(
        r.violations.iter().any(|v| v.invariant == invariant),
        "{sabotage}: {invariant} did not catch it: {:#?}",
        r.violations
    );
    assert_eq!(r.invariants[invariant].verdict, Verdict::Violated);

    let (small, v) = explore::shrink_to(&broken, invariant, &|_| {}).expect("it still fails");
    assert_eq!(v.invariant, invariant);
    assert!(smaller(&small, &broken), "{sabotage}: not shrunk: {:?} from {:?}", size(&small), size(&broken));
    assert_eq!(small.sabotage, broken.sabotage);
}

#[test]
fn topology_agreement_catches_a_node_that_never_collects_garbage() {
    caught_and_shrunk(
        r#"{"name":"skip-gc","nodes":4,"duration_ms":20000,"quiet_ms":60000,
        "faults":[{"at_ms":10000,"kind":{"type":"crash","node":3}}]}"#,
        "skip_gc",
        "topology_agreement",
    );
}

#[test]
fn exactly_once_catches_a_node_that_drops_relays() {
    caught_and_shrunk(
        r#"{"name":"no-relay","nodes":4,"topology":{"kind":"line"},"discovery":false,
        "duration_ms":20000,"quiet_ms":60000,"workload":{"broadcasts":5}}"#,
        "no_broadcast_relay",
        "exactly_once",
    );
}

#[test]
fn counters_catch_a_node_that_forgets_to_merge_gossip() {
    caught_and_shrunk(
        r#"{"name":"ignore-gossip","nodes":4,"duration_ms":40000,"quiet_ms":60000,
        "workload":{"increments":20},
        "faults":[{"at_ms":2000,"until_ms":38000,"kind":{"type":"partition","left":[0,1],"right":[2,3]}}]}"#,
        "ignore_gossip",
        "counters",
    );
}

#[test]
fn slow_reader_catches_a_node_that_never_closes_a_silent_connection() {
    caught_and_shrunk(
        r#"{"name":"slow-reader","nodes":3,"duration_ms":150000,"quiet_ms":60000,
        "faults":[{"at_ms":5000,"until_ms":140000,"kind":{"type":"stop_reading","node":1}}]}"#,
        "never_close_slow_reader",
        "slow_reader",
    );
}

#[test]
fn routes_catch_next_hops_through_dead_links() {
    caught_and_shrunk(
        r#"{"name":"stale-routes","nodes":3,"topology":{"kind":"line"},"duration_ms":30000,
        "quiet_ms":60000,"faults":[{"at_ms":20000,"kind":{"type":"crash","node":1}}]}"#,
        "stale_routes",
        "routes",
    );
}

#[test]
fn broadcast_trees_catch_flooding() {
    caught_and_shrunk(
        r#"{"name":"flood","nodes":4,"topology":{"kind":"full"},"duration_ms":10000,"quiet_ms":60000}"#,
        "flood_broadcasts",
        "broadcast_trees",
    );
}

#[test]
fn queue_bound_catches_direct_sends_past_the_limit() {
    caught_and_shrunk(
        r#"{"name":"congestion","nodes":2,"link":{"latency_ms":1.0,"bandwidth_kib":64},
        "duration_ms":30000,"quiet_ms":60000,
        "workload":{"bulk":1,"payload_bytes":262144,"start_ms":5000}}"#,
        "no_congestion_limit",
        "queue_bound",
    );
}

#[test]
fn relay_channel_bound_catches_relay_channels_never_evicted() {
    caught_and_shrunk(
        r#"{"name":"relay-bound","nodes":4,"topology":{"kind":"ring"},"duration_ms":40000,
        "quiet_ms":60000,"max_relay_channels":1,"workload":{"sparse_channels":6}}"#,
        "no_relay_eviction",
        "relay_channel_bound",
    );
}

#[test]
fn reconnection_catches_a_node_that_never_redials() {
    caught_and_shrunk(
        r#"{"name":"never-redial","nodes":3,"topology":{"kind":"line"},"discovery":false,
        "duration_ms":30000,"quiet_ms":60000,
        "faults":[{"at_ms":10000,"until_ms":15000,"kind":{"type":"reset","a":1,"b":2}}]}"#,
        "never_redial",
        "reconnection",
    );
}

#[test]
fn formation_catches_newcomers_locked_out_at_the_connection_limit() {
    caught_and_shrunk(
        r#"{"name":"lockout-small","nodes":10,"topology":{"kind":"star"},"connection_limit":3,
        "duration_ms":10000,"quiet_ms":60000,"expect_formed":true}"#,
        "no_referral",
        "formation",
    );
}

#[test]
fn no_panic_catches_a_panic_in_the_core() {
    caught_and_shrunk(
        r#"{"name":"restart","nodes":3,"duration_ms":30000,"quiet_ms":60000,
        "faults":[{"at_ms":10000,"until_ms":10001,"kind":{"type":"crash","node":2}}]}"#,
        "panic_on_restart",
        "no_panic",
    );
}

#[test]
fn quiet_traffic_catches_gossip_that_circles_for_ever() {
    caught_and_shrunk(
        r#"{"name":"storm","nodes":6,"topology":{"kind":"full"},"duration_ms":40000,
        "quiet_ms":60000,"workload":{"sparse_channels":1}}"#,
        "no_relay_dedupe",
        "quiet_traffic",
    );
}

/// The explorer finds a break too, from random schedules alone.
#[test]
fn the_explorer_catches_a_sabotaged_core() {
    let opts = GenOptions { sabotage: vec!["skip_gc".into()], ..GenOptions::default() };
    let outcomes = explore::explore(1, 40, 2, &opts, &|_| {});
    let caught: Vec<u64> = outcomes
        .iter()
        .filter(|o| o.violation.as_ref().is_some_and(|v| v.invariant == "topology_agreement"))
        .map(|o| o.seed)
        .collect();
    assert!(!caught.is_empty(), "no seed of 40 caught skip_gc");
    // The same seeds pass with an intact core.
    for seed in caught {
        let sc = explore::generate(seed, &GenOptions::default());
        let r = explore::run_guarded(&sc, &RunOptions::default());
        assert!(r.passed(), "seed {seed} fails without the sabotage: {:?}", r.violations);
    }
}

/// Every sabotage has its test above (and every invariant but the synthetic `planted`
/// one is broken by one of them).
#[test]
fn every_sabotage_is_exercised() {
    let names: Vec<&str> = mesh_proto::sabotage::Sabotage::ALL.iter().map(|s| s.name()).collect();
    let tested = [
        "skip_gc",
        "no_broadcast_relay",
        "ignore_gossip",
        "never_close_slow_reader",
        "stale_routes",
        "flood_broadcasts",
        "no_congestion_limit",
        "no_relay_eviction",
        "never_redial",
        "no_referral",
        "panic_on_restart",
        "no_relay_dedupe",
    ];
    assert_eq!(names, tested);
    let guarded = [
        "topology_agreement",
        "exactly_once",
        "counters",
        "slow_reader",
        "routes",
        "broadcast_trees",
        "queue_bound",
        "relay_channel_bound",
        "reconnection",
        "formation",
        "no_panic",
        "quiet_traffic",
    ];
    for (inv, _) in mesh_sim::runner::INVARIANTS {
        assert!(inv == "planted" || guarded.contains(&inv), "no sabotage breaks {inv}");
    }
}
