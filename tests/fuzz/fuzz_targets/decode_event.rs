//! `kp_proto::decode_event`: any bytes, as a client or a peer submits them. Beyond never
//! panicking: an event that decodes has SHA-256 of the exact bytes received as its id, and
//! encoding what was decoded (payload, or governance act and approvals, then the envelope)
//! gives those bytes back, so that one event has one encoding.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::EventPayload;
use kp_proto::{Approval, pb};
use libfuzzer_sys::fuzz_target;
use prost::Message;
use sha2::{Digest, Sha256};

fuzz_target!(|data: &[u8]| {
    let Ok(event) = kp_proto::decode_event(data) else { return };
    assert_eq!(&event.id().0[..], Sha256::digest(data).as_slice(), "the id is SHA-256 of the bytes");
    let items = event.batch_items();
    let payload_bytes = match event.payload() {
        EventPayload::Governance(g) => {
            let act_bytes = kp_proto::encode_act(&g.act);
            assert_eq!(kp_crypto::sha256(&act_bytes), g.act_digest, "act digest");
            assert_eq!(g.approvers.len(), items.len() - 1, "one approver per approval");
            let approvals: Vec<Approval> =
                items[1..].iter().map(|i| Approval { key: *i.key, signature: *i.signature }).collect();
            kp_proto::encode_governance_payload(act_bytes, &approvals)
        }
        payload => kp_proto::encode_payload(payload).expect("a decoded payload encodes"),
    };
    assert_eq!(payload_bytes, event.payload_bytes(), "the payload re-encodes to its bytes");
    let envelope = pb::SignedEvent {
        payload: payload_bytes,
        signer: event.signer().0.to_vec(),
        signature: items[0].signature.0.to_vec(),
    };
    assert_eq!(envelope.encode_to_vec(), data, "the envelope re-encodes to the bytes received");
});
