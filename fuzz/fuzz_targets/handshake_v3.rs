//! A version 3 handshake in either role, with or without a password, against an honest
//! remote whose bytes are cut, forged, replayed, dropped or overwritten, or against raw
//! bytes; then the running connection's read path. The input format is in
//! `mesh_fuzz::handshake_v3`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_fuzz::handshake_v3::{Input, run};

fuzz_target!(|data: &[u8]| {
    run(&Input::from_bytes(data));
});
