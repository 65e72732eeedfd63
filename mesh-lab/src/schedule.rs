//! A schedule: how many counter processes, the workload, and the faults with the times
//! they begin and end, read from TOML. The built-in ones are in `schedules/`.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The most processes a schedule may start: one /24 holds the bridge and 253 hosts, and
/// a 2-core machine runs out well before that.
pub const MAX_NODES: usize = 200;

/// A run of the lab.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Its name, for the report.
    pub name: String,
    /// Counter processes, each in its own network namespace (2 to [`MAX_NODES`]).
    pub nodes: usize,
    /// The mesh's password (every peer encrypts, on version 2 and version 3 links).
    #[serde(default = "default_password")]
    pub password: String,
    /// Increments POSTed per second, to peers chosen at random among those reachable.
    pub rate: u32,
    /// How long the workload runs, in seconds from its start (after the mesh formed).
    pub load_s: f64,
    /// Threads sending the workload, each with its own keep-alive connections.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long the mesh may take to form before the run fails.
    #[serde(default = "default_form_timeout")]
    pub form_timeout_s: f64,
    /// How long the mesh may take to agree after the last heal and the end of the load.
    #[serde(default = "default_converge_timeout")]
    pub converge_timeout_s: f64,
    /// The resident memory no process may exceed at any sample, in MiB.
    #[serde(default = "default_rss_limit")]
    pub rss_limit_mib: u64,
    /// The faults, each undone at its `until_s`.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

fn default_password() -> String {
    "mesh-lab".into()
}
fn default_workers() -> usize {
    4
}
fn default_form_timeout() -> f64 {
    60.0
}
fn default_converge_timeout() -> f64 {
    120.0
}
fn default_rss_limit() -> u64 {
    64
}

/// One fault and when it holds, in seconds from the workload's start.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When it begins.
    pub at_s: f64,
    /// When it is undone (the link comes up, the routes go, the process restarts or
    /// continues).
    pub until_s: f64,
    /// What it is.
    pub kind: Fault,
}

/// What a fault does, by node index (0-based).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The node's link goes down (its veth on the bridge), then up again.
    LinkDown {
        /// The node.
        node: usize,
    },
    /// Neither group reaches the other: `prohibit` routes on both sides, so sends fail at
    /// once with an error.
    Partition {
        /// One side.
        a: Vec<usize>,
        /// The other side.
        b: Vec<usize>,
    },
    /// Packets from `from` to `to` vanish (`blackhole` routes in `from`), those the other
    /// way arrive: `to` sees its peers go quiet, `from` sees nothing fail.
    OneWay {
        /// The side whose packets are dropped.
        from: Vec<usize>,
        /// The side they were sent to.
        to: Vec<usize>,
    },
    /// The node's link is narrowed to `kbit` kbit/s each way (`tbf` qdiscs).
    Bandwidth {
        /// The node.
        node: usize,
        /// Kilobits per second.
        kbit: u32,
    },
    /// The process is killed (SIGKILL), then started again with the same name, address
    /// and state file.
    Kill {
        /// The node.
        node: usize,
    },
    /// The process is stopped (SIGSTOP), then continued (SIGCONT).
    Freeze {
        /// The node.
        node: usize,
    },
}

impl Fault {
    /// Every node the fault names.
    pub fn nodes(&self) -> Vec<usize> {
        match self {
            Fault::LinkDown { node }
            | Fault::Bandwidth { node, .. }
            | Fault::Kill { node }
            | Fault::Freeze { node } => {
                vec![*node]
            }
            Fault::Partition { a, b } | Fault::OneWay { from: a, to: b } => {
                a.iter().chain(b).copied().collect()
            }
        }
    }

    /// The node the workload cannot reach while the fault holds (its link is down, its
    /// process dead or stopped), if any.
    pub fn unreachable(&self) -> Option<usize> {
        match self {
            Fault::LinkDown { node } | Fault::Kill { node } | Fault::Freeze { node } => Some(*node),
            _ => None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::LinkDown { node } => write!(f, "link of node {node} down"),
            Fault::Partition { a, b } => write!(f, "partition {a:?} | {b:?}"),
            Fault::OneWay { from, to } => write!(f, "one-way partition {from:?} -> {to:?} dropped"),
            Fault::Bandwidth { node, kbit } => write!(f, "node {node} limited to {kbit} kbit/s"),
            Fault::Kill { node } => write!(f, "node {node} killed"),
            Fault::Freeze { node } => write!(f, "node {node} frozen"),
        }
    }
}

/// Why a schedule cannot run.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    /// Not TOML of the expected shape.
    #[error("schedule {name}: {message}")]
    Parse {
        /// The file or built-in name.
        name: String,
        /// What the parser said.
        message: String,
    },
    /// Parsed, but not a schedule that can run.
    #[error("schedule {name}: {problem}")]
    Invalid {
        /// The schedule's name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// No built-in schedule has that name.
    #[error("no built-in schedule is called {0:?} (built in: {list})", list = BUILT_IN.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "))]
    Unknown(String),
}

/// The built-in schedules, by name.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("ci", include_str!("../schedules/ci.toml")),
    ("faults", include_str!("../schedules/faults.toml")),
    ("soak", include_str!("../schedules/soak.toml")),
];

