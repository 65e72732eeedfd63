//! The counter example as three separate processes converges after POSTs to each.

use mesh_testkit::suite::processes::{counter_processes_converge, example};

#[test]
fn three_counter_processes_converge() {
    let tokio = example("mesh-tokio", "counter");
    counter_processes_converge(&[tokio.clone(), tokio.clone(), tokio]);
}
