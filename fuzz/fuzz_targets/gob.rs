//! The gob decoder: any stream, every typed accessor, and skipping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::gob::Stream;

fuzz_target!(|data: &[u8]| {
    let mut s = Stream::new(data);
    let mut n = 0;
    while let Ok(Some(v)) = s.next_value() {
        // Alternate between typed decoding of each shape and plain skipping.
        let r = match n % 6 {
            0 => v.decode(|f| f.scalar().map(|_| ())),
            1 => v.decode(|f| f.map(|_, e| e.scalar().map(|_| ()))),
            2 => v.decode(|f| f.slice(|e| e.structure(|_, x| x.scalar().map(|_| ())))),
            3 => v.decode(|f| f.structure(|_, x| x.slice(|_| Ok(())))),
            4 => v.decode(|_| Ok(())),
            _ => v.bytes().map(|_| ()),
        };
        n += 1;
        if r.is_err() {
            break;
        }
    }
});
