//! The 7-byte preamble and version negotiation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::header::{Preamble, negotiate, negotiate_supported};

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let theirs: [u8; 7] = data[..7].try_into().unwrap();
    let ours = Preamble { min: data[7], max: data[8] };
    if let Ok(p) = Preamble::decode(&theirs) {
        let any = negotiate(ours, p);
        if let Ok(v) = negotiate_supported(Preamble::OURS, p) {
            assert_eq!(v, 2, "only version 2 is ever negotiated");
        }
        if let Ok(v) = any {
            assert!(v >= ours.min.max(p.min) && v <= ours.max.min(p.max));
        }
    }
});
