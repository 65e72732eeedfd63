//! # mesh-testkit
//!
//! The harnesses both runtime adapters (`mesh-tokio`, `mesh-async-std`) share, written
//! once against `mesh-driver`'s [`Runtime`](mesh_driver::Runtime) trait: the
//! integration suite their tests run ([`suite`]), the benchmark their `bench` examples
//! run ([`bench`](mod@bench)) and the counter app their `counter` examples run
//! ([`counter_app`]).
//!
//! Not published: the adapters use it as a dev-dependency only, so the published
//! `mesh-driver` carries none of it (nor the counter app's HTTP and command-line
//! dependencies).

pub mod bench;
pub mod counter_app;
pub mod suite;
