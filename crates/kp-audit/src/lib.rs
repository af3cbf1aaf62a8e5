//! Auditing the KP ledger without trusting any node.
//!
//! - [`replay`]: the full audit — a replay from the genesis that checks the hash chain, every
//!   event's signatures over its exact bytes, every rule (by re-executing the rules engine),
//!   every state root and every commit certificate against the voter set the replay derives
//!   itself; signatures are batch-verified in parallel on every core.
//! - [`export`]: the portable ledger export (length-delimited protobuf: genesis, blocks, end).
//! - [`proof`]: offline proof bundles for one certificate, checked against the genesis alone.
//!
//! Architecture invariant: nothing is re-encoded to be verified — headers, events and
//! certificates are checked as the exact bytes that were signed, hashed and stored; the first
//! discrepancy is reported with its height, event and a stable kind, never repaired.

pub mod export;
pub mod proof;
pub mod replay;

pub use export::{ExportError, ExportReader, ExportWriter};
pub use replay::{AuditReport, Discrepancy, audit};
