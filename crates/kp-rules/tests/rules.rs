//! One test (at least) per rule of docs/rules.md, accepting and rejecting. Every rejection is
//! also checked to change nothing (the state root is the same before and after).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kp_domain::*;
use kp_rules::{
    CertificateState, Incident, Ledger, MAX_AMENDMENTS, Outcome, ProcedureOutcome, ProcedureRecord, Rejection,
};
use kp_testkit::{TestNet, act, at, certificate, pid, receipt, seal};

struct H {
    net: TestNet,
    ledger: Ledger,
}

const CODES: [&str; 5] = ["BW", "EU", "CA", "AE", "CF"];

fn h() -> H {
    let net = TestNet::new(&CODES, 7);
    let ledger = Ledger::from_genesis(&net.genesis).unwrap();
    H { net, ledger }
}

impl H {
    fn ok(&mut self, e: &Event, t: Timestamp) -> Outcome {
        self.ledger.apply(e, t).unwrap_or_else(|r| panic!("expected acceptance, got: {r}"))
    }
    #[track_caller]
    fn err(&mut self, e: &Event, t: Timestamp) -> Rejection {
        let before = self.ledger.state_root();
        let applied = self.ledger.events_applied();
        let r = self.ledger.apply(e, t).expect_err("expected a rejection");
        assert_eq!(self.ledger.state_root(), before, "a rejected event changed the state");
        assert_eq!(self.ledger.events_applied(), applied);
        // Every rejection explains itself.
        assert!(!r.to_string().is_empty() && !r.code().is_empty());
        r
    }
    fn issue(&self, number: &str, from: &str, to: &str, t: Timestamp) -> Event {
        self.net.event(from, Role::Exporting, EventPayload::CertificateIssued(certificate(number, from, to, t)))
    }
    fn issued(&mut self, number: &str, from: &str, to: &str, t: Timestamp) {
        let e = self.issue(number, from, to, t);
        self.ok(&e, t);
    }
    fn sealed(&mut self, number: &str, from: &str, t: Timestamp) {
        let e = self.net.event(from, Role::Exporting, EventPayload::ShipmentSealed(seal(number, t)));
        self.ok(&e, t);
    }
    fn receive(&self, number: &str, by: &str, t: Timestamp) -> Event {
        let c = self.ledger.certificate(&CertificateNumber::new(number).unwrap()).unwrap().certificate.clone();
        self.net.event(by, Role::Importing, EventPayload::ReceiptConfirmed(receipt(&c, t)))
    }
    fn gov(&self, reference: &str, action: GovernanceAction, approvers: &[&str]) -> Event {
        self.net.governance("BW", &act(reference, action), approvers)
    }
    fn suspend(&mut self, code: &str, t: Timestamp) {
        let all = self.net.all_but(&[code]);
        let e = self.net.governance(
            all[0].as_str(),
            &act(&format!("SUSPEND-{code}"), GovernanceAction::Suspend { participant: pid(code) }),
            &all,
        );
        self.ok(&e, t);
    }
}

fn num(s: &str) -> CertificateNumber {
    CertificateNumber::new(s).unwrap()
}

#[test]
fn custody_flow_issue_seal_receive() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    h.sealed("BW-1", "BW", at(1, 1000));
    let e = h.receive("BW-1", "EU", at(3, 0));
    let out = h.ok(&e, at(3, 0));
    assert!(out.incidents.is_empty());
    let r = h.ledger.certificate(&num("BW-1")).unwrap();
    assert_eq!(r.state, CertificateState::Received);
    assert_eq!(r.history.len(), 3);
}

#[test]
fn block_time_moves_forward() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(2, 0));
    let e = h.issue("BW-2", "BW", "EU", at(1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::BlockTimeWentBack { .. }));
    // The same block time again is fine (several events share a block).
    h.issued("BW-3", "BW", "EU", at(2, 0));
}

#[test]
fn signer_must_be_a_current_authority_key() {
    let mut h = h();
    let stranger = kp_testkit::seeded_key(99, "stranger");
    let e = h.net.event_with(&stranger, EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", at(1, 0))));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownSigner { .. }));
    // A node key signs blocks, never events.
    let node = &h.net.keys[&pid("BW")].node;
    let e = h.net.event_with(node, EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", at(1, 0))));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownSigner { .. }));
}

#[test]
fn only_the_exporters_exporting_authority_issues() {
    let mut h = h();
    let c = certificate("BW-1", "BW", "EU", at(1, 0));
    let by_importing = h.net.event("BW", Role::Importing, EventPayload::CertificateIssued(c.clone()));
    assert!(matches!(h.err(&by_importing, at(1, 0)), Rejection::WrongAuthority { required_role: Role::Exporting, .. }));
    let by_other = h.net.event("CA", Role::Exporting, EventPayload::CertificateIssued(c));
    match h.err(&by_other, at(1, 0)) {
        Rejection::WrongAuthority { required, participant, .. } => {
            assert_eq!((required, participant), (pid("BW"), pid("CA")))
        }
        r => panic!("{r}"),
    }
}

#[test]
fn trade_only_with_participants() {
    let mut h = h();
    let e = h.issue("BW-1", "BW", "ZZ", at(1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownParticipant { field: "importer", .. }));
}

#[test]
fn exporter_and_importer_differ() {
    let mut h = h();
    let e = h.net.raw_event(
        "BW",
        Role::Exporting,
        EventPayload::CertificateIssued(certificate("BW-1", "BW", "BW", at(1, 0))),
    );
    match h.err(&e, at(1, 0)) {
        Rejection::Malformed(f) => assert_eq!(f.field, "certificate_issued.certificate.importer"),
        r => panic!("{r}"),
    }
}

#[test]
fn suspended_participant_neither_exports_nor_imports() {
    let mut h = h();
    h.suspend("CF", at(1, 0));
    let to = h.issue("BW-1", "BW", "CF", at(1, 0));
    assert!(matches!(h.err(&to, at(1, 0)), Rejection::NotTrading { field: "importer", status: "suspended", .. }));
    let from = h.issue("CF-1", "CF", "BW", at(1, 0));
    assert!(matches!(h.err(&from, at(1, 0)), Rejection::NotTrading { field: "exporter", .. }));
}

#[test]
fn certificate_number_is_unique_and_prefixed() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let again = h.issue("BW-1", "BW", "CA", at(1, 0));
    assert!(matches!(h.err(&again, at(1, 0)), Rejection::DuplicateCertificate { .. }));
    let wrong_prefix = h.net.raw_event(
        "BW",
        Role::Exporting,
        EventPayload::CertificateIssued(certificate("CA-1", "BW", "EU", at(1, 0))),
    );
    match h.err(&wrong_prefix, at(1, 0)) {
        Rejection::Malformed(f) => assert_eq!(f.field, "certificate_issued.certificate.number"),
        r => panic!("{r}"),
    }
}

fn with(mut c: Certificate, f: impl FnOnce(&mut Certificate)) -> EventPayload {
    f(&mut c);
    EventPayload::CertificateIssued(c)
}

#[test]
fn expiry_after_issue_and_within_validity() {
    let mut h = h();
    let base = certificate("BW-1", "BW", "EU", at(1, 0));
    let e = h.net.raw_event("BW", Role::Exporting, with(base.clone(), |c| c.expires_on = c.issued_on));
    match h.err(&e, at(1, 0)) {
        Rejection::Malformed(f) => assert_eq!(f.field, "certificate_issued.certificate.expires_on"),
        r => panic!("{r}"),
    }
    let e = h.net.event("BW", Role::Exporting, with(base.clone(), |c| c.expires_on = c.issued_on.add_days(61)));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::ValidityTooLong { days: 61, max: 60, .. }));
    let e = h.net.event("BW", Role::Exporting, with(base, |c| c.expires_on = c.issued_on.add_days(60)));
    h.ok(&e, at(1, 0));
}

#[test]
fn issue_date_near_the_block_date() {
    let mut h = h();
    let e = h.issue("BW-1", "BW", "EU", at(5, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::IssueDateInFuture { .. }));
    let mut c = certificate("BW-2", "BW", "EU", at(15, 0));
    c.expires_on = c.issued_on.add_days(20);
    let e = h.net.event("BW", Role::Exporting, EventPayload::CertificateIssued(c));
    assert!(matches!(h.err(&e, at(40, 0)), Rejection::Expired { .. }));
    let mut c = certificate("BW-3", "BW", "EU", at(0, 0));
    c.expires_on = c.issued_on.add_days(60);
    let e = h.net.event("BW", Role::Exporting, EventPayload::CertificateIssued(c));
    assert!(matches!(h.err(&e, at(40, 0)), Rejection::IssueDateTooOld { max_days: 30, .. }));
}

