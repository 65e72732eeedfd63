//! Protocol message decoding, and re-encoding what decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::message::{self, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let mut again = Vec::new();
        m.encode(&mut again);
        // What we re-encode decodes to the same message.
        assert_eq!(Message::decode(&again).unwrap(), m);
    }
    let _ = message::unicast_destination(data);
});