impl Schedule {
    /// A built-in schedule.
    pub fn built_in(name: &str) -> Result<Schedule, ScheduleError> {
        let (_, text) =
            BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| ScheduleError::Unknown(name.into()))?;
        Schedule::parse(name, text)
    }

    /// Parses and validates `text`; `source` names it in errors.
    pub fn parse(source: &str, text: &str) -> Result<Schedule, ScheduleError> {
        let s: Schedule = toml::from_str(text)
            .map_err(|e| ScheduleError::Parse { name: source.into(), message: e.to_string() })?;
        s.validate()?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), ScheduleError> {
        let bad = |problem: String| Err(ScheduleError::Invalid { name: self.name.clone(), problem });
        if !(2..=MAX_NODES).contains(&self.nodes) {
            return bad(format!("nodes must be 2 to {MAX_NODES}, not {}", self.nodes));
        }
        if self.workers == 0 || self.workers > 64 {
            return bad(format!("workers must be 1 to 64, not {}", self.workers));
        }
        for (what, v) in [
            ("load_s", self.load_s),
            ("form_timeout_s", self.form_timeout_s),
            ("converge_timeout_s", self.converge_timeout_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{what} must be a positive number of seconds, not {v}"));
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if !(f.at_s.is_finite() && f.at_s >= 0.0 && f.until_s.is_finite() && f.until_s > f.at_s) {
                return bad(format!("fault {i} ({}): needs 0 <= at_s < until_s", f.kind));
            }
            if let Some(n) = f.kind.nodes().into_iter().find(|&n| n >= self.nodes) {
                return bad(format!(
                    "fault {i} ({}): node {n} does not exist (nodes 0 to {})",
                    f.kind,
                    self.nodes - 1
                ));
            }
            if let Fault::Partition { a, b } | Fault::OneWay { from: a, to: b } = &f.kind {
                let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
                if a.is_empty() || b.is_empty() || !sa.is_disjoint(&sb) {
                    return bad(format!(
                        "fault {i} ({}): the two sides must be non-empty and disjoint",
                        f.kind
                    ));
                }
            }
            if let Fault::Bandwidth { kbit, .. } = f.kind
                && kbit < 8
            {
                return bad(format!("fault {i} ({}): at least 8 kbit/s", f.kind));
            }
        }
        // Faults on one node must not overlap: undoing one would undo the other's effect
        // (a link brought up under a partition's routes is fine, a process restarted while
        // it is also meant to be frozen is not).
        for (i, f) in self.faults.iter().enumerate() {
            for g in &self.faults[i + 1..] {
                let shared = f.kind.nodes().into_iter().any(|n| g.kind.nodes().contains(&n));
                if shared && f.at_s < g.until_s && g.at_s < f.until_s {
                    return bad(format!(
                        "faults '{}' and '{}' overlap in time on the same node",
                        f.kind, g.kind
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_schedule_is_valid() {
        for (name, _) in BUILT_IN {
            let s = Schedule::built_in(name).unwrap();
            assert_eq!(s.name, *name);
        }
        let ci = Schedule::built_in("ci").unwrap();
        assert_eq!(ci.nodes, 8, "the issue asks for 8 processes in CI");
        let kinds: Vec<_> = ci.faults.iter().map(|f| std::mem::discriminant(&f.kind)).collect();
        for wanted in
            [Fault::Partition { a: vec![], b: vec![] }, Fault::Kill { node: 0 }, Fault::Freeze { node: 0 }]
        {
            assert!(kinds.contains(&std::mem::discriminant(&wanted)), "ci lacks {wanted}");
        }
        let soak = Schedule::built_in("soak").unwrap();
        assert!(soak.nodes == 16 && soak.rate >= 1000 && soak.load_s >= 600.0);
        assert!(matches!(Schedule::built_in("nope"), Err(ScheduleError::Unknown(_))));
    }

    fn with_faults(faults: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse("t", &format!("name = \"t\"\nnodes = 4\nrate = 10\nload_s = 30\n{faults}"))
    }

    #[test]
    fn bad_schedules_are_refused_with_the_reason() {
        let problem = |faults: &str| match with_faults(faults) {
            Err(ScheduleError::Invalid { problem, .. }) => problem,
            other => panic!("{faults}: {other:?}"),
        };
        assert!(
            problem("[[faults]]\nat_s = 5\nuntil_s = 4\nkind = { type = \"kill\", node = 1 }")
                .contains("at_s")
        );
        assert!(
            problem("[[faults]]\nat_s = 1\nuntil_s = 4\nkind = { type = \"freeze\", node = 4 }")
                .contains("node 4")
        );
        assert!(
            problem(
                "[[faults]]\nat_s = 1\nuntil_s = 4\nkind = { type = \"partition\", a = [0, 1], b = [1] }"
            )
            .contains("disjoint")
        );
        assert!(
            problem(
                "[[faults]]\nat_s = 1\nuntil_s = 4\nkind = { type = \"kill\", node = 1 }\n\
                 [[faults]]\nat_s = 3\nuntil_s = 6\nkind = { type = \"freeze\", node = 1 }"
            )
            .contains("overlap")
        );
        assert!(matches!(
            with_faults("[[faults]]\nat_s = 1\nuntil_s = 4\nkind = { type = \"melt\", node = 1 }"),
            Err(ScheduleError::Parse { .. })
        ));
        let ok = with_faults(
            "[[faults]]\nat_s = 1\nuntil_s = 4\nkind = { type = \"kill\", node = 1 }\n\
             [[faults]]\nat_s = 4\nuntil_s = 9\nkind = { type = \"one_way\", from = [1], to = [2, 3] }",
        )
        .unwrap();
        assert_eq!(ok.faults[0].kind.unreachable(), Some(1));
        assert_eq!(ok.faults[1].kind.unreachable(), None);
    }
}
