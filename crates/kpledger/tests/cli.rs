//! The `kpledger` binary as a user runs it: a 59-participant network, the sample custody flow,
//! and clear errors for bad arguments.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn kpledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpledger")).args(args).output().expect("kpledger runs")
}

fn ok_json(args: &[&str]) -> Value {
    let out = kpledger(args);
    assert!(out.status.success(), "kpledger {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn err_text(args: &[&str]) -> String {
    let out = kpledger(args);
    assert!(!out.status.success(), "kpledger {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn fifty_nine_participants_run_the_sample_custody_flow() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let init = ok_json(&["testnet", "init", "--participants", "59", "--dir", path(&net), "--json"]);
    assert_eq!(init["participants"].as_array().unwrap().len(), 59);
    let genesis = net.join("genesis.json");
    let hash = ok_json(&["genesis-hash", "--genesis", path(&genesis), "--json"]);
    assert_eq!(hash["genesis_hash"], init["genesis_hash"]);

    let demo = ok_json(&["demo", "--dir", path(&net), "--json"]);
    let history = demo["history"].as_array().unwrap();
    let kinds: Vec<&str> = history.iter().map(|h| h["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["certificate_issued", "shipment_sealed", "receipt_confirmed"]);
    assert_eq!(history[0]["signer"], "BW exporting authority");
    assert_eq!(history[2]["signer"], "EU importing authority");
    assert_eq!(demo["rejected"]["code"], "wrong_authority");

    // Human output shows the same history and the reason.
    let text = kpledger(&["demo", "--dir", path(&net)]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("custody history of certificate BW-"), "{text}");
    assert!(text.contains("must be signed by the importing authority of EU"), "{text}");

    // The same directory is not overwritten.
    assert!(err_text(&["testnet", "init", "--participants", "3", "--dir", path(&net)]).contains("already exists"));
}

#[test]
fn two_participants_show_a_replayed_receipt_refused() {
    let dir = tempfile::tempdir().unwrap();
    ok_json(&["testnet", "init", "--participants", "2", "--dir", path(dir.path()), "--json"]);
    let demo = ok_json(&["demo", "--dir", path(dir.path()), "--json"]);
    assert_eq!(demo["rejected"]["code"], "already_received");
}

#[test]
fn bad_arguments_and_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(err_text(&["testnet", "init", "--participants", "0", "--dir", path(dir.path())]).contains("from 1 to 59"));
    assert!(err_text(&["testnet", "init", "--participants", "60", "--dir", path(dir.path())]).contains("from 1 to 59"));
    assert!(err_text(&["demo", "--dir", path(&dir.path().join("none"))]).contains("genesis.json"));
    let one = dir.path().join("one");
    ok_json(&["testnet", "init", "--participants", "1", "--dir", path(&one), "--json"]);
    assert!(err_text(&["demo", "--dir", path(&one)]).contains("needs Botswana (BW) and the European Union (EU)"));
    // A tampered genesis is refused with the field at fault.
    let genesis = one.join("genesis.json");
    let text = std::fs::read_to_string(&genesis).unwrap().replace("\"format_version\": 1", "\"format_version\": 9");
    std::fs::write(&genesis, text).unwrap();
    assert!(err_text(&["genesis-hash", "--genesis", path(&genesis)]).contains("format_version"));
    // A key file that does not hold together is refused.
    let key = one.join("BW").join("exporting.key");
    let text = std::fs::read_to_string(&key).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let forged = text.replace(v["public_key"].as_str().unwrap(), &"00".repeat(32));
    std::fs::write(&key, forged).unwrap();
    let err = kpledger::keyfile::read(&key).expect_err("a forged key file is refused").to_string();
    assert!(err.contains("public_key does not belong to secret_seed"), "{err}");
}

#[test]
fn keygen_writes_a_private_key_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("bw.key");
    let out = ok_json(&["keygen", "--out", path(&key), "--label", "BW exporting", "--json"]);
    assert_eq!(out["public_key"].as_str().unwrap().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(err_text(&["keygen", "--out", path(&key)]).contains("already exists"));
    kpledger::keyfile::read(&key).unwrap();
}
