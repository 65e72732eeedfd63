//! The `mesh-sim` command line, run as a user runs it: the built binary.

use assert_cmd::Command;

fn mesh_sim() -> Command {
    Command::cargo_bin("mesh-sim").expect("the mesh-sim binary is built")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn run_prints_the_summary_and_writes_plots() {
    let dir = std::env::temp_dir().join(format!("mesh-sim-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = mesh_sim().args(["run", "partition-heal", "--plots"]).arg(&dir).arg("--png").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = stdout(&out);
    for row in [
        "final heal",
        "convergence (one mesh)",
        "broadcast latency p50",
        "messages per peer",
        "speed-up over real time",
    ] {
        assert!(text.contains(row), "no {row:?} in:\n{text}");
    }
    assert!(text.contains("invariant topology_agreement   held (8 peers)"), "{text}");
    assert!(
        text.contains("invariant slow_reader          not applicable: no peer stopped reading"),
        "{text}"
    );
    for stem in ["full_topology", "broadcast_latency", "bytes_per_second"] {
        for ext in ["svg", "png"] {
            let f = dir.join(format!("{stem}.{ext}"));
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len > 1000, "{} missing or empty", f.display());
        }
    }
    let svg = std::fs::read_to_string(dir.join("full_topology.svg")).unwrap();
    assert!(svg.contains("<svg") && svg.contains("peers with the full topology"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn json_parses_and_is_identical_across_runs() {
    let run = || mesh_sim().args(["run", "restart", "--seed", "9", "--json"]).output().unwrap();
    let (a, b) = (run(), run());
    assert!(a.status.success());
    assert_eq!(stdout(&a), stdout(&b));
    let v: serde_json::Value = serde_json::from_str(&stdout(&a)).expect("valid JSON");
    assert_eq!(v["seed"], 9);
    assert_eq!(v["scenario"], "restart");
    assert!(v["violations"].as_array().unwrap().is_empty());
    assert_eq!(v["invariants"]["exactly_once"]["verdict"], "held");
    assert!(v["invariants"]["exactly_once"]["examined"].as_u64().unwrap() > 0);
    assert_eq!(v["invariants"]["slow_reader"]["verdict"], "not_applicable");
    assert_eq!(v["invariants"]["slow_reader"]["reason"], "no peer stopped reading");
    assert!(v.get("wall").is_none(), "wall time would make runs differ");
}

#[test]
fn replay_and_explore_work_from_the_command_line() {
    let out = mesh_sim().args(["replay", "12", "--trace", "0"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("seed 12"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("n0  ConnectionEstablished"));
    let out = mesh_sim()
        .args(["explore", "--seeds", "8", "--jobs", "2", "--disable", "crash,intruder"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("explored 8 seeds"), "{text}");
    assert!(text.contains("crash=0") && text.contains("intruder=0"), "{text}");
}

#[test]
fn bad_input_exits_with_status_two_and_a_reason() {
    let out = mesh_sim().args(["run", "no-such-scenario"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown scenario") && err.contains("partition-heal"), "{err}");

    let file = std::env::temp_dir().join(format!("mesh-sim-bad-{}.toml", std::process::id()));
    std::fs::write(&file, "nodes = \"many\"\n").unwrap();
    let out = mesh_sim().args(["run", "--file"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("malformed scenario"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let _ = std::fs::remove_file(&file);

    let out = mesh_sim().args(["explore", "--seeds", "1", "--disable", "meteor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
