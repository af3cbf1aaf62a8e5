//! Hostile input at the edge: every malformed, oversized or badly signed event gets its own
//! specific error and none panics. (Rules-level hostility — wrong participant's key, revoked
//! key — is in crates/kp-rules/tests/rules.rs.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::*;
use kp_proto::{EdgeError, decode_event, open_event, pb};
use kp_rules::{Ledger, Rejection};
use kp_testkit::{TestNet, at, certificate, seal};
use proptest::prelude::*;
use prost::Message;

fn net() -> TestNet {
    TestNet::new(&["BW", "EU", "CA"], 11)
}

fn issue_payload() -> EventPayload {
    EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", at(1, 0)))
}

fn envelope(net: &TestNet) -> Vec<u8> {
    net.envelope_with(net.key("BW", Role::Exporting), &issue_payload())
}

/// Signs arbitrary payload bytes with BW's exporting key.
fn signed_raw(net: &TestNet, payload: Vec<u8>) -> Vec<u8> {
    kp_proto::sign_event(net.key("BW", Role::Exporting), net.chain_id(), payload)
}

fn pb_payload() -> pb::EventPayload {
    kp_proto::payload_to_proto(&issue_payload()).unwrap()
}

fn with_certificate(f: impl FnOnce(&mut pb::Certificate)) -> Vec<u8> {
    let mut p = pb_payload();
    if let Some(pb::event_payload::Kind::CertificateIssued(c)) = &mut p.kind {
        f(c.certificate.as_mut().unwrap());
    }
    p.encode_to_vec()
}

