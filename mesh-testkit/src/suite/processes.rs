//! Counter examples as separate processes (any mix of adapters' `counter` examples):
//! started on free ports, bootstrapped from the first, POSTed to at several peers, and
//! expected to agree. Blocking code with std sockets, so it needs no runtime.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A child process killed when dropped, so a failed assertion leaves none behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The path of example `name` of package `package` in this build's target directory,
/// built first if `cargo test` did not build it (it does not when one test target is
/// selected, nor another package's examples).
pub fn example(package: &str, name: &str) -> PathBuf {
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/<profile>");
    let bin = profile_dir.join("examples").join(name);
    if !bin.exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "-p", package, "--example", name]);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo runs").success(), "building example {name} failed");
    }
    assert!(bin.exists(), "{} was not built", bin.display());
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

/// One HTTP request to 127.0.0.1:`port`; the response body, trimmed.
fn http(port: u16, method: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    resp.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

/// Starts one counter process per binary (all with one password, each after the first
/// bootstrapped from the first), POSTs once to each, and asserts that every process
/// answers `get => N` for N the number of processes within 20 seconds.
pub fn counter_processes_converge(bins: &[PathBuf]) {
    let n = bins.len();
    let mesh: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let web: Vec<u16> = (0..n).map(|_| free_port()).collect();
    let mut children = Vec::new();
    for (i, bin) in bins.iter().enumerate() {
        let mut cmd = Command::new(bin);
        cmd.args(["--hwaddr", &format!("00:00:00:00:00:{:02x}", i + 1)])
            .args(["--nickname", &format!("proc{i}")])
            .args(["--mesh", &format!("127.0.0.1:{}", mesh[i])])
            .args(["--http", &format!("127.0.0.1:{}", web[i])])
            .args(["--password", "separate processes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if i > 0 {
            cmd.args(["--peer", &format!("127.0.0.1:{}", mesh[0])]);
        }
        children.push(Killed(cmd.spawn().expect("counter starts")));
    }
    let start = Instant::now();
    for (port, bin) in web.iter().zip(bins) {
        while http(*port, "GET").is_none() {
            assert!(start.elapsed() < Duration::from_secs(20), "{} on :{port} never answered", bin.display());
            sleep(Duration::from_millis(100));
        }
    }
    // The first POST lands before anyone else has incremented.
    assert_eq!(http(web[0], "POST").as_deref(), Some("incr => 1"));
    for port in &web[1..] {
        let r = http(*port, "POST").expect("POST answered");
        assert!(r.starts_with("incr => "), "{r}");
    }
    let want = format!("get => {n}");
    let start = Instant::now();
    loop {
        let views: Vec<String> = web.iter().map(|p| http(*p, "GET").unwrap_or_default()).collect();
        if views.iter().all(|v| *v == want) {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "views never converged: {views:?}");
        sleep(Duration::from_millis(100));
    }
    drop(children);
}