#[test]
fn quantities_are_consistent() {
    let mut h = h();
    let base = certificate("BW-1", "BW", "EU", at(1, 0));
    for (f, field) in [
        (
            Box::new(|c: &mut Certificate| c.carats = Carats(1)) as Box<dyn Fn(&mut Certificate)>,
            "certificate_issued.certificate.carats",
        ),
        (Box::new(|c: &mut Certificate| c.value = UsdCents(c.value.0 + 1)), "certificate_issued.certificate.value"),
        (Box::new(|c: &mut Certificate| c.parcels = 0), "certificate_issued.certificate.parcels"),
        (
            Box::new(|c: &mut Certificate| c.lines[0].carats = Carats(0)),
            "certificate_issued.certificate.lines[0].carats",
        ),
        (Box::new(|c: &mut Certificate| c.lines.swap(0, 1)), "certificate_issued.certificate.lines[1].hs_code"),
    ] {
        let mut c = base.clone();
        f(&mut c);
        let e = h.net.raw_event("BW", Role::Exporting, EventPayload::CertificateIssued(c));
        match h.err(&e, at(1, 0)) {
            Rejection::Malformed(e) => assert_eq!(e.field, field),
            r => panic!("{r}"),
        }
    }
}

#[test]
fn only_the_exporter_seals_an_issued_unexpired_certificate() {
    let mut h = h();
    let e = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-9", at(1, 0))));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownCertificate { .. }));
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let by_importer = h.net.event("EU", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-1", at(1, 0))));
    assert!(matches!(h.err(&by_importer, at(1, 0)), Rejection::WrongAuthority { .. }));
    let expired = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-1", at(40, 0))));
    assert!(matches!(h.err(&expired, at(40, 0)), Rejection::Expired { .. }));
    let early = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-1", at(0, 0))));
    assert!(matches!(h.err(&early, at(1, 0)), Rejection::TooEarly { field: "sealed_at", .. }));
    let future = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-1", at(1, 3_600_000))));
    assert!(matches!(h.err(&future, at(1, 0)), Rejection::InFuture { field: "sealed_at", .. }));
    h.sealed("BW-1", "BW", at(1, 10));
    let twice = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-1", at(1, 20))));
    assert!(matches!(h.err(&twice, at(1, 20)), Rejection::AlreadySealed { .. }));
    h.issued("BW-2", "BW", "EU", at(1, 20));
    let void = h.net.event(
        "BW",
        Role::Exporting,
        EventPayload::CertificateVoided(CertificateVoided {
            certificate: num("BW-2"),
            reason: Text::new("typo").unwrap(),
        }),
    );
    h.ok(&void, at(1, 30));
    let voided = h.net.event("BW", Role::Exporting, EventPayload::ShipmentSealed(seal("BW-2", at(1, 30))));
    assert!(matches!(h.err(&voided, at(1, 30)), Rejection::Voided { .. }));
}

#[test]
fn suspended_exporter_cannot_seal() {
    let mut h = h();
    h.issued("CF-1", "CF", "BW", at(1, 0));
    h.suspend("CF", at(1, 1));
    let e = h.net.event("CF", Role::Exporting, EventPayload::ShipmentSealed(seal("CF-1", at(1, 2))));
    assert!(matches!(h.err(&e, at(1, 2)), Rejection::NotTrading { field: "exporter", .. }));
}

#[test]
fn only_the_named_importer_confirms_once_after_sealing() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let before_seal = h.receive("BW-1", "EU", at(1, 5));
    assert!(matches!(h.err(&before_seal, at(1, 5)), Rejection::NotSealed { .. }));
    h.sealed("BW-1", "BW", at(1, 10));
    let wrong_importer = h.receive("BW-1", "CA", at(2, 0));
    assert!(matches!(h.err(&wrong_importer, at(2, 0)), Rejection::WrongAuthority { .. }));
    let c = h.ledger.certificate(&num("BW-1")).unwrap().certificate.clone();
    let exporting_key = h.net.event("EU", Role::Exporting, EventPayload::ReceiptConfirmed(receipt(&c, at(2, 0))));
    assert!(matches!(
        h.err(&exporting_key, at(2, 0)),
        Rejection::WrongAuthority { required_role: Role::Importing, .. }
    ));
    let early = h.receive("BW-1", "EU", at(1, 5));
    assert!(matches!(h.err(&early, at(2, 0)), Rejection::TooEarly { field: "received_at", .. }));
    let future = h.receive("BW-1", "EU", at(3, 0));
    assert!(matches!(h.err(&future, at(2, 0)), Rejection::InFuture { field: "received_at", .. }));
    let e = h.receive("BW-1", "EU", at(2, 0));
    h.ok(&e, at(2, 0));
    let again = h.receive("BW-1", "EU", at(2, 1));
    assert!(matches!(h.err(&again, at(2, 1)), Rejection::AlreadyReceived { .. }));
}

#[test]
fn discrepancies_on_receipt_are_recorded_as_incidents() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    h.sealed("BW-1", "BW", at(1, 10));
    let c = h.ledger.certificate(&num("BW-1")).unwrap().certificate.clone();
    let mut r = receipt(&c, at(45, 0));
    r.parcels_found = 2;
    r.carats_found = Carats(100_000);
    r.seals_intact = false;
    let e = h.net.event("EU", Role::Importing, EventPayload::ReceiptConfirmed(r));
    let out = h.ok(&e, at(45, 0));
    assert_eq!(
        out.incidents,
        vec![
            Incident::ParcelsMismatch { declared: 3, found: 2 },
            Incident::CaratsMismatch { declared: Carats(123_456), found: Carats(100_000) },
            Incident::SealsBroken,
            Incident::ReceivedAfterExpiry { expires_on: c.expires_on, received_on: at(45, 0).date() },
        ]
    );
    assert_eq!(h.ledger.certificate(&num("BW-1")).unwrap().incidents.len(), 4);
}

fn void(number: &str) -> EventPayload {
    EventPayload::CertificateVoided(CertificateVoided {
        certificate: num(number),
        reason: Text::new("shipment cancelled").unwrap(),
    })
}

#[test]
fn only_the_issuer_voids_and_only_before_receipt() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let by_importer = h.net.event("EU", Role::Exporting, void("BW-1"));
    assert!(matches!(h.err(&by_importer, at(1, 0)), Rejection::WrongAuthority { .. }));
    h.sealed("BW-1", "BW", at(1, 10));
    let e = h.net.event("BW", Role::Exporting, void("BW-1"));
    h.ok(&e, at(1, 20));
    assert!(matches!(h.err(&e, at(1, 30)), Rejection::Voided { .. }));
    h.issued("BW-2", "BW", "EU", at(1, 30));
    h.sealed("BW-2", "BW", at(1, 40));
    let r = h.receive("BW-2", "EU", at(2, 0));
    h.ok(&r, at(2, 0));
    let late = h.net.event("BW", Role::Exporting, void("BW-2"));
    assert!(matches!(h.err(&late, at(2, 0)), Rejection::AlreadyReceived { .. }));
    let empty_reason = h.net.raw_event(
        "BW",
        Role::Exporting,
        EventPayload::CertificateVoided(CertificateVoided { certificate: num("BW-2"), reason: Text::default() }),
    );
    assert!(matches!(h.err(&empty_reason, at(2, 0)), Rejection::Malformed(_)));
}

fn amend(c: Certificate) -> EventPayload {
    EventPayload::CertificateAmended(CertificateAmended {
        certificate: c,
        reason: Text::new("importer name corrected").unwrap(),
    })
}

