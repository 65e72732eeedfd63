//! Counters kept for diagnostics and the simulator.

/// Counters kept for diagnostics and the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Stats {
    /// Frames sent.
    pub frames_sent: u64,
    /// Bytes handed to the driver.
    pub bytes_sent: u64,
    /// Frames received.
    pub frames_received: u64,
    /// Unicasts for other peers relayed onwards.
    pub unicasts_relayed: u64,
    /// Unicasts dropped at this hop (no route, not connected, congested).
    pub unicasts_dropped: u64,
    /// Messages an application produced that did not fit in a frame.
    pub oversize_dropped: u64,
    /// Relay-only channels evicted to respect the bound.
    pub relay_channels_evicted: u64,
    /// Our short id was reassigned.
    pub short_id_reassignments: u64,
    /// [`crate::Event::ShortIdsInvalidated`] raised: inputs after which some short id
    /// named another peer.
    pub short_id_invalidations: u64,
    /// Channels a [`crate::GossiperMaker`] made when traffic first arrived on them.
    pub channels_made: u64,
    /// Connections closed because the remote stopped reading.
    pub slow_reader_closes: u64,
    /// Handshakes completed.
    pub handshakes: u64,
    /// Of those, the ones that negotiated protocol version 3.
    pub handshakes_v3: u64,
    /// Registrations that replaced a connection or lost a tie-break.
    pub tie_breaks: u64,
    /// Connections from peers that had restarted since we last knew them.
    pub restarts_detected: u64,
    /// Records removed by garbage collection.
    pub gc_removed: u64,
    /// Dials postponed by the exponential back-off after a failed attempt.
    pub backoffs: u64,
    /// Peers refused at our connection limit that we sent our topology to first.
    pub referrals: u64,
    /// Topology records sent in topology messages (each record once per message).
    pub topology_records_sent: u64,
    /// Version 3 topology synchronisation messages sent (docs/protocol-v3.md §12).
    pub sync_messages_sent: u64,
    /// Received records not taken, or claims about us taken only in part, because their
    /// version rose faster than a record's growth budget allows (docs/protocol-v2.md
    /// §17.3): forgeries, never an honest peer.
    pub version_jumps_refused: u64,
    /// Topology updates refused for a record over a bound of
    /// [`crate::config::RecordLimits`] (connections, nickname, size) or for growing the
    /// table past its bound; each closed the connection it came on.
    pub records_refused: u64,
    /// Connections an overlay refused or failed ([`crate::CloseReason::Overlay`]).
    pub overlay_failures: u64,
    /// Overlay control messages sent for the overlay.
    pub overlay_messages_sent: u64,
    /// Overlay control messages handed to the overlay.
    pub overlay_messages_received: u64,
}