fn field_error(e: EdgeError) -> FieldError {
    match e {
        EdgeError::Field(f) => f,
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn a_valid_event_opens_and_its_id_is_the_hash_of_the_envelope() {
    let net = net();
    let bytes = envelope(&net);
    let e = open_event(net.chain_id(), net.rule(), &bytes).unwrap();
    assert_eq!(e.id, kp_crypto::event_id(&bytes));
    assert_eq!(e.signer, net.key("BW", Role::Exporting).public());
}

#[test]
fn bad_signature_is_refused() {
    let net = net();
    let mut env = pb::SignedEvent::decode(envelope(&net).as_slice()).unwrap();
    env.signature[10] ^= 0x40;
    let err = open_event(net.chain_id(), net.rule(), &env.encode_to_vec()).unwrap_err();
    assert_eq!(err.code(), "bad_signature");
    assert!(err.to_string().starts_with("signature of event"), "{err}");
}

#[test]
fn missing_signature_is_refused() {
    let net = net();
    let mut env = pb::SignedEvent::decode(envelope(&net).as_slice()).unwrap();
    env.signature.clear();
    let err = open_event(net.chain_id(), net.rule(), &env.encode_to_vec()).unwrap_err();
    assert!(matches!(err, EdgeError::Signature { source: kp_crypto::CryptoError::BadSignatureLength(0), .. }), "{err}");
}

#[test]
fn signature_by_another_key_than_the_named_signer_is_refused() {
    let net = net();
    let mut env = pb::SignedEvent::decode(envelope(&net).as_slice()).unwrap();
    env.signer = net.key("EU", Role::Exporting).public().0.to_vec();
    assert_eq!(open_event(net.chain_id(), net.rule(), &env.encode_to_vec()).unwrap_err().code(), "bad_signature");
}

#[test]
fn an_event_signed_for_another_chain_is_refused() {
    let net = net();
    let other = ChainId::new("kp-other").unwrap();
    assert_eq!(open_event(&other, net.rule(), &envelope(&net)).unwrap_err().code(), "bad_signature");
}

#[test]
fn a_replayed_event_is_refused_by_the_rules() {
    let net = net();
    let bytes = envelope(&net);
    let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
    let e = open_event(net.chain_id(), net.rule(), &bytes).unwrap();
    ledger.apply(&e, at(1, 0)).unwrap();
    let again = open_event(net.chain_id(), net.rule(), &bytes).unwrap();
    assert_eq!(again.id, e.id);
    assert!(matches!(ledger.apply(&again, at(1, 5)), Err(Rejection::DuplicateCertificate { .. })));
    // The same seal twice: refused too.
    let s = net.envelope_with(net.key("BW", Role::Exporting), &EventPayload::ShipmentSealed(seal("BW-1", at(1, 10))));
    ledger.apply(&open_event(net.chain_id(), net.rule(), &s).unwrap(), at(1, 10)).unwrap();
    assert!(matches!(
        ledger.apply(&open_event(net.chain_id(), net.rule(), &s).unwrap(), at(1, 20)),
        Err(Rejection::AlreadySealed { .. })
    ));
}

#[test]
fn a_re_encoded_envelope_cannot_take_another_id() {
    let net = net();
    let mut bytes = envelope(&net);
    // Field 15, varint 1: an unknown field appended to a valid envelope.
    bytes.extend_from_slice(&[0x78, 0x01]);
    assert!(matches!(
        open_event(net.chain_id(), net.rule(), &bytes),
        Err(EdgeError::NonCanonical { what: "signed event" })
    ));
    // Fields out of order: signature before payload.
    let env = pb::SignedEvent::decode(envelope(&net).as_slice()).unwrap();
    let mut reordered = pb::SignedEvent { signature: env.signature.clone(), ..Default::default() }.encode_to_vec();
    reordered
        .extend(pb::SignedEvent { payload: env.payload, signer: env.signer, ..Default::default() }.encode_to_vec());
    assert!(matches!(open_event(net.chain_id(), net.rule(), &reordered), Err(EdgeError::NonCanonical { .. })));
}

#[test]
fn unknown_fields_in_the_signed_payload_are_refused() {
    let net = net();
    let mut payload = pb_payload().encode_to_vec();
    payload.extend_from_slice(&[0xa0, 0x06, 0x01]); // field 100, varint 1
    let err = open_event(net.chain_id(), net.rule(), &signed_raw(&net, payload)).unwrap_err();
    assert!(matches!(err, EdgeError::NonCanonical { what: "event payload" }), "{err}");
}

#[test]
fn oversized_envelope_is_refused_before_decoding() {
    let net = net();
    let payload = vec![0u8; MAX_EVENT_BYTES + 1];
    let err = open_event(net.chain_id(), net.rule(), &signed_raw(&net, payload)).unwrap_err();
    assert!(matches!(err, EdgeError::TooLarge { what: "signed event", max: MAX_EVENT_BYTES, .. }), "{err}");
}

#[test]
fn oversized_fields_and_lists_are_refused() {
    let net = net();
    let long = with_certificate(|c| c.issuing_authority = "x".repeat(MAX_TEXT_BYTES + 1));
    let f = field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, long)).unwrap_err());
    assert_eq!(f.field, "certificate_issued.certificate.issuing_authority");
    let mut p = kp_proto::payload_to_proto(&EventPayload::ShipmentSealed(seal("BW-1", at(1, 0)))).unwrap();
    if let Some(pb::event_payload::Kind::ShipmentSealed(s)) = &mut p.kind {
        s.seal_ids = (0..=MAX_SEALS).map(|i| format!("S{i}")).collect();
    }
    let f = field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, p.encode_to_vec())).unwrap_err());
    assert_eq!(f.field, "shipment_sealed.seal_ids");
    let four_lines = with_certificate(|c| c.lines.extend(c.lines.clone()));
    let f = field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, four_lines)).unwrap_err());
    assert_eq!(f.field, "certificate_issued.certificate.lines");
}

#[test]
fn invalid_utf8_is_refused_naming_the_field() {
    let net = net();
    let mut payload = with_certificate(|c| c.issuing_authority = "Gaborone".into());
    let at_ = payload.windows(8).position(|w| w == b"Gaborone").unwrap();
    payload[at_ + 5] = 0xff;
    let err = open_event(net.chain_id(), net.rule(), &signed_raw(&net, payload)).unwrap_err();
    assert_eq!(err.code(), "malformed");
    let msg = err.to_string();
    assert!(msg.contains("issuing_authority") && msg.contains("UTF-8"), "{msg}");
}

