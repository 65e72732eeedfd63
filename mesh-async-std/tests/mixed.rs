//! Tokio meshes and smol meshes in one process form one mesh.

use mesh_async_std::AsyncIo;
use mesh_testkit::suite::{self, Peer};
use mesh_tokio::Tokio;

#[test]
fn tokio_and_smol_meshes_converge_together() {
    let tokio_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Two meshes on tokio; their tasks keep running on tokio's workers.
    let (t1, t2): (Peer<Tokio>, Peer<Tokio>) = tokio_rt.block_on(async {
        let a = suite::start(&Tokio, 1, Some("mixed"), &[]).await;
        let b = suite::start(&Tokio, 2, Some("mixed"), &[a.mesh.local_addr()]).await;
        (a, b)
    });
    smol::block_on(async {
        let rt = AsyncIo::default();
        let s1 = suite::start(&rt, 3, Some("mixed"), &[t1.mesh.local_addr()]).await;
        let s2 = suite::start(&rt, 4, Some("mixed"), &[t2.mesh.local_addr(), s1.mesh.local_addr()]).await;
        suite::increment(&rt, &t1).await;
        suite::increment(&rt, &t2).await;
        suite::increment(&rt, &s1).await;
        suite::increment(&rt, &s2).await;
        suite::increment(&rt, &s2).await;
        let values = || [t1.counter.value(), t2.counter.value(), s1.counter.value(), s2.counter.value()];
        assert!(suite::eventually(&rt, 20, || values() == [5; 4]).await, "{:?}", values());
        for st in [suite::status(&rt, &t1.mesh).await, suite::status(&rt, &s2.mesh).await] {
            assert_eq!(st.peers.len(), 4);
            // Tokio and smol meshes speak version 3 to each other.
            suite::assert_versions(&st, &[], 3, mesh_proto::Security::V3Password);
        }
        suite::shutdown(&rt, s1.mesh).await;
        suite::shutdown(&rt, s2.mesh).await;
        suite::shutdown(&rt, t1.mesh).await;
        suite::shutdown(&rt, t2.mesh).await;
    });
}
