//! # mesh-proto
//!
//! The sans-IO core of a gossip mesh that speaks protocol version 2 of
//! weaveworks/mesh, byte for byte, so a Rust peer can join a mesh of unmodified Go peers.
//!
//! This crate never touches a socket, a clock, a thread or the operating system's
//! randomness. Bytes and timer events go in; bytes to send and events come out. Time is
//! always an argument ([`time::Instant`]); randomness comes from a generator the caller
//! seeds.
//!
//! Layers, bottom up:
//! - [`name`]: peer names (48-bit, MAC-style text).
//! - [`wire`]: bytes to values and back: [`wire::gob`], [`wire::frame`],
//!   [`wire::header`], [`wire::features`], [`wire::message`], [`wire::topology`].
//! - [`crypto`]: key agreement, session key, sealing and nonces.
//! - [`handshake`]: one connection's introduction, as a state machine over bytes.
//! - [`config`]: every constant and default in one place.

#![forbid(unsafe_code)]

pub mod config;
pub mod connection;
pub mod connector;
pub mod counter;
pub mod crypto;
pub mod event;
pub mod gossip;
pub mod handshake;
pub mod name;
pub mod node;
mod random;
pub mod routes;
#[cfg(feature = "sabotage")]
pub mod sabotage;
// Without the feature the names exist only so that the core's checks compile to `false`.
#[cfg(not(feature = "sabotage"))]
#[allow(dead_code, unreachable_pub)]
mod sabotage;
pub mod status;
pub mod time;
pub mod topology;
pub mod wire;

pub use config::Config;
pub use connection::ConnId;
pub use event::{CloseReason, Event, Output};
pub use gossip::{GossipData, GossipError, Gossiper};
pub use name::PeerName;
pub use node::{ChannelHandle, Node, NodeError};
pub use status::Status;
pub use time::Instant;
