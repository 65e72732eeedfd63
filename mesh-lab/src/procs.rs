//! The counter processes: one per namespace, the tokio and the smol example, protocol
//! versions 2 and 3 mixed; started, killed, restarted, frozen and continued by the lab.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;

use crate::net::Net;

/// The port every node serves the mesh on (each has its own namespace).
pub const MESH_PORT: u16 = 6783;
/// The port every node serves HTTP on.
pub const HTTP_PORT: u16 = 8080;

/// Which example a node runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Adapter {
    /// `mesh-tokio`'s `counter`.
    Tokio,
    /// `mesh-async-std`'s `counter-smol` (async-io under smol).
    Smol,
}

/// Where the two example binaries are.
#[derive(Clone, Debug)]
pub struct Binaries {
    /// The tokio counter.
    pub tokio: PathBuf,
    /// The smol counter.
    pub smol: PathBuf,
}

impl Binaries {
    /// The examples in `dir` (`target/release/examples` when built with
    /// `cargo build --release -p mesh-tokio --example counter -p mesh-async-std --example
    /// counter-smol`); an error naming that command if either is missing.
    pub fn in_dir(dir: &Path) -> Result<Binaries, String> {
        let b = Binaries { tokio: dir.join("counter"), smol: dir.join("counter-smol") };
        for p in [&b.tokio, &b.smol] {
            if !p.is_file() {
                return Err(format!(
                    "{} is missing: build the examples with `cargo build --release -p mesh-tokio --example \
                     counter -p mesh-async-std --example counter-smol`, or pass --bin-dir",
                    p.display()
                ));
            }
        }
        Ok(b)
    }
}

/// One counter peer of the lab.
#[derive(Debug)]
pub struct Node {
    /// Its index in the schedule.
    pub index: usize,
    /// Its peer name.
    pub name: String,
    /// The example it runs.
    pub adapter: Adapter,
    /// The highest protocol version it offers: every third node is version-2-only.
    pub max_protocol: u8,
    /// How many times it was started.
    pub starts: u32,
    child: Option<Child>,
    args: Vec<String>,
    log: PathBuf,
}

impl Node {
    /// Node `index` of `nodes`: even ones run tokio, odd ones smol; those with index 2
    /// modulo 3 offer only version 2, so the mix holds all four pairs from 6 nodes up.
    /// Each dials nodes 0 and 1 (but itself) and keeps its own count in a state file in
    /// `dir`.
    pub fn new(index: usize, net: &Net, password: &str, dir: &Path) -> Node {
        let adapter = if index % 2 == 0 { Adapter::Tokio } else { Adapter::Smol };
        let max_protocol = if index % 3 == 2 { 2 } else { 3 };
        let name = format!("02:00:00:00:{:02x}:{:02x}", index / 256, index % 256);
        let mut args = vec![
            "--hwaddr".into(),
            name.clone(),
            "--nickname".into(),
            format!("lab{index}"),
            "--mesh".into(),
            format!("{}:{MESH_PORT}", net.ip(index)),
            "--http".into(),
            format!("0.0.0.0:{HTTP_PORT}"),
            "--password".into(),
            password.into(),
            "--max-protocol".into(),
            max_protocol.to_string(),
            "--state".into(),
            dir.join(format!("node{index}.state")).display().to_string(),
        ];
        for seed in (0..2).filter(|&s| s != index) {
            args.extend(["--peer".into(), format!("{}:{MESH_PORT}", net.ip(seed))]);
        }
        let log = dir.join(format!("node{index}.log"));
        Node { index, name, adapter, max_protocol, starts: 0, child: None, args, log }
    }

    /// Starts the process in its namespace (`ip netns exec` execs it, so the child's pid
    /// is the counter's), its output appended to its log.
    pub fn start(&mut self, bins: &Binaries, net: &Net) -> Result<(), String> {
        let bin = match self.adapter {
            Adapter::Tokio => &bins.tokio,
            Adapter::Smol => &bins.smol,
        };
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", net.namespace(self.index)])
            .arg(bin)
            .args(&self.args)
            .env("RUST_LOG", std::env::var("MESH_LAB_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting node {}: {e}", self.index))?;
        self.child = Some(child);
        self.starts += 1;
        Ok(())
    }

    fn pid(&self) -> Option<Pid> {
        self.child.as_ref().map(|c| Pid::from_raw(c.id() as i32))
    }

    /// SIGKILL, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn freeze(&self, stop: bool) -> Result<(), String> {
        let pid = self.pid().ok_or_else(|| format!("node {} is not running", self.index))?;
        kill(pid, if stop { Signal::SIGSTOP } else { Signal::SIGCONT })
            .map_err(|e| format!("node {}: {e}", self.index))
    }

    /// `None` while it runs (or is stopped); how it ended if it exited, or `"not started"`.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.as_mut().map(Child::try_wait) {
            None => Some("not started".into()),
            Some(Ok(None)) => None,
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
        }
    }

    /// Its resident memory in KiB (VmRSS), if it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
    }

    /// The last `lines` lines of its log, for a failure report.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A stopped process dies of SIGKILL too.
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_holds_every_adapter_and_version_pair() {
        let net = Net::unmade([10, 213, 0]);
        let dir = Path::new("/nonexistent");
        let nodes: Vec<Node> = (0..6).map(|i| Node::new(i, &net, "pw", dir)).collect();
        let mut pairs: Vec<_> = nodes.iter().map(|n| (n.adapter as u8, n.max_protocol)).collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 4, "{pairs:?}");
        let names: std::collections::BTreeSet<_> = nodes.iter().map(|n| n.name.clone()).collect();
        assert_eq!(names.len(), 6, "names are distinct");
        let peers = |n: &Node| -> Vec<String> {
            n.args.windows(2).filter(|w| w[0] == "--peer").map(|w| w[1].clone()).collect()
        };
        assert_eq!(peers(&nodes[0]), ["10.213.0.3:6783"], "node 0 dials node 1, not itself");
        assert_eq!(peers(&nodes[3]), ["10.213.0.2:6783", "10.213.0.3:6783"]);
    }
}
