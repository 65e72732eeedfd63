//! The features parser (the first frame of every connection).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::features;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = features::decode(data) {
        assert!(!f.name.is_unknown());
        assert_ne!(f.uid, 0);
        assert!(f.short_id.is_none_or(|s| s < 4096));
    }
});
