//! A whole `Node` driven by an arbitrary sequence of inputs: connections accepted,
//! dialled, failed, closed; data chunks (raw, or framed, or a valid handshake to get
//! past it quickly); write progress; time steps; application calls.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mesh_proto::counter::Counter;
use mesh_proto::wire::features::{self, LocalFeatures};
use mesh_proto::{Config, ConnId, Instant, Node, Output, PeerName};

#[derive(Arbitrary, Debug)]
enum Op {
    Accept { ip: u8, port: u16 },
    Dialed { conn: u8 },
    DialFailed { conn: u8 },
    /// Raw bytes on a connection.
    Data { conn: u8, bytes: Vec<u8> },
    /// A frame around `body` (with room for a tag when the node encrypts).
    Frame { conn: u8, body: Vec<u8> },
    /// The remote's half of a valid handshake, from peer `name`.
    Hello { conn: u8, name: u16, uid: u64, conn_id: u64 },
    Written { conn: u8, n: u32 },
    Closed { conn: u8 },
    Advance { ms: u32 },
    Initiate { peers: Vec<String>, replace: bool },
    Forget { peers: Vec<String> },
    Increment,
    Gossip,
    Unicast { dst: u16, bytes: Vec<u8> },
    Register { name: Vec<u8> },
    Status,
}

#[derive(Arbitrary, Debug)]
struct Input {
    encrypted: bool,
    conn_limit: u8,
    discovery: bool,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let us = PeerName::from_u64(1).unwrap();
    let mut config = Config::new(us, "fuzz");
    config.password = input.encrypted.then(|| Bytes::from_static(b"pw"));
    config.conn_limit = usize::from(input.conn_limit % 8);
    config.peer_discovery = input.discovery;
    config.max_relay_channels = 4;
    let mut now = Instant::from_secs(1);
    let mut node = Node::new(config, [7; 32], now).unwrap();
    let counter = Counter::new(us);
    let channel = node.register_channel("default", counter.gossiper()).unwrap();
    let mut conns: Vec<ConnId> = Vec::new();
    let pick = |conns: &[ConnId], i: u8| conns.get(usize::from(i) % conns.len().max(1)).copied();
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Accept { ip, port } => {
                let addr = format!("10.9.0.{ip}:{port}").parse().unwrap();
                conns.push(node.handle_accepted(addr, now));
            }
            Op::Dialed { conn } => {
                if let Some(c) = pick(&conns, conn) {
                    node.handle_dialed(c, now);
                }
            }
            Op::DialFailed { conn } => {
                if let Some(c) = pick(&conns, conn) {
                    node.handle_dial_failed(c, "refused", now);
                }
            }
            Op::Data { conn, bytes } => {
                if let Some(c) = pick(&conns, conn) {
                    node.handle_data(c, &bytes, now);
                }
            }
            Op::Frame { conn, body } => {
                if let Some(c) = pick(&conns, conn) {
                    let tag = if input.encrypted { 16 } else { 0 };
                    let mut f = ((body.len() + tag) as u32).to_be_bytes().to_vec();
                    f.extend(std::iter::repeat_n(0, tag));
                    f.extend_from_slice(&body);
                    node.handle_data(c, &f, now);
                }
            }
            Op::Hello { conn, name, uid, conn_id } => {
                if let Some(c) = pick(&conns, conn) {
                    let mut hello = b"weave\x02\x02".to_vec();
                    hello.push(input.encrypted as u8);
                    if input.encrypted {
                        let mut key = [0u8; 32];
                        key[0] = 9;
                        hello.extend_from_slice(&key);
                    }
                    let mut feats = Vec::new();
                    let local = LocalFeatures {
                        name: PeerName::from_u64(u64::from(name)).unwrap(),
                        nickname: Bytes::from_static(b"remote"),
                        uid,
                        short_id: name % 4096,
                        conn_id,
                        trusts_remote: false,
                    };
                    features::encode(&mut feats, &local);
                    let tag = if input.encrypted { 16 } else { 0 };
                    hello.extend_from_slice(&((feats.len() + tag) as u32).to_be_bytes());
                    hello.extend(std::iter::repeat_n(0, tag));
                    hello.extend_from_slice(&feats);
                    node.handle_data(c, &hello, now);
                }
            }
            Op::Written { conn, n } => {
                if let Some(c) = pick(&conns, conn) {
                    node.handle_written(c, n as usize, now);
                }
            }
            Op::Closed { conn } => {
                if let Some(c) = pick(&conns, conn) {
                    node.handle_closed(c, "reset", now);
                }
            }
            Op::Advance { ms } => {
                now = now + Duration::from_millis(u64::from(ms % 120_000));
                node.handle_timeout(now);
            }
            Op::Initiate { peers, replace } => {
                node.initiate_connections(&peers, replace, now);
            }
            Op::Forget { peers } => node.forget_connections(&peers, now),
            Op::Increment => node.broadcast(&channel, counter.increment(), now),
            Op::Gossip => node.gossip(&channel, counter.snapshot(), now),
            Op::Unicast { dst, bytes } => {
                let _ = node.unicast(&channel, PeerName::from_u64(u64::from(dst)).unwrap(), &bytes, now);
            }
            Op::Register { name } => {
                let _ = node.register_channel(name, Counter::new(us).gossiper());
            }
            Op::Status => {
                let st = node.status();
                assert_eq!(st.name, us);
            }
        }
        while let Some(out) = node.poll_output() {
            if let Output::Dial { conn, .. } = out {
                conns.push(conn);
            }
        }
        if let Some(t) = node.poll_timeout() {
            // Time never has to go backwards for the node.
            let _ = t;
        }
        assert!(node.relay_channel_count() <= 4);
    }
});
