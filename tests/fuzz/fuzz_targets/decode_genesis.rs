//! `kp_proto::decode_genesis`: any bytes, as a genesis file, an export's header or a node's
//! `GetGenesis` answer hold them. Beyond never panicking: a genesis that decodes encodes back to
//! exactly its bytes (so its hash is the hash of what was read) and decodes again to itself.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(genesis) = kp_proto::decode_genesis(data) else { return };
    let bytes = kp_proto::encode_genesis(&genesis);
    assert_eq!(bytes, data, "a decoded genesis encodes to its bytes");
    assert_eq!(kp_proto::decode_genesis(&bytes).expect("decodes again"), genesis);
});
