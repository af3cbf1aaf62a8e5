//! Full-consensus block admission (see docs/consensus.md).
//!
//! This crate is being built for issue 3. What exists: the block format ([`block`]) — header
//! bytes and hash, the RFC 6962 root of a block's events, the voter-set hash, the signed bytes
//! of votes and the commit certificate with its verification against the required voters.
//! The round-based engine and the simulator are not written yet.
//!
//! Architecture invariant: no tokio, libp2p, RocksDB or protobuf (`scripts/check-deps.sh`);
//! no clock, no randomness. Hashes and signatures cover exact bytes, never a re-encoding.

pub mod block;
