//! The lab's network: a bridge in the root namespace, and per node a network namespace
//! joined to it by a veth pair, made and changed with iproute2's `ip` and `tc`.
//!
//! Every name carries the lab's process id (`meshlab-<pid>-<i>` for namespaces,
//! `mlb<pid>` for the bridge, `ml<pid>v<i>` for veths), so the lab touches only what it
//! made, and [`remove_leftovers`] can tell a dead run's leftovers from a live run's.

use std::net::Ipv4Addr;
use std::process::Command;

/// A failed `ip` or `tc` command.
#[derive(Debug, thiserror::Error)]
#[error("`{command}` failed: {message}")]
pub struct NetError {
    /// The command line.
    pub command: String,
    /// Its standard error, or why it did not run.
    pub message: String,
}

/// Runs `prog args`, failing with its standard error.
fn run(prog: &str, args: &[&str]) -> Result<(), NetError> {
    let command = format!("{prog} {}", args.join(" "));
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| NetError { command: command.clone(), message: e.to_string() })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError { command, message: String::from_utf8_lossy(&out.stderr).trim().to_owned() })
    }
}

/// The kind of route that cuts a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Sends fail at once (`prohibit`: the sender gets an error).
    Prohibit,
    /// Sends vanish (`blackhole`).
    Blackhole,
}

impl Cut {
    fn keyword(self) -> &'static str {
        match self {
            Cut::Prohibit => "prohibit",
            Cut::Blackhole => "blackhole",
        }
    }
}

/// The lab's network; removed when dropped.
#[derive(Debug)]
pub struct Net {
    tag: u32,
    subnet: [u8; 3],
    bridge: Option<String>,
    namespaces: Vec<String>,
}

impl Net {
    /// A bridge at `subnet.1/24` and `nodes` namespaces at `subnet.2` onwards. Whatever was
    /// made before a failure is removed again.
    pub fn create(nodes: usize, subnet: [u8; 3]) -> Result<Net, NetError> {
        let tag = std::process::id();
        let mut net = Net { tag, subnet, bridge: None, namespaces: Vec::new() };
        let bridge = format!("mlb{tag}");
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        net.bridge = Some(bridge.clone());
        let host = format!("{}/24", net.host_ip());
        run("ip", &["addr", "add", &host, "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for i in 0..nodes {
            net.add_node(i, &bridge)?;
        }
        Ok(net)
    }

    fn add_node(&mut self, i: usize, bridge: &str) -> Result<(), NetError> {
        let ns = format!("meshlab-{}-{i}", self.tag);
        run("ip", &["netns", "add", &ns])?;
        self.namespaces.push(ns.clone());
        let (host, inner) = (self.host_veth(i), format!("ml{}p{i}", self.tag));
        run("ip", &["link", "add", &host, "type", "veth", "peer", "name", &inner])?;
        run("ip", &["link", "set", &inner, "netns", &ns])?;
        run("ip", &["-n", &ns, "link", "set", &inner, "name", "eth0"])?;
        let addr = format!("{}/24", self.ip(i));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        run("ip", &["link", "set", &host, "master", bridge, "up"])
    }

    /// A network that was never made, for tests of what depends only on addresses.
    #[cfg(test)]
    pub(crate) fn unmade(subnet: [u8; 3]) -> Net {
        Net { tag: std::process::id(), subnet, bridge: None, namespaces: Vec::new() }
    }

    /// The bridge's address, which the lab uses to reach every node.
    pub fn host_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 1)
    }

    /// Node `i`'s address.
    pub fn ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, (i + 2) as u8)
    }

    /// Node `i`'s namespace.
    pub fn namespace(&self, i: usize) -> &str {
        &self.namespaces[i]
    }

    fn host_veth(&self, i: usize) -> String {
        format!("ml{}v{i}", self.tag)
    }

    /// Brings node `i`'s link down or up (the bridge side: the node sees no carrier).
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), NetError> {
        run("ip", &["link", "set", &self.host_veth(i), if up { "up" } else { "down" }])
    }

    /// In node `i`'s namespace, adds (or with `add` false removes) a route of kind `cut`
    /// to each of `to`.
    pub fn set_cut(&self, i: usize, to: &[usize], cut: Cut, add: bool) -> Result<(), NetError> {
        for &j in to {
            let dest = format!("{}/32", self.ip(j));
            let verb = if add { "add" } else { "del" };
            run("ip", &["-n", self.namespace(i), "route", verb, cut.keyword(), &dest])?;
        }
        Ok(())
    }

    /// Limits node `i`'s link to `kbit` kbit/s each way, or lifts the limit (`None`).
    pub fn set_bandwidth(&self, i: usize, kbit: Option<u32>) -> Result<(), NetError> {
        let host = self.host_veth(i);
        let rate = kbit.map(|k| format!("{k}kbit"));
        // Towards the node on the bridge side, from it inside its namespace.
        for (prefix, dev) in [(&[][..], host.as_str()), (&["-n", self.namespace(i)][..], "eth0")] {
            let mut args = prefix.to_vec();
            match &rate {
                // A burst of a few full frames and a short queue: a narrow link, not a
                // deep buffer that hides it.
                Some(r) => args.extend(["qdisc", "replace", "dev", dev, "root", "tbf", "rate", r]),
                None => args.extend(["qdisc", "del", "dev", dev, "root"]),
            }
            if rate.is_some() {
                args.extend(["burst", "16kb", "latency", "200ms"]);
            }
            run("tc", &args)?;
        }
        Ok(())
    }

    /// Removes every veth pair, namespace and the bridge; errors are reported and passed
    /// over, so one failure does not leave the rest behind.
    pub fn remove(&mut self) {
        for (i, ns) in std::mem::take(&mut self.namespaces).into_iter().enumerate().rev() {
            // The pair first: a namespace outlives `ip netns del` while a socket of a
            // killed process still holds it (an orphaned connection retrying its FIN
            // into a cut route can for minutes), and with it the pair's bridge end.
            let _ = run("ip", &["link", "del", &self.host_veth(i)]);
            if let Err(e) = run("ip", &["netns", "del", &ns]) {
                eprintln!("mesh-lab: cleaning up: {e}");
            }
        }
        if let Some(bridge) = self.bridge.take()
            && let Err(e) = run("ip", &["link", "del", &bridge])
        {
            eprintln!("mesh-lab: cleaning up: {e}");
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Whether a route already covers `subnet.0/24`: the lab refuses to shadow a network the
/// machine uses (or another live run's).
pub fn subnet_in_use(subnet: [u8; 3]) -> Result<bool, NetError> {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .map_err(|e| NetError { command: "ip -4 route show table all".into(), message: e.to_string() })?;
    let prefix = format!("{}.{}.{}.", subnet[0], subnet[1], subnet[2]);
    Ok(String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.split_whitespace().any(|w| w.starts_with(&prefix))
            && !l.starts_with("local")
            && !l.starts_with("broadcast")
    }))
}

