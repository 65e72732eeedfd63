//! The `node` target: a whole [`Node`] driven by a sequence of operations: connections
//! accepted, dialled, failed, closed; raw bytes; honest remote peers (the real
//! [`Handshake`], any password) whose frames are delivered, forged, replayed or dropped;
//! write progress; time; application calls.
//!
//! Encoding: byte 0 holds the node's settings (bit 0: encrypted with `pw`; bit 1: peer
//! discovery; bits 2–4: the connection limit; bits 5–6: its [`Versions`]; bit 7: it
//! runs the liveness overlay, which answers pings a remote sends as control messages);
//! then
//! operations to the end of the input, each an opcode byte (taken modulo 20) and its
//! fields, in the order of [`Op`]'s variants and of their fields. `conn` picks a
//! connection by index (modulo their number), `password` is a [`Password`] in the two
//! low bits of its byte, whose bit 2 is `v2_only`, and `peers` is a count byte followed
//! by that many blobs.
//!
//! An honest remote offers versions 2 and 3, as a current Rust peer does, or only
//! version 2 (`v2_only`), so both versions' handshakes and sealing run against the node.
//!
//! Every frame the node sends to an honest remote after its handshake must open and
//! decode there; the remote panics otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use mesh_proto::counter::{Counter, Counts};
use mesh_proto::fuzzing::crypto::KeyPair;
use mesh_proto::fuzzing::handshake::{Handshake, Role};
use mesh_proto::wire::header::Preamble;
use mesh_proto::{CloseReason, Config, ConnId, Event, Instant, Node, Output, PeerName};

use crate::codec::{Reader, Writer};
use crate::handshake::{self, Password};
use crate::remote::Remote;

/// The node's peer name.
pub const US: u64 = 1;

/// What the node sends before a remote exists on the connection is kept for it up to
/// this much; past it the connection gets no honest remote.
const EARLY_LIMIT: usize = 1 << 16;

/// Operations needing more than this many are ignored, to keep runs short.
const MAX_OPS: usize = 512;

/// One thing that happens to the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A connection from `10.9.0.<ip>:<port>`.
    Accept {
        /// The last address byte.
        ip: u8,
        /// The port.
        port: u16,
    },
    /// A dial the node asked for succeeded.
    Dialed {
        /// Which connection.
        conn: u8,
    },
    /// A dial failed.
    DialFailed {
        /// Which connection.
        conn: u8,
    },
    /// Raw bytes arrive.
    Data {
        /// Which connection.
        conn: u8,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// An honest remote peer starts on the connection (ignored if there is one, or if
    /// the node already sent too much on it). Its first bytes are queued, and what the
    /// node sent so far reaches it.
    Hello {
        /// Which connection.
        conn: u8,
        /// Its name (masked to 48 bits).
        name: u64,
        /// Its incarnation id.
        uid: u64,
        /// Its password.
        password: Password,
        /// It offers only version 2 (else versions 2 and 3).
        v2_only: bool,
        /// Its key byte: its version 2 secret key is `[key; 32]` (with a password).
        key: u8,
    },
    /// Up to `max` bytes (all if 0) of what the remote wrote arrive.
    Deliver {
        /// Which connection.
        conn: u8,
        /// How many bytes at most.
        max: u16,
    },
    /// The remote writes a frame, sealed once it has a session.
    Frame {
        /// Which connection.
        conn: u8,
        /// The frame body.
        body: Vec<u8>,
    },
    /// The remote writes a frame with byte `at` of its sealed body XORed with `mask`.
    Flip {
        /// Which connection.
        conn: u8,
        /// The frame body.
        body: Vec<u8>,
        /// Which byte of the sealed body, tag included (modulo its length).
        at: u16,
        /// What it is XORed with (1 if 0).
        mask: u8,
    },
    /// The remote writes its last frame again.
    Replay {
        /// Which connection.
        conn: u8,
    },
    /// The remote seals an empty frame and never sends it.
    Skip {
        /// Which connection.
        conn: u8,
    },
    /// The driver wrote `n` bytes (0: all it was given so far).
    Written {
        /// Which connection.
        conn: u8,
        /// How many.
        n: u32,
    },
    /// The connection closed.
    Closed {
        /// Which connection.
        conn: u8,
    },
    /// Time passes; the node's timers run.
    Advance {
        /// Milliseconds.
        ms: u32,
    },
    /// `initiate_connections`.
    Initiate {
        /// Whether the list replaces the old one.
        replace: bool,
        /// Addresses (as lossy UTF-8).
        peers: Vec<Vec<u8>>,
    },
    /// `forget_connections`.
    Forget {
        /// Addresses (as lossy UTF-8).
        peers: Vec<Vec<u8>>,
    },
    /// The counter application increments and broadcasts.
    Increment,
    /// It gossips its state.
    Gossip,
    /// It sends a unicast.
    Unicast {
        /// To whom (masked to 48 bits).
        dst: u64,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// Another channel is registered.
    Register {
        /// Its name.
        name: Vec<u8>,
    },
    /// The status is read.
    Status,
}

/// The protocol versions the node is configured with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// 2 and 3, the default.
    Both,
    /// Only 2 (`max_protocol_version = 2`).
    V2Only,
    /// Only 3 (`min_protocol_version = 3`).
    V3Only,
}

