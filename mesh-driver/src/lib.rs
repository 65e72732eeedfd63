//! # mesh-driver
//!
//! The one driver loop and application API of the mesh, generic over a small
//! [`Runtime`] trait. Each adapter crate (`mesh-tokio`, `mesh-async-std`) implements the
//! trait and re-exports these types with its runtime fixed; applications use the
//! adapters, not this crate.
//!
//! The loop owns a [`mesh_proto::Node`], feeds it socket events, timer expiries and
//! application calls, and performs its outputs in order. It makes no protocol decision.
//!
//! The adapters' shared test suite, benchmark and counter example app live in the
//! workspace's unpublished `mesh-testkit` crate, not here.

mod api;
mod driver;
mod runtime;

pub use api::{Channel, Error, EventItem, Events, MembersWatch, Mesh, MeshBuilder, Snapshot};
pub use runtime::Runtime;