#[test]
fn amendments_by_the_issuer_before_sealing() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let mut c = certificate("BW-1", "BW", "CA", at(1, 0));
    c.importer_party.name = Text::new("Corrected Importer").unwrap();
    let by_other = h.net.event("EU", Role::Exporting, amend(c.clone()));
    assert!(matches!(h.err(&by_other, at(1, 0)), Rejection::WrongAuthority { .. }));
    let e = h.net.event("BW", Role::Exporting, amend(c.clone()));
    h.ok(&e, at(1, 5));
    let r = h.ledger.certificate(&num("BW-1")).unwrap();
    assert_eq!((r.revision, r.certificate.importer), (1, pid("CA")));
    let mut to_nowhere = c.clone();
    to_nowhere.importer = pid("ZZ");
    let e = h.net.event("BW", Role::Exporting, amend(to_nowhere));
    assert!(matches!(h.err(&e, at(1, 5)), Rejection::UnknownParticipant { .. }));
    let unknown = h.net.event("BW", Role::Exporting, amend(certificate("BW-7", "BW", "EU", at(1, 0))));
    assert!(matches!(h.err(&unknown, at(1, 5)), Rejection::UnknownCertificate { .. }));
    h.sealed("BW-1", "BW", at(1, 10));
    let after_seal = h.net.event("BW", Role::Exporting, amend(c));
    assert!(matches!(h.err(&after_seal, at(1, 10)), Rejection::AmendAfterSeal { .. }));
}

#[test]
fn amendment_keeps_the_exporter_and_is_bounded() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let mut moved = certificate("BW-1", "BW", "EU", at(1, 0));
    moved.exporter = pid("CA");
    // The prefix no longer matches: malformed before anything else.
    let e = h.net.raw_event("BW", Role::Exporting, amend(moved));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::Malformed(_)));
    for i in 0..MAX_AMENDMENTS {
        let mut c = certificate("BW-1", "BW", "EU", at(1, 0));
        c.exporter_party.identification = Text::new(&format!("REG-{i}")).unwrap();
        let e = h.net.event("BW", Role::Exporting, amend(c));
        h.ok(&e, at(1, 0));
    }
    let e = h.net.event("BW", Role::Exporting, amend(certificate("BW-1", "BW", "EU", at(1, 0))));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::TooManyAmendments { .. }));
}

fn production(code: &str, year: u32, half: u32, revision: u32) -> EventPayload {
    EventPayload::ProductionReported(ProductionReported {
        participant: pid(code),
        period: HalfYear::new(year, half).unwrap(),
        revision,
        lines: vec![HsLine { hs_code: HsCode::Unsorted, carats: Carats(1_000_000), value: UsdCents(90_000_000) }],
        zones: vec![],
    })
}

#[test]
fn production_reports_are_revised_in_sequence() {
    let mut h = h();
    let e = h.net.event("BW", Role::Exporting, production("BW", 2026, 1, 0));
    h.ok(&e, at(1, 0));
    let e = h.net.event("BW", Role::Exporting, production("BW", 2026, 1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::WrongRevision { expected: 1, got: 0, .. }));
    let e = h.net.event("BW", Role::Exporting, production("BW", 2026, 1, 1));
    h.ok(&e, at(1, 0));
    let other = h.net.event("CA", Role::Exporting, production("BW", 2026, 1, 2));
    assert!(matches!(h.err(&other, at(1, 0)), Rejection::WrongAuthority { .. }));
    let future = h.net.event("BW", Role::Exporting, production("BW", 2026, 2, 0));
    assert!(matches!(h.err(&future, at(1, 0)), Rejection::PeriodNotStarted { .. }));
    let mut bad_zones = production("BW", 2025, 2, 0);
    if let EventPayload::ProductionReported(p) = &mut bad_zones {
        p.zones = vec![ZoneProduction { zone: Label::new("Jwaneng").unwrap(), carats: Carats(1), value: UsdCents(1) }];
    }
    let e = h.net.raw_event("BW", Role::Exporting, bad_zones);
    match h.err(&e, at(1, 0)) {
        Rejection::Malformed(f) => assert_eq!(f.field, "production_reported.zones"),
        r => panic!("{r}"),
    }
}

#[test]
fn suspension_needs_every_voter_but_the_subject() {
    let mut h = h();
    let action = GovernanceAction::Suspend { participant: pid("CF") };
    let e = h.gov("S-1", action.clone(), &["BW", "EU", "CA"]);
    match h.err(&e, at(1, 0)) {
        Rejection::MissingApprovals { missing, .. } => assert_eq!(missing, vec![pid("AE")]),
        r => panic!("{r}"),
    }
    let e = h.gov("S-1", action.clone(), &["BW", "EU", "CA", "AE"]);
    h.ok(&e, at(1, 0));
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Suspended);
    assert!(!h.ledger.voters().iter().any(|(p, _)| *p == pid("CF")));
    let again = h.gov("S-1", action.clone(), &["BW", "EU", "CA", "AE"]);
    assert!(matches!(h.err(&again, at(1, 0)), Rejection::DuplicateAct { .. }));
    let twice = h.gov("S-2", action, &["BW", "EU", "CA", "AE"]);
    assert!(matches!(h.err(&twice, at(1, 0)), Rejection::InvalidTransition { status: "suspended", .. }));
    // A suspended participant proposes nothing.
    let by_cf = h.net.governance(
        "CF",
        &act("R-1", GovernanceAction::Readmit { participant: pid("CF") }),
        &["BW", "EU", "CA", "AE"],
    );
    assert!(matches!(h.err(&by_cf, at(1, 0)), Rejection::ProposerNotVoting { .. }));
    // Readmission needs every current voter.
    let e = h.gov("R-1", GovernanceAction::Readmit { participant: pid("CF") }, &["BW", "EU", "CA"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::MissingApprovals { .. }));
    let e = h.gov("R-1", GovernanceAction::Readmit { participant: pid("CF") }, &["BW", "EU", "CA", "AE"]);
    h.ok(&e, at(1, 0));
    h.issued("CF-1", "CF", "BW", at(1, 0));
}

#[test]
fn approvals_come_from_current_distinct_authority_keys() {
    let mut h = h();
    let action = GovernanceAction::Suspend { participant: pid("CF") };
    let act_bytes = kp_proto::encode_act(&act("S-1", action));
    let stranger = kp_testkit::seeded_key(5, "stranger");
    let mut approvals: Vec<kp_proto::Approval> = ["BW", "EU", "CA", "AE"]
        .iter()
        .map(|c| kp_proto::Approval::sign(h.net.key(c, Role::Exporting), h.net.chain_id(), &act_bytes))
        .collect();
    approvals.push(kp_proto::Approval::sign(&stranger, h.net.chain_id(), &act_bytes));
    let payload = kp_proto::encode_governance_payload(act_bytes.clone(), &approvals);
    let e = kp_proto::open_event(
        h.net.chain_id(),
        h.net.rule(),
        &kp_proto::sign_event(h.net.key("BW", Role::Exporting), h.net.chain_id(), payload),
    )
    .unwrap();
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownApprover { index: 4, .. }));
    approvals.pop();
    approvals.push(approvals[0].clone());
    let payload = kp_proto::encode_governance_payload(act_bytes, &approvals);
    let e = kp_proto::open_event(
        h.net.chain_id(),
        h.net.rule(),
        &kp_proto::sign_event(h.net.key("BW", Role::Exporting), h.net.chain_id(), payload),
    )
    .unwrap();
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::DuplicateApproval { index: 4, .. }));
}

#[test]
fn admission_of_a_new_participant() {
    let mut h = h();
    let uz_export = kp_testkit::seeded_key(1, "UZ/exporting");
    let uz = Participant {
        id: pid("UZ"),
        name: Text::new("Uzbekistan").unwrap(),
        members: vec![CountryCode::new("UZ").unwrap()],
        status: Status::Active,
        node_key: kp_testkit::seeded_key(1, "UZ/node").public(),
        authorities: vec![AuthorityKey { key: uz_export.public(), role: Role::Exporting }],
        max_certificate_validity_days: 90,
    };
    let e = h.gov("A-1", GovernanceAction::Admit(uz.clone()), &["BW", "EU", "CA", "AE"]);
    match h.err(&e, at(1, 0)) {
        Rejection::MissingApprovals { missing, .. } => assert_eq!(missing, vec![pid("CF")]),
        r => panic!("{r}"),
    }
    let mut reused = uz.clone();
    reused.node_key = h.net.key("BW", Role::Exporting).public();
    let e = h.gov("A-0", GovernanceAction::Admit(reused), &CODES);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::KeyInUse { .. }));
    let e = h.gov("A-1", GovernanceAction::Admit(uz.clone()), &CODES);
    h.ok(&e, at(1, 0));
    assert_eq!(h.ledger.voters().len(), 6);
    let e = h.gov("A-2", GovernanceAction::Admit(uz), &CODES);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::ParticipantExists { .. }));
    let c = h.net.event_with(&uz_export, EventPayload::CertificateIssued(certificate("UZ-1", "UZ", "EU", at(1, 0))));
    h.ok(&c, at(1, 0));
}

