//! The overlay extension point (Go's `Overlay`, `OverlayConnection` and
//! `OverlayConnectionParams`; docs/protocol-v2.md §16.11): an application's own data plane
//! beside every mesh connection, as Weave Net builds its VXLAN and sleeve planes.
//!
//! Sans-IO like the rest of the node. The application gives the node one [`Overlay`]
//! ([`crate::Node::set_overlay`]). For each connection that finishes its handshake and is
//! about to be registered the node asks it to [`prepare`](Overlay::prepare) an
//! [`OverlayConnection`] from the connection's [`OverlayParams`]; once the connection is
//! registered (it won any tie-break and passed the connection limit) the node
//! [confirms](OverlayConnection::confirm) it. From then on the overlay connection sees the
//! control messages the remote's overlay sends (tags 1 to 3 and 7), and its own
//! deadline. Everything it wants done it asks of an [`OverlayControl`]: send control
//! messages, report itself established, or fail.
//!
//! How the node reacts, as Go's router does:
//! - a connection is marked *established* in our record (and so carries unicast and
//!   broadcast routes) only once its overlay connection reports established; until then
//!   it is registered, gossips topology and sends heartbeats like any other, and
//!   [`crate::Event::ConnectionEstablished`] waits;
//! - a failed overlay connection (or a failed `prepare`) closes its mesh connection, and
//!   only that one, with [`crate::CloseReason::Overlay`]; the connection maker redials as
//!   after any other failure;
//! - when the mesh connection ends for any reason, its overlay connection is
//!   [stopped](OverlayConnection::stop).
//!
//! Without an overlay (the default, Go's null overlay) nothing of this runs: connections
//! are established right after registration, control messages are ignored, and the bytes
//! on the wire are exactly as before.
//!
//! [`Liveness`] is a small ready overlay that proves each connection alive with its own
//! pings over control messages and shows round-trip times in status.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use zeroize::Zeroizing;

use crate::connection::ConnId;
use crate::name::PeerName;
use crate::time::Instant;
use crate::wire::message::TAG_OVERLAY_CONTROL;

/// The features keys the mesh itself sends; an overlay's features with these keys are
/// ignored.
pub const RESERVED_FEATURES: [&str; 7] =
    ["ConnID", "Name", "NickName", "PeerNameFlavour", "ShortID", "Trusted", "UID"];

/// The most features an overlay may add, and the most bytes of each key and value:
/// together far below the handshake's 64 KiB frame limit.
pub const MAX_OVERLAY_FEATURES: usize = 32;
/// See [`MAX_OVERLAY_FEATURES`].
pub const MAX_OVERLAY_FEATURE_LEN: usize = 1024;

/// Why an overlay refused or failed a connection, or could not send.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum OverlayError {
    /// The overlay's own reason.
    #[error("{0}")]
    Failed(String),
    /// A control message must use tag 7 (or a legacy sleeve tag 1 to 3).
    #[error("tag {0} is not an overlay control tag (1, 2, 3 or 7)")]
    BadTag(u8),
    /// A control message over the frame limit.
    #[error("overlay control message of {len} bytes; at most {max} fit in a frame")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The most that fits.
        max: usize,
    },
    /// The connection already holds as much unsent data as it may.
    #[error("the connection's send buffer is full")]
    Congested,
}

impl OverlayError {
    /// An overlay's own failure, with its reason.
    pub fn failed(reason: impl Into<String>) -> Self {
        OverlayError::Failed(reason.into())
    }
}

/// Key material for an overlay's own encryption.
///
/// - **Version 2** links: Go's session key itself, SHA-256(X25519 shared key ‖
///   password), the key the mesh connection's XSalsa20-Poly1305 frames use. As Go's API
///   documents, an overlay must then keep its nonces apart from the connection's, which
///   are 192 bits: the topmost bit for the direction, the next bit (`0x40` of byte 0)
///   set, 126 zero bits, then a 64-bit message sequence number in the lowest 64 bits
///   (docs/protocol-v2.md §6.4). Nonces with that second bit clear never collide with
///   them.
/// - **Version 3** links: `HKDF-Expand(PRK, "weave mesh v3 overlay", 32)` from the
///   connection's key schedule (docs/protocol-v3.md §5.2), the same at both ends and used
///   by nothing else; the overlay separates its two directions itself (for example by
///   [`OverlayParams::outbound`]).
///
/// Its `Debug` shows no bytes; it is wiped when dropped.
#[derive(Clone)]
pub struct OverlayKey(Zeroizing<[u8; 32]>);

impl OverlayKey {
    pub(crate) fn new(key: [u8; 32]) -> Self {
        OverlayKey(Zeroizing::new(key))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for OverlayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OverlayKey(..)")
    }
}

