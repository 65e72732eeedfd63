//! The counter example started three times as separate processes converges after POSTs
//! to different peers. `cargo test` builds the example before running this.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/processes-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().join("examples").join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn http(port: u16, method: &str) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let req = format!("{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.ok()?;
    resp.split("\r\n\r\n").nth(1).map(|b| b.trim().to_owned())
}

#[tokio::test]
async fn three_counter_processes_converge() {
    let bin = example("counter");
    if !bin.exists() {
        // `cargo test` builds examples, but not when one test target is selected.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "mesh-tokio", "--example", "counter"])
            .status()
            .unwrap();
        assert!(status.success());
    }
    assert!(bin.exists(), "{} was not built", bin.display());
    let mesh: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let web: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut children = Vec::new();
    for i in 0..3 {
        let mut cmd = Command::new(&bin);
        cmd.args(["--hwaddr", &format!("00:00:00:00:00:0{}", i + 1)])
            .args(["--nickname", &format!("proc{i}")])
            .args(["--mesh", &format!("127.0.0.1:{}", mesh[i])])
            .args(["--http", &format!("127.0.0.1:{}", web[i])])
            .args(["--password", "three processes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if i > 0 {
            cmd.args(["--peer", &format!("127.0.0.1:{}", mesh[0])]);
        }
        children.push(Killed(cmd.spawn().unwrap()));
    }
    // Wait for every HTTP server to answer.
    let start = Instant::now();
    for port in &web {
        while http(*port, "GET").await.is_none() {
            assert!(start.elapsed() < Duration::from_secs(20), "counter on :{port} never answered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // POSTs to different peers.
    assert_eq!(http(web[0], "POST").await.as_deref(), Some("incr => 1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for port in [web[1], web[2], web[2]] {
        let r = http(port, "POST").await.unwrap();
        assert!(r.starts_with("incr => "), "{r}");
    }
    let start = Instant::now();
    loop {
        let mut views = Vec::new();
        for port in &web {
            views.push(http(*port, "GET").await.unwrap_or_default());
        }
        if views.iter().all(|v| v == "get => 4") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "views never converged: {views:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(children);
}
