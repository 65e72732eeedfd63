//! `mesh-sim`: run deterministic simulations of a mesh from the command line.
//!
//! Exit status: 0 when every invariant held, 1 on a violation, 2 on a usage error (an
//! unknown scenario, a malformed scenario file, bad flags).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Args, Parser, Subcommand};

/// Simulations hand megabytes of gossip from node to node; glibc's allocator maps and
/// unmaps those buffers afresh each time (a third of the run was page faults).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use indicatif::{ProgressBar, ProgressStyle};
use mesh_sim::builtin::{BUILTINS, builtin};
use mesh_sim::explore::{self, GenOptions};
use mesh_sim::runner::{Report, RunOptions, Verdict};
use mesh_sim::scenario::{FaultKind, Link, Scenario, Topology};

#[derive(Parser, Debug)]
#[command(
    name = "mesh-sim",
    version,
    about = "Deterministic simulations of a gossip mesh: faults, invariants, replay, shrinking"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the built-in scenarios.
    List,
    /// Run a built-in scenario, a scenario file, or a cluster described by flags.
    Run(RunArgs),
    /// Run many random schedules on all cores and report failing seeds.
    Explore(ExploreArgs),
    /// Run a random schedule again from its seed, optionally with peers' event logs.
    Replay(ReplayArgs),
    /// Reduce a failing random schedule to a minimal one and print it as a test.
    Shrink(ShrinkArgs),
    /// Tabulate and plot bytes per peer and convergence time against mesh size, from
    /// `mesh-sim run --json` reports (one per size and protocol mix).
    Scaling(ScalingArgs),
}

#[derive(Args, Debug)]
struct ScalingArgs {
    /// Reports written by `mesh-sim run ... --json [--timing] > FILE`.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
    /// Write the plots (SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Also write PNG plots.
    #[arg(long)]
    png: bool,
}

#[derive(Args, Debug)]
struct Output {
    /// Print the summary as JSON (deterministic: same seed, same bytes).
    #[arg(long)]
    json: bool,
    /// Put wall time and speed-up in the JSON too (they differ from run to run; the
    /// table always shows them).
    #[arg(long)]
    timing: bool,
    /// Write plots (SVG) into this directory.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// Also write PNG plots.
    #[arg(long)]
    png: bool,
    /// Print the event log of these peers (comma-separated indices).
    #[arg(long, value_delimiter = ',', value_name = "NODES")]
    trace: Vec<usize>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// A built-in scenario (see `mesh-sim list`).
    name: Option<String>,
    /// A scenario file, JSON or TOML.
    #[arg(long, conflicts_with = "name")]
    file: Option<PathBuf>,
    /// Seed (overrides the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Number of peers.
    #[arg(long)]
    nodes: Option<usize>,
    /// Initial topology: line, ring, star, full, random.
    #[arg(long)]
    topology: Option<String>,
    /// One-way link latency in ms.
    #[arg(long)]
    latency_ms: Option<f64>,
    /// Mean extra delay per delivery in ms.
    #[arg(long)]
    jitter_ms: Option<f64>,
    /// Active phase length in seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Quiet phase length in seconds (after the active phase; convergence is judged
    /// in it).
    #[arg(long)]
    quiet_s: Option<u64>,
    /// Shared password.
    #[arg(long)]
    password: Option<String>,
    /// Number of tracked broadcasts.
    #[arg(long)]
    broadcasts: Option<usize>,
    /// Highest protocol version every peer offers: 2 makes the whole mesh speak version
    /// 2, as Go peers do (the default, 3, lets Rust peers use version 3).
    #[arg(long, value_name = "VERSION", value_parser = clap::value_parser!(u8).range(2..=3))]
    max_protocol: Option<u8>,
    /// Make this share of the peers (in percent, spread evenly, the first peer never
    /// among them) offer only version 2, as Go peers do; the rest offer version 3.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(0..=100), conflicts_with = "max_protocol")]
    v2_share: Option<u8>,
    /// Each peer's connection limit.
    #[arg(long, value_name = "N")]
    connection_limit: Option<usize>,
    #[command(flatten)]
    out: Output,
}

#[derive(Args, Debug)]
struct Gen {
    /// Switch a fault class off (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "CLASS")]
    disable: Vec<String>,
    /// Largest random cluster.
    #[arg(long, default_value_t = 10)]
    max_nodes: usize,
    /// Switch a core mechanism off in every peer, to watch an invariant catch it
    /// (repeatable or comma-separated; needs the `sabotage` feature).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    sabotage: Vec<String>,
}

