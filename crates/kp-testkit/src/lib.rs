//! Deterministic fixtures: a network of participants with keys derived from a seed, and signed
//! events built through the real encoder and opened through the real edge (`kp-proto`), so that
//! tests exercise the same bytes a node would see.

#![allow(clippy::expect_used, clippy::missing_panics_doc)]

use kp_crypto::{SecretKey, sha256_parts};
use kp_domain::*;
use kp_proto::Approval;
use std::collections::BTreeMap;

/// 2026-01-10T00:00:00Z: the genesis time of test networks.
pub const GENESIS_TIME: Timestamp = Timestamp(1_768_003_200_000);

/// A time `days` days and `ms` milliseconds after [`GENESIS_TIME`].
pub fn at(days: u64, ms: u64) -> Timestamp {
    Timestamp(GENESIS_TIME.0 + days * MS_PER_DAY + ms)
}

/// The keys of one participant.
#[derive(Debug)]
pub struct ParticipantKeys {
    pub node: SecretKey,
    pub exporting: SecretKey,
    pub importing: SecretKey,
}

impl ParticipantKeys {
    pub fn authority(&self, role: Role) -> &SecretKey {
        match role {
            Role::Exporting => &self.exporting,
            Role::Importing => &self.importing,
        }
    }
}

/// Derives a key from a seed and a label: the same inputs give the same key on every machine.
pub fn seeded_key(seed: u64, label: &str) -> SecretKey {
    SecretKey::from_seed(&sha256_parts(&[b"kp-testkit", &seed.to_be_bytes(), label.as_bytes()]).0)
}

pub fn pid(code: &str) -> ParticipantId {
    ParticipantId::new(code).expect("test participant code")
}

/// A test network: a genesis and every participant's keys.
#[derive(Debug)]
pub struct TestNet {
    pub genesis: Genesis,
    pub keys: BTreeMap<ParticipantId, ParticipantKeys>,
    pub seed: u64,
}

impl TestNet {
    /// Participants `codes` (each a state of its own, 60-day certificates), keys from `seed`,
    /// two observers.
    pub fn new(codes: &[&str], seed: u64) -> TestNet {
        let mut keys = BTreeMap::new();
        let mut participants = Vec::new();
        for code in codes {
            let id = pid(code);
            let k = ParticipantKeys {
                node: seeded_key(seed, &format!("{code}/node")),
                exporting: seeded_key(seed, &format!("{code}/exporting")),
                importing: seeded_key(seed, &format!("{code}/importing")),
            };
            participants.push(Participant {
                id,
                name: Text::new(&format!("Participant {code}")).expect("name"),
                members: vec![CountryCode::new(code).expect("country")],
                status: Status::Active,
                node_key: k.node.public(),
                authorities: vec![
                    AuthorityKey { key: k.exporting.public(), role: Role::Exporting },
                    AuthorityKey { key: k.importing.public(), role: Role::Importing },
                ],
                max_certificate_validity_days: 60,
            });
            keys.insert(id, k);
        }
        participants.sort_by_key(|p| p.id);
        let observers = ["CSC", "WDC"]
            .iter()
            .map(|o| Observer {
                id: ObserverId::new(o).expect("observer"),
                name: Text::new(o).expect("name"),
                node_key: seeded_key(seed, &format!("{o}/node")).public(),
            })
            .collect();
        let genesis = Genesis {
            format_version: FORMAT_VERSION,
            chain_id: ChainId::new(&format!("kp-test-{seed}")).expect("chain id"),
            genesis_time: GENESIS_TIME,
            participants,
            observers,
            params: ProtocolParams::default(),
        };
        genesis.validate().expect("test genesis is valid");
        TestNet { genesis, keys, seed }
    }

    pub fn chain_id(&self) -> &ChainId {
        &self.genesis.chain_id
    }
    /// The genesis's signature rule.
    pub fn rule(&self) -> kp_domain::SignatureRule {
        self.genesis.params.signature_rule
    }

    pub fn key(&self, code: &str, role: Role) -> &SecretKey {
        self.keys.get(&pid(code)).expect("participant of the test network").authority(role)
    }

    /// The signed envelope of `payload`, signed with `key`.
    pub fn envelope_with(&self, key: &SecretKey, payload: &EventPayload) -> Vec<u8> {
        kp_proto::sign_event(key, self.chain_id(), kp_proto::encode_payload(payload).expect("encodable payload"))
    }

    /// `payload` signed by `code`'s `role` authority, decoded and verified as a node would.
    pub fn event(&self, code: &str, role: Role, payload: EventPayload) -> Event {
        self.event_with(self.key(code, role), payload)
    }

    pub fn event_with(&self, key: &SecretKey, payload: EventPayload) -> Event {
        kp_proto::open_event(self.chain_id(), self.rule(), &self.envelope_with(key, &payload))
            .expect("test event opens")
    }

    /// An event built without the edge's structural checks, as a buggy or hostile edge might
    /// hand it over: for testing that the rules engine refuses malformed payloads on its own.
    pub fn raw_event(&self, code: &str, role: Role, payload: EventPayload) -> Event {
        let key = self.key(code, role);
        let bytes = kp_proto::payload_to_proto(&payload).map(|p| prost_free_encode(&p)).unwrap_or_default();
        let envelope = kp_proto::sign_event(key, self.chain_id(), bytes);
        Event { id: kp_crypto::event_id(&envelope), signer: key.public(), payload }
    }

