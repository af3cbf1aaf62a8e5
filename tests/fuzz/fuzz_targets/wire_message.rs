//! `kp_consensus::wire::decode_message`: any bytes, as a peer's frame carries them. Beyond never
//! panicking: a message that decodes encodes back to exactly its bytes (the encoding is
//! canonical: votes and proposals are signed over bytes taken from it).
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_consensus::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(message) = wire::decode_message(data) else { return };
    assert_eq!(wire::encode_message(&message), data, "a decoded message encodes to its bytes");
});
