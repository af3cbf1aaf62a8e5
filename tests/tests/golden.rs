//! Golden vectors pin the signing format: keys, payload bytes, the exact signed message,
//! signature, envelope and event id, in tests/vectors/signing-v1.json. Another implementation
//! checks itself against that file; this test checks that we still produce it byte for byte.
//! To rewrite the file after a deliberate format change (which needs a new format version):
//! `KP_BLESS=1 cargo test -p kp-e2e --test golden`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_crypto::{SecretKey, Tag, signing_message};
use kp_domain::*;
use kp_testkit::{TestNet, act, at, certificate, pid, seeded_key};
use serde_json::{Value, json};

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/signing-v1.json");

fn vectors() -> Value {
    let net = TestNet::new(&["BW", "EU"], 2026);
    let chain = net.chain_id().clone();
    let key: &SecretKey = net.key("BW", Role::Exporting);
    let payload =
        kp_proto::encode_payload(&EventPayload::CertificateIssued(certificate("BW-2026-000001", "BW", "EU", at(1, 0))))
            .unwrap();
    let envelope = kp_proto::sign_event(key, &chain, payload.clone());
    let signature = key.sign(Tag::Event, &chain, &payload);

    let approver = net.key("EU", Role::Exporting);
    let act_bytes =
        kp_proto::encode_act(&act("KP-PLENARY-2026-7", GovernanceAction::Suspend { participant: pid("BW") }));
    let approval = approver.sign(Tag::Approval, &chain, &act_bytes);
    let probe = seeded_key(2026, "probe");
    let mut strict = net.genesis.clone();
    strict.params.signature_rule = SignatureRule::Strict;
    let mut cofactored = net.genesis.clone();
    cofactored.params.signature_rule = SignatureRule::Cofactored;
    json!({
        "format_version": FORMAT_VERSION,
        "chain_id": chain.to_string(),
        "signed_message_layout": "tag || 0x00 || len(chain_id) as one byte || chain_id || bytes",
        "event": {
            "tag": String::from_utf8_lossy(Tag::Event.bytes()),
            "signer_seed": hex::encode(key.to_seed()),
            "signer_public_key": key.public().to_hex(),
            "payload": hex::encode(&payload),
            "signed_message": hex::encode(signing_message(Tag::Event, &chain, &payload)),
            "signature": hex::encode(signature.0),
            "envelope": hex::encode(&envelope),
            "event_id": kp_crypto::event_id(&envelope).to_hex(),
        },
        "approval": {
            "tag": String::from_utf8_lossy(Tag::Approval.bytes()),
            "signer_seed": hex::encode(approver.to_seed()),
            "signer_public_key": approver.public().to_hex(),
            "act": hex::encode(&act_bytes),
            "signature": hex::encode(approval.0),
        },
        "key_derivation_probe": { "seed": hex::encode(probe.to_seed()), "public_key": probe.public().to_hex() },
        // The genesis as made before it named a signature rule (strict, the field absent from
        // its encoding): its hash must not change. The same genesis naming the cofactored rule
        // (what new networks use) beside it.
        "genesis_hash": kp_proto::genesis_hash(&strict).to_hex(),
        "genesis_hash_cofactored": kp_proto::genesis_hash(&cofactored).to_hex(),
        "merkle_root_of_event_ids": kp_crypto::merkle_root(&[kp_crypto::event_id(&envelope).0]).to_hex(),
    })
}

#[test]
fn signing_format_matches_the_golden_vectors() {
    let now = vectors();
    if std::env::var_os("KP_BLESS").is_some() {
        std::fs::write(FILE, serde_json::to_string_pretty(&now).unwrap() + "\n").unwrap();
    }
    let text = std::fs::read_to_string(FILE).expect("tests/vectors/signing-v1.json is missing");
    let golden: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(now, golden, "the signing format changed; see the header of tests/tests/golden.rs");
}

#[test]
fn golden_envelope_opens_with_only_the_file() {
    // What another implementation does: read the file, check the signature over the stated
    // bytes, hash the envelope.
    let golden: Value = serde_json::from_str(&std::fs::read_to_string(FILE).unwrap()).unwrap();
    let s = |p: &str| golden.pointer(p).and_then(Value::as_str).unwrap().to_owned();
    let chain = ChainId::new(&s("/chain_id")).unwrap();
    let envelope = hex::decode(s("/event/envelope")).unwrap();
    let event = kp_proto::open_event(&chain, SignatureRule::Strict, &envelope).unwrap();
    assert_eq!(kp_proto::open_event(&chain, SignatureRule::Cofactored, &envelope), Ok(event.clone()));
    assert_eq!(event.id.to_hex(), s("/event/event_id"));
    assert_eq!(event.signer.to_hex(), s("/event/signer_public_key"));
    let message = hex::decode(s("/event/signed_message")).unwrap();
    let payload = hex::decode(s("/event/payload")).unwrap();
    assert!(message.ends_with(&payload) && message.starts_with(b"kp-ledger/v1/event\0"));
    let sig = kp_crypto::Signature::from_slice(&hex::decode(s("/approval/signature")).unwrap()).unwrap();
    let approver = PublicKey::from_hex(&s("/approval/signer_public_key")).unwrap();
    let act = hex::decode(s("/approval/act")).unwrap();
    for rule in [SignatureRule::Strict, SignatureRule::Cofactored] {
        kp_crypto::verify(&approver, Tag::Approval, &chain, rule, &act, &sig).unwrap();
    }
}

#[test]
fn small_order_r_vector_follows_the_rule_singly_and_in_a_batch() {
    // tests/vectors/small-order-r-v1.json: a signer's own signature with a small-order
    // component in R. Under the strict rule both verifications refuse it, naming that R; under
    // the cofactored rule both accept it (kp-crypto crafts the same bytes in its unit tests).
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/small-order-r-v1.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let s = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap().to_owned();
    let chain = ChainId::new(&s("/chain_id")).unwrap();
    let seed: [u8; 32] = hex::decode(s("/signer_seed")).unwrap().try_into().unwrap();
    let key = SecretKey::from_seed(&seed).public();
    assert_eq!(key.to_hex(), s("/signer_public_key"));
    let bytes = hex::decode(s("/bytes")).unwrap();
    assert_eq!(hex::encode(signing_message(Tag::Event, &chain, &bytes)), s("/signed_message"));
    let sig = kp_crypto::Signature::from_slice(&hex::decode(s("/signature")).unwrap()).unwrap();
    let expected = kp_crypto::CryptoError::SmallOrderR { key: key.short(), r: s("/signature")[..64].to_owned() };
    let strict = SignatureRule::Strict;
    assert_eq!(kp_crypto::verify(&key, Tag::Event, &chain, strict, &bytes, &sig), Err(expected.clone()));
    let item = kp_crypto::BatchItem { key: &key, tag: Tag::Event, bytes: &bytes, signature: &sig };
    assert_eq!(kp_crypto::verify_batch(&chain, strict, &[item]), Err(expected));
    let cofactored = SignatureRule::Cofactored;
    assert_eq!(kp_crypto::verify(&key, Tag::Event, &chain, cofactored, &bytes, &sig), Ok(()));
    assert_eq!(kp_crypto::verify_batch(&chain, cofactored, &[item]), Ok(()));
    assert!(s("/expected").contains("strict rule: refused") && s("/expected").contains("cofactored rule: accepted"));
}