/// What an overlay learns about a connection it prepares (Go's
/// `OverlayConnectionParams`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OverlayParams {
    /// The mesh connection.
    pub conn: ConnId,
    /// The remote peer's name.
    pub remote: PeerName,
    /// The remote peer's nickname, decoded lossily.
    pub remote_nickname: String,
    /// The remote peer's incarnation.
    pub remote_uid: u64,
    /// The remote's address: the dialled target for outbound connections, the socket's
    /// remote address for accepted ones. Go's overlays send to it only if the connection
    /// is outbound, and discover it from incoming datagrams otherwise.
    pub remote_addr: String,
    /// The local address of the TCP connection, when the driver reported it.
    pub local_addr: Option<SocketAddr>,
    /// Whether we dialled.
    pub outbound: bool,
    /// Go's connection UID: both ends' connection ids XORed, the same at both ends.
    pub conn_uid: u64,
    /// The negotiated protocol version, 2 or 3.
    pub version: u8,
    /// Key material for the overlay's own encryption ([`OverlayKey`]); `None` on a
    /// plaintext connection and, as in Go, on a trusted one (both ends' addresses in the
    /// other's trusted subnets), where the overlay is expected not to encrypt.
    pub key: Option<OverlayKey>,
    /// The remote's whole features map as it sent it (invalid UTF-8 replaced; of a key
    /// sent twice, the last). The remote overlay's own features are among them.
    pub features: BTreeMap<String, String>,
}

