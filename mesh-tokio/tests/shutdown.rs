//! `shutdown()` leaves no task or socket behind, under tokio: the shared check, plus
//! tokio's own count of alive tasks. Alone in its test binary, as it counts process-wide
//! resources.

use std::time::Duration;

use mesh_testkit::suite;
use mesh_tokio::Tokio;

#[test]
fn shutdown_leaves_no_task_or_socket_behind() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let alive = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let tasks_before = alive();
        suite::shutdown_leaves_nothing(Tokio).await;
        // `shutdown` returns once every task has released what it holds (its guard is
        // the last thing it drops); tokio counts a task as ended a moment later, when
        // its final poll returns, possibly on another worker thread.
        for _ in 0..100 {
            if alive() == tasks_before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(alive(), tasks_before, "every task of the meshes has ended");
    });
}
