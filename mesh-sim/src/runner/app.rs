//! The application every simulated peer of a scenario runs: the G-counter, a tracker
//! that records every delivery of a tracked message, a bulk channel for large unicasts,
//! and "sparse" channels that only some peers register.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use mesh_proto::counter::{Counter, Counts};
use mesh_proto::{ChannelHandle, Context, GossipError, Gossiper, Instant, Node, PeerName};

use crate::SimClock;
use crate::apps::{Blob, BlobGossiper, Ids, decode_ids};

/// Deliveries seen by one peer's tracker: id → (times delivered, first delivery).
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) broadcasts: BTreeMap<u64, (u32, Instant)>,
    pub(super) unicasts: BTreeMap<u64, (u32, Instant)>,
    pub(super) broadcast_messages: u64,
}

struct TrackerGossiper {
    seen: Arc<Mutex<Seen>>,
    clock: SimClock,
}

impl TrackerGossiper {
    fn record(
        &self,
        payload: &[u8],
        pick: impl Fn(&mut Seen) -> &mut BTreeMap<u64, (u32, Instant)>,
    ) -> Result<Ids, GossipError> {
        let ids = decode_ids(payload)?;
        let now = self.clock.now();
        let mut s = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for id in &ids.0 {
            pick(&mut s).entry(*id).or_insert((0, now)).0 += 1;
        }
        Ok(ids)
    }
}

impl Gossiper for TrackerGossiper {
    type Data = Ids;
    fn on_broadcast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _: PeerName,
        payload: &[u8],
    ) -> Result<Option<Ids>, GossipError> {
        let ids = self.record(payload, |s| &mut s.broadcasts)?;
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).broadcast_messages += 1;
        Ok(Some(ids))
    }
    fn on_unicast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError> {
        self.record(payload, |s| &mut s.unicasts).map(|_| ())
    }
}

/// The application state of one simulated peer.
pub(super) struct App {
    pub(super) counter: Counter,
    pub(super) counter_ch: ChannelHandle<Counts>,
    pub(super) seen: Arc<Mutex<Seen>>,
    pub(super) track_ch: ChannelHandle<Ids>,
    pub(super) bulk_ch: ChannelHandle<Blob>,
    /// The sparse channels this peer registered.
    pub(super) sparse: Vec<ChannelHandle<Blob>>,
}

/// The sparse channels peer `i` registers out of `count`: `sparse-k` where
/// `(i + k) % 3 == 0`, so each is missing on two peers in three and those relay it
/// through relay-only channels.
pub(super) fn sparse_channels_of(i: usize, count: usize) -> Vec<String> {
    (0..count).filter(|k| (i % 3 + k % 3) % 3 == 0).map(|k| format!("sparse-{k}")).collect()
}

/// Registers the app on a (re)started peer and dials its initial peers; the counter
/// starts from the peer's own increments so far, as if it had kept them on disk.
pub(super) fn setup(
    i: usize,
    clock: SimClock,
    own: Rc<RefCell<Vec<i64>>>,
    dials: Vec<String>,
    sparse: usize,
) -> impl FnMut(&mut Node, Instant) -> Box<dyn Any> {
    move |node, now| {
        let mut state = Counts::default();
        let mine = own.borrow().get(i).copied().unwrap_or(0);
        if mine > 0 {
            state.0.insert(node.name(), mine);
        }
        let counter = Counter::with_state(node.name(), state);
        let counter_ch = node.register_channel("default", counter.gossiper()).expect("fresh node");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let track_ch = node
            .register_channel("track", TrackerGossiper { seen: seen.clone(), clock: clock.clone() })
            .expect("fresh node");
        let bulk_ch = node.register_channel("bulk", BlobGossiper::default()).expect("fresh node");
        let sparse = sparse_channels_of(i, sparse)
            .into_iter()
            .map(|name| node.register_channel(name, BlobGossiper::with_state(b"s")).expect("fresh node"))
            .collect();
        node.initiate_connections(&dials, false, now);
        Box::new(App { counter, counter_ch, seen, track_ch, bulk_ch, sparse })
    }
}
