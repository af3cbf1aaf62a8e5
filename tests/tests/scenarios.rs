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
    // Below the ephemeral range, away from the other test processes' ports and from each other.
    let base = 20_000 + (std::process::id() % 40) * 200 + slot * 30;
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