impl Gen {
    fn options(&self) -> Result<GenOptions, String> {
        for c in &self.disable {
            if !FaultKind::CLASSES.contains(&c.as_str()) {
                return Err(format!("unknown fault class {c:?}; classes: {}", FaultKind::CLASSES.join(", ")));
            }
        }
        if self.max_nodes < 2 {
            return Err("--max-nodes must be at least 2".into());
        }
        Scenario { sabotage: self.sabotage.clone(), ..Scenario::default() }
            .validate()
            .map_err(|e| e.to_string())?;
        Ok(GenOptions {
            disabled: self.disable.iter().cloned().collect::<BTreeSet<_>>(),
            max_nodes: self.max_nodes,
            sabotage: self.sabotage.clone(),
            ..GenOptions::default()
        })
    }
}

#[derive(Args, Debug)]
struct ExploreArgs {
    /// How many seeds.
    #[arg(long)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    #[command(flatten)]
    schedule: Gen,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// The seed.
    seed: u64,
    /// Print the generated scenario as JSON instead of running it (edit it, then
    /// `mesh-sim run --file`).
    #[arg(long)]
    scenario: bool,
    #[command(flatten)]
    schedule: Gen,
    #[command(flatten)]
    out: Output,
}

#[derive(Args, Debug)]
struct ShrinkArgs {
    /// The failing seed.
    seed: u64,
    #[command(flatten)]
    schedule: Gen,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("mesh-sim: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for (name, what) in BUILTINS {
                println!("{name:<20} {what}");
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => match scenario_of(&args) {
            Ok(sc) => run_and_report(&sc, &args.out),
            Err(e) => usage_error(e),
        },
        Command::Replay(args) => match args.schedule.options() {
            Ok(g) if args.scenario => {
                println!("{}", explore::generate(args.seed, &g).to_json());
                ExitCode::SUCCESS
            }
            Ok(g) => run_and_report(&explore::generate(args.seed, &g), &args.out),
            Err(e) => usage_error(e),
        },
        Command::Explore(args) => explore_cmd(&args),
        Command::Shrink(args) => shrink_cmd(&args),
        Command::Scaling(args) => scaling_cmd(&args),
    }
}

fn scenario_of(args: &RunArgs) -> Result<Scenario, String> {
    let mut sc = if let Some(path) = &args.file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?
    } else if let Some(name) = &args.name {
        builtin(name).ok_or_else(|| {
            let names: Vec<&str> = BUILTINS.iter().map(|b| b.0).collect();
            format!("unknown scenario {name:?}; built-in scenarios: {}", names.join(", "))
        })?
    } else {
        Scenario::default()
    };
    if let Some(s) = args.seed {
        sc.seed = s;
    }
    if let Some(n) = args.nodes {
        sc.nodes = n;
    }
    if let Some(t) = &args.topology {
        sc.topology = match t.as_str() {
            "line" => Topology::Line,
            "ring" => Topology::Ring,
            "star" => Topology::Star,
            "full" => Topology::Full,
            "random" => Topology::Random { degree: 2 },
            other => return Err(format!("unknown topology {other:?}: line, ring, star, full or random")),
        };
    }
    if args.latency_ms.is_some() || args.jitter_ms.is_some() {
        sc.link = Link {
            latency_ms: args.latency_ms.unwrap_or(sc.link.latency_ms),
            jitter_ms: args.jitter_ms.unwrap_or(sc.link.jitter_ms),
            ..sc.link
        };
    }
    if let Some(d) = args.duration_s {
        sc.duration_ms = d.saturating_mul(1000);
    }
    if let Some(q) = args.quiet_s {
        sc.quiet_ms = q.saturating_mul(1000);
    }
    if let Some(p) = &args.password {
        sc.password = Some(p.clone());
    }
    if let Some(b) = args.broadcasts {
        sc.workload.broadcasts = b;
    }
    if args.max_protocol == Some(2) {
        sc.v2_only = (0..sc.nodes).collect();
        sc.v3_only.clear();
    }
    if let Some(share) = args.v2_share {
        sc.v2_only = spread(sc.nodes, usize::from(share));
        sc.v3_only.retain(|i| !sc.v2_only.contains(i));
    }
    if let Some(limit) = args.connection_limit {
        sc.connection_limit = limit;
    }
    sc.validate().map_err(|e| e.to_string())?;
    Ok(sc)
}

