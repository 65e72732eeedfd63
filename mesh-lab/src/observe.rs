//! What the lab reads from each node over HTTP (`GET /`, `/status`, `/topology` of the
//! counter app) and when the nodes agree.

use std::time::Duration;

use crate::workload::agent;

/// How long one observation of one node may take.
const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// One node's view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    /// The counter's value.
    pub value: i64,
    /// Peers it knows besides itself.
    pub peers: usize,
    /// Its established connections.
    pub established: usize,
    /// Its topology: one `name uid version` line per record.
    pub topology: String,
}

fn get(agent: &ureq::Agent, url: &str) -> Result<String, String> {
    agent
        .get(url)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
        .map_err(|e| format!("GET {url}: {e}"))
}

fn field<T: std::str::FromStr>(text: &str, key: &str) -> Result<T, String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no `{key}` in {text:?}"))
}

/// Reads the view of the node serving HTTP at `base` (`http://ip:port`).
pub fn view(base: &str) -> Result<View, String> {
    let agent = agent(OBSERVE_TIMEOUT);
    let counter = get(&agent, &format!("{base}/"))?;
    let value = counter
        .strip_prefix("get => ")
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{base}: unexpected answer {counter:?}"))?;
    let status = get(&agent, &format!("{base}/status"))?;
    let topology = get(&agent, &format!("{base}/topology"))?;
    Ok(View { value, peers: field(&status, "peers")?, established: field(&status, "established")?, topology })
}

/// Whether `views` (every node's) show one topology of `n` peers: each node knows the
/// `n - 1` others, with no placeholder among them, and all hold the same versions.
pub fn topology_agrees(views: &[Result<View, String>], n: usize) -> bool {
    let Some(Ok(first)) = views.first() else { return false };
    let lines: Vec<&str> = first.topology.lines().collect();
    lines.len() == n
        && lines.iter().all(|l| l.split(' ').nth(1).is_some_and(|uid| uid != "0"))
        && views.iter().all(|v| v.as_ref().is_ok_and(|v| v.topology == first.topology && v.peers == n - 1))
}

/// The value every node shows, if they all show the same one.
pub fn common_value(views: &[Result<View, String>]) -> Option<i64> {
    let first = views.first()?.as_ref().ok()?.value;
    views.iter().all(|v| v.as_ref().is_ok_and(|v| v.value == first)).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(value: i64, peers: usize, topology: &str) -> Result<View, String> {
        Ok(View { value, peers, established: peers, topology: topology.into() })
    }

    #[test]
    fn agreement_needs_every_node_and_one_table() {
        let t = "02:00:00:00:00:00 5 3\n02:00:00:00:00:01 9 4\n";
        assert!(topology_agrees(&[v(1, 1, t), v(1, 1, t)], 2));
        assert!(!topology_agrees(&[v(1, 1, t), v(1, 1, t)], 3), "a peer is missing");
        assert!(!topology_agrees(
            &[v(1, 1, t), v(1, 1, "02:00:00:00:00:00 5 3\n02:00:00:00:00:01 9 5\n")],
            2
        ));
        assert!(!topology_agrees(&[v(1, 1, t), Err("down".into())], 2));
        assert!(
            !topology_agrees(&[v(1, 1, "a 5 3\nb 0 0\n"), v(1, 1, "a 5 3\nb 0 0\n")], 2),
            "a placeholder"
        );
        assert_eq!(common_value(&[v(4, 1, t), v(4, 1, t)]), Some(4));
        assert_eq!(common_value(&[v(4, 1, t), v(3, 1, t)]), None);
        assert_eq!(field::<usize>("peers 7\nestablished 6\n", "established"), Ok(6));
        assert!(field::<usize>("peers 7\n", "own").is_err());
    }
}
