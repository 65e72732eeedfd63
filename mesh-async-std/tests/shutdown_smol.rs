//! `shutdown()` leaves no task or socket behind, under smol. Alone in its test binary, as
//! it counts the process's file descriptors.

use mesh_async_std::AsyncIo;
use mesh_testkit::suite;

#[test]
fn shutdown_leaves_no_task_or_socket_behind() {
    smol::block_on(suite::shutdown_leaves_nothing(AsyncIo::default()));
}
