//! `kp_consensus::wire::decode_blocks`: any bytes, as a peer's catch-up batch. Beyond never
//! panicking: a batch that decodes holds at most `MAX_SYNC_BLOCKS` blocks, each with a precommit
//! certificate for its own hash, and encodes back to exactly its bytes.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_consensus::block::VoteKind;
use kp_consensus::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(blocks) = wire::decode_blocks(data) else { return };
    assert!(blocks.len() <= wire::MAX_SYNC_BLOCKS);
    for b in &blocks {
        assert_eq!(b.certificate.body.kind, VoteKind::Precommit);
        assert_eq!(b.certificate.body.block_hash, b.block.hash());
    }
    assert_eq!(wire::encode_blocks(&blocks), data, "a decoded batch encodes to its bytes");
});
