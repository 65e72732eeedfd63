//! One connection's state inside the node (docs/protocol-v2.md §16): paced, dialling,
//! handshaking, or running with its frame decoder, sealing state, timers and topology
//! send slots; plus the bookkeeping of bytes handed to the driver but not yet written.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use bytes::Bytes;

use crate::crypto::{CryptoError, TAG_LEN};
use crate::gossip::SendSlots;
use crate::handshake::Handshake;
use crate::handshake::Security;
use crate::name::PeerName;
use crate::sealing::{Sealing, V3Session};
use crate::time::Instant;
use crate::wire::features::RemoteFeatures;
use crate::wire::frame::{self, FrameDecoder, FrameError, LEN_PREFIX};

/// Identifies a connection between the node and its driver. The node assigns them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ConnId(pub u64);

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn#{}", self.0)
    }
}

pub(crate) enum Phase {
    /// Accepted; the handshake starts when the accept bucket gives a token.
    Paced { buffered: Vec<u8> },
    /// Outbound; waiting for the driver's dial, which is given up at `deadline`.
    Dialing { deadline: Instant },
    /// Introducing ourselves.
    Handshaking(Box<Handshake>),
    /// Past the handshake.
    Running(Box<Running>),
}

pub(crate) struct Running {
    pub(crate) remote: RemoteFeatures,
    pub(crate) conn_key: u64,
    /// The negotiated protocol version.
    pub(crate) version: u8,
    pub(crate) security: Security,
    pub(crate) session: Option<Sealing>,
    pub(crate) frames: FrameDecoder,
    /// Holds a reference on the remote's record.
    pub(crate) bound: bool,
    /// When the handshake completed.
    pub(crate) since: Instant,
    pub(crate) heartbeat_at: Instant,
    pub(crate) receive_deadline: Instant,
    /// Version 3: how long a heartbeat may go unacknowledged (0 on version 2 links,
    /// which have no acknowledgement).
    pub(crate) ack_timeout: std::time::Duration,
    /// Version 3: heartbeats read on this connection, which ours acknowledge.
    pub(crate) heartbeats_read: u64,
    /// Version 3: heartbeats of ours the remote has acknowledged.
    pub(crate) heartbeats_acked: u64,
    /// Version 3: when each heartbeat sent and not yet acknowledged went out, oldest
    /// first (at most `ack_timeout` / heartbeat interval + 1 of them: the oldest's
    /// deadline closes the connection).
    pub(crate) unacked: VecDeque<Instant>,
    /// Topology send slots: names of the records to describe, merged by union.
    pub(crate) topology: SendSlots<BTreeSet<PeerName>>,
    /// Version 3 links: topology synchronisation waiting to be sent.
    pub(crate) sync: crate::node::sync::SyncOut,
    /// Our record marks it established (§16.7).
    pub(crate) established: bool,
    /// The application overlay's connection, once prepared.
    pub(crate) overlay: Option<Box<dyn crate::overlay::OverlayConnection>>,
}

pub(crate) struct Connection {
    pub(crate) addr: String,
    pub(crate) outbound: bool,
    pub(crate) accept_new_peer: bool,
    /// A discovered target's peer, which may answer even if it is no longer in the table.
    pub(crate) expected_peer: Option<PeerName>,
    pub(crate) trusts_remote: bool,
    /// The socket's local address, if the driver reported it.
    pub(crate) local_addr: Option<std::net::SocketAddr>,
    pub(crate) phase: Phase,
    /// Frames built during the current input, written out in one transmit.
    pub(crate) out: Vec<u8>,
    /// Transmits handed to the driver and not yet reported written: (when, bytes).
    pub(crate) in_flight: VecDeque<(Instant, usize)>,
    pub(crate) in_flight_bytes: usize,
    /// The sealer refused a frame (its counter at the limit): the next flush closes.
    pub(crate) seal_failed: Option<CryptoError>,
    /// Version 3: where the record being filled starts in `out` (at its length prefix).
    record: Option<usize>,
}

impl Connection {
    pub(crate) fn new(
        addr: String,
        outbound: bool,
        accept_new_peer: bool,
        trusts_remote: bool,
        phase: Phase,
    ) -> Self {
        Connection {
            addr,
            outbound,
            accept_new_peer,
            expected_peer: None,
            trusts_remote,
            local_addr: None,
            phase,
            out: Vec::new(),
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            seal_failed: None,
            record: None,
        }
    }