/// The run id in a lab-made name, if it is one: `meshlab-<pid>-<i>`, `mlb<pid>` or
/// `ml<pid>v<i>`.
fn owner(name: &str) -> Option<u32> {
    let split = |rest: &str, sep: char| -> Option<u32> {
        let (pid, i) = rest.split_once(sep)?;
        i.parse::<usize>().ok()?;
        pid.parse().ok()
    };
    if let Some(rest) = name.strip_prefix("meshlab-") {
        split(rest, '-')
    } else if let Some(rest) = name.strip_prefix("mlb") {
        rest.parse().ok()
    } else {
        split(name.strip_prefix("ml")?, 'v')
    }
}

/// Removes the namespaces and bridges of lab runs whose process is gone (a run killed by
/// SIGKILL cannot clean up after itself); returns what it removed.
pub fn remove_leftovers() -> Vec<String> {
    let listed = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let dead =
        |pid: u32| pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists();
    let mut removed = Vec::new();
    for line in listed(&["netns", "list"]).lines() {
        let ns = line.split_whitespace().next().unwrap_or("");
        if owner(ns).is_some_and(dead) && run("ip", &["netns", "del", ns]).is_ok() {
            removed.push(format!("namespace {ns}"));
        }
    }
    for line in listed(&["-o", "link", "show"]).lines() {
        // `7: mlb1234: <BROADCAST,...` or `49: ml1234v0@if48: <...`
        let name = line.split(':').nth(1).map(str::trim).unwrap_or("");
        let name = name.split('@').next().unwrap_or("");
        if owner(name).is_some_and(dead) && run("ip", &["link", "del", name]).is_ok() {
            removed.push(format!("link {name}"));
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lab_made_names_have_an_owner() {
        assert_eq!(owner("meshlab-1234-7"), Some(1234));
        assert_eq!(owner("mlb99"), Some(99));
        assert_eq!(owner("ml99v12"), Some(99));
        for other in
            ["meshlab-1234", "meshlab-x-1", "mlbr0", "docker0", "eth0", "mlb", "meshlab-12-x", "ml99v", "mlx"]
        {
            assert_eq!(owner(other), None, "{other}");
        }
    }

    #[test]
    fn addresses_start_after_the_bridge() {
        // Nothing made, so dropping it removes nothing. The largest Linux pid has 7 digits.
        let net = Net { tag: 4_194_304, subnet: [10, 213, 0], bridge: None, namespaces: Vec::new() };
        assert_eq!(net.host_ip(), Ipv4Addr::new(10, 213, 0, 1));
        assert_eq!(net.ip(0), Ipv4Addr::new(10, 213, 0, 2));
        assert_eq!(net.ip(crate::schedule::MAX_NODES - 1), Ipv4Addr::new(10, 213, 0, 201));
        let longest = net.host_veth(crate::schedule::MAX_NODES - 1);
        assert!(longest.len() <= 15, "{longest}: interface names have at most 15 bytes");
    }
}
