//! Protocol messages: every frame after the features (docs/protocol-v2.md §8, §9).
//!
//! A message is a tag byte and a payload. Tags 4, 5 and 6 carry a gossip envelope: a gob
//! stream of built-in values (channel name, source, for unicast the destination, and the
//! application payload). Decoding borrows from the frame; encoding appends to a buffer so
//! a connection can write a message straight into its outgoing frame.

use crate::name::{PeerName, PeerNameError};
use crate::wire::gob::{self, GobError, Stream};

/// Heartbeat: no payload.
pub const TAG_HEARTBEAT: u8 = 0;
/// Gossip: sent hop by hop; the source is the immediate sender.
pub const TAG_GOSSIP: u8 = 4;
/// Unicast: forwarded unchanged towards its destination.
pub const TAG_UNICAST: u8 = 5;
/// Broadcast: re-created at each hop down the source's tree.
pub const TAG_BROADCAST: u8 = 6;
/// Overlay control (ignored with the null overlay), like legacy tags 1 to 3.
pub const TAG_OVERLAY_CONTROL: u8 = 7;

/// Appends a version 3 heartbeat: tag 0, then `read: u8`, how many heartbeats we have
/// read on the connection so far, modulo 256, which acknowledges them
/// (docs/protocol-v3.md §13). Version 2's heartbeat is the tag alone.
pub fn put_heartbeat_v3(out: &mut Vec<u8>, read: u8) {
    out.extend_from_slice(&[TAG_HEARTBEAT, read]);
}

/// The count (modulo 256) a version 3 heartbeat's payload (after the tag)
/// acknowledges: exactly one byte.
pub fn decode_heartbeat_v3(payload: &[u8]) -> Result<u8, MessageError> {
    match payload {
        &[read] => Ok(read),
        _ => Err(MessageError::Heartbeat { len: payload.len() }),
    }
}

/// The three kinds of gossip message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GossipKind {
    /// Tag 4.
    Gossip,
    /// Tag 5, to one destination.
    Unicast {
        /// The final recipient.
        destination: PeerName,
    },
    /// Tag 6.
    Broadcast,
}

impl GossipKind {
    /// The tag byte of this kind.
    pub fn tag(self) -> u8 {
        match self {
            GossipKind::Gossip => TAG_GOSSIP,
            GossipKind::Unicast { .. } => TAG_UNICAST,
            GossipKind::Broadcast => TAG_BROADCAST,
        }
    }
}

/// A decoded gossip message, borrowing from its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipMessage<'a> {
    /// Which kind, with the destination of a unicast.
    pub kind: GossipKind,
    /// The channel name (any bytes).
    pub channel: &'a [u8],
    /// The source: the immediate sender for gossip, the originator otherwise.
    pub source: PeerName,
    /// The application payload.
    pub payload: &'a [u8],
}

/// A decoded protocol message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message<'a> {
    /// An empty frame body: Go ignores it.
    Empty,
    /// Tag 0.
    Heartbeat,
    /// Tags 4, 5, 6.
    Gossip(GossipMessage<'a>),
    /// Tags 1, 2, 3 and 7: overlay traffic, ignored by the null overlay.
    Overlay {
        /// The tag.
        tag: u8,
        /// Its payload.
        payload: &'a [u8],
    },
    /// Tags 8 and above: Go logs and ignores them. Version 3 links give tags 32 to 35
    /// to topology synchronisation ([`crate::wire::sync`]).
    Unknown {
        /// The tag.
        tag: u8,
        /// Its payload.
        payload: &'a [u8],
    },
}