#[test]
fn restricted_participant_exports_from_listed_zones_only() {
    let mut h = h();
    let zones = vec![Label::new("Berberati").unwrap()];
    let all = h.net.all_but(&["CF"]);
    let e =
        h.net.governance("BW", &act("CAR-2015", GovernanceAction::Restrict { participant: pid("CF"), zones }), &all);
    h.ok(&e, at(1, 0));
    assert!(h.ledger.voters().iter().any(|(p, _)| *p == pid("CF")), "a restricted participant still votes");
    let e = h.issue("CF-1", "CF", "BW", at(1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::RestrictedZone { .. }));
    let mut c = certificate("CF-2", "CF", "BW", at(1, 0));
    c.origin_zone = Some(Label::new("Bangui").unwrap());
    let e = h.net.event("CF", Role::Exporting, EventPayload::CertificateIssued(c.clone()));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::RestrictedZone { .. }));
    c.origin_zone = Some(Label::new("Berberati").unwrap());
    let e = h.net.event("CF", Role::Exporting, EventPayload::CertificateIssued(c));
    h.ok(&e, at(1, 0));
    // Imports are allowed.
    h.issued("BW-1", "BW", "CF", at(1, 0));
}

#[test]
fn withdrawal_and_the_last_voter() {
    let net = TestNet::new(&["BW", "EU"], 3);
    let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
    let e = net.governance("BW", &act("W-1", GovernanceAction::Withdraw { participant: pid("EU") }), &["BW"]);
    ledger.apply(&e, at(1, 0)).unwrap();
    assert_eq!(ledger.participant(&pid("EU")).unwrap().status, Status::Withdrawn);
    let e = net.governance("BW", &act("S-1", GovernanceAction::Suspend { participant: pid("BW") }), &["BW"]);
    assert!(matches!(ledger.apply(&e, at(1, 0)), Err(Rejection::NoVoterLeft { .. })));
    let e = net.event("EU", Role::Exporting, production("EU", 2026, 1, 0));
    assert!(matches!(ledger.apply(&e, at(1, 0)), Err(Rejection::WithdrawnReporter { .. })));
}

#[test]
fn authority_keys_rotate_and_revoked_keys_stop_signing() {
    let mut h = h();
    let new_key = kp_testkit::seeded_key(8, "BW/exporting-2026");
    let added = GovernanceAction::AuthorityKeyAdded {
        participant: pid("BW"),
        key: AuthorityKey { key: new_key.public(), role: Role::Exporting },
    };
    // Another participant alone cannot add BW's keys.
    let e = h.gov("K-0", added.clone(), &["EU"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::MissingApprovals { .. }));
    let e = h.gov("K-1", added, &["BW"]);
    h.ok(&e, at(1, 0));
    let old = h.net.key("BW", Role::Exporting).public();
    let revoke = GovernanceAction::AuthorityKeyRevoked { participant: pid("BW"), key: old };
    // The key being revoked cannot approve its own revocation alone.
    let e = h.gov("K-2", revoke.clone(), &["BW"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::MissingApprovals { .. }));
    // Recovery path: every other voter approves.
    let e = h.gov("K-2", revoke, &["EU", "CA", "AE", "CF"]);
    h.ok(&e, at(1, 0));
    let e = h.issue("BW-1", "BW", "EU", at(1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::RevokedSigner { .. }));
    let e = h.net.event_with(&new_key, EventPayload::CertificateIssued(certificate("BW-1", "BW", "EU", at(1, 0))));
    h.ok(&e, at(1, 0));
    // A revoked key is never re-added, nor revoked twice.
    let readd = GovernanceAction::AuthorityKeyAdded {
        participant: pid("EU"),
        key: AuthorityKey { key: old, role: Role::Exporting },
    };
    let e = h.net.governance("EU", &act("K-3", readd), &["EU"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::KeyInUse { .. }));
    let e = h.net.governance(
        "EU",
        &act("K-4", GovernanceAction::AuthorityKeyRevoked { participant: pid("BW"), key: old }),
        &["EU", "CA", "AE", "CF"],
    );
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::KeyNotOwned { .. }));
}

#[test]
fn state_root_is_deterministic_and_sensitive() {
    let run = |extra: bool| {
        let mut h = h();
        h.issued("BW-1", "BW", "EU", at(1, 0));
        h.sealed("BW-1", "BW", at(1, 10));
        if extra {
            h.issued("BW-2", "BW", "EU", at(1, 20));
        }
        h.ledger.state_root()
    };
    assert_eq!(run(false), run(false));
    assert_ne!(run(false), run(true));
}

/// Structural checks, which the rules engine makes itself even if the edge did not.
#[test]
fn structural_checks_name_their_field() {
    let mut h = h();
    let c = || certificate("BW-1", "BW", "EU", at(1, 0));
    let cases: Vec<(EventPayload, &str)> = vec![
        (with(c(), |c| c.issuing_authority = Text::default()), "certificate_issued.certificate.issuing_authority"),
        (with(c(), |c| c.exporter_party.name = Text::default()), "certificate_issued.certificate.exporter_party.name"),
        (with(c(), |c| c.importer_party.name = Text::default()), "certificate_issued.certificate.importer_party.name"),
        (with(c(), |c| c.carats = Carats(0)), "certificate_issued.certificate.carats"),
        (with(c(), |c| c.value = UsdCents(0)), "certificate_issued.certificate.value"),
        (with(c(), |c| c.parcels = MAX_PARCELS + 1), "certificate_issued.certificate.parcels"),
        (with(c(), |c| c.lines.clear()), "certificate_issued.certificate.lines"),
        (with(c(), |c| c.lines[1].value = UsdCents(0)), "certificate_issued.certificate.lines[1].value"),
        (
            with(c(), |c| {
                c.lines[0].value = UsdCents(u64::MAX);
                c.value = UsdCents(u64::MAX);
            }),
            "certificate_issued.certificate.lines[1].value",
        ),
        (
            EventPayload::ShipmentSealed(ShipmentSealed { seal_ids: vec![], ..seal("BW-1", at(1, 0)) }),
            "shipment_sealed.seal_ids",
        ),
        (
            EventPayload::ShipmentSealed(ShipmentSealed {
                seal_ids: vec![Label::new("S1").unwrap(), Label::new("S1").unwrap()],
                ..seal("BW-1", at(1, 0))
            }),
            "shipment_sealed.seal_ids",
        ),
        (
            EventPayload::ReceiptConfirmed(ReceiptConfirmed {
                parcels_found: MAX_PARCELS + 1,
                ..receipt(&c(), at(1, 0))
            }),
            "receipt_confirmed.parcels_found",
        ),
        (
            EventPayload::CertificateAmended(CertificateAmended { certificate: c(), reason: Text::default() }),
            "certificate_amended.reason",
        ),
        (
            {
                let mut p = production("BW", 2026, 1, 0);
                if let EventPayload::ProductionReported(r) = &mut p {
                    r.lines.clear();
                }
                p
            },
            "production_reported.lines",
        ),
        (
            {
                let mut p = production("BW", 2026, 1, 0);
                if let EventPayload::ProductionReported(r) = &mut p {
                    let z = ZoneProduction {
                        zone: Label::new("Orapa").unwrap(),
                        carats: Carats(1_000_000),
                        value: UsdCents(90_000_000),
                    };
                    r.zones = vec![z.clone(), z];
                }
                p
            },
            "production_reported.zones",
        ),
        (
            {
                let mut p = production("BW", 2026, 1, 0);
                if let EventPayload::ProductionReported(r) = &mut p {
                    let z = |name: &str, ct| ZoneProduction {
                        zone: Label::new(name).unwrap(),
                        carats: Carats(ct),
                        value: UsdCents(1),
                    };
                    r.zones = vec![z("Orapa", u64::MAX), z("Jwaneng", 1)];
                }
                p
            },
            "production_reported.zones[1].carats",
        ),
    ];
    for (payload, field) in cases {
        let role = if matches!(payload, EventPayload::ReceiptConfirmed(_)) { Role::Importing } else { Role::Exporting };
        let who = if role == Role::Importing { "EU" } else { "BW" };
        let e = h.net.raw_event(who, role, payload);
        match h.err(&e, at(1, 0)) {
            Rejection::Malformed(f) => assert_eq!(f.field, field),
            r => panic!("{field}: {r}"),
        }
    }
}

