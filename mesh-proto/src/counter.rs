//! The increment-only counter of the Go example app (docs/protocol-v2.md §22): a G-counter whose
//! payloads are byte-compatible with the Go app, so mixed clusters work.
//!
//! State is a map from peer name to that peer's count; the value is the sum; merging
//! takes the per-key maximum. The payload is a gob stream holding one
//! `map[PeerName]int` (keys uint, values int) under type id 69, as Go sends it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::gossip::{Context, GossipData, GossipError, Gossiper};
use crate::name::PeerName;
use crate::wire::gob::{self, Scalar, Stream};

/// The gob type id the Go example ends up with for its map.
pub const COUNTER_MAP_TYPE_ID: i64 = 69;

/// A G-counter state: each peer's own count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<PeerName, i64>);

impl Counts {
    /// The counter's value: the sum of every peer's count.
    pub fn value(&self) -> i64 {
        self.0.values().fold(0i64, |a, b| a.saturating_add(*b))
    }

    /// Merges `other` in, returning the entries that raised ours.
    pub fn merge_delta(&mut self, other: &Counts) -> Counts {
        let mut delta = Counts::default();
        for (k, v) in &other.0 {
            if self.0.get(k).is_none_or(|cur| v > cur) {
                self.0.insert(*k, *v);
                delta.0.insert(*k, *v);
            }
        }
        delta
    }

    /// The gob payload, as the Go app writes it (keys ascending).
    pub fn encode_payload(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.0.len() * 12);
        gob::put_map_definition(&mut out, COUNTER_MAP_TYPE_ID, gob::UINT, gob::INT);
        gob::put_message(&mut out, |o| {
            gob::put_int(o, COUNTER_MAP_TYPE_ID);
            o.push(0);
            gob::put_uint(o, self.0.len() as u64);
            for (k, v) in &self.0 {
                gob::put_uint(o, k.to_u64());
                gob::put_int(o, *v);
            }
        });
        out
    }

    /// Decodes a payload from any peer, Go or Rust.
    pub fn decode_payload(payload: &[u8]) -> Result<Counts, GossipError> {
        let mut s = Stream::new(payload);
        let value = s.expect_next_value("the counter map").map_err(GossipError::new)?;
        let mut counts = Counts::default();
        value
            .decode(|f| {
                f.map(|k, v| {
                    let Scalar::Uint(k) = k else {
                        return Err(gob::GobError::TypeMismatch { expected: "uint", found: gob::INT });
                    };
                    let name = PeerName::from_u64(k).map_err(|_| gob::GobError::TypeMismatch {
                        expected: "a 48-bit name",
                        found: gob::UINT,
                    })?;
                    counts.0.insert(name, v.int()?);
                    Ok(())
                })
            })
            .map_err(GossipError::new)?;
        Ok(counts)
    }
}

impl GossipData for Counts {
    fn encode(&self) -> Vec<Bytes> {
        vec![Bytes::from(self.encode_payload())]
    }
    fn merge(&mut self, other: Self) {
        self.merge_delta(&other);
    }
}

/// A counter shared between the application and its gossiper.
#[derive(Clone, Debug)]
pub struct Counter {
    me: PeerName,
    state: Arc<Mutex<Counts>>,
}

impl Counter {
    /// A counter owned by peer `me`.
    pub fn new(me: PeerName) -> Self {
        Counter { me, state: Arc::default() }
    }

    /// A counter owned by peer `me` starting from `state` (for example its own count,
    /// kept across a restart).
    pub fn with_state(me: PeerName, state: Counts) -> Self {
        Counter { me, state: Arc::new(Mutex::new(state)) }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        // A panic while holding the lock cannot leave a G-counter inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current value.
    pub fn value(&self) -> i64 {
        self.lock().value()
    }

    /// A copy of the whole state.
    pub fn snapshot(&self) -> Counts {
        self.lock().clone()
    }

    /// Increments our own entry; returns the whole state, to broadcast.
    pub fn increment(&self) -> Counts {
        let mut s = self.lock();
        *s.0.entry(self.me).or_insert(0) += 1;
        s.clone()
    }

    /// The gossiper to register on the node's channel.
    pub fn gossiper(&self) -> CounterGossiper {
        CounterGossiper { counter: self.clone() }
    }
}

/// The channel handler of a [`Counter`], behaving as the Go example's.
#[derive(Debug)]
pub struct CounterGossiper {
    counter: Counter,
}

impl Gossiper for CounterGossiper {
    type Data = Counts;

    fn gossip(&mut self) -> Option<Counts> {
        Some(self.counter.snapshot())
    }

    fn on_gossip(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        payload: &[u8],
    ) -> Result<Option<Counts>, GossipError> {
        let other = Counts::decode_payload(payload)?;
        let delta = self.counter.lock().merge_delta(&other);
        Ok(if delta.0.is_empty() { None } else { Some(delta) })
    }

    fn on_broadcast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _source: PeerName,
        payload: &[u8],
    ) -> Result<Option<Counts>, GossipError> {
        let other = Counts::decode_payload(payload)?;
        // Possibly empty, never nothing: broadcasts always continue down the tree.
        Ok(Some(self.counter.lock().merge_delta(&other)))
    }

    fn on_unicast(
        &mut self,
        _ctx: &mut Context<'_, Self::Data>,
        _source: PeerName,
        payload: &[u8],
    ) -> Result<(), GossipError> {
        let other = Counts::decode_payload(payload)?;
        self.counter.lock().merge_delta(&other);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: u64) -> PeerName {
        PeerName::from_u64(v).unwrap()
    }

    #[test]
    fn payloads_match_the_go_app() {
        let one = Counts([(n(10), 1)].into());
        assert_eq!(hex::encode(one.encode_payload()), "0eff89040102ff8a0001060104000006ff8a00010a02");
        let two = Counts([(n(10), 3), (n(11), 2)].into());
        assert_eq!(hex::encode(two.encode_payload()), "0eff89040102ff8a0001060104000008ff8a00020a060b04");
        assert_eq!(Counts::decode_payload(&two.encode_payload()).unwrap(), two);
        assert_eq!(
            hex::encode(Counts::default().encode_payload()),
            "0eff89040102ff8a0001060104000004ff8a0000"
        );
    }

    #[test]
    fn gossiper_hooks_behave_as_go() {
        let c = Counter::new(n(1));
        c.increment();
        let mut g = c.gossiper();
        let mut emits = Vec::new();
        let ctx = &mut Context::new(n(1), crate::Instant::ZERO, &mut emits);
        // on gossip: only the entries that raised ours; nothing if none did.
        let theirs = Counts([(n(1), 1), (n(2), 5)].into());
        assert_eq!(g.on_gossip(ctx, &theirs.encode_payload()).unwrap(), Some(Counts([(n(2), 5)].into())));
        assert_eq!(g.on_gossip(ctx, &theirs.encode_payload()).unwrap(), None);
        // on broadcast: possibly empty, never nothing.
        assert_eq!(g.on_broadcast(ctx, n(2), &theirs.encode_payload()).unwrap(), Some(Counts::default()));
        // on unicast: merges everything.
        g.on_unicast(ctx, n(3), &Counts([(n(3), 7)].into()).encode_payload()).unwrap();
        assert_eq!(c.value(), 1 + 5 + 7);
        assert!(g.on_gossip(ctx, b"garbage").is_err());
        drop(g);
        assert!(emits.is_empty(), "the counter emits nothing itself");
    }
}