/// An application's data plane beside the mesh connections (Go's `Overlay`). Set with
/// [`crate::Node::set_overlay`]. See the [module](self) documentation for when each
/// method is called.
pub trait Overlay: Send {
    /// Features to add to the handshake's features map, sent to every remote (Go's
    /// `AddFeaturesTo`). Keys the mesh uses itself ([`RESERVED_FEATURES`]) are ignored,
    /// as are features beyond [`MAX_OVERLAY_FEATURES`] or with a key or value over
    /// [`MAX_OVERLAY_FEATURE_LEN`] bytes. Asked at the start of every handshake.
    fn features(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Prepares the overlay connection of a connection that finished its handshake, won
    /// any tie-break and passed the connection limit, just before it is registered. It
    /// should stay passive (send nothing) until it is confirmed. An error closes the mesh
    /// connection with [`crate::CloseReason::Overlay`].
    fn prepare(&mut self, params: OverlayParams) -> Result<Box<dyn OverlayConnection>, OverlayError>;

    /// Diagnostics for status (Go's `Diagnostics`).
    fn diagnostics(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// One connection's part of an overlay (Go's `OverlayConnection`).
pub trait OverlayConnection: Send {
    /// The connection is registered and really wanted: start proving the overlay
    /// (Go's `Confirm`).
    fn confirm(&mut self, ctl: &mut OverlayControl);

    /// A control message from the remote's overlay connection: `tag` is 7, or a legacy
    /// sleeve tag 1 to 3.
    fn control_message(&mut self, tag: u8, payload: &[u8], ctl: &mut OverlayControl);

    /// When [`OverlayConnection::handle_timeout`] should next run, if ever. Asked
    /// whenever the node computes its next deadline; a deadline that
    /// `handle_timeout` does not move on would wake the node again at once.
    fn next_timeout(&self) -> Option<Instant> {
        None
    }

    /// Its deadline passed.
    fn handle_timeout(&mut self, ctl: &mut OverlayControl) {
        let _ = ctl;
    }

    /// The overlay's name and whatever else users may want to see, for status (Go's
    /// `Attrs`).
    fn attrs(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    /// The mesh connection ended, for whatever reason, its own failure included (Go's
    /// `Stop`).
    fn stop(&mut self) {}
}

/// What an overlay connection asks of the node during one call: control messages to
/// send, and whether it is now established or has failed. The node acts on it when the
/// call returns.
#[derive(Debug)]
pub struct OverlayControl {
    now: Instant,
    /// Bytes still allowed onto the connection.
    room: usize,
    /// The longest body a frame takes.
    max_len: usize,
    pub(crate) sends: Vec<(u8, Bytes)>,
    pub(crate) established: bool,
    pub(crate) failed: Option<String>,
}

impl OverlayControl {
    pub(crate) fn new(now: Instant, room: usize, max_len: usize) -> Self {
        OverlayControl { now, room, max_len, sends: Vec::new(), established: false, failed: None }
    }

    /// A control handle attached to no node, for testing an [`OverlayConnection`] on
    /// its own: what it was asked shows in [`OverlayControl::sent`],
    /// [`OverlayControl::is_established`] and [`OverlayControl::failure`].
    ///
    /// ```
    /// use mesh_proto::overlay::{OverlayConnection, OverlayControl};
    ///
    /// /// Greets the remote, and is established when it answers.
    /// struct Greeter;
    ///
    /// impl OverlayConnection for Greeter {
    ///     fn confirm(&mut self, ctl: &mut OverlayControl) {
    ///         let _ = ctl.send(7, &b"hello"[..]);
    ///     }
    ///     fn control_message(&mut self, _: u8, payload: &[u8], ctl: &mut OverlayControl) {
    ///         if payload == b"hello" {
    ///             ctl.established();
    ///         }
    ///     }
    /// }
    ///
    /// let mut ctl = OverlayControl::detached(mesh_proto::Instant::from_secs(1));
    /// Greeter.confirm(&mut ctl);
    /// assert_eq!(ctl.sent(), [(7, bytes::Bytes::from_static(b"hello"))]);
    /// assert!(!ctl.is_established());
    /// ```
    pub fn detached(now: Instant) -> Self {
        OverlayControl::new(now, crate::config::MAX_QUEUED_BYTES, crate::config::MAX_FRAME_LEN)
    }

    /// The time of the input being handled.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The control messages sent through this handle so far: (tag, payload).
    pub fn sent(&self) -> &[(u8, Bytes)] {
        &self.sends
    }

    /// Whether [`OverlayControl::established`] was called.
    pub fn is_established(&self) -> bool {
        self.established
    }

    /// The reason given to [`OverlayControl::fail`], if it was called.
    pub fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }

    /// Sends a control message to the remote's overlay connection (Go's
    /// `SendControlMessage`). `tag` is 7 ([`TAG_OVERLAY_CONTROL`]), or a legacy sleeve tag
    /// 1 to 3. It goes out sealed like any other message on the connection, after what
    /// is already queued on it.
    pub fn send(&mut self, tag: u8, payload: impl Into<Bytes>) -> Result<(), OverlayError> {
        if !matches!(tag, 1..=3 | TAG_OVERLAY_CONTROL) {
            return Err(OverlayError::BadTag(tag));
        }
        let payload = payload.into();
        // The frame's body is the tag and the payload.
        let max = self.max_len.saturating_sub(1);
        if payload.len() > max {
            return Err(OverlayError::TooLarge { len: payload.len(), max });
        }
        if payload.len() + 1 > self.room {
            return Err(OverlayError::Congested);
        }
        self.room -= payload.len() + 1;
        self.sends.push((tag, payload));
        Ok(())
    }

    /// The overlay connection works: the node marks the mesh connection established
    /// (Go's `EstablishedChannel` closing). Later calls change nothing.
    pub fn established(&mut self) {
        self.established = true;
    }

    /// The overlay connection failed (Go's `ErrorChannel`): the node closes the mesh
    /// connection with [`crate::CloseReason::Overlay`] and this reason.
    pub fn fail(&mut self, reason: impl Into<String>) {
        self.failed.get_or_insert_with(|| reason.into());
    }
}

/// Settings of the [`Liveness`] overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessConfig {
    /// How often each connection pings (default 5 s).
    pub interval: Duration,
    /// How long a ping may go unanswered before the connection fails (default 20 s).
    pub timeout: Duration,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig { interval: Duration::from_secs(5), timeout: Duration::from_secs(20) }
    }
}

/// The features key by which [`Liveness`] peers recognise each other.
pub const LIVENESS_FEATURE: &str = "LivenessOverlay";

/// The first bytes of every [`Liveness`] control message.
const LIVENESS_MAGIC: &[u8; 2] = b"LV";
const PING: u8 = 0;
const PONG: u8 = 1;
/// Magic, kind, sequence number.
const LIVENESS_MESSAGE_LEN: usize = 2 + 1 + 8;

/// A small overlay that proves each connection alive end to end with its own pings
/// over control messages (tag 7), reports it established at the first answer, fails it
/// when a ping goes unanswered for [`LivenessConfig::timeout`], and shows round-trip
/// times in status.
///
/// It announces itself with the feature [`LIVENESS_FEATURE`]. A remote without it (a
/// Go peer, or a Rust peer without this overlay) cannot answer pings, so its connection
/// is established at confirmation, as with the null overlay, and marked so in its
/// attributes.
///
/// ```
/// use mesh_proto::overlay::{Liveness, LivenessConfig};
/// use mesh_proto::{Config, Node, PeerName};
/// let name = PeerName::from_u64(1).unwrap();
/// let mut node = Node::new(Config::new(name, "a"), Node::seed_from_u64(1), mesh_proto::Instant::ZERO)?;
/// node.set_overlay(Liveness::new(LivenessConfig::default()));
/// # Ok::<(), mesh_proto::NodeError>(())
/// ```
#[derive(Debug, Default)]
pub struct Liveness {
    config: LivenessConfig,
    prepared: u64,
}

impl Liveness {
    /// A liveness overlay with these settings.
    pub fn new(config: LivenessConfig) -> Self {
        Liveness { config, prepared: 0 }
    }
}

impl Overlay for Liveness {
    fn features(&self) -> Vec<(String, String)> {
        vec![(LIVENESS_FEATURE.to_owned(), "1".to_owned())]
    }

