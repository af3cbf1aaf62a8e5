//! The key-value layer under the store: column families, atomic write batches, ordered scans.
//! Two implementations pass the same test suite: [`MemBackend`] (memory) and
//! [`crate::RocksBackend`] (RocksDB on disk).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The column families of the store (one RocksDB column family each). The key and value
/// layout of each is in `layout.rs` and docs/storage.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Format version, chain id, genesis hash, head.
    Meta,
    /// height → header bytes (exactly as signed).
    Headers,
    /// height → commit certificate.
    Certificates,
    /// block hash → height.
    BlockHashes,
    /// (height, index) → signed event envelope, exactly as received.
    Events,
    /// event id → (height, index).
    EventIds,
    /// (certificate number, height, index) → block time: a certificate's custody in order.
    Custody,
    /// (participant, role, issue time, certificate number) → (): review queries.
    ByParticipant,
    /// block time → height.
    ByTime,
    /// (importer, certificate number) → sealed-at time: shipments awaiting receipt.
    PendingReceipts,
    /// The rules engine's state records (key → value, as the state root commits them).
    State,
    /// first height → the voter set from that height on.
    Voters,
    /// height → (): the blocks that applied a governance act (proof bundles carry them all, so
    /// that a verifier derives the voter set at any height from the genesis).
    Acts,
    /// (height, seq) → consensus engine record (votes, locks, proposals) of an open height.
    Consensus,
    /// (height, seq) → equivocation evidence.
    Evidence,
    /// submission seq → envelope: submitted, not yet committed (the store keeps the event id →
    /// seq map in memory, rebuilt at open: the pool is bounded).
    Pending,
}

impl Cf {
    pub const ALL: [Cf; 16] = [
        Cf::Meta,
        Cf::Headers,
        Cf::Certificates,
        Cf::BlockHashes,
        Cf::Events,
        Cf::EventIds,
        Cf::Custody,
        Cf::ByParticipant,
        Cf::ByTime,
        Cf::PendingReceipts,
        Cf::State,
        Cf::Voters,
        Cf::Acts,
        Cf::Consensus,
        Cf::Evidence,
        Cf::Pending,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Headers => "headers",
            Cf::Certificates => "certificates",
            Cf::BlockHashes => "block_hashes",
            Cf::Events => "events",
            Cf::EventIds => "event_ids",
            Cf::Custody => "custody",
            Cf::ByParticipant => "by_participant",
            Cf::ByTime => "by_time",
            Cf::PendingReceipts => "pending_receipts",
            Cf::State => "state",
            Cf::Voters => "voters",
            Cf::Acts => "acts",
            Cf::Consensus => "consensus",
            Cf::Evidence => "evidence",
            Cf::Pending => "pending",
        }
    }

    /// Looked up by exact key (a Bloom filter pays off).
    pub fn point_lookups(self) -> bool {
        matches!(self, Cf::BlockHashes | Cf::EventIds | Cf::State | Cf::Headers | Cf::Certificates)
    }
}

/// One write of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Cf, Vec<u8>, Vec<u8>),
    Delete(Cf, Vec<u8>),
    /// Deletes every key in `[from, to)`.
    DeleteRange(Cf, Vec<u8>, Vec<u8>),
}

/// Writes applied all together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub ops: Vec<Op>,
}

impl Batch {
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(Op::Put(cf, key, value));
    }
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(Op::Delete(cf, key));
    }
    pub fn delete_range(&mut self, cf: Cf, from: Vec<u8>, to: Vec<u8>) {
        self.ops.push(Op::DeleteRange(cf, from, to));
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A failure of the storage below the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The storage engine found damaged data (checksum mismatch, truncated file).
    #[error("storage corruption: {0}")]
    Corruption(String),
    #[error("storage I/O: {0}")]
    Io(String),
}

/// A stored key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Reads of ordered key-value storage with column families: the backend itself, or a
/// [`Backend::snapshot`] of it.
pub trait ReadView: Send + Sync {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError>;
    /// Visits the entries with key ≥ `from` in key order until `visit` returns `false`.
    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError>;
    /// Visits the entries whose key begins with `prefix`, from `from` (which begins with
    /// `prefix`) in key order, until `visit` returns `false`. The RocksDB backend hashes some
    /// families by such a prefix and then looks in one bucket: [`Cf::Custody`] by certificate
    /// (`custody_prefix`), [`Cf::ByParticipant`] by participant and role, [`Cf::PendingReceipts`]
    /// by importer.
    fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), BackendError> {
        debug_assert!(from.starts_with(prefix), "internal invariant: a prefix scan starts within its prefix");
        self.scan(cf, from, &mut |k, v| k.starts_with(prefix) && visit(k, v))
    }
    /// The entry with the largest key, if any.
    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError>;
}

