//! A live network of `kpledger node` processes on loopback, driven through the CLI as
//! operators and authorities use it: a custody flow committed by every node; a node killed
//! (the chain halts and names it; what was submitted meanwhile is kept and committed once
//! when it returns); a node paused past several round timeouts; a node whose data was wiped
//! rejoining from genesis; a participant suspended and readmitted; a participant admitted
//! through governance joining with its own node.
//!
//! The `kpledger` binary is the one `cargo test --workspace` builds beside this test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

#[test]
fn four_nodes_commit_custody_and_recover_from_crash_pause_and_wipe() {
    let net = Net::start(4, 0);
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
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
    let year = kp_node::now().date().year();
    let long = Duration::from_secs(90);
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
    let proposed = net.governance(
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
    let approved = net.governance(&["approve", "KP-AS-TEST-1"], "AE", "AE");
    assert_eq!(approved["missing"], serde_json::json!(["EU"]), "{approved}");
    let done = net.governance(&["approve", "KP-AS-TEST-1", "--wait"], "EU", "EU");
    assert!(done["committed_height"].as_u64().is_some(), "{done}");
    assert!(done["submitted_event"].as_str().is_some(), "the completing approval did not submit the act");
    assert_eq!(active("BW"), ["AE", "BW", "EU"]);

    // The chain goes on without AM.
    let number = format!("BW-{year}-000100");
    let file = certificate(work.path(), &number);
    let r = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "AE");
    assert_eq!(r["outcome"], "committed", "{r}");

    // Readmission needs every voter (AM does not vote while suspended).
    let proposed = net.governance(
        &["propose", "readmit", "--participant", "AM", "--reference", "KP-AS-TEST-2", "--rationale", "node back"],
        "EU",
        "EU",
    );
    assert_eq!(proposed["missing"], serde_json::json!(["AE", "BW"]), "{proposed}");
    net.governance(&["approve", "KP-AS-TEST-2"], "AE", "BW");
    let done = net.governance(&["approve", "KP-AS-TEST-2", "--wait"], "BW", "BW");
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

/// A participant admitted through governance runs a node whose key the genesis does not know:
/// started with `joining = true`, it follows the chain by catch-up, and once its admission is
/// committed it votes — the chain, which now needs its signature, goes on.
#[test]
fn an_admitted_participant_joins_with_its_own_node() {
    let net = Net::start(3, 2);
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let dir = net.genesis_file().parent().unwrap().to_path_buf();
    // The newcomer's keys and its entry: those of AM in another test network's genesis.
    let config = |node: &Path| kp_node::NodeConfig::load(&node.join("node.toml")).unwrap();
    let bw = config(&net.node_dir("BW"));
    let port: u32 = bw.listen.rsplit('/').next().unwrap().parse().unwrap();
    let other = work.path().join("other");
    ok(&["testnet", "init", "--participants", "4", "--dir", path(&other), "--base-port", &(port + 100).to_string()]);
    let genesis: Value = serde_json::from_str(&std::fs::read_to_string(other.join("genesis.json")).unwrap()).unwrap();
    let am = genesis["participants"].as_array().unwrap().iter().find(|p| p["id"] == "AM").unwrap().clone();
    let entry = work.path().join("am.json");
    std::fs::write(&entry, am.to_string()).unwrap();

    // Its node, configured to join this network: every participant's node to dial (BW's
    // configuration lists the others, EU's lists BW).
    let am_dir = dir.join("AM");
    std::fs::create_dir_all(&am_dir).unwrap();
    for key in ["node.key", "exporting.key", "importing.key"] {
        std::fs::copy(other.join("AM").join(key), am_dir.join(key)).unwrap();
    }
    let mut bootstrap = bw.bootstrap.clone();
    bootstrap.extend(config(&net.node_dir("EU")).bootstrap.into_iter().filter(|a| !bw.bootstrap.contains(a)));
    let am = config(&other.join("AM"));
    let config = format!(
        "genesis = \"../genesis.json\"\ndata_dir = \"data\"\nnode_key = \"node.key\"\nlisten = {:?}\nbootstrap = {:?}\napi = \"{}\"\nmetrics = \"{}\"\n",
        am.listen, bootstrap, am.api, am.metrics
    );
    // Its API over TLS with a certificate of this network's CA for this host (BW's serves:
    // the test network's node certificates name localhost and 127.0.0.1, not the node).
    for ext in ["pem", "key"] {
        std::fs::copy(net.node_dir("BW").join(format!("api-tls.{ext}")), am_dir.join(format!("api-tls.{ext}")))
            .unwrap();
    }
    let tls = "[api_tls]\ncertificate = \"api-tls.pem\"\nkey = \"api-tls.key\"\nclient_ca = \"../ca.pem\"\n";
    // Without `joining`, a key the genesis does not know is refused at start, and nothing is created.
    std::fs::write(am_dir.join("node.toml"), format!("{config}{tls}")).unwrap();
    let refused = kpledger(&["node", "--config", path(&am_dir.join("node.toml"))]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("joining = true"), "{refused:?}");
    assert!(!am_dir.join("data").exists());
    std::fs::write(am_dir.join("node.toml"), format!("{config}joining = true\n{tls}")).unwrap();

    // Admission: every voter approves.
    let governance = |args: &[&str], signer: &str| net.governance(args, signer, signer);
    let admit =
        ["propose", "admit", "--participant-file", path(&entry), "--reference", "KP-ADMIT-AM", "--rationale", "joined"];
    governance(&admit, "BW");
    governance(&["approve", "KP-ADMIT-AM"], "EU");
    let done = governance(&["approve", "KP-ADMIT-AM", "--wait"], "AE");
    let admitted_at = done["committed_height"].as_u64().unwrap_or_else(|| panic!("{done}"));

    // Its node starts, catches up, and votes: the chain goes on with four voters.
    net.restart("AM");
    let c = format!("BW-{year}-{:06}", 9);
    let file = certificate(work.path(), &c);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait", "--timeout", "90"], "BW", "exporting", "BW");
    assert_eq!(issued["outcome"], "committed", "{issued}");
    assert!(issued["height"].as_u64().unwrap() > admitted_at);
    let s = wait_for("AM's node to reach the head", Duration::from_secs(60), || {
        let s = net.status("AM")?;
        (s["height"].as_u64()? >= issued["height"].as_u64()?).then_some(s)
    });
    assert_eq!(s["me"], "AM", "{s}");
    assert_eq!(s["active_participants"], serde_json::json!(["AE", "AM", "BW", "EU"]), "{s}");
    assert!(net.log("AM").contains("takes part in consensus"), "{}", net.log("AM"));
}