impl Versions {
    fn from_bits(b: u8) -> Self {
        match b & 3 {
            1 => Versions::V2Only,
            2 => Versions::V3Only,
            _ => Versions::Both,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Versions::Both => 0,
            Versions::V2Only => 1,
            Versions::V3Only => 2,
        }
    }
}

/// A whole run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// The node encrypts, with the password `pw`.
    pub encrypted: bool,
    /// Peer discovery is on.
    pub discovery: bool,
    /// The connection limit (0–7).
    pub conn_limit: u8,
    /// The versions the node offers.
    pub versions: Versions,
    /// The node runs [`mesh_proto::overlay::Liveness`].
    pub overlay: bool,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

fn read_peers(r: &mut Reader<'_>) -> Option<Vec<Vec<u8>>> {
    let n = r.u8()?;
    (0..n).map(|_| r.blob()).collect()
}

fn write_peers(w: &mut Writer, peers: &[Vec<u8>]) {
    w.u8(u8::try_from(peers.len()).expect("at most 255 peers in a seed"));
    for p in peers {
        w.blob(p);
    }
}

fn read_op(r: &mut Reader<'_>) -> Option<Op> {
    Some(match r.u8()? % 20 {
        0 => Op::Accept { ip: r.u8()?, port: r.u16()? },
        1 => Op::Dialed { conn: r.u8()? },
        2 => Op::DialFailed { conn: r.u8()? },
        3 => Op::Data { conn: r.u8()?, bytes: r.blob()? },
        4 => {
            let (conn, name, uid, pw) = (r.u8()?, r.u64()?, r.u64()?, r.u8()?);
            Op::Hello {
                conn,
                name,
                uid,
                password: Password::from_bits(pw),
                v2_only: pw & 4 != 0,
                key: r.u8()?,
            }
        }
        5 => Op::Deliver { conn: r.u8()?, max: r.u16()? },
        6 => Op::Frame { conn: r.u8()?, body: r.blob()? },
        7 => Op::Flip { conn: r.u8()?, body: r.blob()?, at: r.u16()?, mask: r.u8()? },
        8 => Op::Replay { conn: r.u8()? },
        9 => Op::Skip { conn: r.u8()? },
        10 => Op::Written { conn: r.u8()?, n: r.u32()? },
        11 => Op::Closed { conn: r.u8()? },
        12 => Op::Advance { ms: r.u32()? },
        13 => Op::Initiate { replace: r.u8()? & 1 != 0, peers: read_peers(r)? },
        14 => Op::Forget { peers: read_peers(r)? },
        15 => Op::Increment,
        16 => Op::Gossip,
        17 => Op::Unicast { dst: r.u64()?, bytes: r.blob()? },
        18 => Op::Register { name: r.blob()? },
        _ => Op::Status,
    })
}

fn write_op(w: &mut Writer, op: &Op) {
    match op {
        Op::Accept { ip, port } => {
            w.u8(0);
            w.u8(*ip);
            w.u16(*port);
        }
        Op::Dialed { conn } => {
            w.u8(1);
            w.u8(*conn);
        }
        Op::DialFailed { conn } => {
            w.u8(2);
            w.u8(*conn);
        }
        Op::Data { conn, bytes } => {
            w.u8(3);
            w.u8(*conn);
            w.blob(bytes);
        }
        Op::Hello { conn, name, uid, password, v2_only, key } => {
            w.u8(4);
            w.u8(*conn);
            w.u64(*name);
            w.u64(*uid);
            w.u8(password.bits() | u8::from(*v2_only) << 2);
            w.u8(*key);
        }
        Op::Deliver { conn, max } => {
            w.u8(5);
            w.u8(*conn);
            w.u16(*max);
        }
        Op::Frame { conn, body } => {
            w.u8(6);
            w.u8(*conn);
            w.blob(body);
        }
        Op::Flip { conn, body, at, mask } => {
            w.u8(7);
            w.u8(*conn);
            w.blob(body);
            w.u16(*at);
            w.u8(*mask);
        }
        Op::Replay { conn } => {
            w.u8(8);
            w.u8(*conn);
        }
        Op::Skip { conn } => {
            w.u8(9);
            w.u8(*conn);
        }
        Op::Written { conn, n } => {
            w.u8(10);
            w.u8(*conn);
            w.u32(*n);
        }
        Op::Closed { conn } => {
            w.u8(11);
            w.u8(*conn);
        }
        Op::Advance { ms } => {
            w.u8(12);
            w.u32(*ms);
        }
        Op::Initiate { replace, peers } => {
            w.u8(13);
            w.u8(u8::from(*replace));
            write_peers(w, peers);
        }
        Op::Forget { peers } => {
            w.u8(14);
            write_peers(w, peers);
        }
        Op::Increment => w.u8(15),
        Op::Gossip => w.u8(16),
        Op::Unicast { dst, bytes } => {
            w.u8(17);
            w.u64(*dst);
            w.blob(bytes);
        }
        Op::Register { name } => {
            w.u8(18);
            w.blob(name);
        }
        Op::Status => w.u8(19),
    }
}