#[test]
fn governance_acts_are_checked_structurally() {
    let mut h = h();
    // Built by hand, past the edge, as a buggy or hostile edge might hand it over.
    let raw = |h: &H, reference: &str, action: GovernanceAction| Event {
        id: EventId(kp_crypto::sha256(reference.as_bytes()).0),
        signer: h.net.key("BW", Role::Exporting).public(),
        payload: EventPayload::Governance(GovernanceEvent {
            act: act(reference, action),
            act_digest: Hash32::default(),
            approvers: vec![],
        }),
    };
    let mut newcomer = h.ledger.participant(&pid("CA")).unwrap().clone();
    newcomer.id = pid("UZ");
    newcomer.status = Status::Suspended;
    let suspended_newcomer = raw(&h, "A-1", GovernanceAction::Admit(newcomer.clone()));
    newcomer.status = Status::Active;
    newcomer.authorities.clear();
    let keyless_newcomer = raw(&h, "A-2", GovernanceAction::Admit(newcomer));
    let no_zones = raw(&h, "R-1", GovernanceAction::Restrict { participant: pid("CF"), zones: vec![] });
    for (e, field) in [
        (suspended_newcomer, "governance.act.action.admit.status"),
        (keyless_newcomer, "governance.act.action.admit.authorities"),
        (no_zones, "governance.act.action.restrict.zones"),
    ] {
        match h.err(&e, at(1, 0)) {
            Rejection::Malformed(f) => assert_eq!(f.field, field),
            r => panic!("{field}: {r}"),
        }
    }
}

#[test]
fn unknown_parties_and_certificates_are_named() {
    let mut h = h();
    let e = h.net.raw_event(
        "BW",
        Role::Exporting,
        EventPayload::CertificateIssued(certificate("ZZ-1", "ZZ", "EU", at(1, 0))),
    );
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownParticipant { field: "exporter", .. }));
    let c = certificate("BW-9", "BW", "EU", at(1, 0));
    let e = h.net.event("EU", Role::Importing, EventPayload::ReceiptConfirmed(receipt(&c, at(1, 0))));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownCertificate { .. }));
    let e = h.net.event("BW", Role::Exporting, void("BW-9"));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownCertificate { .. }));
    let e = h.net.event("BW", Role::Exporting, production("ZZ", 2026, 1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownParticipant { field: "participant", .. }));
    let e = h.gov("S-1", GovernanceAction::Suspend { participant: pid("ZZ") }, &CODES);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownParticipant { .. }));
}

#[test]
fn voided_certificates_are_neither_received_nor_amended() {
    let mut h = h();
    h.issued("BW-1", "BW", "EU", at(1, 0));
    let c = h.ledger.certificate(&num("BW-1")).unwrap().certificate.clone();
    let e = h.net.event("BW", Role::Exporting, void("BW-1"));
    h.ok(&e, at(1, 1));
    let r = h.net.event("EU", Role::Importing, EventPayload::ReceiptConfirmed(receipt(&c, at(1, 2))));
    assert!(matches!(h.err(&r, at(1, 2)), Rejection::Voided { .. }));
    let a = h.net.event("BW", Role::Exporting, amend(c));
    assert!(matches!(h.err(&a, at(1, 2)), Rejection::Voided { .. }));
}

#[test]
fn restricted_exporter_declares_its_own_unmixed_origin() {
    let mut h = h();
    let all = h.net.all_but(&["CF"]);
    let zones = vec![Label::new("Berberati").unwrap()];
    let e = h.net.governance("BW", &act("CAR", GovernanceAction::Restrict { participant: pid("CF"), zones }), &all);
    h.ok(&e, at(1, 0));
    let mut c = certificate("CF-1", "CF", "BW", at(1, 0));
    c.origin_zone = Some(Label::new("Berberati").unwrap());
    c.origin = Origin::Mixed;
    let e = h.net.event("CF", Role::Exporting, EventPayload::CertificateIssued(c.clone()));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::RestrictedZone { .. }));
    c.origin = Origin::Country(CountryCode::new("CD").unwrap());
    let e = h.net.event("CF", Role::Exporting, EventPayload::CertificateIssued(c));
    match h.err(&e, at(1, 0)) {
        Rejection::RestrictedZone { reason, .. } => assert!(reason.contains("origin CD")),
        r => panic!("{r}"),
    }
}

#[test]
fn keys_are_never_reused_and_are_bounded() {
    let mut h = h();
    // Admit a newcomer, then try to reuse its node key as an authority key.
    let uz_node = kp_testkit::seeded_key(4, "UZ/node").public();
    let uz_key = kp_testkit::seeded_key(4, "UZ/exporting").public();
    let uz = Participant {
        id: pid("UZ"),
        name: Text::new("Uzbekistan").unwrap(),
        members: vec![CountryCode::new("UZ").unwrap()],
        status: Status::Active,
        node_key: uz_node,
        authorities: vec![
            AuthorityKey { key: uz_key, role: Role::Exporting },
            AuthorityKey { key: uz_key, role: Role::Importing },
        ],
        max_certificate_validity_days: 90,
    };
    let e = h.gov("A-1", GovernanceAction::Admit(uz.clone()), &CODES);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::KeyInUse { field: "act.action.admit.authorities", .. }));
    let mut uz = uz;
    uz.authorities.pop();
    let e = h.gov("A-1", GovernanceAction::Admit(uz), &CODES);
    h.ok(&e, at(1, 0));
    let reuse = GovernanceAction::AuthorityKeyAdded {
        participant: pid("EU"),
        key: AuthorityKey { key: uz_node, role: Role::Importing },
    };
    let e = h.net.governance("EU", &act("K-1", reuse), &["EU"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::KeyInUse { .. }), "an admitted participant's node key is in use");
    // At most MAX_AUTHORITY_KEYS keys per participant.
    for i in 0..(MAX_AUTHORITY_KEYS - 2) {
        let k = kp_testkit::seeded_key(9, &format!("EU/{i}")).public();
        let add = GovernanceAction::AuthorityKeyAdded {
            participant: pid("EU"),
            key: AuthorityKey { key: k, role: Role::Importing },
        };
        let e = h.net.governance("EU", &act(&format!("K-{}", i + 2), add), &["EU"]);
        h.ok(&e, at(1, 0));
    }
    let k = kp_testkit::seeded_key(9, "EU/extra").public();
    let add = GovernanceAction::AuthorityKeyAdded {
        participant: pid("EU"),
        key: AuthorityKey { key: k, role: Role::Importing },
    };
    let e = h.net.governance("EU", &act("K-99", add), &["EU"]);
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::TooManyKeys { .. }));
}

#[test]
fn a_participant_rotates_its_own_key_and_revoked_keys_do_not_approve() {
    let mut h = h();
    // BW revokes its exporting key, approving with its importing key.
    let old = h.net.key("BW", Role::Exporting).public();
    let revoke = act("K-1", GovernanceAction::AuthorityKeyRevoked { participant: pid("BW"), key: old });
    let act_bytes = kp_proto::encode_act(&revoke);
    let approval = kp_proto::Approval::sign(h.net.key("BW", Role::Importing), h.net.chain_id(), &act_bytes);
    let payload = kp_proto::encode_governance_payload(act_bytes, &[approval]);
    let e = kp_proto::open_event(
        h.net.chain_id(),
        h.net.rule(),
        &kp_proto::sign_event(h.net.key("EU", Role::Exporting), h.net.chain_id(), payload),
    )
    .unwrap();
    h.ok(&e, at(1, 0));
    // BW's revoked key can no longer approve anything.
    let e = h.net.governance(
        "EU",
        &act("S-1", GovernanceAction::Suspend { participant: pid("CF") }),
        &["EU", "CA", "AE", "BW"],
    );
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::UnknownApprover { index: 3, .. }));
}

