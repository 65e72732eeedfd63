//! Gossip channels (docs/protocol-v2.md §19): the application contracts, the per-connection send
//! slots that merge instead of queueing, and relay-only channels for names we have no
//! gossiper for.
//!
//! Each channel owns its slots. A slot holds at most one gossip item and one broadcast
//! item per source; new data merges into what is waiting, so a slow connection costs at
//! most one merged item per slot, never a growing queue. Items are encoded only when they
//! are written, so they carry the state of that moment.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::name::PeerName;
use crate::time::Instant;
use crate::wire::message::GossipKind;

/// An error returned by a [`Gossiper`]: the connection that delivered the message is
/// closed, as in Go.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GossipError(pub String);

impl GossipError {
    /// An error with this message.
    pub fn new(msg: impl fmt::Display) -> Self {
        GossipError(msg.to_string())
    }
}

/// Data an application gossips: it can be encoded into messages and merged.
///
/// `merge` takes `other` by value and may not alias anything shared: each queued copy is
/// its own value, which avoids Go's weaveworks/weave#1697.
pub trait GossipData: Clone + Send + 'static {
    /// The messages that carry this data; each becomes one frame with its own envelope.
    fn encode(&self) -> Vec<Bytes>;
    /// Folds `other` into `self`.
    fn merge(&mut self, other: Self);
}

/// An application's handler for one channel.
///
/// # Callback rules
///
/// Callbacks run inside `Node` calls, on the task that drives the node, so:
/// - a callback emits through its [`Context`]: what it broadcasts, gossips or unicasts
///   there is sent on this channel as soon as the callback returns, in order (and
///   dropped if the callback returns an error);
/// - it must not wait for the node it runs on. The adapters' `Mesh` and `Channel` calls
///   made from inside a callback return their `InCallback` error at once instead of
///   waiting; anything else (another mesh, a database) should be handed to a task;
/// - it should return quickly: the node handles nothing else meanwhile.
///
/// Every method has a default that does nothing, so a gossiper implements only what its
/// channel uses: a receive-only unicast sink is `type Data` and `on_unicast`.
///
/// ```
/// use bytes::Bytes;
/// use mesh_proto::{Context, GossipData, GossipError, Gossiper, PeerName};
///
/// #[derive(Clone)]
/// struct Nothing;
/// impl GossipData for Nothing {
///     fn encode(&self) -> Vec<Bytes> { Vec::new() }
///     fn merge(&mut self, _: Self) {}
/// }
///
/// /// Answers every unicast with the same bytes, from inside the callback.
/// struct Echo;
/// impl Gossiper for Echo {
///     type Data = Nothing;
///     fn on_unicast(&mut self, ctx: &mut Context<'_, Nothing>, source: PeerName, payload: &[u8]) -> Result<(), GossipError> {
///         ctx.unicast_bytes(source, Bytes::copy_from_slice(payload)).map_err(GossipError::new)
///     }
/// }
/// ```
pub trait Gossiper: Send + 'static {
    /// The data this channel gossips.
    type Data: GossipData;
    /// Our complete state, sent periodically and down new connections; `None` if empty.
    /// By default there is none.
    fn gossip(&mut self) -> Option<Self::Data> {
        None
    }
    /// Merges received gossip and returns what was new to us (relayed to a neighbour
    /// subset), or `None` if nothing was. By default nothing is, and nothing is relayed.
    fn on_gossip(
        &mut self,
        ctx: &mut Context<'_, Self::Data>,
        payload: &[u8],
    ) -> Result<Option<Self::Data>, GossipError> {
        let _ = (ctx, payload);
        Ok(None)
    }
    /// Merges a broadcast and returns what to pass on down the source's tree (the same
    /// broadcast, as this peer now holds it: usually the received data itself); `None`
    /// stops the broadcast here. By default it stops here.
    fn on_broadcast(
        &mut self,
        ctx: &mut Context<'_, Self::Data>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Self::Data>, GossipError> {
        let _ = (ctx, source, payload);
        Ok(None)
    }
    /// Handles a unicast addressed to us. By default it is dropped.
    fn on_unicast(
        &mut self,
        ctx: &mut Context<'_, Self::Data>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError> {
        let _ = (ctx, source, payload);
        Ok(())
    }
}

/// What a callback sends on its own channel, performed once it returns.
pub(crate) enum Emit<D> {
    Broadcast(D),
    Gossip(D),
    Unicast(PeerName, Bytes),
}

