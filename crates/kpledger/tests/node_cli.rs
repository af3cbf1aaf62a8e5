//! `kpledger node` as an operator runs it: a real process on loopback that serves its status,
//! stops cleanly on SIGTERM and starts again on the same data; bad configurations are refused
//! with the field at fault.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kpledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpledger")).args(args).output().expect("kpledger runs")
}

/// A client command to the test network in `net`: its CA and identities (`KP_TESTNET`), read
/// as a reviewer unless `--as` says otherwise.
fn client(net: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpledger")).env("KP_TESTNET", net).args(args).output().expect("kpledger runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A base port for this test process (three ports per node), away from other test runs and
/// below the kernel's ephemeral range (32768 and up), which `testnet init` refuses.
fn base_port() -> u16 {
    20_000 + u16::try_from(std::process::id() % 4_000).unwrap() * 3
}

fn start(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kpledger"))
        .args(["node", "--config", path(config)])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// The node's status once its API answers (at most 20 s).
fn status_when_up(net: &Path, api: &str, log: &Path) -> Value {
    let started = Instant::now();
    loop {
        let out = client(net, &["--json", "status", "--node", api]);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the node did not answer: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the node did not stop within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_node_process_serves_its_status_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let port = base_port();
    let init =
        kpledger(&["testnet", "init", "--participants", "1", "--dir", path(&net), "--base-port", &port.to_string()]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let config = net.join("BW/node.toml");
    let api = format!("127.0.0.1:{}", port + 1);
    let log = dir.path().join("node.log");

    let node = start(&config, &log);
    let s = status_when_up(&net, &api, &log);
    assert_eq!(s["me"], "BW");
    assert_eq!(s["active_participants"], serde_json::json!(["BW"]));
    assert!(s["chain_id"].as_str().unwrap().starts_with("kp-local-"));
    let text = client(&net, &["status", "--node", &api]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("node of BW"));
    // The API is served over TLS only: a client without the network's CA is told what to pass.
    let bare = kpledger(&["status", "--node", &api]);
    assert!(!bare.status.success());
    assert!(
        String::from_utf8_lossy(&bare.stderr).contains("--testnet DIR"),
        "{}",
        String::from_utf8_lossy(&bare.stderr)
    );
    // Custody of a certificate the ledger does not hold, and of a malformed number.
    let none = client(&net, &["--json", "custody", "BW-0001", "--node", &api]);
    assert!(none.status.success(), "{}", String::from_utf8_lossy(&none.stderr));
    let none: Value = serde_json::from_slice(&none.stdout).unwrap();
    assert_eq!((none["state"].as_str(), none["steps"].as_array().map(Vec::len)), (Some(""), Some(0)));
    let text = client(&net, &["custody", "BW-0001", "--node", &api]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("no certificate BW-0001"));
    let bad = client(&net, &["custody", "not a number", "--node", &api]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a certificate number"));
    assert!(terminate(node).success(), "{}", std::fs::read_to_string(&log).unwrap());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("node started") && logged.contains("node stopped"), "{logged}");

    // The same data directory opens again.
    let node = start(&config, &log);
    let again = status_when_up(&net, &api, &log);
    assert_eq!(again["genesis_hash"], s["genesis_hash"]);
    assert!(again["height"].as_u64() >= s["height"].as_u64());
    assert!(terminate(node).success());

    // Nothing answers once it is stopped.
    let out = client(&net, &["status", "--node", &api]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the node"));
}

#[test]
fn bad_node_configurations_are_refused_with_the_field_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let port = base_port() + 3;
    assert!(
        kpledger(&["testnet", "init", "--participants", "1", "--dir", path(&net), "--base-port", &port.to_string()])
            .status
            .success()
    );
    let good = std::fs::read_to_string(net.join("BW/node.toml")).unwrap();
    let cases = [
        (good.replace("../genesis.json", "../nowhere.json"), "`genesis`"),
        (good.replace("api = \"127.0.0.1", "api = \"localhost"), "`api`"),
        (good.replace("/ip4/127.0.0.1/tcp", "/dns/localhost/tcp"), "`listen`"),
        (format!("{good}\nunknown_setting = 1\n"), "unknown field"),
    ];
    for (i, (text, expected)) in cases.into_iter().enumerate() {
        let config = net.join(format!("BW/bad-{i}.toml"));
        std::fs::write(&config, text).unwrap();
        let out = kpledger(&["node", "--config", path(&config)]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expected), "{expected}: {err}");
    }
    // A node key that the genesis does not know.
    let stranger = net.join("BW/stranger.key");
    assert!(kpledger(&["keygen", "--out", path(&stranger)]).status.success());
    let config = net.join("BW/stranger.toml");
    std::fs::write(&config, good.replace("node_key = \"node.key\"", "node_key = \"stranger.key\"")).unwrap();
    let out = kpledger(&["node", "--config", path(&config)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not the node key of any participant"));
}
