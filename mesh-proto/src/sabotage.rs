//! Deliberate breakage, for proving that the simulator's invariants can fail.
//!
//! Each [`Sabotage`] switches off one safety mechanism of the core, so that a test can
//! run a scenario on a broken node and show that the invariant guarding that mechanism
//! reports it (and that the shrinker reduces the failing scenario). The breaks take
//! effect only in builds with the `sabotage` feature, where [`crate::Config`] has a
//! `sabotage` set; without the feature the type is private and every check is a
//! constant `false`, so release builds carry none of it.

/// One mechanism of the core switched off on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sabotage {
    /// Garbage collection removes nothing: records of peers that left stay for ever
    /// (breaks `topology_agreement`).
    SkipGc,
    /// Application broadcasts received from others are delivered but never relayed
    /// down the tree (breaks `exactly_once`).
    NoBroadcastRelay,
    /// Gossip (the periodic full state and its deltas) on application channels is
    /// dropped unread, so state that missed its broadcast never merges (breaks
    /// `counters`).
    IgnoreGossip,
    /// Neither the receive timeout nor the send timeout closes a connection, so a peer
    /// that reads nothing keeps its connections (breaks `slow_reader`).
    NeverCloseSlowReader,
    /// Route recalculation keeps every next hop it had, so routes go on through links
    /// that are gone (breaks `routes`).
    StaleRoutes,
    /// Broadcasts are relayed to every neighbour instead of down the source's tree
    /// (breaks `broadcast_trees`).
    FloodBroadcasts,
    /// Direct sends (unicasts, relayed unicasts) ignore the queue bound (breaks
    /// `queue_bound`).
    NoCongestionLimit,
    /// Relay-only channels are never evicted (breaks `relay_channel_bound`).
    NoRelayEviction,
    /// A connection we dialled is never dialled again once it ends (breaks
    /// `reconnection`).
    NeverRedial,
    /// A peer refused at our connection limit gets no referral to the rest of the mesh
    /// first, so newcomers are locked out as in weaveworks/weave#426 (breaks
    /// `formation`).
    NoReferral,
    /// The node panics when a restarted peer connects (breaks `no_panic`).
    PanicOnRestart,
    /// Relay-only channels pass on every gossip payload, even one they relayed a moment
    /// ago, so gossip circles for ever (breaks `quiet_traffic`).
    NoRelayDedupe,
}

impl Sabotage {
    /// Every sabotage, in order.
    pub const ALL: [Sabotage; 12] = [
        Sabotage::SkipGc,
        Sabotage::NoBroadcastRelay,
        Sabotage::IgnoreGossip,
        Sabotage::NeverCloseSlowReader,
        Sabotage::StaleRoutes,
        Sabotage::FloodBroadcasts,
        Sabotage::NoCongestionLimit,
        Sabotage::NoRelayEviction,
        Sabotage::NeverRedial,
        Sabotage::NoReferral,
        Sabotage::PanicOnRestart,
        Sabotage::NoRelayDedupe,
    ];

    /// The name used in scenario files (`skip_gc`, `no_broadcast_relay`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Sabotage::SkipGc => "skip_gc",
            Sabotage::NoBroadcastRelay => "no_broadcast_relay",
            Sabotage::IgnoreGossip => "ignore_gossip",
            Sabotage::NeverCloseSlowReader => "never_close_slow_reader",
            Sabotage::StaleRoutes => "stale_routes",
            Sabotage::FloodBroadcasts => "flood_broadcasts",
            Sabotage::NoCongestionLimit => "no_congestion_limit",
            Sabotage::NoRelayEviction => "no_relay_eviction",
            Sabotage::NeverRedial => "never_redial",
            Sabotage::NoReferral => "no_referral",
            Sabotage::PanicOnRestart => "panic_on_restart",
            Sabotage::NoRelayDedupe => "no_relay_dedupe",
        }
    }
}

/// A name that is not a [`Sabotage`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown sabotage {0:?}")]
pub struct UnknownSabotage(pub String);

impl std::str::FromStr for Sabotage {
    type Err = UnknownSabotage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Sabotage::ALL.into_iter().find(|x| x.name() == s).ok_or_else(|| UnknownSabotage(s.to_owned()))
    }
}

impl std::fmt::Display for Sabotage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
