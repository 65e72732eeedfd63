//! `mesh-lab`: real counter processes, tokio and smol, protocol versions 2 and 3 mixed,
//! each in its own network namespace on a bridge, under scripted faults (links down,
//! partitions both ways and one way, narrow links, crashes and restarts, freezes) while a
//! workload POSTs increments; then checks that nothing was lost, every process lives, the
//! topology agrees and memory stayed bounded. Run as root. See `mesh-lab --help` and the
//! crate's README.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

use mesh_lab::lab::{self, LabError, Options};
use mesh_lab::net;
use mesh_lab::procs::Binaries;
use mesh_lab::schedule::{BUILT_IN, Schedule};

/// Exit statuses besides 0 (every check passed).
mod status {
    /// A check failed.
    pub(crate) const FAILED: u8 = 1;
    /// A bad command line or schedule.
    pub(crate) const USAGE: u8 = 2;
    /// Not run as root: nothing was tried.
    pub(crate) const NOT_ROOT: u8 = 3;
    /// The lab could not be set up (binaries, network).
    pub(crate) const SETUP: u8 = 4;
    /// Interrupted (everything made was removed).
    pub(crate) const INTERRUPTED: u8 = 130;
}

const USAGE: &str = "\
mesh-lab: counter processes in network namespaces under scripted faults (run as root)

Usage:
  mesh-lab run <SCHEDULE> [OPTIONS]   run a built-in schedule (see `mesh-lab list`)
  mesh-lab run --file <PATH> [OPTIONS] run a schedule from a TOML file
  mesh-lab list                       the built-in schedules
  mesh-lab cleanup                    remove what runs killed by SIGKILL left behind

Options:
  --json             print the report as JSON (progress still goes to stderr)
  --bin-dir <DIR>    where the `counter` and `counter-smol` examples are
                     [default: the `examples` directory beside mesh-lab's binary]
  --subnet <A.B.C>   the /24 for the bridge and the nodes [default: 10.213.0]
  --logs <DIR>       the nodes' logs and state files [default: a new directory in /tmp]
  --seed <N>         seeds the workload's choice of nodes [default: 1]

Exit status: 0 every check passed, 1 a check failed, 2 bad usage, 3 not root,
4 the lab could not be set up, 130 interrupted.
";

struct Cli {
    schedule: Schedule,
    json: bool,
    bin_dir: Option<PathBuf>,
    subnet: [u8; 3],
    logs: Option<PathBuf>,
    seed: u64,
}

fn parse_run(args: &[String]) -> Result<Cli, String> {
    let mut schedule = None;
    let (mut json, mut bin_dir, mut subnet, mut logs, mut seed) = (false, None, [10, 213, 0], None, 1);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--json" => json = true,
            "--bin-dir" => bin_dir = Some(PathBuf::from(value()?)),
            "--logs" => logs = Some(PathBuf::from(value()?)),
            "--seed" => seed = value()?.parse().map_err(|_| "--seed takes a number".to_owned())?,
            "--subnet" => {
                let v = value()?;
                let parts: Vec<u8> =
                    v.split('.').map(str::parse).collect::<Result<_, _>>().unwrap_or_default();
                subnet = parts
                    .try_into()
                    .map_err(|_| format!("--subnet {v:?}: expected three octets, like 10.213.0"))?;
            }
            "--file" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                schedule = Some(Schedule::parse(&path, &text).map_err(|e| e.to_string())?);
            }
            name if !name.starts_with('-') && schedule.is_none() => {
                schedule = Some(Schedule::built_in(name).map_err(|e| e.to_string())?);
            }
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let schedule = schedule.ok_or("run needs a schedule: a built-in name or --file PATH")?;
    Ok(Cli { schedule, json, bin_dir, subnet, logs, seed })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => {}
        Some("list") => {
            for (name, text) in BUILT_IN {
                let first = text.lines().next().unwrap_or("").trim_start_matches("# ");
                println!("{name:<8} {first}");
            }
            return ExitCode::SUCCESS;
        }
        Some("cleanup") => {
            if let Some(code) = refuse_unless_root() {
                return code;
            }
            for r in net::remove_leftovers() {
                println!("removed {r}");
            }
            return ExitCode::SUCCESS;
        }
        Some("-h" | "--help") => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(status::USAGE);
        }
    }
    let cli = match parse_run(&args[1..]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mesh-lab: {e}");
            return ExitCode::from(status::USAGE);
        }
    };
    if let Some(code) = refuse_unless_root() {
        return code;
    }
    run(cli)
}

/// Without root there are no namespaces to make: say so, with a status of its own.
fn refuse_unless_root() -> Option<ExitCode> {
    if nix::unistd::geteuid().is_root() {
        return None;
    }
    eprintln!(
        "mesh-lab: must run as root (it makes network namespaces, a bridge and routes); nothing was run"
    );
    Some(ExitCode::from(status::NOT_ROOT))
}

fn run(cli: Cli) -> ExitCode {
    let bin_dir = cli.bin_dir.unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.parent().map(|d| d.join("examples")).unwrap_or_default()
    });
    let bins = match Binaries::in_dir(&bin_dir) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mesh-lab: {e}");
            return ExitCode::from(status::SETUP);
        }
    };
    let log_dir =
        cli.logs.unwrap_or_else(|| std::env::temp_dir().join(format!("mesh-lab-{}", std::process::id())));
    let opts = Options { bins, subnet: cli.subnet, log_dir, seed: cli.seed };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    if let Err(e) = ctrlc::set_handler(move || flag.store(true, SeqCst)) {
        eprintln!("mesh-lab: cannot catch Ctrl-C ({e}); going on");
    }
    match lab::run(&cli.schedule, &opts, &interrupted) {
        Ok(report) => {
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report).expect("a report serializes"));
            } else {
                print!("{report}");
            }
            ExitCode::from(if report.pass { 0 } else { status::FAILED })
        }
        Err(LabError::Interrupted) => {
            eprintln!("mesh-lab: interrupted; every namespace, link and process it made is removed");
            ExitCode::from(status::INTERRUPTED)
        }
        Err(e) => {
            eprintln!("mesh-lab: {e}");
            ExitCode::from(status::SETUP)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn the_run_command_line() {
        let c = parse_run(&args("ci --json --subnet 10.9.8 --seed 5")).unwrap();
        assert_eq!((c.schedule.name.as_str(), c.json, c.subnet, c.seed), ("ci", true, [10, 9, 8], 5));
        for bad in
            ["", "nope", "ci --subnet 10.9", "ci --subnet 10.9.300", "ci --seed x", "ci extra", "--file"]
        {
            assert!(parse_run(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
