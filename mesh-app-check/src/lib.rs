//! An application built on `mesh-tokio` alone (see the crate's test): a counter mesh of
//! three peers that waits for its members, watches them, reads its events and status.
