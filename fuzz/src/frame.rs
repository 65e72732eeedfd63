//! The `frame` target: the streaming frame decoder gives the same frames and the same
//! outcome however the stream is cut into reads.
//!
//! Encoding: `limit: u16`, `n: u8`, `n` cut points (`u16` each), then the stream (the
//! rest of the input).

use mesh_proto::wire::frame::{FrameDecoder, FrameError};

use crate::codec::{Reader, Writer};

/// One run of the decoder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// The decoder's frame length limit.
    pub limit: u16,
    /// Where the stream is cut into reads (each taken modulo the stream length + 1).
    pub cuts: Vec<u16>,
    /// The bytes received.
    pub stream: Vec<u8>,
}

impl Input {
    /// Decodes any bytes.
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let limit = r.u16().unwrap_or(0);
        let n = r.u8().unwrap_or(0);
        let cuts = (0..n).map_while(|_| r.u16()).collect();
        Input { limit, cuts, stream: r.rest() }
    }

    /// The bytes that decode to `self`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u16(self.limit);
        w.u8(u8::try_from(self.cuts.len()).expect("at most 255 cuts in a seed"));
        for c in &self.cuts {
            w.u16(*c);
        }
        w.out.extend_from_slice(&self.stream);
        w.out
    }
}

/// The frames and the outcome of decoding `chunks` in turn.
pub type Decoded = (Vec<Vec<u8>>, Result<(), FrameError>);

fn decode(chunks: &[&[u8]], limit: usize) -> Decoded {
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

/// Decodes the stream whole and in the input's chunks, asserts both agree, and returns
/// what the decoder made of it.
pub fn run(input: &Input) -> Decoded {
    let limit = usize::from(input.limit);
    let whole = decode(&[&input.stream], limit);
    let mut points: Vec<usize> =
        input.cuts.iter().map(|c| usize::from(*c) % (input.stream.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&input.stream[last..p]);
        last = p;
    }
    chunks.push(&input.stream[last..]);
    assert_eq!(decode(&chunks, limit), whole, "the chunking changed what was decoded");
    whole
}