/// Why a message could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum MessageError {
    /// The envelope's gob is malformed.
    #[error("malformed gossip envelope: {0}")]
    Gob(#[from] GobError),
    /// A source or destination does not fit in 48 bits.
    #[error("bad peer name in gossip envelope: {0}")]
    Name(#[from] PeerNameError),
    /// A version 3 heartbeat's payload was not 8 bytes.
    #[error("version 3 heartbeat with a payload of {len} bytes; it has 1")]
    Heartbeat {
        /// The payload's length.
        len: usize,
    },
}

impl<'a> Message<'a> {
    /// Decodes a frame body (after decryption).
    pub fn decode(body: &'a [u8]) -> Result<Message<'a>, MessageError> {
        let Some((&tag, payload)) = body.split_first() else {
            return Ok(Message::Empty);
        };
        Ok(match tag {
            TAG_HEARTBEAT => Message::Heartbeat,
            1..=3 | TAG_OVERLAY_CONTROL => Message::Overlay { tag, payload },
            TAG_GOSSIP | TAG_UNICAST | TAG_BROADCAST => Message::Gossip(decode_envelope(tag, payload)?),
            tag => Message::Unknown { tag, payload },
        })
    }

    /// Appends the encoding of this message (a frame body, before sealing).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Message::Empty => {}
            Message::Heartbeat => out.push(TAG_HEARTBEAT),
            Message::Gossip(m) => encode_gossip(out, m.kind, m.channel, m.source, m.payload),
            Message::Overlay { tag, payload } => {
                out.push(tag);
                out.extend_from_slice(payload);
            }
            Message::Unknown { tag, payload } => {
                out.push(tag);
                out.extend_from_slice(payload);
            }
        }
    }
}

fn decode_envelope(tag: u8, payload: &[u8]) -> Result<GossipMessage<'_>, MessageError> {
    let mut s = Stream::new(payload);
    let channel = s.expect_next_value("the channel name")?.string()?;
    let source = PeerName::from_u64(s.expect_next_value("the source name")?.uint()?)?;
    let kind = match tag {
        TAG_GOSSIP => GossipKind::Gossip,
        TAG_BROADCAST => GossipKind::Broadcast,
        _ => GossipKind::Unicast {
            destination: PeerName::from_u64(s.expect_next_value("the destination name")?.uint()?)?,
        },
    };
    let payload = s.expect_next_value("the payload")?.bytes()?;
    // Like Go, ignore anything after the values the envelope needs.
    Ok(GossipMessage { kind, channel, source, payload })
}

/// Appends a gossip message (tag and envelope) for the given fields.
pub fn encode_gossip(out: &mut Vec<u8>, kind: GossipKind, channel: &[u8], source: PeerName, payload: &[u8]) {
    // The payload is copied in whole, so its length always matches.
    encode_gossip_with(out, kind, channel, source, payload.len(), |o| o.extend_from_slice(payload));
}

/// Appends a gossip message whose payload of exactly `len` bytes `payload` writes in
/// place. Returns false (and appends nothing) if it wrote a different length.
pub fn encode_gossip_with(
    out: &mut Vec<u8>,
    kind: GossipKind,
    channel: &[u8],
    source: PeerName,
    len: usize,
    payload: impl FnOnce(&mut Vec<u8>),
) -> bool {
    let start = out.len();
    out.push(kind.tag());
    gob::put_top_string(out, channel);
    gob::put_top_uint(out, source.to_u64());
    if let GossipKind::Unicast { destination } = kind {
        gob::put_top_uint(out, destination.to_u64());
    }
    if gob::put_top_bytes_with(out, len, payload) {
        return true;
    }
    out.truncate(start);
    false
}

/// The destination of a unicast frame body, without decoding its payload; used when
/// relaying the unchanged body to the next hop.
pub fn unicast_destination(body: &[u8]) -> Result<Option<PeerName>, MessageError> {
    match Message::decode(body)? {
        Message::Gossip(GossipMessage { kind: GossipKind::Unicast { destination }, .. }) => {
            Ok(Some(destination))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_3_heartbeat_is_the_tag_and_one_byte_of_count() {
        let mut out = Vec::new();
        put_heartbeat_v3(&mut out, 0xa7);
        assert_eq!(out, [0, 0xa7]);
        assert_eq!(Message::decode(&out), Ok(Message::Heartbeat));
        assert_eq!(decode_heartbeat_v3(&out[1..]), Ok(0xa7));
        for len in [0, 2, 9] {
            assert_eq!(decode_heartbeat_v3(&vec![0; len]), Err(MessageError::Heartbeat { len }));
        }
    }
}
