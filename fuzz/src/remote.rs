//! An honest remote peer for the harnesses: the real [`Handshake`], then a sealer for
//! the frames the input has it write, and a reader that checks every frame it receives
//! after its handshake opens and decodes (what a correct implementation sends always
//! does, whatever it was sent).

use mesh_proto::Instant;
use mesh_proto::config::MAX_FRAME_LEN;
use mesh_proto::fuzzing::handshake::{Handshake, HandshakeError, Outcome, Progress};
use mesh_proto::fuzzing::sealing::Sealing;
use mesh_proto::wire::frame::{FrameDecoder, LEN_PREFIX};
use mesh_proto::wire::message::Message;

/// The remote end of one connection.
#[derive(Debug)]
pub(crate) struct Remote {
    handshake: Option<Handshake>,
    pub(crate) outcome: Option<Box<Outcome>>,
    /// Written and not yet delivered.
    pub(crate) queue: Vec<u8>,
    /// The last frame written, for a replay.
    pub(crate) last: Vec<u8>,
    /// What it received after its handshake.
    reader: FrameDecoder,
    /// Frames it received after its handshake, all opened and decoded.
    pub(crate) checked: usize,
    /// Everything its handshake wrote (at most [`HANDSHAKE_LOG_LIMIT`] bytes), for
    /// replays of handshake messages.
    handshake_log: Vec<u8>,
    /// Why its handshake failed, if it did.
    pub(crate) failed: Option<HandshakeError>,
}

/// How much of a remote's handshake output is kept for replays: far more than a whole
/// handshake of either version writes.
const HANDSHAKE_LOG_LIMIT: usize = 4096;

impl Remote {
    /// A remote that has written its first bytes.
    pub(crate) fn new(mut handshake: Handshake) -> Self {
        let mut r = Remote {
            queue: Vec::new(),
            handshake: None,
            outcome: None,
            last: Vec::new(),
            reader: FrameDecoder::for_records(MAX_FRAME_LEN),
            checked: 0,
            handshake_log: Vec::new(),
            failed: None,
        };
        if let Some(out) = handshake.take_output() {
            r.handshake_wrote(&out);
        }
        r.handshake = Some(handshake);
        r
    }

    /// Queues what its handshake wrote, and logs it.
    fn handshake_wrote(&mut self, out: &[u8]) {
        self.queue.extend_from_slice(out);
        let room = HANDSHAKE_LOG_LIMIT.saturating_sub(self.handshake_log.len());
        self.handshake_log.extend_from_slice(&out[..out.len().min(room)]);
    }

    /// Whether its handshake finished.
    pub(crate) fn done(&self) -> bool {
        self.outcome.is_some()
    }

    /// Feeds it what the other end sent.
    pub(crate) fn receive(&mut self, data: &[u8], now: Instant) {
        if let Some(h) = self.handshake.as_mut() {
            let r = h.handle_data(data, now);
            // What it built goes out even before a failure, as the node does.
            if let Some(out) = h.take_output() {
                self.handshake_wrote(&out);
            }
            match r {
                Ok(Progress::Pending) => {}
                Ok(Progress::Done(outcome)) => {
                    self.reader.push(&outcome.leftover);
                    self.outcome = Some(outcome);
                    self.handshake = None;
                    self.check();
                }
                Err(e) => {
                    self.failed = Some(e);
                    self.handshake = None;
                }
            }
        } else if self.outcome.is_some() {
            self.reader.push(data);
            self.check();
        }
    }

    /// Every complete frame the other end sent after the handshake must open and decode.
    fn check(&mut self) {
        let Some(outcome) = self.outcome.as_mut() else { return };
        while let Some(mut body) = self.reader.next_frame().expect("the other end sent a bad frame") {
            let (plain, records): (&[u8], bool) = match outcome.session.as_mut() {
                Some(s) => {
                    let records = matches!(s, Sealing::V3(_));
                    let range = s.open_body(&mut body).expect("a frame from the other end did not open");
                    (&body[range], records)
                }
                None => (&body, false),
            };
            for m in crate::handshake::messages_of(plain, records) {
                Message::decode(m.expect("the other end sent a bad record"))
                    .expect("the other end sent a bad message");
                self.checked += 1;
            }
        }
    }

    /// Whether it seals its frames.
    pub(crate) fn seals(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| o.session.is_some())
    }

    /// A frame around `body`, sealed if it has a session; the sequence number moves.
    pub(crate) fn frame(&mut self, body: &[u8]) -> Vec<u8> {
        match self.outcome.as_mut().and_then(|o| o.session.as_mut()) {
            // Sealing fails only once a version 3 direction has sealed 2^48 frames.
            Some(s) => s.message_frame(body).expect("the remote sealed a frame"),
            None => {
                let mut f = Vec::with_capacity(LEN_PREFIX + body.len());
                f.extend_from_slice(&(body.len() as u32).to_be_bytes());
                f.extend_from_slice(body);
                f
            }
        }
    }

    /// `frame` with byte `at` (modulo its length) of the sealed body XORed with `mask`
    /// (1 if 0).
    pub(crate) fn flipped(&mut self, body: &[u8], at: u16, mask: u8) -> Vec<u8> {
        let mut f = self.frame(body);
        let sealed = &mut f[LEN_PREFIX..];
        if !sealed.is_empty() {
            let i = usize::from(at) % sealed.len();
            sealed[i] ^= if mask == 0 { 1 } else { mask };
        }
        f
    }

    /// Queues a frame for delivery.
    pub(crate) fn write(&mut self, frame: Vec<u8>) {
        self.queue.extend_from_slice(&frame);
        self.last = frame;
    }

    /// Queues the last frame again.
    pub(crate) fn replay(&mut self) {
        self.queue.extend_from_slice(&self.last);
    }

    /// Takes up to `max` queued bytes (all if 0).
    pub(crate) fn deliver(&mut self, max: u16) -> Vec<u8> {
        let n = if max == 0 { self.queue.len() } else { self.queue.len().min(usize::from(max)) };
        self.queue.drain(..n).collect()
    }

    /// Replaces queued bytes from `at` on with `bytes`, as far as the queue reaches;
    /// whether anything changed.
    pub(crate) fn overwrite(&mut self, at: u16, bytes: &[u8]) -> bool {
        let at = usize::from(at);
        let Some(slot) = self.queue.get_mut(at..) else { return false };
        let n = slot.len().min(bytes.len());
        let changed = slot[..n] != bytes[..n];
        slot[..n].copy_from_slice(&bytes[..n]);
        changed
    }

    /// Its handshake's output so far (the first [`HANDSHAKE_LOG_LIMIT`] bytes).
    pub(crate) fn handshake_log(&self) -> &[u8] {
        &self.handshake_log
    }
}