impl Input {
    /// Decodes any bytes.
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let flags = r.u8().unwrap_or(0);
        let mut ops = Vec::new();
        while let Some(op) = read_op(&mut r) {
            ops.push(op);
        }
        Input {
            encrypted: flags & 1 != 0,
            discovery: flags & 2 != 0,
            conn_limit: (flags >> 2) & 7,
            versions: Versions::from_bits(flags >> 5),
            overlay: flags & 0x80 != 0,
            ops,
        }
    }

    /// The bytes that decode to `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        assert!(self.conn_limit < 8, "the connection limit has three bits");
        w.u8(u8::from(self.encrypted)
            | u8::from(self.discovery) << 1
            | self.conn_limit << 2
            | self.versions.bits() << 5
            | u8::from(self.overlay) << 7);
        for op in &self.ops {
            write_op(&mut w, op);
        }
        w.out
    }
}

/// What happened, for the seed writer's checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Connections established.
    pub established: usize,
    /// Why connections closed, in order.
    pub closes: Vec<CloseReason>,
    /// Frames from the node that honest remotes opened and decoded.
    pub checked: usize,
    /// The counter application's state at the end.
    pub counts: Counts,
}

/// One connection, seen from outside the node.
#[derive(Debug, Default)]
struct Link {
    /// The node dialled it.
    outbound: bool,
    /// What the node sent before a remote started, and whether some was dropped.
    early: Vec<u8>,
    overflow: bool,
    remote: Option<Remote>,
    /// Handed to the driver and not yet reported written.
    unwritten: usize,
}

