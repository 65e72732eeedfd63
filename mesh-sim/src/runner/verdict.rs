//! What each invariant examined and concluded. An invariant that examined nothing did
//! not apply: it is reported as not applicable with the reason, never as held.

use std::collections::BTreeMap;

use serde::Serialize;

/// The conclusion about one invariant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It examined something and every case held.
    Held,
    /// At least one case failed (see the report's violations).
    Violated,
    /// Nothing it could examine happened in this run (see `reason`).
    NotApplicable,
}

/// One invariant's line in a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvariantReport {
    /// The conclusion.
    pub verdict: Verdict,
    /// How many cases it examined (see `unit`).
    pub examined: u64,
    /// What a case is: "peers", "messages", "pairs", ...
    pub unit: &'static str,
    /// Why it did not apply, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For bounds: the highest value seen as a fraction of the bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
}

impl InvariantReport {
    /// Whether it held (examined something, nothing failed).
    pub fn held(&self) -> bool {
        self.verdict == Verdict::Held
    }

    /// Whether it examined at least one case.
    pub fn applied(&self) -> bool {
        self.examined > 0
    }
}

/// Every invariant, with the unit its cases are counted in.
pub const INVARIANTS: [(&str, &str); 13] = [
    ("no_panic", "runs"),
    ("topology_agreement", "peers"),
    ("routes", "pairs"),
    ("broadcast_trees", "sources"),
    ("exactly_once", "messages"),
    ("counters", "peers"),
    ("queue_bound", "connection samples"),
    ("relay_channel_bound", "peer samples"),
    ("slow_reader", "stopped peers"),
    ("reconnection", "dial pairs"),
    ("formation", "peers"),
    ("quiet_traffic", "gossip intervals"),
    ("planted", "faults"),
];

/// Running counts per invariant while a scenario runs.
#[derive(Clone, Debug, Default)]
pub(super) struct Tally {
    examined: BTreeMap<String, u64>,
    violated: BTreeMap<String, bool>,
    reasons: BTreeMap<String, String>,
    load: BTreeMap<String, f64>,
}

fn key(invariant: &str) -> String {
    debug_assert!(INVARIANTS.iter().any(|(n, _)| *n == invariant), "unknown invariant {invariant}");
    invariant.to_owned()
}

impl Tally {
    /// `n` more cases of `invariant` examined.
    pub(super) fn examined(&mut self, invariant: &str, n: u64) {
        *self.examined.entry(key(invariant)).or_default() += n;
    }

    /// A case of `invariant` failed.
    pub(super) fn violated(&mut self, invariant: &str) {
        self.violated.insert(key(invariant), true);
    }

    /// Whether a case of `invariant` has failed.
    pub(super) fn is_violated(&self, invariant: &str) -> bool {
        self.violated.contains_key(invariant)
    }

    /// `invariant` cannot apply, because of `reason` (the first reason given stays).
    pub(super) fn not_applicable(&mut self, invariant: &str, reason: impl Into<String>) {
        self.reasons.entry(key(invariant)).or_insert_with(|| reason.into());
    }

    /// A bound's load: the highest `value / bound` seen.
    pub(super) fn load(&mut self, invariant: &str, value: usize, bound: usize) {
        let l = value as f64 / bound.max(1) as f64;
        let e = self.load.entry(key(invariant)).or_insert(0.0);
        *e = e.max(l);
    }

    /// The verdicts.
    pub(super) fn finish(&self) -> BTreeMap<String, InvariantReport> {
        INVARIANTS
            .iter()
            .map(|(name, unit)| {
                let examined = self.examined.get(*name).copied().unwrap_or(0);
                let verdict = if self.violated.contains_key(*name) {
                    Verdict::Violated
                } else if examined > 0 {
                    Verdict::Held
                } else {
                    Verdict::NotApplicable
                };
                let reason = (verdict == Verdict::NotApplicable).then(|| {
                    self.reasons.get(*name).cloned().unwrap_or_else(|| "nothing to examine".to_owned())
                });
                let load = self.load.get(*name).copied();
                (name.to_string(), InvariantReport { verdict, examined, unit, reason, load })
            })
            .collect()
    }
}
