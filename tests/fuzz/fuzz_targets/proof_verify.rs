//! `kp_audit::proof::verify`: any bytes as a proof bundle, checked against the fixed test
//! network's genesis (the seed corpus holds real bundles of that network). Beyond never
//! panicking: a bundle that verifies is canonical protobuf, is about the certificate the report
//! names, and every custody step reported is an event the bundle carries at that height and
//! index, under its SHA-256 id.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_consensus::block::BlockHeader;
use kp_proto::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(report) = kp_audit::proof::verify(data, &kp_fuzz::net().genesis) else { return };
    let bundle = pb::ProofBundle::decode(data).expect("a verified bundle decodes");
    assert_eq!(bundle.encode_to_vec(), data, "a verified bundle is canonical");
    assert_eq!(report.certificate, bundle.certificate);
    assert!(!report.steps.is_empty());
    for step in &report.steps {
        let shown = bundle.blocks.iter().any(|b| {
            BlockHeader::decode(&b.header).is_ok_and(|h| h.height == step.height)
                && b.events
                    .iter()
                    .any(|e| e.index == step.index && kp_crypto::event_id(&e.envelope).to_string() == step.event_id)
        });
        assert!(shown, "step {step:?} is an event of the bundle");
    }
});
