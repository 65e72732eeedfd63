//! The shared integration suite (`mesh_testkit::suite`) under tokio: three real meshes on
//! 127.0.0.1 with ephemeral ports.

use mesh_testkit::suite;
use mesh_tokio::Tokio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_converge_plaintext() {
    suite::counters_converge(Tokio, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_converge_with_password() {
    suite::counters_converge(Tokio, Some("s3cret")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_2_and_3_mix_and_a_minimum_is_enforced() {
    suite::mixed_versions(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_with_the_same_name_rejoins() {
    suite::restart_rejoins(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_reported() {
    suite::wrong_password_refused(Tokio).await;
}

/// A wait that never ends fails the suite, saying what it waited for, instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "timed out waiting for something that never comes")]
async fn a_stuck_wait_fails_instead_of_hanging() {
    suite::within(&Tokio, 1, "something that never comes", std::future::pending::<()>()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_that_reenter_their_mesh_do_not_deadlock() {
    suite::api::reentrant_callbacks_do_not_deadlock(Tokio).await;
}

#[tokio::test(flavor = "current_thread")]
async fn callbacks_that_reenter_their_mesh_do_not_deadlock_on_one_thread() {
    suite::api::reentrant_callbacks_do_not_deadlock(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_their_watch_and_waiting_for_peers() {
    suite::api::membership(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_start_with_a_snapshot_and_report_lag() {
    suite::api::events_snapshot_and_lag(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_shuts_the_mesh_down() {
    suite::api::dropping_the_last_handle_shuts_down(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossipers_are_made_on_demand_and_found_by_name() {
    suite::api::gossipers_made_on_demand(Tokio).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liveness_overlay_proves_connections_and_shows_round_trips() {
    suite::api::liveness_overlay(Tokio).await;
}