    pub(crate) fn running(&self) -> Option<&Running> {
        match &self.phase {
            Phase::Running(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn running_mut(&mut self) -> Option<&mut Running> {
        match &mut self.phase {
            Phase::Running(r) => Some(r),
            _ => None,
        }
    }

    /// The phase's own deadline: the handshake's, or a running connection's receive
    /// timeout, next heartbeat or acknowledgement due, or its overlay connection's
    /// (the send timeout is
    /// [`Connection::oldest_unwritten`]'s).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Paced { .. } => None,
            Phase::Dialing { deadline } => Some(*deadline),
            Phase::Handshaking(h) => Some(h.deadline()),
            Phase::Running(r) => {
                let ack = r.unacked.front().map_or(Instant::MAX, |&sent| sent.saturating_add(r.ack_timeout));
                let overlay = r.overlay.as_ref().and_then(|o| o.next_timeout()).unwrap_or(Instant::MAX);
                Some(r.receive_deadline.min(r.heartbeat_at).min(ack).min(overlay))
            }
        }
    }

    /// Bytes written or waiting to be.
    pub(crate) fn queued(&self) -> usize {
        self.in_flight_bytes + self.out.len()
    }

    /// Appends one message whose body `body` writes: a frame of its own, sealed in
    /// version 2 if the connection encrypts; in version 3 an inner frame of the record
    /// being filled, sealed when the record is taken out (or full).
    pub(crate) fn append_frame(
        &mut self,
        max_len: usize,
        body: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), AppendError> {
        let Connection { phase: Phase::Running(r), out, record, seal_failed, .. } = self else {
            return Ok(());
        };
        let result = match r.session.as_mut() {
            Some(Sealing::V3(s)) => append_to_record(out, record, s, max_len, body),
            session => append_frame(out, session, max_len, body),
        };
        if let Err(AppendError::Crypto(e)) = &result {
            *seal_failed = Some(e.clone());
        }
        result
    }

    /// Takes the frames built so far as one transmit, remembering them as in flight. A
    /// version 3 record being filled is sealed first.
    pub(crate) fn take_out(&mut self, now: Instant) -> Option<Bytes> {
        if let Connection { phase: Phase::Running(r), out, record, seal_failed, .. } = self {
            if let Some(Sealing::V3(s)) = r.session.as_mut() {
                if let Err(e) = close_record(out, record, s) {
                    *seal_failed = Some(e);
                }
            }
        }
        if self.out.is_empty() {
            return None;
        }
        let data = Bytes::from(std::mem::take(&mut self.out));
        self.in_flight.push_back((now, data.len()));
        self.in_flight_bytes += data.len();
        Some(data)
    }

    /// The driver wrote `n` more bytes.
    pub(crate) fn written(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.in_flight.front_mut() else { break };
            let take = n.min(front.1);
            front.1 -= take;
            n -= take;
            self.in_flight_bytes -= take;
            if front.1 == 0 {
                self.in_flight.pop_front();
            }
        }
    }

    /// When the oldest unwritten transmit was handed over.
    pub(crate) fn oldest_unwritten(&self) -> Option<Instant> {
        self.in_flight.front().map(|(t, _)| *t)
    }
}

/// Why a frame could not be appended.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The body is over the frame limit; nothing was appended.
    Frame(FrameError),
    /// The sealer refused (its counter is at its limit); the connection must close.
    Crypto(CryptoError),
}

/// Version 3: appends one message as an inner frame (4-byte length, body) of the record
/// being filled in `out`, opening one if none is. A record's plaintext stays within one
/// largest message and its prefix (`max_len + 4`): a message that would take it further
/// goes into a new record, which seals the full one.
fn append_to_record(
    out: &mut Vec<u8>,
    record: &mut Option<usize>,
    session: &mut V3Session,
    max_len: usize,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), AppendError> {
    let opened = record.is_none();
    let record_start = *record.get_or_insert_with(|| {
        out.extend_from_slice(&[0; LEN_PREFIX]);
        out.len() - LEN_PREFIX
    });
    let start = out.len();
    out.resize(start + LEN_PREFIX, 0);
    body(out);
    let len = out.len() - start - LEN_PREFIX;
    if let Err(e) = frame::check_len(len, max_len) {
        out.truncate(if opened { record_start } else { start });
        if opened {
            *record = None;
        }
        return Err(AppendError::Frame(e));
    }
    out[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    let plain = out.len() - record_start - LEN_PREFIX;
    if !opened && plain > max_len + LEN_PREFIX {
        // Rare (once per `max_len` bytes at most): move the message to a new record.
        let message = out.split_off(start);
        close_record(out, record, session).map_err(AppendError::Crypto)?;
        *record = Some(out.len());
        out.extend_from_slice(&[0; LEN_PREFIX]);
        out.extend_from_slice(&message);
    }
    Ok(())
}

/// Version 3: seals the record being filled in `out`, if any: its length prefix, then
/// the tag after its plaintext. An empty record is dropped.
fn close_record(
    out: &mut Vec<u8>,
    record: &mut Option<usize>,
    session: &mut V3Session,
) -> Result<(), CryptoError> {
    let Some(start) = record.take() else { return Ok(()) };
    let plain = out.len() - start - LEN_PREFIX;
    if plain == 0 {
        out.truncate(start);
        return Ok(());
    }
    out[start..start + LEN_PREFIX].copy_from_slice(&((plain + TAG_LEN) as u32).to_be_bytes());
    out.resize(out.len() + TAG_LEN, 0);
    if let Err(e) = session.sealer.seal_frame(&mut out[start..]) {
        out.truncate(start);
        return Err(e);
    }
    Ok(())
}

/// Appends one frame to `out`, building the body in place and sealing it in place.
pub(crate) fn append_frame(
    out: &mut Vec<u8>,
    session: Option<&mut Sealing>,
    max_len: usize,
    body: impl FnOnce(&mut Vec<u8>),
) -> Result<(), AppendError> {
    let start = out.len();
    let (head, tail) = session.as_ref().map_or((0, 0), |s| (s.head(), s.tail()));
    out.resize(start + LEN_PREFIX + head, 0);
    body(out);
    out.resize(out.len() + tail, 0);
    let len = out.len() - start - LEN_PREFIX;
    if let Err(e) = frame::check_len(len, max_len) {
        out.truncate(start);
        return Err(AppendError::Frame(e));
    }
    out[start..start + LEN_PREFIX].copy_from_slice(&(len as u32).to_be_bytes());
    if let Some(s) = session {
        if let Err(e) = s.seal_frame(&mut out[start..]) {
            out.truncate(start);
            return Err(AppendError::Crypto(e));
        }
    }
    Ok(())
}
