//! The version 3 steps of the handshake (docs/protocol-v3.md §3–§6): the hellos, the key
//! confirmations, then the sealed features.
//!
//! ```text
//! hello        = mode (1) ‖ connection id (8, big-endian) ‖ PAKE element (32)
//! confirmation = 32 bytes from the key schedule
//! ```
//!
//! Each end sends its hello once it has read the remote's preamble, its confirmation
//! once it has read the remote's hello, and its features only once the remote's
//! confirmation checked: a peer with the wrong password never receives anything sealed.

use super::{Handshake, HandshakeError, Role, Stage, V3State, mode_of};
use crate::key_schedule::{self, CONFIRM_LEN, Keys};
use crate::pake::{ELEMENT_LEN, Exchange, Mode};
use crate::sealing::{Direction, Sealing, V3Session};

/// Length of a version 3 hello.
pub const HELLO_LEN: usize = 1 + 8 + ELEMENT_LEN;

/// Our hello.
pub(super) fn hello(mode: Mode, conn_id: u64, element: &[u8; ELEMENT_LEN]) -> [u8; HELLO_LEN] {
    let mut h = [0u8; HELLO_LEN];
    h[0] = mode.to_byte();
    h[1..9].copy_from_slice(&conn_id.to_be_bytes());
    h[9..].copy_from_slice(element);
    h
}

impl Handshake {
    /// Version 3 was negotiated: send our hello.
    pub(super) fn start_v3(&mut self) {
        if let Some(v3) = &self.v3 {
            self.out.extend_from_slice(&v3.hello);
        }
        self.stage = Stage::Hello;
    }

    /// The remote's hello: finish the key exchange, derive the keys, send our
    /// confirmation.
    pub(super) fn on_hello(&mut self, theirs: &[u8; HELLO_LEN]) -> Result<(), HandshakeError> {
        let they = Mode::from_byte(theirs[0]).ok_or(HandshakeError::BadMode(theirs[0]))?;
        let we = mode_of(self.config.password.as_ref());
        if they != we {
            return Err(HandshakeError::PasswordMismatch {
                we_have: we == Mode::Password,
                they_have: they == Mode::Password,
            });
        }
        let ours_preamble = self.config.versions.encode();
        let role = self.config.role;
        let Some(V3State { exchange, hello, keys, remote_conn_id }) = &mut self.v3 else {
            return Err(HandshakeError::AlreadyFailed);
        };
        let Some(exchange): Option<Exchange> = exchange.take() else {
            return Err(HandshakeError::AlreadyFailed);
        };
        let mut element = [0u8; ELEMENT_LEN];
        element.copy_from_slice(&theirs[9..]);
        let shared = exchange.finish(&element)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&theirs[1..9]);
        *remote_conn_id = u64::from_be_bytes(id);
        let transcript = match role {
            Role::Dialer => key_schedule::transcript(&ours_preamble, &self.remote_preamble, hello, theirs),
            Role::Listener => key_schedule::transcript(&self.remote_preamble, &ours_preamble, theirs, hello),
        };
        let k = Keys::derive(&shared, transcript, role);
        self.out.extend_from_slice(&k.our_confirmation);
        *keys = Some(k);
        self.stage = Stage::Confirmation;
        Ok(())
    }

    /// The remote's confirmation: check it, then seal and send our features.
    pub(super) fn on_confirmation(&mut self, tag: &[u8; CONFIRM_LEN]) -> Result<(), HandshakeError> {
        let Some(keys) = self.v3.as_mut().and_then(|v3| v3.keys.take()) else {
            return Err(HandshakeError::AlreadyFailed);
        };
        if !keys.confirms(tag) {
            return Err(match self.config.password {
                Some(_) => HandshakeError::WrongPassword,
                None => HandshakeError::ConfirmationFailed,
            });
        }
        self.overlay_key = Some(crate::overlay::OverlayKey::new(*keys.overlay));
        let session =
            V3Session { sealer: Direction::new(&keys.send_key), opener: Direction::new(&keys.receive_key) };
        self.session = Some(Sealing::V3(session));
        self.send_features()?;
        self.stage = Stage::Features;
        Ok(())
    }
}
