//! `kpledger store verify` on a real RocksDB store: verified when whole, the damaged height named
//! otherwise, and a clear error where there is no store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../kp-store/tests/common/mod.rs"]
mod common;

use kp_store::{Backend, Batch, Cf, Position, ReadView, RocksBackend, Store};
use std::process::Command;

fn verify(dir: &std::path::Path, genesis: &std::path::Path, json: bool) -> std::process::Output {
    let mut args = vec!["store", "verify", "--data-dir", dir.to_str().unwrap(), "--genesis", genesis.to_str().unwrap()];
    if json {
        args.push("--json");
    }
    Command::new(env!("CARGO_BIN_EXE_kpledger")).args(args).output().unwrap()
}

#[test]
fn store_verify_names_the_damaged_height() {
    let tmp = tempfile::tempdir().unwrap();
    let w = common::Workload::new(3, 21, 9);
    let genesis = tmp.path().join("genesis.json");
    std::fs::write(&genesis, serde_json::to_string(&w.net.genesis).unwrap()).unwrap();
    let data = tmp.path().join("data");

    let out = verify(&data, &genesis, false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no ledger store"), "{out:?}");
    assert!(!data.exists(), "verify never creates a store");

    std::fs::create_dir_all(&data).unwrap();
    let (mut store, mut app) = Store::open(RocksBackend::open(&data).unwrap(), &w.net.genesis).unwrap();
    for _ in 0..5 {
        let (b, c) = w.next_block(&mut app);
        store.commit(&b, &c, &mut app).unwrap();
    }
    let events = store.head().events;
    drop(store);
    let out = verify(&data, &genesis, true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["blocks"].as_u64(), report["events"].as_u64()), (Some(5), Some(events)));

    let backend = RocksBackend::open(&data).unwrap();
    let key = Position { height: 2, index: 1 }.to_bytes();
    let mut v = backend.get(Cf::Events, &key).unwrap().unwrap();
    v[20] ^= 1;
    let mut batch = Batch::default();
    batch.put(Cf::Events, key.to_vec(), v);
    backend.write(batch, true).unwrap();
    drop(backend);
    let out = verify(&data, &genesis, false);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("height 2"), "{err}");
}
