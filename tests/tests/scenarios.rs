//! The KP's own decision cases (node-config/scenarios/), each replayed by `kpledger scenario
//! run` on a live network of real node processes of its own (4–5 participants, the compressed
//! set of the case's roles, and the two observers), which checks every step's outcome, the
//! anomaly report, an audit of the resulting ledger and a proof bundle. The full 59/60-participant
//! versions run from `scripts/scenarios.sh --full`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::kpledger;
use std::path::Path;

fn run(name: &str, slot: u32) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../node-config/scenarios").join(format!("{name}.toml"));
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("net");
    // This test process's block of 250 ports (as `Net::start` takes it, below the ephemeral
    // range): `Net::start(_, 0)` below, then 30 ports per scenario (at most 8 nodes of 3 each).
    let base = 10_000 + (std::process::id() % 90) * 250 + 20 + slot * 30;
    let out = kpledger(&[
        "scenario",
        "run",
        file.to_str().unwrap(),
        "--dir",
        dir.to_str().unwrap(),
        "--base-port",
        &base.to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    if !out.status.success() {
        // The network's directory is kept on failure: show the end of each node's log.
        let mut logs = String::new();
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                if let Ok(log) = std::fs::read_to_string(e.path().join("node.log")) {
                    let tail: Vec<&str> = log.lines().rev().take(8).collect();
                    logs += &format!(
                        "--- {}\n{}\n",
                        e.path().display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        panic!("scenario {name} failed:\n{stdout}\n{}\n{logs}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(stdout.contains("outcome: "), "{stdout}");
    assert!(stdout.contains("audit: verified"), "{stdout}");
}

#[test]
fn republic_of_the_congo_removed_and_readmitted() {
    run("congo", 0);
}

#[test]
fn venezuela_suspends_itself_and_returns() {
    run("venezuela", 1);
}

#[test]
fn central_african_republic_suspended_restricted_to_zones_and_lifted() {
    run("central-african-republic", 2);
}

#[test]
fn zimbabwe_suspension_finds_no_consensus() {
    run("zimbabwe", 3);
}

#[test]
fn uzbekistan_admitted_and_its_node_votes() {
    run("admission", 4);
}

#[test]
fn written_procedure_adopted_objected_and_lapsed() {
    run("written-procedure", 5);
}

/// Written procedure and the governance history through the command line, as an authority
/// types it: propose with --written-procedure --deadline, approve, object, conclude (refused: it
/// was objected), and history with --participant and --json.
#[test]
fn written_procedure_and_history_from_the_command_line() {
    use kp_e2e::net::{Net, json, path};
    let net = Net::start(4, 0);
    let key = |code: &str| net.node_dir(code).join("exporting.key");
    let signed = |args: &[&str], code: &str| {
        let key = key(code);
        let api = net.api(code);
        let mut all = vec!["governance"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--key", path(&key), "--node", &api]);
        json(&all)
    };
    let opened = signed(
        &[
            "propose",
            "suspend",
            "--participant",
            "AM",
            "--reference",
            "KP-WP-CLI-1",
            "--rationale",
            "by written procedure",
            "--written-procedure",
            "--deadline",
            "10m",
            "--wait",
        ],
        "BW",
    );
    assert_eq!(opened["outcome"], "committed", "{opened}");
    let approved = signed(&["approve", "KP-WP-CLI-1", "--wait"], "EU");
    assert_eq!(approved["outcome"], "committed", "{approved}");
    let objected = signed(&["object", "KP-WP-CLI-1", "--reason", "no review visit yet", "--wait"], "AE");
    assert_eq!(objected["outcome"], "committed", "{objected}");
    // A deadline must be given with --written-procedure, and a bad one is named.
    let out = kpledger(&[
        "governance",
        "propose",
        "suspend",
        "--participant",
        "AM",
        "--reference",
        "X",
        "--rationale",
        "r",
        "--written-procedure",
        "--key",
        path(&key("BW")),
        "--node",
        &net.api("BW"),
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--deadline"));
    let out = kpledger(&[
        "governance",
        "propose",
        "suspend",
        "--participant",
        "AM",
        "--reference",
        "X",
        "--rationale",
        "r",
        "--written-procedure",
        "--deadline",
        "soon",
        "--key",
        path(&key("BW")),
        "--node",
        &net.api("BW"),
    ]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("soon"), "{out:?}");
    // Concluding an objected procedure is refused before anything is signed.
    let out = kpledger(&["governance", "conclude", "KP-WP-CLI-1", "--key", path(&key("BW")), "--node", &net.api("BW")]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("objected"), "{out:?}");
    let history = json(&["governance", "history", "--participant", "AE", "--node", &net.api("BW")]);
    let entries = history.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{history}");
    let e = &entries[0];
    assert_eq!((e["reference"].as_str(), e["outcome"].as_str()), (Some("KP-WP-CLI-1"), Some("objected")), "{e}");
    assert_eq!(e["approvals"], serde_json::json!(["BW", "EU"]), "{e}");
    assert_eq!(e["objections"][0]["participant"], "AE", "{e}");
    assert_eq!(e["procedure"], "written procedure", "{e}");
    let none = json(&["governance", "history", "--participant", "ZA", "--node", &net.api("BW")]);
    assert_eq!(none, serde_json::json!([]));
}
