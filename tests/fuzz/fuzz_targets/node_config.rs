//! The node's configuration loader (`NodeConfig::parse`, `crates/kp-node/src/config.rs`, compiled
//! into the fuzz crate): any text as a node.toml, in a directory where `genesis.pb` and
//! `node.key` exist and `data` is a directory. Beyond never panicking: a configuration that
//! loads satisfies every check the loader documents, and loads again to the same value.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_fuzz::node_config::{MAX_BLOCK_EVENTS, MAX_WORKER_THREADS, NodeConfig, engine_config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = kp_fuzz::node_config_dir().join("node.toml");
    let Ok(c) = NodeConfig::parse(text, &path) else { return };
    assert!(c.genesis.is_file() && c.node_key.is_file());
    assert!(!c.data_dir.exists() || c.data_dir.is_dir());
    assert_ne!(c.api, c.metrics);
    assert!((1..=MAX_WORKER_THREADS).contains(&c.worker_threads));
    assert!((1..=MAX_BLOCK_EVENTS).contains(&c.consensus.max_block_events));
    assert!(engine_config(&c.consensus).check().is_ok());
    assert_eq!(NodeConfig::parse(text, &path).expect("loads again"), c);
});
