//! `shutdown()` leaves no task and no socket behind. Alone in its test binary so the
//! process-wide counts it checks are its own.

mod common;

use std::time::Duration;

use common::{eventually, increment, start};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

#[test]
fn shutdown_leaves_no_task_or_socket_behind() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let tasks_before = tokio::runtime::Handle::current().metrics().num_alive_tasks();
        let fds_before = open_fds();
        let a = start(1, Some("pw"), &[]).await;
        let first = a.mesh.local_addr();
        let b = start(2, Some("pw"), &[first]).await;
        let c = start(3, Some("pw"), &[first]).await;
        increment(&a).await;
        assert!(eventually(20, || b.counter.value() == 1 && c.counter.value() == 1).await);
        let mut events = b.mesh.events().await.unwrap();
        assert!(tokio::runtime::Handle::current().metrics().num_alive_tasks() > tasks_before);
        assert!(open_fds() > fds_before);

        a.mesh.shutdown().await.unwrap();
        // Peers see our connections close.
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(e) = events.next().await {
                if matches!(e, mesh_tokio::Event::ConnectionClosed { peer: Some(p), .. } if p == common::name(1)) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(closed.ok(), Some(true));
        assert!(tokio::net::TcpStream::connect(first).await.is_err(), "the listener is closed");
        b.mesh.shutdown().await.unwrap();
        c.mesh.shutdown().await.unwrap();
        drop(events);
        // Sockets are closed when their last task drops them.
        let settled = eventually(5, || {
            tokio::runtime::Handle::current().metrics().num_alive_tasks() == tasks_before && open_fds() == fds_before
        })
        .await;
        assert!(
            settled,
            "tasks {} (before {tasks_before}), fds {} (before {fds_before})",
            tokio::runtime::Handle::current().metrics().num_alive_tasks(),
            open_fds()
        );
    });
}