#[test]
fn transitions_follow_the_status() {
    let mut h = h();
    let all_but_cf = h.net.all_but(&["CF"]);
    let readmit_active = h.gov("R-0", GovernanceAction::Readmit { participant: pid("CF") }, &CODES);
    assert!(matches!(h.err(&readmit_active, at(1, 0)), Rejection::InvalidTransition { status: "active", .. }));
    let e = h.net.governance("BW", &act("W-1", GovernanceAction::Withdraw { participant: pid("CF") }), &all_but_cf);
    h.ok(&e, at(1, 0));
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Withdrawn);
    for (reference, action) in [
        ("W-2", GovernanceAction::Withdraw { participant: pid("CF") }),
        ("S-2", GovernanceAction::Suspend { participant: pid("CF") }),
        ("X-2", GovernanceAction::Restrict { participant: pid("CF"), zones: vec![Label::new("Z").unwrap()] }),
    ] {
        let e = h.net.governance("BW", &act(reference, action), &all_but_cf);
        assert!(matches!(h.err(&e, at(1, 0)), Rejection::InvalidTransition { status: "withdrawn", .. }));
    }
    // A withdrawn participant's keys still sign nothing it may not: it cannot export.
    let e = h.issue("CF-1", "CF", "BW", at(1, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::NotTrading { status: "withdrawn", .. }));
    // Readmitted (the Republic of the Congo, 2007), it trades again.
    let e = h.net.governance("BW", &act("R-1", GovernanceAction::Readmit { participant: pid("CF") }), &all_but_cf);
    h.ok(&e, at(1, 0));
    h.issued("CF-1", "CF", "BW", at(1, 0));
}

#[test]
fn withdrawing_the_last_voter_is_refused() {
    let net = TestNet::new(&["BW", "EU"], 3);
    let mut ledger = Ledger::from_genesis(&net.genesis).unwrap();
    let e = net.governance("BW", &act("S-1", GovernanceAction::Suspend { participant: pid("EU") }), &["BW"]);
    ledger.apply(&e, at(1, 0)).unwrap();
    let e = net.governance("BW", &act("W-1", GovernanceAction::Withdraw { participant: pid("BW") }), &["BW"]);
    assert!(matches!(ledger.apply(&e, at(1, 0)), Err(Rejection::NoVoterLeft { action: "withdraw", .. })));
}

#[test]
fn a_rolled_back_admission_frees_its_keys() {
    let mut h = h();
    let uz_node = kp_testkit::seeded_key(6, "UZ/node").public();
    let uz = Participant {
        id: pid("UZ"),
        name: Text::new("Uzbekistan").unwrap(),
        members: vec![CountryCode::new("UZ").unwrap()],
        status: Status::Active,
        node_key: uz_node,
        authorities: vec![AuthorityKey {
            key: kp_testkit::seeded_key(6, "UZ/exporting").public(),
            role: Role::Exporting,
        }],
        max_certificate_validity_days: 90,
    };
    let before = h.ledger.state_root();
    h.ledger.begin_block();
    let e = h.gov("A-1", GovernanceAction::Admit(uz), &CODES);
    h.ok(&e, at(1, 0));
    assert_ne!(h.ledger.state_root(), before);
    h.ledger.rollback_block();
    assert_eq!(h.ledger.state_root(), before);
    assert!(h.ledger.participant(&pid("UZ")).is_none());
    // The node key is free again (the admission never happened): EU may take it as a key.
    let add = GovernanceAction::AuthorityKeyAdded {
        participant: pid("EU"),
        key: AuthorityKey { key: uz_node, role: Role::Importing },
    };
    let e = h.net.governance("EU", &act("K-1", add), &["EU"]);
    h.ok(&e, at(1, 0));
    // And the act reference can be used again.
    let e = h.gov("A-1", GovernanceAction::Suspend { participant: pid("CF") }, &["BW", "EU", "CA", "AE"]);
    h.ok(&e, at(1, 0));
}

#[test]
fn stored_records_that_do_not_make_a_ledger_are_refused_with_their_key() {
    let net = TestNet::new(&["BW", "EU", "CA"], 9);
    let ledger = Ledger::from_genesis(&net.genesis).unwrap();
    let records = ledger.records();
    type Records = Vec<(Vec<u8>, Vec<u8>)>;
    let with = |f: &dyn Fn(&mut Records)| {
        let mut r = records.clone();
        f(&mut r);
        Ledger::from_records(r, 0).unwrap_err()
    };
    // A participant record stored under another participant's key.
    let e = with(&|r| {
        let bw = r.iter().position(|(k, _)| k == b"pBW").unwrap();
        let ca = r.iter().position(|(k, _)| k == b"pCA").unwrap();
        r[bw].1 = r[ca].1.clone();
    });
    assert_eq!(e.key, "p/BW");
    assert!(e.reason.contains("p/CA"), "{e}");
    // A truncated record, a record with a trailing byte, an unknown namespace, no chain record.
    let e = with(&|r| r[0].1.pop().map(drop).unwrap_or(()));
    assert!(e.reason.contains("does not decode"), "{e}");
    let e = with(&|r| r.iter_mut().find(|(k, _)| k == b"pEU").unwrap().1.push(0));
    assert_eq!(e.reason, "1 trailing bytes");
    let e = with(&|r| r.push((b"zz".to_vec(), vec![])));
    assert_eq!((e.key.as_str(), e.reason.as_str()), ("z/z", "unknown record"));
    let e = with(&|r| r.retain(|(k, _)| k != b"mchain"));
    assert_eq!((e.key.as_str(), e.reason.as_str()), ("m/chain", "is missing"));
    // Untouched records restore the same ledger.
    let mut restored = Ledger::from_records(records.clone(), 0).unwrap();
    assert_eq!(restored.state_root(), ledger.clone().state_root());
}

#[test]
fn the_signature_rule_is_kept_in_the_state_and_a_strict_ledger_keeps_its_records() {
    let net = TestNet::new(&["BW", "EU", "CA"], 9);
    let mut strict_genesis = net.genesis.clone();
    strict_genesis.params.signature_rule = SignatureRule::Strict;
    assert_eq!(net.genesis.params.signature_rule, SignatureRule::Cofactored, "new networks are cofactored");
    let strict = Ledger::from_genesis(&strict_genesis).unwrap();
    let cofactored = Ledger::from_genesis(&net.genesis).unwrap();
    let rule_key = b"msignature-rule".to_vec();
    // A strict ledger has exactly the records a ledger had before the rule existed: the chain
    // record holds the four parameters in their old encoding, nothing else is added.
    assert!(strict.records().iter().all(|(k, _)| *k != rule_key));
    let chain = strict.records().into_iter().find(|(k, _)| k == b"mchain").unwrap().1;
    let p = &strict_genesis.params;
    let config = bincode::config::standard().with_fixed_int_encoding();
    let old = bincode::encode_to_vec(
        (
            strict_genesis.format_version,
            &strict_genesis.chain_id,
            (p.max_event_time_ahead_ms, p.max_issue_backdate_days, p.max_events_per_block, p.max_block_bytes),
        ),
        config,
    )
    .unwrap();
    assert_eq!(chain, old);
    assert_eq!(cofactored.records().iter().find(|(k, _)| *k == rule_key).map(|(_, v)| v.clone()), Some(vec![1]));
    assert_ne!(strict.clone().state_root(), cofactored.clone().state_root());
    // Each restores with its rule.
    for ledger in [&strict, &cofactored] {
        let restored = Ledger::from_records(ledger.records(), 0).unwrap();
        assert_eq!(restored.params(), ledger.params());
    }
    // A rule record this build does not know is refused with its key.
    let mut records = cofactored.records();
    records.iter_mut().find(|(k, _)| *k == rule_key).unwrap().1 = vec![2];
    let e = Ledger::from_records(records, 0).unwrap_err();
    assert_eq!(e.key, "m/signature-rule");
    assert!(e.reason.contains("not a signature rule"), "{e}");
}

// ---- Written procedure and self-suspension (docs/rules.md, "Written procedure") ----

fn suspend_cf() -> GovernanceAct {
    act("WP-1", GovernanceAction::Suspend { participant: pid("CF") })
}

fn procedure<'a>(h: &'a H, reference: &str) -> &'a ProcedureRecord {
    h.ledger.procedure(&Label::new(reference).unwrap()).expect("the procedure is recorded")
}

