//! `kpledger store`: offline checks of a node's ledger store.

use anyhow::{Context, Result, bail};
use kp_domain::Genesis;
use kp_store::{RocksBackend, Store};
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub data_dir: String,
    pub blocks: u64,
    pub events: u64,
    pub state_records: u64,
    pub custody_entries: u64,
    pub head_hash: String,
}

/// Verifies the store in `data_dir` in full (it must exist: verification never creates a store).
/// A store that a node would refuse to open is verified too, so that the damage is located.
pub fn verify(data_dir: &Path, genesis: &Genesis) -> Result<VerifyReport> {
    if !data_dir.join("CURRENT").is_file() {
        bail!("{} holds no ledger store", data_dir.display());
    }
    let backend =
        RocksBackend::open(data_dir).with_context(|| format!("opening the store in {}", data_dir.display()))?;
    let r = Store::verify(backend, genesis).context("the store does not verify")?;
    Ok(VerifyReport {
        data_dir: data_dir.display().to_string(),
        blocks: r.blocks,
        events: r.events,
        state_records: r.state_records,
        custody_entries: r.custody_entries,
        head_hash: r.head_hash.to_hex(),
    })
}
