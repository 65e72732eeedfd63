//! One run of a schedule: the network and the processes made, the mesh formed, the
//! workload started, the faults applied and undone on time, the convergence after each
//! heal timed, and the checks made once the load stopped. Everything made is removed
//! when the run ends, however it ends (the [`Net`] and each [`Node`] clean up on drop).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crate::net::{Cut, Net, NetError};
use crate::observe::{View, common_value, topology_agrees, view};
use crate::procs::{Adapter, Binaries, HTTP_PORT, Node};
use crate::report::{Check, Heal, NodeReport, Report, Rss};
use crate::schedule::{Fault, Schedule};
use crate::workload::{Tally, Workload};

/// How a run is set up, besides its schedule.
#[derive(Clone, Debug)]
pub struct Options {
    /// The two counter examples.
    pub bins: Binaries,
    /// The /24 the lab's bridge and nodes use (default 10.213.0).
    pub subnet: [u8; 3],
    /// Where the nodes' logs and state files go.
    pub log_dir: PathBuf,
    /// Seeds the workload's choice of nodes.
    pub seed: u64,
}

/// Why a run could not be carried out (a check that fails is a report, not an error).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The network could not be made or changed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Something else of the setup failed.
    #[error("{0}")]
    Setup(String),
    /// Ctrl-C, SIGTERM or SIGHUP.
    #[error("interrupted")]
    Interrupted,
}

/// How often the lab looks at the clock, the faults and the nodes.
const TICK: Duration = Duration::from_millis(100);
/// How often it polls the nodes while it waits for agreement.
const POLL: Duration = Duration::from_millis(500);
/// How often, from the start of the load, every process's memory is kept for the report.
const RSS_MARK: Duration = Duration::from_secs(30);
/// How long a fault waits for requests in flight to the node it makes unreachable.
const DRAIN: Duration = Duration::from_secs(10);

struct Lab<'a> {
    schedule: &'a Schedule,
    opts: &'a Options,
    interrupted: &'a AtomicBool,
    // Nodes before the network: dropped first, so no process outlives its namespace.
    nodes: Vec<Node>,
    net: Net,
    workload: Option<Workload>,
    started: Instant,
    /// What the event log's times count from: the start, then the workload's start.
    clock: Instant,
    rss: Vec<Rss>,
    last_rss: Option<Instant>,
    /// When the workload started, and how many of the every-30-s samples are taken.
    load_started: Option<Instant>,
    rss_marks: u32,
    events: Vec<String>,
}

/// Runs `schedule`; `interrupted` is set by the signal handler.
pub fn run(schedule: &Schedule, opts: &Options, interrupted: &AtomicBool) -> Result<Report, LabError> {
    std::fs::create_dir_all(&opts.log_dir)
        .map_err(|e| LabError::Setup(format!("{}: {e}", opts.log_dir.display())))?;
    for r in crate::net::remove_leftovers() {
        eprintln!("mesh-lab: removed {r}, left by a run that is gone");
    }
    if crate::net::subnet_in_use(opts.subnet)? {
        let [a, b, c] = opts.subnet;
        return Err(LabError::Setup(format!(
            "a route already covers {a}.{b}.{c}.0/24: choose another with --subnet"
        )));
    }
    let net = Net::create(schedule.nodes, opts.subnet)?;
    let nodes = (0..schedule.nodes).map(|i| Node::new(i, &net, &schedule.password, &opts.log_dir)).collect();
    let mut lab = Lab {
        schedule,
        opts,
        interrupted,
        nodes,
        net,
        workload: None,
        started: Instant::now(),
        clock: Instant::now(),
        rss: vec![Rss::default(); schedule.nodes],
        last_rss: None,
        load_started: None,
        rss_marks: 0,
        events: Vec::new(),
    };
    lab.run()
}

