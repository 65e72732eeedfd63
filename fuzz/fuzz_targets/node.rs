//! A whole `Node` driven by a sequence of operations, with honest remote peers among
//! them; the input format is in `mesh_fuzz::node`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::node::{Input, run};

fuzz_target!(|data: &[u8]| {
    run(&Input::from_bytes(data));
});