impl H {
    /// Concludes `act`'s procedure at `t`, stating the outcome the ledger expects, and checks
    /// that stating the other one is refused.
    fn conclude(&mut self, act: &GovernanceAct, t: Timestamp) -> bool {
        let adopted = self.ledger.procedure_conclusion(&act.reference, t).expect("the procedure is due");
        let wrong = self.net.conclusion("EU", act, !adopted);
        assert!(matches!(self.err(&wrong, t), Rejection::WrongConclusion { .. }));
        let e = self.net.conclusion("EU", act, adopted);
        self.ok(&e, t);
        adopted
    }
}

#[test]
fn written_procedure_passes_at_the_deadline_without_objection() {
    let mut h = h();
    let deadline = at(10, 0);
    let open = h.net.written_procedure("BW", &suspend_cf(), deadline);
    h.ok(&open, at(1, 0));
    assert_eq!(procedure(&h, "WP-1").outcome, ProcedureOutcome::Open);
    for code in ["EU", "CA"] {
        let e = h.net.response(code, "WP-1", None);
        h.ok(&e, at(2, 0));
    }
    // Not before the deadline, not on another act under the same reference.
    let early = h.net.conclusion("EU", &suspend_cf(), true);
    assert!(matches!(h.err(&early, Timestamp(deadline.0 - 1)), Rejection::DeadlineNotReached { .. }));
    assert_eq!(h.ledger.procedure_conclusion(&suspend_cf().reference, Timestamp(deadline.0 - 1)), None);
    let other = act("WP-1", GovernanceAction::Suspend { participant: pid("AE") });
    let forged = h.net.conclusion("EU", &other, true);
    assert!(matches!(h.err(&forged, deadline), Rejection::ProcedureActDiffers { .. }));
    // CF trades until the act is concluded.
    h.issued("CF-1", "CF", "BW", at(9, 0));
    assert!(h.conclude(&suspend_cf(), deadline));
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Suspended);
    assert!(!h.ledger.voters().iter().any(|(p, _)| *p == pid("CF")));
    let record = procedure(&h, "WP-1");
    assert_eq!(record.outcome, ProcedureOutcome::Adopted);
    assert_eq!(record.approvals, vec![pid("BW"), pid("EU"), pid("CA")]);
    assert_eq!(record.closed_at, Some(deadline));
    // Recorded as an act like any other: its reference is used for good.
    assert_eq!(h.ledger.applied_act(&Label::new("WP-1").unwrap()), Some(record.act_digest));
    let again = h.gov("WP-1", GovernanceAction::Readmit { participant: pid("CF") }, &["BW", "EU", "CA", "AE"]);
    assert!(matches!(h.err(&again, deadline), Rejection::DuplicateAct { .. }));
    let twice = h.net.conclusion("EU", &suspend_cf(), true);
    assert!(matches!(h.err(&twice, deadline), Rejection::ProcedureClosed { outcome: "adopted", .. }));
    let e = h.issue("CF-4", "CF", "BW", deadline);
    assert!(matches!(h.err(&e, deadline), Rejection::NotTrading { .. }));
}

#[test]
fn one_objection_kills_a_written_procedure() {
    let mut h = h();
    let open = h.net.written_procedure("BW", &suspend_cf(), at(10, 0));
    h.ok(&open, at(1, 0));
    let e = h.net.response("EU", "WP-1", None);
    h.ok(&e, at(2, 0));
    let e = h.net.response("AE", "WP-1", Some("the review visit has not reported yet"));
    h.ok(&e, at(3, 0));
    let record = procedure(&h, "WP-1");
    assert_eq!(record.outcome, ProcedureOutcome::Objected);
    assert_eq!(record.objection.as_ref().map(|(p, _)| *p), Some(pid("AE")));
    assert_eq!(record.closed_at, Some(at(3, 0)));
    // Dead: no more responses, nothing to conclude, and the deadline passes without effect.
    let late = h.net.response("CA", "WP-1", None);
    assert!(matches!(h.err(&late, at(4, 0)), Rejection::ProcedureClosed { outcome: "objected", .. }));
    let conclude = h.net.conclusion("EU", &suspend_cf(), false);
    assert!(matches!(h.err(&conclude, at(11, 0)), Rejection::ProcedureClosed { .. }));
    h.issued("CF-1", "CF", "BW", at(11, 0));
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Active);
    assert_eq!(h.ledger.applied_act(&Label::new("WP-1").unwrap()), None);
    // An objection states its reason (the edge refuses one without; so does the engine).
    let wp2 = act("WP-2", GovernanceAction::Suspend { participant: pid("CF") });
    let open = h.net.written_procedure("BW", &wp2, at(20, 0));
    h.ok(&open, at(11, 0));
    let bare = h.net.raw_event(
        "EU",
        Role::Importing,
        EventPayload::ProcedureResponse(ProcedureResponse {
            reference: Label::new("WP-2").unwrap(),
            objection: true,
            reason: Text::new("").unwrap(),
        }),
    );
    assert!(matches!(h.err(&bare, at(12, 0)), Rejection::Malformed(_)));
}

#[test]
fn responses_after_the_deadline_and_deadlines_in_the_past_are_refused() {
    let mut h = h();
    let past = h.net.written_procedure("BW", &suspend_cf(), at(1, 0));
    assert!(matches!(h.err(&past, at(1, 0)), Rejection::DeadlinePassed { .. }));
    let past = h.net.written_procedure("BW", &suspend_cf(), at(0, 5));
    assert!(matches!(h.err(&past, at(1, 0)), Rejection::DeadlinePassed { .. }));
    let far = h.net.written_procedure("BW", &suspend_cf(), at(1 + kp_rules::MAX_PROCEDURE_DAYS, 1));
    assert!(matches!(h.err(&far, at(1, 0)), Rejection::DeadlineTooFar { .. }));
    let deadline = at(1 + kp_rules::MAX_PROCEDURE_DAYS, 0);
    let open = h.net.written_procedure("BW", &suspend_cf(), deadline);
    h.ok(&open, at(1, 0));
    let late = h.net.response("EU", "WP-1", None);
    assert!(matches!(h.err(&late, deadline), Rejection::ProcedureDeadlinePassed { .. }));
    let late = h.net.response("EU", "WP-1", Some("too late to object"));
    assert!(matches!(h.err(&late, at(200, 0)), Rejection::ProcedureDeadlinePassed { .. }));
    let unknown = h.net.response("EU", "WP-9", None);
    assert!(matches!(h.err(&unknown, at(2, 0)), Rejection::UnknownProcedure { .. }));
    let unknown = h.net.conclusion("EU", &act("WP-9", GovernanceAction::Suspend { participant: pid("CF") }), true);
    assert!(matches!(h.err(&unknown, at(200, 0)), Rejection::UnknownProcedure { .. }));
    // The proposer alone is 1 of 4: the procedure lapses, and says why.
    assert!(!h.conclude(&suspend_cf(), at(200, 0)));
    assert!(procedure(&h, "WP-1").lapse.as_deref().unwrap().contains("1 of the 4"));
}

#[test]
fn written_procedure_needs_more_than_half_of_those_entitled() {
    // Four entitled (all but CF); the proposer counts. 2 of 4 lapses, 3 of 4 passes.
    let mut h = h();
    let open = h.net.written_procedure("BW", &suspend_cf(), at(5, 0));
    h.ok(&open, at(1, 0));
    let e = h.net.response("EU", "WP-1", None);
    h.ok(&e, at(2, 0));
    assert!(!h.conclude(&suspend_cf(), at(5, 0)));
    let record = procedure(&h, "WP-1");
    assert_eq!(record.outcome, ProcedureOutcome::Lapsed);
    assert!(record.lapse.as_deref().unwrap().contains("2 of the 4"), "{:?}", record.lapse);
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Active);
    // A lapsed act's reference stays used.
    let again = h.net.written_procedure("BW", &suspend_cf(), at(9, 0));
    assert!(matches!(h.err(&again, at(5, 0)), Rejection::DuplicateAct { .. }));
    let wp2 = act("WP-2", GovernanceAction::Suspend { participant: pid("CF") });
    let open = h.net.written_procedure("BW", &wp2, at(9, 0));
    h.ok(&open, at(5, 0));
    for code in ["EU", "CA"] {
        let e = h.net.response(code, "WP-2", None);
        h.ok(&e, at(6, 0));
    }
    assert!(h.conclude(&wp2, at(9, 0)));
}

