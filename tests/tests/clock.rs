//! One participant's wrong clock does not halt the ledger (real processes): on a live 4-node
//! network, one node is restarted with its wall clock a minute ahead and another an hour behind
//! (libfaketime preloaded into the node's own process, `FAKETIME_DONT_FAKE_MONOTONIC=1`, so
//! timers still run at the real pace). The
//! network keeps committing a custody flow; each skewed node says in its log by how much its
//! clock is off, and shows it in `kp_clock_offset_seconds` and `kpledger status`. Skipped, with
//! the reason printed, where `faketime` is not installed (`scripts/test.sh` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// libfaketime's library, if this machine has it (Debian's `faketime` package). It is
/// preloaded into the node itself rather than run through the `faketime` wrapper, which forks:
/// the node's pid must be the one the test network kills.
fn libfaketime() -> Option<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", "ls /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1 2>/dev/null"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().next().map(str::to_owned)
}

/// The node's Prometheus metrics, as text.
fn metrics(net: &Net, node: &str) -> String {
    let config = std::fs::read_to_string(net.node_dir(node).join("node.toml")).unwrap();
    let line = config.lines().find(|l| l.starts_with("metrics = ")).unwrap();
    let addr = line.trim_start_matches("metrics = ").trim_matches('"');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

/// The value of `kp_clock_offset_seconds` on `node`.
fn offset_metric(net: &Net, node: &str) -> Option<f64> {
    let text = metrics(net, node);
    let line = text.lines().find(|l| l.starts_with("kp_clock_offset_seconds "))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Blocks committed per second on `node` over `span`.
fn commit_rate(net: &Net, node: &str, span: Duration) -> f64 {
    let height = |n: &str| net.status(n).and_then(|s| s["height"].as_u64()).unwrap_or(0);
    let (h0, t0) = (height(node), Instant::now());
    std::thread::sleep(span);
    let blocks = height(node).saturating_sub(h0);
    #[allow(clippy::cast_precision_loss, clippy::float_arithmetic)]
    let rate = blocks as f64 / t0.elapsed().as_secs_f64();
    rate
}

#[test]
fn a_network_with_a_clock_a_minute_ahead_and_one_an_hour_behind_keeps_committing() {
    let Some(lib) = libfaketime() else {
        println!("SKIPPED: libfaketime is not installed here; scripts/test.sh installs Debian's faketime");
        return;
    };
    let net = Net::start(4, 0);
    let nodes = net.nodes();
    let (ahead, behind) = (nodes[1].clone(), nodes[2].clone());
    let long = Duration::from_secs(120);
    net.converge(2, long);
    let before = commit_rate(&net, &nodes[0], Duration::from_secs(20));

    for (node, shift) in [(&ahead, "+60s"), (&behind, "-3600s")] {
        net.kill(node);
        net.restart_with(node, &[("LD_PRELOAD", &lib), ("FAKETIME", shift), ("FAKETIME_DONT_FAKE_MONOTONIC", "1")]);
    }
    // A custody flow commits, each step through a node (the skewed ones included).
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let number = format!("BW-{year}-{:06}", 7);
    let file = certificate(work.path(), &number);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", &ahead);
    assert_eq!(issued["outcome"], "committed", "{issued}");
    let sealed = net.submit(
        &["seal", &number, "--seal", "BW-SEAL-7", "--port-of-exit", "Gaborone", "--wait"],
        "BW",
        "exporting",
        &behind,
    );
    assert_eq!(sealed["outcome"], "committed", "{sealed}");
    let h = sealed["height"].as_u64().unwrap();
    net.converge(h, long);
    let during = commit_rate(&net, &nodes[0], Duration::from_secs(20));
    println!("blocks per second: {before:.2} with every clock right, {during:.2} with {ahead} +60 s and {behind} -1 h");
    assert!(during > 0.0, "the network stopped committing with the skewed clocks");

    // Each skewed node knows, says so in its log, its metric and its status.
    for (node, seconds, direction) in [(&ahead, 60_i64, "ahead of"), (&behind, -3600, "behind")] {
        #[allow(clippy::cast_precision_loss)]
        let expected = seconds as f64;
        let offset = wait_for(&format!("{node} to measure its offset"), long, || {
            offset_metric(&net, node).filter(|o| (o - expected).abs() < 2.0)
        });
        println!("{node}: kp_clock_offset_seconds {offset}");
        let status = net.status(node).unwrap();
        let ms = status["clock_offset_ms"].as_i64().unwrap();
        assert!((ms - seconds * 1000).abs() < 2_000, "{node}: status {status}");
        assert!(status["clock_off_since_ms"].as_u64().unwrap() > 0, "{node}: {status}");
        let text = ok(&["status", "--node", &net.api(node)]);
        assert!(text.contains(direction) && text.contains("OFF"), "{node}: {text}");
        let log = net.log(node);
        let warning = log.lines().find(|l| l.contains("this node's clock is") && l.contains(direction));
        assert!(
            warning.is_some(),
            "{node}'s log does not warn of its clock:\n{}",
            &log[log.len().saturating_sub(3000)..]
        );
        println!("{node} logs: {}", warning.unwrap());
    }
    // The nodes with a right clock measure theirs as right.
    let right = offset_metric(&net, &nodes[0]).unwrap();
    assert!(right.abs() < 2.0, "{}: offset {right}", nodes[0]);
}
