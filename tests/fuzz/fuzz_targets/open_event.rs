//! `kp_proto::open_event` on the fixed test network's chain: any bytes, as a node opens a
//! client's submission. Beyond never panicking: an event that opens has SHA-256 of its bytes as
//! its id and is what `decode_event` + `verify` give; opening it in a batch (`open_events`, one
//! batch signature check) answers exactly as opening it alone, error included, under both
//! signature rules; and what the strict rule opens, the cofactored rule opens too.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use libfuzzer_sys::fuzz_target;
use kp_domain::SignatureRule;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let chain = kp_fuzz::net().chain_id();
    let mut opened = Vec::new();
    for rule in [SignatureRule::Strict, SignatureRule::Cofactored] {
        let single = kp_proto::open_event(chain, rule, data);
        let batch = kp_proto::open_events(chain, rule, [data]).pop();
        assert_eq!(batch.as_ref(), Some(&single), "{rule:?}: a batch of one answers as the event alone");
        if let Ok(event) = &single {
            assert_eq!(&event.id.0[..], Sha256::digest(data).as_slice(), "the id is SHA-256 of the bytes");
            let decoded = kp_proto::decode_event(data).expect("an opened event decodes").assume_verified();
            assert_eq!(&decoded, event);
        }
        opened.push(single);
    }
    // What the strict rule accepts, the cofactored rule accepts (the same event).
    if let Ok(event) = &opened[0] {
        assert_eq!(opened[1].as_ref(), Ok(event), "an event the strict rule opens opens under the cofactored rule");
    }
});