    /// A governance act proposed by `proposer`'s exporting authority, approved by the exporting
    /// authority of each of `approvers`: the signed envelope.
    pub fn governance_envelope<S: AsRef<str>>(&self, proposer: &str, act: &GovernanceAct, approvers: &[S]) -> Vec<u8> {
        let act_bytes = kp_proto::encode_act(act);
        let approvals: Vec<Approval> = approvers
            .iter()
            .map(|a| Approval::sign(self.key(a.as_ref(), Role::Exporting), self.chain_id(), &act_bytes))
            .collect();
        kp_proto::sign_event(
            self.key(proposer, Role::Exporting),
            self.chain_id(),
            kp_proto::encode_governance_payload(act_bytes, &approvals),
        )
    }

    pub fn governance<S: AsRef<str>>(&self, proposer: &str, act: &GovernanceAct, approvers: &[S]) -> Event {
        kp_proto::open_event(self.chain_id(), self.rule(), &self.governance_envelope(proposer, act, approvers))
            .expect("governance event opens")
    }

    /// `act` put to written procedure by `proposer`'s exporting authority, closing at `deadline`.
    pub fn written_procedure(&self, proposer: &str, act: &GovernanceAct, deadline: Timestamp) -> Event {
        let act_digest = kp_crypto::sha256(&kp_proto::encode_act(act));
        let payload = EventPayload::WrittenProcedure(WrittenProcedure { act: act.clone(), act_digest, deadline });
        self.event(proposer, Role::Exporting, payload)
    }

    /// `code`'s response to the written procedure `reference`: an approval, or (with a reason)
    /// an objection.
    pub fn response(&self, code: &str, reference: &str, objection: Option<&str>) -> Event {
        let payload = EventPayload::ProcedureResponse(ProcedureResponse {
            reference: Label::new(reference).expect("reference"),
            objection: objection.is_some(),
            reason: Text::new(objection.unwrap_or("")).expect("reason"),
        });
        self.event(code, Role::Importing, payload)
    }

    /// `code`'s conclusion of the written procedure of `act`, stating `adopted`.
    pub fn conclusion(&self, code: &str, act: &GovernanceAct, adopted: bool) -> Event {
        let act_digest = kp_crypto::sha256(&kp_proto::encode_act(act));
        let payload = EventPayload::ProcedureConclusion(ProcedureConclusion { act: act.clone(), act_digest, adopted });
        self.event(code, Role::Exporting, payload)
    }

    /// Codes of every participant but `except`.
    pub fn all_but(&self, except: &[&str]) -> Vec<String> {
        self.genesis
            .participants
            .iter()
            .map(|p| p.id.as_str().to_owned())
            .filter(|c| !except.contains(&c.as_str()))
            .collect()
    }
}

/// A realistic certificate from `exporter` to `importer`, issued on the day of `issued`, valid
/// 30 days: 1,234.56 ct of unsorted and non-industrial goods worth USD 250,000.00 in 3 parcels.
pub fn certificate(number: &str, exporter: &str, importer: &str, issued: Timestamp) -> Certificate {
    let text = |s: &str| Text::new(s).expect("text");
    Certificate {
        number: CertificateNumber::new(number).expect("certificate number"),
        exporter: pid(exporter),
        importer: pid(importer),
        origin: Origin::Country(CountryCode::new(exporter).expect("origin")),
        origin_zone: None,
        issued_on: issued.date(),
        expires_on: issued.date().add_days(30),
        issuing_authority: text(&format!("{exporter} Exporting Authority")),
        exporter_party: Trader { name: text("Exporter Ltd"), identification: text("REG-001") },
        importer_party: Trader { name: text("Importer BV"), identification: text("REG-002") },
        carats: Carats(123_456),
        value: UsdCents(25_000_000),
        parcels: 3,
        lines: vec![
            HsLine { hs_code: HsCode::Unsorted, carats: Carats(100_000), value: UsdCents(15_000_000) },
            HsLine { hs_code: HsCode::NonIndustrial, carats: Carats(23_456), value: UsdCents(10_000_000) },
        ],
    }
}

pub fn seal(number: &str, sealed_at: Timestamp) -> ShipmentSealed {
    ShipmentSealed {
        certificate: CertificateNumber::new(number).expect("number"),
        seal_ids: vec![Label::new("SEAL-A1").expect("seal"), Label::new("SEAL-A2").expect("seal")],
        sealed_at,
        port_of_exit: Label::new("Gaborone SSKI").expect("port"),
    }
}

/// A receipt that matches `c` exactly.
pub fn receipt(c: &Certificate, received_at: Timestamp) -> ReceiptConfirmed {
    ReceiptConfirmed {
        certificate: c.number.clone(),
        received_at,
        parcels_found: c.parcels,
        carats_found: c.carats,
        seals_intact: true,
        remarks: Text::default(),
    }
}

fn prost_free_encode(p: &kp_proto::pb::EventPayload) -> Vec<u8> {
    kp_proto::encode_message(p)
}

pub fn act(reference: &str, action: GovernanceAction) -> GovernanceAct {
    GovernanceAct {
        reference: Label::new(reference).expect("reference"),
        action,
        rationale: Text::new("plenary decision").expect("text"),
    }
}
