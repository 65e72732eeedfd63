//! The smol counter example and the tokio one as separate processes, side by side in one
//! mesh, converge after POSTs to each.

use mesh_testkit::suite::processes::{counter_processes_converge, example};

#[test]
fn smol_and_tokio_counter_processes_converge() {
    let smol = example("mesh-async-std", "counter-smol");
    let tokio = example("mesh-tokio", "counter");
    counter_processes_converge(&[smol.clone(), tokio.clone(), smol, tokio]);
}
