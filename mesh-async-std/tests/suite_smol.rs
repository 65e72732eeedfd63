//! The shared integration suite (`mesh_testkit::suite`) under smol.

use mesh_async_std::AsyncIo;
use mesh_testkit::suite;

#[test]
fn counters_converge_plaintext() {
    smol::block_on(suite::counters_converge(AsyncIo::default(), None));
}

#[test]
fn counters_converge_with_password() {
    smol::block_on(suite::counters_converge(AsyncIo::default(), Some("s3cret")));
}

#[test]
fn versions_2_and_3_mix_and_a_minimum_is_enforced() {
    smol::block_on(suite::mixed_versions(AsyncIo::default()));
}

#[test]
fn a_restarted_peer_with_the_same_name_rejoins() {
    smol::block_on(suite::restart_rejoins(AsyncIo::default()));
}

#[test]
fn a_wrong_password_is_refused_and_reported() {
    smol::block_on(suite::wrong_password_refused(AsyncIo::default()));
}

/// A wait that never ends fails the suite, saying what it waited for, instead of hanging.
#[test]
#[should_panic(expected = "timed out waiting for something that never comes")]
fn a_stuck_wait_fails_instead_of_hanging() {
    smol::block_on(suite::within(
        &AsyncIo::default(),
        1,
        "something that never comes",
        std::future::pending::<()>(),
    ));
}

#[test]
fn callbacks_that_reenter_their_mesh_do_not_deadlock() {
    smol::block_on(suite::api::reentrant_callbacks_do_not_deadlock(AsyncIo::default()));
}

#[test]
fn members_their_watch_and_waiting_for_peers() {
    smol::block_on(suite::api::membership(AsyncIo::default()));
}

#[test]
fn events_start_with_a_snapshot_and_report_lag() {
    smol::block_on(suite::api::events_snapshot_and_lag(AsyncIo::default()));
}

#[test]
fn dropping_the_last_handle_shuts_the_mesh_down() {
    smol::block_on(suite::api::dropping_the_last_handle_shuts_down(AsyncIo::default()));
}

#[test]
fn gossipers_are_made_on_demand_and_found_by_name() {
    smol::block_on(suite::api::gossipers_made_on_demand(AsyncIo::default()));
}

#[test]
fn a_liveness_overlay_proves_connections_and_shows_round_trips() {
    smol::block_on(suite::api::liveness_overlay(AsyncIo::default()));
}
