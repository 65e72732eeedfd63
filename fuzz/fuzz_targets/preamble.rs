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
            assert!(v == 2 || v == 3, "only versions 2 and 3 are ever negotiated");
            assert_eq!(v == 3, p.min <= 3 && p.max >= 3, "version 3 exactly when the remote offers it");
        }
        if let Ok(v) = negotiate_supported(Preamble::V2_ONLY, p) {
            assert_eq!(v, 2, "a version-2-only peer negotiates only version 2");
        }
        if let Ok(v) = negotiate_supported(ours, p) {
            assert!(v == 2 || v == 3, "only versions 2 and 3 are ever negotiated");
            assert_eq!(any, Ok(v), "the supported negotiation refines Go's");
        }
        if let Ok(v) = any {
            assert!(v >= ours.min.max(p.min) && v <= ours.max.min(p.max));
        }
    }
});