    fn prepare(&mut self, params: OverlayParams) -> Result<Box<dyn OverlayConnection>, OverlayError> {
        self.prepared += 1;
        let remote_speaks = params.features.get(LIVENESS_FEATURE).is_some_and(|v| v == "1");
        Ok(Box::new(LivenessConnection {
            config: self.config,
            remote_speaks,
            seq: 0,
            outstanding: None,
            next_ping: None,
            rtt: None,
            pings: 0,
            pongs: 0,
        }))
    }

    fn diagnostics(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("overlay".to_owned(), "liveness".to_owned()),
            ("connections prepared".to_owned(), self.prepared.to_string()),
            ("interval".to_owned(), format!("{:?}", self.config.interval)),
        ])
    }
}

/// One connection of [`Liveness`].
#[derive(Debug)]
struct LivenessConnection {
    config: LivenessConfig,
    /// The remote announced the feature, so it answers pings.
    remote_speaks: bool,
    seq: u64,
    /// The unanswered ping: its sequence number and when it went out.
    outstanding: Option<(u64, Instant)>,
    next_ping: Option<Instant>,
    rtt: Option<Duration>,
    pings: u64,
    pongs: u64,
}

fn liveness_message(kind: u8, seq: u64) -> Bytes {
    let mut b = Vec::with_capacity(LIVENESS_MESSAGE_LEN);
    b.extend_from_slice(LIVENESS_MAGIC);
    b.push(kind);
    b.put_u64(seq);
    Bytes::from(b)
}

impl LivenessConnection {
    fn ping(&mut self, ctl: &mut OverlayControl) {
        let now = ctl.now();
        self.next_ping = Some(now.saturating_add(self.config.interval));
        if self.outstanding.is_some() {
            return;
        }
        self.seq += 1;
        // A congested connection skips this ping; the timeout still runs from the last.
        if ctl.send(TAG_OVERLAY_CONTROL, liveness_message(PING, self.seq)).is_ok() {
            self.pings += 1;
            self.outstanding = Some((self.seq, now));
        }
    }
}

impl OverlayConnection for LivenessConnection {
    fn confirm(&mut self, ctl: &mut OverlayControl) {
        if self.remote_speaks {
            self.ping(ctl);
        } else {
            ctl.established();
        }
    }

    fn control_message(&mut self, tag: u8, payload: &[u8], ctl: &mut OverlayControl) {
        if tag != TAG_OVERLAY_CONTROL
            || payload.len() != LIVENESS_MESSAGE_LEN
            || &payload[..2] != LIVENESS_MAGIC
        {
            return;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&payload[3..]);
        let seq = u64::from_be_bytes(seq);
        match payload[2] {
            // Answered even before confirmation: the remote may confirm first.
            PING => {
                let _ = ctl.send(TAG_OVERLAY_CONTROL, liveness_message(PONG, seq));
            }
            PONG => {
                if let Some((_, sent)) = self.outstanding.filter(|(s, _)| *s == seq) {
                    self.outstanding = None;
                    self.pongs += 1;
                    self.rtt = Some(ctl.now().saturating_duration_since(sent));
                    ctl.established();
                }
            }
            _ => {}
        }
    }

    fn next_timeout(&self) -> Option<Instant> {
        let deadline = self.outstanding.map(|(_, sent)| sent.saturating_add(self.config.timeout));
        [deadline, self.next_ping].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, ctl: &mut OverlayControl) {
        let now = ctl.now();
        if let Some((seq, sent)) = self.outstanding {
            if sent.saturating_add(self.config.timeout) <= now {
                return ctl.fail(format!("liveness ping {seq} unanswered for {:?}", self.config.timeout));
            }
        }
        if self.next_ping.is_some_and(|t| t <= now) {
            self.ping(ctl);
        }
    }

