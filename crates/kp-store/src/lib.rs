//! Durable ledger storage for a KP node.
//!
//! [`Store`] keeps, over a [`Backend`] ([`RocksBackend`] on disk, [`MemBackend`] in memory),
//! the committed blocks with their commit certificates, the rules engine's state records, the
//! indexes reviewers query (custody of a certificate, certificates by participant and role and
//! time, shipments awaiting receipt, blocks by time), the consensus engine's records of the
//! open height, equivocation evidence, and the pool of submitted events not yet committed.
//!
//! Invariants:
//! - A block, its certificate, the state changes and every index update are one write batch,
//!   synced before [`Store::commit`] returns; its events leave the pending pool and the
//!   height's consensus records are pruned in the same batch. A crash exposes a prefix of the
//!   committed blocks, never a half-applied one.
//! - Envelopes and header bytes are stored exactly as signed (ids and hashes stay valid).
//! - [`Store::open`] refuses, never repairs, a store whose head, hash chain, last block, state
//!   root, voter set, chain id or format version do not agree; [`Store::verify`] checks all of
//!   it for every block.
//! - Only the ledger grows without bound: the pending pool, consensus records and evidence
//!   are capped, and consensus records are pruned at each commit.
//! - This is the only crate of the workspace that depends on RocksDB.

mod backend;
mod layout;
mod rocks;
mod store;

pub use backend::{Backend, BackendError, Batch, Cf, Entry, FaultyMemBackend, MemBackend, Op, ReadView};
pub use layout::{Head, Position, STORE_FORMAT_VERSION, TradeRole};
pub use rocks::RocksBackend;
pub use store::{
    CustodyEntry, MAX_EVIDENCE_PER_HEIGHT, MAX_PAGE, MAX_PENDING, MAX_RECORDS_PER_HEIGHT, RawBlock, RawCommit,
    RecordSlot, Snapshot, StateReader, Store, StoreError, StoredBlock, Submitted, VerifyReport,
};
