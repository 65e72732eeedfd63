//! A hostile member inside a simulated mesh: an admitted peer that writes forged
//! topology records (`forge` faults). Each test runs the attack against the record bounds
//! and the version growth rule (docs/protocol-v2.md §17.3, §17.8), and, where a bound can
//! be lifted, once more without it, so the test shows what the bound prevents rather than
//! asserting it.

use mesh_sim::runner::{self, Report, RunOptions};
use mesh_sim::scenario::{Limits, Scenario};

/// Eight peers, no password; peer 7 speaks plaintext version 2 (so the simulator can
/// write its frames) and, 30 s in, sends `record` to the peers `to`.
fn attack(to: &str, record: &str) -> Scenario {
    Scenario::parse(&format!(
        r#"name = "hostile"
        seed = 4
        nodes = 8
        topology = {{ kind = "random", degree = 2 }}
        v2_only = [7]
        duration_ms = 90000
        quiet_ms = 60000
        expect_formed = true
        workload = {{ increments = 40, broadcasts = 10, unicasts = 10, start_ms = 10000 }}
        [[faults]]
        at_ms = 30000
        until_ms = 31000
        kind = {{ type = "forge", node = 7, to = {to}, record = {record} }}"#
    ))
    .expect("valid scenario")
}

fn run(sc: &Scenario) -> Report {
    runner::run(sc, &RunOptions::default())
}

fn unbounded(sc: &Scenario) -> Scenario {
    Scenario { record_limits: Some(Limits::none()), ..sc.clone() }
}

#[test]
fn a_record_listing_ten_thousand_and_one_connections_goes_no_further_than_its_first_receiver() {
    let sc = attack("[0]", r#"{ type = "connections", count = 10001 }"#);
    let r = run(&sc);
    assert!(r.passed(), "{:#?}", r.violations);
    assert_eq!(r.events["forgeries_sent"], 1, "{:?}", r.events);
    assert_eq!(r.events["records_refused"], 1, "peer 0 refused it and closed the connection");
    assert_eq!(r.peak_table, 8, "no table ever took the record or one of its 10,001 placeholders");
    // Without the bounds, as before them: peer 0 takes it and gossip carries it, with a
    // placeholder for every connection, into every table of the mesh (until garbage
    // collection finds the forged peer unreachable).
    let open = run(&unbounded(&sc));
    assert_eq!(open.events["forgeries_sent"], 1);
    assert_eq!(open.events["records_refused"], 0);
    assert!(
        open.peak_table_everywhere > 10_000,
        "every table: {} entries at least",
        open.peak_table_everywhere
    );
}

#[test]
fn a_record_over_the_size_or_table_bound_is_refused_whole() {
    // 5,000 connections (about 150 KB), within the connection bound, against a table bound
    // of 1,000 entries, then a record size bound of 64 KiB.
    let sc = attack("[0]", r#"{ type = "connections", count = 5000 }"#);
    for limits in [
        Limits { max_peers: Some(1000), ..Limits::default() },
        Limits { max_record_len: Some(64 << 10), ..Limits::default() },
    ] {
        let r = run(&Scenario { record_limits: Some(limits), ..sc.clone() });
        assert!(r.passed(), "{limits:?}: {:#?}", r.violations);
        assert_eq!(
            (r.events["forgeries_sent"], r.events["records_refused"]),
            (1, 1),
            "{limits:?}: {:?}",
            r.events
        );
        assert_eq!(r.peak_table, 8, "{limits:?}: nothing of the update was taken");
    }
}

#[test]
fn a_record_with_a_two_mebibyte_nickname_goes_no_further_than_its_first_receiver() {
    let sc = attack("[0]", r#"{ type = "nickname", len = 2097152 }"#);
    let r = run(&sc);
    assert!(r.passed(), "{:#?}", r.violations);
    assert_eq!((r.events["forgeries_sent"], r.events["records_refused"]), (1, 1), "{:?}", r.events);
    assert_eq!(r.peak_table, 8);
    let open = run(&unbounded(&sc));
    assert_eq!(open.events["records_refused"], 0);
    assert_eq!(open.peak_table_everywhere, 9, "the 2 MiB record reached every table");
}

#[test]
fn a_forged_claim_on_a_peers_name_pushes_no_version_out_of_reach() {
    use mesh_proto::version_growth::VERSION_BURST;
    // Peer 7 claims peer 0's name with another UID and the highest version, to peer 0
    // itself and to everyone else it is connected to.
    let sc = attack("[0, 1, 2, 3, 4, 5, 6]", r#"{ type = "claim", victim = 0 }"#);
    let r = run(&sc);
    // Every invariant, topology agreement among them: every table ends with peer 0's
    // own record, its updates still winning everywhere.
    assert!(r.passed(), "{:#?}", r.violations);
    let sent = r.events["forgeries_sent"];
    assert!(sent >= 2, "{:?}", r.events);
    assert_eq!(r.events["records_refused"], 0, "a claim is within every bound");
    assert_eq!(r.events["version_jumps_refused"], sent, "each receiver refused the leap: {:?}", r.events);
    assert!(
        r.highest_version < 2 * VERSION_BURST,
        "no record's version left the growth budget (highest {:#x}; the forgery said {:#x})",
        r.highest_version,
        u64::MAX
    );
}

#[test]
fn a_forgery_needs_a_peer_whose_frames_the_simulator_can_write() {
    let forge = r#"[[faults]]
        at_ms = 1000
        kind = { type = "forge", node = 1, to = [0], record = { type = "claim", victim = 0 } }"#;
    for head in ["nodes = 2\nv2_only = [1]\npassword = \"x\"", "nodes = 2"] {
        let err = Scenario::parse(&format!("{head}\n{forge}")).unwrap_err();
        assert!(err.to_string().contains("plaintext version 2"), "{err}");
    }
    assert!(Scenario::parse(&format!("nodes = 2\nv2_only = [1]\n{forge}")).is_ok());
    let huge = forge.replace(r#"{ type = "claim", victim = 0 }"#, r#"{ type = "nickname", len = 99999999 }"#);
    assert!(Scenario::parse(&format!("nodes = 2\nv2_only = [1]\n{huge}")).is_err());
}
