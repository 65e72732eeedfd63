//! The streaming frame decoder: any chunking gives the same frames and outcome; the
//! input format is in `mesh_fuzz::frame`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::frame::{Input, run};

fuzz_target!(|data: &[u8]| {
    let _ = run(&Input::from_bytes(data));
});
