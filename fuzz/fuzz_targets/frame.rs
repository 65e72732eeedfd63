//! The streaming frame decoder: any chunking gives the same frames and outcome.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use mesh_proto::wire::frame::{FrameDecoder, FrameError};

#[derive(Arbitrary, Debug)]
struct Input {
    stream: Vec<u8>,
    cuts: Vec<u16>,
    limit: u16,
}

fn decode(chunks: &[&[u8]], limit: usize) -> (Vec<Vec<u8>>, Result<(), FrameError>) {
    let mut d = FrameDecoder::new(limit);
    let mut frames = Vec::new();
    for c in chunks {
        d.push(c);
        loop {
            match d.next_frame() {
                Ok(Some(f)) => frames.push(f.to_vec()),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    (frames, d.finish())
}

fuzz_target!(|input: Input| {
    let limit = usize::from(input.limit);
    let whole = decode(&[&input.stream], limit);
    let mut points: Vec<usize> = input.cuts.iter().map(|c| usize::from(*c) % (input.stream.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&input.stream[last..p]);
        last = p;
    }
    chunks.push(&input.stream[last..]);
    assert_eq!(decode(&chunks, limit), whole);
});
