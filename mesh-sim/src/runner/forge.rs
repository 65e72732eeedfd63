//! Forged topology updates, as a hostile member writes them (see
//! [`crate::scenario::FaultKind::Forge`]): whole plaintext version 2 frames.

use bytes::Bytes;
use mesh_proto::PeerName;
use mesh_proto::wire::message::{self, GossipKind};
use mesh_proto::wire::topology::{ConnectionSummary, PeerSummary, UpdateEncoder};

use crate::scenario::Forgery;

/// The UID forged records carry.
pub(super) const FORGED_UID: u64 = 0x0bad;
/// The name of the unknown peer forged records describe; the peers its connections list
/// are numbered after it.
const FORGED_NAME: u64 = 0x0f00_0000_0000;

fn name(n: u64) -> PeerName {
    PeerName::from_u64(n).expect("forged names are 48-bit")
}

/// A framed topology gossip message from `source` carrying the one record `record`
/// describes; `victim` is the name a claim takes.
pub(super) fn forged_update(source: PeerName, record: &Forgery, victim: PeerName) -> Bytes {
    let unknown = |nickname: Vec<u8>| PeerSummary {
        name: name(FORGED_NAME),
        nickname: Bytes::from(nickname),
        uid: FORGED_UID,
        version: 1,
        ..Default::default()
    };
    let (summary, connections) = match record {
        Forgery::Claim { .. } => (
            PeerSummary {
                name: victim,
                nickname: Bytes::from_static(b"forged"),
                uid: FORGED_UID,
                version: u64::MAX,
                ..Default::default()
            },
            Vec::new(),
        ),
        Forgery::Connections { count } => {
            let conns = (0..*count as u64)
                .map(|i| ConnectionSummary {
                    name: name(FORGED_NAME + 1 + i),
                    remote_tcp_addr: Bytes::from_static(b"10.0.0.1:6783"),
                    outbound: true,
                    established: true,
                })
                .collect();
            (unknown(b"forged".to_vec()), conns)
        }
        Forgery::Nickname { len } => (unknown(vec![b'x'; *len]), Vec::new()),
    };
    let mut update = Vec::new();
    UpdateEncoder::new().push(&mut update, &summary, connections.iter());
    let mut body = Vec::new();
    message::encode_gossip(&mut body, GossipKind::Gossip, b"topology", source, &update);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}
