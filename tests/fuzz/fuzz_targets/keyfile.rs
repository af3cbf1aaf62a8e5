//! Key files (`keyfile::read`, `crates/kpledger/src/keyfile.rs`, compiled into the fuzz crate):
//! any bytes as a key file's contents. Beyond never panicking: a key that is read has the
//! public key its file states, and writing it out and reading that back gives the same key.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::PublicKey;
use kp_fuzz::keyfile;
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| kp_fuzz::scratch_dir("keyfile"))
}

fuzz_target!(|data: &[u8]| {
    let input = dir().join("in.key");
    std::fs::write(&input, data).unwrap();
    let Ok(key) = keyfile::read(&input) else { return };
    let json: serde_json::Value = serde_json::from_slice(data).expect("a key file read is JSON");
    let stated = PublicKey::from_hex(json["public_key"].as_str().expect("public_key is a string")).unwrap();
    assert_eq!(key.public(), stated, "the key is the one the file states");
    let out = dir().join("out.key");
    keyfile::write(&out, &key, "fuzz", true).unwrap();
    assert_eq!(keyfile::read(&out).unwrap().to_seed(), key.to_seed(), "written and read back");
});
