//! Fixtures: a genesis, payload builders, and a ledger of committed events in commit order.
//! The review needs neither signatures nor the rules engine, so events are built directly.

use kp_domain::*;
use kp_review::{Committed, Review};

pub fn pid(code: &str) -> ParticipantId {
    ParticipantId::new(code).unwrap()
}

pub fn date(s: &str) -> Date {
    Date::parse(s).unwrap()
}

/// `hours` hours into `day`.
pub fn at(day: &str, hours: u64) -> Timestamp {
    date(day).start().saturating_add_ms(hours * 3_600_000)
}

pub fn number(s: &str) -> CertificateNumber {
    CertificateNumber::new(s).unwrap()
}

pub fn text(s: &str) -> Text {
    Text::new(s).unwrap()
}

pub fn label(s: &str) -> Label {
    Label::new(s).unwrap()
}

/// A genesis of `participants` (code, name), each a state of its own and active, with distinct
/// dummy keys (the review never checks a signature).
pub fn genesis(participants: &[(&str, &str)]) -> Genesis {
    let mut list: Vec<Participant> = participants
        .iter()
        .enumerate()
        .map(|(i, (code, name))| {
            let key = |role: u8| {
                let mut k = [0u8; 32];
                k[0] = u8::try_from(i).unwrap();
                k[1] = role;
                k[2] = 0x5a;
                PublicKey(k)
            };
            Participant {
                id: pid(code),
                name: text(name),
                members: vec![CountryCode::new(code).unwrap()],
                status: Status::Active,
                node_key: key(0),
                authorities: vec![
                    AuthorityKey { key: key(1), role: Role::Exporting },
                    AuthorityKey { key: key(2), role: Role::Importing },
                ],
                max_certificate_validity_days: 60,
            }
        })
        .collect();
    list.sort_by_key(|p| p.id);
    let g = Genesis {
        format_version: FORMAT_VERSION,
        chain_id: ChainId::new("kp-review-test").unwrap(),
        genesis_time: at("2025-12-01", 0),
        participants: list,
        observers: vec![],
        params: ProtocolParams::default(),
    };
    g.validate().unwrap();
    g
}

/// The participants of `node-config/participants.toml` (code, name), in file order.
pub fn registry() -> Vec<(String, String)> {
    let toml = include_str!("../../../../node-config/participants.toml");
    let mut out = Vec::new();
    let mut in_participant = false;
    let quoted = |line: &str| line.split('"').nth(1).map(str::to_owned);
    for line in toml.lines().map(str::trim) {
        if line.starts_with("[[") {
            in_participant = line == "[[participant]]";
            continue;
        }
        if !in_participant {
            continue;
        }
        if line.starts_with("id =") {
            out.push((quoted(line).unwrap(), String::new()));
        } else if line.starts_with("name =") {
            out.last_mut().unwrap().1 = quoted(line).unwrap();
        }
    }
    out
}

/// The genesis of the 59 participants of the registry.
pub fn world_genesis() -> Genesis {
    let reg = registry();
    let pairs: Vec<(&str, &str)> = reg.iter().map(|(c, n)| (c.as_str(), n.as_str())).collect();
    genesis(&pairs)
}

pub fn line(hs: HsCode, hundredths: u64, cents: u64) -> HsLine {
    HsLine { hs_code: hs, carats: Carats(hundredths), value: UsdCents(cents) }
}

/// A certificate with the Annex I content; totals are the sums of `lines`.
pub fn certificate(
    num: &str,
    exporter: &str,
    importer: &str,
    issued_on: Date,
    valid_days: i32,
    parcels: u32,
    lines: Vec<HsLine>,
) -> Certificate {
    let carats = Carats(lines.iter().fold(0u64, |a, l| a.saturating_add(l.carats.0)));
    let value = UsdCents(lines.iter().fold(0u64, |a, l| a.saturating_add(l.value.0)));
    Certificate {
        number: number(num),
        exporter: pid(exporter),
        importer: pid(importer),
        origin: Origin::Country(CountryCode::new(exporter).unwrap()),
        origin_zone: None,
        issued_on,
        expires_on: issued_on.add_days(valid_days),
        issuing_authority: text(&format!("{exporter} Exporting Authority")),
        exporter_party: Trader { name: text("Exporter Ltd"), identification: text("REG-1") },
        importer_party: Trader { name: text("Importer Ltd"), identification: text("REG-2") },
        carats,
        value,
        parcels,
        lines,
    }
}