#[test]
fn zero_and_overflowing_quantities_are_refused() {
    let net = net();
    let zero = with_certificate(|c| c.lines[0].carats = 0);
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, zero)).unwrap_err()).field,
        "certificate_issued.certificate.lines[0].carats"
    );
    let overflow = with_certificate(|c| {
        c.lines[0].carats = u64::MAX;
        c.carats = u64::MAX;
    });
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, overflow)).unwrap_err()).field,
        "certificate_issued.certificate.lines[1].carats"
    );
    let no_parcels = with_certificate(|c| c.parcels = 0);
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, no_parcels)).unwrap_err()).field,
        "certificate_issued.certificate.parcels"
    );
}

#[test]
fn unknown_hs_code_is_refused() {
    let net = net();
    let bad = with_certificate(|c| c.lines[1].hs_code = 710299);
    let f = field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, bad)).unwrap_err());
    assert_eq!(f.field, "certificate_issued.certificate.lines[1].hs_code");
    assert!(f.problem.contains("unknown HS code 710299"));
}

#[test]
fn unsupported_format_version_is_refused() {
    let net = net();
    let mut p = pb_payload();
    p.format_version = 2;
    assert!(matches!(
        open_event(net.chain_id(), net.rule(), &signed_raw(&net, p.encode_to_vec())),
        Err(EdgeError::UnsupportedVersion { found: 2 })
    ));
}

#[test]
fn malformed_protobuf_is_refused() {
    let net = net();
    for garbage in [&b"\xff\xff\xff"[..], b"\x0a\x05abc", b"hello world", b"\x08"] {
        let err = open_event(net.chain_id(), net.rule(), garbage).unwrap_err();
        assert_eq!(err.code(), "malformed", "{garbage:?}: {err}");
    }
    let bytes = envelope(&net);
    assert_eq!(open_event(net.chain_id(), net.rule(), &bytes[..bytes.len() - 3]).unwrap_err().code(), "malformed");
    let no_kind = pb::EventPayload { format_version: FORMAT_VERSION, kind: None }.encode_to_vec();
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, no_kind)).unwrap_err()).field,
        "kind"
    );
}

#[test]
fn bad_participant_codes_and_numbers_are_refused() {
    let net = net();
    let lower = with_certificate(|c| c.importer = "eu".into());
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, lower)).unwrap_err()).field,
        "certificate_issued.certificate.importer"
    );
    let spaces = with_certificate(|c| c.number = "BW 1".into());
    assert_eq!(
        field_error(open_event(net.chain_id(), net.rule(), &signed_raw(&net, spaces)).unwrap_err()).field,
        "certificate_issued.certificate.number"
    );
}