impl Lab<'_> {
    fn url(&self, i: usize) -> String {
        format!("http://{}:{HTTP_PORT}", self.net.ip(i))
    }

    fn log(&mut self, what: String) {
        let line = format!("[{:7.1}s] {what}", self.clock.elapsed().as_secs_f64());
        eprintln!("{line}");
        self.events.push(line);
    }

    fn views(&self) -> Vec<Result<View, String>> {
        (0..self.nodes.len()).map(|i| view(&self.url(i))).collect()
    }

    fn check_interrupt(&self) -> Result<(), LabError> {
        if self.interrupted.load(SeqCst) { Err(LabError::Interrupted) } else { Ok(()) }
    }

    fn sample_rss(&mut self) {
        if self.last_rss.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last_rss = Some(Instant::now());
        let mark = self.load_started.is_some_and(|t| t.elapsed() >= RSS_MARK * self.rss_marks);
        self.rss_marks += u32::from(mark);
        for (n, r) in self.nodes.iter().zip(&mut self.rss) {
            let kib = n.rss_kib();
            if let Some(kib) = kib {
                r.record(kib);
            }
            if mark {
                r.every_30s_kib.push(kib.unwrap_or(0));
            }
        }
    }

    /// Sleeps a tick, sampling memory and minding Ctrl-C.
    fn tick(&mut self) -> Result<(), LabError> {
        std::thread::sleep(TICK);
        self.sample_rss();
        self.check_interrupt()
    }

    /// Polls until the topology agrees (and, with `counters`, every counter shows the same
    /// value within what the workload allows), at most `timeout`; the time it took.
    fn await_agreement(&mut self, timeout: f64, counters: Option<&Tally>) -> Result<Option<f64>, LabError> {
        let from = Instant::now();
        loop {
            let views = self.views();
            let counted = counters.is_none_or(|t| common_value(&views).is_some_and(|v| within(v, t)));
            if topology_agrees(&views, self.nodes.len()) && counted {
                return Ok(Some(from.elapsed().as_secs_f64()));
            }
            if from.elapsed().as_secs_f64() > timeout {
                return Ok(None);
            }
            let until = Instant::now() + POLL;
            while Instant::now() < until {
                self.tick()?;
            }
        }
    }

    fn start_nodes(&mut self) -> Result<(), LabError> {
        // The two seeds first, so the others' first dials find a listener.
        for i in 0..self.nodes.len() {
            self.nodes[i].start(&self.opts.bins, &self.net).map_err(LabError::Setup)?;
            if i == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        Ok(())
    }

    /// Applies (`on`) or undoes a fault.
    fn set_fault(&mut self, f: &Fault, on: bool) -> Result<(), LabError> {
        if on && let Some(i) = f.unreachable() {
            self.withdraw(i);
        }
        match f {
            Fault::LinkDown { node } => self.net.set_link(*node, !on)?,
            Fault::Partition { a, b } => {
                for (x, y) in [(a, b), (b, a)] {
                    for &i in x {
                        self.net.set_cut(i, y, Cut::Prohibit, on)?;
                    }
                }
            }
            Fault::OneWay { from, to } => {
                for &i in from {
                    self.net.set_cut(i, to, Cut::Blackhole, on)?;
                }
            }
            Fault::Bandwidth { node, kbit } => self.net.set_bandwidth(*node, on.then_some(*kbit))?,
            Fault::Kill { node } if on => self.nodes[*node].kill(),
            Fault::Kill { node } => {
                self.nodes[*node].start(&self.opts.bins, &self.net).map_err(LabError::Setup)?;
                self.await_http(*node)?;
            }
            Fault::Freeze { node } => self.nodes[*node].freeze(on).map_err(LabError::Setup)?,
        }
        if !on && let Some(i) = f.unreachable() {
            if let Some(w) = &self.workload {
                w.restore(i, matches!(f, Fault::Kill { .. }));
            }
        }
        Ok(())
    }

    fn withdraw(&mut self, i: usize) {
        if let Some(w) = &self.workload
            && !w.withdraw(i, DRAIN)
        {
            self.log(format!("node {i}: requests still in flight after {DRAIN:?}; going on"));
        }
    }

    /// Waits (at most 10 s) until a restarted node serves HTTP.
    fn await_http(&mut self, i: usize) -> Result<(), LabError> {
        let from = Instant::now();
        while view(&self.url(i)).is_err() && from.elapsed() < Duration::from_secs(10) {
            self.tick()?;
        }
        Ok(())
    }

    fn run(&mut self) -> Result<Report, LabError> {
        let s = self.schedule;
        self.log(format!(
            "{} nodes in namespaces on {}/24; logs in {}",
            s.nodes,
            self.net.host_ip(),
            self.opts.log_dir.display()
        ));
        self.start_nodes()?;
        let formed_s = self.await_agreement(s.form_timeout_s, None)?;
        let mut checks = vec![Check::new(
            "formed",
            formed_s.is_some(),
            match formed_s {
                Some(t) => format!("every node knew all {} peers, one table, after {t:.1} s", s.nodes),
                None => format!("no agreement within {} s", s.form_timeout_s),
            },
        )];
        let mut heals = Vec::new();
        let mut tally = Tally::default();
        let mut exits = Vec::new();
        if formed_s.is_some() {
            self.log(format!("formed; load of {} increments/s for {} s", s.rate, s.load_s));
            (tally, heals, exits) = self.drive()?;
        }
        self.finish(formed_s, heals, tally, exits, &mut checks)
    }

    /// The workload and the faults, on time; the convergence after each heal.
    fn drive(&mut self) -> Result<(Tally, Vec<Heal>, Vec<String>), LabError> {
        let s = self.schedule;
        let urls = (0..s.nodes).map(|i| format!("{}/", self.url(i))).collect();
        self.workload = Some(Workload::start(urls, s.rate, s.workers, self.opts.seed));
        let t0 = Instant::now();
        self.clock = t0;
        self.load_started = Some(t0);
        self.log("load started: times from here on count from this moment, as the schedule's do".into());
        let mut state = vec![0u8; s.faults.len()]; // 0 pending, 1 active, 2 undone
        let mut heals: Vec<Heal> = Vec::new();
        let mut watch: Option<(usize, Instant, Instant)> = None; // heal, since, last poll
        let mut tally = None;
        let mut exits = Vec::new();
        loop {
            let t = t0.elapsed().as_secs_f64();
            for (k, f) in s.faults.iter().enumerate() {
                if state[k] == 0 && f.at_s <= t {
                    self.set_fault(&f.kind, true)?;
                    state[k] = 1;
                    self.log(format!("fault: {}", f.kind));
                } else if state[k] == 1 && f.until_s <= t {
                    // What the fault did to the mesh, seen by those who can answer (not
                    // asking the one it made unreachable or narrowed, which would only
                    // time out or hold the heal back).
                    let skip = match f.kind {
                        Fault::Bandwidth { node, .. } => Some(node),
                        ref k => k.unreachable(),
                    };
                    let before: Vec<Option<usize>> = (0..s.nodes)
                        .map(|i| {
                            (Some(i) != skip)
                                .then(|| view(&self.url(i)).ok().map(|v| v.established))
                                .flatten()
                        })
                        .collect();
                    self.set_fault(&f.kind, false)?;
                    state[k] = 2;
                    self.log(format!("healed: {}", f.kind));
                    heals.push(Heal {
                        fault: f.kind.to_string(),
                        at_s: f.at_s,
                        healed_s: t,
                        established_before_heal: before,
                        converged_after_s: None,
                        overlapped: false,
                    });
                    watch = Some((heals.len() - 1, Instant::now(), Instant::now() - POLL));
                }
            }
            let active = state.contains(&1);
            if let Some((h, since, last)) = watch {
                if active {
                    // Another fault holds: this heal's convergence cannot be seen alone.
                    heals[h].overlapped = true;
                    watch = None;
                } else if last.elapsed() >= POLL {
                    watch = Some((h, since, Instant::now()));
                    let waited = since.elapsed().as_secs_f64();
                    if topology_agrees(&self.views(), s.nodes) {
                        heals[h].converged_after_s = Some(waited);
                        self.log(format!("converged {waited:.1} s after the heal"));
                        watch = None;
                    } else if waited > s.converge_timeout_s {
                        self.log(format!("no agreement {waited:.0} s after the heal"));
                        watch = None;
                    }
                }
            }
            for (i, n) in self.nodes.iter_mut().enumerate() {
                let killed =
                    s.faults.iter().zip(&state).any(|(f, &st)| st == 1 && f.kind == Fault::Kill { node: i });
                if !killed && let Some(how) = n.exited() {
                    exits.push(format!("node {i} exited on its own ({how}) at {t:.1} s"));
                    n.kill();
                }
            }
            if t >= s.load_s && tally.is_none() {
                tally = self.workload.take().map(Workload::stop);
                self.log("load stopped".into());
            }
            if tally.is_some() && !state.iter().any(|&st| st < 2) && watch.is_none() {
                return Ok((tally.unwrap_or_default(), heals, exits));
            }
            self.tick()?;
        }
    }

    fn finish(
        &mut self,
        formed_s: Option<f64>,
        heals: Vec<Heal>,
        tally: Tally,
        exits: Vec<String>,
        checks: &mut Vec<Check>,
    ) -> Result<Report, LabError> {
        let s = self.schedule;
        let formed = formed_s.is_some();
        let final_s = if formed { self.await_agreement(s.converge_timeout_s, Some(&tally))? } else { None };
        if let Some(t) = final_s {
            self.log(format!("converged {t:.1} s after the load and the last heal"));
        }
        let views = self.views();
        let mut dead: Vec<String> = exits;
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if let Some(how) = n.exited() {
                dead.push(format!("node {i}: {how}"));
            }
        }
        let values: Vec<Option<i64>> = views.iter().map(|v| v.as_ref().ok().map(|v| v.value)).collect();
        if formed {
            checks.push(Check::new(
                "alive",
                dead.is_empty(),
                if dead.is_empty() {
                    format!("all {} processes ran to the end", s.nodes)
                } else {
                    dead.join("; ")
                },
            ));
            let (acked, unsure) = (tally.acked_total(), tally.unsure_total());
            let lost = values.iter().enumerate().filter(|(_, v)| !v.is_some_and(|v| within(v, &tally)));
            let lost: Vec<String> = lost.map(|(i, v)| format!("node {i} shows {v:?}")).collect();
            checks.push(Check::new(
                "nothing lost",
                lost.is_empty(),
                format!(
                    "{acked} increments acknowledged, {unsure} unsure, {} refused; {}",
                    tally.refused_total(),
                    if lost.is_empty() {
                        "every counter accounts for each".to_owned()
                    } else {
                        lost.join(", ")
                    }
                ),
            ));
            checks.push(Check::new("counters agree", common_value(&views).is_some(), format!("{values:?}")));
            let agrees = topology_agrees(&views, s.nodes);
            checks.push(Check::new(
                "topology agrees",
                agrees,
                match final_s {
                    Some(t) => format!(
                        "one table of {} peers, {t:.1} s after the end of the load and the last heal",
                        s.nodes
                    ),
                    None => format!("not within {} s", s.converge_timeout_s),
                },
            ));
            let unconverged: Vec<&str> = heals
                .iter()
                .filter(|h| h.converged_after_s.is_none() && !h.overlapped)
                .map(|h| h.fault.as_str())
                .collect();
            checks.push(Check::new(
                "every heal converged",
                unconverged.is_empty(),
                if unconverged.is_empty() {
                    format!("{} heals", heals.len())
                } else {
                    format!("not seen to converge: {}", unconverged.join("; "))
                },
            ));
        }
        let max_kib = self.rss.iter().map(|r| r.max_kib).max().unwrap_or(0);
        let limit = s.rss_limit_mib * 1024;
        checks.push(Check::new(
            "memory",
            max_kib <= limit,
            format!("largest resident set {:.1} MiB, limit {} MiB", max_kib as f64 / 1024.0, s.rss_limit_mib),
        ));
        for c in checks.iter().filter(|c| !c.pass) {
            self.log(format!("FAILED {}: {}", c.name, c.detail));
        }
        if checks.iter().any(|c| !c.pass) {
            for n in &self.nodes {
                eprintln!("--- node {} log, last lines:\n{}", n.index, n.log_tail(15));
            }
        }
        Ok(self.report(formed_s, heals, final_s, tally, values, std::mem::take(checks)))
    }

    fn report(
        &mut self,
        formed_s: Option<f64>,
        heals: Vec<Heal>,
        final_converged_s: Option<f64>,
        tally: Tally,
        values: Vec<Option<i64>>,
        checks: Vec<Check>,
    ) -> Report {
        let nodes = self
            .nodes
            .iter()
            .map(|n| NodeReport {
                index: n.index,
                name: n.name.clone(),
                adapter: match n.adapter {
                    Adapter::Tokio => "tokio",
                    Adapter::Smol => "smol",
                },
                max_protocol: n.max_protocol,
                ip: self.net.ip(n.index).to_string(),
                starts: n.starts,
            })
            .collect();
        Report {
            schedule: self.schedule.name.clone(),
            pass: checks.iter().all(|c| c.pass),
            nodes,
            formed_s,
            heals,
            final_converged_s,
            tally,
            values,
            rss: std::mem::take(&mut self.rss),
            checks,
            events: std::mem::take(&mut self.events),
            log_dir: self.opts.log_dir.display().to_string(),
            wall_s: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Whether a counter value accounts for every acknowledged increment and for nothing
/// that was never sent.
fn within(value: i64, t: &Tally) -> bool {
    let acked = t.acked_total() as i64;
    (acked..=acked + t.unsure_total() as i64).contains(&value)
}