pub fn issued(c: &Certificate) -> EventPayload {
    EventPayload::CertificateIssued(c.clone())
}

pub fn amended(c: &Certificate) -> EventPayload {
    EventPayload::CertificateAmended(CertificateAmended { certificate: c.clone(), reason: text("correction") })
}

pub fn sealed(num: &str, sealed_at: Timestamp) -> EventPayload {
    EventPayload::ShipmentSealed(ShipmentSealed {
        certificate: number(num),
        seal_ids: vec![label("SEAL-1")],
        sealed_at,
        port_of_exit: label("Port"),
    })
}

pub fn received(num: &str, received_at: Timestamp, parcels: u32, hundredths: u64, intact: bool) -> EventPayload {
    EventPayload::ReceiptConfirmed(ReceiptConfirmed {
        certificate: number(num),
        received_at,
        parcels_found: parcels,
        carats_found: Carats(hundredths),
        seals_intact: intact,
        remarks: Text::default(),
    })
}

/// A receipt matching `c` exactly.
pub fn received_ok(c: &Certificate, received_at: Timestamp) -> EventPayload {
    received(c.number.as_str(), received_at, c.parcels, c.carats.0, true)
}

pub fn voided(num: &str) -> EventPayload {
    EventPayload::CertificateVoided(CertificateVoided { certificate: number(num), reason: text("cancelled") })
}

pub fn production(participant: &str, year: u32, half: u32, revision: u32, lines: Vec<HsLine>) -> EventPayload {
    EventPayload::ProductionReported(ProductionReported {
        participant: pid(participant),
        period: HalfYear::new(year, half).unwrap(),
        revision,
        lines,
        zones: vec![],
    })
}

pub fn governance(reference: &str, action: GovernanceAction) -> EventPayload {
    EventPayload::Governance(GovernanceEvent {
        act: GovernanceAct { reference: label(reference), action, rationale: text("plenary decision") },
        act_digest: Hash32::default(),
        approvers: vec![],
    })
}

/// One committed event.
#[derive(Clone, Debug)]
pub struct Entry {
    pub height: u64,
    pub time: Timestamp,
    pub id: EventId,
    pub payload: EventPayload,
}

/// Events as they are generated (in any order, each with its block time), committed in block
/// time order (ties: generation order); events of equal block time share a height.
#[derive(Default, Debug)]
pub struct Ledger {
    pending: Vec<(Timestamp, u64, EventId, EventPayload)>,
    counter: u64,
}

impl Ledger {
    /// Records `payload` to be committed at block time `time`; returns its event id.
    pub fn push(&mut self, time: Timestamp, payload: EventPayload) -> EventId {
        self.counter += 1;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&self.counter.to_be_bytes());
        id[8..16].copy_from_slice(&time.0.to_be_bytes());
        id[31] = 0xee;
        let id = EventId(id);
        self.pending.push((time, self.counter, id, payload));
        id
    }

    /// The events in commit order.
    pub fn committed(&self) -> Vec<Entry> {
        let mut sorted: Vec<_> = self.pending.iter().collect();
        sorted.sort_by_key(|(time, seq, _, _)| (*time, *seq));
        let mut height = 0;
        let mut last = None;
        sorted
            .into_iter()
            .map(|(time, _, id, payload)| {
                if last != Some(*time) {
                    height += 1;
                    last = Some(*time);
                }
                Entry { height, time: *time, id: *id, payload: payload.clone() }
            })
            .collect()
    }
}

pub fn review_of(genesis: &Genesis, entries: &[Entry]) -> Review {
    let mut review = Review::new(genesis);
    for e in entries {
        review.add(Committed { height: e.height, time: e.time, id: e.id, payload: &e.payload });
    }
    review
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same world everywhere.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    /// An item drawn with the given weights.
    pub fn weighted<T: Copy>(&mut self, items: &[(T, u64)]) -> T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.below(total);
        for (item, w) in items {
            if pick < *w {
                return *item;
            }
            pick -= w;
        }
        items[items.len() - 1].0
    }
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.below(u64::try_from(i).unwrap() + 1)).unwrap();
            items.swap(i, j);
        }
    }
}
