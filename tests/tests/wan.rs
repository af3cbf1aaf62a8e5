//! A network whose links are as slow as between its capitals: Gaborone, Brussels, Canberra and
//! Ottawa, with the observers' nodes in New York and Antwerp (one-way delays of 40–130 ms
//! through the WAN relay, `kpledger testnet relay`, ±10% jitter). A custody flow commits on
//! every node; a voter killed with SIGKILL halts the chain, is named missing, and once started
//! again catches up and votes: the flow goes on. The relay's own report shows that every
//! link went through it.
//!
//! No namespaces or root are needed: the relay listens on 127.77.k.m (loopback) and delays
//! what passes above TCP, since this machine's kernel has no `netem` (scripts/wan-testnet.sh).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use serde_json::Value;
use std::time::Duration;

#[test]
fn a_custody_flow_commits_between_capitals_and_a_killed_voter_recovers() {
    let net = Net::start_wan("BW,EU,AU,CA", 0);
    let table: Value = serde_json::from_str(&std::fs::read_to_string(net.dir().join("wan.json")).unwrap()).unwrap();
    let [least, _, most] = [0, 1, 2].map(|i| table["relay"]["voter_delay_ms"][i].as_f64().unwrap());
    assert!(least > 40.0 && most < 130.0, "{table}");
    let bound = table["relay"]["bound"]["p50_s"].as_f64().unwrap();
    assert!(bound > 0.3, "five rounds of 40 ms and more: {table}");
    // 4 voters dial each other; each of 2 observers dials every voter.
    assert_eq!(table["relay"]["links"], 4 * 3 + 2 * 4, "{table}");

    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let c1 = format!("BW-{year}-000001");
    let long = Duration::from_secs(120);
    let file = certificate(work.path(), &c1);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    assert_eq!(issued["outcome"], "committed", "{issued}");
    let sealed = net.submit(
        &["seal", &c1, "--seal", "BW-SEAL-1", "--port-of-exit", "Gaborone", "--wait"],
        "BW",
        "exporting",
        "AU",
    );
    assert_eq!(sealed["outcome"], "committed", "{sealed}");

    // Canberra's node is killed: the chain halts and names it; then it comes back and catches up.
    net.kill("AU");
    wait_for("the others to name AU as missing", long, || {
        let s = net.status("BW")?;
        s["missing_voters"].as_array()?.iter().any(|v| v == "AU").then_some(())
    });
    net.restart("AU");
    let received = net.submit(
        &["receive", &c1, "--parcels", "12", "--carats", "12500.75", "--remarks", "seals intact", "--wait"],
        "EU",
        "importing",
        "EU",
    );
    assert_eq!(received["outcome"], "committed", "{received}");
    let (height, _) = net.converge(received["height"].as_u64().unwrap(), long);
    for node in net.nodes() {
        let c = custody(&net, &node, &c1);
        assert_eq!(c["state"], "received", "{node}: {c}");
        assert_eq!(c["steps"].as_array().unwrap().len(), 3, "{node}: {c}");
    }
    assert!(height >= 3);

    // Every connection between nodes went through the relay: they know no other address.
    let report = net.stop_relay();
    assert!(report["connections"].as_u64().unwrap() >= 10, "{report}");
    assert!(report["bytes"].as_u64().unwrap() > 10_000, "{report}");
}