/// `share` percent of `n` peer indices, evenly spread and never the first (in the
/// built-in bootstrap scenarios peer 0 is the one everybody dials).
fn spread(n: usize, share: usize) -> Vec<usize> {
    let k = (n * share + 50) / 100;
    (0..k)
        .map(|j| ((2 * j + 1) * n / (2 * k)).max(1))
        .filter(|i| *i < n)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

fn scaling_cmd(args: &ScalingArgs) -> ExitCode {
    let mut points = Vec::new();
    for path in &args.reports {
        match mesh_sim::scaling::Point::read(path) {
            Ok(p) => points.push(p),
            Err(e) => return usage_error(e),
        }
    }
    print!("{}", mesh_sim::scaling::table(&points));
    if let Some(dir) = &args.plots {
        match mesh_sim::scaling::write_plots(&points, dir, args.png) {
            Ok(files) => {
                for f in files {
                    eprintln!("wrote {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("mesh-sim: plots failed: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn describe(sc: &Scenario) -> String {
    let classes: Vec<&str> = sc.faults.iter().map(|f| f.kind.class()).collect();
    format!(
        "scenario {} seed {}: {} peers ({} version-2-only), {:?}, latency {} ms (+{} ms jitter{}), {}, limit {}, discovery {}, faults [{}], workload {} incr / {} bcast / {} ucast / {} churn / {} bulk of {} B / {} sparse bcast on {} channels, active {} s, quiet {} s",
        sc.name,
        sc.seed,
        sc.nodes,
        sc.v2_only.len(),
        sc.topology,
        sc.link.latency_ms,
        sc.link.jitter_ms,
        sc.link.bandwidth_kib.map(|b| format!(", {b} KiB/s")).unwrap_or_default(),
        if sc.password.is_some() { "encrypted" } else { "plaintext" },
        sc.connection_limit,
        sc.discovery,
        classes.join(", "),
        sc.workload.increments,
        sc.workload.broadcasts,
        sc.workload.unicasts,
        sc.workload.churn,
        sc.workload.bulk,
        sc.workload.payload_bytes,
        sc.workload.sparse_broadcasts,
        sc.workload.sparse_channels,
        sc.duration_ms / 1000,
        sc.quiet_ms / 1000,
    )
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{bar:40}} {{pos}}/{{len}} {{msg}} ({{elapsed}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb
}

fn run_and_report(sc: &Scenario, out: &Output) -> ExitCode {
    if !out.json {
        println!("{}", describe(sc));
    }
    let pb = bar(sc.duration_ms + sc.quiet_ms, "virtual ms");
    let pbc = pb.clone();
    let opts = RunOptions {
        trace: out.trace.clone(),
        progress: Some(Arc::new(move |done, _| pbc.set_position(done))),
        ..RunOptions::default()
    };
    let mut report = explore::run_guarded(sc, &opts);
    pb.finish_and_clear();
    if out.json && !out.timing {
        report.wall = None;
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print_table(&report);
    }
    for line in &report.trace {
        eprintln!("{line}");
    }
    if let Some(dir) = &out.plots {
        match mesh_sim::plot::write_all(&report, dir, out.png) {
            Ok(files) => {
                for f in files {
                    eprintln!("wrote {}", f.display());
                }
            }
            Err(e) => eprintln!("mesh-sim: plots failed: {e}"),
        }
    }
    if report.passed() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_table(r: &Report) {
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
    let rows: Vec<(&str, String)> = vec![
        ("peers", r.nodes.to_string()),
        ("virtual time", format!("{:.1} s", r.virtual_ms as f64 / 1000.0)),
        ("final heal", format!("{:.1} s", r.final_heal_ms as f64 / 1000.0)),
        (
            if r.convergence_as_one_mesh { "convergence (one mesh)" } else { "convergence (per component)" },
            r.convergence_ms.map_or("not reached".into(), |c| format!("{c} ms after the final heal")),
        ),
        ("messages per peer", format!("{:.0}", r.messages_per_peer)),
        ("bytes per peer", format!("{:.0}", r.bytes_per_peer)),
        (
            "steady bytes per peer per gossip interval",
            r.steady_bytes_per_peer_per_interval.map_or("-".to_owned(), |b| format!("{b:.0}")),
        ),
        ("broadcasts", r.broadcasts.to_string()),
        ("broadcast latency p50", ms(r.broadcast_latency_ms.map(|p| p.p50))),
        ("broadcast latency p99", ms(r.broadcast_latency_ms.map(|p| p.p99))),
        ("broadcast latency max", ms(r.broadcast_latency_ms.map(|p| p.max))),
        ("messages per broadcast", r.messages_per_broadcast.map_or("-".into(), |m| format!("{m:.2}"))),
        ("duplicate deliveries", r.duplicate_deliveries.to_string()),
        ("table entries at the end, fewest-most", format!("{}-{}", r.smallest_table, r.largest_table)),
        ("table entries at their peak, fewest-most", format!("{}-{}", r.peak_table_everywhere, r.peak_table)),
        ("highest record version", r.highest_version.to_string()),
        ("digest", r.digest.clone()),
    ];
    let mut rows = rows;
    if let Some(w) = r.wall {
        rows.push(("wall time", format!("{:.2} s", w.wall_ms / 1000.0)));
        rows.push(("speed-up over real time", format!("{:.0}x", w.speedup)));
        if let Some(a) = w.speedup_after_start {
            rows.push(("speed-up after workload start", format!("{a:.0}x")));
        }
    }
    for (k, v) in rows {
        println!("  {k:<30} {v}");
    }
    let faults: Vec<String> =
        r.faults.iter().filter(|(_, v)| **v > 0).map(|(k, v)| format!("{k}={v}")).collect();
    let events: Vec<String> = r.events.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!(
        "  {:<30} {}",
        "faults applied",
        if faults.is_empty() { "none".into() } else { faults.join(" ") }
    );
    println!("  {:<30} {}", "protocol events", events.join(" "));
    for (inv, v) in &r.invariants {
        let verdict = match v.verdict {
            Verdict::Held => format!("held ({} {})", v.examined, v.unit),
            Verdict::Violated => format!("VIOLATED ({} {} examined)", v.examined, v.unit),
            Verdict::NotApplicable => format!("not applicable: {}", v.reason.as_deref().unwrap_or("-")),
        };
        let load = v.load.map(|l| format!(", peak {:.0}% of its bound", l * 100.0)).unwrap_or_default();
        println!("  invariant {inv:<20} {verdict}{load}");
    }
    for v in &r.violations {
        println!("  violation: {v}");
    }
}

fn explore_cmd(args: &ExploreArgs) -> ExitCode {
    let g = match args.schedule.options() {
        Ok(g) => g,
        Err(e) => return usage_error(e),
    };
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let pb = bar(args.seeds, "seeds");
    let failures = Mutex::new(0u64);
    let outcomes = explore::explore(args.first, args.seeds, jobs, &g, &|o| {
        pb.inc(1);
        if let Some(v) = &o.violation {
            *failures.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            // Printed even when stderr is not a terminal (the bar is hidden then).
            pb.suspend(|| eprintln!("FAIL {v}"));
        }
    });
    pb.finish_and_clear();
    let mut totals: std::collections::BTreeMap<String, u64> = Default::default();
    for o in &outcomes {
        for (k, v) in &o.counts {
            *totals.entry(k.clone()).or_default() += v;
        }
    }
    let failed: Vec<&explore::Outcome> = outcomes.iter().filter(|o| o.violation.is_some()).collect();
    println!(
        "explored {} seeds ({}..{}) on {jobs} threads: {} failed",
        outcomes.len(),
        args.first,
        args.first + args.seeds,
        failed.len()
    );
    for o in &failed {
        if let Some(v) = &o.violation {
            println!("  seed {}: {} ({})", o.seed, v.invariant, v.detail);
        }
    }
    println!("totals: {}", totals.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
    println!("invariants: share of schedules where each examined something, and held; cases examined");
    let pct = |k: u64| k as f64 * 100.0 / outcomes.len().max(1) as f64;
    for (name, c) in explore::coverage(&outcomes) {
        let loaded = if name.ends_with("_bound") || name == "quiet_traffic" {
            format!(", at half its bound or more in {:.1}%", pct(c.half_loaded))
        } else {
            String::new()
        };
        println!(
            "  {name:<20} applied {:>5.1}%  held {:>5.1}%  {} cases{loaded}",
            pct(c.applied),
            pct(c.held),
            c.cases
        );
    }
    if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn shrink_cmd(args: &ShrinkArgs) -> ExitCode {
    let g = match args.schedule.options() {
        Ok(g) => g,
        Err(e) => return usage_error(e),
    };
    let sc = explore::generate(args.seed, &g);
    println!("{}", describe(&sc));
    match explore::shrink(&sc, &|s| eprintln!("  still fails: {} nodes, {} faults", s.nodes, s.faults.len()))
    {
        None => {
            println!("seed {} does not fail", args.seed);
            ExitCode::SUCCESS
        }
        Some((small, v)) => {
            println!("shrunk to {} nodes and {} faults, still failing: {v}", small.nodes, small.faults.len());
            println!("\nscenario (mesh-sim run --file FILE):\n{}", small.to_json());
            println!("\nas a test:\n{}", explore::as_test(&small, &v));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn a_share_of_peers_is_spread_evenly_and_spares_the_first() {
        assert_eq!(spread(20, 10), [5, 15]);
        let tenth = spread(1000, 10);
        assert_eq!(tenth.len(), 100);
        assert!(!tenth.contains(&0) && tenth.windows(2).all(|w| w[1] - w[0] == 10));
        assert_eq!(spread(10, 0), Vec::<usize>::new());
        assert_eq!(spread(3, 100), [1, 2], "the first peer stays version 3 even at 100%");
    }
}
