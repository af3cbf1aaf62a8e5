//! The client commands against a live two-participant network: `cert` and `governance` sign
//! only for the network the user expects (the test network's genesis by default, or
//! `--genesis` / `--genesis-hash`) and refuse a node serving another; a second `kpledger load`
//! with the same seed stops at once and names `--seed`; `testnet init` refuses ports in the
//! kernel's ephemeral range.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn kpledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpledger")).args(args).output().expect("kpledger runs")
}

fn ok(args: &[&str]) -> Value {
    let out = kpledger(args);
    assert!(out.status.success(), "kpledger {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn err_text(args: &[&str]) -> String {
    let out = kpledger(args);
    assert!(!out.status.success(), "kpledger {args:?} should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Brings the network down however the test ends.
struct Up(PathBuf);
impl Drop for Up {
    fn drop(&mut self) {
        let _ = kpledger(&["testnet", "down", "--dir", path(&self.0)]);
    }
}

fn api(node_dir: &Path) -> String {
    let config = std::fs::read_to_string(node_dir.join("node.toml")).unwrap();
    let line = config.lines().find(|l| l.starts_with("api = ")).unwrap();
    line.trim_start_matches("api = ").trim_matches('"').to_owned()
}

fn certificate(dir: &Path, number: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../node-config/example-certificate.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let today = kp_node::now().date();
    c["number"] = Value::from(number);
    c["issued_on"] = Value::from(today.to_string());
    c["expires_on"] = Value::from(today.add_days(20).to_string());
    let file = dir.join(format!("{number}.json"));
    std::fs::write(&file, c.to_string()).unwrap();
    file
}

#[test]
fn clients_sign_only_for_the_expected_network() {
    let work = tempfile::tempdir().unwrap();
    // Below the ephemeral range (32768 and up), apart from other test processes.
    let base = 12_000 + (std::process::id() % 600) * 30;
    let net = work.path().join("net");
    let other = work.path().join("other");
    let init = ok(&[
        "--json",
        "testnet",
        "init",
        "--participants",
        "2",
        "--dir",
        path(&net),
        "--base-port",
        &base.to_string(),
    ]);
    let other_init = ok(&[
        "--json",
        "testnet",
        "init",
        "--participants",
        "2",
        "--dir",
        path(&other),
        "--base-port",
        &(base + 15).to_string(),
    ]);
    let (ours, theirs) = (init["genesis_hash"].as_str().unwrap(), other_init["genesis_hash"].as_str().unwrap());
    ok(&["testnet", "up", "--dir", path(&net), "--timeout", "60"]);
    let _up = Up(net.clone());
    let node = api(&net.join("BW"));
    let key = net.join("BW").join("exporting.key");
    let year = kp_node::now().date().year();

    // The key's test network gives the expected genesis: existing callers need no flag.
    let c1 = certificate(work.path(), &format!("BW-{year}-000001"));
    let r = ok(&["--json", "cert", "issue", "--file", path(&c1), "--key", path(&key), "--node", &node, "--wait"]);
    assert_eq!(r["outcome"], "committed", "{r}");

    // Another network's genesis (file or hash): refused, naming both hashes; nothing signed.
    let c2 = certificate(work.path(), &format!("BW-{year}-000002"));
    let other_genesis = other.join("genesis.json");
    for flag in [["--genesis", path(&other_genesis)], ["--genesis-hash", theirs]] {
        let why =
            err_text(&["cert", "issue", "--file", path(&c2), "--key", path(&key), "--node", &node, flag[0], flag[1]]);
        assert!(why.contains("another network") && why.contains(ours) && why.contains(theirs), "{why}");
    }
    let why = err_text(&[
        "governance",
        "propose",
        "suspend",
        "--participant",
        "EU",
        "--reference",
        "KP-TEST-1",
        "--rationale",
        "test",
        "--key",
        path(&key),
        "--node",
        &node,
        "--genesis",
        path(&other_genesis),
    ]);
    assert!(why.contains("another network") && why.contains(ours) && why.contains(theirs), "{why}");
    // A key file outside any test network, with no flag: refused, naming the flags to pass.
    let loose = work.path().join("exporting.key");
    std::fs::copy(&key, &loose).unwrap();
    let why = err_text(&["cert", "issue", "--file", path(&c2), "--key", path(&loose), "--node", &node]);
    assert!(why.contains("--genesis FILE") && why.contains("--genesis-hash HEX"), "{why}");
    // Outside a test network's directory, the API identity is given explicitly too.
    let why = err_text(&[
        "cert",
        "issue",
        "--file",
        path(&c2),
        "--key",
        path(&loose),
        "--node",
        &node,
        "--genesis-hash",
        ours,
    ]);
    assert!(why.contains("--ca FILE") && why.contains("--cert-key FILE"), "{why}");
    let (ca, cert, cert_key) = (net.join("ca.pem"), net.join("BW/client.pem"), net.join("BW/client.key"));
    let r = ok(&[
        "--json",
        "--ca",
        path(&ca),
        "--cert",
        path(&cert),
        "--cert-key",
        path(&cert_key),
        "cert",
        "issue",
        "--file",
        path(&c2),
        "--key",
        path(&loose),
        "--node",
        &node,
        "--genesis-hash",
        ours,
    ]);
    assert_eq!(r["outcome"], "accepted", "{r}");
}

/// A started two-participant network on ports of this test process (`slot` 0 or 1).
fn started(work: &Path, slot: u32) -> (PathBuf, Up) {
    // Below the ephemeral range (32768 and up), apart from other test processes.
    let base = 12_000 + (std::process::id() % 600) * 30 + slot * 15;
    let net = work.join("net");
    ok(&["testnet", "init", "--participants", "2", "--dir", path(&net), "--base-port", &base.to_string()]);
    ok(&["testnet", "up", "--dir", path(&net), "--timeout", "60"]);
    (net.clone(), Up(net))
}

#[test]
fn a_second_load_run_with_the_same_seed_stops_at_once_naming_the_seed() {
    let work = tempfile::tempdir().unwrap();
    let (net, _up) = started(work.path(), 1);
    // A load run, then the same run again: the second stops at once and names --seed.
    let load = ["load", "--dir", path(&net), "--certificates", "4", "--rate", "100", "--timeout", "60"];
    let first = ok(&load);
    assert_eq!(first["complete"], true, "{first}");
    let started = Instant::now();
    let why = err_text(&load);
    assert!(why.contains("already on this network") && why.contains("--seed N"), "{why}");
    assert!(started.elapsed() < Duration::from_secs(20), "the second run took {:?}", started.elapsed());
    let third =
        ok(&["load", "--dir", path(&net), "--certificates", "4", "--rate", "100", "--timeout", "60", "--seed", "7"]);
    assert_eq!(third["complete"], true, "{third}");
}

#[test]
fn testnet_init_refuses_ports_in_the_ephemeral_range() {
    let dir = tempfile::tempdir().unwrap();
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or("32768 60999".into());
    let mut bounds = range.split_whitespace().map(|b| b.parse::<u32>().unwrap());
    let (lo, hi) = (bounds.next().unwrap(), bounds.next().unwrap());
    let base = lo + (hi - lo) / 2;
    // 2 participants and the registry's 2 observers: 12 ports.
    let why = err_text(&[
        "testnet",
        "init",
        "--participants",
        "2",
        "--dir",
        path(dir.path()),
        "--base-port",
        &base.to_string(),
    ]);
    assert!(why.contains(&format!("{lo}-{hi}")) && why.contains(&(base + 11).to_string()), "{why}");
    assert!(!dir.path().join("genesis.json").exists());
    // The last port inside the range is refused too, one below is not.
    let why = err_text(&[
        "testnet",
        "init",
        "--participants",
        "2",
        "--dir",
        path(dir.path()),
        "--base-port",
        &(lo - 11).to_string(),
    ]);
    assert!(why.contains("ephemeral"), "{why}");
    ok(&["testnet", "init", "--participants", "2", "--dir", path(dir.path()), "--base-port", &(lo - 12).to_string()]);
}
