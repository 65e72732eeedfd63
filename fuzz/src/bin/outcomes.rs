//! Runs every input of a corpus directory through the `handshake`, `handshake_v3` or
//! `node` harness and counts what they reach: finished handshakes, each failure, each
//! reason a connection closed. It shows whether fuzzing (not only the seeds) gets to the
//! wrong password, the frames that fail to open and the replays:
//!
//!   target/<host>/release/outcomes handshake fuzz/corpus/handshake
//!
//! Files named `seed-*` are counted apart from what the fuzzer found. Like `seeds`, it
//! must come from the fuzzing build.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use mesh_fuzz::handshake::{self as hs, Password, Step};
use mesh_fuzz::handshake_v3 as v3;
use mesh_fuzz::node;
use mesh_proto::CloseReason;

/// The variant name of a `Debug` rendering, with the variant inside it for wrappers.
fn kind(debug: String) -> String {
    let end = debug.find([' ', '{', '(']).unwrap_or(debug.len());
    let (outer, rest) = debug.split_at(end);
    match rest.strip_prefix('(') {
        Some(inner) if inner.starts_with(|c: char| c.is_ascii_uppercase()) => {
            let end = inner.find([' ', '{', '(', ')']).unwrap_or(inner.len());
            format!("{outer}({})", &inner[..end])
        }
        _ => outer.to_owned(),
    }
}

fn handshake_outcomes(input: &hs::Input) -> Vec<String> {
    let sealed = input.steps.iter().any(|s| matches!(s, Step::Frame(_) | Step::Flip { .. }));
    report_outcomes(&hs::run(input), input.ours != Password::None, sealed)
}

fn v3_outcomes(input: &v3::Input) -> Vec<String> {
    let sealed = input.steps.iter().any(|s| matches!(s, v3::Step::Frame(_) | v3::Step::Flip { .. }));
    let r = v3::run(input);
    // Without a password version 3 still seals.
    let encrypted = r.finished.is_some_and(|(_, security)| security.encrypted());
    let mut out = report_outcomes(&r, encrypted, sealed);
    if let Some((version, security)) = r.finished {
        out.push(format!("handshake done: version {version}, {security:?}"));
    }
    if input.raw.is_some() {
        out.push("raw mode".to_owned());
    }
    out
}

/// What a handshake report reaches; `encrypted`: frames are sealed, `sealed`: the input
/// had the remote seal some.
fn report_outcomes(r: &hs::Report, encrypted: bool, sealed: bool) -> Vec<String> {
    let mut out = Vec::new();
    if r.done {
        out.push("handshake done".to_owned());
    }
    if let Some(e) = &r.failed {
        out.push(format!("handshake failed: {}", kind(format!("{e:?}"))));
    }
    if let Some(s) = &r.stopped {
        out.push(format!("stopped reading: {}", kind(format!("{s:?}"))));
    }
    if r.frames > 0 {
        out.push("frames opened after the handshake".to_owned());
        // Opened although the remote sealed none of them: the fuzzer forged the tags.
        if encrypted && !sealed {
            out.push("forged frames opened (encrypted, no Frame or Flip step)".to_owned());
        }
    }
    out
}

fn node_outcomes(input: &node::Input) -> Vec<String> {
    let r = node::run(input);
    let mut out = Vec::new();
    if r.established > 0 {
        out.push("connection established".to_owned());
    }
    for c in &r.closes {
        let reason = match c {
            CloseReason::Handshake(e) => format!("Handshake({})", kind(format!("{e:?}"))),
            CloseReason::Crypto(e) => format!("Crypto({})", kind(format!("{e:?}"))),
            other => kind(format!("{other:?}")),
        };
        out.push(format!("closed: {reason}"));
    }
    if r.checked > 0 {
        out.push("node frames checked by an honest remote".to_owned());
    }
    out
}

fn main() {
    if !cfg!(fuzzing) {
        eprintln!("outcomes: build with --cfg fuzzing (cargo fuzz build), as the targets are");
        std::process::exit(2);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [target, dir] = &args[..] else {
        eprintln!("usage: outcomes handshake|handshake_v3|node DIR");
        std::process::exit(2);
    };
    let run: fn(&[u8]) -> Vec<String> = match target.as_str() {
        "handshake" => |d| handshake_outcomes(&hs::Input::from_bytes(d)),
        "handshake_v3" => |d| v3_outcomes(&v3::Input::from_bytes(d)),
        "node" => |d| node_outcomes(&node::Input::from_bytes(d)),
        _ => {
            eprintln!("outcomes: no harness for {target}");
            std::process::exit(2);
        }
    };
    // outcome -> (seeds, found by the fuzzer)
    let mut tally: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let (mut seeds, mut found) = (0, 0);
    let entries = fs::read_dir(Path::new(dir)).unwrap_or_else(|e| panic!("{dir}: {e}"));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let seed = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("seed-"));
        if seed {
            seeds += 1
        } else {
            found += 1
        }
        let mut outcomes = run(&data);
        outcomes.sort();
        outcomes.dedup();
        for o in outcomes {
            let t = tally.entry(o).or_default();
            if seed { t.0 += 1 } else { t.1 += 1 }
        }
    }
    println!("{target}: {seeds} seeds, {found} inputs found by fuzzing; inputs reaching each outcome:");
    println!("{:>7} {:>7}  outcome", "seeds", "found");
    for (o, (s, f)) in tally {
        println!("{s:>7} {f:>7}  {o}");
    }
}
