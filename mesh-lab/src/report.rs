//! What a run found: printed as text, or as JSON with `--json`.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::workload::Tally;

/// The whole report of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The schedule's name.
    pub schedule: String,
    /// Whether every check passed.
    pub pass: bool,
    /// The processes.
    pub nodes: Vec<NodeReport>,
    /// Seconds from the start of the processes until the mesh agreed.
    pub formed_s: Option<f64>,
    /// Every heal, with the time the mesh took to agree again.
    pub heals: Vec<Heal>,
    /// Seconds from the end of the load and the last heal until every counter and table
    /// agreed.
    pub final_converged_s: Option<f64>,
    /// What the workload sent.
    pub tally: Tally,
    /// Every node's counter at the end (none if it did not answer).
    pub values: Vec<Option<i64>>,
    /// Every node's resident memory over the run.
    pub rss: Vec<Rss>,
    /// The checks.
    pub checks: Vec<Check>,
    /// What happened when, as printed during the run.
    pub events: Vec<String>,
    /// Where the nodes' logs are.
    pub log_dir: String,
    /// Seconds the run took.
    pub wall_s: f64,
}

/// One process.
#[derive(Debug, Serialize)]
pub struct NodeReport {
    /// Its index.
    pub index: usize,
    /// Its peer name.
    pub name: String,
    /// `tokio` or `smol`.
    pub adapter: &'static str,
    /// The highest protocol version it offered.
    pub max_protocol: u8,
    /// Its address.
    pub ip: String,
    /// How many times it was started (a kill and restart makes 2).
    pub starts: u32,
}

/// One fault undone.
#[derive(Debug, Serialize)]
pub struct Heal {
    /// The fault.
    pub fault: String,
    /// When it began, seconds into the load.
    pub at_s: f64,
    /// When it was undone.
    pub healed_s: f64,
    /// Each node's established connections just before the heal (none if it did not
    /// answer): whether the fault lasted long enough for the mesh to notice.
    pub established_before_heal: Vec<Option<usize>>,
    /// How long after that every node held one table of every peer; none if another
    /// fault began first or it did not happen within the schedule's timeout.
    pub converged_after_s: Option<f64>,
    /// Another fault began before the mesh agreed: this heal's convergence could not be
    /// timed alone (not a failure).
    pub overlapped: bool,
}

/// A process's resident memory (VmRSS) over the run, in KiB, across restarts.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rss {
    /// The first sample.
    pub first_kib: u64,
    /// The last sample.
    pub last_kib: u64,
    /// The largest.
    pub max_kib: u64,
    /// How many samples.
    pub samples: u64,
    /// The resident set at the start of the load and every 30 s after (0 while the
    /// process was down): whether memory stays flat under load.
    pub every_30s_kib: Vec<u64>,
}

impl Rss {
    /// Adds a sample.
    pub fn record(&mut self, kib: u64) {
        if self.samples == 0 {
            self.first_kib = kib;
        }
        self.last_kib = kib;
        self.max_kib = self.max_kib.max(kib);
        self.samples += 1;
    }
}

/// One check.
#[derive(Debug, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub pass: bool,
    /// The figures behind it.
    pub detail: String,
}

impl Check {
    /// A check.
    pub fn new(name: &str, pass: bool, detail: String) -> Check {
        Check { name: name.into(), pass, detail }
    }
}

fn secs(t: Option<f64>) -> String {
    t.map_or_else(|| "-".into(), |t| format!("{t:.1} s"))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "mesh-lab {}: {}", self.schedule, if self.pass { "PASS" } else { "FAIL" })?;
        writeln!(f, "\nnodes:")?;
        for (n, r) in self.nodes.iter().zip(&self.rss) {
            writeln!(
                f,
                "  {:>3} {} {:<5} v{} {:<13} starts {}  rss first {:.1}, 1 min into the load {}, last {:.1}, max {:.1} MiB",
                n.index,
                n.name,
                n.adapter,
                n.max_protocol,
                n.ip,
                n.starts,
                r.first_kib as f64 / 1024.0,
                r.every_30s_kib.get(2).map_or_else(|| "-".into(), |k| format!("{:.1}", *k as f64 / 1024.0)),
                r.last_kib as f64 / 1024.0,
                r.max_kib as f64 / 1024.0
            )?;
        }
        writeln!(f, "\nformed after {}", secs(self.formed_s))?;
        for h in &self.heals {
            let conns: Vec<String> = h
                .established_before_heal
                .iter()
                .map(|e| e.map_or_else(|| "-".into(), |e| e.to_string()))
                .collect();
            writeln!(
                f,
                "  {:>6.1}-{:<6.1} s  {:<50} converged {} after the heal; connections before it [{}]",
                h.at_s,
                h.healed_s,
                h.fault,
                if h.overlapped {
                    "- (another fault began first)".to_owned()
                } else {
                    secs(h.converged_after_s)
                },
                conns.join(" ")
            )?;
        }
        writeln!(f, "converged {} after the load and the last heal", secs(self.final_converged_s))?;
        let t = &self.tally;
        writeln!(
            f,
            "increments: {} acknowledged, {} unsure, {} refused",
            t.acked_total(),
            t.unsure_total(),
            t.refused_total()
        )?;
        let mut line = String::new();
        for c in &self.checks {
            let _ = writeln!(line, "  [{}] {}: {}", if c.pass { "ok" } else { "FAIL" }, c.name, c.detail);
        }
        writeln!(f, "\nchecks:\n{line}")?;
        writeln!(f, "{:.0} s in all; logs in {}", self.wall_s, self.log_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_report_says_what_was_measured_and_what_could_not_be() {
        let heal = |fault: &str, converged: Option<f64>, overlapped| Heal {
            fault: fault.into(),
            at_s: 5.0,
            healed_s: 75.0,
            established_before_heal: vec![Some(3), None],
            converged_after_s: converged,
            overlapped,
        };
        let r = Report {
            schedule: "t".into(),
            pass: false,
            nodes: Vec::new(),
            formed_s: Some(1.5),
            heals: vec![heal("partition", Some(4.6), false), heal("freeze", None, true)],
            final_converged_s: None,
            tally: Tally { acked: vec![7], refused: vec![0], unsure: vec![1] },
            values: vec![Some(8)],
            rss: Vec::new(),
            checks: vec![Check::new("nothing lost", false, "node 0 shows 5".into())],
            events: Vec::new(),
            log_dir: "/tmp/x".into(),
            wall_s: 80.0,
        };
        let text = r.to_string();
        for want in [
            "mesh-lab t: FAIL",
            "formed after 1.5 s",
            "converged 4.6 s after the heal; connections before it [3 -]",
            "converged - (another fault began first) after the heal",
            "converged - after the load",
            "7 acknowledged, 1 unsure, 0 refused",
            "[FAIL] nothing lost: node 0 shows 5",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["heals"][1]["overlapped"], true);
    }
}
