//! # mesh-driver
//!
//! The one driver loop and application API of the mesh, generic over a small
//! [`Runtime`] trait. Each adapter crate (`mesh-tokio`, `mesh-async-std`) implements the
//! trait and re-exports these types with its runtime fixed; applications use the
//! adapters, not this crate.
//!
//! The loop owns a [`mesh_proto::Node`], feeds it socket events, timer expiries and
//! application calls, and performs its outputs in order. It makes no protocol decision.

mod api;
#[cfg(feature = "bench")]
pub mod bench;
#[cfg(feature = "counter-app")]
pub mod counter_app;
mod driver;
mod runtime;
#[cfg(feature = "suite")]
pub mod suite;

pub use api::{Channel, Error, EventItem, Events, MembersWatch, Mesh, MeshBuilder, Snapshot};
pub use runtime::Runtime;
