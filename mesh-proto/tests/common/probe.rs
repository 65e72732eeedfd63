//! An overlay for tests: it records everything the node hands it and does what the test
//! tells it, per remote peer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use mesh_proto::PeerName;
use mesh_proto::overlay::{Overlay, OverlayConnection, OverlayControl, OverlayError, OverlayParams};

/// The feature every probe announces.
pub(crate) const PROBE_FEATURE: &str = "ProbeOverlay";

/// What a probe connection does when confirmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnConfirm {
    /// Reports established at once.
    Establish,
    /// Sends a greeting (tag 7) and reports established when the remote's greeting
    /// arrives.
    Greet,
    /// Never reports anything.
    Never,
    /// Fails.
    Fail,
}

/// What the probes of one node saw.
#[derive(Debug, Default)]
pub(crate) struct Log {
    pub(crate) prepared: Vec<OverlayParams>,
    pub(crate) confirmed: Vec<PeerName>,
    /// (remote, tag, payload) of every control message handed over.
    pub(crate) received: Vec<(PeerName, u8, Vec<u8>)>,
    pub(crate) stopped: Vec<PeerName>,
}

/// The overlay: `on_confirm` for every remote, except those in `special`.
pub(crate) struct Probe {
    pub(crate) log: Arc<Mutex<Log>>,
    pub(crate) on_confirm: OnConfirm,
    pub(crate) special: BTreeMap<PeerName, OnConfirm>,
    /// Remotes whose connection `prepare` refuses.
    pub(crate) refuse: BTreeSet<PeerName>,
}

impl Probe {
    pub(crate) fn new(on_confirm: OnConfirm) -> (Probe, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let p = Probe { log: log.clone(), on_confirm, special: BTreeMap::new(), refuse: BTreeSet::new() };
        (p, log)
    }
}

impl Overlay for Probe {
    fn features(&self) -> Vec<(String, String)> {
        vec![
            (PROBE_FEATURE.to_owned(), "v1".to_owned()),
            // Ignored: the mesh's own key.
            ("Name".to_owned(), "ff:ff:ff:ff:ff:ff".to_owned()),
        ]
    }

    fn prepare(&mut self, params: OverlayParams) -> Result<Box<dyn OverlayConnection>, OverlayError> {
        let remote = params.remote;
        self.log.lock().unwrap().prepared.push(params);
        if self.refuse.contains(&remote) {
            return Err(OverlayError::failed("probe refuses this peer"));
        }
        let on_confirm = self.special.get(&remote).copied().unwrap_or(self.on_confirm);
        Ok(Box::new(ProbeConnection { log: self.log.clone(), remote, on_confirm, received: 0 }))
    }

    fn diagnostics(&self) -> BTreeMap<String, String> {
        let prepared = self.log.lock().unwrap().prepared.len();
        BTreeMap::from([("probe prepared".to_owned(), prepared.to_string())])
    }
}

struct ProbeConnection {
    log: Arc<Mutex<Log>>,
    remote: PeerName,
    on_confirm: OnConfirm,
    received: usize,
}

impl OverlayConnection for ProbeConnection {
    fn confirm(&mut self, ctl: &mut OverlayControl) {
        self.log.lock().unwrap().confirmed.push(self.remote);
        match self.on_confirm {
            OnConfirm::Establish => ctl.established(),
            OnConfirm::Greet => ctl.send(7, &b"hello"[..]).unwrap(),
            OnConfirm::Never => {}
            OnConfirm::Fail => ctl.fail("probe failed on confirm"),
        }
    }

    fn control_message(&mut self, tag: u8, payload: &[u8], ctl: &mut OverlayControl) {
        self.received += 1;
        self.log.lock().unwrap().received.push((self.remote, tag, payload.to_vec()));
        if payload == b"hello" {
            ctl.send(7, &b"welcome"[..]).unwrap();
            if self.on_confirm == OnConfirm::Greet {
                ctl.established();
            }
        }
    }

    fn attrs(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("name".to_owned(), "probe".to_owned()),
            ("received".to_owned(), self.received.to_string()),
        ])
    }

    fn stop(&mut self) {
        self.log.lock().unwrap().stopped.push(self.remote);
    }
}