#[test]
fn the_party_concerned_takes_no_part_and_key_changes_are_not_by_written_procedure() {
    let mut h = h();
    // CF may neither put its own suspension to written procedure nor answer one about it.
    let own = h.net.written_procedure("CF", &suspend_cf(), at(10, 0));
    assert!(matches!(h.err(&own, at(1, 0)), Rejection::NotEntitled { .. }));
    let open = h.net.written_procedure("BW", &suspend_cf(), at(10, 0));
    h.ok(&open, at(1, 0));
    let objection = h.net.response("CF", "WP-1", Some("we object"));
    assert!(matches!(h.err(&objection, at(2, 0)), Rejection::NotEntitled { .. }));
    let twice = h.net.response("BW", "WP-1", None);
    assert!(matches!(h.err(&twice, at(2, 0)), Rejection::AlreadyResponded { .. }));
    let e = h.net.response("EU", "WP-1", None);
    h.ok(&e, at(2, 0));
    let twice = h.net.response("EU", "WP-1", Some("changed our mind"));
    assert!(matches!(h.err(&twice, at(2, 0)), Rejection::AlreadyResponded { .. }));
    // An ordinary act may not take a procedure's reference, nor the other way round.
    let clash = h.gov("WP-1", GovernanceAction::Suspend { participant: pid("AE") }, &["BW", "EU", "CA", "CF"]);
    assert!(matches!(h.err(&clash, at(2, 0)), Rejection::DuplicateAct { .. }));
    let e = h.gov("S-1", GovernanceAction::Suspend { participant: pid("AE") }, &["BW", "EU", "CA", "CF"]);
    h.ok(&e, at(2, 0));
    let readmit_ae = act("S-1", GovernanceAction::Readmit { participant: pid("AE") });
    let clash = h.net.written_procedure("BW", &readmit_ae, at(9, 0));
    assert!(matches!(h.err(&clash, at(2, 0)), Rejection::DuplicateAct { .. }));
    // A suspended participant neither proposes, answers nor concludes.
    let readmit_ae = act("WP-2", GovernanceAction::Readmit { participant: pid("AE") });
    let by_ae = h.net.written_procedure("AE", &readmit_ae, at(9, 0));
    assert!(matches!(h.err(&by_ae, at(2, 0)), Rejection::ProposerNotVoting { .. }));
    let by_ae = h.net.response("AE", "WP-1", None);
    assert!(matches!(h.err(&by_ae, at(2, 0)), Rejection::NotEntitled { .. }));
    let by_ae = h.net.conclusion("AE", &suspend_cf(), false);
    assert!(matches!(h.err(&by_ae, at(10, 0)), Rejection::ProposerNotVoting { .. }));
    let key = GovernanceAction::AuthorityKeyAdded {
        participant: pid("EU"),
        key: AuthorityKey { key: kp_testkit::seeded_key(3, "EU/new").public(), role: Role::Importing },
    };
    let e = h.net.written_procedure("EU", &act("K-1", key), at(9, 0));
    assert!(matches!(h.err(&e, at(2, 0)), Rejection::NotByWrittenProcedure { .. }));
}

#[test]
fn a_procedure_whose_act_no_longer_applies_lapses() {
    let mut h = h();
    let open = h.net.written_procedure("BW", &suspend_cf(), at(10, 0));
    h.ok(&open, at(1, 0));
    for code in ["EU", "CA", "AE"] {
        let e = h.net.response(code, "WP-1", None);
        h.ok(&e, at(2, 0));
    }
    // Meanwhile the plenary suspends CF by the ordinary rule.
    h.suspend("CF", at(3, 0));
    assert!(!h.conclude(&suspend_cf(), at(10, 0)));
    let lapse = procedure(&h, "WP-1").lapse.clone().unwrap();
    assert!(lapse.contains("does not apply"), "{lapse}");
}

#[test]
fn procedures_survive_rollback_and_restore_and_admit() {
    let mut h = h();
    let readmit = act("WP-B", GovernanceAction::Readmit { participant: pid("CF") });
    h.suspend("CF", at(1, 0));
    let open = h.net.written_procedure("BW", &readmit, at(6, 0));
    h.ok(&open, at(1, 0));
    for code in ["EU", "CA"] {
        let e = h.net.response(code, "WP-B", None);
        h.ok(&e, at(2, 0));
    }
    // A rolled-back conclusion leaves the procedure open, state root unchanged.
    let before = h.ledger.state_root();
    h.ledger.begin_block();
    let e = h.net.conclusion("EU", &readmit, true);
    h.ok(&e, at(7, 0));
    assert_eq!(procedure(&h, "WP-B").outcome, ProcedureOutcome::Adopted);
    h.ledger.rollback_block();
    assert_eq!(h.ledger.state_root(), before);
    assert_eq!(procedure(&h, "WP-B").outcome, ProcedureOutcome::Open);
    // Restored from its records, the ledger concludes it the same way.
    let mut restored = Ledger::from_records(h.ledger.records(), h.ledger.events_applied()).unwrap();
    assert_eq!(restored.state_root(), before);
    restored.apply(&e, at(7, 0)).unwrap();
    h.ok(&e, at(7, 0));
    assert_eq!(restored.state_root(), h.ledger.state_root());
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Active);
    // A procedure that admits: the newcomer votes from then on.
    let uz = Participant {
        id: pid("UZ"),
        name: Text::new("Uzbekistan").unwrap(),
        members: vec![CountryCode::new("UZ").unwrap()],
        status: Status::Active,
        node_key: kp_testkit::seeded_key(8, "UZ/node").public(),
        authorities: vec![AuthorityKey {
            key: kp_testkit::seeded_key(8, "UZ/exporting").public(),
            role: Role::Exporting,
        }],
        max_certificate_validity_days: 90,
    };
    let admit = act("WP-UZ", GovernanceAction::Admit(uz));
    let open = h.net.written_procedure("EU", &admit, at(12, 0));
    h.ok(&open, at(8, 0));
    for code in ["BW", "CA"] {
        let e = h.net.response(code, "WP-UZ", None);
        h.ok(&e, at(9, 0));
    }
    assert!(h.conclude(&admit, at(12, 0)));
    assert!(h.ledger.voters().iter().any(|(p, _)| *p == pid("UZ")));
}

#[test]
fn a_participant_suspends_itself_and_is_readmitted_with_everyone_elses_approval() {
    let mut h = h();
    // Venezuela, 2008: its own act, no vote of the others.
    let e = h.net.governance("CF", &act("SELF-1", GovernanceAction::Suspend { participant: pid("CF") }), &["CF"]);
    h.ok(&e, at(1, 0));
    assert_eq!(h.ledger.participant(&pid("CF")).unwrap().status, Status::Suspended);
    let e = h.issue("CF-1", "CF", "BW", at(2, 0));
    assert!(matches!(h.err(&e, at(2, 0)), Rejection::NotTrading { .. }));
    // Lifted at its request (its approval) with the agreement of every voting participant.
    let lift = act("LIFT-1", GovernanceAction::Readmit { participant: pid("CF") });
    let e = h.net.governance("BW", &lift, &["CF", "BW", "EU", "CA"]);
    match h.err(&e, at(3, 0)) {
        Rejection::MissingApprovals { missing, .. } => assert_eq!(missing, vec![pid("AE")]),
        r => panic!("{r}"),
    }
    let e = h.net.governance("BW", &lift, &["CF", "BW", "EU", "CA", "AE"]);
    h.ok(&e, at(3, 0));
    h.issued("CF-1", "CF", "BW", at(3, 0));
}

#[test]
fn open_written_procedures_are_bounded() {
    let mut h = h();
    for i in 0..kp_rules::MAX_OPEN_PROCEDURES {
        let e = h.net.written_procedure(
            "BW",
            &act(&format!("WP-{i}"), GovernanceAction::Suspend { participant: pid("CF") }),
            at(9, 0),
        );
        h.ok(&e, at(1, 0));
    }
    let one_more = act("WP-MORE", GovernanceAction::Suspend { participant: pid("CF") });
    let e = h.net.written_procedure("BW", &one_more, at(9, 0));
    assert!(matches!(h.err(&e, at(1, 0)), Rejection::TooManyProcedures { .. }));
    // One closes (an objection), and room is made.
    let e = h.net.response("EU", "WP-0", Some("no"));
    h.ok(&e, at(2, 0));
    let e = h.net.written_procedure("BW", &one_more, at(9, 0));
    h.ok(&e, at(2, 0));
}