/// Runs `input`, asserting what must hold whatever the input is, and reports.
pub fn run(input: &Input) -> Report {
    let us = PeerName::from_u64(US).expect("a valid peer name");
    let mut config = Config::new(us, "fuzz");
    config.password = input.encrypted.then(|| Bytes::from_static(b"pw"));
    config.conn_limit = usize::from(input.conn_limit);
    config.peer_discovery = input.discovery;
    config.max_relay_channels = 4;
    match input.versions {
        Versions::Both => {}
        Versions::V2Only => config.max_protocol_version = 2,
        Versions::V3Only => config.min_protocol_version = 3,
    }
    let mut now = Instant::from_secs(1);
    let mut node = Node::new(config, [7; 32], now).expect("a valid configuration");
    if input.overlay {
        node.set_overlay(mesh_proto::overlay::Liveness::default());
    }
    let counter = Counter::new(us);
    let channel = node.register_channel("default", counter.gossiper()).expect("a new channel");
    let mut conns: Vec<ConnId> = Vec::new();
    let mut links: BTreeMap<ConnId, Link> = BTreeMap::new();
    let mut report = Report::default();
    let pick = |conns: &[ConnId], i: u8| conns.get(usize::from(i) % conns.len().max(1)).copied();
    let name = |v: u64| PeerName::from_u64(v & 0xffff_ffff_ffff).expect("48 bits");

    for op in input.ops.iter().take(MAX_OPS) {
        match op {
            Op::Accept { ip, port } => {
                let addr = format!("10.9.0.{ip}:{port}").parse().expect("a valid address");
                let c = node.handle_accepted(addr, now);
                conns.push(c);
                links.entry(c).or_default();
            }
            Op::Dialed { conn } => {
                if let Some(c) = pick(&conns, *conn) {
                    node.handle_dialed(c, now);
                }
            }
            Op::DialFailed { conn } => {
                if let Some(c) = pick(&conns, *conn) {
                    node.handle_dial_failed(c, "refused", now);
                }
            }
            Op::Data { conn, bytes } => {
                if let Some(c) = pick(&conns, *conn) {
                    node.handle_data(c, bytes, now);
                }
            }
            Op::Hello { conn, name: n, uid, password, v2_only, key } => {
                if let Some(c) = pick(&conns, *conn) {
                    let link = links.entry(c).or_default();
                    if link.remote.is_none() && !link.overflow {
                        let role = if link.outbound { Role::Listener } else { Role::Dialer };
                        let keys = KeyPair::from_secret([*key; 32]);
                        let versions = if *v2_only { Preamble::V2_ONLY } else { Preamble::OURS };
                        let h = Handshake::with_parts(
                            handshake::config(role, name(*n), *uid, password.bytes(), versions),
                            Some(keys),
                            uid.rotate_left(17) ^ c.0,
                            now,
                        );
                        let mut remote = Remote::new(h);
                        remote.receive(&std::mem::take(&mut link.early), now);
                        link.remote = Some(remote);
                    }
                }
            }
            Op::Deliver { conn, max } => {
                if let Some(c) = pick(&conns, *conn) {
                    let data = links.get_mut(&c).and_then(|l| l.remote.as_mut()).map(|r| r.deliver(*max));
                    if let Some(data) = data.filter(|d| !d.is_empty()) {
                        node.handle_data(c, &data, now);
                    }
                }
            }
            Op::Frame { conn, body } => {
                if let Some(r) = pick(&conns, *conn).and_then(|c| links.get_mut(&c)?.remote.as_mut()) {
                    let f = r.frame(body);
                    r.write(f);
                }
            }
            Op::Flip { conn, body, at, mask } => {
                if let Some(r) = pick(&conns, *conn).and_then(|c| links.get_mut(&c)?.remote.as_mut()) {
                    let f = r.flipped(body, *at, *mask);
                    r.write(f);
                }
            }
            Op::Replay { conn } => {
                if let Some(r) = pick(&conns, *conn).and_then(|c| links.get_mut(&c)?.remote.as_mut()) {
                    r.replay();
                }
            }
            Op::Skip { conn } => {
                if let Some(r) = pick(&conns, *conn).and_then(|c| links.get_mut(&c)?.remote.as_mut()) {
                    let _ = r.frame(&[]);
                }
            }
            Op::Written { conn, n } => {
                if let Some(c) = pick(&conns, *conn) {
                    let link = links.entry(c).or_default();
                    let n = if *n == 0 { link.unwritten } else { link.unwritten.min(*n as usize) };
                    link.unwritten -= n;
                    node.handle_written(c, n, now);
                }
            }
            Op::Closed { conn } => {
                if let Some(c) = pick(&conns, *conn) {
                    node.handle_closed(c, "reset", now);
                }
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(*ms));
                node.handle_timeout(now);
            }
            Op::Initiate { replace, peers } => {
                let peers: Vec<String> =
                    peers.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
                node.initiate_connections(&peers, *replace, now);
            }
            Op::Forget { peers } => {
                let peers: Vec<String> =
                    peers.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
                node.forget_connections(&peers, now);
            }
            Op::Increment => node.broadcast(&channel, counter.increment(), now),
            Op::Gossip => node.gossip(&channel, counter.snapshot(), now),
            Op::Unicast { dst, bytes } => {
                let _ = node.unicast(&channel, name(*dst), bytes, now);
            }
            Op::Register { name } => {
                let _ = node.register_channel(name.clone(), Counter::new(us).gossiper());
            }
            Op::Status => {
                let st = node.status();
                assert_eq!(st.name, us);
            }
        }
        while let Some(out) = node.poll_output() {
            match out {
                Output::Transmit { conn, data } => {
                    let link = links.entry(conn).or_default();
                    link.unwritten += data.len();
                    match link.remote.as_mut() {
                        Some(r) => r.receive(&data, now),
                        None if link.early.len() + data.len() <= EARLY_LIMIT => {
                            link.early.extend_from_slice(&data)
                        }
                        None => link.overflow = true,
                    }
                }
                Output::Dial { conn, .. } => {
                    conns.push(conn);
                    links.entry(conn).or_default().outbound = true;
                }
                Output::Close { .. } => {}
                Output::Event(Event::ConnectionEstablished { .. }) => report.established += 1,
                Output::Event(Event::ConnectionClosed { reason, .. }) => report.closes.push(reason),
                Output::Event(_) => {}
            }
        }
        assert!(node.inspect().relay_channel_count() <= 4, "relay channels are bounded");
    }
    report.checked = links.values().filter_map(|l| l.remote.as_ref()).map(|r| r.checked).sum();
    report.counts = counter.snapshot();
    report
}
