//! Applications the simulator runs on its nodes: the Go example's G-counter, and a
//! tracker that records every broadcast and unicast delivered, to check "exactly once".

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use mesh_proto::counter::{Counter, Counts};
use mesh_proto::{ChannelHandle, Context, GossipData, GossipError, Gossiper, Instant, Node, PeerName};

/// The counter app on one node.
pub struct CounterApp {
    /// The counter state.
    pub counter: Counter,
    /// Its channel.
    pub channel: ChannelHandle<Counts>,
}

impl CounterApp {
    /// Increments and broadcasts, as the Go app's POST does.
    pub fn increment(&self, node: &mut Node, now: Instant) {
        let state = self.counter.increment();
        node.broadcast(&self.channel, state, now);
    }
}

/// A setup that registers the counter on channel `default` and dials `peers`.
pub fn counter_setup(peers: Vec<String>) -> impl FnMut(&mut Node, Instant) -> Box<dyn Any> {
    move |node, now| {
        let counter = Counter::new(node.name());
        let channel = node.register_channel("default", counter.gossiper()).expect("fresh node");
        node.initiate_connections(&peers, false, now);
        Box::new(CounterApp { counter, channel })
    }
}

/// Message ids carried by the tracker channel; merging is union.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids(pub BTreeSet<u64>);

impl GossipData for Ids {
    fn encode(&self) -> Vec<Bytes> {
        let mut b = Vec::with_capacity(self.0.len() * 8);
        for id in &self.0 {
            b.extend_from_slice(&id.to_be_bytes());
        }
        vec![Bytes::from(b)]
    }
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
    }
}

/// Decodes a tracker payload (big-endian u64 ids).
pub fn decode_ids(payload: &[u8]) -> Result<Ids, GossipError> {
    if payload.len() % 8 != 0 {
        return Err(GossipError::new("tracker payload is not a list of u64"));
    }
    Ok(Ids(payload.chunks_exact(8).map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default())).collect()))
}

/// What a tracker saw.
#[derive(Debug, Default)]
pub struct Deliveries {
    /// Broadcast id → (source, times delivered).
    pub broadcasts: BTreeMap<u64, (PeerName, u32)>,
    /// Unicasts received: (source, payload).
    pub unicasts: Vec<(PeerName, Bytes)>,
}

/// Records deliveries on one node.
#[derive(Clone, Debug, Default)]
pub struct Tracker(Arc<Mutex<Deliveries>>);

impl Tracker {
    /// The deliveries so far.
    pub fn lock(&self) -> MutexGuard<'_, Deliveries> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The tracker's gossiper.
pub struct TrackerGossiper(Tracker);

impl TrackerGossiper {
    /// A gossiper recording into `tracker`.
    pub fn new(tracker: Tracker) -> Self {
        TrackerGossiper(tracker)
    }
}

impl Gossiper for TrackerGossiper {
    type Data = Ids;
    fn on_broadcast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Ids>, GossipError> {
        let ids = decode_ids(payload)?;
        let mut d = self.0.lock();
        for id in &ids.0 {
            d.broadcasts.entry(*id).or_insert((source, 0)).1 += 1;
        }
        Ok(Some(ids))
    }
    fn on_unicast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError> {
        self.0.lock().unicasts.push((source, Bytes::copy_from_slice(payload)));
        Ok(())
    }
}

/// The tracker app on one node.
pub struct TrackerApp {
    /// Deliveries.
    pub tracker: Tracker,
    /// Its channel.
    pub channel: ChannelHandle<Ids>,
}

/// A setup that registers the tracker on channel `track` and dials `peers`.
pub fn tracker_setup(peers: Vec<String>) -> impl FnMut(&mut Node, Instant) -> Box<dyn Any> {
    move |node, now| {
        let tracker = Tracker::default();
        let channel = node.register_channel("track", TrackerGossiper(tracker.clone())).expect("fresh node");
        node.initiate_connections(&peers, false, now);
        Box::new(TrackerApp { tracker, channel })
    }
}

/// Makes tracker gossipers without a setup (for nodes that add channels later).
pub struct TrackerGossiperFactory;

impl TrackerGossiperFactory {
    /// A gossiper recording into a fresh tracker.
    pub fn make() -> TrackerGossiper {
        TrackerGossiper(Tracker::default())
    }
}

/// Opaque bytes: the payload of the bulk and sparse workloads. A merge keeps the newer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blob(pub Bytes);

impl GossipData for Blob {
    fn encode(&self) -> Vec<Bytes> {
        vec![self.0.clone()]
    }
    fn merge(&mut self, other: Self) {
        self.0 = other.0;
    }
}

/// A gossiper that keeps nothing: it relays every broadcast on, accepts unicasts, and
/// gossips a fixed state (if any) so that its channel travels in periodic gossip too.
#[derive(Debug, Default)]
pub struct BlobGossiper {
    state: Option<Bytes>,
}

impl BlobGossiper {
    /// A gossiper whose periodic gossip is `state`.
    pub fn with_state(state: &'static [u8]) -> Self {
        BlobGossiper { state: Some(Bytes::from_static(state)) }
    }
}

impl Gossiper for BlobGossiper {
    type Data = Blob;
    fn gossip(&mut self) -> Option<Blob> {
        self.state.clone().map(Blob)
    }
    fn on_broadcast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Blob>, GossipError> {
        Ok(Some(Blob(Bytes::copy_from_slice(payload))))
    }
}