/// Handed to every [`Gossiper`] callback: sends on the callback's channel without
/// waiting for the node (which is busy running the callback). Everything emitted is sent
/// when the callback returns, in the order emitted, exactly as the node's own
/// `broadcast`, `gossip` and `unicast` would send it.
pub struct Context<'a, D> {
    us: PeerName,
    now: Instant,
    emits: &'a mut Vec<Emit<D>>,
}

impl<D> fmt::Debug for Context<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("us", &self.us).field("emitted", &self.emits.len()).finish()
    }
}

impl<'a, D> Context<'a, D> {
    pub(crate) fn new(us: PeerName, now: Instant, emits: &'a mut Vec<Emit<D>>) -> Self {
        Context { us, now, emits }
    }

    /// Our peer name.
    pub fn us(&self) -> PeerName {
        self.us
    }

    /// The node's time of the call.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Broadcasts `data` from us to every peer, as `Node::broadcast` does.
    pub fn broadcast(&mut self, data: D) {
        self.emits.push(Emit::Broadcast(data));
    }

    /// Gossips `data` to a random subset of neighbours, as `Node::gossip` does.
    pub fn gossip(&mut self, data: D) {
        self.emits.push(Emit::Gossip(data));
    }

    /// Sends `payload` to `dest` as one unicast, as `Node::unicast` does. It is routed
    /// when the callback returns: if `dest` is unreachable then, or its next hop is
    /// congested, the unicast is dropped and counted in `Stats::unicasts_dropped`.
    ///
    /// # Errors
    /// [`NodeError::UnicastToSelf`](crate::NodeError::UnicastToSelf) if `dest` is us.
    pub fn unicast_bytes(
        &mut self,
        dest: PeerName,
        payload: impl Into<Bytes>,
    ) -> Result<(), crate::NodeError> {
        if dest == self.us {
            return Err(crate::NodeError::UnicastToSelf);
        }
        self.emits.push(Emit::Unicast(dest, payload.into()));
        Ok(())
    }
}

impl<D: GossipData> Context<'_, D> {
    /// Sends `data` to `dest`, one unicast per message of `data.encode()`, as the
    /// adapters' `Channel::unicast` does (see [`Context::unicast_bytes`] for routing).
    ///
    /// # Errors
    /// [`NodeError::UnicastToSelf`](crate::NodeError::UnicastToSelf) if `dest` is us.
    pub fn unicast(&mut self, dest: PeerName, data: D) -> Result<(), crate::NodeError> {
        data.encode().into_iter().try_for_each(|payload| self.unicast_bytes(dest, payload))
    }
}

/// What a callback emitted, type-erased for the node.
pub(crate) type ErasedEmit = Emit<Erased>;

fn erase_emits<D: GossipData>(emits: Vec<Emit<D>>) -> Vec<ErasedEmit> {
    emits
        .into_iter()
        .map(|e| match e {
            Emit::Broadcast(d) => Emit::Broadcast(Box::new(d) as Erased),
            Emit::Gossip(d) => Emit::Gossip(Box::new(d) as Erased),
            Emit::Unicast(dest, p) => Emit::Unicast(dest, p),
        })
        .collect()
}

/// Which slot an item goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Slot {
    /// The gossip slot (tag 4).
    Gossip,
    /// The broadcast slot of a source (tag 6).
    Broadcast(PeerName),
}

impl Slot {
    /// The message kind an item of this slot is sent as, and its source: gossip is
    /// always ours (`us`), a broadcast keeps its origin.
    pub(crate) fn kind(self, us: PeerName) -> (GossipKind, PeerName) {
        match self {
            Slot::Gossip => (GossipKind::Gossip, us),
            Slot::Broadcast(src) => (GossipKind::Broadcast, src),
        }
    }
}

/// Data returned by a callback, type-erased until it is queued.
pub(crate) type Erased = Box<dyn Any + Send>;

/// What the node hands a channel callback: who we are and the time (for its
/// [`Context`]), and where what it emits goes.
pub(crate) struct CallbackEnv<'a> {
    pub(crate) us: PeerName,
    pub(crate) now: Instant,
    pub(crate) emits: &'a mut Vec<ErasedEmit>,
}