/// Ordered key-value storage with column families and atomic batches.
pub trait Backend: ReadView + std::fmt::Debug {
    /// Applies every write of `batch` atomically; with `sync`, durably before returning.
    fn write(&self, batch: Batch, sync: bool) -> Result<(), BackendError>;
    /// A consistent view of the data as it is now: no write after it is seen through it, and
    /// it never blocks a writer. Reads that the node serves outside its core's lock (pages of
    /// the review indexes) go through one, so that a page never mixes two heights.
    fn snapshot(&self) -> Result<Box<dyn ReadView>, BackendError>;
}

type Tables = BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

/// The in-memory backend. Clones share the same data, so a test can drop a store and open
/// it again. Every write is "durable" (the simulator models crashes on its own).
#[derive(Debug, Clone, Default)]
pub struct MemBackend {
    tables: Arc<Mutex<Tables>>,
}

impl MemBackend {
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Nothing done under the lock panics (map operations only), so a poisoned lock cannot
        // hide a half-applied batch.
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ReadView for MemBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.lock().get(&cf).and_then(|t| t.get(key)).cloned())
    }

    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError> {
        let tables = self.lock();
        if let Some(t) = tables.get(&cf) {
            for (k, v) in t.range(from.to_vec()..) {
                if !visit(k, v) {
                    break;
                }
            }
        }
        Ok(())
    }

    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
        Ok(self.lock().get(&cf).and_then(|t| t.last_key_value()).map(|(k, v)| (k.clone(), v.clone())))
    }
}

impl Backend for MemBackend {
    /// A copy of the tables (the in-memory backend serves tests and the simulator, whose
    /// stores are small).
    fn snapshot(&self) -> Result<Box<dyn ReadView>, BackendError> {
        let copy = self.lock().clone();
        Ok(Box::new(MemBackend { tables: Arc::new(Mutex::new(copy)) }))
    }

    fn write(&self, batch: Batch, _sync: bool) -> Result<(), BackendError> {
        let mut tables = self.lock();
        for op in batch.ops {
            match op {
                Op::Put(cf, k, v) => {
                    tables.entry(cf).or_default().insert(k, v);
                }
                Op::Delete(cf, k) => {
                    tables.entry(cf).or_default().remove(&k);
                }
                Op::DeleteRange(cf, from, to) => {
                    if from < to {
                        let t = tables.entry(cf).or_default();
                        let doomed: Vec<Vec<u8>> = t.range(from..to).map(|(k, _)| k.clone()).collect();
                        for k in doomed {
                            t.remove(&k);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// [`MemBackend`] with injected disk failures, for tests and the simulator: the next writes
/// that add to the pending pool fail whole (as an atomic batch does) with an I/O error. Clones
/// share the data and the failures to come.
#[derive(Debug, Clone, Default)]
pub struct FaultyMemBackend {
    inner: MemBackend,
    fail_pool_writes: Arc<AtomicU32>,
    failed: Arc<AtomicU32>,
}

impl FaultyMemBackend {
    /// The next `n` writes that add to the pending pool fail.
    pub fn fail_pool_writes(&self, n: u32) {
        self.fail_pool_writes.store(n, Ordering::Relaxed);
    }

    /// Writes failed so far.
    pub fn failed_writes(&self) -> u32 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl ReadView for FaultyMemBackend {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, BackendError> {
        self.inner.get(cf, key)
    }

    fn scan(&self, cf: Cf, from: &[u8], visit: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), BackendError> {
        self.inner.scan(cf, from, visit)
    }

    fn last(&self, cf: Cf) -> Result<Option<Entry>, BackendError> {
        self.inner.last(cf)
    }
}

impl Backend for FaultyMemBackend {
    fn snapshot(&self) -> Result<Box<dyn ReadView>, BackendError> {
        self.inner.snapshot()
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
