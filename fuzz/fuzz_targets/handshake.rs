//! A whole handshake in either role, plaintext or encrypted, fed arbitrary chunks. In
//! fuzzing builds the AEAD does not check tags, so the features parser behind it is
//! reached too.
#![no_main]

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mesh_proto::handshake::{Handshake, HandshakeConfig, Progress, Role};
use mesh_proto::wire::header::Preamble;
use mesh_proto::{Instant, PeerName};

#[derive(Arbitrary, Debug)]
struct Input {
    dialer: bool,
    encrypted: bool,
    /// Start with a valid preamble and flag, to get past the first steps quickly.
    valid_start: bool,
    chunks: Vec<Vec<u8>>,
    timeout_ms: u16,
}

fuzz_target!(|input: Input| {
    let config = HandshakeConfig {
        role: if input.dialer { Role::Dialer } else { Role::Listener },
        name: PeerName::from_u64(0x0a).unwrap(),
        nickname: Bytes::from_static(b"fuzz"),
        uid: 7,
        short_id: 3,
        trusts_remote: false,
        password: input.encrypted.then(|| Bytes::from_static(b"pw")),
        versions: Preamble::OURS,
    };
    let mut h = Handshake::with_parts(config, None, 99, Instant::ZERO);
    let _ = h.take_output();
    let mut first = Vec::new();
    if input.valid_start {
        first.extend_from_slice(b"weave\x02\x02");
        first.push(input.encrypted as u8);
        if input.encrypted {
            // A valid (non-low-order) public key: the base point.
            let mut key = [0u8; 32];
            key[0] = 9;
            first.extend_from_slice(&key);
        }
    }
    let chunks = std::iter::once(first).chain(input.chunks);
    for chunk in chunks {
        match h.handle_data(&chunk, Instant::ZERO) {
            Ok(Progress::Pending) => {
                let _ = h.take_output();
            }
            Ok(Progress::Done(outcome)) => {
                assert_eq!(outcome.version, 2);
                return;
            }
            Err(_) => return,
        }
    }
    let _ = h.handle_timeout(Instant::from_millis(u64::from(input.timeout_ms) * 100));
    let _ = h.handle_closed();
});
