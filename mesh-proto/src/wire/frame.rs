//! Length-prefixed frames of protocol version 2 (docs/protocol-v2.md §4).
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. The decoder is
//! streaming: feed it bytes in chunks of any size and it yields whole frame bodies, with
//! identical results however the stream is split. A length above the limit is refused as
//! soon as the four length bytes are in, before anything is reserved for the body; the
//! buffer grows only as body bytes actually arrive.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::config::MAX_FRAME_LEN;

/// Size of the length prefix.
pub const LEN_PREFIX: usize = 4;

/// What a version 3 record adds to the messages it carries beyond their own prefixes:
/// the inner prefix of a largest message and the 16-byte tag.
pub const RECORD_OVERHEAD: usize = LEN_PREFIX + 16;

/// Why a frame could not be read or written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum FrameError {
    /// The announced (or requested) body length is above the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: {have} of {need} bytes")]
    Truncated {
        /// Bytes of the frame (prefix included) that arrived.
        have: usize,
        /// Bytes the frame needed.
        need: usize,
    },
}

/// Buffer capacity an idle decoder keeps; more is released once every byte is consumed.
const IDLE_CAPACITY: usize = 64 * 1024;

/// Streaming decoder of length-prefixed frames.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: BytesMut,
    max_len: usize,
    /// Body length of the frame being read, once its prefix is complete.
    pending: Option<usize>,
    /// More than [`IDLE_CAPACITY`] was buffered at once since the buffer was last empty.
    burst: bool,
    /// Body length of the frame returned last.
    last_len: usize,
}

impl FrameDecoder {
    /// A decoder that refuses bodies longer than `max_len` (at most Go's 10 MiB).
    pub fn new(max_len: usize) -> Self {
        FrameDecoder {
            buf: BytesMut::new(),
            max_len: max_len.min(MAX_FRAME_LEN),
            pending: None,
            burst: false,
            last_len: 0,
        }
    }

    /// A decoder of version 3 records: bodies up to one message of `max_len` bytes (at
    /// most Go's 10 MiB), its 4-byte prefix and a 16-byte tag.
    pub fn for_records(max_len: usize) -> Self {
        FrameDecoder { max_len: max_len.min(MAX_FRAME_LEN) + RECORD_OVERHEAD, ..FrameDecoder::new(0) }
    }

    /// The body limit in force.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Changes the body limit, e.g. from the handshake's to the established one.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.min(MAX_FRAME_LEN);
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
        self.burst |= self.buf.len() > IDLE_CAPACITY;
    }

    /// The next complete frame body, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<BytesMut>, FrameError> {
        let len = match self.pending {
            Some(len) => len,
            None => {
                if self.buf.len() < LEN_PREFIX {
                    if self.burst && self.buf.is_empty() && self.last_len <= IDLE_CAPACITY / 2 {
                        // A burst grew the buffer; an idle connection should not keep it.
                        // (Its capacity does not show it: frames split off share it.) A
                        // stream of large frames keeps it: each would otherwise land in a
                        // fresh allocation, page faults and all. The first small frame
                        // that empties it, a heartbeat after the stream, lets it go.
                        self.buf = BytesMut::new();
                        self.burst = false;
                    }
                    return Ok(None);
                }
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if len as u64 > self.max_len as u64 {
                    return Err(FrameError::TooLarge { len: len as u64, max: self.max_len });
                }
                self.buf.advance(LEN_PREFIX);
                self.pending = Some(len as usize);
                len as usize
            }
        };
        if self.buf.len() < len {
            return Ok(None);
        }
        self.pending = None;
        self.last_len = len;
        Ok(Some(self.buf.split_to(len)))
    }

    /// Called when the stream ends: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.pending {
            Some(len) => {
                Err(FrameError::Truncated { have: LEN_PREFIX + self.buf.len(), need: LEN_PREFIX + len })
            }
            None if !self.buf.is_empty() => {
                Err(FrameError::Truncated { have: self.buf.len(), need: LEN_PREFIX })
            }
            None => Ok(()),
        }
    }

    /// Everything buffered past the frames returned so far, including a partly read
    /// frame's prefix, leaving the decoder empty. Used to hand over the bytes that arrived
    /// after the handshake.
    pub fn take_remaining(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(len) = self.pending.take() {
            out.put_u32(len as u32);
        }
        out.extend_from_slice(&self.buf);
        self.buf.clear();
        out.freeze()
    }
}

/// Appends a whole plaintext frame (prefix and body) to `out`.
pub fn put_frame(out: &mut Vec<u8>, body: &[u8], max_len: usize) -> Result<(), FrameError> {
    check_len(body.len(), max_len)?;
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// Checks a body length against the limit.
pub fn check_len(len: usize, max_len: usize) -> Result<(), FrameError> {
    let max = max_len.min(MAX_FRAME_LEN);
    if len > max {
        return Err(FrameError::TooLarge { len: len as u64, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_across_chunks_and_refuses_oversize_early() {
        let mut d = FrameDecoder::new(16);
        d.push(&[0, 0]);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[0, 3, b'a']);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(b"bc\0\0\0\0");
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), b"abc");
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), b"");
        d.push(&[0, 0, 0, 17]);
        assert_eq!(d.next_frame(), Err(FrameError::TooLarge { len: 17, max: 16 }));
        // Nothing was reserved for the refused body.
        assert!(d.buffered() <= LEN_PREFIX);
    }

    #[test]
    fn a_burst_does_not_stay_reserved_once_consumed() {
        let mut out = Vec::new();
        for _ in 0..40 {
            put_frame(&mut out, &[7; 4096], MAX_FRAME_LEN).unwrap();
        }
        let mut d = FrameDecoder::new(MAX_FRAME_LEN);
        d.push(&out);
        let mut frames = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 40);
        drop(frames);
        // Otherwise the next push would reclaim the whole burst-sized allocation.
        d.push(&[0, 0, 0, 1]);
        assert!(d.buf.capacity() <= IDLE_CAPACITY, "kept {} bytes", d.buf.capacity());
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[5]);
        assert_eq!(d.next_frame().unwrap().unwrap().as_ref(), [5]);
        assert_eq!(d.next_frame(), Ok(None));
        assert!(!d.burst, "ordinary traffic keeps its buffer");
    }

    #[test]
    fn a_stream_of_large_frames_keeps_its_buffer_until_a_small_one_empties_it() {
        let frame = |len: usize| {
            let mut out = Vec::new();
            put_frame(&mut out, &vec![9; len], MAX_FRAME_LEN).unwrap();
            out
        };
        let big = frame(IDLE_CAPACITY + 100);
        let mut d = FrameDecoder::new(MAX_FRAME_LEN);
        d.push(&big);
        drop(d.next_frame().unwrap().unwrap());
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&big[..8]);
        assert!(d.buf.capacity() > IDLE_CAPACITY, "the next large frame reuses the allocation");
        d.push(&big[8..]);
        drop(d.next_frame().unwrap().unwrap());
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&frame(10));
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 10);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&[0, 0, 0, 1]);
        assert!(d.buf.capacity() <= IDLE_CAPACITY, "a small frame after the stream let it go");
    }

    #[test]
    fn exactly_the_limit_is_allowed() {
        let mut out = Vec::new();
        assert!(put_frame(&mut out, &[0; 8], 8).is_ok());
        assert!(put_frame(&mut out, &[0; 9], 8).is_err());
        let mut d = FrameDecoder::new(8);
        d.push(&out);
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 8);
    }
}