#[test]
fn governance_approvals_are_checked_over_the_act_bytes() {
    let net = net();
    let act = kp_testkit::act("S-1", GovernanceAction::Suspend { participant: kp_testkit::pid("CA") });
    let good = net.governance_envelope("BW", &act, &["BW", "EU"]);
    open_event(net.chain_id(), net.rule(), &good).unwrap();
    let env = pb::SignedEvent::decode(good.as_slice()).unwrap();
    let mut payload = pb::EventPayload::decode(env.payload.as_slice()).unwrap();
    if let Some(pb::event_payload::Kind::Governance(g)) = &mut payload.kind {
        g.approvals[1].signature[0] ^= 1;
    }
    let err = open_event(net.chain_id(), net.rule(), &signed_raw(&net, payload.encode_to_vec())).unwrap_err();
    assert!(err.to_string().contains("governance.approvals[1]"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary bytes never panic the edge.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_event(&bytes);
    }

    /// Any single-byte change to a valid envelope is refused (or, if it decodes, fails the
    /// signature): a stored event cannot be altered undetected.
    #[test]
    fn any_flipped_byte_is_detected(index in any::<prop::sample::Index>(), bit in 0u8..8) {
        let net = net();
        let mut bytes = envelope(&net);
        let i = index.index(bytes.len());
        bytes[i] ^= 1 << bit;
        prop_assert!(open_event(net.chain_id(), net.rule(), &bytes).is_err());
    }
}

/// A written procedure's events open as they were signed: the act they carry decodes field by
/// field, its digest is that of the act's own bytes (what ordinary approvals sign), and a
/// missing act or an objection without a reason is refused, naming the field.
#[test]
fn written_procedure_events_open_with_the_digest_of_their_act() {
    let net = net();
    let act = kp_testkit::act("WP-1", GovernanceAction::Suspend { participant: kp_testkit::pid("CA") });
    let opening = net.written_procedure("BW", &act, at(9, 0));
    let EventPayload::WrittenProcedure(w) = &opening.payload else { panic!("{:?}", opening.payload) };
    assert_eq!(w.act, act);
    assert_eq!(w.act_digest, kp_crypto::sha256(&kp_proto::encode_act(&act)));
    assert_eq!(w.deadline, at(9, 0));
    let conclusion = net.conclusion("EU", &act, true);
    let EventPayload::ProcedureConclusion(c) = &conclusion.payload else { panic!("{:?}", conclusion.payload) };
    assert_eq!((c.act_digest, c.adopted), (w.act_digest, true));
    let response = net.response("EU", "WP-1", Some("not yet"));
    assert!(
        matches!(&response.payload, EventPayload::ProcedureResponse(r) if r.objection && r.reason.as_str() == "not yet")
    );

    let no_act = pb::EventPayload {
        format_version: FORMAT_VERSION,
        kind: Some(pb::event_payload::Kind::WrittenProcedure(pb::WrittenProcedure { act: None, deadline_ms: 1 })),
    };
    let e = open_event(net.chain_id(), net.rule(), &signed_raw(&net, no_act.encode_to_vec())).unwrap_err();
    assert_eq!(field_error(e).field, "written_procedure.act");
    let bare = pb::EventPayload {
        format_version: FORMAT_VERSION,
        kind: Some(pb::event_payload::Kind::ProcedureResponse(pb::ProcedureResponse {
            reference: "WP-1".into(),
            objection: true,
            reason: String::new(),
        })),
    };
    let e = open_event(net.chain_id(), net.rule(), &signed_raw(&net, bare.encode_to_vec())).unwrap_err();
    assert_eq!(field_error(e).field, "procedure_response.reason");
}

#[test]
fn a_genesis_names_its_signature_rule_and_one_without_it_is_strict() {
    let net = net();
    let bytes = kp_proto::encode_genesis(&net.genesis);
    let decoded = kp_proto::decode_genesis(&bytes).unwrap();
    assert_eq!(decoded.params.signature_rule, SignatureRule::Cofactored);
    // A genesis made before the field existed: no field 5 in its parameters.
    let mut old = pb::Genesis::decode(bytes.as_slice()).unwrap();
    old.params.as_mut().unwrap().signature_rule = 0;
    let old_bytes = old.encode_to_vec();
    let strict = kp_proto::decode_genesis(&old_bytes).unwrap();
    assert_eq!(strict.params.signature_rule, SignatureRule::Strict);
    assert_eq!(kp_proto::encode_genesis(&strict), old_bytes, "it encodes as it always did");
    // A rule this build does not know is refused, naming the field.
    old.params.as_mut().unwrap().signature_rule = 7;
    let e = kp_proto::decode_genesis(&old.encode_to_vec()).unwrap_err();
    let f = field_error(e);
    assert_eq!(f.field, "params.signature_rule");
    assert!(f.problem.contains("7 is not a signature rule"), "{}", f.problem);
}