    fn attrs(&self) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([("name".to_owned(), "liveness".to_owned())]);
        if !self.remote_speaks {
            a.insert("remote".to_owned(), "has no liveness overlay: established without pings".to_owned());
            return a;
        }
        a.insert("pings".to_owned(), self.pings.to_string());
        a.insert("pongs".to_owned(), self.pongs.to_string());
        if let Some(rtt) = self.rtt {
            a.insert("rtt_us".to_owned(), rtt.as_micros().to_string());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(remote_speaks: bool) -> OverlayParams {
        let mut features = BTreeMap::new();
        if remote_speaks {
            features.insert(LIVENESS_FEATURE.to_owned(), "1".to_owned());
        }
        OverlayParams {
            conn: ConnId(1),
            remote: PeerName::from_u64(2).unwrap(),
            remote_nickname: "b".to_owned(),
            remote_uid: 7,
            remote_addr: "10.0.0.2:6783".to_owned(),
            local_addr: None,
            outbound: true,
            conn_uid: 9,
            version: 3,
            key: None,
            features,
        }
    }

    fn at(ms: u64) -> OverlayControl {
        OverlayControl::detached(Instant::from_millis(ms))
    }

    #[test]
    fn liveness_pings_counts_round_trips_and_fails_when_unanswered() {
        let config = LivenessConfig { interval: Duration::from_secs(1), timeout: Duration::from_secs(3) };
        let mut overlay = Liveness::new(config);
        let mut conn = overlay.prepare(params(true)).unwrap();
        let mut ctl = at(1000);
        conn.confirm(&mut ctl);
        assert!(!ctl.is_established(), "not before an answer");
        let [(tag, ping)] = ctl.sent() else { panic!("one ping: {:?}", ctl.sent()) };
        assert_eq!((*tag, &ping[..3]), (TAG_OVERLAY_CONTROL, &b"LV\x00"[..]));
        // The remote's answer: the same sequence number as a pong.
        let mut pong = ping.to_vec();
        pong[2] = PONG;
        let mut ctl = at(1250);
        conn.control_message(TAG_OVERLAY_CONTROL, &pong, &mut ctl);
        assert!(ctl.is_established());
        assert_eq!(conn.attrs()["rtt_us"], "250000");
        // A ping from the remote is answered in kind.
        let mut ctl = at(1300);
        conn.control_message(TAG_OVERLAY_CONTROL, ping, &mut ctl);
        assert_eq!(ctl.sent(), [(TAG_OVERLAY_CONTROL, Bytes::from(pong.clone()))]);
        // Garbage and other tags are ignored.
        let mut ctl = at(1300);
        conn.control_message(1, &pong, &mut ctl);
        conn.control_message(TAG_OVERLAY_CONTROL, b"LV", &mut ctl);
        assert!(ctl.sent().is_empty() && !ctl.is_established());
        // The next ping goes out an interval after the first; left unanswered, the
        // connection fails at the timeout and not before.
        assert_eq!(conn.next_timeout(), Some(Instant::from_millis(2000)));
        let mut ctl = at(2000);
        conn.handle_timeout(&mut ctl);
        assert_eq!(ctl.sent().len(), 1);
        let mut ctl = at(4999);
        conn.handle_timeout(&mut ctl);
        assert_eq!(ctl.failure(), None);
        assert!(ctl.sent().is_empty(), "one ping outstanding at a time");
        let mut ctl = at(5000);
        conn.handle_timeout(&mut ctl);
        assert!(ctl.failure().is_some_and(|f| f.contains("unanswered")), "{:?}", ctl.failure());
        assert_eq!(overlay.diagnostics()["connections prepared"], "1");
    }

    #[test]
    fn liveness_against_a_remote_without_it_is_established_at_confirmation() {
        let mut conn = Liveness::default().prepare(params(false)).unwrap();
        let mut ctl = at(0);
        conn.confirm(&mut ctl);
        assert!(ctl.is_established() && ctl.sent().is_empty());
        assert_eq!(conn.next_timeout(), None);
    }

    #[test]
    fn control_sends_are_checked() {
        let mut ctl = OverlayControl::new(Instant::ZERO, 10, 8);
        assert_eq!(ctl.send(4, Bytes::new()), Err(OverlayError::BadTag(4)));
        assert_eq!(ctl.send(7, vec![0; 8]), Err(OverlayError::TooLarge { len: 8, max: 7 }));
        ctl.send(7, vec![0; 7]).unwrap();
        assert_eq!(ctl.send(3, vec![0; 2]), Err(OverlayError::Congested), "10 bytes of room, 8 taken");
        ctl.send(1, vec![0; 1]).unwrap();
        ctl.fail("first");
        ctl.fail("second");
        assert_eq!(ctl.failure(), Some("first"));
    }
}
