//! The version 2 steps of the handshake (docs/protocol-v2.md §3–§7): the encryption flag, the public
//! key, and the features frame, sealed under `SHA-256(shared ‖ password)` with a
//! password.

use super::{Handshake, HandshakeError, Stage};
use crate::crypto::{self, Session};
use crate::sealing::Sealing;
use crate::wire::header::{FLAG_ENCRYPTED, FLAG_PLAINTEXT};

impl Handshake {
    /// Sends what version 2 needs nothing from the remote for: the flag, then our public
    /// key or, on a plaintext connection, the features frame.
    pub(super) fn send_v2_intro(&mut self) {
        match &self.keys {
            Some(k) => {
                self.out.push(FLAG_ENCRYPTED);
                self.out.extend_from_slice(&k.public());
            }
            None => {
                self.out.push(FLAG_PLAINTEXT);
                // Plaintext features need nothing from the remote; unsealed, this cannot
                // fail.
                let _ = self.send_features();
            }
        }
    }

    /// The remote's flag: both ends must agree on encryption.
    pub(super) fn on_flag(&mut self, flag: u8) -> Result<(), HandshakeError> {
        let we_encrypt = self.keys.is_some();
        let they_encrypt = match flag {
            FLAG_PLAINTEXT => false,
            FLAG_ENCRYPTED => true,
            other => return Err(HandshakeError::BadFlag(other)),
        };
        if we_encrypt != they_encrypt {
            return Err(HandshakeError::EncryptionMismatch { we_encrypt, they_encrypt });
        }
        self.stage = if they_encrypt { Stage::PublicKey } else { Stage::Features };
        Ok(())
    }

    /// The remote's public key: derive the session, seal and send our features.
    pub(super) fn on_public_key(
        &mut self,
        remote: &[u8; crypto::PUBLIC_KEY_LEN],
    ) -> Result<(), HandshakeError> {
        let (Some(keys), Some(password)) = (&self.keys, &self.config.password) else {
            return Err(HandshakeError::AlreadyFailed);
        };
        let shared = keys.shared_key(remote)?;
        let key = crypto::session_key(&shared, password);
        self.overlay_key = Some(crate::overlay::OverlayKey::new(*key));
        self.session = Some(Sealing::V2(Session::new(&key, self.config.role == super::Role::Dialer)));
        self.send_features()?;
        self.stage = Stage::Features;
        Ok(())
    }
}
