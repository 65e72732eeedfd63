//! The application's channels: registering a gossiper, and broadcast, gossip and
//! unicast on its channel (docs/protocol-v2.md §19.1).

use std::marker::PhantomData;

use bytes::Bytes;

use super::routing::Relay;
use super::{Node, NodeError, TOPOLOGY_CHANNEL};
use crate::connection::ConnId;
use crate::gossip::{AppChannel, Emit, Erased, ErasedEmit, GossipData, Gossiper, GossiperMaker, Slot};
use crate::name::PeerName;
use crate::time::Instant;
use crate::wire::message::{self, GossipKind};

/// A registered channel, typed by its data.
#[derive(Debug)]
pub struct ChannelHandle<D> {
    name: Bytes,
    _data: PhantomData<fn(D)>,
}

impl<D> Clone for ChannelHandle<D> {
    fn clone(&self) -> Self {
        ChannelHandle { name: self.name.clone(), _data: PhantomData }
    }
}

impl<D> ChannelHandle<D> {
    /// The channel's name.
    pub fn name(&self) -> &Bytes {
        &self.name
    }

    /// A handle for the channel called `name`, for drivers that hand out handles before
    /// the gossiper is registered. Data of another type than the registered gossiper's is
    /// never queued.
    pub fn named(name: Bytes) -> Self {
        ChannelHandle { name, _data: PhantomData }
    }
}

impl Node {
    /// Registers a gossiper under `name`. A relay-only channel of that name is replaced.
    pub fn register_channel<G: Gossiper>(
        &mut self,
        name: impl Into<Bytes>,
        gossiper: G,
    ) -> Result<ChannelHandle<G::Data>, NodeError> {
        let name = name.into();
        let taken =
            name.as_ref() == TOPOLOGY_CHANNEL || self.channels.get(&name).is_some_and(|c| !c.is_relay());
        if taken {
            return Err(NodeError::ChannelTaken(String::from_utf8_lossy(&name).into_owned()));
        }
        self.channels.insert(name.clone(), Box::new(AppChannel::new(gossiper)));
        Ok(ChannelHandle { name, _data: PhantomData })
    }

    /// Sets the maker asked for a gossiper when traffic first arrives on a channel nobody
    /// registered (Go's `GossiperMaker`; see [`GossiperMaker`]). Replaces any maker set
    /// before; channels already made stay.
    pub fn set_gossiper_maker(&mut self, maker: impl GossiperMaker + 'static) {
        self.maker = Some(Box::new(maker));
    }

    /// The application channel called `name`, registered or made on demand, if its data
    /// is `D` (Go's `Router.GetGossip`). `None` for a relay-only channel, an unknown name
    /// or another data type.
    pub fn channel<D: GossipData>(&self, name: &[u8]) -> Option<ChannelHandle<D>> {
        let ch = self.channels.get(name)?;
        (ch.data_type() == Some(std::any::TypeId::of::<D>()))
            .then(|| ChannelHandle { name: Bytes::copy_from_slice(name), _data: PhantomData })
    }

    /// Broadcasts `data` to every peer: sent to all our neighbours, relayed down the
    /// spanning tree rooted at us.
    pub fn broadcast<D: GossipData>(&mut self, ch: &ChannelHandle<D>, data: D, now: Instant) {
        self.send_broadcast(&ch.name, &(Box::new(data) as Erased));
        self.after_input(now);
    }

    /// A broadcast we originate goes to every neighbour.
    fn send_broadcast(&mut self, channel: &[u8], data: &Erased) {
        let us = self.config.name;
        let conns: Vec<ConnId> = self.by_name.values().copied().collect();
        self.queue_channel(channel, &conns, Slot::Broadcast(us), data);
    }

    /// Sends what a callback on `channel` emitted through its context, in order.
    pub(super) fn perform_emits(&mut self, channel: &[u8], emits: Vec<ErasedEmit>, now: Instant) {
        let us = self.config.name;
        for emit in emits {
            match emit {
                Emit::Broadcast(data) => self.send_broadcast(channel, &data),
                Emit::Gossip(data) => {
                    let channel = Bytes::copy_from_slice(channel);
                    self.relay(Relay::Channel { channel, slot: Slot::Gossip, exclude: us, data }, now);
                }
                Emit::Unicast(dest, payload) => {
                    if self.send_unicast(channel, dest, &payload).is_err() {
                        self.stats.unicasts_dropped += 1;
                    }
                }
            }
        }
    }

    /// Gossips `data` to a weighted random subset of neighbours (Go's
    /// `GossipNeighbourSubset`).
    pub fn gossip<D: GossipData>(&mut self, ch: &ChannelHandle<D>, data: D, now: Instant) {
        let us = self.config.name;
        let channel = ch.name.clone();
        self.relay(Relay::Channel { channel, slot: Slot::Gossip, exclude: us, data: Box::new(data) }, now);
        self.after_input(now);
    }

    /// Sends `payload` to `dest` over the next hop, now (unicasts bypass the send slots).
    pub fn unicast<D>(
        &mut self,
        ch: &ChannelHandle<D>,
        dest: PeerName,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), NodeError> {
        if self.shut_down {
            return Err(NodeError::Shutdown);
        }
        if dest == self.config.name {
            return Err(NodeError::UnicastToSelf);
        }
        let r = self.send_unicast(&ch.name, dest, payload);
        self.after_input(now);
        r
    }

    fn send_unicast(&mut self, channel: &[u8], dest: PeerName, payload: &[u8]) -> Result<(), NodeError> {
        let (us, kind) = (self.config.name, GossipKind::Unicast { destination: dest });
        self.send_to_hop(dest, |out| message::encode_gossip(out, kind, channel, us, payload))
    }
}
