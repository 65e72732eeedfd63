//! `shutdown()` leaves no task or socket behind, under tokio: the shared check, plus
//! tokio's own count of alive tasks. Alone in its test binary, as it counts process-wide
//! resources.

use mesh_driver::suite;
use mesh_tokio::Tokio;

#[test]
fn shutdown_leaves_no_task_or_socket_behind() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let tasks_before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        suite::shutdown_leaves_nothing(Tokio).await;
        let tasks_after = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        assert_eq!(tasks_after, tasks_before, "every task of the meshes has ended");
    });
}
