//! What auditors and review teams run against a live network of `kpledger node` processes on
//! loopback: an export audited as verified, a tampered export refused with its reason, a
//! stopped node's store audited in place, and a certificate's proof bundle checked offline
//! against the genesis alone (and refused once changed).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_e2e::net::*;
use serde_json::Value;
use std::time::Duration;

const INTEGRITY_FAILURE: i32 = 3;

#[test]
fn a_live_ledger_is_exported_audited_and_proven() {
    let net = Net::start(4, 0);
    let work = tempfile::tempdir().unwrap();
    let genesis = net.genesis_file();
    let year = kp_node::now().date().year();
    let c1 = format!("BW-{year}-{:06}", 1);
    let file = certificate(work.path(), &c1);
    net.submit(&["issue", "--file", path(&file), "--wait"], "BW", "exporting", "BW");
    net.submit(&["seal", &c1, "--seal", "S-1", "--port-of-exit", "Gaborone", "--wait"], "BW", "exporting", "BW");
    let received =
        net.submit(&["receive", &c1, "--parcels", "12", "--carats", "12500.75", "--wait"], "EU", "importing", "EU");
    let receipt_height = received["height"].as_u64().unwrap();
    let api = net.api("EU");

    // Export and audit.
    let export = work.path().join("ledger.kpx");
    let summary = json(&["export", "--node", &api, "--out", path(&export)]);
    let blocks = summary["blocks"].as_u64().unwrap();
    assert!(blocks >= receipt_height, "{summary}");
    assert_eq!(summary["events"], 3, "{summary}");
    let audit = json(&["audit", "--file", path(&export), "--genesis", path(&genesis)]);
    assert_eq!(audit["result"], "verified", "{audit}");
    assert_eq!((audit["blocks"].as_u64(), audit["events"].as_u64()), (Some(blocks), Some(3)));
    assert_eq!(audit["participants"][0]["voters"], 4);
    let text = ok(&["audit", "--file", path(&export)]);
    assert!(text.contains("result      verified"), "{text}");

    // One byte of the receipt's signature changed (the last byte of its envelope): exit status
    // 3, with the height and the event named.
    let bytes = tamper(&std::fs::read(&export).unwrap(), receipt_height);
    let tampered = work.path().join("tampered.kpx");
    std::fs::write(&tampered, &bytes).unwrap();
    let out = kpledger(&["--json", "audit", "--file", path(&tampered)]);
    assert_eq!(out.status.code(), Some(INTEGRITY_FAILURE), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["result"], "failed");
    assert_eq!(r["discrepancy"]["height"].as_u64(), Some(receipt_height), "{r}");
    assert_eq!(r["discrepancy"]["kind"], "event_signature", "{r}");
    // An export of another network's genesis is refused before any replay.
    let other = tempfile::tempdir().unwrap();
    ok(&["testnet", "init", "--participants", "2", "--dir", path(other.path()), "--base-port", "9000"]);
    let out = kpledger(&["audit", "--file", path(&export), "--genesis", path(&other.path().join("genesis.json"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not of the genesis given"));

    // The proof bundle of the certificate, checked offline against the genesis alone.
    let bundle = work.path().join("c1.proof");
    let p = json(&["proof", &c1, "--node", &net.api("AE"), "--out", path(&bundle)]);
    assert!(p["bytes"].as_u64().unwrap() > 0);
    let proven = json(&["verify-proof", path(&bundle), "--genesis", path(&genesis)]);
    let kinds: Vec<&str> = proven["steps"].as_array().unwrap().iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["CertificateIssued", "ShipmentSealed", "ReceiptConfirmed"], "{proven}");
    assert_eq!(proven["steps"][2]["height"].as_u64(), Some(receipt_height));
    assert_eq!(proven["steps"][2]["signer"], "EU importing");
    let text = ok(&["verify-proof", path(&bundle), "--genesis", path(&genesis)]);
    assert!(text.starts_with("VERIFIED"), "{text}");
    let mut b = std::fs::read(&bundle).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    std::fs::write(&bundle, &b).unwrap();
    let out = kpledger(&["verify-proof", path(&bundle), "--genesis", path(&genesis)]);
    assert_eq!(out.status.code(), Some(INTEGRITY_FAILURE));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("NOT VERIFIED"));
    let out = kpledger(&["proof", "BW-1999-000001", "--node", &api, "--out", path(&bundle)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no event about certificate BW-1999-000001"));

    // Review: the participant report from a node, the anomalies and statistics from the export.
    let (from, to) = (format!("{year}-01-01"), format!("{year}-12-31"));
    let report = json(&["report", "participant", "BW", "--from", &from, "--to", &to, "--node", &api]);
    assert_eq!(report["certificates"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(report["certificates"][0]["number"], c1.as_str());
    assert_eq!(report["certificates"][0]["state"], "received", "{report}");
    let csv = ok(&["report", "participant", "BW", "--from", &from, "--to", &to, "--file", path(&export), "--csv"]);
    assert!(csv.lines().count() >= 2 && csv.contains(&c1), "{csv}");
    // BW exported 12,500.75 ct with no production reported and nothing imported.
    let issue_id = json(&["custody", &c1, "--node", &api])["steps"][0]["event_id"].as_str().unwrap().to_owned();
    let found = json(&["anomalies", "--file", path(&export)]);
    let supply: Vec<&Value> = found
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "exports_exceed_supply" && a["participant"] == "BW")
        .collect();
    assert_eq!(supply.len(), 1, "{found}");
    assert!(supply[0]["event_ids"].as_array().unwrap().iter().any(|e| e == issue_id.as_str()), "{found}");
    let chart = work.path().join("bw.svg");
    let stats = json(&[
        "stats",
        "--year",
        &year.to_string(),
        "--participant",
        "BW",
        "--file",
        path(&export),
        "--chart",
        path(&chart),
    ]);
    assert_eq!(stats["participants"][0]["participant"], "BW", "{stats}");
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    let bad = kpledger(&["report", "participant", "BW", "--from", "2026-13-01", "--to", &to, "--node", &api]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--from"));

    // A stopped node's own store, audited in place.
    net.signal("AM", "-TERM");
    let pid = net.pid("AM");
    wait_for("AM to stop", Duration::from_secs(20), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z")))
        .then_some(())
    });
    let data = net.node_dir("AM").join("data");
    let audit = json(&["audit", "--data-dir", path(&data), "--genesis", path(&genesis)]);
    assert_eq!(audit["result"], "verified", "{audit}");
    assert!(audit["blocks"].as_u64().unwrap() >= receipt_height);
}

/// The export with the last byte of the first event at `height` flipped, re-framed.
fn tamper(export: &[u8], height: u64) -> Vec<u8> {
    let reader = kp_audit::ExportReader::new(export).unwrap();
    let mut w = kp_audit::ExportWriter::new(Vec::new(), reader.genesis_bytes()).unwrap();
    for (h, b) in (1u64..).zip(reader) {
        let mut b = b.unwrap();
        if h == height {
            let e = &mut b.events[0];
            let last = e.len() - 1;
            e[last] ^= 0x01;
        }
        w.block(b.header, b.events, b.certificate).unwrap();
    }
    w.finish().unwrap()
}
