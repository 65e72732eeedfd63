//! What the structured fuzz targets share with the seed writer (`src/bin/seeds.rs`).
//!
//! The `frame`, `handshake`, `handshake_v3` and `node` targets take inputs with their own small byte
//! encoding instead of a derived `Arbitrary` layout, so that seeds can be built from real
//! protocol runs and written with [`Input::to_bytes`](handshake::Input::to_bytes), and
//! the fuzzer's mutations of a seed stay meaningful. Every encoding reads any byte string
//! (a short or odd input just ends early), and `from_bytes(&x.to_bytes()) == x` for every
//! value the seed writer builds. The harness of each target lives here too, so that the
//! seed writer can run each seed and check that it reaches what it was written for.

pub mod codec;
pub mod frame;
pub mod handshake;
pub mod handshake_v3;
pub mod node;
mod remote;