/// The node's view of a channel, whatever its data type.
pub(crate) trait Channel: Send {
    fn gossip(&mut self) -> Option<Erased>;
    fn on_gossip(&mut self, env: &mut CallbackEnv<'_>, payload: &[u8])
    -> Result<Option<Erased>, GossipError>;
    fn on_broadcast(
        &mut self,
        env: &mut CallbackEnv<'_>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Erased>, GossipError>;
    fn on_unicast(
        &mut self,
        env: &mut CallbackEnv<'_>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError>;
    /// The channel's send slots on every connection.
    fn slots(&mut self) -> &mut dyn ErasedSlots;
    /// Whether this is a relay-only channel.
    fn is_relay(&self) -> bool;
    /// The data type of an application channel (none for a relay-only one).
    fn data_type(&self) -> Option<core::any::TypeId> {
        None
    }
    /// When a relay-only channel was last used (to evict the least recently used).
    fn last_used(&self) -> Instant {
        Instant::MAX
    }
}

/// A channel's send slots, whatever its data type.
pub(crate) trait ErasedSlots: Send {
    /// Merges a copy of `data` into `conn`'s slot. False if `data` has the wrong type.
    fn queue(&mut self, conn: u64, slot: Slot, data: &Erased) -> bool;
    /// Takes and encodes the next waiting item for `conn`: gossip first, then
    /// broadcasts by source.
    fn take(&mut self, conn: u64) -> Option<(Slot, Vec<Bytes>)>;
    /// Forgets `conn`'s slots.
    fn drop_conn(&mut self, conn: u64);
}

/// One connection's send slots for one kind of data: at most one gossip item and one
/// broadcast item per source; what is queued merges into what waits. The topology and
/// every channel use this, each with its own merge.
#[derive(Debug)]
pub(crate) struct SendSlots<D> {
    gossip: Option<D>,
    broadcast: BTreeMap<PeerName, D>,
}

impl<D> Default for SendSlots<D> {
    fn default() -> Self {
        SendSlots { gossip: None, broadcast: BTreeMap::new() }
    }
}

impl<D> SendSlots<D> {
    /// Puts `data` in `slot`, merged by `merge` into what waits there.
    pub(crate) fn queue(&mut self, slot: Slot, data: D, merge: impl FnOnce(&mut D, D)) {
        let waiting = match slot {
            Slot::Gossip => &mut self.gossip,
            Slot::Broadcast(src) => match self.broadcast.get_mut(&src) {
                Some(d) => return merge(d, data),
                None => {
                    self.broadcast.insert(src, data);
                    return;
                }
            },
        };
        match waiting {
            Some(d) => merge(d, data),
            None => *waiting = Some(data),
        }
    }

    /// The next waiting item: gossip first, then broadcasts by source.
    pub(crate) fn take(&mut self) -> Option<(Slot, D)> {
        if let Some(d) = self.gossip.take() {
            return Some((Slot::Gossip, d));
        }
        self.broadcast.pop_first().map(|(src, d)| (Slot::Broadcast(src), d))
    }

    fn is_empty(&self) -> bool {
        self.gossip.is_none() && self.broadcast.is_empty()
    }
}

/// A channel's send slots on every connection.
struct Slots<D> {
    by_conn: BTreeMap<u64, SendSlots<D>>,
}

impl<D: GossipData> Slots<D> {
    fn new() -> Self {
        Slots { by_conn: BTreeMap::new() }
    }
}

impl<D: GossipData> ErasedSlots for Slots<D> {
    fn queue(&mut self, conn: u64, slot: Slot, data: &Erased) -> bool {
        let Some(d) = data.downcast_ref::<D>() else { return false };
        self.by_conn.entry(conn).or_default().queue(slot, d.clone(), D::merge);
        true
    }

    fn take(&mut self, conn: u64) -> Option<(Slot, Vec<Bytes>)> {
        let s = self.by_conn.get_mut(&conn)?;
        let out = s.take().map(|(slot, d)| (slot, d.encode()));
        if s.is_empty() {
            self.by_conn.remove(&conn);
        }
        out
    }

    fn drop_conn(&mut self, conn: u64) {
        self.by_conn.remove(&conn);
    }
}

/// A channel with an application gossiper.
pub(crate) struct AppChannel<G: Gossiper> {
    gossiper: G,
    slots: Slots<G::Data>,
}

impl<G: Gossiper> AppChannel<G> {
    pub(crate) fn new(gossiper: G) -> Self {
        AppChannel { gossiper, slots: Slots::new() }
    }

    /// Runs one callback with a fresh [`Context`]; what it emitted goes to `env` only if
    /// it succeeded.
    fn with_context<T>(
        &mut self,
        env: &mut CallbackEnv<'_>,
        f: impl FnOnce(&mut G, &mut Context<'_, G::Data>) -> Result<T, GossipError>,
    ) -> Result<T, GossipError> {
        let mut mine = Vec::new();
        let r = f(&mut self.gossiper, &mut Context::new(env.us, env.now, &mut mine))?;
        env.emits.extend(erase_emits(mine));
        Ok(r)
    }
}

fn erase<D: GossipData>(d: Option<D>) -> Option<Erased> {
    d.map(|d| Box::new(d) as Erased)
}

impl<G: Gossiper> Channel for AppChannel<G> {
    fn gossip(&mut self) -> Option<Erased> {
        erase(self.gossiper.gossip())
    }
    fn on_gossip(
        &mut self,
        env: &mut CallbackEnv<'_>,
        payload: &[u8],
    ) -> Result<Option<Erased>, GossipError> {
        Ok(erase(self.with_context(env, |g, ctx| g.on_gossip(ctx, payload))?))
    }
    fn on_broadcast(
        &mut self,
        env: &mut CallbackEnv<'_>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Erased>, GossipError> {
        Ok(erase(self.with_context(env, |g, ctx| g.on_broadcast(ctx, source, payload))?))
    }
    fn on_unicast(
        &mut self,
        env: &mut CallbackEnv<'_>,
        source: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError> {
        self.with_context(env, |g, ctx| g.on_unicast(ctx, source, payload))
    }
    fn slots(&mut self) -> &mut dyn ErasedSlots {
        &mut self.slots
    }
    fn is_relay(&self) -> bool {
        false
    }
    fn data_type(&self) -> Option<core::any::TypeId> {
        Some(core::any::TypeId::of::<G::Data>())
    }
}

/// A channel made on demand by a [`GossiperMaker`]: a gossiper, whatever its data type.
pub struct MadeChannel(pub(crate) Box<dyn Channel>);

impl MadeChannel {
    /// The channel `gossiper` serves.
    pub fn new<G: Gossiper>(gossiper: G) -> MadeChannel {
        MadeChannel(Box::new(AppChannel::new(gossiper)))
    }
}

impl core::fmt::Debug for MadeChannel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MadeChannel")
    }
}

/// Makes gossipers for channels nobody registered, when traffic first arrives on one (Go's
/// `GossiperMaker`). Set with [`crate::Node::set_gossiper_maker`].
///
/// It is asked once for a channel: the first time gossip, a broadcast or a unicast for us
/// arrives on a name that has no channel. What it returns serves that channel from then
/// on, starting with the message that asked; `None` leaves the channel relay-only, as
/// without a maker. It is asked again only if that relay-only channel is later evicted
/// (see [`crate::Config::max_relay_channels`]). Once it has made
/// [`crate::Config::max_made_channels`] channels it is not asked again: channel names come
/// from the wire, and made channels are kept for good. Like every callback it runs on the task
/// that drives the node. A closure `FnMut(&[u8]) -> Option<MadeChannel>` is a maker.
///
/// ```
/// use mesh_proto::counter::Counter;
/// use mesh_proto::{Config, MadeChannel, Node, PeerName};
/// let name = PeerName::from_u64(1).unwrap();
/// let mut node = Node::new(Config::new(name, "a"), Node::seed_from_u64(1), mesh_proto::Instant::ZERO)?;
/// // A counter for every channel whose name starts with "count-".
/// node.set_gossiper_maker(move |channel: &[u8]| {
///     channel.starts_with(b"count-").then(|| MadeChannel::new(Counter::new(name).gossiper()))
/// });
/// # Ok::<(), mesh_proto::NodeError>(())
/// ```
pub trait GossiperMaker: Send {
    /// The channel to serve `channel` (its name, any bytes), or `None` to relay it only.
    fn make(&mut self, channel: &[u8]) -> Option<MadeChannel>;
}

impl<F: FnMut(&[u8]) -> Option<MadeChannel> + Send> GossiperMaker for F {
    fn make(&mut self, channel: &[u8]) -> Option<MadeChannel> {
        self(channel)
    }
}

/// Payloads relayed unchanged by a relay-only channel. Merging concatenates, bounded:
/// past [`RelayData::MAX_ITEMS`] the oldest payloads are dropped, so a slow connection
/// cannot make the queue grow without end (Go's weaveworks/mesh#68).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RelayData(pub VecDeque<Bytes>);

impl RelayData {
    /// The most payloads one slot keeps.
    pub(crate) const MAX_ITEMS: usize = 64;
}

impl GossipData for RelayData {
    fn encode(&self) -> Vec<Bytes> {
        self.0.iter().cloned().collect()
    }
    fn merge(&mut self, other: Self) {
        self.0.extend(other.0);
        while self.0.len() > Self::MAX_ITEMS {
            self.0.pop_front();
        }
    }
}

/// Relay-only channel (Go's surrogate): passes gossip and broadcasts on unchanged.
/// The node suppresses gossip payloads already relayed within one gossip interval
/// ([`RelayMemory`]) before handing them over.
pub(crate) struct RelayChannel {
    slots: Slots<RelayData>,
    pub(crate) last_used: Instant,
}

impl RelayChannel {
    pub(crate) fn new(now: Instant) -> Self {
        RelayChannel { slots: Slots::new(), last_used: now }
    }
}

/// The gossip payloads relayed on relay-only channels lately, for the whole node. Go
/// keeps this per surrogate channel; ours outlives the channels, because relay-only
/// channels are evicted at their bound and a channel that forgot what it relayed would
/// pass the same payloads on again each time they come back: with more channels in
/// flight than the bound, gossip circled the mesh for ever.
pub(crate) struct RelayMemory {
    window: Duration,
    /// Digests of (channel, payload), oldest first, with when they were first relayed.
    order: VecDeque<(Instant, [u8; 16])>,
    index: BTreeSet<[u8; 16]>,
}

impl RelayMemory {
    /// The most remembered payloads, whatever their age.
    pub(crate) const MAX_SEEN: usize = 4096;

    pub(crate) fn new(window: Duration) -> Self {
        RelayMemory { window, order: VecDeque::new(), index: BTreeSet::new() }
    }

    /// Whether `payload` on `channel` is new, remembering it if so. As in Go, entries
    /// past the window are pruned only when a new payload is added.
    pub(crate) fn first_sight(&mut self, channel: &[u8], payload: &[u8], now: Instant) -> bool {
        // A cryptographic digest: a crafted collision must not silence others' gossip.
        let mut h = Sha256::new();
        h.update((channel.len() as u64).to_be_bytes());
        h.update(channel);
        h.update(payload);
        let mut key = [0u8; 16];
        key.copy_from_slice(&h.finalize()[..16]);
        if self.index.contains(&key) {
            return false;
        }
        while let Some(&(t, k)) = self.order.front() {
            if now.saturating_duration_since(t) < self.window && self.order.len() < Self::MAX_SEEN {
                break;
            }
            self.order.pop_front();
            self.index.remove(&k);
        }
        self.order.push_back((now, key));
        self.index.insert(key);
        true
    }
}

impl Channel for RelayChannel {
    fn gossip(&mut self) -> Option<Erased> {
        None
    }
    fn on_gossip(
        &mut self,
        env: &mut CallbackEnv<'_>,
        payload: &[u8],
    ) -> Result<Option<Erased>, GossipError> {
        self.last_used = env.now;
        Ok(erase(Some(RelayData(VecDeque::from([Bytes::copy_from_slice(payload)])))))
    }
    fn on_broadcast(
        &mut self,
        _env: &mut CallbackEnv<'_>,
        _source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Erased>, GossipError> {
        Ok(erase(Some(RelayData(VecDeque::from([Bytes::copy_from_slice(payload)])))))
    }
    fn on_unicast(
        &mut self,
        _env: &mut CallbackEnv<'_>,
        _source: PeerName,
        _payload: &[u8],
    ) -> Result<(), GossipError> {
        Ok(())
    }
    fn slots(&mut self) -> &mut dyn ErasedSlots {
        &mut self.slots
    }
    fn is_relay(&self) -> bool {
        true
    }
    fn last_used(&self) -> Instant {
        self.last_used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq)]
    struct Max(u64);
    impl GossipData for Max {
        fn encode(&self) -> Vec<Bytes> {
            vec![Bytes::from(self.0.to_string())]
        }
        fn merge(&mut self, other: Self) {
            self.0 = self.0.max(other.0);
        }
    }

    #[test]
    fn slots_merge_and_drain_in_order() {
        let mut s: Slots<Max> = Slots::new();
        let (a, b) = (PeerName::from_u64(2).unwrap(), PeerName::from_u64(1).unwrap());
        for (slot, n) in [(Slot::Broadcast(a), 1), (Slot::Broadcast(b), 5), (Slot::Gossip, 3)] {
            assert!(s.queue(7, slot, &(Box::new(Max(n)) as Erased)));
        }
        assert!(s.queue(7, Slot::Gossip, &(Box::new(Max(9)) as Erased)));
        assert!(s.queue(7, Slot::Broadcast(a), &(Box::new(Max(4)) as Erased)));
        assert_eq!(s.take(7), Some((Slot::Gossip, vec![Bytes::from("9")])));
        assert_eq!(s.take(7), Some((Slot::Broadcast(b), vec![Bytes::from("5")])));
        assert_eq!(s.take(7), Some((Slot::Broadcast(a), vec![Bytes::from("4")])));
        assert_eq!(s.take(7), None);
        assert!(s.by_conn.is_empty());
    }

    #[test]
    fn relay_memory_suppresses_duplicates_within_the_window() {
        let mut m = RelayMemory::new(Duration::from_secs(30));
        assert!(m.first_sight(b"ch", b"x", Instant::ZERO));
        assert!(!m.first_sight(b"ch", b"x", Instant::from_secs(10)));
        // The same payload on another channel is another message.
        assert!(m.first_sight(b"other", b"x", Instant::from_secs(10)));
        // Channel and payload are not confused at their boundary.
        assert!(m.first_sight(b"c", b"hx", Instant::from_secs(10)));
        // Expired, but only pruned when a new payload is added.
        assert!(!m.first_sight(b"ch", b"x", Instant::from_secs(40)));
        assert!(m.first_sight(b"ch", b"y", Instant::from_secs(40)));
        assert!(m.first_sight(b"ch", b"x", Instant::from_secs(41)));
    }

    #[test]
    fn relay_memory_is_bounded() {
        let mut m = RelayMemory::new(Duration::from_secs(30));
        for i in 0..RelayMemory::MAX_SEEN + 10 {
            assert!(m.first_sight(b"ch", &i.to_be_bytes(), Instant::ZERO));
        }
        assert_eq!(m.order.len(), RelayMemory::MAX_SEEN);
        assert_eq!(m.index.len(), RelayMemory::MAX_SEEN);
        // The oldest were forgotten first.
        assert!(m.first_sight(b"ch", &0usize.to_be_bytes(), Instant::ZERO));
        assert!(!m.first_sight(b"ch", &(RelayMemory::MAX_SEEN + 9).to_be_bytes(), Instant::ZERO));
    }

    #[test]
    fn relay_channels_pass_everything_on() {
        let mut r = RelayChannel::new(Instant::ZERO);
        let (mut emits, us) = (Vec::new(), PeerName::from_u64(1).unwrap());
        let e = &mut CallbackEnv { us, now: Instant::from_secs(3), emits: &mut emits };
        let got = r.on_gossip(e, b"x").unwrap().unwrap();
        assert_eq!(got.downcast_ref::<RelayData>(), Some(&RelayData(VecDeque::from([Bytes::from("x")]))));
        assert_eq!(r.last_used(), Instant::from_secs(3));
        assert!(r.gossip().is_none());
        assert_eq!(r.on_unicast(e, PeerName::UNKNOWN, b"z"), Ok(()));
        assert!(e.emits.is_empty());
    }

    #[test]
    fn relay_slots_are_bounded() {
        let mut d = RelayData::default();
        for i in 0..200u32 {
            d.merge(RelayData(VecDeque::from([Bytes::from(i.to_string())])));
        }
        assert_eq!(d.0.len(), RelayData::MAX_ITEMS);
        assert_eq!(d.0.back().unwrap(), &Bytes::from("199"));
    }

    /// Records what reaches it; its state is the highest number seen.
    #[derive(Default)]
    struct Recorder {
        state: u64,
        unicasts: Vec<(PeerName, Vec<u8>)>,
    }

    impl Gossiper for Recorder {
        type Data = Max;
        fn gossip(&mut self) -> Option<Max> {
            Some(Max(self.state))
        }
        fn on_gossip(
            &mut self,
            _: &mut Context<'_, Max>,
            payload: &[u8],
        ) -> Result<Option<Max>, GossipError> {
            self.merge_number(payload)
        }
        fn on_broadcast(
            &mut self,
            _: &mut Context<'_, Max>,
            _source: PeerName,
            payload: &[u8],
        ) -> Result<Option<Max>, GossipError> {
            self.merge_number(payload)
        }
        fn on_unicast(
            &mut self,
            ctx: &mut Context<'_, Max>,
            source: PeerName,
            payload: &[u8],
        ) -> Result<(), GossipError> {
            if payload.is_empty() {
                return Err(GossipError::new("empty"));
            }
            self.unicasts.push((source, payload.to_vec()));
            // Answers through the context, and spreads what it now holds.
            ctx.unicast_bytes(source, Bytes::from_static(b"ack")).map_err(GossipError::new)?;
            ctx.gossip(Max(self.state));
            ctx.broadcast(Max(self.state + 1));
            Ok(())
        }
    }

    impl Recorder {
        fn merge_number(&mut self, payload: &[u8]) -> Result<Option<Max>, GossipError> {
            let n: u64 = std::str::from_utf8(payload)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| GossipError::new("not a number"))?;
            let new = n > self.state;
            self.state = self.state.max(n);
            Ok(new.then_some(Max(n)))
        }
    }

    #[test]
    fn app_channels_hand_everything_to_their_gossiper() {
        let mut c = AppChannel::new(Recorder::default());
        let (mut emits, us) = (Vec::new(), PeerName::from_u64(1).unwrap());
        let e = &mut CallbackEnv { us, now: Instant::ZERO, emits: &mut emits };
        let got = c.on_gossip(e, b"5").unwrap().unwrap();
        assert_eq!(got.downcast_ref::<Max>(), Some(&Max(5)));
        assert!(c.on_gossip(e, b"3").unwrap().is_none(), "nothing new");
        assert_eq!(c.on_gossip(e, b"x").err(), Some(GossipError::new("not a number")));
        let src = PeerName::from_u64(4).unwrap();
        assert_eq!(c.on_broadcast(e, src, b"8").unwrap().unwrap().downcast_ref::<Max>(), Some(&Max(8)));
        assert_eq!(c.gossip().unwrap().downcast_ref::<Max>(), Some(&Max(8)));
        assert!(e.emits.is_empty(), "nothing emitted yet");
        assert_eq!(c.on_unicast(e, src, b"hi"), Ok(()));
        // What the callback emitted, in its order.
        match &e.emits[..] {
            [Emit::Unicast(d, p), Emit::Gossip(g), Emit::Broadcast(b)] => {
                assert_eq!((*d, &p[..]), (src, &b"ack"[..]));
                assert_eq!(g.downcast_ref::<Max>(), Some(&Max(8)));
                assert_eq!(b.downcast_ref::<Max>(), Some(&Max(9)));
            }
            _ => panic!("unexpected emits"),
        }
        e.emits.clear();
        assert_eq!(c.on_unicast(e, src, b""), Err(GossipError::new("empty")));
        assert!(e.emits.is_empty(), "a failed callback emits nothing");
        assert_eq!(c.gossiper.unicasts, [(src, b"hi".to_vec())]);
        assert!(!c.is_relay());
        assert_eq!(c.last_used(), Instant::MAX, "an application channel is never evicted");
    }

    #[test]
    fn app_channel_slots_take_only_their_type_and_go_with_their_connection() {
        let mut c = AppChannel::new(Recorder::default());
        let wrong: Erased = Box::new(RelayData(VecDeque::from([Bytes::from("r")])));
        assert!(!c.slots().queue(1, Slot::Gossip, &wrong));
        let data: Erased = Box::new(Max(2));
        assert!(c.slots().queue(1, Slot::Gossip, &data));
        assert!(c.slots().queue(2, Slot::Gossip, &data));
        c.slots().drop_conn(1);
        assert_eq!(c.slots().take(1), None);
        assert_eq!(c.slots().take(2), Some((Slot::Gossip, vec![Bytes::from("2")])));
    }

    #[test]
    fn relay_channels_queue_and_drain_their_payloads() {
        let mut r = RelayChannel::new(Instant::ZERO);
        assert!(r.is_relay());
        let src = PeerName::from_u64(4).unwrap();
        let (mut emits, us) = (Vec::new(), PeerName::from_u64(1).unwrap());
        let e = &mut CallbackEnv { us, now: Instant::ZERO, emits: &mut emits };
        let b = r.on_broadcast(e, src, b"b1").unwrap().unwrap();
        assert_eq!(b.downcast_ref::<RelayData>(), Some(&RelayData(VecDeque::from([Bytes::from("b1")]))));
        let wrong: Erased = Box::new(Max(1));
        assert!(!r.slots().queue(1, Slot::Gossip, &wrong));
        assert!(r.slots().queue(1, Slot::Broadcast(src), &b));
        let g = r.on_gossip(e, b"g1").unwrap().unwrap();
        assert!(r.slots().queue(1, Slot::Gossip, &g));
        let g2 = r.on_gossip(e, b"g2").unwrap().unwrap();
        assert!(r.slots().queue(1, Slot::Gossip, &g2));
        assert!(r.slots().queue(2, Slot::Gossip, &g2));
        // Merged gossip encodes as one message per payload, in order.
        assert_eq!(r.slots().take(1), Some((Slot::Gossip, vec![Bytes::from("g1"), Bytes::from("g2")])));
        assert_eq!(r.slots().take(1), Some((Slot::Broadcast(src), vec![Bytes::from("b1")])));
        assert_eq!(r.slots().take(1), None);
        r.slots().drop_conn(2);
        assert_eq!(r.slots().take(2), None);
    }

    #[test]
    fn relay_memory_forgets_a_payload_exactly_one_window_old() {
        let mut m = RelayMemory::new(Duration::from_secs(30));
        assert!(m.first_sight(b"ch", b"x", Instant::ZERO));
        // Adding at exactly the window's age prunes the old entry.
        assert!(m.first_sight(b"ch", b"y", Instant::from_secs(30)));
        assert!(m.first_sight(b"ch", b"x", Instant::from_secs(30)));
    }

    #[test]
    fn a_gossiper_with_only_the_defaults_is_a_quiet_sink() {
        struct Quiet;
        impl Gossiper for Quiet {
            type Data = Max;
        }
        let mut c = AppChannel::new(Quiet);
        let src = PeerName::from_u64(3).unwrap();
        let (mut emits, us) = (Vec::new(), PeerName::from_u64(1).unwrap());
        let e = &mut CallbackEnv { us, now: Instant::ZERO, emits: &mut emits };
        assert!(c.gossip().is_none());
        assert!(c.on_gossip(e, b"1").unwrap().is_none());
        assert!(c.on_broadcast(e, src, b"1").unwrap().is_none(), "a broadcast stops here");
        assert_eq!(c.on_unicast(e, src, b"1"), Ok(()));
        assert!(e.emits.is_empty());
    }

    #[test]
    fn a_context_refuses_a_unicast_to_ourselves() {
        let us = PeerName::from_u64(1).unwrap();
        let mut emits: Vec<Emit<Max>> = Vec::new();
        let mut ctx = Context::new(us, Instant::from_secs(2), &mut emits);
        assert_eq!((ctx.us(), ctx.now()), (us, Instant::from_secs(2)));
        assert_eq!(ctx.unicast_bytes(us, Bytes::from_static(b"x")), Err(crate::NodeError::UnicastToSelf));
        assert_eq!(ctx.unicast(us, Max(1)), Err(crate::NodeError::UnicastToSelf));
        assert!(emits.is_empty());
    }

    #[test]
    fn send_slots_merge_with_their_own_merge_and_drain_gossip_first() {
        let mut s: SendSlots<BTreeSet<u8>> = SendSlots::default();
        let union = |waiting: &mut BTreeSet<u8>, more: BTreeSet<u8>| waiting.extend(more);
        let src = PeerName::from_u64(5).unwrap();
        s.queue(Slot::Broadcast(src), [9].into(), union);
        s.queue(Slot::Gossip, [1, 2].into(), union);
        s.queue(Slot::Gossip, [2, 3].into(), union);
        s.queue(Slot::Broadcast(src), [8].into(), union);
        assert_eq!(s.take(), Some((Slot::Gossip, [1, 2, 3].into())));
        assert_eq!(s.take(), Some((Slot::Broadcast(src), [8, 9].into())));
        assert_eq!(s.take(), None);
        assert!(s.is_empty());
    }
}
