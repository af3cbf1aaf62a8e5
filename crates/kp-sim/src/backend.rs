//! The simulated node's disk: `kp-store`'s in-memory backend, shared across a node's restarts
//! (every write the store makes is synced, so a crash loses nothing written and only what the
//! node had not written yet), with injected write failures.

use kp_store::{Backend, BackendError, Batch, Cf, Entry, MemBackend, Op};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// A node's store backend in the simulator.
#[derive(Debug, Clone, Default)]
pub struct SimBackend {
    inner: MemBackend,
    /// Writes into the pending pool still to fail (a disk error while a submission group is
    /// kept): each such write fails whole, as an atomic batch does.
    fail_pool_writes: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
}

impl SimBackend {
    /// The next `n` writes that add to the pending pool fail with an I/O error.
    pub fn fail_pool_writes(&self, n: u32) {
        self.fail_pool_writes.store(n, Ordering::Relaxed);
    }

    /// Writes failed so far.
    pub fn failed_writes(&self) -> u32 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl Backend for SimBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(cf, key)
    }

    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError> {
        self.inner.scan(cf, from, visit)
    }

    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
        self.inner.last(cf)
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<(), BackendError> {
        let adds_to_pool = batch.ops.iter().any(|op| matches!(op, Op::Put(Cf::Pending, ..)));
        if adds_to_pool
            && self.fail_pool_writes.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
        {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(BackendError::Io("injected write failure (simulated disk error)".into()));
        }
        self.inner.write(batch, sync)
    }
}
