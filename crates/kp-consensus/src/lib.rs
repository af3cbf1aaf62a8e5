//! Full-consensus block admission (see docs/consensus.md): a block is committed only with the
//! signatures of every required voter.
//!
//! - [`block`]: the block format — header bytes and hash, the events root, the voter-set hash,
//!   the signed bytes of votes, and certificates verified against the required voters.
//! - [`engine`]: the round engine, a pure state machine (inputs in, outputs out, time passed in)
//!   driving an [`engine::Application`] (the rules engine behind the edge).
//! - [`messages`]: what nodes say to each other and what the engine asks its host to do.
//! - [`wire`]: the bytes those messages and catch-up batches travel as, decoded under limits.
//!
//! Architecture invariant: no tokio, libp2p, RocksDB or protobuf (`scripts/check-deps.sh`);
//! no clock, no randomness. Hashes and signatures cover exact bytes, never a re-encoding.

pub mod block;
pub mod engine;
pub mod messages;
pub mod wire;

pub use engine::{
    Application, CommitError, Config, Engine, Execution, ExecutionError, Input, apply_committed, leader_of,
};
pub use messages::*;
