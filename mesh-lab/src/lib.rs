//! `mesh-lab`: real counter processes, tokio and smol, protocol versions 2 and 3 mixed,
//! each in its own network namespace on a bridge, under scripted faults (links down,
//! partitions both ways and one way, narrow links, crashes and restarts, freezes) while a
//! workload POSTs increments; then checks that nothing was lost, every process lives, the
//! topology agrees and memory stayed bounded. Run as root. See `mesh-lab --help` and the
//! crate's README.

//!
//! The library holds the pieces; the binary is the command line.

pub mod lab;
pub mod net;
pub mod observe;
pub mod procs;
pub mod report;
pub mod schedule;
pub mod workload;
