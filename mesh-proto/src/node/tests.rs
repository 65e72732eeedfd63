//! Unit tests of the node's contract.
use super::*;
use std::collections::BTreeSet;

#[test]
fn periodic_gossip_of_peers_started_together_is_spread_over_the_interval() {
    let t0 = Instant::from_secs(10);
    let mut firsts = BTreeSet::new();
    for seed in 0..20 {
        let config = Config::new(PeerName::from_u64(seed + 1).unwrap(), "n");
        let interval = config.gossip_interval;
        let n = Node::new(config, Node::seed_from_u64(seed), t0).unwrap();
        let first = n.poll_timeout().unwrap();
        assert!(first >= t0 + interval / 2 && first < t0 + interval, "{first:?}");
        firsts.insert(first);
    }
    assert!(firsts.len() >= 19, "{firsts:?}");
}

#[test]
fn node_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Node>();
}

#[test]
fn the_zero_name_is_refused() {
    let c = Config::new(PeerName::UNKNOWN, "x");
    assert_eq!(Node::new(c, [0; 32], Instant::ZERO).err(), Some(NodeError::ZeroName));
}

#[test]
fn channels_cannot_be_registered_twice_or_as_topology() {
    let mut n = Node::new(Config::new(PeerName::from_u64(1).unwrap(), "x"), [0; 32], Instant::ZERO).unwrap();
    let c = crate::counter::Counter::new(n.name());
    assert!(n.register_channel("topology", c.gossiper()).is_err());
    assert!(n.register_channel("default", c.gossiper()).is_ok());
    assert_eq!(
        n.register_channel("default", c.gossiper()).err(),
        Some(NodeError::ChannelTaken("default".into()))
    );
}

#[test]
fn unicast_errors_are_typed() {
    let mut n = Node::new(Config::new(PeerName::from_u64(1).unwrap(), "x"), [0; 32], Instant::ZERO).unwrap();
    let c = crate::counter::Counter::new(n.name());
    let ch = n.register_channel("default", c.gossiper()).unwrap();
    let me = n.name();
    assert_eq!(n.unicast(&ch, me, b"x", Instant::ZERO), Err(NodeError::UnicastToSelf));
    let other = PeerName::from_u64(2).unwrap();
    assert_eq!(n.unicast(&ch, other, b"x", Instant::ZERO), Err(NodeError::NoRoute(other)));
    n.shutdown(Instant::ZERO);
    assert_eq!(n.unicast(&ch, other, b"x", Instant::ZERO), Err(NodeError::Shutdown));
}
