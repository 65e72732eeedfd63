//! Bytes to values and back, for protocol versions 2 and 3. Pure and bounded: every function
//! here takes bytes and returns values or a typed error, and never allocates more than
//! a small multiple of its input.

pub mod features;
pub mod frame;
pub mod gob;
pub mod header;
pub mod message;
pub mod sync;
pub mod topology;
