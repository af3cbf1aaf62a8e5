//! The whole Kimberley Process: 59 participants' nodes and 2 observers' nodes as separate
//! processes on loopback commit a custody flow, and every node ends with the same head.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use std::time::Duration;

#[test]
fn fifty_nine_nodes_commit_a_custody_flow_with_the_same_head() {
    let net = Net::start(59, 0);
    assert_eq!(net.nodes().len(), 61);
    let work = tempfile::tempdir().unwrap();
    let year = kp_node::now().date().year();
    let number = format!("BW-{year}-000001");
    let file = certificate(work.path(), &number);
    let issued = net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    assert_eq!(issued["outcome"], "committed", "{issued}");
    let sealed = net.submit(
        &["seal", &number, "--seal", "S-1", "--port-of-exit", "Gaborone", "--wait"],
        "BW",
        "exporting",
        "ZW",
    );
    assert_eq!(sealed["outcome"], "committed", "{sealed}");
    let received =
        net.submit(&["receive", &number, "--parcels", "12", "--carats", "12500.75", "--wait"], "EU", "importing", "EU");
    assert_eq!(received["outcome"], "committed", "{received}");
    let (height, _) = net.converge(received["height"].as_u64().unwrap(), Duration::from_secs(120));
    let status = net.status("CSC").unwrap();
    assert_eq!(status["active_participants"].as_array().unwrap().len(), 59);
    assert!(height >= 3);
    for node in ["AE", "BW", "EU", "ZW", "CSC", "WDC"] {
        let c = custody(&net, node, &number);
        assert_eq!(c["state"], "received", "{node}: {c}");
        assert_eq!(c["steps"].as_array().unwrap().len(), 3, "{node}: {c}");
    }
}
