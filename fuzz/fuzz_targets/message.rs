//! Protocol message decoding, and re-encoding what decodes; version 3's topology
//! synchronisation messages and heartbeat too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::message::{self, Message};
use mesh_proto::wire::sync::{self, Sync};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        let mut again = Vec::new();
        m.encode(&mut again);
        // What we re-encode decodes to the same message.
        assert_eq!(Message::decode(&again).unwrap(), m);
    }
    let _ = message::unicast_destination(data);
    if let Some((&tag, payload)) = data.split_first()
        && let Some(Ok(s)) = Sync::decode(tag, payload)
    {
        // Fixed-width layouts: what decodes re-encodes to the very same bytes.
        assert_eq!(reencode(&s), data);
    }
    // Version 3's heartbeat and the count it acknowledges: re-encoded byte for byte.
    if let Some((&message::TAG_HEARTBEAT, payload)) = data.split_first()
        && let Ok(read) = message::decode_heartbeat_v3(payload)
    {
        let mut again = Vec::new();
        message::put_heartbeat_v3(&mut again, read);
        assert_eq!(again, data);
    }
});

fn reencode(s: &Sync<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match *s {
        Sync::Summary { count, root } => sync::encode_summary(&mut out, count, root),
        Sync::Buckets { bits, count, hashes } => {
            let hashes: Vec<u64> = sync::bucket_hashes(hashes).collect();
            sync::encode_buckets(&mut out, bits, count, &hashes);
        }
        Sync::Entries { bits, groups } => {
            sync::encode_entries_start(&mut out, bits);
            for (index, entries) in sync::entry_groups(groups) {
                let entries: Vec<sync::Entry> = entries.collect();
                sync::encode_group(&mut out, index, &entries);
            }
        }
        Sync::Have { entries } => {
            let entries: Vec<sync::Entry> = sync::have_entries(entries).collect();
            sync::encode_have(&mut out, &entries);
        }
        Sync::Want { names } => {
            let names: Vec<mesh_proto::PeerName> = sync::wanted_names(names).collect();
            sync::encode_want(&mut out, &names);
        }
    }
    out
}
