//! The shared integration suite (`mesh_testkit::suite`) under async-std, with the mesh's
//! tasks spawned on async-std's executor.

use mesh_async_std::AsyncIo;
use mesh_testkit::suite;

fn rt() -> AsyncIo {
    AsyncIo::with_spawner(|task| {
        async_std::task::spawn(task);
    })
}

#[test]
fn counters_converge_plaintext() {
    async_std::task::block_on(suite::counters_converge(rt(), None));
}

#[test]
fn counters_converge_with_password() {
    async_std::task::block_on(suite::counters_converge(rt(), Some("s3cret")));
}

#[test]
fn a_restarted_peer_with_the_same_name_rejoins() {
    async_std::task::block_on(suite::restart_rejoins(rt()));
}

#[test]
fn a_wrong_password_is_refused_and_reported() {
    async_std::task::block_on(suite::wrong_password_refused(rt()));
}

#[test]
fn a_liveness_overlay_proves_connections_and_shows_round_trips() {
    async_std::task::block_on(suite::api::liveness_overlay(rt()));
}
