//! A whole handshake in either role, plaintext or encrypted, against an honest remote
//! whose bytes are cut, forged, replayed or dropped, then the running connection's read
//! path; the input format is in `mesh_fuzz::handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::handshake::{Input, run};

fuzz_target!(|data: &[u8]| {
    run(&Input::from_bytes(data));
});
