//! A live network of `kpledger node` processes on loopback, driven through the CLI as
//! operators and authorities use it: a custody flow committed by every node; a node killed
//! (the chain halts and names it; what was submitted meanwhile is kept and committed once
//! when it returns); a node paused past several round timeouts; a node whose data was wiped
//! rejoining from genesis.
//!
//! The `kpledger` binary is the one `cargo test --workspace` builds beside this test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kpledger_bin() -> PathBuf {
    // target/<profile>/deps/network-<hash> → target/<profile>/kpledger
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).unwrap().join("kpledger");
    assert!(bin.is_file(), "{} is missing: build it first (cargo build -p kpledger)", bin.display());
    bin
}

fn kpledger(args: &[&str]) -> Output {
    Command::new(kpledger_bin()).args(args).output().expect("kpledger runs")
}

fn ok(args: &[&str]) -> String {
    let out = kpledger(args);
    assert!(
        out.status.success(),
        "kpledger {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(&all)).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Polls `check` every 200 ms until it returns `Some`, at most `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A test network in a temporary directory; brought down (every process) when dropped.
struct Net {
    dir: tempfile::TempDir,
    /// Nodes this test started itself (restarts): reaped when the network is brought down.
    children: std::cell::RefCell<Vec<std::process::Child>>,
}

impl Net {
    /// `slot` separates the ports of the tests of this process, which run at once.
    fn start(participants: usize, slot: u32) -> Net {
        let dir = tempfile::tempdir().unwrap();
        // Ports of this test process, away from other runs: 3 per node, participants and 2 observers.
        let base = 40_000 + (std::process::id() % 600) * 40 + slot * 20;
        ok(&[
            "testnet",
            "init",
            "--participants",
            &participants.to_string(),
            "--dir",
            path(dir.path()),
            "--base-port",
            &base.to_string(),
        ]);
        let net = Net { dir, children: std::cell::RefCell::new(Vec::new()) };
        ok(&["testnet", "up", "--dir", path(net.dir.path()), "--timeout", "60"]);
        net
    }

    fn node_dir(&self, node: &str) -> PathBuf {
        let p = self.dir.path().join(node);
        if p.is_dir() { p } else { self.dir.path().join("observers").join(node) }
    }

    fn api(&self, node: &str) -> String {
        let config = std::fs::read_to_string(self.node_dir(node).join("node.toml")).unwrap();
        let line = config.lines().find(|l| l.starts_with("api = ")).unwrap();
        line.trim_start_matches("api = ").trim_matches('"').to_owned()
    }

    fn nodes(&self) -> Vec<String> {
        let genesis: Value =
            serde_json::from_str(&std::fs::read_to_string(self.dir.path().join("genesis.json")).unwrap()).unwrap();
        let mut names: Vec<String> =
            genesis["participants"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
        names.extend(genesis["observers"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        names
    }

    fn status(&self, node: &str) -> Option<Value> {
        let out = kpledger(&["--json", "status", "--node", &self.api(node)]);
        out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    fn pid(&self, node: &str) -> String {
        std::fs::read_to_string(self.node_dir(node).join("node.pid")).unwrap().trim().to_owned()
    }

    fn signal(&self, node: &str, signal: &str) {
        let pid = self.pid(node);
        assert!(Command::new("kill").args([signal, &pid]).status().unwrap().success(), "kill {signal} {pid}");
    }

    /// Kills a node with SIGKILL and waits until it is gone.
    fn kill(&self, node: &str) {
        self.signal(node, "-KILL");
        let pid = self.pid(node);
        wait_for("the killed node to exit", Duration::from_secs(10), || {
            let alive = Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().unwrap().success();
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.split_whitespace().nth(2) == Some("Z"))
                .unwrap_or(true);
            (!alive || zombie).then_some(())
        });
    }

    /// Starts a node's process again on its configuration (and data directory).
    fn restart(&self, node: &str) {
        let dir = self.node_dir(node);
        let log = std::fs::OpenOptions::new().append(true).create(true).open(dir.join("node.log")).unwrap();
        let child = Command::new(kpledger_bin())
            .args(["node", "--config", path(&dir.join("node.toml"))])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        std::fs::write(dir.join("node.pid"), format!("{}\n", child.id())).unwrap();
        self.children.borrow_mut().push(child);
        wait_for("the restarted node's API", Duration::from_secs(30), || self.status(node));
    }

    fn submit(&self, args: &[&str], signer: &str, role: &str, via: &str) -> Value {
        let key = self.node_dir(signer).join(format!("{role}.key"));
        let api = self.api(via);
        let mut all: Vec<&str> = vec!["--json", "cert"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--key", path(&key), "--node", &api]);
        let out = kpledger(&all);
        assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn log(&self, node: &str) -> String {
        std::fs::read_to_string(self.node_dir(node).join("node.log")).unwrap_or_default()
    }

    /// Every node (observers included) at the same height with the same head hash, at least `height`.
    fn converge(&self, height: u64, limit: Duration) -> (u64, String) {
        let nodes = self.nodes();
        wait_for("every node to reach the same head", limit, || {
            let heads: Vec<(u64, String)> = nodes
                .iter()
                .map(|n| {
                    let s = self.status(n)?;
                    Some((s["height"].as_u64()?, s["head_hash"].as_str()?.to_owned()))
                })
                .collect::<Option<_>>()?;
            let first = heads.first()?.clone();
            (first.0 >= height && heads.iter().all(|h| *h == first)).then_some(first)
        })
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // SIGCONT first, in case a test stopped a node and then failed.
        for n in self.nodes() {
            if let Ok(pid) = std::fs::read_to_string(self.node_dir(&n).join("node.pid")) {
                let _ = Command::new("kill").args(["-CONT", pid.trim()]).stderr(Stdio::null()).status();
            }
        }
        let _ = kpledger(&["testnet", "down", "--dir", path(self.dir.path())]);
        for mut child in self.children.borrow_mut().drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A certificate file from the example, under another number and dated today.
fn certificate(dir: &Path, number: &str) -> PathBuf {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-config/example-certificate.json");
    let mut c: Value = serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let day = |days: u64| {
        let d = kp_domain::Date(i32::try_from(days).unwrap());
        d.to_string()
    };
    let today = now / 86_400;
    c["number"] = Value::from(number);
    c["issued_on"] = Value::from(day(today));
    c["expires_on"] = Value::from(day(today + 30));
    let file = dir.join(format!("{number}.json"));
    std::fs::write(&file, serde_json::to_string(&c).unwrap()).unwrap();
    file
}

fn custody(net: &Net, via: &str, number: &str) -> Value {
    json(&["custody", number, "--node", &net.api(via)])
}

#[test]
fn four_nodes_commit_custody_and_recover_from_crash_pause_and_wipe() {
    let net = Net::start(4, 0);
    let work = tempfile::tempdir().unwrap();
    let year = {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        kp_domain::Date(i32::try_from(now / 86_400).unwrap()).year()
    };
    let number = |n: u32| format!("BW-{year}-{n:06}");
    let long = Duration::from_secs(90);

    // The custody flow, each event through a different node.
    let c1 = number(1);
    let file = certificate(work.path(), &c1);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    assert_eq!(issued["outcome"], "committed", "{issued}");
    let sealed = net.submit(
        &["seal", &c1, "--seal", "BW-SEAL-1", "--port-of-exit", "Gaborone", "--wait"],
        "BW",
        "exporting",
        "AE",
    );
    assert_eq!(sealed["outcome"], "committed");
    // A participant that is not the importer cannot confirm receipt: refused with the reason.
    let key = net.node_dir("AM").join("importing.key");
    let refused = kpledger(&[
        "cert",
        "receive",
        &c1,
        "--parcels",
        "12",
        "--carats",
        "12500.75",
        "--key",
        path(&key),
        "--node",
        &net.api("AM"),
    ]);
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("RULES") && why.contains("importing authority of EU"), "{why}");
    let received = net.submit(
        &["receive", &c1, "--parcels", "12", "--carats", "12500.75", "--remarks", "seals intact", "--wait"],
        "EU",
        "importing",
        "EU",
    );
    assert_eq!(received["outcome"], "committed");
    let h = received["height"].as_u64().unwrap();
    let (height, _) = net.converge(h, long);
    for node in net.nodes() {
        let c = custody(&net, &node, &c1);
        assert_eq!(c["state"], "received", "{node}: {c}");
        assert_eq!(c["steps"].as_array().unwrap().len(), 3, "{node}: {c}");
    }

    // SIGKILL one voter: the chain halts and the status names it; what is submitted meanwhile
    // is kept.
    net.kill("AM");
    let missing = wait_for("the others to name AM as missing", long, || {
        let s = net.status("BW")?;
        let m: Vec<String> =
            s["missing_voters"].as_array()?.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect();
        m.contains(&"AM".to_owned()).then_some(s)
    });
    let halted = missing["height"].as_u64().unwrap();
    let mut waiting = Vec::new();
    for (i, via) in ["BW", "AE", "EU"].iter().enumerate() {
        let n = number(10 + u32::try_from(i).unwrap());
        let file = certificate(work.path(), &n);
        let r = net.submit(&["issue", "--file", path(&file)], "BW", "exporting", via);
        assert_eq!(r["outcome"], "accepted", "{r}");
        waiting.push(n);
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(net.status("BW").unwrap()["height"].as_u64().unwrap() <= halted + 1, "the chain went on without AM");
    for n in &waiting {
        assert_eq!(custody(&net, "BW", n)["steps"].as_array().unwrap().len(), 0, "{n} committed without AM");
    }

    // AM comes back: it catches up, the chain resumes, each event is committed exactly once.
    net.restart("AM");
    for n in &waiting {
        wait_for("the events submitted during the halt to commit", long, || {
            (custody(&net, "AM", n)["steps"].as_array()?.len() == 1).then_some(())
        });
    }
    let (after_kill, _) = net.converge(height, long);
    for node in net.nodes() {
        for n in &waiting {
            assert_eq!(custody(&net, &node, n)["steps"].as_array().unwrap().len(), 1, "{node} {n}");
        }
    }

    // SIGSTOP a voter past several round timeouts, then SIGCONT: the network recovers without
    // a restart.
    net.signal("AE", "-STOP");
    std::thread::sleep(Duration::from_secs(12));
    net.signal("AE", "-CONT");
    let n = number(20);
    let file = certificate(work.path(), &n);
    let r = net.submit(&["issue", "--file", path(&file), "--wait", "--timeout", "90"], "BW", "exporting", "EU");
    assert_eq!(r["outcome"], "committed", "{r}");
    let (after_pause, _) = net.converge(r["height"].as_u64().unwrap().max(after_kill), long);

    // A node whose data directory is wiped rejoins by catch-up from genesis.
    net.signal("EU", "-TERM");
    wait_for("EU to stop", Duration::from_secs(15), || net.status("EU").is_none().then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_dir_all(net.node_dir("EU").join("data")).unwrap();
    net.restart("EU");
    let (rejoined, head) = net.converge(after_pause, long);
    assert!(rejoined >= after_pause);
    assert!(net.log("EU").contains("caught up"), "EU did not catch up by fetching blocks");
    let n = number(21);
    let file = certificate(work.path(), &n);
    let r = net.submit(&["issue", "--file", path(&file), "--wait", "--timeout", "90"], "BW", "exporting", "EU");
    assert_eq!(r["outcome"], "committed", "the rejoined node's event: {r} (head was {head})");
    net.converge(r["height"].as_u64().unwrap(), long);
}

/// A participant whose node is gone for good is suspended through the governance path by all
/// the others; the chain continues without it; readmitted, its node catches up and votes again.
#[test]
fn a_lost_participant_is_suspended_then_readmitted_and_votes_again() {
    let net = Net::start(4, 1);
    let work = tempfile::tempdir().unwrap();
    let year = {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        kp_domain::Date(i32::try_from(now / 86_400).unwrap()).year()
    };
    let long = Duration::from_secs(90);
    let governance = |args: &[&str], signer: &str, via: &str| -> Value {
        let key = net.node_dir(signer).join("exporting.key");
        let api = net.api(via);
        let mut all: Vec<&str> = vec!["--json", "governance"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--key", path(&key), "--node", &api]);
        let out = kpledger(&all);
        assert!(out.status.success(), "{all:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone()
    };
    let active = |node: &str| -> Vec<String> {
        net.status(node).unwrap()["active_participants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };

    net.kill("AM");
    wait_for("the others to name AM as missing", long, || {
        let s = net.status("BW")?;
        s["missing_voters"].as_array()?.iter().any(|v| v == "AM").then_some(())
    });

    // Suspension: every voter but AM must approve; BW proposes, the approvals are collected by
    // the nodes, the last approval submits the act.
    let proposed = governance(
        &["propose", "suspend", "--participant", "AM", "--reference", "KP-AS-TEST-1", "--rationale", "node lost"],
        "BW",
        "BW",
    );
    assert_eq!(proposed["missing"], serde_json::json!(["AE", "EU"]), "{proposed}");
    let seen = wait_for("the approval to reach AE's node", long, || {
        let out = kpledger(&["--json", "governance", "status", "KP-AS-TEST-1", "--node", &net.api("AE")]);
        out.status.success().then(|| serde_json::from_slice::<Value>(&out.stdout).unwrap()[0].clone())
    });
    assert_eq!(seen["approved_by"], serde_json::json!(["BW"]));
    let approved = governance(&["approve", "KP-AS-TEST-1"], "AE", "AE");
    assert_eq!(approved["missing"], serde_json::json!(["EU"]), "{approved}");
    let done = governance(&["approve", "KP-AS-TEST-1", "--wait"], "EU", "EU");
    assert!(done["committed_height"].as_u64().is_some(), "{done}");
    assert!(done["submitted_event"].as_str().is_some(), "the completing approval did not submit the act");
    assert_eq!(active("BW"), ["AE", "BW", "EU"]);

    // The chain goes on without AM.
    let number = format!("BW-{year}-000100");
    let file = certificate(work.path(), &number);
    let r = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "AE");
    assert_eq!(r["outcome"], "committed", "{r}");

    // Readmission needs every voter (AM does not vote while suspended).
    let proposed = governance(
        &["propose", "readmit", "--participant", "AM", "--reference", "KP-AS-TEST-2", "--rationale", "node back"],
        "EU",
        "EU",
    );
    assert_eq!(proposed["missing"], serde_json::json!(["AE", "BW"]), "{proposed}");
    governance(&["approve", "KP-AS-TEST-2"], "AE", "BW");
    let done = governance(&["approve", "KP-AS-TEST-2", "--wait"], "BW", "BW");
    let readmitted_at = done["committed_height"].as_u64().unwrap();
    assert_eq!(active("EU"), ["AE", "AM", "BW", "EU"]);

    // AM is a voter again: while its node is down the chain waits for it...
    let number = format!("BW-{year}-000101");
    let file = certificate(work.path(), &number);
    let r = net.submit(&["issue", "--file", path(&file)], "BW", "exporting", "BW");
    assert_eq!(r["outcome"], "accepted", "{r}");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(custody(&net, "BW", &number)["steps"].as_array().unwrap().len(), 0, "committed without AM");
    // ...and once its node is back, it catches up and signs.
    net.restart("AM");
    let at = wait_for("the certificate to commit with AM back", long, || {
        let c = custody(&net, "AM", &number);
        c["steps"].as_array()?.first()?["height"].as_u64()
    });
    assert!(at > readmitted_at);
    net.converge(at, long);
}
